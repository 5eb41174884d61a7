//! DeleteGroups: an empty group and its committed offsets are deleted (durably).
use kafka_protocol::messages::delete_groups_response::DeletableGroupResult;
use kafka_protocol::messages::{DeleteGroupsRequest, DeleteGroupsResponse};

use super::groups::on_coordinator;
use crate::coordinator::{GroupAnswer, GroupCall};
use crate::kafka::errors::optional_group_error_code;
use crate::kafka::registry::RequestContext;

pub async fn handle(
    context: &RequestContext,
    request: DeleteGroupsRequest,
    _version: i16,
) -> Option<DeleteGroupsResponse> {
    let mut results = Vec::with_capacity(request.groups_names.len());
    for group_id in request.groups_names {
        let id = group_id.0.to_string();
        let GroupAnswer::Delete(mut answers) =
            on_coordinator(context, &id, GroupCall::Delete { groups: vec![id.clone()] }).await
        else {
            unreachable!("Delete answers with Delete");
        };
        let error = answers.pop().and_then(|(_, result)| result.err());
        results.push(
            DeletableGroupResult::default().with_group_id(group_id).with_error_code(optional_group_error_code(error)),
        );
    }
    Some(DeleteGroupsResponse::default().with_results(results))
}
