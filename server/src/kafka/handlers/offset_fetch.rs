//! OffsetFetch: committed offsets, -1 where none. v1-7 ask for one group; v8 for several,
//! each answered by its own coordinator context.
use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponseGroup, OffsetFetchResponsePartition, OffsetFetchResponsePartitions, OffsetFetchResponseTopic,
    OffsetFetchResponseTopics,
};
use kafka_protocol::messages::{OffsetFetchRequest, OffsetFetchResponse};
use sluice_engine::group::offsets::CommittedOffset;

use super::groups::on_coordinator;
use super::{str_bytes, topic_name};
use crate::coordinator::{GroupAnswer, GroupCall};
use crate::kafka::registry::RequestContext;

/// Per topic, in the order the coordinator answered: (partition, committed offset if any).
type ByTopic = Vec<(String, Vec<(i32, Option<CommittedOffset>)>)>;

pub async fn handle(
    context: &RequestContext,
    request: OffsetFetchRequest,
    version: i16,
) -> Option<OffsetFetchResponse> {
    if version < 8 {
        let partitions = request.topics.as_ref().map(|topics| {
            topics
                .iter()
                .flat_map(|topic| topic.partition_indexes.iter().map(move |p| (topic.name.0.to_string(), *p)))
                .collect()
        });
        let topics = fetch(context, request.group_id.0.as_str(), partitions).await;
        let topics = respond(topics, |partition, (offset, epoch, metadata)| {
            OffsetFetchResponsePartition::default()
                .with_partition_index(partition)
                .with_committed_offset(offset)
                .with_committed_leader_epoch(epoch)
                .with_metadata(Some(str_bytes(metadata)))
        })
        .map(|(topic, partitions)| OffsetFetchResponseTopic::default().with_name(topic).with_partitions(partitions))
        .collect();
        return Some(OffsetFetchResponse::default().with_topics(topics));
    }
    let mut groups = Vec::with_capacity(request.groups.len());
    for wanted in request.groups {
        let partitions = wanted.topics.as_ref().map(|topics| {
            topics
                .iter()
                .flat_map(|topic| topic.partition_indexes.iter().map(move |p| (topic.name.0.to_string(), *p)))
                .collect()
        });
        let topics = fetch(context, wanted.group_id.0.as_str(), partitions).await;
        let topics = respond(topics, |partition, (offset, epoch, metadata)| {
            OffsetFetchResponsePartitions::default()
                .with_partition_index(partition)
                .with_committed_offset(offset)
                .with_committed_leader_epoch(epoch)
                .with_metadata(Some(str_bytes(metadata)))
        })
        .map(|(topic, partitions)| OffsetFetchResponseTopics::default().with_name(topic).with_partitions(partitions))
        .collect();
        groups.push(OffsetFetchResponseGroup::default().with_group_id(wanted.group_id).with_topics(topics));
    }
    Some(OffsetFetchResponse::default().with_groups(groups))
}

/// Builds each topic's partition entries with `entry` (v1-7 and v8 have distinct types).
fn respond<P>(
    topics: ByTopic,
    entry: impl Fn(i32, (i64, i32, &str)) -> P,
) -> impl Iterator<Item = (kafka_protocol::messages::TopicName, Vec<P>)> {
    topics.into_iter().map(move |(topic, partitions)| {
        let entries = partitions.iter().map(|(partition, committed)| entry(*partition, fields(committed))).collect();
        (topic_name(&topic), entries)
    })
}

/// (offset, leader epoch, metadata) as the response carries them: -1, -1, "" when none.
fn fields(committed: &Option<CommittedOffset>) -> (i64, i32, &str) {
    committed.as_ref().map_or((-1, -1, ""), |c| (c.offset, c.leader_epoch, c.metadata.as_str()))
}

/// Asks the group's coordinator and groups the answers by topic, keeping their order.
async fn fetch(context: &RequestContext, group: &str, partitions: Option<Vec<(String, i32)>>) -> ByTopic {
    let call = GroupCall::Fetch { group: group.to_string(), partitions };
    let GroupAnswer::Fetch(found) = on_coordinator(context, group, call).await else {
        unreachable!("Fetch answers with Fetch");
    };
    let mut topics: ByTopic = Vec::new();
    for ((topic, partition), committed) in found {
        match topics.iter_mut().find(|(existing, _)| *existing == topic) {
            Some((_, partitions)) => partitions.push((partition, committed)),
            None => topics.push((topic, vec![(partition, committed)])),
        }
    }
    topics
}
