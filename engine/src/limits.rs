//! Every storage limit and default in one place, with its unit in its name.

/// Direct I/O block size: file offsets and lengths of every write are multiples of this.
pub const DMA_BLOCK_BYTES: u64 = 4096;
/// Largest single write (and DMA buffer) one flush round issues for one partition.
pub const FLUSH_ROUND_BYTES_MAX: usize = 4 << 20;
/// Appends wait (backpressure) while a partition holds more unsynced bytes than this.
pub const PENDING_BYTES_MAX: usize = 64 << 20;
/// Zeros a flush round writes past its batches when fewer than `ZERO_AHEAD_LOW_WATER_BYTES`
/// are left there, so the rounds after it overwrite allocated blocks inside the file and their
/// fdatasync has no size or extent change to persist (criterion `append_16x1KiB/dma`, 16 KiB
/// rounds: 245 -> 149 us a round).
pub const ZERO_AHEAD_BYTES: u64 = 1 << 20;
/// Fewer zeros than this left past a round's batches: the round writes `ZERO_AHEAD_BYTES` more.
pub const ZERO_AHEAD_LOW_WATER_BYTES: u64 = 256 << 10;
/// Only a partition whose rounds are this small (the round, and their average) zeroes ahead:
/// 1 MiB of zeros then spares at least eight rounds a size change (about 0.1 ms each here)
/// for one write of 1 MiB more (about 0.5 ms). Larger rounds spread their size change over
/// enough bytes already; zeroing ahead of them doubles the bytes written (and cost a Kafka
/// producer at 400 MB/s a partition 7.5% of the broker's CPU in memset).
pub const ZERO_AHEAD_ROUND_BYTES_MAX: usize = 128 << 10;
/// Recently appended batches kept in memory per partition to serve tail reads.
pub const HOT_CACHE_BYTES_PER_PARTITION: usize = 8 << 20;
/// One offset/time index entry per this many bytes of log.
pub const INDEX_INTERVAL_BYTES: u64 = 4096;
/// Index entries are appended to the index files in groups of at least this many (every
/// 256 KiB of log at the default interval): after a crash recovery scans at most that much
/// past the last persisted entry, and the flusher does not touch index files every round.
pub const INDEX_PERSIST_ENTRIES_MIN: usize = 64;
/// With no usable producer snapshot, how much of the log's tail (across segments) is replayed
/// at open to rebuild idempotent producers' state.
pub const PRODUCER_STATE_REBUILD_BYTES: u64 = 16 << 20;
/// Producer-state snapshots kept per partition, the newest; an older one is the fallback if
/// the newest is corrupt.
pub const PRODUCER_SNAPSHOTS_KEPT: usize = 2;
/// Recovery and cold reads fetch segment files in chunks of this size.
pub const READ_CHUNK_BYTES: usize = 1 << 20;
/// Smallest read issued for a fetch, so a scan from an index entry finds whole batches.
pub const READ_MIN_BYTES: usize = 64 << 10;
/// Checked byte ranges remembered per segment (see `Partition::read_to_send`): consumers
/// reading an earlier run's segment from a few places each grow one range.
pub const CHECKED_RANGES_PER_SEGMENT_MAX: usize = 64;
/// Largest read-ahead one partition holds (see `partition::read_ahead`); a read-ahead is as
/// long as the fetch that started it asked for, at least [`READ_MIN_BYTES`].
pub const READ_AHEAD_BYTES_MAX: usize = 8 << 20;
/// Read-ahead bytes one shard holds or reads at once, over all its partitions.
pub const READ_AHEAD_BYTES_PER_SHARD_MAX: usize = 64 << 20;
/// A read-ahead nobody claimed for this long gives way to the next reader that wants one.
pub const READ_AHEAD_UNCLAIMED_MAX: std::time::Duration = std::time::Duration::from_secs(1);
/// Segments deleted per partition per retention tick (bounded background work).
pub const RETENTION_DELETES_PER_TICK_MAX: usize = 8;
/// `sluice verify` looks for partition logs this many directory levels below `topics/` and
/// `internal/` (a partition is `<topic>/<partition>`: two levels; one more for nested logs).
pub const VERIFY_DIR_DEPTH_MAX: usize = 3;
/// `sluice verify` keeps the details of this many findings per segment (and its indexes); the
/// rest are only counted, so a shredded file does not print a line per byte.
pub const VERIFY_FINDINGS_PER_SEGMENT_MAX: usize = 64;

/// Topic config defaults (Kafka names in comments).
pub const SEGMENT_BYTES_DEFAULT: u64 = 256 << 20; // segment.bytes
pub const SEGMENT_BYTES_MIN: u64 = 1 << 20;
/// Positions in the offset index are u32.
pub const SEGMENT_BYTES_MAX: u64 = (1 << 31) - 1;
pub const SEGMENT_MS_DEFAULT: i64 = 7 * 24 * 3600 * 1000; // segment.ms
pub const RETENTION_MS_DEFAULT: i64 = 7 * 24 * 3600 * 1000; // retention.ms (-1: forever)
pub const RETENTION_BYTES_DEFAULT: i64 = -1; // retention.bytes (-1: unlimited)
pub const MESSAGE_BYTES_MAX_DEFAULT: usize = 1 << 20; // max.message.bytes
pub const MESSAGE_BYTES_MAX_LIMIT: usize = 1 << 30;

const _: () = assert!(SEGMENT_BYTES_MIN % DMA_BLOCK_BYTES == 0);
const _: () = assert!(FLUSH_ROUND_BYTES_MAX as u64 % DMA_BLOCK_BYTES == 0);
const _: () = assert!(PENDING_BYTES_MAX >= FLUSH_ROUND_BYTES_MAX);
const _: () = assert!(ZERO_AHEAD_BYTES % DMA_BLOCK_BYTES == 0 && ZERO_AHEAD_LOW_WATER_BYTES < ZERO_AHEAD_BYTES);
const _: () = assert!(MESSAGE_BYTES_MAX_LIMIT as u64 <= SEGMENT_BYTES_MAX);
const _: () = assert!(PRODUCER_SNAPSHOTS_KEPT >= 1);
const _: () = assert!(READ_AHEAD_BYTES_MAX >= READ_MIN_BYTES);
const _: () = assert!(READ_AHEAD_BYTES_PER_SHARD_MAX >= READ_AHEAD_BYTES_MAX);
