//! One file per Kafka API. A handler gets the decoded request and the shard it runs on; it
//! never touches the socket, and reaches partitions only through `scatter` (owner routing).
pub mod acls;
pub mod alter_configs;
pub mod api_versions;
pub mod create_partitions;
pub mod create_topics;
pub mod delete_groups;
pub use acls::{create as create_acls, delete as delete_acls, describe as describe_acls};
pub mod delete_records;
pub mod delete_topics;
pub mod describe_cluster;
pub mod describe_configs;
pub mod describe_groups;
pub mod describe_log_dirs;
pub mod fetch;
pub mod find_coordinator;
pub mod groups;
pub mod heartbeat;
pub mod incremental_alter_configs;
pub mod init_producer_id;
pub mod join_group;
pub mod leave_group;
pub mod list_groups;
pub mod list_offsets;
pub mod metadata;
pub mod offset_commit;
pub mod offset_delete;
pub mod offset_fetch;
pub mod produce;
pub mod sync_group;

use std::collections::BTreeMap;

use kafka_protocol::messages::TopicName;
use kafka_protocol::protocol::StrBytes;

use crate::runtime::mesh::{ShardError, ShardRequest, ShardResponse, TopicPartition};
use crate::runtime::ShardRef;

pub fn str_bytes(text: &str) -> StrBytes {
    StrBytes::from_string(text.to_string())
}

pub fn topic_name(text: &str) -> TopicName {
    TopicName(str_bytes(text))
}

/// Per owner shard: the positions of its items in the original list, and the items.
pub type Share<T> = (usize, Vec<usize>, Vec<(TopicPartition, T)>);

/// Splits `items` by owner shard (`routing::owner`), remembering where each came from.
pub fn group_by_owner<T>(shard: &ShardRef, items: Vec<(TopicPartition, T)>) -> Vec<Share<T>> {
    let mut by_owner: BTreeMap<usize, Share<T>> = BTreeMap::new();
    for (index, item) in items.into_iter().enumerate() {
        let owner = shard.owner_of(&item.0 .0, item.0 .1);
        let entry = by_owner.entry(owner).or_insert_with(|| (owner, Vec::new(), Vec::new()));
        entry.1.push(index);
        entry.2.push(item);
    }
    by_owner.into_values().collect()
}

/// Puts each owner's answers back in the order of the original items.
pub fn gather<R>(
    count: usize,
    positions: Vec<Vec<usize>>,
    answers: Vec<Vec<Result<R, ShardError>>>,
) -> Vec<Result<R, ShardError>> {
    let mut results: Vec<Option<Result<R, ShardError>>> = (0..count).map(|_| None).collect();
    for (indexes, answer) in positions.into_iter().zip(answers) {
        assert_eq!(answer.len(), indexes.len(), "a shard answered a different number of items");
        for (index, result) in indexes.into_iter().zip(answer) {
            results[index] = Some(result);
        }
    }
    results.into_iter().map(|result| result.unwrap_or(Err(ShardError::UnknownTopicOrPartition))).collect()
}

/// Sends each owner shard its share of `items` in one request (concurrently) and returns the
/// results in the order of `items`.
pub async fn scatter<T, R>(
    shard: &ShardRef,
    items: Vec<(TopicPartition, T)>,
    request: impl Fn(Vec<(TopicPartition, T)>) -> ShardRequest,
    response: impl Fn(ShardResponse) -> Option<Vec<Result<R, ShardError>>>,
) -> Vec<Result<R, ShardError>> {
    let count = items.len();
    let shares = group_by_owner(shard, items);
    let mut positions = Vec::with_capacity(shares.len());
    let mut calls = Vec::with_capacity(shares.len());
    for (owner, indexes, share) in shares {
        positions.push(indexes);
        calls.push(shard.call(owner, request(share)));
    }
    let answers = futures::future::join_all(calls)
        .await
        .into_iter()
        .map(|answer| response(answer).unwrap_or_else(|| unreachable!("a shard answered with the wrong response kind")))
        .collect();
    gather(count, positions, answers)
}
