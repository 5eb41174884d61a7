//! Reading a stream: the log of partition 0 of its topic, read on the owner shard and turned
//! into entries here (`sluice_engine::stream::entry`). Entry IDs grow with offsets, so an ID
//! bound becomes an offset through the time index (an ID's milliseconds are its record's
//! timestamp), and a scan from there filters by ID. Entries XDEL deleted stay in the log
//! (it is append-only) and every read here skips them.
use bytes::Bytes;
use sluice_engine::partition::PartitionError;
use sluice_engine::record::batch;
use sluice_engine::stream::deleted::DeletedEntries;
use sluice_engine::stream::entry::{self, Entry};
use sluice_engine::stream::id::StreamId;

use super::reply::Reply;
use super::session::Session;
use crate::limits::RESP_SCAN_READ_BYTES;
use crate::metadata::check_topic_name;
use crate::runtime::mesh::{
    Fetched, ShardError, ShardRequest, ShardResponse, StreamChunk, TopicPartition, EARLIEST_TIMESTAMP, LATEST_TIMESTAMP,
};
use crate::stream_groups::{GroupAnswer, GroupCall, References};

/// The partition a stream lives in.
pub const STREAM_PARTITION: i32 = 0;

/// Entries a window of a backward scan starts with, and the most it grows to.
const SCAN_BACK_WINDOW_ENTRIES_MIN: i64 = 64;
const SCAN_BACK_WINDOW_ENTRIES_MAX: i64 = 4096;

/// Entries a scan found, and where it stopped.
#[derive(Debug, Default)]
pub struct Scanned {
    pub entries: Vec<Entry>,
    /// Forward scans: the offset to go on from.
    pub next: i64,
    /// It stopped because the next entry in the range would pass its byte limit.
    pub full: bool,
}

/// A stream that exists: the key, its partition and the shard that owns it.
#[derive(Debug, Clone)]
pub struct Stream {
    pub key: Bytes,
    pub partition: TopicPartition,
    pub owner: usize,
}

/// Bytes of an entry's field names and values (what the RESP traffic metrics count).
pub fn fields_bytes(fields: &[(Bytes, Bytes)]) -> usize {
    fields.iter().map(|(name, value)| name.len() + value.len()).sum()
}

/// The name a key gives its topic, or the error for a key no topic can have.
pub fn topic_name(key: &[u8]) -> Result<String, Reply> {
    let name = std::str::from_utf8(key).map_err(|_| Reply::error("ERR stream keys must be UTF-8 text in sluice"))?;
    check_topic_name(name).map_err(|error| Reply::error(format!("ERR invalid stream key: {error}")))?;
    Ok(name.to_string())
}

/// The stream at `key`, or `None` when there is none.
pub fn find(session: &Session, key: &Bytes) -> Result<Option<Stream>, Reply> {
    let name = topic_name(key)?;
    if !session.shard.metadata().topics.contains_key(&name) {
        return Ok(None);
    }
    let owner = session.shard.owner_of(&name, STREAM_PARTITION);
    Ok(Some(Stream { key: key.clone(), partition: (name, STREAM_PARTITION), owner }))
}

pub fn storage_error(error: &ShardError) -> Reply {
    Reply::error(format!("ERR storage: {error}"))
}

impl Stream {
    /// Queries the owner's ListOffsets (earliest, latest or by timestamp); `None` when no
    /// record is that recent.
    async fn list_offset(&self, session: &Session, timestamp: i64) -> Result<Option<i64>, Reply> {
        let queries = vec![(self.partition.clone(), timestamp)];
        match session.shard.call(self.owner, ShardRequest::ListOffsets { queries }).await {
            ShardResponse::ListOffsets(mut results) => match results.pop() {
                Some(Ok(found)) => Ok((found.offset >= 0).then_some(found.offset)),
                Some(Err(ShardError::UnknownTopicOrPartition)) | None => Ok(Some(0)),
                Some(Err(error)) => Err(storage_error(&error)),
            },
            _ => unreachable!("ListOffsets answers with ListOffsets"),
        }
    }

    /// The first retained offset and the end of the durable log.
    pub async fn offsets(&self, session: &Session) -> Result<(i64, i64), Reply> {
        let start = self.list_offset(session, EARLIEST_TIMESTAMP).await?.unwrap_or(0);
        let end = self.list_offset(session, LATEST_TIMESTAMP).await?.unwrap_or(start);
        Ok((start, end))
    }

    /// An offset at or before the first entry whose ID is at least `id` (the log end if none).
    pub async fn seek(&self, session: &Session, id: StreamId) -> Result<i64, Reply> {
        if id == StreamId::MIN {
            return Ok(self.list_offset(session, EARLIEST_TIMESTAMP).await?.unwrap_or(0));
        }
        match self.list_offset(session, entry::timestamp_of(id)).await? {
            Some(offset) => Ok(offset),
            None => Ok(self.list_offset(session, LATEST_TIMESTAMP).await?.unwrap_or(0)),
        }
    }

    /// Durable batches from `offset` on, with the deleted offsets among them; an offset below
    /// the log start reads from the start.
    async fn fetch(&self, session: &Session, offset: i64) -> Result<(Fetched, DeletedEntries), Reply> {
        let mut offset = offset;
        for _ in 0..2 {
            let request =
                ShardRequest::StreamRead { stream: self.partition.clone(), offset, max_bytes: RESP_SCAN_READ_BYTES };
            match session.shard.call(self.owner, request).await {
                ShardResponse::StreamRead(result) => match result {
                    Ok(StreamChunk { fetched, deleted }) => return Ok((fetched, DeletedEntries::from_runs(deleted))),
                    Err(ShardError::Partition(PartitionError::OffsetOutOfRange {
                        log_start_offset,
                        high_watermark,
                        ..
                    })) => {
                        if offset > high_watermark {
                            break;
                        }
                        offset = log_start_offset;
                    }
                    Err(ShardError::UnknownTopicOrPartition) => break,
                    Err(error) => return Err(storage_error(&error)),
                },
                _ => unreachable!("StreamRead answers with StreamRead"),
            }
        }
        let nothing = Fetched { records: Bytes::new(), high_watermark: offset, log_start_offset: offset };
        Ok((nothing, DeletedEntries::default()))
    }

    /// The offsets XDEL deleted in `from..to`.
    pub async fn deleted(&self, session: &Session, from: i64, to: i64) -> Result<DeletedEntries, Reply> {
        let request = ShardRequest::StreamDeleted { stream: self.partition.clone(), from, to };
        match session.shard.call(self.owner, request).await {
            ShardResponse::StreamDeleted(Ok(runs)) => Ok(DeletedEntries::from_runs(runs)),
            ShardResponse::StreamDeleted(Err(ShardError::UnknownTopicOrPartition)) => Ok(DeletedEntries::default()),
            ShardResponse::StreamDeleted(Err(error)) => Err(storage_error(&error)),
            _ => unreachable!("StreamDeleted answers with StreamDeleted"),
        }
    }

    /// The stream's entries (XLEN): records from its start to its end, less those deleted.
    pub async fn length(&self, session: &Session) -> Result<i64, Reply> {
        let (start, end) = self.offsets(session).await?;
        Ok(end - start - self.deleted(session, start, end).await?.count_in(start, end))
    }

    /// The entry at `offset`, deleted or not (the stream's last ID is its last record's).
    pub async fn record_at(&self, session: &Session, offset: i64) -> Result<Option<Entry>, Reply> {
        let (fetched, _) = self.fetch(session, offset).await?;
        Ok(decode(&fetched.records).into_iter().find(|entry| entry.offset == offset))
    }

    /// Entries with an ID in `first..=last` from `offset` on, up to `limit` of them and
    /// `bytes_max` of fields (at least one entry); `next` is the offset after the last one
    /// looked at, or the first one left out for want of room.
    pub async fn scan(
        &self,
        session: &Session,
        offset: i64,
        first: StreamId,
        last: StreamId,
        limit: usize,
        bytes_max: usize,
    ) -> Result<Scanned, Reply> {
        let mut scanned = Scanned { entries: Vec::new(), next: offset, full: false };
        let mut bytes = 0;
        while scanned.entries.len() < limit {
            let (fetched, deleted) = self.fetch(session, scanned.next).await?;
            if fetched.records.is_empty() {
                break;
            }
            for entry in decode(&fetched.records) {
                if entry.offset < scanned.next {
                    continue;
                }
                if entry.id > last {
                    scanned.next = entry.offset + 1;
                    return Ok(scanned);
                }
                if entry.id >= first && !deleted.contains(entry.offset) {
                    bytes += fields_bytes(&entry.fields);
                    if bytes > bytes_max && !scanned.entries.is_empty() {
                        scanned.full = true;
                        return Ok(scanned);
                    }
                    scanned.next = entry.offset + 1;
                    scanned.entries.push(entry);
                    if scanned.entries.len() == limit {
                        break;
                    }
                } else {
                    scanned.next = entry.offset + 1;
                }
            }
        }
        Ok(scanned)
    }

    /// Entries with an ID in `first..=last`, newest first, up to `limit` and `bytes_max` of
    /// fields (at least one entry): windows of the log read forward from the end back to the
    /// start. `next` is not kept (0).
    pub async fn scan_back(
        &self,
        session: &Session,
        first: StreamId,
        last: StreamId,
        limit: usize,
        bytes_max: usize,
    ) -> Result<Scanned, Reply> {
        let (start, end) = self.offsets(session).await?;
        // Every entry up to `last` lies before the first record of a later millisecond.
        let mut before = match last.ms.checked_add(1) {
            Some(later) => self.seek(session, StreamId::new(later, 0)).await?.clamp(start, end),
            None => end,
        };
        let mut scanned = Scanned { entries: Vec::new(), next: 0, full: false };
        let mut bytes = 0;
        let mut window = SCAN_BACK_WINDOW_ENTRIES_MIN;
        while scanned.entries.len() < limit && before > start {
            let from = (before - window).max(start);
            let mut chunk = Vec::new();
            let mut offset = from;
            while offset < before {
                let (fetched, deleted) = self.fetch(session, offset).await?;
                if fetched.records.is_empty() {
                    break;
                }
                for entry in decode(&fetched.records) {
                    if entry.offset >= offset && entry.offset < before {
                        offset = entry.offset + 1;
                        if !deleted.contains(entry.offset) {
                            chunk.push(entry);
                        }
                    } else if entry.offset >= before {
                        offset = before;
                    }
                }
            }
            let reached_first = chunk.first().is_some_and(|entry| entry.id < first);
            let chunk_bytes: usize = chunk.iter().map(|entry| fields_bytes(&entry.fields)).sum();
            for entry in chunk.into_iter().rev().filter(|entry| entry.id >= first && entry.id <= last) {
                if scanned.entries.len() == limit {
                    break;
                }
                bytes += fields_bytes(&entry.fields);
                if bytes > bytes_max && !scanned.entries.is_empty() {
                    scanned.full = true;
                    return Ok(scanned);
                }
                scanned.entries.push(entry);
            }
            if reached_first {
                break;
            }
            before = from;
            // Wider windows over small entries; large entries keep the window (the memory).
            if chunk_bytes < RESP_SCAN_READ_BYTES {
                window = (window * 2).min(SCAN_BACK_WINDOW_ENTRIES_MAX);
            }
        }
        Ok(scanned)
    }

    /// Moves the stream's start to `offset` (entries before it are gone; with DELREF or ACKED
    /// through the groups, see `GroupCall::Trim`); returns how many entries that removed
    /// (deleted ones not counted again).
    pub async fn trim_to(&self, session: &Session, offset: i64, references: References) -> Result<i64, Reply> {
        let (start, end) = self.offsets(session).await?;
        let offset = offset.min(end);
        if offset <= start {
            return Ok(0);
        }
        let deleted = self.deleted(session, start, offset).await?;
        // The owner's DeleteRecords takes an emptying trim through the groups, which keep the
        // stream's last ID.
        let new_start = if references == References::Keep {
            let deletes = vec![(self.partition.clone(), offset)];
            match session.shard.call(self.owner, ShardRequest::DeleteRecords { deletes }).await {
                ShardResponse::DeleteRecords(mut results) => match results.pop() {
                    Some(Ok(new_start)) => new_start,
                    Some(Err(error)) => return Err(storage_error(&error)),
                    None => return Ok(0),
                },
                _ => unreachable!("DeleteRecords answers with DeleteRecords"),
            }
        } else {
            match group_call(session, self, GroupCall::Trim { to: offset, references }).await {
                Ok(GroupAnswer::Trimmed { start }) => start,
                Ok(_) => unreachable!("Trim answers with Trimmed"),
                Err(error) => return Err(group_error(error, || "ERR no such key".to_string())),
            }
        };
        Ok(new_start - start - deleted.count_in(start, new_start))
    }
}

/// The entries of stored batches, in log order; compressed batches (from Kafka producers)
/// are decompressed here, off the owner shard, within `DECOMPRESSED_BATCH_BYTES_MAX` (one
/// that expands past it, or does not decompress, is skipped, with a warning).
pub fn decode(records: &Bytes) -> Vec<Entry> {
    let mut entries = Vec::new();
    for range in batch::split(records).map_while(Result::ok) {
        let one = records.slice(range);
        match entry::entries(&one) {
            Some(found) => entries.extend(found),
            None => {
                let copy = crate::compression::uncompressed_batch(&one).map(Bytes::from);
                entries.extend(copy.as_ref().and_then(entry::entries).unwrap_or_default());
            }
        }
    }
    entries
}

/// Runs a group command on the stream's owner.
pub async fn group_call(
    session: &Session,
    stream: &Stream,
    call: crate::stream_groups::GroupCall,
) -> Result<crate::stream_groups::GroupAnswer, crate::stream_groups::GroupError> {
    let request = ShardRequest::StreamGroup { topic: stream.partition.0.clone(), call };
    match session.shard.call(stream.owner, request).await {
        ShardResponse::StreamGroup(result) => result,
        _ => unreachable!("StreamGroup answers with StreamGroup"),
    }
}

/// The reply for a group error; `nogroup` is the command's NOGROUP text.
pub fn group_error(error: crate::stream_groups::GroupError, nogroup: impl FnOnce() -> String) -> Reply {
    use crate::stream_groups::GroupError;
    match error {
        GroupError::NoGroup | GroupError::NoStream => Reply::error(nogroup()),
        GroupError::BusyGroup => Reply::error("BUSYGROUP Consumer Group name already exists"),
        GroupError::PendingFull => Reply::error(format!(
            "ERR the group holds {} pending entries, its limit: acknowledge entries (XACK) before reading more",
            sluice_engine::queue::group::PENDING_PER_GROUP_MAX
        )),
        GroupError::TooManyConsumers => Reply::error(format!(
            "ERR the group has {} consumers, its limit: delete some (XGROUP DELCONSUMER)",
            sluice_engine::queue::group::CONSUMERS_PER_GROUP_MAX
        )),
        GroupError::TooManyDeletedRuns => Reply::error(format!(
            "ERR the stream holds {} separate runs of deleted entries, its limit: trim it (XTRIM) to free them",
            sluice_engine::stream::deleted::DELETED_RUNS_PER_STREAM_MAX
        )),
        GroupError::Storage(reason) => Reply::error(format!("ERR storage: {reason}")),
        GroupError::Refused(text) => Reply::error(text),
    }
}

/// XGROUP's and XINFO CONSUMERS's NOGROUP text.
pub fn no_such_group(key: &[u8], group: &[u8]) -> String {
    format!(
        "NOGROUP No such consumer group '{}' for key name '{}'",
        String::from_utf8_lossy(group),
        String::from_utf8_lossy(key)
    )
}

/// Redis's usual NOGROUP text.
pub fn no_group(key: &[u8], group: &[u8]) -> String {
    format!(
        "NOGROUP No such key '{}' or consumer group '{}'",
        String::from_utf8_lossy(key),
        String::from_utf8_lossy(group)
    )
}
