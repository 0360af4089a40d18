//! ListTransactions: the transactional ids this broker coordinates, from every shard, filtered
//! by state, producer id, (v1+, KIP-994) how long their transaction has been open and (v2,
//! KIP-1152) a regular expression the whole id must match, as `kafka-transactions.sh list`
//! shows them. An unknown state name is returned in `unknown_state_filters`; a pattern that is
//! not a valid regular expression gets INVALID_REGULAR_EXPRESSION. Only the ids the principal
//! may DESCRIBE are listed, as in Kafka.

use kafka_protocol::messages::list_transactions_response::TransactionState;
use kafka_protocol::messages::{
    ListTransactionsRequest, ListTransactionsResponse, ProducerId, TransactionalId,
};

use super::{str_bytes, RequestContext};
use crate::security::acl::Operation;
use crate::storage::now_ms;
use crate::txn::TxnState;

const STATES: [TxnState; 8] = [
    TxnState::Empty,
    TxnState::Ongoing,
    TxnState::PrepareCommit,
    TxnState::PrepareAbort,
    TxnState::CompleteCommit,
    TxnState::CompleteAbort,
    TxnState::Dead,
    TxnState::PrepareEpochFence,
];

pub async fn handle(
    context: &RequestContext<'_>,
    request: ListTransactionsRequest,
) -> ListTransactionsResponse {
    let pattern = match request.transactional_id_pattern.as_deref() {
        None | Some("") => None,
        Some(pattern) => match regex::Regex::new(&format!("^(?:{pattern})$")) {
            Ok(pattern) => Some(pattern),
            Err(_) => {
                return ListTransactionsResponse::default().with_error_code(
                    kafka_protocol::ResponseError::InvalidRegularExpression.code(),
                )
            }
        },
    };
    let known_state = |name: &str| STATES.iter().any(|state| state.name() == name);
    let unknown: Vec<_> = request
        .state_filters
        .iter()
        .filter(|name| !known_state(name))
        .cloned()
        .collect();
    let now = now_ms();
    let mut listed: Vec<_> = context
        .shard
        .list_transactions()
        .await
        .into_iter()
        .filter(|txn| {
            request.state_filters.is_empty()
                || request
                    .state_filters
                    .iter()
                    .any(|name| **name == *txn.state.name())
        })
        .filter(|txn| {
            request.producer_id_filters.is_empty()
                || request
                    .producer_id_filters
                    .iter()
                    .any(|id| id.0 == txn.producer_id)
        })
        .filter(|txn| {
            request.duration_filter < 0
                || (txn.start_ms >= 0 && now - txn.start_ms >= request.duration_filter)
        })
        .filter(|txn| {
            pattern
                .as_ref()
                .is_none_or(|pattern| pattern.is_match(&txn.transactional_id))
        })
        .filter(|txn| {
            context.transactional_id_authorized(Operation::Describe, &txn.transactional_id)
        })
        .collect();
    listed.sort_by(|a, b| a.transactional_id.cmp(&b.transactional_id));
    let states = listed
        .into_iter()
        .map(|txn| {
            TransactionState::default()
                .with_transactional_id(TransactionalId(str_bytes(&txn.transactional_id)))
                .with_producer_id(ProducerId(txn.producer_id))
                .with_transaction_state(str_bytes(txn.state.name()))
        })
        .collect();
    ListTransactionsResponse::default()
        .with_unknown_state_filters(unknown)
        .with_transaction_states(states)
}
