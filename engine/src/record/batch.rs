//! RecordBatch v2 header parsing and validation.
//!
//! A batch is stored exactly as the producer sent it; the only change is the `baseOffset`
//! field, which lies outside the CRC and is patched with the offset the partition assigns.
//!
//! ```text
//! baseOffset i64 | batchLength i32 | partitionLeaderEpoch i32 | magic i8 | crc u32 |
//! attributes i16 | lastOffsetDelta i32 | baseTimestamp i64 | maxTimestamp i64 |
//! producerId i64 | producerEpoch i16 | baseSequence i32 | recordsCount i32 | records...
//! ```
//! The CRC-32C covers `attributes` to the end of the batch.

use zerocopy::big_endian::{I16, I32, I64, U32};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

/// Size of the fixed batch header, in bytes.
pub const BATCH_HEADER_BYTES: usize = 61;
/// Bytes before `batchLength`'s payload starts: baseOffset + batchLength.
pub const BATCH_LOG_OVERHEAD_BYTES: usize = 12;
/// Where the CRC-covered region starts (the `attributes` field).
const CRC_START: usize = 21;
/// The only record format we store.
pub const MAGIC_V2: i8 = 2;

/// Attribute bits.
const ATTRIBUTE_COMPRESSION_MASK: i16 = 0x07;
const ATTRIBUTE_TRANSACTIONAL: i16 = 0x10;
const ATTRIBUTE_CONTROL: i16 = 0x20;

/// The fixed 61-byte header of a RecordBatch v2, big-endian, read in place.
#[derive(FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned, Debug)]
#[repr(C)]
pub struct BatchHeader {
    pub base_offset: I64,
    pub batch_length: I32,
    pub partition_leader_epoch: I32,
    pub magic: i8,
    pub crc: U32,
    pub attributes: I16,
    pub last_offset_delta: I32,
    pub base_timestamp: I64,
    pub max_timestamp: I64,
    pub producer_id: I64,
    pub producer_epoch: I16,
    pub base_sequence: I32,
    pub records_count: I32,
}

const _: () = assert!(std::mem::size_of::<BatchHeader>() == BATCH_HEADER_BYTES);

impl BatchHeader {
    /// Total size of the batch on disk and on the wire, in bytes.
    pub fn total_bytes(&self) -> usize {
        BATCH_LOG_OVERHEAD_BYTES + self.batch_length.get().max(0) as usize
    }

    /// The offset of the batch's last record. Saturates: a damaged or hostile header (the base
    /// offset is outside the CRC) may put it past `i64::MAX`, which no log reaches.
    pub fn last_offset(&self) -> i64 {
        self.base_offset.get().saturating_add(i64::from(self.last_offset_delta.get()))
    }

    pub fn compression(&self) -> i16 {
        self.attributes.get() & ATTRIBUTE_COMPRESSION_MASK
    }

    pub fn is_transactional(&self) -> bool {
        self.attributes.get() & ATTRIBUTE_TRANSACTIONAL != 0
    }

    pub fn is_control(&self) -> bool {
        self.attributes.get() & ATTRIBUTE_CONTROL != 0
    }
}

/// Why a batch was refused. Plain enum: this is on the produce hot path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum BatchError {
    /// Fewer bytes than a header, or than the header's `batchLength` says.
    Truncated {
        needed_bytes: usize,
        available_bytes: usize,
    },
    /// `batchLength` too small to hold a header.
    BadLength {
        batch_length: i32,
    },
    /// Magic byte other than 2 (message format v0/v1 are not supported).
    UnsupportedMagic {
        magic: i8,
    },
    ChecksumMismatch {
        expected: u32,
        actual: u32,
    },
    /// `recordsCount` does not agree with `lastOffsetDelta`.
    BadRecordCount {
        records_count: i32,
        last_offset_delta: i32,
    },
    /// Larger than the topic's `max.message.bytes`.
    TooLarge {
        size_bytes: usize,
        max_bytes: usize,
    },
}

impl std::fmt::Display for BatchError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Truncated { needed_bytes, available_bytes } => {
                write!(f, "record batch truncated: needs {needed_bytes} bytes, has {available_bytes}")
            }
            Self::BadLength { batch_length } => write!(f, "record batch length {batch_length} is invalid"),
            Self::UnsupportedMagic { magic } => {
                write!(f, "record batch magic {magic} unsupported (only v2)")
            }
            Self::ChecksumMismatch { expected, actual } => {
                write!(f, "record batch CRC mismatch: header {expected:#010x}, computed {actual:#010x}")
            }
            Self::BadRecordCount { records_count, last_offset_delta } => {
                write!(f, "record batch count {records_count} disagrees with lastOffsetDelta {last_offset_delta}")
            }
            Self::TooLarge { size_bytes, max_bytes } => {
                write!(f, "record batch of {size_bytes} bytes exceeds max.message.bytes {max_bytes}")
            }
        }
    }
}

impl std::error::Error for BatchError {}

/// Reads the header at the start of `bytes` without checking anything but its size.
pub fn header(bytes: &[u8]) -> Result<&BatchHeader, BatchError> {
    BatchHeader::ref_from_prefix(bytes)
        .map(|(header, _)| header)
        .map_err(|_| BatchError::Truncated { needed_bytes: BATCH_HEADER_BYTES, available_bytes: bytes.len() })
}

/// Checks the framing of the batch at the start of `bytes` (size, length, magic) and returns
/// its header and total size. Does not check the CRC.
pub fn frame(bytes: &[u8]) -> Result<(&BatchHeader, usize), BatchError> {
    let header = header(bytes)?;
    let batch_length = header.batch_length.get();
    if (batch_length as i64) < (BATCH_HEADER_BYTES - BATCH_LOG_OVERHEAD_BYTES) as i64 {
        return Err(BatchError::BadLength { batch_length });
    }
    if header.magic != MAGIC_V2 {
        return Err(BatchError::UnsupportedMagic { magic: header.magic });
    }
    let total_bytes = header.total_bytes();
    if bytes.len() < total_bytes {
        return Err(BatchError::Truncated { needed_bytes: total_bytes, available_bytes: bytes.len() });
    }
    Ok((header, total_bytes))
}

/// Computes the CRC-32C of the batch (whose framing was checked) and compares it.
pub fn check_crc(batch: &[u8]) -> Result<(), BatchError> {
    let (header, total_bytes) = frame(batch)?;
    let actual = crc32c::crc32c(&batch[CRC_START..total_bytes]);
    let expected = header.crc.get();
    if actual != expected {
        return Err(BatchError::ChecksumMismatch { expected, actual });
    }
    Ok(())
}

/// Turns `batch` (a compressed batch's header followed by its records, decompressed) into a
/// valid uncompressed batch: the compression bits cleared, the length and CRC made to fit.
pub fn rewrite_as_uncompressed(batch: &mut [u8]) -> Result<(), BatchError> {
    let available_bytes = batch.len();
    let batch_length = i32::try_from(available_bytes.saturating_sub(BATCH_LOG_OVERHEAD_BYTES))
        .map_err(|_| BatchError::BadLength { batch_length: i32::MAX })?;
    let (header, _) = BatchHeader::mut_from_prefix(batch)
        .map_err(|_| BatchError::Truncated { needed_bytes: BATCH_HEADER_BYTES, available_bytes })?;
    header.batch_length.set(batch_length);
    header.attributes.set(header.attributes.get() & !ATTRIBUTE_COMPRESSION_MASK);
    write_crc(batch);
    frame(batch).map(|_| ())
}

/// Computes the CRC-32C of the whole of `batch` (from `attributes` on) into its header.
fn write_crc(batch: &mut [u8]) {
    let crc = crc32c::crc32c(&batch[CRC_START..]);
    batch[CRC_START - 4..CRC_START].copy_from_slice(&crc.to_be_bytes());
}

/// What the partition needs to know about a validated batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchInfo {
    pub size_bytes: usize,
    pub last_offset_delta: i32,
    pub records_count: i32,
    pub max_timestamp: i64,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub base_sequence: i32,
}

/// Fully validates one batch as a producer sent it: framing, magic, CRC, record count, size.
/// `bytes` must hold exactly one batch.
pub fn validate(bytes: &[u8], max_bytes: usize) -> Result<BatchInfo, BatchError> {
    let (header, total_bytes) = frame(bytes)?;
    if total_bytes != bytes.len() {
        // Trailing bytes after the batch: the caller split wrongly or the producer lied.
        return Err(BatchError::BadLength { batch_length: header.batch_length.get() });
    }
    if total_bytes > max_bytes {
        return Err(BatchError::TooLarge { size_bytes: total_bytes, max_bytes });
    }
    let records_count = header.records_count.get();
    let last_offset_delta = header.last_offset_delta.get();
    if records_count <= 0 || (!header.is_control() && last_offset_delta != records_count - 1) {
        return Err(BatchError::BadRecordCount { records_count, last_offset_delta });
    }
    check_crc(bytes)?;
    Ok(BatchInfo {
        size_bytes: total_bytes,
        last_offset_delta,
        records_count,
        max_timestamp: header.max_timestamp.get(),
        producer_id: header.producer_id.get(),
        producer_epoch: header.producer_epoch.get(),
        base_sequence: header.base_sequence.get(),
    })
}

/// Splits a produce request's `records` field into its batches, checking only framing.
/// Kafka clients send one batch per partition; more are accepted.
pub fn split(records: &[u8]) -> impl Iterator<Item = Result<std::ops::Range<usize>, BatchError>> + '_ {
    let mut position = 0usize;
    let mut failed = false;
    std::iter::from_fn(move || {
        if failed || position >= records.len() {
            return None;
        }
        match frame(&records[position..]) {
            Ok((_, total_bytes)) => {
                let range = position..position + total_bytes;
                position += total_bytes;
                Some(Ok(range))
            }
            Err(error) => {
                failed = true;
                Some(Err(error))
            }
        }
    })
}

/// Writes `base_offset` into a batch's first 8 bytes (outside the CRC).
pub fn set_base_offset(batch: &mut [u8], base_offset: i64) {
    assert!(batch.len() >= BATCH_HEADER_BYTES, "set_base_offset on a short batch");
    batch[..8].copy_from_slice(&base_offset.to_be_bytes());
}

/// Reads a zigzag varint (Kafka record fields) from the front of `bytes`; returns the value
/// and how many bytes it took.
pub(crate) fn read_varint(bytes: &[u8]) -> Option<(i64, usize)> {
    let mut value = 0u64;
    for (index, byte) in bytes.iter().take(10).enumerate() {
        value |= u64::from(byte & 0x7f) << (7 * index);
        if byte & 0x80 == 0 {
            return Some((((value >> 1) as i64) ^ -((value & 1) as i64), index + 1));
        }
    }
    None
}

const ATTRIBUTE_LOG_APPEND_TIME: i16 = 0x08;

/// Makes an uncompressed copy of a compressed batch: the same header (compression bits
/// cleared, length and CRC for the new size) and the records it holds; `None` when it cannot
/// (a codec error, or more bytes than the caller allows). The engine stores Kafka's compressed
/// batches as they came and holds no codec; the server lends it one where a lookup needs the
/// records inside.
pub type Decompress = fn(&[u8]) -> Option<Vec<u8>>;

/// The first record of a batch whose timestamp is at least `timestamp`, as (offset, record
/// timestamp); a compressed batch is read through `decompress`. `None` when the batch has no
/// such record, or its records do not parse or decompress (the caller falls back to the
/// batch's base offset).
pub fn first_record_at_or_after(batch: &[u8], timestamp: i64, decompress: Decompress) -> Option<(i64, i64)> {
    let (header, _) = frame(batch).ok()?;
    if header.attributes.get() & ATTRIBUTE_LOG_APPEND_TIME != 0 {
        // The broker's time stands for every record's.
        let max_timestamp = header.max_timestamp.get();
        return (max_timestamp >= timestamp).then_some((header.base_offset.get(), max_timestamp));
    }
    let first = |batch: &[u8]| {
        records(batch)?.find(|record| record.timestamp >= timestamp).map(|record| (record.offset, record.timestamp))
    };
    if header.compression() != 0 {
        return first(&decompress(batch)?);
    }
    first(batch)
}

pub(crate) fn take_varint(cursor: &mut &[u8]) -> Option<i64> {
    let (value, used) = read_varint(cursor)?;
    *cursor = cursor.get(used..)?;
    Some(value)
}

/// A length-prefixed field (key or value); length -1 is null.
pub(crate) fn take_field<'a>(cursor: &mut &'a [u8]) -> Option<Option<&'a [u8]>> {
    let length = take_varint(cursor)?;
    if length < 0 {
        return Some(None);
    }
    let field = cursor.get(..usize::try_from(length).ok()?)?;
    *cursor = &cursor[field.len()..];
    Some(Some(field))
}

/// One record of an uncompressed batch, borrowed from the batch bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Record<'a> {
    pub offset: i64,
    pub timestamp: i64,
    pub key: Option<&'a [u8]>,
    pub value: Option<&'a [u8]>,
    /// The record's headers, still encoded (count, then key and value of each): see [`headers`].
    pub headers: &'a [u8],
}

/// The headers of a record, `(key, value)` in order; a null value is `None`. A header that
/// does not parse ends the iteration.
pub fn headers(encoded: &[u8]) -> impl Iterator<Item = (&[u8], Option<&[u8]>)> + '_ {
    let mut cursor = encoded;
    let mut remaining = take_varint(&mut cursor).unwrap_or(0).max(0);
    std::iter::from_fn(move || {
        if remaining == 0 {
            return None;
        }
        remaining -= 1;
        let key = take_field(&mut cursor)??;
        let value = take_field(&mut cursor)?;
        Some((key, value))
    })
}

/// The records of an uncompressed batch, in order; `None` for a compressed batch. A record
/// that does not parse ends the iteration (the batch's CRC was checked when it was written).
pub fn records(batch: &[u8]) -> Option<impl Iterator<Item = Record<'_>> + '_> {
    let (header, total_bytes) = frame(batch).ok()?;
    if header.compression() != 0 {
        return None;
    }
    let base_offset = header.base_offset.get();
    let base_timestamp = header.base_timestamp.get();
    let mut rest = &batch[BATCH_HEADER_BYTES..total_bytes];
    let mut remaining = header.records_count.get().max(0);
    Some(std::iter::from_fn(move || {
        if remaining == 0 {
            return None;
        }
        remaining -= 1;
        let (length, used) = read_varint(rest)?;
        let record = rest.get(used..used.checked_add(usize::try_from(length).ok()?)?)?;
        rest = &rest[used + record.len()..];
        let mut cursor = record.get(1..)?; // attributes
        let timestamp_delta = take_varint(&mut cursor)?;
        let offset_delta = take_varint(&mut cursor)?;
        let key = take_field(&mut cursor)?;
        let value = take_field(&mut cursor)?;
        // A producer controls the deltas (the CRC only proves they arrived as sent).
        Some(Record {
            offset: base_offset.checked_add(offset_delta)?,
            timestamp: base_timestamp.checked_add(timestamp_delta)?,
            key,
            value,
            headers: cursor,
        })
    }))
}

/// Test and benchmark support: builds valid batches without a Kafka client.
pub mod build {
    use super::*;

    /// Encodes a zigzag varint (Kafka record fields).
    fn put_varint(out: &mut Vec<u8>, value: i64) {
        let mut zigzag = ((value << 1) ^ (value >> 63)) as u64;
        while zigzag >= 0x80 {
            out.push((zigzag as u8) | 0x80);
            zigzag >>= 7;
        }
        out.push(zigzag as u8);
    }

    /// An uncompressed batch of records `(key, value)` with timestamps `base_timestamp + i`.
    pub fn batch(base_offset: i64, base_timestamp: i64, records: &[(&[u8], &[u8])]) -> Vec<u8> {
        let records: Vec<_> = records.iter().map(|(key, value)| (Some(*key), Some(*value))).collect();
        batch_of(base_offset, base_timestamp, &records)
    }

    /// `batch` as an idempotent producer's: producer id, epoch and first sequence set, CRC redone.
    pub fn with_producer(mut batch: Vec<u8>, producer_id: i64, epoch: i16, base_sequence: i32) -> Vec<u8> {
        batch[43..51].copy_from_slice(&producer_id.to_be_bytes());
        batch[51..53].copy_from_slice(&epoch.to_be_bytes());
        batch[53..57].copy_from_slice(&base_sequence.to_be_bytes());
        write_crc(&mut batch);
        batch
    }

    /// A record's key and value; `None` is null (a value of null is a tombstone).
    pub type KeyValue<'a> = (Option<&'a [u8]>, Option<&'a [u8]>);

    /// An uncompressed batch whose keys and values may be null (tombstones), timestamps
    /// `base_timestamp + i`. This is how Sluice writes its internal logs.
    pub fn batch_of(base_offset: i64, base_timestamp: i64, records: &[KeyValue<'_>]) -> Vec<u8> {
        let records: Vec<Encoded<'_>> = records
            .iter()
            .enumerate()
            .map(|(index, (key, value))| (base_timestamp + index as i64, *key, *value, &[][..]))
            .collect();
        encode(base_offset, &records)
    }

    /// A one-record uncompressed batch with headers.
    pub fn record_with_headers(
        timestamp: i64,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        headers: &[(&[u8], &[u8])],
    ) -> Vec<u8> {
        encode(0, &[(timestamp, key, value, headers)])
    }

    /// An uncompressed batch of records `(timestamp, key, value, headers)`, timestamps not
    /// decreasing (how stream entries are written, several per batch).
    pub fn records_with_headers<H: AsRef<[u8]>>(records: &[Encoded<'_, H>]) -> Vec<u8> {
        encode(0, records)
    }

    /// A record to build: timestamp, key, value, headers (name and value pairs of any byte
    /// type, so stream fields go in as they are held).
    pub type Encoded<'a, H = &'a [u8]> = (i64, Option<&'a [u8]>, Option<&'a [u8]>, &'a [(H, H)]);

    fn put_field(out: &mut Vec<u8>, field: Option<&[u8]>) {
        match field {
            Some(bytes) => {
                put_varint(out, bytes.len() as i64);
                out.extend_from_slice(bytes);
            }
            None => put_varint(out, -1),
        }
    }

    /// The bytes `put_varint` writes for `value`.
    fn varint_bytes(value: i64) -> usize {
        let zigzag = ((value << 1) ^ (value >> 63)) as u64;
        (64 - zigzag.leading_zeros() as usize).max(1).div_ceil(7)
    }

    fn field_bytes(field: Option<&[u8]>) -> usize {
        field.map_or(varint_bytes(-1), |bytes| varint_bytes(bytes.len() as i64) + bytes.len())
    }

    /// A record's bytes after its length, so the length goes first and the record is written
    /// once, straight into the batch.
    fn record_bytes<H: AsRef<[u8]>>(
        delta: (i64, i64),
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        headers: &[(H, H)],
    ) -> usize {
        1 + varint_bytes(delta.0)
            + varint_bytes(delta.1)
            + field_bytes(key)
            + field_bytes(value)
            + varint_bytes(headers.len() as i64)
            + headers
                .iter()
                .map(|(name, content)| field_bytes(Some(name.as_ref())) + field_bytes(Some(content.as_ref())))
                .sum::<usize>()
    }

    fn encode<H: AsRef<[u8]>>(base_offset: i64, records: &[Encoded<'_, H>]) -> Vec<u8> {
        let base_timestamp = records.first().map_or(0, |record| record.0);
        let max_timestamp = records.iter().map(|record| record.0).max().unwrap_or(base_timestamp);
        let sizes: Vec<usize> = records
            .iter()
            .enumerate()
            .map(|(index, (timestamp, key, value, headers))| {
                record_bytes((timestamp - base_timestamp, index as i64), *key, *value, headers)
            })
            .collect();
        let body_bytes: usize = sizes.iter().map(|size| varint_bytes(*size as i64) + size).sum();
        let count = records.len() as i32;
        let mut out = Vec::with_capacity(BATCH_HEADER_BYTES + body_bytes);
        out.extend_from_slice(&base_offset.to_be_bytes());
        out.extend_from_slice(&((BATCH_HEADER_BYTES - BATCH_LOG_OVERHEAD_BYTES + body_bytes) as i32).to_be_bytes());
        out.extend_from_slice(&0i32.to_be_bytes()); // leader epoch
        out.push(MAGIC_V2 as u8);
        out.extend_from_slice(&0u32.to_be_bytes()); // crc, patched below
        out.extend_from_slice(&0i16.to_be_bytes()); // attributes
        out.extend_from_slice(&(count - 1).to_be_bytes());
        out.extend_from_slice(&base_timestamp.to_be_bytes());
        out.extend_from_slice(&max_timestamp.to_be_bytes());
        out.extend_from_slice(&(-1i64).to_be_bytes()); // producer id
        out.extend_from_slice(&(-1i16).to_be_bytes()); // producer epoch
        out.extend_from_slice(&(-1i32).to_be_bytes()); // base sequence
        out.extend_from_slice(&count.to_be_bytes());
        for (index, ((timestamp, key, value, headers), size)) in records.iter().zip(sizes).enumerate() {
            let start = out.len();
            put_varint(&mut out, size as i64);
            out.push(0); // attributes
            put_varint(&mut out, timestamp - base_timestamp); // timestamp delta
            put_varint(&mut out, index as i64); // offset delta
            put_field(&mut out, *key);
            put_field(&mut out, *value);
            put_varint(&mut out, headers.len() as i64);
            for (name, content) in headers.iter() {
                put_field(&mut out, Some(name.as_ref()));
                put_field(&mut out, Some(content.as_ref()));
            }
            debug_assert_eq!(out.len() - start, varint_bytes(size as i64) + size, "record size computed ahead");
        }
        debug_assert_eq!(out.len(), BATCH_HEADER_BYTES + body_bytes);
        write_crc(&mut out);
        out
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn varint_sizes_match_what_is_written() {
            for value in [0, 1, -1, 63, 64, -64, -65, 127, 128, 8191, 8192, i32::MAX as i64, i64::MAX, i64::MIN] {
                let mut out = Vec::new();
                put_varint(&mut out, value);
                assert_eq!(out.len(), varint_bytes(value), "{value}");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    const MAX: usize = 1 << 20;

    #[test]
    fn valid_batch_is_accepted_and_described() {
        let batch = build::batch(0, 1_000, &[(b"k1", b"v1"), (b"k2", b"value two")]);
        let info = validate(&batch, MAX).unwrap();
        assert_eq!(info.records_count, 2);
        assert_eq!(info.last_offset_delta, 1);
        assert_eq!(info.max_timestamp, 1_001);
        assert_eq!(info.size_bytes, batch.len());
    }

    #[test]
    fn base_offset_patch_keeps_crc_valid() {
        let mut batch = build::batch(0, 5, &[(b"k", b"v")]);
        set_base_offset(&mut batch, 12_345);
        assert_eq!(header(&batch).unwrap().base_offset.get(), 12_345);
        validate(&batch, MAX).unwrap();
    }

    /// Found by the fuzz corpus replay: `last_id` of a batch whose base offset (outside the
    /// CRC) is near an end of i64 overflowed in a debug build (wrapped in release).
    #[test]
    fn last_offset_of_an_absurd_base_offset_saturates() {
        let mut batch = build::batch(0, 5, &[(b"k", b"v"), (b"k", b"v")]);
        set_base_offset(&mut batch, i64::MAX);
        assert_eq!(header(&batch).unwrap().last_offset(), i64::MAX);
        set_base_offset(&mut batch, i64::MIN);
        batch[23..27].copy_from_slice(&(-1i32).to_be_bytes());
        assert_eq!(header(&batch).unwrap().last_offset(), i64::MIN);
    }

    #[test]
    fn every_flipped_byte_after_the_length_is_detected() {
        let batch = build::batch(0, 5, &[(b"key", b"some value")]);
        // Bytes 0..12 are baseOffset and batchLength (outside the CRC); leader epoch (12..16)
        // is outside it too. Every byte from magic on is covered by magic or CRC checks.
        for index in 16..batch.len() {
            let mut corrupt = batch.clone();
            corrupt[index] ^= 0x40;
            assert!(validate(&corrupt, MAX).is_err(), "flip at byte {index} not detected");
        }
    }

    #[test]
    fn truncation_and_bad_framing_are_errors_not_panics() {
        let batch = build::batch(0, 5, &[(b"key", b"some value")]);
        for cut in 0..batch.len() {
            assert!(validate(&batch[..cut], MAX).is_err());
        }
        let mut negative = batch.clone();
        negative[8..12].copy_from_slice(&(-5i32).to_be_bytes());
        assert_eq!(validate(&negative, MAX), Err(BatchError::BadLength { batch_length: -5 }));
        let mut magic1 = batch.clone();
        magic1[16] = 1;
        assert_eq!(validate(&magic1, MAX), Err(BatchError::UnsupportedMagic { magic: 1 }));
    }

    #[test]
    fn too_large_and_wrong_count_are_refused() {
        let batch = build::batch(0, 5, &[(b"key", b"some value")]);
        assert!(matches!(validate(&batch, 10), Err(BatchError::TooLarge { .. })));
        let mut wrong_count = batch.clone();
        wrong_count[57..61].copy_from_slice(&3i32.to_be_bytes());
        assert!(matches!(validate(&wrong_count, MAX), Err(BatchError::BadRecordCount { .. })));
    }

    #[test]
    fn record_timestamps_are_found_inside_a_batch() {
        let mut batch = build::batch(0, 1_000, &[(b"a", b"1"), (b"b", b"2"), (b"c", b"3")]);
        set_base_offset(&mut batch, 40);
        let no_codec: Decompress = |_| None;
        assert_eq!(first_record_at_or_after(&batch, 0, no_codec), Some((40, 1_000)));
        assert_eq!(first_record_at_or_after(&batch, 1_001, no_codec), Some((41, 1_001)));
        assert_eq!(first_record_at_or_after(&batch, 1_002, no_codec), Some((42, 1_002)));
        assert_eq!(first_record_at_or_after(&batch, 1_003, no_codec), None);
        // A compressed batch is read through the codec it is lent ("gzip" here is the copy
        // with the bit cleared), or not at all.
        let mut compressed = batch.clone();
        compressed[22] |= 1;
        assert_eq!(first_record_at_or_after(&compressed, 0, no_codec), None);
        let unzip: Decompress = |batch| {
            let mut copy = batch.to_vec();
            copy[22] &= !1;
            Some(copy)
        };
        assert_eq!(first_record_at_or_after(&compressed, 1_002, unzip), Some((42, 1_002)));
        let mut appended = batch.clone();
        appended[22] |= ATTRIBUTE_LOG_APPEND_TIME as u8;
        assert_eq!(first_record_at_or_after(&appended, 1_001, no_codec), Some((40, 1_002)), "the batch's time");
    }

    #[test]
    fn records_of_an_uncompressed_batch_come_back_in_order() {
        let mut batch = build::batch(0, 500, &[(b"k1", b"v1"), (b"", b"value two")]);
        set_base_offset(&mut batch, 7);
        let all: Vec<Record<'_>> = records(&batch).unwrap().collect();
        assert_eq!(all.len(), 2);
        let no_headers: &[u8] = &[0];
        assert_eq!(
            all[0],
            Record { offset: 7, timestamp: 500, key: Some(b"k1"), value: Some(b"v1"), headers: no_headers }
        );
        assert_eq!(
            all[1],
            Record { offset: 8, timestamp: 501, key: Some(b""), value: Some(b"value two"), headers: no_headers }
        );
        assert_eq!(headers(all[0].headers).count(), 0);
        let mut compressed = batch.clone();
        compressed[22] |= 1;
        assert!(records(&compressed).is_none());
        let truncated = &batch[..batch.len() - 3];
        assert!(records(truncated).is_none(), "framing is checked first");
    }

    #[test]
    fn records_with_overflowing_deltas_end_the_iteration_instead_of_panicking() {
        // Found by the record_batch fuzz target: the deltas are the producer's to choose.
        let mut batch = build::batch(0, 1_000, &[(b"a", b"1"), (b"b", b"2")]);
        batch[27..35].copy_from_slice(&i64::MAX.to_be_bytes()); // base timestamp
        assert_eq!(records(&batch).unwrap().count(), 1, "the first record (delta 0) reads; the second overflows");
        let mut batch = build::batch(0, 1_000, &[(b"a", b"1"), (b"b", b"2")]);
        set_base_offset(&mut batch, i64::MAX);
        assert_eq!(records(&batch).unwrap().count(), 1);
    }

    #[test]
    fn split_finds_each_batch_and_stops_at_garbage() {
        let first = build::batch(0, 5, &[(b"a", b"1")]);
        let second = build::batch(0, 6, &[(b"b", b"2"), (b"c", b"3")]);
        let mut records = first.clone();
        records.extend_from_slice(&second);
        let ranges: Vec<_> = split(&records).collect::<Result<_, _>>().unwrap();
        assert_eq!(ranges, vec![0..first.len(), first.len()..records.len()]);
        records.extend_from_slice(&[1, 2, 3]);
        assert!(split(&records).last().unwrap().is_err());
    }
}
