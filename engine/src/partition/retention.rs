//! Retention: deleting whole segments by age (`retention.ms`), by size (`retention.bytes`) and
//! below the log start offset (DeleteRecords), with the producer snapshots that only they could
//! be replayed with. Runs from a background task with bounded work per tick; the active segment
//! is never deleted.
use super::partition::Partition;
use super::producer_snapshot;
use crate::limits::{PRODUCER_SNAPSHOTS_KEPT, RETENTION_DELETES_PER_TICK_MAX};
use crate::segment;

impl Partition {
    /// Deletes segments that retention no longer keeps; returns how many were deleted.
    pub fn enforce_retention(&self, now_ms: i64) -> usize {
        let removed: Vec<i64> = self.with_state(|view| {
            let mut removed = Vec::new();
            while removed.len() < RETENTION_DELETES_PER_TICK_MAX {
                let Some(oldest) = view.oldest_closed() else { break };
                let below_start = oldest.next_base_offset <= view.log_start_offset();
                let retention_ms = view.config.retention_ms;
                let expired = retention_ms >= 0 && oldest.max_timestamp < now_ms.saturating_sub(retention_ms);
                let retention_bytes = view.config.retention_bytes;
                let over_size =
                    retention_bytes >= 0 && view.total_bytes() - oldest.size_bytes >= retention_bytes as u64;
                if !(below_start || expired || over_size) {
                    break;
                }
                match view.remove_oldest() {
                    Some(base) => removed.push(base),
                    None => break,
                }
            }
            removed
        });
        for base in &removed {
            for path in [
                segment::log_path(self.dir(), *base),
                segment::offset_index_path(self.dir(), *base),
                segment::time_index_path(self.dir(), *base),
            ] {
                if let Err(error) = std::fs::remove_file(&path) {
                    if error.kind() != std::io::ErrorKind::NotFound {
                        tracing::warn!(path = %path.display(), %error, "deleting a retired segment file failed");
                    }
                }
            }
        }
        if !removed.is_empty() {
            // Snapshots below the first kept segment cannot be replayed from any more. (Not
            // "below the log start offset": DeleteRecords moves that inside a segment whose
            // snapshot is still the one to replay from.)
            let first_base = self.with_state(|view| view.first_segment_base());
            if let Err(error) = producer_snapshot::delete_old_snapshots(self.dir(), PRODUCER_SNAPSHOTS_KEPT, first_base)
            {
                tracing::warn!(dir = %self.dir().display(), %error, "listing producer snapshots failed");
            }
            tracing::info!(dir = %self.dir().display(), segments = removed.len(), log_start_offset = self.log_start_offset(), "retention deleted segments");
        }
        removed.len()
    }
}
