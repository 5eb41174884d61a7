//! Group events as state-log records: key = group name (empty for the stream's own events), value = a tag byte and the event's
//! fields (big-endian integers, length-prefixed byte strings). A record that does not decode
//! is reported, never guessed at.
use std::collections::{BTreeMap, BTreeSet};

use bytes::Bytes;

use super::group::{Consumer, Deliveries, Event, GroupConfig, Pending, StreamGroup};
use crate::state_log::StateRecord;
use crate::stream::id::StreamId;

const GROUP: u8 = 1;
const DESTROYED: u8 = 2;
const SET_ID: u8 = 3;
const CONFIGURED: u8 = 4;
const CONSUMER_CREATED: u8 = 5;
const CONSUMER_DELETED: u8 = 6;
const DELIVERED: u8 = 7;
const CLAIMED: u8 = 8;
const ACKED: u8 = 9;
const DROPPED: u8 = 10;
const ENTRIES_DELETED: u8 = 11;
const LAST_ID: u8 = 12;
const ENTRIES_ADDED: u8 = 13;
const MAX_DELETED_ID: u8 = 14;

#[derive(Default)]
struct Writer(Vec<u8>);

impl Writer {
    fn u8(&mut self, value: u8) {
        self.0.push(value);
    }
    fn u64(&mut self, value: u64) {
        self.0.extend_from_slice(&value.to_be_bytes());
    }
    fn i64(&mut self, value: i64) {
        self.0.extend_from_slice(&value.to_be_bytes());
    }
    fn id(&mut self, id: StreamId) {
        self.u64(id.ms);
        self.u64(id.seq);
    }
    fn bytes(&mut self, bytes: &[u8]) {
        self.u64(bytes.len() as u64);
        self.0.extend_from_slice(bytes);
    }
    fn optional(&mut self, value: Option<u64>) {
        match value {
            Some(value) => {
                self.u8(1);
                self.u64(value);
            }
            None => self.u8(0),
        }
    }
    fn ids(&mut self, ids: &[StreamId]) {
        self.u64(ids.len() as u64);
        for id in ids {
            self.id(*id);
        }
    }
    fn config(&mut self, config: &GroupConfig) {
        self.optional(config.max_deliveries);
        self.optional(config.visibility_ms);
        match &config.dead_letter {
            Some(stream) => {
                self.u8(1);
                self.bytes(stream);
            }
            None => self.u8(0),
        }
    }
}

struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn take(&mut self, count: usize) -> Option<&[u8]> {
        let taken = self.0.get(..count)?;
        self.0 = &self.0[count..];
        Some(taken)
    }
    fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|bytes| bytes[0])
    }
    fn u64(&mut self) -> Option<u64> {
        self.take(8).map(|bytes| u64::from_be_bytes(bytes.try_into().unwrap_or_default()))
    }
    fn i64(&mut self) -> Option<i64> {
        self.u64().map(|value| value as i64)
    }
    fn id(&mut self) -> Option<StreamId> {
        Some(StreamId::new(self.u64()?, self.u64()?))
    }
    fn bytes(&mut self) -> Option<Bytes> {
        let length = usize::try_from(self.u64()?).ok()?;
        self.take(length).map(Bytes::copy_from_slice)
    }
    fn optional(&mut self) -> Option<Option<u64>> {
        match self.u8()? {
            0 => Some(None),
            1 => Some(Some(self.u64()?)),
            _ => None,
        }
    }
    /// A count of items each at least `item_bytes` long: refused when the rest cannot hold them.
    fn count(&mut self, item_bytes: usize) -> Option<usize> {
        let count = usize::try_from(self.u64()?).ok()?;
        (count.checked_mul(item_bytes)? <= self.0.len()).then_some(count)
    }
    fn ids(&mut self) -> Option<Vec<StreamId>> {
        let count = self.count(16)?;
        (0..count).map(|_| self.id()).collect()
    }
    fn config(&mut self) -> Option<GroupConfig> {
        let max_deliveries = self.optional()?;
        let visibility_ms = self.optional()?;
        let dead_letter = match self.u8()? {
            0 => None,
            1 => Some(self.bytes()?),
            _ => return None,
        };
        Some(GroupConfig { max_deliveries, dead_letter, visibility_ms })
    }
}

/// Records written before 2026-12-06 kept a group's entries-read counter after its next
/// offset; it now follows from the offset (`StreamState::progress`). The field stays in the
/// format, written empty and skipped on reading, so logs from either side of the change read.
fn write_former_entries_read(out: &mut Writer) {
    out.optional(None);
}

fn skip_former_entries_read(input: &mut Reader<'_>) -> Option<()> {
    input.optional().map(|_| ())
}

fn write_group(out: &mut Writer, group: &StreamGroup) {
    out.id(group.last_delivered);
    out.i64(group.next_offset);
    write_former_entries_read(out);
    out.config(&group.config);
    out.u64(group.consumers.len() as u64);
    for (name, consumer) in &group.consumers {
        out.bytes(name);
        out.u64(consumer.seen_ms);
        out.optional(consumer.active_ms);
    }
    out.u64(group.pending.len() as u64);
    for (id, pending) in &group.pending {
        out.id(*id);
        out.i64(pending.offset);
        out.bytes(&pending.consumer);
        out.u64(pending.delivered_ms);
        out.u64(pending.deliveries);
    }
}

fn read_group(input: &mut Reader<'_>) -> Option<StreamGroup> {
    let (last_delivered, next_offset) = (input.id()?, input.i64()?);
    skip_former_entries_read(input)?;
    let mut group = StreamGroup {
        last_delivered,
        next_offset,
        config: input.config()?,
        consumers: BTreeMap::new(),
        pending: BTreeMap::new(),
    };
    for _ in 0..input.count(17)? {
        let name = input.bytes()?;
        let consumer = Consumer { seen_ms: input.u64()?, active_ms: input.optional()?, pending: BTreeSet::new() };
        group.consumers.insert(name, consumer);
    }
    for _ in 0..input.count(48)? {
        let id = input.id()?;
        let pending = Pending {
            offset: input.i64()?,
            consumer: input.bytes()?,
            delivered_ms: input.u64()?,
            deliveries: input.u64()?,
        };
        group.consumers.entry(pending.consumer.clone()).or_default().pending.insert(id);
        group.pending.insert(id, pending);
    }
    Some(group)
}

/// The record of `event`.
pub fn encode(event: &Event) -> StateRecord {
    let mut out = Writer::default();
    match event {
        Event::Group { group, .. } => {
            out.u8(GROUP);
            write_group(&mut out, group);
        }
        Event::Destroyed { .. } => out.u8(DESTROYED),
        Event::SetId { last_delivered, next_offset, .. } => {
            out.u8(SET_ID);
            out.id(*last_delivered);
            out.i64(*next_offset);
            write_former_entries_read(&mut out);
        }
        Event::Configured { config, .. } => {
            out.u8(CONFIGURED);
            out.config(config);
        }
        Event::ConsumerCreated { consumer, at_ms, .. } => {
            out.u8(CONSUMER_CREATED);
            out.bytes(consumer);
            out.u64(*at_ms);
        }
        Event::ConsumerDeleted { consumer, .. } => {
            out.u8(CONSUMER_DELETED);
            out.bytes(consumer);
        }
        Event::Delivered { consumer, at_ms, entries, advance, noack, .. } => {
            out.u8(DELIVERED);
            out.bytes(consumer);
            out.u64(*at_ms);
            out.u64(entries.len() as u64);
            for (id, offset) in entries {
                out.id(*id);
                out.i64(*offset);
            }
            match advance {
                Some((last, next_offset)) => {
                    out.u8(1);
                    out.id(*last);
                    out.i64(*next_offset);
                }
                None => out.u8(0),
            }
            out.u8(u8::from(*noack));
        }
        Event::Claimed { consumer, at_ms, delivered_ms, ids, deliveries, .. } => {
            out.u8(CLAIMED);
            out.bytes(consumer);
            out.u64(*at_ms);
            out.u64(*delivered_ms);
            out.ids(ids);
            match deliveries {
                Deliveries::Keep => out.u8(0),
                Deliveries::Increment => out.u8(1),
                Deliveries::Set(count) => {
                    out.u8(2);
                    out.u64(*count);
                }
            }
        }
        Event::Acked { ids, .. } => {
            out.u8(ACKED);
            out.ids(ids);
        }
        Event::Dropped { ids, .. } => {
            out.u8(DROPPED);
            out.ids(ids);
        }
        Event::EntriesDeleted { runs, max_id } => {
            out.u8(ENTRIES_DELETED);
            out.u64(runs.len() as u64);
            for (start, end) in runs {
                out.i64(*start);
                out.i64(*end);
            }
            out.id(*max_id);
        }
        Event::LastId { id, end } => {
            out.u8(LAST_ID);
            out.id(*id);
            out.i64(*end);
        }
        Event::EntriesAdded { added, end } => {
            out.u8(ENTRIES_ADDED);
            out.i64(*added);
            out.i64(*end);
        }
        Event::MaxDeletedId { id } => {
            out.u8(MAX_DELETED_ID);
            out.id(*id);
        }
    }
    (event.group_name().map_or_else(Vec::new, |name| name.to_vec()), Some(out.0))
}

/// The event of a record; `None` when it does not decode (a record from a newer version,
/// or damage the log's CRC did not catch).
pub fn decode(key: &[u8], value: Option<&[u8]>) -> Option<Event> {
    let name = Bytes::copy_from_slice(key);
    let mut input = Reader(value?);
    let event = match input.u8()? {
        GROUP => Event::Group { name, group: read_group(&mut input)? },
        DESTROYED => Event::Destroyed { name },
        SET_ID => {
            let (last_delivered, next_offset) = (input.id()?, input.i64()?);
            skip_former_entries_read(&mut input)?;
            Event::SetId { name, last_delivered, next_offset }
        }
        CONFIGURED => Event::Configured { name, config: input.config()? },
        CONSUMER_CREATED => Event::ConsumerCreated { name, consumer: input.bytes()?, at_ms: input.u64()? },
        CONSUMER_DELETED => Event::ConsumerDeleted { name, consumer: input.bytes()? },
        DELIVERED => {
            let consumer = input.bytes()?;
            let at_ms = input.u64()?;
            let count = input.count(24)?;
            let entries = (0..count).map(|_| Some((input.id()?, input.i64()?))).collect::<Option<Vec<_>>>()?;
            let advance = match input.u8()? {
                0 => None,
                1 => Some((input.id()?, input.i64()?)),
                _ => return None,
            };
            let noack = input.u8()? == 1;
            Event::Delivered { name, consumer, at_ms, entries, advance, noack }
        }
        CLAIMED => {
            let consumer = input.bytes()?;
            let at_ms = input.u64()?;
            let delivered_ms = input.u64()?;
            let ids = input.ids()?;
            let deliveries = match input.u8()? {
                0 => Deliveries::Keep,
                1 => Deliveries::Increment,
                2 => Deliveries::Set(input.u64()?),
                _ => return None,
            };
            Event::Claimed { name, consumer, at_ms, delivered_ms, ids, deliveries }
        }
        ACKED => Event::Acked { name, ids: input.ids()? },
        DROPPED => Event::Dropped { name, ids: input.ids()? },
        ENTRIES_DELETED if name.is_empty() => {
            let count = input.count(16)?;
            let runs = (0..count).map(|_| Some((input.i64()?, input.i64()?))).collect::<Option<Vec<_>>>()?;
            // Records written before the greatest deleted ID was kept end here.
            let max_id = if input.0.is_empty() { StreamId::MIN } else { input.id()? };
            Event::EntriesDeleted { runs, max_id }
        }
        LAST_ID if name.is_empty() => Event::LastId { id: input.id()?, end: input.i64()? },
        ENTRIES_ADDED if name.is_empty() => Event::EntriesAdded { added: input.i64()?, end: input.i64()? },
        MAX_DELETED_ID if name.is_empty() => Event::MaxDeletedId { id: input.id()? },
        _ => return None,
    };
    input.0.is_empty().then_some(event)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::queue::group::apply;

    fn name(text: &str) -> Bytes {
        Bytes::from(text.to_string())
    }

    fn every_event() -> Vec<Event> {
        let mut group = StreamGroup::new(
            StreamId::new(5, 1),
            9,
            GroupConfig { max_deliveries: Some(3), dead_letter: Some(name("jobs:dead")), visibility_ms: Some(30_000) },
        );
        let mut groups = BTreeMap::from([(name("g"), group.clone())]);
        apply(
            &mut groups,
            &Event::Delivered {
                name: name("g"),
                consumer: name("alice"),
                at_ms: 77,
                entries: vec![(StreamId::new(6, 0), 9)],
                advance: Some((StreamId::new(6, 0), 10)),
                noack: false,
            },
        );
        group = groups.remove(&name("g")).unwrap();
        vec![
            Event::Group { name: name("g"), group },
            Event::Destroyed { name: name("g") },
            Event::SetId { name: name("g"), last_delivered: StreamId::new(1, 2), next_offset: 3 },
            Event::Configured { name: name("g"), config: GroupConfig::default() },
            Event::ConsumerCreated { name: name("g"), consumer: name("bob"), at_ms: 12 },
            Event::ConsumerDeleted { name: name("g"), consumer: name("bob") },
            Event::Delivered {
                name: name("g"),
                consumer: name("bob"),
                at_ms: 1,
                entries: vec![(StreamId::new(1, 0), 4), (StreamId::new(1, 1), 5)],
                advance: None,
                noack: true,
            },
            Event::Claimed {
                name: name("g"),
                consumer: name("bob"),
                at_ms: 1,
                delivered_ms: 0,
                ids: vec![StreamId::new(1, 0)],
                deliveries: Deliveries::Set(4),
            },
            Event::Claimed {
                name: name("g"),
                consumer: name("bob"),
                at_ms: 1,
                delivered_ms: 1,
                ids: vec![],
                deliveries: Deliveries::Increment,
            },
            Event::Acked { name: name("g"), ids: vec![StreamId::new(1, 0), StreamId::MAX] },
            Event::Dropped { name: name("g"), ids: vec![StreamId::MIN] },
            Event::EntriesDeleted { runs: vec![(3, 4), (10, 20)], max_id: StreamId::new(20, 1) },
            Event::EntriesDeleted { runs: vec![], max_id: StreamId::MIN },
            Event::LastId { id: StreamId::new(1_700_000_000_000, 3), end: 42 },
            Event::EntriesAdded { added: 1_000, end: 42 },
            Event::MaxDeletedId { id: StreamId::new(7, 7) },
        ]
    }

    #[test]
    fn records_with_an_entries_read_counter_still_read() {
        let mut value = vec![SET_ID];
        value.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 2]);
        value.extend_from_slice(&3_i64.to_be_bytes());
        value.push(1);
        value.extend_from_slice(&7_u64.to_be_bytes());
        let expected = Event::SetId { name: name("g"), last_delivered: StreamId::new(1, 2), next_offset: 3 };
        assert_eq!(decode(b"g", Some(&value)), Some(expected));
    }

    #[test]
    fn every_event_round_trips() {
        for event in every_event() {
            let (key, value) = encode(&event);
            assert_eq!(decode(&key, value.as_deref()), Some(event));
        }
    }

    #[test]
    fn truncated_extended_and_unknown_records_are_refused() {
        for event in every_event() {
            let (key, value) = encode(&event);
            let value = value.unwrap();
            for cut in 0..value.len() {
                let decoded = decode(&key, Some(&value[..cut]));
                if let Event::EntriesDeleted { runs, .. } = &event {
                    if cut == value.len() - 16 {
                        // Without its trailing ID: a record written before it was kept.
                        let old = Event::EntriesDeleted { runs: runs.clone(), max_id: StreamId::MIN };
                        assert_eq!(decoded, Some(old));
                        continue;
                    }
                }
                assert_eq!(decoded, None, "{event:?} cut at {cut}");
            }
            let mut longer = value.clone();
            longer.push(0);
            assert_eq!(decode(&key, Some(&longer)), None);
        }
        assert_eq!(decode(b"g", Some(&[99])), None);
        assert_eq!(decode(b"g", None), None);
        // An absurd count does not allocate: it is checked against the bytes left.
        let mut absurd = vec![ACKED];
        absurd.extend_from_slice(&u64::MAX.to_be_bytes());
        assert_eq!(decode(b"g", Some(&absurd)), None);
    }
}
