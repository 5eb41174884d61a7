//! Committed consumer offsets: the table a coordinator serves from, and the records of the
//! internal log that makes every acknowledged commit durable.
//!
//! The log is an ordinary partition of the internal `__consumer_offsets` topic; each record's
//! key says what changed and its value the new state (no value: deleted). Replaying the log
//! from its start rebuilds the table; the last record for a key wins.
//!
//! ```text
//! key   = version u8 (1) | kind u8 | group (u16 length + UTF-8) | [topic (u16 + UTF-8) | partition i32]
//! value = offset i64 | leader epoch i32 | commit timestamp ms i64 | metadata (u16 length + UTF-8)
//! kind 1: an offset commit (no value: that offset was deleted); kind 2: the group was deleted;
//! kind 3: the group's protocol type (key without topic; value = type, u16 length + UTF-8).
//! ```
//!
//! The protocol type ("consumer" for consumer groups) is what ListGroups and DescribeGroups show
//! for a group with no members; Kafka keeps it in its group metadata record, so after a restart
//! an emptied group still lists as a consumer group.
use std::collections::{BTreeMap, HashMap};

const RECORD_FORMAT_VERSION: u8 = 1;
const KIND_OFFSET: u8 = 1;
const KIND_GROUP_DELETED: u8 = 2;
const KIND_PROTOCOL_TYPE: u8 = 3;
/// Longest commit metadata string kept (Kafka's offset.metadata.max.bytes default is 4096).
pub const COMMIT_METADATA_BYTES_MAX: usize = 4096;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommittedOffset {
    pub offset: i64,
    pub leader_epoch: i32,
    pub commit_timestamp_ms: i64,
    pub metadata: String,
}

/// One change to the table, as stored in the internal log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OffsetRecord {
    Commit { group: String, topic: String, partition: i32, committed: CommittedOffset },
    DeleteOffset { group: String, topic: String, partition: i32 },
    DeleteGroup { group: String },
    ProtocolType { group: String, protocol_type: String },
}

fn put_string(out: &mut Vec<u8>, text: &str) {
    let bytes = &text.as_bytes()[..text.len().min(u16::MAX as usize)];
    out.extend_from_slice(&(bytes.len() as u16).to_be_bytes());
    out.extend_from_slice(bytes);
}

fn take<'a>(cursor: &mut &'a [u8], count: usize) -> Option<&'a [u8]> {
    let (head, tail) = (cursor.get(..count)?, cursor.get(count..)?);
    *cursor = tail;
    Some(head)
}

fn take_string(cursor: &mut &[u8]) -> Option<String> {
    let length = u16::from_be_bytes(take(cursor, 2)?.try_into().ok()?) as usize;
    String::from_utf8(take(cursor, length)?.to_vec()).ok()
}

fn take_i64(cursor: &mut &[u8]) -> Option<i64> {
    Some(i64::from_be_bytes(take(cursor, 8)?.try_into().ok()?))
}

fn take_i32(cursor: &mut &[u8]) -> Option<i32> {
    Some(i32::from_be_bytes(take(cursor, 4)?.try_into().ok()?))
}

impl OffsetRecord {
    /// The record's key and value (None: a tombstone).
    pub fn encode(&self) -> (Vec<u8>, Option<Vec<u8>>) {
        let mut key = vec![RECORD_FORMAT_VERSION];
        match self {
            Self::Commit { group, topic, partition, committed } => {
                key.push(KIND_OFFSET);
                put_string(&mut key, group);
                put_string(&mut key, topic);
                key.extend_from_slice(&partition.to_be_bytes());
                let mut value = Vec::with_capacity(24 + committed.metadata.len());
                value.extend_from_slice(&committed.offset.to_be_bytes());
                value.extend_from_slice(&committed.leader_epoch.to_be_bytes());
                value.extend_from_slice(&committed.commit_timestamp_ms.to_be_bytes());
                put_string(&mut value, &committed.metadata);
                (key, Some(value))
            }
            Self::DeleteOffset { group, topic, partition } => {
                key.push(KIND_OFFSET);
                put_string(&mut key, group);
                put_string(&mut key, topic);
                key.extend_from_slice(&partition.to_be_bytes());
                (key, None)
            }
            Self::DeleteGroup { group } => {
                key.push(KIND_GROUP_DELETED);
                put_string(&mut key, group);
                (key, None)
            }
            Self::ProtocolType { group, protocol_type } => {
                key.push(KIND_PROTOCOL_TYPE);
                put_string(&mut key, group);
                let mut value = Vec::with_capacity(2 + protocol_type.len());
                put_string(&mut value, protocol_type);
                (key, Some(value))
            }
        }
    }

    /// Parses a stored record; `None` if it is not one of ours (skipped on replay).
    pub fn decode(key: &[u8], value: Option<&[u8]>) -> Option<Self> {
        let mut cursor = key;
        if take(&mut cursor, 1)? != [RECORD_FORMAT_VERSION] {
            return None;
        }
        let kind = take(&mut cursor, 1)?[0];
        let group = take_string(&mut cursor)?;
        match kind {
            KIND_GROUP_DELETED => Some(Self::DeleteGroup { group }),
            KIND_PROTOCOL_TYPE => Some(Self::ProtocolType { group, protocol_type: take_string(&mut value?)? }),
            KIND_OFFSET => {
                let topic = take_string(&mut cursor)?;
                let partition = take_i32(&mut cursor)?;
                let Some(mut value) = value else {
                    return Some(Self::DeleteOffset { group, topic, partition });
                };
                let committed = CommittedOffset {
                    offset: take_i64(&mut value)?,
                    leader_epoch: take_i32(&mut value)?,
                    commit_timestamp_ms: take_i64(&mut value)?,
                    metadata: take_string(&mut value)?,
                };
                Some(Self::Commit { group, topic, partition, committed })
            }
            _ => None,
        }
    }
}

/// The committed offsets of the groups one coordinator shard serves, and the protocol types
/// of those that had members. Lives on that shard.
#[derive(Debug, Default)]
pub struct OffsetTable {
    groups: HashMap<String, BTreeMap<(String, i32), CommittedOffset>>,
    protocol_types: HashMap<String, String>,
}

impl OffsetTable {
    pub fn apply(&mut self, record: &OffsetRecord) {
        match record {
            OffsetRecord::Commit { group, topic, partition, committed } => {
                self.groups.entry(group.clone()).or_default().insert((topic.clone(), *partition), committed.clone());
            }
            OffsetRecord::DeleteOffset { group, topic, partition } => {
                if let Some(offsets) = self.groups.get_mut(group) {
                    offsets.remove(&(topic.clone(), *partition));
                    if offsets.is_empty() {
                        self.groups.remove(group);
                    }
                }
            }
            OffsetRecord::DeleteGroup { group } => {
                self.groups.remove(group);
                self.protocol_types.remove(group);
            }
            OffsetRecord::ProtocolType { group, protocol_type } => {
                self.protocol_types.insert(group.clone(), protocol_type.clone());
            }
        }
    }

    pub fn get(&self, group: &str, topic: &str, partition: i32) -> Option<&CommittedOffset> {
        self.groups.get(group)?.get(&(topic.to_string(), partition))
    }

    /// Every committed offset of `group`, ordered by topic and partition.
    pub fn group(&self, group: &str) -> impl Iterator<Item = (&(String, i32), &CommittedOffset)> {
        self.groups.get(group).into_iter().flat_map(|offsets| offsets.iter())
    }

    /// The protocol type last recorded for `group` ("" for a group that never had members).
    pub fn protocol_type(&self, group: &str) -> &str {
        self.protocol_types.get(group).map_or("", String::as_str)
    }

    /// Whether the table knows `group`: it has committed offsets or once had members.
    pub fn has_group(&self, group: &str) -> bool {
        self.groups.contains_key(group) || self.protocol_types.contains_key(group)
    }

    /// Every group the table knows, each once.
    pub fn group_ids(&self) -> impl Iterator<Item = &String> {
        let typed_only = self.protocol_types.keys().filter(|group| !self.groups.contains_key(*group));
        self.groups.keys().chain(typed_only)
    }

    /// Records that recreate the whole table (a snapshot, for compacting the log).
    pub fn snapshot(&self) -> Vec<OffsetRecord> {
        self.snapshot_of(|_| true)
    }

    /// Records that recreate the offsets and protocol types of the groups `include` picks.
    pub fn snapshot_of(&self, include: impl Fn(&str) -> bool) -> Vec<OffsetRecord> {
        let types = self.protocol_types.iter().filter(|(group, _)| include(group)).map(|(group, protocol_type)| {
            OffsetRecord::ProtocolType { group: group.clone(), protocol_type: protocol_type.clone() }
        });
        self.groups
            .iter()
            .filter(|(group, _)| include(group))
            .flat_map(|(group, offsets)| {
                offsets.iter().map(|((topic, partition), committed)| OffsetRecord::Commit {
                    group: group.clone(),
                    topic: topic.clone(),
                    partition: *partition,
                    committed: committed.clone(),
                })
            })
            .chain(types)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn commit(group: &str, topic: &str, partition: i32, offset: i64) -> OffsetRecord {
        OffsetRecord::Commit {
            group: group.to_string(),
            topic: topic.to_string(),
            partition,
            committed: CommittedOffset { offset, leader_epoch: -1, commit_timestamp_ms: 5, metadata: "m".to_string() },
        }
    }

    #[test]
    fn records_round_trip_through_key_and_value() {
        let records = [
            commit("g", "orders", 3, 42),
            OffsetRecord::DeleteOffset { group: "g".into(), topic: "orders".into(), partition: 3 },
            OffsetRecord::DeleteGroup { group: "g".into() },
            OffsetRecord::ProtocolType { group: "g".into(), protocol_type: "consumer".into() },
        ];
        for record in records {
            let (key, value) = record.encode();
            assert_eq!(OffsetRecord::decode(&key, value.as_deref()), Some(record));
        }
        assert_eq!(OffsetRecord::decode(&[9, 1, 0], None), None, "unknown version");
        let (key, value) = commit("g", "t", 0, 1).encode();
        assert_eq!(OffsetRecord::decode(&key[..key.len() - 1], value.as_deref()), None, "truncated key");
    }

    #[test]
    fn replay_keeps_the_last_state_of_each_key() {
        let mut table = OffsetTable::default();
        for record in [commit("a", "t", 0, 5), commit("a", "t", 0, 9), commit("a", "t", 1, 2), commit("b", "t", 0, 1)] {
            table.apply(&record);
        }
        assert_eq!(table.get("a", "t", 0).unwrap().offset, 9);
        table.apply(&OffsetRecord::DeleteOffset { group: "a".into(), topic: "t".into(), partition: 1 });
        assert!(table.get("a", "t", 1).is_none());
        table.apply(&OffsetRecord::DeleteGroup { group: "b".into() });
        assert!(!table.has_group("b"));
        let mut rebuilt = OffsetTable::default();
        for record in table.snapshot() {
            rebuilt.apply(&record);
        }
        assert_eq!(rebuilt.group("a").count(), 1);
        assert_eq!(rebuilt.get("a", "t", 0), table.get("a", "t", 0));
    }

    #[test]
    fn a_protocol_type_keeps_a_group_known_until_it_is_deleted() {
        let mut table = OffsetTable::default();
        table.apply(&OffsetRecord::ProtocolType { group: "members-only".into(), protocol_type: "consumer".into() });
        table.apply(&commit("both", "t", 0, 1));
        table.apply(&OffsetRecord::ProtocolType { group: "both".into(), protocol_type: "connect".into() });
        assert!(table.has_group("members-only"), "a group that had members and committed nothing");
        let mut ids: Vec<&String> = table.group_ids().collect();
        ids.sort();
        assert_eq!(ids, ["both", "members-only"], "each group once");
        assert_eq!(table.protocol_type("both"), "connect");
        assert_eq!(table.protocol_type("never-joined"), "");
        let mut rebuilt = OffsetTable::default();
        for record in table.snapshot() {
            rebuilt.apply(&record);
        }
        assert_eq!((rebuilt.protocol_type("members-only"), rebuilt.protocol_type("both")), ("consumer", "connect"));
        assert_eq!(rebuilt.get("both", "t", 0), table.get("both", "t", 0));
        table.apply(&OffsetRecord::DeleteGroup { group: "members-only".into() });
        assert!(!table.has_group("members-only"));
        assert_eq!(table.protocol_type("members-only"), "");
    }
}
