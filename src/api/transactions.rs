//! What the transaction APIs share: carrying a call to the transactional id's coordinator
//! (`Shard::txn_call`) and Kafka's error codes for the coordinator's refusals.

use kafka_protocol::ResponseError;

use super::RequestContext;
use crate::txn::{TxnCall, TxnError};

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
        TxnError::TransactionAbortable => ResponseError::TransactionAbortable,
    };
    error.code()
}

/// The answer when the coordinator's shard gave none (it stopped).
pub fn unavailable<T>() -> Result<T, TxnError> {
    Err(TxnError::CoordinatorNotAvailable)
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
        TxnError::TransactionAbortable => ResponseError::TransactionAbortable,
    }
}
