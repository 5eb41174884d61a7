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
/// Least per-shard share of `catch-up-read-bytes-per-sec-max` when it is set: below this a
/// single sendfile turn ([`crate::net::SENDFILE_CALL_BYTES_MAX`]) would wait over a second.
pub const CATCH_UP_READ_SHARE_BYTES_PER_SEC_MIN: u64 = 1 << 20;

/// A shard's share of the catch-up read rate.
pub struct CatchUpRate {
    /// 0: no limit.
    bytes_per_sec: u64,
    /// Bytes that may be sent now without waiting; negative when callers are in debt.
    tokens: Cell<f64>,
    refilled_at: Cell<Instant>,
    /// Time callers spent waiting for the rate, since start.
    throttled: Cell<Duration>,
}

impl CatchUpRate {
    pub fn new(bytes_per_sec: u64) -> Self {
        let rate = Self {
            bytes_per_sec,
            tokens: Cell::new(0.0),
            refilled_at: Cell::new(Instant::now()),
            throttled: Cell::new(Duration::ZERO),
        };
        rate.tokens.set(rate.burst_bytes());
        rate
    }

    fn burst_bytes(&self) -> f64 {
        self.bytes_per_sec as f64 * CATCH_UP_READ_BURST_MS as f64 / 1000.0
    }

    /// Takes `bytes` from the bucket, first waiting as long as sending them puts the shard over
    /// its rate, if producers are writing (a flush round within
    /// [`CATCH_UP_READ_CAP_AFTER_FLUSH_MS`]).
    pub async fn take(&self, bytes: usize) {
        let producers_writing =
            sluice_engine::metrics::flushed_within(Duration::from_millis(CATCH_UP_READ_CAP_AFTER_FLUSH_MS));
        let wait = self.wait_for(bytes, Instant::now(), producers_writing);
        if !wait.is_zero() {
            self.throttled.set(self.throttled.get() + wait);
            glommio::timer::sleep(wait).await;
        }
    }

    /// How long sending `bytes` at `now` must wait: nothing without a limit or while nobody
    /// writes (the bucket is then left alone), else what `charge` says.
    fn wait_for(&self, bytes: usize, now: Instant, producers_writing: bool) -> Duration {
        if self.bytes_per_sec == 0 || !producers_writing {
            return Duration::ZERO;
        }
        self.charge(bytes, now)
    }

    /// Refills the bucket up to `now`, takes `bytes`, and returns how long the taker must wait
    /// for the debt this leaves.
    fn charge(&self, bytes: usize, now: Instant) -> Duration {
        let rate = self.bytes_per_sec as f64;
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
        let rate = CatchUpRate::new(0);
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
        let rate = CatchUpRate::new(10 * MIB as u64);
        let start = Instant::now();
        for _ in 0..100 {
            assert_eq!(rate.wait_for(MIB, start, false), Duration::ZERO);
        }
        assert!((rate.tokens.get() - rate.burst_bytes()).abs() < 1.0, "the bucket is untouched");
        // Writes start: the cap holds from the full burst on.
        assert_eq!(rate.wait_for(MIB / 20, start, true), Duration::ZERO);
        assert!(rate.wait_for(MIB, start, true) > Duration::from_millis(90));
    }

    #[test]
    fn takers_queue_behind_the_debt_and_refill_with_time() {
        let rate = CatchUpRate::new(10 * MIB as u64); // burst: 10 ms = 104,857.6 bytes
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
        let rate = CatchUpRate::new(20 * MIB as u64);
        // A flush round just now: the cap holds for the next second, longer than this test.
        sluice_engine::metrics::record_flush();
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
