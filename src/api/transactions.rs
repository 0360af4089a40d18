//! What the transaction APIs share: carrying a call to the transactional id's coordinator
//! (`Shard::txn_call`), adding partitions to a transaction at its coordinator wherever it is
//! (transactions version 2: a partition's leader for the records produced to it, the group
//! coordinator for offsets), and Kafka's error codes for the coordinator's refusals.

use std::collections::HashSet;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use kafka_protocol::messages::add_partitions_to_txn_request::{
    AddPartitionsToTxnTopic, AddPartitionsToTxnTransaction,
};
use kafka_protocol::messages::{
    AddPartitionsToTxnRequest, AddPartitionsToTxnResponse, ApiKey, ProducerId, TopicName,
    TransactionalId,
};
use kafka_protocol::ResponseError;

use super::{str_bytes, RequestContext};
use crate::runtime::shard::Shard;
use crate::txn::TRANSACTION_STATE_TOPIC;
use crate::txn::{partition_for_txn, PartitionResults, TopicPartition, TxnCall, TxnError};

/// AddPartitionsToTxn between brokers: the version that batches transactions.
const ADD_PARTITIONS_BROKER_VERSION: i16 = 5;
/// Kafka's `add.partitions.to.txn.retry.backoff.ms`: the pause before adding again while the
/// previous transaction's markers are written (CONCURRENT_TRANSACTIONS) or the coordinator loads.
const ADD_RETRY_BACKOFF: Duration = Duration::from_millis(20);
/// How long a coordinator on another broker may take to answer.
const ADD_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Sends the call `build` makes around a reply channel to the id's coordinator shard and waits
/// for its answer; `None` if it could not be served.
pub async fn ask<T>(
    context: &RequestContext<'_>,
    build: impl FnOnce(flume::Sender<T>) -> TxnCall,
) -> Option<T> {
    let (reply, answer) = flume::bounded(1);
    context.shard.txn_call(build(reply)).await;
    answer.recv_async().await.ok()
}

/// Kafka's code for `error` in a response of a version from which PRODUCER_FENCED exists
/// (`fenced_from`; older clients know only INVALID_PRODUCER_EPOCH, KIP-588).
pub fn error_code(error: TxnError, version: i16, fenced_from: i16) -> i16 {
    let error = match error {
        TxnError::ConcurrentTransactions => ResponseError::ConcurrentTransactions,
        TxnError::ProducerFenced if version >= fenced_from => ResponseError::ProducerFenced,
        TxnError::ProducerFenced | TxnError::InvalidProducerEpoch => {
            ResponseError::InvalidProducerEpoch
        }
        TxnError::InvalidProducerIdMapping => ResponseError::InvalidProducerIdMapping,
        TxnError::InvalidTxnState => ResponseError::InvalidTxnState,
        TxnError::InvalidTransactionTimeout => ResponseError::InvalidTransactionTimeout,
        TxnError::NotCoordinator => ResponseError::NotCoordinator,
        TxnError::CoordinatorLoadInProgress => ResponseError::CoordinatorLoadInProgress,
        TxnError::CoordinatorNotAvailable => ResponseError::CoordinatorNotAvailable,
        TxnError::TransactionalIdNotFound => ResponseError::TransactionalIdNotFound,
    };
    error.code()
}

/// The answer when the coordinator's shard gave none (it stopped).
pub fn unavailable<T>() -> Result<T, TxnError> {
    Err(TxnError::CoordinatorNotAvailable)
}

/// Kafka's error code as the coordinator's refusal; an unexpected code is taken as the
/// coordinator being unavailable.
fn txn_error(code: i16) -> Result<(), TxnError> {
    let error = match ResponseError::try_from_code(code) {
        None if code == 0 => return Ok(()),
        Some(ResponseError::ConcurrentTransactions) => TxnError::ConcurrentTransactions,
        Some(ResponseError::ProducerFenced) => TxnError::ProducerFenced,
        Some(ResponseError::InvalidProducerEpoch) => TxnError::InvalidProducerEpoch,
        Some(ResponseError::InvalidProducerIdMapping) => TxnError::InvalidProducerIdMapping,
        Some(ResponseError::InvalidTxnState) => TxnError::InvalidTxnState,
        Some(ResponseError::NotCoordinator) => TxnError::NotCoordinator,
        Some(ResponseError::CoordinatorLoadInProgress) => TxnError::CoordinatorLoadInProgress,
        _ => TxnError::CoordinatorNotAvailable,
    };
    Err(error)
}

/// Adds `partitions` to the producer's transaction at the id's coordinator (or, with
/// `verify_only`, checks they are in it), on this broker through the mesh or on another with
/// AddPartitionsToTxn v5. Retried while the coordinator is busy ending the producer's previous
/// transaction or loading, until `deadline`.
pub async fn add_to_transaction(
    shard: &Rc<Shard>,
    transactional_id: &str,
    producer: (i64, i16),
    partitions: &[TopicPartition],
    verify_only: bool,
    deadline: Instant,
) -> Result<PartitionResults, TxnError> {
    loop {
        let answer = add_once(shard, transactional_id, producer, partitions, verify_only).await;
        let busy = matches!(
            answer,
            Err(TxnError::ConcurrentTransactions | TxnError::CoordinatorLoadInProgress)
        ) || answer.as_ref().is_ok_and(|results| {
            results.contains(&Err(TxnError::ConcurrentTransactions))
        });
        if !busy || Instant::now() + ADD_RETRY_BACKOFF >= deadline {
            return answer;
        }
        glommio::timer::sleep(ADD_RETRY_BACKOFF).await;
    }
}

async fn add_once(
    shard: &Rc<Shard>,
    transactional_id: &str,
    (producer_id, producer_epoch): (i64, i16),
    partitions: &[TopicPartition],
    verify_only: bool,
) -> Result<PartitionResults, TxnError> {
    let image = shard.metadata();
    let topic = image
        .topic(TRANSACTION_STATE_TOPIC)
        .ok_or(TxnError::CoordinatorNotAvailable)?;
    let index = partition_for_txn(transactional_id, topic.partitions.len() as i32);
    let leader = topic.partitions[index as usize].leader;
    if leader < 0 {
        return Err(TxnError::CoordinatorNotAvailable);
    }
    if leader == shard.config.node_id {
        let (reply, answer) = flume::bounded(1);
        shard
            .txn_call(TxnCall::AddPartitions {
                transactional_id: transactional_id.to_string(),
                producer_id,
                producer_epoch,
                partitions: partitions.to_vec(),
                verify_only,
                reply,
            })
            .await;
        return answer.recv_async().await.unwrap_or_else(|_| unavailable());
    }
    let address = shard
        .broker_address(leader)
        .ok_or(TxnError::CoordinatorNotAvailable)?;
    let mut topics: Vec<AddPartitionsToTxnTopic> = Vec::new();
    for (name, partition) in partitions {
        match topics.iter_mut().find(|topic| *topic.name.0 == **name) {
            Some(topic) => topic.partitions.push(*partition),
            None => topics.push(
                AddPartitionsToTxnTopic::default()
                    .with_name(TopicName(str_bytes(name)))
                    .with_partitions(vec![*partition]),
            ),
        }
    }
    let request = AddPartitionsToTxnRequest::default().with_transactions(vec![
        AddPartitionsToTxnTransaction::default()
            .with_transactional_id(TransactionalId(str_bytes(transactional_id)))
            .with_producer_id(ProducerId(producer_id))
            .with_producer_epoch(producer_epoch)
            .with_verify_only(verify_only)
            .with_topics(topics),
    ]);
    let response: AddPartitionsToTxnResponse = shard
        .peers
        .request(
            leader,
            &address,
            ApiKey::AddPartitionsToTxn,
            ADD_PARTITIONS_BROKER_VERSION,
            &request,
            ADD_REQUEST_TIMEOUT,
        )
        .await
        .map_err(|error| {
            tracing::debug!("adding partitions to {transactional_id} at broker {leader}: {error}");
            TxnError::CoordinatorNotAvailable
        })?;
    txn_error(response.error_code)?;
    let answered = response
        .results_by_transaction
        .iter()
        .flat_map(|result| &result.topic_results)
        .flat_map(|topic| {
            topic
                .results_by_partition
                .iter()
                .map(move |result| ((topic.name.to_string(), result.partition_index), result))
        })
        .map(|(key, result)| (key, result.partition_error_code))
        .collect::<std::collections::HashMap<_, _>>();
    Ok(partitions
        .iter()
        .map(|tp| txn_error(answered.get(tp).copied().unwrap_or(-1)))
        .collect())
}

/// The partitions a connection's transactional producer has had added in its current epoch.
#[derive(Default)]
pub struct AddedPartitions {
    producer: Option<(i64, i16)>,
    partitions: HashSet<(Arc<str>, i32)>,
}

impl AddedPartitions {
    /// Which of `wanted` the producer (id, epoch) has not had added yet; a new producer or
    /// epoch (the next transaction, in version 2) starts afresh.
    pub fn missing(
        &mut self,
        producer: (i64, i16),
        wanted: &[(Arc<str>, i32)],
    ) -> Vec<(Arc<str>, i32)> {
        if self.producer != Some(producer) {
            self.producer = Some(producer);
            self.partitions.clear();
        }
        wanted
            .iter()
            .filter(|tp| !self.partitions.contains(*tp))
            .cloned()
            .collect()
    }

    pub fn added(&mut self, producer: (i64, i16), partition: (Arc<str>, i32)) {
        if self.producer == Some(producer) {
            self.partitions.insert(partition);
        }
    }
}

/// Kafka's code for a partition of a Produce v12+ whose transaction could not take it: the
/// coordinator's passing troubles are NOT_ENOUGH_REPLICAS (retriable, as Kafka 4 answers), a
/// fenced producer INVALID_PRODUCER_EPOCH, the rest as the coordinator said.
pub fn produce_code(error: TxnError) -> ResponseError {
    match error {
        TxnError::ConcurrentTransactions
        | TxnError::NotCoordinator
        | TxnError::CoordinatorLoadInProgress
        | TxnError::CoordinatorNotAvailable => ResponseError::NotEnoughReplicas,
        TxnError::ProducerFenced | TxnError::InvalidProducerEpoch => {
            ResponseError::InvalidProducerEpoch
        }
        TxnError::InvalidProducerIdMapping => ResponseError::InvalidProducerIdMapping,
        TxnError::InvalidTxnState
        | TxnError::InvalidTransactionTimeout
        | TxnError::TransactionalIdNotFound => ResponseError::InvalidTxnState,
    }
}
