//! OffsetCommit: validated against the group's generation, appended to the group's offsets
//! partition and fdatasynced before the answer.
use kafka_protocol::messages::offset_commit_response::{OffsetCommitResponsePartition, OffsetCommitResponseTopic};
use kafka_protocol::messages::{OffsetCommitRequest, OffsetCommitResponse};
use sluice_engine::group::offsets::{CommittedOffset, COMMIT_METADATA_BYTES_MAX};

use super::groups::{on_coordinator, optional_text, text};
use crate::coordinator::{CommitError, GroupAnswer, GroupCall};
use crate::kafka::errors::{self, group_error_code, KafkaError};
use crate::kafka::registry::RequestContext;
use crate::runtime::mesh::ShardError;

const OFFSET_METADATA_TOO_LARGE: i16 = kafka_protocol::ResponseError::OffsetMetadataTooLarge.code();

pub async fn handle(
    context: &RequestContext,
    request: OffsetCommitRequest,
    _version: i16,
) -> Option<OffsetCommitResponse> {
    let group = request.group_id.0.to_string();
    let now_ms = crate::runtime::shard::now_ms();
    let too_large = |metadata: &Option<kafka_protocol::protocol::StrBytes>| {
        metadata.as_ref().is_some_and(|metadata| metadata.len() > COMMIT_METADATA_BYTES_MAX)
    };
    let offsets: Vec<(String, i32, CommittedOffset)> = request
        .topics
        .iter()
        .flat_map(|topic| {
            topic.partitions.iter().filter(|partition| !too_large(&partition.committed_metadata)).map(|partition| {
                let committed = CommittedOffset {
                    offset: partition.committed_offset,
                    leader_epoch: partition.committed_leader_epoch,
                    commit_timestamp_ms: now_ms,
                    metadata: partition.committed_metadata.as_ref().map(|m| m.to_string()).unwrap_or_default(),
                };
                (topic.name.0.to_string(), partition.partition_index, committed)
            })
        })
        .collect();
    let call = GroupCall::Commit {
        group: group.clone(),
        member_id: text(&request.member_id),
        instance_id: optional_text(&request.group_instance_id),
        generation_id: request.generation_id_or_member_epoch,
        offsets,
    };
    let GroupAnswer::Commit(result) = on_coordinator(context, &group, call).await else {
        unreachable!("Commit answers with Commit");
    };
    let code = match result {
        Ok(()) => errors::NONE,
        Err(CommitError::Group(error)) => group_error_code(error),
        Err(CommitError::Storage(error)) => KafkaError::from(&ShardError::Partition(error)).code,
    };
    let topics = request
        .topics
        .into_iter()
        .map(|topic| {
            let partitions = topic
                .partitions
                .iter()
                .map(|partition| {
                    let code = if too_large(&partition.committed_metadata) { OFFSET_METADATA_TOO_LARGE } else { code };
                    OffsetCommitResponsePartition::default()
                        .with_partition_index(partition.partition_index)
                        .with_error_code(code)
                })
                .collect();
            OffsetCommitResponseTopic::default().with_name(topic.name).with_partitions(partitions)
        })
        .collect();
    Some(OffsetCommitResponse::default().with_topics(topics))
}
