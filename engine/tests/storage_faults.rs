//! A partition on a failing device (injected `Faults`: EIO, ENOSPC, a torn write, a held
//! fdatasync): a failed append is reported, never acknowledged; the high watermark stays at
//! what is durable; every acknowledged batch reads back byte-identical, before and after a
//! crash; once the device works again, appends continue at the durable end.
#![allow(clippy::unwrap_used, clippy::expect_used)]
mod common;
use std::cell::Cell;
use std::path::Path;
use std::rc::Rc;
use std::time::Duration;

use sluice_engine::partition::{AppendResult, Partition, PartitionConfig, PartitionError};
use sluice_engine::record::batch::{self, build};
use sluice_engine::segment::faults::Faults;
use sluice_engine::segment::{list_segments, log_path};
use sluice_engine::sync::Notify;

use common::{crash_image, run};

/// Polls for a held fdatasync at most this many times, `POLL_INTERVAL` apart.
const POLLS_MAX: usize = 10_000;
const POLL_INTERVAL: Duration = Duration::from_millis(1);

fn record_batch(index: usize) -> Vec<u8> {
    let value = format!("value-{index}-").repeat(1 + index % 7);
    build::batch(0, 1_000 + index as i64, &[(format!("key-{index}").as_bytes(), value.as_bytes())])
}

/// `bytes` as stored at `offset`: what a read must return.
fn stored(offset: i64, bytes: &[u8]) -> (i64, Vec<u8>) {
    let mut bytes = bytes.to_vec();
    batch::set_base_offset(&mut bytes, offset);
    (offset, bytes)
}

/// Every durable batch from `from` on, as (base offset, bytes), CRC checked.
async fn read_all(partition: &Partition, from: i64) -> Vec<(i64, Vec<u8>)> {
    let mut out = Vec::new();
    let mut offset = from;
    while offset < partition.high_watermark() {
        let fetched = partition.read(offset, 64 << 10).await.unwrap();
        let before = out.len();
        for range in batch::split(&fetched.records) {
            let bytes = &fetched.records[range.unwrap()];
            batch::check_crc(bytes).unwrap();
            let header = batch::header(bytes).unwrap();
            offset = header.last_offset() + 1;
            out.push((header.base_offset.get(), bytes.to_vec()));
        }
        assert!(out.len() > before, "read below the high watermark returned nothing");
    }
    out
}

async fn open(dir: &Path, faults: Option<Rc<Faults>>) -> Rc<Partition> {
    open_with_config(dir, PartitionConfig::default(), faults).await
}

async fn open_with_config(dir: &Path, config: PartitionConfig, faults: Option<Rc<Faults>>) -> Rc<Partition> {
    let data_dir = dir.parent().unwrap();
    sluice_engine::fs::create_direct_io_probe(data_dir).unwrap();
    sluice_engine::fs::prime_direct_io(data_dir).await.unwrap();
    Partition::open_with_faults(dir, config, Rc::new(Notify::default()), faults).await.unwrap()
}

/// Appends `count` batches with acks=all from `first_index` on; returns them as stored.
async fn append_durable(partition: &Partition, first_index: usize, count: usize) -> Vec<(i64, Vec<u8>)> {
    let mut appended = Vec::new();
    for index in first_index..first_index + count {
        let bytes = record_batch(index);
        let result = partition.append(&bytes).await.unwrap();
        partition.wait_durable(&result).await.unwrap();
        appended.push(stored(result.base_offset, &bytes));
    }
    appended
}

/// Copies the partition's files as they are now: what a kill -9 would leave.
fn segment_file_bytes(dir: &Path) -> u64 {
    let bases = list_segments(dir).unwrap();
    assert_eq!(bases.len(), 1, "one segment");
    std::fs::metadata(log_path(dir, bases[0])).unwrap().len()
}

fn total_bytes(batches: &[(i64, Vec<u8>)]) -> u64 {
    batches.iter().map(|(_, bytes)| bytes.len() as u64).sum()
}

/// Waits for `append` to be durable and expects a storage error naming `cause`.
async fn expect_storage_error(partition: &Partition, append: &AppendResult, cause: &str) {
    match partition.wait_durable(append).await {
        Err(PartitionError::Storage { reason }) => assert!(reason.contains(cause), "{reason:?} should name {cause:?}"),
        other => panic!("offset {} should fail with a storage error, got {other:?}", append.base_offset),
    }
}

#[derive(Debug, Clone, Copy)]
enum DeviceFault {
    WriteFails(i32),
    SyncFails(i32),
}

impl DeviceFault {
    fn arm(self, faults: &Faults) {
        match self {
            Self::WriteFails(errno) => faults.fail_writes(errno),
            Self::SyncFails(errno) => faults.fail_syncs(errno),
        }
    }

    fn cause(self) -> String {
        let (Self::WriteFails(errno) | Self::SyncFails(errno)) = self;
        std::io::Error::from_raw_os_error(errno).to_string()
    }
}

#[test]
fn a_failed_write_or_sync_is_reported_and_appends_resume_at_the_durable_end() {
    let faults =
        [DeviceFault::WriteFails(libc::ENOSPC), DeviceFault::WriteFails(libc::EIO), DeviceFault::SyncFails(libc::EIO)];
    for fault in faults {
        let temp = tempfile::tempdir().unwrap();
        let dir = temp.path().join("topic/0");
        run(move || async move {
            let first = open(&dir, None).await;
            let mut acknowledged = append_durable(&first, 0, 10).await;
            first.close().await;
            drop(first);
            // Reopened, the partition has nothing cached: reads below go to the segment file.
            let injected = Rc::new(Faults::default());
            let partition = open(&dir, Some(injected.clone())).await;

            fault.arm(&injected);
            // Three appends in one group commit: ordered in memory (acks=1), never durable.
            let mut failed = Vec::new();
            for index in 10..13 {
                failed.push(partition.append(&record_batch(index)).await.unwrap());
            }
            assert_eq!(failed.iter().map(|append| append.base_offset).collect::<Vec<_>>(), [10, 11, 12]);
            for append in &failed {
                expect_storage_error(&partition, append, &fault.cause()).await;
            }
            assert_eq!(partition.high_watermark(), 10, "{fault:?}: the high watermark stays at the durable end");
            assert_eq!(read_all(&partition, 0).await, acknowledged, "{fault:?}: acknowledged batches read back");
            assert!(partition.read(10, 1 << 20).await.unwrap().records.is_empty(), "nothing past the durable end");
            assert!(matches!(partition.read(11, 1 << 20).await, Err(PartitionError::OffsetOutOfRange { .. })));

            // While the device still fails, every append fails; the offsets are handed out again.
            let retried = partition.append(&record_batch(13)).await.unwrap();
            assert_eq!(retried.base_offset, 10, "a rollback gives the failed offsets back");
            expect_storage_error(&partition, &retried, &fault.cause()).await;

            injected.clear();
            acknowledged.extend(append_durable(&partition, 14, 3).await);
            assert_eq!(acknowledged[10].0, 10, "{fault:?}: appends continue at the durable end");
            assert_eq!(partition.high_watermark(), 13);
            assert_eq!(read_all(&partition, 0).await, acknowledged);
            partition.close().await;
            drop(partition);

            let reopened = open(&dir, None).await;
            assert_eq!(read_all(&reopened, 0).await, acknowledged, "{fault:?}: no failed batch after a reopen");
            assert_eq!(segment_file_bytes(&dir), total_bytes(&acknowledged));
            reopened.close().await;
        });
    }
}

#[test]
fn a_torn_write_is_cut_at_recovery_and_every_acknowledged_batch_is_kept() {
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path().join("topic/0");
    let image = temp.path().join("crashed/0");
    run(move || async move {
        let injected = Rc::new(Faults::default());
        let partition = open(&dir, Some(injected.clone())).await;
        let mut acknowledged = append_durable(&partition, 0, 10).await;

        // One round of three batches; the write puts the first and half the second on disk.
        let torn: Vec<Vec<u8>> = (10..13).map(record_batch).collect();
        injected.tear_next_write(torn[0].len() + torn[1].len() / 2);
        let mut failed = Vec::new();
        for bytes in &torn {
            failed.push(partition.append(bytes).await.unwrap());
        }
        for append in &failed {
            expect_storage_error(&partition, append, "Input/output error").await;
        }
        assert_eq!(partition.high_watermark(), 10);
        assert_eq!(read_all(&partition, 0).await, acknowledged, "the torn bytes are never served");
        crash_image(&dir, &image);

        // The live partition carries on at the durable end, over the torn bytes.
        let next = append_durable(&partition, 20, 1).await;
        assert_eq!(next[0].0, 10);
        acknowledged.extend(next);
        assert_eq!(read_all(&partition, 0).await, acknowledged);
        partition.close().await;
        drop(partition);

        // After a crash at the torn write, recovery keeps every whole batch and cuts the torn
        // one. The first batch of the failed round is whole on disk, so it is kept, like any
        // write a crash interrupts before its answer; the half batch and the one never written
        // are gone, and the file ends where the last whole batch does.
        let recovered = open(&image, None).await;
        let mut expected = acknowledged[..10].to_vec();
        expected.push(stored(10, &torn[0]));
        assert_eq!(read_all(&recovered, 0).await, expected);
        assert_eq!(segment_file_bytes(&image), total_bytes(&expected), "the torn tail is cut");
        let after = recovered.append(&record_batch(30)).await.unwrap();
        assert_eq!(after.base_offset, 11, "appends continue after the recovered end");
        recovered.wait_durable(&after).await.unwrap();
        recovered.close().await;

        let reopened = open(&dir, None).await;
        assert_eq!(read_all(&reopened, 0).await, acknowledged, "the rewritten tail replaced the torn one");
        reopened.close().await;
    });
}

#[test]
fn a_slow_fsync_holds_acks_all_on_its_partition_and_no_other() {
    let temp = tempfile::tempdir().unwrap();
    let slow_dir = temp.path().join("slow/0");
    let fast_dir = temp.path().join("fast/0");
    run(move || async move {
        let injected = Rc::new(Faults::default());
        let slow = open(&slow_dir, Some(injected.clone())).await;
        let fast = open(&fast_dir, None).await;
        injected.hold_syncs();

        let first = slow.append(&record_batch(0)).await.unwrap();
        let durable = Rc::new(Cell::new(false));
        let waiter = glommio::spawn_local({
            let (slow, durable) = (slow.clone(), durable.clone());
            async move {
                slow.wait_durable(&first).await.unwrap();
                durable.set(true);
            }
        });
        let mut polls = 0;
        while injected.syncs_waiting() == 0 {
            polls += 1;
            assert!(polls < POLLS_MAX, "the flusher never reached its fdatasync");
            glommio::timer::sleep(POLL_INTERVAL).await;
        }

        // While the slow partition's fdatasync hangs, the other partition appends, syncs and
        // serves; the slow one still takes acks=1 appends, and shows readers nothing new.
        let fast_batches = append_durable(&fast, 0, 3).await;
        assert_eq!(read_all(&fast, 0).await, fast_batches);
        let second = slow.append(&record_batch(1)).await.unwrap();
        assert_eq!(second.base_offset, 1, "acks=1 is answered while the sync hangs");
        assert!(!durable.get(), "acks=all waits for the held fdatasync");
        assert_eq!(slow.high_watermark(), 0);
        assert!(slow.read(0, 1 << 20).await.unwrap().records.is_empty());
        assert_eq!(injected.syncs_waiting(), 1, "one fdatasync in flight per partition");

        injected.release_syncs();
        waiter.await;
        assert!(durable.get());
        slow.wait_durable(&second).await.unwrap();
        let expected = vec![stored(0, &record_batch(0)), stored(1, &record_batch(1))];
        assert_eq!(read_all(&slow, 0).await, expected);
        slow.close().await;
        fast.close().await;
    });
}

/// A batch of exactly `size_bytes`, its value made of `fill`.
fn batch_of_size(size_bytes: usize, fill: u8) -> Vec<u8> {
    (0..size_bytes)
        .map(|value_bytes| build::batch(0, 1_000, &[(&b"key"[..], &vec![fill; value_bytes][..])]))
        .find(|bytes| bytes.len() == size_bytes)
        .expect("some value length gives the size")
}

#[test]
fn a_batch_whose_write_failed_does_not_reappear_behind_newer_ones_after_a_crash() {
    for torn in [false, true] {
        let temp = tempfile::tempdir().unwrap();
        let dir = temp.path().join("topic/0");
        let image = temp.path().join("crashed/0");
        run(move || async move {
            let injected = Rc::new(Faults::default());
            let partition = open(&dir, Some(injected.clone())).await;
            // The first batch ends on a block boundary, so the zero padding of a later write of
            // the same size does not reach the second.
            let block_bytes = sluice_engine::limits::DMA_BLOCK_BYTES as usize;
            let (first, second) = (batch_of_size(block_bytes, b'a'), record_batch(1));
            if torn {
                // Both batches land whole, the write fails at the end.
                injected.tear_next_write(first.len() + second.len());
            } else {
                injected.fail_syncs(libc::EIO);
            }
            let failed = [partition.append(&first).await.unwrap(), partition.append(&second).await.unwrap()];
            for append in &failed {
                expect_storage_error(&partition, append, "Input/output error").await;
            }
            injected.clear();
            let newer = batch_of_size(block_bytes, b'b');
            let appended = partition.append(&newer).await.unwrap();
            partition.wait_durable(&appended).await.unwrap();
            assert_eq!(appended.base_offset, 0);
            crash_image(&dir, &image);
            partition.close().await;

            // The failed second batch, with the right offset (1), would start right where the
            // newer batch ends: recovery would take it as the next batch, so a batch its
            // producer was told had failed (and retried) would appear after a newer one.
            let recovered = open(&image, None).await;
            let batches = read_all(&recovered, 0).await;
            let offsets: Vec<i64> = batches.iter().map(|(offset, _)| *offset).collect();
            assert_eq!(offsets, [0], "torn: {torn}: only the newer batch is in the log");
            assert!(batches == [stored(0, &newer)], "the newer batch reads back byte-identical");
            recovered.close().await;
        });
    }
}

#[test]
fn a_write_that_fails_at_a_segment_roll_leaves_the_old_segment_whole() {
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path().join("topic/0");
    run(move || async move {
        let mut config = PartitionConfig::default();
        config.set("segment.bytes", &(1 << 20).to_string()).unwrap();
        let injected = Rc::new(Faults::default());
        let partition = open_with_config(&dir, config.clone(), Some(injected.clone())).await;
        let value = vec![7u8; 100_000];
        let big_batch = |index: i64| build::batch(0, 1_000 + index, &[(&b"k"[..], &value[..])]);
        let mut acknowledged = Vec::new();
        for index in 0..10 {
            let appended = partition.append(&big_batch(index)).await.unwrap();
            partition.wait_durable(&appended).await.unwrap();
            acknowledged.push(stored(appended.base_offset, &big_batch(index)));
        }
        assert_eq!(list_segments(&dir).unwrap(), [0], "10 x 100 KB fit one 1 MiB segment");

        // The 11th batch rolls to a new segment, whose first write fails.
        injected.fail_writes(libc::ENOSPC);
        let failed = partition.append(&big_batch(10)).await.unwrap();
        expect_storage_error(&partition, &failed, "No space left on device").await;
        assert_eq!(partition.high_watermark(), 10);
        assert_eq!(read_all(&partition, 0).await, acknowledged);

        injected.clear();
        let appended = partition.append(&big_batch(11)).await.unwrap();
        partition.wait_durable(&appended).await.unwrap();
        assert_eq!(appended.base_offset, 10);
        acknowledged.push(stored(10, &big_batch(11)));
        assert_eq!(list_segments(&dir).unwrap(), [0, 10], "the new segment starts at the durable end");
        assert_eq!(read_all(&partition, 0).await, acknowledged);
        partition.close().await;
        drop(partition);

        let reopened = open_with_config(&dir, config, None).await;
        assert_eq!(read_all(&reopened, 0).await, acknowledged);
        assert_eq!(reopened.segment_count(), 2);
        reopened.close().await;
    });
}
