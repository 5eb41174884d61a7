//! Story: the disk fills up under a producer. Produce with acks=all gets KAFKA_STORAGE_ERROR
//! and XADD a storage error; nothing acknowledged before is harmed and it can still be read;
//! when space comes back, writes succeed again without a restart.
//!
//! Needs root (a small ext4 filesystem on a loop device); skipped loudly otherwise.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{FetchRequest, FetchResponse, ProduceRequest, ProduceResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use sluice_engine::record::batch::{self, build};
use sluice_tests::raw::{self, call};
use sluice_tests::{wait_until, Broker};

const FILESYSTEM_BYTES: u64 = 64 << 20;
/// Space left for the broker once the ballast is written.
const ROOM_BYTES: u64 = 6 << 20;
const RECORD_BYTES: usize = 1024;
const RECORDS_PER_BATCH: usize = 32;
/// Upper bound on batches sent before the disk must be full.
const BATCHES_MAX: usize = 2_000;
const KAFKA_STORAGE_ERROR: i16 = 56;
/// Upper bound on XADDs of 1 KiB sent to a full disk before one must be refused.
const XADDS_MAX: usize = 64;
const RECOVERY_TIMEOUT: Duration = Duration::from_secs(30);

/// A small ext4 filesystem on a loop device, unmounted on drop.
struct SmallFilesystem {
    _image_dir: tempfile::TempDir,
    mount_point: PathBuf,
}

impl SmallFilesystem {
    fn mount() -> Option<Self> {
        let image_dir = tempfile::tempdir().ok()?;
        let image = image_dir.path().join("disk.img");
        let mount_point = image_dir.path().join("mnt");
        std::fs::create_dir_all(&mount_point).ok()?;
        std::fs::File::create(&image).ok()?.set_len(FILESYSTEM_BYTES).ok()?;
        let ran = |program: &str, args: &[&str]| {
            Command::new(program).args(args).output().map(|output| output.status.success()).unwrap_or(false)
        };
        let (image_text, mount_text) = (image.to_str()?, mount_point.to_str()?);
        if !ran("mkfs.ext4", &["-q", "-F", image_text]) || !ran("mount", &["-o", "loop", image_text, mount_text]) {
            return None;
        }
        Some(Self { _image_dir: image_dir, mount_point })
    }

    fn available_bytes(&self) -> u64 {
        let output = Command::new("df").args(["--output=avail", "-B1"]).arg(&self.mount_point).output().unwrap();
        String::from_utf8_lossy(&output.stdout).lines().nth(1).unwrap().trim().parse().unwrap()
    }
}

impl Drop for SmallFilesystem {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.mount_point).status();
    }
}

fn topic_name(topic: &str) -> TopicName {
    TopicName(StrBytes::from_string(topic.to_string()))
}

fn produce(stream: &mut TcpStream, topic: &str, correlation_id: i32) -> i16 {
    let value = vec![b'x'; RECORD_BYTES];
    let pairs: Vec<(&[u8], &[u8])> = (0..RECORDS_PER_BATCH).map(|_| (&b"k"[..], &value[..])).collect();
    let records = Bytes::from(build::batch(0, 1_000, &pairs));
    let request = ProduceRequest::default().with_acks(-1).with_timeout_ms(10_000).with_topic_data(vec![
        TopicProduceData::default()
            .with_name(topic_name(topic))
            .with_partition_data(vec![PartitionProduceData::default().with_index(0).with_records(Some(records))]),
    ]);
    let response: ProduceResponse = call(stream, &request, 7, correlation_id);
    response.responses[0].partition_responses[0].error_code
}

/// Every record of partition 0 from offset 0, by fetching until the high watermark.
fn read_all(stream: &mut TcpStream, topic: &str) -> (i64, usize) {
    let mut offset = 0i64;
    let mut records = 0usize;
    loop {
        let request =
            FetchRequest::default().with_max_wait_ms(0).with_max_bytes(4 << 20).with_topics(vec![FetchTopic::default(
            )
            .with_topic(topic_name(topic))
            .with_partitions(vec![FetchPartition::default()
                .with_partition(0)
                .with_fetch_offset(offset)
                .with_partition_max_bytes(4 << 20)])]);
        let response: FetchResponse = call(stream, &request, 11, 7);
        let partition = &response.responses[0].partitions[0];
        assert_eq!(partition.error_code, 0, "fetch at offset {offset}");
        let bytes = partition.records.clone().unwrap_or_default();
        if bytes.is_empty() {
            return (partition.high_watermark, records);
        }
        for range in batch::split(&bytes).map(Result::unwrap) {
            let info = batch::validate(&bytes[range.clone()], usize::MAX).expect("a served batch is valid");
            records += info.records_count as usize;
            offset = batch::header(&bytes[range]).unwrap().last_offset() + 1;
        }
    }
}

fn resp(broker: &Broker, command: &str) -> String {
    let mut stream = TcpStream::connect(broker.resp_addr()).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
    stream.write_all(command.as_bytes()).unwrap();
    let mut reply = vec![0u8; 512];
    let read = stream.read(&mut reply).unwrap();
    String::from_utf8_lossy(&reply[..read]).into_owned()
}

fn ballast(path: &Path, bytes: u64) {
    let mut file = std::fs::File::create(path).unwrap();
    let block = vec![0xabu8; 1 << 20];
    for _ in 0..bytes / block.len() as u64 {
        file.write_all(&block).unwrap();
    }
    file.sync_all().unwrap();
}

/// Writes 4 KiB blocks into `path` until the filesystem has no room left.
fn fill_until_full(path: &Path) {
    let mut file = std::fs::File::create(path).unwrap();
    let block = [0x5au8; 4096];
    while file.write_all(&block).and_then(|()| file.sync_data()).is_ok() {}
}

#[test]
fn a_full_disk_refuses_writes_keeps_what_was_acknowledged_and_recovers() {
    let Some(filesystem) = SmallFilesystem::mount() else {
        eprintln!("SKIPPED: cannot mount a loop filesystem here (needs root, mkfs.ext4 and loop devices)");
        return;
    };
    let data_dir = filesystem.mount_point.join("data");
    let broker = Broker::builder().shards(2).data_dir(&data_dir).start();
    let ballast_path = filesystem.mount_point.join("ballast");
    ballast(&ballast_path, filesystem.available_bytes().saturating_sub(ROOM_BYTES));

    let mut stream = raw::connect(&broker.bootstrap());
    let mut acknowledged_batches = 0usize;
    let mut refusal = 0;
    for attempt in 0..BATCHES_MAX {
        match produce(&mut stream, "fills", attempt as i32) {
            0 => acknowledged_batches += 1,
            error => {
                refusal = error;
                break;
            }
        }
    }
    assert_eq!(refusal, KAFKA_STORAGE_ERROR, "a full disk refuses acks=all produce with KAFKA_STORAGE_ERROR");
    assert!(acknowledged_batches > 0, "some batches fit before the disk filled");
    // The last blocks too: a 32 KiB batch no longer fit, a small entry still might.
    let last_blocks = filesystem.mount_point.join("last-blocks");
    fill_until_full(&last_blocks);
    // Small entries still fit in the last block already allocated; the next block does not.
    let field = "v".repeat(1000);
    let xadd_command = format!("*5\r\n$4\r\nXADD\r\n$5\r\nfills\r\n$1\r\n*\r\n$1\r\nf\r\n$1000\r\n{field}\r\n");
    let mut xadds_acknowledged = 0;
    let refused = (0..XADDS_MAX).find_map(|_| {
        let reply = resp(&broker, &xadd_command);
        if reply.starts_with('$') {
            xadds_acknowledged += 1;
            None
        } else {
            Some(reply)
        }
    });
    let refused = refused.expect("XADD kept succeeding on a full disk");
    assert!(refused.starts_with("-ERR storage"), "XADD on a full disk: {refused}");

    // What was acknowledged is intact and readable.
    let (high_watermark, records) = read_all(&mut stream, "fills");
    assert_eq!(
        records,
        acknowledged_batches * RECORDS_PER_BATCH + xadds_acknowledged,
        "records readable on the full disk"
    );
    assert_eq!(high_watermark, records as i64);

    // Space comes back: writes succeed again, right after what was acknowledged.
    std::fs::remove_file(&ballast_path).unwrap();
    std::fs::remove_file(&last_blocks).unwrap();
    let mut correlation_id = 10_000;
    let resumed = wait_until(RECOVERY_TIMEOUT, || {
        correlation_id += 1;
        produce(&mut stream, "fills", correlation_id) == 0
    });
    assert!(resumed, "produce did not succeed again within {RECOVERY_TIMEOUT:?} after space came back");
    let (high_watermark, records) = read_all(&mut stream, "fills");
    assert_eq!(records, (acknowledged_batches + 1) * RECORDS_PER_BATCH + xadds_acknowledged);
    assert_eq!(high_watermark, records as i64, "no gap and no duplicate after the refusal");
    let xadd = resp(&broker, "*5\r\n$4\r\nXADD\r\n$5\r\nfills\r\n$1\r\n*\r\n$1\r\nf\r\n$1\r\nv\r\n");
    assert!(xadd.starts_with('$'), "XADD works again: {xadd}");
    drop(broker);
}
