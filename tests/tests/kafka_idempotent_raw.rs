//! Story (raw protocol): a producer's retry of a batch it already sent is answered with the
//! original offsets and written once; a batch that skips sequences is refused with
//! OUT_OF_ORDER_SEQUENCE_NUMBER; an older epoch is refused with INVALID_PRODUCER_EPOCH.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::TcpStream;

use bytes::Bytes;
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    InitProducerIdRequest, InitProducerIdResponse, ListOffsetsRequest, ProduceRequest, ProduceResponse, ProducerId,
    TopicName,
};
use kafka_protocol::protocol::StrBytes;
use sluice_engine::record::batch::build;
use sluice_tests::raw::{self, call};
use sluice_tests::Broker;

fn produce(stream: &mut TcpStream, topic: &str, batch: Vec<u8>, correlation_id: i32) -> (i16, i64) {
    let request = ProduceRequest::default().with_acks(-1).with_timeout_ms(10_000).with_topic_data(vec![
        TopicProduceData::default().with_name(TopicName(StrBytes::from_string(topic.to_string()))).with_partition_data(
            vec![PartitionProduceData::default().with_index(0).with_records(Some(Bytes::from(batch)))],
        ),
    ]);
    let response: ProduceResponse = call(stream, &request, 7, correlation_id);
    let partition = &response.responses[0].partition_responses[0];
    (partition.error_code, partition.base_offset)
}

fn high_watermark(stream: &mut TcpStream, topic: &str) -> i64 {
    let request =
        ListOffsetsRequest::default().with_replica_id((-1).into()).with_topics(vec![ListOffsetsTopic::default()
            .with_name(TopicName(StrBytes::from_string(topic.to_string())))
            .with_partitions(vec![ListOffsetsPartition::default().with_partition_index(0).with_timestamp(-1)])]);
    let response = call(stream, &request, 5, 99);
    response.topics[0].partitions[0].offset
}

#[test]
fn retries_are_written_once_and_gaps_and_stale_epochs_are_refused() {
    let broker = Broker::builder().shards(2).start();
    let mut stream = raw::connect(&broker.bootstrap());
    let init: InitProducerIdResponse = call(
        &mut stream,
        &InitProducerIdRequest::default()
            .with_transaction_timeout_ms(60_000)
            .with_producer_id(ProducerId(-1))
            .with_producer_epoch(-1),
        2,
        1,
    );
    assert_eq!(init.error_code, 0);
    let (producer_id, epoch) = (init.producer_id.0, init.producer_epoch);
    assert!(producer_id >= 0);
    let second: InitProducerIdResponse = call(
        &mut stream,
        &InitProducerIdRequest::default().with_producer_id(ProducerId(-1)).with_producer_epoch(-1),
        2,
        2,
    );
    assert_ne!(second.producer_id.0, producer_id, "every producer gets its own id");

    let topic = sluice_tests::unique_topic("idempotent-raw");
    let batch = |sequence: i32, values: &[&[u8]], epoch: i16| {
        let records: Vec<(&[u8], &[u8])> = values.iter().map(|value| (&b"k"[..], *value)).collect();
        build::with_producer(build::batch(0, 1, &records), producer_id, epoch, sequence)
    };
    assert_eq!(produce(&mut stream, &topic, batch(0, &[b"a", b"b"], epoch), 3), (0, 0));
    assert_eq!(
        produce(&mut stream, &topic, batch(0, &[b"a", b"b"], epoch), 4),
        (0, 0),
        "the retry gets the first offsets"
    );
    assert_eq!(high_watermark(&mut stream, &topic), 2, "the retry wrote nothing");
    assert_eq!(produce(&mut stream, &topic, batch(5, &[b"c"], epoch), 5).0, 45, "OUT_OF_ORDER_SEQUENCE_NUMBER");
    assert_eq!(produce(&mut stream, &topic, batch(2, &[b"c"], epoch), 6), (0, 2));
    let bumped = epoch + 1;
    assert_eq!(produce(&mut stream, &topic, batch(0, &[b"d"], bumped), 7), (0, 3), "a new epoch starts at sequence 0");
    assert_eq!(produce(&mut stream, &topic, batch(3, &[b"e"], epoch), 8).0, 47, "INVALID_PRODUCER_EPOCH");
    assert_eq!(high_watermark(&mut stream, &topic), 4);
}
