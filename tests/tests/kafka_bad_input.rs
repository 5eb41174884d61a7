//! Story: a buggy or hostile client sends garbage, absurd lengths, unknown APIs and corrupt or
//! oversized record batches. Each gets a clean error or a closed connection, nothing bad is
//! written, and the broker keeps serving everyone else.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read, Write};
use std::net::TcpStream;

use bytes::Bytes;
use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, ApiVersionsResponse, CreateTopicsRequest, CreateTopicsResponse, MetadataRequest,
    MetadataResponse, ProduceRequest, ProduceResponse, ResponseHeader, TopicName,
};
use kafka_protocol::protocol::{Decodable, StrBytes};
use sluice_engine::record::batch::build;
use sluice_tests::raw::{self, call, read_frame};
use sluice_tests::Broker;

fn connect(broker: &Broker) -> TcpStream {
    raw::connect(&broker.bootstrap())
}

/// The connection was closed by the broker (EOF), not left hanging.
fn assert_closed(stream: &mut TcpStream, what: &str) {
    let mut buffer = [0u8; 64];
    match stream.read(&mut buffer) {
        Ok(0) => {}
        Ok(read) => panic!("{what}: expected the connection closed, got {read} bytes"),
        Err(error) => assert!(
            !matches!(error.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut),
            "{what}: the connection was left open ({error})"
        ),
    }
}

fn api_versions_work(broker: &Broker) {
    let mut stream = connect(broker);
    let response: ApiVersionsResponse = call(&mut stream, &ApiVersionsRequest::default(), 3, 1);
    assert_eq!(response.error_code, 0);
    assert!(response.api_keys.iter().any(|key| key.api_key == ApiKey::Produce as i16));
}

fn produce(stream: &mut TcpStream, topic: &str, records: Vec<u8>, correlation_id: i32) -> (i16, i64) {
    let request = ProduceRequest::default().with_acks(-1).with_timeout_ms(10_000).with_topic_data(vec![
        TopicProduceData::default().with_name(TopicName(StrBytes::from_string(topic.to_string()))).with_partition_data(
            vec![PartitionProduceData::default().with_index(0).with_records(Some(Bytes::from(records)))],
        ),
    ]);
    let response: ProduceResponse = call(stream, &request, 7, correlation_id);
    let partition = &response.responses[0].partition_responses[0];
    (partition.error_code, partition.base_offset)
}

#[test]
fn absurd_lengths_unknown_apis_and_garbage_close_only_that_connection() {
    let broker = Broker::builder().shards(2).start();
    for length in [i32::MAX, -1, 3] {
        let mut stream = connect(&broker);
        stream.write_all(&length.to_be_bytes()).unwrap();
        assert_closed(&mut stream, &format!("length prefix {length}"));
        api_versions_work(&broker);
    }
    // Unknown API key 999.
    let mut stream = connect(&broker);
    let mut frame = Vec::new();
    frame.extend_from_slice(&999i16.to_be_bytes());
    frame.extend_from_slice(&0i16.to_be_bytes());
    frame.extend_from_slice(&7i32.to_be_bytes());
    frame.extend_from_slice(&(-1i16).to_be_bytes());
    stream.write_all(&(frame.len() as i32).to_be_bytes()).unwrap();
    stream.write_all(&frame).unwrap();
    assert_closed(&mut stream, "unknown API key");

    // ApiVersions v99: a v0 answer with UNSUPPORTED_VERSION and our ranges, so clients retry.
    let mut stream = connect(&broker);
    let mut frame = Vec::new();
    frame.extend_from_slice(&(ApiKey::ApiVersions as i16).to_be_bytes());
    frame.extend_from_slice(&99i16.to_be_bytes());
    frame.extend_from_slice(&11i32.to_be_bytes());
    frame.extend_from_slice(&(-1i16).to_be_bytes());
    stream.write_all(&(frame.len() as i32).to_be_bytes()).unwrap();
    stream.write_all(&frame).unwrap();
    let mut response = read_frame(&mut stream).expect("ApiVersions v99 is answered");
    let header = ResponseHeader::decode(&mut response, 0).unwrap();
    assert_eq!(header.correlation_id, 11);
    let versions = ApiVersionsResponse::decode(&mut response, 0).unwrap();
    assert_eq!(versions.error_code, 35);
    assert!(!versions.api_keys.is_empty());

    // Garbage frames from a fixed-seed generator: the broker survives every one.
    let mut seed = 0x2545_F491_4F6C_DD1Du64;
    for round in 0..200 {
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let length = (next() % 300) as usize + 8;
        let mut frame: Vec<u8> = (0..length).map(|_| next() as u8).collect();
        // Half the frames name a real API and version so the garbage reaches the decoders.
        if round % 2 == 0 {
            let key = [0i16, 1, 2, 3, 8, 9, 10, 11, 12, 18, 19, 20][round % 12];
            frame[..2].copy_from_slice(&key.to_be_bytes());
            frame[2..4].copy_from_slice(&((next() % 8) as i16).to_be_bytes());
        }
        let mut stream = connect(&broker);
        stream.write_all(&(frame.len() as i32).to_be_bytes()).unwrap();
        let _ = stream.write_all(&frame);
        let _ = stream.shutdown(std::net::Shutdown::Write);
        let mut sink = Vec::new();
        let _ = stream.read_to_end(&mut sink);
    }
    api_versions_work(&broker);
}

#[test]
fn corrupt_and_oversized_batches_are_refused_and_nothing_is_written() {
    let broker = Broker::builder().shards(2).start();
    let mut stream = connect(&broker);
    let topic = sluice_tests::unique_topic("bad-batches");
    let create = CreateTopicsRequest::default().with_timeout_ms(10_000).with_topics(vec![CreatableTopic::default()
        .with_name(TopicName(StrBytes::from_string(topic.clone())))
        .with_num_partitions(1)
        .with_replication_factor(1)
        .with_configs(vec![CreatableTopicConfig::default()
            .with_name(StrBytes::from_static_str("max.message.bytes"))
            .with_value(Some(StrBytes::from_static_str("1024")))])]);
    let created: CreateTopicsResponse = call(&mut stream, &create, 5, 1);
    assert_eq!(created.topics[0].error_code, 0);

    let (error, offset) = produce(&mut stream, &topic, build::batch(0, 1, &[(b"k", b"first")]), 2);
    assert_eq!((error, offset), (0, 0));

    let mut corrupt = build::batch(0, 1, &[(b"k", b"flipped")]);
    let last = corrupt.len() - 2;
    corrupt[last] ^= 0x55;
    assert_eq!(produce(&mut stream, &topic, corrupt, 3).0, 2, "CORRUPT_MESSAGE");

    let oversized = build::batch(0, 1, &[(b"k", &vec![7u8; 2048])]);
    assert_eq!(produce(&mut stream, &topic, oversized, 4).0, 10, "MESSAGE_TOO_LARGE");

    let truncated = build::batch(0, 1, &[(b"k", b"cut short")]);
    let truncated = truncated[..truncated.len() - 5].to_vec();
    assert_eq!(produce(&mut stream, &topic, truncated, 5).0, 2, "CORRUPT_MESSAGE for a truncated batch");

    // The same connection carries on, and nothing was written by the refused batches.
    let (error, offset) = produce(&mut stream, &topic, build::batch(0, 1, &[(b"k", b"second")]), 6);
    assert_eq!((error, offset), (0, 1), "the next good batch gets the next offset");
}

/// A Metadata request naming 100k unknown topics, with auto-creation allowed: answered for
/// every name, a bounded number created (not 100k topics and their files), others served.
#[test]
fn a_request_naming_100k_topics_creates_a_bounded_number() {
    const NAMES: usize = 100_000;
    const CREATED_MAX: usize = 64;
    let broker = Broker::builder().shards(2).start();
    let mut stream = connect(&broker);
    let topics = (0..NAMES)
        .map(|index| {
            MetadataRequestTopic::default().with_name(Some(TopicName(StrBytes::from_string(format!("flood-{index}")))))
        })
        .collect();
    let request = MetadataRequest::default().with_topics(Some(topics)).with_allow_auto_topic_creation(true);
    let started = std::time::Instant::now();
    let response: MetadataResponse = call(&mut stream, &request, 9, 1);
    assert_eq!(response.topics.len(), NAMES, "every name is answered");
    let created = response.topics.iter().filter(|topic| topic.error_code == 0).count();
    assert!(created > 0 && created <= CREATED_MAX, "{created} topics created by one request");
    let unknown = response.topics.iter().filter(|topic| topic.error_code == 3).count();
    assert_eq!(created + unknown, NAMES, "the rest are UNKNOWN_TOPIC_OR_PARTITION");
    eprintln!("100k-topic Metadata answered in {:?}", started.elapsed());
    api_versions_work(&broker);
}

/// Arrays that announce more elements than the request holds: refused before allocating.
/// (Found by fuzz/kafka_request: 14 bytes made the broker allocate 150 GB and abort.)
#[test]
fn arrays_announcing_more_elements_than_bytes_close_the_connection_not_the_broker() {
    let broker = Broker::builder().shards(2).start();
    // Metadata v0: header (key 3, version 0, correlation 1, no client id), topics: i32::MAX.
    let mut request = Vec::new();
    request.extend_from_slice(&3i16.to_be_bytes());
    request.extend_from_slice(&0i16.to_be_bytes());
    request.extend_from_slice(&1i32.to_be_bytes());
    request.extend_from_slice(&(-1i16).to_be_bytes());
    request.extend_from_slice(&i32::MAX.to_be_bytes());
    // And a flexible version (Metadata v12): compact array length as a huge unsigned varint.
    let mut flexible = Vec::new();
    flexible.extend_from_slice(&3i16.to_be_bytes());
    flexible.extend_from_slice(&12i16.to_be_bytes());
    flexible.extend_from_slice(&2i32.to_be_bytes());
    flexible.extend_from_slice(&(-1i16).to_be_bytes());
    flexible.push(0); // header tagged fields
    flexible.extend_from_slice(&[0xff, 0xff, 0xff, 0xff, 0x07]); // topics: 2^31 - 1 entries
    for body in [request, flexible] {
        let mut stream = connect(&broker);
        let mut frame = (body.len() as i32).to_be_bytes().to_vec();
        frame.extend_from_slice(&body);
        stream.write_all(&frame).unwrap();
        assert_closed(&mut stream, "a request whose array outgrows it");
        api_versions_work(&broker);
    }
}
