//! Offset index: (offset relative to the segment base, byte position in the segment).
use zerocopy::little_endian::U32;
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

#[derive(FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned, Clone, Copy, Debug, PartialEq, Eq)]
#[repr(C)]
pub struct OffsetIndexEntry {
    pub relative_offset: U32,
    pub position: U32,
}

const _: () = assert!(std::mem::size_of::<OffsetIndexEntry>() == 8);

/// The in-memory offset index of one segment. Lives with its partition on one shard.
#[derive(Debug, Default, Clone)]
pub struct OffsetIndex {
    entries: Vec<OffsetIndexEntry>,
}

impl OffsetIndex {
    pub fn from_entries(entries: Vec<OffsetIndexEntry>) -> Self {
        debug_assert!(entries.windows(2).all(|pair| pair[0].relative_offset.get() < pair[1].relative_offset.get()
            && pair[0].position.get() < pair[1].position.get()));
        Self { entries }
    }

    pub fn entries(&self) -> &[OffsetIndexEntry] {
        &self.entries
    }

    pub fn last(&self) -> Option<OffsetIndexEntry> {
        self.entries.last().copied()
    }

    /// Adds an entry for the batch starting at `position` with relative offset `relative_offset`.
    pub fn push(&mut self, relative_offset: u32, position: u32) {
        if let Some(last) = self.entries.last() {
            assert!(
                relative_offset > last.relative_offset.get() && position > last.position.get(),
                "offset index must grow: {relative_offset}@{position} after {last:?}"
            );
        }
        self.entries.push(OffsetIndexEntry { relative_offset: relative_offset.into(), position: position.into() });
    }

    /// Position of the last indexed batch starting at or before `relative_offset` (0 if none).
    pub fn lookup(&self, relative_offset: u32) -> u32 {
        self.floor(relative_offset).map_or(0, |entry| entry.position.get())
    }

    /// The entry of the last indexed batch starting at or before `relative_offset`, if any.
    pub fn floor(&self, relative_offset: u32) -> Option<OffsetIndexEntry> {
        let after = self.entries.partition_point(|entry| entry.relative_offset.get() <= relative_offset);
        after.checked_sub(1).map(|index| self.entries[index])
    }

    /// Drops entries pointing at or past `position` (recovery truncated the log there).
    pub fn truncate_to_position(&mut self, position: u32) {
        let keep = self.entries.partition_point(|entry| entry.position.get() < position);
        self.entries.truncate(keep);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookup_finds_floor_entry() {
        let mut index = OffsetIndex::default();
        index.push(10, 4096);
        index.push(25, 8192);
        assert_eq!(index.lookup(0), 0);
        assert_eq!(index.lookup(9), 0);
        assert_eq!(index.lookup(10), 4096);
        assert_eq!(index.lookup(24), 4096);
        assert_eq!(index.lookup(1000), 8192);
        assert_eq!(index.floor(9), None);
        assert_eq!(index.floor(24).map(|entry| (entry.relative_offset.get(), entry.position.get())), Some((10, 4096)));
        index.truncate_to_position(8192);
        assert_eq!(index.lookup(1000), 4096);
    }
}
