//! TxnOffsetCommit: offsets a transactional producer commits for a group (a consume-transform-
//! produce loop's `sendOffsetsToTransaction`). The group's coordinator stores them in
//! `__consumer_offsets` as part of the producer's transaction; they take effect with its COMMIT
//! marker and vanish with an ABORT. From v3 the member and generation are checked as an
//! OffsetCommit's are; from v5 (transactions version 2) the group's offsets partition joins the
//! transaction here, with no AddOffsetsToTxn before. Kafka's checks come first: WRITE on the
//! transactional id, then READ on the group (each refusing every partition), then READ on each
//! topic (`offset_commit::check_offsets`).

use kafka_protocol::messages::txn_offset_commit_response::{
    TxnOffsetCommitResponsePartition, TxnOffsetCommitResponseTopic,
};
use kafka_protocol::messages::{TxnOffsetCommitRequest, TxnOffsetCommitResponse};
use kafka_protocol::ResponseError;

use super::groups::{call, error_code};
use super::offset_commit::{commit_codes, RequestedOffset};
use super::{transactions, RequestContext};
use crate::group::{partition_for_group, ErrorCode, GroupCall, TxnCommit, OFFSETS_TOPIC};
use crate::security::acl::Operation;
use crate::txn::TxnError;

/// TxnOffsetCommit v5: transactions version 2.
const TXN_V2_VERSION: i16 = 5;
/// How long adding the offsets partition may wait for the coordinator.
const ADD_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// Adds the group's `__consumer_offsets` partition to the producer's transaction.
async fn add_offsets_partition(
    context: &RequestContext<'_>,
    transactional_id: &str,
    group_id: &str,
    producer_id: i64,
    producer_epoch: i16,
) -> Result<(), TxnError> {
    let count = context
        .shard
        .metadata()
        .topic(OFFSETS_TOPIC)
        .map_or(0, |topic| topic.partitions.len() as i32);
    if count == 0 {
        return Err(TxnError::CoordinatorNotAvailable);
    }
    let partition = (
        OFFSETS_TOPIC.to_string(),
        partition_for_group(group_id, count),
    );
    let results = crate::txn::join::add_to_transaction(
        context.shard,
        transactional_id,
        (producer_id, producer_epoch),
        &[partition],
        false,
        std::time::Instant::now() + ADD_TIMEOUT,
    )
    .await?;
    results.into_iter().next().unwrap_or(Ok(()))
}

pub async fn handle(
    context: &RequestContext<'_>,
    request: TxnOffsetCommitRequest,
) -> TxnOffsetCommitResponse {
    let refusal =
        if !context.transactional_id_authorized(Operation::Write, &request.transactional_id) {
            Some(ResponseError::TransactionalIdAuthorizationFailed)
        } else if !context.group_authorized(Operation::Read, &request.group_id) {
            Some(ResponseError::GroupAuthorizationFailed)
        } else {
            None
        };
    if let Some(error) = refusal {
        return response(&request, std::iter::repeat(error.code()));
    }
    let requested = request
        .topics
        .iter()
        .flat_map(|topic| {
            topic.partitions.iter().map(|partition| RequestedOffset {
                topic: topic.name.to_string(),
                partition: partition.partition_index,
                offset: partition.committed_offset,
                leader_epoch: partition.committed_leader_epoch,
                metadata: partition
                    .committed_metadata
                    .as_ref()
                    .map(|text| text.to_string()),
            })
        })
        .collect();
    let (group_id, member_id) = (request.group_id.to_string(), request.member_id.to_string());
    let (producer_id, producer_epoch) = (request.producer_id.0, request.producer_epoch);
    let generation = request.generation_id;
    let transactional_id = request.transactional_id.to_string();
    let commit = |offsets| async move {
        // Transactions version 2 (v5): the group's offsets partition joins the transaction here,
        // where version 1 clients sent AddOffsetsToTxn first.
        if context.version >= TXN_V2_VERSION {
            if let Err(error) = add_offsets_partition(
                context,
                &transactional_id,
                &group_id,
                producer_id,
                producer_epoch,
            )
            .await
            {
                return transactions::error_code(error, context.version, 3);
            }
        }
        let commit = TxnCommit {
            group_id,
            producer_id,
            producer_epoch,
            member_id,
            generation,
            offsets,
        };
        let code = call(context, |reply| GroupCall::TxnCommit {
            commit: Box::new(commit),
            reply,
        })
        .await
        .unwrap_or(ErrorCode::CoordinatorNotAvailable);
        // Before v3, a fenced producer hears INVALID_PRODUCER_EPOCH (KIP-588).
        match code {
            ErrorCode::ProducerFenced if context.version < 3 => {
                ResponseError::InvalidProducerEpoch.code()
            }
            code => error_code(code),
        }
    };
    let codes = commit_codes(context, &request.group_id, requested, commit).await;
    response(&request, codes.into_iter())
}

/// The answer: each requested partition with the next of `codes`.
fn response(
    request: &TxnOffsetCommitRequest,
    mut codes: impl Iterator<Item = i16>,
) -> TxnOffsetCommitResponse {
    let topics = request
        .topics
        .iter()
        .map(|topic| {
            let partitions = topic
                .partitions
                .iter()
                .map(|partition| {
                    TxnOffsetCommitResponsePartition::default()
                        .with_partition_index(partition.partition_index)
                        .with_error_code(codes.next().expect("a code per partition"))
                })
                .collect();
            TxnOffsetCommitResponseTopic::default()
                .with_name(topic.name.clone())
                .with_partitions(partitions)
        })
        .collect();
    TxnOffsetCommitResponse::default().with_topics(topics)
}
