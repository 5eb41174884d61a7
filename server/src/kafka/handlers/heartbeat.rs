//! Heartbeat: keeps a member's session alive; REBALANCE_IN_PROGRESS tells it to rejoin.
use kafka_protocol::messages::{HeartbeatRequest, HeartbeatResponse};

use super::groups::{on_coordinator, optional_text, text};
use crate::coordinator::{GroupAnswer, GroupCall};
use crate::kafka::errors::optional_group_error_code;
use crate::kafka::registry::RequestContext;

pub async fn handle(context: &RequestContext, request: HeartbeatRequest, _version: i16) -> Option<HeartbeatResponse> {
    let group = request.group_id.0.to_string();
    let call = GroupCall::Heartbeat {
        group: group.clone(),
        member_id: text(&request.member_id),
        instance_id: optional_text(&request.group_instance_id),
        generation_id: request.generation_id,
    };
    let GroupAnswer::Heartbeat(result) = on_coordinator(context, &group, call).await else {
        unreachable!("Heartbeat answers with Heartbeat");
    };
    Some(HeartbeatResponse::default().with_error_code(optional_group_error_code(result.err())))
}
