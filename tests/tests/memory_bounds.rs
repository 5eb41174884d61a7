//! Story: a broker holds a few hundred MiB on disk. Thousands of idle connections sit on both
//! doors; a Kafka consumer far behind reads the log from offset 0, slowly; a greedy Kafka
//! client pipelines fetches of everything (`max_bytes` 2 GiB) and reads none of the answers;
//! a greedy Redis client pipelines XRANGEs and XREADs of 25-32 MiB each and reads nothing
//! either. Meanwhile a producer keeps producing with acks=all. The broker's resident memory
//! stays under a bound computed from its limits (`resident_bound`), every produce is
//! acknowledged while the greedy clients are stuck, and once they read, their answers arrive
//! whole, in order, no larger than the per-response limits. A Redis reply cut at its limit
//! loses nothing: a consumer group reads on from the first entry left out, and an XRANGE that
//! would not fit is refused with a hint rather than cut.
//!
//! Before the per-connection limits (`CONNECTION_UNSENT_BYTES_MAX`, one Fetch at a time per
//! connection, `FETCH_RESPONSE_BYTES_MAX`, `RESP_REPLY_BYTES_MAX`) the greedy Kafka client
//! alone took this broker to 4.5 GiB: each pipelined fetch read whole partitions into memory.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{ApiVersionsRequest, FetchRequest, ProduceRequest, TopicName};
use kafka_protocol::protocol::StrBytes;
use sluice_engine::limits::{
    HOT_CACHE_BYTES_PER_PARTITION, INDEX_INTERVAL_BYTES, MESSAGE_BYTES_MAX_DEFAULT, READ_AHEAD_BYTES_MAX,
    READ_AHEAD_BYTES_PER_SHARD_MAX,
};
use sluice_engine::record::batch::{self, build};
use sluice_server::limits::{
    CONNECTION_UNSENT_BYTES_MAX, FETCH_RESPONSE_BYTES_MAX, IO_MEMORY_BYTES, RESP_REPLY_BYTES_MAX, RESP_SCAN_READ_BYTES,
};
use sluice_tests::raw::{self, call};
use sluice_tests::{raise_open_files_limit, resident_bytes_of, unique_topic, Broker};

const SHARDS: usize = 2;
const PARTITIONS: usize = 2;
/// Records of 64 KiB, 15 to a batch: just under the default `max.message.bytes` (1 MiB).
const RECORD_VALUE_BYTES: usize = 64 << 10;
const RECORDS_PER_BATCH: usize = 15;
/// Stored before the slow clients come, spread over the partitions.
const STORED_BYTES: usize = 256 << 20;
/// Produce requests the loader keeps in flight per partition.
const LOAD_IN_FLIGHT: usize = 4;
/// Idle connections per door. This process holds them, the broker two descriptors for each.
const IDLE_CONNECTIONS_PER_DOOR: usize = 1_000;
/// What one idle connection may cost the broker (`bad_clients` measures 3-26 KiB).
const IDLE_CONNECTION_BYTES_MAX: u64 = 64 << 10;
/// Fetches (of everything) the greedy Kafka client pipelines, and Redis commands the greedy
/// Redis client pipelines: each far more than the broker would hold for one connection.
const GREEDY_FETCHES: i32 = 16;
const GREEDY_XRANGES: usize = 8;
const GREEDY_XREADS: usize = 2;
/// Entries per greedy XRANGE: about 25 MiB of fields, under `RESP_REPLY_BYTES_MAX`.
const XRANGE_COUNT: usize = 400;
/// The far-behind consumer asks for this much per partition, and pauses between fetches.
const FAR_BEHIND_PARTITION_BYTES: i32 = 4 << 20;
const FAR_BEHIND_PAUSE: Duration = Duration::from_millis(20);
/// The producer produces at least this many batches while the greedy clients are stuck, and
/// goes on until the far-behind consumer has read what was stored (at most the maximum).
const PRODUCED_BATCHES_MIN: usize = 32;
const PRODUCED_BATCHES_MAX: usize = 512;
/// How long the slow phase may last before the test gives up.
const PHASE_TIME_MAX: Duration = Duration::from_secs(40);
const RSS_SAMPLE_INTERVAL: Duration = Duration::from_millis(10);

fn topic_name(topic: &str) -> TopicName {
    TopicName(StrBytes::from_string(topic.to_string()))
}

/// One batch of `RECORDS_PER_BATCH` records of `RECORD_VALUE_BYTES`, key "k", for offsets
/// from `first_offset` on. Timestamps grow with offsets, so do the entry IDs Redis clients see.
fn batch_bytes(first_offset: i64) -> Bytes {
    let value = vec![b'v'; RECORD_VALUE_BYTES];
    let records: Vec<(&[u8], &[u8])> = (0..RECORDS_PER_BATCH).map(|_| (&b"k"[..], &value[..])).collect();
    let batch = build::batch(0, TIMESTAMP_BASE_MS + first_offset, &records);
    assert!(batch.len() <= MESSAGE_BYTES_MAX_DEFAULT);
    Bytes::from(batch)
}

/// Timestamp of offset 0; offset `o` has `TIMESTAMP_BASE_MS + o`.
const TIMESTAMP_BASE_MS: i64 = 1_000;

/// The entry ID Redis clients see for the record at `offset`: `<timestamp>-<offset>`.
fn entry_id(offset: i64) -> String {
    format!("{}-{offset}", TIMESTAMP_BASE_MS + offset)
}

/// What Redis clients see as each record's field bytes: `key`, `k`, `value` and the value.
const ENTRY_FIELD_BYTES: usize = 3 + 1 + 5 + RECORD_VALUE_BYTES;

fn produce_frame(topic: &str, partition: i32, batch: &Bytes, correlation_id: i32) -> Vec<u8> {
    let request = ProduceRequest::default().with_acks(-1).with_timeout_ms(30_000).with_topic_data(vec![
        TopicProduceData::default().with_name(topic_name(topic)).with_partition_data(vec![
            PartitionProduceData::default().with_index(partition).with_records(Some(batch.clone())),
        ]),
    ]);
    raw::frame(&request, 7, correlation_id)
}

/// Reads one acks=all Produce answer and returns the batch's base offset.
fn produce_answer(stream: &mut TcpStream, correlation_id: i32) -> i64 {
    let response = raw::read_response::<ProduceRequest>(stream, 7, correlation_id);
    let partition = &response.responses[0].partition_responses[0];
    assert_eq!(partition.error_code, 0, "{response:?}");
    partition.base_offset
}

/// Produces `batches` batches to `partition`, `LOAD_IN_FLIGHT` at a time, each acknowledged
/// at the offset after the previous one.
fn load(broker: &Broker, topic: &str, partition: i32, batches: usize) {
    let mut stream = raw::connect(&broker.bootstrap());
    let (mut sent, mut acked) = (0, 0);
    while acked < batches {
        while sent < batches && sent - acked < LOAD_IN_FLIGHT {
            let batch = batch_bytes((sent * RECORDS_PER_BATCH) as i64);
            stream.write_all(&produce_frame(topic, partition, &batch, sent as i32)).unwrap();
            sent += 1;
        }
        let base_offset = produce_answer(&mut stream, acked as i32);
        assert_eq!(base_offset, (acked * RECORDS_PER_BATCH) as i64, "partition {partition}");
        acked += 1;
    }
}

fn fetch_request(topic: &str, offsets: &[i64], partition_max_bytes: i32, max_bytes: i32) -> FetchRequest {
    let partitions = offsets.iter().enumerate().map(|(partition, offset)| {
        FetchPartition::default()
            .with_partition(partition as i32)
            .with_fetch_offset(*offset)
            .with_partition_max_bytes(partition_max_bytes)
    });
    FetchRequest::default()
        .with_max_wait_ms(100)
        .with_min_bytes(1)
        .with_max_bytes(max_bytes)
        .with_topics(vec![FetchTopic::default().with_topic(topic_name(topic)).with_partitions(partitions.collect())])
}

/// Checks the batches of one partition's records (CRC included) continue at `next_offset`,
/// and returns the offset after them.
fn walk_batches(records: &[u8], mut next_offset: i64) -> i64 {
    for range in batch::split(records) {
        let bytes = &records[range.unwrap()];
        let info = batch::validate(bytes, MESSAGE_BYTES_MAX_DEFAULT).expect("a whole, valid batch");
        let header = batch::header(bytes).unwrap();
        assert_eq!(header.base_offset.get(), next_offset, "batches continue where the last one ended");
        next_offset = header.base_offset.get() + i64::from(info.last_offset_delta) + 1;
    }
    next_offset
}

/// What the broker may hold resident at any moment of the slow phase, given what it held at
/// start (`start_bytes`: the program, its executors, nothing stored). Every term is a limit
/// of the broker's configuration or of this test's clients:
fn resident_bound(start_bytes: u64) -> u64 {
    let batch = MESSAGE_BYTES_MAX_DEFAULT as u64;
    // Each shard's registered I/O buffers, touched as it reads and writes.
    let io_buffers = (SHARDS * IO_MEMORY_BYTES) as u64;
    // The stored data costs its partitions' read caches and in-memory indexes (an offset and
    // a time entry, 20 bytes, per `INDEX_INTERVAL_BYTES` at most), not its size.
    let stored = (PARTITIONS * HOT_CACHE_BYTES_PER_PARTITION) as u64
        + (STORED_BYTES as u64 + (PRODUCED_BATCHES_MAX as u64) * batch) / INDEX_INTERVAL_BYTES * 20;
    // The producer's requests in flight: each frame and its stored copy, queued until synced.
    let producer = 2 * LOAD_IN_FLIGHT as u64 * batch * PARTITIONS as u64;
    let idle = 2 * IDLE_CONNECTIONS_PER_DOOR as u64 * IDLE_CONNECTION_BYTES_MAX;
    // A fetch reads on every owner shard at once, each up to the response limit plus the
    // batch that passes it, into an I/O buffer and then a copy; what is built and unsent waits
    // within `CONNECTION_UNSENT_BYTES_MAX`, and the next fetch on the connection waits.
    let fetch_read = |response_bytes: u64| SHARDS as u64 * 2 * (response_bytes + batch);
    let greedy_kafka = CONNECTION_UNSENT_BYTES_MAX as u64 + fetch_read(FETCH_RESPONSE_BYTES_MAX as u64);
    let far_behind = fetch_read(PARTITIONS as u64 * FAR_BEHIND_PARTITION_BYTES as u64);
    // Sequential cold reads read ahead: per partition the read-ahead being served from and the
    // next one, within each shard's budget.
    let read_ahead = (2 * PARTITIONS * READ_AHEAD_BYTES_MAX).min(SHARDS * READ_AHEAD_BYTES_PER_SHARD_MAX) as u64;
    // A Redis reply holds its entries (slices of the chunks read, `RESP_SCAN_READ_BYTES` each)
    // and, while it is written, its encoding; the next command waits.
    let greedy_resp = CONNECTION_UNSENT_BYTES_MAX as u64
        + 2 * (RESP_REPLY_BYTES_MAX as u64 + RESP_SCAN_READ_BYTES as u64 + ENTRY_FIELD_BYTES as u64);
    start_bytes + io_buffers + stored + producer + idle + greedy_kafka + far_behind + read_ahead + greedy_resp
}

/// Sets its flag when dropped, also when a thread panics, so the others stop.
struct SetOnDrop<'a>(&'a AtomicBool);

impl Drop for SetOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

fn resp_request(words: &[&str]) -> Vec<u8> {
    let mut request = format!("*{}\r\n", words.len());
    for word in words {
        request.push_str(&format!("${}\r\n{word}\r\n", word.len()));
    }
    request.into_bytes()
}

/// A RESP reply as this test reads it: long bulk strings are read through and kept as their
/// length only.
#[derive(Debug, PartialEq)]
enum Resp {
    Array(Vec<Resp>),
    Text(String),
    Skipped(usize),
}

/// Bulk strings up to this long are kept (IDs, field names); longer ones are skipped.
const RESP_KEPT_BYTES_MAX: usize = 64;

impl Resp {
    fn read(reader: &mut impl BufRead) -> Resp {
        let mut line = String::new();
        reader.read_line(&mut line).expect("a RESP line");
        let (kind, rest) = line.trim_end().split_at(1);
        match kind {
            "*" => Resp::Array((0..rest.parse::<usize>().unwrap()).map(|_| Resp::read(reader)).collect()),
            "$" => {
                let length: usize = rest.parse().unwrap();
                let mut kept = Vec::new();
                let copied = if length <= RESP_KEPT_BYTES_MAX {
                    reader.take(length as u64 + 2).read_to_end(&mut kept).unwrap()
                } else {
                    std::io::copy(&mut reader.take(length as u64 + 2), &mut std::io::sink()).unwrap() as usize
                };
                assert_eq!(copied, length + 2, "a whole bulk string");
                if length <= RESP_KEPT_BYTES_MAX {
                    Resp::Text(String::from_utf8_lossy(&kept[..length]).into_owned())
                } else {
                    Resp::Skipped(length)
                }
            }
            _ => Resp::Text(line.trim_end().to_string()),
        }
    }

    fn items(&self) -> &[Resp] {
        match self {
            Resp::Array(items) => items,
            other => panic!("not an array: {other:?}"),
        }
    }

    /// The IDs of an array of stream entries, checking each carries one record's fields.
    fn entry_ids(&self) -> Vec<String> {
        let value = Resp::Skipped(RECORD_VALUE_BYTES);
        let fields = [Resp::Text("key".into()), Resp::Text("k".into()), Resp::Text("value".into()), value];
        self.items()
            .iter()
            .map(|entry| match entry.items() {
                [Resp::Text(id), entry_fields] if entry_fields.items() == fields => id.clone(),
                other => panic!("not a stream entry of this test: {other:?}"),
            })
            .collect()
    }

    /// The entries of an XREAD or XREADGROUP reply for one stream (RESP2).
    fn read_entries(&self, key: &str) -> Vec<String> {
        match self.items() {
            [stream] => match stream.items() {
                [Resp::Text(name), entries] if name == key => entries.entry_ids(),
                other => panic!("not a reply for stream {key}: {} items", other.len()),
            },
            other => panic!("not a reply for one stream: {} streams", other.len()),
        }
    }
}

fn entry_ids(offsets: std::ops::Range<i64>) -> Vec<String> {
    offsets.map(entry_id).collect()
}

/// The far-behind consumer: fetches both partitions from offset 0, a little at a time with
/// pauses, checking every batch, until it has read `stored_end` of each (or time is up).
/// Returns the bytes it read.
fn consume_far_behind(broker: &Broker, topic: &str, stored_end: i64, deadline: Instant) -> u64 {
    let mut stream = raw::connect(&broker.bootstrap());
    let mut next = [0i64; PARTITIONS];
    let mut read_bytes = 0u64;
    let mut correlation_id = 0;
    while next.iter().any(|offset| *offset < stored_end) && Instant::now() < deadline {
        correlation_id += 1;
        let request = fetch_request(topic, &next, FAR_BEHIND_PARTITION_BYTES, 50 << 20);
        let response = call(&mut stream, &request, 11, correlation_id);
        for data in &response.responses[0].partitions {
            assert_eq!(data.error_code, 0, "fetching from {next:?} of {stored_end}: {data:?}");
            let records = data.records.clone().unwrap_or_default();
            read_bytes += records.len() as u64;
            let partition = data.partition_index as usize;
            next[partition] = walk_batches(&records, next[partition]);
        }
        thread::sleep(FAR_BEHIND_PAUSE);
    }
    assert!(next.iter().all(|offset| *offset >= stored_end), "the far-behind consumer read only up to {next:?}");
    read_bytes
}

/// Produces to alternate partitions with acks=all, one request at a time, until `enough`
/// says so (at least `PRODUCED_BATCHES_MIN`, at most `PRODUCED_BATCHES_MAX`); checks each
/// batch is acknowledged right after the previous one of its partition. Returns the count.
fn produce_meanwhile(broker: &Broker, topic: &str, stored_end: i64, enough: &AtomicBool) -> usize {
    let mut stream = raw::connect(&broker.bootstrap());
    let mut next = [stored_end; PARTITIONS];
    let mut produced = 0;
    while produced < PRODUCED_BATCHES_MAX && (produced < PRODUCED_BATCHES_MIN || !enough.load(Ordering::Relaxed)) {
        let partition = produced % PARTITIONS;
        let batch = batch_bytes(next[partition]);
        stream.write_all(&produce_frame(topic, partition as i32, &batch, produced as i32)).unwrap();
        assert_eq!(produce_answer(&mut stream, produced as i32), next[partition], "partition {partition}");
        next[partition] += RECORDS_PER_BATCH as i64;
        produced += 1;
    }
    produced
}

#[test]
fn slow_and_idle_clients_do_not_grow_broker_memory_past_its_limits() {
    // This process holds the idle connections; the broker two descriptors for each.
    raise_open_files_limit(3 * 2 * IDLE_CONNECTIONS_PER_DOOR as u64 + 1_000);
    // No catch-up cap: the far-behind consumer must outrun the producer here. Held to the
    // default rate while the producer writes, it read slower than segments rolled, and time
    // retention (these batches are stamped 1970) deleted what it had not read yet.
    let broker = Broker::builder()
        .shards(SHARDS)
        .args(["--default-partitions", &PARTITIONS.to_string(), "--catch-up-read-bytes-per-sec-max", "0"])
        .start();
    let pid = broker.pid().unwrap();
    let start_bytes = broker.resident_bytes();
    let topic = unique_topic("memory");

    let batches_per_partition = STORED_BYTES / PARTITIONS / batch_bytes(0).len();
    thread::scope(|scope| {
        for partition in 0..PARTITIONS {
            let (broker, topic) = (&broker, &topic);
            scope.spawn(move || load(broker, topic, partition as i32, batches_per_partition));
        }
    });
    let stored_end = (batches_per_partition * RECORDS_PER_BATCH) as i64;
    let stored_rss = broker.resident_bytes();

    // Idle connections: each answers one request, then sits.
    let mut idle = Vec::new();
    for index in 0..IDLE_CONNECTIONS_PER_DOOR {
        let mut kafka = raw::connect(&broker.bootstrap());
        assert_eq!(call(&mut kafka, &ApiVersionsRequest::default(), 3, index as i32).error_code, 0);
        let mut resp = BufReader::new(TcpStream::connect(broker.resp_addr()).unwrap());
        resp.get_mut().write_all(&resp_request(&["PING"])).unwrap();
        let mut pong = String::new();
        resp.read_line(&mut pong).unwrap();
        assert_eq!(pong, "+PONG\r\n");
        idle.push(kafka);
        idle.push(resp.into_inner());
    }
    let idle_rss = broker.resident_bytes();

    // The slow phase, with the broker's RSS sampled throughout: the greedy clients send
    // everything at once and read nothing (until the end); a far-behind consumer reads the log
    // from its start while a producer produces.
    let peak = AtomicU64::new(0);
    let (caught_up, phase_over) = (AtomicBool::new(false), AtomicBool::new(false));
    let phase_started = Instant::now();
    let mut greedy_kafka = raw::connect(&broker.bootstrap());
    let mut greedy_resp = TcpStream::connect(broker.resp_addr()).unwrap();
    let (read_bytes, produced) = thread::scope(|scope| {
        let _phase_over = SetOnDrop(&phase_over);
        scope.spawn(|| {
            while !phase_over.load(Ordering::Relaxed) && phase_started.elapsed() < PHASE_TIME_MAX {
                peak.fetch_max(resident_bytes_of(pid), Ordering::Relaxed);
                thread::sleep(RSS_SAMPLE_INTERVAL);
            }
        });
        let everything = fetch_request(&topic, &[0; PARTITIONS], i32::MAX, i32::MAX);
        for correlation_id in 0..GREEDY_FETCHES {
            greedy_kafka.write_all(&raw::frame(&everything, 11, correlation_id)).unwrap();
        }
        let xrange = resp_request(&["XRANGE", &topic, "-", "+", "COUNT", &XRANGE_COUNT.to_string()]);
        for _ in 0..GREEDY_XRANGES {
            greedy_resp.write_all(&xrange).unwrap();
        }
        for _ in 0..GREEDY_XREADS {
            greedy_resp.write_all(&resp_request(&["XREAD", "COUNT", "100000", "STREAMS", &topic, "0-0"])).unwrap();
        }
        let consumer = scope.spawn(|| {
            let _caught_up = SetOnDrop(&caught_up);
            consume_far_behind(&broker, &topic, stored_end, phase_started + PHASE_TIME_MAX)
        });
        let producer = scope.spawn(|| produce_meanwhile(&broker, &topic, stored_end, &caught_up));
        let read_bytes = consumer.join().unwrap();
        let produced = producer.join().unwrap();
        peak.fetch_max(resident_bytes_of(pid), Ordering::Relaxed);
        (read_bytes, produced)
    });
    let phase = phase_started.elapsed();
    let (peak, bound) = (peak.load(Ordering::Relaxed), resident_bound(start_bytes));
    eprintln!(
        "broker RSS: {} MiB at start, {} MiB with {} MiB stored, {} MiB with {} idle connections; \
         peak {} MiB over {phase:?} (bound {} MiB) while a far-behind consumer read {} MiB and \
         {produced} batches were produced",
        start_bytes >> 20,
        stored_rss >> 20,
        STORED_BYTES >> 20,
        idle_rss >> 20,
        idle.len(),
        peak >> 20,
        bound >> 20,
        read_bytes >> 20
    );
    assert!(peak <= bound, "broker RSS peaked at {} MiB, above the {} MiB its limits allow", peak >> 20, bound >> 20);

    // The greedy Kafka client reads now: every answer, in order, each within the limit.
    for correlation_id in 0..GREEDY_FETCHES {
        let response = raw::read_response::<FetchRequest>(&mut greedy_kafka, 11, correlation_id);
        let sizes: Vec<usize> =
            response.responses[0].partitions.iter().map(|data| data.records.as_ref().map_or(0, Bytes::len)).collect();
        let total: usize = sizes.iter().sum();
        assert!(total <= FETCH_RESPONSE_BYTES_MAX, "fetch {correlation_id}: {total} bytes of records");
        assert!(total + MESSAGE_BYTES_MAX_DEFAULT > FETCH_RESPONSE_BYTES_MAX, "fetch {correlation_id}: {sizes:?}");
        let first = response.responses[0].partitions[0].records.clone().unwrap();
        assert!(walk_batches(&first, 0) > 0, "the first partition from offset 0");
    }
    // The greedy Redis client: the XRANGEs whole, the XREADs cut at the reply limit (the
    // entries are 64 KiB each), all from the stream's start.
    greedy_resp.set_read_timeout(Some(raw::IO_TIMEOUT)).unwrap();
    let mut greedy_resp = BufReader::new(greedy_resp);
    for index in 0..GREEDY_XRANGES {
        assert_eq!(Resp::read(&mut greedy_resp).entry_ids(), entry_ids(0..XRANGE_COUNT as i64), "XRANGE {index}");
    }
    let fitting = (RESP_REPLY_BYTES_MAX / ENTRY_FIELD_BYTES) as i64;
    for index in 0..GREEDY_XREADS {
        assert_eq!(Resp::read(&mut greedy_resp).read_entries(&topic), entry_ids(0..fitting), "XREAD {index}");
    }
    // A group reads on where the cut left it, skipping nothing.
    let mut command = |words: &[&str]| {
        greedy_resp.get_mut().write_all(&resp_request(words)).unwrap();
        Resp::read(&mut greedy_resp)
    };
    assert_eq!(command(&["XGROUP", "CREATE", &topic, "readers", "0"]), Resp::Text("+OK".into()));
    let read_group = ["XREADGROUP", "GROUP", "readers", "reader", "COUNT", "100000", "STREAMS", &topic, ">"];
    assert_eq!(command(&read_group).read_entries(&topic), entry_ids(0..fitting));
    assert_eq!(command(&read_group).read_entries(&topic), entry_ids(fitting..2 * fitting));
    // History reads are cut at the same limit, and the limit holds for the whole reply: here
    // the stream is named twice, and the first read filled the reply, so the second gets
    // nothing (before, each stream had the limit to itself and history reads had none).
    let history = ["XREADGROUP", "GROUP", "readers", "reader", "COUNT", "100000", "STREAMS", &topic, &topic, "0", "0"];
    let per_stream: Vec<Vec<String>> = command(&history)
        .items()
        .iter()
        .map(|stream| match stream.items() {
            [Resp::Text(name), entries] if *name == topic => entries.entry_ids(),
            other => panic!("not a reply for stream {topic}: {} items", other.len()),
        })
        .collect();
    assert_eq!(per_stream, [entry_ids(0..fitting), Vec::new()], "history entries per stream");
    // XAUTOCLAIM is cut by the same limit (COUNT allows 10,000 entries: 640 MiB here), its
    // cursor at the first entry it left with its owner.
    let autoclaim = command(&["XAUTOCLAIM", &topic, "readers", "other", "0", "0", "COUNT", "10000"]);
    match autoclaim.items() {
        [Resp::Text(cursor), claimed, _deleted] => {
            assert_eq!(*cursor, entry_id(fitting), "XAUTOCLAIM cursor");
            assert_eq!(claimed.entry_ids(), entry_ids(0..fitting), "XAUTOCLAIM entries");
        }
        other => panic!("not an XAUTOCLAIM reply: {} items", other.len()),
    }
    // An XRANGE whose reply would pass the limit is refused, with the way out.
    let refusal = format!(
        "-ERR the reply would hold more than {RESP_REPLY_BYTES_MAX} bytes of fields ({fitting} entries fit of the \
         1000 asked for): page through the range with a smaller COUNT"
    );
    assert_eq!(command(&["XRANGE", &topic, "-", "+", "COUNT", "1000"]), Resp::Text(refusal));
    drop(idle);
}
