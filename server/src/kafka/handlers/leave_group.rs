//! LeaveGroup: v0-2 name one member; v3+ a batch (by member id or group.instance.id).
use kafka_protocol::messages::leave_group_response::MemberResponse;
use kafka_protocol::messages::{LeaveGroupRequest, LeaveGroupResponse};

use super::groups::{on_coordinator, optional_text, text};
use super::str_bytes;
use crate::coordinator::{GroupAnswer, GroupCall};
use crate::kafka::errors::optional_group_error_code;
use crate::kafka::registry::RequestContext;

pub async fn handle(context: &RequestContext, request: LeaveGroupRequest, version: i16) -> Option<LeaveGroupResponse> {
    let group = request.group_id.0.to_string();
    let members: Vec<(String, Option<String>)> = if version >= 3 {
        request
            .members
            .iter()
            .map(|member| (text(&member.member_id), optional_text(&member.group_instance_id)))
            .collect()
    } else {
        vec![(text(&request.member_id), None)]
    };
    let call = GroupCall::Leave { group: group.clone(), members: members.clone() };
    let GroupAnswer::Leave(results) = on_coordinator(context, &group, call).await else {
        unreachable!("Leave answers with Leave");
    };
    if version < 3 {
        let error = results.into_iter().next().and_then(Result::err);
        return Some(LeaveGroupResponse::default().with_error_code(optional_group_error_code(error)));
    }
    let responses = members
        .into_iter()
        .zip(results)
        .map(|((member_id, instance_id), result)| {
            MemberResponse::default()
                .with_member_id(str_bytes(&member_id))
                .with_group_instance_id(instance_id.as_deref().map(str_bytes))
                .with_error_code(optional_group_error_code(result.err()))
        })
        .collect();
    Some(LeaveGroupResponse::default().with_members(responses))
}
