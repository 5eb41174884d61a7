//! The group coordinator of one shard: consumer group state machines and committed offsets
//! for the groups whose `__consumer_offsets` partition this shard owns.
//!
//! Requests for a group arrive (over the mesh if need be) on `routing::coordinator(group)`.
//! Group membership lives in memory (clients rejoin after a restart, as with Kafka); every
//! acknowledged offset commit is appended to the offsets partition and fdatasynced first,
//! and the table is rebuilt by replaying those partitions at start.
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::path::Path;
use std::rc::Rc;
use std::time::Duration;

use bytes::Bytes;
use futures::channel::oneshot;
use sluice_engine::group::offsets::{CommittedOffset, OffsetRecord, OffsetTable};
use sluice_engine::group::state_machine::{
    Group, GroupDescription, GroupError, GroupLimits, GroupState, JoinRequest, JoinResponse, Reply, SyncResponse,
    Ticket,
};
use sluice_engine::partition::{Partition, PartitionConfig, PartitionError};
use sluice_engine::record::batch;
use sluice_engine::sync::Notify;

use crate::runtime::routing::{offsets_partition, owner, OFFSETS_PARTITIONS, OFFSETS_TOPIC};

/// How often the coordinator looks for expired sessions and rebalance timeouts.
const GROUP_TICK_INTERVAL_MS: u64 = 100;
/// Segment size of the offsets partitions.
const OFFSETS_SEGMENT_BYTES: u64 = 16 << 20;
/// Largest snapshot batch (every committed offset of the partition's groups, ~60 B each).
const OFFSETS_SNAPSHOT_BYTES_MAX: usize = 256 << 20;
/// Bytes read per step when replaying an offsets partition at start.
const REPLAY_READ_BYTES: usize = 1 << 20;

/// A request for the coordinator of `group`.
pub enum GroupCall {
    Join {
        group: String,
        request: JoinRequest,
    },
    Sync {
        group: String,
        member_id: String,
        instance_id: Option<String>,
        generation_id: i32,
        protocol_type: Option<String>,
        protocol_name: Option<String>,
        assignments: Vec<(String, Bytes)>,
    },
    Heartbeat {
        group: String,
        member_id: String,
        instance_id: Option<String>,
        generation_id: i32,
    },
    Leave {
        group: String,
        members: Vec<(String, Option<String>)>,
    },
    Commit {
        group: String,
        member_id: String,
        instance_id: Option<String>,
        generation_id: i32,
        offsets: Vec<(String, i32, CommittedOffset)>,
    },
    /// `partitions: None` means every committed offset of the group.
    Fetch {
        group: String,
        partitions: Option<Vec<(String, i32)>>,
    },
    List,
    /// OffsetDelete: forget committed offsets of partitions the group does not subscribe to.
    DeleteOffsets {
        group: String,
        partitions: Vec<(String, i32)>,
    },
    Describe {
        groups: Vec<String>,
    },
    Delete {
        groups: Vec<String>,
    },
}

/// Why a commit failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommitError {
    Group(GroupError),
    Storage(PartitionError),
}

pub enum GroupAnswer {
    Join(JoinResponse),
    Sync(SyncResponse),
    Heartbeat(Result<(), GroupError>),
    Leave(Vec<Result<(), GroupError>>),
    Commit(Result<(), CommitError>),
    Fetch(Vec<((String, i32), Option<CommittedOffset>)>),
    List(Vec<(String, String, GroupState)>),
    DeleteOffsets(Result<Vec<Result<(), GroupError>>, CommitError>),
    Describe(Vec<(String, Option<GroupDescription>)>),
    Delete(Vec<(String, Result<(), GroupError>)>),
}

/// Lives on one shard; never shared with another thread.
pub struct Coordinator {
    shard_id: usize,
    limits: GroupLimits,
    /// Size at which an offsets partition is compacted (see `compact_if_large`).
    offsets_compaction_bytes: u64,
    /// Per offsets partition: (bytes of its last snapshot, bytes appended since then).
    log_growth: RefCell<HashMap<i32, (u64, u64)>>,
    logs: HashMap<i32, Rc<Partition>>,
    offsets: RefCell<OffsetTable>,
    groups: RefCell<HashMap<String, Group>>,
    parked: RefCell<HashMap<Ticket, ParkedReply>>,
    next_ticket: Cell<Ticket>,
}

enum ParkedReply {
    Join(oneshot::Sender<JoinResponse>),
    Sync(oneshot::Sender<SyncResponse>),
}

fn now_ms() -> u64 {
    crate::runtime::shard::now_ms().max(0) as u64
}

impl Coordinator {
    /// Opens (recovering) this shard's offsets partitions and replays them into the table.
    pub async fn open(
        data_dir: &Path,
        shard_id: usize,
        shard_count: usize,
        limits: GroupLimits,
        offsets_compaction_bytes: u64,
    ) -> Result<Rc<Self>, String> {
        let mut logs = HashMap::new();
        let mut log_growth = HashMap::new();
        let mut offsets = OffsetTable::default();
        for partition in (0..OFFSETS_PARTITIONS).filter(|p| owner(OFFSETS_TOPIC, *p, shard_count) == shard_id) {
            let dir = data_dir.join("internal").join(OFFSETS_TOPIC).join(partition.to_string());
            let log = Partition::open(&dir, offsets_log_config(), Rc::new(Notify::default()))
                .await
                .map_err(|error| format!("cannot open offsets log {}: {error}", dir.display()))?;
            let (replayed, replayed_bytes) = replay(&log, &mut offsets)
                .await
                .map_err(|error| format!("cannot replay {}: {error}", dir.display()))?;
            tracing::debug!(partition, replayed, replayed_bytes, "offsets partition replayed");
            log_growth.insert(partition, (0, replayed_bytes));
            logs.insert(partition, log);
        }
        let coordinator = Rc::new(Self {
            shard_id,
            limits,
            offsets_compaction_bytes,
            log_growth: RefCell::new(log_growth),
            logs,
            offsets: RefCell::new(offsets),
            groups: RefCell::new(HashMap::new()),
            parked: RefCell::new(HashMap::new()),
            next_ticket: Cell::new(1),
        });
        glommio::spawn_local(coordinator.clone().run_timers()).detach();
        Ok(coordinator)
    }

    pub async fn handle(&self, call: GroupCall) -> GroupAnswer {
        match call {
            GroupCall::Join { group, request } => GroupAnswer::Join(self.join(group, request).await),
            GroupCall::Sync {
                group,
                member_id,
                instance_id,
                generation_id,
                protocol_type,
                protocol_name,
                assignments,
            } => GroupAnswer::Sync(
                self.sync(group, member_id, instance_id, generation_id, protocol_type, protocol_name, assignments)
                    .await,
            ),
            GroupCall::Heartbeat { group, member_id, instance_id, generation_id } => {
                let result = self.with_group(&group, |group, now| {
                    group.heartbeat(&member_id, instance_id.as_deref(), generation_id, now)
                });
                GroupAnswer::Heartbeat(result.unwrap_or(Err(GroupError::UnknownMemberId)))
            }
            GroupCall::Leave { group, members } => {
                let count = members.len();
                let result = self.with_group(&group, |group, now| group.leave(&members, now));
                GroupAnswer::Leave(result.unwrap_or_else(|| vec![Err(GroupError::UnknownMemberId); count]))
            }
            GroupCall::Commit { group, member_id, instance_id, generation_id, offsets } => {
                GroupAnswer::Commit(self.commit(group, member_id, instance_id, generation_id, offsets).await)
            }
            GroupCall::Fetch { group, partitions } => GroupAnswer::Fetch(self.fetch(&group, partitions)),
            GroupCall::List => GroupAnswer::List(self.list()),
            GroupCall::DeleteOffsets { group, partitions } => {
                GroupAnswer::DeleteOffsets(self.delete_offsets(&group, partitions).await)
            }
            GroupCall::Describe { groups } => GroupAnswer::Describe(
                groups
                    .into_iter()
                    .map(|id| {
                        let description = self.describe(&id);
                        (id, description)
                    })
                    .collect(),
            ),
            GroupCall::Delete { groups } => {
                let mut results = Vec::with_capacity(groups.len());
                for id in groups {
                    let result = self.delete(&id).await;
                    results.push((id, result));
                }
                GroupAnswer::Delete(results)
            }
        }
    }

    /// Every committed offset of the groups coordinated here (for metrics).
    pub fn committed_offsets(&self) -> Vec<crate::metrics::CommittedStats> {
        let offsets = self.offsets.borrow();
        offsets
            .group_ids()
            .flat_map(|group| {
                offsets.group(group).map(move |((topic, partition), committed)| crate::metrics::CommittedStats {
                    group: group.clone(),
                    topic: topic.clone(),
                    partition: *partition,
                    offset: committed.offset,
                })
            })
            .collect()
    }

    /// Every group coordinated here with its state, generation and member count (for metrics).
    pub fn group_stats(&self) -> Vec<crate::metrics::GroupStats> {
        self.groups
            .borrow()
            .iter()
            .map(|(name, group)| crate::metrics::GroupStats {
                group: name.clone(),
                state: crate::kafka::handlers::describe_groups::state_name(group.state()),
                generation: group.generation_id(),
                members: group.member_count(),
            })
            .collect()
    }

    fn ticket(&self) -> Ticket {
        let ticket = self.next_ticket.get();
        self.next_ticket.set(ticket + 1);
        ticket
    }

    /// Runs `action` on an existing group, logs a rebalance it started or finished, and
    /// delivers the replies it released.
    fn with_group<R>(&self, group_id: &str, action: impl FnOnce(&mut Group, u64) -> R) -> Option<R> {
        let mut groups = self.groups.borrow_mut();
        let group = groups.get_mut(group_id)?;
        let before = (group.state(), group.generation_id());
        let result = action(group, now_ms());
        log_rebalance(group, before);
        let replies = group.take_replies();
        drop(groups);
        self.deliver(replies);
        Some(result)
    }

    fn deliver(&self, replies: Vec<Reply>) {
        let mut parked = self.parked.borrow_mut();
        for reply in replies {
            match reply {
                Reply::Join(ticket, response) => {
                    if let Some(ParkedReply::Join(sender)) = parked.remove(&ticket) {
                        let _ = sender.send(response);
                    }
                }
                Reply::Sync(ticket, response) => {
                    if let Some(ParkedReply::Sync(sender)) = parked.remove(&ticket) {
                        let _ = sender.send(response);
                    }
                }
            }
        }
    }

    async fn join(&self, group_id: String, request: JoinRequest) -> JoinResponse {
        let ticket = self.ticket();
        let (sender, receiver) = oneshot::channel();
        self.parked.borrow_mut().insert(ticket, ParkedReply::Join(sender));
        let (immediate, protocol_type) = {
            let mut groups = self.groups.borrow_mut();
            let limits = self.limits.clone();
            let group = groups.entry(group_id.clone()).or_insert_with(|| Group::new(group_id.clone(), limits));
            let before = (group.state(), group.generation_id());
            let immediate = group.join(request, ticket, now_ms());
            log_rebalance(group, before);
            let replies = group.take_replies();
            let protocol_type = group.protocol_type().map(str::to_string);
            drop(groups);
            self.deliver(replies);
            (immediate, protocol_type)
        };
        self.record_protocol_type(&group_id, protocol_type).await;
        if let Some(response) = immediate {
            self.parked.borrow_mut().remove(&ticket);
            return response;
        }
        receiver.await.unwrap_or_else(|_| JoinResponse::error(GroupError::UnknownMemberId, ""))
    }

    /// Records the type a member gave its group (the first member of an empty group sets it)
    /// when it differs from the one recorded, so an emptied group still shows it after a
    /// restart, as Kafka's group metadata record keeps it. Only the listing depends on it, so
    /// a failed write is logged, not answered.
    async fn record_protocol_type(&self, group_id: &str, protocol_type: Option<String>) {
        let Some(protocol_type) = protocol_type else {
            return;
        };
        if self.offsets.borrow().protocol_type(group_id) == protocol_type {
            return;
        }
        let record = OffsetRecord::ProtocolType { group: group_id.to_string(), protocol_type };
        if let Err(error) = self.persist(group_id, &[record]).await {
            tracing::warn!(group = group_id, %error, "recording a group's protocol type failed");
        }
    }

    /// A live group as it is; one known only from the offsets log (committed offsets, or
    /// members before a restart) as Kafka describes it: Empty, with its recorded protocol type.
    fn describe(&self, group_id: &str) -> Option<GroupDescription> {
        if let Some(group) = self.groups.borrow().get(group_id) {
            return Some(group.describe());
        }
        let offsets = self.offsets.borrow();
        offsets.has_group(group_id).then(|| GroupDescription {
            state: GroupState::Empty,
            protocol_type: offsets.protocol_type(group_id).to_string(),
            protocol: String::new(),
            members: Vec::new(),
        })
    }

    #[allow(clippy::too_many_arguments)]
    async fn sync(
        &self,
        group_id: String,
        member_id: String,
        instance_id: Option<String>,
        generation_id: i32,
        protocol_type: Option<String>,
        protocol_name: Option<String>,
        assignments: Vec<(String, Bytes)>,
    ) -> SyncResponse {
        let ticket = self.ticket();
        let (sender, receiver) = oneshot::channel();
        self.parked.borrow_mut().insert(ticket, ParkedReply::Sync(sender));
        let immediate = self.with_group(&group_id, |group, now| {
            group.sync(
                &member_id,
                instance_id.as_deref(),
                generation_id,
                protocol_type.as_deref(),
                protocol_name.as_deref(),
                assignments,
                ticket,
                now,
            )
        });
        match immediate {
            None => {
                self.parked.borrow_mut().remove(&ticket);
                SyncResponse::error(GroupError::UnknownMemberId)
            }
            Some(Some(response)) => {
                self.parked.borrow_mut().remove(&ticket);
                response
            }
            Some(None) => receiver.await.unwrap_or_else(|_| SyncResponse::error(GroupError::UnknownMemberId)),
        }
    }

    async fn commit(
        &self,
        group_id: String,
        member_id: String,
        instance_id: Option<String>,
        generation_id: i32,
        offsets: Vec<(String, i32, CommittedOffset)>,
    ) -> Result<(), CommitError> {
        let allowed = match self.groups.borrow().get(&group_id) {
            Some(group) => group.validate_commit(&member_id, instance_id.as_deref(), generation_id),
            // No live group: only a "simple" commit (no member, no generation) is allowed.
            None if generation_id < 0 && member_id.is_empty() => Ok(()),
            None => Err(GroupError::UnknownMemberId),
        };
        allowed.map_err(CommitError::Group)?;
        let records: Vec<OffsetRecord> = offsets
            .into_iter()
            .map(|(topic, partition, committed)| OffsetRecord::Commit {
                group: group_id.clone(),
                topic,
                partition,
                committed,
            })
            .collect();
        self.persist(&group_id, &records).await.map_err(CommitError::Storage)
    }

    /// Appends `records` to the group's offsets partition, waits for the fdatasync, then
    /// applies them to the table: what a client was told is committed survives kill -9.
    async fn persist(&self, group_id: &str, records: &[OffsetRecord]) -> Result<(), PartitionError> {
        if records.is_empty() {
            return Ok(());
        }
        let log = self.logs.get(&offsets_partition(group_id)).ok_or(PartitionError::Closed)?;
        let encoded: Vec<(Vec<u8>, Option<Vec<u8>>)> = records.iter().map(OffsetRecord::encode).collect();
        let fields: Vec<batch::build::KeyValue<'_>> =
            encoded.iter().map(|(key, value)| (Some(key.as_slice()), value.as_deref())).collect();
        let batch = batch::build::batch_of(0, crate::runtime::shard::now_ms(), &fields);
        let appended = log.append(&batch).await?;
        log.wait_durable(&appended).await?;
        self.log_growth.borrow_mut().entry(offsets_partition(group_id)).or_default().1 += batch.len() as u64;
        {
            let mut table = self.offsets.borrow_mut();
            for record in records {
                table.apply(record);
            }
        }
        self.compact_if_large(offsets_partition(group_id), log).await;
        Ok(())
    }

    /// Keeps start-up replay short: once more than `offsets_compaction_bytes` (and more than
    /// twice its last snapshot) was appended to an offsets partition since its last snapshot (or
    /// replayed at start), the current offsets of its groups
    /// are appended as one batch (a snapshot; one batch, so no commit can land inside it) and
    /// everything before it is deleted. A failure only logs: the log stays correct, just longer.
    async fn compact_if_large(&self, partition: i32, log: &Rc<Partition>) {
        let (snapshot_bytes, appended_bytes) = self.log_growth.borrow().get(&partition).copied().unwrap_or_default();
        if appended_bytes <= self.offsets_compaction_bytes.max(2 * snapshot_bytes) {
            return;
        }
        let records = self.offsets.borrow().snapshot_of(|group| offsets_partition(group) == partition);
        let encoded: Vec<(Vec<u8>, Option<Vec<u8>>)> = records.iter().map(OffsetRecord::encode).collect();
        let fields: Vec<batch::build::KeyValue<'_>> =
            encoded.iter().map(|(key, value)| (Some(key.as_slice()), value.as_deref())).collect();
        let fields_bytes: u64 =
            encoded.iter().map(|(key, value)| (key.len() + value.as_ref().map_or(0, Vec::len)) as u64).sum();
        let result = async {
            let snapshot_start = if fields.is_empty() {
                log.high_watermark()
            } else {
                let snapshot = batch::build::batch_of(0, crate::runtime::shard::now_ms(), &fields);
                let appended = log.append(&snapshot).await?;
                log.wait_durable(&appended).await?;
                appended.base_offset
            };
            log.delete_records(snapshot_start)?;
            self.log_growth.borrow_mut().insert(partition, (fields_bytes, 0));
            Ok::<_, PartitionError>(log.enforce_retention(crate::runtime::shard::now_ms()))
        }
        .await;
        match result {
            Ok(deleted_segments) => {
                tracing::info!(partition, records = records.len(), deleted_segments, "offsets partition compacted")
            }
            Err(error) => tracing::warn!(partition, %error, "compacting an offsets partition failed"),
        }
    }

    fn fetch(
        &self,
        group_id: &str,
        partitions: Option<Vec<(String, i32)>>,
    ) -> Vec<((String, i32), Option<CommittedOffset>)> {
        let table = self.offsets.borrow();
        match partitions {
            Some(partitions) => partitions
                .into_iter()
                .map(|(topic, partition)| {
                    let committed = table.get(group_id, &topic, partition).cloned();
                    ((topic, partition), committed)
                })
                .collect(),
            None => table.group(group_id).map(|(key, committed)| (key.clone(), Some(committed.clone()))).collect(),
        }
    }

    /// Live groups and groups that only have committed offsets (state Empty).
    fn list(&self) -> Vec<(String, String, GroupState)> {
        let groups = self.groups.borrow();
        let mut listed: Vec<(String, String, GroupState)> = groups
            .values()
            .filter(|group| group.state() != GroupState::Dead)
            .map(|group| {
                (group.group_id().to_string(), group.protocol_type().unwrap_or_default().to_string(), group.state())
            })
            .collect();
        let offsets = self.offsets.borrow();
        for id in offsets.group_ids() {
            if !groups.contains_key(id) {
                listed.push((id.clone(), offsets.protocol_type(id).to_string(), GroupState::Empty));
            }
        }
        listed
    }

    async fn delete_offsets(
        &self,
        group_id: &str,
        partitions: Vec<(String, i32)>,
    ) -> Result<Vec<Result<(), GroupError>>, CommitError> {
        let live = self.groups.borrow().contains_key(group_id);
        if !live && !self.offsets.borrow().has_group(group_id) {
            return Err(CommitError::Group(GroupError::GroupIdNotFound));
        }
        let subscribed =
            |topic: &str| self.groups.borrow().get(group_id).is_some_and(|group| group.subscribes_to(topic));
        let results: Vec<Result<(), GroupError>> = partitions
            .iter()
            .map(|(topic, _)| if subscribed(topic) { Err(GroupError::GroupSubscribedToTopic) } else { Ok(()) })
            .collect();
        let records: Vec<OffsetRecord> = partitions
            .into_iter()
            .zip(&results)
            .filter(|(_, result)| result.is_ok())
            .map(|((topic, partition), _)| OffsetRecord::DeleteOffset { group: group_id.to_string(), topic, partition })
            .collect();
        self.persist(group_id, &records).await.map_err(CommitError::Storage)?;
        Ok(results)
    }

    async fn delete(&self, group_id: &str) -> Result<(), GroupError> {
        let live = self.groups.borrow_mut().get_mut(group_id).map(Group::delete);
        match live {
            Some(Err(error)) => return Err(error),
            None if !self.offsets.borrow().has_group(group_id) => return Err(GroupError::GroupIdNotFound),
            _ => {}
        }
        self.groups.borrow_mut().remove(group_id);
        let record = OffsetRecord::DeleteGroup { group: group_id.to_string() };
        self.persist(group_id, &[record]).await.map_err(|error| {
            tracing::error!(group = group_id, %error, "persisting a group deletion failed");
            GroupError::GroupIdNotFound
        })
    }

    /// Session expiry and rebalance timeouts, bounded work per tick.
    async fn run_timers(self: Rc<Self>) {
        loop {
            glommio::timer::sleep(Duration::from_millis(GROUP_TICK_INTERVAL_MS)).await;
            let now = now_ms();
            let due: Vec<String> = self
                .groups
                .borrow()
                .values()
                .filter(|group| group.next_deadline_ms().is_some_and(|deadline| deadline <= now))
                .map(|group| group.group_id().to_string())
                .collect();
            for group_id in due {
                self.with_group(&group_id, |group, now| group.tick(now));
            }
            self.groups.borrow_mut().retain(|_, group| group.state() != GroupState::Dead);
        }
    }

    pub fn shard_id(&self) -> usize {
        self.shard_id
    }

    /// Flushes and closes the offsets partitions (shutdown).
    pub async fn close(&self) {
        for log in self.logs.values() {
            log.close().await;
        }
    }
}

/// A change of a group's state that gets one info line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Rebalance {
    /// The group entered PreparingRebalance: it waits for its members to (re)join.
    Started,
    /// The leader's assignment arrived: every member works in the new generation.
    Stable,
}

/// What happened to a group between two (state, generation) observations around one call. A
/// call can pass through PreparingRebalance without stopping (the last member joins and the
/// rebalance completes at once): then the state is CompletingRebalance with a new generation.
fn rebalance_between(before: (GroupState, i32), after: (GroupState, i32)) -> Option<Rebalance> {
    let (state_before, generation_before) = before;
    let (state_after, generation_after) = after;
    let passed_through_preparing =
        state_after == GroupState::CompletingRebalance && generation_after != generation_before;
    if state_before != GroupState::PreparingRebalance
        && (state_after == GroupState::PreparingRebalance || passed_through_preparing)
    {
        return Some(Rebalance::Started);
    }
    if state_after == GroupState::Stable
        && (state_before != GroupState::Stable || generation_after != generation_before)
    {
        return Some(Rebalance::Stable);
    }
    None
}

/// One info line per rebalance start and per group becoming Stable. `generation` is the one the
/// rebalance replaces on the first line and the one the group now works in on the second.
fn log_rebalance(group: &Group, before: (GroupState, i32)) {
    let (group_id, members) = (group.group_id(), group.member_count());
    match rebalance_between(before, (group.state(), group.generation_id())) {
        Some(Rebalance::Started) => tracing::info!(
            group = group_id,
            generation = before.1,
            members,
            previous_state = ?before.0,
            "consumer group rebalance started"
        ),
        Some(Rebalance::Stable) => {
            tracing::info!(group = group_id, generation = group.generation_id(), members, "consumer group stable")
        }
        None => {}
    }
}

/// Offsets partitions: kept until compaction deletes them (no time retention), small segments
/// so compaction frees space soon, and room for a snapshot batch of every group's offsets.
fn offsets_log_config() -> PartitionConfig {
    PartitionConfig {
        retention_ms: -1,
        segment_bytes: OFFSETS_SEGMENT_BYTES,
        message_bytes_max: OFFSETS_SNAPSHOT_BYTES_MAX,
        ..PartitionConfig::default()
    }
}

/// Rebuilds the table from an offsets partition, oldest record first. Returns the records
/// applied and the bytes read.
async fn replay(log: &Partition, table: &mut OffsetTable) -> Result<(usize, u64), PartitionError> {
    let mut offset = log.log_start_offset();
    let mut applied = 0;
    let mut read_bytes = 0u64;
    while offset < log.high_watermark() {
        let fetched = log.read(offset, REPLAY_READ_BYTES).await?;
        if fetched.records.is_empty() {
            break;
        }
        read_bytes += fetched.records.len() as u64;
        for range in batch::split(&fetched.records) {
            let Ok(range) = range else { break };
            let bytes = &fetched.records[range];
            let header = batch::header(bytes).map_err(PartitionError::InvalidBatch)?;
            offset = header.last_offset() + 1;
            for record in batch::records(bytes).into_iter().flatten() {
                match record.key.and_then(|key| OffsetRecord::decode(key, record.value)) {
                    Some(decoded) => {
                        table.apply(&decoded);
                        applied += 1;
                    }
                    None => tracing::warn!(offset = record.offset, "skipping an unreadable offsets record"),
                }
            }
        }
    }
    Ok((applied, read_bytes))
}

#[cfg(test)]
mod tests {
    use super::*;
    use GroupState::*;

    #[test]
    fn rebalances_are_seen_once_at_start_and_once_when_stable() {
        assert_eq!(rebalance_between((Empty, 0), (PreparingRebalance, 0)), Some(Rebalance::Started));
        assert_eq!(rebalance_between((Stable, 3), (PreparingRebalance, 3)), Some(Rebalance::Started));
        assert_eq!(rebalance_between((Empty, 0), (CompletingRebalance, 1)), Some(Rebalance::Started), "passed through");
        assert_eq!(rebalance_between((PreparingRebalance, 0), (PreparingRebalance, 0)), None, "a second join");
        assert_eq!(rebalance_between((PreparingRebalance, 0), (CompletingRebalance, 1)), None);
        assert_eq!(rebalance_between((CompletingRebalance, 1), (Stable, 1)), Some(Rebalance::Stable));
        assert_eq!(rebalance_between((Stable, 1), (Stable, 1)), None, "a heartbeat");
        assert_eq!(rebalance_between((Stable, 1), (Empty, 2)), None, "the last member left");
    }
}
