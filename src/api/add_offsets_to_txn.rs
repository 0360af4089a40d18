//! AddOffsetsToTxn: adds the group's `__consumer_offsets` partition to the producer's
//! transaction (creating the topic if need be), so the offsets it commits with TxnOffsetCommit
//! get the transaction's marker. Kafka's checks come first: WRITE on the transactional id, then
//! READ on the group.

use kafka_protocol::messages::{AddOffsetsToTxnRequest, AddOffsetsToTxnResponse};
use kafka_protocol::ResponseError;

use super::{transactions, RequestContext};
use crate::group::{partition_for_group, OFFSETS_TOPIC};
use crate::security::acl::Operation;
use crate::txn::{TxnCall, TxnError};

/// v2+ may answer PRODUCER_FENCED.
const PRODUCER_FENCED_VERSION: i16 = 2;

pub async fn handle(
    context: &RequestContext<'_>,
    request: AddOffsetsToTxnRequest,
) -> AddOffsetsToTxnResponse {
    if !context.transactional_id_authorized(Operation::Write, &request.transactional_id) {
        return AddOffsetsToTxnResponse::default()
            .with_error_code(ResponseError::TransactionalIdAuthorizationFailed.code());
    }
    if !context.group_authorized(Operation::Read, &request.group_id) {
        return AddOffsetsToTxnResponse::default()
            .with_error_code(ResponseError::GroupAuthorizationFailed.code());
    }
    let answer = add(context, &request).await;
    let code = match answer {
        Ok(()) => 0,
        Err(error) => transactions::error_code(error, context.version, PRODUCER_FENCED_VERSION),
    };
    AddOffsetsToTxnResponse::default().with_error_code(code)
}

async fn add(
    context: &RequestContext<'_>,
    request: &AddOffsetsToTxnRequest,
) -> Result<(), TxnError> {
    if super::find_coordinator::ensure_offsets_topic(context)
        .await
        .is_err()
    {
        return Err(TxnError::CoordinatorNotAvailable);
    }
    let count = context
        .shard
        .metadata()
        .topic(OFFSETS_TOPIC)
        .map_or(0, |topic| topic.partitions.len() as i32);
    if count == 0 {
        return Err(TxnError::CoordinatorNotAvailable);
    }
    let partition = partition_for_group(&request.group_id, count);
    let answer = transactions::ask(context, |reply| TxnCall::AddPartitions {
        transactional_id: request.transactional_id.to_string(),
        producer_id: request.producer_id.0,
        producer_epoch: request.producer_epoch,
        partitions: vec![(OFFSETS_TOPIC.to_string(), partition)],
        verify_only: false,
        reply,
    })
    .await
    .unwrap_or_else(transactions::unavailable)?;
    answer.into_iter().next().unwrap_or(Ok(()))
}
