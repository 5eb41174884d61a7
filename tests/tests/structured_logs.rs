//! Story (raw protocols): an operator ships the broker's stderr to a log indexer, so they start
//! it with `--log-format json`. Every line is then one JSON object, and the events they alert
//! on come once each, with their fields: a topic created and one deleted, a consumer group
//! rebalancing and becoming stable, a Redis stream entry moved to its dead-letter stream, and,
//! after a crash that left garbage at the end of a segment, the partition's recovery with the
//! batches it checked and the bytes it cut.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{Seek, SeekFrom, Write};
use std::net::TcpStream;
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::incremental_alter_configs_request::{AlterConfigsResource, AlterableConfig};
use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::sync_group_request::SyncGroupRequestAssignment;
use kafka_protocol::messages::{
    CreateTopicsRequest, CreateTopicsResponse, DeleteTopicsRequest, DeleteTopicsResponse, GroupId,
    IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse, JoinGroupRequest, JoinGroupResponse,
    ProduceRequest, ProduceResponse, SyncGroupRequest, SyncGroupResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use serde_json::Value;
use sluice_engine::record::batch::build;
use sluice_tests::raw::{self, call};
use sluice_tests::resp;
use sluice_tests::{unique_topic, Broker};

/// Non-zero bytes written after a segment's last batch while the broker is down: a torn write.
const GARBAGE_BYTES: usize = 200;
/// Batches produced to the topic that is recovered.
const BATCHES: i64 = 3;

fn name(text: &str) -> StrBytes {
    StrBytes::from_string(text.to_string())
}

fn create_topic(stream: &mut TcpStream, topic: &str, partitions: i32) {
    let request = CreateTopicsRequest::default().with_timeout_ms(10_000).with_topics(vec![CreatableTopic::default()
        .with_name(TopicName(name(topic)))
        .with_num_partitions(partitions)
        .with_replication_factor(1)]);
    let response: CreateTopicsResponse = call(stream, &request, 5, 1);
    assert_eq!(response.topics[0].error_code, 0, "create {topic}");
}

fn delete_topic(stream: &mut TcpStream, topic: &str) {
    let request = DeleteTopicsRequest::default().with_timeout_ms(10_000).with_topic_names(vec![TopicName(name(topic))]);
    let response: DeleteTopicsResponse = call(stream, &request, 4, 2);
    assert_eq!(response.responses[0].error_code, 0, "delete {topic}");
}

fn set_topic_config(stream: &mut TcpStream, topic: &str, key: &str, value: &str) {
    let config = AlterableConfig::default().with_name(name(key)).with_config_operation(0).with_value(Some(name(value)));
    let resource = AlterConfigsResource::default()
        .with_resource_type(2)
        .with_resource_name(name(topic))
        .with_configs(vec![config]);
    let request = IncrementalAlterConfigsRequest::default().with_resources(vec![resource]);
    let response: IncrementalAlterConfigsResponse = call(stream, &request, 1, 6);
    assert_eq!(response.responses[0].error_code, 0, "alter {topic}");
}

fn batch_of(index: i64) -> Vec<u8> {
    build::batch(0, 1_000 + index, &[(b"key", format!("value {index}").as_bytes())])
}

fn produce(stream: &mut TcpStream, topic: &str, index: i64) {
    let records = batch_of(index);
    let request = ProduceRequest::default().with_acks(-1).with_timeout_ms(10_000).with_topic_data(vec![
        TopicProduceData::default().with_name(TopicName(name(topic))).with_partition_data(vec![
            PartitionProduceData::default().with_index(0).with_records(Some(Bytes::from(records))),
        ]),
    ]);
    let response: ProduceResponse = call(stream, &request, 7, 3);
    let partition = &response.responses[0].partition_responses[0];
    assert_eq!((partition.error_code, partition.base_offset), (0, index), "produce batch {index}");
}

/// One member joins (no initial delay) and, as leader, syncs: one rebalance, then Stable.
fn join_and_sync(stream: &mut TcpStream, group: &str) -> i32 {
    let join = JoinGroupRequest::default()
        .with_group_id(GroupId(name(group)))
        .with_session_timeout_ms(30_000)
        .with_rebalance_timeout_ms(30_000)
        .with_protocol_type(name("consumer"))
        .with_protocols(vec![JoinGroupRequestProtocol::default()
            .with_name(name("range"))
            .with_metadata(Bytes::from_static(b"\0\0\0\0\0\0\0\0"))]);
    let joined: JoinGroupResponse = call(stream, &join, 3, 4);
    assert_eq!(joined.error_code, 0, "join");
    assert_eq!(joined.leader, joined.member_id, "the only member leads");
    let sync = SyncGroupRequest::default()
        .with_group_id(GroupId(name(group)))
        .with_generation_id(joined.generation_id)
        .with_member_id(joined.member_id.clone())
        .with_assignments(vec![SyncGroupRequestAssignment::default()
            .with_member_id(joined.member_id.clone())
            .with_assignment(Bytes::from_static(b"\0\0\0\0\0\0"))]);
    let synced: SyncGroupResponse = call(stream, &sync, 3, 5);
    assert_eq!(synced.error_code, 0, "sync");
    joined.generation_id
}

/// MAXDELIVERIES 1: the entry's second delivery (a claim) moves it to the dead-letter stream.
fn dead_letter_one_entry(broker: &Broker, stream: &str, dead_letter: &str) -> String {
    let mut reader = resp::connect(&broker.resp_addr());
    let create = ["XGROUP", "CREATE", stream, "g", "$", "MKSTREAM", "MAXDELIVERIES", "1", "DEADLETTER", dead_letter];
    resp::command(&mut reader, &create);
    let id = resp::command(&mut reader, &["XADD", stream, "*", "job", "poison"]);
    let delivered = resp::command(&mut reader, &["XREADGROUP", "GROUP", "g", "alice", "STREAMS", stream, ">"]);
    assert!(delivered.contains(&id), "first delivery: {delivered}");
    assert_eq!(
        resp::command(&mut reader, &["XCLAIM", stream, "g", "bob", "0", &id]),
        "[]",
        "the second delivery dead-letters"
    );
    assert!(resp::command(&mut reader, &["XRANGE", dead_letter, "-", "+"]).contains("poison"), "the entry moved");
    id
}

/// Every line the broker wrote, parsed; panics on a line that is not a JSON object with the
/// standard keys.
fn events(stderr: &str) -> Vec<Value> {
    let lines: Vec<&str> = stderr.lines().filter(|line| !line.trim().is_empty()).collect();
    assert!(!lines.is_empty(), "the broker logged nothing");
    lines
        .into_iter()
        .map(|line| {
            let event: Value = serde_json::from_str(line).unwrap_or_else(|error| panic!("not JSON ({error}): {line}"));
            for key in ["timestamp", "level", "target", "message"] {
                assert!(event.get(key).is_some_and(Value::is_string), "no string `{key}` in {line}");
            }
            event
        })
        .collect()
}

/// The info events with `message` whose `field` is `value`.
fn matching<'a>(events: &'a [Value], message: &str, field: &str, value: &str) -> Vec<&'a Value> {
    events
        .iter()
        .filter(|event| event["level"] == "INFO" && event["message"] == message && event[field] == value)
        .collect()
}

fn only<'a>(found: Vec<&'a Value>, what: &str, events: &[Value]) -> &'a Value {
    assert_eq!(found.len(), 1, "exactly one line for {what}, got {found:?}\nall events: {events:#?}");
    found[0]
}

#[test]
fn json_logs_carry_one_event_per_topic_change_rebalance_dead_letter_and_recovery() {
    let mut broker =
        Broker::builder().args(["--log-format", "json", "--group-initial-rebalance-delay-ms", "0"]).start();
    let (kept, dropped, group) = (unique_topic("logs-kept"), unique_topic("logs-dropped"), unique_topic("logs-group"));
    let (stream, dead_letter) = (unique_topic("logs-jobs"), unique_topic("logs-graveyard"));
    let mut kafka = raw::connect(&broker.bootstrap());
    create_topic(&mut kafka, &kept, 1);
    create_topic(&mut kafka, &dropped, 3);
    for index in 0..BATCHES {
        produce(&mut kafka, &kept, index);
    }
    let generation = join_and_sync(&mut kafka, &group);
    let http = broker.http_addr().parse().unwrap();
    let scraped = sluice_tests::http_get(&http, "/metrics", Duration::from_secs(10)).unwrap();
    assert_eq!(scraped.status, 200);
    let metrics = scraped.body;
    for line in [
        format!("sluice_consumer_group_members{{group=\"{group}\"}} 1"),
        format!("sluice_consumer_group_generation{{group=\"{group}\"}} {generation}"),
        format!("sluice_consumer_group_state{{group=\"{group}\",state=\"Stable\"}} 1"),
    ] {
        assert!(metrics.lines().any(|sample| sample == line), "/metrics should have `{line}`:\n{metrics}");
    }
    let dead_id = dead_letter_one_entry(&broker, &stream, &dead_letter);
    delete_topic(&mut kafka, &dropped);
    set_topic_config(&mut kafka, &kept, "retention.ms", "3600000");

    // Each line is written before the response that follows it is sent.
    let first = events(&broker.stderr_of_start(1));
    let created = only(matching(&first, "topic created", "topic", &dropped), "creating it", &first);
    assert_eq!(created["partitions"], 3);
    only(matching(&first, "topic created", "topic", &kept), "creating the kept topic", &first);
    only(matching(&first, "topic deleted", "topic", &dropped), "deleting it", &first);
    assert!(matching(&first, "topic deleted", "topic", &kept).is_empty(), "the kept topic stays");
    let altered = only(matching(&first, "topic configs changed", "topic", &kept), "altering its configs", &first);
    assert_eq!(altered["overrides"], "retention.ms=3600000");
    let started = only(matching(&first, "consumer group rebalance started", "group", &group), "the rebalance", &first);
    assert_eq!(
        (started["generation"].as_i64(), started["members"].as_u64()),
        (Some(i64::from(generation) - 1), Some(1))
    );
    assert_eq!(started["previous_state"], "Empty");
    let stable = only(matching(&first, "consumer group stable", "group", &group), "the group stable", &first);
    assert_eq!((stable["generation"].as_i64(), stable["members"].as_u64()), (Some(i64::from(generation)), Some(1)));
    let moved = only(matching(&first, "entry dead-lettered", "stream", &stream), "the dead letter", &first);
    assert_eq!(
        (&moved["group"], &moved["id"], &moved["dead_letter"]),
        (&"g".into(), &dead_id.into(), &dead_letter.into())
    );
    assert_eq!(moved["deliveries"], 1);

    // A crash that tore the next batch: garbage right after the last whole batch (the file may
    // go on with the zero padding of its last block; recovery cuts all of it).
    broker.kill9();
    let partition_dir = broker.data_dir().join("topics").join(&kept).join("0");
    let segment_path = partition_dir.join(format!("{:020}.log", 0));
    let valid_bytes: usize = (0..BATCHES).map(|index| batch_of(index).len()).sum();
    let mut segment = std::fs::OpenOptions::new().write(true).open(&segment_path).unwrap();
    segment.seek(SeekFrom::Start(valid_bytes as u64)).unwrap();
    segment.write_all(&[0x5a; GARBAGE_BYTES]).unwrap();
    drop(segment);
    let file_bytes = std::fs::metadata(&segment_path).unwrap().len();
    broker.start();

    let second = events(&broker.stderr_of_start(2));
    let dir = partition_dir.display().to_string();
    let recovered = only(matching(&second, "partition opened", "dir", &dir), "the recovery", &second);
    assert_eq!(recovered["next_offset"], BATCHES);
    assert_eq!(recovered["segments"], 1);
    assert_eq!(recovered["scanned_batches"], BATCHES, "every batch after the last index entry was checked");
    assert_eq!(recovered["size_bytes"], valid_bytes, "the three batches stay");
    assert_eq!(recovered["truncated_bytes"], file_bytes - valid_bytes as u64, "the torn tail was cut");
    assert_eq!(std::fs::metadata(&segment_path).unwrap().len(), valid_bytes as u64);
    assert!(matching(&second, "topic created", "topic", &kept).is_empty(), "a restart creates no topic");
}
