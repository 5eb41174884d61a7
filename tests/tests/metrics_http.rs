//! Story (raw protocols, plain HTTP): an operator points Prometheus at the broker. Once it is
//! up, `/ready` says so; after a producer wrote five records, a Redis client added two stream
//! entries and took one into a group, and a consumer fetched and committed, `/metrics` shows
//! exactly that: offsets, sizes, bytes and records in and out, lag, pending entries, request
//! latencies, fsyncs and the sizes of what was produced, in text that passes a strict format
//! check (and `promtool check metrics` when it is installed). The other stories: a group's
//! deliveries and redeliveries, and stream groups after a restart.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::offset_commit_request::{OffsetCommitRequestPartition, OffsetCommitRequestTopic};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{FetchRequest, GroupId, OffsetCommitRequest, ProduceRequest, TopicName};
use kafka_protocol::protocol::StrBytes;
use sluice_engine::record::batch::build;
use sluice_server::metrics::check::{self, Sample};
use sluice_tests::raw::{self, call};
use sluice_tests::{resp, unique_topic, Broker};

/// Bounded polling of the HTTP listener: at most this many tries, this far apart.
const READY_POLLS_MAX: usize = 250;
const POLL_PAUSE: Duration = Duration::from_millis(20);

fn name(text: &str) -> StrBytes {
    StrBytes::from_string(text.to_string())
}

/// `GET path`: (status code, body), the body as long as announced.
fn http_get(address: &str, path: &str) -> (u16, String) {
    let address = address.parse().expect("HTTP listen address");
    let response = sluice_tests::http_get(&address, path, raw::IO_TIMEOUT).expect("an HTTP response");
    let length: usize =
        response.header("Content-Length").and_then(|length| length.parse().ok()).expect("Content-Length");
    assert_eq!(response.body.len(), length, "body length as announced");
    (response.status, response.body)
}

/// One RESP command as an array of bulk strings; returns the reply's first line.
fn resp_command(reader: &mut BufReader<TcpStream>, words: &[&str]) -> String {
    let mut request = format!("*{}\r\n", words.len());
    for word in words {
        request.push_str(&format!("${}\r\n{word}\r\n", word.len()));
    }
    reader.get_mut().write_all(request.as_bytes()).unwrap();
    let mut line = String::new();
    reader.read_line(&mut line).unwrap();
    assert!(!line.starts_with('-'), "{words:?} failed: {line}");
    line
}

/// Reads the rest of a reply whose first line was already read (enough for what this test
/// sends: bulk strings and arrays of them).
fn skip_rest_of_reply(reader: &mut BufReader<TcpStream>, first_line: &str) {
    let count: i64 = first_line[1..].trim().parse().unwrap_or(0);
    match first_line.as_bytes()[0] {
        b'$' if count >= 0 => {
            let mut data = vec![0u8; count as usize + 2];
            reader.read_exact(&mut data).unwrap();
        }
        b'*' => {
            for _ in 0..count.max(0) {
                let mut line = String::new();
                reader.read_line(&mut line).unwrap();
                skip_rest_of_reply(reader, &line);
            }
        }
        _ => {}
    }
}

fn value(samples: &[Sample], metric: &str, labels: &[(&str, &str)]) -> f64 {
    check::value_of(samples, metric, labels).unwrap_or_else(|error| panic!("{error}"))
}

/// The cumulative count of histogram `family`'s bucket `le` (a power of two).
fn bucket(samples: &[Sample], family: &str, le: usize) -> f64 {
    value(samples, &format!("{family}_bucket"), &[("le", &le.to_string())])
}

/// `promtool check metrics` on the text, when promtool is installed (Debian: `prometheus`).
fn promtool_check(text: &str) {
    let Ok(mut child) = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
    else {
        eprintln!("SKIPPED promtool check: promtool is not installed (Debian package `prometheus`)");
        return;
    };
    child.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "promtool check metrics failed:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn metrics_show_what_was_written_and_read() {
    let broker = Broker::builder().shards(2).start();
    // The Kafka port accepts as soon as one shard listens; /ready waits for all of them.
    let ready = (0..READY_POLLS_MAX).any(|_| {
        let (status, body) = http_get(&broker.http_addr(), "/ready");
        assert!(matches!((status, body.as_str()), (200, "ready\n") | (503, "starting\n")), "{status} {body}");
        status == 200 || {
            std::thread::sleep(POLL_PAUSE);
            false
        }
    });
    assert!(ready, "/ready answers 200 soon after start");
    assert_eq!(http_get(&broker.http_addr(), "/health"), (200, "ok\n".to_string()));
    assert_eq!(http_get(&broker.http_addr(), "/nothing").0, 404);

    // Kafka: two batches, 3 + 2 records, acks=all.
    let topic = unique_topic("metrics");
    let mut kafka = raw::connect(&broker.bootstrap());
    let batches = [
        build::batch(0, 1_000, &[(b"k1", b"one"), (b"k2", b"two"), (b"k3", b"three")]),
        build::batch(0, 2_000, &[(b"k4", b"four"), (b"k5", b"five")]),
    ];
    let batch_bytes: usize = batches.iter().map(Vec::len).sum();
    for (correlation_id, batch) in batches.iter().enumerate() {
        let request = ProduceRequest::default().with_acks(-1).with_timeout_ms(10_000).with_topic_data(vec![
            TopicProduceData::default().with_name(TopicName(name(&topic))).with_partition_data(vec![
                PartitionProduceData::default().with_index(0).with_records(Some(Bytes::from(batch.clone()))),
            ]),
        ]);
        let response = call(&mut kafka, &request, 7, correlation_id as i32);
        assert_eq!(response.responses[0].partition_responses[0].error_code, 0, "{response:?}");
    }
    // A consumer reads everything, then commits offset 2 (a "simple" commit, no member).
    let fetch =
        FetchRequest::default().with_max_wait_ms(0).with_min_bytes(1).with_max_bytes(1 << 20).with_topics(vec![
            FetchTopic::default().with_topic(TopicName(name(&topic))).with_partitions(vec![FetchPartition::default()
                .with_partition(0)
                .with_fetch_offset(0)
                .with_partition_max_bytes(1 << 20)]),
        ]);
    let fetched = call(&mut kafka, &fetch, 11, 10);
    let records = fetched.responses[0].partitions[0].records.clone().unwrap_or_default();
    assert_eq!(records.len(), batch_bytes, "the fetch returns both batches");
    let group = "metrics-readers";
    let commit = OffsetCommitRequest::default()
        .with_group_id(GroupId(name(group)))
        .with_generation_id_or_member_epoch(-1)
        .with_topics(vec![OffsetCommitRequestTopic::default().with_name(TopicName(name(&topic))).with_partitions(
            vec![OffsetCommitRequestPartition::default().with_partition_index(0).with_committed_offset(2)],
        )]);
    let committed = call(&mut kafka, &commit, 7, 11);
    assert_eq!(committed.topics[0].partitions[0].error_code, 0, "{committed:?}");

    // Redis: two entries of two fields each, one read by a group.
    let stream = unique_topic("metrics-stream");
    let resp = TcpStream::connect(broker.resp_addr()).unwrap();
    resp.set_read_timeout(Some(raw::IO_TIMEOUT)).unwrap();
    let mut resp = BufReader::new(resp);
    let fields = ["job", "resize", "size", "10"];
    let entry_bytes: usize = fields.iter().map(|word| word.len()).sum();
    for _ in 0..2 {
        let reply = resp_command(&mut resp, &[&["XADD", &stream, "*"][..], &fields].concat());
        skip_rest_of_reply(&mut resp, &reply);
    }
    let reply = resp_command(&mut resp, &["XGROUP", "CREATE", &stream, "workers", "0"]);
    assert_eq!(reply, "+OK\r\n");
    let reply =
        resp_command(&mut resp, &["XREADGROUP", "GROUP", "workers", "alice", "COUNT", "1", "STREAMS", &stream, ">"]);
    skip_rest_of_reply(&mut resp, &reply);

    let (status, text) = http_get(&broker.http_addr(), "/metrics");
    assert_eq!(status, 200, "{text}");
    let samples = check::parse(&text).unwrap_or_else(|error| panic!("invalid exposition: {error}\n{text}"));
    let partition = [("topic", topic.as_str()), ("partition", "0")];
    assert_eq!(value(&samples, "sluice_shards", &[]), 2.0);
    assert_eq!(value(&samples, "sluice_partition_end_offset", &partition), 5.0);
    assert_eq!(value(&samples, "sluice_partition_log_start_offset", &partition), 0.0);
    assert_eq!(value(&samples, "sluice_partition_size_bytes", &partition), batch_bytes as f64);
    assert_eq!(value(&samples, "sluice_partition_segments", &partition), 1.0);
    assert_eq!(value(&samples, "sluice_bytes_in_total", &[("protocol", "kafka")]), batch_bytes as f64);
    assert_eq!(value(&samples, "sluice_records_in_total", &[("protocol", "kafka")]), 5.0);
    assert_eq!(value(&samples, "sluice_bytes_out_total", &[("protocol", "kafka")]), batch_bytes as f64);
    assert_eq!(value(&samples, "sluice_records_out_total", &[("protocol", "kafka")]), 5.0);
    // Produced sizes: one observation per batch (3 and 2 records), one per XADD entry.
    let batch_records = "sluice_kafka_produce_batch_records";
    assert_eq!(value(&samples, &format!("{batch_records}_count"), &[]), 2.0);
    assert_eq!(value(&samples, &format!("{batch_records}_sum"), &[]), 5.0);
    assert_eq!(bucket(&samples, batch_records, 2), 1.0);
    assert_eq!(bucket(&samples, batch_records, 4), 2.0);
    let batch_bytes_family = "sluice_kafka_produce_batch_bytes";
    assert_eq!(value(&samples, &format!("{batch_bytes_family}_count"), &[]), 2.0);
    assert_eq!(value(&samples, &format!("{batch_bytes_family}_sum"), &[]), batch_bytes as f64);
    let largest_batch = batches.iter().map(Vec::len).max().unwrap();
    assert_eq!(bucket(&samples, batch_bytes_family, largest_batch.next_power_of_two()), 2.0);
    let smallest_batch = batches.iter().map(Vec::len).min().unwrap();
    assert_eq!(bucket(&samples, batch_bytes_family, smallest_batch.next_power_of_two() / 2), 0.0);
    let committed_labels = [("group", group), ("topic", topic.as_str()), ("partition", "0")];
    assert_eq!(value(&samples, "sluice_consumer_group_committed_offset", &committed_labels), 2.0);
    assert_eq!(value(&samples, "sluice_consumer_group_lag", &committed_labels), 3.0);

    assert_eq!(value(&samples, "sluice_partition_end_offset", &[("topic", stream.as_str())]), 2.0);
    assert_eq!(value(&samples, "sluice_bytes_in_total", &[("protocol", "resp")]), 2.0 * entry_bytes as f64);
    assert_eq!(value(&samples, "sluice_records_in_total", &[("protocol", "resp")]), 2.0);
    assert_eq!(value(&samples, "sluice_bytes_out_total", &[("protocol", "resp")]), entry_bytes as f64);
    assert_eq!(value(&samples, "sluice_records_out_total", &[("protocol", "resp")]), 1.0);
    let entry_sizes = "sluice_resp_xadd_entry_bytes";
    assert_eq!(value(&samples, &format!("{entry_sizes}_count"), &[]), 2.0);
    assert_eq!(value(&samples, &format!("{entry_sizes}_sum"), &[]), 2.0 * entry_bytes as f64);
    assert_eq!(bucket(&samples, entry_sizes, 16), 2.0, "{entry_bytes} bytes: the smallest bucket");
    let workers = [("stream", stream.as_str()), ("group", "workers")];
    assert_eq!(value(&samples, "sluice_stream_group_pending_entries", &workers), 1.0);
    assert_eq!(value(&samples, "sluice_stream_group_consumers", &workers), 1.0);
    let idle = value(&samples, "sluice_stream_group_oldest_pending_idle_seconds", &workers);
    assert!((0.0..60.0).contains(&idle), "idle {idle}");

    let produce = [("api", "Produce")];
    assert_eq!(value(&samples, "sluice_kafka_request_duration_seconds_count", &produce), 2.0);
    assert_eq!(value(&samples, "sluice_kafka_request_duration_seconds_count", &[("api", "Fetch")]), 1.0);
    assert_eq!(value(&samples, "sluice_resp_command_duration_seconds_count", &[("command", "xadd")]), 2.0);
    assert_eq!(value(&samples, "sluice_resp_command_duration_seconds_count", &[("command", "xreadgroup")]), 1.0);
    assert_eq!(value(&samples, "sluice_resp_command_duration_seconds_count", &[("command", "other")]), 1.0);
    // Each acks=all batch and each XADD waited for a flush round (write + fdatasync); so did
    // the commit and the group changes (offsets and group logs).
    let flushes = value(&samples, "sluice_flush_duration_seconds_count", &[]);
    assert!(flushes >= 4.0, "flushes {flushes}");
    assert_eq!(value(&samples, "sluice_flush_batches_count", &[]), flushes, "one batches observation per flush");
    assert!(value(&samples, "sluice_flush_batches_sum", &[]) >= flushes, "every flush covers at least one batch");
    assert!(value(&samples, "sluice_connections_open", &[("protocol", "kafka")]) >= 1.0);
    assert!(value(&samples, "sluice_connections_open", &[("protocol", "resp")]) >= 1.0);
    // Present in a live scrape (which may count its own requests to the other shards).
    assert!(value(&samples, "sluice_mesh_requests_in_flight", &[]) >= 0.0);
    for shard in ["0", "1"] {
        assert!(value(&samples, "sluice_shard_tasks_total", &[("shard", shard)]) > 0.0, "shard {shard} ran tasks");
        assert!(
            value(&samples, "sluice_shard_busy_seconds_total", &[("shard", shard)]) > 0.0,
            "shard {shard} was busy"
        );
    }
    promtool_check(&text);

    // The gauges follow connections as they close.
    drop((kafka, resp));
    let closed = (0..READY_POLLS_MAX).any(|_| {
        let (_, text) = http_get(&broker.http_addr(), "/metrics");
        let samples = check::parse(&text).unwrap();
        let open = value(&samples, "sluice_connections_open", &[("protocol", "resp")]);
        open == 0.0 || {
            std::thread::sleep(POLL_PAUSE);
            false
        }
    });
    assert!(closed, "the RESP connection gauge returns to 0 after the client left");
}

/// Story: the broker crashes and comes back. Before any worker touches its queues again, the
/// first scrape already shows every stream group on disk, with the pending entries and
/// consumers it had; a stream without groups shows none.
#[test]
fn stream_groups_on_disk_show_after_a_restart_before_any_use() {
    const STREAMS: usize = 4;
    let mut broker = Broker::builder().shards(2).start();
    let streams: Vec<String> = (0..STREAMS).map(|_| unique_topic("metrics-restart")).collect();
    let mut connection = resp::connect(&broker.resp_addr());
    for (index, stream) in streams.iter().enumerate() {
        for _ in 0..STREAMS {
            resp::command(&mut connection, &["XADD", stream, "*", "job", "resize"]);
        }
        resp::command(&mut connection, &["XGROUP", "CREATE", stream, "workers", "0"]);
        let taken = (index + 1).to_string();
        resp::command(
            &mut connection,
            &["XREADGROUP", "GROUP", "workers", "alice", "COUNT", &taken, "STREAMS", stream, ">"],
        );
    }
    let without_groups = unique_topic("metrics-no-groups");
    resp::command(&mut connection, &["XADD", &without_groups, "*", "job", "resize"]);
    drop(connection);

    broker.restart();
    let (status, text) = http_get(&broker.http_addr(), "/metrics");
    assert_eq!(status, 200, "{text}");
    let samples = check::parse(&text).unwrap_or_else(|error| panic!("invalid exposition: {error}\n{text}"));
    for (index, stream) in streams.iter().enumerate() {
        let workers = [("stream", stream.as_str()), ("group", "workers")];
        assert_eq!(value(&samples, "sluice_stream_group_pending_entries", &workers), (index + 1) as f64, "{stream}");
        assert_eq!(value(&samples, "sluice_stream_group_consumers", &workers), 1.0, "{stream}");
        assert_eq!(value(&samples, "sluice_stream_group_pending_max_deliveries", &workers), 1.0, "{stream}");
        assert_eq!(value(&samples, "sluice_stream_group_deliveries_total", &workers), 0.0, "counters start over");
        assert_eq!(value(&samples, "sluice_stream_group_redeliveries_total", &workers), 0.0, "{stream}");
    }
    assert!(
        !samples.iter().any(|sample| sample.label("stream") == Some(without_groups.as_str())),
        "a stream without groups has no group series"
    );
}

/// Story: a team watches its job queue's redelivery rate. Workers take jobs (one with NOACK),
/// one re-reads its history after a restart, another claims what was left, a JUSTID claim only
/// looks; a second group hands idle jobs out again by itself (VISIBILITY). The counters say
/// exactly how many entries went out first and how many again, and the gauge how many times
/// the most-delivered pending entry went out; a third group with MAXDELIVERIES 1 moves what is
/// claimed again to the dead-letter stream, and says so.
#[test]
fn stream_group_deliveries_and_redeliveries_are_counted() {
    const ENTRIES: usize = 5;
    const VISIBILITY_MS: u64 = 1;
    let broker = Broker::builder().shards(2).start();
    let stream = unique_topic("metrics-deliveries");
    let mut connection = resp::connect(&broker.resp_addr());
    let ids: Vec<String> =
        (0..ENTRIES).map(|_| resp::command(&mut connection, &["XADD", &stream, "*", "job", "resize"])).collect();
    let mut run = |words: &[&str]| resp::command(&mut connection, words);
    run(&["XGROUP", "CREATE", &stream, "workers", "0"]);
    run(&["XREADGROUP", "GROUP", "workers", "alice", "COUNT", "3", "STREAMS", &stream, ">"]);
    run(&["XREADGROUP", "GROUP", "workers", "bob", "COUNT", "1", "NOACK", "STREAMS", &stream, ">"]);
    let history = run(&["XREADGROUP", "GROUP", "workers", "alice", "STREAMS", &stream, "0"]);
    assert_eq!(history.matches("resize").count(), 3, "alice's three pending entries: {history}");
    run(&["XAUTOCLAIM", &stream, "workers", "bob", "0", "0-0", "COUNT", "2"]);
    let looked = run(&["XAUTOCLAIM", &stream, "workers", "carol", "0", "0-0", "COUNT", "10", "JUSTID"]);
    assert!(!looked.contains("resize"), "JUSTID hands out IDs only: {looked}");

    run(&["XGROUP", "CREATE", &stream, "visible", "0", "VISIBILITY", &VISIBILITY_MS.to_string()]);
    run(&["XREADGROUP", "GROUP", "visible", "alice", "COUNT", "2", "STREAMS", &stream, ">"]);
    std::thread::sleep(Duration::from_millis(20 * VISIBILITY_MS));
    let again = run(&["XREADGROUP", "GROUP", "visible", "bob", "COUNT", "2", "STREAMS", &stream, ">"]);
    assert_eq!(again.matches("resize").count(), 2, "alice's idle entries come back first: {again}");

    run(&["XGROUP", "CREATE", &stream, "poison", "0", "MAXDELIVERIES", "1"]);
    let first = run(&["XREADGROUP", "GROUP", "poison", "alice", "COUNT", "2", "STREAMS", &stream, ">"]);
    assert!(first.contains(&ids[0]) && first.contains(&ids[1]), "two entries delivered once: {first}");
    let claimed = run(&["XCLAIM", &stream, "poison", "bob", "0", &ids[0], &ids[1]]);
    assert!(!claimed.contains("resize"), "past MAXDELIVERIES they go to the dead-letter stream: {claimed}");

    let (status, text) = http_get(&broker.http_addr(), "/metrics");
    assert_eq!(status, 200, "{text}");
    let samples = check::parse(&text).unwrap_or_else(|error| panic!("invalid exposition: {error}\n{text}"));
    let workers = [("stream", stream.as_str()), ("group", "workers")];
    assert_eq!(value(&samples, "sluice_stream_group_deliveries_total", &workers), 4.0, "3 + 1 NOACK");
    assert_eq!(value(&samples, "sluice_stream_group_redeliveries_total", &workers), 5.0, "history 3 + claimed 2");
    assert_eq!(value(&samples, "sluice_stream_group_pending_entries", &workers), 3.0);
    assert_eq!(value(&samples, "sluice_stream_group_pending_max_deliveries", &workers), 3.0, "read, re-read, claimed");
    let visible = [("stream", stream.as_str()), ("group", "visible")];
    assert_eq!(value(&samples, "sluice_stream_group_deliveries_total", &visible), 2.0);
    assert_eq!(value(&samples, "sluice_stream_group_redeliveries_total", &visible), 2.0);
    assert_eq!(value(&samples, "sluice_stream_group_pending_max_deliveries", &visible), 2.0);
    assert_eq!(value(&samples, "sluice_stream_group_dead_lettered_total", &visible), 0.0);
    let poison = [("stream", stream.as_str()), ("group", "poison")];
    assert_eq!(value(&samples, "sluice_stream_group_dead_lettered_total", &poison), 2.0);
    assert_eq!(value(&samples, "sluice_stream_group_pending_entries", &poison), 0.0);
    promtool_check(&text);
}

/// A Produce request for one partition in one batch is stored in the memory it arrived in;
/// records of several partitions, or of several batches for one, are copied once, and
/// `sluice_produce_copied_bytes_total` counts them. (A handle on a request's frame kept by
/// mistake shows here as copied bytes.)
#[test]
fn produced_records_are_copied_only_from_requests_for_several_batches_or_partitions() {
    let broker = Broker::builder().shards(2).args(["--default-partitions", "2"]).start();
    let topic = unique_topic("copies");
    let mut kafka = raw::connect(&broker.bootstrap());
    // Values of 4 KiB: the records are most of each request, as a producer's batches are.
    let batch = |index: usize| Bytes::from(build::batch(0, 1_000, &[(b"key", &vec![b'a' + index as u8; 4096][..])]));
    let partition =
        |index: i32, records: Bytes| PartitionProduceData::default().with_index(index).with_records(Some(records));
    let mut produce = |correlation_id: i32, partitions: Vec<PartitionProduceData>| {
        let request = ProduceRequest::default().with_acks(-1).with_timeout_ms(10_000).with_topic_data(vec![
            TopicProduceData::default().with_name(TopicName(name(&topic))).with_partition_data(partitions),
        ]);
        let response = call(&mut kafka, &request, 7, correlation_id);
        for answer in &response.responses[0].partition_responses {
            assert_eq!(answer.error_code, 0, "{response:?}");
        }
    };
    let copied = || broker.metric("sluice_produce_copied_bytes_total");

    // The first request creates the topic; each partition then gets a single batch at a time.
    produce(0, vec![partition(0, batch(0))]);
    for correlation_id in 1..=4 {
        produce(correlation_id, vec![partition(correlation_id % 2, batch(correlation_id as usize))]);
    }
    assert_eq!(copied(), 0.0, "one batch for one partition is kept as it arrived");

    let (first, second) = (batch(10), batch(11));
    produce(5, vec![partition(0, first.clone()), partition(1, second.clone())]);
    assert_eq!(copied(), (first.len() + second.len()) as f64, "two partitions in one request");

    let two_batches = Bytes::from([batch(12), batch(13)].concat());
    produce(6, vec![partition(1, two_batches.clone())]);
    assert_eq!(copied(), (first.len() + second.len() + two_batches.len()) as f64, "two batches for one partition");
}
