//! A partition on real direct-I/O files: append, sync, read back, reopen, roll, retain.
#![allow(clippy::unwrap_used, clippy::expect_used)]
mod common;
use std::path::Path;
use std::rc::Rc;

use bytes::Bytes;

use sluice_engine::page_cache;
use sluice_engine::partition::producers::ProducerError;
use sluice_engine::partition::read_ahead;
use sluice_engine::partition::{FileRange, Partition, PartitionConfig, PartitionError, Records};
use sluice_engine::record::batch::{self, build};
use sluice_engine::sync::Notify;

use common::{crash_image, run};

fn record_batch(index: usize, timestamp: i64) -> Vec<u8> {
    let value = format!("value-{index}-").repeat(1 + index % 7);
    build::batch(0, timestamp, &[(format!("key-{index}").as_bytes(), value.as_bytes())])
}

/// Splits fetched records into (base offset, batch bytes without the offset).
fn batches_of(records: &[u8]) -> Vec<(i64, Vec<u8>)> {
    batch::split(records)
        .map(|range| {
            let range = range.unwrap();
            let bytes = &records[range];
            batch::check_crc(bytes).unwrap();
            (batch::header(bytes).unwrap().base_offset.get(), bytes[8..].to_vec())
        })
        .collect()
}

async fn read_all(partition: &Partition, from: i64) -> Vec<(i64, Vec<u8>)> {
    let mut out = Vec::new();
    let mut offset = from;
    while offset < partition.high_watermark() {
        let fetched = partition.read(offset, 64 << 10).await.unwrap();
        let batches = batches_of(&fetched.records);
        assert!(!batches.is_empty(), "read at {offset} below the high watermark returned nothing");
        offset = batches.last().unwrap().0 + 1;
        out.extend(batches);
    }
    out
}

async fn open(dir: &Path, config: PartitionConfig) -> Rc<Partition> {
    sluice_engine::fs::create_direct_io_probe(dir.parent().unwrap()).unwrap();
    sluice_engine::fs::prime_direct_io(dir.parent().unwrap()).await.unwrap();
    Partition::open(dir, config, Rc::new(Notify::default())).await.unwrap()
}

#[test]
fn appended_batches_read_back_identical_after_reopen() {
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path().join("topic/0");
    run(move || async move {
        let partition = open(&dir, PartitionConfig::default()).await;
        let mut expected = Vec::new();
        for index in 0..200 {
            let batch = record_batch(index, 1_000 + index as i64);
            let appended = partition.append(&batch).await.unwrap();
            assert_eq!(appended.base_offset, index as i64);
            if index % 10 == 9 {
                partition.wait_durable(&appended).await.unwrap();
            }
            expected.push((index as i64, batch[8..].to_vec()));
        }
        let last = partition.append(&record_batch(200, 1_200)).await.unwrap();
        partition.wait_durable(&last).await.unwrap();
        expected.push((200, record_batch(200, 1_200)[8..].to_vec()));
        assert_eq!(partition.high_watermark(), 201);
        assert_eq!(read_all(&partition, 0).await, expected, "served from memory");
        assert_eq!(read_all(&partition, 150).await, expected[150..], "read from the middle");
        partition.close().await;
        drop(partition);

        let reopened = open(&dir, PartitionConfig::default()).await;
        assert_eq!(reopened.high_watermark(), 201);
        assert_eq!(read_all(&reopened, 0).await, expected, "served from the segment file");
        assert_eq!(read_all(&reopened, 77).await, expected[77..]);
        let appended = reopened.append(&record_batch(201, 1_201)).await.unwrap();
        assert_eq!(appended.base_offset, 201, "appends continue at the recovered end");
        reopened.wait_durable(&appended).await.unwrap();
        assert_eq!(reopened.offset_for_timestamp(1_100, |_| None).await.unwrap(), Some((100, 1_100)));
        assert_eq!(reopened.offset_for_timestamp(5_000, |_| None).await.unwrap(), None);
        assert!(matches!(reopened.read(500, 1024).await, Err(PartitionError::OffsetOutOfRange { .. })));
        reopened.close().await;
    });
}

#[test]
fn a_batch_handed_over_alone_is_stored_in_place_and_a_shared_one_in_a_copy() {
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path().join("topic/0");
    run(move || async move {
        let partition = open(&dir, PartitionConfig::default()).await;
        partition.append(&record_batch(0, 1_000)).await.unwrap();

        let alone = Bytes::from(record_batch(1, 1_001));
        let (address, length) = (alone.as_ptr(), alone.len());
        let appended = partition.append_bytes(alone).await.unwrap();
        assert_eq!(appended.base_offset, 1);
        partition.wait_durable(&appended).await.unwrap();
        let stored = partition.read(1, length).await.unwrap().records;
        assert_eq!((stored.as_ptr(), stored.len()), (address, length), "kept where it was handed over");
        assert_eq!(batch::header(&stored).unwrap().base_offset.get(), 1, "its base offset patched in place");

        let shared = Bytes::from(record_batch(2, 1_002));
        let appended = partition.append_bytes(shared.clone()).await.unwrap();
        partition.wait_durable(&appended).await.unwrap();
        assert_eq!(batch::header(&shared).unwrap().base_offset.get(), 0, "the caller's bytes stay as they were");
        let stored = partition.read(2, shared.len()).await.unwrap().records;
        assert_ne!(stored.as_ptr(), shared.as_ptr());
        assert_eq!(batches_of(&stored), vec![(2, shared[8..].to_vec())]);
        partition.close().await;
    });
}

/// Reads from `offset` with `max_bytes`, returning the batches and the next offset.
async fn read_once(partition: &Partition, offset: i64, max_bytes: usize) -> (Vec<(i64, Vec<u8>)>, i64) {
    let batches = batches_of(&partition.read(offset, max_bytes).await.unwrap().records);
    assert!(!batches.is_empty(), "read at {offset} below the high watermark returned nothing");
    let next = batches.last().unwrap().0 + 1;
    (batches, next)
}

#[test]
fn catch_up_reads_from_the_segment_file_read_ahead_and_stay_identical() {
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path().join("topic/0");
    run(move || async move {
        let partition = open(&dir, PartitionConfig::default()).await;
        let mut expected = Vec::new();
        for index in 0..3_000 {
            let batch = record_batch(index, index as i64);
            let appended = partition.append(&batch).await.unwrap();
            if index % 100 == 99 {
                partition.wait_durable(&appended).await.unwrap();
            }
            expected.push((index as i64, batch[8..].to_vec()));
        }
        partition.close().await;
        drop(partition);
        assert_eq!(read_ahead::shard_bytes(), 0);

        let reopened = open(&dir, PartitionConfig::default()).await;
        // Two consumers, one catching up from the start and one from the middle, take turns;
        // reads are cut at odd sizes, so read-aheads end inside batches.
        let (mut first, mut second) = ((0_i64, Vec::new()), (1_234_i64, Vec::new()));
        let high_watermark = reopened.high_watermark();
        while first.0 < high_watermark || second.0 < high_watermark {
            for (reader, max_bytes) in [(&mut first, 10_007), (&mut second, 3_001)] {
                if reader.0 < high_watermark {
                    let (batches, next) = read_once(&reopened, reader.0, max_bytes).await;
                    reader.1.extend(batches);
                    reader.0 = next;
                }
            }
            if first.0 < high_watermark {
                assert!(read_ahead::shard_bytes() > 0, "a cold read starts reading what follows");
            }
        }
        assert_eq!(first.1, expected, "read from the start");
        assert_eq!(second.1, expected[1_234..], "read from the middle");
        let (batches, _) = read_once(&reopened, 10, 1).await;
        assert_eq!(batches, expected[10..11], "a seek back reads the file again");
        reopened.close().await;
        assert_eq!(read_ahead::shard_bytes(), 0, "closing gives the read-ahead back");
    });
}

/// The bytes of a file range, read the way sendfile would.
/// Drops the clean cached pages of the file at `path`, so the next read waits for the disk.
fn evict_from_page_cache(path: &Path) {
    use std::os::fd::AsRawFd;
    let file = std::fs::File::open(path).unwrap();
    file.sync_all().unwrap();
    // SAFETY: fadvise on an open descriptor; it only drops clean cached pages.
    assert_eq!(unsafe { libc::posix_fadvise(file.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) }, 0);
}

fn file_bytes(range: &FileRange) -> Vec<u8> {
    use std::os::unix::fs::FileExt;
    let mut bytes = vec![0u8; range.length_bytes];
    range.file.read_exact_at(&mut bytes, range.position).unwrap();
    bytes
}

/// A catch-up read that only the segment file holds comes back as a file range of whole
/// batches (from the index entry at or before the offset, within max_bytes) whose CRCs this
/// process checked: appended by it, or read and checked through the page cache first (an
/// earlier run's segment). A damaged batch is never in a file range and never served.
#[test]
fn checked_cold_ranges_go_out_as_file_ranges() {
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path().join("topic/0");
    run(move || async move {
        let partition = open(&dir, PartitionConfig::default()).await;
        let mut expected = Vec::new();
        // About 12 MiB: more than the memory cache keeps.
        let value = vec![b'v'; 30_000];
        for index in 0..400 {
            let batch = build::batch(0, index, &[(format!("key-{index}").as_bytes(), &value[..])]);
            let appended = partition.append(&batch).await.unwrap();
            if index % 50 == 49 {
                partition.wait_durable(&appended).await.unwrap();
            }
            expected.push((index, batch[8..].to_vec()));
        }
        let high_watermark = partition.high_watermark();
        assert_eq!(high_watermark, 400);

        let mut offset = 0;
        let (mut read, mut file_ranges) = (Vec::new(), 0);
        while offset < high_watermark {
            let sent = partition.read_to_send(offset, 100_000).await.unwrap();
            assert_eq!(sent.high_watermark, high_watermark);
            let batches = match &sent.records {
                Records::File(range) => {
                    file_ranges += 1;
                    assert!(range.length_bytes <= 100_000);
                    let batches = batches_of(&file_bytes(range));
                    assert_eq!(range.offsets, batches[0].0..batches.last().unwrap().0 + 1);
                    batches
                }
                Records::Memory(bytes) => batches_of(bytes),
            };
            assert!(batches[0].0 <= offset && batches.last().unwrap().0 >= offset, "{offset}: {}", batches[0].0);
            read.extend(batches.into_iter().filter(|(base, _)| *base >= offset));
            offset = read.last().unwrap().0 + 1;
        }
        assert_eq!(read, expected);
        // About 4 MiB is past what the memory cache holds: three batches per range.
        assert!(file_ranges >= 35, "the cold part went out as file ranges: {file_ranges}");

        // A batch over max_bytes goes whole (as Kafka returns it, so the consumer moves on),
        // from the file: the range ends at the next index entry.
        let one = partition.read_to_send(7, 1_000).await.unwrap();
        let Records::File(range) = &one.records else { panic!("a batch over max_bytes is sent from the file") };
        assert_eq!(batches_of(&file_bytes(range)), expected[7..8]);
        partition.close().await;
        drop(partition);

        // A flipped byte inside batch 100 of the stopped broker's segment: recovery scans only
        // from the last index entry, so the damage is found when the batch is read.
        let position: usize = expected[..100].iter().map(|(_, bytes)| bytes.len() + 8).sum();
        let log = sluice_engine::segment::log_path(&dir, 0);
        let mut content = std::fs::read(&log).unwrap();
        content[position + 500] ^= 0x40;
        std::fs::write(&log, content).unwrap();

        // Checked in place while the page cache holds the file (it was just written), read
        // through it once evicted: the same answers either way.
        for evicted in [false, true] {
            let reopened = open(&dir, PartitionConfig::default()).await;
            if evicted {
                evict_from_page_cache(&log);
                let cached = page_cache::in_page_cache(&std::fs::File::open(&log).unwrap(), position as u64, 1);
                assert!(!cached.unwrap_or(false), "the damaged batch is not in the page cache");
            }
            // An earlier run's batches are checked before they are sent.
            let older = reopened.read_to_send(0, 100_000).await.unwrap();
            let Records::File(range) = &older.records else { panic!("checked, then sent as a file range") };
            assert_eq!(batches_of(&file_bytes(range)), expected[..3]);
            // Damage inside the range: the batches before it are served (read and checked),
            // the damaged one never.
            let before_damage = reopened.read_to_send(98, 100_000).await.unwrap();
            let Records::Memory(bytes) = before_damage.records else {
                panic!("a damaged range is not sent by sendfile")
            };
            assert_eq!(batches_of(&bytes), expected[98..100]);
            for max_bytes in [100_000, 1_000] {
                let damaged = reopened.read_to_send(100, max_bytes).await;
                assert!(
                    matches!(damaged, Err(PartitionError::Storage { .. })),
                    "a batch failing its CRC is not served ({max_bytes} bytes asked, evicted {evicted}): {damaged:?}"
                );
            }
            let small = reopened.read_to_send(150, 1_000).await.unwrap();
            let Records::File(range) = &small.records else { panic!("checked, then sent whole as a file range") };
            assert_eq!(batches_of(&file_bytes(range)), expected[150..151]);
            reopened.close().await;
        }
    });
}

#[test]
fn corrupt_batches_are_refused_and_nothing_is_written() {
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path().join("topic/0");
    run(move || async move {
        let partition = open(&dir, PartitionConfig::default()).await;
        let mut bad = record_batch(1, 1);
        let last = bad.len() - 1;
        bad[last] ^= 0xff;
        assert!(matches!(partition.append(&bad).await, Err(PartitionError::InvalidBatch(_))));
        let ok = partition.append(&record_batch(2, 2)).await.unwrap();
        assert_eq!(ok.base_offset, 0);
        partition.wait_durable(&ok).await.unwrap();
        assert_eq!(partition.high_watermark(), 1);
        partition.close().await;
    });
}

#[test]
fn segments_roll_and_retention_deletes_the_oldest() {
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path().join("topic/0");
    run(move || async move {
        let mut config = PartitionConfig::default();
        config.set("segment.bytes", &(1 << 20).to_string()).unwrap();
        let partition = open(&dir, config.clone()).await;
        let value = vec![7u8; 100_000];
        let mut last = None;
        for index in 0..40 {
            let batch = build::batch(0, 10_000 + index, &[(b"k", &value)]);
            let appended = partition.append(&batch).await.unwrap();
            partition.wait_durable(&appended).await.unwrap();
            last = Some(appended);
        }
        assert_eq!(last.unwrap().last_offset, 39);
        let segments = partition.segment_count();
        assert!(segments >= 4, "40 x 100 KB in 1 MiB segments made {segments} segments");
        let on_disk = sluice_engine::segment::list_segments(&dir).unwrap();
        assert_eq!(on_disk.len(), segments);

        config.set("retention.bytes", &(2 << 20).to_string()).unwrap();
        partition.set_config(config.clone());
        let deleted = partition.enforce_retention(i64::MAX / 2);
        assert!(deleted > 0);
        assert!(partition.size_bytes() <= 3 << 20, "kept {} bytes", partition.size_bytes());
        let start = partition.log_start_offset();
        assert!(start > 0);
        assert_eq!(
            sluice_engine::segment::list_segments(&dir).unwrap()[0],
            start,
            "files of deleted segments are gone"
        );
        assert!(matches!(partition.read(0, 1024).await, Err(PartitionError::OffsetOutOfRange { .. })));
        assert_eq!(read_all(&partition, start).await.len() as i64, 40 - start);

        assert_eq!(partition.delete_records(35).unwrap(), 35);
        partition.enforce_retention(0);
        assert_eq!(partition.log_start_offset(), 35);
        partition.close().await;
        drop(partition);
        let reopened = open(&dir, config).await;
        assert_eq!(reopened.log_start_offset(), 35, "DeleteRecords survives restart");
        assert_eq!(reopened.high_watermark(), 40);
        reopened.close().await;
    });
}

#[test]
fn many_concurrent_producers_share_syncs() {
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path().join("topic/0");
    run(move || async move {
        let partition = open(&dir, PartitionConfig::default()).await;
        let mut tasks = Vec::new();
        for producer in 0..16 {
            let partition = partition.clone();
            tasks.push(glommio::spawn_local(async move {
                let mut offsets = Vec::new();
                for index in 0..50 {
                    let appended = partition.append(&record_batch(producer * 100 + index, 1)).await.unwrap();
                    partition.wait_durable(&appended).await.unwrap();
                    offsets.push(appended.base_offset);
                }
                offsets
            }));
        }
        let mut all = Vec::new();
        for task in tasks {
            all.extend(task.await);
        }
        all.sort_unstable();
        assert_eq!(all, (0..800).collect::<Vec<i64>>(), "every offset assigned exactly once");
        assert_eq!(read_all(&partition, 0).await.len(), 800);
        partition.close().await;
    });
}

#[test]
fn segments_roll_by_age_and_old_segments_expire() {
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path().join("topic/0");
    run(move || async move {
        let mut config = PartitionConfig::default();
        config.set("segment.ms", "1").unwrap();
        config.set("retention.ms", "60000").unwrap();
        let partition = open(&dir, config).await;
        let now_ms = 10_000_000_i64;
        // Three batches, each in its own segment (segment.ms = 1), the first two an hour old.
        for (index, timestamp) in [now_ms - 3_600_000, now_ms - 3_500_000, now_ms].into_iter().enumerate() {
            let appended = partition.append(&record_batch(index, timestamp)).await.unwrap();
            partition.wait_durable(&appended).await.unwrap();
            glommio::timer::sleep(std::time::Duration::from_millis(3)).await;
        }
        assert_eq!(partition.segment_count(), 3, "segment.ms rolls a segment per batch here");
        assert_eq!(partition.enforce_retention(now_ms), 2, "both hour-old segments expire");
        assert_eq!(partition.log_start_offset(), 2);
        assert_eq!(read_all(&partition, 2).await.len(), 1);
        assert_eq!(partition.enforce_retention(now_ms), 0, "the active segment is never deleted");
        partition.close().await;
    });
}

#[test]
fn idempotent_retries_are_written_once_even_across_a_reopen() {
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path().join("topic/0");
    run(move || async move {
        let partition = open(&dir, PartitionConfig::default()).await;
        let batch = |sequence: i32, records: usize, epoch: i16| {
            let values: Vec<Vec<u8>> = (0..records).map(|index| format!("v{sequence}-{index}").into_bytes()).collect();
            let pairs: Vec<(&[u8], &[u8])> = values.iter().map(|value| (&b"k"[..], value.as_slice())).collect();
            build::with_producer(build::batch(0, 1, &pairs), 42, epoch, sequence)
        };
        let first = partition.append(&batch(0, 3, 0)).await.unwrap();
        assert_eq!((first.base_offset, first.last_offset), (0, 2));
        let retry = partition.append(&batch(0, 3, 0)).await.unwrap();
        assert_eq!((retry.base_offset, retry.last_offset), (0, 2), "a retry gets the original offsets");
        let gap = partition.append(&batch(7, 1, 0)).await;
        assert!(matches!(
            gap,
            Err(PartitionError::Producer(ProducerError::OutOfOrderSequence { expected: 3, found: 7 }))
        ));
        let second = partition.append(&batch(3, 2, 0)).await.unwrap();
        assert_eq!(second.base_offset, 3);
        partition.wait_durable(&second).await.unwrap();
        assert_eq!(partition.high_watermark(), 5, "nothing was written twice");
        partition.close().await;
        drop(partition);

        let reopened = open(&dir, PartitionConfig::default()).await;
        let retry_after_restart = reopened.append(&batch(3, 2, 0)).await.unwrap();
        assert_eq!(retry_after_restart.base_offset, 3, "producer state was rebuilt at open");
        let stale_epoch = reopened.append(&batch(5, 1, -1)).await;
        assert!(matches!(stale_epoch, Err(PartitionError::Producer(ProducerError::InvalidProducerEpoch { .. }))));
        assert_eq!(reopened.high_watermark(), 5);
        reopened.close().await;
    });
}

/// A small flush round writes zeros ahead of its batches, so the rounds after it overwrite
/// allocated blocks inside the file (a cheap fdatasync) instead of growing it; a crash leaves
/// those zeros, which recovery reads as the end of the log; a clean close cuts them. A round
/// over `ZERO_AHEAD_ROUND_BYTES_MAX`, or after rounds that large, writes no zeros ahead.
#[test]
fn small_rounds_write_zeros_ahead_and_the_zeros_end_the_log() {
    use sluice_engine::limits::{ZERO_AHEAD_BYTES, ZERO_AHEAD_ROUND_BYTES_MAX};
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path().join("topic/0");
    let crash_copy = temp.path().join("copy/0");
    let large_dir = temp.path().join("large/0");
    run(move || async move {
        let file_bytes = |path: &Path| std::fs::metadata(path).unwrap().len();
        let large = open(&large_dir, PartitionConfig::default()).await;
        let value = vec![b'v'; ZERO_AHEAD_ROUND_BYTES_MAX];
        let appended = large.append(&build::batch(0, 1_000, &[(b"key", &value[..])])).await.unwrap();
        large.wait_durable(&appended).await.unwrap();
        let large_segment = sluice_engine::segment::log_path(&large_dir, 0);
        assert_eq!(file_bytes(&large_segment), large.size_bytes().next_multiple_of(4096), "no zeros ahead");
        // Nor a small round of a partition whose rounds are large on average.
        let appended = large.append(&build::batch(1, 1_001, &[(b"key", b"small")])).await.unwrap();
        large.wait_durable(&appended).await.unwrap();
        assert_eq!(file_bytes(&large_segment), large.size_bytes().next_multiple_of(4096), "no zeros ahead");
        large.close().await;

        let segment = sluice_engine::segment::log_path(&dir, 0);
        let partition = open(&dir, PartitionConfig::default()).await;
        let first = record_batch(0, 1_000);
        let appended = partition.append(&first).await.unwrap();
        partition.wait_durable(&appended).await.unwrap();
        assert!(file_bytes(&segment) >= ZERO_AHEAD_BYTES, "zeros written ahead: {}", file_bytes(&segment));
        crash_image(&dir, &crash_copy);
        let zeroed_file_bytes = file_bytes(&segment);
        let mut expected = vec![(0, first[8..].to_vec())];
        for index in 1..20 {
            let batch = record_batch(index, 1_000 + index as i64);
            let appended = partition.append(&batch).await.unwrap();
            partition.wait_durable(&appended).await.unwrap();
            expected.push((index as i64, batch[8..].to_vec()));
        }
        assert!(partition.size_bytes() < zeroed_file_bytes / 2, "the appends fit in the zeros");
        assert_eq!(file_bytes(&segment), zeroed_file_bytes, "the appends wrote over the zeros, the file did not grow");
        partition.close().await;
        assert_eq!(file_bytes(&segment), partition.size_bytes(), "closing cut the zeros");
        drop(partition);

        let recovered = open(&crash_copy, PartitionConfig::default()).await;
        assert_eq!(recovered.high_watermark(), 1, "the zeros after the first batch end the log");
        assert_eq!(read_all(&recovered, 0).await, expected[..1]);
        let next = recovered.append(&record_batch(1, 1_001)).await.unwrap();
        recovered.wait_durable(&next).await.unwrap();
        assert_eq!(next.base_offset, 1);
        recovered.close().await;
        let reopened = open(&dir, PartitionConfig::default()).await;
        assert_eq!(read_all(&reopened, 0).await, expected);
        reopened.close().await;
    });
}
