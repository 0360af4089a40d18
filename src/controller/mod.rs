//! The controller: the single writer of cluster metadata. On controller nodes it serves calls
//! (`rpc::Call`) from this node's shards and brokers, and from other nodes over the CONTROLLER
//! listener; only the active controller (the quorum's Raft leader) changes metadata. A change is
//! validated against the current image, committed to the metadata quorum (`driver`), and
//! applied by every node from the log (`image::apply`).
//!
//! The active controller also keeps broker sessions: registration gives a broker a new epoch
//! (fenced until it has caught up with the log), heartbeats keep it alive, and a broker silent
//! for `broker.session.timeout.ms` is fenced, which takes its partitions' leadership away.
//! `broker::BrokerSide` is the other end: how a broker registers, heartbeats, follows the log
//! and forwards its shards' requests.

mod acls;
pub mod bootstrap;
pub mod broker;
mod config_ops;
pub mod driver;
pub mod image;
pub mod metadata_log;
mod partitions;
pub mod quorum;
mod quotas;
pub mod rpc;
mod rpc_acls;
mod rpc_image;
mod rpc_quotas;
pub mod topics;
pub mod transport;

use std::collections::BTreeMap;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Instant;

use crate::config::ServerConfig;
use crate::metadata::configs;
use crate::metadata::{MetadataImage, TopicId, TopicImage};
use crate::security::acl::{AclBinding, AclFilter};
use config_ops::apply_config_op;
use driver::Driver;
use metadata_log::MetadataRecord;
use rpc::{Call, Reply};
pub use topics::TopicError;

/// Requests queued for the controller before senders wait.
pub const CONTROLLER_QUEUE_CAPACITY: usize = 256;
/// Producer ids handed to a shard at a time (Kafka's AllocateProducerIds block size).
pub const PRODUCER_ID_BLOCK_SIZE: i64 = 1000;

/// A topic to create; -1 counts mean the broker defaults.
#[derive(Clone, Debug, PartialEq)]
pub struct NewTopic {
    pub name: String,
    pub partitions: i32,
    pub replication_factor: i16,
    pub configs: BTreeMap<String, String>,
    /// Replicas chosen by the client, one list per partition in partition order.
    pub assignments: Option<Vec<Vec<i32>>>,
}

/// What a config change applies to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConfigResource {
    Topic(String),
    /// A broker's id as text, or "" for the defaults of every broker.
    Broker(String),
    /// A user's entries: its SCRAM credentials (`SCRAM-SHA-256`, `SCRAM-SHA-512`), written by
    /// AlterUserScramCredentials only.
    User(String),
}

/// One operation of IncrementalAlterConfigs (AlterConfigs is a `Set` of every key after
/// clearing the resource).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConfigOp {
    Set(String, String),
    Delete(String),
    Append(String, String),
    Subtract(String, String),
}

#[derive(Clone, Debug, PartialEq)]
pub struct ConfigAlteration {
    pub resource: ConfigResource,
    /// Whether every existing override goes first (AlterConfigs replaces the whole set).
    pub replace: bool,
    pub ops: Vec<ConfigOp>,
}

/// AlterClientQuotas for one entity: each key set (`Some`) or removed (`None`).
#[derive(Clone, Debug, PartialEq)]
pub struct QuotaAlteration {
    pub entity: crate::quota::QuotaEntity,
    pub ops: Vec<(String, Option<f64>)>,
}

/// CreatePartitions for one topic: the new total, and optionally the new partitions' replicas.
#[derive(Clone, Debug, PartialEq)]
pub struct PartitionIncrease {
    pub name: String,
    pub count: i32,
    pub assignments: Option<Vec<Vec<i32>>>,
}

pub enum ControllerRequest {
    CreateTopics {
        topics: Vec<NewTopic>,
        validate_only: bool,
        reply: flume::Sender<Vec<Result<Arc<TopicImage>, TopicError>>>,
    },
    DeleteTopics {
        names: Vec<String>,
        reply: flume::Sender<Vec<Result<TopicId, TopicError>>>,
    },
    AlterConfigs {
        alterations: Vec<ConfigAlteration>,
        validate_only: bool,
        reply: flume::Sender<Vec<Result<(), TopicError>>>,
    },
    CreatePartitions {
        increases: Vec<PartitionIncrease>,
        validate_only: bool,
        reply: flume::Sender<Vec<Result<(), TopicError>>>,
    },
    /// A block of `PRODUCER_ID_BLOCK_SIZE` producer ids never handed out before.
    AllocateProducerIds {
        reply: flume::Sender<Result<std::ops::Range<i64>, TopicError>>,
    },
    /// The metadata quorum as the active controller sees it (DescribeQuorum).
    DescribeQuorum {
        reply: flume::Sender<Result<QuorumStatus, TopicError>>,
    },
    /// ISR changes of partitions this broker leads (Kafka's AlterPartition).
    AlterPartition {
        changes: Vec<rpc::IsrChange>,
        reply: flume::Sender<Vec<Result<(), TopicError>>>,
    },
    /// Leader elections (ElectLeaders), answered partition by partition.
    ElectLeaders {
        preferred: bool,
        partitions: Vec<(String, i32)>,
        reply: flume::Sender<Vec<Result<(), TopicError>>>,
    },
    /// The broker is stopping (SIGTERM): have it fenced now, so its partitions' leadership
    /// moves at once rather than after the session timeout; answered when done or given up.
    ControlledShutdown { reply: flume::Sender<()> },
    /// New ACLs (CreateAcls), answered binding by binding.
    CreateAcls {
        bindings: Vec<AclBinding>,
        reply: flume::Sender<Vec<Result<(), TopicError>>>,
    },
    /// The ACLs each filter matches, deleted (DeleteAcls).
    DeleteAcls {
        filters: Vec<AclFilter>,
        reply: flume::Sender<Vec<Result<Vec<AclBinding>, TopicError>>>,
    },
    /// Client quota changes (AlterClientQuotas), answered entity by entity.
    AlterClientQuotas {
        alterations: Vec<QuotaAlteration>,
        validate_only: bool,
        reply: flume::Sender<Vec<Result<(), TopicError>>>,
    },
}

/// The metadata quorum (`__cluster_metadata-0`) as DescribeQuorum reports it. Offsets are Raft
/// log indexes; the leader epoch is the Raft term.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct QuorumStatus {
    /// Node id of the active controller, -1 when there is none.
    pub leader_id: i32,
    pub leader_epoch: i32,
    /// The highest committed index.
    pub high_watermark: i64,
    /// The controllers, by node id.
    pub voters: Vec<ReplicaStatus>,
    /// The brokers that follow the log without voting.
    pub observers: Vec<ReplicaStatus>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReplicaStatus {
    pub replica_id: i32,
    /// The index this replica is known to have, -1 when unknown.
    pub log_end_offset: i64,
    /// Milliseconds since the Unix epoch of the last fetch from this replica, -1 when unknown.
    pub last_fetch_timestamp: i64,
    /// Milliseconds since the Unix epoch when this replica last had the leader's whole log, -1
    /// when unknown.
    pub last_caught_up_timestamp: i64,
}

/// A broker's session as the active controller keeps it (not in the log: a new active
/// controller starts every session afresh).
struct Session {
    /// The process (incarnation) that holds the session.
    incarnation: String,
    /// When this controller last heard a heartbeat of it (not reset by a new term).
    heard: Option<Instant>,
    last_heartbeat: Instant,
    /// The committed index when it registered: it is caught up once it has applied that.
    registered_at: u64,
    metadata_index: u64,
    last_heartbeat_ms: i64,
}

/// Jobs for the controller's one task: calls, and the periodic session check.
pub enum Job {
    Call(Call, flume::Sender<Reply>),
    CheckSessions,
}

pub struct Controller {
    config: Arc<ServerConfig>,
    cluster_id: String,
    /// The image as of the last commit; refreshed from the driver before each job.
    image: MetadataImage,
    driver: Rc<Driver>,
    sessions: BTreeMap<i32, Session>,
    /// The term the sessions were kept in: a new term (a new leader) starts them afresh.
    sessions_term: u64,
    /// When leadership balance was last checked (`auto.leader.rebalance.enable`).
    balance_checked: Instant,
}

impl Controller {
    pub fn new(config: Arc<ServerConfig>, cluster_id: String, driver: Rc<Driver>) -> Controller {
        Controller {
            image: driver.image(),
            config,
            cluster_id,
            driver,
            sessions: BTreeMap::new(),
            sessions_term: 0,
            balance_checked: Instant::now(),
        }
    }

    /// Serves jobs one at a time until every sender is gone.
    pub async fn run(mut self, jobs: flume::Receiver<Job>) {
        while let Ok(job) = jobs.recv_async().await {
            // A follower's applied entries (or a snapshot) change the image between jobs; a
            // heartbeat needs no copy when nothing was applied.
            if self.image.metadata_index != self.driver.applied_index() {
                self.image = self.driver.image();
            }
            match job {
                Job::Call(call, reply) => {
                    let answer = self.serve(call).await;
                    let _ = reply.send(answer);
                }
                Job::CheckSessions => {
                    self.check_sessions().await;
                    self.balance_leaders().await;
                }
            }
        }
    }

    /// Asks for a session check every `interval` (the fencing clock).
    pub async fn session_clock(jobs: flume::Sender<Job>, interval: std::time::Duration) {
        loop {
            glommio::timer::sleep(interval).await;
            if jobs.send_async(Job::CheckSessions).await.is_err() {
                return;
            }
        }
    }

    async fn serve(&mut self, call: Call) -> Reply {
        if let Call::FetchMetadata { from_index, .. } = call {
            // Without waiting: a long poll is answered by the listener, not in this queue.
            let fetched = self.driver.entries_after(from_index);
            return Reply::Metadata {
                snapshot: fetched.snapshot,
                entries: fetched.entries,
                leader: self.driver.leader(),
            };
        }
        if !self.driver.is_leader() {
            return Reply::Refused(TopicError::NotController(self.driver.leader()));
        }
        self.start_sessions_if_new_term();
        match call {
            Call::CreateTopics {
                topics,
                validate_only,
            } => Reply::Topics(self.create_topics(topics, validate_only).await),
            Call::DeleteTopics { names } => Reply::Deleted(self.delete_topics(names).await),
            Call::AlterConfigs {
                alterations,
                validate_only,
            } => Reply::Done(
                self.record_each(&alterations, validate_only, Controller::config_record)
                    .await,
            ),
            Call::CreatePartitions {
                increases,
                validate_only,
            } => Reply::Done(
                self.record_each(&increases, validate_only, Controller::partitions_record)
                    .await,
            ),
            Call::AllocateProducerIds => match self.allocate_producer_ids().await {
                Ok(range) => Reply::ProducerIds(range),
                Err(error) => Reply::Refused(error),
            },
            Call::DescribeQuorum => Reply::Quorum(self.quorum_status()),
            Call::RegisterBroker {
                broker_id,
                cluster_id,
                incarnation,
                endpoints,
            } => {
                self.register_broker(broker_id, cluster_id, incarnation, endpoints)
                    .await
            }
            Call::BrokerHeartbeat {
                broker_id,
                epoch,
                metadata_index,
                offline_replicas,
                want_fence,
            } => {
                self.heartbeat(
                    broker_id,
                    epoch,
                    metadata_index,
                    offline_replicas,
                    want_fence,
                )
                .await
            }
            Call::ControlledShutdown { broker_id, epoch } => match self.image.broker(broker_id) {
                Some(broker) if broker.epoch == epoch => {
                    if !broker.fenced {
                        tracing::info!("broker {broker_id} is shutting down: fencing it");
                        let record = MetadataRecord::FenceBroker {
                            id: broker_id,
                            epoch,
                        };
                        if let Err(error) = self.commit(&[record]).await {
                            return Reply::Refused(error);
                        }
                    }
                    // Its successor need not wait for this session to time out.
                    if let Some(session) = self.sessions.get_mut(&broker_id) {
                        session.heard = None;
                    }
                    Reply::Heartbeat { fenced: true }
                }
                _ => Reply::Refused(TopicError::StaleBrokerEpoch(format!(
                    "Broker {broker_id} with epoch {epoch} is not registered"
                ))),
            },
            Call::AlterPartition {
                broker_id,
                broker_epoch,
                changes,
            } => {
                let check = |controller: &Controller, change: &rpc::IsrChange| {
                    controller.isr_record(broker_id, broker_epoch, change)
                };
                Reply::Done(self.record_each(&changes, false, check).await)
            }
            Call::ElectLeaders {
                preferred,
                partitions,
            } => {
                let check = |controller: &Controller, partition: &(String, i32)| {
                    controller.election_record(preferred, &partition.0, partition.1)
                };
                Reply::Done(self.record_each(&partitions, false, check).await)
            }
            Call::CreateAcls { bindings } => Reply::Done(self.create_acls(bindings).await),
            Call::DeleteAcls { filters } => self.delete_acls(filters).await,
            Call::AlterClientQuotas {
                alterations,
                validate_only,
            } => Reply::Done(
                self.record_all(&alterations, validate_only, Controller::quota_records)
                    .await,
            ),
            Call::FetchMetadata { .. } => unreachable!("answered above"),
        }
    }

    fn start_sessions_if_new_term(&mut self) {
        let term = self.driver.term();
        if term != self.sessions_term {
            // Every broker gets a whole session timeout to find the new active controller.
            let now = Instant::now();
            for session in self.sessions.values_mut() {
                session.last_heartbeat = now;
            }
            self.sessions_term = term;
        }
    }

    async fn register_broker(
        &mut self,
        broker_id: i32,
        cluster_id: String,
        incarnation: String,
        endpoints: Vec<crate::config::Listener>,
    ) -> Reply {
        if cluster_id != self.cluster_id {
            return Reply::Refused(TopicError::InconsistentClusterId(format!(
                "Broker {broker_id} has cluster id {cluster_id}, but this cluster's id is {}",
                self.cluster_id
            )));
        }
        // Another process with this id whose heartbeats this controller still hears: as in
        // Kafka, the newcomer waits until that session ends.
        let timeout = std::time::Duration::from_millis(self.config.broker_session_timeout_ms);
        let other_alive = self.sessions.get(&broker_id).is_some_and(|session| {
            session.incarnation != incarnation
                && session.heard.is_some_and(|heard| heard.elapsed() < timeout)
        }) && self.image.is_live(broker_id);
        if other_alive {
            return Reply::Refused(TopicError::DuplicateBrokerRegistration(format!(
                "Another broker is registered with that broker id ({broker_id})."
            )));
        }
        let epoch = self
            .image
            .brokers
            .iter()
            .map(|broker| broker.epoch)
            .max()
            .unwrap_or(0)
            .max(self.image.metadata_index as i64)
            + 1;
        let record = MetadataRecord::RegisterBroker {
            id: broker_id,
            epoch,
            endpoints,
        };
        if let Err(error) = self.commit(&[record]).await {
            return Reply::Refused(error);
        }
        self.sessions.insert(
            broker_id,
            Session {
                incarnation,
                heard: None,
                last_heartbeat: Instant::now(),
                registered_at: self.driver.applied_index(),
                metadata_index: 0,
                last_heartbeat_ms: now_ms(),
            },
        );
        Reply::Registered { epoch }
    }

    async fn heartbeat(
        &mut self,
        broker_id: i32,
        epoch: i64,
        metadata_index: u64,
        offline_replicas: Vec<(TopicId, i32)>,
        want_fence: bool,
    ) -> Reply {
        let Some(broker) = self.image.broker(broker_id).cloned() else {
            return Reply::Refused(TopicError::StaleBrokerEpoch(format!(
                "Broker {broker_id} is not registered"
            )));
        };
        if broker.epoch != epoch {
            return Reply::Refused(TopicError::StaleBrokerEpoch(format!(
                "Broker {broker_id} heartbeat with epoch {epoch}, but its current epoch is {}",
                broker.epoch
            )));
        }
        let session = self.sessions.entry(broker_id).or_insert(Session {
            incarnation: String::new(),
            heard: None,
            last_heartbeat: Instant::now(),
            registered_at: 0,
            metadata_index: 0,
            last_heartbeat_ms: 0,
        });
        session.last_heartbeat = Instant::now();
        session.heard = Some(session.last_heartbeat);
        session.last_heartbeat_ms = now_ms();
        session.metadata_index = session.metadata_index.max(metadata_index);
        let caught_up = metadata_index >= session.registered_at;
        let offline: std::collections::BTreeSet<(TopicId, i32)> =
            offline_replicas.iter().copied().collect();
        let known = self.image.offline_replicas.get(&broker_id);
        if known.map_or(!offline.is_empty(), |known| *known != offline) {
            tracing::warn!(
                "broker {broker_id} reports {} replica(s) in failed log directories",
                offline.len()
            );
            let record = MetadataRecord::ReplicasOffline {
                id: broker_id,
                epoch,
                replicas: offline_replicas,
            };
            if let Err(error) = self.commit(&[record]).await {
                return Reply::Refused(error);
            }
        }
        if broker.fenced && caught_up && !want_fence {
            let record = MetadataRecord::UnfenceBroker {
                id: broker_id,
                epoch,
            };
            if let Err(error) = self.commit(&[record]).await {
                return Reply::Refused(error);
            }
            return Reply::Heartbeat { fenced: false };
        }
        Reply::Heartbeat {
            fenced: broker.fenced,
        }
    }

    /// Fences every live broker whose heartbeats stopped for `broker.session.timeout.ms`.
    async fn check_sessions(&mut self) {
        if !self.driver.is_leader() {
            return;
        }
        self.start_sessions_if_new_term();
        let timeout = std::time::Duration::from_millis(self.config.broker_session_timeout_ms);
        let now = Instant::now();
        let expired: Vec<MetadataRecord> = self
            .image
            .live_brokers()
            .filter(|broker| {
                self.sessions
                    .get(&broker.node_id)
                    .is_none_or(|session| now.duration_since(session.last_heartbeat) > timeout)
            })
            .map(|broker| MetadataRecord::FenceBroker {
                id: broker.node_id,
                epoch: broker.epoch,
            })
            .collect();
        for record in &expired {
            let MetadataRecord::FenceBroker { id, .. } = record else {
                continue;
            };
            if !self.sessions.contains_key(id) {
                // Unknown to this leader: give it a whole session from now.
                self.sessions.insert(
                    *id,
                    Session {
                        incarnation: String::new(),
                        heard: None,
                        last_heartbeat: now,
                        registered_at: 0,
                        metadata_index: 0,
                        last_heartbeat_ms: 0,
                    },
                );
                continue;
            }
            tracing::warn!("broker {id} missed its heartbeats for {timeout:?}: fencing it");
            if let Err(error) = self.commit(std::slice::from_ref(record)).await {
                tracing::warn!("could not fence broker {id}: {error}");
            }
        }
    }

    async fn create_topics(
        &mut self,
        topics: Vec<NewTopic>,
        validate_only: bool,
    ) -> Vec<Result<TopicImage, TopicError>> {
        let mut records = Vec::new();
        let mut outcomes = Vec::with_capacity(topics.len());
        for topic in topics {
            let outcome = self.check_new_topic(&topic, &records).map(
                |(partitions, replication_factor, assignments)| MetadataRecord::CreateTopic {
                    name: topic.name.clone(),
                    id: TopicId(random_uuid()),
                    partitions,
                    replication_factor,
                    configs: topic.configs.clone(),
                    assignments,
                },
            );
            if let Ok(record) = &outcome {
                records.push(record.clone());
            }
            outcomes.push((topic.name, outcome));
        }
        if !validate_only {
            if let Err(error) = self.commit(&records).await {
                return outcomes.into_iter().map(|_| Err(error.clone())).collect();
            }
        }
        outcomes
            .into_iter()
            .map(|(name, outcome)| {
                outcome.map(|record| match validate_only {
                    true => image::topic_image(&self.image, &record, self.config.node_id)
                        .expect("a create record"),
                    false => (*self.image.topics[&name]).clone(),
                })
            })
            .collect()
    }

    /// Replicas for `partitions` new partitions from `first_partition` on, placed over the
    /// live brokers as Kafka places them.
    fn place(
        &self,
        first_partition: i32,
        partitions: i32,
        replication_factor: i16,
    ) -> Vec<Vec<i32>> {
        let brokers: Vec<i32> = self
            .image
            .live_brokers()
            .map(|broker| broker.node_id)
            .collect();
        if brokers.is_empty() {
            return Vec::new();
        }
        let random = random_uuid();
        let start = u32::from_be_bytes([random[0], random[1], random[2], random[3]]) as usize;
        let shift = u32::from_be_bytes([random[4], random[5], random[6], random[7]]) as usize;
        image::place_replicas(
            &brokers,
            first_partition,
            partitions,
            replication_factor as usize,
            start % brokers.len(),
            shift,
        )
    }

    fn check_new_topic(
        &self,
        topic: &NewTopic,
        pending: &[MetadataRecord],
    ) -> Result<(i32, i16, Vec<Vec<i32>>), TopicError> {
        topics::validate_name(&topic.name)?;
        let pending_same_name = pending
            .iter()
            .any(|record| matches!(record, MetadataRecord::CreateTopic { name, .. } if *name == topic.name));
        if self.image.topics.contains_key(&topic.name) || pending_same_name {
            return Err(TopicError::AlreadyExists(topic.name.clone()));
        }
        let partitions = match topic.partitions {
            -1 => self.config.num_partitions,
            count => count,
        };
        let replication_factor = match topic.replication_factor {
            -1 => self.config.default_replication_factor,
            factor => factor,
        };
        // Chosen replicas are checked first: they fix the counts checked next.
        if let Some(assignments) = &topic.assignments {
            self.check_assignments(assignments, 0)?;
            topics::validate_configs(&topic.configs)?;
            let width = assignments.first().map_or(0, Vec::len) as i16;
            return Ok((assignments.len() as i32, width, assignments.clone()));
        }
        topics::validate_counts(
            partitions,
            replication_factor,
            self.image.live_brokers().count(),
        )?;
        topics::validate_configs(&topic.configs)?;
        let assignments = self.place(0, partitions, replication_factor);
        Ok((partitions, replication_factor, assignments))
    }

    /// Checks replicas a client chose: every broker registered, none twice in a partition, and
    /// every partition with as many replicas as the first.
    fn check_assignments(
        &self,
        assignments: &[Vec<i32>],
        first_partition: usize,
    ) -> Result<(), TopicError> {
        let invalid = |reason: String| Err(TopicError::InvalidReplicaAssignment(reason));
        let width = assignments.first().map_or(0, Vec::len);
        for (index, replicas) in assignments.iter().enumerate() {
            let partition = first_partition + index;
            if replicas.is_empty() {
                return invalid(format!(
                    "The manual partition assignment includes an empty replica list for partition {partition}."
                ));
            }
            if replicas.len() != width {
                return invalid(format!(
                    "The manual partition assignment includes a partition with {} replica(s), but this is not consistent with previous partitions, which have {width} replica(s).",
                    replicas.len()
                ));
            }
            for (at, broker) in replicas.iter().enumerate() {
                if !self
                    .image
                    .brokers
                    .iter()
                    .any(|known| known.node_id == *broker)
                {
                    return invalid(format!(
                        "The manual partition assignment includes broker {broker}, but no such broker is registered."
                    ));
                }
                if replicas[..at].contains(broker) {
                    return invalid(format!(
                        "The manual partition assignment includes the broker {broker} more than once."
                    ));
                }
            }
        }
        Ok(())
    }

    /// Checks each item into a record, then (unless `validate_only`) commits the records of
    /// those that passed together; answers each item in order.
    async fn record_each<T>(
        &mut self,
        items: &[T],
        validate_only: bool,
        check: impl Fn(&Controller, &T) -> Result<MetadataRecord, TopicError>,
    ) -> Vec<Result<(), TopicError>> {
        let one = |controller: &Controller, item: &T| check(controller, item).map(|r| vec![r]);
        self.record_all(items, validate_only, one).await
    }

    /// The record that makes `alteration` so, after checking it against Kafka's rules.
    fn config_record(&self, alteration: &ConfigAlteration) -> Result<MetadataRecord, TopicError> {
        type Validator = fn(&str, &str) -> Result<(), String>;
        let (current, validate): (BTreeMap<String, String>, Validator) = match &alteration.resource
        {
            ConfigResource::Topic(name) => {
                let topic = self.image.topic(name).ok_or(TopicError::UnknownTopic)?;
                (topic.configs.clone(), configs::validate_topic_config)
            }
            ConfigResource::Broker(broker) => {
                if !broker.is_empty()
                    && !self
                        .image
                        .brokers
                        .iter()
                        .any(|known| known.node_id.to_string() == *broker)
                {
                    return Err(TopicError::InvalidRequest(format!(
                            "Unexpected broker id, expected one of the registered brokers, but received {broker}"
                        )));
                }
                let current = self
                    .image
                    .broker_configs
                    .get(broker)
                    .cloned()
                    .unwrap_or_default();
                (current, configs::validate_broker_config)
            }
            ConfigResource::User(user) => {
                let current = self
                    .image
                    .user_configs
                    .get(user)
                    .cloned()
                    .unwrap_or_default();
                (current, configs::validate_user_config)
            }
        };
        let mut updated = if alteration.replace {
            BTreeMap::new()
        } else {
            current
        };
        for op in &alteration.ops {
            apply_config_op(&mut updated, op)?;
        }
        // Only what this change writes is checked: an override recorded under older rules
        // must not block every later change to its resource.
        let written = alteration.ops.iter().filter_map(|op| match op {
            ConfigOp::Set(key, _) | ConfigOp::Append(key, _) | ConfigOp::Subtract(key, _) => {
                Some(key)
            }
            ConfigOp::Delete(_) => None,
        });
        for (key, value) in written.filter_map(|key| updated.get_key_value(key)) {
            validate(key, value).map_err(|reason| match &alteration.resource {
                ConfigResource::Broker(_) if reason.starts_with("Cannot update") => {
                    TopicError::InvalidRequest(reason)
                }
                _ => TopicError::InvalidConfig(reason),
            })?;
        }
        Ok(match &alteration.resource {
            ConfigResource::Topic(name) => MetadataRecord::TopicConfigs {
                name: name.clone(),
                id: self.image.topics[name].id,
                configs: updated,
            },
            ConfigResource::Broker(broker) => MetadataRecord::BrokerConfigs {
                broker: broker.clone(),
                configs: updated,
            },
            ConfigResource::User(user) => MetadataRecord::UserConfigs {
                user: user.clone(),
                configs: updated,
            },
        })
    }

    /// The record adding partitions to a topic, after Kafka's checks: the count must grow, and
    /// chosen replicas must cover exactly the new partitions.
    fn partitions_record(
        &self,
        increase: &PartitionIncrease,
    ) -> Result<MetadataRecord, TopicError> {
        let topic = self
            .image
            .topic(&increase.name)
            .ok_or(TopicError::UnknownTopic)?;
        let current = topic.partitions.len() as i32;
        if increase.count < current {
            return Err(TopicError::InvalidPartitions(format!(
                "The topic {} currently has {current} partition(s); {} would not be an increase.",
                increase.name, increase.count
            )));
        }
        if increase.count == current {
            return Err(TopicError::InvalidPartitions(format!(
                "Topic already has {current} partition(s)."
            )));
        }
        let assignments = match &increase.assignments {
            Some(assignments) => assignments.clone(),
            None => self.place(
                current,
                increase.count - current,
                topic.replication_factor() as i16,
            ),
        };
        if let Some(assignments) = &increase.assignments {
            if assignments.len() as i32 != increase.count - current {
                return Err(TopicError::InvalidReplicaAssignment(format!(
                    "Attempted to add {} additional partition(s), but only {} assignment(s) were specified.",
                    increase.count - current,
                    assignments.len()
                )));
            }
            self.check_assignments(assignments, current as usize)?;
        }
        Ok(MetadataRecord::Partitions {
            name: increase.name.clone(),
            id: topic.id,
            partitions: increase.count,
            assignments,
        })
    }

    async fn delete_topics(&mut self, names: Vec<String>) -> Vec<Result<TopicId, TopicError>> {
        let mut records = Vec::new();
        let outcomes: Vec<Result<TopicId, TopicError>> = names
            .iter()
            .map(|name| {
                let topic = self
                    .image
                    .topics
                    .get(name)
                    .ok_or(TopicError::UnknownTopic)?;
                let record = MetadataRecord::DeleteTopic {
                    name: name.clone(),
                    id: topic.id,
                };
                if !records.contains(&record) {
                    records.push(record);
                }
                Ok(topic.id)
            })
            .collect();
        if let Err(error) = self.commit(&records).await {
            return outcomes.into_iter().map(|_| Err(error.clone())).collect();
        }
        outcomes
    }

    fn quorum_status(&self) -> QuorumStatus {
        let voter_ids: Vec<i32> = self
            .config
            .controller_quorum_voters
            .iter()
            .map(|voter| voter.node_id)
            .collect();
        let committed = self.driver.committed_index() as i64;
        let observers = self
            .image
            .brokers
            .iter()
            .filter(|broker| !voter_ids.contains(&broker.node_id))
            .map(|broker| {
                let session = self.sessions.get(&broker.node_id);
                let end = session.map_or(-1, |session| session.metadata_index as i64);
                let fetched = session.map_or(-1, |session| session.last_heartbeat_ms);
                ReplicaStatus {
                    replica_id: broker.node_id,
                    log_end_offset: end,
                    last_fetch_timestamp: fetched,
                    last_caught_up_timestamp: if end >= committed { fetched } else { -1 },
                }
            })
            .collect();
        QuorumStatus {
            leader_id: self.driver.leader(),
            leader_epoch: self.driver.term() as i32,
            high_watermark: committed,
            voters: self.driver.voters(&voter_ids),
            observers,
        }
    }

    async fn allocate_producer_ids(&mut self) -> Result<std::ops::Range<i64>, TopicError> {
        let start = self.image.next_producer_id;
        let end = start + PRODUCER_ID_BLOCK_SIZE;
        self.commit(&[MetadataRecord::ProducerIds {
            next_producer_id: end,
        }])
        .await?;
        Ok(start..end)
    }

    /// Commits `records` through the quorum; on return every node may apply them and this
    /// controller's image has them.
    async fn commit(&mut self, records: &[MetadataRecord]) -> Result<(), TopicError> {
        if records.is_empty() {
            return Ok(());
        }
        let committed = self.driver.commit(records).await;
        self.image = self.driver.image();
        committed
    }
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_millis() as i64)
}

/// 16 random bytes from the kernel, as a version-4 UUID. Like Kafka's `Uuid.randomUuid`, never
/// one whose text form starts with '-' (it would read as a command-line flag).
pub fn random_uuid() -> [u8; 16] {
    loop {
        let mut bytes = [0u8; 16];
        // SAFETY: getrandom writes at most `len` bytes into the buffer.
        let filled = unsafe { libc::getrandom(bytes.as_mut_ptr().cast(), bytes.len(), 0) };
        assert_eq!(filled, 16, "getrandom returned too few bytes");
        bytes[6] = (bytes[6] & 0x0f) | 0x40;
        bytes[8] = (bytes[8] & 0x3f) | 0x80;
        // The first base64 character is the top six bits; 62 is '-'.
        if bytes[0] >> 2 != 62 {
            return bytes;
        }
    }
}
