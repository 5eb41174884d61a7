//! What the disk under a directory can do, measured the way the broker uses it: direct I/O
//! (O_DIRECT, no page cache), sequential appends, fdatasync for durability.
//!
//! - Sequential write bandwidth: 1 MiB aligned blocks, once with one writer (queue depth 1,
//!   what `dd oflag=direct` measures) and once with several writer threads, each appending to
//!   its own file (separate files: ext4 serializes direct writes that extend one file). Each
//!   writer stops at its share of the bytes or at the time bound; the figure includes the final
//!   fdatasync of every file.
//! - fdatasync latency: a 4 KiB direct append followed by fdatasync, back to back for a few
//!   seconds, as the broker's group commit does for a small acks=all batch. Measured twice:
//!   with the machine otherwise idle, and with every core kept busy by spinning threads of the
//!   lowest priority (`SCHED_IDLE`, so they never delay the measuring thread inside the guest).
//!   On bare metal the two agree. In a virtual machine whose host charges its own I/O work to
//!   the guest's CPU allowance, the second shows the flushes that stall until the host's next
//!   scheduling period once the guest's cores are busy: a floor under any durable broker's
//!   latency tail while it (and its clients) keep those cores busy.
//!
//! The files are removed afterwards, also when a step fails.
use std::fs::{File, OpenOptions};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::thread;
use std::time::Instant;

use hdrhistogram::Histogram;

use serde::Serialize;

use super::limits::{
    DIRECT_IO_ALIGNMENT_BYTES, DISK_BLOCK_BYTES, DISK_WRITERS_MAX, DISK_WRITE_TIME_MAX, SYNC_SAMPLES_DEFAULT,
    SYNC_TIME_MAX, SYNC_WRITE_BYTES,
};
use super::stats::{latency_histogram, record_latency, LatencySummary};
use crate::filler_bytes;

#[derive(Debug, Clone, Serialize)]
pub struct DiskConfig {
    pub dir: PathBuf,
    /// Bytes each sequential test writes unless it hits [`DISK_WRITE_TIME_MAX`] first.
    pub write_bytes: u64,
    /// Writer threads of the parallel sequential test.
    pub writers: usize,
    pub sync_samples: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct DiskReport {
    pub dir: PathBuf,
    /// One writer, 1 MiB blocks, in 10^6 bytes per second.
    pub write_mb_per_s_one_writer: f64,
    /// `writers` writers, 1 MiB blocks each, in 10^6 bytes per second.
    pub write_mb_per_s_parallel: f64,
    pub writers: usize,
    /// 4 KiB direct append + fdatasync, nothing else running.
    pub fdatasync: LatencySummary,
    /// The same while `cores_busy` threads spin at the lowest priority.
    pub fdatasync_cores_busy: LatencySummary,
    pub cores_busy: usize,
}

impl DiskReport {
    /// The bandwidth the broker's figures are compared with: the best the disk showed.
    pub fn write_mb_per_s(&self) -> f64 {
        self.write_mb_per_s_one_writer.max(self.write_mb_per_s_parallel)
    }
}

#[derive(Debug)]
#[non_exhaustive]
pub enum DiskError {
    Config(String),
    Io { doing: String, source: std::io::Error },
}

impl std::fmt::Display for DiskError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Config(message) => write!(f, "{message}"),
            Self::Io { doing, source } => write!(f, "{doing}: {source}"),
        }
    }
}

impl std::error::Error for DiskError {}

impl DiskConfig {
    pub fn new(dir: PathBuf, write_bytes: u64, writers: usize) -> Self {
        Self { dir, write_bytes, writers, sync_samples: SYNC_SAMPLES_DEFAULT }
    }
}

pub fn measure(config: &DiskConfig) -> Result<DiskReport, DiskError> {
    if !(1..=DISK_WRITERS_MAX).contains(&config.writers) {
        return Err(DiskError::Config(format!("--writers is 1..={DISK_WRITERS_MAX}")));
    }
    if config.write_bytes < DISK_BLOCK_BYTES as u64 {
        return Err(DiskError::Config(format!("--write-bytes is at least {DISK_BLOCK_BYTES}")));
    }
    std::fs::create_dir_all(&config.dir)
        .map_err(|source| DiskError::Io { doing: format!("creating {}", config.dir.display()), source })?;
    let one_writer = sequential_write_mb_per_s(&config.dir, config.write_bytes, 1)?;
    let parallel = sequential_write_mb_per_s(&config.dir, config.write_bytes, config.writers)?;
    let fdatasync = LatencySummary::of(&fdatasync_latencies(&config.dir, config.sync_samples)?);
    let cores_busy = thread::available_parallelism().map_or(1, |cores| cores.get());
    let fdatasync_cores_busy =
        LatencySummary::of(&with_cores_busy(cores_busy, || fdatasync_latencies(&config.dir, config.sync_samples))?);
    Ok(DiskReport {
        dir: config.dir.clone(),
        write_mb_per_s_one_writer: one_writer,
        write_mb_per_s_parallel: parallel,
        writers: config.writers,
        fdatasync,
        fdatasync_cores_busy,
        cores_busy,
    })
}

/// Runs `measure` while `cores` threads spin. Each spinner asks for `SCHED_IDLE` first, so the
/// measuring thread runs whenever it is ready; if the kernel refuses, the spinner still spins
/// at normal priority.
fn with_cores_busy<R>(cores: usize, measure: impl FnOnce() -> R) -> R {
    let stop = std::sync::atomic::AtomicBool::new(false);
    thread::scope(|scope| {
        for _ in 0..cores {
            scope.spawn(|| {
                let lowest = libc::sched_param { sched_priority: 0 };
                // SAFETY: sched_setscheduler reads the parameter it is given; pid 0 is this thread.
                unsafe { libc::sched_setscheduler(0, libc::SCHED_IDLE, &lowest) };
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    std::hint::spin_loop();
                }
            });
        }
        let result = measure();
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        result
    })
}

/// A scratch file of this process, removed when dropped.
struct ScratchFile {
    path: PathBuf,
    file: File,
}

impl ScratchFile {
    fn create_direct(dir: &Path, name: &str) -> Result<Self, DiskError> {
        let path = dir.join(format!("sluice-bench-disk-{}-{name}.tmp", std::process::id()));
        let file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .custom_flags(libc::O_DIRECT)
            .open(&path)
            .map_err(|source| DiskError::Io {
                doing: format!("opening {} with O_DIRECT (tmpfs has no direct I/O)", path.display()),
                source,
            })?;
        Ok(Self { path, file })
    }

    fn io_error(&self, doing: &str, source: std::io::Error) -> DiskError {
        DiskError::Io { doing: format!("{doing} {}", self.path.display()), source }
    }
}

impl Drop for ScratchFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// A buffer whose start and length are multiples of [`DIRECT_IO_ALIGNMENT_BYTES`], carved out
/// of a slightly larger Vec (no unsafe allocation needed).
struct AlignedBuffer {
    storage: Vec<u8>,
    start: usize,
    length_bytes: usize,
}

impl AlignedBuffer {
    fn filled(length_bytes: usize, seed: u64) -> Self {
        assert!(length_bytes % DIRECT_IO_ALIGNMENT_BYTES == 0, "direct I/O sizes are aligned");
        let mut storage = filler_bytes(length_bytes + DIRECT_IO_ALIGNMENT_BYTES, seed);
        let start = storage.as_ptr().align_offset(DIRECT_IO_ALIGNMENT_BYTES);
        assert!(start < DIRECT_IO_ALIGNMENT_BYTES);
        storage.truncate(start + length_bytes);
        Self { storage, start, length_bytes }
    }

    fn as_slice(&self) -> &[u8] {
        let slice = &self.storage[self.start..self.start + self.length_bytes];
        debug_assert_eq!(slice.as_ptr() as usize % DIRECT_IO_ALIGNMENT_BYTES, 0);
        slice
    }
}

/// `writers` threads append 1 MiB blocks to their own file, together `total_bytes` or until the
/// time bound, then fdatasync. Bandwidth over the whole span, syncs included.
fn sequential_write_mb_per_s(dir: &Path, total_bytes: u64, writers: usize) -> Result<f64, DiskError> {
    let blocks_per_writer = (total_bytes / DISK_BLOCK_BYTES as u64 / writers as u64).max(1);
    let files: Vec<ScratchFile> = (0..writers)
        .map(|index| ScratchFile::create_direct(dir, &format!("seq{writers}-{index}")))
        .collect::<Result<_, _>>()?;
    let started = Instant::now();
    let deadline = started + DISK_WRITE_TIME_MAX;
    let written: Vec<Result<u64, DiskError>> = thread::scope(|scope| {
        let handles: Vec<_> = files
            .iter()
            .enumerate()
            .map(|(index, file)| scope.spawn(move || append_blocks(file, blocks_per_writer, deadline, index as u64)))
            .collect();
        handles
            .into_iter()
            .map(|handle| handle.join().unwrap_or_else(|_| Err(DiskError::Config("a disk writer panicked".into()))))
            .collect()
    });
    let seconds = started.elapsed().as_secs_f64();
    let mut bytes = 0u64;
    for result in written {
        bytes += result?;
    }
    Ok(bytes as f64 / seconds / 1e6)
}

fn append_blocks(scratch: &ScratchFile, blocks: u64, deadline: Instant, seed: u64) -> Result<u64, DiskError> {
    let buffer = AlignedBuffer::filled(DISK_BLOCK_BYTES, seed + 1);
    let mut written = 0u64;
    for block in 0..blocks {
        if Instant::now() >= deadline {
            break;
        }
        let offset = block * DISK_BLOCK_BYTES as u64;
        scratch.file.write_all_at(buffer.as_slice(), offset).map_err(|source| scratch.io_error("writing", source))?;
        written += DISK_BLOCK_BYTES as u64;
    }
    scratch.file.sync_data().map_err(|source| scratch.io_error("fdatasync of", source))?;
    Ok(written)
}

/// Each sample: a 4 KiB direct append, then fdatasync; the time of both.
fn fdatasync_latencies(dir: &Path, samples: usize) -> Result<Histogram<u64>, DiskError> {
    let scratch = ScratchFile::create_direct(dir, "sync")?;
    let buffer = AlignedBuffer::filled(SYNC_WRITE_BYTES, 7);
    let started = Instant::now();
    let mut latencies = latency_histogram();
    for sample in 0..samples.max(1) {
        if sample > 0 && started.elapsed() >= SYNC_TIME_MAX {
            break;
        }
        let begun = Instant::now();
        let offset = (sample * SYNC_WRITE_BYTES) as u64;
        scratch.file.write_all_at(buffer.as_slice(), offset).map_err(|source| scratch.io_error("writing", source))?;
        scratch.file.sync_data().map_err(|source| scratch.io_error("fdatasync of", source))?;
        record_latency(&mut latencies, begun.elapsed());
    }
    Ok(latencies)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn aligned_buffers_are_aligned_and_whole() {
        for seed in 0..8 {
            let buffer = AlignedBuffer::filled(2 * DIRECT_IO_ALIGNMENT_BYTES, seed);
            assert_eq!(buffer.as_slice().len(), 2 * DIRECT_IO_ALIGNMENT_BYTES);
            assert_eq!(buffer.as_slice().as_ptr() as usize % DIRECT_IO_ALIGNMENT_BYTES, 0);
        }
    }

    #[test]
    fn a_small_measurement_runs_and_cleans_up() {
        let dir = tempfile::tempdir().unwrap();
        let config = DiskConfig { sync_samples: 5, ..DiskConfig::new(dir.path().to_path_buf(), 4 << 20, 2) };
        match measure(&config) {
            Ok(report) => {
                assert!(report.write_mb_per_s_one_writer > 0.0 && report.write_mb_per_s_parallel > 0.0);
                for sync in [&report.fdatasync, &report.fdatasync_cores_busy] {
                    assert_eq!(sync.count, 5);
                    assert!(sync.p50_ms <= sync.p99_ms && sync.p99_ms <= sync.p99_9_ms);
                    assert!(sync.p99_9_ms <= sync.max_ms);
                }
                assert!(report.cores_busy >= 1);
            }
            // A temp dir on tmpfs cannot do direct I/O; the error must say so.
            Err(error) => assert!(error.to_string().contains("O_DIRECT"), "{error}"),
        }
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0, "scratch files are removed");
    }
}
