//! When a load run sends and which answers count, for every load (Kafka produce, XADD,
//! XREADGROUP): the warm-up, the measured window, when sending stops, and the open-loop
//! schedule.
//!
//! Everything answered after the warm-up counts; a timed run stops sending at
//! `warmup + duration` and only answers that arrive before then count towards throughput. A
//! run bounded by messages hands out its sends one by one across connections and its window
//! ends with its last answer.
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::Serialize;

/// When a run stops sending.
#[derive(Debug, Clone, Copy, Serialize, PartialEq)]
#[serde(rename_all = "snake_case")]
pub enum StopAfter {
    /// Seconds of measurement after the warm-up.
    Seconds(f64),
    /// Messages sent in all, warm-up included (rounded up to whole sends).
    Messages(u64),
}

impl StopAfter {
    pub fn is_valid(&self) -> bool {
        match *self {
            StopAfter::Seconds(seconds) => seconds > 0.0 && seconds.is_finite(),
            StopAfter::Messages(messages) => messages > 0,
        }
    }
}

/// The clock of one run, shared by all its connections.
#[derive(Debug)]
pub struct Timeline {
    pub started: Instant,
    /// Microseconds since the Unix epoch at `started`: turns an instant into the wall-clock
    /// time another process (a consumer) can compare with its own clock.
    started_epoch_us: u64,
    pub warmup_end: Instant,
    /// Timed runs stop sending here.
    pub send_until: Option<Instant>,
    /// Runs bounded by messages: sends handed out so far, and how many there are.
    sends_claimed: AtomicU64,
    sends_total: Option<u64>,
}

impl Timeline {
    /// Starts the clock now. `messages_per_send` is what one send carries (a Kafka batch's
    /// records; 1 for an XADD).
    pub fn new(stop_after: StopAfter, warmup: Duration, messages_per_send: u64) -> Self {
        assert!(messages_per_send > 0, "a send carries messages");
        let started = Instant::now();
        let warmup_end = started + warmup;
        let (send_until, sends_total) = match stop_after {
            StopAfter::Seconds(seconds) => (Some(warmup_end + Duration::from_secs_f64(seconds)), None),
            StopAfter::Messages(messages) => (None, Some(messages.div_ceil(messages_per_send))),
        };
        Self {
            started,
            started_epoch_us: epoch_us_now(),
            warmup_end,
            send_until,
            sends_claimed: AtomicU64::new(0),
            sends_total,
        }
    }

    /// Whether another send may go out at `now` (claims it in a run bounded by messages).
    pub fn may_send(&self, now: Instant) -> bool {
        match (self.send_until, self.sends_total) {
            (Some(until), _) => now < until,
            (None, Some(total)) => self.sends_claimed.fetch_add(1, Ordering::Relaxed) < total,
            (None, None) => false,
        }
    }

    /// Whether an answer arriving at `answered_at` counts towards throughput.
    pub fn in_window(&self, answered_at: Instant) -> bool {
        answered_at >= self.warmup_end && self.send_until.is_none_or(|until| answered_at < until)
    }

    /// Seconds of the measured window: up to `send_until`, or up to the last answer.
    pub fn measured_s(&self, last_answer: Option<Instant>) -> f64 {
        let window_end = match self.send_until {
            Some(until) => until,
            None => last_answer.unwrap_or(self.warmup_end).max(self.warmup_end),
        };
        window_end.duration_since(self.warmup_end).as_secs_f64()
    }

    /// Open loop: when connection `index` of `connections`, each sending every `interval`,
    /// should make its send number `send_index`. Connections take turns, evenly spread over
    /// one interval.
    pub fn scheduled_send(&self, interval: Duration, index: usize, connections: usize, send_index: u64) -> Instant {
        debug_assert!(index < connections, "connection {index} of {connections}");
        let first_send = self.started + interval * index as u32 / connections as u32;
        first_send + interval.mul_f64(send_index as f64)
    }

    /// `at` as microseconds since the Unix epoch, on this run's clock.
    pub fn epoch_us(&self, at: Instant) -> u64 {
        let since_start = at.saturating_duration_since(self.started).as_micros() as u64;
        let before_start = self.started.saturating_duration_since(at).as_micros() as u64;
        (self.started_epoch_us + since_start).saturating_sub(before_start)
    }
}

/// Microseconds since the Unix epoch now (wall clock: comparable across processes).
pub fn epoch_us_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |elapsed| elapsed.as_micros() as u64)
}

pub fn sleep_until(at: Instant) {
    let now = Instant::now();
    if at > now {
        std::thread::sleep(at - now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_bounded_by_messages_hands_out_whole_sends() {
        let timeline = Timeline::new(StopAfter::Messages(33), Duration::ZERO, 16);
        let granted = (0..10).filter(|_| timeline.may_send(Instant::now())).count();
        assert_eq!(granted, 3, "33 messages in 16-message sends are 3 sends");
    }

    #[test]
    fn a_timed_run_counts_answers_between_warmup_and_stop() {
        let timeline = Timeline::new(StopAfter::Seconds(2.0), Duration::from_secs(1), 1);
        let at = |seconds: f64| timeline.started + Duration::from_secs_f64(seconds);
        assert!(!timeline.in_window(at(0.5)));
        assert!(timeline.in_window(at(1.0)) && timeline.in_window(at(2.9)));
        assert!(!timeline.in_window(at(3.0)));
        assert!(timeline.may_send(at(2.9)) && !timeline.may_send(at(3.0)));
        assert_eq!(timeline.measured_s(Some(at(10.0))), 2.0);
    }

    #[test]
    fn the_open_loop_schedule_interleaves_connections() {
        let timeline = Timeline::new(StopAfter::Seconds(1.0), Duration::ZERO, 1);
        let interval = Duration::from_millis(4);
        let since_start = |index, send| timeline.scheduled_send(interval, index, 4, send) - timeline.started;
        assert_eq!(since_start(0, 0), Duration::ZERO);
        assert_eq!(since_start(1, 0), Duration::from_millis(1));
        assert_eq!(since_start(3, 2), Duration::from_millis(11));
    }

    #[test]
    fn instants_map_to_the_wall_clock_in_microseconds() {
        let timeline = Timeline::new(StopAfter::Seconds(1.0), Duration::ZERO, 1);
        let start = timeline.epoch_us(timeline.started);
        assert_eq!(timeline.epoch_us(timeline.started + Duration::from_millis(3)), start + 3_000);
        assert_eq!(timeline.epoch_us(timeline.started - Duration::from_millis(3)), start - 3_000);
        assert!(epoch_us_now().abs_diff(start) < 5_000_000, "the run's clock is the wall clock");
    }
}
