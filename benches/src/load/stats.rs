//! Counting while the load runs: latency histograms (microseconds), counters the progress line
//! reads every second, and the percentiles the report shows.
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde::Serialize;

use super::limits::{ERROR_SAMPLES_MAX, LATENCY_SIGNIFICANT_DIGITS, LATENCY_US_MAX, PROGRESS_INTERVAL};

/// An empty latency histogram, 1 us to [`LATENCY_US_MAX`].
pub fn latency_histogram() -> Histogram<u64> {
    match Histogram::new_with_bounds(1, LATENCY_US_MAX, LATENCY_SIGNIFICANT_DIGITS) {
        Ok(histogram) => histogram,
        Err(error) => unreachable!("constant histogram bounds are valid: {error}"),
    }
}

/// Records `latency`, clamped into the histogram's range (a slower answer counts as the max).
pub fn record_latency(histogram: &mut Histogram<u64>, latency: Duration) {
    record_latency_n(histogram, latency, 1);
}

/// Records `latency` `count` times (the records of one batch), clamped like
/// [`record_latency`].
pub fn record_latency_n(histogram: &mut Histogram<u64>, latency: Duration, count: u64) {
    let micros = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX).clamp(1, LATENCY_US_MAX);
    // Within the bounds, so only a count overflowing u64 could fail: it saturates instead.
    if histogram.record_n(micros, count).is_err() {
        histogram.saturating_record(micros);
    }
}

/// Percentiles of a latency histogram, in milliseconds.
#[derive(Debug, Clone, Copy, Serialize, PartialEq)]
pub struct LatencySummary {
    pub count: u64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub p99_9_ms: f64,
    pub max_ms: f64,
    pub mean_ms: f64,
}

impl LatencySummary {
    pub fn of(histogram: &Histogram<u64>) -> Self {
        let ms = |micros: u64| micros as f64 / 1_000.0;
        Self {
            count: histogram.len(),
            p50_ms: ms(histogram.value_at_quantile(0.50)),
            p90_ms: ms(histogram.value_at_quantile(0.90)),
            p99_ms: ms(histogram.value_at_quantile(0.99)),
            p99_9_ms: ms(histogram.value_at_quantile(0.999)),
            max_ms: ms(histogram.max()),
            mean_ms: histogram.mean() / 1_000.0,
        }
    }
}

/// Counters every connection adds to as answers arrive, read by the progress line.
#[derive(Debug)]
pub struct LiveCounters {
    pub messages: AtomicU64,
    pub payload_bytes: AtomicU64,
    pub errors: AtomicU64,
    /// Latencies since the last progress line, one histogram per connection so connections
    /// don't contend (the progress line takes each lock once a second).
    pub interval_latency: Vec<Mutex<Histogram<u64>>>,
    /// What went wrong, for the report: the first [`ERROR_SAMPLES_MAX`] of `errors`.
    error_samples: Mutex<Vec<String>>,
}

impl LiveCounters {
    pub fn new(connections: usize) -> Self {
        Self {
            messages: AtomicU64::new(0),
            payload_bytes: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            interval_latency: (0..connections).map(|_| Mutex::new(latency_histogram())).collect(),
            error_samples: Mutex::new(Vec::new()),
        }
    }

    /// Counts an error and keeps its description if it is one of the first few.
    pub fn note_error(&self, description: String) {
        self.errors.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut samples) = self.error_samples.lock() {
            if samples.len() < ERROR_SAMPLES_MAX {
                samples.push(description);
            }
        }
    }

    pub fn error_samples(&self) -> Vec<String> {
        self.error_samples.lock().map(|samples| samples.clone()).unwrap_or_default()
    }

    /// Records a latency into connection `index`'s histogram of the current progress interval.
    pub fn record_interval_latency(&self, index: usize, latency: Duration) {
        if let Some(Ok(mut histogram)) = self.interval_latency.get(index).map(Mutex::lock) {
            record_latency(&mut histogram, latency);
        }
    }

    pub fn add_acked(&self, messages: u64, payload_bytes: u64) {
        self.messages.fetch_add(messages, Ordering::Relaxed);
        self.payload_bytes.fetch_add(payload_bytes, Ordering::Relaxed);
    }

    /// Takes (and resets) the latencies since the last call.
    fn take_interval_latency(&self) -> Histogram<u64> {
        let mut merged = latency_histogram();
        for histogram in &self.interval_latency {
            if let Ok(mut histogram) = histogram.lock() {
                // Same bounds everywhere, so adding cannot fail.
                let _ = merged.add(&*histogram);
                histogram.reset();
            }
        }
        merged
    }
}

/// Prints one progress line on stderr every [`PROGRESS_INTERVAL`] until `stop` fires or its
/// sender is dropped. `what` names the activity ("produce", "consume").
pub fn print_progress(what: &str, counters: &LiveCounters, started: Instant, warmup: Duration, stop: Receiver<()>) {
    let mut last = (started, 0u64, 0u64);
    loop {
        match stop.recv_timeout(PROGRESS_INTERVAL) {
            Err(RecvTimeoutError::Timeout) => {}
            Ok(()) | Err(RecvTimeoutError::Disconnected) => return,
        }
        let now = Instant::now();
        let messages = counters.messages.load(Ordering::Relaxed);
        let bytes = counters.payload_bytes.load(Ordering::Relaxed);
        let seconds = now.duration_since(last.0).as_secs_f64().max(1e-9);
        // The phase the interval began in: the line covering the last second of the warm-up
        // says so.
        let phase = if last.0.duration_since(started) < warmup { "warm-up" } else { "measure" };
        let latency = counters.take_interval_latency();
        let latency = if latency.is_empty() {
            String::new()
        } else {
            let summary = LatencySummary::of(&latency);
            format!("  p50 {:.2} ms  p99 {:.2} ms  max {:.2} ms", summary.p50_ms, summary.p99_ms, summary.max_ms)
        };
        eprintln!(
            "[{:>6.1} s] {what} {phase}  {:>10} msgs/s  {:>8.1} MB/s{latency}  errors {}",
            now.duration_since(started).as_secs_f64(),
            thousands(((messages - last.1) as f64 / seconds) as u64),
            (bytes - last.2) as f64 / seconds / 1e6,
            counters.errors.load(Ordering::Relaxed),
        );
        last = (now, messages, bytes);
    }
}

/// `1234567` as `1,234,567`.
pub fn thousands(value: u64) -> String {
    let digits = value.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (index, digit) in digits.chars().enumerate() {
        if index > 0 && (digits.len() - index) % 3 == 0 {
            out.push(',');
        }
        out.push(digit);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_come_out_in_milliseconds() {
        let mut histogram = latency_histogram();
        for micros in 1..=1_000u64 {
            record_latency(&mut histogram, Duration::from_micros(micros * 10));
        }
        let summary = LatencySummary::of(&histogram);
        assert_eq!(summary.count, 1_000);
        assert!((summary.p50_ms - 5.0).abs() < 0.01, "{summary:?}");
        assert!((summary.p99_ms - 9.9).abs() < 0.01, "{summary:?}");
        assert!((summary.max_ms - 10.0).abs() < 0.01, "{summary:?}");
    }

    #[test]
    fn a_latency_beyond_the_range_counts_as_the_maximum() {
        let mut histogram = latency_histogram();
        record_latency(&mut histogram, Duration::from_secs(3_600));
        record_latency(&mut histogram, Duration::ZERO);
        assert_eq!(histogram.len(), 2);
        assert!(histogram.max() >= LATENCY_US_MAX - LATENCY_US_MAX / 1_000);
        assert_eq!(histogram.min(), 1);
    }

    #[test]
    fn thousands_are_separated() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1_000), "1,000");
        assert_eq!(thousands(1_234_567), "1,234,567");
    }
}
