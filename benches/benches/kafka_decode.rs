//! Decoding Kafka request frames the way the broker's listener does before it runs a handler
//! (`kafka::handle_frame`): API key and version read by hand, the request header through its
//! codec, then the body through `registry::decode_body`, the same `decode::<Request>` that
//! `registry::dispatch` runs. Record batches stay `Bytes` views of the frame (not copied).
//! Throughput is in requests.
//!
//! - `produce_v9_4x16KiB`: one topic, 4 partitions, one 16 x 1 KiB batch each (a 65 KiB frame).
//! - `fetch_v12_16_partitions`: one topic, 16 partitions.
use std::hint::black_box;
use std::time::Duration;

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{ApiKey, FetchRequest, ProduceRequest, RequestHeader, TopicName};
use kafka_protocol::protocol::{Decodable, Request, StrBytes};
use sluice_bench::load::limits::{FETCH_VERSION, PRODUCE_VERSION};
use sluice_bench::load::wire::encode_request;
use sluice_bench::{record_batch, RECORDS_PER_SMALL_BATCH};
use sluice_server::kafka::registry;

const PRODUCE_PARTITIONS: i32 = 4;
const FETCH_PARTITIONS: i32 = 16;
const FETCH_PARTITION_BYTES_MAX: i32 = 1 << 20;
/// The length prefix `encode_request` writes; the listener reads it before the frame.
const LENGTH_PREFIX_BYTES: usize = 4;

fn topic_name() -> TopicName {
    TopicName(StrBytes::from_static_str("bench"))
}

/// The frame the listener hands to `handle_frame`: header and body, without the length.
fn frame_of<R: Request>(request: &R, version: i16) -> Bytes {
    let encoded = encode_request(request, version, 1).expect("encode the benchmark request");
    Bytes::copy_from_slice(&encoded[LENGTH_PREFIX_BYTES..])
}

fn produce_frame() -> Bytes {
    let batch = Bytes::from(record_batch(RECORDS_PER_SMALL_BATCH, 1_000));
    let partitions = (0..PRODUCE_PARTITIONS)
        .map(|index| PartitionProduceData::default().with_index(index).with_records(Some(batch.clone())))
        .collect();
    let request = ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(30_000)
        .with_topic_data(vec![TopicProduceData::default().with_name(topic_name()).with_partition_data(partitions)]);
    frame_of(&request, PRODUCE_VERSION)
}

fn fetch_frame() -> Bytes {
    let partitions = (0..FETCH_PARTITIONS)
        .map(|index| {
            FetchPartition::default()
                .with_partition(index)
                .with_fetch_offset(1_000_000 + i64::from(index))
                .with_partition_max_bytes(FETCH_PARTITION_BYTES_MAX)
        })
        .collect();
    let request = FetchRequest::default()
        .with_max_wait_ms(500)
        .with_min_bytes(1)
        .with_max_bytes(50 << 20)
        .with_topics(vec![FetchTopic::default().with_topic(topic_name()).with_partitions(partitions)]);
    frame_of(&request, FETCH_VERSION)
}

/// What `handle_frame` does with a frame before dispatching it; the whole body must be used.
fn decode_frame(frame: &Bytes) -> RequestHeader {
    let mut frame = frame.clone();
    let key = ApiKey::try_from(i16::from_be_bytes([frame[0], frame[1]])).expect("known API key");
    let version = i16::from_be_bytes([frame[2], frame[3]]);
    let header = RequestHeader::decode(&mut frame, key.request_header_version(version)).expect("request header");
    registry::decode_body(key, version, &mut frame).expect("request body");
    assert!(frame.is_empty(), "the body decodes to its last byte");
    header
}

fn kafka_decode(c: &mut Criterion) {
    let mut group = c.benchmark_group("kafka_decode");
    group.measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1)).sample_size(20);
    group.throughput(Throughput::Elements(1));
    for (name, frame) in [("produce_v9_4x16KiB", produce_frame()), ("fetch_v12_16_partitions", fetch_frame())] {
        assert_eq!(decode_frame(&frame).correlation_id, 1);
        group.bench_function(name, |bencher| bencher.iter(|| decode_frame(black_box(&frame))));
    }
    group.finish();
}

criterion_group!(benches, kafka_decode);
criterion_main!(benches);
