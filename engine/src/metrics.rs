//! Measurements the storage takes of itself, cheap enough for the hot path: a fixed-bucket
//! histogram (a few `Cell` increments per observation, no locks, no allocation) and the
//! per-shard storage metrics the partition flushers record into.
//!
//! Recording and reading are split: the owner records into `Cell`s on its own thread; a
//! scrape takes a [`HistogramSnapshot`] (plain numbers, `Send`) that the server merges across
//! shards and renders.
use std::cell::Cell;
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crate::limits::MESSAGE_BYTES_MAX_DEFAULT;

/// Upper bounds (seconds) of latency buckets: 50 us (a fast fdatasync) to 30 s (the longest
/// Fetch long poll).
pub const LATENCY_BUCKETS_SECONDS: [f64; 18] = [
    0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
    30.0,
];

/// Upper bounds of the batches made durable by one flush round (group commit).
pub const FLUSH_BATCHES_BUCKETS: [f64; 12] =
    [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0, 4096.0];

/// Upper bounds (bytes) of message size buckets: 16 B to 16 MiB, doubling (a Kafka record
/// batch, a RESP stream entry). The default `max.message.bytes` fits well inside.
pub const MESSAGE_BYTES_BUCKETS: [f64; 21] = powers_of_two(4);

/// Upper bounds of the records in one Kafka record batch: 1 to 65,536, doubling.
pub const BATCH_RECORDS_BUCKETS: [f64; 17] = powers_of_two(0);

const _: () = assert!(MESSAGE_BYTES_BUCKETS[MESSAGE_BYTES_BUCKETS.len() - 1] >= MESSAGE_BYTES_MAX_DEFAULT as f64);

/// `BUCKETS` powers of two from `2^first_exponent` up.
const fn powers_of_two<const BUCKETS: usize>(first_exponent: u32) -> [f64; BUCKETS] {
    let mut bounds = [0.0; BUCKETS];
    let mut index = 0;
    while index < BUCKETS {
        bounds[index] = (1u64 << (first_exponent + index as u32)) as f64;
        index += 1;
    }
    bounds
}

/// A histogram with fixed bucket bounds. `counts[i]` holds the observations in
/// `(bounds[i-1], bounds[i]]`; those above the last bound are only in `count` (the `+Inf`
/// bucket). Lives on one shard; never shared with another thread.
#[derive(Debug)]
pub struct Histogram<const BUCKETS: usize> {
    bounds: &'static [f64; BUCKETS],
    counts: [Cell<u64>; BUCKETS],
    count: Cell<u64>,
    sum: Cell<f64>,
}

impl<const BUCKETS: usize> Histogram<BUCKETS> {
    pub fn new(bounds: &'static [f64; BUCKETS]) -> Self {
        debug_assert!(bounds.windows(2).all(|pair| pair[0] < pair[1]), "bucket bounds must increase");
        Self { bounds, counts: std::array::from_fn(|_| Cell::new(0)), count: Cell::new(0), sum: Cell::new(0.0) }
    }

    pub fn observe(&self, value: f64) {
        let bucket = self.bounds.partition_point(|bound| *bound < value);
        if let Some(count) = self.counts.get(bucket) {
            count.set(count.get() + 1);
        }
        self.count.set(self.count.get() + 1);
        self.sum.set(self.sum.get() + value);
    }

    pub fn observe_duration(&self, duration: Duration) {
        self.observe(duration.as_secs_f64());
    }

    pub fn snapshot(&self) -> HistogramSnapshot {
        HistogramSnapshot {
            bounds: self.bounds,
            counts: self.counts.iter().map(Cell::get).collect(),
            count: self.count.get(),
            sum: self.sum.get(),
        }
    }
}

/// A histogram's numbers at one moment, to merge and render elsewhere. `counts` are per
/// bucket (not cumulative), as in [`Histogram`].
#[derive(Debug, Clone, PartialEq)]
pub struct HistogramSnapshot {
    pub bounds: &'static [f64],
    pub counts: Vec<u64>,
    pub count: u64,
    pub sum: f64,
}

impl HistogramSnapshot {
    pub fn empty(bounds: &'static [f64]) -> Self {
        Self { bounds, counts: vec![0; bounds.len()], count: 0, sum: 0.0 }
    }

    /// Adds `other`'s observations (same bounds: both come from the same constant).
    pub fn merge(&mut self, other: &HistogramSnapshot) {
        assert_eq!(self.bounds, other.bounds, "merging histograms with different buckets");
        for (count, other_count) in self.counts.iter_mut().zip(&other.counts) {
            *count += other_count;
        }
        self.count += other.count;
        self.sum += other.sum;
    }

    /// `(upper bound, observations at or below it)`, ending with `(+Inf, count)`.
    pub fn cumulative(&self) -> impl Iterator<Item = (f64, u64)> + '_ {
        let finite = self.bounds.iter().zip(&self.counts).scan(0u64, |running, (bound, count)| {
            *running += count;
            Some((*bound, *running))
        });
        finite.chain(std::iter::once((f64::INFINITY, self.count)))
    }
}

/// What the partition flushers of one shard measure: each flush round's duration (its direct
/// write and the fdatasync linked to it) and how many batches it made durable. One per shard
/// (per executor thread), shared by its partitions through an `Rc`; never shared with another
/// thread.
#[derive(Debug)]
pub struct StorageMetrics {
    pub flush_seconds: Histogram<{ LATENCY_BUCKETS_SECONDS.len() }>,
    pub flush_batches: Histogram<{ FLUSH_BATCHES_BUCKETS.len() }>,
}

thread_local! {
    /// A shard is one executor pinned to one thread, so the thread's metrics are the shard's.
    /// (Partitions find them here rather than through `Partition::open`'s arguments.)
    static SHARD_STORAGE_METRICS: Rc<StorageMetrics> = Rc::new(StorageMetrics::new());
}

impl StorageMetrics {
    fn new() -> Self {
        Self {
            flush_seconds: Histogram::new(&LATENCY_BUCKETS_SECONDS),
            flush_batches: Histogram::new(&FLUSH_BATCHES_BUCKETS),
        }
    }

    /// The metrics of the shard running on this thread.
    pub fn current() -> Rc<StorageMetrics> {
        SHARD_STORAGE_METRICS.with(Rc::clone)
    }
}

/// When a flush round last made writes durable, anywhere in this process (any shard, any
/// partition): milliseconds since `FLUSH_CLOCK_EPOCH`, plus one (0: never). With
/// `FLUSHED_BYTES`, two relaxed atomics per round; the server reads them to tell whether
/// producers are waiting on the disk, and how fast they write.
static LAST_FLUSH_MS: AtomicU64 = AtomicU64::new(0);
/// Bytes flush rounds made durable in this process since it started.
static FLUSHED_BYTES: AtomicU64 = AtomicU64::new(0);
static FLUSH_CLOCK_EPOCH: OnceLock<Instant> = OnceLock::new();

fn flush_clock_ms() -> u64 {
    FLUSH_CLOCK_EPOCH.get_or_init(Instant::now).elapsed().as_millis() as u64 + 1
}

/// Notes that a flush round just wrote and synced `bytes` of batches.
pub fn record_flush(bytes: u64) {
    LAST_FLUSH_MS.store(flush_clock_ms(), Ordering::Relaxed);
    FLUSHED_BYTES.fetch_add(bytes, Ordering::Relaxed);
}

/// Bytes flush rounds made durable in this process since it started.
pub fn flushed_bytes_total() -> u64 {
    FLUSHED_BYTES.load(Ordering::Relaxed)
}

/// Whether any flush round wrote and synced within the last `window`.
pub fn flushed_within(window: Duration) -> bool {
    let last = LAST_FLUSH_MS.load(Ordering::Relaxed);
    last != 0 && flush_clock_ms().saturating_sub(last) <= window.as_millis() as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn observations_land_in_the_first_bucket_at_or_above_them() {
        static BOUNDS: [f64; 3] = [1.0, 2.0, 5.0];
        let histogram = Histogram::new(&BOUNDS);
        for value in [0.5, 1.0, 1.5, 2.0, 4.0, 7.0] {
            histogram.observe(value);
        }
        let snapshot = histogram.snapshot();
        assert_eq!(snapshot.counts, vec![2, 2, 1]);
        assert_eq!(snapshot.count, 6);
        assert_eq!(snapshot.sum, 16.0);
        let cumulative: Vec<_> = snapshot.cumulative().collect();
        assert_eq!(cumulative, vec![(1.0, 2), (2.0, 4), (5.0, 5), (f64::INFINITY, 6)]);
    }

    #[test]
    fn size_buckets_double_from_their_first_bound() {
        assert_eq!(MESSAGE_BYTES_BUCKETS[0], 16.0);
        assert_eq!(MESSAGE_BYTES_BUCKETS[20], (16 << 20) as f64);
        assert_eq!(BATCH_RECORDS_BUCKETS[0], 1.0);
        assert_eq!(BATCH_RECORDS_BUCKETS[16], 65_536.0);
        assert!(MESSAGE_BYTES_BUCKETS.windows(2).all(|pair| pair[1] == 2.0 * pair[0]));
    }

    #[test]
    fn merged_snapshots_add_up() {
        let first = Histogram::new(&LATENCY_BUCKETS_SECONDS);
        let second = Histogram::new(&LATENCY_BUCKETS_SECONDS);
        first.observe_duration(Duration::from_micros(80));
        second.observe_duration(Duration::from_millis(3));
        second.observe_duration(Duration::from_secs(60));
        let mut merged = HistogramSnapshot::empty(&LATENCY_BUCKETS_SECONDS);
        merged.merge(&first.snapshot());
        merged.merge(&second.snapshot());
        assert_eq!(merged.count, 3);
        assert_eq!(merged.counts.iter().sum::<u64>(), 2, "60 s is only in +Inf");
        assert_eq!(merged.counts[1], 1, "80 us is in the 100 us bucket");
        assert_eq!(merged.counts[6], 1, "3 ms is in the 5 ms bucket");
        assert!((merged.sum - 60.00308).abs() < 1e-9);
    }
}
