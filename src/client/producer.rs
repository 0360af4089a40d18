//! A blocking producer for one topic: partitions records like Kafka's default partitioner (murmur2
//! of the key, sticky partition for unkeyed records), gathers them into per-partition batches, and
//! sends every pending batch in one Produce request per leader when asked to flush or when a batch
//! is full. Retriable errors refresh metadata and retry a bounded number of times; what still fails
//! is reported per record as a [`DeliveryFailure`], as Kafka's producer calls back per record.

use std::collections::BTreeMap;
use std::thread;
use std::time::{Duration, Instant};

use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{ApiKey, ProduceRequest, ProduceResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::Compression;

use super::cluster::{Client, NodeId, PartitionMetadata};
use super::error::{ClientError, KafkaError};
use super::partitioner::partition_for_key;
use super::records::{encode_batch, OutgoingRecord};

const LEADER_NOT_AVAILABLE: i16 = 5;

/// Producer settings, named after the Kafka properties they come from.
#[derive(Debug, Clone)]
pub struct ProducerSettings {
    /// acks: -1 (all in-sync replicas), 1 (leader) or 0 (no response at all).
    pub acks: i16,
    pub compression: Compression,
    /// batch.size: bytes per partition batch before it is sent.
    pub batch_bytes_max: usize,
    /// Records per partition batch before it is sent.
    pub batch_records_max: usize,
    /// max.request.size: larger records are refused before sending.
    pub request_bytes_max: usize,
    /// request.timeout.ms, also sent as the Produce timeout.
    pub request_timeout_ms: i32,
    /// retries: attempts after the first for retriable errors.
    pub retries: u32,
    /// retry.backoff.ms
    pub retry_backoff: Duration,
    /// max.block.ms: how long to wait for the topic to appear in metadata.
    pub metadata_wait: Duration,
}

impl Default for ProducerSettings {
    fn default() -> Self {
        ProducerSettings {
            acks: -1,
            compression: Compression::None,
            batch_bytes_max: 16 * 1024,
            batch_records_max: 1000,
            request_bytes_max: 1024 * 1024,
            request_timeout_ms: 30_000,
            retries: 5,
            retry_backoff: Duration::from_millis(100),
            metadata_wait: Duration::from_secs(60),
        }
    }
}

/// A record that could not be delivered, with Kafka's name for why.
#[derive(Debug, Clone)]
pub struct DeliveryFailure {
    pub key_bytes: Option<usize>,
    pub value_bytes: Option<usize>,
    /// `NAME: message`, e.g. `MESSAGE_TOO_LARGE: The request included ...`.
    pub reason: String,
}

/// A batch waiting to be sent or retried.
struct PendingBatch {
    records: Vec<OutgoingRecord>,
    size_bytes: usize,
}

pub struct Producer {
    client: Client,
    topic: String,
    settings: ProducerSettings,
    partitions: Vec<PartitionMetadata>,
    pending: BTreeMap<i32, PendingBatch>,
    sticky_partition: Option<i32>,
    sticky_bytes: usize,
    sticky_seed: u64,
    failures: Vec<DeliveryFailure>,
}

impl Producer {
    pub fn new(client: Client, topic: &str, settings: ProducerSettings) -> Producer {
        let sticky_seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |elapsed| u64::from(elapsed.subsec_nanos()));
        Producer {
            client,
            topic: topic.to_string(),
            settings,
            partitions: Vec::new(),
            pending: BTreeMap::new(),
            sticky_partition: None,
            sticky_bytes: 0,
            sticky_seed,
            failures: Vec::new(),
        }
    }

    /// Adds `record` to its partition's batch, sending everything pending when a batch fills.
    pub fn append(&mut self, record: OutgoingRecord) {
        let size_bytes = record.size_estimate_bytes();
        if size_bytes > self.settings.request_bytes_max {
            let reason = format!(
                "RecordTooLargeException: The message is {size_bytes} bytes when serialized which is larger than {}, which is the value of the max.request.size configuration.",
                self.settings.request_bytes_max
            );
            self.fail_records(&[record], reason);
            return;
        }
        if self.partitions.is_empty() {
            if let Err(error) = self.wait_for_metadata() {
                self.fail_records(&[record], failure_reason(&error));
                return;
            }
        }
        let partition = self.choose_partition(&record, size_bytes);
        let batch = self.pending.entry(partition).or_insert(PendingBatch {
            records: Vec::new(),
            size_bytes: 0,
        });
        batch.records.push(record);
        batch.size_bytes += size_bytes;
        let full = batch.size_bytes >= self.settings.batch_bytes_max
            || batch.records.len() >= self.settings.batch_records_max;
        if full {
            self.flush();
        }
    }

    /// Whether any record waits to be sent.
    pub fn has_pending(&self) -> bool {
        !self.pending.is_empty()
    }

    /// Sends every pending batch and waits for the acknowledgements (unless acks=0).
    pub fn flush(&mut self) {
        let mut batches = std::mem::take(&mut self.pending);
        let mut last_error = String::new();
        for attempt in 0..=self.settings.retries {
            if batches.is_empty() {
                return;
            }
            if attempt > 0 {
                thread::sleep(self.settings.retry_backoff * attempt);
                if let Err(error) = self.refresh_metadata() {
                    last_error = failure_reason(&error);
                }
            }
            let (retry, error) = self.send_batches(batches);
            batches = retry;
            last_error = error.unwrap_or(last_error);
        }
        for batch in batches.into_values() {
            self.fail_records(&batch.records, last_error.clone());
        }
    }

    /// Failures since the last call.
    pub fn take_failures(&mut self) -> Vec<DeliveryFailure> {
        std::mem::take(&mut self.failures)
    }

    fn choose_partition(&mut self, record: &OutgoingRecord, size_bytes: usize) -> i32 {
        let partition_count = self.partitions.len();
        if let Some(key) = &record.key {
            return partition_for_key(key, partition_count);
        }
        let sticky = match self.sticky_partition {
            Some(partition) if self.sticky_bytes < self.settings.batch_bytes_max => partition,
            _ => {
                self.sticky_seed = self.sticky_seed.wrapping_add(1);
                self.sticky_bytes = 0;
                (self.sticky_seed % partition_count as u64) as i32
            }
        };
        self.sticky_partition = Some(sticky);
        self.sticky_bytes += size_bytes;
        sticky
    }

    /// Sends one Produce request per leader; returns the batches to retry and the last error.
    fn send_batches(
        &mut self,
        batches: BTreeMap<i32, PendingBatch>,
    ) -> (BTreeMap<i32, PendingBatch>, Option<String>) {
        let mut by_leader: BTreeMap<NodeId, BTreeMap<i32, PendingBatch>> = BTreeMap::new();
        let mut retry = BTreeMap::new();
        let mut last_error = None;
        for (partition, batch) in batches {
            match self.leader_of(partition) {
                Some(leader) => {
                    by_leader
                        .entry(leader)
                        .or_default()
                        .insert(partition, batch);
                }
                None => {
                    last_error = Some(kafka_reason(&KafkaError::new(LEADER_NOT_AVAILABLE)));
                    retry.insert(partition, batch);
                }
            }
        }
        for (leader, leader_batches) in by_leader {
            if let Some(error) = self.send_to_leader(leader, leader_batches, &mut retry) {
                last_error = Some(error);
            }
        }
        (retry, last_error)
    }

    fn send_to_leader(
        &mut self,
        leader: NodeId,
        batches: BTreeMap<i32, PendingBatch>,
        retry: &mut BTreeMap<i32, PendingBatch>,
    ) -> Option<String> {
        let request = match self.produce_request(&batches) {
            Ok(request) => request,
            Err(error) => {
                let reason = failure_reason(&error);
                batches
                    .values()
                    .for_each(|batch| self.fail_records(&batch.records, reason.clone()));
                return None;
            }
        };
        if self.settings.acks == 0 {
            let sent = self
                .client
                .send_to_without_response(leader, ApiKey::Produce, &request);
            return sent.err().map(|error| {
                let reason = failure_reason(&error);
                retry.extend(batches);
                reason
            });
        }
        match self.client.send_to(leader, ApiKey::Produce, &request) {
            Ok(response) => self.absorb_response(response, batches, retry),
            Err(error) => {
                retry.extend(batches);
                Some(failure_reason(&error))
            }
        }
    }

    fn produce_request(
        &self,
        batches: &BTreeMap<i32, PendingBatch>,
    ) -> Result<ProduceRequest, ClientError> {
        let mut partition_data = Vec::with_capacity(batches.len());
        for (partition, batch) in batches {
            let records = encode_batch(
                &batch.records,
                self.settings.compression,
                &self.topic,
                *partition,
            )?;
            partition_data.push(
                PartitionProduceData::default()
                    .with_index(*partition)
                    .with_records(Some(records)),
            );
        }
        let topic = TopicProduceData::default()
            .with_name(TopicName(StrBytes::from_string(self.topic.clone())))
            .with_partition_data(partition_data);
        Ok(ProduceRequest::default()
            .with_acks(self.settings.acks)
            .with_timeout_ms(self.settings.request_timeout_ms)
            .with_topic_data(vec![topic]))
    }

    fn absorb_response(
        &mut self,
        response: ProduceResponse,
        mut batches: BTreeMap<i32, PendingBatch>,
        retry: &mut BTreeMap<i32, PendingBatch>,
    ) -> Option<String> {
        let mut last_error = None;
        let partition_responses = response
            .responses
            .into_iter()
            .flat_map(|topic| topic.partition_responses);
        for partition_response in partition_responses {
            let Some(batch) = batches.remove(&partition_response.index) else {
                continue;
            };
            let server_message = partition_response
                .error_message
                .as_ref()
                .map(StrBytes::as_str);
            let Some(error) =
                KafkaError::with_message(partition_response.error_code, server_message)
            else {
                continue;
            };
            let reason = kafka_reason(&error);
            if error.is_retriable() {
                retry.insert(partition_response.index, batch);
                last_error = Some(reason);
            } else {
                self.fail_records(&batch.records, reason);
            }
        }
        // A partition the broker did not answer for is not known to be written: retry it.
        if !batches.is_empty() {
            last_error = Some(
                "NETWORK_EXCEPTION: The broker did not answer for every partition.".to_string(),
            );
            retry.extend(batches);
        }
        last_error
    }

    fn leader_of(&self, partition: i32) -> Option<NodeId> {
        self.partitions
            .iter()
            .find(|metadata| metadata.partition == partition)
            .map(|metadata| metadata.leader)
            .filter(|leader| *leader != NodeId::NONE)
    }

    /// Waits (up to max.block.ms) until the topic has partitions, creating it if the broker
    /// auto-creates topics.
    fn wait_for_metadata(&mut self) -> Result<(), ClientError> {
        let topic = self.topic.clone();
        let waits = (self.settings.metadata_wait, self.settings.retry_backoff);
        wait_for_topic(&topic, waits, || {
            self.refresh_metadata()
                .map(|()| !self.partitions.is_empty())
        })
    }

    fn refresh_metadata(&mut self) -> Result<(), ClientError> {
        self.partitions = self.client.topic_metadata(&self.topic)?.partitions;
        Ok(())
    }

    fn fail_records(&mut self, records: &[OutgoingRecord], reason: String) {
        for record in records {
            self.failures.push(DeliveryFailure {
                key_bytes: record.key.as_ref().map(|key| key.len()),
                value_bytes: record.value.as_ref().map(|value| value.len()),
                reason: reason.clone(),
            });
        }
    }
}

fn kafka_reason(error: &KafkaError) -> String {
    format!("{}: {}", error.name(), error.message())
}

fn failure_reason(error: &ClientError) -> String {
    match error {
        ClientError::Kafka(error) => kafka_reason(error),
        ClientError::MetadataTimeout { .. } => format!("TimeoutException: {error}"),
        other => format!("NETWORK_EXCEPTION: {other}"),
    }
}

/// Calls `ready` until it says the topic has partitions, retrying retriable errors every
/// `retry.backoff.ms` for up to `max.block.ms` (the broker may be creating the topic).
pub(super) fn wait_for_topic(
    topic: &str,
    (metadata_wait, retry_backoff): (Duration, Duration),
    mut ready: impl FnMut() -> Result<bool, ClientError>,
) -> Result<(), ClientError> {
    let deadline = Instant::now() + metadata_wait;
    loop {
        match ready() {
            Ok(true) => return Ok(()),
            Err(ClientError::Kafka(error)) if !error.is_retriable() => {
                return Err(ClientError::Kafka(error))
            }
            _ if Instant::now() >= deadline => {
                return Err(ClientError::MetadataTimeout {
                    topic: topic.to_string(),
                    waited_ms: metadata_wait.as_millis(),
                })
            }
            _ => thread::sleep(retry_backoff),
        }
    }
}
