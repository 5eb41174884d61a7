//! Time index: (largest timestamp so far, offset relative to the segment base of the batch
//! where that point was reached). Timestamps only grow within one index.
use zerocopy::little_endian::{I64, U32};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

#[derive(FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned, Clone, Copy, Debug, PartialEq, Eq)]
#[repr(C)]
pub struct TimeIndexEntry {
    pub timestamp: I64,
    pub relative_offset: U32,
}

const _: () = assert!(std::mem::size_of::<TimeIndexEntry>() == 12);

/// The in-memory time index of one segment. Lives with its partition on one shard.
#[derive(Debug, Default, Clone)]
pub struct TimeIndex {
    entries: Vec<TimeIndexEntry>,
}

impl TimeIndex {
    pub fn from_entries(mut entries: Vec<TimeIndexEntry>) -> Self {
        // Keep the invariant even if a file was damaged: strictly growing timestamps.
        let mut max_timestamp = i64::MIN;
        entries.retain(|entry| {
            let keep = entry.timestamp.get() > max_timestamp;
            max_timestamp = max_timestamp.max(entry.timestamp.get());
            keep
        });
        Self { entries }
    }

    pub fn entries(&self) -> &[TimeIndexEntry] {
        &self.entries
    }

    /// Records that by `relative_offset` the segment reached `timestamp`, if that is new.
    /// Returns whether an entry was added.
    pub fn push(&mut self, timestamp: i64, relative_offset: u32) -> bool {
        if self.entries.last().is_some_and(|last| last.timestamp.get() >= timestamp) {
            return false;
        }
        self.entries.push(TimeIndexEntry { timestamp: timestamp.into(), relative_offset: relative_offset.into() });
        true
    }

    /// Relative offset to start scanning from to find the first batch with a timestamp of at
    /// least `timestamp`: the offset of the last entry whose timestamp is below it (0 if none).
    pub fn lookup(&self, timestamp: i64) -> u32 {
        let below = self.entries.partition_point(|entry| entry.timestamp.get() < timestamp);
        below.checked_sub(1).map_or(0, |index| self.entries[index].relative_offset.get())
    }

    /// Drops entries at or past `relative_offset`.
    pub fn truncate_to_offset(&mut self, relative_offset: u32) {
        let keep = self.entries.partition_point(|entry| entry.relative_offset.get() < relative_offset);
        self.entries.truncate(keep);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookup_returns_scan_start_before_timestamp() {
        let mut index = TimeIndex::default();
        assert!(index.push(100, 0));
        assert!(!index.push(90, 3), "timestamps going back are not indexed");
        assert!(index.push(200, 5));
        assert_eq!(index.lookup(50), 0);
        assert_eq!(index.lookup(150), 0);
        assert_eq!(index.lookup(200), 0);
        assert_eq!(index.lookup(201), 5);
    }
}
