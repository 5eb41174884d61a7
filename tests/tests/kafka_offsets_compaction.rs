//! Story: a group commits offsets thousands of times. The internal offsets log is compacted by
//! snapshot (the current offsets, then everything older deleted), so start-up replays little,
//! and after a kill -9 the group's offsets are exactly the last ones committed.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use kafka_protocol::messages::offset_commit_request::{OffsetCommitRequestPartition, OffsetCommitRequestTopic};
use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestTopic;
use kafka_protocol::messages::{GroupId, OffsetCommitRequest, OffsetFetchRequest, TopicName};
use kafka_protocol::protocol::StrBytes;
use sluice_tests::raw::{self, call};
use sluice_tests::Broker;

const COMMITS: i64 = 2_000;
const PARTITIONS: i32 = 4;

fn name(text: &str) -> StrBytes {
    StrBytes::from_string(text.to_string())
}

#[test]
fn the_offsets_log_is_compacted_and_the_last_commits_survive_kill_9() {
    let mut broker = Broker::builder().shards(2).arg("--offsets-compaction-bytes").arg("65536").start();
    let (group, topic) = ("compacted-group", "compacted-topic");
    let mut stream = raw::connect(&broker.bootstrap());
    for commit in 0..COMMITS {
        let partition = (commit % i64::from(PARTITIONS)) as i32;
        let request = OffsetCommitRequest::default()
            .with_group_id(GroupId(name(group)))
            .with_generation_id_or_member_epoch(-1)
            .with_topics(vec![OffsetCommitRequestTopic::default().with_name(TopicName(name(topic))).with_partitions(
                vec![OffsetCommitRequestPartition::default()
                    .with_partition_index(partition)
                    .with_committed_offset(commit)],
            )]);
        let response = call(&mut stream, &request, 7, commit as i32);
        assert_eq!(response.topics[0].partitions[0].error_code, 0, "commit {commit}");
    }
    drop(stream);

    let internal = broker.data_dir().join("internal").join("__consumer_offsets");
    let moved_starts: Vec<i64> = std::fs::read_dir(&internal)
        .unwrap()
        .filter_map(|entry| std::fs::read_to_string(entry.unwrap().path().join("log-start-offset")).ok())
        .map(|text| text.trim().parse().unwrap())
        .collect();
    assert!(moved_starts.iter().any(|start| *start > 0), "no offsets partition was compacted: {moved_starts:?}");

    broker.restart();
    let mut stream = raw::connect(&broker.bootstrap());
    let fetch = OffsetFetchRequest::default().with_group_id(GroupId(name(group))).with_topics(Some(vec![
        OffsetFetchRequestTopic::default()
            .with_name(TopicName(name(topic)))
            .with_partition_indexes((0..PARTITIONS).collect()),
    ]));
    let fetched = call(&mut stream, &fetch, 7, 1);
    let offsets: Vec<i64> = fetched.topics[0].partitions.iter().map(|p| p.committed_offset).collect();
    let expected: Vec<i64> = (0..i64::from(PARTITIONS)).map(|p| COMMITS - i64::from(PARTITIONS) + p).collect();
    assert_eq!(offsets, expected, "the last commit of each partition, replayed from the snapshot and what followed");
}
