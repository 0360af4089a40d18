//! Produce: validates every batch on the connection's shard (CRC-32C, lengths, magic, size, then
//! every record as Kafka's LogValidator does: `storage::validator`),
//! sends each partition's batches to its owning shard, and answers in request order once the
//! appends are done as `acks` asks. acks=0 gets no response at all, as in Kafka.

use std::sync::Arc;

use kafka_protocol::messages::produce_response::{
    BatchIndexAndErrorMessage, PartitionProduceResponse, TopicProduceResponse,
};
use kafka_protocol::messages::{ProduceRequest, ProduceResponse};
use kafka_protocol::ResponseError;

use super::{str_bytes, transactions, RequestContext};
use crate::partition::{Acks, AppendOutcome, PartitionError};
use crate::quota::manager::QuotaKind;
use crate::runtime::mesh::{ProducePart, ShardRequest};
use crate::security::acl::Operation;
use crate::storage::batch::{self, BatchError};
use crate::storage::validator::{self, RecordError, ValidationConfig};
use crate::storage::StorageError;

/// Why one partition of a produce request was refused before reaching its shard.
enum Refusal {
    Code(ResponseError, String),
    /// A record-level refusal: Kafka also names the records at fault in `record_errors`, each
    /// by its index in the batch with its own message.
    Records(ResponseError, String, Vec<(i32, String)>),
}

pub async fn handle(
    context: &RequestContext<'_>,
    request: ProduceRequest,
) -> Option<ProduceResponse> {
    let acks = match request.acks {
        0 => Some(Acks::None),
        1 => Some(Acks::Leader),
        -1 => Some(Acks::All),
        _ => None,
    };
    let image = context.shard.metadata();
    // One broker time for every batch of the request stamped with LogAppendTime.
    let append_time = crate::storage::now_ms();
    // Version 1 clients' transactional batches are verified by their partitions' leaders
    // (`transaction.partition.verification.enable`); version 2 ones join below.
    let verify_transaction: Option<Arc<str>> = request
        .transactional_id
        .as_ref()
        .filter(|_| {
            context.version < TXN_V2_PRODUCE_VERSION
                && context
                    .shard
                    .config
                    .transaction_partition_verification_enable
        })
        .map(|id| Arc::from(id.as_str()));
    // Kafka's checks: WRITE on the transactional id, then WRITE on each topic.
    let transaction_denied = request
        .transactional_id
        .as_ref()
        .is_some_and(|id| !context.transactional_id_authorized(Operation::Write, id));
    let mut parts = Vec::new();
    // The slot (request position) of each part.
    let mut part_slots: Vec<usize> = Vec::new();
    let mut stamped: Vec<bool> = Vec::new();
    let mut slots: Vec<Result<(), Refusal>> = Vec::new();
    for topic in &request.topic_data {
        let known = image.topic(topic.name.as_str());
        let settings = known.map(|known| context.shard.topic_settings(known));
        let topic_name: Arc<str> = Arc::from(topic.name.as_str());
        let authorization = match (
            transaction_denied,
            context.topic_authorized(Operation::Write, &topic.name),
        ) {
            (true, _) => Err(ResponseError::TransactionalIdAuthorizationFailed),
            (false, false) => Err(ResponseError::TopicAuthorizationFailed),
            (false, true) => Ok(()),
        };
        for partition in &topic.partition_data {
            let checked = acks
                .ok_or_else(|| {
                    Refusal::Code(
                        ResponseError::InvalidRequiredAcks,
                        format!("acks={} is not 0, 1 or -1", request.acks),
                    )
                })
                .and_then(|_| authorization.map_err(|error| Refusal::Code(error, String::new())))
                .and_then(|_| {
                    let topic = known
                        .filter(|known| {
                            (0..known.partitions.len() as i32).contains(&partition.index)
                        })
                        .ok_or_else(|| {
                            Refusal::Code(ResponseError::UnknownTopicOrPartition, String::new())
                        })?;
                    let settings = settings.as_ref().expect("settings of a known topic");
                    let mut batches = partition.records.clone().unwrap_or_default();
                    let mut headers = batch::validate_batches(&batches, settings.max_message_bytes)
                        .map_err(refusal)?;
                    let validation = ValidationConfig {
                        max_message_bytes: settings.max_message_bytes,
                        log_append_time: settings.log_append_time,
                        timestamp_before_max_ms: settings.timestamp_before_max_ms,
                        timestamp_after_max_ms: settings.timestamp_after_max_ms,
                        now_ms: append_time,
                        produce_version: context.version,
                    };
                    let partition_name = format!("{}-{}", topic.name, partition.index);
                    let summary = validator::validate_client_batches(
                        &batches,
                        &headers,
                        &validation,
                        &partition_name,
                    )
                    .map_err(record_refusal)?;
                    if settings.compacted && !summary.keyless_records.is_empty() {
                        return Err(keyless_refusal(&summary.keyless_records, &partition_name));
                    }
                    if settings.log_append_time {
                        batches = batch::stamp_log_append_time(&batches, &mut headers, append_time);
                    }
                    Ok((
                        context.shard.owner_of(topic, partition.index),
                        batches,
                        headers,
                    ))
                });
            stamped.push(
                settings
                    .as_ref()
                    .is_some_and(|settings| settings.log_append_time),
            );
            match checked {
                Ok((shard, batches, headers)) => {
                    part_slots.push(slots.len());
                    parts.push((
                        shard,
                        ProducePart {
                            topic: topic_name.clone(),
                            partition: partition.index,
                            batches,
                            headers,
                            verify_transaction: verify_transaction.clone(),
                        },
                    ));
                    slots.push(Ok(()));
                }
                Err(refusal) => slots.push(Err(refusal)),
            }
        }
    }
    let acks_for_append = acks.unwrap_or(Acks::Leader);
    let timeout = std::time::Duration::from_millis(request.timeout_ms.max(0) as u64);
    if let (true, Some(transactional_id)) = (
        context.version >= TXN_V2_PRODUCE_VERSION,
        request.transactional_id.as_ref(),
    ) {
        let deadline = std::time::Instant::now() + timeout;
        let refused = add_produced(context, transactional_id, &parts, deadline).await;
        let mut kept = Vec::with_capacity(parts.len());
        for ((part, slot), refusal) in parts.into_iter().zip(part_slots).zip(refused) {
            match refusal {
                None => kept.push(part),
                Some(error) => {
                    slots[slot] = Err(Refusal::Code(
                        error,
                        "the partition could not join the producer's transaction".to_string(),
                    ))
                }
            }
        }
        parts = kept;
    }
    // Kafka counts the request's bytes against `producer_byte_rate`, acks=0 included; counted
    // before the dispatch, so that the connection's next produce already waits out a throttle.
    let bytes = request
        .topic_data
        .iter()
        .flat_map(|topic| &topic.partition_data)
        .filter_map(|partition| partition.records.as_ref())
        .map(|records| records.len())
        .sum();
    let throttle_ms = context.throttle(QuotaKind::Produce, bytes).await;
    let scattered = context
        .shard
        .dispatch(parts, |parts, reply| ShardRequest::Produce {
            parts,
            acks: acks_for_append,
            timeout,
            reply,
        })
        .await;
    // Every part is in line at its owner: the connection's next produce may be dispatched, and
    // will be appended after this one (`Shard::dispatch`), while this one waits for its acks.
    context.dispatched.signal();
    let outcomes = scattered.gather().await;
    if acks == Some(Acks::None) {
        return None;
    }
    let response = response(
        context.version,
        &request,
        slots,
        outcomes,
        &stamped,
        append_time,
    );
    Some(response.with_throttle_time_ms(throttle_ms))
}

/// Produce v12: what clients of transactions version 2 send; their transactional batches add
/// their partitions to the transaction here (KIP-890 part 2).
const TXN_V2_PRODUCE_VERSION: i16 = 12;

/// Transactions version 2: the partitions of transactional batches join the producer's
/// transaction at its coordinator before they are appended (once per partition and epoch on a
/// connection). Returns, per part, the error it gets if its partition could not join.
async fn add_produced(
    context: &RequestContext<'_>,
    transactional_id: &str,
    parts: &[(crate::runtime::placement::ShardId, ProducePart)],
    deadline: std::time::Instant,
) -> Vec<Option<ResponseError>> {
    let transactional = |part: &ProducePart| {
        part.headers
            .iter()
            .find(|header| batch::is_transactional(header) && header.control.is_none())
            .map(|header| (header.producer_id, header.producer_epoch))
    };
    let Some(producer) = parts.iter().find_map(|(_, part)| transactional(part)) else {
        return vec![None; parts.len()];
    };
    let wanted: Vec<(Arc<str>, i32)> = parts
        .iter()
        .filter(|(_, part)| transactional(part).is_some())
        .map(|(_, part)| (part.topic.clone(), part.partition))
        .collect();
    let missing = context
        .connection
        .txn_added
        .borrow_mut()
        .missing(producer, &wanted);
    if missing.is_empty() {
        return vec![None; parts.len()];
    }
    let named: Vec<(String, i32)> = missing
        .iter()
        .map(|(topic, partition)| (topic.to_string(), *partition))
        .collect();
    let answer = crate::txn::join::add_to_transaction(
        context.shard,
        transactional_id,
        producer,
        &named,
        false,
        deadline,
    )
    .await;
    let mut refused = std::collections::HashMap::new();
    match answer {
        Ok(results) => {
            for (partition, result) in missing.into_iter().zip(results) {
                match result {
                    Ok(()) => context
                        .connection
                        .txn_added
                        .borrow_mut()
                        .added(producer, partition),
                    Err(error) => {
                        refused.insert(partition, transactions::produce_code(error));
                    }
                }
            }
        }
        Err(error) => {
            tracing::debug!("{transactional_id}: partitions not added to the transaction: {error}");
            for partition in missing {
                refused.insert(partition, transactions::produce_code(error));
            }
        }
    }
    parts
        .iter()
        .map(|(_, part)| refused.get(&(part.topic.clone(), part.partition)).copied())
        .collect()
}

/// The response in request order; `stamped` says which partitions took `append_time` as their
/// batches' timestamp (reported as `log_append_time_ms`, -1 for the others).
fn response(
    version: i16,
    request: &ProduceRequest,
    slots: Vec<Result<(), Refusal>>,
    outcomes: Vec<Result<AppendOutcome, PartitionError>>,
    stamped: &[bool],
    append_time: i64,
) -> ProduceResponse {
    let mut stamped = stamped.iter();
    let mut slots = slots.into_iter();
    let mut outcomes = outcomes.into_iter();
    let responses = request
        .topic_data
        .iter()
        .map(|topic| {
            let partitions = topic
                .partition_data
                .iter()
                .map(|partition| {
                    let base = PartitionProduceResponse::default()
                        .with_index(partition.index)
                        .with_base_offset(-1)
                        .with_log_append_time_ms(-1)
                        .with_log_start_offset(-1);
                    let stamped = *stamped.next().expect("a stamp flag per partition");
                    match slots.next().expect("a slot per partition") {
                        Err(Refusal::Code(error, message)) => base
                            .with_error_code(error.code())
                            .with_error_message((!message.is_empty()).then(|| str_bytes(&message))),
                        Err(Refusal::Records(error, message, records)) => base
                            .with_error_code(error.code())
                            .with_error_message(Some(str_bytes(&message)))
                            .with_record_errors(
                                records
                                    .into_iter()
                                    .map(|(index, message)| {
                                        BatchIndexAndErrorMessage::default()
                                            .with_batch_index(index)
                                            .with_batch_index_error_message(Some(str_bytes(
                                                &message,
                                            )))
                                    })
                                    .collect(),
                            ),
                        Ok(()) => match outcomes.next().expect("an outcome per accepted partition")
                        {
                            Ok(appended) => base
                                .with_base_offset(appended.base_offset)
                                .with_log_append_time_ms(if stamped { append_time } else { -1 })
                                .with_log_start_offset(appended.log_start_offset),
                            // Produce v11+ (KIP-890) hears that a batch's transaction is
                            // not open as TRANSACTION_ABORTABLE: the client aborts and goes on.
                            Err(PartitionError::NotInTransaction) if version >= 11 => base
                                .with_error_code(ResponseError::TransactionAbortable.code())
                                .with_error_message(Some(str_bytes(
                                    &PartitionError::NotInTransaction.to_string(),
                                ))),
                            Err(error) => base
                                .with_error_code(partition_error_code(&error))
                                .with_error_message(Some(str_bytes(&error.to_string()))),
                        },
                    }
                })
                .collect();
            TopicProduceResponse::default()
                .with_name(topic.name.clone())
                .with_partition_responses(partitions)
        })
        .collect();
    ProduceResponse::default().with_responses(responses)
}

fn refusal(error: BatchError) -> Refusal {
    let code = match error {
        BatchError::TooLarge { .. } => ResponseError::MessageTooLarge,
        BatchError::UnsupportedMagic { .. } => ResponseError::UnsupportedForMessageFormat,
        BatchError::Empty | BatchError::InvalidOffsetRange { .. } => ResponseError::InvalidRecord,
        BatchError::Truncated { .. }
        | BatchError::InvalidLength { .. }
        | BatchError::CorruptCrc { .. } => ResponseError::CorruptMessage,
    };
    Refusal::Code(code, error.to_string())
}

fn record_refusal(error: RecordError) -> Refusal {
    let code = match error {
        RecordError::Invalid(..) => ResponseError::InvalidRecord,
        RecordError::Timestamp(..) => ResponseError::InvalidTimestamp,
        RecordError::Compression(_) => ResponseError::UnsupportedCompressionType,
    };
    let message = error.to_string();
    let records = error
        .record_index()
        .map(|index| (index, message.clone()))
        .into_iter()
        .collect();
    Refusal::Records(code, message, records)
}

/// A compacted topic's refusal of records without a key, as Kafka's `LogValidator` gives it:
/// INVALID_RECORD naming every keyless record, with a summary of the first three.
fn keyless_refusal(keyless: &[i32], partition_name: &str) -> Refusal {
    let message = format!(
        "Compacted topic cannot accept message without key in topic partition {partition_name}."
    );
    let shown: Vec<String> = keyless
        .iter()
        .take(3)
        .map(|index| format!("RecordError(batchIndex={index}, message='{message}')"))
        .collect();
    let summary = format!(
        "One or more records have been rejected due to {} record errors in total, and only \
         showing the first three errors at most: [{}]",
        keyless.len(),
        shown.join(", ")
    );
    Refusal::Records(
        ResponseError::InvalidRecord,
        summary,
        keyless
            .iter()
            .map(|index| (*index, message.clone()))
            .collect(),
    )
}

/// The Kafka error code for a partition-level failure on the owning shard.
pub fn partition_error_code(error: &PartitionError) -> i16 {
    let error = match error {
        PartitionError::NotHosted(_) => ResponseError::UnknownTopicOrPartition,
        PartitionError::TopicAuthorizationFailed => ResponseError::TopicAuthorizationFailed,
        PartitionError::NotLeader => ResponseError::NotLeaderOrFollower,
        PartitionError::OutOfOrderSequence { .. } => ResponseError::OutOfOrderSequenceNumber,
        PartitionError::InvalidProducerEpoch { .. }
        | PartitionError::FencedByCoordinator { .. } => ResponseError::InvalidProducerEpoch,
        PartitionError::CoordinatorFenced { .. } => ResponseError::TransactionCoordinatorFenced,
        PartitionError::NotInTransaction => ResponseError::InvalidTxnState,
        PartitionError::VerificationUnavailable(_) => ResponseError::NotEnoughReplicas,
        PartitionError::NotEnoughReplicas { .. } => ResponseError::NotEnoughReplicas,
        PartitionError::NotEnoughReplicasAfterAppend { .. } => {
            ResponseError::NotEnoughReplicasAfterAppend
        }
        PartitionError::ReplicationTimedOut(_) => ResponseError::RequestTimedOut,
        PartitionError::FencedLeaderEpoch { .. } => ResponseError::FencedLeaderEpoch,
        PartitionError::UnknownLeaderEpoch { .. } => ResponseError::UnknownLeaderEpoch,
        PartitionError::Storage(StorageError::OffsetOutOfRange { .. }) => {
            ResponseError::OffsetOutOfRange
        }
        // The broker is shutting down: clients retry elsewhere (or here after the restart).
        PartitionError::Storage(StorageError::Closed { .. }) => ResponseError::NotLeaderOrFollower,
        PartitionError::Storage(_) | PartitionError::Offline { .. } => {
            ResponseError::KafkaStorageError
        }
    };
    error.code()
}
