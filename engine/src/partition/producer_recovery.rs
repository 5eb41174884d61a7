//! Rebuilding idempotent producers' state at open: load the newest trustworthy snapshot, then
//! replay the batch headers written since it, across segments.
//!
//! Startup stays bounded. A snapshot is written at every segment roll and at every clean
//! close, so the replay normally covers at most the active segment (nothing after a clean
//! close). With no usable snapshot (the first start of a partition written before snapshots
//! existed, or every snapshot corrupt) the last `PRODUCER_STATE_REBUILD_BYTES` of the log are
//! replayed, across segments, and a producer silent for longer than that starts afresh.
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::path::Path;

use super::producer_snapshot::{self, ProducerSnapshot};
use super::producers::ProducerTable;
use crate::index::offset_index::OffsetIndex;
use crate::limits::{PRODUCER_STATE_REBUILD_BYTES, READ_CHUNK_BYTES};
use crate::record::batch::{self, BATCH_HEADER_BYTES};
use crate::segment;

/// What producer recovery needs to know of one recovered segment.
pub(super) struct SegmentExtent<'a> {
    pub(super) base_offset: i64,
    /// Bytes of valid batches (recovery already cut any torn tail).
    pub(super) size_bytes: u64,
    pub(super) offset_index: &'a OffsetIndex,
}

/// The recovered table and how it was found, for the open log line.
pub(super) struct RecoveredProducers {
    pub(super) table: ProducerTable,
    pub(super) snapshot_offset: Option<i64>,
    pub(super) replayed_batches: u64,
}

/// Where a replay starts: a batch boundary in one segment; batches below `offset_min` there
/// are already in the table.
struct ReplayStart {
    segment_index: usize,
    position: u64,
    offset_min: i64,
}

/// Rebuilds the producer table of the log made of `segments` (oldest first) ending at
/// `next_offset`. Snapshots that cannot be used are deleted: those past `next_offset` (the log
/// was cut below them), those below the first segment (their log is gone) and corrupt ones.
pub(super) fn recover_producers(
    dir: &Path,
    segments: &[SegmentExtent<'_>],
    next_offset: i64,
) -> std::io::Result<RecoveredProducers> {
    let first_base = segments.first().map_or(next_offset, |segment| segment.base_offset);
    let snapshot = load_newest_snapshot(dir, first_base, next_offset)?;
    let snapshot_offset = snapshot.as_ref().map(|snapshot| snapshot.offset);
    let (mut table, start) = match snapshot {
        Some(snapshot) if snapshot.offset == next_offset => (snapshot.table, None),
        Some(snapshot) => (snapshot.table, Some(start_at_offset(segments, snapshot.offset))),
        None => (ProducerTable::default(), start_of_tail(segments)),
    };
    let mut replayed_batches = 0;
    if let Some(start) = start {
        for (index, segment) in segments.iter().enumerate().skip(start.segment_index) {
            let position = if index == start.segment_index { start.position } else { 0 };
            replayed_batches += replay_segment(dir, segment, position, start.offset_min, &mut table)?;
        }
    }
    Ok(RecoveredProducers { table, snapshot_offset, replayed_batches })
}

/// The newest valid snapshot with `offset_min <= offset <= offset_max`.
fn load_newest_snapshot(dir: &Path, offset_min: i64, offset_max: i64) -> std::io::Result<Option<ProducerSnapshot>> {
    for offset in producer_snapshot::list_snapshots(dir)?.into_iter().rev() {
        if offset > offset_max || offset < offset_min {
            tracing::warn!(dir = %dir.display(), offset, log_start = offset_min, log_end = offset_max, "deleting a producer snapshot outside the log");
            producer_snapshot::delete_snapshot(dir, offset);
            continue;
        }
        match producer_snapshot::read_snapshot(dir, offset) {
            Ok(Ok(snapshot)) => return Ok(Some(snapshot)),
            Ok(Err(error)) => {
                tracing::warn!(dir = %dir.display(), offset, %error, "deleting a corrupt producer snapshot");
                producer_snapshot::delete_snapshot(dir, offset);
            }
            Err(error) => {
                tracing::warn!(dir = %dir.display(), offset, %error, "reading a producer snapshot failed; trying an older one");
            }
        }
    }
    Ok(None)
}

/// The replay start for a snapshot at `offset`: the index entry at or before it.
fn start_at_offset(segments: &[SegmentExtent<'_>], offset: i64) -> ReplayStart {
    let segment_index = segments.partition_point(|segment| segment.base_offset <= offset).saturating_sub(1);
    let segment = &segments[segment_index];
    assert!(offset >= segment.base_offset, "snapshot {offset} below the first segment {}", segment.base_offset);
    let relative_offset = u32::try_from(offset - segment.base_offset).unwrap_or(u32::MAX);
    let position = u64::from(segment.offset_index.lookup(relative_offset));
    ReplayStart { segment_index, position, offset_min: offset }
}

/// The replay start with no snapshot: the index entry at or before the point
/// `PRODUCER_STATE_REBUILD_BYTES` before the end of the log (or the log's start).
fn start_of_tail(segments: &[SegmentExtent<'_>]) -> Option<ReplayStart> {
    let mut remaining_bytes = PRODUCER_STATE_REBUILD_BYTES;
    for (segment_index, segment) in segments.iter().enumerate().rev() {
        if segment.size_bytes >= remaining_bytes {
            let wanted_position = segment.size_bytes - remaining_bytes;
            let position = segment
                .offset_index
                .entries()
                .iter()
                .rev()
                .map(|entry| u64::from(entry.position.get()))
                .find(|position| *position <= wanted_position)
                .unwrap_or(0);
            return Some(ReplayStart { segment_index, position, offset_min: i64::MIN });
        }
        remaining_bytes -= segment.size_bytes;
    }
    (!segments.is_empty()).then_some(ReplayStart { segment_index: 0, position: 0, offset_min: i64::MIN })
}

/// Records the idempotent batches of `segment` from `position` on, reading only their
/// headers. Returns how many batches were recorded.
fn replay_segment(
    dir: &Path,
    segment: &SegmentExtent<'_>,
    mut position: u64,
    offset_min: i64,
    table: &mut ProducerTable,
) -> std::io::Result<u64> {
    if position >= segment.size_bytes {
        return Ok(0);
    }
    let file = std::fs::File::open(segment::log_path(dir, segment.base_offset))?;
    let mut reader = BufReader::with_capacity(READ_CHUNK_BYTES, file);
    reader.seek(SeekFrom::Start(position))?;
    let mut header_bytes = [0u8; BATCH_HEADER_BYTES];
    let mut recorded = 0;
    while position + BATCH_HEADER_BYTES as u64 <= segment.size_bytes {
        reader.read_exact(&mut header_bytes)?;
        let header = batch::header(&header_bytes).map_err(std::io::Error::other)?;
        let size_bytes = header.total_bytes() as u64;
        if header.magic != batch::MAGIC_V2
            || size_bytes < BATCH_HEADER_BYTES as u64
            || position + size_bytes > segment.size_bytes
        {
            // Recovery checked every batch up to `size_bytes`, so this is an index entry that
            // pointed inside a batch or a file changed under us. Producers lose what follows
            // in this segment (as with no snapshot), the partition still opens.
            tracing::warn!(dir = %dir.display(), segment = segment.base_offset, position, "bad batch header while replaying producer state; skipping the rest of the segment");
            break;
        }
        if header.base_offset.get() >= offset_min && header.producer_id.get() >= 0 {
            let (producer_id, epoch, sequence) =
                (header.producer_id.get(), header.producer_epoch.get(), header.base_sequence.get());
            let (records_count, base_offset) = (header.records_count.get(), header.base_offset.get());
            table.record(producer_id, epoch, sequence, records_count, base_offset, header.last_offset());
            recorded += 1;
        }
        reader.seek_relative((size_bytes - BATCH_HEADER_BYTES as u64) as i64)?;
        position += size_bytes;
    }
    Ok(recorded)
}
