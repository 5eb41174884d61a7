//! OffsetFetch (v1-7, one group): committed offsets, -1 where none.
use kafka_protocol::messages::offset_fetch_response::{OffsetFetchResponsePartition, OffsetFetchResponseTopic};
use kafka_protocol::messages::{OffsetFetchRequest, OffsetFetchResponse};

use super::groups::on_coordinator;
use super::{str_bytes, topic_name};
use crate::coordinator::{GroupAnswer, GroupCall};
use crate::runtime::ShardRef;

pub async fn handle(shard: &ShardRef, request: OffsetFetchRequest, _version: i16) -> Option<OffsetFetchResponse> {
    let group = request.group_id.0.to_string();
    let partitions = request.topics.as_ref().map(|topics| {
        topics
            .iter()
            .flat_map(|topic| {
                topic.partition_indexes.iter().map(move |partition| (topic.name.0.to_string(), *partition))
            })
            .collect()
    });
    let GroupAnswer::Fetch(found) =
        on_coordinator(shard, &group, GroupCall::Fetch { group: group.clone(), partitions }).await
    else {
        unreachable!("Fetch answers with Fetch");
    };
    // Group the answers by topic, keeping the order they came in.
    let mut topics: Vec<OffsetFetchResponseTopic> = Vec::new();
    for ((topic, partition), committed) in found {
        let entry = OffsetFetchResponsePartition::default()
            .with_partition_index(partition)
            .with_committed_offset(committed.as_ref().map_or(-1, |committed| committed.offset))
            .with_committed_leader_epoch(committed.as_ref().map_or(-1, |committed| committed.leader_epoch))
            .with_metadata(Some(str_bytes(committed.as_ref().map_or("", |committed| committed.metadata.as_str()))));
        match topics.iter_mut().find(|existing| existing.name.0.as_str() == topic) {
            Some(existing) => existing.partitions.push(entry),
            None => topics
                .push(OffsetFetchResponseTopic::default().with_name(topic_name(&topic)).with_partitions(vec![entry])),
        }
    }
    Some(OffsetFetchResponse::default().with_topics(topics))
}
