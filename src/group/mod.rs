//! The group coordinator: consumer groups and their committed offsets.
//!
//! A group lives on the shard that owns its `__consumer_offsets` partition
//! (`partition_for_group`, Kafka's `abs(groupId.hashCode) % partitions`); requests for it are
//! routed there over the mesh, so one group's state is touched by one core only. Committed
//! offsets are appended to that partition (fsynced) before a commit is answered, and read back
//! when the partition is opened. Kafka error codes are chosen in `api/`, from `ErrorCode`.

pub mod classic;
pub mod consumer;
pub mod offsets_log;

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::rc::Rc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use kafka_protocol::records::RecordBatchDecoder;

use crate::partition::{Acks, Partition};
use crate::storage::batch;
use classic::{CommittedOffset, Group, GroupState};
use offsets_log::{GroupRecord, OffsetRecord, OffsetsTopicRecord};

/// The internal topic holding committed offsets.
pub const OFFSETS_TOPIC: &str = "__consumer_offsets";
/// Kafka's `offsets.topic.segment.bytes` default.
pub const OFFSETS_TOPIC_SEGMENT_BYTES: u64 = 100 << 20;
/// Kafka's `group.consumer.session.timeout.ms` default.
pub const CONSUMER_SESSION_TIMEOUT: Duration = Duration::from_secs(45);
/// Kafka's `group.consumer.heartbeat.interval.ms` default.
pub const CONSUMER_HEARTBEAT_INTERVAL: Duration = Duration::from_secs(5);
/// How often group timeouts (sessions, rebalance deadlines) are checked.
pub const GROUP_TICK: Duration = Duration::from_millis(100);
/// Bytes read at a time while loading offsets.
const LOAD_READ_BYTES: usize = 1 << 20;

/// Outcomes of group operations; `api/` maps each to its Kafka error code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorCode {
    None,
    CoordinatorLoadInProgress,
    CoordinatorNotAvailable,
    IllegalGeneration,
    InconsistentGroupProtocol,
    UnknownMemberId,
    RebalanceInProgress,
    MemberIdRequired,
    GroupIdNotFound,
    NonEmptyGroup,
    GroupSubscribedToTopic,
    InvalidGroupId,
    FencedMemberEpoch,
    StaleMemberEpoch,
    UnsupportedAssignor,
}

pub struct JoinRequest {
    pub group_id: String,
    pub member_id: String,
    pub instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub session_timeout: Duration,
    pub rebalance_timeout: Duration,
    pub protocol_type: String,
    pub protocols: Vec<(String, Bytes)>,
    /// JoinGroup v4+: a member without an id is first told its id (MEMBER_ID_REQUIRED).
    pub requires_known_member_id: bool,
}

pub struct JoinOutcome {
    pub error: ErrorCode,
    pub generation: i32,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub leader: String,
    pub member_id: String,
    /// (member id, instance id, metadata), for the leader only.
    pub members: Vec<(String, Option<String>, Bytes)>,
}

impl JoinOutcome {
    pub fn error(error: ErrorCode, member_id: &str) -> JoinOutcome {
        JoinOutcome {
            error,
            generation: -1,
            protocol_type: None,
            protocol_name: None,
            leader: String::new(),
            member_id: member_id.to_string(),
            members: Vec::new(),
        }
    }
}

pub struct SyncRequest {
    pub member_id: String,
    pub generation: i32,
    pub assignments: Vec<(String, Bytes)>,
}

pub struct SyncOutcome {
    pub error: ErrorCode,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub assignment: Bytes,
}

impl SyncOutcome {
    pub fn error(error: ErrorCode) -> SyncOutcome {
        SyncOutcome {
            error,
            protocol_type: None,
            protocol_name: None,
            assignment: Bytes::new(),
        }
    }
}

pub struct MemberDescription {
    pub member_id: String,
    pub instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub metadata: Bytes,
    pub assignment: Bytes,
}

pub struct GroupDescription {
    pub error: ErrorCode,
    pub group_id: String,
    /// Kafka's state name; "Dead" for a group that does not exist.
    pub state: &'static str,
    pub protocol_type: String,
    pub protocol: String,
    pub members: Vec<MemberDescription>,
}

pub struct GroupListing {
    pub group_id: String,
    pub protocol_type: String,
    pub state: &'static str,
    /// "classic" or "consumer" (KIP-848).
    pub group_type: &'static str,
}

/// (topic, partition, committed offset if any).
pub type FetchedOffset = (String, i32, Option<CommittedOffset>);

/// A request for the coordinator of one group, carried to the owning shard.
pub enum GroupCall {
    Join {
        request: JoinRequest,
        reply: flume::Sender<JoinOutcome>,
    },
    Sync {
        group_id: String,
        request: SyncRequest,
        reply: flume::Sender<SyncOutcome>,
    },
    Heartbeat {
        group_id: String,
        member_id: String,
        generation: i32,
        reply: flume::Sender<ErrorCode>,
    },
    Leave {
        group_id: String,
        members: Vec<(String, Option<String>)>,
        reply: flume::Sender<Vec<ErrorCode>>,
    },
    Commit {
        group_id: String,
        member_id: String,
        generation: i32,
        offsets: Vec<(String, i32, CommittedOffset)>,
        reply: flume::Sender<ErrorCode>,
    },
    /// `partitions` None means every committed offset of the group.
    FetchOffsets {
        group_id: String,
        partitions: Option<Vec<(String, i32)>>,
        reply: flume::Sender<Result<Vec<FetchedOffset>, ErrorCode>>,
    },
    Describe {
        group_id: String,
        reply: flume::Sender<GroupDescription>,
    },
    /// Groups of this shard only; the caller asks every shard.
    List {
        reply: flume::Sender<Vec<GroupListing>>,
    },
    Delete {
        group_id: String,
        reply: flume::Sender<ErrorCode>,
    },
    DeleteOffsets {
        group_id: String,
        partitions: Vec<(String, i32)>,
        reply: flume::Sender<Result<Vec<ErrorCode>, ErrorCode>>,
    },
    /// KIP-848; `partition_counts` are the partitions of every topic, from the caller's image.
    ConsumerHeartbeat {
        group_id: String,
        heartbeat: consumer::Heartbeat,
        partition_counts: BTreeMap<String, i32>,
        reply: flume::Sender<consumer::HeartbeatOutcome>,
    },
    ConsumerDescribe {
        group_id: String,
        reply: flume::Sender<Option<ConsumerGroupDescription>>,
    },
}

/// A KIP-848 group as ConsumerGroupDescribe shows it.
pub struct ConsumerGroupDescription {
    pub state: &'static str,
    pub epoch: i32,
    pub assignor: String,
    /// (member, its current assignment, its target assignment).
    pub members: Vec<ConsumerMemberAssignment>,
}

pub type ConsumerMemberAssignment = (
    ConsumerMemberDescription,
    Vec<consumer::TopicPartition>,
    Vec<consumer::TopicPartition>,
);

pub struct ConsumerMemberDescription {
    pub member_id: String,
    pub instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub member_epoch: i32,
    pub subscribed: Vec<String>,
}

impl GroupCall {
    /// Answers the call with `error` without serving it.
    pub fn fail(self, error: ErrorCode) {
        match self {
            GroupCall::Join { request, reply } => {
                drop(reply.send(JoinOutcome::error(error, &request.member_id)))
            }
            GroupCall::Sync { reply, .. } => drop(reply.send(SyncOutcome::error(error))),
            GroupCall::Heartbeat { reply, .. }
            | GroupCall::Commit { reply, .. }
            | GroupCall::Delete { reply, .. } => drop(reply.send(error)),
            GroupCall::Leave { members, reply, .. } => drop(reply.send(vec![error; members.len()])),
            GroupCall::FetchOffsets { reply, .. } => drop(reply.send(Err(error))),
            GroupCall::Describe { group_id, reply } => drop(reply.send(GroupDescription {
                error,
                group_id,
                state: "Dead",
                protocol_type: String::new(),
                protocol: String::new(),
                members: Vec::new(),
            })),
            GroupCall::List { reply } => drop(reply.send(Vec::new())),
            GroupCall::DeleteOffsets { reply, .. } => drop(reply.send(Err(error))),
            GroupCall::ConsumerHeartbeat {
                heartbeat, reply, ..
            } => drop(reply.send(consumer::HeartbeatOutcome {
                error,
                member_id: heartbeat.member_id,
                member_epoch: -1,
                assignment: None,
            })),
            GroupCall::ConsumerDescribe { reply, .. } => drop(reply.send(None)),
        }
    }

    /// The group this call is for; `None` for calls every shard answers.
    pub fn group_id(&self) -> Option<&str> {
        match self {
            GroupCall::Join { request, .. } => Some(&request.group_id),
            GroupCall::Sync { group_id, .. }
            | GroupCall::Heartbeat { group_id, .. }
            | GroupCall::Leave { group_id, .. }
            | GroupCall::Commit { group_id, .. }
            | GroupCall::FetchOffsets { group_id, .. }
            | GroupCall::Describe { group_id, .. }
            | GroupCall::Delete { group_id, .. }
            | GroupCall::DeleteOffsets { group_id, .. }
            | GroupCall::ConsumerHeartbeat { group_id, .. }
            | GroupCall::ConsumerDescribe { group_id, .. } => Some(group_id),
            GroupCall::List { .. } => None,
        }
    }
}

/// Kafka's choice of `__consumer_offsets` partition: `Utils.abs(groupId.hashCode()) % count`,
/// with Java's `String.hashCode` over UTF-16 code units.
pub fn partition_for_group(group_id: &str, partition_count: i32) -> i32 {
    let hash = group_id.encode_utf16().fold(0i32, |hash, unit| {
        hash.wrapping_mul(31).wrapping_add(i32::from(unit))
    });
    let positive = if hash == i32::MIN { 0 } else { hash.abs() };
    positive % partition_count
}

/// Topics of a consumer-protocol subscription (version, topics array, ...); empty if unreadable.
pub fn subscription_topics(metadata: &Bytes) -> Vec<String> {
    let mut cursor: &[u8] = metadata;
    let mut topics = Vec::new();
    let take = |cursor: &mut &[u8], count: usize| -> Option<Vec<u8>> {
        let (head, tail) = (cursor.get(..count)?, cursor.get(count..)?);
        *cursor = tail;
        Some(head.to_vec())
    };
    let parsed = (|| -> Option<()> {
        take(&mut cursor, 2)?;
        let count = i32::from_be_bytes(take(&mut cursor, 4)?.try_into().ok()?);
        for _ in 0..count.max(0) {
            let length = i16::from_be_bytes(take(&mut cursor, 2)?.try_into().ok()?);
            topics.push(String::from_utf8(take(&mut cursor, length.max(0) as usize)?).ok()?);
        }
        Some(())
    })();
    if parsed.is_none() {
        topics.clear();
    }
    topics
}

/// The per-shard coordinator of the groups whose offsets partitions this shard owns.
pub struct Coordinator {
    groups: RefCell<HashMap<String, Group>>,
    /// KIP-848 groups; their committed offsets live in `groups` like everyone's.
    consumer_groups: RefCell<HashMap<String, consumer::ConsumerGroup>>,
    loaded: RefCell<HashSet<i32>>,
    /// (generation, state) of each group as last stored in `__consumer_offsets`.
    persisted: RefCell<HashMap<String, (i32, GroupState)>>,
    initial_delay: Duration,
}

impl Coordinator {
    pub fn new(initial_delay: Duration) -> Coordinator {
        Coordinator {
            groups: RefCell::new(HashMap::new()),
            consumer_groups: RefCell::new(HashMap::new()),
            loaded: RefCell::new(HashSet::new()),
            persisted: RefCell::new(HashMap::new()),
            initial_delay,
        }
    }

    /// Reads every committed offset stored in `partition` into the groups it holds.
    pub async fn load(&self, partition: &Partition) {
        let mut offset = partition.log_start_offset();
        let mut loaded = 0usize;
        while offset < partition.high_watermark() {
            let read = match partition.read(offset, LOAD_READ_BYTES).await {
                Ok(read) if !read.records.is_empty() => read,
                Ok(_) => break,
                Err(error) => {
                    tracing::error!("cannot load {}: {error}", partition.name());
                    return;
                }
            };
            let mut records = read.records;
            while let Ok(set) = RecordBatchDecoder::decode(&mut records) {
                for record in &set.records {
                    offset = record.offset + 1;
                    let Some(decoded) = record
                        .key
                        .as_ref()
                        .and_then(|key| offsets_log::decode_record(key, record.value.as_ref()))
                    else {
                        continue;
                    };
                    self.apply(decoded);
                    loaded += 1;
                }
                if records.is_empty() {
                    break;
                }
            }
        }
        self.loaded.borrow_mut().insert(partition.index);
        tracing::info!(
            "loaded {loaded} group and offset record(s) from {}",
            partition.name()
        );
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
                reply,
            } => {
                let _ = reply.send(Ok(self.fetch_offsets(&group_id, partitions)));
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
        let group = groups
            .entry(group_id.clone())
            .or_insert_with(|| consumer::ConsumerGroup::new(group_id, CONSUMER_SESSION_TIMEOUT));
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

    async fn commit(
        &self,
        group_id: &str,
        member_id: &str,
        generation: i32,
        offsets: Vec<(String, i32, CommittedOffset)>,
        offsets_partition: Option<Rc<Partition>>,
    ) -> ErrorCode {
        let consumer_verdict = self
            .consumer_groups
            .borrow()
            .get(group_id)
            .filter(|group| !group.members.is_empty())
            .map(|group| group.check_commit(member_id, generation));
        let verdict = match self.groups.borrow().get(group_id) {
            _ if consumer_verdict.is_some() => consumer_verdict.expect("checked"),
            Some(group) => group.check_commit(member_id, generation),
            None if generation < 0 => ErrorCode::None,
            None => ErrorCode::IllegalGeneration,
        };
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
    ) -> Vec<FetchedOffset> {
        let groups = self.groups.borrow();
        let group = groups.get(group_id);
        match partitions {
            Some(partitions) => partitions
                .into_iter()
                .map(|(topic, partition)| {
                    let committed = group
                        .and_then(|group| group.offsets.get(&(topic.clone(), partition)).cloned());
                    (topic, partition, committed)
                })
                .collect(),
            None => group
                .map(|group| {
                    group
                        .offsets
                        .iter()
                        .map(|((topic, partition), committed)| {
                            (topic.clone(), *partition, Some(committed.clone()))
                        })
                        .collect()
                })
                .unwrap_or_default(),
        }
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
        let bytes = offsets_log::encode_batch(&records, now_ms());
        let headers =
            batch::validate_batches(&bytes, usize::MAX).expect("a batch we encoded is valid");
        if let Err(error) = partition.append(bytes, headers, Acks::All).await {
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Proves the partition choice matches Kafka's for known group ids.
    #[test]
    fn partition_for_group_matches_kafka() {
        // Java: "my-group".hashCode() == -1906497762, abs % 50 == 12.
        assert_eq!(partition_for_group("my-group", 50), 12);
        // "" hashes to 0; "polygenelubricants".hashCode() == Integer.MIN_VALUE, whose abs is 0.
        assert_eq!(partition_for_group("", 50), 0);
        assert_eq!(partition_for_group("polygenelubricants", 50), 0);
    }

    /// Proves subscription metadata yields its topics and garbage yields none.
    #[test]
    fn reads_subscription_topics() {
        let metadata = Bytes::from_static(&[
            0, 1, 0, 0, 0, 2, 0, 1, b'a', 0, 2, b'b', b'c', 0xff, 0xff, 0xff, 0xff,
        ]);
        assert_eq!(
            subscription_topics(&metadata),
            vec!["a".to_string(), "bc".to_string()]
        );
        assert!(subscription_topics(&Bytes::from_static(&[0, 1, 0, 0, 0, 9])).is_empty());
    }
}
