//! DescribeGroups: state, protocol and members with their assignments.
use kafka_protocol::messages::describe_groups_response::{DescribedGroup, DescribedGroupMember};
use kafka_protocol::messages::{DescribeGroupsRequest, DescribeGroupsResponse};
use sluice_engine::group::state_machine::GroupState;

use super::groups::on_coordinator;
use super::str_bytes;
use crate::coordinator::{GroupAnswer, GroupCall};
use crate::kafka::registry::RequestContext;

/// Kafka's names for group states.
pub fn state_name(state: GroupState) -> &'static str {
    match state {
        GroupState::Empty => "Empty",
        GroupState::PreparingRebalance => "PreparingRebalance",
        GroupState::CompletingRebalance => "CompletingRebalance",
        GroupState::Stable => "Stable",
        GroupState::Dead => "Dead",
    }
}

pub async fn handle(
    context: &RequestContext,
    request: DescribeGroupsRequest,
    _version: i16,
) -> Option<DescribeGroupsResponse> {
    let mut groups = Vec::with_capacity(request.groups.len());
    for group_id in request.groups {
        let id = group_id.0.to_string();
        let GroupAnswer::Describe(mut found) =
            on_coordinator(context, &id, GroupCall::Describe { groups: vec![id.clone()] }).await
        else {
            unreachable!("Describe answers with Describe");
        };
        let described = DescribedGroup::default().with_group_id(group_id);
        let description = found.pop().and_then(|(_, description)| description);
        groups.push(match description {
            // A group Kafka does not know is described as Dead with no members.
            None => described.with_group_state(str_bytes("Dead")),
            Some(description) => described
                .with_group_state(str_bytes(state_name(description.state)))
                .with_protocol_type(str_bytes(&description.protocol_type))
                .with_protocol_data(str_bytes(&description.protocol))
                .with_members(
                    description
                        .members
                        .into_iter()
                        .map(|member| {
                            DescribedGroupMember::default()
                                .with_member_id(str_bytes(&member.member_id))
                                .with_group_instance_id(member.group_instance_id.as_deref().map(str_bytes))
                                .with_client_id(str_bytes(&member.client_id))
                                .with_client_host(str_bytes(&member.client_host))
                                .with_member_metadata(member.metadata)
                                .with_member_assignment(member.assignment)
                        })
                        .collect(),
                ),
        });
    }
    Some(DescribeGroupsResponse::default().with_groups(groups))
}
