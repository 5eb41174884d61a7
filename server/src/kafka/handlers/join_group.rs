//! JoinGroup: parked on the coordinator until the rebalance completes.
use kafka_protocol::messages::join_group_response::JoinGroupResponseMember;
use kafka_protocol::messages::{JoinGroupRequest, JoinGroupResponse};
use sluice_engine::group::state_machine::JoinRequest;

use super::groups::{on_coordinator, optional_text, text};
use super::str_bytes;
use crate::coordinator::{GroupAnswer, GroupCall};
use crate::kafka::errors::optional_group_error_code;
use crate::kafka::registry::RequestContext;

pub async fn handle(context: &RequestContext, request: JoinGroupRequest, version: i16) -> Option<JoinGroupResponse> {
    let group = request.group_id.0.to_string();
    let session_timeout_ms = request.session_timeout_ms.max(0) as u64;
    let join = JoinRequest {
        member_id: text(&request.member_id),
        group_instance_id: optional_text(&request.group_instance_id),
        client_id: context.client_id.clone(),
        client_host: context.client_host.clone(),
        session_timeout_ms,
        // v0 has no rebalance timeout: Kafka uses the session timeout.
        rebalance_timeout_ms: if version >= 1 {
            request.rebalance_timeout_ms.max(0) as u64
        } else {
            session_timeout_ms
        },
        protocol_type: text(&request.protocol_type),
        protocols: request.protocols.into_iter().map(|protocol| (text(&protocol.name), protocol.metadata)).collect(),
        require_known_member_id: version >= 4,
    };
    let GroupAnswer::Join(answer) =
        on_coordinator(context, &group, GroupCall::Join { group: group.clone(), request: join }).await
    else {
        unreachable!("Join answers with Join");
    };
    let members = answer
        .members
        .into_iter()
        .map(|member| {
            JoinGroupResponseMember::default()
                .with_member_id(str_bytes(&member.member_id))
                .with_group_instance_id(member.group_instance_id.as_deref().map(str_bytes))
                .with_metadata(member.metadata)
        })
        .collect();
    Some(
        JoinGroupResponse::default()
            .with_error_code(optional_group_error_code(answer.error))
            .with_generation_id(answer.generation_id)
            .with_protocol_type(answer.protocol_type.as_deref().map(str_bytes))
            .with_protocol_name(Some(str_bytes(answer.protocol_name.as_deref().unwrap_or_default())))
            .with_leader(str_bytes(&answer.leader))
            .with_member_id(str_bytes(&answer.member_id))
            .with_members(members),
    )
}
