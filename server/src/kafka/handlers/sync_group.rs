//! SyncGroup: followers wait on the coordinator for the leader's assignment.
use kafka_protocol::messages::{SyncGroupRequest, SyncGroupResponse};

use super::groups::{on_coordinator, optional_text, text};
use super::str_bytes;
use crate::coordinator::{GroupAnswer, GroupCall};
use crate::kafka::errors::optional_group_error_code;
use crate::kafka::registry::RequestContext;

pub async fn handle(context: &RequestContext, request: SyncGroupRequest, _version: i16) -> Option<SyncGroupResponse> {
    let group = request.group_id.0.to_string();
    let call = GroupCall::Sync {
        group: group.clone(),
        member_id: text(&request.member_id),
        instance_id: optional_text(&request.group_instance_id),
        generation_id: request.generation_id,
        protocol_type: optional_text(&request.protocol_type),
        protocol_name: optional_text(&request.protocol_name),
        assignments: request.assignments.into_iter().map(|entry| (text(&entry.member_id), entry.assignment)).collect(),
    };
    let GroupAnswer::Sync(answer) = on_coordinator(context, &group, call).await else {
        unreachable!("Sync answers with Sync");
    };
    Some(
        SyncGroupResponse::default()
            .with_error_code(optional_group_error_code(answer.error))
            .with_protocol_type(answer.protocol_type.as_deref().map(str_bytes))
            .with_protocol_name(answer.protocol_name.as_deref().map(str_bytes))
            .with_assignment(answer.assignment),
    )
}
