//! Producer-state snapshots: `<offset:020>.snapshot` files holding a partition's
//! [`ProducerTable`] as of `offset` (every batch below it applied, none at or past it), as
//! Kafka keeps them. One is written when a segment rolls and one at a clean close; at open the
//! newest valid one is loaded and the log replayed from its offset (see `producer_recovery`).
//!
//! Format (little-endian), version 1:
//! ```text
//! header:   magic "SLPS" | version u8 | reserved [u8; 3] | crc u32 | content_bytes u32
//! content:  offset i64 | producer_count u32 | reserved u32
//!           producer_count x (producer_id i64 | epoch i16 | batch_count u16
//!                             | batch_count x (first_sequence i32 | last_sequence i32
//!                                              | base_offset i64 | last_offset i64))
//! ```
//! The CRC-32C covers the content; `content_bytes` must be exactly what follows the header.
//! Producers are written least recently seen first, so eviction order survives a restart.
//! Files are replaced atomically (temp file, fsync, rename, fsync dir); a file that fails any
//! check is never trusted.
use std::io::Read;
use std::path::{Path, PathBuf};

use zerocopy::little_endian::{I16, I32, I64, U16, U32};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

use super::producers::{
    ProducerState, ProducerTable, WrittenBatch, PRODUCERS_PER_PARTITION_MAX, PRODUCER_BATCHES_KEPT,
};

const SNAPSHOT_SUFFIX: &str = ".snapshot";
/// What `crate::fs::write_atomic` names the file while writing it.
const SNAPSHOT_TEMP_SUFFIX: &str = ".snapshot.tmp";
const SNAPSHOT_MAGIC: [u8; 4] = *b"SLPS";
const SNAPSHOT_VERSION: u8 = 1;

#[derive(FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned, Clone, Copy, Debug)]
#[repr(C)]
struct SnapshotHeader {
    magic: [u8; 4],
    version: u8,
    reserved: [u8; 3],
    crc: U32,
    content_bytes: U32,
}

#[derive(FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned, Clone, Copy, Debug)]
#[repr(C)]
struct ContentHeader {
    offset: I64,
    producer_count: U32,
    reserved: U32,
}

#[derive(FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned, Clone, Copy, Debug)]
#[repr(C)]
struct ProducerRecord {
    producer_id: I64,
    epoch: I16,
    batch_count: U16,
}

#[derive(FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned, Clone, Copy, Debug)]
#[repr(C)]
struct BatchRecord {
    first_sequence: I32,
    last_sequence: I32,
    base_offset: I64,
    last_offset: I64,
}

const HEADER_BYTES: usize = std::mem::size_of::<SnapshotHeader>();
const _: () = assert!(HEADER_BYTES == 16);
const _: () = assert!(std::mem::size_of::<ContentHeader>() == 16);
const _: () = assert!(std::mem::size_of::<ProducerRecord>() == 12);
const _: () = assert!(std::mem::size_of::<BatchRecord>() == 24);
const _: () = assert!(PRODUCER_BATCHES_KEPT <= u16::MAX as usize);

/// The largest snapshot a partition can write (every producer with every batch kept); a
/// bigger file is refused before it is read.
pub const SNAPSHOT_BYTES_MAX: usize = HEADER_BYTES
    + std::mem::size_of::<ContentHeader>()
    + PRODUCERS_PER_PARTITION_MAX
        * (std::mem::size_of::<ProducerRecord>() + PRODUCER_BATCHES_KEPT * std::mem::size_of::<BatchRecord>());
const _: () = assert!(SNAPSHOT_BYTES_MAX <= u32::MAX as usize);

/// Why a snapshot file was not trusted.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SnapshotError {
    /// The file ends before its header or its content does (a torn write).
    Truncated {
        needed_bytes: usize,
        available_bytes: usize,
    },
    TooLarge {
        size_bytes: u64,
    },
    BadMagic,
    UnsupportedVersion {
        version: u8,
    },
    ChecksumMismatch {
        expected: u32,
        actual: u32,
    },
    /// The checksum matches but the content breaks the format's rules.
    Malformed {
        reason: &'static str,
    },
    /// The offset inside the file is not the one in its name.
    OffsetMismatch {
        named: i64,
        found: i64,
    },
}

impl std::fmt::Display for SnapshotError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Truncated { needed_bytes, available_bytes } => {
                write!(f, "producer snapshot truncated: needs {needed_bytes} bytes, has {available_bytes}")
            }
            Self::TooLarge { size_bytes } => {
                write!(f, "producer snapshot of {size_bytes} bytes exceeds {SNAPSHOT_BYTES_MAX}")
            }
            Self::BadMagic => write!(f, "not a producer snapshot (bad magic)"),
            Self::UnsupportedVersion { version } => write!(f, "producer snapshot version {version} unsupported"),
            Self::ChecksumMismatch { expected, actual } => {
                write!(f, "producer snapshot CRC mismatch: header {expected:#010x}, computed {actual:#010x}")
            }
            Self::Malformed { reason } => write!(f, "producer snapshot malformed: {reason}"),
            Self::OffsetMismatch { named, found } => {
                write!(f, "producer snapshot named for offset {named} holds offset {found}")
            }
        }
    }
}

impl std::error::Error for SnapshotError {}

/// A decoded snapshot: the producer table as of `offset`.
#[derive(Debug, Clone)]
pub struct ProducerSnapshot {
    pub offset: i64,
    pub table: ProducerTable,
}

pub fn snapshot_path(dir: &Path, offset: i64) -> PathBuf {
    dir.join(format!("{offset:020}{SNAPSHOT_SUFFIX}"))
}

/// Encodes `table` as the snapshot at `offset`.
pub fn encode(offset: i64, table: &ProducerTable) -> Vec<u8> {
    let states = table.states();
    let content_header =
        ContentHeader { offset: offset.into(), producer_count: U32::new(states.len() as u32), reserved: U32::ZERO };
    let mut content = content_header.as_bytes().to_vec();
    for state in &states {
        let record = ProducerRecord {
            producer_id: state.producer_id.into(),
            epoch: state.epoch.into(),
            batch_count: U16::new(state.batches.len() as u16),
        };
        content.extend_from_slice(record.as_bytes());
        for batch in &state.batches {
            let record = BatchRecord {
                first_sequence: batch.first_sequence.into(),
                last_sequence: batch.last_sequence.into(),
                base_offset: batch.base_offset.into(),
                last_offset: batch.last_offset.into(),
            };
            content.extend_from_slice(record.as_bytes());
        }
    }
    assert!(content.len() + HEADER_BYTES <= SNAPSHOT_BYTES_MAX, "snapshot of {} bytes", content.len());
    let header = SnapshotHeader {
        magic: SNAPSHOT_MAGIC,
        version: SNAPSHOT_VERSION,
        reserved: [0; 3],
        crc: U32::new(crc32c::crc32c(&content)),
        content_bytes: U32::new(content.len() as u32),
    };
    let mut bytes = Vec::with_capacity(HEADER_BYTES + content.len());
    bytes.extend_from_slice(header.as_bytes());
    bytes.extend_from_slice(&content);
    bytes
}

/// Decodes a snapshot, checking its magic, version, length and CRC, then every count and
/// offset in it.
pub fn decode(bytes: &[u8]) -> Result<ProducerSnapshot, SnapshotError> {
    let content = checked_content(bytes)?;
    let (content_header, mut rest) = ContentHeader::read_from_prefix(content)
        .map_err(|_| SnapshotError::Malformed { reason: "content shorter than its header" })?;
    let offset = content_header.offset.get();
    let producer_count = content_header.producer_count.get() as usize;
    if offset < 0 {
        return Err(SnapshotError::Malformed { reason: "negative offset" });
    }
    if producer_count > PRODUCERS_PER_PARTITION_MAX {
        return Err(SnapshotError::Malformed { reason: "more producers than a partition keeps" });
    }
    let mut states = Vec::with_capacity(producer_count);
    for _ in 0..producer_count {
        let (state, after) = decode_producer(rest, offset)?;
        states.push(state);
        rest = after;
    }
    if !rest.is_empty() {
        return Err(SnapshotError::Malformed { reason: "bytes after the last producer" });
    }
    let table = ProducerTable::from_states(states);
    if table.len() != producer_count {
        return Err(SnapshotError::Malformed { reason: "a producer id appears twice" });
    }
    Ok(ProducerSnapshot { offset, table })
}

/// The content of a snapshot whose header, length and CRC check out.
fn checked_content(bytes: &[u8]) -> Result<&[u8], SnapshotError> {
    let (header, content) = SnapshotHeader::ref_from_prefix(bytes)
        .map_err(|_| SnapshotError::Truncated { needed_bytes: HEADER_BYTES, available_bytes: bytes.len() })?;
    if header.magic != SNAPSHOT_MAGIC {
        return Err(SnapshotError::BadMagic);
    }
    if header.version != SNAPSHOT_VERSION {
        return Err(SnapshotError::UnsupportedVersion { version: header.version });
    }
    if header.reserved != [0; 3] {
        return Err(SnapshotError::Malformed { reason: "reserved header bytes set" });
    }
    let content_bytes = header.content_bytes.get() as usize;
    if content.len() < content_bytes {
        return Err(SnapshotError::Truncated {
            needed_bytes: HEADER_BYTES + content_bytes,
            available_bytes: bytes.len(),
        });
    }
    if content.len() > content_bytes {
        return Err(SnapshotError::Malformed { reason: "bytes after the content" });
    }
    let actual = crc32c::crc32c(content);
    if actual != header.crc.get() {
        return Err(SnapshotError::ChecksumMismatch { expected: header.crc.get(), actual });
    }
    Ok(content)
}

/// One producer and its batches from the front of `bytes`; returns what follows them.
fn decode_producer(bytes: &[u8], snapshot_offset: i64) -> Result<(ProducerState, &[u8]), SnapshotError> {
    let (record, mut rest) = ProducerRecord::read_from_prefix(bytes)
        .map_err(|_| SnapshotError::Malformed { reason: "content ends inside a producer" })?;
    let batch_count = usize::from(record.batch_count.get());
    if batch_count > PRODUCER_BATCHES_KEPT {
        return Err(SnapshotError::Malformed { reason: "more batches than a producer keeps" });
    }
    let mut batches: Vec<WrittenBatch> = Vec::with_capacity(batch_count);
    for _ in 0..batch_count {
        let (batch, after) = BatchRecord::read_from_prefix(rest)
            .map_err(|_| SnapshotError::Malformed { reason: "content ends inside a batch" })?;
        let batch = WrittenBatch {
            first_sequence: batch.first_sequence.get(),
            last_sequence: batch.last_sequence.get(),
            base_offset: batch.base_offset.get(),
            last_offset: batch.last_offset.get(),
        };
        let follows_previous = batches.last().is_none_or(|previous| previous.last_offset < batch.base_offset);
        if batch.base_offset < 0 || batch.base_offset > batch.last_offset || !follows_previous {
            return Err(SnapshotError::Malformed { reason: "batch offsets out of order" });
        }
        if batch.last_offset >= snapshot_offset {
            return Err(SnapshotError::Malformed { reason: "a batch at or past the snapshot offset" });
        }
        batches.push(batch);
        rest = after;
    }
    let state = ProducerState { producer_id: record.producer_id.get(), epoch: record.epoch.get(), batches };
    Ok((state, rest))
}

/// Writes the snapshot of `table` at `offset` atomically: a crash leaves either no file or a
/// whole one (and a leftover temp file, which `list_snapshots` deletes).
pub fn write_snapshot(dir: &Path, offset: i64, table: &ProducerTable) -> std::io::Result<()> {
    let bytes = encode(offset, table);
    debug_assert!(decode(&bytes).is_ok_and(|snapshot| snapshot.offset == offset), "snapshot must read back");
    crate::fs::write_atomic(&snapshot_path(dir, offset), &bytes)
}

/// Reads and decodes the snapshot at `offset`. The outer error is the file system's, the
/// inner one says the file is not to be trusted.
pub fn read_snapshot(dir: &Path, offset: i64) -> std::io::Result<Result<ProducerSnapshot, SnapshotError>> {
    let file = std::fs::File::open(snapshot_path(dir, offset))?;
    let size_bytes = file.metadata()?.len();
    if size_bytes > SNAPSHOT_BYTES_MAX as u64 {
        return Ok(Err(SnapshotError::TooLarge { size_bytes }));
    }
    let mut bytes = Vec::with_capacity(size_bytes as usize);
    file.take(SNAPSHOT_BYTES_MAX as u64 + 1).read_to_end(&mut bytes)?;
    Ok(decode(&bytes).and_then(|snapshot| {
        if snapshot.offset == offset {
            Ok(snapshot)
        } else {
            Err(SnapshotError::OffsetMismatch { named: offset, found: snapshot.offset })
        }
    }))
}

/// Offsets of the snapshots in `dir`, ascending. Deletes temp files a crash left behind.
pub fn list_snapshots(dir: &Path) -> std::io::Result<Vec<i64>> {
    let mut offsets = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let name = entry?.file_name();
        let Some(name) = name.to_str() else { continue };
        if let Some(stem) = name.strip_suffix(SNAPSHOT_TEMP_SUFFIX) {
            if stem.parse::<i64>().is_ok() {
                remove_file_logged(&dir.join(name));
            }
        } else if let Some(stem) = name.strip_suffix(SNAPSHOT_SUFFIX) {
            if let Ok(offset) = stem.parse::<i64>() {
                offsets.push(offset);
            }
        }
    }
    offsets.sort_unstable();
    Ok(offsets)
}

/// Deletes the snapshot at `offset`; a failure only logs (a stale snapshot is checked again at
/// every open).
pub fn delete_snapshot(dir: &Path, offset: i64) {
    remove_file_logged(&snapshot_path(dir, offset));
}

/// Keeps the newest `kept` snapshots and deletes the rest, and any below `offset_min` (their
/// log is gone, so they cannot be replayed from).
pub fn delete_old_snapshots(dir: &Path, kept: usize, offset_min: i64) -> std::io::Result<()> {
    let offsets = list_snapshots(dir)?;
    let newest_from = offsets.len().saturating_sub(kept);
    for (index, offset) in offsets.into_iter().enumerate() {
        if index < newest_from || offset < offset_min {
            delete_snapshot(dir, offset);
        }
    }
    Ok(())
}

fn remove_file_logged(path: &Path) {
    if let Err(error) = std::fs::remove_file(path) {
        if error.kind() != std::io::ErrorKind::NotFound {
            tracing::warn!(path = %path.display(), %error, "deleting a producer snapshot file failed");
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::partition::producers::{ProducerError, SequenceCheck};

    fn sample_table() -> ProducerTable {
        let mut table = ProducerTable::default();
        for index in 0..7 {
            table.record(1, 0, index * 2, 2, i64::from(index) * 10, i64::from(index) * 10 + 1);
        }
        table.record(2, 3, 0, 1, 100, 100);
        table.record(3, 1, i32::MAX, 1, 101, 101);
        table.record(1, 0, 14, 1, 102, 102);
        table
    }

    #[test]
    fn a_snapshot_round_trips_with_batches_epochs_and_recency() {
        let table = sample_table();
        let bytes = encode(103, &table);
        let snapshot = decode(&bytes).unwrap();
        assert_eq!(snapshot.offset, 103);
        assert_eq!(snapshot.table.states(), table.states(), "same producers, batches and order");
        let ids: Vec<i64> = snapshot.table.states().iter().map(|state| state.producer_id).collect();
        assert_eq!(ids, [2, 3, 1], "least recently seen first");
        assert_eq!(snapshot.table.states()[2].batches.len(), PRODUCER_BATCHES_KEPT);
        assert_eq!(encode(103, &snapshot.table), bytes, "encoding is deterministic");
        let restored = snapshot.table;
        assert_eq!(restored.check(1, 0, 14, 1), Ok(SequenceCheck::Duplicate { base_offset: 102, last_offset: 102 }));
        assert_eq!(restored.check(1, 0, 15, 1), Ok(SequenceCheck::Append));
        assert_eq!(restored.check(1, 0, 16, 1), Err(ProducerError::OutOfOrderSequence { expected: 15, found: 16 }));
        assert_eq!(restored.check(2, 2, 1, 1), Err(ProducerError::InvalidProducerEpoch { current: 3, found: 2 }));
        assert_eq!(restored.check(3, 1, 0, 1), Ok(SequenceCheck::Append), "sequence wraps after i32::MAX");
    }

    #[test]
    fn an_empty_table_round_trips() {
        let bytes = encode(0, &ProducerTable::default());
        assert_eq!(bytes.len(), HEADER_BYTES + std::mem::size_of::<ContentHeader>());
        let snapshot = decode(&bytes).unwrap();
        assert_eq!((snapshot.offset, snapshot.table.len()), (0, 0));
    }

    #[test]
    fn a_producer_without_batches_keeps_its_epoch() {
        let mut table = ProducerTable::default();
        table.record(9, 4, 0, 1, 0, 0);
        table.truncate_from(0);
        let restored = decode(&encode(0, &table)).unwrap().table;
        assert_eq!(restored.check(9, 3, 0, 1), Err(ProducerError::InvalidProducerEpoch { current: 4, found: 3 }));
    }

    #[test]
    fn every_flipped_bit_is_rejected() {
        let bytes = encode(103, &sample_table());
        for position in 0..bytes.len() {
            for bit in [0x01u8, 0x80] {
                let mut corrupt = bytes.clone();
                corrupt[position] ^= bit;
                assert!(decode(&corrupt).is_err(), "bit {bit:#x} of byte {position} flipped was accepted");
            }
        }
        let mut corrupt = bytes.clone();
        let last = corrupt.len() - 1;
        corrupt[last] ^= 1;
        assert!(matches!(decode(&corrupt), Err(SnapshotError::ChecksumMismatch { .. })));
    }

    #[test]
    fn truncated_and_extended_files_are_rejected() {
        let bytes = encode(103, &sample_table());
        for length in 0..bytes.len() {
            let error = decode(&bytes[..length]).unwrap_err();
            assert!(matches!(error, SnapshotError::Truncated { .. }), "{length} bytes: {error:?}");
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(matches!(decode(&longer), Err(SnapshotError::Malformed { .. })));
    }

    #[test]
    fn unknown_versions_and_bad_content_are_rejected_even_with_a_good_crc() {
        let mut bytes = encode(103, &sample_table());
        bytes[4] = 2;
        assert_eq!(decode(&bytes).unwrap_err(), SnapshotError::UnsupportedVersion { version: 2 });
        // A batch at the snapshot offset: written by a bug, never trusted.
        assert!(matches!(
            decode(&encode(102, &sample_table())),
            Err(SnapshotError::Malformed { reason: "a batch at or past the snapshot offset" })
        ));
    }

    #[test]
    fn files_are_written_read_listed_and_pruned() {
        let temp = tempfile::tempdir().unwrap();
        let dir = temp.path();
        let table = sample_table();
        for offset in [200, 103, 300] {
            write_snapshot(dir, offset, &table).unwrap();
        }
        std::fs::write(dir.join(format!("{:020}{SNAPSHOT_TEMP_SUFFIX}", 400)), b"torn").unwrap();
        std::fs::write(dir.join("00000000000000000000.log"), b"").unwrap();
        assert_eq!(list_snapshots(dir).unwrap(), [103, 200, 300]);
        assert!(!dir.join(format!("{:020}{SNAPSHOT_TEMP_SUFFIX}", 400)).exists(), "temp file deleted");
        assert_eq!(read_snapshot(dir, 200).unwrap().unwrap().table.states(), table.states());

        std::fs::copy(snapshot_path(dir, 200), snapshot_path(dir, 250)).unwrap();
        assert_eq!(
            read_snapshot(dir, 250).unwrap().unwrap_err(),
            SnapshotError::OffsetMismatch { named: 250, found: 200 }
        );
        delete_old_snapshots(dir, 2, 0).unwrap();
        assert_eq!(list_snapshots(dir).unwrap(), [250, 300]);
        delete_old_snapshots(dir, 2, 260).unwrap();
        assert_eq!(list_snapshots(dir).unwrap(), [300]);
    }
}
