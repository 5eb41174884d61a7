//! One consumer group of one stream. Commands read the state, decide the [`Event`]s (with
//! the time in them), persist them, then [`apply`] them: replaying the same events rebuilds
//! the same state after a restart.
use std::collections::{BTreeMap, BTreeSet};

use bytes::Bytes;

use crate::stream::deleted::DeletedEntries;
use crate::stream::id::StreamId;

/// Pending entries a group may hold; reading more new entries is refused past it.
pub const PENDING_PER_GROUP_MAX: usize = 100_000;
/// Consumers a group may have.
pub const CONSUMERS_PER_GROUP_MAX: usize = 10_000;

/// What sluice adds to Redis groups (`XGROUP CREATE ... MAXDELIVERIES n DEADLETTER s
/// VISIBILITY ms`, changed later with `XGROUP CONFIG`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GroupConfig {
    /// After this many deliveries, the next delivery attempt moves the entry to the
    /// dead-letter stream instead.
    pub max_deliveries: Option<u64>,
    /// Where dead entries go; `<key>:dlq` when not set.
    pub dead_letter: Option<Bytes>,
    /// `XREADGROUP >` also hands out entries pending longer than this.
    pub visibility_ms: Option<u64>,
}

/// An entry delivered and not yet acknowledged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pending {
    pub offset: i64,
    pub consumer: Bytes,
    pub delivered_ms: u64,
    pub deliveries: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Consumer {
    /// Last time it read or claimed (XINFO `seen-time`).
    pub seen_ms: u64,
    /// Last time it was given entries (XINFO `active-time`); `None`: never.
    pub active_ms: Option<u64>,
    pub pending: BTreeSet<StreamId>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StreamGroup {
    /// The last ID handed out by `XREADGROUP >`.
    pub last_delivered: StreamId,
    /// Where `XREADGROUP >` reads next in the log (XINFO's `entries-read` and `lag` follow
    /// from it: see `StreamState::progress`).
    pub next_offset: i64,
    pub config: GroupConfig,
    pub consumers: BTreeMap<Bytes, Consumer>,
    pub pending: BTreeMap<StreamId, Pending>,
}

/// XPENDING's summary form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingSummary {
    pub count: usize,
    pub first: Option<StreamId>,
    pub last: Option<StreamId>,
    pub per_consumer: Vec<(Bytes, usize)>,
}

/// How a claim changes an entry's delivery count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Deliveries {
    Keep,
    Increment,
    Set(u64),
}

/// A change to the groups of one stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A group's whole state: XGROUP CREATE, and every group in a snapshot.
    Group {
        name: Bytes,
        group: StreamGroup,
    },
    Destroyed {
        name: Bytes,
    },
    /// XGROUP SETID.
    SetId {
        name: Bytes,
        last_delivered: StreamId,
        next_offset: i64,
    },
    Configured {
        name: Bytes,
        config: GroupConfig,
    },
    ConsumerCreated {
        name: Bytes,
        consumer: Bytes,
        at_ms: u64,
    },
    ConsumerDeleted {
        name: Bytes,
        consumer: Bytes,
    },
    /// Entries given to `consumer` for the first time (or forced into the pending list by
    /// XCLAIM FORCE). `advance`: the group's new last delivered ID and read position.
    Delivered {
        name: Bytes,
        consumer: Bytes,
        at_ms: u64,
        entries: Vec<(StreamId, i64)>,
        advance: Option<(StreamId, i64)>,
        noack: bool,
    },
    /// Pending entries (re)delivered to `consumer`: history reads, XCLAIM, XAUTOCLAIM,
    /// visibility timeouts. `delivered_ms` is their new delivery time.
    Claimed {
        name: Bytes,
        consumer: Bytes,
        at_ms: u64,
        delivered_ms: u64,
        ids: Vec<StreamId>,
        deliveries: Deliveries,
    },
    /// XACK.
    Acked {
        name: Bytes,
        ids: Vec<StreamId>,
    },
    /// Taken off the pending list without an ack: moved to the dead-letter stream, or gone
    /// from the stream (trimmed) when a claim found them.
    Dropped {
        name: Bytes,
        ids: Vec<StreamId>,
    },
    /// XDEL (not a group's event: the stream's): these runs of offsets are deleted, the
    /// greatest of their IDs `max_id` (XINFO's max-deleted-entry-id; `0-0` in records written
    /// before it was kept). A snapshot holds every run at or after the stream's start, and the
    /// greatest ID ever deleted.
    EntriesDeleted {
        runs: Vec<(i64, i64)>,
        max_id: StreamId,
    },
    /// The stream's last ID (not a group's event), set by XSETID or recorded when trimming
    /// emptied the stream, and the log's end offset then: until an entry is appended after
    /// `end`, IDs handed out must be greater than `id`, also after a restart, whatever the log
    /// still holds.
    LastId {
        id: StreamId,
        end: i64,
    },
    /// The stream's entries-added counter (not a group's event), set by XSETID ENTRIESADDED:
    /// `added` when the log's end offset was `end`, and one more with each entry since. A
    /// copy of a stream made elsewhere holds fewer entries than its source ever added.
    EntriesAdded {
        added: i64,
        end: i64,
    },
    /// The stream's max-deleted-entry-id as XSETID MAXDELETEDID sets it, lower than the
    /// greatest ID XDEL deleted if so asked, as Redis allows.
    MaxDeletedId {
        id: StreamId,
    },
}

impl Event {
    /// The group the event changes; `None` for the stream's own events.
    pub fn group_name(&self) -> Option<&Bytes> {
        Some(match self {
            Event::Group { name, .. }
            | Event::Destroyed { name }
            | Event::SetId { name, .. }
            | Event::Configured { name, .. }
            | Event::ConsumerCreated { name, .. }
            | Event::ConsumerDeleted { name, .. }
            | Event::Delivered { name, .. }
            | Event::Claimed { name, .. }
            | Event::Acked { name, .. }
            | Event::Dropped { name, .. } => name,
            Event::EntriesDeleted { .. }
            | Event::LastId { .. }
            | Event::EntriesAdded { .. }
            | Event::MaxDeletedId { .. } => return None,
        })
    }
}

/// What a stream's group log holds: its groups and the entries XDEL deleted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StreamState {
    pub groups: BTreeMap<Bytes, StreamGroup>,
    pub deleted: DeletedEntries,
    /// The greatest ID XDEL ever deleted, also once trimming removed it.
    pub max_deleted_id: StreamId,
    /// The last ID XSETID set or trimming recorded, with the log's end offset then
    /// (`Event::LastId`); see `last_id_at`.
    pub last_id: Option<(StreamId, i64)>,
    /// What XSETID ENTRIESADDED set, with the log's end offset then (`Event::EntriesAdded`);
    /// see `entries_added_at`.
    pub entries_added: Option<(i64, i64)>,
}

/// Where a group stands in its stream (XINFO's `entries-read` and `lag`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    /// The stream's entries-added counter at the group's read position: how many entries
    /// were added before the next one it delivers.
    pub entries_read: u64,
    /// Entries in the stream the group has yet to be given (not deleted, not trimmed).
    pub lag: u64,
}

impl StreamState {
    pub fn apply(&mut self, event: &Event) {
        match event {
            Event::EntriesDeleted { runs, max_id } => {
                for (start, end) in runs {
                    self.deleted.insert_run(*start, *end);
                }
                self.max_deleted_id = self.max_deleted_id.max(*max_id);
            }
            Event::LastId { id, end } => self.last_id = Some((*id, *end)),
            Event::EntriesAdded { added, end } => self.entries_added = Some((*added, *end)),
            Event::MaxDeletedId { id } => self.max_deleted_id = *id,
            _ => apply(&mut self.groups, event),
        }
    }

    /// The stream's last ID, given its log's end offset and its newest record's ID: what
    /// XSETID set or trimming recorded while nothing was appended since, else the newest
    /// record's (never below what was recorded).
    pub fn last_id_at(&self, end: i64, newest: StreamId) -> StreamId {
        match self.last_id {
            Some((id, at)) if end <= at => id,
            Some((id, _)) => id.max(newest),
            None => newest,
        }
    }

    /// How many entries were ever added to the stream, given its log's end offset: the end
    /// offset (one offset per entry), shifted by what XSETID ENTRIESADDED set.
    pub fn entries_added_at(&self, end: i64) -> i64 {
        match self.entries_added {
            Some((added, at)) => added + (end - at),
            None => end,
        }
    }

    /// Where `group` stands in the stream whose log holds `start..end`. Exact, where Redis
    /// keeps a counter and answers no lag once deletions lie ahead of a group: the log knows
    /// every entry's position, and which were deleted.
    pub fn progress(&self, group: &StreamGroup, start: i64, end: i64) -> Progress {
        let from = group.next_offset.clamp(start, end.max(start));
        let deleted = self.deleted.count_in(from, end);
        let added_before = self.entries_added_at(end) - (end - from);
        Progress { entries_read: added_before.max(0) as u64, lag: (end - from - deleted).max(0) as u64 }
    }

    /// Events that rebuild this state from nothing; deleted entries below `log_start` (gone
    /// from the log) are left out.
    pub fn snapshot(&self, log_start: i64) -> Vec<Event> {
        let mut events: Vec<Event> =
            self.groups.iter().map(|(name, group)| Event::Group { name: name.clone(), group: group.clone() }).collect();
        let runs = self.deleted.runs_in(log_start, i64::MAX);
        if !runs.is_empty() || self.max_deleted_id != StreamId::MIN {
            events.push(Event::EntriesDeleted { runs, max_id: self.max_deleted_id });
        }
        if let Some((id, end)) = self.last_id {
            events.push(Event::LastId { id, end });
        }
        if let Some((added, end)) = self.entries_added {
            events.push(Event::EntriesAdded { added, end });
        }
        events
    }
}

/// Applies `event` to the groups of a stream. Events about a group that does not exist are
/// ignored (a replay after the group was destroyed).
pub fn apply(groups: &mut BTreeMap<Bytes, StreamGroup>, event: &Event) {
    if let Event::Group { name, group } = event {
        groups.insert(name.clone(), group.clone());
        return;
    }
    if let Event::Destroyed { name } = event {
        groups.remove(name);
        return;
    }
    let Some(group) = event.group_name().and_then(|name| groups.get_mut(name)) else {
        return;
    };
    match event {
        Event::Group { .. }
        | Event::Destroyed { .. }
        | Event::EntriesDeleted { .. }
        | Event::LastId { .. }
        | Event::EntriesAdded { .. }
        | Event::MaxDeletedId { .. } => {
            unreachable!("handled above")
        }
        Event::SetId { last_delivered, next_offset, .. } => {
            group.last_delivered = *last_delivered;
            group.next_offset = *next_offset;
        }
        Event::Configured { config, .. } => group.config = config.clone(),
        Event::ConsumerCreated { consumer, at_ms, .. } => {
            group
                .consumers
                .entry(consumer.clone())
                .or_insert_with(|| Consumer { seen_ms: *at_ms, ..Consumer::default() });
        }
        Event::ConsumerDeleted { consumer, .. } => {
            if let Some(gone) = group.consumers.remove(consumer) {
                for id in gone.pending {
                    group.pending.remove(&id);
                }
            }
        }
        Event::Delivered { consumer, at_ms, entries, advance, noack, .. } => {
            group.touch(consumer, *at_ms, !entries.is_empty());
            if !noack {
                for (id, offset) in entries {
                    group.release(id);
                    let pending =
                        Pending { offset: *offset, consumer: consumer.clone(), delivered_ms: *at_ms, deliveries: 1 };
                    group.pending.insert(*id, pending);
                    group.consumer_mut(consumer).pending.insert(*id);
                }
            }
            if let Some((last, next_offset)) = advance {
                group.last_delivered = group.last_delivered.max(*last);
                group.next_offset = group.next_offset.max(*next_offset);
            }
        }
        Event::Claimed { consumer, at_ms, delivered_ms, ids, deliveries, .. } => {
            group.touch(consumer, *at_ms, !ids.is_empty());
            for id in ids {
                let Some(pending) = group.pending.get(id).cloned() else { continue };
                if let Some(previous) = group.consumers.get_mut(&pending.consumer) {
                    previous.pending.remove(id);
                }
                let count = match deliveries {
                    Deliveries::Keep => pending.deliveries,
                    Deliveries::Increment => pending.deliveries + 1,
                    Deliveries::Set(count) => *count,
                };
                group.pending.insert(
                    *id,
                    Pending {
                        offset: pending.offset,
                        consumer: consumer.clone(),
                        delivered_ms: *delivered_ms,
                        deliveries: count,
                    },
                );
                group.consumer_mut(consumer).pending.insert(*id);
            }
        }
        Event::Acked { ids, .. } | Event::Dropped { ids, .. } => {
            for id in ids {
                group.release(id);
            }
        }
    }
}

impl StreamGroup {
    /// A new group whose `XREADGROUP >` starts after `last_delivered`, at `next_offset`.
    pub fn new(last_delivered: StreamId, next_offset: i64, config: GroupConfig) -> Self {
        Self { last_delivered, next_offset, config, ..Self::default() }
    }

    fn consumer_mut(&mut self, name: &Bytes) -> &mut Consumer {
        self.consumers.entry(name.clone()).or_default()
    }

    fn touch(&mut self, name: &Bytes, at_ms: u64, active: bool) {
        let consumer = self.consumer_mut(name);
        consumer.seen_ms = consumer.seen_ms.max(at_ms);
        if active {
            consumer.active_ms = Some(consumer.active_ms.unwrap_or(0).max(at_ms));
        }
    }

    /// Takes `id` off the pending list and its consumer's.
    fn release(&mut self, id: &StreamId) {
        if let Some(pending) = self.pending.remove(id) {
            if let Some(consumer) = self.consumers.get_mut(&pending.consumer) {
                consumer.pending.remove(id);
            }
        }
    }

    /// Pending entries idle for at least `min_idle_ms` at `now_ms`, oldest ID first, from
    /// `start` on, at most `count`.
    pub fn idle_pending(&self, start: StreamId, min_idle_ms: u64, now_ms: u64, count: usize) -> Vec<StreamId> {
        self.pending
            .range(start..)
            .filter(|(_, pending)| now_ms.saturating_sub(pending.delivered_ms) >= min_idle_ms)
            .take(count)
            .map(|(id, _)| *id)
            .collect()
    }

    /// Whether another delivery of `id` would exceed `MAXDELIVERIES` (it goes to the
    /// dead-letter stream instead).
    pub fn is_dead(&self, id: &StreamId) -> bool {
        match (self.config.max_deliveries, self.pending.get(id)) {
            (Some(max), Some(pending)) => pending.deliveries >= max,
            _ => false,
        }
    }

    /// The group without its consumers, and with only the pending entries of `ids`: what a
    /// command about those entries needs, costing as much as they do, not the whole list.
    pub fn view_of<'a>(&self, ids: impl IntoIterator<Item = &'a StreamId>) -> StreamGroup {
        StreamGroup {
            last_delivered: self.last_delivered,
            next_offset: self.next_offset,
            config: self.config.clone(),
            consumers: BTreeMap::new(),
            pending: ids.into_iter().filter_map(|id| Some((*id, self.pending.get(id)?.clone()))).collect(),
        }
    }

    /// `consumer`'s pending entries after `after`, at most `count`.
    pub fn consumer_pending_after(&self, consumer: &Bytes, after: StreamId, count: usize) -> Vec<(StreamId, Pending)> {
        let Some(consumer) = self.consumers.get(consumer) else {
            return Vec::new();
        };
        let Some(first) = after.successor() else {
            return Vec::new();
        };
        consumer
            .pending
            .range(first..)
            .take(count)
            .filter_map(|id| self.pending.get(id).map(|pending| (*id, pending.clone())))
            .collect()
    }

    /// XPENDING summary.
    pub fn pending_summary(&self) -> PendingSummary {
        let first = self.pending.keys().next().copied();
        let last = self.pending.keys().next_back().copied();
        let per_consumer = self
            .consumers
            .iter()
            .filter(|(_, consumer)| !consumer.pending.is_empty())
            .map(|(name, consumer)| (name.clone(), consumer.pending.len()))
            .collect();
        PendingSummary { count: self.pending.len(), first, last, per_consumer }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(text: &str) -> Bytes {
        Bytes::from(text.to_string())
    }

    fn id(ms: u64) -> StreamId {
        StreamId::new(ms, 0)
    }

    #[test]
    fn progress_counts_what_is_left_and_what_was_added_before() {
        let mut state = StreamState::default();
        let group = StreamGroup::new(StreamId::MIN, 2, GroupConfig::default());
        // Offsets 0..10, the group reads from 2: 8 left, 2 added before.
        let progress = state.progress(&group, 0, 10);
        assert_eq!((progress.entries_read, progress.lag), (2, 8));
        state.apply(&Event::EntriesDeleted { runs: vec![(4, 6), (0, 1)], max_id: id(5) });
        assert_eq!(state.progress(&group, 0, 10).lag, 6, "deleted entries ahead are not waiting");
        assert_eq!(state.progress(&group, 5, 10).lag, 4, "nor are trimmed ones");
        assert_eq!(state.progress(&group, 5, 10).entries_read, 5);
        // A copy holding 10 entries of a stream that added 25: XSETID ENTRIESADDED 25.
        state.apply(&Event::EntriesAdded { added: 25, end: 10 });
        assert_eq!(state.entries_added_at(10), 25);
        assert_eq!(state.entries_added_at(12), 27, "each entry since counts");
        assert_eq!(state.progress(&group, 0, 12).entries_read, 17);
        let done = StreamGroup::new(StreamId::MIN, 12, GroupConfig::default());
        assert_eq!(state.progress(&done, 0, 12), Progress { entries_read: 27, lag: 0 });
    }

    fn created() -> BTreeMap<Bytes, StreamGroup> {
        let mut groups = BTreeMap::new();
        apply(
            &mut groups,
            &Event::Group { name: name("g"), group: StreamGroup::new(StreamId::MIN, 0, GroupConfig::default()) },
        );
        groups
    }

    fn deliver(groups: &mut BTreeMap<Bytes, StreamGroup>, consumer: &str, at_ms: u64, ids: &[u64]) {
        let entries: Vec<(StreamId, i64)> = ids.iter().map(|ms| (id(*ms), *ms as i64)).collect();
        let advance = entries.last().map(|(last, offset)| (*last, offset + 1));
        apply(
            groups,
            &Event::Delivered { name: name("g"), consumer: name(consumer), at_ms, entries, advance, noack: false },
        );
    }

    #[test]
    fn delivery_adds_pending_entries_and_moves_the_group_on() {
        let mut groups = created();
        deliver(&mut groups, "alice", 100, &[1, 2, 3]);
        let group = &groups[&name("g")];
        assert_eq!(group.last_delivered, id(3));
        assert_eq!(group.next_offset, 4);
        assert_eq!(group.pending.len(), 3);
        assert_eq!(
            group.pending[&id(2)],
            Pending { offset: 2, consumer: name("alice"), delivered_ms: 100, deliveries: 1 }
        );
        assert_eq!(group.consumers[&name("alice")].pending.len(), 3);
        assert_eq!(group.consumers[&name("alice")].active_ms, Some(100));
    }

    #[test]
    fn noack_delivery_moves_on_without_pending_entries() {
        let mut groups = created();
        apply(
            &mut groups,
            &Event::Delivered {
                name: name("g"),
                consumer: name("c"),
                at_ms: 5,
                entries: vec![(id(1), 1)],
                advance: Some((id(1), 2)),
                noack: true,
            },
        );
        let group = &groups[&name("g")];
        assert!(group.pending.is_empty());
        assert_eq!(group.last_delivered, id(1));
    }

    #[test]
    fn acks_and_drops_remove_entries_from_both_lists() {
        let mut groups = created();
        deliver(&mut groups, "alice", 100, &[1, 2, 3]);
        apply(&mut groups, &Event::Acked { name: name("g"), ids: vec![id(1), id(9)] });
        apply(&mut groups, &Event::Dropped { name: name("g"), ids: vec![id(2)] });
        let group = &groups[&name("g")];
        assert_eq!(group.pending.keys().copied().collect::<Vec<_>>(), vec![id(3)]);
        assert_eq!(group.consumers[&name("alice")].pending.iter().copied().collect::<Vec<_>>(), vec![id(3)]);
    }

    #[test]
    fn claims_move_ownership_and_count_deliveries() {
        let mut groups = created();
        deliver(&mut groups, "alice", 100, &[1, 2]);
        let claim = |deliveries| Event::Claimed {
            name: name("g"),
            consumer: name("bob"),
            at_ms: 500,
            delivered_ms: 500,
            ids: vec![id(1)],
            deliveries,
        };
        apply(&mut groups, &claim(Deliveries::Increment));
        let group = &groups[&name("g")];
        assert_eq!(group.pending[&id(1)].consumer, name("bob"));
        assert_eq!(group.pending[&id(1)].deliveries, 2);
        assert_eq!(group.pending[&id(1)].delivered_ms, 500);
        assert!(!group.consumers[&name("alice")].pending.contains(&id(1)));
        assert!(group.consumers[&name("bob")].pending.contains(&id(1)));
        apply(&mut groups, &claim(Deliveries::Keep));
        assert_eq!(groups[&name("g")].pending[&id(1)].deliveries, 2);
        apply(&mut groups, &claim(Deliveries::Set(7)));
        assert_eq!(groups[&name("g")].pending[&id(1)].deliveries, 7);
    }

    #[test]
    fn idle_entries_and_dead_entries_are_found() {
        let mut groups = created();
        deliver(&mut groups, "alice", 100, &[1, 2]);
        deliver(&mut groups, "alice", 900, &[3]);
        let group = groups.get_mut(&name("g")).unwrap_or_else(|| unreachable!());
        assert_eq!(group.idle_pending(StreamId::MIN, 500, 1_000, 10), vec![id(1), id(2)]);
        assert_eq!(group.idle_pending(id(2), 500, 1_000, 10), vec![id(2)]);
        assert_eq!(group.idle_pending(StreamId::MIN, 500, 1_000, 1), vec![id(1)]);
        assert!(!group.is_dead(&id(1)));
        group.config.max_deliveries = Some(1);
        assert!(group.is_dead(&id(1)));
        assert!(!group.is_dead(&id(42)), "not pending, not dead");
    }

    #[test]
    fn deleting_a_consumer_drops_its_pending_entries() {
        let mut groups = created();
        deliver(&mut groups, "alice", 100, &[1]);
        deliver(&mut groups, "bob", 100, &[2]);
        apply(&mut groups, &Event::ConsumerDeleted { name: name("g"), consumer: name("alice") });
        let group = &groups[&name("g")];
        assert_eq!(group.pending.keys().copied().collect::<Vec<_>>(), vec![id(2)]);
        assert!(!group.consumers.contains_key(&name("alice")));
        let summary = group.pending_summary();
        assert_eq!((summary.count, summary.first, summary.last), (1, Some(id(2)), Some(id(2))));
        assert_eq!(summary.per_consumer, vec![(name("bob"), 1)]);
    }

    #[test]
    fn history_reads_see_own_entries_after_an_id() {
        let mut groups = created();
        deliver(&mut groups, "alice", 100, &[1, 2, 3]);
        deliver(&mut groups, "bob", 100, &[4]);
        let group = &groups[&name("g")];
        let ids: Vec<StreamId> =
            group.consumer_pending_after(&name("alice"), id(1), 10).into_iter().map(|(id, _)| id).collect();
        assert_eq!(ids, vec![id(2), id(3)]);
        assert!(group.consumer_pending_after(&name("carol"), StreamId::MIN, 10).is_empty());
    }

    #[test]
    fn events_for_a_destroyed_group_are_ignored() {
        let mut groups = created();
        apply(&mut groups, &Event::Destroyed { name: name("g") });
        deliver(&mut groups, "alice", 100, &[1]);
        assert!(groups.is_empty());
    }

    #[test]
    fn a_snapshot_rebuilds_groups_and_deleted_entries_after_the_start() {
        let mut state = StreamState { groups: created(), ..StreamState::default() };
        deliver(&mut state.groups, "alice", 100, &[1, 2, 3]);
        state.apply(&Event::EntriesDeleted { runs: vec![(1, 2), (5, 9)], max_id: StreamId::new(9, 0) });
        state.apply(&Event::EntriesDeleted { runs: vec![(2, 3)], max_id: StreamId::new(3, 0) });
        state.apply(&Event::LastId { id: StreamId::new(13, 0), end: 9 });
        state.apply(&Event::LastId { id: StreamId::new(12, 0), end: 9 });
        assert_eq!(state.last_id, Some((StreamId::new(12, 0), 9)), "the last one set (XSETID may lower it)");
        assert_eq!(state.last_id_at(9, StreamId::new(20, 0)), StreamId::new(12, 0), "above a deleted newest record");
        assert_eq!(state.last_id_at(10, StreamId::new(20, 0)), StreamId::new(20, 0), "an entry appended since");
        assert_eq!(state.last_id_at(10, StreamId::new(5, 0)), StreamId::new(12, 0), "never below what was set");
        assert_eq!(state.deleted.runs().collect::<Vec<_>>(), vec![(1, 3), (5, 9)]);
        assert_eq!(state.max_deleted_id, StreamId::new(9, 0), "the greatest, not the last");
        let mut rebuilt = StreamState::default();
        for event in state.snapshot(0) {
            rebuilt.apply(&event);
        }
        assert_eq!(rebuilt, state);
        let mut after_trim = StreamState::default();
        for event in state.snapshot(6) {
            after_trim.apply(&event);
        }
        assert_eq!(after_trim.deleted.runs().collect::<Vec<_>>(), vec![(6, 9)]);
        assert_eq!(after_trim.max_deleted_id, StreamId::new(9, 0));
        let mut all_trimmed = StreamState::default();
        for event in state.snapshot(100) {
            all_trimmed.apply(&event);
        }
        assert_eq!((all_trimmed.deleted.run_count(), all_trimmed.max_deleted_id), (0, StreamId::new(9, 0)));
        assert_eq!(all_trimmed.last_id, Some((StreamId::new(12, 0), 9)), "the last ID outlives every entry");
        assert_eq!(after_trim.groups, state.groups);
        // XSETID MAXDELETEDID may set it lower; a later XDEL raises it again.
        state.apply(&Event::MaxDeletedId { id: StreamId::new(2, 0) });
        assert_eq!(state.max_deleted_id, StreamId::new(2, 0));
        let mut rebuilt = StreamState::default();
        for event in state.snapshot(0) {
            rebuilt.apply(&event);
        }
        assert_eq!(rebuilt.max_deleted_id, StreamId::new(2, 0), "kept lower in a snapshot");
        state.apply(&Event::EntriesDeleted { runs: vec![(9, 10)], max_id: StreamId::new(4, 0) });
        assert_eq!(state.max_deleted_id, StreamId::new(4, 0));
    }
}
