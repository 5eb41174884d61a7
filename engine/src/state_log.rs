//! A durable log of changes to state held in memory (stream consumer groups; the shape the
//! Kafka offsets logs share): every change is appended and fdatasynced before it counts,
//! the state is rebuilt by replaying the log at open, and the log is kept short by appending
//! a snapshot of the whole state as one batch and deleting everything before it.
//!
//! Records are `(key, value)`; what they mean is the owner's business. Lives on one shard.
use std::cell::Cell;
use std::path::Path;
use std::rc::Rc;

use crate::partition::{AppendResult, Partition, PartitionConfig, PartitionError};
use crate::record::batch;
use crate::sync::Notify;

/// One change: a key and a value (`None`: a tombstone).
pub type StateRecord = (Vec<u8>, Option<Vec<u8>>);

/// Bytes read per step while replaying.
const REPLAY_READ_BYTES: usize = 1 << 20;
/// Segment size of state logs: small, so compaction frees space soon.
const STATE_SEGMENT_BYTES: u64 = 16 << 20;
/// Largest batch a state log takes (a snapshot of the whole state is one batch).
pub const STATE_SNAPSHOT_BYTES_MAX: usize = 256 << 20;

pub struct StateLog {
    log: Rc<Partition>,
    /// Compact once this much was appended since the last snapshot (and twice its size).
    compaction_bytes: u64,
    snapshot_bytes: Cell<u64>,
    appended_bytes: Cell<u64>,
}

impl StateLog {
    /// Opens (recovering) the log in `dir`. Its partition has no time retention: only
    /// compaction removes records.
    pub async fn open(dir: &Path, compaction_bytes: u64) -> std::io::Result<Self> {
        let config = PartitionConfig {
            retention_ms: -1,
            segment_bytes: STATE_SEGMENT_BYTES,
            message_bytes_max: STATE_SNAPSHOT_BYTES_MAX,
            ..PartitionConfig::default()
        };
        let log = Partition::open(dir, config, Rc::new(Notify::default())).await?;
        Ok(Self { log, compaction_bytes, snapshot_bytes: Cell::new(0), appended_bytes: Cell::new(0) })
    }

    /// Calls `apply` with every record, oldest first; returns how many there were.
    pub async fn replay(&self, mut apply: impl FnMut(&[u8], Option<&[u8]>)) -> Result<usize, PartitionError> {
        let mut offset = self.log.log_start_offset();
        let mut applied = 0;
        let mut read_bytes = 0u64;
        while offset < self.log.high_watermark() {
            let fetched = self.log.read(offset, REPLAY_READ_BYTES).await?;
            if fetched.records.is_empty() {
                break;
            }
            read_bytes += fetched.records.len() as u64;
            for range in batch::split(&fetched.records).map_while(Result::ok) {
                let bytes = &fetched.records[range];
                let header = batch::header(bytes).map_err(PartitionError::InvalidBatch)?;
                offset = header.last_offset() + 1;
                for record in batch::records(bytes).into_iter().flatten() {
                    if let Some(key) = record.key {
                        apply(key, record.value);
                        applied += 1;
                    }
                }
            }
        }
        // What was replayed counts as appended: a long log is compacted at the next change.
        self.appended_bytes.set(read_bytes);
        Ok(applied)
    }

    /// Appends `records` as one batch, ordered now; pass the result to [`StateLog::wait_durable`].
    /// Callers that apply changes in memory append in the same order, before awaiting anything.
    pub async fn append(&self, records: &[StateRecord]) -> Result<AppendResult, PartitionError> {
        let fields: Vec<batch::build::KeyValue<'_>> =
            records.iter().map(|(key, value)| (Some(key.as_slice()), value.as_deref())).collect();
        let encoded = batch::build::batch_of(0, now_ms(), &fields);
        self.appended_bytes.set(self.appended_bytes.get() + encoded.len() as u64);
        self.log.append(&encoded).await
    }

    /// Returns once the append is fdatasynced.
    pub async fn wait_durable(&self, appended: &AppendResult) -> Result<(), PartitionError> {
        self.log.wait_durable(appended).await
    }

    /// Whether enough was appended since the last snapshot to compact.
    pub fn wants_compaction(&self) -> bool {
        self.appended_bytes.get() > self.compaction_bytes.max(2 * self.snapshot_bytes.get())
    }

    /// Appends `snapshot` (the whole state) as one batch, waits for it to be durable, and
    /// deletes everything before it. Returns the segments deleted.
    pub async fn compact(&self, snapshot: &[StateRecord]) -> Result<usize, PartitionError> {
        let start = if snapshot.is_empty() {
            self.log.high_watermark()
        } else {
            let appended = self.append(snapshot).await?;
            self.log.wait_durable(&appended).await?;
            appended.base_offset
        };
        self.log.delete_records(start)?;
        let snapshot_bytes: usize =
            snapshot.iter().map(|(key, value)| key.len() + value.as_ref().map_or(0, Vec::len)).sum();
        self.snapshot_bytes.set(snapshot_bytes as u64);
        self.appended_bytes.set(0);
        Ok(self.log.enforce_retention(now_ms()))
    }

    pub async fn close(&self) {
        self.log.close().await;
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |elapsed| elapsed.as_millis() as i64)
}
