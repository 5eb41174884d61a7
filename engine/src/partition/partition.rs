//! One partition's log: append, group-commit flush, read, recovery at open.
//!
//! Data flow: `append` validates a batch, assigns offsets by patching `baseOffset`, and queues
//! it (ordered in memory). The partition's flusher task writes whatever is queued with one
//! direct write and one fdatasync per round (group commit: appends that arrive during a round
//! join the next). When the sync returns, the batches become durable: the high watermark moves,
//! `wait_durable` callers (acks=all) and fetch long-polls wake. Readers only ever see durable
//! batches, so nothing a consumer saw can vanish in a crash.
//!
//! Idempotent producers' state is checked at append, recorded again when the batch is durable,
//! snapshotted at every roll and at close (`producer_snapshot`) and rebuilt at open from the
//! newest snapshot plus the log written since (`producer_recovery`).
//!
//! A `Partition` lives on the shard that owns it and is never shared with another thread.
use std::cell::RefCell;
use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use glommio::io::{BufferedFile, DmaFile};

use super::config::PartitionConfig;
use super::producer_recovery::{self, SegmentExtent};
use super::producer_snapshot;
use super::producers::{ProducerError, ProducerTable, SequenceCheck};
use super::read_ahead::{ReadAhead, ReadStart};
use crate::index::offset_index::{OffsetIndex, OffsetIndexEntry};
use crate::index::time_index::{TimeIndex, TimeIndexEntry};
use crate::limits::*;
use crate::metrics::StorageMetrics;
use crate::page_cache;
use crate::record::batch::{self, BatchError, Decompress};
use crate::segment::{self, appender::SegmentAppender, faults::Faults, reader, recovery};
use crate::sync::Notify;

const LOG_START_OFFSET_FILE: &str = "log-start-offset";
/// Rollbacks remembered so that waiters can tell whether their append survived one.
const ROLLBACK_HISTORY_MAX: usize = 64;

#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum PartitionError {
    InvalidBatch(BatchError),
    /// An idempotent producer's batch out of sequence, or from a fenced epoch.
    Producer(ProducerError),
    OffsetOutOfRange {
        requested: i64,
        log_start_offset: i64,
        high_watermark: i64,
    },
    /// The device failed a write or sync; the append was not made durable.
    Storage {
        reason: String,
    },
    /// The partition is being deleted or the broker is stopping.
    Closed,
}

impl std::fmt::Display for PartitionError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::InvalidBatch(error) => write!(f, "{error}"),
            Self::Producer(error) => write!(f, "{error}"),
            Self::OffsetOutOfRange { requested, log_start_offset, high_watermark } => {
                write!(f, "offset {requested} outside the log [{log_start_offset}, {high_watermark}]")
            }
            Self::Storage { reason } => write!(f, "storage error: {reason}"),
            Self::Closed => write!(f, "partition closed"),
        }
    }
}

impl std::error::Error for PartitionError {}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppendResult {
    pub base_offset: i64,
    pub last_offset: i64,
    pub log_start_offset: i64,
    /// Pass to `wait_durable` so it can tell whether a rollback discarded this append.
    pub generation: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchResult {
    pub records: Bytes,
    pub high_watermark: i64,
    pub log_start_offset: i64,
}

/// Batches on their way to a socket: bytes in memory, or a range of a segment file that the
/// connection sends with sendfile, from the page cache to the socket without passing through
/// the broker's memory.
#[derive(Debug, Clone)]
pub enum Records {
    Memory(Bytes),
    File(FileRange),
}

impl Records {
    pub fn len(&self) -> usize {
        match self {
            Self::Memory(bytes) => bytes.len(),
            Self::File(range) => range.length_bytes,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Whole batches of a segment file, `position..position + length_bytes`, all with CRCs this
/// process has checked.
#[derive(Debug, Clone)]
pub struct FileRange {
    /// A buffered (page-cache) descriptor of the segment file, shared by its ranges; it keeps
    /// the file readable after retention deletes the segment.
    pub file: Arc<std::fs::File>,
    pub position: u64,
    pub length_bytes: usize,
    /// From the base offset of the first batch to one past the last batch's last offset. The
    /// first batches may hold offsets below the one asked for (the range starts at an offset
    /// index entry): Kafka consumers skip those, as they do with Kafka's own sendfile ranges.
    pub offsets: std::ops::Range<i64>,
}

/// What `read_to_send` gives.
#[derive(Debug, Clone)]
pub struct SendRead {
    pub records: Records,
    pub high_watermark: i64,
    pub log_start_offset: i64,
}

/// A batch held in memory: queued for the flusher, or recently flushed and cached for reads.
#[derive(Debug, Clone)]
struct MemoryBatch {
    base_offset: i64,
    last_offset: i64,
    max_timestamp: i64,
    /// Set for an idempotent producer's batch, so the flusher can record it as durable.
    producer: Option<ProducerBatch>,
    bytes: Bytes,
}

/// The producer fields of an idempotent batch.
#[derive(Debug, Clone, Copy)]
struct ProducerBatch {
    producer_id: i64,
    epoch: i16,
    first_sequence: i32,
    records_count: i32,
}

/// What the partition knows of one segment's durable content.
struct Segment {
    base_offset: i64,
    size_bytes: u64,
    max_timestamp: i64,
    created_ms: i64,
    offset_index: OffsetIndex,
    time_index: TimeIndex,
    /// Index entries already appended to the index files.
    offset_entries_persisted: usize,
    time_entries_persisted: usize,
    bytes_since_index: u64,
    reader: Option<Rc<DmaFile>>,
    /// Byte ranges whose batches this process has checked (appended through `append`,
    /// scanned by recovery, or read and checked for a fetch): only these go out with sendfile.
    checked: CheckedRanges,
    /// The buffered descriptor sendfile reads, opened at the first range sent.
    send_file: Option<Arc<std::fs::File>>,
    /// The same file for checking reads through the page cache (io_uring, not blocking).
    check_reader: Option<Rc<BufferedFile>>,
}

/// A segment's base offset and the index entries not yet in its files.
type UnpersistedIndex = (i64, Vec<OffsetIndexEntry>, Vec<TimeIndexEntry>);

impl Segment {
    /// The index entries not yet written to the index files, if there are at least
    /// `entries_min` of them; they count as written from now on.
    fn take_unpersisted_index(&mut self, entries_min: usize) -> Option<UnpersistedIndex> {
        let pending = self.offset_index.entries().len() - self.offset_entries_persisted;
        if pending == 0 || pending < entries_min {
            return None;
        }
        let offsets = self.offset_index.entries()[self.offset_entries_persisted..].to_vec();
        let times = self.time_index.entries()[self.time_entries_persisted..].to_vec();
        self.offset_entries_persisted = self.offset_index.entries().len();
        self.time_entries_persisted = self.time_index.entries().len();
        Some((self.base_offset, offsets, times))
    }

    /// Where a read for `relative_offset` starts: the position of the last indexed batch at or
    /// before it, and that batch's base offset (the segment's start if none is indexed).
    fn read_start(&self, relative_offset: u32) -> (u64, i64) {
        self.offset_index.floor(relative_offset).map_or((0, self.base_offset), |entry| {
            (u64::from(entry.position.get()), self.base_offset + i64::from(entry.relative_offset.get()))
        })
    }

    fn new(base_offset: i64) -> Self {
        Self {
            base_offset,
            size_bytes: 0,
            max_timestamp: i64::MIN,
            created_ms: now_ms(),
            offset_index: OffsetIndex::default(),
            time_index: TimeIndex::default(),
            offset_entries_persisted: 0,
            time_entries_persisted: 0,
            bytes_since_index: INDEX_INTERVAL_BYTES,
            reader: None,
            checked: CheckedRanges::from(0),
            send_file: None,
            check_reader: None,
        }
    }

    fn recovered(recovered: recovery::RecoveredSegment) -> Self {
        let last_indexed_position = recovered.offset_index.last().map(|entry| u64::from(entry.position.get()));
        Self {
            base_offset: recovered.base_offset,
            size_bytes: recovered.size_bytes,
            max_timestamp: recovered.max_timestamp,
            created_ms: now_ms(),
            offset_entries_persisted: recovered.offset_index.entries().len(),
            time_entries_persisted: recovered.time_index.entries().len(),
            bytes_since_index: last_indexed_position
                .map_or(INDEX_INTERVAL_BYTES, |position| recovered.size_bytes - position),
            offset_index: recovered.offset_index,
            time_index: recovered.time_index,
            reader: None,
            checked: CheckedRanges::from(recovered.scanned_from),
            send_file: None,
            check_reader: None,
        }
    }
}

struct State {
    log_start_offset: i64,
    /// Log end offset: the offset the next append gets.
    next_offset: i64,
    /// High watermark: every offset below is fsynced and visible to readers.
    durable_offset: i64,
    /// Oldest first; the last is the active segment the flusher writes.
    segments: Vec<Segment>,
    /// Recent batches, oldest first: the durable ones cached for reads, then the queued ones.
    memory: VecDeque<MemoryBatch>,
    memory_bytes: usize,
    /// Number of batches at the back of `memory` not yet durable.
    queued_batches: usize,
    queued_bytes: usize,
    /// Rollbacks so far, and the durable offset at each of the last few (from that offset on,
    /// queued appends were discarded).
    generation: u64,
    rollback_offsets: VecDeque<(u64, i64)>,
    last_storage_error: Option<String>,
    closed: bool,
    flusher_running: bool,
    /// Idempotent producers' recent batches, queued ones included: appends are checked
    /// against this.
    producers: ProducerTable,
    /// The same for durable batches only: the table as of `durable_offset`. Snapshots are taken
    /// of it, and a rollback restores `producers` from it.
    durable_producers: ProducerTable,
    /// Offset of the newest producer snapshot on disk (loaded at open or written since).
    snapshot_offset: Option<i64>,
}

pub struct Partition {
    dir: PathBuf,
    config: RefCell<PartitionConfig>,
    state: RefCell<State>,
    /// Wakes the flusher when batches are queued or the partition closes.
    work: Notify,
    /// Fires when the durable offset moves or a flush fails.
    durable: Notify,
    /// Shared by every partition of the shard: fires whenever any of them has new durable data
    /// (fetch long polls over several partitions wait on it).
    shard_appended: Rc<Notify>,
    /// The shard's fdatasync latency and group-commit size.
    storage_metrics: Rc<StorageMetrics>,
    /// Faults injected into every segment appender of this partition (tests only).
    faults: Option<Rc<Faults>>,
    /// The next cold read, started when the last one was served (catch-up consumers).
    read_ahead: ReadAhead,
}

struct Round {
    batches: Vec<MemoryBatch>,
    total_bytes: usize,
    roll: bool,
}

fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |elapsed| elapsed.as_millis() as i64)
}

fn storage_error(error: &std::io::Error) -> PartitionError {
    PartitionError::Storage { reason: error.to_string() }
}

impl Partition {
    /// Opens (creating if needed) the partition in `dir`, recovering every segment, and starts
    /// its flusher task on the current executor.
    pub async fn open(dir: &Path, config: PartitionConfig, shard_appended: Rc<Notify>) -> std::io::Result<Rc<Self>> {
        Self::open_with_faults(dir, config, shard_appended, None).await
    }

    /// `open`, with `faults` injected into the writes and syncs of its segments (for tests of
    /// what a failing device does to the partition).
    pub async fn open_with_faults(
        dir: &Path,
        config: PartitionConfig,
        shard_appended: Rc<Notify>,
        faults: Option<Rc<Faults>>,
    ) -> std::io::Result<Rc<Self>> {
        std::fs::create_dir_all(dir)?;
        let checkpoint_start = read_log_start_offset(dir)?;
        let mut bases = segment::list_segments(dir)?;
        if bases.is_empty() {
            bases.push(checkpoint_start.max(0));
            std::fs::File::create(segment::log_path(dir, bases[0]))?;
        }
        let mut segments = Vec::with_capacity(bases.len());
        let mut next_offset = bases[0];
        let (mut scanned_batches, mut truncated_bytes) = (0usize, 0u64);
        for base in bases {
            let recovered = recovery::recover_segment(dir, base)?;
            if recovered.base_offset != next_offset && !segments.is_empty() {
                tracing::warn!(dir = %dir.display(), expected = next_offset, found = recovered.base_offset, "gap between segments");
            }
            next_offset = recovered.next_offset;
            scanned_batches += recovered.scanned_batches;
            truncated_bytes += recovered.cut_bytes;
            segments.push(Segment::recovered(recovered));
        }
        let first_base = segments.first().map_or(0, |segment| segment.base_offset);
        let log_start_offset = checkpoint_start.max(first_base).min(next_offset);
        let active = segments.last().map_or((0, 0), |segment| (segment.base_offset, segment.size_bytes));
        let extents: Vec<SegmentExtent<'_>> = segments
            .iter()
            .map(|segment| SegmentExtent {
                base_offset: segment.base_offset,
                size_bytes: segment.size_bytes,
                offset_index: &segment.offset_index,
            })
            .collect();
        let recovered_producers = producer_recovery::recover_producers(dir, &extents, next_offset)?;
        let snapshot_offset = recovered_producers.snapshot_offset;
        let appender =
            SegmentAppender::open(&segment::log_path(dir, active.0), active.0, active.1, faults.clone()).await?;
        // One line per partition, also at start: what recovery read and cut.
        tracing::info!(
            dir = %dir.display(),
            log_start_offset,
            next_offset,
            segments = segments.len(),
            size_bytes = segments.iter().map(|segment| segment.size_bytes).sum::<u64>(),
            scanned_batches,
            truncated_bytes,
            producer_snapshot_offset = snapshot_offset,
            producer_replayed_batches = recovered_producers.replayed_batches,
            producers = recovered_producers.table.len(),
            "partition opened"
        );
        let partition = Rc::new(Self {
            dir: dir.to_path_buf(),
            config: RefCell::new(config),
            state: RefCell::new(State {
                log_start_offset,
                next_offset,
                durable_offset: next_offset,
                segments,
                memory: VecDeque::new(),
                memory_bytes: 0,
                queued_batches: 0,
                queued_bytes: 0,
                generation: 0,
                rollback_offsets: VecDeque::new(),
                last_storage_error: None,
                closed: false,
                flusher_running: true,
                producers: recovered_producers.table.clone(),
                durable_producers: recovered_producers.table,
                snapshot_offset,
            }),
            work: Notify::default(),
            durable: Notify::default(),
            shard_appended,
            storage_metrics: StorageMetrics::current(),
            read_ahead: ReadAhead::default(),
            faults,
        });
        glommio::spawn_local(partition.clone().run_flusher(appender)).detach();
        Ok(partition)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn config(&self) -> PartitionConfig {
        self.config.borrow().clone()
    }

    pub fn set_config(&self, config: PartitionConfig) {
        *self.config.borrow_mut() = config;
    }

    pub fn high_watermark(&self) -> i64 {
        self.state.borrow().durable_offset
    }

    pub fn log_start_offset(&self) -> i64 {
        self.state.borrow().log_start_offset
    }

    /// Total bytes of durable segments.
    pub fn size_bytes(&self) -> u64 {
        self.state.borrow().segments.iter().map(|segment| segment.size_bytes).sum()
    }

    pub fn segment_count(&self) -> usize {
        self.state.borrow().segments.len()
    }

    /// `append_bytes` of a copy of `batch`.
    pub async fn append(&self, batch: &[u8]) -> Result<AppendResult, PartitionError> {
        self.append_bytes(Bytes::copy_from_slice(batch)).await
    }

    /// Validates one batch, assigns its offsets and queues it for the flusher. Returns once the
    /// batch is ordered in memory (acks=1); call `wait_durable` for acks=all. Waits first if
    /// too many bytes are queued (backpressure).
    ///
    /// The partition keeps `batch`'s memory when `batch` is its only handle (its base offset
    /// patched in place: a Kafka request's frame becomes the stored batch), and a copy
    /// otherwise. Copying every produced batch cost a Kafka producer in 256 KiB batches 10% of
    /// the broker's CPU. A caller that hands over a slice of a larger buffer keeps that buffer
    /// alive for as long as the batch is held in memory, so it passes only slices that are
    /// most of their buffer (`kafka::handlers::produce`).
    pub async fn append_bytes(&self, batch: Bytes) -> Result<AppendResult, PartitionError> {
        let message_bytes_max = self.config.borrow().message_bytes_max;
        let info = batch::validate(&batch, message_bytes_max).map_err(PartitionError::InvalidBatch)?;
        loop {
            let notified = self.durable.notified();
            {
                let state = self.state.borrow();
                if state.closed {
                    return Err(PartitionError::Closed);
                }
                if state.queued_bytes + info.size_bytes <= PENDING_BYTES_MAX || state.queued_bytes == 0 {
                    break;
                }
            }
            notified.await;
        }
        let mut state = self.state.borrow_mut();
        let producer = (info.producer_id >= 0).then_some(ProducerBatch {
            producer_id: info.producer_id,
            epoch: info.producer_epoch,
            first_sequence: info.base_sequence,
            records_count: info.records_count,
        });
        if let Some(producer) = producer {
            let check = state.producers.check(
                producer.producer_id,
                producer.epoch,
                producer.first_sequence,
                producer.records_count,
            );
            if let SequenceCheck::Duplicate { base_offset, last_offset } = check.map_err(PartitionError::Producer)? {
                // A retry of a batch already written: its original offsets, nothing written.
                let generation = state.generation;
                return Ok(AppendResult {
                    base_offset,
                    last_offset,
                    log_start_offset: state.log_start_offset,
                    generation,
                });
            }
        }
        let base_offset = state.next_offset;
        let last_offset = base_offset + i64::from(info.last_offset_delta);
        if let Some(producer) = producer {
            record_producer_batch(&mut state.producers, &producer, base_offset, last_offset);
        }
        let mut stored = batch.try_into_mut().unwrap_or_else(|shared| BytesMut::from(&shared[..]));
        batch::set_base_offset(&mut stored, base_offset);
        state.next_offset = last_offset + 1;
        state.memory.push_back(MemoryBatch {
            base_offset,
            last_offset,
            max_timestamp: info.max_timestamp,
            producer,
            bytes: stored.freeze(),
        });
        state.memory_bytes += info.size_bytes;
        state.queued_batches += 1;
        state.queued_bytes += info.size_bytes;
        evict_cached(&mut state);
        let result = AppendResult {
            base_offset,
            last_offset,
            log_start_offset: state.log_start_offset,
            generation: state.generation,
        };
        drop(state);
        self.work.notify_all();
        Ok(result)
    }

    /// Waits until the append is fsynced (acks=all), or reports that a failed flush discarded it.
    pub async fn wait_durable(&self, append: &AppendResult) -> Result<(), PartitionError> {
        loop {
            let notified = self.durable.notified();
            {
                let state = self.state.borrow();
                if state.generation != append.generation {
                    // A rollback happened after this append: it survived only if it was durable
                    // before the first rollback that followed it.
                    let survived = state
                        .rollback_offsets
                        .iter()
                        .find(|(generation, _)| *generation == append.generation + 1)
                        .is_some_and(|(_, rollback_offset)| append.last_offset < *rollback_offset);
                    if survived {
                        return Ok(());
                    }
                    let reason = state.last_storage_error.clone().unwrap_or_else(|| "flush failed".to_string());
                    return Err(PartitionError::Storage { reason });
                }
                if state.durable_offset > append.last_offset {
                    return Ok(());
                }
                if state.closed && !state.flusher_running {
                    return Err(PartitionError::Closed);
                }
            }
            notified.await;
        }
    }

    /// What a read at `offset` answers besides records (high watermark, log start offset, or
    /// that the offset is out of range), reading none: for a fetch whose response is full.
    pub fn read_nothing(&self, offset: i64) -> Result<FetchResult, PartitionError> {
        empty_read(&self.state.borrow(), offset)
    }

    /// Reads durable batches from `offset` on, up to `max_bytes` (at least one whole batch).
    pub async fn read(&self, offset: i64, max_bytes: usize) -> Result<FetchResult, PartitionError> {
        let (segment_read, high_watermark, log_start_offset) = {
            let state = self.state.borrow();
            let empty = empty_read(&state, offset)?;
            let (high_watermark, log_start_offset) = (empty.high_watermark, empty.log_start_offset);
            if offset == high_watermark {
                return Ok(empty);
            }
            if let Some(records) = read_memory(&state, offset, max_bytes) {
                return Ok(FetchResult { records, ..empty });
            }
            let index = segment_for_offset(&state.segments, offset);
            let segment = &state.segments[index];
            let (position, position_offset) = segment.read_start((offset - segment.base_offset) as u32);
            (
                (index, segment.base_offset, position, position_offset, segment.size_bytes),
                high_watermark,
                log_start_offset,
            )
        };
        let (index, base_offset, position, position_offset, end_position) = segment_read;
        let file = self.segment_reader(index, base_offset).await?;
        let served = match self.read_ahead_served(base_offset, offset, max_bytes).await? {
            Some(served) => served,
            None => reader::read_from(&file, position, position_offset, end_position, offset, max_bytes)
                .await
                .map_err(|error| storage_error(&error))?,
        };
        if served.next_position < end_position {
            let start = ReadStart {
                segment_base_offset: base_offset,
                position: served.next_position,
                offset: served.next_offset,
            };
            let length_bytes = max_bytes.max(READ_MIN_BYTES).min((end_position - served.next_position) as usize);
            self.read_ahead.start(file, start, length_bytes);
        }
        Ok(FetchResult { records: served.records, high_watermark, log_start_offset })
    }

    /// `read` for a Kafka fetch: a range that only the segment files hold comes back as a file
    /// range for sendfile: whole batches from the offset index entry at or before `offset` up
    /// to the last entry or segment end within `max_bytes` (`send_candidate`; a batch over
    /// `max_bytes` goes whole). Its CRCs must have been checked by this process; a range not
    /// checked yet (an earlier run's segment) is first read through the page cache and checked,
    /// which also leaves it there for the sendfile and the readers after. Anything else (the
    /// memory cache, damage) as `read` gives it.
    pub async fn read_to_send(&self, offset: i64, max_bytes: usize) -> Result<SendRead, PartitionError> {
        let candidate = {
            let state = self.state.borrow();
            let empty = empty_read(&state, offset)?;
            let in_memory = state.memory.front().is_some_and(|batch| batch.base_offset <= offset);
            if offset < empty.high_watermark && !in_memory {
                send_candidate(&state, offset, max_bytes).map(|candidate| (candidate, empty))
            } else {
                None
            }
        };
        if let Some((candidate, empty)) = candidate {
            if candidate.checked || self.check_through_page_cache(&candidate).await? {
                if let Some(range) = self.file_range(&candidate)? {
                    let (high_watermark, log_start_offset) = (empty.high_watermark, empty.log_start_offset);
                    return Ok(SendRead { records: Records::File(range), high_watermark, log_start_offset });
                }
            }
        }
        let read = self.read(offset, max_bytes).await?;
        Ok(SendRead {
            records: Records::Memory(read.records),
            high_watermark: read.high_watermark,
            log_start_offset: read.log_start_offset,
        })
    }

    /// Checks a candidate range's batches (framing, CRC, offsets from the index entry on,
    /// ending exactly at the range's end) where the page cache holds them: in place, from a
    /// mapping, when it holds all of them; otherwise read through it, which waits for the disk
    /// off the executor and leaves the range cached for the sendfile and the readers after.
    /// Records the range as checked if they hold. False if they do not (`read` then serves
    /// what is valid and reports the damage) or the segment is gone.
    async fn check_through_page_cache(&self, candidate: &SendCandidate) -> Result<bool, PartitionError> {
        let Some(file) = self.segment_file(candidate.segment_base_offset)? else {
            return Ok(false);
        };
        let (start, end) = (candidate.positions.start, candidate.positions.end);
        let length = (end - start) as usize;
        // A mapping that fails (out of address space, say) is only a missed shortcut.
        let whole = match page_cache::MappedRange::map_if_cached(&file, start, length).ok().flatten() {
            Some(mapped) => holds_whole_batches(mapped.bytes(), candidate),
            None => self.read_and_check(candidate).await?,
        };
        if whole {
            self.with_segment(candidate.segment_base_offset, |segment| segment.checked.insert(start..end));
        }
        Ok(whole)
    }

    /// Reads a candidate range through the page cache and checks its batches; false if they
    /// do not hold, the file ends before the range does, or the segment is gone.
    async fn read_and_check(&self, candidate: &SendCandidate) -> Result<bool, PartitionError> {
        let Some(file) = self.check_reader(candidate.segment_base_offset).await? else {
            return Ok(false);
        };
        let (start, end) = (candidate.positions.start, candidate.positions.end);
        let read_at = |position: u64| {
            let file = file.clone();
            async move {
                file.read_at(position, (end - position) as usize).await.map_err(|error| storage_error(&error.into()))
            }
        };
        let first = read_at(start).await?;
        if first.len() as u64 == end - start {
            return Ok(holds_whole_batches(&first, candidate));
        }
        // A short read (rare): gather the rest.
        let mut joined = first.to_vec();
        while (joined.len() as u64) < end - start {
            let chunk = read_at(start + joined.len() as u64).await?;
            if chunk.is_empty() {
                return Ok(false); // shorter than the index says: let `read` report it
            }
            joined.extend_from_slice(&chunk);
        }
        Ok(holds_whole_batches(&joined, candidate))
    }

    /// The segment's buffered descriptor (for sendfile and mappings), opened the first time
    /// (a plain open, microseconds, once per segment and run); `None` if the segment is gone.
    fn segment_file(&self, base_offset: i64) -> Result<Option<Arc<std::fs::File>>, PartitionError> {
        let file = self.with_segment(base_offset, |segment| match &segment.send_file {
            Some(file) => Ok(file.clone()),
            None => {
                let path = segment::log_path(&self.dir, segment.base_offset);
                let opened = std::fs::File::open(path).map_err(|error| storage_error(&error))?;
                Ok(segment.send_file.insert(Arc::new(opened)).clone())
            }
        });
        file.transpose()
    }

    /// The file range for a checked candidate; `None` if the segment is gone.
    fn file_range(&self, candidate: &SendCandidate) -> Result<Option<FileRange>, PartitionError> {
        Ok(self.segment_file(candidate.segment_base_offset)?.map(|file| FileRange {
            file,
            position: candidate.positions.start,
            length_bytes: (candidate.positions.end - candidate.positions.start) as usize,
            offsets: candidate.offsets.clone(),
        }))
    }

    /// Runs `action` on the segment with `base_offset`, if it is still there.
    fn with_segment<R>(&self, base_offset: i64, action: impl FnOnce(&mut Segment) -> R) -> Option<R> {
        let mut state = self.state.borrow_mut();
        state.segments.iter_mut().find(|segment| segment.base_offset == base_offset).map(action)
    }

    /// Serves a cold read from the read-ahead that starts exactly at `offset` in the segment
    /// with `segment_base_offset`, if there is one and it holds a whole batch.
    async fn read_ahead_served(
        &self,
        segment_base_offset: i64,
        offset: i64,
        max_bytes: usize,
    ) -> Result<Option<reader::Served>, PartitionError> {
        let Some(claimed) = self.read_ahead.claim_at(segment_base_offset, offset) else {
            return Ok(None);
        };
        let start = claimed.start;
        let chunk = claimed.bytes().await.map_err(|error| storage_error(&error))?;
        reader::serve_from_chunk(&chunk, start.position, start.offset, offset, max_bytes)
            .map_err(|error| storage_error(&error))
    }

    /// The first record with a timestamp of at least `timestamp`, as (offset, its timestamp);
    /// `None` if every record is older. Exact to the record; in a compressed batch read with
    /// `decompress`, or else the batch's base offset and max timestamp.
    pub async fn offset_for_timestamp(
        &self,
        timestamp: i64,
        decompress: Decompress,
    ) -> Result<Option<(i64, i64)>, PartitionError> {
        let lookup = {
            let state = self.state.borrow();
            let Some(index) =
                state.segments.iter().position(|segment| segment.size_bytes > 0 && segment.max_timestamp >= timestamp)
            else {
                return Ok(None);
            };
            let segment = &state.segments[index];
            let (position, position_offset) = segment.read_start(segment.time_index.lookup(timestamp));
            (index, segment.base_offset, position, position_offset, segment.size_bytes, state.log_start_offset)
        };
        let (index, base_offset, position, position_offset, end_position, log_start_offset) = lookup;
        let file = self.segment_reader(index, base_offset).await?;
        let found = reader::find_timestamp(&file, position, position_offset, end_position, timestamp, decompress)
            .await
            .map_err(|error| storage_error(&error))?;
        Ok(found.map(|(offset, timestamp)| (offset.max(log_start_offset), timestamp)))
    }

    /// Moves the log start offset to `offset` (DeleteRecords); -1 means the high watermark.
    /// Returns the new log start offset.
    pub fn delete_records(&self, offset: i64) -> Result<i64, PartitionError> {
        let mut state = self.state.borrow_mut();
        let target = if offset == -1 { state.durable_offset } else { offset };
        if target < 0 || target > state.durable_offset {
            return Err(PartitionError::OffsetOutOfRange {
                requested: offset,
                log_start_offset: state.log_start_offset,
                high_watermark: state.durable_offset,
            });
        }
        if target > state.log_start_offset {
            write_log_start_offset(&self.dir, target).map_err(|error| storage_error(&error))?;
            state.log_start_offset = target;
        }
        Ok(state.log_start_offset)
    }

    /// Stops the flusher after it wrote everything queued, and waits for it.
    pub async fn close(&self) {
        self.state.borrow_mut().closed = true;
        self.read_ahead.clear();
        self.work.notify_all();
        self.durable.notify_all();
        loop {
            let notified = self.durable.notified();
            if !self.state.borrow().flusher_running {
                return;
            }
            notified.await;
        }
    }

    async fn segment_reader(&self, index: usize, base_offset: i64) -> Result<Rc<DmaFile>, PartitionError> {
        if let Some(reader) = self.state.borrow().segments.get(index).and_then(|segment| segment.reader.clone()) {
            return Ok(reader);
        }
        let file = Rc::new(
            DmaFile::open(segment::log_path(&self.dir, base_offset))
                .await
                .map_err(|error| storage_error(&error.into()))?,
        );
        self.with_segment(base_offset, |segment| segment.reader = Some(file.clone()));
        Ok(file)
    }

    /// The segment's buffered handle for checking reads, opened the first time; `None` if the
    /// segment is gone.
    async fn check_reader(&self, base_offset: i64) -> Result<Option<Rc<BufferedFile>>, PartitionError> {
        match self.with_segment(base_offset, |segment| segment.check_reader.clone()) {
            None => Ok(None),
            Some(Some(file)) => Ok(Some(file)),
            Some(None) => {
                let path = segment::log_path(&self.dir, base_offset);
                let file = Rc::new(BufferedFile::open(path).await.map_err(|error| storage_error(&error.into()))?);
                self.with_segment(base_offset, |segment| segment.check_reader = Some(file.clone()));
                Ok(Some(file))
            }
        }
    }

    /// The flusher: one per partition, writing queued batches in rounds (group commit).
    async fn run_flusher(self: Rc<Self>, mut appender: SegmentAppender) {
        // Bytes per round, a moving average (1/8 to the newest): whether zeros ahead pay.
        let mut average_round_bytes: Option<usize> = None;
        loop {
            let notified = self.work.notified();
            let round = {
                let state = self.state.borrow();
                if state.queued_batches == 0 {
                    if state.closed {
                        break;
                    }
                    None
                } else {
                    Some(self.take_round(&state, &appender))
                }
            };
            let Some(round) = round else {
                notified.await;
                continue;
            };
            match self.flush(&mut appender, &round, average_round_bytes.unwrap_or(0)).await {
                Ok(()) => {
                    self.complete_round(&round, &appender);
                    let newest = round.total_bytes;
                    average_round_bytes =
                        Some(average_round_bytes.map_or(newest, |average| average - average / 8 + newest / 8));
                }
                Err(error) => {
                    appender.rewind();
                    self.roll_back(&error);
                }
            }
        }
        self.persist_active_index();
        if let Err(error) = appender.seal().await {
            tracing::warn!(dir = %self.dir.display(), %error, "sealing the active segment at close failed; recovery will trim it");
        }
        self.snapshot_producers();
        self.state.borrow_mut().flusher_running = false;
        self.durable.notify_all();
    }

    fn take_round(&self, state: &State, appender: &SegmentAppender) -> Round {
        let queued_from = state.memory.len() - state.queued_batches;
        let mut batches = Vec::new();
        let mut total_bytes = 0usize;
        for batch in state.memory.range(queued_from..) {
            if !batches.is_empty() && total_bytes + batch.bytes.len() > FLUSH_ROUND_BYTES_MAX {
                break;
            }
            total_bytes += batch.bytes.len();
            batches.push(batch.clone());
        }
        let config = self.config.borrow();
        let active = state.segments.last();
        let written = appender.written_bytes();
        let too_big = written > 0 && written + total_bytes as u64 > config.segment_bytes;
        let too_old = written > 0 && active.is_some_and(|segment| now_ms() - segment.created_ms >= config.segment_ms);
        Round { batches, total_bytes, roll: too_big || too_old }
    }

    /// Writes and syncs `round`, rolling the segment first if the round says so. Zeros ahead
    /// go with it when its partition writes in small rounds (`average_round_bytes` and this
    /// one at most `ZERO_AHEAD_ROUND_BYTES_MAX`): then one write of zeros spares the many
    /// rounds after it a size change each; in large rounds it would only double the bytes.
    async fn flush(
        &self,
        appender: &mut SegmentAppender,
        round: &Round,
        average_round_bytes: usize,
    ) -> std::io::Result<()> {
        if round.roll {
            let base_offset = round.batches[0].base_offset;
            let path = segment::log_path(&self.dir, base_offset);
            let next = SegmentAppender::open(&path, base_offset, 0, self.faults.clone()).await?;
            self.persist_active_index();
            let sealed = std::mem::replace(appender, next);
            if let Err(error) = sealed.seal().await {
                tracing::warn!(dir = %self.dir.display(), %error, "sealing a rolled segment failed; recovery will trim it");
            }
            self.state.borrow_mut().segments.push(Segment::new(base_offset));
            assert_eq!(self.state.borrow().durable_offset, base_offset, "a roll starts at the durable offset");
            self.snapshot_producers();
        }
        let zeros_to_bytes = if round.total_bytes.max(average_round_bytes) <= ZERO_AHEAD_ROUND_BYTES_MAX {
            let limit_bytes = self.config.borrow().segment_bytes;
            appender.zeros_to_bytes(round.total_bytes as u64, limit_bytes)
        } else {
            0
        };
        let flush_started = std::time::Instant::now();
        let batches = round.batches.iter().map(|batch| &batch.bytes[..]);
        let flushed = appender.write_and_sync(batches, round.total_bytes, zeros_to_bytes).await;
        crate::metrics::record_flush(if flushed.is_ok() { round.total_bytes as u64 } else { 0 });
        flushed?;
        self.storage_metrics.flush_seconds.observe_duration(flush_started.elapsed());
        self.storage_metrics.flush_batches.observe(round.batches.len() as f64);
        Ok(())
    }

    fn complete_round(&self, round: &Round, appender: &SegmentAppender) {
        let mut state = self.state.borrow_mut();
        for batch in round.batches.iter() {
            if let Some(producer) = &batch.producer {
                record_producer_batch(&mut state.durable_producers, producer, batch.base_offset, batch.last_offset);
            }
        }
        let segment = state.segments.last_mut().expect("a partition always has an active segment");
        debug_assert_eq!(segment.base_offset, appender.base_offset());
        for batch in &round.batches {
            let relative_offset = (batch.base_offset - segment.base_offset) as u32;
            if segment.bytes_since_index >= INDEX_INTERVAL_BYTES {
                segment.offset_index.push(relative_offset, segment.size_bytes as u32);
                segment.time_index.push(batch.max_timestamp.max(segment.max_timestamp), relative_offset);
                segment.bytes_since_index = 0;
            }
            segment.bytes_since_index += batch.bytes.len() as u64;
            segment.size_bytes += batch.bytes.len() as u64;
            segment.max_timestamp = segment.max_timestamp.max(batch.max_timestamp);
        }
        assert_eq!(segment.size_bytes, appender.written_bytes(), "segment size and appender disagree");
        let unpersisted = segment.take_unpersisted_index(INDEX_PERSIST_ENTRIES_MIN);
        let last = round.batches.last().expect("a round has a batch");
        assert!(last.last_offset >= state.durable_offset, "durable offset must grow");
        state.durable_offset = last.last_offset + 1;
        state.queued_batches -= round.batches.len();
        state.queued_bytes -= round.total_bytes;
        evict_cached(&mut state);
        drop(state);
        self.durable.notify_all();
        self.shard_appended.notify_all();
        self.persist_index_entries(unpersisted);
    }

    /// Writes the active segment's index entries not yet in its files (at roll and close).
    fn persist_active_index(&self) {
        let unpersisted =
            self.state.borrow_mut().segments.last_mut().and_then(|segment| segment.take_unpersisted_index(1));
        self.persist_index_entries(unpersisted);
    }

    /// Index files are a cache of the log (rebuilt by recovery), so a failure here only logs.
    /// These are small buffered appends, batched (`INDEX_PERSIST_ENTRIES_MIN`) so that the
    /// flusher does not pay two file opens and writes on every round.
    fn persist_index_entries(&self, unpersisted: Option<UnpersistedIndex>) {
        let Some((base_offset, offsets, times)) = unpersisted else { return };
        let result = crate::index::append_entries(&segment::offset_index_path(&self.dir, base_offset), &offsets)
            .and_then(|()| crate::index::append_entries(&segment::time_index_path(&self.dir, base_offset), &times));
        if let Err(error) = result {
            tracing::warn!(dir = %self.dir.display(), %error, "writing index entries failed; recovery will rebuild them");
        }
    }

    /// Writes the snapshot of the durable producer table at the durable offset (at a roll and
    /// at close) and deletes all but the newest `PRODUCER_SNAPSHOTS_KEPT`. Synchronous, like
    /// the other small metadata files: it runs once per segment. A failure only logs; open
    /// then replays from an older snapshot.
    fn snapshot_producers(&self) {
        let state = self.state.borrow();
        let unchanged = state.snapshot_offset == Some(state.durable_offset);
        // With no producer state and no snapshot, the tail scan at open finds nothing either.
        let never_idempotent = state.snapshot_offset.is_none() && state.durable_producers.is_empty();
        if unchanged || never_idempotent || !self.dir.exists() {
            // (A missing directory: the partition is being deleted.)
            return;
        }
        let offset = state.durable_offset;
        let first_base = state.segments.first().map_or(offset, |segment| segment.base_offset);
        let written = producer_snapshot::write_snapshot(&self.dir, offset, &state.durable_producers);
        drop(state);
        match written {
            Ok(()) => self.state.borrow_mut().snapshot_offset = Some(offset),
            Err(error) => {
                tracing::warn!(dir = %self.dir.display(), offset, %error, "writing a producer snapshot failed");
                return;
            }
        }
        if let Err(error) = producer_snapshot::delete_old_snapshots(&self.dir, PRODUCER_SNAPSHOTS_KEPT, first_base) {
            tracing::warn!(dir = %self.dir.display(), %error, "listing producer snapshots failed");
        }
    }

    /// A write or sync failed: discard everything not durable, so offsets stay dense and no
    /// batch that was not synced is ever served. Queued appends report a storage error.
    fn roll_back(&self, error: &std::io::Error) {
        let mut state = self.state.borrow_mut();
        tracing::error!(dir = %self.dir.display(), %error, discarded_batches = state.queued_batches, "flush failed; rolled back to the durable offset");
        let keep = state.memory.len() - state.queued_batches;
        let discarded_bytes: usize = state.memory.range(keep..).map(|batch| batch.bytes.len()).sum();
        state.memory.truncate(keep);
        state.memory_bytes -= discarded_bytes;
        state.queued_batches = 0;
        state.queued_bytes = 0;
        state.next_offset = state.durable_offset;
        // Forget the discarded batches: the durable table is exactly what survived (it also
        // undoes an epoch bump that only a discarded batch made).
        state.producers = state.durable_producers.clone();
        state.generation += 1;
        let entry = (state.generation, state.durable_offset);
        state.rollback_offsets.push_back(entry);
        if state.rollback_offsets.len() > ROLLBACK_HISTORY_MAX {
            state.rollback_offsets.pop_front();
        }
        state.last_storage_error = Some(error.to_string());
        drop(state);
        self.durable.notify_all();
    }

    /// Runs `action` with the state borrowed, for retention.
    pub(super) fn with_state<R>(&self, action: impl FnOnce(&mut StateView<'_>) -> R) -> R {
        let mut state = self.state.borrow_mut();
        let config = self.config.borrow();
        let mut view = StateView { state: &mut state, config: &config };
        action(&mut view)
    }
}

pub(super) struct ClosedSegment {
    pub(super) size_bytes: u64,
    pub(super) max_timestamp: i64,
    pub(super) next_base_offset: i64,
}

/// Retention's window into the partition state.
pub(super) struct StateView<'a> {
    state: &'a mut State,
    pub(super) config: &'a PartitionConfig,
}

impl StateView<'_> {
    /// The oldest segment if it is closed (not the active one): its size, its newest
    /// timestamp and the base offset of the segment after it.
    pub(super) fn oldest_closed(&self) -> Option<ClosedSegment> {
        match &self.state.segments[..] {
            [oldest, next, ..] => Some(ClosedSegment {
                size_bytes: oldest.size_bytes,
                max_timestamp: oldest.max_timestamp,
                next_base_offset: next.base_offset,
            }),
            _ => None,
        }
    }

    pub(super) fn total_bytes(&self) -> u64 {
        self.state.segments.iter().map(|segment| segment.size_bytes).sum()
    }

    pub(super) fn log_start_offset(&self) -> i64 {
        self.state.log_start_offset
    }

    pub(super) fn first_segment_base(&self) -> i64 {
        self.state.segments.first().map_or(self.state.log_start_offset, |segment| segment.base_offset)
    }

    /// Removes the oldest segment from the partition (never the active one); the log start
    /// moves to the next segment's base. Returns the removed base offset.
    pub(super) fn remove_oldest(&mut self) -> Option<i64> {
        if self.state.segments.len() < 2 {
            return None;
        }
        let removed = self.state.segments.remove(0);
        let next_base = self.state.segments[0].base_offset;
        self.state.log_start_offset = self.state.log_start_offset.max(next_base);
        self.state.memory.retain(|batch| batch.base_offset >= next_base);
        self.state.memory_bytes = self.state.memory.iter().map(|batch| batch.bytes.len()).sum();
        Some(removed.base_offset)
    }
}

/// Records an appended idempotent batch in `table`.
fn record_producer_batch(table: &mut ProducerTable, producer: &ProducerBatch, base_offset: i64, last_offset: i64) {
    let (epoch, sequence, count) = (producer.epoch, producer.first_sequence, producer.records_count);
    table.record(producer.producer_id, epoch, sequence, count, base_offset, last_offset);
}

/// Drops durable batches from the front of the read cache while it is over budget.
fn evict_cached(state: &mut State) {
    while state.memory_bytes > HOT_CACHE_BYTES_PER_PARTITION && state.memory.len() > state.queued_batches {
        if let Some(batch) = state.memory.pop_front() {
            state.memory_bytes -= batch.bytes.len();
        }
    }
}

/// A read of no records at `offset`, or why `offset` cannot be read.
fn empty_read(state: &State, offset: i64) -> Result<FetchResult, PartitionError> {
    let (high_watermark, log_start_offset) = (state.durable_offset, state.log_start_offset);
    if offset < log_start_offset || offset > high_watermark {
        return Err(PartitionError::OffsetOutOfRange { requested: offset, log_start_offset, high_watermark });
    }
    Ok(FetchResult { records: Bytes::new(), high_watermark, log_start_offset })
}

/// Serves `offset` from the read cache if the cache holds it. Only durable batches are read.
fn read_memory(state: &State, offset: i64, max_bytes: usize) -> Option<Bytes> {
    let durable = state.memory.len() - state.queued_batches;
    let cached = state.memory.range(..durable);
    let first = cached.clone().next()?;
    if first.base_offset > offset {
        return None;
    }
    let start = state.memory.partition_point(|batch| batch.last_offset < offset);
    if start >= durable {
        return None;
    }
    let mut selected = Vec::new();
    let mut total = 0usize;
    for batch in state.memory.range(start..durable) {
        if !selected.is_empty() && total + batch.bytes.len() > max_bytes {
            break;
        }
        total += batch.bytes.len();
        selected.push(&batch.bytes);
    }
    if let [only] = selected[..] {
        return Some(only.clone());
    }
    let mut records = BytesMut::with_capacity(total);
    for bytes in selected {
        records.extend_from_slice(bytes);
    }
    Some(records.freeze())
}

/// A range of whole batches `read_to_send` may send with sendfile.
#[derive(Debug)]
struct SendCandidate {
    segment_base_offset: i64,
    positions: std::ops::Range<u64>,
    /// From the first batch's base offset to one past the last batch's last offset.
    offsets: std::ops::Range<i64>,
    /// Whether this process has checked its batches already.
    checked: bool,
}

/// The range `read_to_send` would send for `offset`: from the offset index entry at or before
/// it to the last later entry (or the segment's durable end) within `max_bytes`. When even the
/// next entry is past `max_bytes` (a batch larger than the fetch asked for), the range ends
/// there: it holds the batch with `offset` and at most an index interval before it, and a
/// consumer makes progress, as Kafka returns a first batch over the limit whole. `None` if no
/// entry is at or before `offset`.
fn send_candidate(state: &State, offset: i64, max_bytes: usize) -> Option<SendCandidate> {
    let index = segment_for_offset(&state.segments, offset);
    let end_offset = state.segments.get(index + 1).map_or(state.durable_offset, |next| next.base_offset);
    let segment = &state.segments[index];
    let entries = segment.offset_index.entries();
    let relative = (offset - segment.base_offset) as u32;
    let first = entries.partition_point(|entry| entry.relative_offset.get() <= relative).checked_sub(1)?;
    let base_offset = segment.base_offset;
    let start = u64::from(entries[first].position.get());
    let start_offset = base_offset + i64::from(entries[first].relative_offset.get());
    // Batch boundaries past the start that the partition knows without reading: the later
    // index entries and the segment's durable end.
    let boundaries = entries[first + 1..]
        .iter()
        .map(|entry| (u64::from(entry.position.get()), base_offset + i64::from(entry.relative_offset.get())))
        .chain(std::iter::once((segment.size_bytes, end_offset)));
    let limit = start + max_bytes as u64;
    let mut boundaries = boundaries.peekable();
    let first_boundary = *boundaries.peek()?;
    let (end, next_offset) = boundaries.take_while(|(position, _)| *position <= limit).last().unwrap_or(first_boundary);
    if end <= start {
        return None;
    }
    Some(SendCandidate {
        segment_base_offset: base_offset,
        positions: start..end,
        offsets: start_offset..next_offset,
        checked: segment.checked.contains(&(start..end)),
    })
}

/// Byte ranges of a segment, sorted and disjoint (touching ones merged); the last may be open
/// ended (`u64::MAX`: everything appended from there on).
#[derive(Debug)]
struct CheckedRanges(Vec<std::ops::Range<u64>>);

impl CheckedRanges {
    /// Everything from `start` on.
    fn from(start: u64) -> Self {
        Self(std::iter::once(start..u64::MAX).collect())
    }

    fn contains(&self, range: &std::ops::Range<u64>) -> bool {
        self.0.iter().any(|checked| checked.start <= range.start && range.end <= checked.end)
    }

    /// Adds `range`, merging it with the ranges it touches. Past `CHECKED_RANGES_PER_SEGMENT_MAX`
    /// the shortest closed range is forgotten (read and checked again if wanted).
    fn insert(&mut self, range: std::ops::Range<u64>) {
        let mut merged = range;
        self.0.retain(|checked| {
            let touches = checked.start <= merged.end && merged.start <= checked.end;
            if touches {
                merged = checked.start.min(merged.start)..checked.end.max(merged.end);
            }
            !touches
        });
        let at = self.0.partition_point(|checked| checked.start < merged.start);
        self.0.insert(at, merged);
        if self.0.len() > CHECKED_RANGES_PER_SEGMENT_MAX {
            let shortest = (0..self.0.len())
                .filter(|&index| self.0[index].end != u64::MAX)
                .min_by_key(|&index| self.0[index].end - self.0[index].start);
            if let Some(index) = shortest {
                self.0.remove(index);
            }
        }
    }
}

/// Whether `bytes`, a candidate range, holds whole valid batches (framing, CRC, offsets from
/// the range's first on) that end exactly at its end, with the range's last offset.
fn holds_whole_batches(bytes: &[u8], candidate: &SendCandidate) -> bool {
    let mut found = Vec::new();
    let (consumed, stop) = recovery::scan(bytes, candidate.positions.start, candidate.offsets.start, &mut found);
    consumed == bytes.len()
        && matches!(stop, recovery::ScanStop::EndOfInput)
        && found.last().is_some_and(|batch| batch.last_offset + 1 == candidate.offsets.end)
}

/// Index of the segment holding `offset`: the last one whose base is at or below it.
fn segment_for_offset(segments: &[Segment], offset: i64) -> usize {
    segments.partition_point(|segment| segment.base_offset <= offset).saturating_sub(1)
}

fn read_log_start_offset(dir: &Path) -> std::io::Result<i64> {
    match std::fs::read_to_string(dir.join(LOG_START_OFFSET_FILE)) {
        Ok(text) => Ok(text.trim().parse::<i64>().unwrap_or(0)),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(0),
        Err(error) => Err(error),
    }
}

/// Writes the log start offset checkpoint atomically (temp file, fsync, rename, fsync dir).
fn write_log_start_offset(dir: &Path, offset: i64) -> std::io::Result<()> {
    crate::fs::write_atomic(&dir.join(LOG_START_OFFSET_FILE), offset.to_string().as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checked_ranges_merge_what_touches_and_forget_the_shortest_past_the_limit() {
        let mut checked = CheckedRanges::from(1_000);
        checked.insert(0..100);
        checked.insert(200..300);
        assert!(checked.contains(&(0..100)) && checked.contains(&(5_000..6_000)));
        assert!(!checked.contains(&(50..250)));
        checked.insert(100..200);
        assert_eq!(checked.0, [0..300, 1_000..u64::MAX]);
        checked.insert(250..1_000);
        assert_eq!(checked.0, Vec::from_iter(std::iter::once(0..u64::MAX)));

        let mut checked = CheckedRanges::from(u64::MAX - 1);
        for index in 0..CHECKED_RANGES_PER_SEGMENT_MAX as u64 {
            checked.insert(index * 100..index * 100 + 10 + index);
        }
        assert_eq!(checked.0.len(), CHECKED_RANGES_PER_SEGMENT_MAX);
        assert!(!checked.contains(&(0..10)), "the shortest was forgotten");
        assert!(checked.contains(&(100..111)) && checked.contains(&(u64::MAX - 1..u64::MAX)));
    }
}
