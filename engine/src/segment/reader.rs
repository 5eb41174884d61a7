//! Reading byte ranges of batches back from a segment file.
use bytes::Bytes;
use glommio::io::DmaFile;

use super::recovery::{scan, ScanStop};
use super::ScannedBatch;
use crate::limits::READ_MIN_BYTES;

/// Whole batches read from a segment, and where the batch after them starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Served {
    pub records: Bytes,
    /// File position just past the last batch in `records`.
    pub next_position: u64,
    /// Offset of the batch at `next_position`.
    pub next_offset: i64,
}

/// Reads the batches of the segment that contain offsets from `offset` on, starting the walk at
/// `position` (from the offset index; the batch there starts at `position_offset`) and never
/// past `end_position` (the durable end). Returns whole batches, at most `max_bytes` unless the
/// first batch alone is larger (then exactly that batch, as Kafka does so consumers progress);
/// empty records if `position` is at `end_position`.
pub async fn read_from(
    file: &DmaFile,
    position: u64,
    position_offset: i64,
    end_position: u64,
    offset: i64,
    max_bytes: usize,
) -> std::io::Result<Served> {
    let walked =
        walk(file, position, position_offset, end_position, max_bytes.max(READ_MIN_BYTES), |chunk, at, found| {
            let selected = select(found, at, offset, max_bytes)?;
            Some(selected.served(Bytes::copy_from_slice(&chunk[selected.start..selected.end]), at))
        })
        .await?;
    match walked {
        Walk::Found(served) => Ok(served),
        Walk::End { position, position_offset } => {
            Ok(Served { records: Bytes::new(), next_position: position, next_offset: position_offset })
        }
        Walk::Damaged { position, stop } => Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("segment damaged at byte {position}: {stop:?}"),
        )),
    }
}

/// Where a walk over a segment's batches ended.
enum Walk<T> {
    /// What the visitor looked for.
    Found(T),
    /// The end of the range, with the position and offset there.
    End { position: u64, position_offset: i64 },
    /// The batch at `position` is damaged, or zeros or a torn batch come before the end.
    Damaged { position: u64, stop: ScanStop },
}

/// Reads the segment from `position` (where the batch with `position_offset` starts) up to
/// `end_position` in chunks of at least `read_bytes` (more when a batch is larger), scans each
/// for whole batches and gives them to `visit` (with the chunk and its position) until it
/// returns something.
async fn walk<T>(
    file: &DmaFile,
    mut position: u64,
    mut position_offset: i64,
    end_position: u64,
    mut read_bytes: usize,
    mut visit: impl FnMut(&[u8], u64, &[ScannedBatch]) -> Option<T>,
) -> std::io::Result<Walk<T>> {
    loop {
        let length = (read_bytes as u64).min(end_position.saturating_sub(position)) as usize;
        if length == 0 {
            return Ok(Walk::End { position, position_offset });
        }
        let chunk = file.read_at(position, length).await?;
        let mut found: Vec<ScannedBatch> = Vec::new();
        let (consumed, stop) = scan(&chunk, position, position_offset, &mut found);
        if let Some(value) = visit(&chunk, position, &found) {
            return Ok(Walk::Found(value));
        }
        // Nothing wanted in this chunk: move on.
        if let Some(last) = found.last() {
            position_offset = last.last_offset + 1;
        }
        position += consumed as u64;
        match stop {
            ScanStop::EndOfInput => {}
            ScanStop::Incomplete { needed_bytes } if position + needed_bytes as u64 <= end_position => {
                read_bytes = read_bytes.max(needed_bytes)
            }
            stop => return Ok(Walk::Damaged { position, stop }),
        }
    }
}

/// Serves whole batches from `chunk`, bytes of the segment already read from `position` (where
/// the batch with `position_offset` starts), as [`read_from`] would: `None` if the chunk holds
/// no whole batch with offsets from `offset` on.
pub fn serve_from_chunk(
    chunk: &Bytes,
    position: u64,
    position_offset: i64,
    offset: i64,
    max_bytes: usize,
) -> std::io::Result<Option<Served>> {
    let mut found: Vec<ScannedBatch> = Vec::new();
    let (_, stop) = scan(chunk, position, position_offset, &mut found);
    if let ScanStop::Corrupt(_) | ScanStop::OffsetMismatch { .. } | ScanStop::Zeros = stop {
        if found.is_empty() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("segment damaged at byte {position}: {stop:?}"),
            ));
        }
    }
    Ok(select(&found, position, offset, max_bytes)
        .map(|selected| selected.served(chunk.slice(selected.start..selected.end), position)))
}

/// The range of a chunk (read from `position`) holding the batches to serve.
#[derive(Debug)]
struct Selected {
    start: usize,
    end: usize,
    next_offset: i64,
}

impl Selected {
    fn served(&self, records: Bytes, position: u64) -> Served {
        debug_assert_eq!(records.len(), self.end - self.start);
        Served { records, next_position: position + self.end as u64, next_offset: self.next_offset }
    }
}

/// The first scanned batch holding offsets from `offset` on and the ones after it that fit in
/// `max_bytes` (the first always counts).
fn select(found: &[ScannedBatch], position: u64, offset: i64, max_bytes: usize) -> Option<Selected> {
    let first = found.iter().position(|batch| batch.last_offset >= offset)?;
    let start = (found[first].position - position) as usize;
    let mut end = start + found[first].size_bytes as usize;
    let mut next_offset = found[first].last_offset + 1;
    for batch in &found[first + 1..] {
        let batch_end = (batch.position - position) as usize + batch.size_bytes as usize;
        if batch_end - start > max_bytes {
            break;
        }
        end = batch_end;
        next_offset = batch.last_offset + 1;
    }
    Some(Selected { start, end, next_offset })
}

/// Finds the first record at or after `timestamp` in the segment range, as (offset, record
/// timestamp): inside uncompressed batches record by record, else the first batch whose max
/// timestamp reaches it. A damaged batch ends the search, as the end of the range does.
pub async fn find_timestamp(
    file: &DmaFile,
    position: u64,
    position_offset: i64,
    end_position: u64,
    timestamp: i64,
    decompress: crate::record::batch::Decompress,
) -> std::io::Result<Option<(i64, i64)>> {
    let walked = walk(file, position, position_offset, end_position, READ_MIN_BYTES, |chunk, at, found| {
        let batch = found.iter().find(|batch| batch.max_timestamp >= timestamp)?;
        let start = (batch.position - at) as usize;
        let bytes = &chunk[start..start + batch.size_bytes as usize];
        let record = crate::record::batch::first_record_at_or_after(bytes, timestamp, decompress);
        Some(record.unwrap_or((batch.base_offset, batch.max_timestamp)))
    })
    .await?;
    Ok(match walked {
        Walk::Found(found) => Some(found),
        Walk::End { .. } | Walk::Damaged { .. } => None,
    })
}
