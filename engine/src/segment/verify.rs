//! Offline verification of a stopped broker's logs, for `sluice verify`.
//!
//! Walks every batch of every segment with plain `std` reads (no executor): framing, CRC-32C
//! and record counts (`record::batch`), base offsets that continue the previous batch (inside a
//! segment and across segments), and the `.index` / `.timeindex` entries against the batches
//! they point at. Read-only: nothing is repaired.
//!
//! A healthy segment (see `appender` and `recovery`) holds batches back to back from byte 0,
//! the first at the segment's base offset, each starting at the previous one's last offset + 1,
//! then either nothing (a sealed segment) or zeros up to the next 4 KiB boundary (the padding
//! of the last block of a segment the broker did not seal: a crash, or a failed seal); the
//! newest segment may hold more zeros (written ahead by an idle appender).
//!
//! Two severities:
//! - **damage**: what no broker writes, crash or not, so something else changed the files:
//!   a bad batch with valid batches after it, batches out of offset order, a gap between
//!   segments, garbage after the end of a sealed segment, index entries that point at no batch.
//!   Recovery does not make these good: it cuts the segment at the first bad batch it scans
//!   (dropping what follows) or, when the damage lies before the last index entry, does not
//!   scan it at all and readers fail there.
//! - **warning**: a torn tail (the end of the newest segment holds no valid batch: a write the
//!   crash interrupted, never synced, so never acknowledged with acks=all), which recovery cuts
//!   at the next start; an index file ending in a partial entry, which recovery ignores. This is
//!   the expected state after kill -9 or power loss, so warnings alone are not failure. Damage
//!   to the very last batch of the newest segment looks exactly like a torn write and is
//!   reported as one.
//!
//! Outside every check: `partitionLeaderEpoch`, and `baseOffset` apart from its order (both lie
//! outside the CRC).
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use zerocopy::{FromBytes, Immutable, KnownLayout};

use crate::index::offset_index::OffsetIndexEntry;
use crate::index::time_index::TimeIndexEntry;
use crate::limits::{DMA_BLOCK_BYTES, READ_CHUNK_BYTES, VERIFY_DIR_DEPTH_MAX, VERIFY_FINDINGS_PER_SEGMENT_MAX};
use crate::record::batch::{self, BatchError, BATCH_HEADER_BYTES, BATCH_LOG_OVERHEAD_BYTES};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    /// No broker writes this: the files were changed by something else.
    Damage,
    /// What a crash leaves behind and recovery cleans up at start.
    Warning,
}

/// Why the bytes at a position are not a valid batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cause {
    /// Framing, CRC or record count.
    Batch(BatchError),
    /// Zeros where a batch should start.
    Zeros,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Problem {
    /// Not a valid batch, yet a valid batch continuing the log follows at `resumes_at`.
    BadBatch { cause: Cause, resumes_at: u64, resumes_offset: i64 },
    /// A valid batch whose base offset is not the previous batch's last offset + 1 (or, first
    /// in its segment, the segment's base offset).
    OffsetOutOfOrder { expected: i64, found: i64 },
    /// A segment whose base offset is not where the previous segment's log ends.
    SegmentOutOfOrder { expected: i64, found: i64 },
    /// The end of the newest segment holds no valid batch: recovery cuts it at start.
    TornTail { cut_bytes: u64, cause: Cause },
    /// After the last batch of an older, sealed segment: bytes that are no batch.
    SealedTail { bytes: u64, cause: Cause },
    /// An index file whose length is not a whole number of entries.
    IndexPartialEntry { trailing_bytes: u64 },
    /// An index entry that does not grow after the previous one (it and later ones are skipped).
    IndexNotGrowing,
    /// An offset-index entry pointing at or past the end of the valid log.
    IndexPastEnd { position: u64, valid_bytes: u64 },
    /// An offset-index entry pointing inside a batch.
    IndexNotAtBatch { position: u64 },
    /// An offset-index entry pointing at a batch that starts at another offset.
    IndexWrongOffset { position: u64, batch_offset: i64 },
    /// A time-index entry naming an offset at which no batch of the valid log starts.
    TimeIndexNotAtBatch,
    /// A time-index timestamp outside `lowest..=highest`: the batch's own max timestamp up to
    /// the largest timestamp in the segment so far.
    TimeIndexWrongTimestamp { timestamp: i64, lowest: i64, highest: i64 },
}

/// One problem: which file, where in it, and at which offset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub severity: Severity,
    pub path: PathBuf,
    /// Byte position in `path` (of the batch, or of the index entry).
    pub position: u64,
    /// The offset concerned: the batch's (or the one expected there), or the index entry's.
    pub offset: Option<i64>,
    pub problem: Problem,
}

/// Counts and findings of a verification; [`Report::merge`] adds reports up.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Report {
    pub partitions: u64,
    pub segments: u64,
    /// Valid batches walked.
    pub batches: u64,
    /// Bytes of segment files read.
    pub bytes: u64,
    pub damage: u64,
    pub warnings: u64,
    /// In log order; per segment only the first `VERIFY_FINDINGS_PER_SEGMENT_MAX` (the counts
    /// above include the rest).
    pub findings: Vec<Finding>,
}

impl Report {
    pub fn merge(&mut self, other: Report) {
        self.partitions += other.partitions;
        self.segments += other.segments;
        self.batches += other.batches;
        self.bytes += other.bytes;
        self.damage += other.damage;
        self.warnings += other.warnings;
        self.findings.extend(other.findings);
    }

    /// Findings counted but not kept.
    pub fn findings_not_kept(&self) -> u64 {
        (self.damage + self.warnings).saturating_sub(self.findings.len() as u64)
    }

    /// Counts `finding`, keeping it while this (one segment's) report holds few enough.
    fn record(&mut self, finding: Finding) {
        match finding.severity {
            Severity::Damage => self.damage += 1,
            Severity::Warning => self.warnings += 1,
        }
        if self.findings.len() < VERIFY_FINDINGS_PER_SEGMENT_MAX {
            self.findings.push(finding);
        }
    }
}

/// One segment's verification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentReport {
    /// One past the last offset of the last valid batch (the base offset if there is none).
    pub next_offset: i64,
    /// Bytes from the start up to the first problem in the log, or up to the end of the last
    /// batch when there is none: where recovery, scanning from byte 0, would cut.
    pub intact_bytes: u64,
    pub report: Report,
}

/// The partition log directories under `root`, sorted: every directory down to
/// `VERIFY_DIR_DEPTH_MAX` levels below it that holds a segment file. A missing `root` has none.
pub fn find_partition_dirs(root: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut found = Vec::new();
    if !root.exists() {
        return Ok(found);
    }
    collect_partition_dirs(root, VERIFY_DIR_DEPTH_MAX, &mut found)?;
    found.sort();
    Ok(found)
}

fn collect_partition_dirs(dir: &Path, levels_below: usize, found: &mut Vec<PathBuf>) -> std::io::Result<()> {
    if !super::list_segments(dir)?.is_empty() {
        found.push(dir.to_path_buf());
    }
    if levels_below == 0 {
        return Ok(());
    }
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        if entry.file_type()?.is_dir() {
            collect_partition_dirs(&entry.path(), levels_below - 1, found)?;
        }
    }
    Ok(())
}

/// Verifies every segment of the partition log in `dir`, and that each segment starts where
/// the previous one's log ends.
pub fn verify_partition(dir: &Path) -> std::io::Result<Report> {
    let bases = super::list_segments(dir)?;
    let mut report = Report { partitions: 1, ..Report::default() };
    let mut expected_base: Option<i64> = None;
    for (index, &base_offset) in bases.iter().enumerate() {
        let newest = index + 1 == bases.len();
        let segment = verify_segment(dir, base_offset, newest)?;
        if let Some(expected) = expected_base.filter(|expected| *expected != base_offset) {
            let mut gap = Report::default();
            gap.record(Finding {
                severity: Severity::Damage,
                path: super::log_path(dir, base_offset),
                position: 0,
                offset: Some(base_offset),
                problem: Problem::SegmentOutOfOrder { expected, found: base_offset },
            });
            report.merge(gap);
        }
        expected_base = Some(segment.next_offset);
        report.merge(segment.report);
    }
    Ok(report)
}

/// Where the walk through a segment is.
struct Walk {
    position: u64,
    expected_offset: i64,
    /// Largest batch timestamp so far in the segment; `i64::MAX` once a damaged stretch was
    /// skipped (its timestamps are unknown, so time-index entries get no upper bound).
    max_timestamp: i64,
    /// Where the log first went wrong, if it did.
    first_problem: Option<u64>,
}

/// Verifies the segment with `base_offset` in `dir` and its indexes. `newest`: the partition's
/// last segment, the only one whose tail may be torn.
pub fn verify_segment(dir: &Path, base_offset: i64, newest: bool) -> std::io::Result<SegmentReport> {
    let path = super::log_path(dir, base_offset);
    let mut log = LogWindow::open(&path)?;
    let mut report = Report { segments: 1, bytes: log.file_bytes, ..Report::default() };
    let mut indexes = IndexCheck::load(dir, base_offset, &mut report)?;
    let mut walk = Walk { position: 0, expected_offset: base_offset, max_timestamp: i64::MIN, first_problem: None };
    let finding = |severity, position, offset, problem| Finding {
        severity,
        path: path.clone(),
        position,
        offset: Some(offset),
        problem,
    };
    loop {
        match read_batch(&mut log, walk.position)? {
            BatchRead::End => break,
            BatchRead::Batch(batch) => {
                if batch.base_offset != walk.expected_offset {
                    let problem =
                        Problem::OffsetOutOfOrder { expected: walk.expected_offset, found: batch.base_offset };
                    report.record(finding(Severity::Damage, walk.position, batch.base_offset, problem));
                    walk.first_problem.get_or_insert(walk.position);
                }
                indexes.check_batch(walk.position, &batch, walk.max_timestamp, &mut report);
                report.batches += 1;
                walk.position += batch.size_bytes;
                walk.expected_offset = batch.last_offset + 1;
                walk.max_timestamp = walk.max_timestamp.max(batch.max_timestamp);
            }
            BatchRead::Bad(cause) => {
                if cause == Cause::Zeros && is_zero_tail(&mut log, walk.position, newest)? {
                    break;
                }
                walk.first_problem.get_or_insert(walk.position);
                let Some((resumes_at, batch)) = resync(&mut log, walk.position + 1, walk.expected_offset)? else {
                    let (severity, problem) = tail_problem(&mut log, walk.position, cause, newest)?;
                    report.record(finding(severity, walk.position, walk.expected_offset, problem));
                    break;
                };
                let problem = Problem::BadBatch { cause, resumes_at, resumes_offset: batch.base_offset };
                report.record(finding(Severity::Damage, walk.position, walk.expected_offset, problem));
                indexes.skip_to(resumes_at, batch.base_offset);
                walk.position = resumes_at;
                walk.expected_offset = batch.base_offset;
                walk.max_timestamp = i64::MAX;
            }
        }
    }
    indexes.check_rest(walk.position, &mut report);
    Ok(SegmentReport {
        next_offset: walk.expected_offset,
        intact_bytes: walk.first_problem.unwrap_or(walk.position),
        report,
    })
}

/// What is wrong with the end of a segment from `position` on, where no valid batch follows.
fn tail_problem(
    log: &mut LogWindow,
    position: u64,
    cause: Cause,
    newest: bool,
) -> std::io::Result<(Severity, Problem)> {
    let bytes = log.file_bytes - position;
    if is_all_zeros(log, position)? {
        // Zeros past the padding of one block: a longer write that never landed.
        return Ok((Severity::Warning, Problem::TornTail { cut_bytes: bytes, cause: Cause::Zeros }));
    }
    if newest {
        return Ok((Severity::Warning, Problem::TornTail { cut_bytes: bytes, cause }));
    }
    // An older segment was synced whole before the next one started, then truncated to its
    // batches: garbage at its end means a batch there was damaged.
    Ok((Severity::Damage, Problem::SealedTail { bytes, cause }))
}

/// Whether the file from `position` (the end of the last batch) on is zeros the appender
/// wrote: the padding of the last block, and in the newest segment the zeros written ahead.
fn is_zero_tail(log: &mut LogWindow, position: u64, newest: bool) -> std::io::Result<bool> {
    let block_end = position.div_ceil(DMA_BLOCK_BYTES) * DMA_BLOCK_BYTES;
    Ok((newest || log.file_bytes <= block_end) && is_all_zeros(log, position)?)
}

fn is_all_zeros(log: &mut LogWindow, mut position: u64) -> std::io::Result<bool> {
    while position < log.file_bytes {
        let chunk = log.read(position, READ_CHUNK_BYTES)?;
        if chunk.iter().any(|byte| *byte != 0) {
            return Ok(false);
        }
        position += chunk.len() as u64;
    }
    Ok(true)
}

/// What a valid batch tells the walk.
#[derive(Debug, Clone, Copy)]
struct BatchSummary {
    size_bytes: u64,
    base_offset: i64,
    last_offset: i64,
    max_timestamp: i64,
}

enum BatchRead {
    Batch(BatchSummary),
    /// The end of the file, at a batch boundary.
    End,
    Bad(Cause),
}

/// Reads and fully checks the batch at `position`.
fn read_batch(log: &mut LogWindow, position: u64) -> std::io::Result<BatchRead> {
    if position >= log.file_bytes {
        return Ok(BatchRead::End);
    }
    let available_bytes = (log.file_bytes - position) as usize;
    let head = log.read(position, BATCH_HEADER_BYTES)?;
    if head[..head.len().min(BATCH_LOG_OVERHEAD_BYTES)].iter().all(|byte| *byte == 0) {
        return Ok(BatchRead::Bad(Cause::Zeros));
    }
    let total_bytes = match batch::frame(head) {
        Ok((_, total_bytes)) => total_bytes,
        Err(BatchError::Truncated { needed_bytes, .. }) if head.len() == BATCH_HEADER_BYTES => needed_bytes,
        Err(error) => return Ok(BatchRead::Bad(Cause::Batch(error))),
    };
    if total_bytes > available_bytes {
        return Ok(BatchRead::Bad(Cause::Batch(BatchError::Truncated { needed_bytes: total_bytes, available_bytes })));
    }
    let bytes = log.read(position, total_bytes)?;
    // CRC first, so that a damaged count field reads as what it is: a CRC mismatch.
    let checked = batch::check_crc(bytes).and_then(|()| batch::validate(bytes, usize::MAX));
    let header = match checked.and_then(|_| batch::header(bytes)) {
        Ok(header) => header,
        Err(error) => return Ok(BatchRead::Bad(Cause::Batch(error))),
    };
    let last_offset_delta = header.last_offset_delta.get();
    if last_offset_delta < 0 {
        let records_count = header.records_count.get();
        return Ok(BatchRead::Bad(Cause::Batch(BatchError::BadRecordCount { records_count, last_offset_delta })));
    }
    Ok(BatchRead::Batch(BatchSummary {
        size_bytes: total_bytes as u64,
        base_offset: header.base_offset.get(),
        last_offset: header.last_offset(),
        max_timestamp: header.max_timestamp.get(),
    }))
}

/// The first position from `from` on where a valid batch continues the log (its base offset
/// at least `expected_offset`, so stale batches from an earlier life of the file do not count).
/// Tries every byte: cheap header tests first, the CRC only for a plausible header.
fn resync(log: &mut LogWindow, from: u64, expected_offset: i64) -> std::io::Result<Option<(u64, BatchSummary)>> {
    let mut position = from;
    while position + BATCH_HEADER_BYTES as u64 <= log.file_bytes {
        let remaining_bytes = log.file_bytes - position;
        let head = log.read(position, BATCH_HEADER_BYTES)?;
        let plausible = batch::header(head).is_ok_and(|header| {
            header.magic == batch::MAGIC_V2
                && header.base_offset.get() >= expected_offset
                && header.batch_length.get() >= (BATCH_HEADER_BYTES - BATCH_LOG_OVERHEAD_BYTES) as i32
                && header.total_bytes() as u64 <= remaining_bytes
        });
        if plausible {
            if let BatchRead::Batch(batch) = read_batch(log, position)? {
                return Ok(Some((position, batch)));
            }
        }
        position += 1;
    }
    Ok(None)
}

/// A segment file read through a window of at least `READ_CHUNK_BYTES`.
struct LogWindow {
    file: std::fs::File,
    file_bytes: u64,
    window_start: u64,
    window: Vec<u8>,
}

impl LogWindow {
    fn open(path: &Path) -> std::io::Result<Self> {
        let file = std::fs::File::open(path)?;
        let file_bytes = file.metadata()?.len();
        Ok(Self { file, file_bytes, window_start: 0, window: Vec::new() })
    }

    /// Up to `length` bytes from `position` (fewer at the end of the file).
    fn read(&mut self, position: u64, length: usize) -> std::io::Result<&[u8]> {
        assert!(position <= self.file_bytes, "read at {position} past the end {}", self.file_bytes);
        let end = (position + length as u64).min(self.file_bytes);
        let window_end = self.window_start + self.window.len() as u64;
        if position < self.window_start || end > window_end {
            let want_bytes = (length.max(READ_CHUNK_BYTES) as u64).min(self.file_bytes - position);
            self.window.resize(want_bytes as usize, 0);
            self.file.seek(SeekFrom::Start(position))?;
            self.file.read_exact(&mut self.window)?;
            self.window_start = position;
        }
        let from = (position - self.window_start) as usize;
        Ok(&self.window[from..from + (end - position) as usize])
    }
}

/// Checks index entries against the batches as the walk meets them. Entries are in file order
/// (checked to grow at load), so each list is consumed front to back with the walk.
struct IndexCheck {
    base_offset: i64,
    offset_path: PathBuf,
    offsets: Vec<OffsetIndexEntry>,
    next_offset_entry: usize,
    time_path: PathBuf,
    times: Vec<TimeIndexEntry>,
    next_time_entry: usize,
}

const OFFSET_ENTRY_BYTES: u64 = std::mem::size_of::<OffsetIndexEntry>() as u64;
const TIME_ENTRY_BYTES: u64 = std::mem::size_of::<TimeIndexEntry>() as u64;

impl IndexCheck {
    fn load(dir: &Path, base_offset: i64, report: &mut Report) -> std::io::Result<Self> {
        let offset_path = super::offset_index_path(dir, base_offset);
        let offsets = load_entries::<OffsetIndexEntry>(&offset_path, report, |entry| {
            (base_offset + i64::from(entry.relative_offset.get()), i64::from(entry.position.get()))
        })?;
        let time_path = super::time_index_path(dir, base_offset);
        // Timestamps grow strictly (`TimeIndex::push`), and so do offsets: one entry per batch.
        let times = load_entries::<TimeIndexEntry>(&time_path, report, |entry| {
            (base_offset + i64::from(entry.relative_offset.get()), entry.timestamp.get())
        })?;
        Ok(Self { base_offset, offset_path, offsets, next_offset_entry: 0, time_path, times, next_time_entry: 0 })
    }

    fn offset_entry(&self, index: usize) -> Option<(i64, u64)> {
        self.offsets
            .get(index)
            .map(|entry| (self.base_offset + i64::from(entry.relative_offset.get()), u64::from(entry.position.get())))
    }

    fn time_entry(&self, index: usize) -> Option<(i64, i64)> {
        self.times
            .get(index)
            .map(|entry| (self.base_offset + i64::from(entry.relative_offset.get()), entry.timestamp.get()))
    }

    /// Checks the entries up to the batch at `position`; `max_before`: the largest batch
    /// timestamp in the segment before it.
    fn check_batch(&mut self, position: u64, batch: &BatchSummary, max_before: i64, report: &mut Report) {
        while let Some((offset, entry_position)) = self.offset_entry(self.next_offset_entry) {
            if entry_position > position {
                break;
            }
            let problem = if entry_position < position {
                Some(Problem::IndexNotAtBatch { position: entry_position })
            } else if offset != batch.base_offset {
                Some(Problem::IndexWrongOffset { position, batch_offset: batch.base_offset })
            } else {
                None
            };
            if let Some(problem) = problem {
                let at = self.next_offset_entry as u64 * OFFSET_ENTRY_BYTES;
                report.record(index_finding(&self.offset_path, at, offset, problem));
            }
            self.next_offset_entry += 1;
        }
        let (lowest, highest) = (batch.max_timestamp, max_before.max(batch.max_timestamp));
        while let Some((offset, timestamp)) = self.time_entry(self.next_time_entry) {
            if offset > batch.base_offset {
                break;
            }
            let problem = if offset < batch.base_offset {
                Some(Problem::TimeIndexNotAtBatch)
            } else if !(lowest..=highest).contains(&timestamp) {
                Some(Problem::TimeIndexWrongTimestamp { timestamp, lowest, highest })
            } else {
                None
            };
            if let Some(problem) = problem {
                let at = self.next_time_entry as u64 * TIME_ENTRY_BYTES;
                report.record(index_finding(&self.time_path, at, offset, problem));
            }
            self.next_time_entry += 1;
        }
    }

    /// Passes over entries inside a damaged stretch the walk skipped: already reported.
    fn skip_to(&mut self, position: u64, offset: i64) {
        while self.offset_entry(self.next_offset_entry).is_some_and(|(_, entry_position)| entry_position < position) {
            self.next_offset_entry += 1;
        }
        while self.time_entry(self.next_time_entry).is_some_and(|(entry_offset, _)| entry_offset < offset) {
            self.next_time_entry += 1;
        }
    }

    /// Entries left after the walk point past the valid log.
    fn check_rest(&mut self, valid_bytes: u64, report: &mut Report) {
        while let Some((offset, position)) = self.offset_entry(self.next_offset_entry) {
            let at = self.next_offset_entry as u64 * OFFSET_ENTRY_BYTES;
            report.record(index_finding(
                &self.offset_path,
                at,
                offset,
                Problem::IndexPastEnd { position, valid_bytes },
            ));
            self.next_offset_entry += 1;
        }
        while let Some((offset, _)) = self.time_entry(self.next_time_entry) {
            let at = self.next_time_entry as u64 * TIME_ENTRY_BYTES;
            report.record(index_finding(&self.time_path, at, offset, Problem::TimeIndexNotAtBatch));
            self.next_time_entry += 1;
        }
    }
}

fn index_finding(path: &Path, position: u64, offset: i64, problem: Problem) -> Finding {
    Finding { severity: Severity::Damage, path: path.to_path_buf(), position, offset: Some(offset), problem }
}

/// Reads an index file (missing: no entries). Reports a partial last entry (a warning: recovery
/// ignores it) and the first entry whose `key` (offset, then position or timestamp) does not
/// grow in both parts; returns the entries before it.
fn load_entries<T: FromBytes + KnownLayout + Immutable + Clone>(
    path: &Path,
    report: &mut Report,
    key: impl Fn(&T) -> (i64, i64),
) -> std::io::Result<Vec<T>> {
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(error) => return Err(error),
    };
    let entry_bytes = std::mem::size_of::<T>();
    let whole_bytes = bytes.len() - bytes.len() % entry_bytes;
    if whole_bytes != bytes.len() {
        report.record(Finding {
            severity: Severity::Warning,
            path: path.to_path_buf(),
            position: whole_bytes as u64,
            offset: None,
            problem: Problem::IndexPartialEntry { trailing_bytes: (bytes.len() - whole_bytes) as u64 },
        });
    }
    let mut entries = <[T]>::ref_from_bytes(&bytes[..whole_bytes])
        .map_err(|_| std::io::Error::other(format!("index {} misaligned", path.display())))?
        .to_vec();
    let shrinks = |pair: &[T]| {
        let ((offset, second), (next_offset, next_second)) = (key(&pair[0]), key(&pair[1]));
        next_offset <= offset || next_second <= second
    };
    if let Some(index) = entries.windows(2).position(shrinks) {
        let bad = index + 1;
        let offset = key(&entries[bad]).0;
        report.record(Finding {
            severity: Severity::Damage,
            path: path.to_path_buf(),
            position: (bad * entry_bytes) as u64,
            offset: Some(offset),
            problem: Problem::IndexNotGrowing,
        });
        entries.truncate(bad);
    }
    Ok(entries)
}

impl std::fmt::Display for Severity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Damage => "damage",
            Self::Warning => "warning",
        })
    }
}

impl std::fmt::Display for Cause {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Zeros => f.write_str("zeros where a batch should start"),
            Self::Batch(BatchError::ChecksumMismatch { expected, actual }) => {
                write!(f, "bad CRC: stored {expected:#010x}, computed {actual:#010x}")
            }
            Self::Batch(BatchError::BadLength { batch_length }) => write!(f, "bad length {batch_length}"),
            Self::Batch(BatchError::Truncated { needed_bytes, available_bytes }) => {
                write!(f, "truncated batch: needs {needed_bytes} bytes, {available_bytes} left")
            }
            Self::Batch(BatchError::UnsupportedMagic { magic }) => write!(f, "bad magic {magic}"),
            Self::Batch(BatchError::BadRecordCount { records_count, last_offset_delta }) => {
                write!(f, "bad record count {records_count} for lastOffsetDelta {last_offset_delta}")
            }
            Self::Batch(error) => write!(f, "{error}"),
        }
    }
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match *self {
            Self::BadBatch { cause, resumes_at, resumes_offset } => {
                write!(f, "{cause}; valid batches resume at byte {resumes_at}, offset {resumes_offset}")
            }
            Self::OffsetOutOfOrder { expected, found } if found > expected => {
                write!(f, "offset gap: expected offset {expected}, the batch starts at {found}")
            }
            Self::OffsetOutOfOrder { expected, found } => {
                write!(f, "offsets go backwards: expected offset {expected}, the batch starts at {found}")
            }
            Self::SegmentOutOfOrder { expected, found } if found > expected => {
                write!(f, "offset gap between segments: the previous segment ends before {expected}, this one starts at {found}")
            }
            Self::SegmentOutOfOrder { expected, found } => {
                write!(f, "segments overlap: the previous segment ends before {expected}, this one starts at {found}")
            }
            Self::TornTail { cut_bytes, cause } => {
                write!(f, "torn tail: recovery will cut {cut_bytes} bytes ({cause})")
            }
            Self::SealedTail { bytes, cause } => {
                write!(f, "{bytes} bytes after the last batch of a sealed segment ({cause})")
            }
            Self::IndexPartialEntry { trailing_bytes } => {
                write!(f, "index ends with {trailing_bytes} bytes of a partial entry (recovery ignores them)")
            }
            Self::IndexNotGrowing => f.write_str("index entry does not grow after the previous one"),
            Self::IndexPastEnd { position, valid_bytes } => {
                write!(f, "index entry past end: points at byte {position}, the valid log ends at byte {valid_bytes}")
            }
            Self::IndexNotAtBatch { position } => {
                write!(f, "index entry points at byte {position}, inside a batch")
            }
            Self::IndexWrongOffset { position, batch_offset } => {
                write!(f, "index entry names the wrong offset: the batch at byte {position} starts at {batch_offset}")
            }
            Self::TimeIndexNotAtBatch => f.write_str("time index entry names an offset where no valid batch starts"),
            Self::TimeIndexWrongTimestamp { timestamp, lowest, highest } => {
                write!(f, "time index timestamp {timestamp} outside the batches' range {lowest}..={highest}")
            }
        }
    }
}

impl std::fmt::Display for Finding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}: byte {}", self.severity, self.path.display(), self.position)?;
        if let Some(offset) = self.offset {
            write!(f, ", offset {offset}")?;
        }
        write!(f, ": {}", self.problem)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::record::batch::build;
    use crate::segment::{log_path, offset_index_path, recovery, time_index_path};

    /// A segment of `batches` batches of two records each, from offset `base`; returns its
    /// bytes and where each batch starts.
    fn segment_of(base: i64, batches: usize) -> (Vec<u8>, Vec<u64>) {
        let mut log = Vec::new();
        let mut starts = Vec::new();
        for index in 0..batches {
            let value = vec![b'v'; 300 + index * 41];
            let mut batch = build::batch(0, 1_000 + index as i64 * 10, &[(b"key", &value), (b"k2", b"v2")]);
            batch::set_base_offset(&mut batch, base + index as i64 * 2);
            starts.push(log.len() as u64);
            log.extend_from_slice(&batch);
        }
        (log, starts)
    }

    fn padded(mut bytes: Vec<u8>) -> Vec<u8> {
        bytes.resize((bytes.len() as u64).div_ceil(DMA_BLOCK_BYTES) as usize * DMA_BLOCK_BYTES as usize, 0);
        bytes
    }

    /// Writes a segment and lets recovery build its index files, as a broker would have.
    fn write_indexed(dir: &Path, base: i64, bytes: &[u8]) {
        std::fs::write(log_path(dir, base), bytes).unwrap();
        recovery::recover_segment(dir, base).unwrap();
    }

    fn problems(report: &Report) -> Vec<Problem> {
        report.findings.iter().map(|finding| finding.problem).collect()
    }

    #[test]
    fn healthy_segments_with_their_indexes_and_padding_are_clean() {
        let dir = tempfile::tempdir().unwrap();
        let (older, _) = segment_of(0, 30);
        let (newest, _) = segment_of(60, 25);
        write_indexed(dir.path(), 0, &older);
        write_indexed(dir.path(), 60, &newest);
        // The newest segment was not sealed: its last block is zero-padded.
        std::fs::write(log_path(dir.path(), 60), padded(newest.clone())).unwrap();
        assert!(std::fs::metadata(offset_index_path(dir.path(), 0)).unwrap().len() > 2 * OFFSET_ENTRY_BYTES);
        assert!(std::fs::metadata(time_index_path(dir.path(), 60)).unwrap().len() > 2 * TIME_ENTRY_BYTES);

        let report = verify_partition(dir.path()).unwrap();
        assert_eq!(report.findings, vec![], "{report:?}");
        assert_eq!((report.damage, report.warnings), (0, 0));
        assert_eq!((report.partitions, report.segments, report.batches), (1, 2, 55));
        assert_eq!(report.bytes, older.len() as u64 + padded(newest).len() as u64);
    }

    #[test]
    fn every_cut_of_the_newest_tail_is_a_torn_tail_where_recovery_cuts() {
        let (log, starts) = segment_of(0, 6);
        let last_start = starts[5] as usize;
        for cut in last_start..=log.len() {
            let dir = tempfile::tempdir().unwrap();
            let file = padded(log[..cut].to_vec());
            std::fs::write(log_path(dir.path(), 0), &file).unwrap();
            let verified = verify_segment(dir.path(), 0, true).unwrap();
            let recovered = recovery::recover_segment(dir.path(), 0).unwrap();
            assert_eq!(verified.intact_bytes, recovered.size_bytes, "cut at {cut}");
            assert_eq!(verified.next_offset, recovered.next_offset, "cut at {cut}");
            assert_eq!(verified.report.damage, 0, "cut at {cut}: {:?}", verified.report);
            // Cutting zero bytes off the end of the batch and padding with zeros gives back the
            // whole batch; cutting it down to zeros gives back the padding of the batch before.
            if log[cut..].iter().all(|byte| *byte == 0) || file[last_start..].iter().all(|byte| *byte == 0) {
                assert_eq!(verified.report.findings, vec![], "cut at {cut}");
                continue;
            }
            let cut_bytes = file.len() as u64 - recovered.size_bytes;
            assert_eq!(verified.report.warnings, 1, "cut at {cut}");
            let finding = &verified.report.findings[0];
            assert_eq!((finding.position, finding.offset), (starts[5], Some(10)), "cut at {cut}");
            assert!(
                matches!(finding.problem, Problem::TornTail { cut_bytes: bytes, .. } if bytes == cut_bytes),
                "cut at {cut}: {finding}"
            );
            assert!(finding.to_string().contains(&format!("torn tail: recovery will cut {cut_bytes} bytes")));
        }
    }

    #[test]
    fn a_flipped_byte_mid_segment_is_damage_naming_file_position_and_offset() {
        let dir = tempfile::tempdir().unwrap();
        let (mut log, starts) = segment_of(0, 10);
        write_indexed(dir.path(), 0, &log);
        log[starts[4] as usize + 100] ^= 0x10; // inside the first record's value
        std::fs::write(log_path(dir.path(), 0), &log).unwrap();

        let report = verify_partition(dir.path()).unwrap();
        assert_eq!((report.damage, report.warnings, report.batches), (1, 0, 9), "{report:?}");
        let finding = &report.findings[0];
        assert_eq!(finding.path, log_path(dir.path(), 0));
        assert_eq!((finding.position, finding.offset), (starts[4], Some(8)));
        assert!(matches!(
            finding.problem,
            Problem::BadBatch { cause: Cause::Batch(BatchError::ChecksumMismatch { .. }), resumes_at, resumes_offset: 10 }
                if resumes_at == starts[5]
        ));
        let line = finding.to_string();
        assert!(line.starts_with("damage: "), "{line}");
        assert!(line.contains(&format!("00000000000000000000.log: byte {}, offset 8: bad CRC", starts[4])), "{line}");
    }

    #[test]
    fn every_flipped_byte_of_a_middle_batch_is_damage_except_the_leader_epoch() {
        let dir = tempfile::tempdir().unwrap();
        let (log, starts) = segment_of(0, 5);
        let (first, end) = (starts[2] as usize, starts[3] as usize);
        for index in first..end {
            let mut damaged = log.clone();
            damaged[index] ^= 0x04;
            std::fs::write(log_path(dir.path(), 0), &damaged).unwrap();
            let report = verify_partition(dir.path()).unwrap();
            let epoch = (first + 12..first + 16).contains(&index); // outside the CRC, unchecked
            assert_eq!(report.damage == 0, epoch, "flip at byte {index}: {report:?}");
            assert_eq!(report.warnings, 0, "flip at byte {index}: {report:?}");
            assert_eq!(report.findings.first().map(|finding| finding.position), (!epoch).then_some(starts[2]));
        }
    }

    #[test]
    fn a_bad_length_mid_segment_resyncs_at_the_next_batch() {
        let dir = tempfile::tempdir().unwrap();
        let (mut log, starts) = segment_of(0, 5);
        let length_at = starts[2] as usize + 8;
        log[length_at..length_at + 4].copy_from_slice(&7i32.to_be_bytes());
        std::fs::write(log_path(dir.path(), 0), &log).unwrap();
        let report = verify_partition(dir.path()).unwrap();
        assert_eq!(
            problems(&report),
            vec![Problem::BadBatch {
                cause: Cause::Batch(BatchError::BadLength { batch_length: 7 }),
                resumes_at: starts[3],
                resumes_offset: 6
            }]
        );
        assert_eq!(report.batches, 4);
    }

    #[test]
    fn a_hole_of_zeros_mid_segment_is_damage_and_zeros_written_ahead_are_clean() {
        let dir = tempfile::tempdir().unwrap();
        let (mut log, starts) = segment_of(0, 5);
        log[starts[1] as usize..starts[2] as usize].fill(0);
        log.extend_from_slice(&[0; 2 * DMA_BLOCK_BYTES as usize]);
        std::fs::write(log_path(dir.path(), 0), &log).unwrap();
        let report = verify_partition(dir.path()).unwrap();
        assert_eq!(
            problems(&report),
            vec![Problem::BadBatch { cause: Cause::Zeros, resumes_at: starts[2], resumes_offset: 4 }]
        );
        assert_eq!((report.damage, report.warnings), (1, 0));
    }

    #[test]
    fn zeros_past_the_block_of_an_older_segment_are_a_warning() {
        let dir = tempfile::tempdir().unwrap();
        let (mut older, _) = segment_of(0, 4);
        let end = older.len() as u64;
        older.extend_from_slice(&[0; 2 * DMA_BLOCK_BYTES as usize]);
        let (newest, _) = segment_of(8, 2);
        std::fs::write(log_path(dir.path(), 0), &older).unwrap();
        std::fs::write(log_path(dir.path(), 8), &newest).unwrap();
        let report = verify_partition(dir.path()).unwrap();
        assert_eq!(problems(&report)[0], Problem::TornTail { cut_bytes: 2 * DMA_BLOCK_BYTES, cause: Cause::Zeros });
        assert_eq!((report.findings[0].position, report.findings[0].offset), (end, Some(8)));
        assert_eq!(report.warnings, 1);
    }

    #[test]
    fn a_damaged_end_of_an_older_segment_is_damage_and_leaves_a_gap() {
        let dir = tempfile::tempdir().unwrap();
        let (older, starts) = segment_of(0, 4);
        let (newest, _) = segment_of(8, 2);
        std::fs::write(log_path(dir.path(), 0), &older[..older.len() - 5]).unwrap();
        std::fs::write(log_path(dir.path(), 8), &newest).unwrap();
        let report = verify_partition(dir.path()).unwrap();
        let cause = Cause::Batch(BatchError::Truncated {
            needed_bytes: older.len() - starts[3] as usize,
            available_bytes: older.len() - 5 - starts[3] as usize,
        });
        assert_eq!(
            problems(&report),
            vec![
                Problem::SealedTail { bytes: older.len() as u64 - 5 - starts[3], cause },
                Problem::SegmentOutOfOrder { expected: 6, found: 8 },
            ]
        );
        assert_eq!(report.findings[1].path, log_path(dir.path(), 8));
        assert_eq!((report.damage, report.warnings, report.batches), (2, 0, 5));
    }

    #[test]
    fn offsets_must_continue_inside_a_segment() {
        let dir = tempfile::tempdir().unwrap();
        let (mut log, starts) = segment_of(0, 4);
        batch::set_base_offset(&mut log[starts[2] as usize..], 9); // outside the CRC
        std::fs::write(log_path(dir.path(), 0), &log).unwrap();
        let report = verify_partition(dir.path()).unwrap();
        assert_eq!(
            problems(&report),
            vec![
                Problem::OffsetOutOfOrder { expected: 4, found: 9 },
                Problem::OffsetOutOfOrder { expected: 11, found: 6 }
            ]
        );
        assert_eq!(report.findings[0].position, starts[2]);
        assert_eq!(report.batches, 4);
        assert!(report.findings[1].to_string().contains("offsets go backwards"));
    }

    fn offset_entry(relative_offset: u32, position: u64) -> OffsetIndexEntry {
        OffsetIndexEntry { relative_offset: relative_offset.into(), position: (position as u32).into() }
    }

    fn time_entry(timestamp: i64, relative_offset: u32) -> TimeIndexEntry {
        TimeIndexEntry { timestamp: timestamp.into(), relative_offset: relative_offset.into() }
    }

    #[test]
    fn index_entries_must_point_at_the_batches_they_name() {
        let dir = tempfile::tempdir().unwrap();
        let (log, starts) = segment_of(100, 6);
        std::fs::write(log_path(dir.path(), 100), &log).unwrap();
        let offsets = [
            offset_entry(0, 0),
            offset_entry(2, starts[1] + 3),     // inside batch 1
            offset_entry(5, starts[2]),         // batch 2 starts at relative offset 4
            offset_entry(8, starts[4]),         // fine
            offset_entry(40, log.len() as u64), // past the end
        ];
        let mut index_bytes = zerocopy::IntoBytes::as_bytes(&offsets[..]).to_vec();
        index_bytes.extend_from_slice(&[1, 2, 3]); // a torn append
        std::fs::write(offset_index_path(dir.path(), 100), index_bytes).unwrap();
        // Batch i has max timestamp 1_000 + 10 i + 1.
        let times = [time_entry(1_001, 0), time_entry(1_005, 2), time_entry(1_031, 6), time_entry(1_030, 8)];
        crate::index::write_entries(&time_index_path(dir.path(), 100), &times).unwrap();

        let report = verify_partition(dir.path()).unwrap();
        let at =
            |finding: &Finding| (finding.path.extension().unwrap().to_str().unwrap().to_string(), finding.position);
        let found: Vec<_> =
            report.findings.iter().map(|finding| (at(finding), finding.offset, finding.problem)).collect();
        let index = |position| ("index".to_string(), position);
        let time = |position| ("timeindex".to_string(), position);
        assert_eq!(
            found,
            vec![
                (index(40), None, Problem::IndexPartialEntry { trailing_bytes: 3 }),
                (time(36), Some(108), Problem::IndexNotGrowing),
                (
                    time(12),
                    Some(102),
                    Problem::TimeIndexWrongTimestamp { timestamp: 1_005, lowest: 1_011, highest: 1_011 }
                ),
                (index(8), Some(102), Problem::IndexNotAtBatch { position: starts[1] + 3 }),
                (index(16), Some(105), Problem::IndexWrongOffset { position: starts[2], batch_offset: 104 }),
                (
                    index(32),
                    Some(140),
                    Problem::IndexPastEnd { position: log.len() as u64, valid_bytes: log.len() as u64 }
                ),
            ]
        );
        assert_eq!((report.damage, report.warnings, report.batches), (5, 1, 6));
    }

    #[test]
    fn partition_dirs_are_found_below_topics_and_nested_logs_too() {
        let root = tempfile::tempdir().unwrap();
        let make = |relative: &str, with_log: bool| {
            let dir = root.path().join(relative);
            std::fs::create_dir_all(&dir).unwrap();
            if with_log {
                std::fs::write(log_path(&dir, 0), b"").unwrap();
            }
            dir
        };
        let first = make("orders/0", true);
        let second = make("orders/1", true);
        let groups = make("orders/stream-groups", true);
        make("orders/2", false);
        make("notes/0", false);
        std::fs::write(root.path().join("notes/0/README.log.txt"), b"not a segment").unwrap();
        let nested = make("a/b/c", true);
        make("a/b/c/d", true); // deeper than VERIFY_DIR_DEPTH_MAX
        assert_eq!(find_partition_dirs(root.path()).unwrap(), vec![nested, first, second, groups]);
        assert_eq!(find_partition_dirs(&root.path().join("missing")).unwrap(), Vec::<PathBuf>::new());
    }
}
