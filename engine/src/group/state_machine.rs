//! The Kafka classic consumer group protocol (JoinGroup, SyncGroup, Heartbeat, LeaveGroup)
//! as a pure state machine: no I/O, no clock (time comes in as `now_ms`), no async. The
//! coordinator shard owns one `Group` per group id, feeds it requests and timer ticks, and
//! delivers replies. A JoinGroup during a rebalance, or a follower's SyncGroup before the
//! leader's assignment, is parked under the caller's `Ticket`; its reply comes out of
//! `take_replies` when the group moves on. Every parked request is bounded by a session or
//! rebalance timeout.
//!
//! ```text
//!            join                 all members rejoined          leader's sync
//!   Empty ─────────► Preparing ───────────────────────► Completing ────────────► Stable
//!     ▲              Rebalance    (or rebalance timeout)  Rebalance                │
//!     │                  ▲                                   │ join / leave /      │
//!     │ last member      └───────────────────────────────────┴─ session expiry ────┘
//!     └─ leaves                                  delete (when Empty) ─► Dead
//! ```
//!
//! - **Empty**: no members (offsets may still be committed with the "simple" API). The first
//!   join starts a rebalance held for `initial_rebalance_delay_ms` (KIP-134, fixed delay).
//! - **PreparingRebalance**: waits until every member has a parked join and every member id
//!   handed out with MEMBER_ID_REQUIRED (KIP-394) came back or expired, or until the rebalance
//!   timeout (the members' longest, from the start). Members without a parked join are then
//!   removed; the generation is bumped; the protocol is voted; every parked join is answered.
//! - **CompletingRebalance**: waits for the leader's SyncGroup; followers' syncs are parked.
//!   Heartbeats are answered normally here (Kafka 2.x+), only PreparingRebalance answers
//!   REBALANCE_IN_PROGRESS. Offset commits are refused with REBALANCE_IN_PROGRESS.
//! - **Stable**: every member has its assignment.
//!
//! In CompletingRebalance and Stable, a member that got its join response but sent no SyncGroup
//! within the rebalance timeout is removed and the group rebalances (Kafka's pending-sync
//! timeout), so a leader that never assigns cannot keep followers parked forever.
//! - **Dead**: deleted; the server drops the group.
//!
//! Static members (KIP-345, group.instance.id) keep their place across restarts: a join with a
//! known instance id and no member id gets a new member id, fences the old one (later requests
//! with it get FENCED_INSTANCE_ID), and in Stable with unchanged protocols causes no rebalance.
use std::collections::{BTreeMap, HashMap, HashSet};

use bytes::Bytes;

pub type Ticket = u64;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupState {
    Empty,
    PreparingRebalance,
    CompletingRebalance,
    Stable,
    Dead,
}

/// Everything a client can get wrong, as Kafka names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum GroupError {
    UnknownMemberId,
    IllegalGeneration,
    RebalanceInProgress,
    InconsistentGroupProtocol,
    MemberIdRequired,
    FencedInstanceId,
    InvalidSessionTimeout,
    GroupIdNotFound,
    NonEmptyGroup,
    GroupMaxSizeReached,
    GroupSubscribedToTopic,
}

#[derive(Debug, Clone)]
pub struct GroupLimits {
    pub session_timeout_ms_min: u64,
    pub session_timeout_ms_max: u64,
    /// Kafka's group.initial.rebalance.delay.ms: the first rebalance of an empty group waits
    /// this long so that members starting together land in one generation.
    pub initial_rebalance_delay_ms: u64,
    pub members_max: usize,
}

impl Default for GroupLimits {
    fn default() -> Self {
        Self {
            session_timeout_ms_min: 6_000,
            session_timeout_ms_max: 1_800_000,
            initial_rebalance_delay_ms: 3_000,
            members_max: 1_000,
        }
    }
}

#[derive(Debug, Clone)]
pub struct JoinRequest {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub session_timeout_ms: u64,
    pub rebalance_timeout_ms: u64,
    pub protocol_type: String,
    pub protocols: Vec<(String, Bytes)>,
    pub require_known_member_id: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinMember {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub metadata: Bytes,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinResponse {
    pub error: Option<GroupError>,
    pub generation_id: i32,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub leader: String,
    pub member_id: String,
    /// Non-empty only for the leader.
    pub members: Vec<JoinMember>,
}

impl JoinResponse {
    /// The answer to a join that failed with `error`.
    pub fn error(error: GroupError, member_id: &str) -> Self {
        Self {
            error: Some(error),
            generation_id: -1,
            protocol_type: None,
            protocol_name: None,
            leader: String::new(),
            member_id: member_id.to_string(),
            members: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncResponse {
    pub error: Option<GroupError>,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub assignment: Bytes,
}

impl SyncResponse {
    /// The answer to a sync that failed with `error`.
    pub fn error(error: GroupError) -> Self {
        Self { error: Some(error), protocol_type: None, protocol_name: None, assignment: Bytes::new() }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    Join(Ticket, JoinResponse),
    Sync(Ticket, SyncResponse),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberDescription {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub metadata: Bytes,
    pub assignment: Bytes,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupDescription {
    pub state: GroupState,
    pub protocol_type: String,
    pub protocol: String,
    pub members: Vec<MemberDescription>,
}

#[derive(Debug, Clone)]
struct Member {
    instance_id: Option<String>,
    client_id: String,
    client_host: String,
    session_timeout_ms: u64,
    rebalance_timeout_ms: u64,
    protocols: Vec<(String, Bytes)>,
    assignment: Bytes,
    session_deadline_ms: u64,
    /// Order of arrival: the first member becomes leader when there is none.
    arrival: u64,
    join_ticket: Option<Ticket>,
    sync_ticket: Option<Ticket>,
    /// Got this generation's join response but has not sent SyncGroup yet.
    awaiting_sync: bool,
}

impl Member {
    fn metadata_for(&self, protocol: &str) -> Bytes {
        self.protocols
            .iter()
            .find(|(name, _)| name == protocol)
            .map(|(_, metadata)| metadata.clone())
            .unwrap_or_default()
    }
}

pub struct Group {
    group_id: String,
    limits: GroupLimits,
    state: GroupState,
    generation_id: i32,
    protocol_type: Option<String>,
    protocol: Option<String>,
    leader: Option<String>,
    members: BTreeMap<String, Member>,
    /// Member ids handed out with MEMBER_ID_REQUIRED, and until when they may join.
    pending_members: HashMap<String, u64>,
    /// group.instance.id -> its current member id.
    static_members: HashMap<String, String>,
    /// Member ids replaced by a static member's rejoin.
    fenced: HashSet<String>,
    rebalance_deadline_ms: Option<u64>,
    initial_delay_until_ms: Option<u64>,
    /// Members still `awaiting_sync` at this instant are removed (Kafka's pending-sync timeout).
    sync_deadline_ms: Option<u64>,
    arrivals: u64,
    replies: Vec<Reply>,
}

/// Bounds the fenced-id memory: old ids beyond this are forgotten (they then get UNKNOWN_MEMBER_ID).
const FENCED_IDS_MAX: usize = 1_000;

impl Group {
    pub fn new(group_id: impl Into<String>, limits: GroupLimits) -> Self {
        Self {
            group_id: group_id.into(),
            limits,
            state: GroupState::Empty,
            generation_id: 0,
            protocol_type: None,
            protocol: None,
            leader: None,
            members: BTreeMap::new(),
            pending_members: HashMap::new(),
            static_members: HashMap::new(),
            fenced: HashSet::new(),
            rebalance_deadline_ms: None,
            initial_delay_until_ms: None,
            sync_deadline_ms: None,
            arrivals: 0,
            replies: Vec::new(),
        }
    }

    pub fn group_id(&self) -> &str {
        &self.group_id
    }

    pub fn state(&self) -> GroupState {
        self.state
    }

    pub fn generation_id(&self) -> i32 {
        self.generation_id
    }

    pub fn protocol_type(&self) -> Option<&str> {
        self.protocol_type.as_deref()
    }

    pub fn member_count(&self) -> usize {
        self.members.len()
    }

    pub fn take_replies(&mut self) -> Vec<Reply> {
        std::mem::take(&mut self.replies)
    }

    fn new_member_id(&mut self, client_id: &str, now_ms: u64) -> String {
        self.arrivals += 1;
        let prefix = if client_id.is_empty() { "member" } else { client_id };
        let mixed = (now_ms ^ crc32c::crc32c(self.group_id.as_bytes()) as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)
            ^ self.arrivals.wrapping_mul(0xBF58_476D_1CE4_E5B9);
        format!("{prefix}-{:08x}-{mixed:016x}", self.arrivals)
    }

    /// The join response of the current generation for `member_id` (with the member list if
    /// it is the leader).
    fn current_join_response(&self, member_id: &str) -> JoinResponse {
        let protocol = self.protocol.clone().unwrap_or_default();
        let leader = self.leader.clone().unwrap_or_default();
        let members = if leader == member_id {
            self.members
                .iter()
                .map(|(id, member)| JoinMember {
                    member_id: id.clone(),
                    group_instance_id: member.instance_id.clone(),
                    metadata: member.metadata_for(&protocol),
                })
                .collect()
        } else {
            Vec::new()
        };
        JoinResponse {
            error: None,
            generation_id: self.generation_id,
            protocol_type: self.protocol_type.clone(),
            protocol_name: self.protocol.clone(),
            leader,
            member_id: member_id.to_string(),
            members,
        }
    }

    /// Whether the members (other than `except`) and `protocols` share a protocol.
    fn protocols_compatible(&self, protocols: &[(String, Bytes)], except: Option<&str>) -> bool {
        protocols.iter().any(|(name, _)| {
            self.members
                .iter()
                .filter(|(id, _)| Some(id.as_str()) != except)
                .all(|(_, member)| member.protocols.iter().any(|(other, _)| other == name))
        })
    }

    /// Immediate answer, or None when parked under `ticket` (answer later from `take_replies`).
    pub fn join(&mut self, request: JoinRequest, ticket: Ticket, now_ms: u64) -> Option<JoinResponse> {
        if let Err(error) = self.validate_join(&request) {
            return Some(JoinResponse::error(error, &request.member_id));
        }
        let known_static =
            request.group_instance_id.as_ref().and_then(|instance| self.static_members.get(instance)).cloned();
        let member_id = match (request.member_id.is_empty(), known_static) {
            (true, Some(old_id)) => return self.rejoin_static(request, old_id, ticket, now_ms),
            (true, None) if request.require_known_member_id && request.group_instance_id.is_none() => {
                return Some(self.require_member_id(&request, now_ms));
            }
            (true, None) => self.new_member_id(&request.client_id, now_ms),
            (false, _) if self.members.contains_key(&request.member_id) => {
                return self.rejoin_known(request, ticket, now_ms);
            }
            (false, _) if self.pending_members.contains_key(&request.member_id) => request.member_id.clone(),
            (false, _) => return Some(JoinResponse::error(GroupError::UnknownMemberId, &request.member_id)),
        };
        if !self.protocols_compatible(&request.protocols, None) {
            return Some(JoinResponse::error(GroupError::InconsistentGroupProtocol, &member_id));
        }
        if self.members.len() >= self.limits.members_max {
            return Some(JoinResponse::error(GroupError::GroupMaxSizeReached, &member_id));
        }
        // Only now: a pending member refused above keeps its id and may retry.
        self.pending_members.remove(&member_id);
        self.add_member(member_id, request, ticket, now_ms);
        None
    }

    /// The checks every JoinGroup passes before the group looks at who is joining.
    fn validate_join(&self, request: &JoinRequest) -> Result<(), GroupError> {
        let timeout = request.session_timeout_ms;
        if timeout < self.limits.session_timeout_ms_min || timeout > self.limits.session_timeout_ms_max {
            return Err(GroupError::InvalidSessionTimeout);
        }
        if self.state == GroupState::Dead {
            return Err(GroupError::UnknownMemberId);
        }
        let other_type = !self.members.is_empty() && self.protocol_type.as_deref() != Some(&request.protocol_type);
        if request.protocols.is_empty() || request.protocol_type.is_empty() || other_type {
            return Err(GroupError::InconsistentGroupProtocol);
        }
        if request.member_id.is_empty() {
            return Ok(());
        }
        self.check_fenced(&request.member_id, request.group_instance_id.as_deref())
    }

    /// KIP-394: a new member without an id gets one, and must come back with it within its
    /// session timeout. Pending ids count against `members_max`.
    fn require_member_id(&mut self, request: &JoinRequest, now_ms: u64) -> JoinResponse {
        if self.members.len() + self.pending_members.len() >= self.limits.members_max {
            return JoinResponse::error(GroupError::GroupMaxSizeReached, "");
        }
        let member_id = self.new_member_id(&request.client_id, now_ms);
        self.pending_members.insert(member_id.clone(), now_ms + request.session_timeout_ms);
        JoinResponse::error(GroupError::MemberIdRequired, &member_id)
    }

    /// KIP-345: `member_id` was replaced by a newer member with the same group.instance.id.
    fn check_fenced(&self, member_id: &str, instance_id: Option<&str>) -> Result<(), GroupError> {
        let replaced = instance_id
            .and_then(|instance| self.static_members.get(instance))
            .is_some_and(|current| current != member_id);
        if replaced || self.fenced.contains(member_id) {
            return Err(GroupError::FencedInstanceId);
        }
        Ok(())
    }

    fn add_member(&mut self, member_id: String, request: JoinRequest, ticket: Ticket, now_ms: u64) {
        self.arrivals += 1;
        if let Some(instance) = &request.group_instance_id {
            self.static_members.insert(instance.clone(), member_id.clone());
        }
        if self.members.is_empty() {
            // The first member of an empty group sets its type (a consumer group emptied
            // may be reused by Connect workers, as Kafka allows).
            self.protocol_type = Some(request.protocol_type.clone());
        }
        self.members.insert(
            member_id,
            Member {
                instance_id: request.group_instance_id,
                client_id: request.client_id,
                client_host: request.client_host,
                session_timeout_ms: request.session_timeout_ms,
                rebalance_timeout_ms: request.rebalance_timeout_ms,
                protocols: request.protocols,
                assignment: Bytes::new(),
                session_deadline_ms: now_ms + request.session_timeout_ms,
                arrival: self.arrivals,
                join_ticket: Some(ticket),
                sync_ticket: None,
                awaiting_sync: false,
            },
        );
        self.start_rebalance(now_ms);
        self.maybe_complete_rebalance(now_ms);
    }

    fn rejoin_known(&mut self, request: JoinRequest, ticket: Ticket, now_ms: u64) -> Option<JoinResponse> {
        let member_id = request.member_id.clone();
        if !self.protocols_compatible(&request.protocols, Some(&member_id)) {
            return Some(JoinResponse::error(GroupError::InconsistentGroupProtocol, &member_id));
        }
        let is_leader = self.leader.as_deref() == Some(member_id.as_str());
        let member = self.members.get_mut(&member_id)?;
        let changed = member.protocols != request.protocols;
        member.session_deadline_ms = now_ms + request.session_timeout_ms;
        member.session_timeout_ms = request.session_timeout_ms;
        member.rebalance_timeout_ms = request.rebalance_timeout_ms;
        member.protocols = request.protocols;
        // A follower rejoining with the same protocols gets the current generation back; the
        // leader rejoining in Stable, or anyone changing protocols, starts a rebalance.
        let leader_in_stable = is_leader && self.state == GroupState::Stable;
        match self.state {
            GroupState::Stable | GroupState::CompletingRebalance if !changed && !leader_in_stable => {
                Some(self.current_join_response(&member_id))
            }
            _ => {
                self.park_join(&member_id, ticket);
                self.start_rebalance(now_ms);
                self.maybe_complete_rebalance(now_ms);
                None
            }
        }
    }

    /// A static member (known group.instance.id) rejoined without its member id: it gets a new
    /// id and the old one is fenced. In Stable with unchanged protocols, no rebalance.
    fn rejoin_static(
        &mut self,
        request: JoinRequest,
        old_id: String,
        ticket: Ticket,
        now_ms: u64,
    ) -> Option<JoinResponse> {
        let Some(mut member) = self.members.remove(&old_id) else {
            return Some(JoinResponse::error(GroupError::UnknownMemberId, &request.member_id));
        };
        let new_id = self.new_member_id(&request.client_id, now_ms);
        if self.fenced.len() >= FENCED_IDS_MAX {
            self.fenced.clear();
        }
        self.fenced.insert(old_id.clone());
        self.reply_parked(&mut member, GroupError::FencedInstanceId, &old_id);
        if let Some(instance) = &member.instance_id {
            self.static_members.insert(instance.clone(), new_id.clone());
        }
        if self.leader.as_deref() == Some(old_id.as_str()) {
            self.leader = Some(new_id.clone());
        }
        let changed = member.protocols != request.protocols;
        member.protocols = request.protocols;
        member.session_timeout_ms = request.session_timeout_ms;
        member.rebalance_timeout_ms = request.rebalance_timeout_ms;
        member.session_deadline_ms = now_ms + request.session_timeout_ms;
        self.members.insert(new_id.clone(), member);
        if self.state == GroupState::Stable && !changed {
            return Some(self.current_join_response(&new_id));
        }
        self.park_join(&new_id, ticket);
        self.start_rebalance(now_ms);
        self.maybe_complete_rebalance(now_ms);
        None
    }

    fn park_join(&mut self, member_id: &str, ticket: Ticket) {
        if let Some(member) = self.members.get_mut(member_id) {
            if let Some(previous) = member.join_ticket.replace(ticket) {
                self.replies.push(Reply::Join(previous, JoinResponse::error(GroupError::UnknownMemberId, member_id)));
            }
        }
    }

    /// Answers the parked requests of a member that is gone or fenced.
    fn reply_parked(&mut self, member: &mut Member, error: GroupError, member_id: &str) {
        if let Some(ticket) = member.join_ticket.take() {
            self.replies.push(Reply::Join(ticket, JoinResponse::error(error, member_id)));
        }
        if let Some(ticket) = member.sync_ticket.take() {
            self.replies.push(Reply::Sync(ticket, SyncResponse::error(error)));
        }
    }

    fn start_rebalance(&mut self, now_ms: u64) {
        if self.state == GroupState::PreparingRebalance {
            return;
        }
        let was_empty = self.state == GroupState::Empty;
        // Syncs parked in CompletingRebalance will never get this generation's assignment.
        let parked: Vec<Ticket> = self.members.values_mut().filter_map(|member| member.sync_ticket.take()).collect();
        for ticket in parked {
            self.replies.push(Reply::Sync(ticket, SyncResponse::error(GroupError::RebalanceInProgress)));
        }
        self.state = GroupState::PreparingRebalance;
        self.sync_deadline_ms = None;
        self.rebalance_deadline_ms = Some(now_ms + self.rebalance_timeout_ms());
        self.initial_delay_until_ms = (was_empty && self.limits.initial_rebalance_delay_ms > 0)
            .then(|| now_ms + self.limits.initial_rebalance_delay_ms);
    }

    /// The longest rebalance timeout of the members: how long a rebalance (or a sync) may take.
    fn rebalance_timeout_ms(&self) -> u64 {
        self.members.values().map(|member| member.rebalance_timeout_ms).max().unwrap_or(0)
    }

    /// Every member has a parked join, and no member id handed out with MEMBER_ID_REQUIRED is
    /// still expected back (Kafka's `hasAllMembersJoined`).
    fn everyone_joined(&self) -> bool {
        self.pending_members.is_empty() && self.members.values().all(|member| member.join_ticket.is_some())
    }

    fn maybe_complete_rebalance(&mut self, now_ms: u64) {
        if self.state != GroupState::PreparingRebalance {
            return;
        }
        let delayed = self.initial_delay_until_ms.is_some_and(|until| now_ms < until);
        let everyone_joined = self.everyone_joined();
        let timed_out = self.rebalance_deadline_ms.is_some_and(|deadline| now_ms >= deadline);
        if (everyone_joined && !delayed) || timed_out {
            self.complete_rebalance(now_ms);
        }
    }

    /// Ends PreparingRebalance: members that did not rejoin leave; a new generation starts.
    fn complete_rebalance(&mut self, now_ms: u64) {
        let absent: Vec<String> =
            self.members.iter().filter(|(_, member)| member.join_ticket.is_none()).map(|(id, _)| id.clone()).collect();
        for member_id in absent {
            self.remove_member(&member_id);
        }
        self.rebalance_deadline_ms = None;
        self.initial_delay_until_ms = None;
        self.generation_id += 1;
        if self.members.is_empty() {
            // The protocol type stays, as Kafka keeps it: ListGroups and DescribeGroups still
            // show an emptied consumer group as "consumer".
            self.state = GroupState::Empty;
            self.protocol = None;
            self.leader = None;
            return;
        }
        self.protocol = self.vote_protocol();
        if !self.leader.as_ref().is_some_and(|leader| self.members.contains_key(leader)) {
            self.leader = self.members.iter().min_by_key(|(_, member)| member.arrival).map(|(id, _)| id.clone());
        }
        self.state = GroupState::CompletingRebalance;
        self.sync_deadline_ms = Some(now_ms + self.rebalance_timeout_ms());
        let ids: Vec<String> = self.members.keys().cloned().collect();
        for member_id in ids {
            let response = self.current_join_response(&member_id);
            if let Some(member) = self.members.get_mut(&member_id) {
                member.assignment = Bytes::new();
                member.awaiting_sync = true;
                member.session_deadline_ms = now_ms + member.session_timeout_ms;
                if let Some(ticket) = member.join_ticket.take() {
                    self.replies.push(Reply::Join(ticket, response));
                }
            }
        }
    }

    /// Each member votes for its first protocol that every member supports.
    fn vote_protocol(&self) -> Option<String> {
        let supported_by_all =
            |name: &str| self.members.values().all(|m| m.protocols.iter().any(|(other, _)| other == name));
        let mut votes: Vec<(String, usize, u64)> = Vec::new();
        for member in self.members.values() {
            if let Some((name, _)) = member.protocols.iter().find(|(name, _)| supported_by_all(name)) {
                match votes.iter_mut().find(|(candidate, _, _)| candidate == name) {
                    Some(vote) => vote.1 += 1,
                    None => votes.push((name.clone(), 1, member.arrival)),
                }
            }
        }
        votes.into_iter().max_by(|a, b| a.1.cmp(&b.1).then(b.2.cmp(&a.2))).map(|(name, _, _)| name)
    }

    fn remove_member(&mut self, member_id: &str) {
        let Some(mut member) = self.members.remove(member_id) else { return };
        if let Some(instance) = &member.instance_id {
            if self.static_members.get(instance).map(String::as_str) == Some(member_id) {
                self.static_members.remove(instance);
            }
        }
        self.reply_parked(&mut member, GroupError::UnknownMemberId, member_id);
        if self.leader.as_deref() == Some(member_id) {
            self.leader = None;
        }
    }

    /// After members left: rebalance the rest, or become Empty.
    fn members_changed(&mut self, now_ms: u64) {
        match self.state {
            GroupState::Stable | GroupState::CompletingRebalance if self.members.is_empty() => {
                self.state = GroupState::Empty;
                self.generation_id += 1;
                self.protocol = None;
                self.leader = None;
                self.sync_deadline_ms = None;
            }
            GroupState::Stable | GroupState::CompletingRebalance => self.start_rebalance(now_ms),
            _ => {}
        }
        self.maybe_complete_rebalance(now_ms);
    }

    /// Checks that `member_id` of `generation_id` is a current member; renews its session.
    fn check_member(
        &mut self,
        member_id: &str,
        instance_id: Option<&str>,
        generation_id: i32,
        now_ms: u64,
    ) -> Result<(), GroupError> {
        self.check_fenced(member_id, instance_id)?;
        let member = self.members.get_mut(member_id).ok_or(GroupError::UnknownMemberId)?;
        member.session_deadline_ms = now_ms + member.session_timeout_ms;
        if generation_id != self.generation_id {
            return Err(GroupError::IllegalGeneration);
        }
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    pub fn sync(
        &mut self,
        member_id: &str,
        group_instance_id: Option<&str>,
        generation_id: i32,
        protocol_type: Option<&str>,
        protocol_name: Option<&str>,
        assignments: Vec<(String, Bytes)>,
        ticket: Ticket,
        now_ms: u64,
    ) -> Option<SyncResponse> {
        if let Err(error) = self.check_member(member_id, group_instance_id, generation_id, now_ms) {
            return Some(SyncResponse::error(error));
        }
        let mismatch =
            |given: Option<&str>, ours: &Option<String>| given.is_some_and(|given| Some(given) != ours.as_deref());
        if mismatch(protocol_type, &self.protocol_type) || mismatch(protocol_name, &self.protocol) {
            return Some(SyncResponse::error(GroupError::InconsistentGroupProtocol));
        }
        match self.state {
            GroupState::PreparingRebalance => Some(SyncResponse::error(GroupError::RebalanceInProgress)),
            GroupState::Stable => {
                self.note_synced(member_id);
                Some(self.sync_response(member_id))
            }
            GroupState::Empty | GroupState::Dead => Some(SyncResponse::error(GroupError::UnknownMemberId)),
            GroupState::CompletingRebalance => {
                self.note_synced(member_id);
                if let Some(member) = self.members.get_mut(member_id) {
                    if let Some(previous) = member.sync_ticket.replace(ticket) {
                        self.replies.push(Reply::Sync(previous, SyncResponse::error(GroupError::UnknownMemberId)));
                    }
                }
                if self.leader.as_deref() == Some(member_id) {
                    self.apply_assignments(assignments);
                }
                None
            }
        }
    }

    /// `member_id` sent its SyncGroup; once everyone has, the pending-sync timeout is off.
    fn note_synced(&mut self, member_id: &str) {
        if let Some(member) = self.members.get_mut(member_id) {
            member.awaiting_sync = false;
        }
        if self.members.values().all(|member| !member.awaiting_sync) {
            self.sync_deadline_ms = None;
        }
    }

    /// The leader's assignment: every member gets its share (none: empty), parked syncs are
    /// answered and the group is Stable.
    fn apply_assignments(&mut self, assignments: Vec<(String, Bytes)>) {
        let mut assignments: HashMap<String, Bytes> = assignments.into_iter().collect();
        for (member_id, member) in &mut self.members {
            member.assignment = assignments.remove(member_id).unwrap_or_default();
        }
        self.state = GroupState::Stable;
        let parked: Vec<(String, Ticket)> = self
            .members
            .iter_mut()
            .filter_map(|(id, member)| member.sync_ticket.take().map(|ticket| (id.clone(), ticket)))
            .collect();
        for (member_id, ticket) in parked {
            let response = self.sync_response(&member_id);
            self.replies.push(Reply::Sync(ticket, response));
        }
    }

    fn sync_response(&self, member_id: &str) -> SyncResponse {
        SyncResponse {
            error: None,
            protocol_type: self.protocol_type.clone(),
            protocol_name: self.protocol.clone(),
            assignment: self.members.get(member_id).map(|member| member.assignment.clone()).unwrap_or_default(),
        }
    }

    /// Kafka's rule (GroupCoordinator.handleHeartbeat since 2.x): PreparingRebalance answers
    /// REBALANCE_IN_PROGRESS so the member rejoins; CompletingRebalance counts as a normal
    /// heartbeat, because members heartbeat while they wait for their SyncGroup answer.
    pub fn heartbeat(
        &mut self,
        member_id: &str,
        group_instance_id: Option<&str>,
        generation_id: i32,
        now_ms: u64,
    ) -> Result<(), GroupError> {
        if matches!(self.state, GroupState::Empty | GroupState::Dead) {
            return Err(GroupError::UnknownMemberId);
        }
        self.check_member(member_id, group_instance_id, generation_id, now_ms)?;
        match self.state {
            GroupState::PreparingRebalance => Err(GroupError::RebalanceInProgress),
            _ => Ok(()),
        }
    }

    /// One result per member left, by member id, or by group.instance.id when the id is empty.
    pub fn leave(&mut self, members: &[(String, Option<String>)], now_ms: u64) -> Vec<Result<(), GroupError>> {
        let members_before = self.members.len();
        let results =
            members.iter().map(|(member_id, instance_id)| self.leave_one(member_id, instance_id.as_deref())).collect();
        if self.members.len() < members_before {
            self.members_changed(now_ms);
        } else {
            // A pending member that left may have been all a rebalance was waiting for.
            self.maybe_complete_rebalance(now_ms);
        }
        results
    }

    fn leave_one(&mut self, member_id: &str, instance_id: Option<&str>) -> Result<(), GroupError> {
        let member_id = match (member_id.is_empty(), instance_id) {
            (true, Some(instance)) => self.static_members.get(instance).cloned().ok_or(GroupError::UnknownMemberId)?,
            _ => member_id.to_string(),
        };
        self.check_fenced(&member_id, instance_id)?;
        if self.pending_members.remove(&member_id).is_some() {
            return Ok(());
        }
        if !self.members.contains_key(&member_id) {
            return Err(GroupError::UnknownMemberId);
        }
        self.remove_member(&member_id);
        Ok(())
    }

    /// Expires pending member ids, sessions, the pending-sync timeout and the rebalance
    /// timeout due at `now_ms`.
    pub fn tick(&mut self, now_ms: u64) {
        self.pending_members.retain(|_, deadline| *deadline > now_ms);
        let sync_expired = self.sync_deadline_ms.is_some_and(|deadline| deadline <= now_ms);
        let expired: Vec<String> = self
            .members
            .iter()
            .filter(|(_, member)| {
                let session_expired = member.join_ticket.is_none() && member.session_deadline_ms <= now_ms;
                session_expired || (sync_expired && member.awaiting_sync)
            })
            .map(|(id, _)| id.clone())
            .collect();
        let any_expired = !expired.is_empty();
        for member_id in expired {
            self.remove_member(&member_id);
        }
        if any_expired {
            self.members_changed(now_ms);
        }
        self.maybe_complete_rebalance(now_ms);
    }

    /// The earliest time `tick` has something to do, if any.
    pub fn next_deadline_ms(&self) -> Option<u64> {
        let sessions =
            self.members.values().filter(|member| member.join_ticket.is_none()).map(|m| m.session_deadline_ms);
        let rebalance = if self.state == GroupState::PreparingRebalance {
            let delay = self.initial_delay_until_ms.filter(|_| self.everyone_joined());
            [self.rebalance_deadline_ms, delay].into_iter().flatten().min()
        } else {
            None
        };
        sessions.chain(self.pending_members.values().copied()).chain(rebalance).chain(self.sync_deadline_ms).min()
    }

    /// For OffsetCommit. A "simple" commit (no member id, generation -1) is allowed only while
    /// the group has no members; a commit during CompletingRebalance is refused, as Kafka does.
    pub fn validate_commit(
        &self,
        member_id: &str,
        group_instance_id: Option<&str>,
        generation_id: i32,
    ) -> Result<(), GroupError> {
        if generation_id < 0 && member_id.is_empty() {
            return if self.members.is_empty() { Ok(()) } else { Err(GroupError::UnknownMemberId) };
        }
        self.check_fenced(member_id, group_instance_id)?;
        if !self.members.contains_key(member_id) {
            return Err(GroupError::UnknownMemberId);
        }
        if generation_id != self.generation_id {
            return Err(GroupError::IllegalGeneration);
        }
        if self.state == GroupState::CompletingRebalance {
            return Err(GroupError::RebalanceInProgress);
        }
        Ok(())
    }

    pub fn describe(&self) -> GroupDescription {
        let protocol = self.protocol.clone().unwrap_or_default();
        GroupDescription {
            state: self.state,
            protocol_type: self.protocol_type.clone().unwrap_or_default(),
            protocol: protocol.clone(),
            members: self
                .members
                .iter()
                .map(|(id, member)| MemberDescription {
                    member_id: id.clone(),
                    group_instance_id: member.instance_id.clone(),
                    client_id: member.client_id.clone(),
                    client_host: member.client_host.clone(),
                    metadata: member.metadata_for(&protocol),
                    assignment: member.assignment.clone(),
                })
                .collect(),
        }
    }

    /// Whether a member subscribes to `topic`, read from the consumer protocol's subscription
    /// (the metadata of the chosen protocol: version i16, topics as i32 count + i16-length
    /// strings). Groups of other protocol types subscribe to nothing Kafka knows of.
    pub fn subscribes_to(&self, topic: &str) -> bool {
        if self.protocol_type.as_deref() != Some("consumer") {
            return false;
        }
        let protocol = self.protocol.clone().unwrap_or_default();
        self.members
            .values()
            .any(|member| subscription_topics(&member.metadata_for(&protocol)).iter().any(|t| t == topic))
    }

    /// DeleteGroups: only a group without members can go. Member ids still pending (handed out
    /// with MEMBER_ID_REQUIRED) are forgotten, as is any timer.
    pub fn delete(&mut self) -> Result<(), GroupError> {
        if !self.members.is_empty() {
            return Err(GroupError::NonEmptyGroup);
        }
        self.state = GroupState::Dead;
        self.pending_members.clear();
        self.rebalance_deadline_ms = None;
        self.initial_delay_until_ms = None;
        self.sync_deadline_ms = None;
        Ok(())
    }
}

/// The topics of a consumer protocol subscription; empty if it does not parse.
fn subscription_topics(metadata: &[u8]) -> Vec<String> {
    fn take<'a>(cursor: &mut &'a [u8], count: usize) -> Option<&'a [u8]> {
        let (head, tail) = (cursor.get(..count)?, cursor.get(count..)?);
        *cursor = tail;
        Some(head)
    }
    let parse = || -> Option<Vec<String>> {
        let mut cursor = metadata;
        take(&mut cursor, 2)?; // version
        let count = i32::from_be_bytes(take(&mut cursor, 4)?.try_into().ok()?);
        let mut topics = Vec::new();
        for _ in 0..count.clamp(0, 100_000) {
            let length = i16::from_be_bytes(take(&mut cursor, 2)?.try_into().ok()?);
            let name = take(&mut cursor, usize::try_from(length).ok()?)?;
            topics.push(String::from_utf8_lossy(name).into_owned());
        }
        Some(topics)
    };
    parse().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    const SESSION_MS: u64 = 10_000;
    const REBALANCE_MS: u64 = 30_000;

    fn limits() -> GroupLimits {
        GroupLimits { initial_rebalance_delay_ms: 0, ..GroupLimits::default() }
    }

    fn request(member_id: &str, protocols: &[&str]) -> JoinRequest {
        JoinRequest {
            member_id: member_id.to_string(),
            group_instance_id: None,
            client_id: "client".to_string(),
            client_host: "/127.0.0.1".to_string(),
            session_timeout_ms: SESSION_MS,
            rebalance_timeout_ms: REBALANCE_MS,
            protocol_type: "consumer".to_string(),
            protocols: protocols.iter().map(|name| (name.to_string(), Bytes::from(format!("meta-{name}")))).collect(),
            require_known_member_id: false,
        }
    }

    fn joins(group: &mut Group) -> Vec<(Ticket, JoinResponse)> {
        group
            .take_replies()
            .into_iter()
            .filter_map(|reply| match reply {
                Reply::Join(t, r) => Some((t, r)),
                _ => None,
            })
            .collect()
    }

    fn syncs(group: &mut Group) -> Vec<(Ticket, SyncResponse)> {
        group
            .take_replies()
            .into_iter()
            .filter_map(|reply| match reply {
                Reply::Sync(t, r) => Some((t, r)),
                _ => None,
            })
            .collect()
    }

    /// Two members joined and synced: (group, first id (leader), second id).
    fn stable_pair() -> (Group, String, String) {
        let mut group = Group::new("g", limits());
        assert!(group.join(request("", &["range"]), 1, 0).is_none());
        let first = joins(&mut group).pop().unwrap().1.member_id;
        assert_eq!(group.generation_id(), 1);
        // The second join starts a rebalance: the first must rejoin.
        assert!(group.join(request("", &["range"]), 2, 10).is_none());
        assert!(group.join(request(&first, &["range"]), 3, 20).is_none());
        let replies = joins(&mut group);
        assert_eq!(replies.len(), 2);
        let second = replies.iter().find(|(ticket, _)| *ticket == 2).unwrap().1.member_id.clone();
        assert_eq!(group.state(), GroupState::CompletingRebalance);
        assert!(group.sync(&second, None, 2, None, None, vec![], 4, 30).is_none());
        let assignments = vec![(first.clone(), Bytes::from_static(b"A")), (second.clone(), Bytes::from_static(b"B"))];
        assert!(group.sync(&first, None, 2, None, None, assignments, 5, 30).is_none());
        let answered = syncs(&mut group);
        assert_eq!(answered.len(), 2);
        (group, first, second)
    }

    #[test]
    fn first_member_leads_generation_one_with_its_metadata() {
        let mut group = Group::new("g", limits());
        assert!(group.join(request("", &["range", "roundrobin"]), 7, 0).is_none());
        let (ticket, response) = joins(&mut group).pop().unwrap();
        assert_eq!(ticket, 7);
        assert_eq!(response.generation_id, 1);
        assert_eq!(response.leader, response.member_id);
        assert_eq!(response.protocol_name.as_deref(), Some("range"));
        assert_eq!(response.members.len(), 1);
        assert_eq!(response.members[0].metadata, Bytes::from_static(b"meta-range"));
        assert_eq!(group.state(), GroupState::CompletingRebalance);
    }

    #[test]
    fn leader_sync_hands_every_member_its_own_assignment() {
        let (group, first, second) = stable_pair();
        assert_eq!(group.state(), GroupState::Stable);
        let description = group.describe();
        let assignment = |id: &str| description.members.iter().find(|m| m.member_id == id).unwrap().assignment.clone();
        assert_eq!(assignment(&first), Bytes::from_static(b"A"));
        assert_eq!(assignment(&second), Bytes::from_static(b"B"));
    }

    #[test]
    fn parked_syncs_get_their_assignment_in_the_reply() {
        let mut group = Group::new("g", limits());
        group.join(request("", &["range"]), 1, 0);
        let leader = joins(&mut group).pop().unwrap().1.member_id;
        assert!(group
            .sync(
                &leader,
                None,
                1,
                Some("consumer"),
                Some("range"),
                vec![(leader.clone(), Bytes::from_static(b"X"))],
                2,
                1
            )
            .is_none());
        let (ticket, response) = syncs(&mut group).pop().unwrap();
        assert_eq!((ticket, response.assignment), (2, Bytes::from_static(b"X")));
        // Stable: a later sync is answered at once.
        let again = group.sync(&leader, None, 1, None, None, vec![], 3, 2).unwrap();
        assert_eq!(again.assignment, Bytes::from_static(b"X"));
    }

    #[test]
    fn a_new_member_triggers_a_rebalance_that_heartbeats_report() {
        let (mut group, first, second) = stable_pair();
        assert!(group.join(request("", &["range"]), 10, 100).is_none());
        assert_eq!(group.state(), GroupState::PreparingRebalance);
        assert_eq!(group.heartbeat(&second, None, 2, 110), Err(GroupError::RebalanceInProgress));
        assert_eq!(
            group.sync(&second, None, 2, None, None, vec![], 11, 110).unwrap().error,
            Some(GroupError::RebalanceInProgress)
        );
        group.join(request(&first, &["range"]), 12, 120);
        assert!(joins(&mut group).is_empty(), "still waiting for the second member");
        group.join(request(&second, &["range"]), 13, 130);
        let replies = joins(&mut group);
        assert_eq!(replies.len(), 3);
        assert!(replies.iter().all(|(_, response)| response.generation_id == 3 && response.error.is_none()));
        assert_eq!(replies.iter().filter(|(_, response)| !response.members.is_empty()).count(), 1, "one leader");
    }

    #[test]
    fn a_member_that_does_not_rejoin_is_dropped_at_the_rebalance_timeout() {
        let (mut group, first, second) = stable_pair();
        group.join(request(&first, &["roundrobin", "range"]), 20, 1_000);
        assert_eq!(group.state(), GroupState::PreparingRebalance);
        assert!(group.next_deadline_ms().is_some_and(|deadline| deadline <= 1_000 + REBALANCE_MS));
        group.tick(1_000 + REBALANCE_MS);
        let replies = group.take_replies();
        assert!(replies.iter().any(|reply| matches!(reply, Reply::Join(20, response) if response.generation_id == 3)));
        assert_eq!(group.member_count(), 1);
        assert_eq!(group.heartbeat(&second, None, 2, 1_000 + REBALANCE_MS), Err(GroupError::UnknownMemberId));
    }

    #[test]
    fn session_expiry_in_stable_starts_a_rebalance() {
        let (mut group, first, second) = stable_pair();
        assert_eq!(group.heartbeat(&first, None, 2, 5_000), Ok(()));
        // `second` stays silent past its session.
        group.tick(30 + SESSION_MS);
        assert_eq!(group.member_count(), 1);
        assert_eq!(group.state(), GroupState::PreparingRebalance);
        assert_eq!(group.heartbeat(&second, None, 2, 30 + SESSION_MS), Err(GroupError::UnknownMemberId));
    }

    #[test]
    fn leaving_rebalances_the_rest_and_unknown_members_are_refused() {
        let (mut group, first, second) = stable_pair();
        let results = group.leave(&[(second.clone(), None), ("nobody".to_string(), None)], 50);
        assert_eq!(results, vec![Ok(()), Err(GroupError::UnknownMemberId)]);
        assert_eq!(group.state(), GroupState::PreparingRebalance);
        group.join(request(&first, &["range"]), 30, 60);
        assert_eq!(joins(&mut group).pop().unwrap().1.generation_id, 3);
        group.leave(&[(first, None)], 70);
        assert_eq!(group.state(), GroupState::Empty);
        assert_eq!(group.delete(), Ok(()));
        assert_eq!(group.state(), GroupState::Dead);
    }

    #[test]
    fn member_id_required_then_join_with_it() {
        let mut group = Group::new("g", limits());
        let mut first = request("", &["range"]);
        first.require_known_member_id = true;
        let response = group.join(first.clone(), 1, 0).unwrap();
        assert_eq!(response.error, Some(GroupError::MemberIdRequired));
        assert!(!response.member_id.is_empty());
        first.member_id = response.member_id.clone();
        assert!(group.join(first, 2, 5).is_none());
        assert_eq!(joins(&mut group).pop().unwrap().1.member_id, response.member_id);
        assert_eq!(group.join(request("made-up", &["range"]), 3, 6).unwrap().error, Some(GroupError::UnknownMemberId));
    }

    #[test]
    fn incompatible_protocols_and_bad_timeouts_are_refused() {
        let (mut group, _, _) = stable_pair();
        assert_eq!(
            group.join(request("", &["sticky"]), 40, 100).unwrap().error,
            Some(GroupError::InconsistentGroupProtocol)
        );
        let mut other_type = request("", &["range"]);
        other_type.protocol_type = "connect".to_string();
        assert_eq!(group.join(other_type, 41, 100).unwrap().error, Some(GroupError::InconsistentGroupProtocol));
        let mut short = request("", &["range"]);
        short.session_timeout_ms = 10;
        assert_eq!(group.join(short, 42, 100).unwrap().error, Some(GroupError::InvalidSessionTimeout));
        assert_eq!(group.state(), GroupState::Stable, "refused joins change nothing");
    }

    #[test]
    fn wrong_generations_are_illegal() {
        let (mut group, first, _) = stable_pair();
        assert_eq!(group.heartbeat(&first, None, 1, 40), Err(GroupError::IllegalGeneration));
        assert_eq!(
            group.sync(&first, None, 9, None, None, vec![], 50, 40).unwrap().error,
            Some(GroupError::IllegalGeneration)
        );
        assert_eq!(group.validate_commit(&first, None, 1), Err(GroupError::IllegalGeneration));
        assert_eq!(group.validate_commit(&first, None, 2), Ok(()));
        assert_eq!(
            group.validate_commit("", None, -1),
            Err(GroupError::UnknownMemberId),
            "simple commits need an empty group"
        );
        assert_eq!(Group::new("empty", limits()).validate_commit("", None, -1), Ok(()));
        assert_eq!(group.delete(), Err(GroupError::NonEmptyGroup));
    }

    #[test]
    fn a_static_member_rejoining_fences_its_old_id_without_a_rebalance() {
        let mut group = Group::new("g", limits());
        let mut static_request = request("", &["range"]);
        static_request.group_instance_id = Some("worker-1".to_string());
        group.join(static_request.clone(), 1, 0);
        let old_id = joins(&mut group).pop().unwrap().1.member_id;
        group.sync(&old_id, None, 1, None, None, vec![(old_id.clone(), Bytes::from_static(b"P"))], 2, 1);
        syncs(&mut group);
        assert_eq!(group.state(), GroupState::Stable);
        let response = group.join(static_request, 3, 100).unwrap();
        assert_ne!(response.member_id, old_id);
        assert_eq!(response.generation_id, 1, "no rebalance");
        assert_eq!(group.state(), GroupState::Stable);
        assert_eq!(group.heartbeat(&old_id, None, 1, 101), Err(GroupError::FencedInstanceId));
        assert_eq!(group.heartbeat(&response.member_id, None, 1, 101), Ok(()));
        let synced = group.sync(&response.member_id, None, 1, None, None, vec![], 4, 102).unwrap();
        assert_eq!(synced.assignment, Bytes::from_static(b"P"), "the static member keeps its assignment");
    }

    #[test]
    fn subscriptions_are_read_from_the_consumer_protocol() {
        let mut subscription = vec![0u8, 1, 0, 0, 0, 2];
        for topic in ["orders", "clicks"] {
            subscription.extend_from_slice(&(topic.len() as i16).to_be_bytes());
            subscription.extend_from_slice(topic.as_bytes());
        }
        let mut group = Group::new("g", limits());
        let mut join = request("", &["range"]);
        join.protocols = vec![("range".to_string(), Bytes::from(subscription))];
        group.join(join, 1, 0);
        assert!(group.subscribes_to("orders") && group.subscribes_to("clicks"));
        assert!(!group.subscribes_to("other"));
        assert_eq!(subscription_topics(&[0, 1, 0]), Vec::<String>::new(), "garbage parses to nothing");
    }

    #[test]
    fn the_initial_delay_holds_the_first_generation() {
        let mut group = Group::new("g", GroupLimits { initial_rebalance_delay_ms: 3_000, ..GroupLimits::default() });
        group.join(request("", &["range"]), 1, 0);
        group.join(request("", &["range"]), 2, 100);
        assert!(joins(&mut group).is_empty());
        assert_eq!(group.next_deadline_ms(), Some(3_000));
        group.tick(2_999);
        assert!(joins(&mut group).is_empty());
        group.tick(3_000);
        let replies = joins(&mut group);
        assert_eq!(replies.len(), 2, "both members in generation 1");
        assert!(replies.iter().all(|(_, response)| response.generation_id == 1));
    }

    // ---- Small tests: one transition or one error each. ----

    const DELAY_MS: u64 = 3_000;

    fn delayed_limits() -> GroupLimits {
        GroupLimits { initial_rebalance_delay_ms: DELAY_MS, ..GroupLimits::default() }
    }

    fn request_with(protocols: &[(&str, &str)]) -> JoinRequest {
        let mut join = request("", &[]);
        join.protocols =
            protocols.iter().map(|(name, metadata)| (name.to_string(), Bytes::from(metadata.to_string()))).collect();
        join
    }

    fn static_request(instance: &str) -> JoinRequest {
        JoinRequest { group_instance_id: Some(instance.to_string()), ..request("", &["range"]) }
    }

    fn join_for(replies: &[Reply], ticket: Ticket) -> JoinResponse {
        replies
            .iter()
            .find_map(|reply| match reply {
                Reply::Join(t, response) if *t == ticket => Some(response.clone()),
                _ => None,
            })
            .unwrap()
    }

    fn sync_for(replies: &[Reply], ticket: Ticket) -> SyncResponse {
        replies
            .iter()
            .find_map(|reply| match reply {
                Reply::Sync(t, response) if *t == ticket => Some(response.clone()),
                _ => None,
            })
            .unwrap()
    }

    /// `count` members joined together through the initial delay: CompletingRebalance,
    /// generation 1, member ids in join order (the first leads), replies taken.
    fn completing(count: u64) -> (Group, Vec<String>) {
        let mut group = Group::new("g", delayed_limits());
        for ticket in 0..count {
            assert!(group.join(request("", &["range"]), ticket, ticket).is_none());
        }
        group.tick(DELAY_MS);
        let mut replies = joins(&mut group);
        replies.sort_by_key(|(ticket, _)| *ticket);
        assert_eq!(replies.len() as u64, count);
        assert_eq!(group.state(), GroupState::CompletingRebalance);
        (group, replies.into_iter().map(|(_, response)| response.member_id).collect())
    }

    /// As `completing`, then everyone synced at DELAY_MS + 1; member i got assignment "A{i}".
    fn stable(count: u64) -> (Group, Vec<String>) {
        let (mut group, ids) = completing(count);
        for follower in &ids[1..] {
            assert!(group.sync(follower, None, 1, None, None, vec![], 100, DELAY_MS + 1).is_none());
        }
        let assignments = ids.iter().enumerate().map(|(i, id)| (id.clone(), Bytes::from(format!("A{i}")))).collect();
        assert!(group.sync(&ids[0], None, 1, None, None, assignments, 100, DELAY_MS + 1).is_none());
        assert_eq!(group.take_replies().len() as u64, count);
        assert_eq!(group.state(), GroupState::Stable);
        (group, ids)
    }

    #[test]
    fn two_members_joining_together_share_generation_one_and_one_leader() {
        let mut group = Group::new("g", delayed_limits());
        assert!(group.join(request_with(&[("range", "first")]), 1, 0).is_none());
        assert!(group.join(request_with(&[("range", "second")]), 2, 100).is_none());
        group.tick(DELAY_MS);
        let replies = group.take_replies();
        let (first, second) = (join_for(&replies, 1), join_for(&replies, 2));
        assert_eq!((first.generation_id, second.generation_id), (1, 1));
        assert_eq!(first.leader, first.member_id);
        assert_eq!(second.leader, first.member_id);
        let metadata: Vec<(String, Bytes)> =
            first.members.iter().map(|member| (member.member_id.clone(), member.metadata.clone())).collect();
        assert_eq!(metadata.len(), 2);
        assert!(metadata.contains(&(first.member_id.clone(), Bytes::from_static(b"first"))));
        assert!(metadata.contains(&(second.member_id.clone(), Bytes::from_static(b"second"))));
        assert!(second.members.is_empty(), "followers get no member list");
    }

    #[test]
    fn a_follower_sync_before_the_leader_is_parked() {
        let (mut group, ids) = completing(2);
        assert!(group.sync(&ids[1], None, 1, Some("consumer"), Some("range"), vec![], 7, DELAY_MS).is_none());
        assert!(group.take_replies().is_empty());
        assert_eq!(group.state(), GroupState::CompletingRebalance);
    }

    #[test]
    fn the_leader_sync_answers_each_parked_sync_with_its_own_assignment() {
        let (mut group, ids) = completing(3);
        group.sync(&ids[1], None, 1, None, None, vec![], 11, DELAY_MS);
        group.sync(&ids[2], None, 1, None, None, vec![], 12, DELAY_MS);
        let assignments =
            ids.iter().map(|id| (id.clone(), Bytes::from(format!("for-{id}")))).collect::<Vec<(String, Bytes)>>();
        group.sync(&ids[0], None, 1, None, None, assignments, 10, DELAY_MS);
        let replies = group.take_replies();
        assert_eq!(replies.len(), 3);
        for (ticket, id) in [10, 11, 12].into_iter().zip(&ids) {
            let response = sync_for(&replies, ticket);
            assert_eq!(response.error, None);
            assert_eq!(response.assignment, Bytes::from(format!("for-{id}")));
            assert_eq!(response.protocol_name.as_deref(), Some("range"));
        }
        assert_eq!(group.state(), GroupState::Stable);
    }

    #[test]
    fn a_member_missing_from_the_assignment_gets_an_empty_one() {
        let (mut group, ids) = completing(2);
        group.sync(&ids[1], None, 1, None, None, vec![], 11, DELAY_MS);
        group.sync(&ids[0], None, 1, None, None, vec![(ids[0].clone(), Bytes::from_static(b"all"))], 10, DELAY_MS);
        let replies = group.take_replies();
        assert_eq!(sync_for(&replies, 11).assignment, Bytes::new());
        assert_eq!(sync_for(&replies, 10).assignment, Bytes::from_static(b"all"));
    }

    #[test]
    fn sync_from_an_unknown_member_is_refused() {
        let (mut group, _) = completing(1);
        let response = group.sync("stranger", None, 1, None, None, vec![], 5, DELAY_MS).unwrap();
        assert_eq!(response.error, Some(GroupError::UnknownMemberId));
    }

    #[test]
    fn sync_naming_another_protocol_is_inconsistent() {
        let (mut group, ids) = completing(1);
        let response = group.sync(&ids[0], None, 1, None, Some("roundrobin"), vec![], 5, DELAY_MS).unwrap();
        assert_eq!(response.error, Some(GroupError::InconsistentGroupProtocol));
        let response = group.sync(&ids[0], None, 1, Some("connect"), None, vec![], 6, DELAY_MS).unwrap();
        assert_eq!(response.error, Some(GroupError::InconsistentGroupProtocol));
    }

    #[test]
    fn a_heartbeat_while_completing_the_rebalance_is_fine() {
        let (mut group, ids) = completing(2);
        assert_eq!(group.heartbeat(&ids[1], None, 1, DELAY_MS + 1), Ok(()));
    }

    #[test]
    fn a_heartbeat_from_an_unknown_member_is_refused() {
        let (mut group, _) = stable(1);
        assert_eq!(group.heartbeat("stranger", None, 1, DELAY_MS + 2), Err(GroupError::UnknownMemberId));
    }

    #[test]
    fn a_heartbeat_renews_the_session() {
        let (mut group, ids) = stable(1);
        assert_eq!(group.heartbeat(&ids[0], None, 1, DELAY_MS + 5_000), Ok(()));
        group.tick(DELAY_MS + 1 + SESSION_MS);
        assert_eq!(group.member_count(), 1, "the heartbeat moved the deadline");
        group.tick(DELAY_MS + 5_000 + SESSION_MS);
        assert_eq!(group.member_count(), 0);
        assert_eq!(group.state(), GroupState::Empty);
    }

    #[test]
    fn a_follower_rejoining_unchanged_in_stable_gets_the_current_generation() {
        let (mut group, ids) = stable(2);
        let response = group.join(request(&ids[1], &["range"]), 20, 5_000).unwrap();
        assert_eq!((response.error, response.generation_id), (None, 1));
        assert_eq!(response.leader, ids[0]);
        assert!(response.members.is_empty());
        assert_eq!(group.state(), GroupState::Stable);
    }

    #[test]
    fn the_leader_rejoining_in_stable_starts_a_rebalance() {
        let (mut group, ids) = stable(2);
        assert!(group.join(request(&ids[0], &["range"]), 20, 5_000).is_none());
        assert_eq!(group.state(), GroupState::PreparingRebalance);
    }

    #[test]
    fn a_follower_changing_its_protocols_starts_a_rebalance() {
        let (mut group, ids) = stable(2);
        let mut changed = request_with(&[("range", "new-topics")]);
        changed.member_id = ids[1].clone();
        assert!(group.join(changed, 21, 5_000).is_none());
        assert_eq!(group.state(), GroupState::PreparingRebalance);
    }

    #[test]
    fn rejoining_unchanged_while_completing_gets_the_current_generation() {
        let (mut group, ids) = completing(2);
        let leader = group.join(request(&ids[0], &["range"]), 20, DELAY_MS + 1).unwrap();
        assert_eq!(leader.generation_id, 1);
        assert_eq!(leader.members.len(), 2, "the leader gets the member list again");
        let follower = group.join(request(&ids[1], &["range"]), 21, DELAY_MS + 1).unwrap();
        assert_eq!((follower.generation_id, follower.members.len()), (1, 0));
        assert_eq!(group.state(), GroupState::CompletingRebalance);
    }

    #[test]
    fn a_new_member_while_completing_sends_parked_syncs_back_to_rejoin() {
        let (mut group, ids) = completing(2);
        group.sync(&ids[1], None, 1, None, None, vec![], 11, DELAY_MS);
        assert!(group.join(request("", &["range"]), 12, DELAY_MS + 1).is_none());
        assert_eq!(group.state(), GroupState::PreparingRebalance);
        let replies = group.take_replies();
        assert_eq!(sync_for(&replies, 11).error, Some(GroupError::RebalanceInProgress));
    }

    #[test]
    fn a_parked_join_does_not_expire_with_the_session() {
        let (mut group, ids) = stable(2);
        group.join(request(&ids[0], &["range"]), 20, 5_000);
        assert_eq!(group.heartbeat(&ids[1], None, 1, 12_000), Err(GroupError::RebalanceInProgress));
        group.tick(5_000 + SESSION_MS + 1);
        assert_eq!(group.member_count(), 2, "the parked leader is waiting, not gone");
        assert_eq!(group.state(), GroupState::PreparingRebalance);
    }

    #[test]
    fn session_expiry_while_preparing_completes_the_rebalance_without_the_member() {
        let (mut group, ids) = stable(2);
        group.join(request(&ids[0], &["range"]), 20, 5_000);
        group.tick(DELAY_MS + 1 + SESSION_MS);
        let response = joins(&mut group).pop().unwrap().1;
        assert_eq!((response.generation_id, response.members.len()), (2, 1));
        assert_eq!(group.state(), GroupState::CompletingRebalance);
    }

    #[test]
    fn the_last_missing_member_leaving_completes_the_rebalance() {
        let (mut group, ids) = stable(2);
        group.join(request(&ids[0], &["range"]), 20, 5_000);
        assert_eq!(group.leave(&[(ids[1].clone(), None)], 5_001), vec![Ok(())]);
        assert_eq!(join_for(&group.take_replies(), 20).generation_id, 2);
    }

    #[test]
    fn the_leader_stays_leader_across_a_rebalance() {
        let (mut group, ids) = stable(2);
        group.join(request(&ids[1], &["range", "roundrobin"]), 21, 5_000);
        group.join(request(&ids[0], &["range"]), 20, 5_001);
        let replies = group.take_replies();
        assert_eq!(join_for(&replies, 21).leader, ids[0]);
        assert_eq!(join_for(&replies, 20).members.len(), 2);
    }

    #[test]
    fn a_new_leader_is_chosen_when_the_leader_leaves() {
        let (mut group, ids) = stable(2);
        group.leave(&[(ids[0].clone(), None)], 5_000);
        group.join(request(&ids[1], &["range"]), 21, 5_001);
        let response = join_for(&group.take_replies(), 21);
        assert_eq!(response.leader, ids[1]);
        assert_eq!(response.members.len(), 1);
    }

    #[test]
    fn the_protocol_is_chosen_by_majority_vote() {
        let mut group = Group::new("g", delayed_limits());
        group.join(request("", &["roundrobin", "range"]), 1, 0);
        group.join(request("", &["range", "roundrobin"]), 2, 1);
        group.join(request("", &["range", "roundrobin", "sticky"]), 3, 2);
        group.tick(DELAY_MS);
        assert_eq!(join_for(&group.take_replies(), 1).protocol_name.as_deref(), Some("range"));
    }

    #[test]
    fn a_tied_vote_goes_to_the_earliest_voter() {
        let mut group = Group::new("g", delayed_limits());
        group.join(request("", &["roundrobin", "range"]), 1, 0);
        group.join(request("", &["range", "roundrobin"]), 2, 1);
        group.tick(DELAY_MS);
        assert_eq!(group.describe().protocol, "roundrobin");
    }

    #[test]
    fn leaving_answers_the_members_parked_join() {
        let (mut group, ids) = stable(2);
        group.join(request(&ids[0], &["range"]), 20, 5_000);
        group.leave(&[(ids[0].clone(), None)], 5_001);
        let replies = group.take_replies();
        assert_eq!(join_for(&replies, 20).error, Some(GroupError::UnknownMemberId));
    }

    #[test]
    fn the_last_member_leaving_empties_the_group_and_bumps_the_generation() {
        let (mut group, ids) = stable(1);
        assert_eq!(group.leave(&[(ids[0].clone(), None)], 5_000), vec![Ok(())]);
        assert_eq!((group.state(), group.generation_id()), (GroupState::Empty, 2));
        assert_eq!(group.protocol_type(), Some("consumer"), "kept, as Kafka keeps it");
        assert_eq!(group.next_deadline_ms(), None);
    }

    #[test]
    fn an_emptied_group_takes_the_type_of_its_next_first_member() {
        let (mut group, ids) = stable(1);
        group.leave(&[(ids[0].clone(), None)], 5_000);
        let mut connect = request("", &["sessioned"]);
        connect.protocol_type = "connect".to_string();
        assert!(group.join(connect, 30, 5_001).is_none_or(|response| response.error.is_none()));
        assert_eq!(group.protocol_type(), Some("connect"));
    }

    #[test]
    fn duplicate_join_while_parked_answers_the_older_ticket() {
        let (mut group, ids) = stable(2);
        group.join(request(&ids[0], &["range"]), 20, 5_000);
        group.join(request(&ids[0], &["range"]), 21, 5_001);
        group.join(request(&ids[1], &["range"]), 22, 5_002);
        let replies = group.take_replies();
        assert!(join_for(&replies, 20).error.is_some(), "the older ticket is not left hanging");
        assert_eq!(join_for(&replies, 21).generation_id, 2);
    }

    #[test]
    fn a_pending_member_id_expires_after_its_session_timeout() {
        let mut group = Group::new("g", limits());
        let mut join = request("", &["range"]);
        join.require_known_member_id = true;
        let member_id = group.join(join.clone(), 1, 0).unwrap().member_id;
        assert_eq!(group.next_deadline_ms(), Some(SESSION_MS));
        group.tick(SESSION_MS);
        assert_eq!(group.next_deadline_ms(), None);
        join.member_id = member_id;
        assert_eq!(group.join(join, 2, SESSION_MS).unwrap().error, Some(GroupError::UnknownMemberId));
    }

    #[test]
    fn a_pending_member_refused_once_keeps_its_member_id() {
        let (mut group, _) = stable(1);
        let mut join = request("", &["sticky"]);
        join.require_known_member_id = true;
        let member_id = group.join(join.clone(), 1, 5_000).unwrap().member_id;
        join.member_id = member_id.clone();
        assert_eq!(group.join(join.clone(), 2, 5_001).unwrap().error, Some(GroupError::InconsistentGroupProtocol));
        join.protocols = request("", &["range"]).protocols;
        assert!(group.join(join, 3, 5_002).is_none(), "accepted with the same id");
        assert_eq!(group.member_count(), 2);
    }

    #[test]
    fn a_rebalance_waits_for_pending_member_ids() {
        let (mut group, ids) = stable(2);
        let mut newcomer = request("", &["range"]);
        newcomer.require_known_member_id = true;
        newcomer.member_id = group.join(newcomer.clone(), 30, 5_000).unwrap().member_id;
        group.join(request(&ids[0], &["range"]), 31, 5_001);
        group.join(request(&ids[1], &["range"]), 32, 5_002);
        assert!(group.take_replies().is_empty(), "still expecting the newcomer");
        group.join(newcomer, 33, 5_003);
        let replies = group.take_replies();
        assert_eq!(replies.len(), 3);
        assert_eq!(join_for(&replies, 31).members.len(), 3);
    }

    #[test]
    fn a_pending_member_may_leave() {
        let mut group = Group::new("g", limits());
        let mut join = request("", &["range"]);
        join.require_known_member_id = true;
        join.member_id = group.join(join.clone(), 1, 0).unwrap().member_id;
        assert_eq!(group.leave(&[(join.member_id.clone(), None)], 1), vec![Ok(())]);
        assert_eq!(group.join(join, 2, 2).unwrap().error, Some(GroupError::UnknownMemberId));
    }

    #[test]
    fn a_full_group_refuses_new_members() {
        let mut group = Group::new("g", GroupLimits { members_max: 1, ..limits() });
        assert!(group.join(request("", &["range"]), 1, 0).is_none());
        assert_eq!(group.join(request("", &["range"]), 2, 1).unwrap().error, Some(GroupError::GroupMaxSizeReached));
        let mut pending = request("", &["range"]);
        pending.require_known_member_id = true;
        assert_eq!(group.join(pending, 3, 2).unwrap().error, Some(GroupError::GroupMaxSizeReached));
        assert_eq!(group.member_count(), 1);
    }

    #[test]
    fn a_session_timeout_above_the_maximum_is_invalid() {
        let mut group = Group::new("g", limits());
        let mut join = request("", &["range"]);
        join.session_timeout_ms = GroupLimits::default().session_timeout_ms_max + 1;
        assert_eq!(group.join(join, 1, 0).unwrap().error, Some(GroupError::InvalidSessionTimeout));
        assert_eq!(group.state(), GroupState::Empty);
    }

    #[test]
    fn a_join_without_protocols_is_inconsistent() {
        let mut group = Group::new("g", limits());
        assert_eq!(group.join(request("", &[]), 1, 0).unwrap().error, Some(GroupError::InconsistentGroupProtocol));
        let mut no_type = request("", &["range"]);
        no_type.protocol_type = String::new();
        assert_eq!(group.join(no_type, 2, 0).unwrap().error, Some(GroupError::InconsistentGroupProtocol));
    }

    #[test]
    fn a_member_switching_to_a_protocol_nobody_else_has_is_inconsistent() {
        let (mut group, ids) = stable(2);
        let response = group.join(request(&ids[1], &["sticky"]), 20, 5_000).unwrap();
        assert_eq!(response.error, Some(GroupError::InconsistentGroupProtocol));
        assert_eq!(group.state(), GroupState::Stable);
    }

    #[test]
    fn member_ids_are_unique_and_start_with_the_client_id() {
        let mut group = Group::new("g", limits());
        let mut join = request("", &["range"]);
        join.require_known_member_id = true;
        let ids: HashSet<String> =
            (0..100).map(|ticket| group.join(join.clone(), ticket, 7).unwrap().member_id).collect();
        assert_eq!(ids.len(), 100);
        assert!(ids.iter().all(|id| id.starts_with("client-")));
    }

    #[test]
    fn a_static_leader_rejoining_in_stable_gets_the_member_list() {
        let mut group = Group::new("g", limits());
        group.join(static_request("worker-1"), 1, 0);
        let old_id = joins(&mut group).pop().unwrap().1.member_id;
        group.sync(&old_id, None, 1, None, None, vec![], 2, 1);
        let response = group.join(static_request("worker-1"), 3, 100).unwrap();
        assert_eq!(response.leader, response.member_id);
        assert_eq!(response.members.len(), 1);
        assert_eq!(response.members[0].member_id, response.member_id);
        assert_eq!(response.members[0].group_instance_id.as_deref(), Some("worker-1"));
    }

    #[test]
    fn a_static_member_rejoining_with_new_protocols_rebalances() {
        let mut group = Group::new("g", limits());
        group.join(static_request("worker-1"), 1, 0);
        let old_id = joins(&mut group).pop().unwrap().1.member_id;
        group.sync(&old_id, None, 1, None, None, vec![], 2, 1);
        let changed = JoinRequest { protocols: request("", &["roundrobin"]).protocols, ..static_request("worker-1") };
        assert!(group.join(changed, 3, 100).is_none());
        let response = joins(&mut group).pop().unwrap().1;
        assert_eq!((response.generation_id, response.protocol_name.as_deref()), (2, Some("roundrobin")));
        assert_ne!(response.member_id, old_id);
    }

    #[test]
    fn a_static_member_rejoining_fences_its_parked_join() {
        let mut group = Group::new("g", delayed_limits());
        group.join(static_request("worker-1"), 1, 0);
        group.join(request("", &["range"]), 2, 0);
        group.tick(DELAY_MS);
        let replies = group.take_replies();
        let (static_id, dynamic_id) = (join_for(&replies, 1).member_id, join_for(&replies, 2).member_id);
        group.sync(&dynamic_id, None, 1, None, None, vec![], 3, DELAY_MS);
        group.sync(&static_id, None, 1, None, None, vec![], 4, DELAY_MS);
        assert_eq!(group.take_replies().len(), 2);
        // The static leader's rejoin starts a rebalance and parks; then its process restarts.
        let rejoin = JoinRequest { member_id: static_id.clone(), ..static_request("worker-1") };
        assert!(group.join(rejoin, 5, DELAY_MS + 1).is_none());
        assert_eq!(group.state(), GroupState::PreparingRebalance);
        assert!(group.join(static_request("worker-1"), 6, DELAY_MS + 2).is_none());
        assert_eq!(join_for(&group.take_replies(), 5).error, Some(GroupError::FencedInstanceId));
        group.join(request(&dynamic_id, &["range"]), 7, DELAY_MS + 3);
        let replies = group.take_replies();
        let restarted = join_for(&replies, 6);
        assert_eq!((restarted.error, restarted.generation_id), (None, 2));
        assert_ne!(restarted.member_id, static_id);
        assert_eq!(restarted.leader, restarted.member_id, "the static member keeps the lead");
    }

    #[test]
    fn a_stale_member_id_with_a_known_instance_id_is_fenced() {
        let mut group = Group::new("g", limits());
        group.join(static_request("worker-1"), 1, 0);
        let member_id = joins(&mut group).pop().unwrap().1.member_id;
        assert_eq!(group.heartbeat("someone-else", Some("worker-1"), 1, 1), Err(GroupError::FencedInstanceId));
        assert_eq!(group.validate_commit("someone-else", Some("worker-1"), 1), Err(GroupError::FencedInstanceId));
        let stale = JoinRequest { member_id: "someone-else".to_string(), ..static_request("worker-1") };
        assert_eq!(group.join(stale, 2, 1).unwrap().error, Some(GroupError::FencedInstanceId));
        assert_eq!(group.heartbeat(&member_id, Some("worker-1"), 1, 1), Ok(()));
    }

    #[test]
    fn a_static_member_whose_session_expires_is_removed() {
        let mut group = Group::new("g", limits());
        group.join(static_request("worker-1"), 1, 0);
        joins(&mut group);
        group.tick(SESSION_MS);
        assert_eq!((group.state(), group.member_count()), (GroupState::Empty, 0));
        assert!(group.join(static_request("worker-1"), 2, SESSION_MS + 1).is_none(), "joins as a new member");
        assert_eq!(joins(&mut group).pop().unwrap().1.generation_id, 3);
    }

    #[test]
    fn a_static_member_leaves_by_instance_id() {
        let mut group = Group::new("g", limits());
        group.join(static_request("worker-1"), 1, 0);
        let member_id = joins(&mut group).pop().unwrap().1.member_id;
        assert_eq!(
            group.leave(&[("stale-id".to_string(), Some("worker-1".to_string()))], 1),
            vec![Err(GroupError::FencedInstanceId)]
        );
        assert_eq!(group.leave(&[(String::new(), Some("worker-1".to_string()))], 2), vec![Ok(())]);
        assert_eq!(group.member_count(), 0);
        assert_eq!(group.heartbeat(&member_id, None, 1, 3), Err(GroupError::UnknownMemberId));
    }

    #[test]
    fn a_commit_while_completing_the_rebalance_is_refused() {
        let (group, ids) = completing(2);
        assert_eq!(group.validate_commit(&ids[1], None, 1), Err(GroupError::RebalanceInProgress));
    }

    #[test]
    fn a_commit_while_preparing_a_rebalance_is_allowed_for_the_current_generation() {
        let (mut group, ids) = stable(2);
        group.join(request(&ids[0], &["range"]), 20, 5_000);
        assert_eq!(group.state(), GroupState::PreparingRebalance);
        assert_eq!(group.validate_commit(&ids[1], None, 1), Ok(()), "members commit before they rejoin");
        assert_eq!(group.validate_commit("stranger", None, 1), Err(GroupError::UnknownMemberId));
    }

    #[test]
    fn a_simple_commit_is_allowed_once_the_group_is_empty_again() {
        let (mut group, ids) = stable(1);
        assert_eq!(group.validate_commit("", None, -1), Err(GroupError::UnknownMemberId));
        group.leave(&[(ids[0].clone(), None)], 5_000);
        assert_eq!(group.validate_commit("", None, -1), Ok(()));
        assert_eq!(group.validate_commit(&ids[0], None, 1), Err(GroupError::UnknownMemberId));
    }

    #[test]
    fn a_deleted_group_is_dead_and_refuses_joins() {
        let mut group = Group::new("g", limits());
        assert_eq!(group.delete(), Ok(()));
        assert_eq!(group.state(), GroupState::Dead);
        assert_eq!(group.join(request("", &["range"]), 1, 0).unwrap().error, Some(GroupError::UnknownMemberId));
    }

    #[test]
    fn a_group_with_members_cannot_be_deleted() {
        let (mut group, _) = completing(1);
        assert_eq!(group.delete(), Err(GroupError::NonEmptyGroup));
        assert_eq!(group.state(), GroupState::CompletingRebalance);
    }

    #[test]
    fn next_deadline_is_none_for_an_empty_group() {
        assert_eq!(Group::new("g", limits()).next_deadline_ms(), None);
    }

    #[test]
    fn next_deadline_in_stable_is_the_earliest_session_expiry() {
        let (mut group, ids) = stable(2);
        group.heartbeat(&ids[0], None, 1, 5_000).unwrap();
        assert_eq!(group.next_deadline_ms(), Some(DELAY_MS + 1 + SESSION_MS), "the second member's session");
    }

    #[test]
    fn next_deadline_while_preparing_includes_the_rebalance_timeout() {
        let (mut group, ids) = stable(2);
        group.join(request(&ids[0], &["range"]), 20, 5_000);
        assert_eq!(group.next_deadline_ms(), Some(DELAY_MS + 1 + SESSION_MS), "the follower's session first");
        assert_eq!(group.heartbeat(&ids[1], None, 1, 30_000), Err(GroupError::RebalanceInProgress));
        assert_eq!(group.next_deadline_ms(), Some(5_000 + REBALANCE_MS), "the rebalance timeout comes first now");
    }

    #[test]
    fn next_deadline_while_completing_includes_the_sync_timeout() {
        let (mut group, ids) = completing(1);
        group.heartbeat(&ids[0], None, 1, DELAY_MS + REBALANCE_MS - SESSION_MS + 1).unwrap();
        assert_eq!(group.next_deadline_ms(), Some(DELAY_MS + REBALANCE_MS));
    }

    #[test]
    fn a_leader_that_never_syncs_is_removed_at_the_rebalance_timeout() {
        let (mut group, ids) = completing(2);
        group.sync(&ids[1], None, 1, None, None, vec![], 11, DELAY_MS + 1);
        for now_ms in [10_000, 20_000, 30_000] {
            assert_eq!(group.heartbeat(&ids[0], None, 1, now_ms), Ok(()));
            assert_eq!(group.heartbeat(&ids[1], None, 1, now_ms), Ok(()));
        }
        group.tick(DELAY_MS + REBALANCE_MS);
        assert_eq!(group.member_count(), 1);
        assert_eq!(group.state(), GroupState::PreparingRebalance);
        assert_eq!(sync_for(&group.take_replies(), 11).error, Some(GroupError::RebalanceInProgress));
        assert_eq!(group.heartbeat(&ids[0], None, 1, DELAY_MS + REBALANCE_MS), Err(GroupError::UnknownMemberId));
    }

    #[test]
    fn describe_reports_each_member_with_its_chosen_metadata_and_assignment() {
        let (group, ids) = stable(2);
        let description = group.describe();
        assert_eq!(description.state, GroupState::Stable);
        assert_eq!((description.protocol_type.as_str(), description.protocol.as_str()), ("consumer", "range"));
        assert_eq!(description.members.len(), 2);
        for (i, id) in ids.iter().enumerate() {
            let member = description.members.iter().find(|member| &member.member_id == id).unwrap();
            assert_eq!((member.client_id.as_str(), member.client_host.as_str()), ("client", "/127.0.0.1"));
            assert_eq!(member.metadata, Bytes::from_static(b"meta-range"));
            assert_eq!(member.assignment, Bytes::from(format!("A{i}")));
        }
    }
}
