//! Story: an operator removes a group's committed offsets for a partition the group no longer
//! reads (OffsetDelete, raw protocol: the Python clients have no call for it). The other
//! partitions' offsets stay; an unknown group gets GROUP_ID_NOT_FOUND.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use kafka_protocol::messages::offset_commit_request::{OffsetCommitRequestPartition, OffsetCommitRequestTopic};
use kafka_protocol::messages::offset_delete_request::{OffsetDeleteRequestPartition, OffsetDeleteRequestTopic};
use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestTopic;
use kafka_protocol::messages::{GroupId, OffsetCommitRequest, OffsetDeleteRequest, OffsetFetchRequest, TopicName};
use kafka_protocol::protocol::StrBytes;
use sluice_tests::raw::{self, call};
use sluice_tests::Broker;

fn name(text: &str) -> StrBytes {
    StrBytes::from_string(text.to_string())
}

#[test]
fn offset_delete_forgets_only_the_named_partitions() {
    let broker = Broker::builder().shards(2).start();
    let mut stream = raw::connect(&broker.bootstrap());
    let (group, topic) = ("offset-delete-group", "offset-delete-topic");
    // A "simple" commit (no member, generation -1), as tools that manage offsets do.
    let commit = OffsetCommitRequest::default()
        .with_group_id(GroupId(name(group)))
        .with_generation_id_or_member_epoch(-1)
        .with_topics(vec![OffsetCommitRequestTopic::default().with_name(TopicName(name(topic))).with_partitions(
            (0..2)
                .map(|p| {
                    OffsetCommitRequestPartition::default()
                        .with_partition_index(p)
                        .with_committed_offset(40 + i64::from(p))
                })
                .collect(),
        )]);
    let committed = call(&mut stream, &commit, 7, 1);
    assert!(committed.topics[0].partitions.iter().all(|p| p.error_code == 0), "{committed:?}");

    let delete = |group: &str| {
        OffsetDeleteRequest::default().with_group_id(GroupId(name(group))).with_topics(vec![
            OffsetDeleteRequestTopic::default()
                .with_name(TopicName(name(topic)))
                .with_partitions(vec![OffsetDeleteRequestPartition::default().with_partition_index(0)]),
        ])
    };
    let deleted = call(&mut stream, &delete(group), 0, 2);
    assert_eq!(deleted.error_code, 0);
    assert_eq!(deleted.topics[0].partitions[0].error_code, 0);

    let fetch = OffsetFetchRequest::default().with_group_id(GroupId(name(group))).with_topics(Some(vec![
        OffsetFetchRequestTopic::default().with_name(TopicName(name(topic))).with_partition_indexes(vec![0, 1]),
    ]));
    let fetched = call(&mut stream, &fetch, 7, 3);
    let offsets: Vec<i64> = fetched.topics[0].partitions.iter().map(|p| p.committed_offset).collect();
    assert_eq!(offsets, vec![-1, 41], "partition 0 forgotten, partition 1 kept");

    let unknown = call(&mut stream, &delete("no-such-group"), 0, 4);
    assert_eq!(unknown.error_code, 69, "GROUP_ID_NOT_FOUND");
}
