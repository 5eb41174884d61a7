//! The rate at which a shard sends stored bytes from segment files: what consumers catching up
//! read (Fetch ranges the partition no longer holds in memory, sent with sendfile). Those
//! reads go to the disk and through the kernel's copy; on a disk shared with producers they
//! slow every acks=all produce (measured: a producer's p99 from 20 ms to 2.1-2.6 s while two
//! consumers read 620-740 MB/s from disk). `catch-up-read-bytes-per-sec-max` caps them, split
//! evenly across shards, while producers are writing: while any partition flushed within
//! [`CATCH_UP_READ_CAP_AFTER_FLUSH_MS`]. With nothing being written, a replay reads at the
//! disk's speed. Tail reads from memory are never held back. Like Kafka's consumer byte-rate
//! quota, but for the bytes that cost the disk, not for each client.
//!
//! A consumer that follows a stream more than the memory cache behind reads from the files
//! too: held below the producers' own rate, it would fall further behind for as long as they
//! write. So the rate in force is never below [`CATCH_UP_READ_WRITE_RATE_MULTIPLE`] times the
//! rate flush rounds are writing (this shard's part of it): a consumer can always catch up.
//!
//! A token bucket that may go into debt: a caller takes what it is about to send and, if that
//! leaves the bucket below zero, sleeps until the debt is paid at the configured rate. Callers
//! on one shard queue behind each other's debt, so together they stay under the rate.
use std::cell::Cell;
use std::time::{Duration, Instant};

/// Bytes a bucket holds at most, as time at its rate: the burst one caller may send at once
/// before the rate applies.
pub const CATCH_UP_READ_BURST_MS: u64 = 10;
/// The cap holds for this long after any flush round (any partition, any shard): producers
/// waiting for their fdatasync are what catch-up reads slow down. A second covers producers
/// that write in bursts; an idle broker lets a replay go at full speed.
pub const CATCH_UP_READ_CAP_AFTER_FLUSH_MS: u64 = 1000;
/// Catch-up reads may go this many times as fast as producers write (bytes flushed a second,
/// all shards), whatever the configured cap: a lagging consumer gains on them.
pub const CATCH_UP_READ_WRITE_RATE_MULTIPLE: f64 = 2.0;
/// The write rate is sampled at most this often, over the time since the last sample.
pub const CATCH_UP_READ_WRITE_RATE_SAMPLE_MS: u64 = 100;
/// Least per-shard share of `catch-up-read-bytes-per-sec-max` when it is set: below this a
/// single sendfile turn ([`crate::net::SENDFILE_CALL_BYTES_MAX`]) would wait over a second.
pub const CATCH_UP_READ_SHARE_BYTES_PER_SEC_MIN: u64 = 1 << 20;

/// A shard's share of the catch-up read rate.
pub struct CatchUpRate {
    /// This shard's share of `catch-up-read-bytes-per-sec-max`; 0: no limit.
    share_bytes_per_sec: u64,
    shards: u64,
    /// The rate in force: the share, or more while producers write faster (see
    /// [`CATCH_UP_READ_WRITE_RATE_MULTIPLE`]).
    bytes_per_sec: Cell<f64>,
    /// When the bytes flushed process-wide were last sampled, and how many there were.
    written_sample: Cell<(Instant, u64)>,
    /// Bytes that may be sent now without waiting; negative when callers are in debt.
    tokens: Cell<f64>,
    refilled_at: Cell<Instant>,
    /// Time callers spent waiting for the rate, since start.
    throttled: Cell<Duration>,
}

impl CatchUpRate {
    /// A shard's rate: `share_bytes_per_sec` of the cap, one of `shards`.
    pub fn new(share_bytes_per_sec: u64, shards: usize) -> Self {
        let rate = Self {
            share_bytes_per_sec,
            shards: shards.max(1) as u64,
            bytes_per_sec: Cell::new(share_bytes_per_sec as f64),
            written_sample: Cell::new((Instant::now(), sluice_engine::metrics::flushed_bytes_total())),
            tokens: Cell::new(0.0),
            refilled_at: Cell::new(Instant::now()),
            throttled: Cell::new(Duration::ZERO),
        };
        rate.tokens.set(rate.burst_bytes());
        rate
    }

    fn burst_bytes(&self) -> f64 {
        self.bytes_per_sec.get() * CATCH_UP_READ_BURST_MS as f64 / 1000.0
    }

    /// Takes `bytes` from the bucket, first waiting as long as sending them puts the shard over
    /// its rate, if producers are writing (a flush round within
    /// [`CATCH_UP_READ_CAP_AFTER_FLUSH_MS`]).
    pub async fn take(&self, bytes: usize) {
        if self.share_bytes_per_sec == 0 {
            return; // no cap: not even a look at the clock
        }
        let producers_writing =
            sluice_engine::metrics::flushed_within(Duration::from_millis(CATCH_UP_READ_CAP_AFTER_FLUSH_MS));
        let written = producers_writing.then(sluice_engine::metrics::flushed_bytes_total);
        let wait = self.wait_for(bytes, Instant::now(), written);
        if !wait.is_zero() {
            self.throttled.set(self.throttled.get() + wait);
            glommio::timer::sleep(wait).await;
        }
    }

    /// How long sending `bytes` at `now` must wait: nothing without a limit or while nobody
    /// writes (`written`: the bytes flushed process-wide so far, `None` when no flush was
    /// recent; the bucket is then left alone), else what `charge` says at the rate in force.
    fn wait_for(&self, bytes: usize, now: Instant, written: Option<u64>) -> Duration {
        let Some(written) = written.filter(|_| self.share_bytes_per_sec != 0) else {
            return Duration::ZERO;
        };
        self.follow_writes(now, written);
        self.charge(bytes, now)
    }

    /// Sets the rate in force from the bytes flushed since the last sample (at most every
    /// [`CATCH_UP_READ_WRITE_RATE_SAMPLE_MS`]): the share, or this shard's part of
    /// [`CATCH_UP_READ_WRITE_RATE_MULTIPLE`] times the write rate if that is more.
    fn follow_writes(&self, now: Instant, written: u64) {
        let (sampled_at, sampled) = self.written_sample.get();
        let elapsed = now.saturating_duration_since(sampled_at);
        if elapsed < Duration::from_millis(CATCH_UP_READ_WRITE_RATE_SAMPLE_MS) {
            return;
        }
        self.written_sample.set((now, written));
        let write_bytes_per_sec = written.saturating_sub(sampled) as f64 / elapsed.as_secs_f64();
        let following = write_bytes_per_sec * CATCH_UP_READ_WRITE_RATE_MULTIPLE / self.shards as f64;
        self.bytes_per_sec.set((self.share_bytes_per_sec as f64).max(following));
    }

    /// Refills the bucket up to `now`, takes `bytes`, and returns how long the taker must wait
    /// for the debt this leaves.
    fn charge(&self, bytes: usize, now: Instant) -> Duration {
        let rate = self.bytes_per_sec.get();
        let elapsed = now.saturating_duration_since(self.refilled_at.get()).as_secs_f64();
        let tokens = (self.tokens.get() + elapsed * rate).min(self.burst_bytes()) - bytes as f64;
        self.tokens.set(tokens);
        self.refilled_at.set(now);
        if tokens >= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(-tokens / rate)
        }
    }

    /// Time callers waited for the rate since start.
    pub fn throttled(&self) -> Duration {
        self.throttled.get()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    const MIB: usize = 1 << 20;

    #[test]
    fn no_limit_never_waits() {
        let rate = CatchUpRate::new(0, 1);
        glommio::LocalExecutorBuilder::default().make().unwrap().run(async {
            let started = Instant::now();
            for _ in 0..1000 {
                rate.take(MIB).await;
            }
            assert!(started.elapsed() < Duration::from_millis(100));
        });
        assert_eq!(rate.throttled(), Duration::ZERO);
    }

    #[test]
    fn with_nobody_writing_reads_go_at_full_speed() {
        let rate = CatchUpRate::new(10 * MIB as u64, 1);
        let start = Instant::now();
        for _ in 0..100 {
            assert_eq!(rate.wait_for(MIB, start, None), Duration::ZERO);
        }
        assert!((rate.tokens.get() - rate.burst_bytes()).abs() < 1.0, "the bucket is untouched");
        // Writes start: the cap holds from the full burst on.
        let written = rate.written_sample.get().1;
        assert_eq!(rate.wait_for(MIB / 20, start, Some(written)), Duration::ZERO);
        assert!(rate.wait_for(MIB, start, Some(written)) > Duration::from_millis(90));
    }

    #[test]
    fn the_rate_in_force_follows_producers_that_write_faster_than_the_cap() {
        let rate = CatchUpRate::new(10 * MIB as u64, 2);
        let (start, written) = rate.written_sample.get();
        // Within a sample's time nothing changes.
        rate.follow_writes(start + Duration::from_millis(50), written + 1_000 * MIB as u64);
        assert_eq!(rate.bytes_per_sec.get(), 10.0 * MIB as f64);
        // 60 MiB flushed in 200 ms: 300 MiB/s, of which this shard's part is 150; twice that.
        let sampled = start + Duration::from_millis(200);
        rate.follow_writes(sampled, written + 60 * MIB as u64);
        assert!((rate.bytes_per_sec.get() - 300.0 * MIB as f64).abs() < 1.0, "{}", rate.bytes_per_sec.get());
        // Writes slow down to 1 MiB in the next second: back to the share.
        rate.follow_writes(sampled + Duration::from_secs(1), written + 61 * MIB as u64);
        assert_eq!(rate.bytes_per_sec.get(), 10.0 * MIB as f64);
    }

    #[test]
    fn takers_queue_behind_the_debt_and_refill_with_time() {
        let rate = CatchUpRate::new(10 * MIB as u64, 1); // burst: 10 ms = 104,857.6 bytes
        let start = Instant::now();
        assert_eq!(rate.charge(MIB / 20, start), Duration::ZERO, "within the burst");
        // 1 MiB more leaves a debt of about 0.95 MiB: 95 ms at 10 MiB/s.
        let first = rate.charge(MIB, start);
        assert!((first.as_secs_f64() - 0.095).abs() < 0.001, "{first:?}");
        // A second taker at the same moment waits for both debts.
        let second = rate.charge(MIB, start);
        assert!((second.as_secs_f64() - 0.195).abs() < 0.001, "{second:?}");
        // Once the debt is paid, the bucket refills up to the burst and no further.
        let later = start + Duration::from_secs(5);
        assert_eq!(rate.charge(0, later), Duration::ZERO);
        assert!((rate.tokens.get() - rate.burst_bytes()).abs() < 1.0);
    }

    #[test]
    fn a_shard_sends_at_most_its_rate_while_producers_write() {
        let rate = CatchUpRate::new(20 * MIB as u64, 1);
        // A flush round just now: the cap holds for the next second, longer than this test.
        sluice_engine::metrics::record_flush(0);
        let elapsed = glommio::LocalExecutorBuilder::default().make().unwrap().run(async {
            let started = Instant::now();
            for _ in 0..6 {
                rate.take(MIB).await;
            }
            started.elapsed()
        });
        // 6 MiB at 20 MiB/s, less the 10 ms burst: at least 0.29 s.
        assert!(elapsed >= Duration::from_millis(280), "{elapsed:?}");
        assert!(rate.throttled() >= Duration::from_millis(280), "{:?}", rate.throttled());
    }
}
