//! Story: an operator stops a broker and runs `sluice verify --data-dir` on what it left. A
//! cleanly stopped or a killed broker's log passes (exit 0) and the summary names how many
//! batches were checked; a byte flipped in the middle of a segment is damage (exit 1), named by
//! file and offset; a torn tail is a warning (exit 0) that the next start cuts; a data directory
//! that does not exist is a usage error (exit 2).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{ProduceRequest, ProduceResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use sluice_engine::record::batch::{self, build};
use sluice_tests::raw::{self, call};
use sluice_tests::{sluice_bin, Broker, Finished, Running};

const VERIFY_TIMEOUT: Duration = Duration::from_secs(60);
const BATCHES: usize = 20;
const RECORDS_PER_BATCH: usize = 3;

fn verify(data_dir: &Path) -> Finished {
    let mut command = Command::new(sluice_bin());
    command.arg("verify").arg("--data-dir").arg(data_dir);
    Running::spawn(command, None).wait(VERIFY_TIMEOUT)
}

fn exit_code(finished: &Finished) -> Option<i32> {
    finished.status.and_then(|status| status.code())
}

/// Produces `BATCHES` batches of `RECORDS_PER_BATCH` records with acks=all.
fn produce_batches(broker: &Broker, topic: &str) {
    let mut stream = raw::connect(&broker.bootstrap());
    for index in 0..BATCHES {
        let value = format!("value {index} {}", "x".repeat(200));
        let records: Vec<(&[u8], &[u8])> = (0..RECORDS_PER_BATCH).map(|_| (&b"key"[..], value.as_bytes())).collect();
        let (error_code, base_offset) = produce(&mut stream, topic, build::batch(0, 1_000 + index as i64, &records));
        assert_eq!((error_code, base_offset), (0, (index * RECORDS_PER_BATCH) as i64), "batch {index}");
    }
}

fn produce(stream: &mut TcpStream, topic: &str, batch: Vec<u8>) -> (i16, i64) {
    let request = ProduceRequest::default().with_acks(-1).with_timeout_ms(10_000).with_topic_data(vec![
        TopicProduceData::default().with_name(TopicName(StrBytes::from_string(topic.to_string()))).with_partition_data(
            vec![PartitionProduceData::default().with_index(0).with_records(Some(Bytes::from(batch)))],
        ),
    ]);
    let response: ProduceResponse = call(stream, &request, 7, 1);
    let partition = &response.responses[0].partition_responses[0];
    (partition.error_code, partition.base_offset)
}

fn first_segment(broker: &Broker, topic: &str) -> PathBuf {
    broker.data_dir().join("topics").join(topic).join("0").join(format!("{:020}.log", 0))
}

/// Where each batch of a segment file starts, walked with the engine's framing.
fn batch_starts(bytes: &[u8]) -> Vec<usize> {
    let mut starts = Vec::new();
    let mut position = 0;
    while let Ok((_, total_bytes)) = batch::frame(&bytes[position..]) {
        starts.push(position);
        position += total_bytes;
    }
    starts
}

fn assert_clean(finished: &Finished, batches: usize) {
    assert_eq!(exit_code(finished), Some(0), "{}", finished.failure_report());
    let summary = finished.stdout.lines().last().unwrap_or_default();
    assert!(summary.contains(&format!(" {batches} batches")), "{}", finished.failure_report());
    assert!(summary.contains(" 0 problems, 0 warnings: clean"), "{}", finished.failure_report());
    assert_eq!(finished.stdout.lines().count(), 1, "only the summary: {}", finished.failure_report());
}

#[test]
fn a_stopped_brokers_log_passes_and_a_flipped_byte_is_found_by_file_and_offset() {
    let mut broker = Broker::builder().start();
    let topic = sluice_tests::unique_topic("verify");
    produce_batches(&broker, &topic);
    assert!(broker.terminate().success(), "graceful stop");
    assert_clean(&verify(broker.data_dir()), BATCHES);

    // A bit flips inside the eleventh batch's records: damage in the middle of the segment.
    let segment = first_segment(&broker, &topic);
    let original = std::fs::read(&segment).unwrap();
    let starts = batch_starts(&original);
    assert_eq!(starts.len(), BATCHES, "the topic's whole log is in its first segment");
    let mut damaged = original.clone();
    damaged[starts[10] + 150] ^= 0x01;
    std::fs::write(&segment, &damaged).unwrap();
    let finished = verify(broker.data_dir());
    assert_eq!(exit_code(&finished), Some(1), "{}", finished.failure_report());
    let expected =
        format!("damage: {}: byte {}, offset {}: bad CRC", segment.display(), starts[10], 10 * RECORDS_PER_BATCH);
    assert!(finished.stdout.lines().any(|line| line.starts_with(&expected)), "{}", finished.failure_report());
    assert!(finished.stdout.contains(" 1 problems, 0 warnings: DAMAGED"), "{}", finished.failure_report());

    // A torn tail instead: a warning, and what the next start cuts.
    std::fs::write(&segment, &original[..original.len() - 7]).unwrap();
    let finished = verify(broker.data_dir());
    assert_eq!(exit_code(&finished), Some(0), "a torn tail alone is no failure\n{}", finished.failure_report());
    let cut_bytes = original.len() - 7 - starts[BATCHES - 1];
    let expected = format!(
        "warning: {}: byte {}, offset {}: torn tail: recovery will cut {cut_bytes} bytes",
        segment.display(),
        starts[BATCHES - 1],
        (BATCHES - 1) * RECORDS_PER_BATCH
    );
    assert!(finished.stdout.lines().any(|line| line.starts_with(&expected)), "{}", finished.failure_report());
    broker.start(); // recovery cuts the torn tail
    assert!(broker.terminate().success(), "graceful stop after recovery");
    assert_clean(&verify(broker.data_dir()), BATCHES - 1);
}

#[test]
fn a_killed_brokers_padded_active_segment_is_healthy() {
    let mut broker = Broker::builder().start();
    let topic = sluice_tests::unique_topic("verify-kill9");
    produce_batches(&broker, &topic);
    broker.kill9();
    let segment = std::fs::read(first_segment(&broker, &topic)).unwrap();
    let valid_bytes = batch_starts(&segment).last().map(|start| start + batch::frame(&segment[*start..]).unwrap().1);
    assert!(segment.len() > valid_bytes.unwrap(), "the unsealed segment ends in the zero padding of its last block");
    assert_clean(&verify(broker.data_dir()), BATCHES);
}

#[test]
fn a_missing_data_dir_is_a_usage_error() {
    let root = tempfile::tempdir().unwrap();
    let missing = root.path().join("no-such-data");
    let finished = verify(&missing);
    assert_eq!(exit_code(&finished), Some(2), "{}", finished.failure_report());
    assert!(
        finished.stderr.contains(&format!("data directory {} does not exist", missing.display())),
        "{}",
        finished.failure_report()
    );
    assert_eq!(finished.stdout, "", "no report for a directory that is not there");
}
