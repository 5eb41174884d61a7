//! Redis stream consumer groups on the shard that owns the stream, and the entries XDEL
//! deleted from it (a stream's own state, kept in the same log).
//!
//! Each stream with groups has a group log, `<data>/topics/<topic>/stream-groups/` (a
//! `StateLog`) from its first group on, replayed into memory at start (`Shard::open_stream_groups`).
//! A command runs under the stream's group lock: it reads what it needs (entries from the
//! stream's partition, which is local), decides its events (`sluice_engine::queue`), applies
//! them and appends them to the group log in that order; then, outside the lock, it waits for
//! the fdatasync before answering. So every answered XREADGROUP, XACK, XCLAIM and group change
//! survives kill -9, and many clients share one fdatasync.
//!
//! Dead-lettering writes the entry to the dead-letter stream (durably, through that stream's
//! owner) before the group log drops it from the pending list: a crash in between delivers it
//! to the dead-letter stream twice rather than losing it.
use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::rc::Rc;

use bytes::Bytes;
use sluice_engine::partition::{Partition, PartitionError};
use sluice_engine::queue::codec;
use sluice_engine::queue::group::{
    Deliveries, Event, GroupConfig, PendingSummary, Progress, StreamGroup, StreamState, CONSUMERS_PER_GROUP_MAX,
    PENDING_PER_GROUP_MAX,
};
use sluice_engine::record::batch;
use sluice_engine::state_log::StateLog;
use sluice_engine::stream::deleted::DELETED_RUNS_PER_STREAM_MAX;
use sluice_engine::stream::entry::Entry;
use sluice_engine::stream::id::{IdRequest, StreamId};

use crate::compression::uncompressed_batch;
use crate::limits::RESP_REPLY_BYTES_MAX;
use crate::runtime::mesh::{NewEntry, ShardRequest, ShardResponse, StreamAddError};
use crate::runtime::shard::{now_ms, Shard};
use crate::runtime::ShardRef;

/// Directory of a stream's group log inside its topic directory.
pub const GROUP_LOG_DIR: &str = "stream-groups";
/// Bytes read per step when looking up entries by offset.
const ENTRY_READ_BYTES: usize = 256 << 10;
/// Suffix of the default dead-letter stream (`<key>:dlq`).
pub const DEAD_LETTER_SUFFIX: &str = ":dlq";

/// Where a group starts reading: after the stream's last entry (`$`) or after an ID.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartId {
    Last,
    After(StreamId),
}

/// One change of XGROUP CONFIG (and of CREATE's extra options).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigChange {
    MaxDeliveries(Option<u64>),
    DeadLetter(Option<Bytes>),
    VisibilityMs(Option<u64>),
}

pub fn change_config(config: &mut GroupConfig, change: &ConfigChange) {
    match change {
        ConfigChange::MaxDeliveries(value) => config.max_deliveries = *value,
        ConfigChange::DeadLetter(value) => config.dead_letter = value.clone(),
        ConfigChange::VisibilityMs(value) => config.visibility_ms = *value,
    }
}

#[derive(Clone, Default)]
pub struct ClaimOptions {
    /// New delivery time (TIME, or now minus IDLE); `None`: now.
    pub delivered_ms: Option<u64>,
    pub retry_count: Option<u64>,
    pub force: bool,
    pub just_id: bool,
    /// LASTID: the group's last delivered ID moves up to this one if it is behind.
    pub last_id: Option<StreamId>,
    /// Bytes of fields the claimed entries may take; past it the rest are left as they are
    /// (their IDs from the first one left out come back as the answer's `next`).
    pub budget: ReplyBudget,
}

/// What is left of a reply's `RESP_REPLY_BYTES_MAX` when one XREADGROUP reads several streams:
/// bytes of fields, and whether the reply holds no entry yet (then one entry goes in whatever
/// its size, so a consumer always progresses).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplyBudget {
    pub bytes_left: usize,
    pub first: bool,
}

impl Default for ReplyBudget {
    fn default() -> Self {
        Self::whole()
    }
}

impl ReplyBudget {
    /// No limit (the entries are not sent: claims with JUSTID).
    fn unlimited() -> Self {
        Self { bytes_left: usize::MAX, first: true }
    }

    /// A whole reply's budget.
    pub fn whole() -> Self {
        Self { bytes_left: RESP_REPLY_BYTES_MAX, first: true }
    }

    /// Whether an entry bringing the bytes taken to `bytes` fits, with `taken` entries taken.
    fn fits(&self, bytes: usize, taken: usize) -> bool {
        bytes <= self.bytes_left || (self.first && taken == 0)
    }

    /// What is left once `entries` went into the reply (`None`: an ID without its entry).
    pub fn after(self, entries: &[(StreamId, Option<Entry>)]) -> Self {
        let present = entries.iter().filter_map(|(_, entry)| entry.as_ref());
        let bytes: usize = present.clone().map(|entry| crate::resp::streams::fields_bytes(&entry.fields)).sum();
        Self { bytes_left: self.bytes_left.saturating_sub(bytes), first: self.first && present.count() == 0 }
    }
}

#[derive(Clone)]
pub enum GroupCall {
    Create {
        group: Bytes,
        start: StartId,
        config: Vec<ConfigChange>,
    },
    SetId {
        group: Bytes,
        start: StartId,
    },
    Configure {
        group: Bytes,
        changes: Vec<ConfigChange>,
    },
    Destroy {
        group: Bytes,
    },
    CreateConsumer {
        group: Bytes,
        consumer: Bytes,
    },
    DeleteConsumer {
        group: Bytes,
        consumer: Bytes,
    },
    /// `XREADGROUP ... >`: at most `count` entries and `budget` bytes of fields.
    ReadNew {
        group: Bytes,
        consumer: Bytes,
        count: usize,
        noack: bool,
        budget: ReplyBudget,
    },
    /// `XREADGROUP ... <id>`: the consumer's own pending entries after `after`, as many and
    /// as large as for `ReadNew`.
    ReadHistory {
        group: Bytes,
        consumer: Bytes,
        after: StreamId,
        count: usize,
        budget: ReplyBudget,
    },
    Ack {
        group: Bytes,
        ids: Vec<StreamId>,
    },
    /// XSETID: the stream's last ID becomes `id` (at least its newest entry's), and its
    /// entries-added counter and max-deleted-entry-id those given.
    SetLastId {
        id: StreamId,
        entries_added: Option<i64>,
        max_deleted: Option<StreamId>,
    },
    /// XTRIM and XADD's trimming with DELREF or ACKED: moves the stream's start to `to`, or
    /// (ACKED) to the first entry some group still needs if that is earlier; DELREF
    /// acknowledges in every group the entries trimmed away.
    Trim {
        to: i64,
        references: References,
    },
    /// XDEL, XDELEX and XACKDEL (acknowledging in `ack` first): deletes the entries of `ids`,
    /// doing with the groups' references to them what `references` says.
    Delete {
        ack: Option<Bytes>,
        ids: Vec<StreamId>,
        references: References,
    },
    PendingSummary {
        group: Bytes,
    },
    PendingRange {
        group: Bytes,
        first: StreamId,
        last: StreamId,
        count: usize,
        consumer: Option<Bytes>,
        min_idle_ms: u64,
    },
    Claim {
        group: Bytes,
        consumer: Bytes,
        min_idle_ms: u64,
        ids: Vec<StreamId>,
        options: ClaimOptions,
    },
    AutoClaim {
        group: Bytes,
        consumer: Bytes,
        min_idle_ms: u64,
        start: StreamId,
        count: usize,
        just_id: bool,
    },
    InfoGroups,
    /// XINFO STREAM: how many groups, and the greatest ID XDEL deleted.
    InfoStream,
    InfoConsumers {
        group: Bytes,
    },
    /// XINFO STREAM FULL: every group with its oldest `pending_max` pending entries, and
    /// every consumer with its oldest `pending_max`.
    InfoFull {
        pending_max: usize,
    },
}

/// One XPENDING extended line.
pub struct PendingLine {
    pub id: StreamId,
    pub consumer: Bytes,
    pub idle_ms: u64,
    pub deliveries: u64,
}

pub struct GroupInfo {
    pub name: Bytes,
    pub consumers: usize,
    pub pending: usize,
    pub last_delivered: StreamId,
    pub progress: Progress,
    pub config: GroupConfig,
}

impl GroupInfo {
    fn of(name: &Bytes, group: &StreamGroup, progress: Progress) -> Self {
        GroupInfo {
            name: name.clone(),
            consumers: group.consumers.len(),
            pending: group.pending.len(),
            last_delivered: group.last_delivered,
            progress,
            config: group.config.clone(),
        }
    }
}

pub struct ConsumerInfo {
    pub name: Bytes,
    pub pending: usize,
    pub idle_ms: u64,
    pub inactive_ms: Option<u64>,
}

/// A pending entry as XINFO STREAM FULL shows it: when it was last delivered (ms since the
/// epoch) and how often.
pub struct PendingDelivery {
    pub id: StreamId,
    pub delivered_ms: u64,
    pub deliveries: u64,
}

/// A consumer as XINFO STREAM FULL shows it.
pub struct ConsumerFull {
    pub name: Bytes,
    pub seen_ms: u64,
    pub active_ms: Option<u64>,
    pub pending_count: usize,
    pub pending: Vec<PendingDelivery>,
}

/// A group as XINFO STREAM FULL shows it: its pending entries (with their consumers) and its
/// consumers, each list cut at the call's `pending_max`.
pub struct GroupFull {
    pub info: GroupInfo,
    pub pending: Vec<(PendingDelivery, Bytes)>,
    pub consumers: Vec<ConsumerFull>,
}

/// What deleting entries does with the groups' references to them (Redis 8.2's XDELEX,
/// XACKDEL and their KEEPREF, DELREF and ACKED).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum References {
    /// Left as they are (XDEL): a group's pending entry may point at a deleted entry.
    #[default]
    Keep,
    /// Acknowledged in every group.
    Delete,
    /// An entry still pending in a group, or not delivered by every group yet, is not deleted.
    Acked,
}

pub enum GroupAnswer {
    Done,
    Count(i64),
    /// One code per requested ID (XDELEX, XACKDEL): 1 deleted, -1 no such entry, 2 kept
    /// because a group still needs it.
    Codes(Vec<i64>),
    /// The stream's start offset after a trim.
    Trimmed {
        start: i64,
    },
    /// Entries, or just their IDs (`None` fields: XCLAIM JUSTID), or IDs whose entry is gone.
    Entries(Vec<(StreamId, Option<Entry>)>),
    Summary(PendingSummary),
    Pending(Vec<PendingLine>),
    AutoClaimed {
        next: StreamId,
        entries: Vec<(StreamId, Option<Entry>)>,
        deleted: Vec<StreamId>,
    },
    Groups(Vec<GroupInfo>),
    Stream {
        groups: usize,
        max_deleted_id: StreamId,
        /// The stream's last ID (see `StreamGroups::last_id`).
        last_id: StreamId,
        /// How many entries were ever added (`StreamState::entries_added_at`).
        entries_added: i64,
    },
    Consumers(Vec<ConsumerInfo>),
    Full(Vec<GroupFull>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GroupError {
    NoGroup,
    BusyGroup,
    NoStream,
    PendingFull,
    TooManyConsumers,
    TooManyDeletedRuns,
    Storage(String),
    /// A command's arguments do not fit the stream (the reply's text).
    Refused(String),
}

impl From<PartitionError> for GroupError {
    fn from(error: PartitionError) -> Self {
        GroupError::Storage(error.to_string())
    }
}

/// The groups of one stream, on its owner shard.
pub struct StreamGroups {
    key: Bytes,
    partition: Rc<Partition>,
    log: StateLog,
    state: RefCell<StreamState>,
    /// Held from reading the state to appending the events (never across the fsync wait).
    order: glommio::sync::Semaphore,
    /// Deliveries since start, by group (for metrics).
    deliveries: crate::metrics::GroupDeliveries,
}

impl StreamGroups {
    /// Opens the stream's group log and replays it.
    pub async fn open(shard: &Shard, topic: &str, partition: Rc<Partition>) -> Result<Self, String> {
        let dir = shard.config.data_dir.join("topics").join(topic).join(GROUP_LOG_DIR);
        let log = StateLog::open(&dir, shard.config.offsets_compaction_bytes)
            .await
            .map_err(|error| format!("cannot open the group log {}: {error}", dir.display()))?;
        let mut state = StreamState::default();
        let mut unreadable = 0usize;
        let replayed = log
            .replay(|key, value| match codec::decode(key, value) {
                Some(event) => state.apply(&event),
                None => unreadable += 1,
            })
            .await
            .map_err(|error| format!("cannot replay the group log {}: {error}", dir.display()))?;
        if unreadable > 0 {
            tracing::warn!(dir = %dir.display(), unreadable, "skipped unreadable group log records");
        }
        if replayed > 0 {
            let (groups, deleted_runs) = (state.groups.len(), state.deleted.run_count());
            tracing::info!(stream = topic, groups, deleted_runs, records = replayed, "stream groups recovered");
        }
        Ok(Self {
            key: Bytes::from(topic.to_string()),
            partition,
            log,
            state: RefCell::new(state),
            order: glommio::sync::Semaphore::new(1),
            deliveries: crate::metrics::GroupDeliveries::default(),
        })
    }

    pub async fn close(&self) {
        self.log.close().await;
    }

    /// Each group's pending entries, consumers and dead-letter stream (for metrics). Walks the
    /// pending lists to find the oldest delivery: a scrape's cost, not a command's.
    pub fn stats(&self, now_ms: u64) -> Vec<crate::metrics::StreamGroupStats> {
        let stream = String::from_utf8_lossy(&self.key).into_owned();
        self.state
            .borrow()
            .groups
            .iter()
            .map(|(name, group)| {
                let oldest_delivery = group.pending.values().map(|pending| pending.delivered_ms).min();
                crate::metrics::StreamGroupStats {
                    stream: stream.clone(),
                    group: String::from_utf8_lossy(name).into_owned(),
                    pending: group.pending.len(),
                    oldest_pending_idle_ms: oldest_delivery.map_or(0, |delivered| now_ms.saturating_sub(delivered)),
                    consumers: group.consumers.len(),
                    dead_letter: self.dead_letter_stream(&group.config),
                    deliveries: self.deliveries.of(name),
                    pending_deliveries_max: group.pending.values().map(|pending| pending.deliveries).max().unwrap_or(0),
                }
            })
            .collect()
    }

    /// Where entries of a group with `config` go after too many deliveries.
    fn dead_letter_stream(&self, config: &GroupConfig) -> String {
        match &config.dead_letter {
            Some(stream) => String::from_utf8_lossy(stream).into_owned(),
            None => format!("{}{DEAD_LETTER_SUFFIX}", String::from_utf8_lossy(&self.key)),
        }
    }

    /// Runs one group command: decide under the lock, then wait for durability.
    pub async fn handle(&self, shard: &ShardRef, call: GroupCall) -> Result<GroupAnswer, GroupError> {
        let Ok(permit) = self.order.acquire_permit(1).await else {
            return Err(GroupError::Storage("the stream's groups are closed".to_string()));
        };
        let (events, answer) = self.decide(shard, call).await?;
        self.deliveries.record(&events);
        let appended = if events.is_empty() {
            None
        } else {
            {
                let mut state = self.state.borrow_mut();
                for event in &events {
                    state.apply(event);
                }
            }
            let records: Vec<_> = events.iter().map(codec::encode).collect();
            Some(self.log.append(&records).await?)
        };
        if self.log.wants_compaction() {
            let snapshot: Vec<_> =
                self.state.borrow().snapshot(self.partition.log_start_offset()).iter().map(codec::encode).collect();
            match self.log.compact(&snapshot).await {
                Ok(deleted) => {
                    tracing::info!(groups = snapshot.len(), deleted_segments = deleted, "group log compacted")
                }
                Err(error) => tracing::warn!(%error, "compacting a group log failed"),
            }
        }
        drop(permit);
        if let Some(appended) = appended {
            self.log.wait_durable(&appended).await?;
        }
        Ok(answer)
    }

    /// What `read` makes of the group `name`, borrowed in place: a group may hold 100,000
    /// pending entries, and cloning it made every command cost as much (an XACK took 7 ms with
    /// 90,000 pending, 0.7 ms with 100).
    fn with_group<T>(&self, name: &Bytes, read: impl FnOnce(&StreamGroup) -> T) -> Result<T, GroupError> {
        self.state.borrow().groups.get(name).map(read).ok_or(GroupError::NoGroup)
    }

    fn is_deleted(&self, offset: i64) -> bool {
        self.state.borrow().deleted.contains(offset)
    }

    /// The runs of deleted offsets in `from..to`.
    pub fn deleted_runs(&self, from: i64, to: i64) -> Vec<(i64, i64)> {
        self.state.borrow().deleted.runs_in(from, to)
    }

    async fn decide(&self, shard: &ShardRef, call: GroupCall) -> Result<(Vec<Event>, GroupAnswer), GroupError> {
        let now = now_ms().max(0) as u64;
        match call {
            GroupCall::Create { group, start, config } => {
                if self.state.borrow().groups.contains_key(&group) {
                    return Err(GroupError::BusyGroup);
                }
                let (last, next_offset) = self.start_position(start).await?;
                let mut group_config = GroupConfig::default();
                for change in &config {
                    change_config(&mut group_config, change);
                }
                let state = StreamGroup::new(last, next_offset, group_config);
                Ok((vec![Event::Group { name: group, group: state }], GroupAnswer::Done))
            }
            GroupCall::SetId { group, start } => {
                self.with_group(&group, |_| ())?;
                let (last, next_offset) = self.start_position(start).await?;
                let event = Event::SetId { name: group, last_delivered: last, next_offset };
                Ok((vec![event], GroupAnswer::Done))
            }
            GroupCall::Configure { group, changes } => {
                let mut config = self.with_group(&group, |state| state.config.clone())?;
                for change in &changes {
                    change_config(&mut config, change);
                }
                Ok((vec![Event::Configured { name: group, config }], GroupAnswer::Done))
            }
            GroupCall::Destroy { group } => {
                if !self.state.borrow().groups.contains_key(&group) {
                    return Ok((Vec::new(), GroupAnswer::Count(0)));
                }
                Ok((vec![Event::Destroyed { name: group }], GroupAnswer::Count(1)))
            }
            GroupCall::CreateConsumer { group, consumer } => {
                let (known, consumers) =
                    self.with_group(&group, |state| (state.consumers.contains_key(&consumer), state.consumers.len()))?;
                if known {
                    return Ok((Vec::new(), GroupAnswer::Count(0)));
                }
                if consumers >= CONSUMERS_PER_GROUP_MAX {
                    return Err(GroupError::TooManyConsumers);
                }
                Ok((vec![Event::ConsumerCreated { name: group, consumer, at_ms: now }], GroupAnswer::Count(1)))
            }
            GroupCall::DeleteConsumer { group, consumer } => {
                let pending = self.with_group(&group, |state| {
                    state.consumers.get(&consumer).map(|found| found.pending.len() as i64)
                })?;
                let Some(pending) = pending else {
                    return Ok((Vec::new(), GroupAnswer::Count(0)));
                };
                Ok((vec![Event::ConsumerDeleted { name: group, consumer }], GroupAnswer::Count(pending)))
            }
            GroupCall::ReadNew { group, consumer, count, noack, budget } => {
                self.read_new(shard, group, consumer, count, noack, budget, now).await
            }
            GroupCall::ReadHistory { group, consumer, after, count, budget } => {
                let own = self.with_group(&group, |state| state.consumer_pending_after(&consumer, after, count))?;
                let (entries, cut) = self.entries_at(own.iter().map(|(_, pending)| pending.offset), budget).await?;
                let mut reply = Vec::with_capacity(own.len());
                for (id, pending) in &own {
                    if cut.is_some_and(|cut| pending.offset >= cut) {
                        break; // the rest is read by the next call, after the last ID given
                    }
                    reply.push((*id, entries.get(&pending.offset).cloned()));
                }
                let ids: Vec<StreamId> = reply.iter().map(|(id, _)| *id).collect();
                let event = Event::Claimed {
                    name: group,
                    consumer,
                    at_ms: now,
                    delivered_ms: now,
                    ids,
                    deliveries: Deliveries::Increment,
                };
                Ok((vec![event], GroupAnswer::Entries(reply)))
            }
            GroupCall::Ack { group, ids } => {
                let mut acked: Vec<StreamId> = self.with_group(&group, |state| {
                    ids.into_iter().filter(|id| state.pending.contains_key(id)).collect()
                })?;
                acked.sort_unstable();
                acked.dedup();
                let count = acked.len() as i64;
                let events = if acked.is_empty() { Vec::new() } else { vec![Event::Acked { name: group, ids: acked }] };
                Ok((events, GroupAnswer::Count(count)))
            }
            GroupCall::PendingSummary { group } => {
                Ok((Vec::new(), GroupAnswer::Summary(self.with_group(&group, StreamGroup::pending_summary)?)))
            }
            GroupCall::PendingRange { group, first, last, count, consumer, min_idle_ms } => {
                let lines = self.with_group(&group, |state| {
                    state
                        .pending
                        .range(first..=last)
                        .filter(|(_, pending)| consumer.as_ref().is_none_or(|name| *name == pending.consumer))
                        .filter(|(_, pending)| now.saturating_sub(pending.delivered_ms) >= min_idle_ms)
                        .take(count)
                        .map(|(id, pending)| PendingLine {
                            id: *id,
                            consumer: pending.consumer.clone(),
                            idle_ms: now.saturating_sub(pending.delivered_ms),
                            deliveries: pending.deliveries,
                        })
                        .collect()
                })?;
                Ok((Vec::new(), GroupAnswer::Pending(lines)))
            }
            GroupCall::Claim { group, consumer, min_idle_ms, ids, options } => {
                self.claim(shard, group, consumer, min_idle_ms, ids, options, now).await
            }
            GroupCall::AutoClaim { group, consumer, min_idle_ms, start, count, just_id } => {
                let candidates = self
                    .with_group(&group, |state| state.idle_pending(start, min_idle_ms, now, count.saturating_add(1)))?;
                let next = if candidates.len() > count { candidates[count] } else { StreamId::MIN };
                let chosen: Vec<StreamId> = candidates.into_iter().take(count).collect();
                let options = ClaimOptions { just_id, ..ClaimOptions::default() };
                let (events, claimed) = self.claim(shard, group, consumer, min_idle_ms, chosen, options, now).await?;
                let GroupAnswer::AutoClaimed { next: left_from, entries, deleted } = claimed else {
                    unreachable!("claim answers with AutoClaimed")
                };
                // Cut by the reply's byte limit: the scan goes on from the first entry left.
                let next = if left_from == StreamId::MIN { next } else { left_from };
                Ok((events, GroupAnswer::AutoClaimed { next, entries, deleted }))
            }
            GroupCall::InfoGroups => {
                let infos = self.state.borrow().groups.iter().map(|(name, group)| self.info_of(name, group)).collect();
                Ok((Vec::new(), GroupAnswer::Groups(infos)))
            }
            GroupCall::InfoStream => {
                let last_id = self.last_id().await?;
                let state = self.state.borrow();
                Ok((
                    Vec::new(),
                    GroupAnswer::Stream {
                        groups: state.groups.len(),
                        max_deleted_id: state.max_deleted_id,
                        last_id,
                        entries_added: state.entries_added_at(self.partition.high_watermark()),
                    },
                ))
            }
            GroupCall::InfoFull { pending_max } => {
                let delivery = |group: &StreamGroup, id: &StreamId| {
                    let pending = group.pending.get(id)?;
                    Some(PendingDelivery {
                        id: *id,
                        delivered_ms: pending.delivered_ms,
                        deliveries: pending.deliveries,
                    })
                };
                let full = self
                    .state
                    .borrow()
                    .groups
                    .iter()
                    .map(|(name, group)| GroupFull {
                        info: self.info_of(name, group),
                        pending: group
                            .pending
                            .iter()
                            .take(pending_max)
                            .filter_map(|(id, pending)| Some((delivery(group, id)?, pending.consumer.clone())))
                            .collect(),
                        consumers: group
                            .consumers
                            .iter()
                            .map(|(name, consumer)| ConsumerFull {
                                name: name.clone(),
                                seen_ms: consumer.seen_ms,
                                active_ms: consumer.active_ms,
                                pending_count: consumer.pending.len(),
                                pending: consumer
                                    .pending
                                    .iter()
                                    .take(pending_max)
                                    .filter_map(|id| delivery(group, id))
                                    .collect(),
                            })
                            .collect(),
                    })
                    .collect();
                Ok((Vec::new(), GroupAnswer::Full(full)))
            }
            GroupCall::InfoConsumers { group } => {
                let infos = self.with_group(&group, |state| {
                    state
                        .consumers
                        .iter()
                        .map(|(name, consumer)| ConsumerInfo {
                            name: name.clone(),
                            pending: consumer.pending.len(),
                            idle_ms: now.saturating_sub(consumer.seen_ms),
                            inactive_ms: consumer.active_ms.map(|active| now.saturating_sub(active)),
                        })
                        .collect()
                })?;
                Ok((Vec::new(), GroupAnswer::Consumers(infos)))
            }
            GroupCall::Delete { ack, ids, references } => self.delete(ack, ids, references).await,
            GroupCall::Trim { to, references } => self.trim(to, references).await,
            GroupCall::SetLastId { id, entries_added, max_deleted } => {
                self.set_last_id(shard, id, entries_added, max_deleted).await
            }
        }
    }

    /// XSETID (`GroupCall::SetLastId`), with Redis's checks: not below the newest entry, and
    /// not below the max-deleted-entry-id given, which the stream then takes as it is (lower
    /// than what XDEL deleted too, as in Redis). XADD's next IDs follow at once.
    async fn set_last_id(
        &self,
        shard: &ShardRef,
        id: StreamId,
        entries_added: Option<i64>,
        max_deleted: Option<StreamId>,
    ) -> Result<(Vec<Event>, GroupAnswer), GroupError> {
        let refused = |text: &str| Err(GroupError::Refused(text.to_string()));
        if let Some(top) = self.top_offset() {
            let (entries, _) = self.entries_at(std::iter::once(top), ReplyBudget::whole()).await?;
            if entries.get(&top).is_some_and(|entry| id < entry.id) {
                return refused("ERR The ID specified in XSETID is smaller than the target stream top item");
            }
        }
        let end = self.partition.high_watermark();
        let mut events = vec![Event::LastId { id, end }];
        if let Some(added) = entries_added {
            events.push(Event::EntriesAdded { added, end });
        }
        if let Some(max_deleted) = max_deleted {
            if id < max_deleted {
                return refused("ERR The ID specified in XSETID is smaller than the provided max_deleted_entry_id");
            }
            events.push(Event::MaxDeletedId { id: max_deleted });
        }
        let stream = (String::from_utf8_lossy(&self.key).into_owned(), crate::resp::streams::STREAM_PARTITION);
        shard.set_stream_last_id(&stream, id).await;
        Ok((events, GroupAnswer::Done))
    }

    /// What XINFO shows of a group, with where it stands in the stream now.
    fn info_of(&self, name: &Bytes, group: &StreamGroup) -> GroupInfo {
        let (start, end) = (self.partition.log_start_offset(), self.partition.high_watermark());
        GroupInfo::of(name, group, self.state.borrow().progress(group, start, end))
    }

    /// The offset of the stream's newest entry XDEL has not deleted (`None` when none is left).
    fn top_offset(&self) -> Option<i64> {
        let (start, end) = (self.partition.log_start_offset(), self.partition.high_watermark());
        let runs = self.state.borrow().deleted.runs_in(start, end);
        let top = match runs.last() {
            Some(&(run_start, run_end)) if run_end >= end => run_start - 1,
            _ => end - 1,
        };
        (top >= start).then_some(top)
    }

    /// Trimming that minds the groups (`GroupCall::Trim`). ACKED stops at the first offset
    /// some group needs: its oldest pending entry or the next it would deliver (with no group,
    /// every entry is needed, as in Redis). A trim that empties the stream records its last
    /// ID (`Event::LastId`): the log will no longer hold it.
    async fn trim(&self, to: i64, references: References) -> Result<(Vec<Event>, GroupAnswer), GroupError> {
        let start = self.partition.log_start_offset();
        let (to, mut events) = {
            let state = self.state.borrow();
            let to = match references {
                References::Acked => state
                    .groups
                    .values()
                    .flat_map(|group| group.pending.values().map(|pending| pending.offset).chain([group.next_offset]))
                    .min()
                    .map_or(start, |needed| to.min(needed)),
                References::Keep | References::Delete => to,
            };
            let events = match references {
                References::Delete => state
                    .groups
                    .iter()
                    .filter_map(|(name, group)| {
                        let ids: Vec<StreamId> = group
                            .pending
                            .iter()
                            .filter(|(_, pending)| pending.offset < to)
                            .map(|(id, _)| *id)
                            .collect();
                        (!ids.is_empty()).then(|| Event::Acked { name: name.clone(), ids })
                    })
                    .collect(),
                References::Keep | References::Acked => Vec::new(),
            };
            (to, events)
        };
        let end = self.partition.high_watermark();
        if to >= end {
            events.push(Event::LastId { id: self.last_id().await?, end });
        }
        let start = if to > start { self.partition.delete_records(to)? } else { start };
        Ok((events, GroupAnswer::Trimmed { start }))
    }

    /// XDEL, XDELEX, XACKDEL: deletes the entries of `ids` that exist and were not deleted yet,
    /// with one code per ID in the order asked (`GroupAnswer::Codes`). With `ack`, the IDs
    /// pending in that group are acknowledged first. `References::Delete` acknowledges them in
    /// every group too (also IDs no longer in the stream); `References::Acked` deletes only
    /// what no group needs any more: pending nowhere, and delivered by every group (so with no
    /// group, nothing). Acknowledgements and deletions are one write to the group log.
    async fn delete(
        &self,
        ack: Option<Bytes>,
        ids: Vec<StreamId>,
        references: References,
    ) -> Result<(Vec<Event>, GroupAnswer), GroupError> {
        if ack.as_ref().is_some_and(|group| !self.state.borrow().groups.contains_key(group)) {
            return Err(GroupError::NoGroup);
        }
        let mut distinct = ids.clone();
        distinct.sort_unstable();
        distinct.dedup();
        let mut found = BTreeMap::new();
        for id in distinct {
            // `find` skips deleted entries: what it finds is deleted now.
            if let Some(entry) = self.find(id).await? {
                found.insert(id, entry.offset);
            }
        }
        let state = self.state.borrow();
        let mut acked: BTreeMap<Bytes, BTreeSet<StreamId>> = BTreeMap::new();
        let mut deleted: BTreeMap<StreamId, i64> = BTreeMap::new();
        let mut codes = Vec::with_capacity(ids.len());
        for id in &ids {
            for (name, group) in &state.groups {
                let releases = match references {
                    References::Delete => true,
                    References::Keep | References::Acked => ack.as_ref() == Some(name),
                };
                if releases && group.pending.contains_key(id) {
                    acked.entry(name.clone()).or_default().insert(*id);
                }
            }
            let code = match found.get(id) {
                None => -1,
                Some(_) if deleted.contains_key(id) => -1, // asked twice: deleted the first time
                Some(&offset) => {
                    let needed = references == References::Acked
                        && (state.groups.is_empty()
                            || state.groups.iter().any(|(name, group)| {
                                group.last_delivered < *id
                                    || (group.pending.contains_key(id)
                                        && !acked.get(name).is_some_and(|ids| ids.contains(id)))
                            }));
                    if needed {
                        2
                    } else {
                        deleted.insert(*id, offset);
                        1
                    }
                }
            };
            codes.push(code);
        }
        let new_runs = deleted.values().filter(|offset| state.deleted.would_add_run(**offset)).count();
        if new_runs > 0 && state.deleted.run_count() + new_runs > DELETED_RUNS_PER_STREAM_MAX {
            return Err(GroupError::TooManyDeletedRuns);
        }
        let mut events: Vec<Event> =
            acked.into_iter().map(|(name, ids)| Event::Acked { name, ids: ids.into_iter().collect() }).collect();
        if let Some(max_id) = deleted.keys().next_back().copied() {
            let runs = deleted.values().map(|&offset| (offset, offset + 1)).collect();
            events.push(Event::EntriesDeleted { runs, max_id });
        }
        Ok((events, GroupAnswer::Codes(codes)))
    }

    /// The last delivered ID and read position of a group starting at `start`.
    async fn start_position(&self, start: StartId) -> Result<(StreamId, i64), GroupError> {
        match start {
            StartId::Last => {
                let end = self.partition.high_watermark();
                let last = self.last_id().await?;
                Ok((last, end))
            }
            // Exact, since XINFO's entries-read and lag count from it: the entries of `id`'s
            // millisecond up to `id` are stepped over.
            StartId::After(id) => Ok((id, self.first_offset_after(self.millisecond_start(id).await?, id).await?)),
        }
    }

    /// The first offset that may hold `id` or a later entry: the first record of `id`'s
    /// millisecond (the time index), not before the log's start.
    async fn millisecond_start(&self, id: StreamId) -> Result<i64, GroupError> {
        let timestamp = sluice_engine::stream::entry::timestamp_of(id);
        let offset = match self.partition.offset_for_timestamp(timestamp, uncompressed_batch).await? {
            Some((offset, _)) => offset,
            None => self.partition.high_watermark(),
        };
        Ok(offset.max(self.partition.log_start_offset()))
    }

    /// The offset of the first entry after `id` at or after `from`, or the log's end.
    async fn first_offset_after(&self, mut from: i64, id: StreamId) -> Result<i64, GroupError> {
        loop {
            let fetched = match self.partition.read(from, ENTRY_READ_BYTES).await {
                Ok(fetched) => fetched,
                Err(PartitionError::OffsetOutOfRange { .. }) => return Ok(self.partition.high_watermark()),
                Err(error) => return Err(error.into()),
            };
            let entries = crate::resp::streams::decode(&fetched.records);
            if let Some(after) = entries.iter().find(|entry| entry.offset >= from && entry.id > id) {
                return Ok(after.offset);
            }
            // On past what was read, batches that hold no entry (one that did not decode) too.
            let records = &fetched.records;
            let batches = batch::split(records).map_while(Result::ok);
            let read_to = batches.filter_map(|range| Some(batch::header(&records[range]).ok()?.last_offset())).last();
            match read_to {
                Some(last) if last >= from => from = last + 1,
                _ => return Ok(self.partition.high_watermark()),
            }
        }
    }

    /// The stream's last ID: its newest durable record's, or what XSETID set or trimming
    /// recorded while nothing was appended since (`StreamState::last_id_at`); `0-0` for a
    /// stream that never had an entry.
    pub async fn last_id(&self) -> Result<StreamId, GroupError> {
        let end = self.partition.high_watermark();
        let newest = if end > self.partition.log_start_offset() {
            self.record_id_at(end - 1).await?.unwrap_or(StreamId::MIN)
        } else {
            StreamId::MIN
        };
        Ok(self.state.borrow().last_id_at(end, newest))
    }

    /// The ID of the record at `offset`, also when XDEL deleted it (a deleted newest entry
    /// keeps the stream's last ID, as in Redis).
    async fn record_id_at(&self, offset: i64) -> Result<Option<StreamId>, GroupError> {
        let fetched = match self.partition.read(offset, ENTRY_READ_BYTES).await {
            Ok(fetched) => fetched,
            Err(PartitionError::OffsetOutOfRange { .. }) => return Ok(None),
            Err(error) => return Err(error.into()),
        };
        let entries = crate::resp::streams::decode(&fetched.records);
        Ok(entries.into_iter().find(|entry| entry.offset == offset).map(|entry| entry.id))
    }

    /// Entries at `offsets`, read from the local partition in offset order while their fields
    /// fit `budget`; offsets no longer in the log (trimmed, deleted) are missing from the map.
    /// Also the first offset left unread because the budget was spent.
    async fn entries_at(
        &self,
        offsets: impl Iterator<Item = i64>,
        budget: ReplyBudget,
    ) -> Result<(HashMap<i64, Entry>, Option<i64>), GroupError> {
        let mut wanted: Vec<i64> = offsets.collect();
        wanted.sort_unstable();
        wanted.dedup();
        let mut found = HashMap::new();
        let mut bytes = 0;
        // The entries of the last read, which may hold the next wanted offsets too.
        let mut decoded: HashMap<i64, Entry> = HashMap::new();
        let mut read_up_to = i64::MIN;
        for offset in wanted {
            if offset < self.partition.log_start_offset() {
                continue;
            }
            if offset >= read_up_to {
                let fetched = match self.partition.read(offset, ENTRY_READ_BYTES).await {
                    Ok(fetched) => fetched,
                    Err(PartitionError::OffsetOutOfRange { .. }) => continue,
                    Err(error) => return Err(error.into()),
                };
                decoded.clear();
                for entry in crate::resp::streams::decode(&fetched.records) {
                    read_up_to = read_up_to.max(entry.offset + 1);
                    if !self.is_deleted(entry.offset) {
                        decoded.insert(entry.offset, entry);
                    }
                }
                read_up_to = read_up_to.max(offset + 1);
            }
            let Some(entry) = decoded.remove(&offset) else { continue };
            bytes += crate::resp::streams::fields_bytes(&entry.fields);
            if !budget.fits(bytes, found.len()) {
                return Ok((found, Some(offset)));
            }
            found.insert(offset, entry);
        }
        Ok((found, None))
    }

    /// New entries after the group's last delivered ID, from its read position, at most `count`
    /// and what `budget` allows; also the offset to go on from.
    async fn new_entries(
        &self,
        group: &StreamGroup,
        count: usize,
        budget: ReplyBudget,
    ) -> Result<(Vec<Entry>, i64), GroupError> {
        let mut next = group.next_offset.max(self.partition.log_start_offset());
        let mut found = Vec::new();
        let mut bytes = 0;
        while found.len() < count && next < self.partition.high_watermark() {
            let fetched = match self.partition.read(next, ENTRY_READ_BYTES).await {
                Ok(fetched) => fetched,
                Err(PartitionError::OffsetOutOfRange { log_start_offset, .. }) if next < log_start_offset => {
                    next = log_start_offset;
                    continue;
                }
                Err(error) => return Err(error.into()),
            };
            if fetched.records.is_empty() {
                break;
            }
            for entry in crate::resp::streams::decode(&fetched.records) {
                if entry.offset < next {
                    continue;
                }
                if entry.id > group.last_delivered && !self.is_deleted(entry.offset) {
                    bytes += crate::resp::streams::fields_bytes(&entry.fields);
                    if !budget.fits(bytes, found.len()) {
                        return Ok((found, next)); // the next read starts with this entry
                    }
                    next = entry.offset + 1;
                    found.push(entry);
                    if found.len() == count {
                        break;
                    }
                } else {
                    next = entry.offset + 1;
                }
            }
        }
        Ok((found, next))
    }

    #[allow(clippy::too_many_arguments)]
    async fn read_new(
        &self,
        shard: &ShardRef,
        name: Bytes,
        consumer: Bytes,
        count: usize,
        noack: bool,
        budget: ReplyBudget,
        now: u64,
    ) -> Result<(Vec<Event>, GroupAnswer), GroupError> {
        let (group, visibility, pending_count) = self.with_group(&name, |state| {
            let visibility = state
                .config
                .visibility_ms
                .map(|visibility_ms| (visibility_ms, state.idle_pending(StreamId::MIN, visibility_ms, now, count)));
            (state.view_of([]), visibility, state.pending.len())
        })?;
        let mut events = Vec::new();
        let mut reply = Vec::new();
        // Entries whose consumer has been silent past the visibility timeout come back first.
        if let Some((visibility_ms, idle)) = visibility {
            if !idle.is_empty() {
                let options = ClaimOptions { budget, ..ClaimOptions::default() };
                let (claim_events, claimed) =
                    self.claim(shard, name.clone(), consumer.clone(), visibility_ms, idle, options, now).await?;
                events.extend(claim_events);
                if let GroupAnswer::AutoClaimed { entries, .. } = claimed {
                    reply.extend(entries);
                }
            }
        }
        let wanted = count - reply.len().min(count);
        let room = if noack { wanted } else { PENDING_PER_GROUP_MAX.saturating_sub(pending_count) };
        if wanted > 0 && room == 0 && reply.is_empty() {
            return Err(GroupError::PendingFull);
        }
        // Claimed entries take their share of the reply's bytes first.
        let budget = budget.after(&reply);
        let (entries, next_offset) = self.new_entries(&group, wanted.min(room), budget).await?;
        if let Some(last) = entries.last() {
            events.push(Event::Delivered {
                name,
                consumer,
                at_ms: now,
                entries: entries.iter().map(|entry| (entry.id, entry.offset)).collect(),
                advance: Some((last.id, next_offset)),
                noack,
            });
        }
        reply.extend(entries.into_iter().map(|entry| (entry.id, Some(entry))));
        Ok((events, GroupAnswer::Entries(reply)))
    }

    /// XCLAIM (and XAUTOCLAIM's and visibility's claims): claims the idle pending entries of
    /// `ids`, dead-letters those past MAXDELIVERIES, drops those gone from the stream.
    /// Answers `AutoClaimed` with the claimed entries and the dropped IDs.
    #[allow(clippy::too_many_arguments)]
    async fn claim(
        &self,
        shard: &ShardRef,
        name: Bytes,
        consumer: Bytes,
        min_idle_ms: u64,
        ids: Vec<StreamId>,
        options: ClaimOptions,
        now: u64,
    ) -> Result<(Vec<Event>, GroupAnswer), GroupError> {
        let group = self.with_group(&name, |state| state.view_of(&ids))?;
        let mut forced = Vec::new();
        let mut claimable = Vec::new();
        for id in ids {
            match group.pending.get(&id) {
                Some(pending) if now.saturating_sub(pending.delivered_ms) >= min_idle_ms => claimable.push(id),
                Some(_) => {}
                None if options.force => forced.push(id),
                None => {}
            }
        }
        let mut events = Vec::new();
        // FORCE: entries that exist in the stream join the pending list (below, those that fit).
        let mut forced_found = Vec::new();
        for id in forced {
            if let Some(entry) = self.find(id).await? {
                forced_found.push((entry.id, entry.offset));
            }
        }
        claimable.extend(forced_found.iter().map(|(id, _)| *id));
        let dead: Vec<StreamId> = if options.just_id {
            Vec::new()
        } else {
            claimable.iter().copied().filter(|id| group.is_dead(id)).collect()
        };
        let offsets: HashMap<StreamId, i64> = claimable
            .iter()
            .filter_map(|id| group.pending.get(id).map(|pending| (*id, pending.offset)))
            .chain(forced_found.iter().copied())
            .collect();
        let budget = if options.just_id { ReplyBudget::unlimited() } else { options.budget };
        let (entries, cut) =
            self.entries_at(claimable.iter().filter_map(|id| offsets.get(id).copied()), budget).await?;
        forced_found.retain(|(_, offset)| cut.is_none_or(|cut| *offset < cut));
        if !forced_found.is_empty() {
            events.push(Event::Delivered {
                name: name.clone(),
                consumer: consumer.clone(),
                at_ms: now,
                entries: forced_found,
                advance: None,
                noack: false,
            });
        }
        let mut deleted = Vec::new();
        let mut claimed = Vec::new();
        let mut reply = Vec::new();
        // The first ID left as it is because the budget was spent.
        let mut left_from: Option<StreamId> = None;
        for id in &claimable {
            let offset = offsets.get(id).copied();
            if let (Some(offset), Some(cut)) = (offset, cut) {
                if offset >= cut {
                    left_from = Some(left_from.map_or(*id, |left| left.min(*id)));
                    continue;
                }
            }
            let entry = offset.and_then(|offset| entries.get(&offset));
            match entry {
                None => deleted.push(*id),
                Some(entry) if dead.contains(id) => {
                    let deliveries = group.pending.get(id).map_or(0, |pending| pending.deliveries);
                    self.dead_letter(shard, &name, &group.config, entry, deliveries).await?;
                    deleted.push(*id);
                }
                Some(entry) => {
                    claimed.push(*id);
                    reply.push((*id, (!options.just_id).then(|| entry.clone())));
                }
            }
        }
        if let Some(last_id) = options.last_id.filter(|last_id| *last_id > group.last_delivered) {
            let next_offset = self.start_position(StartId::After(last_id)).await?.1.max(group.next_offset);
            events.push(Event::SetId { name: name.clone(), last_delivered: last_id, next_offset });
        }
        if !claimed.is_empty() {
            let deliveries = match (options.retry_count, options.just_id) {
                (Some(count), _) => Deliveries::Set(count),
                (None, true) => Deliveries::Keep,
                (None, false) => Deliveries::Increment,
            };
            events.push(Event::Claimed {
                name: name.clone(),
                consumer,
                at_ms: now,
                delivered_ms: options.delivered_ms.unwrap_or(now),
                ids: claimed,
                deliveries,
            });
        }
        if !deleted.is_empty() {
            events.push(Event::Dropped { name, ids: deleted.clone() });
        }
        Ok((events, GroupAnswer::AutoClaimed { next: left_from.unwrap_or(StreamId::MIN), entries: reply, deleted }))
    }

    /// The entry with exactly `id`, if the stream has it.
    async fn find(&self, id: StreamId) -> Result<Option<Entry>, GroupError> {
        // A probe group reading from where `id` may be: its read filters by ID.
        let before = id.predecessor().unwrap_or(StreamId::MIN);
        let probe = StreamGroup::new(before, self.millisecond_start(id).await?, GroupConfig::default());
        let (entries, _) = self.new_entries(&probe, 1, ReplyBudget::whole()).await?;
        Ok(entries.into_iter().next().filter(|entry| entry.id == id))
    }

    /// Appends `entry` to the group's dead-letter stream with where it came from, and waits
    /// until that is durable.
    async fn dead_letter(
        &self,
        shard: &ShardRef,
        group: &Bytes,
        config: &GroupConfig,
        entry: &Entry,
        deliveries: u64,
    ) -> Result<(), GroupError> {
        let target = self.dead_letter_stream(config);
        let mut fields = vec![
            (Bytes::from_static(b"origin-stream"), self.key.clone()),
            (Bytes::from_static(b"origin-id"), Bytes::from(entry.id.to_string())),
            (Bytes::from_static(b"group"), group.clone()),
            (Bytes::from_static(b"deliveries"), Bytes::from(deliveries.to_string())),
        ];
        fields.extend(entry.fields.iter().cloned());
        shard.ensure_topic(&target, Some(1)).await.map_err(|error| GroupError::Storage(error.to_string()))?;
        let owner = shard.owner_of(&target, crate::resp::streams::STREAM_PARTITION);
        let request = ShardRequest::StreamAdd {
            stream: (target.clone(), crate::resp::streams::STREAM_PARTITION),
            entries: vec![NewEntry { id: IdRequest::Auto, fields }],
            appended: None,
        };
        let ShardResponse::StreamAdded(mut added) = shard.call(owner, request).await else {
            unreachable!("StreamAdd answers with StreamAdded")
        };
        match added.pop().expect("one result per entry") {
            Ok(added) => {
                self.deliveries.record_dead_lettered(group);
                tracing::info!(stream = %String::from_utf8_lossy(&self.key), group = %String::from_utf8_lossy(group), id = %entry.id, deliveries, dead_letter = %target, dead_letter_id = %added.id, "entry dead-lettered");
                Ok(())
            }
            Err(StreamAddError::Id(error)) => Err(GroupError::Storage(error.to_string())),
            Err(StreamAddError::Shard(error)) => Err(GroupError::Storage(error.to_string())),
        }
    }
}
