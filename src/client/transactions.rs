//! The admin calls of the transactions tool, made as Kafka's admin client makes them:
//! ListTransactions on every broker (each lists the transactional ids it coordinates),
//! DescribeTransactions at an id's coordinator (found with FindCoordinator, key type 1),
//! DescribeProducers at each partition's leader or at one named broker, and a WriteTxnMarkers
//! ABORT at a partition's leader (Kafka's `Admin.abortTransaction`).
//!
//! Failures carry the messages Kafka's admin client gives them. Retriable ones (a coordinator
//! loading or moving, a leader being elected) are retried a bounded number of times, where
//! Kafka's admin client keeps trying until its 60 s API timeout; an unknown topic or partition
//! fails at once, where Kafka's waits for that timeout. Runs on the calling thread with the
//! blocking client.

use std::collections::BTreeMap;
use std::fmt;
use std::thread;
use std::time::Duration;

use kafka_protocol::messages::describe_producers_request::TopicRequest;
use kafka_protocol::messages::write_txn_markers_request::{
    WritableTxnMarker, WritableTxnMarkerTopic,
};
use kafka_protocol::messages::{
    describe_producers_response, describe_transactions_response, ApiKey, DescribeProducersRequest,
    DescribeProducersResponse, DescribeTransactionsRequest, DescribeTransactionsResponse,
    ListTransactionsRequest, ListTransactionsResponse, ProducerId, TransactionalId,
    WriteTxnMarkersRequest, WriteTxnMarkersResponse,
};
use kafka_protocol::protocol::StrBytes;

use super::admin::learn_addresses;
use super::cluster::{Client, ClusterMetadata, NodeId};
use super::error::{ClientError, KafkaError};
use super::group::{find_coordinator, group_by_topic, topic_name, TopicPartition};

/// FindCoordinator key type of a transactional id.
const KEY_TYPE_TRANSACTION: i8 = 1;
/// Attempts at a call that keeps failing with a retriable error, and the pause between them:
/// about ten seconds in all.
const RETRY_ATTEMPTS_MAX: u32 = 100;
const RETRY_BACKOFF: Duration = Duration::from_millis(100);

// The Kafka error codes this module acts on.
const UNKNOWN_SERVER_ERROR: i16 = -1;
const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
const LEADER_NOT_AVAILABLE: i16 = 5;
const NOT_LEADER_OR_FOLLOWER: i16 = 6;
const REQUEST_TIMED_OUT: i16 = 7;
const BROKER_NOT_AVAILABLE: i16 = 8;
const REPLICA_NOT_AVAILABLE: i16 = 9;
const COORDINATOR_LOAD_IN_PROGRESS: i16 = 14;
const COORDINATOR_NOT_AVAILABLE: i16 = 15;
const NOT_COORDINATOR: i16 = 16;
const INVALID_TOPIC: i16 = 17;
const TOPIC_AUTHORIZATION_FAILED: i16 = 29;
const CLUSTER_AUTHORIZATION_FAILED: i16 = 31;
const INVALID_PRODUCER_EPOCH: i16 = 47;
const TRANSACTION_COORDINATOR_FENCED: i16 = 52;
const TRANSACTIONAL_ID_AUTHORIZATION_FAILED: i16 = 53;
const TRANSACTIONAL_ID_NOT_FOUND: i16 = 105;

/// The state names of Kafka's admin `TransactionState`; a broker's name outside them reads
/// `Unknown`, as `TransactionState.parse` makes it.
const TRANSACTION_STATES: [&str; 7] = [
    "Ongoing",
    "PrepareAbort",
    "PrepareCommit",
    "CompleteAbort",
    "CompleteCommit",
    "Empty",
    "PrepareEpochFence",
];

/// One transactional id as ListTransactions reports it (Kafka's `TransactionListing`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransactionListing {
    pub transactional_id: String,
    pub producer_id: i64,
    pub state: String,
}

/// One transactional id at its coordinator (Kafka's `TransactionDescription`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransactionDescription {
    /// The broker that answered: the id's coordinator.
    pub coordinator_id: i32,
    pub state: String,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub transaction_timeout_ms: i32,
    /// `None` when no transaction is open.
    pub transaction_start_time_ms: Option<i64>,
    /// The partitions of the open transaction, in the coordinator's order.
    pub topic_partitions: Vec<TopicPartition>,
}

/// One producer a partition's replica knows (Kafka's admin `ProducerState`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProducerState {
    pub producer_id: i64,
    pub producer_epoch: i32,
    pub last_sequence: i32,
    pub last_timestamp: i64,
    /// `None` before any transaction marker of this producer reached the partition.
    pub coordinator_epoch: Option<i32>,
    /// The first offset of the producer's open transaction on the partition, if one is open.
    pub current_transaction_start_offset: Option<i64>,
}

/// The transaction to abort on one partition (Kafka's `AbortTransactionSpec`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AbortSpec {
    pub partition: TopicPartition,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub coordinator_epoch: i32,
}

impl fmt::Display for AbortSpec {
    /// Kafka's `AbortTransactionSpec.toString`, which its messages quote.
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            formatter,
            "AbortTransactionSpec(topicPartition={}, producerId={}, producerEpoch={}, \
             coordinatorEpoch={})",
            self.partition, self.producer_id, self.producer_epoch, self.coordinator_epoch
        )
    }
}

/// The transactional ids every broker coordinates, by broker, each broker's in its own order.
/// Empty `producer_ids` lists all producers; a negative `duration_filter_ms` lists transactions
/// however long they have been open, otherwise only those open longer (ListTransactions v1+).
pub fn list_transactions(
    client: &mut Client,
    producer_ids: &[i64],
    duration_filter_ms: i64,
) -> Result<BTreeMap<NodeId, Vec<TransactionListing>>, ClientError> {
    client.metadata(Some(&[]), false)?;
    let request = ListTransactionsRequest::default()
        .with_producer_id_filters(producer_ids.iter().map(|id| ProducerId(*id)).collect())
        .with_duration_filter(duration_filter_ms);
    let mut listings = BTreeMap::new();
    for (node, _) in client.nodes() {
        let listed =
            with_retries(
                || match client.send_to(node, ApiKey::ListTransactions, &request) {
                    Ok(response) => listing_outcome(node, response),
                    Err(error) => Attempt::Done(Err(error)),
                },
            )?;
        listings.insert(node, listed);
    }
    Ok(listings)
}

/// The transactional id's state at its coordinator.
pub fn describe_transaction(
    client: &mut Client,
    transactional_id: &str,
) -> Result<TransactionDescription, ClientError> {
    let request =
        DescribeTransactionsRequest::default().with_transactional_ids(vec![TransactionalId(
            StrBytes::from_string(transactional_id.to_string()),
        )]);
    with_retries(|| {
        let node = match find_transaction_coordinator(client, transactional_id) {
            Ok(node) => node,
            Err(attempt) => return attempt,
        };
        match client.send_to(node, ApiKey::DescribeTransactions, &request) {
            Ok(response) => description_outcome(node, transactional_id, response),
            Err(error) => Attempt::Done(Err(error)),
        }
    })
}

/// The producers each partition's leader knows, or those of one broker's replicas when
/// `broker` is given. Each partition has its producers or its error.
pub fn describe_producers(
    client: &mut Client,
    partitions: &[TopicPartition],
    broker: Option<NodeId>,
) -> Result<BTreeMap<TopicPartition, Result<Vec<ProducerState>, KafkaError>>, ClientError> {
    type Outcomes = Vec<(TopicPartition, PartitionOutcome<Vec<ProducerState>>)>;
    let send = |client: &mut Client,
                node: NodeId,
                partitions: &[TopicPartition]|
     -> Result<Outcomes, ClientError> {
        let response = client.send_to(
            node,
            ApiKey::DescribeProducers,
            &producers_request(partitions),
        )?;
        Ok(producers_outcomes(response, broker))
    };
    let Some(node) = broker else {
        return call_leaders(client, partitions, send);
    };
    learn_addresses(client, [node])?;
    let mut results: BTreeMap<_, _> = partitions
        .iter()
        .map(|partition| (partition.clone(), Err(missing_from_response(partition))))
        .collect();
    for (partition, outcome) in send(client, node, partitions)? {
        let result = match outcome {
            PartitionOutcome::Done(result) => result,
            PartitionOutcome::Retry(error) => Err(error),
        };
        results.insert(partition, result);
    }
    Ok(results)
}

/// Writes an ABORT marker for the spec's producer to its partition, at the partition's leader.
pub fn abort_transaction(client: &mut Client, spec: &AbortSpec) -> Result<(), ClientError> {
    let marker = WritableTxnMarker::default()
        .with_producer_id(ProducerId(spec.producer_id))
        .with_producer_epoch(spec.producer_epoch)
        .with_coordinator_epoch(spec.coordinator_epoch)
        .with_transaction_result(false)
        .with_topics(vec![WritableTxnMarkerTopic::default()
            .with_name(topic_name(&spec.partition.topic))
            .with_partition_indexes(vec![spec.partition.partition])]);
    let request = WriteTxnMarkersRequest::default().with_markers(vec![marker]);
    let partition = std::slice::from_ref(&spec.partition);
    let results = call_leaders(client, partition, |client, node, _| {
        let response = client.send_to(node, ApiKey::WriteTxnMarkers, &request)?;
        Ok(vec![(
            spec.partition.clone(),
            abort_outcome(spec, &response),
        )])
    })?;
    match results.into_values().next() {
        Some(Err(error)) => Err(error.into()),
        _ => Ok(()),
    }
}

/// One attempt at a call: its result, or a retriable error after which it is tried again.
enum Attempt<T> {
    Done(Result<T, ClientError>),
    Retry(KafkaError),
}

/// Runs `attempt` until it is done, at most RETRY_ATTEMPTS_MAX times; the last retriable
/// error is the result when it never is.
fn with_retries<T>(mut attempt: impl FnMut() -> Attempt<T>) -> Result<T, ClientError> {
    let mut last_error = KafkaError::new(REQUEST_TIMED_OUT);
    for attempts in 0..RETRY_ATTEMPTS_MAX {
        if attempts > 0 {
            thread::sleep(RETRY_BACKOFF);
        }
        match attempt() {
            Attempt::Done(result) => return result,
            Attempt::Retry(error) => last_error = error,
        }
    }
    Err(last_error.into())
}

/// Kafka's error with the admin client's own message for it.
fn error_with(code: i16, message: &str) -> KafkaError {
    KafkaError::with_message(code, Some(message)).unwrap_or_else(|| KafkaError::new(code))
}

/// The state name as Kafka's admin client reports it.
pub fn state_name(name: &str) -> String {
    match TRANSACTION_STATES.contains(&name) {
        true => name.to_string(),
        false => "Unknown".to_string(),
    }
}

/// What one broker's ListTransactions answer means (Kafka's `ListTransactionsHandler`).
fn listing_outcome(
    node: NodeId,
    response: ListTransactionsResponse,
) -> Attempt<Vec<TransactionListing>> {
    let broker = node.0;
    let failed = |code, message: String| Attempt::Done(Err(error_with(code, &message).into()));
    match response.error_code {
        0 => Attempt::Done(Ok(response
            .transaction_states
            .into_iter()
            .map(|state| TransactionListing {
                transactional_id: state.transactional_id.0.to_string(),
                producer_id: state.producer_id.0,
                state: state_name(&state.transaction_state),
            })
            .collect())),
        COORDINATOR_LOAD_IN_PROGRESS => {
            Attempt::Retry(KafkaError::new(COORDINATOR_LOAD_IN_PROGRESS))
        }
        COORDINATOR_NOT_AVAILABLE => failed(
            COORDINATOR_NOT_AVAILABLE,
            format!(
                "ListTransactions request sent to broker {broker} failed because the \
                 coordinator is shutting down"
            ),
        ),
        code => failed(
            code,
            format!(
                "ListTransactions request sent to broker {broker} failed with an unexpected \
                 exception"
            ),
        ),
    }
}

/// The transactional id's coordinator, or what to do when FindCoordinator failed (Kafka's
/// `CoordinatorStrategy`): retry while the coordinator is not ready, fail otherwise.
fn find_transaction_coordinator<T>(
    client: &mut Client,
    transactional_id: &str,
) -> Result<NodeId, Attempt<T>> {
    let error = match find_coordinator(client, KEY_TYPE_TRANSACTION, transactional_id) {
        Ok((node, _)) => return Ok(node),
        Err(ClientError::Kafka(error)) => error,
        Err(error) => return Err(Attempt::Done(Err(error))),
    };
    let key = format!("CoordinatorKey(idValue='{transactional_id}', type=TRANSACTION)");
    let message = match error.code {
        COORDINATOR_NOT_AVAILABLE | COORDINATOR_LOAD_IN_PROGRESS => {
            return Err(Attempt::Retry(error))
        }
        TRANSACTIONAL_ID_AUTHORIZATION_FAILED => {
            format!("FindCoordinator request for transactionalId `{key}` failed due to authorization failure")
        }
        _ => format!("FindCoordinator request for key `{key}` failed due to an unexpected error"),
    };
    Err(Attempt::Done(Err(error_with(error.code, &message).into())))
}

/// What a coordinator's DescribeTransactions answer means for one id (Kafka's
/// `DescribeTransactionsHandler`); NOT_COORDINATOR and COORDINATOR_NOT_AVAILABLE are retried,
/// and the coordinator is looked up again on every attempt.
fn description_outcome(
    node: NodeId,
    transactional_id: &str,
    response: DescribeTransactionsResponse,
) -> Attempt<TransactionDescription> {
    let Some(state) = response
        .transaction_states
        .into_iter()
        .find(|state| state.transactional_id.0.as_str() == transactional_id)
    else {
        return Attempt::Retry(error_with(
            UNKNOWN_SERVER_ERROR,
            &format!("The broker's response did not mention '{transactional_id}'."),
        ));
    };
    let request = format!("DescribeTransactions request for transactionalId `{transactional_id}`");
    let failed = |code, message: String| Attempt::Done(Err(error_with(code, &message).into()));
    match state.error_code {
        0 => Attempt::Done(Ok(transaction_description(node, state))),
        TRANSACTIONAL_ID_AUTHORIZATION_FAILED => failed(
            TRANSACTIONAL_ID_AUTHORIZATION_FAILED,
            format!("{request} failed due to authorization failure"),
        ),
        TRANSACTIONAL_ID_NOT_FOUND => failed(
            TRANSACTIONAL_ID_NOT_FOUND,
            format!("{request} failed because the ID could not be found"),
        ),
        code @ (COORDINATOR_LOAD_IN_PROGRESS | NOT_COORDINATOR | COORDINATOR_NOT_AVAILABLE) => {
            Attempt::Retry(KafkaError::new(code))
        }
        code => failed(code, format!("{request} failed due to unexpected error")),
    }
}

fn transaction_description(
    node: NodeId,
    state: describe_transactions_response::TransactionState,
) -> TransactionDescription {
    TransactionDescription {
        coordinator_id: node.0,
        state: state_name(&state.transaction_state),
        producer_id: state.producer_id.0,
        producer_epoch: state.producer_epoch,
        transaction_timeout_ms: state.transaction_timeout_ms,
        transaction_start_time_ms: (state.transaction_start_time_ms >= 0)
            .then_some(state.transaction_start_time_ms),
        topic_partitions: state
            .topics
            .iter()
            .flat_map(|topic| {
                topic
                    .partitions
                    .iter()
                    .map(|partition| TopicPartition::new(topic.topic.as_str(), *partition))
            })
            .collect(),
    }
}

fn producers_request(partitions: &[TopicPartition]) -> DescribeProducersRequest {
    let topics = group_by_topic(partitions)
        .into_iter()
        .map(|(topic, indexes)| {
            TopicRequest::default()
                .with_name(topic_name(&topic))
                .with_partition_indexes(indexes)
        })
        .collect();
    DescribeProducersRequest::default().with_topics(topics)
}

/// What a DescribeProducers answer means for each partition (Kafka's
/// `DescribeProducersHandler`): NOT_LEADER_OR_FOLLOWER is retried at the new leader, unless the
/// request went to a broker the user named.
fn producers_outcomes(
    response: DescribeProducersResponse,
    broker: Option<NodeId>,
) -> Vec<(TopicPartition, PartitionOutcome<Vec<ProducerState>>)> {
    let mut outcomes = Vec::new();
    for topic in response.topics {
        for answer in topic.partitions {
            let partition = TopicPartition::new(topic.name.as_str(), answer.partition_index);
            let outcome = match answer.error_code {
                0 => PartitionOutcome::Done(Ok(answer
                    .active_producers
                    .iter()
                    .map(producer_state)
                    .collect())),
                code => producers_error(&partition, code, answer.error_message, broker),
            };
            outcomes.push((partition, outcome));
        }
    }
    outcomes
}

fn producers_error(
    partition: &TopicPartition,
    code: i16,
    server_message: Option<StrBytes>,
    broker: Option<NodeId>,
) -> PartitionOutcome<Vec<ProducerState>> {
    let failed = |message: String| PartitionOutcome::Done(Err(error_with(code, &message)));
    let topic = &partition.topic;
    match (code, broker) {
        (NOT_LEADER_OR_FOLLOWER, None) => PartitionOutcome::Retry(KafkaError::new(code)),
        (NOT_LEADER_OR_FOLLOWER, Some(node)) => failed(format!(
            "Failed to describe active producers for partition {partition} on brokerId {}",
            node.0
        )),
        (UNKNOWN_TOPIC_OR_PARTITION, _) => PartitionOutcome::Done(Err(KafkaError::new(code))),
        (INVALID_TOPIC, _) => {
            let fallback = KafkaError::with_message(code, server_message.as_deref())
                .map_or_else(String::new, |error| error.message().to_string());
            failed(format!(
                "Failed to fetch metadata for partition {partition} due to invalid topic error: \
                 {fallback}"
            ))
        }
        (TOPIC_AUTHORIZATION_FAILED, _) => failed(format!(
            "Failed to describe active producers for partition {partition} due to \
             authorization failure on topic `{topic}`"
        )),
        _ => failed(format!(
            "Failed to describe active producers for partition {partition} due to unexpected \
             error"
        )),
    }
}

fn producer_state(state: &describe_producers_response::ProducerState) -> ProducerState {
    ProducerState {
        producer_id: state.producer_id.0,
        producer_epoch: state.producer_epoch,
        last_sequence: state.last_sequence,
        last_timestamp: state.last_timestamp,
        coordinator_epoch: (state.coordinator_epoch >= 0).then_some(state.coordinator_epoch),
        current_transaction_start_offset: (state.current_txn_start_offset >= 0)
            .then_some(state.current_txn_start_offset),
    }
}

/// What a WriteTxnMarkers answer means for the aborted partition (Kafka's
/// `AbortTransactionHandler`): a lost leadership is retried at the new leader.
fn abort_outcome(spec: &AbortSpec, response: &WriteTxnMarkersResponse) -> PartitionOutcome<()> {
    let unexpected = |what: &str| {
        PartitionOutcome::Done(Err(error_with(
            UNKNOWN_SERVER_ERROR,
            &format!(
                "WriteTxnMarkers response included unexpected {what} entries (expected to find \
                 exactly one entry with producerId {} and topic partition {})",
                spec.producer_id, spec.partition
            ),
        )))
    };
    let [marker] = response.markers.as_slice() else {
        return unexpected("marker");
    };
    if marker.producer_id.0 != spec.producer_id {
        return unexpected("marker");
    }
    let [topic] = marker.topics.as_slice() else {
        return unexpected("topic");
    };
    if topic.name.as_str() != spec.partition.topic {
        return unexpected("topic");
    }
    let [partition] = topic.partitions.as_slice() else {
        return unexpected("partition");
    };
    if partition.partition_index != spec.partition.partition {
        return unexpected("partition");
    }
    let request = format!("WriteTxnMarkers request with {spec}");
    let failed = |code, message: String| PartitionOutcome::Done(Err(error_with(code, &message)));
    match partition.error_code {
        0 => PartitionOutcome::Done(Ok(())),
        CLUSTER_AUTHORIZATION_FAILED => failed(
            CLUSTER_AUTHORIZATION_FAILED,
            format!("{request} failed due to cluster authorization error"),
        ),
        INVALID_PRODUCER_EPOCH => failed(
            INVALID_PRODUCER_EPOCH,
            format!("{request} failed due an invalid producer epoch"),
        ),
        TRANSACTION_COORDINATOR_FENCED => failed(
            TRANSACTION_COORDINATOR_FENCED,
            format!(
                "{request} failed since the provided coordinator epoch {} has been fenced by the \
                 active coordinator",
                spec.coordinator_epoch
            ),
        ),
        code @ (NOT_LEADER_OR_FOLLOWER
        | REPLICA_NOT_AVAILABLE
        | BROKER_NOT_AVAILABLE
        | UNKNOWN_TOPIC_OR_PARTITION) => PartitionOutcome::Retry(KafkaError::new(code)),
        code => failed(
            code,
            format!(
                "{request} failed due to unexpected error: {}",
                KafkaError::new(code).message()
            ),
        ),
    }
}

/// A partition's answer from its leader: final, or to be retried after finding the leader again.
#[derive(Debug)]
enum PartitionOutcome<T> {
    Done(Result<T, KafkaError>),
    Retry(KafkaError),
}

/// Sends each partition's request to its leader with `send` (one call per leader), finding the
/// leaders again and retrying the partitions whose answer says to, a bounded number of times
/// (Kafka's `PartitionLeaderStrategy`). Every partition gets its result or its last error.
fn call_leaders<T>(
    client: &mut Client,
    partitions: &[TopicPartition],
    mut send: impl FnMut(
        &mut Client,
        NodeId,
        &[TopicPartition],
    ) -> Result<Vec<(TopicPartition, PartitionOutcome<T>)>, ClientError>,
) -> Result<BTreeMap<TopicPartition, Result<T, KafkaError>>, ClientError> {
    let mut results = BTreeMap::new();
    let mut pending: BTreeMap<TopicPartition, KafkaError> = partitions
        .iter()
        .map(|partition| (partition.clone(), missing_from_response(partition)))
        .collect();
    for attempts in 0..RETRY_ATTEMPTS_MAX {
        if pending.is_empty() {
            break;
        }
        if attempts > 0 {
            thread::sleep(RETRY_BACKOFF);
        }
        let wanted: Vec<TopicPartition> = pending.keys().cloned().collect();
        let metadata = client.metadata(Some(&topics_of(&wanted)), false)?;
        let mut by_leader: BTreeMap<NodeId, Vec<TopicPartition>> = BTreeMap::new();
        for partition in wanted {
            match leader_lookup(&metadata, &partition) {
                Lookup::Leader(node) => by_leader.entry(node).or_default().push(partition),
                Lookup::Retry(error) => {
                    pending.insert(partition, error);
                }
                Lookup::Failed(error) => {
                    pending.remove(&partition);
                    results.insert(partition, Err(error));
                }
            }
        }
        for (node, partitions) in by_leader {
            for (partition, outcome) in send(client, node, &partitions)? {
                match outcome {
                    PartitionOutcome::Done(result) => {
                        pending.remove(&partition);
                        results.insert(partition, result);
                    }
                    PartitionOutcome::Retry(error) => {
                        pending.insert(partition, error);
                    }
                }
            }
        }
    }
    results.extend(
        pending
            .into_iter()
            .map(|(partition, error)| (partition, Err(error))),
    );
    Ok(results)
}

/// Where a partition's leader lookup left it.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Lookup {
    Leader(NodeId),
    Retry(KafkaError),
    Failed(KafkaError),
}

/// The partition's leader in `metadata`, with the messages of Kafka's `PartitionLeaderStrategy`
/// for topics that cannot be used; an unknown topic or partition fails at once.
fn leader_lookup(metadata: &ClusterMetadata, partition: &TopicPartition) -> Lookup {
    let topic = &partition.topic;
    let failed = |code, message: String| Lookup::Failed(error_with(code, &message));
    let unknown = || {
        failed(
            UNKNOWN_TOPIC_OR_PARTITION,
            format!(
                "Failed to fetch metadata for partition {partition} because metadata for topic \
                 `{topic}` could not be found"
            ),
        )
    };
    let Some(found) = metadata.topic(topic) else {
        return unknown();
    };
    if let Some(error) = &found.error {
        return match error.code {
            UNKNOWN_TOPIC_OR_PARTITION => unknown(),
            LEADER_NOT_AVAILABLE | BROKER_NOT_AVAILABLE => Lookup::Retry(error.clone()),
            TOPIC_AUTHORIZATION_FAILED => failed(
                error.code,
                format!(
                    "Failed to fetch metadata for partition {partition} due to topic \
                     authorization failure"
                ),
            ),
            INVALID_TOPIC => failed(
                error.code,
                format!(
                    "Failed to fetch metadata for partition {partition} due to invalid topic \
                     `{topic}`"
                ),
            ),
            code => failed(
                code,
                format!(
                    "Failed to fetch metadata for partition {partition} due to unexpected error \
                     for topic `{topic}`"
                ),
            ),
        };
    }
    match found
        .partitions
        .iter()
        .find(|candidate| candidate.partition == partition.partition)
    {
        None => unknown(),
        Some(described) if described.leader.0 < 0 => {
            Lookup::Retry(KafkaError::new(LEADER_NOT_AVAILABLE))
        }
        Some(described) => Lookup::Leader(described.leader),
    }
}

/// The distinct topics of `partitions`, sorted.
fn topics_of(partitions: &[TopicPartition]) -> Vec<String> {
    group_by_topic(partitions).into_keys().collect()
}

/// UNKNOWN_SERVER_ERROR for a partition the broker left out of its answer.
fn missing_from_response(partition: &TopicPartition) -> KafkaError {
    error_with(
        UNKNOWN_SERVER_ERROR,
        &format!("The broker's response did not mention {partition}."),
    )
}

#[cfg(test)]
#[path = "transactions_tests.rs"]
mod tests;
