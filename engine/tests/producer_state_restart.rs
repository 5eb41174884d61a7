//! Idempotent producers across a restart: their state is snapshotted when segments roll and at
//! close, so a retry after a restart is answered with its original offsets even when the
//! producer's last batch lies in a segment rolled long ago; broken or stale snapshots are
//! never trusted.
#![allow(clippy::unwrap_used, clippy::expect_used)]
mod common;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use sluice_engine::limits::{PRODUCER_SNAPSHOTS_KEPT, PRODUCER_STATE_REBUILD_BYTES};
use sluice_engine::partition::producer_snapshot::{list_snapshots, snapshot_path};
use sluice_engine::partition::producers::ProducerError;
use sluice_engine::partition::{AppendResult, Partition, PartitionConfig, PartitionError};
use sluice_engine::record::batch::{self, build};
use sluice_engine::segment::{list_segments, log_path};
use sluice_engine::sync::Notify;

use common::{crash_image, run};

const PRODUCER: i64 = 42;
/// Writes late, so its batch is in a rolled segment but within the tail a scan would read.
const LATE_PRODUCER: i64 = 43;
/// Filler batches: one per 1 MiB segment.
const FILLER_BYTES: usize = 600 << 10;

async fn open(dir: &Path) -> Rc<Partition> {
    sluice_engine::fs::create_direct_io_probe(dir.parent().unwrap()).unwrap();
    sluice_engine::fs::prime_direct_io(dir.parent().unwrap()).await.unwrap();
    let mut config = PartitionConfig::default();
    config.set("segment.bytes", &(1 << 20).to_string()).unwrap();
    Partition::open(dir, config, Rc::new(Notify::default())).await.unwrap()
}

/// A batch of `records` records from `producer_id` (epoch 0) starting at `sequence`.
fn idempotent(producer_id: i64, sequence: i32, records: usize) -> Vec<u8> {
    let values: Vec<Vec<u8>> =
        (0..records).map(|index| format!("p{producer_id}-s{sequence}-{index}").into_bytes()).collect();
    let pairs: Vec<(&[u8], &[u8])> = values.iter().map(|value| (&b"k"[..], value.as_slice())).collect();
    build::with_producer(build::batch(0, 1, &pairs), producer_id, 0, sequence)
}

async fn append_durable(partition: &Partition, batch: &[u8]) -> AppendResult {
    let appended = partition.append(batch).await.unwrap();
    partition.wait_durable(&appended).await.unwrap();
    appended
}

async fn append_fillers(partition: &Partition, count: usize) {
    let value = vec![b'f'; FILLER_BYTES];
    for _ in 0..count {
        append_durable(partition, &build::batch(0, 1, &[(b"filler", &value)])).await;
    }
}

fn offsets(appended: &AppendResult) -> (i64, i64) {
    (appended.base_offset, appended.last_offset)
}

/// The story every test starts from: `PRODUCER` writes sequences 0-2 and 3-4 at offsets 0-4,
/// then more than `PRODUCER_STATE_REBUILD_BYTES` of other data rolls many segments; then
/// `LATE_PRODUCER` writes sequence 0 and a few more segments follow. Returns the high watermark
/// and the late producer's offsets.
async fn write_history(partition: &Partition) -> (i64, (i64, i64)) {
    assert_eq!(offsets(&append_durable(partition, &idempotent(PRODUCER, 0, 3)).await), (0, 2));
    assert_eq!(offsets(&append_durable(partition, &idempotent(PRODUCER, 3, 2)).await), (3, 4));
    let fillers = (PRODUCER_STATE_REBUILD_BYTES as usize).div_ceil(FILLER_BYTES) + 2;
    append_fillers(partition, fillers).await;
    let late = offsets(&append_durable(partition, &idempotent(LATE_PRODUCER, 0, 1)).await);
    append_fillers(partition, 3).await;
    assert!(partition.segment_count() > fillers, "{} segments", partition.segment_count());
    (partition.high_watermark(), late)
}

/// Checks that both producers' last batches are answered as duplicates with their original
/// offsets, that the next sequence is accepted and that a gap is refused.
async fn assert_producers_remembered(partition: &Partition, high_watermark: i64, late: (i64, i64)) {
    assert_eq!(partition.high_watermark(), high_watermark);
    let retry = partition.append(&idempotent(PRODUCER, 3, 2)).await.unwrap();
    assert_eq!(offsets(&retry), (3, 4), "a retry after the restart gets its original offsets");
    let late_retry = partition.append(&idempotent(LATE_PRODUCER, 0, 1)).await.unwrap();
    assert_eq!(offsets(&late_retry), late);
    assert_eq!(partition.high_watermark(), high_watermark, "retries wrote nothing");
    let gap = partition.append(&idempotent(PRODUCER, 7, 1)).await;
    assert!(
        matches!(gap, Err(PartitionError::Producer(ProducerError::OutOfOrderSequence { expected: 5, found: 7 }))),
        "{gap:?}"
    );
    let next = append_durable(partition, &idempotent(PRODUCER, 5, 1)).await;
    assert_eq!(offsets(&next), (high_watermark, high_watermark), "the next sequence is appended at the end");
}

/// Copies the partition's files as they are now: what a kill -9 would leave (no close snapshot).
fn flip_last_byte(path: &Path) {
    let mut bytes = std::fs::read(path).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0x5a;
    std::fs::write(path, bytes).unwrap();
}

#[test]
fn a_retry_after_restart_is_a_duplicate_even_from_a_long_rolled_segment() {
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path().join("topic/0");
    run(move || async move {
        let partition = open(&dir).await;
        let (high_watermark, late) = write_history(&partition).await;
        let roll_snapshots = list_snapshots(&dir).unwrap();
        assert_eq!(roll_snapshots.len(), PRODUCER_SNAPSHOTS_KEPT, "older snapshots are deleted");
        assert_eq!(roll_snapshots.last(), list_segments(&dir).unwrap().last(), "one per roll, at the new segment");
        partition.close().await;
        drop(partition);
        assert_eq!(list_snapshots(&dir).unwrap().last(), Some(&high_watermark), "a snapshot at close");

        let reopened = open(&dir).await;
        assert_producers_remembered(&reopened, high_watermark, late).await;
        reopened.close().await;
        drop(reopened);

        // Without snapshots only the tail is replayed: the late producer is still found (it
        // wrote within the tail, in a rolled segment) but the first producer's last batch is
        // out of reach, so its retry is refused as out of sequence instead of being answered.
        for offset in list_snapshots(&dir).unwrap() {
            std::fs::remove_file(snapshot_path(&dir, offset)).unwrap();
        }
        let without_snapshots = open(&dir).await;
        let late_retry = without_snapshots.append(&idempotent(LATE_PRODUCER, 0, 1)).await.unwrap();
        assert_eq!(offsets(&late_retry), late, "the tail scan spans segments");
        let lost = without_snapshots.append(&idempotent(PRODUCER, 3, 2)).await;
        assert!(
            matches!(lost, Err(PartitionError::Producer(ProducerError::OutOfOrderSequence { expected: 6, found: 3 }))),
            "{lost:?}"
        );
        without_snapshots.close().await;
    });
}

#[test]
fn after_a_crash_the_log_is_replayed_from_the_last_roll_snapshot_across_segments() {
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path().join("topic/0");
    let image = temp.path().join("crashed/0");
    let older_image = temp.path().join("crashed-older/0");
    run(move || async move {
        let partition = open(&dir).await;
        let (high_watermark, late) = write_history(&partition).await;
        crash_image(&dir, &image);
        crash_image(&dir, &older_image);
        partition.close().await;
        drop(partition);

        let snapshots = list_snapshots(&image).unwrap();
        assert!(snapshots.iter().all(|offset| *offset < high_watermark), "no close snapshot: {snapshots:?}");
        let reopened = open(&image).await;
        assert_producers_remembered(&reopened, high_watermark, late).await;
        reopened.close().await;
        drop(reopened);

        // With only the older snapshot the replay crosses a segment boundary.
        std::fs::remove_file(snapshot_path(&older_image, *snapshots.last().unwrap())).unwrap();
        let reopened = open(&older_image).await;
        assert_producers_remembered(&reopened, high_watermark, late).await;
        reopened.close().await;
    });
}

#[test]
fn a_corrupt_snapshot_is_ignored_and_deleted() {
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path().join("topic/0");
    run(move || async move {
        let partition = open(&dir).await;
        let (high_watermark, late) = write_history(&partition).await;
        partition.close().await;
        drop(partition);

        // The newest (close) snapshot is corrupt: the older one and a replay take its place.
        let newest = *list_snapshots(&dir).unwrap().last().unwrap();
        flip_last_byte(&snapshot_path(&dir, newest));
        let reopened = open(&dir).await;
        assert!(!list_snapshots(&dir).unwrap().contains(&newest), "the corrupt snapshot was deleted");
        assert_producers_remembered(&reopened, high_watermark, late).await;
        reopened.close().await;
        drop(reopened);

        // Every snapshot torn or corrupt: the partition still opens, trusts none of them and
        // falls back to the tail scan.
        let snapshots = list_snapshots(&dir).unwrap();
        assert_eq!(snapshots.len(), PRODUCER_SNAPSHOTS_KEPT);
        let torn = snapshot_path(&dir, snapshots[0]);
        let bytes = std::fs::read(&torn).unwrap();
        std::fs::write(&torn, &bytes[..bytes.len() / 2]).unwrap();
        flip_last_byte(&snapshot_path(&dir, snapshots[1]));
        let reopened = open(&dir).await;
        assert_eq!(list_snapshots(&dir).unwrap(), Vec::<i64>::new(), "both deleted");
        assert_eq!(reopened.high_watermark(), high_watermark + 1);
        let late_retry = reopened.append(&idempotent(LATE_PRODUCER, 0, 1)).await.unwrap();
        assert_eq!(offsets(&late_retry), late);
        let retry = reopened.append(&idempotent(PRODUCER, 5, 1)).await.unwrap();
        assert_eq!(offsets(&retry), (high_watermark, high_watermark), "the tail scan found the batch at the end");
        reopened.close().await;
    });
}

#[test]
fn a_snapshot_past_a_torn_tail_is_not_trusted() {
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path().join("topic/0");
    run(move || async move {
        let partition = open(&dir).await;
        let (high_watermark, _) = write_history(&partition).await;
        let cut = append_durable(&partition, &idempotent(PRODUCER, 5, 2)).await;
        assert_eq!(offsets(&cut), (high_watermark, high_watermark + 1));
        partition.close().await;
        drop(partition);
        assert_eq!(list_snapshots(&dir).unwrap().last(), Some(&(high_watermark + 2)));

        // Tear the last batch: recovery cuts it, so the close snapshot describes a log that no
        // longer exists.
        let active = log_path(&dir, *list_segments(&dir).unwrap().last().unwrap());
        let bytes = std::fs::read(&active).unwrap();
        let last_batch = batch::split(&bytes).map_while(Result::ok).last().unwrap();
        assert_eq!(batch::header(&bytes[last_batch.clone()]).unwrap().base_offset.get(), high_watermark);
        std::fs::OpenOptions::new().write(true).open(&active).unwrap().set_len(last_batch.start as u64 + 30).unwrap();

        let reopened = open(&dir).await;
        assert_eq!(reopened.high_watermark(), high_watermark, "the torn batch was cut");
        assert!(list_snapshots(&dir).unwrap().iter().all(|offset| *offset <= high_watermark));
        let retry = reopened.append(&idempotent(PRODUCER, 3, 2)).await.unwrap();
        assert_eq!(offsets(&retry), (3, 4), "batches before the cut are remembered");
        let rewritten = append_durable(&reopened, &idempotent(PRODUCER, 5, 2)).await;
        assert_eq!(offsets(&rewritten), (high_watermark, high_watermark + 1), "the cut batch is written again");
        reopened.close().await;
    });
}

#[test]
fn retention_keeps_the_snapshots_a_replay_needs() {
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path().join("topic/0");
    run(move || async move {
        let partition = open(&dir).await;
        let (high_watermark, late) = write_history(&partition).await;
        // DeleteRecords into the active segment: every older segment goes, but the snapshot at
        // the active segment's base (below the new log start) is what a replay starts from.
        let active_base = *list_segments(&dir).unwrap().last().unwrap();
        assert!(active_base < high_watermark);
        assert_eq!(partition.delete_records(high_watermark).unwrap(), high_watermark);
        assert!(partition.enforce_retention(0) > 0);
        while partition.enforce_retention(0) > 0 {}
        assert_eq!(list_segments(&dir).unwrap(), [active_base]);
        assert_eq!(list_snapshots(&dir).unwrap(), [active_base], "snapshots below the first segment deleted");
        let image: PathBuf = temp.path().join("crashed/0");
        crash_image(&dir, &image);
        partition.close().await;
        drop(partition);

        let reopened = open(&image).await;
        assert_eq!(reopened.log_start_offset(), high_watermark);
        assert_producers_remembered(&reopened, high_watermark, late).await;
        reopened.close().await;
    });
}

#[test]
fn a_log_without_idempotent_producers_writes_no_snapshots() {
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path().join("topic/0");
    run(move || async move {
        let partition = open(&dir).await;
        append_fillers(&partition, 4).await;
        assert!(partition.segment_count() >= 3);
        partition.close().await;
        drop(partition);
        assert_eq!(list_snapshots(&dir).unwrap(), Vec::<i64>::new());

        let reopened = open(&dir).await;
        append_durable(&reopened, &idempotent(PRODUCER, 0, 1)).await;
        reopened.close().await;
        assert_eq!(list_snapshots(&dir).unwrap(), [reopened.high_watermark()], "the first producer brings one");
    });
}
