//! Partitions joining a transaction at its coordinator, wherever the coordinator is: on this
//! broker through the mesh (`Shard::txn_call`), on another with AddPartitionsToTxn v5 through
//! the shard's `runtime::peer` pool. Version 2 clients' partitions join this way (a partition's
//! leader for records produced to it, the group coordinator for offsets); with `verify_only` a
//! leader asks whether a version 1 client's batch belongs to an open transaction (KIP-890
//! part 1).

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
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

use super::TRANSACTION_STATE_TOPIC;
use super::{partition_for_txn, PartitionResults, TopicPartition, TxnCall, TxnError};
use crate::runtime::shard::Shard;

/// AddPartitionsToTxn between brokers: the version that batches transactions.
const ADD_PARTITIONS_BROKER_VERSION: i16 = 5;
/// Kafka's `add.partitions.to.txn.retry.backoff.ms`: the pause before adding again while the
/// previous transaction's markers are written (CONCURRENT_TRANSACTIONS) or the coordinator loads.
const ADD_RETRY_BACKOFF: Duration = Duration::from_millis(20);
/// How long a coordinator on another broker may take to answer.
const ADD_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

fn str_bytes(text: &str) -> StrBytes {
    StrBytes::from_string(text.to_string())
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
        Some(ResponseError::TransactionAbortable) => TxnError::TransactionAbortable,
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
        ) || answer
            .as_ref()
            .is_ok_and(|results| results.contains(&Err(TxnError::ConcurrentTransactions)));
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
        return answer
            .recv_async()
            .await
            .unwrap_or(Err(TxnError::CoordinatorNotAvailable));
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
