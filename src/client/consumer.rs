//! A blocking consumer of one topic: it reads every partition (or chosen partitions, or those a
//! group assigned through `assign`), finds start offsets with ListOffsets, and fetches from each
//! partition's leader. Positions only move forward past records that were returned or batches that held only
//! control records. Problems a Kafka consumer would log and survive (unknown topic, leader moved)
//! become warnings and a metadata refresh; only errors it cannot survive are returned.

use std::collections::{BTreeMap, BTreeSet};
use std::thread;
use std::time::Duration;

use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::{
    ApiKey, BrokerId, FetchRequest, FetchResponse, ListOffsetsRequest, TopicName,
};
use kafka_protocol::protocol::StrBytes;

use super::cluster::{Client, NodeId};
use super::error::{error_name, ClientError, KafkaError};
use super::records::{decode_batches, IncomingRecord};

/// ListOffsets timestamps that mean "log start" and "log end".
const EARLIEST_TIMESTAMP: i64 = -2;
const LATEST_TIMESTAMP: i64 = -1;
const OFFSET_OUT_OF_RANGE: i16 = 1;

/// Where a partition starts being read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartPosition {
    Earliest,
    Latest,
    Offset(i64),
}

#[derive(Debug, Clone)]
pub struct ConsumerSettings {
    /// fetch.max.wait.ms
    pub fetch_wait_ms: i32,
    /// fetch.min.bytes
    pub fetch_bytes_min: i32,
    /// fetch.max.bytes
    pub fetch_bytes_max: i32,
    /// max.partition.fetch.bytes
    pub partition_fetch_bytes_max: i32,
    /// auto.offset.reset, used after OFFSET_OUT_OF_RANGE.
    pub offset_reset: StartPosition,
    /// allow.auto.create.topics
    pub allow_auto_topic_creation: bool,
    /// isolation.level: 0 read_uncommitted, 1 read_committed.
    pub isolation_level: i8,
    /// retry.backoff.ms, also the pause after a failed metadata lookup.
    pub retry_backoff: Duration,
}

impl Default for ConsumerSettings {
    fn default() -> Self {
        ConsumerSettings {
            fetch_wait_ms: 500,
            fetch_bytes_min: 1,
            fetch_bytes_max: 50 * 1024 * 1024,
            partition_fetch_bytes_max: 1024 * 1024,
            offset_reset: StartPosition::Latest,
            allow_auto_topic_creation: true,
            isolation_level: 0,
            retry_backoff: Duration::from_millis(200),
        }
    }
}

/// What the consumer knows about one assigned partition.
#[derive(Debug, Clone)]
struct Assignment {
    leader: NodeId,
    start: StartPosition,
    position: Option<i64>,
}

pub struct Consumer {
    client: Client,
    topic: String,
    /// The partitions to read; `None` reads every partition of the topic.
    chosen_partitions: Option<BTreeSet<i32>>,
    start: StartPosition,
    settings: ConsumerSettings,
    assignments: BTreeMap<i32, Assignment>,
    metadata_stale: bool,
    warnings: Vec<String>,
}

impl Consumer {
    pub fn new(
        client: Client,
        topic: &str,
        chosen_partition: Option<i32>,
        start: StartPosition,
        settings: ConsumerSettings,
    ) -> Consumer {
        let mut assignments = BTreeMap::new();
        if let Some(partition) = chosen_partition {
            let assignment = Assignment {
                leader: NodeId::NONE,
                start,
                position: None,
            };
            assignments.insert(partition, assignment);
        }
        Consumer {
            client,
            topic: topic.to_string(),
            chosen_partitions: chosen_partition.map(|partition| BTreeSet::from([partition])),
            start,
            settings,
            assignments,
            metadata_stale: true,
            warnings: Vec::new(),
        }
    }

    /// Replaces the partitions read with `starts` (a group assignment), each from its start.
    pub fn assign(&mut self, starts: BTreeMap<i32, StartPosition>) {
        self.chosen_partitions = Some(starts.keys().copied().collect());
        self.assignments = starts
            .into_iter()
            .map(|(partition, start)| {
                let assignment = Assignment {
                    leader: NodeId::NONE,
                    start,
                    position: None,
                };
                (partition, assignment)
            })
            .collect();
        self.metadata_stale = true;
    }

    /// The next offset to read of every partition that has a position.
    pub fn positions(&self) -> BTreeMap<i32, i64> {
        self.assignments
            .iter()
            .filter_map(|(partition, assignment)| {
                assignment.position.map(|position| (*partition, position))
            })
            .collect()
    }

    /// Moves an assigned partition's position, for records returned but not consumed.
    pub fn seek(&mut self, partition: i32, offset: i64) {
        self.set_position(partition, offset);
    }

    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// The client, for group requests that share its connections.
    pub fn client_mut(&mut self) -> &mut Client {
        &mut self.client
    }

    /// One round: refresh metadata if needed, resolve start offsets, fetch once from every leader.
    pub fn poll(&mut self) -> Result<Vec<IncomingRecord>, ClientError> {
        if self.metadata_stale {
            let ready = match self.refresh_metadata() {
                Ok(ready) => ready,
                Err(error) if error.is_transport() => {
                    self.warnings
                        .push(format!("Error while fetching metadata: {error}"));
                    false
                }
                Err(error) => return Err(error),
            };
            if !ready {
                thread::sleep(self.settings.retry_backoff);
                return Ok(Vec::new());
            }
        }
        self.resolve_positions();
        let mut records = Vec::new();
        let leaders: Vec<NodeId> = self.fetchable_leaders();
        if leaders.is_empty() {
            thread::sleep(self.settings.retry_backoff);
        }
        for leader in leaders {
            match self.fetch_from(leader) {
                Ok(mut fetched) => records.append(&mut fetched),
                Err(error) if error.is_transport() => {
                    self.warnings
                        .push(format!("Error fetching from node {}: {error}", leader.0));
                    self.metadata_stale = true;
                    thread::sleep(self.settings.retry_backoff);
                }
                Err(error) => return Err(error),
            }
        }
        Ok(records)
    }

    /// Warnings since the last call, in Kafka's wording where Kafka has one.
    pub fn take_warnings(&mut self) -> Vec<String> {
        std::mem::take(&mut self.warnings)
    }

    /// Refreshes the assignment from metadata; false when the topic is not usable yet.
    fn refresh_metadata(&mut self) -> Result<bool, ClientError> {
        let topics = [self.topic.clone()];
        let metadata = self
            .client
            .metadata(Some(&topics), self.settings.allow_auto_topic_creation)?;
        let topic_error = match metadata.topic(&self.topic) {
            None => Some(KafkaError::new(3)),
            Some(topic) => topic.error.clone(),
        };
        if let Some(error) = topic_error {
            if !error.is_retriable() {
                return Err(error.into());
            }
            self.warnings.push(format!(
                "Error while fetching metadata with correlation id {} : {{{}={}}}",
                self.client.last_correlation_id(),
                self.topic,
                error.name()
            ));
            return Ok(false);
        }
        let partitions = metadata
            .topic(&self.topic)
            .map_or(Vec::new(), |topic| topic.partitions.clone());
        for partition in partitions {
            if self
                .chosen_partitions
                .as_ref()
                .is_some_and(|chosen| !chosen.contains(&partition.partition))
            {
                continue;
            }
            let start = self.start;
            let assignment = self
                .assignments
                .entry(partition.partition)
                .or_insert(Assignment {
                    leader: NodeId::NONE,
                    start,
                    position: None,
                });
            assignment.leader = partition.leader;
        }
        self.metadata_stale = false;
        Ok(true)
    }

    fn fetchable_leaders(&self) -> Vec<NodeId> {
        let mut leaders: Vec<NodeId> = self
            .assignments
            .values()
            .filter(|assignment| assignment.position.is_some() && assignment.leader != NodeId::NONE)
            .map(|assignment| assignment.leader)
            .collect();
        leaders.sort();
        leaders.dedup();
        leaders
    }

    /// Gives every partition without a position one, from ListOffsets or the explicit offset.
    fn resolve_positions(&mut self) {
        let unresolved: Vec<(i32, NodeId, StartPosition)> = self
            .assignments
            .iter()
            .filter(|(_, assignment)| {
                assignment.position.is_none() && assignment.leader != NodeId::NONE
            })
            .map(|(partition, assignment)| (*partition, assignment.leader, assignment.start))
            .collect();
        for (partition, leader, start) in unresolved {
            let timestamp = match start {
                StartPosition::Offset(offset) => {
                    self.set_position(partition, offset);
                    continue;
                }
                StartPosition::Earliest => EARLIEST_TIMESTAMP,
                StartPosition::Latest => LATEST_TIMESTAMP,
            };
            match self.list_offset(leader, partition, timestamp) {
                Ok(offset) => self.set_position(partition, offset),
                Err(error) => {
                    self.warnings.push(format!(
                        "Error listing offsets of {}-{partition}: {error}",
                        self.topic
                    ));
                    self.metadata_stale = true;
                }
            }
        }
    }

    fn set_position(&mut self, partition: i32, offset: i64) {
        if let Some(assignment) = self.assignments.get_mut(&partition) {
            assignment.position = Some(offset);
        }
    }

    fn list_offset(
        &mut self,
        leader: NodeId,
        partition: i32,
        timestamp: i64,
    ) -> Result<i64, ClientError> {
        let request = ListOffsetsRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_isolation_level(self.settings.isolation_level)
            .with_topics(vec![ListOffsetsTopic::default()
                .with_name(topic_name(&self.topic))
                .with_partitions(vec![ListOffsetsPartition::default()
                    .with_partition_index(partition)
                    .with_current_leader_epoch(-1)
                    .with_timestamp(timestamp)])]);
        let response = self.client.send_to(leader, ApiKey::ListOffsets, &request)?;
        let answer = response
            .topics
            .into_iter()
            .flat_map(|topic| topic.partitions)
            .find(|answer| answer.partition_index == partition)
            .ok_or(ClientError::Kafka(KafkaError::new(3)))?;
        match KafkaError::from_code(answer.error_code) {
            Some(error) => Err(error.into()),
            None => Ok(answer.offset),
        }
    }

    fn fetch_from(&mut self, leader: NodeId) -> Result<Vec<IncomingRecord>, ClientError> {
        let partitions: Vec<FetchPartition> = self
            .assignments
            .iter()
            .filter(|(_, assignment)| assignment.leader == leader)
            .filter_map(|(partition, assignment)| {
                assignment.position.map(|position| {
                    FetchPartition::default()
                        .with_partition(*partition)
                        .with_current_leader_epoch(-1)
                        .with_fetch_offset(position)
                        .with_last_fetched_epoch(-1)
                        .with_log_start_offset(-1)
                        .with_partition_max_bytes(self.settings.partition_fetch_bytes_max)
                })
            })
            .collect();
        let request = FetchRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_max_wait_ms(self.settings.fetch_wait_ms)
            .with_min_bytes(self.settings.fetch_bytes_min)
            .with_max_bytes(self.settings.fetch_bytes_max)
            .with_isolation_level(self.settings.isolation_level)
            .with_session_id(0)
            .with_session_epoch(-1)
            .with_topics(vec![FetchTopic::default()
                .with_topic(topic_name(&self.topic))
                .with_partitions(partitions)]);
        let response = self.client.send_to(leader, ApiKey::Fetch, &request)?;
        self.absorb_fetch(response)
    }

    fn absorb_fetch(
        &mut self,
        response: FetchResponse,
    ) -> Result<Vec<IncomingRecord>, ClientError> {
        if let Some(error) = KafkaError::from_code(response.error_code) {
            self.warnings
                .push(format!("Fetch failed: {}: {error}", error.name()));
            self.metadata_stale = true;
            return Ok(Vec::new());
        }
        let mut records = Vec::new();
        let answers = response
            .responses
            .into_iter()
            .flat_map(|topic| topic.partitions);
        for answer in answers {
            let partition = answer.partition_index;
            let Some(position) = self
                .assignments
                .get(&partition)
                .and_then(|assignment| assignment.position)
            else {
                continue;
            };
            if answer.error_code != 0 {
                self.handle_partition_error(partition, answer.error_code);
                continue;
            }
            let Some(data) = answer.records else {
                continue;
            };
            let decoded = decode_batches(data, &self.topic, partition, position)?;
            let next = decoded.records.last().map(|record| record.offset + 1);
            let advanced = decoded
                .next_offset
                .max(next)
                .filter(|next| *next > position);
            if let Some(next) = advanced {
                self.set_position(partition, next);
            }
            records.extend(decoded.records);
        }
        Ok(records)
    }

    fn handle_partition_error(&mut self, partition: i32, error_code: i16) {
        let error = KafkaError::new(error_code);
        if error_code == OFFSET_OUT_OF_RANGE {
            let reset = self.settings.offset_reset;
            if let Some(assignment) = self.assignments.get_mut(&partition) {
                let position = assignment.position.unwrap_or(-1);
                self.warnings.push(format!(
                    "Fetch position FetchPosition{{offset={position}}} is out of range for partition {}-{partition}, resetting offset",
                    self.topic
                ));
                assignment.position = None;
                assignment.start = reset;
            }
            return;
        }
        if error.invalidates_metadata() {
            self.metadata_stale = true;
        }
        self.warnings.push(format!(
            "Error fetching {}-{partition}: {}",
            self.topic,
            error_name(error_code)
        ));
    }
}

fn topic_name(topic: &str) -> TopicName {
    TopicName(StrBytes::from_string(topic.to_string()))
}
