//! When consumers that run next to producers are done: once they have read everything the
//! producers had acknowledged, or once nothing new has come for [`CONSUME_DRAIN_TIMEOUT`]
//! while entries are due. Shared by the RESP and JetStream consumer groups (`xreadgroup`) and
//! the Kafka consumers that follow a produce run (`produce --consumers`).
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use super::limits::CONSUME_DRAIN_TIMEOUT;

/// `target` while nobody knows how many entries are due yet.
pub const TARGET_UNKNOWN: u64 = u64::MAX;

/// What the consumers of one run have read, and what they are to read.
#[derive(Debug)]
pub struct Drain {
    read_total: AtomicU64,
    /// What the producers acknowledged once they are done (or a fixed count), else
    /// [`TARGET_UNKNOWN`].
    target: AtomicU64,
}

/// How one consumer notices that entries stopped coming.
#[derive(Debug, Clone, Copy)]
pub struct LastProgress {
    read_total: u64,
    at: Instant,
}

impl LastProgress {
    pub fn now() -> Self {
        Self { read_total: 0, at: Instant::now() }
    }
}

impl Drain {
    pub fn new(target: u64) -> Self {
        Self { read_total: AtomicU64::new(0), target: AtomicU64::new(target) }
    }

    pub fn add_read(&self, entries: u64) {
        self.read_total.fetch_add(entries, Ordering::Relaxed);
    }

    /// The producers are done: this many entries are due.
    pub fn set_target(&self, entries: u64) {
        self.target.store(entries, Ordering::Relaxed);
    }

    pub fn target(&self) -> u64 {
        self.target.load(Ordering::Relaxed)
    }

    /// Whether everything due is read, or nothing new came for too long while entries are due.
    pub fn done(&self, last_progress: &mut LastProgress) -> bool {
        let now = Instant::now();
        let read_total = self.read_total.load(Ordering::Relaxed);
        let target = self.target();
        if read_total >= target {
            return true;
        }
        if read_total != last_progress.read_total {
            *last_progress = LastProgress { read_total, at: now };
        }
        target != TARGET_UNKNOWN && now.duration_since(last_progress.at) >= CONSUME_DRAIN_TIMEOUT
    }

    /// What is wrong when the consumers read `read` of what the producers acknowledged.
    pub fn mismatch(&self, read: u64) -> Option<String> {
        let target = self.target();
        (read != target).then(|| {
            format!(
                "the consumers read {read} entries, the producers had {target} acknowledged (lost or extra entries)"
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn consumers_stop_when_everything_due_is_read_or_nothing_comes_for_too_long() {
        let drain = Drain::new(TARGET_UNKNOWN);
        drain.add_read(5);
        let mut last = LastProgress { read_total: 5, at: Instant::now() - CONSUME_DRAIN_TIMEOUT * 2 };
        assert!(!drain.done(&mut last), "nothing is due yet: keep reading however long it is quiet");
        drain.set_target(10);
        assert!(drain.done(&mut last), "entries are due and none came for too long");
        let mut last = LastProgress::now();
        assert!(!drain.done(&mut last));
        drain.add_read(5);
        assert!(drain.done(&mut last), "everything due is read");
        assert!(drain.mismatch(9).is_some_and(|message| message.contains("9 entries")));
        assert_eq!(drain.mismatch(10), None);
    }
}
