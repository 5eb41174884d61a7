//! Deliveries of Redis stream groups, counted from the events their commands apply: first
//! deliveries (`XREADGROUP >`, NOACK included) and redeliveries of pending entries (history
//! reads `XREADGROUP ... 0`, XCLAIM, XAUTOCLAIM, visibility timeouts). A claim that keeps the
//! delivery count (JUSTID without RETRYCOUNT) hands out no entry and is not counted. Counts
//! start at zero when the broker starts, like every counter; replaying the group log does not
//! count.
use std::cell::RefCell;
use std::collections::HashMap;

use bytes::Bytes;
use sluice_engine::queue::group::{Deliveries, Event};

/// Deliveries of one group since the broker started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DeliveryCounts {
    /// Entries handed out for the first time.
    pub first: u64,
    /// Pending entries handed out again.
    pub again: u64,
    /// Entries moved to the dead-letter stream (past MAXDELIVERIES).
    pub dead_lettered: u64,
}

/// The delivery counts of one stream's groups, by group. Lives with the stream's groups on
/// the shard that owns the stream; never shared with another thread.
#[derive(Debug, Default)]
pub struct GroupDeliveries {
    counts: RefCell<HashMap<Bytes, DeliveryCounts>>,
}

impl GroupDeliveries {
    /// Counts the deliveries in `events`, which a command just applied.
    pub fn record(&self, events: &[Event]) {
        let mut counts = self.counts.borrow_mut();
        for event in events {
            match event {
                Event::Delivered { name, entries, advance: Some(_), .. } => {
                    counts.entry(name.clone()).or_default().first += entries.len() as u64;
                }
                Event::Claimed { name, ids, deliveries: Deliveries::Increment | Deliveries::Set(_), .. } => {
                    counts.entry(name.clone()).or_default().again += ids.len() as u64;
                }
                Event::Destroyed { name } => {
                    counts.remove(name);
                }
                _ => {}
            }
        }
    }

    /// Counts an entry of `group` moved to its dead-letter stream.
    pub fn record_dead_lettered(&self, group: &Bytes) {
        self.counts.borrow_mut().entry(group.clone()).or_default().dead_lettered += 1;
    }

    pub fn of(&self, group: &Bytes) -> DeliveryCounts {
        self.counts.borrow().get(group).copied().unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use sluice_engine::stream::id::StreamId;

    use super::*;

    fn group(name: &str) -> Bytes {
        Bytes::from(name.to_string())
    }

    fn delivered(name: &str, ids: &[u64], advance: bool) -> Event {
        let entries: Vec<(StreamId, i64)> = ids.iter().map(|ms| (StreamId::new(*ms, 0), *ms as i64)).collect();
        let advance = advance.then(|| entries.last().map(|(id, offset)| (*id, offset + 1))).flatten();
        Event::Delivered { name: group(name), consumer: group("alice"), at_ms: 1, entries, advance, noack: false }
    }

    fn claimed(name: &str, ids: &[u64], deliveries: Deliveries) -> Event {
        let ids = ids.iter().map(|ms| StreamId::new(*ms, 0)).collect();
        Event::Claimed { name: group(name), consumer: group("bob"), at_ms: 2, delivered_ms: 2, ids, deliveries }
    }

    #[test]
    fn deliveries_redeliveries_and_dead_letters_are_counted_per_group() {
        let deliveries = GroupDeliveries::default();
        deliveries.record(&[delivered("workers", &[1, 2, 3], true), delivered("audit", &[1], true)]);
        deliveries.record(&[claimed("workers", &[1, 2], Deliveries::Increment)]);
        deliveries.record(&[claimed("workers", &[3], Deliveries::Set(5))]);
        deliveries.record(&[claimed("workers", &[1, 2, 3], Deliveries::Keep)]);
        deliveries.record_dead_lettered(&group("audit"));
        assert_eq!(deliveries.of(&group("workers")), DeliveryCounts { first: 3, again: 3, dead_lettered: 0 });
        assert_eq!(deliveries.of(&group("audit")), DeliveryCounts { first: 1, again: 0, dead_lettered: 1 });
        assert_eq!(deliveries.of(&group("nobody")), DeliveryCounts::default());
    }

    #[test]
    fn a_forced_claim_counts_once_and_a_destroyed_group_starts_over() {
        let deliveries = GroupDeliveries::default();
        // XCLAIM FORCE: the entry joins the pending list (no advance), then is claimed.
        deliveries.record(&[delivered("workers", &[7], false), claimed("workers", &[7], Deliveries::Increment)]);
        assert_eq!(deliveries.of(&group("workers")), DeliveryCounts { first: 0, again: 1, dead_lettered: 0 });
        deliveries.record(&[Event::Destroyed { name: group("workers") }]);
        assert_eq!(deliveries.of(&group("workers")), DeliveryCounts::default());
    }
}
