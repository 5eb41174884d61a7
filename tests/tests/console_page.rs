//! Story (raw protocols, a real browser): an operator opens `http://<http-listen>/` in a browser
//! on a machine without internet. A producer wrote to a topic, a consumer group committed part
//! of it, a Redis worker holds one job and another job went to the dead-letter stream. The
//! console's JSON says exactly that, and headless Chromium renders the page (no external
//! resource to fetch), draws its charts from two or more readings, shows the topic, the group
//! and the stream, and records no script error.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::offset_commit_request::{OffsetCommitRequestPartition, OffsetCommitRequestTopic};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{CreateTopicsRequest, GroupId, OffsetCommitRequest, ProduceRequest, TopicName};
use kafka_protocol::protocol::StrBytes;
use serde_json::Value;
use sluice_engine::record::batch::build;
use sluice_tests::raw::{self, call};
use sluice_tests::{require_chromium, resp, unique_topic, Broker, Running};

/// Chromium gets this long per run (it usually needs 2-4 s).
const CHROMIUM_TIMEOUT: Duration = Duration::from_secs(90);
/// Virtual time the page runs for before the screenshot or the DOM dump: two refreshes at least.
const VIRTUAL_TIME_BUDGET_MS: u32 = 5_000;
const WINDOW_WIDTH: u32 = 1200;
const WINDOW_HEIGHT: u32 = 900;
const PNG_SIGNATURE: [u8; 8] = [0x89, b'P', b'N', b'G', b'\r', b'\n', 0x1a, b'\n'];
const BATCHES: i64 = 4;
const RECORDS_PER_BATCH: i64 = 5;
const COMMITTED_OFFSET: i64 = 6;

fn name(text: &str) -> StrBytes {
    StrBytes::from_string(text.to_string())
}

/// `GET path`: (status code, Content-Type, body).
fn http_get(address: &str, path: &str) -> (u16, String, String) {
    let address = address.parse().expect("HTTP listen address");
    let response = sluice_tests::http_get(&address, path, raw::IO_TIMEOUT).expect("an HTTP response");
    let content_type = response.header("Content-Type").unwrap_or_default().to_string();
    (response.status, content_type, response.body)
}

/// A topic with `BATCHES` batches of `RECORDS_PER_BATCH` records, and a group that committed
/// `COMMITTED_OFFSET` of them.
fn kafka_traffic(broker: &Broker, topic: &str, group: &str) {
    let mut kafka = raw::connect(&broker.bootstrap());
    let create = CreateTopicsRequest::default().with_timeout_ms(10_000).with_topics(vec![CreatableTopic::default()
        .with_name(TopicName(name(topic)))
        .with_num_partitions(1)
        .with_replication_factor(1)]);
    assert_eq!(call(&mut kafka, &create, 5, 1).topics[0].error_code, 0);
    for index in 0..BATCHES {
        let records: Vec<(&[u8], &[u8])> = (0..RECORDS_PER_BATCH).map(|_| (&b"key"[..], &b"value"[..])).collect();
        let request = ProduceRequest::default().with_acks(-1).with_timeout_ms(10_000).with_topic_data(vec![
            TopicProduceData::default().with_name(TopicName(name(topic))).with_partition_data(vec![
                PartitionProduceData::default().with_index(0).with_records(Some(Bytes::from(build::batch(
                    0,
                    1_000 + index,
                    &records,
                )))),
            ]),
        ]);
        let response = call(&mut kafka, &request, 7, 2 + index as i32);
        assert_eq!(response.responses[0].partition_responses[0].error_code, 0, "{response:?}");
    }
    let commit = OffsetCommitRequest::default()
        .with_group_id(GroupId(name(group)))
        .with_generation_id_or_member_epoch(-1)
        .with_topics(vec![OffsetCommitRequestTopic::default().with_name(TopicName(name(topic))).with_partitions(
            vec![OffsetCommitRequestPartition::default()
                .with_partition_index(0)
                .with_committed_offset(COMMITTED_OFFSET)],
        )]);
    let committed = call(&mut kafka, &commit, 7, 20);
    assert_eq!(committed.topics[0].partitions[0].error_code, 0, "{committed:?}");
}

/// Two jobs for one worker: one pending, one dead-lettered at its second delivery (a claim).
fn resp_traffic(broker: &Broker, stream: &str) {
    let mut connection = resp::connect(&broker.resp_addr());
    resp::command(&mut connection, &["XGROUP", "CREATE", stream, "workers", "$", "MKSTREAM", "MAXDELIVERIES", "1"]);
    let poison = resp::command(&mut connection, &["XADD", stream, "*", "job", "poison"]);
    resp::command(&mut connection, &["XREADGROUP", "GROUP", "workers", "alice", "STREAMS", stream, ">"]);
    assert_eq!(resp::command(&mut connection, &["XCLAIM", stream, "workers", "alice", "0", &poison]), "[]");
    let kept = resp::command(&mut connection, &["XADD", stream, "*", "job", "resize"]);
    let read = resp::command(&mut connection, &["XREADGROUP", "GROUP", "workers", "alice", "STREAMS", stream, ">"]);
    assert!(read.contains(&kept), "{read}");
}

fn check_overview(broker: &Broker, topic: &str, group: &str, stream: &str) {
    let (status, content_type, body) = http_get(&broker.http_addr(), "/api/overview");
    assert_eq!((status, content_type.as_str()), (200, "application/json"), "{body}");
    let overview: Value = serde_json::from_str(&body).expect("the overview is JSON");
    let end_offset = BATCHES * RECORDS_PER_BATCH;
    let topics = overview["topics"].as_array().unwrap();
    let ours = topics.iter().find(|entry| entry["name"] == topic).expect("our topic is listed");
    assert_eq!(
        (&ours["partitions"][0]["log_start_offset"], &ours["partitions"][0]["end_offset"]),
        (&0.into(), &end_offset.into())
    );
    assert!(ours["partitions"][0]["size_bytes"].as_u64().unwrap() > 0);
    let groups = overview["consumer_groups"].as_array().unwrap();
    let readers = groups.iter().find(|entry| entry["group"] == group).expect("our group is listed");
    assert_eq!(readers["lag"], end_offset - COMMITTED_OFFSET);
    assert_eq!(readers["offsets"][0]["committed_offset"], COMMITTED_OFFSET);
    let workers = overview["stream_groups"].as_array().unwrap();
    let workers = workers.iter().find(|entry| entry["stream"] == stream).expect("our stream group is listed");
    assert_eq!((&workers["pending"], &workers["consumers"]), (&1.into(), &1.into()), "{workers}");
    assert_eq!(workers["dead_letter"], format!("{stream}:dlq"));
    assert_eq!(workers["dead_letter_entries"], 1);
    assert_eq!(overview["traffic"]["kafka"]["records_in"], end_offset);
    assert_eq!(overview["traffic"]["resp"]["records_in"], 2);
    assert_eq!(overview["produce_latency"]["kafka"]["count"], BATCHES);
}

/// Runs headless Chromium on `url` with `mode` (`--screenshot=...` or `--dump-dom`), in a
/// profile directory of its own; returns (stdout, stderr).
fn chromium(profile: &Path, mode: &str, url: &str) -> (String, String) {
    let mut command = Command::new("chromium");
    command.args([
        "--headless",
        "--disable-gpu",
        "--no-sandbox",
        "--no-first-run",
        "--enable-logging=stderr",
        "--v=0",
        &format!("--user-data-dir={}", profile.display()),
        &format!("--window-size={WINDOW_WIDTH},{WINDOW_HEIGHT}"),
        &format!("--virtual-time-budget={VIRTUAL_TIME_BUDGET_MS}"),
        mode,
        url,
    ]);
    let finished = Running::spawn(command, None).wait(CHROMIUM_TIMEOUT);
    assert!(finished.succeeded(), "{}", finished.failure_report());
    (finished.stdout, finished.stderr)
}

/// Lines in which Chromium reports a script error of the page.
fn script_errors(stderr: &str) -> Vec<&str> {
    stderr.lines().filter(|line| line.contains("Uncaught") || line.contains(":CONSOLE(")).collect()
}

/// The text inside the element with `id` (the first `>` after it up to its closing tag).
fn element_text<'a>(dom: &'a str, id: &str, tag: &str) -> &'a str {
    let start = dom.find(&format!("id=\"{id}\"")).unwrap_or_else(|| panic!("no #{id} in the DOM:\n{dom}"));
    let after = &dom[start..];
    let open_end = after.find('>').unwrap() + 1;
    let close = after.find(&format!("</{tag}>")).unwrap();
    &after[open_end..close]
}

#[test]
fn the_console_shows_topics_groups_and_streams_and_draws_without_errors() {
    require_chromium!();
    let broker = Broker::builder().shards(2).start();
    let (topic, group, stream) =
        (unique_topic("console-orders"), unique_topic("console-billing"), unique_topic("console-jobs"));
    kafka_traffic(&broker, &topic, &group);
    resp_traffic(&broker, &stream);
    check_overview(&broker, &topic, &group, &stream);
    let (status, content_type, page) = http_get(&broker.http_addr(), "/");
    assert_eq!((status, content_type.as_str()), (200, "text/html; charset=utf-8"));
    assert!(page.contains("Sluice console"));

    let url = format!("http://{}/", broker.http_addr());
    let browser = tempfile::tempdir().unwrap();
    let screenshot = browser.path().join("console.png");
    let (_, stderr) =
        chromium(&browser.path().join("profile-shot"), &format!("--screenshot={}", screenshot.display()), &url);
    let png =
        std::fs::read(&screenshot).unwrap_or_else(|error| panic!("no screenshot ({error}); chromium said:\n{stderr}"));
    assert_eq!(png[..8], PNG_SIGNATURE, "a PNG file");
    assert_eq!(&png[12..16], b"IHDR");
    let width = u32::from_be_bytes(png[16..20].try_into().unwrap());
    let height = u32::from_be_bytes(png[20..24].try_into().unwrap());
    assert_eq!((width, height), (WINDOW_WIDTH, WINDOW_HEIGHT), "the window size asked for");
    assert!(script_errors(&stderr).is_empty(), "script errors while taking the screenshot:\n{stderr}");

    let (dom, stderr) = chromium(&browser.path().join("profile-dom"), "--dump-dom", &url);
    assert!(script_errors(&stderr).is_empty(), "script errors while rendering:\n{stderr}");
    assert_eq!(element_text(&dom, "errors", "pre"), "", "the page recorded errors:\n{dom}");
    assert!(element_text(&dom, "status", "span").starts_with("updated"), "{dom}");
    let readings: u32 = element_text(&dom, "readings", "span").parse().unwrap();
    assert!(readings >= 2, "rates need two readings, the page made {readings}");
    let topics = element_text(&dom, "topics", "tbody");
    assert!(topics.contains(&format!("<td>{topic}</td>")), "the topic is listed: {topics}");
    let records = BATCHES * RECORDS_PER_BATCH;
    assert!(topics.contains(&format!("<td class=\"number\">{records}</td>")), "its end offset: {topics}");
    let groups = element_text(&dom, "consumer-groups", "tbody");
    assert!(groups.contains(&format!("<td>{group}</td>")), "{groups}");
    assert!(
        groups.contains(&format!("<td class=\"number warn\">{}</td>", records - COMMITTED_OFFSET)),
        "its lag: {groups}"
    );
    let streams = element_text(&dom, "stream-groups", "tbody");
    assert!(streams.contains(&format!("<td>{stream}</td>")) && streams.contains(&format!("<td>{stream}:dlq</td>")));
    assert!(streams.contains("<td class=\"number warn\">1</td>"), "one dead letter: {streams}");
    let lag_legend = element_text(&dom, "legend-lag", "div");
    assert!(lag_legend.contains(&format!("{group}: {}", records - COMMITTED_OFFSET)), "the lag chart: {lag_legend}");
}
