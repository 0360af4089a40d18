//! InitProducerId. Without a transactional id (an idempotent producer): a producer id unique
//! in the cluster (allocated by the controller in blocks) and epoch 0, or the next epoch when a
//! producer re-initialises (v3+). With one: the transaction coordinator of the id
//! (`txn::coordinator`) bumps its epoch, fencing older producers of the id, after aborting a
//! transaction they left open. Kafka's checks come first: WRITE on the transactional id; without
//! one, IDEMPOTENT_WRITE on the cluster or WRITE on some topic (KIP-679).

use kafka_protocol::messages::{InitProducerIdRequest, InitProducerIdResponse, ProducerId};
use kafka_protocol::ResponseError;

use super::{transactions, RequestContext};
use crate::security::acl::{Operation, ResourceType};
use crate::txn::{TxnCall, TxnError};

/// InitProducerId v4+ may answer PRODUCER_FENCED.
const PRODUCER_FENCED_VERSION: i16 = 4;

pub async fn handle(
    context: &RequestContext<'_>,
    request: InitProducerIdRequest,
) -> InitProducerIdResponse {
    let response = InitProducerIdResponse::default();
    if let Some(error) = refusal(context, &request) {
        return response
            .with_producer_id(ProducerId(-1))
            .with_producer_epoch(-1)
            .with_error_code(error.code());
    }
    if let Some(transactional_id) = &request.transactional_id {
        let answer = transactional(context, transactional_id.to_string(), &request).await;
        return match answer {
            Ok((producer_id, epoch)) => response
                .with_producer_id(ProducerId(producer_id))
                .with_producer_epoch(epoch),
            Err(error) => response
                .with_producer_id(ProducerId(-1))
                .with_producer_epoch(-1)
                .with_error_code(transactions::error_code(
                    error,
                    context.version,
                    PRODUCER_FENCED_VERSION,
                )),
        };
    }
    if request.producer_id.0 >= 0
        && request.producer_epoch >= 0
        && request.producer_epoch < i16::MAX - 1
    {
        return response
            .with_producer_id(request.producer_id)
            .with_producer_epoch(request.producer_epoch + 1);
    }
    match context.shard.next_producer_id().await {
        Ok(producer_id) => response
            .with_producer_id(ProducerId(producer_id))
            .with_producer_epoch(0),
        Err(error) => {
            tracing::error!("cannot allocate a producer id: {error}");
            response.with_error_code(ResponseError::CoordinatorNotAvailable.code())
        }
    }
}

/// Kafka's authorization refusal, if any: a transactional producer needs WRITE on its id
/// (TRANSACTIONAL_ID_AUTHORIZATION_FAILED); an idempotent one IDEMPOTENT_WRITE on the cluster
/// or, since WRITE on any topic implies it, WRITE on some topic (CLUSTER_AUTHORIZATION_FAILED).
fn refusal(context: &RequestContext<'_>, request: &InitProducerIdRequest) -> Option<ResponseError> {
    match &request.transactional_id {
        Some(id) if !context.transactional_id_authorized(Operation::Write, id) => {
            Some(ResponseError::TransactionalIdAuthorizationFailed)
        }
        Some(_) => None,
        None if !context.cluster_authorized(Operation::IdempotentWrite)
            && !context.authorized_for_any(Operation::Write, ResourceType::Topic) =>
        {
            Some(ResponseError::ClusterAuthorizationFailed)
        }
        None => None,
    }
}

async fn transactional(
    context: &RequestContext<'_>,
    transactional_id: String,
    request: &InitProducerIdRequest,
) -> Result<(i64, i16), TxnError> {
    let max = context.shard.config.transaction_max_timeout_ms;
    if request.transaction_timeout_ms <= 0 || request.transaction_timeout_ms > max {
        return Err(TxnError::InvalidTransactionTimeout);
    }
    let expected = (request.producer_id.0 >= 0 && request.producer_epoch >= 0)
        .then_some((request.producer_id.0, request.producer_epoch));
    transactions::ask(context, |reply| TxnCall::InitProducerId {
        transactional_id,
        timeout_ms: request.transaction_timeout_ms,
        expected,
        reply,
    })
    .await
    .unwrap_or_else(transactions::unavailable)
}
