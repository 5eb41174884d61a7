//! Sparse per-segment indexes: offset -> file position, and timestamp -> offset.
//!
//! One entry is added every `index_interval_bytes` of log. Entries are fixed-size `zerocopy`
//! structs (little-endian) appended to `.index` / `.timeindex` files with buffered writes and
//! no fsync: an index is a cache of the log. Recovery drops entries that point past the valid
//! end of the log and rebuilds a missing or short index by scanning.
pub mod offset_index;
pub mod time_index;

use std::io::{Read, Write};
use std::path::Path;

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// Reads every whole entry of an index file; a torn last entry is ignored.
pub(crate) fn read_entries<T: FromBytes + KnownLayout + Immutable + Clone>(path: &Path) -> std::io::Result<Vec<T>> {
    let mut bytes = Vec::new();
    match std::fs::File::open(path) {
        Ok(mut file) => file.read_to_end(&mut bytes)?,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(error) => return Err(error),
    };
    let whole_bytes = bytes.len() - bytes.len() % std::mem::size_of::<T>();
    let entries =
        <[T]>::ref_from_bytes(&bytes[..whole_bytes]).map_err(|_| std::io::Error::other("index entries misaligned"))?;
    Ok(entries.to_vec())
}

/// Rewrites an index file with exactly `entries` (used after recovery trimmed it).
pub(crate) fn write_entries<T: IntoBytes + Immutable>(path: &Path, entries: &[T]) -> std::io::Result<()> {
    let mut file = std::fs::File::create(path)?;
    file.write_all(entries.as_bytes())
}

/// Appends `entries` to an index file.
pub(crate) fn append_entries<T: IntoBytes + Immutable>(path: &Path, entries: &[T]) -> std::io::Result<()> {
    if entries.is_empty() {
        return Ok(());
    }
    let mut file = std::fs::OpenOptions::new().create(true).append(true).open(path)?;
    file.write_all(entries.as_bytes())
}
