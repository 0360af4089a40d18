//! A producer for throughput, used by the performance tools: Kafka's producer design on one
//! owning thread plus a reader thread per broker connection. Records gather in per-partition
//! batches (`Accumulator`); unkeyed records stick to one partition until it has a batch's worth,
//! then move to another at random, keyed ones go where Kafka's partitioner puts them. Each
//! leader gets up to max.in.flight.requests.per.connection Produce requests at once, each with at
//! most one batch per partition; batches wait for linger.ms only while they could be sent.
//!
//! Every record carries a caller's token that comes back in a [`Delivery`] with the time its
//! acknowledgement arrived, so a caller can measure send-to-ack latency exactly. Retriable
//! errors requeue the batch (ahead of newer ones) after a metadata refresh, up to `retries` and
//! delivery.timeout.ms; buffer.memory bounds what is accepted and not yet acknowledged, and
//! `send` blocks while it is used up, as Kafka's `send` blocks.
//!
//! Not `Producer` (`producer.rs`), which sends one request at a time and is what the console
//! tools need; this one has no per-record failure details beyond a reason per batch.

use std::collections::HashMap;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::thread;
use std::time::{Duration, Instant};

use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{ProduceRequest, ProduceResponse, TopicName};
use kafka_protocol::protocol::StrBytes;

use super::accumulator::{Accumulator, AccumulatorSettings, SealedBatch};
use super::cluster::{Client, ClientSettings, NodeId};
use super::error::{ClientError, KafkaError};
use super::partitioner::partition_for_key;
use super::pipelined_connection::{PipelinedConnection, Reply, SendFailure};
use super::records::OutgoingRecord;

/// How often waiting batches are checked against delivery.timeout.ms.
const EXPIRY_CHECK_INTERVAL: Duration = Duration::from_millis(10);

/// The settings of Kafka's producer that this producer honours.
#[derive(Debug, Clone)]
pub struct PipelinedSettings {
    /// acks: -1 (all in-sync replicas), 1 (leader) or 0 (no response).
    pub acks: i16,
    pub accumulator: AccumulatorSettings,
    /// max.in.flight.requests.per.connection
    pub in_flight_max: usize,
    /// max.request.size: the most batch bytes in one Produce request.
    pub request_bytes_max: usize,
    /// buffer.memory: record bytes accepted and not yet acknowledged before `send` blocks.
    pub buffer_bytes_max: usize,
    /// request.timeout.ms, also the Produce request's timeout.
    pub request_timeout: Duration,
    /// delivery.timeout.ms: a batch fails when it waited this long since its first record.
    pub delivery_timeout: Duration,
    /// retries: resends of a batch after retriable errors.
    pub retries: u32,
    /// retry.backoff.ms
    pub retry_backoff: Duration,
    /// max.block.ms: how long to wait for the topic's metadata.
    pub metadata_wait: Duration,
}

/// The outcome of one batch: its records' tokens and when the broker's answer arrived.
#[derive(Debug)]
pub struct Delivery<T> {
    pub partition: i32,
    pub tokens: Vec<T>,
    /// When the acknowledgement (or the failure) was observed; for acks=0, when written.
    pub completed_at: Instant,
    /// The batch's base offset (-1 with acks=0), or why it failed.
    pub result: Result<i64, String>,
}

/// One Produce request in flight.
struct InFlight<T> {
    node: NodeId,
    batches: Vec<SealedBatch<T>>,
}

/// An open connection to a leader and the requests on it not yet answered.
struct Link<T> {
    connection: PipelinedConnection<InFlight<T>>,
    in_flight: usize,
}

pub struct PipelinedProducer<T> {
    client: Client,
    client_settings: ClientSettings,
    topic: String,
    settings: PipelinedSettings,
    accumulator: Accumulator<T>,
    /// Partitions of the topic by leader, from the last metadata.
    partitions_by_node: Vec<(NodeId, Vec<i32>)>,
    partition_count: usize,
    addresses: HashMap<NodeId, String>,
    links: HashMap<NodeId, Link<T>>,
    next_connection_id: u64,
    replies: Receiver<Reply<InFlight<T>>>,
    reply_sender: Sender<Reply<InFlight<T>>>,
    in_flight_total: usize,
    /// When metadata must be refreshed before partitions without a usable leader can be sent.
    metadata_due: Option<Instant>,
    /// Nodes whose connection failed, and when to try them again (retry.backoff.ms).
    blocked_until: HashMap<NodeId, Instant>,
    /// Waiting batches are checked against delivery.timeout.ms at most this often.
    next_expiry_check: Instant,
    sticky_partition: Option<i32>,
    sticky_bytes: usize,
    random_state: u64,
    deliveries: Vec<Delivery<T>>,
}

impl<T: Send + 'static> PipelinedProducer<T> {
    /// Connects, waits up to max.block.ms for the topic's partitions, and is ready to send.
    pub fn connect(
        bootstrap_servers: &str,
        client_settings: ClientSettings,
        topic: &str,
        settings: PipelinedSettings,
    ) -> Result<PipelinedProducer<T>, ClientError> {
        let client = Client::connect(bootstrap_servers, client_settings.clone())?;
        let (reply_sender, replies) = mpsc::channel();
        let random_state = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0x9e37_79b9, |elapsed| elapsed.as_nanos() as u64)
            | 1;
        let mut producer = PipelinedProducer {
            client,
            client_settings,
            topic: topic.to_string(),
            accumulator: Accumulator::new(topic, settings.accumulator.clone()),
            settings,
            partitions_by_node: Vec::new(),
            partition_count: 0,
            addresses: HashMap::new(),
            links: HashMap::new(),
            next_connection_id: 0,
            replies,
            reply_sender,
            in_flight_total: 0,
            metadata_due: None,
            blocked_until: HashMap::new(),
            next_expiry_check: Instant::now(),
            sticky_partition: None,
            sticky_bytes: 0,
            random_state,
            deliveries: Vec::new(),
        };
        producer.wait_for_metadata()?;
        Ok(producer)
    }

    /// Hands `record` over; its delivery comes back through `take_deliveries`. Blocks while
    /// buffer.memory is used up.
    pub fn send(&mut self, record: OutgoingRecord, token: T) {
        let now = Instant::now();
        let partition = match &record.key {
            Some(key) => partition_for_key(key, self.partition_count),
            None => self.sticky_partition(record.size_estimate_bytes()),
        };
        self.accumulator.append(partition, record, token, now);
        self.pump(now, false);
        while self.accumulator.buffered_bytes() > self.settings.buffer_bytes_max {
            self.wait(None, false);
            self.pump(Instant::now(), false);
        }
    }

    /// Sends what is due and handles what arrived until `deadline`: the way to wait between
    /// sends (a throttle) without holding back batches that finish lingering meanwhile.
    pub fn poll_until(&mut self, deadline: Instant) {
        loop {
            self.pump(Instant::now(), false);
            if Instant::now() >= deadline {
                return;
            }
            self.wait(Some(deadline), false);
        }
    }

    /// Sends every record accepted so far and waits until each is acknowledged or has failed.
    pub fn flush(&mut self) {
        loop {
            self.pump(Instant::now(), true);
            if self.accumulator.is_idle() && self.in_flight_total == 0 {
                return;
            }
            self.wait(None, true);
        }
    }

    /// Whether deliveries wait to be taken.
    pub fn has_deliveries(&self) -> bool {
        !self.deliveries.is_empty()
    }

    /// The deliveries since the last call, in the order they completed.
    pub fn take_deliveries(&mut self) -> Vec<Delivery<T>> {
        std::mem::take(&mut self.deliveries)
    }

    /// Kafka's sticky partitioning for unkeyed records: stay on one partition for a batch's
    /// worth of bytes, then move to another one chosen at random.
    fn sticky_partition(&mut self, size_bytes: usize) -> i32 {
        let count = self.partition_count as u64;
        let current = match self.sticky_partition {
            Some(partition) if self.sticky_bytes < self.settings.accumulator.batch_bytes_max => {
                partition
            }
            previous => {
                self.sticky_bytes = 0;
                let mut next = (self.next_random() % count) as i32;
                if count > 1 && Some(next) == previous {
                    next = ((next as u64 + 1 + self.next_random() % (count - 1)) % count) as i32;
                }
                next
            }
        };
        self.sticky_partition = Some(current);
        self.sticky_bytes += size_bytes;
        current
    }

    fn next_random(&mut self) -> u64 {
        // xorshift64: plenty for spreading partitions, and no dependency.
        self.random_state ^= self.random_state << 13;
        self.random_state ^= self.random_state >> 7;
        self.random_state ^= self.random_state << 17;
        self.random_state
    }

    /// Sends every request that is due now: for each leader with a free in-flight slot, one
    /// batch per partition per request, while batches are sendable.
    fn pump(&mut self, now: Instant, flushing: bool) {
        self.take_replies();
        self.fail_unencodable(now);
        if self.metadata_due.is_some_and(|due| now >= due) {
            self.refresh_metadata(now);
        }
        if now >= self.next_expiry_check {
            self.next_expiry_check = now + EXPIRY_CHECK_INTERVAL;
            self.expire(now);
        }
        self.blocked_until.retain(|_, until| now < *until);
        for index in 0..self.partitions_by_node.len() {
            let node = self.partitions_by_node[index].0;
            while self.has_free_slot(node, now)
                && self
                    .accumulator
                    .has_sendable(&self.partitions_by_node[index].1, now, flushing)
            {
                let batches = self.accumulator.drain(
                    &self.partitions_by_node[index].1,
                    now,
                    flushing,
                    self.settings.request_bytes_max,
                );
                if !self.send_request(node, batches) {
                    break;
                }
            }
        }
    }

    /// Blocks until a reply arrives, a batch finishes lingering, metadata is due, or
    /// `deadline`, whichever comes first.
    fn wait(&mut self, deadline: Option<Instant>, flushing: bool) {
        let now = Instant::now();
        let mut wake = deadline;
        let mut earliest = |at: Option<Instant>| {
            if let Some(at) = at {
                wake = Some(wake.map_or(at, |current| current.min(at)));
            }
        };
        earliest(self.metadata_due);
        earliest(self.blocked_until.values().min().copied());
        earliest(
            self.accumulator
                .oldest_created()
                .map(|created| created + self.settings.delivery_timeout),
        );
        if !flushing {
            for (node, partitions) in &self.partitions_by_node {
                if self.has_free_slot(*node, now) {
                    earliest(self.accumulator.next_linger_deadline(partitions));
                }
            }
        }
        if self.in_flight_total == 0 {
            // No reply can come: sleep until the next timer, and never long without one.
            let timeout = wake.map_or(self.settings.retry_backoff, |at| {
                at.saturating_duration_since(now)
            });
            thread::sleep(timeout.max(Duration::from_micros(100)));
            return;
        }
        let timeout = match wake {
            Some(at) => at.saturating_duration_since(now),
            // Nothing to wake for but replies; they come within request.timeout.ms.
            None => self.settings.request_timeout,
        };
        match self.replies.recv_timeout(timeout) {
            Ok(reply) => self.handle_reply(reply),
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => {
                unreachable!("the producer holds a reply sender itself")
            }
        }
    }

    fn has_free_slot(&self, node: NodeId, now: Instant) -> bool {
        let blocked = self
            .blocked_until
            .get(&node)
            .is_some_and(|until| now < *until);
        !blocked
            && self
                .links
                .get(&node)
                .is_none_or(|link| link.in_flight < self.settings.in_flight_max)
    }

    /// Sends `batches` to `node`; false when the node cannot be reached now.
    fn send_request(&mut self, node: NodeId, batches: Vec<SealedBatch<T>>) -> bool {
        if batches.is_empty() {
            return false;
        }
        if let Err(error) = self.ensure_link(node) {
            self.retry_batches(batches, &error.to_string(), Instant::now());
            self.forget_node(node);
            return false;
        }
        let request = self.produce_request(&batches);
        let Some(link) = self.links.get_mut(&node) else {
            return false;
        };
        if self.settings.acks == 0 {
            let sent = link.connection.send_without_reply(&request);
            let now = Instant::now();
            return match sent {
                Ok(()) => {
                    for batch in batches {
                        self.complete(batch, now, Ok(-1));
                    }
                    true
                }
                Err(error) => {
                    self.retry_batches(batches, &error.to_string(), now);
                    self.forget_node(node);
                    false
                }
            };
        }
        match link.connection.send(&request, InFlight { node, batches }) {
            Ok(()) => {
                link.in_flight += 1;
                self.in_flight_total += 1;
                true
            }
            Err(SendFailure { error, descriptor }) => {
                self.retry_batches(descriptor.batches, &error.to_string(), Instant::now());
                self.forget_node(node);
                false
            }
        }
    }

    fn ensure_link(&mut self, node: NodeId) -> Result<(), ClientError> {
        if self.links.contains_key(&node) {
            return Ok(());
        }
        let address = self
            .addresses
            .get(&node)
            .ok_or(ClientError::UnknownNode { node_id: node.0 })?;
        self.next_connection_id += 1;
        let connection = PipelinedConnection::open(
            address,
            &self.client_settings,
            self.next_connection_id,
            self.reply_sender.clone(),
        )?;
        self.links.insert(
            node,
            Link {
                connection,
                in_flight: 0,
            },
        );
        Ok(())
    }

    /// Drops the connection to `node` (its reader answers what was in flight with errors) and
    /// asks for fresh metadata after the retry backoff.
    fn forget_node(&mut self, node: NodeId) {
        self.links.remove(&node);
        let now = Instant::now();
        self.blocked_until
            .insert(node, now + self.settings.retry_backoff);
        self.schedule_metadata(now);
    }

    fn schedule_metadata(&mut self, now: Instant) {
        let due = now + self.settings.retry_backoff;
        self.metadata_due = Some(self.metadata_due.map_or(due, |current| current.min(due)));
    }

    fn produce_request(&self, batches: &[SealedBatch<T>]) -> ProduceRequest {
        let partition_data = batches
            .iter()
            .map(|batch| {
                PartitionProduceData::default()
                    .with_index(batch.partition)
                    .with_records(Some(batch.records.clone()))
            })
            .collect();
        let topic = TopicProduceData::default()
            .with_name(TopicName(StrBytes::from_string(self.topic.clone())))
            .with_partition_data(partition_data);
        let timeout_ms = self
            .settings
            .request_timeout
            .as_millis()
            .min(i32::MAX as u128) as i32;
        ProduceRequest::default()
            .with_acks(self.settings.acks)
            .with_timeout_ms(timeout_ms)
            .with_topic_data(vec![topic])
    }

    fn take_replies(&mut self) {
        while let Ok(reply) = self.replies.try_recv() {
            self.handle_reply(reply);
        }
    }

    fn handle_reply(&mut self, reply: Reply<InFlight<T>>) {
        let node = reply.descriptor.node;
        self.in_flight_total -= 1;
        let current = self
            .links
            .get_mut(&node)
            .filter(|link| link.connection.id() == reply.connection_id);
        let still_open = current.is_some();
        if let Some(link) = current {
            link.in_flight -= 1;
        }
        match reply.outcome {
            Ok(response) => {
                self.absorb_response(response, reply.descriptor.batches, reply.received_at)
            }
            Err(error) => {
                if still_open {
                    self.forget_node(node);
                }
                self.retry_batches(
                    reply.descriptor.batches,
                    &format!("NETWORK_EXCEPTION: {error}"),
                    reply.received_at,
                );
            }
        }
    }

    fn absorb_response(
        &mut self,
        response: ProduceResponse,
        batches: Vec<SealedBatch<T>>,
        received_at: Instant,
    ) {
        let mut answers: HashMap<i32, (i16, Option<String>, i64)> = response
            .responses
            .into_iter()
            .flat_map(|topic| topic.partition_responses)
            .map(|answer| {
                let message = answer.error_message.as_ref().map(|text| text.to_string());
                (
                    answer.index,
                    (answer.error_code, message, answer.base_offset),
                )
            })
            .collect();
        for batch in batches {
            let Some((code, message, base_offset)) = answers.remove(&batch.partition) else {
                // Not known to be written: retry.
                let reason = "NETWORK_EXCEPTION: The broker did not answer for every partition.";
                self.retry_batches(vec![batch], reason, received_at);
                continue;
            };
            let Some(error) = KafkaError::with_message(code, message.as_deref()) else {
                self.complete(batch, received_at, Ok(base_offset));
                continue;
            };
            let reason = format!("{}: {}", error.name(), error.message());
            if error.invalidates_metadata() {
                self.schedule_metadata(received_at);
            }
            match error.is_retriable() {
                true => self.retry_batches(vec![batch], &reason, received_at),
                false => self.complete(batch, received_at, Err(reason)),
            }
        }
    }

    /// Requeues each batch that has retries and time left; fails the others with `reason`.
    fn retry_batches(&mut self, batches: Vec<SealedBatch<T>>, reason: &str, now: Instant) {
        for mut batch in batches {
            batch.attempts += 1;
            let timed_out =
                now.saturating_duration_since(batch.created) >= self.settings.delivery_timeout;
            if batch.attempts > self.settings.retries || timed_out {
                self.complete(batch, now, Err(reason.to_string()));
            } else {
                self.accumulator.requeue(batch);
            }
        }
        self.schedule_metadata(now);
    }

    /// Fails waiting batches older than delivery.timeout.ms, as Kafka's producer expires them.
    fn expire(&mut self, now: Instant) {
        let Some(created_by) = now.checked_sub(self.settings.delivery_timeout) else {
            return;
        };
        if self
            .accumulator
            .oldest_created()
            .is_none_or(|oldest| oldest > created_by)
        {
            return;
        }
        for batch in self.accumulator.expire(created_by) {
            let reason = format!(
                "TimeoutException: Expiring {} record(s) for {}-{}: {} ms has passed since batch creation",
                batch.tokens.len(),
                self.topic,
                batch.partition,
                now.saturating_duration_since(batch.created).as_millis()
            );
            self.complete(batch, now, Err(reason));
        }
    }

    fn fail_unencodable(&mut self, now: Instant) {
        for batch in self.accumulator.take_unencodable() {
            self.accumulator.release(batch.accounted_bytes);
            self.deliveries.push(Delivery {
                partition: batch.partition,
                tokens: batch.tokens,
                completed_at: now,
                result: Err(batch.reason),
            });
        }
    }

    fn complete(
        &mut self,
        batch: SealedBatch<T>,
        completed_at: Instant,
        result: Result<i64, String>,
    ) {
        self.accumulator.release(batch.accounted_bytes);
        self.deliveries.push(Delivery {
            partition: batch.partition,
            tokens: batch.tokens,
            completed_at,
            result,
        });
    }

    /// Waits (up to max.block.ms) until the topic has partitions, letting the broker create it
    /// if it auto-creates topics.
    fn wait_for_metadata(&mut self) -> Result<(), ClientError> {
        let topic = self.topic.clone();
        let waits = (self.settings.metadata_wait, self.settings.retry_backoff);
        super::producer::wait_for_topic(&topic, waits, || {
            self.load_metadata().map(|()| self.partition_count > 0)
        })
    }

    /// Refreshes leaders; a failure is retried after the backoff, as Kafka's producer does.
    fn refresh_metadata(&mut self, now: Instant) {
        self.metadata_due = None;
        if self.load_metadata().is_err() {
            self.metadata_due = Some(now + self.settings.retry_backoff);
        }
    }

    fn load_metadata(&mut self) -> Result<(), ClientError> {
        let topic = self.client.topic_metadata(&self.topic)?;
        self.addresses = self.client.nodes().into_iter().collect();
        let mut by_node: HashMap<NodeId, Vec<i32>> = HashMap::new();
        let mut leaderless = false;
        for partition in &topic.partitions {
            match partition.leader {
                NodeId::NONE => leaderless = true,
                leader => by_node.entry(leader).or_default().push(partition.partition),
            }
        }
        let mut by_node: Vec<(NodeId, Vec<i32>)> = by_node.into_iter().collect();
        by_node.sort_by_key(|(node, _)| *node);
        self.partitions_by_node = by_node;
        // The partitioner needs the count to be a prefix 0..n; Metadata lists every partition.
        self.partition_count = self.partition_count.max(topic.partitions.len());
        self.accumulator.ensure_partitions(self.partition_count);
        if leaderless {
            self.metadata_due = Some(Instant::now() + self.settings.retry_backoff);
        }
        Ok(())
    }
}
