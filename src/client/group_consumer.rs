//! A blocking consumer in a classic consumer group ("consumer" protocol, "range" assignor), on
//! one thread: each `poll` joins the group if needed, heartbeats when the heartbeat interval is
//! due, auto-commits when the commit interval is due, then fetches once (the fetch wait is kept
//! below the heartbeat interval by the caller). Partitions start at the group's committed
//! offset, or at `auto.offset.reset` when none was committed.
//!
//! Rebalances follow Kafka's consumer: REBALANCE_IN_PROGRESS commits what was consumed and then
//! rejoins; ILLEGAL_GENERATION and UNKNOWN_MEMBER_ID rejoin as a new generation (and member);
//! coordinator moves are retried inside `GroupCoordinator::call`, and whatever still fails
//! becomes a warning and a retry on the next poll, as a Kafka consumer logs and carries on.

use std::collections::{BTreeMap, BTreeSet};
use std::thread;
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::consumer::{Consumer, StartPosition};
use super::consumer_protocol::{
    Assignment, Subscription, TopicPartitions, ASSIGNMENT_VERSION, SUBSCRIPTION_VERSION,
};
use super::error::ClientError;
use super::group::{GroupCoordinator, TopicPartition};
use super::membership::{
    heartbeat, join_group, leave_group, sync_group, JoinOutcome, JoinSettings,
    PROTOCOL_TYPE_CONSUMER,
};
use super::range_assignor::{self, MemberSubscription, RANGE_ASSIGNOR_NAME};
use super::records::IncomingRecord;

/// UNKNOWN_MEMBER_ID: the coordinator forgot this member; rejoin with an empty id.
const UNKNOWN_MEMBER_ID: i16 = 25;
/// REBALANCE_IN_PROGRESS: the group is rebalancing; commit and rejoin.
const REBALANCE_IN_PROGRESS: i16 = 27;
/// ILLEGAL_GENERATION: the generation moved on; rejoin with an empty id, as Kafka does.
const ILLEGAL_GENERATION: i16 = 22;

/// The group settings of Kafka's consumer configuration.
#[derive(Debug, Clone)]
pub struct GroupSettings {
    /// group.id
    pub group_id: String,
    /// session.timeout.ms
    pub session_timeout_ms: i32,
    /// max.poll.interval.ms, sent as the rebalance timeout.
    pub rebalance_timeout_ms: i32,
    /// heartbeat.interval.ms
    pub heartbeat_interval: Duration,
    /// enable.auto.commit
    pub auto_commit: bool,
    /// auto.commit.interval.ms
    pub auto_commit_interval: Duration,
    /// retry.backoff.ms
    pub retry_backoff: Duration,
}

impl GroupSettings {
    /// Kafka's consumer defaults for `group_id`.
    pub fn new(group_id: &str) -> GroupSettings {
        GroupSettings {
            group_id: group_id.to_string(),
            session_timeout_ms: 45_000,
            rebalance_timeout_ms: 300_000,
            heartbeat_interval: Duration::from_secs(3),
            auto_commit: true,
            auto_commit_interval: Duration::from_secs(5),
            retry_backoff: Duration::from_millis(200),
        }
    }
}

pub struct GroupConsumer {
    consumer: Consumer,
    coordinator: GroupCoordinator,
    settings: GroupSettings,
    offset_reset: StartPosition,
    member_id: String,
    /// The generation this member is in; `None` until joined and after a rebalance error.
    generation_id: Option<i32>,
    assigned: BTreeSet<i32>,
    committed: BTreeMap<i32, i64>,
    last_heartbeat: Instant,
    last_commit: Instant,
    warnings: Vec<String>,
}

impl GroupConsumer {
    /// Wraps `consumer` (which reads nothing until the group assigns partitions).
    pub fn new(
        mut consumer: Consumer,
        settings: GroupSettings,
        offset_reset: StartPosition,
    ) -> GroupConsumer {
        consumer.assign(BTreeMap::new());
        GroupConsumer {
            consumer,
            coordinator: GroupCoordinator::new(&settings.group_id, settings.retry_backoff),
            settings,
            offset_reset,
            member_id: String::new(),
            generation_id: None,
            assigned: BTreeSet::new(),
            committed: BTreeMap::new(),
            last_heartbeat: Instant::now(),
            last_commit: Instant::now(),
            warnings: Vec::new(),
        }
    }

    /// One round: join if needed, heartbeat and auto-commit when due, fetch once.
    pub fn poll(&mut self) -> Result<Vec<IncomingRecord>, ClientError> {
        if self.generation_id.is_none() && !self.join()? {
            thread::sleep(self.settings.retry_backoff);
            return Ok(Vec::new());
        }
        if self.last_heartbeat.elapsed() >= self.settings.heartbeat_interval {
            self.heartbeat()?;
        }
        if self.settings.auto_commit
            && self.generation_id.is_some()
            && self.last_commit.elapsed() >= self.settings.auto_commit_interval
        {
            self.commit()?;
        }
        if self.generation_id.is_none() {
            return Ok(Vec::new());
        }
        let records = self.consumer.poll()?;
        self.warnings.extend(self.consumer.take_warnings());
        Ok(records)
    }

    /// Whether the member is in a generation with an assignment (false while (re)joining).
    pub fn is_joined(&self) -> bool {
        self.generation_id.is_some()
    }

    /// Commits the position of every assigned partition that moved since the last commit.
    pub fn commit(&mut self) -> Result<(), ClientError> {
        self.last_commit = Instant::now();
        let Some(generation_id) = self.generation_id else {
            return Ok(());
        };
        let topic = self.consumer.topic().to_string();
        let moved: BTreeMap<i32, i64> = self
            .consumer
            .positions()
            .into_iter()
            .filter(|(partition, position)| self.committed.get(partition) != Some(position))
            .collect();
        if moved.is_empty() {
            return Ok(());
        }
        let offsets = moved
            .iter()
            .map(|(partition, offset)| (TopicPartition::new(&topic, *partition), *offset))
            .collect();
        let result = self.coordinator.commit_offsets(
            self.consumer.client_mut(),
            generation_id,
            &self.member_id,
            &offsets,
        );
        if result.is_ok() {
            self.committed.extend(moved);
        }
        self.absorb("Offset commit", result)
    }

    /// Commits (with auto commit on) and leaves the group, as Kafka's consumer does on close.
    pub fn close(&mut self) -> Result<(), ClientError> {
        if self.settings.auto_commit {
            self.commit()?;
        }
        if self.member_id.is_empty() {
            return Ok(());
        }
        let member_id = std::mem::take(&mut self.member_id);
        self.generation_id = None;
        let result = leave_group(
            &mut self.coordinator,
            self.consumer.client_mut(),
            &member_id,
        );
        self.absorb("Leave group", result)
    }

    /// Moves a partition back to `offset`, for records fetched but not consumed.
    pub fn seek(&mut self, partition: i32, offset: i64) {
        self.consumer.seek(partition, offset);
    }

    /// Warnings since the last call, in Kafka's wording where Kafka has one.
    pub fn take_warnings(&mut self) -> Vec<String> {
        self.warnings.extend(self.consumer.take_warnings());
        std::mem::take(&mut self.warnings)
    }

    fn heartbeat(&mut self) -> Result<(), ClientError> {
        self.last_heartbeat = Instant::now();
        let Some(generation_id) = self.generation_id else {
            return Ok(());
        };
        let result = heartbeat(
            &mut self.coordinator,
            self.consumer.client_mut(),
            generation_id,
            &self.member_id,
        );
        if let Err(ClientError::Kafka(error)) = &result {
            if error.code == REBALANCE_IN_PROGRESS && self.settings.auto_commit {
                // Kafka commits what was consumed before rejoining, while the old generation
                // may still commit, so the next owner starts where this member stopped.
                self.commit()?;
            }
        }
        self.absorb("Heartbeat", result)
    }

    /// Turns errors a Kafka consumer survives into warnings (and a rejoin where needed).
    fn absorb(&mut self, action: &str, result: Result<(), ClientError>) -> Result<(), ClientError> {
        let error = match result {
            Ok(()) => return Ok(()),
            Err(error) => error,
        };
        match &error {
            ClientError::Kafka(kafka) if kafka.needs_rejoin() => {
                if matches!(kafka.code, UNKNOWN_MEMBER_ID | ILLEGAL_GENERATION) {
                    self.member_id.clear();
                }
                self.generation_id = None;
                // A rebalance is routine (Kafka logs it at INFO); a lost membership is not.
                if kafka.code != REBALANCE_IN_PROGRESS {
                    self.warnings.push(format!(
                        "{action} failed: {}: {} Rejoining the group.",
                        kafka.name(),
                        kafka
                    ));
                }
                Ok(())
            }
            ClientError::Kafka(kafka) if kafka.is_coordinator_error() || kafka.is_retriable() => {
                self.coordinator.forget();
                self.warnings
                    .push(format!("{action} failed: {}: {}", kafka.name(), kafka));
                Ok(())
            }
            other if other.is_transport() => {
                self.coordinator.forget();
                self.warnings.push(format!("{action} failed: {other}"));
                Ok(())
            }
            _ => Err(error),
        }
    }

    /// Joins and syncs; true when the member has a generation and an assignment.
    fn join(&mut self) -> Result<bool, ClientError> {
        let settings = self.join_settings();
        let joined = join_group(
            &mut self.coordinator,
            self.consumer.client_mut(),
            &settings,
            &self.member_id,
        );
        let joined = match joined {
            Ok(joined) => joined,
            Err(error) => return self.absorb("Join group", Err(error)).map(|()| false),
        };
        self.member_id = joined.member_id.clone();
        let assignments = match joined.is_leader() {
            true => self.leader_assignments(&joined)?,
            false => Vec::new(),
        };
        let synced = sync_group(
            &mut self.coordinator,
            self.consumer.client_mut(),
            &joined,
            PROTOCOL_TYPE_CONSUMER,
            assignments,
        );
        let assignment = match synced {
            Ok(bytes) => Assignment::decode(bytes)?,
            Err(error) => return self.absorb("Sync group", Err(error)).map(|()| false),
        };
        let partitions = assignment.partitions_of(self.consumer.topic());
        if !self.start_assignment(&partitions)? {
            return Ok(false);
        }
        self.generation_id = Some(joined.generation_id);
        self.last_heartbeat = Instant::now();
        self.last_commit = Instant::now();
        Ok(true)
    }

    fn join_settings(&self) -> JoinSettings {
        let topic = self.consumer.topic().to_string();
        let subscription = Subscription {
            version: SUBSCRIPTION_VERSION,
            topics: vec![topic.clone()],
            user_data: None,
            owned_partitions: vec![TopicPartitions {
                topic,
                partitions: self.assigned.iter().copied().collect(),
            }],
        };
        JoinSettings {
            session_timeout_ms: self.settings.session_timeout_ms,
            rebalance_timeout_ms: self.settings.rebalance_timeout_ms,
            protocol_type: PROTOCOL_TYPE_CONSUMER.to_string(),
            protocols: vec![(RANGE_ASSIGNOR_NAME.to_string(), subscription.encode())],
        }
    }

    /// Starts reading `partitions` at their committed offsets (or the reset position).
    fn start_assignment(&mut self, partitions: &[i32]) -> Result<bool, ClientError> {
        let topic = self.consumer.topic().to_string();
        let wanted: Vec<TopicPartition> = partitions
            .iter()
            .map(|partition| TopicPartition::new(&topic, *partition))
            .collect();
        let committed = match wanted.is_empty() {
            true => Ok(BTreeMap::new()),
            false => self
                .coordinator
                .fetch_offsets(self.consumer.client_mut(), Some(&wanted)),
        };
        let committed = match committed {
            Ok(committed) => committed,
            Err(error) => return self.absorb("Offset fetch", Err(error)).map(|()| false),
        };
        self.committed = committed
            .iter()
            .map(|(partition, offset)| (partition.partition, *offset))
            .collect();
        let starts = partitions
            .iter()
            .map(|partition| {
                let start = self
                    .committed
                    .get(partition)
                    .map_or(self.offset_reset, |offset| StartPosition::Offset(*offset));
                (*partition, start)
            })
            .collect();
        self.consumer.assign(starts);
        self.assigned = partitions.iter().copied().collect();
        Ok(true)
    }

    /// The leader's work: decode every member's subscription and run the range assignor.
    fn leader_assignments(
        &mut self,
        joined: &JoinOutcome,
    ) -> Result<Vec<(String, Bytes)>, ClientError> {
        let mut members = Vec::with_capacity(joined.members.len());
        for (member_id, metadata) in &joined.members {
            let subscription = Subscription::decode(metadata.clone())?;
            members.push(MemberSubscription {
                member_id: member_id.clone(),
                topics: subscription.topics,
            });
        }
        let topics: BTreeSet<String> = members
            .iter()
            .flat_map(|member| member.topics.iter().cloned())
            .collect();
        let topics: Vec<String> = topics.into_iter().collect();
        let metadata = self.consumer.client_mut().metadata(Some(&topics), false)?;
        let partition_counts = metadata
            .topics
            .iter()
            .filter(|topic| topic.error.is_none())
            .map(|topic| (topic.name.clone(), topic.partitions.len() as i32))
            .collect();
        let assignment = range_assignor::assign(&members, &partition_counts);
        Ok(assignment
            .into_iter()
            .map(|(member_id, topics)| (member_id, encode_assignment(topics)))
            .collect())
    }
}

fn encode_assignment(topics: BTreeMap<String, Vec<i32>>) -> Bytes {
    Assignment {
        version: ASSIGNMENT_VERSION,
        partitions: topics
            .into_iter()
            .map(|(topic, partitions)| TopicPartitions { topic, partitions })
            .collect(),
        user_data: None,
    }
    .encode()
}
