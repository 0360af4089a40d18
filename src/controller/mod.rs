//! The controller: the single writer of cluster metadata. It runs on its own executor, takes
//! topic changes as messages, validates them, makes them durable in the metadata log, and then
//! hands every shard the new immutable `MetadataImage`, answering only once all shards have it
//! (so a client may produce to a topic as soon as CreateTopics returns).
//!
//! Today the quorum is this node alone; the Raft quorum (raft-rs) replaces the local metadata
//! log with a replicated one and leaves this interface as it is.

pub mod metadata_log;
pub mod quorum;
pub mod topics;

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::config::ServerConfig;
use crate::metadata::configs;
use crate::metadata::{BrokerImage, MetadataImage, PartitionImage, TopicId, TopicImage};
use crate::runtime::mesh::{Mesh, ShardRequest};
use crate::runtime::placement::ShardId;
use metadata_log::{MetadataLog, MetadataLogError, MetadataRecord};
pub use topics::TopicError;

/// Requests queued for the controller before senders wait.
pub const CONTROLLER_QUEUE_CAPACITY: usize = 256;
/// Producer ids handed to a shard at a time (Kafka's AllocateProducerIds block size).
pub const PRODUCER_ID_BLOCK_SIZE: i64 = 1000;

/// A topic to create; -1 counts mean the broker defaults.
#[derive(Clone, Debug)]
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

#[derive(Clone, Debug)]
pub struct ConfigAlteration {
    pub resource: ConfigResource,
    /// Whether every existing override goes first (AlterConfigs replaces the whole set).
    pub replace: bool,
    pub ops: Vec<ConfigOp>,
}

/// CreatePartitions for one topic: the new total, and optionally the new partitions' replicas.
#[derive(Clone, Debug)]
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
}

pub struct Controller {
    config: Arc<ServerConfig>,
    image: MetadataImage,
    log: MetadataLog,
    mesh: Mesh,
    next_producer_id: i64,
}

impl Controller {
    /// Replays the metadata log in the first log dir and builds the first image.
    pub fn open(
        config: Arc<ServerConfig>,
        cluster_id: String,
        mesh: Mesh,
    ) -> Result<Controller, MetadataLogError> {
        let (log, records) = MetadataLog::open(&config.log_dirs[0], config.node_id)?;
        let brokers = vec![BrokerImage {
            node_id: config.node_id,
            endpoints: config.advertised_listeners.clone(),
        }];
        let mut image = MetadataImage {
            epoch: 0,
            cluster_id,
            controller_id: config.node_id,
            brokers,
            topics: BTreeMap::new(),
            topic_names: BTreeMap::new(),
            broker_configs: BTreeMap::new(),
        };
        let mut next_producer_id = 0;
        for record in &records {
            apply(&mut image, record, config.node_id);
            if let MetadataRecord::ProducerIds {
                next_producer_id: next,
            } = record
            {
                next_producer_id = *next;
            }
        }
        Ok(Controller {
            config,
            image,
            log,
            mesh,
            next_producer_id,
        })
    }

    pub fn image(&self) -> Arc<MetadataImage> {
        Arc::new(self.image.clone())
    }

    /// Serves requests one at a time until every sender is gone.
    pub async fn run(mut self, requests: flume::Receiver<ControllerRequest>) {
        while let Ok(request) = requests.recv_async().await {
            match request {
                ControllerRequest::CreateTopics {
                    topics,
                    validate_only,
                    reply,
                } => {
                    let results = self.create_topics(topics, validate_only).await;
                    let _ = reply.send(results);
                }
                ControllerRequest::DeleteTopics { names, reply } => {
                    let results = self.delete_topics(names).await;
                    let _ = reply.send(results);
                }
                ControllerRequest::AlterConfigs {
                    alterations,
                    validate_only,
                    reply,
                } => {
                    let results = self
                        .record_each(&alterations, validate_only, Controller::config_record)
                        .await;
                    let _ = reply.send(results);
                }
                ControllerRequest::CreatePartitions {
                    increases,
                    validate_only,
                    reply,
                } => {
                    let results = self
                        .record_each(&increases, validate_only, Controller::partitions_record)
                        .await;
                    let _ = reply.send(results);
                }
                ControllerRequest::AllocateProducerIds { reply } => {
                    let _ = reply.send(self.allocate_producer_ids());
                }
            }
        }
    }

    async fn create_topics(
        &mut self,
        topics: Vec<NewTopic>,
        validate_only: bool,
    ) -> Vec<Result<Arc<TopicImage>, TopicError>> {
        let mut records = Vec::new();
        let mut outcomes = Vec::with_capacity(topics.len());
        for topic in topics {
            let outcome =
                self.check_new_topic(&topic, &records)
                    .map(
                        |(partitions, replication_factor)| MetadataRecord::CreateTopic {
                            name: topic.name.clone(),
                            id: TopicId(random_uuid()),
                            partitions,
                            replication_factor,
                            configs: topic.configs.clone(),
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
                    true => Arc::new(
                        topic_image(&record, self.config.node_id).expect("a create record"),
                    ),
                    false => self.image.topics[&name].clone(),
                })
            })
            .collect()
    }

    fn check_new_topic(
        &self,
        topic: &NewTopic,
        pending: &[MetadataRecord],
    ) -> Result<(i32, i16), TopicError> {
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
        }
        topics::validate_counts(partitions, replication_factor, self.image.brokers.len())?;
        topics::validate_configs(&topic.configs)?;
        Ok((partitions, replication_factor))
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
        let mut records = Vec::new();
        let outcomes: Vec<Result<(), TopicError>> = items
            .iter()
            .map(|item| {
                records.push(check(self, item)?);
                Ok(())
            })
            .collect();
        if !validate_only {
            if let Err(error) = self.commit(&records).await {
                return outcomes.into_iter().map(|_| Err(error.clone())).collect();
            }
        }
        outcomes
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

    fn allocate_producer_ids(&mut self) -> Result<std::ops::Range<i64>, TopicError> {
        let start = self.next_producer_id;
        let end = start + PRODUCER_ID_BLOCK_SIZE;
        self.log
            .append(&[MetadataRecord::ProducerIds {
                next_producer_id: end,
            }])
            .map_err(|error| TopicError::Storage(error.to_string()))?;
        self.next_producer_id = end;
        Ok(start..end)
    }

    /// Makes `records` durable, applies them, and waits until every shard has the new image.
    async fn commit(&mut self, records: &[MetadataRecord]) -> Result<(), TopicError> {
        if records.is_empty() {
            return Ok(());
        }
        self.log.append(records).map_err(|error| {
            tracing::error!("{error}");
            TopicError::Storage(error.to_string())
        })?;
        for record in records {
            apply(&mut self.image, record, self.config.node_id);
            log_record(record);
        }
        self.image.epoch += 1;
        self.publish().await;
        Ok(())
    }

    async fn publish(&self) {
        let image = self.image();
        let mut acknowledgements = Vec::with_capacity(self.mesh.shard_count());
        for shard in 0..self.mesh.shard_count() {
            let (reply, acknowledged) = flume::bounded(1);
            self.mesh
                .send(
                    ShardId(shard),
                    ShardRequest::ApplyMetadata {
                        image: image.clone(),
                        reply,
                    },
                )
                .await;
            acknowledgements.push(acknowledged);
        }
        for acknowledged in acknowledgements {
            let _ = acknowledged.recv_async().await;
        }
    }
}

/// Applies one IncrementalAlterConfigs operation to a resource's overrides. APPEND and SUBTRACT
/// work on list values only, as in Kafka.
fn apply_config_op(
    configs: &mut BTreeMap<String, String>,
    op: &ConfigOp,
) -> Result<(), TopicError> {
    let list_only = |key: &str, verb: &str| match configs::is_list(key) {
        true => Ok(()),
        false => Err(TopicError::InvalidRequest(format!(
            "Config value {verb} is not allowed for config key: {key}"
        ))),
    };
    match op {
        ConfigOp::Set(key, value) => {
            configs.insert(key.clone(), value.clone());
        }
        ConfigOp::Delete(key) => {
            configs.remove(key);
        }
        ConfigOp::Append(key, value) => {
            list_only(key, "append")?;
            let entry = configs.entry(key.clone()).or_default();
            let mut items: Vec<String> = split_items(entry);
            for item in split_items(value) {
                if !items.contains(&item) {
                    items.push(item);
                }
            }
            *entry = items.join(",");
        }
        ConfigOp::Subtract(key, value) => {
            list_only(key, "subtract")?;
            let removed = split_items(value);
            if let Some(entry) = configs.get_mut(key) {
                let items: Vec<String> = split_items(entry)
                    .into_iter()
                    .filter(|item| !removed.contains(item))
                    .collect();
                *entry = items.join(",");
            }
        }
    }
    Ok(())
}

fn split_items(list: &str) -> Vec<String> {
    list.split(',')
        .map(str::trim)
        .filter(|item| !item.is_empty())
        .map(str::to_string)
        .collect()
}

/// Applies one record to an image; the only place metadata changes.
fn apply(image: &mut MetadataImage, record: &MetadataRecord, node_id: i32) {
    match record {
        MetadataRecord::CreateTopic { name, .. } => {
            let topic = topic_image(record, node_id).expect("a create record");
            image.topic_names.insert(topic.id, name.clone());
            image.topics.insert(name.clone(), Arc::new(topic));
        }
        MetadataRecord::DeleteTopic { name, id } => {
            if image.topics.get(name).is_some_and(|topic| topic.id == *id) {
                image.topics.remove(name);
                image.topic_names.remove(id);
            }
        }
        MetadataRecord::ProducerIds { .. } => {}
        MetadataRecord::TopicConfigs { name, id, configs } => {
            if let Some(topic) = image.topics.get_mut(name).filter(|topic| topic.id == *id) {
                Arc::make_mut(topic).configs = configs.clone();
            }
        }
        MetadataRecord::BrokerConfigs { broker, configs } => {
            match configs.is_empty() {
                true => image.broker_configs.remove(broker),
                false => image.broker_configs.insert(broker.clone(), configs.clone()),
            };
        }
        MetadataRecord::Partitions {
            name,
            id,
            partitions,
        } => {
            if let Some(topic) = image.topics.get_mut(name).filter(|topic| topic.id == *id) {
                let topic = Arc::make_mut(topic);
                for index in topic.partitions.len() as i32..*partitions {
                    topic.partitions.push(new_partition(index, node_id));
                }
            }
        }
    }
}

fn new_partition(index: i32, node_id: i32) -> PartitionImage {
    PartitionImage {
        index,
        leader: node_id,
        leader_epoch: 0,
        replicas: vec![node_id],
        isr: vec![node_id],
    }
}

/// The image of a topic created by `record`: every replica on this node until brokers join.
fn topic_image(record: &MetadataRecord, node_id: i32) -> Option<TopicImage> {
    let MetadataRecord::CreateTopic {
        name,
        id,
        partitions,
        configs,
        ..
    } = record
    else {
        return None;
    };
    let partitions = (0..*partitions)
        .map(|index| new_partition(index, node_id))
        .collect();
    Some(TopicImage {
        name: name.clone(),
        id: *id,
        partitions,
        configs: configs.clone(),
    })
}

fn log_record(record: &MetadataRecord) {
    match record {
        MetadataRecord::CreateTopic { name, partitions, replication_factor, .. } => tracing::info!(
            "created topic {name} with {partitions} partition(s), replication factor {replication_factor}"
        ),
        MetadataRecord::DeleteTopic { name, .. } => tracing::info!("deleted topic {name}"),
        MetadataRecord::ProducerIds { .. } => {}
        MetadataRecord::TopicConfigs { name, configs, .. } => {
            tracing::info!("configs of topic {name} are now {configs:?}")
        }
        MetadataRecord::BrokerConfigs { broker, configs } => match broker.is_empty() {
            true => tracing::info!("default broker configs are now {configs:?}"),
            false => tracing::info!("dynamic configs of broker {broker} are now {configs:?}"),
        },
        MetadataRecord::Partitions {
            name, partitions, ..
        } => tracing::info!("topic {name} now has {partitions} partition(s)"),
    }
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
