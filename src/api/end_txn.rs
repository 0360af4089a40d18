//! EndTxn: commits or aborts the producer's transaction at its coordinator. Answered once the
//! outcome is stored and, normally, every partition has its marker (at most a few seconds
//! later; the markers are written whatever happens to the client).

use kafka_protocol::messages::{EndTxnRequest, EndTxnResponse};

use super::{transactions, RequestContext};
use crate::txn::TxnCall;

/// v2+ may answer PRODUCER_FENCED.
const PRODUCER_FENCED_VERSION: i16 = 2;

pub async fn handle(context: &RequestContext<'_>, request: EndTxnRequest) -> EndTxnResponse {
    let answer = transactions::ask(context, |reply| TxnCall::EndTxn {
        transactional_id: request.transactional_id.to_string(),
        producer_id: request.producer_id.0,
        producer_epoch: request.producer_epoch,
        commit: request.committed,
        reply,
    })
    .await
    .unwrap_or_else(transactions::unavailable);
    // v5 answers the producer id and epoch to use next (transactions version 2); in version 1
    // they stay as they were.
    let response = EndTxnResponse::default()
        .with_producer_id(request.producer_id)
        .with_producer_epoch(request.producer_epoch);
    match answer {
        Ok(()) => response,
        Err(error) => response.with_error_code(transactions::error_code(
            error,
            context.version,
            PRODUCER_FENCED_VERSION,
        )),
    }
}
