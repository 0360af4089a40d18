//! The classic consumer-group protocol (JoinGroup/SyncGroup/Heartbeat/LeaveGroup) for one group,
//! as a state machine with time passed in. No I/O: replies go to the channels the requests came
//! with, and the coordinator calls `tick` to run timeouts.
//!
//! States follow Kafka: Empty → PreparingRebalance (members (re)join) → CompletingRebalance
//! (waiting for the leader's assignment) → Stable. A rebalance completes when every known member
//! has rejoined or its deadline passes; members that did not rejoin are dropped.

use std::collections::{BTreeMap, HashSet};
use std::time::{Duration, Instant};

use bytes::Bytes;
use indexmap::IndexMap;

use super::offsets_log::{GroupSnapshot, MemberSnapshot};
use super::{ErrorCode, JoinOutcome, JoinRequest, SyncOutcome, SyncRequest};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GroupState {
    Empty,
    PreparingRebalance,
    CompletingRebalance,
    Stable,
}

impl GroupState {
    /// The state's name as Kafka's tools print it.
    pub fn name(self) -> &'static str {
        match self {
            GroupState::Empty => "Empty",
            GroupState::PreparingRebalance => "PreparingRebalance",
            GroupState::CompletingRebalance => "CompletingRebalance",
            GroupState::Stable => "Stable",
        }
    }
}

pub struct Member {
    pub id: String,
    pub instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub session_timeout: Duration,
    pub rebalance_timeout: Duration,
    pub protocols: Vec<(String, Bytes)>,
    pub assignment: Bytes,
    last_heartbeat: Instant,
    pending_join: Option<flume::Sender<JoinOutcome>>,
    pending_sync: Option<flume::Sender<SyncOutcome>>,
}

impl Member {
    /// This member's metadata for `protocol`.
    pub fn metadata(&self, protocol: &str) -> Bytes {
        self.protocols
            .iter()
            .find(|(name, _)| name == protocol)
            .map(|(_, metadata)| metadata.clone())
            .unwrap_or_default()
    }
}

/// A committed offset as OffsetCommit stored it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CommittedOffset {
    pub offset: i64,
    pub leader_epoch: i32,
    pub metadata: String,
    pub commit_timestamp: i64,
}

pub struct Group {
    pub id: String,
    pub state: GroupState,
    pub generation: i32,
    pub protocol_type: Option<String>,
    pub protocol: Option<String>,
    pub leader: Option<String>,
    pub members: IndexMap<String, Member>,
    pub offsets: BTreeMap<(String, i32), CommittedOffset>,
    /// Member ids handed out with MEMBER_ID_REQUIRED, awaiting their real join.
    pending_member_ids: HashSet<String>,
    rebalance_deadline: Option<Instant>,
    /// During the initial delay of a new group, wait out the deadline even if all have joined.
    initial_rebalance: bool,
}

impl Group {
    pub fn new(id: String) -> Group {
        Group {
            id,
            state: GroupState::Empty,
            generation: 0,
            protocol_type: None,
            protocol: None,
            leader: None,
            members: IndexMap::new(),
            offsets: BTreeMap::new(),
            pending_member_ids: HashSet::new(),
            rebalance_deadline: None,
            initial_rebalance: false,
        }
    }

    /// Handles a JoinGroup. `new_member_id` is the id to give a member joining without one.
    pub fn join(
        &mut self,
        now: Instant,
        request: JoinRequest,
        new_member_id: String,
        initial_delay: Duration,
        reply: flume::Sender<JoinOutcome>,
    ) {
        if let Err(code) = self.check_protocols(&request) {
            let _ = reply.send(JoinOutcome::error(code, &request.member_id));
            return;
        }
        let member_id = match self.admit(&request, new_member_id) {
            Admission::Known(member_id) => member_id,
            Admission::StaticRejoin(member_id) => {
                let member = self.members.get_mut(&member_id).expect("admitted");
                member.last_heartbeat = now;
                let _ = reply.send(self.current_generation_for(&member_id));
                return;
            }
            Admission::IdRequired(member_id) => {
                self.pending_member_ids.insert(member_id.clone());
                let _ = reply.send(JoinOutcome::error(ErrorCode::MemberIdRequired, &member_id));
                return;
            }
            Admission::Refused(code) => {
                let _ = reply.send(JoinOutcome::error(code, &request.member_id));
                return;
            }
        };
        self.pending_member_ids.remove(&member_id);
        if self.rejoin_needs_no_rebalance(&member_id, &request) {
            let member = self.members.get_mut(&member_id).expect("a known member");
            member.last_heartbeat = now;
            let _ = reply.send(self.current_generation_for(&member_id));
            return;
        }
        let member = self
            .members
            .entry(member_id.clone())
            .or_insert_with(|| Member {
                id: member_id.clone(),
                instance_id: request.instance_id.clone(),
                client_id: request.client_id.clone(),
                client_host: request.client_host.clone(),
                session_timeout: request.session_timeout,
                rebalance_timeout: request.rebalance_timeout,
                protocols: Vec::new(),
                assignment: Bytes::new(),
                last_heartbeat: now,
                pending_join: None,
                pending_sync: None,
            });
        member.protocols = request.protocols;
        member.session_timeout = request.session_timeout;
        member.rebalance_timeout = request.rebalance_timeout;
        member.last_heartbeat = now;
        if let Some(previous) = member.pending_join.replace(reply) {
            let _ = previous.send(JoinOutcome::error(
                ErrorCode::RebalanceInProgress,
                &member_id,
            ));
        }
        self.protocol_type.get_or_insert(request.protocol_type);
        if self.state != GroupState::PreparingRebalance {
            self.prepare_rebalance(now, initial_delay);
        }
        self.try_complete_join(now);
    }

    /// Handles a SyncGroup. When the leader's assignment completes the generation, the answers
    /// to every member are returned instead of sent, so the caller can store the new generation
    /// before any member hears of it.
    pub fn sync(
        &mut self,
        request: SyncRequest,
        reply: flume::Sender<SyncOutcome>,
    ) -> DeferredSyncs {
        let Some(member) = self.members.get_mut(&request.member_id) else {
            let _ = reply.send(SyncOutcome::error(ErrorCode::UnknownMemberId));
            return DeferredSyncs::default();
        };
        if request.generation != self.generation {
            let _ = reply.send(SyncOutcome::error(ErrorCode::IllegalGeneration));
            return DeferredSyncs::default();
        }
        match self.state {
            GroupState::Empty => {
                let _ = reply.send(SyncOutcome::error(ErrorCode::UnknownMemberId));
            }
            GroupState::PreparingRebalance => {
                let _ = reply.send(SyncOutcome::error(ErrorCode::RebalanceInProgress));
            }
            GroupState::Stable => {
                let assignment = member.assignment.clone();
                let _ = reply.send(self.sync_outcome(assignment));
            }
            GroupState::CompletingRebalance => {
                member.pending_sync = Some(reply);
                if self.leader.as_deref() == Some(request.member_id.as_str()) {
                    return self.complete_sync(request.assignments);
                }
            }
        }
        DeferredSyncs::default()
    }

    pub fn heartbeat(&mut self, now: Instant, member_id: &str, generation: i32) -> ErrorCode {
        let Some(member) = self.members.get_mut(member_id) else {
            return ErrorCode::UnknownMemberId;
        };
        member.last_heartbeat = now;
        if generation != self.generation {
            return ErrorCode::IllegalGeneration;
        }
        match self.state {
            GroupState::PreparingRebalance => ErrorCode::RebalanceInProgress,
            GroupState::Empty => ErrorCode::UnknownMemberId,
            GroupState::CompletingRebalance | GroupState::Stable => ErrorCode::None,
        }
    }

    /// Removes a member (by id, or by instance id when the id is empty).
    pub fn leave(&mut self, now: Instant, member_id: &str, instance_id: Option<&str>) -> ErrorCode {
        let found = match (member_id, instance_id) {
            ("", Some(instance)) => self
                .members
                .values()
                .find(|member| member.instance_id.as_deref() == Some(instance))
                .map(|member| member.id.clone()),
            (id, _) => self.members.contains_key(id).then(|| id.to_string()),
        };
        let Some(member_id) = found else {
            return ErrorCode::UnknownMemberId;
        };
        self.remove_member(now, &member_id);
        ErrorCode::None
    }

    /// May a commit from (`member_id`, `generation`) be stored? Kafka's rules: generation -1 is
    /// an admin's or a standalone consumer's commit, taken while the group has no members
    /// whatever member id it names (a KIP-848 consumer using `assign()` sends its own); with
    /// members, a commit naming no member and no generation is UNKNOWN_MEMBER_ID, and one naming
    /// either is checked member first, then generation.
    pub fn check_commit(&self, member_id: &str, generation: i32) -> ErrorCode {
        if generation < 0 && self.members.is_empty() {
            return ErrorCode::None;
        }
        if generation < 0 && member_id.is_empty() {
            return ErrorCode::UnknownMemberId;
        }
        if !self.members.contains_key(member_id) {
            return ErrorCode::UnknownMemberId;
        }
        if generation != self.generation {
            return ErrorCode::IllegalGeneration;
        }
        match self.state {
            GroupState::CompletingRebalance => ErrorCode::RebalanceInProgress,
            _ => ErrorCode::None,
        }
    }

    /// Expires members whose session ran out and completes a rebalance whose deadline passed.
    pub fn tick(&mut self, now: Instant) {
        let expired: Vec<String> = self
            .members
            .values()
            .filter(|member| {
                member.pending_join.is_none()
                    && now.duration_since(member.last_heartbeat) > member.session_timeout
            })
            .map(|member| member.id.clone())
            .collect();
        for member_id in expired {
            tracing::info!(
                "group {}: member {member_id} timed out; removing it",
                self.id
            );
            self.remove_member(now, &member_id);
        }
        self.try_complete_join(now);
    }

    /// The membership worth keeping across a restart: stable and empty groups only (a group in
    /// the middle of a rebalance is rebuilt by its members rejoining).
    pub fn snapshot(&self, state_timestamp: i64) -> Option<GroupSnapshot> {
        if !matches!(self.state, GroupState::Stable | GroupState::Empty) {
            return None;
        }
        let protocol = self.protocol.clone().unwrap_or_default();
        let members = self
            .members
            .values()
            .map(|member| MemberSnapshot {
                member_id: member.id.clone(),
                instance_id: member.instance_id.clone(),
                client_id: member.client_id.clone(),
                client_host: member.client_host.clone(),
                rebalance_timeout_ms: member.rebalance_timeout.as_millis() as i32,
                session_timeout_ms: member.session_timeout.as_millis() as i32,
                subscription: member.metadata(&protocol),
                assignment: member.assignment.clone(),
            })
            .collect();
        Some(GroupSnapshot {
            protocol_type: self.protocol_type.clone().unwrap_or_default(),
            generation: self.generation,
            protocol: self.protocol.clone(),
            leader: self.leader.clone(),
            state_timestamp,
            members,
        })
    }

    /// Takes back a stored snapshot: a stable group whose members' sessions start now.
    pub fn restore(&mut self, snapshot: GroupSnapshot, now: Instant) {
        let protocol = snapshot.protocol.clone().unwrap_or_default();
        self.members = snapshot
            .members
            .into_iter()
            .map(|member| {
                let restored = Member {
                    id: member.member_id.clone(),
                    instance_id: member.instance_id,
                    client_id: member.client_id,
                    client_host: member.client_host,
                    session_timeout: Duration::from_millis(member.session_timeout_ms.max(0) as u64),
                    rebalance_timeout: Duration::from_millis(
                        member.rebalance_timeout_ms.max(0) as u64
                    ),
                    protocols: vec![(protocol.clone(), member.subscription)],
                    assignment: member.assignment,
                    last_heartbeat: now,
                    pending_join: None,
                    pending_sync: None,
                };
                (member.member_id, restored)
            })
            .collect();
        self.generation = snapshot.generation;
        self.protocol_type = Some(snapshot.protocol_type).filter(|kind| !kind.is_empty());
        self.protocol = snapshot.protocol;
        self.leader = snapshot.leader;
        self.state = if self.members.is_empty() {
            GroupState::Empty
        } else {
            GroupState::Stable
        };
    }

    /// Offsets committed at least `retention_ms` before `now_ms` (milliseconds since the epoch),
    /// when the group has no members; an active group keeps all its offsets.
    pub fn expired_offsets(&self, now_ms: i64, retention_ms: u64) -> Vec<(String, i32)> {
        if !self.members.is_empty() {
            return Vec::new();
        }
        self.offsets
            .iter()
            .filter(|(_, committed)| {
                committed
                    .commit_timestamp
                    .saturating_add(retention_ms as i64)
                    <= now_ms
            })
            .map(|(key, _)| key.clone())
            .collect()
    }

    /// Topics named in the members' consumer subscriptions.
    pub fn subscribed_topics(&self) -> HashSet<String> {
        let Some(protocol) = &self.protocol else {
            return HashSet::new();
        };
        self.members
            .values()
            .flat_map(|member| super::subscription_topics(&member.metadata(protocol)))
            .collect()
    }

    fn check_protocols(&self, request: &JoinRequest) -> Result<(), ErrorCode> {
        if request.protocol_type.is_empty() || request.protocols.is_empty() {
            return Err(ErrorCode::InconsistentGroupProtocol);
        }
        if self.members.is_empty() {
            return Ok(());
        }
        if self
            .protocol_type
            .as_deref()
            .is_some_and(|kind| kind != request.protocol_type)
        {
            return Err(ErrorCode::InconsistentGroupProtocol);
        }
        let others = self
            .members
            .values()
            .filter(|member| member.id != request.member_id);
        let shared = request.protocols.iter().any(|(name, _)| {
            others
                .clone()
                .all(|member| member.protocols.iter().any(|(other, _)| other == name))
        });
        match shared {
            true => Ok(()),
            false => Err(ErrorCode::InconsistentGroupProtocol),
        }
    }

    fn admit(&mut self, request: &JoinRequest, new_member_id: String) -> Admission {
        if request.member_id.is_empty() {
            if let Some(instance) = &request.instance_id {
                // A static member restarting: it keeps its place under a new member id.
                let previous = self
                    .members
                    .values()
                    .find(|member| member.instance_id.as_ref() == Some(instance))
                    .map(|member| member.id.clone());
                if let Some(previous) = previous {
                    let mut member = self.members.shift_remove(&previous).expect("found above");
                    // As Kafka: no rebalance while the group's chosen protocol stays selectable
                    // (metadata may differ, e.g. the partitions a restarted client owns).
                    let unchanged = self.protocol.as_ref().is_some_and(|chosen| {
                        request.protocols.iter().any(|(name, _)| name == chosen)
                    });
                    member.protocols = request.protocols.clone();
                    member.id = new_member_id.clone();
                    let was_leader = self.leader.as_deref() == Some(previous.as_str());
                    if was_leader {
                        self.leader = Some(new_member_id.clone());
                    }
                    self.members.insert(new_member_id.clone(), member);
                    tracing::debug!(
                        "group {}: static member {instance} rejoined as {new_member_id} (was {previous}; \
                         protocols unchanged: {unchanged}, leader: {was_leader}, state {:?})",
                        self.id,
                        self.state
                    );
                    // KIP-345: an unchanged member takes its old place without a rebalance.
                    if unchanged && self.state == GroupState::Stable {
                        return Admission::StaticRejoin(new_member_id);
                    }
                }
                return Admission::Known(new_member_id);
            }
            return match request.requires_known_member_id {
                true => Admission::IdRequired(new_member_id),
                false => Admission::Known(new_member_id),
            };
        }
        if self.members.contains_key(&request.member_id)
            || self.pending_member_ids.contains(&request.member_id)
        {
            return Admission::Known(request.member_id.clone());
        }
        Admission::Refused(ErrorCode::UnknownMemberId)
    }

    fn prepare_rebalance(&mut self, now: Instant, initial_delay: Duration) {
        let rebalance_timeout = self
            .members
            .values()
            .map(|member| member.rebalance_timeout)
            .max()
            .unwrap_or_default();
        self.initial_rebalance = self.state == GroupState::Empty;
        let wait = match self.initial_rebalance {
            true => initial_delay.min(rebalance_timeout),
            false => rebalance_timeout,
        };
        self.state = GroupState::PreparingRebalance;
        self.rebalance_deadline = Some(now + wait);
        for member in self.members.values_mut() {
            if let Some(pending) = member.pending_sync.take() {
                let _ = pending.send(SyncOutcome::error(ErrorCode::RebalanceInProgress));
            }
        }
        tracing::debug!(
            "group {}: preparing rebalance (generation {})",
            self.id,
            self.generation
        );
    }

    fn try_complete_join(&mut self, now: Instant) {
        if self.state != GroupState::PreparingRebalance {
            return;
        }
        let deadline_passed = self
            .rebalance_deadline
            .is_some_and(|deadline| now >= deadline);
        let all_joined = self
            .members
            .values()
            .all(|member| member.pending_join.is_some());
        if !deadline_passed && (!all_joined || self.initial_rebalance) {
            return;
        }
        self.members
            .retain(|_, member| member.pending_join.is_some());
        self.generation += 1;
        self.rebalance_deadline = None;
        if self.members.is_empty() {
            self.state = GroupState::Empty;
            self.protocol = None;
            self.leader = None;
            return;
        }
        self.protocol = self.choose_protocol();
        if !self
            .leader
            .as_ref()
            .is_some_and(|leader| self.members.contains_key(leader))
        {
            self.leader = self.members.keys().next().cloned();
        }
        self.state = GroupState::CompletingRebalance;
        self.answer_joins();
        tracing::info!(
            "group {}: generation {} with {} member(s), protocol {}",
            self.id,
            self.generation,
            self.members.len(),
            self.protocol.as_deref().unwrap_or("-")
        );
    }

    /// The leader's first preference that every member supports.
    fn choose_protocol(&self) -> Option<String> {
        let leader = self
            .leader
            .as_ref()
            .and_then(|leader| self.members.get(leader))
            .or_else(|| self.members.values().next())?;
        leader
            .protocols
            .iter()
            .map(|(name, _)| name)
            .find(|name| {
                self.members
                    .values()
                    .all(|member| member.protocols.iter().any(|(other, _)| other == *name))
            })
            .cloned()
    }

    fn answer_joins(&mut self) {
        let protocol = self.protocol.clone().unwrap_or_default();
        let leader = self.leader.clone().unwrap_or_default();
        let roster = self.roster();
        for member in self.members.values_mut() {
            let Some(pending) = member.pending_join.take() else {
                continue;
            };
            member.assignment = Bytes::new();
            let outcome = JoinOutcome {
                error: ErrorCode::None,
                generation: self.generation,
                protocol_type: self.protocol_type.clone(),
                protocol_name: Some(protocol.clone()),
                leader: leader.clone(),
                member_id: member.id.clone(),
                members: if member.id == leader {
                    roster.clone()
                } else {
                    Vec::new()
                },
            };
            let _ = pending.send(outcome);
        }
    }

    /// Kafka answers a known member rejoining with unchanged protocols from the current
    /// generation: while the leader's assignment is awaited, or in a stable group unless it is
    /// the leader (whose rejoin means it wants to assign again).
    fn rejoin_needs_no_rebalance(&self, member_id: &str, request: &JoinRequest) -> bool {
        let Some(member) = self.members.get(member_id) else {
            return false;
        };
        let unchanged = member.protocols == request.protocols;
        let leader = self.leader.as_deref() == Some(member_id);
        match self.state {
            GroupState::CompletingRebalance => unchanged,
            GroupState::Stable => unchanged && !leader,
            GroupState::Empty | GroupState::PreparingRebalance => false,
        }
    }

    /// The JoinGroup answer of the current generation for `member_id`.
    fn current_generation_for(&self, member_id: &str) -> JoinOutcome {
        let leader = self.leader.clone().unwrap_or_default();
        JoinOutcome {
            error: ErrorCode::None,
            generation: self.generation,
            protocol_type: self.protocol_type.clone(),
            protocol_name: self.protocol.clone(),
            members: if leader == member_id {
                self.roster()
            } else {
                Vec::new()
            },
            leader,
            member_id: member_id.to_string(),
        }
    }

    /// Every member with its metadata for the chosen protocol, for the leader's JoinGroup answer.
    fn roster(&self) -> Vec<(String, Option<String>, Bytes)> {
        let protocol = self.protocol.clone().unwrap_or_default();
        self.members
            .values()
            .map(|member| {
                (
                    member.id.clone(),
                    member.instance_id.clone(),
                    member.metadata(&protocol),
                )
            })
            .collect()
    }

    fn complete_sync(&mut self, assignments: Vec<(String, Bytes)>) -> DeferredSyncs {
        let mut assignments: BTreeMap<String, Bytes> = assignments.into_iter().collect();
        for member in self.members.values_mut() {
            member.assignment = assignments.remove(&member.id).unwrap_or_default();
        }
        self.state = GroupState::Stable;
        let outcomes: Vec<(flume::Sender<SyncOutcome>, Bytes)> = self
            .members
            .values_mut()
            .filter_map(|member| Some((member.pending_sync.take()?, member.assignment.clone())))
            .collect();
        let replies = outcomes
            .into_iter()
            .map(|(pending, assignment)| (pending, self.sync_outcome(assignment)))
            .collect();
        DeferredSyncs(replies)
    }

    fn sync_outcome(&self, assignment: Bytes) -> SyncOutcome {
        SyncOutcome {
            error: ErrorCode::None,
            protocol_type: self.protocol_type.clone(),
            protocol_name: self.protocol.clone(),
            assignment,
        }
    }

    fn remove_member(&mut self, now: Instant, member_id: &str) {
        let Some(member) = self.members.shift_remove(member_id) else {
            return;
        };
        if let Some(pending) = member.pending_join {
            let _ = pending.send(JoinOutcome::error(ErrorCode::UnknownMemberId, member_id));
        }
        match self.state {
            GroupState::PreparingRebalance => self.try_complete_join(now),
            _ if self.members.is_empty() => {
                self.generation += 1;
                self.state = GroupState::Empty;
                self.protocol = None;
                self.leader = None;
            }
            _ => self.prepare_rebalance(now, Duration::ZERO),
        }
    }
}

/// SyncGroup answers held back until the generation they announce is stored.
#[must_use = "the members are waiting for these answers"]
#[derive(Default)]
pub struct DeferredSyncs(Vec<(flume::Sender<SyncOutcome>, SyncOutcome)>);

impl DeferredSyncs {
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn send(self) {
        for (reply, outcome) in self.0 {
            let _ = reply.send(outcome);
        }
    }
}

enum Admission {
    Known(String),
    /// A static member came back under a new id and was found unchanged in a stable group.
    /// If it leads, it gets the member list again; its SyncGroup, in a stable group, gets the
    /// current assignment back, whatever assignment it sends.
    StaticRejoin(String),
    IdRequired(String),
    Refused(ErrorCode),
}

#[cfg(test)]
#[path = "classic_tests.rs"]
mod tests;
