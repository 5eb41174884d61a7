//! OffsetDelete: forgets a group's committed offsets for partitions it no longer subscribes to
//! (durably, through the group's offsets partition).
use kafka_protocol::messages::offset_delete_response::{OffsetDeleteResponsePartition, OffsetDeleteResponseTopic};
use kafka_protocol::messages::{OffsetDeleteRequest, OffsetDeleteResponse};

use super::groups::on_coordinator;
use crate::coordinator::{CommitError, GroupAnswer, GroupCall};
use crate::kafka::errors::{group_error_code, optional_group_error_code, KafkaError};
use crate::kafka::registry::RequestContext;
use crate::runtime::mesh::ShardError;

pub async fn handle(
    context: &RequestContext,
    request: OffsetDeleteRequest,
    _version: i16,
) -> Option<OffsetDeleteResponse> {
    let group = request.group_id.0.to_string();
    let partitions: Vec<(String, i32)> = request
        .topics
        .iter()
        .flat_map(|topic| {
            topic.partitions.iter().map(move |partition| (topic.name.0.to_string(), partition.partition_index))
        })
        .collect();
    let GroupAnswer::DeleteOffsets(answer) =
        on_coordinator(context, &group, GroupCall::DeleteOffsets { group: group.clone(), partitions }).await
    else {
        unreachable!("DeleteOffsets answers with DeleteOffsets");
    };
    let results = match answer {
        Ok(results) => results,
        Err(CommitError::Group(error)) => {
            return Some(OffsetDeleteResponse::default().with_error_code(group_error_code(error)))
        }
        Err(CommitError::Storage(error)) => {
            let code = KafkaError::from(&ShardError::Partition(error)).code;
            return Some(OffsetDeleteResponse::default().with_error_code(code));
        }
    };
    let mut results = results.into_iter();
    let topics = request
        .topics
        .into_iter()
        .map(|topic| {
            let partitions = topic
                .partitions
                .iter()
                .map(|partition| {
                    let error = results.next().and_then(Result::err);
                    OffsetDeleteResponsePartition::default()
                        .with_partition_index(partition.partition_index)
                        .with_error_code(optional_group_error_code(error))
                })
                .collect();
            OffsetDeleteResponseTopic::default().with_name(topic.name).with_partitions(partitions)
        })
        .collect();
    Some(OffsetDeleteResponse::default().with_topics(topics))
}
