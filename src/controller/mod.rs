//! The controller: the single writer of cluster metadata. It runs on its own executor, takes
//! topic changes as messages, validates them, makes them durable in the metadata log, and then
//! hands every shard the new immutable `MetadataImage`, answering only once all shards have it
//! (so a client may produce to a topic as soon as CreateTopics returns).
//!
//! Today the quorum is this node alone; the Raft quorum (raft-rs) replaces the local metadata
//! log with a replicated one and leaves this interface as it is.

pub mod metadata_log;
pub mod topics;

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::config::ServerConfig;
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
        let (log, records) = MetadataLog::open(&config.log_dirs[0])?;
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
        topics::validate_counts(partitions, replication_factor, self.image.brokers.len())?;
        topics::validate_configs(&topic.configs)?;
        Ok((partitions, replication_factor))
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

/// Applies one record to an image; the only place metadata changes.
fn apply(image: &mut MetadataImage, record: &MetadataRecord, node_id: i32) {
    match record {
        MetadataRecord::CreateTopic { name, .. } => {
            let topic = topic_image(record, node_id).expect("a create record");
            image.topics.insert(name.clone(), Arc::new(topic));
        }
        MetadataRecord::DeleteTopic { name, id } => {
            if image.topics.get(name).is_some_and(|topic| topic.id == *id) {
                image.topics.remove(name);
            }
        }
        MetadataRecord::ProducerIds { .. } => {}
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
        .map(|index| PartitionImage {
            index,
            leader: node_id,
            leader_epoch: 0,
            replicas: vec![node_id],
            isr: vec![node_id],
        })
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
