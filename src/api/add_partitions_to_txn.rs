//! AddPartitionsToTxn: adds partitions to the producer's transaction at its coordinator (which
//! starts the transaction if none is open). v0-3 carry one transaction from a client; v4+ a
//! batch of them, each possibly `verify_only` (KIP-890: a partition leader asking whether a
//! batch belongs to an open transaction). A partition of an unknown topic fails the whole
//! transaction's request: it is UNKNOWN_TOPIC_OR_PARTITION and the others
//! OPERATION_NOT_ATTEMPTED, as in Kafka.
//!
//! Kafka's checks: v4+ come from brokers and need CLUSTER_ACTION on the cluster (else the whole
//! request is CLUSTER_AUTHORIZATION_FAILED). v0-3 come from clients and need WRITE on the
//! transactional id (else every partition is TRANSACTIONAL_ID_AUTHORIZATION_FAILED) and on each
//! topic: a partition of a topic refused (an internal topic always is: offsets join through
//! AddOffsetsToTxn) is TOPIC_AUTHORIZATION_FAILED and fails the transaction's request as an
//! unknown one does.

use kafka_protocol::messages::add_partitions_to_txn_request::AddPartitionsToTxnTopic;
use kafka_protocol::messages::add_partitions_to_txn_response::{
    AddPartitionsToTxnPartitionResult, AddPartitionsToTxnResult, AddPartitionsToTxnTopicResult,
};
use kafka_protocol::messages::{AddPartitionsToTxnRequest, AddPartitionsToTxnResponse};
use kafka_protocol::ResponseError;

use super::{transactions, RequestContext};
use crate::group::OFFSETS_TOPIC;
use crate::security::acl::Operation;
use crate::txn::{TopicPartition, TxnCall, TxnError, TRANSACTION_STATE_TOPIC};

/// v2+ may answer PRODUCER_FENCED.
const PRODUCER_FENCED_VERSION: i16 = 2;
/// v4+ batch transactions.
const BATCHED_VERSION: i16 = 4;
/// v5+ may answer TRANSACTION_ABORTABLE.
const ABORTABLE_VERSION: i16 = 5;

pub async fn handle(
    context: &RequestContext<'_>,
    request: AddPartitionsToTxnRequest,
) -> AddPartitionsToTxnResponse {
    if context.version < BATCHED_VERSION {
        let transactional_id = request.v3_and_below_transactional_id.to_string();
        let topics = match context.transactional_id_authorized(Operation::Write, &transactional_id)
        {
            true => {
                add(
                    context,
                    transactional_id,
                    request.v3_and_below_producer_id.0,
                    request.v3_and_below_producer_epoch,
                    &request.v3_and_below_topics,
                    false,
                )
                .await
            }
            false => results(
                &request.v3_and_below_topics,
                std::iter::repeat(ResponseError::TransactionalIdAuthorizationFailed.code()),
            ),
        };
        return AddPartitionsToTxnResponse::default().with_results_by_topic_v3_and_below(topics);
    }
    if !context.cluster_authorized(Operation::ClusterAction) {
        return AddPartitionsToTxnResponse::default()
            .with_error_code(ResponseError::ClusterAuthorizationFailed.code());
    }
    let mut results = Vec::with_capacity(request.transactions.len());
    for transaction in &request.transactions {
        let topics = add(
            context,
            transaction.transactional_id.to_string(),
            transaction.producer_id.0,
            transaction.producer_epoch,
            &transaction.topics,
            transaction.verify_only,
        )
        .await;
        results.push(
            AddPartitionsToTxnResult::default()
                .with_transactional_id(transaction.transactional_id.clone())
                .with_topic_results(topics),
        );
    }
    AddPartitionsToTxnResponse::default().with_results_by_transaction(results)
}

async fn add(
    context: &RequestContext<'_>,
    transactional_id: String,
    producer_id: i64,
    producer_epoch: i16,
    topics: &[AddPartitionsToTxnTopic],
    verify_only: bool,
) -> Vec<AddPartitionsToTxnTopicResult> {
    let image = context.shard.metadata();
    let partitions: Vec<TopicPartition> = topics
        .iter()
        .flat_map(|topic| {
            topic
                .partitions
                .iter()
                .map(|partition| (topic.name.to_string(), *partition))
        })
        .collect();
    let known = |(topic, partition): &TopicPartition| {
        image
            .topic(topic)
            .is_some_and(|known| (0..known.partitions.len() as i32).contains(partition))
    };
    // Only a client's request (v0-3) is checked topic by topic.
    let writable = |(topic, _): &TopicPartition| {
        context.version >= BATCHED_VERSION
            || (topic != OFFSETS_TOPIC
                && topic != TRANSACTION_STATE_TOPIC
                && context.topic_authorized(Operation::Write, topic))
    };
    let codes: Vec<i16> = if partitions.iter().all(|tp| writable(tp) && known(tp)) {
        let answer = transactions::ask(context, |reply| TxnCall::AddPartitions {
            transactional_id,
            producer_id,
            producer_epoch,
            partitions: partitions.clone(),
            verify_only,
            reply,
        })
        .await
        .unwrap_or_else(transactions::unavailable);
        // TRANSACTION_ABORTABLE exists from v5 (KIP-890); v4 hears INVALID_TXN_STATE.
        let code = |error| match error {
            TxnError::TransactionAbortable if context.version < ABORTABLE_VERSION => {
                ResponseError::InvalidTxnState.code()
            }
            error => transactions::error_code(error, context.version, PRODUCER_FENCED_VERSION),
        };
        match answer {
            Ok(results) => results
                .into_iter()
                .map(|result| result.err().map_or(0, code))
                .collect(),
            Err(error) => vec![code(error); partitions.len()],
        }
    } else {
        partitions
            .iter()
            .map(|tp| match (writable(tp), known(tp)) {
                (false, _) => ResponseError::TopicAuthorizationFailed.code(),
                (true, false) => ResponseError::UnknownTopicOrPartition.code(),
                (true, true) => ResponseError::OperationNotAttempted.code(),
            })
            .collect()
    };
    results(topics, codes.into_iter())
}

/// Each requested partition by topic with the next of `codes`.
fn results(
    topics: &[AddPartitionsToTxnTopic],
    mut codes: impl Iterator<Item = i16>,
) -> Vec<AddPartitionsToTxnTopicResult> {
    topics
        .iter()
        .map(|topic| {
            let results = topic
                .partitions
                .iter()
                .map(|partition| {
                    AddPartitionsToTxnPartitionResult::default()
                        .with_partition_index(*partition)
                        .with_partition_error_code(codes.next().unwrap_or_default())
                })
                .collect();
            AddPartitionsToTxnTopicResult::default()
                .with_name(topic.name.clone())
                .with_results_by_partition(results)
        })
        .collect()
}
