//! EndTxn: commits or aborts the producer's transaction at its coordinator. Answered once the
//! outcome is stored and, normally, every partition has its marker (at most a few seconds
//! later; the markers are written whatever happens to the client). From v5 (transactions
//! version 2) every end bumps the producer's epoch, and the answer names it. A principal without
//! WRITE on the transactional id is refused, as in Kafka.

use kafka_protocol::messages::{EndTxnRequest, EndTxnResponse, ProducerId};
use kafka_protocol::ResponseError;

use super::{transactions, RequestContext};
use crate::security::acl::Operation;
use crate::txn::{TxnCall, TxnVersion};

/// EndTxn v5: transactions version 2.
const TXN_V2_VERSION: i16 = 5;

/// v2+ may answer PRODUCER_FENCED.
const PRODUCER_FENCED_VERSION: i16 = 2;

pub async fn handle(context: &RequestContext<'_>, request: EndTxnRequest) -> EndTxnResponse {
    let response = EndTxnResponse::default()
        .with_producer_id(ProducerId(-1))
        .with_producer_epoch(-1);
    if !context.transactional_id_authorized(Operation::Write, &request.transactional_id) {
        return response.with_error_code(ResponseError::TransactionalIdAuthorizationFailed.code());
    }
    // v5 is what clients of transactions version 2 send: the end bumps the epoch, and the
    // answer carries the producer id and epoch to use next.
    let version = match context.version >= TXN_V2_VERSION {
        true => TxnVersion::V2,
        false => TxnVersion::V1,
    };
    let answer = transactions::ask(context, |reply| TxnCall::EndTxn {
        transactional_id: request.transactional_id.to_string(),
        producer_id: request.producer_id.0,
        producer_epoch: request.producer_epoch,
        commit: request.committed,
        version,
        reply,
    })
    .await
    .unwrap_or_else(transactions::unavailable);
    match answer {
        Ok((producer_id, epoch)) => response
            .with_producer_id(ProducerId(producer_id))
            .with_producer_epoch(epoch),
        Err(error) => response.with_error_code(transactions::error_code(
            error,
            context.version,
            PRODUCER_FENCED_VERSION,
        )),
    }
}
