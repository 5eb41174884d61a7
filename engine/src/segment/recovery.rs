//! Finding the valid end of a segment after a crash.
//!
//! Walk batches from a known-good position (the last offset-index entry, or 0): each must
//! have a sane header, a matching CRC and the next expected offset. The first batch that does
//! not, or a zero header (the zero padding of the last block), ends the log. Everything from
//! there on is cut: a torn write is never served.
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

use super::ScannedBatch;
use crate::index::offset_index::{OffsetIndex, OffsetIndexEntry};
use crate::index::time_index::{TimeIndex, TimeIndexEntry};
use crate::limits::{INDEX_INTERVAL_BYTES, READ_CHUNK_BYTES};
use crate::record::batch::{self, BatchError};

/// Why a scan stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScanStop {
    /// The bytes ran out at a batch boundary.
    EndOfInput,
    /// A batch starts but the bytes end inside it; `needed_bytes` would complete it.
    Incomplete {
        needed_bytes: usize,
    },
    /// An all-zero header: the zero padding after the last batch, never written with data.
    Zeros,
    Corrupt(BatchError),
    /// A valid batch with an unexpected offset (a stale batch from an earlier life of the file).
    OffsetMismatch {
        expected: i64,
        found: i64,
    },
}

/// Walks the batches in `bytes`, which start at file `position` with the batch whose base
/// offset must be `expected_offset`. Appends what it finds to `found`; returns the number of
/// bytes consumed (whole valid batches) and why it stopped.
pub fn scan(bytes: &[u8], position: u64, mut expected_offset: i64, found: &mut Vec<ScannedBatch>) -> (usize, ScanStop) {
    let mut consumed = 0usize;
    loop {
        let rest = &bytes[consumed..];
        if rest.is_empty() {
            return (consumed, ScanStop::EndOfInput);
        }
        if rest.len() >= batch::BATCH_LOG_OVERHEAD_BYTES
            && rest[..batch::BATCH_LOG_OVERHEAD_BYTES].iter().all(|b| *b == 0)
        {
            return (consumed, ScanStop::Zeros);
        }
        let header = match batch::frame(rest) {
            Ok((header, _)) => header,
            Err(BatchError::Truncated { needed_bytes, .. }) => {
                return (consumed, ScanStop::Incomplete { needed_bytes });
            }
            Err(error) => return (consumed, ScanStop::Corrupt(error)),
        };
        let size_bytes = header.total_bytes();
        if let Err(error) = batch::check_crc(&rest[..size_bytes]) {
            return (consumed, ScanStop::Corrupt(error));
        }
        let base_offset = header.base_offset.get();
        if base_offset != expected_offset || header.last_offset_delta.get() < 0 {
            return (consumed, ScanStop::OffsetMismatch { expected: expected_offset, found: base_offset });
        }
        let last_offset = header.last_offset();
        found.push(ScannedBatch {
            position: position + consumed as u64,
            size_bytes: size_bytes as u32,
            base_offset,
            last_offset,
            max_timestamp: header.max_timestamp.get(),
        });
        expected_offset = last_offset + 1;
        consumed += size_bytes;
    }
}

/// The state of one segment after recovery.
#[derive(Debug)]
pub struct RecoveredSegment {
    pub base_offset: i64,
    /// Bytes of valid batches; the file was truncated to this length.
    pub size_bytes: u64,
    /// One past the last offset in the segment (`base_offset` if empty).
    pub next_offset: i64,
    pub max_timestamp: i64,
    pub offset_index: OffsetIndex,
    pub time_index: TimeIndex,
    /// Whether anything after the valid end was cut (torn or corrupt tail), beyond zeros.
    pub cut_bytes: u64,
    /// Batches read and checked: those after the last index entry that was still valid.
    pub scanned_batches: usize,
    /// Where that scan started: every batch from this position on had its CRC checked.
    pub scanned_from: u64,
}

/// Recovers the segment with `base_offset` in `dir`: trims its indexes to the valid log,
/// scans from the last index entry, truncates the file at the first bad batch and brings the
/// index files up to date.
pub fn recover_segment(dir: &Path, base_offset: i64) -> std::io::Result<RecoveredSegment> {
    let log_path = super::log_path(dir, base_offset);
    let mut file = std::fs::OpenOptions::new().read(true).write(true).open(&log_path)?;
    let file_bytes = file.metadata()?.len();

    let index_path = super::offset_index_path(dir, base_offset);
    let time_index_path = super::time_index_path(dir, base_offset);
    let file_length = |path: &Path| std::fs::metadata(path).map_or(0, |metadata| metadata.len());
    let (index_file_bytes, time_index_file_bytes) = (file_length(&index_path), file_length(&time_index_path));
    let mut offset_index = OffsetIndex::from_entries(valid_offset_entries(crate::index::read_entries(&index_path)?));
    offset_index.truncate_to_position(file_bytes.min(u64::from(u32::MAX)) as u32);
    let mut time_index = TimeIndex::from_entries(crate::index::read_entries::<TimeIndexEntry>(&time_index_path)?);

    // Start at the last index entry whose batch is still valid.
    let mut found = Vec::new();
    let (scanned_from, mut expected_offset) = loop {
        let Some(entry) = offset_index.last() else { break (0, base_offset) };
        let position = u64::from(entry.position.get());
        let expected = base_offset + i64::from(entry.relative_offset.get());
        let mut probe = Vec::new();
        scan_file(&mut file, position, file_bytes, expected, &mut probe, 1)?;
        if probe.len() == 1 {
            break (position, expected);
        }
        offset_index.truncate_to_position(position as u32);
    };
    time_index.truncate_to_offset((expected_offset - base_offset) as u32);

    let mut position = scanned_from;
    let (end, stop) = scan_file(&mut file, position, file_bytes, expected_offset, &mut found, usize::MAX)?;
    let mut max_timestamp = time_index.entries().last().map_or(i64::MIN, |entry| entry.timestamp.get());
    let mut bytes_since_index = 0u64;
    let persisted_offset_entries = offset_index.entries().len();
    let persisted_time_entries = time_index.entries().len();
    for batch in &found {
        if batch.position == position && offset_index.last().is_some_and(|e| u64::from(e.position.get()) == position) {
            // The entry we started from.
        } else if offset_index.last().is_none() || bytes_since_index >= INDEX_INTERVAL_BYTES {
            offset_index.push((batch.base_offset - base_offset) as u32, batch.position as u32);
            time_index.push(batch.max_timestamp.max(max_timestamp), (batch.base_offset - base_offset) as u32);
            bytes_since_index = 0;
        }
        bytes_since_index += u64::from(batch.size_bytes);
        max_timestamp = max_timestamp.max(batch.max_timestamp);
        expected_offset = batch.last_offset + 1;
        position = batch.position + u64::from(batch.size_bytes);
    }
    debug_assert_eq!(position, end);
    let cut_bytes = match stop {
        ScanStop::Zeros | ScanStop::EndOfInput => 0,
        _ => file_bytes - end,
    };
    if file_bytes != end {
        file.set_len(end)?;
        file.sync_all()?;
    }
    // Rewrite the indexes when recovery changed them, or when their files hold more than the
    // entries kept (a torn last entry, or damage dropped): entries appended later must line up.
    let entry_bytes = |count: usize, size: usize| (count * size) as u64;
    let files_hold_more = index_file_bytes != entry_bytes(persisted_offset_entries, OFFSET_ENTRY_BYTES)
        || time_index_file_bytes != entry_bytes(persisted_time_entries, TIME_ENTRY_BYTES);
    if offset_index.entries().len() != persisted_offset_entries
        || time_index.entries().len() != persisted_time_entries
        || files_hold_more
    {
        crate::index::write_entries(&index_path, offset_index.entries())?;
        crate::index::write_entries(&time_index_path, time_index.entries())?;
    }
    if cut_bytes > 0 {
        tracing::warn!(segment = %log_path.display(), valid_bytes = end, cut_bytes, reason = ?stop, "recovery cut a torn or corrupt tail");
    }
    Ok(RecoveredSegment {
        base_offset,
        size_bytes: end,
        next_offset: expected_offset,
        max_timestamp,
        offset_index,
        time_index,
        cut_bytes,
        scanned_batches: found.len(),
        scanned_from,
    })
}

const OFFSET_ENTRY_BYTES: usize = std::mem::size_of::<OffsetIndexEntry>();
const TIME_ENTRY_BYTES: usize = std::mem::size_of::<TimeIndexEntry>();

fn valid_offset_entries(mut entries: Vec<OffsetIndexEntry>) -> Vec<OffsetIndexEntry> {
    // Keep the longest strictly increasing prefix; anything else is damage.
    let keep = entries
        .windows(2)
        .position(|pair| {
            pair[1].relative_offset.get() <= pair[0].relative_offset.get()
                || pair[1].position.get() <= pair[0].position.get()
        })
        .map_or(entries.len(), |index| index + 1);
    entries.truncate(keep);
    entries
}

/// Scans the file from `position` in chunks; stops after `batches_max` batches or at the end of
/// the valid log. Returns the end position of the last whole valid batch and why it stopped.
fn scan_file(
    file: &mut std::fs::File,
    mut position: u64,
    file_bytes: u64,
    mut expected_offset: i64,
    found: &mut Vec<ScannedBatch>,
    batches_max: usize,
) -> std::io::Result<(u64, ScanStop)> {
    let mut chunk = Vec::new();
    let mut chunk_bytes = READ_CHUNK_BYTES;
    let start_count = found.len();
    loop {
        let remaining = file_bytes.saturating_sub(position);
        let want = (chunk_bytes as u64).min(remaining) as usize;
        chunk.resize(want, 0);
        file.seek(SeekFrom::Start(position))?;
        file.read_exact(&mut chunk)?;
        let before = found.len();
        let (consumed, stop) = scan(&chunk, position, expected_offset, found);
        if found.len() - start_count >= batches_max && found.len() > before {
            found.truncate(start_count + batches_max);
            let last = found[found.len() - 1];
            return Ok((last.position + u64::from(last.size_bytes), ScanStop::EndOfInput));
        }
        if let Some(last) = found[before..].last() {
            expected_offset = last.last_offset + 1;
        }
        position += consumed as u64;
        match stop {
            ScanStop::EndOfInput if position < file_bytes => {}
            ScanStop::Incomplete { needed_bytes } if (position + needed_bytes as u64) <= file_bytes => {
                chunk_bytes = chunk_bytes.max(needed_bytes);
            }
            stop => return Ok((position, stop)),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::record::batch::build;

    fn log_of(batches: usize) -> (Vec<u8>, Vec<usize>) {
        let mut log = Vec::new();
        let mut ends = Vec::new();
        for index in 0..batches {
            let value = vec![index as u8; 100 + index * 37];
            let mut batch = build::batch(0, 1000 + index as i64, &[(b"key", &value), (b"k2", b"v2")]);
            batch::set_base_offset(&mut batch, index as i64 * 2);
            log.extend_from_slice(&batch);
            ends.push(log.len());
        }
        (log, ends)
    }

    #[test]
    fn scan_stops_at_every_cut_of_the_last_batch() {
        let (log, ends) = log_of(4);
        let last_start = ends[2];
        for cut in last_start..=log.len() {
            let mut found = Vec::new();
            let (consumed, _) = scan(&log[..cut], 0, 0, &mut found);
            let expected_batches = if cut == log.len() { 4 } else { 3 };
            assert_eq!(found.len(), expected_batches, "cut at {cut}");
            assert_eq!(consumed, ends[expected_batches - 1], "cut at {cut}");
        }
    }

    #[test]
    fn scan_rejects_zeros_garbage_and_stale_offsets() {
        let (mut log, ends) = log_of(2);
        log.extend_from_slice(&[0u8; 100]);
        let mut found = Vec::new();
        assert_eq!(scan(&log, 0, 0, &mut found), (ends[1], ScanStop::Zeros));
        let (log, _) = log_of(2);
        found.clear();
        let (_, stop) = scan(&log, 0, 7, &mut found);
        assert_eq!(stop, ScanStop::OffsetMismatch { expected: 7, found: 0 });
        let mut garbage = log.clone();
        garbage[ends[0] + 30] ^= 1;
        found.clear();
        let (consumed, stop) = scan(&garbage, 0, 0, &mut found);
        assert_eq!(consumed, ends[0]);
        assert!(matches!(stop, ScanStop::Corrupt(BatchError::ChecksumMismatch { .. })));
    }

    fn write_segment(dir: &Path, bytes: &[u8]) {
        std::fs::write(crate::segment::log_path(dir, 0), bytes).unwrap();
    }

    #[test]
    fn recovery_truncates_every_cut_of_the_last_batch_on_disk() {
        let (log, ends) = log_of(5);
        let dir = tempfile::tempdir().unwrap();
        for cut in ends[3]..=log.len() {
            let _ = std::fs::remove_file(crate::segment::offset_index_path(dir.path(), 0));
            let _ = std::fs::remove_file(crate::segment::time_index_path(dir.path(), 0));
            let mut bytes = log[..cut].to_vec();
            bytes.extend_from_slice(&[0u8; 4096]); // zero padding after the last batch
            write_segment(dir.path(), &bytes);
            let recovered = recover_segment(dir.path(), 0).unwrap();
            // Cutting trailing zero bytes and padding with zeros gives back the same batch.
            let whole = if log[cut..].iter().all(|byte| *byte == 0) { 5 } else { 4 };
            assert_eq!(recovered.size_bytes as usize, ends[whole - 1], "cut at {cut}");
            assert_eq!(recovered.next_offset, whole as i64 * 2, "cut at {cut}");
            let on_disk = std::fs::read(crate::segment::log_path(dir.path(), 0)).unwrap();
            assert_eq!(on_disk, log[..ends[whole - 1]], "file truncated to the valid prefix");
            assert_eq!(recovered.max_timestamp, 1000 + whole as i64 - 1 + 1);
        }
    }

    #[test]
    fn recovery_uses_and_repairs_the_index() {
        let (log, ends) = log_of(60);
        let dir = tempfile::tempdir().unwrap();
        write_segment(dir.path(), &log);
        let first = recover_segment(dir.path(), 0).unwrap();
        assert!(first.offset_index.entries().len() > 1, "index rebuilt with entries every interval");
        // Cut the log in the middle: index entries past the cut must go.
        let mut cut_log = log[..ends[30] + 10].to_vec();
        cut_log.extend_from_slice(b"torn");
        write_segment(dir.path(), &cut_log);
        let second = recover_segment(dir.path(), 0).unwrap();
        assert_eq!(second.size_bytes as usize, ends[30]);
        assert_eq!(second.next_offset, 62);
        assert!(second.cut_bytes > 0);
        assert!(second.offset_index.entries().iter().all(|e| (e.position.get() as usize) < ends[30]));
        let reread = recover_segment(dir.path(), 0).unwrap();
        assert_eq!(reread.offset_index.entries(), second.offset_index.entries());
        assert_eq!(reread.cut_bytes, 0);
    }

    #[test]
    fn a_torn_index_entry_is_cut_so_later_entries_line_up() {
        let (log, _) = log_of(60);
        let dir = tempfile::tempdir().unwrap();
        write_segment(dir.path(), &log);
        let first = recover_segment(dir.path(), 0).unwrap();
        let index_path = crate::segment::offset_index_path(dir.path(), 0);
        let time_path = crate::segment::time_index_path(dir.path(), 0);
        // A crash tore the last entry of both index files.
        for path in [&index_path, &time_path] {
            let mut bytes = std::fs::read(path).unwrap();
            bytes.extend_from_slice(&[7, 7, 7]);
            std::fs::write(path, bytes).unwrap();
        }
        let second = recover_segment(dir.path(), 0).unwrap();
        assert_eq!(second.offset_index.entries(), first.offset_index.entries());
        let index_bytes = std::fs::metadata(&index_path).unwrap().len() as usize;
        assert_eq!(index_bytes, first.offset_index.entries().len() * OFFSET_ENTRY_BYTES);
        let time_bytes = std::fs::metadata(&time_path).unwrap().len() as usize;
        assert_eq!(time_bytes, second.time_index.entries().len() * TIME_ENTRY_BYTES);
    }
}
