//! ListGroups: every context's coordinator is asked and the answers merged.
use kafka_protocol::messages::list_groups_response::ListedGroup;
use kafka_protocol::messages::{GroupId, ListGroupsRequest, ListGroupsResponse};

use super::describe_groups::state_name;
use super::str_bytes;
use crate::coordinator::{GroupAnswer, GroupCall};
use crate::kafka::registry::RequestContext;

pub async fn handle(context: &RequestContext, request: ListGroupsRequest, _version: i16) -> Option<ListGroupsResponse> {
    let answers = context.group_call_everywhere(|| GroupCall::List).await;
    let mut groups: Vec<ListedGroup> = answers
        .into_iter()
        .flat_map(|answer| match answer {
            GroupAnswer::List(groups) => groups,
            _ => unreachable!("List answers with List"),
        })
        .filter(|(_, _, state)| {
            request.states_filter.is_empty()
                || request.states_filter.iter().any(|wanted| wanted.as_str() == state_name(*state))
        })
        .map(|(group_id, protocol_type, state)| {
            ListedGroup::default()
                .with_group_id(GroupId(str_bytes(&group_id)))
                .with_protocol_type(str_bytes(&protocol_type))
                .with_group_state(str_bytes(state_name(state)))
                .with_group_type(str_bytes("classic"))
        })
        .collect();
    groups.sort_by(|left, right| left.group_id.0.as_str().cmp(right.group_id.0.as_str()));
    Some(ListGroupsResponse::default().with_groups(groups))
}
