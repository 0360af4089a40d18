//! InitProducerId for idempotent producers: a producer id unique in the cluster (allocated by
//! the controller in blocks) and epoch 0, or the next epoch when a producer re-initialises
//! (v3+). Transactions are not served yet, so a transactional id is refused.

use kafka_protocol::messages::{InitProducerIdRequest, InitProducerIdResponse, ProducerId};
use kafka_protocol::ResponseError;

use super::RequestContext;

pub async fn handle(
    context: &RequestContext<'_>,
    request: InitProducerIdRequest,
) -> InitProducerIdResponse {
    let response = InitProducerIdResponse::default();
    if request.transactional_id.is_some() {
        tracing::warn!(
            "refusing InitProducerId with a transactional id: transactions are not supported yet"
        );
        return response.with_error_code(ResponseError::TransactionalIdAuthorizationFailed.code());
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
