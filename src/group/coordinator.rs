//! The per-shard group coordinator: the classic and KIP-848 groups whose `__consumer_offsets`
//! partition this shard owns, their committed offsets, and the I/O around the pure state
//! machines: storing records in `__consumer_offsets` (fsynced) and loading them back.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::rc::Rc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::classic::{CommittedOffset, Group, GroupState};
use super::offsets_log::{self, GroupRecord, OffsetRecord, OffsetsTopicRecord};
use super::{
    consumer, ConsumerGroupDescription, ConsumerMemberDescription, ErrorCode, FetchedOffset,
    GroupCall, GroupDescription, GroupListing, JoinOutcome, MemberDescription, SyncOutcome,
    TxnCommit,
};
use crate::partition::{Acks, Partition};
use crate::storage::batch::{self, Writer};

/// How long a commit waits for the offsets partition's in-sync replicas (Kafka's
/// `offsets.commit.timeout.ms` default).
const OFFSET_COMMIT_TIMEOUT: Duration = Duration::from_secs(5);

/// The per-shard coordinator of the groups whose offsets partitions this shard owns.
pub struct Coordinator {
    groups: RefCell<HashMap<String, Group>>,
    /// KIP-848 groups; their committed offsets live in `groups` like everyone's.
    consumer_groups: RefCell<HashMap<String, consumer::ConsumerGroup>>,
    loaded: RefCell<HashSet<i32>>,
    /// (generation, state) of each group as last stored in `__consumer_offsets`.
    persisted: RefCell<HashMap<String, (i32, GroupState)>>,
    /// Offsets committed in open transactions, by producer id: they take effect when the
    /// transaction's COMMIT marker reaches the offsets partition, and vanish at ABORT.
    pending_txn: RefCell<HashMap<i64, Vec<OffsetRecord>>>,
    initial_delay: Duration,
    /// `group.consumer.session.timeout.ms`, for KIP-848 groups.
    consumer_session_timeout: Duration,
}

impl Coordinator {
    pub fn new(initial_delay: Duration, consumer_session_timeout: Duration) -> Coordinator {
        Coordinator {
            groups: RefCell::new(HashMap::new()),
            consumer_groups: RefCell::new(HashMap::new()),
            loaded: RefCell::new(HashSet::new()),
            persisted: RefCell::new(HashMap::new()),
            pending_txn: RefCell::new(HashMap::new()),
            initial_delay,
            consumer_session_timeout,
        }
    }

    /// Reads every committed offset stored in `partition` into the groups it holds. Offsets
    /// of a transaction take effect at its COMMIT marker.
    pub async fn load(&self, partition: &Partition) {
        let mut loaded = 0usize;
        let visited = partition
            .for_each_record(|record| {
                if record.control {
                    // A transaction marker: its key is (version, type), COMMIT being 1.
                    let commit = record
                        .key
                        .as_ref()
                        .is_some_and(|key| key.len() >= 4 && key[2..4] == [0, 1]);
                    self.complete_txn(record.producer_id, commit);
                    return;
                }
                let Some(decoded) = record
                    .key
                    .as_ref()
                    .and_then(|key| offsets_log::decode_record(key, record.value.as_ref()))
                else {
                    return;
                };
                match (record.transactional, decoded) {
                    (true, OffsetsTopicRecord::Offset(pending)) => self
                        .pending_txn
                        .borrow_mut()
                        .entry(record.producer_id)
                        .or_default()
                        .push(pending),
                    (true, OffsetsTopicRecord::Group(_)) => {}
                    (false, decoded) => {
                        self.apply(decoded);
                        loaded += 1;
                    }
                }
            })
            .await;
        if let Err(error) = visited {
            tracing::error!("cannot load {}: {error}", partition.name());
            return;
        }
        self.loaded.borrow_mut().insert(partition.index);
        tracing::info!(
            "loaded {loaded} group and offset record(s) from {}",
            partition.name()
        );
    }

    /// Forgets the groups of offsets partition `partition` (of `partition_count`): this
    /// broker no longer leads it, and a later leadership reloads them from the log.
    pub fn unload(&self, partition: i32, partition_count: i32) {
        if !self.loaded.borrow_mut().remove(&partition) {
            return;
        }
        let elsewhere =
            |group_id: &String| super::partition_for_group(group_id, partition_count) != partition;
        self.groups
            .borrow_mut()
            .retain(|group_id, _| elsewhere(group_id));
        self.consumer_groups
            .borrow_mut()
            .retain(|group_id, _| elsewhere(group_id));
        self.persisted
            .borrow_mut()
            .retain(|group_id, _| elsewhere(group_id));
    }

    pub fn is_loaded(&self, partition: i32) -> bool {
        self.loaded.borrow().contains(&partition)
    }

    /// Runs timeouts of every group; `partition_counts` as for heartbeats.
    pub fn tick(&self, now: Instant, partition_counts: &BTreeMap<String, i32>) {
        for group in self.groups.borrow_mut().values_mut() {
            group.tick(now);
        }
        for group in self.consumer_groups.borrow_mut().values_mut() {
            group.tick(now, partition_counts);
        }
    }

    /// Deletes offsets committed more than `retention_ms` ago by groups that have no members now
    /// (Kafka's `offsets.retention.minutes`); `partition_for` finds each group's offsets partition.
    pub async fn expire_offsets(
        &self,
        retention_ms: u64,
        partition_for: impl Fn(&str) -> Option<Rc<Partition>>,
    ) {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |elapsed| elapsed.as_millis() as i64);
        let expired: Vec<(String, Vec<OffsetRecord>)> = self
            .groups
            .borrow()
            .values()
            .filter(|group| group.members.is_empty() && !self.has_consumer_members(&group.id))
            .map(|group| {
                let tombstones = group
                    .expired_offsets(now, retention_ms)
                    .into_iter()
                    .map(|(topic, partition)| OffsetRecord {
                        group: group.id.clone(),
                        topic,
                        partition,
                        value: None,
                    })
                    .collect();
                (group.id.clone(), tombstones)
            })
            .filter(|(_, tombstones): &(String, Vec<OffsetRecord>)| !tombstones.is_empty())
            .collect();
        for (group_id, tombstones) in expired {
            let count = tombstones.len();
            if self.persist(tombstones, partition_for(&group_id)).await == ErrorCode::None {
                tracing::info!("group {group_id}: expired {count} committed offset(s) past offsets.retention.minutes");
                // A group with neither members nor offsets is gone, as in Kafka.
                let mut groups = self.groups.borrow_mut();
                if groups
                    .get(&group_id)
                    .is_some_and(|group| group.members.is_empty() && group.offsets.is_empty())
                {
                    groups.remove(&group_id);
                }
            }
        }
    }

    fn has_consumer_members(&self, group_id: &str) -> bool {
        self.consumer_groups
            .borrow()
            .get(group_id)
            .is_some_and(|group| !group.members.is_empty())
    }

    /// Serves one call; `offsets_partition` is the group's `__consumer_offsets` partition here.
    pub async fn handle(&self, call: GroupCall, offsets_partition: Option<Rc<Partition>>) {
        let now = Instant::now();
        match call {
            GroupCall::Join { request, reply } if self.has_consumer_members(&request.group_id) => {
                let _ = reply.send(JoinOutcome::error(
                    ErrorCode::InconsistentGroupProtocol,
                    &request.member_id,
                ));
            }
            GroupCall::Join { request, reply } => {
                let new_member_id = format!(
                    "{}-{}",
                    request.client_id,
                    crate::metadata::uuid::uuid_to_base64(crate::controller::random_uuid())
                );
                let mut groups = self.groups.borrow_mut();
                let group = groups
                    .entry(request.group_id.clone())
                    .or_insert_with(|| Group::new(request.group_id.clone()));
                group.join(now, request, new_member_id, self.initial_delay, reply);
            }
            GroupCall::Sync {
                group_id,
                request,
                reply,
            } => {
                let deferred = match self.groups.borrow_mut().get_mut(&group_id) {
                    Some(group) => group.sync(request, reply),
                    None => {
                        let _ = reply.send(SyncOutcome::error(ErrorCode::UnknownMemberId));
                        return;
                    }
                };
                // A new generation is stored before any member learns its assignment, so a
                // restart never brings back a generation older than one a member holds.
                if !deferred.is_empty() {
                    self.persist_group(&group_id, offsets_partition).await;
                }
                deferred.send();
            }
            GroupCall::Heartbeat {
                group_id,
                member_id,
                generation,
                reply,
            } => {
                let code = match self.groups.borrow_mut().get_mut(&group_id) {
                    Some(group) => group.heartbeat(now, &member_id, generation),
                    None => ErrorCode::UnknownMemberId,
                };
                let _ = reply.send(code);
            }
            GroupCall::Leave {
                group_id,
                members,
                reply,
            } => {
                let mut groups = self.groups.borrow_mut();
                let codes = members
                    .iter()
                    .map(|(member_id, instance_id)| match groups.get_mut(&group_id) {
                        Some(group) => group.leave(now, member_id, instance_id.as_deref()),
                        None => ErrorCode::UnknownMemberId,
                    })
                    .collect();
                let _ = reply.send(codes);
            }
            GroupCall::TxnCommit { commit, reply } => {
                let _ = reply.send(self.txn_commit(*commit, offsets_partition).await);
            }
            GroupCall::Commit {
                group_id,
                member_id,
                generation,
                offsets,
                reply,
            } => {
                let _ = reply.send(
                    self.commit(
                        &group_id,
                        &member_id,
                        generation,
                        offsets,
                        offsets_partition,
                    )
                    .await,
                );
            }
            GroupCall::FetchOffsets {
                group_id,
                partitions,
                member,
                require_stable,
                reply,
            } => {
                let verdict = member.map_or(ErrorCode::None, |(member_id, epoch)| {
                    self.consumer_groups
                        .borrow()
                        .get(&group_id)
                        .map_or(ErrorCode::None, |group| {
                            group.check_fetch(&member_id, epoch)
                        })
                });
                let _ = reply.send(match verdict {
                    ErrorCode::None => {
                        Ok(self.fetch_offsets(&group_id, partitions, require_stable))
                    }
                    error => Err(error),
                });
            }
            GroupCall::Describe { group_id, reply } => {
                let _ = reply.send(self.describe(&group_id));
            }
            GroupCall::List { reply } => {
                let consumer_groups = self.consumer_groups.borrow();
                let mut listings: Vec<GroupListing> = consumer_groups
                    .values()
                    .map(|group| GroupListing {
                        group_id: group.id.clone(),
                        protocol_type: "consumer".into(),
                        state: group.state(),
                        group_type: "consumer",
                    })
                    .collect();
                listings.extend(
                    self.groups
                        .borrow()
                        .values()
                        .filter(|group| !consumer_groups.contains_key(&group.id))
                        .map(|group| GroupListing {
                            group_id: group.id.clone(),
                            protocol_type: group.protocol_type.clone().unwrap_or_default(),
                            state: group.state.name(),
                            group_type: "classic",
                        }),
                );
                let _ = reply.send(listings);
            }
            GroupCall::Delete { group_id, reply } => {
                let _ = reply.send(self.delete(&group_id, offsets_partition).await);
            }
            GroupCall::DeleteOffsets {
                group_id,
                partitions,
                reply,
            } => {
                let _ = reply.send(
                    self.delete_offsets(&group_id, partitions, offsets_partition)
                        .await,
                );
            }
            GroupCall::ConsumerHeartbeat {
                group_id,
                heartbeat,
                partition_counts,
                reply,
            } => {
                let _ = reply.send(self.consumer_heartbeat(
                    now,
                    group_id,
                    heartbeat,
                    &partition_counts,
                ));
            }
            GroupCall::ConsumerDescribe { group_id, reply } => {
                let _ = reply.send(self.describe_consumer_group(&group_id));
            }
        }
    }

    fn consumer_heartbeat(
        &self,
        now: Instant,
        group_id: String,
        heartbeat: consumer::Heartbeat,
        partition_counts: &BTreeMap<String, i32>,
    ) -> consumer::HeartbeatOutcome {
        let classic_members = self
            .groups
            .borrow()
            .get(&group_id)
            .is_some_and(|group| !group.members.is_empty());
        if classic_members {
            return consumer::HeartbeatOutcome {
                error: ErrorCode::GroupIdNotFound,
                member_id: heartbeat.member_id,
                member_epoch: -1,
                assignment: None,
            };
        }
        let new_member_id = crate::metadata::uuid::uuid_to_base64(crate::controller::random_uuid());
        let mut groups = self.consumer_groups.borrow_mut();
        let group = groups.entry(group_id.clone()).or_insert_with(|| {
            consumer::ConsumerGroup::new(group_id, self.consumer_session_timeout)
        });
        group.heartbeat(now, heartbeat, new_member_id, partition_counts)
    }

    fn describe_consumer_group(&self, group_id: &str) -> Option<ConsumerGroupDescription> {
        let groups = self.consumer_groups.borrow();
        let group = groups.get(group_id)?;
        let members = group
            .members
            .values()
            .map(|member| {
                let description = ConsumerMemberDescription {
                    member_id: member.id.clone(),
                    instance_id: member.instance_id.clone(),
                    client_id: member.client_id.clone(),
                    client_host: member.client_host.clone(),
                    member_epoch: member.epoch,
                    subscribed: member.subscribed.clone(),
                };
                let target = group
                    .target
                    .get(&member.id)
                    .map(|target| target.iter().cloned().collect())
                    .unwrap_or_default();
                (
                    description,
                    member.assigned.iter().cloned().collect(),
                    target,
                )
            })
            .collect();
        Some(ConsumerGroupDescription {
            state: group.state(),
            epoch: group.epoch,
            assignor: group.assignor.clone(),
            members,
        })
    }

    /// Ends the offsets producer `producer_id` committed in its transaction: applied on a
    /// COMMIT marker, dropped on an ABORT.
    pub fn complete_txn(&self, producer_id: i64, commit: bool) {
        let Some(records) = self.pending_txn.borrow_mut().remove(&producer_id) else {
            return;
        };
        if commit {
            records
                .into_iter()
                .for_each(|record| self.apply_offset(record));
        }
    }

    /// TxnOffsetCommit: stores the offsets as part of the producer's transaction (a
    /// transactional batch of its id and epoch); they count once the COMMIT marker is written.
    pub async fn txn_commit(
        &self,
        commit: TxnCommit,
        offsets_partition: Option<Rc<Partition>>,
    ) -> ErrorCode {
        // A producer that does not name a member (before v3, or outside a group) is not checked.
        let anonymous = commit.generation < 0 && commit.member_id.is_empty();
        let verdict = match anonymous {
            true => ErrorCode::None,
            false => self.commit_verdict(&commit.group_id, &commit.member_id, commit.generation),
        };
        if verdict != ErrorCode::None {
            return verdict;
        }
        let Some(partition) = offsets_partition else {
            return ErrorCode::CoordinatorNotAvailable;
        };
        let records: Vec<OffsetRecord> = commit
            .offsets
            .into_iter()
            .map(|(topic, partition, value)| OffsetRecord {
                group: commit.group_id.clone(),
                topic,
                partition,
                value: Some(value),
            })
            .collect();
        let encoded: Vec<OffsetsTopicRecord> = records
            .iter()
            .cloned()
            .map(OffsetsTopicRecord::Offset)
            .collect();
        let writer = Writer::Transaction {
            producer_id: commit.producer_id,
            producer_epoch: commit.producer_epoch,
        };
        let bytes = offsets_log::encode_batch(&encoded, now_ms(), writer);
        let headers =
            batch::validate_batches(&bytes, usize::MAX).expect("a batch we encoded is valid");
        match partition
            .append(bytes, headers, Acks::All, OFFSET_COMMIT_TIMEOUT)
            .await
        {
            Ok(_) => {}
            Err(crate::partition::PartitionError::InvalidProducerEpoch { .. }) => {
                return ErrorCode::ProducerFenced
            }
            Err(error) => {
                tracing::error!("cannot store offsets in {}: {error}", partition.name());
                return ErrorCode::CoordinatorNotAvailable;
            }
        }
        self.pending_txn
            .borrow_mut()
            .entry(commit.producer_id)
            .or_default()
            .extend(records);
        ErrorCode::None
    }

    /// Whether `member_id` in `generation` may commit offsets for the group.
    fn commit_verdict(&self, group_id: &str, member_id: &str, generation: i32) -> ErrorCode {
        let consumer_verdict = self
            .consumer_groups
            .borrow()
            .get(group_id)
            .filter(|group| !group.members.is_empty())
            .map(|group| group.check_commit(member_id, generation));
        match self.groups.borrow().get(group_id) {
            _ if consumer_verdict.is_some() => consumer_verdict.expect("checked"),
            Some(group) => group.check_commit(member_id, generation),
            None if generation < 0 => ErrorCode::None,
            None => ErrorCode::IllegalGeneration,
        }
    }

    async fn commit(
        &self,
        group_id: &str,
        member_id: &str,
        generation: i32,
        offsets: Vec<(String, i32, CommittedOffset)>,
        offsets_partition: Option<Rc<Partition>>,
    ) -> ErrorCode {
        let verdict = self.commit_verdict(group_id, member_id, generation);
        if verdict != ErrorCode::None {
            return verdict;
        }
        let records: Vec<OffsetRecord> = offsets
            .into_iter()
            .map(|(topic, partition, value)| OffsetRecord {
                group: group_id.to_string(),
                topic,
                partition,
                value: Some(value),
            })
            .collect();
        self.persist(records, offsets_partition).await
    }

    fn fetch_offsets(
        &self,
        group_id: &str,
        partitions: Option<Vec<(String, i32)>>,
        require_stable: bool,
    ) -> Vec<FetchedOffset> {
        let groups = self.groups.borrow();
        let group = groups.get(group_id);
        let pending: std::collections::HashSet<(String, i32)> = match require_stable {
            true => self
                .pending_txn
                .borrow()
                .values()
                .flatten()
                .filter(|record| record.group == group_id)
                .map(|record| (record.topic.clone(), record.partition))
                .collect(),
            false => Default::default(),
        };
        let partitions = partitions.unwrap_or_else(|| {
            group
                .map(|group| group.offsets.keys().cloned().collect())
                .unwrap_or_default()
        });
        partitions
            .into_iter()
            .map(|(topic, partition)| {
                let key = (topic, partition);
                let committed = group.and_then(|group| group.offsets.get(&key).cloned());
                let unstable = pending.contains(&key);
                (key.0, key.1, committed, unstable)
            })
            .collect()
    }

    fn describe(&self, group_id: &str) -> GroupDescription {
        let groups = self.groups.borrow();
        let Some(group) = groups.get(group_id) else {
            return GroupDescription {
                error: ErrorCode::None,
                group_id: group_id.to_string(),
                state: "Dead",
                protocol_type: String::new(),
                protocol: String::new(),
                members: Vec::new(),
            };
        };
        let protocol = group.protocol.clone().unwrap_or_default();
        let members = group
            .members
            .values()
            .map(|member| MemberDescription {
                member_id: member.id.clone(),
                instance_id: member.instance_id.clone(),
                client_id: member.client_id.clone(),
                client_host: member.client_host.clone(),
                metadata: member.metadata(&protocol),
                assignment: member.assignment.clone(),
            })
            .collect();
        GroupDescription {
            error: ErrorCode::None,
            group_id: group.id.clone(),
            state: group.state.name(),
            protocol_type: group.protocol_type.clone().unwrap_or_default(),
            protocol,
            members,
        }
    }

    async fn delete(&self, group_id: &str, offsets_partition: Option<Rc<Partition>>) -> ErrorCode {
        if self.has_consumer_members(group_id) {
            return ErrorCode::NonEmptyGroup;
        }
        if self.consumer_groups.borrow_mut().remove(group_id).is_some()
            && !self.groups.borrow().contains_key(group_id)
        {
            return ErrorCode::None;
        }
        let tombstones: Vec<OffsetRecord> = match self.groups.borrow().get(group_id) {
            None => return ErrorCode::GroupIdNotFound,
            Some(group) if group.state != GroupState::Empty => return ErrorCode::NonEmptyGroup,
            Some(group) => group
                .offsets
                .keys()
                .map(|(topic, partition)| OffsetRecord {
                    group: group_id.to_string(),
                    topic: topic.clone(),
                    partition: *partition,
                    value: None,
                })
                .collect(),
        };
        let mut records: Vec<OffsetsTopicRecord> = tombstones
            .into_iter()
            .map(OffsetsTopicRecord::Offset)
            .collect();
        records.push(OffsetsTopicRecord::Group(GroupRecord {
            group: group_id.to_string(),
            value: None,
        }));
        let code = self.persist_records(records, offsets_partition).await;
        if code == ErrorCode::None {
            self.groups.borrow_mut().remove(group_id);
            self.persisted.borrow_mut().remove(group_id);
        }
        code
    }

    async fn delete_offsets(
        &self,
        group_id: &str,
        partitions: Vec<(String, i32)>,
        offsets_partition: Option<Rc<Partition>>,
    ) -> Result<Vec<ErrorCode>, ErrorCode> {
        let subscribed = match self.groups.borrow().get(group_id) {
            None => return Err(ErrorCode::GroupIdNotFound),
            Some(group) => group.subscribed_topics(),
        };
        let codes: Vec<ErrorCode> = partitions
            .iter()
            .map(|(topic, _)| match subscribed.contains(topic) {
                true => ErrorCode::GroupSubscribedToTopic,
                false => ErrorCode::None,
            })
            .collect();
        let tombstones: Vec<OffsetRecord> = partitions
            .iter()
            .zip(&codes)
            .filter(|(_, code)| **code == ErrorCode::None)
            .map(|((topic, partition), _)| OffsetRecord {
                group: group_id.to_string(),
                topic: topic.clone(),
                partition: *partition,
                value: None,
            })
            .collect();
        match self.persist(tombstones, offsets_partition).await {
            ErrorCode::None => Ok(codes),
            error => Err(error),
        }
    }

    /// Stores the membership of every group whose generation or state changed since it was last
    /// stored (stable and empty groups only), so members keep their place across a restart.
    /// `partition_for` finds each group's offsets partition on this shard.
    pub async fn persist_changed_groups(
        &self,
        partition_for: impl Fn(&str) -> Option<Rc<Partition>>,
    ) {
        let timestamp = now_ms();
        let changed: Vec<GroupRecord> = {
            let persisted = self.persisted.borrow();
            self.groups
                .borrow()
                .values()
                .filter(|group| persisted.get(&group.id) != Some(&(group.generation, group.state)))
                .filter_map(|group| {
                    Some(GroupRecord {
                        group: group.id.clone(),
                        value: Some(group.snapshot(timestamp)?),
                    })
                })
                .collect()
        };
        for record in changed {
            let group_id = record.group.clone();
            let state = self
                .groups
                .borrow()
                .get(&group_id)
                .map(|group| (group.generation, group.state));
            if self
                .persist_records(
                    vec![OffsetsTopicRecord::Group(record)],
                    partition_for(&group_id),
                )
                .await
                == ErrorCode::None
            {
                if let Some(state) = state {
                    self.persisted.borrow_mut().insert(group_id, state);
                }
            }
        }
    }

    /// Stores the group's current snapshot if it changed since last stored.
    async fn persist_group(&self, group_id: &str, offsets_partition: Option<Rc<Partition>>) {
        let snapshot = {
            let groups = self.groups.borrow();
            let Some(group) = groups.get(group_id) else {
                return;
            };
            if self.persisted.borrow().get(group_id) == Some(&(group.generation, group.state)) {
                return;
            }
            group
                .snapshot(now_ms())
                .map(|snapshot| (snapshot, (group.generation, group.state)))
        };
        let Some((snapshot, stored)) = snapshot else {
            return;
        };
        let record = OffsetsTopicRecord::Group(GroupRecord {
            group: group_id.to_string(),
            value: Some(snapshot),
        });
        if self.persist_records(vec![record], offsets_partition).await == ErrorCode::None {
            self.persisted
                .borrow_mut()
                .insert(group_id.to_string(), stored);
        }
    }

    /// Appends offset records to the group's offsets partition (fsynced), then applies them.
    async fn persist(
        &self,
        records: Vec<OffsetRecord>,
        offsets_partition: Option<Rc<Partition>>,
    ) -> ErrorCode {
        let records = records
            .into_iter()
            .map(OffsetsTopicRecord::Offset)
            .collect();
        self.persist_records(records, offsets_partition).await
    }

    async fn persist_records(
        &self,
        records: Vec<OffsetsTopicRecord>,
        offsets_partition: Option<Rc<Partition>>,
    ) -> ErrorCode {
        if records.is_empty() {
            return ErrorCode::None;
        }
        let Some(partition) = offsets_partition else {
            return ErrorCode::CoordinatorNotAvailable;
        };
        let bytes = offsets_log::encode_batch(&records, now_ms(), Writer::Broker);
        let headers =
            batch::validate_batches(&bytes, usize::MAX).expect("a batch we encoded is valid");
        let append = partition.append(bytes, headers, Acks::All, OFFSET_COMMIT_TIMEOUT);
        if let Err(error) = append.await {
            tracing::error!("cannot store offsets in {}: {error}", partition.name());
            return ErrorCode::CoordinatorNotAvailable;
        }
        // Offsets take effect once stored. Group snapshots describe the live group already; they
        // are applied only when loading.
        for record in records {
            if let OffsetsTopicRecord::Offset(offset) = record {
                self.apply_offset(offset);
            }
        }
        ErrorCode::None
    }

    fn apply(&self, record: OffsetsTopicRecord) {
        match record {
            OffsetsTopicRecord::Offset(record) => self.apply_offset(record),
            OffsetsTopicRecord::Group(record) => self.apply_group(record),
        }
    }

    /// A stored group snapshot: restore the membership (keeping the group's offsets); a deleted
    /// group loses its membership.
    fn apply_group(&self, record: GroupRecord) {
        let mut groups = self.groups.borrow_mut();
        let group = groups
            .entry(record.group.clone())
            .or_insert_with(|| Group::new(record.group.clone()));
        match record.value {
            Some(snapshot) => {
                group.restore(snapshot, Instant::now());
                self.persisted
                    .borrow_mut()
                    .insert(group.id.clone(), (group.generation, group.state));
            }
            None => {
                groups.remove(&record.group);
                self.persisted.borrow_mut().remove(&record.group);
            }
        }
    }

    fn apply_offset(&self, record: OffsetRecord) {
        let mut groups = self.groups.borrow_mut();
        let key = (record.topic, record.partition);
        match record.value {
            Some(value) => {
                let group = groups
                    .entry(record.group.clone())
                    .or_insert_with(|| Group::new(record.group.clone()));
                group.offsets.insert(key, value);
            }
            None => {
                if let Some(group) = groups.get_mut(&record.group) {
                    group.offsets.remove(&key);
                }
            }
        }
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_millis() as i64)
}
