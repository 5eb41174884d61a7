//! Segment files: `<base_offset:020>.log` with its `.index` and `.timeindex`.
//!
//! The appender writes with direct I/O (filling its buffers with `device_fill`'s streaming
//! stores) and keeps the partial last block in memory; the reader
//! reads byte ranges back; recovery finds the valid end of a segment after a crash; verify
//! checks a stopped broker's segments and indexes offline and reports what it finds; faults
//! lets tests make the appender's device fail.
pub mod appender;
mod device_fill;
pub mod faults;
pub mod reader;
pub mod recovery;
pub mod verify;

use std::path::{Path, PathBuf};

pub fn log_path(dir: &Path, base_offset: i64) -> PathBuf {
    dir.join(format!("{base_offset:020}.log"))
}

pub fn offset_index_path(dir: &Path, base_offset: i64) -> PathBuf {
    dir.join(format!("{base_offset:020}.index"))
}

pub fn time_index_path(dir: &Path, base_offset: i64) -> PathBuf {
    dir.join(format!("{base_offset:020}.timeindex"))
}

/// Base offsets of the segments in `dir`, ascending.
pub fn list_segments(dir: &Path) -> std::io::Result<Vec<i64>> {
    let mut bases = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let name = entry?.file_name();
        let Some(name) = name.to_str() else { continue };
        if let Some(stem) = name.strip_suffix(".log") {
            if let Ok(base) = stem.parse::<i64>() {
                bases.push(base);
            }
        }
    }
    bases.sort_unstable();
    Ok(bases)
}

/// One batch found while walking a segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScannedBatch {
    pub position: u64,
    pub size_bytes: u32,
    pub base_offset: i64,
    pub last_offset: i64,
    pub max_timestamp: i64,
}
