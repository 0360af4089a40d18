//! DescribeTransactions: each transactional id's state at its coordinator (this broker must
//! be it: NOT_COORDINATOR otherwise, as Kafka answers), as `kafka-transactions.sh describe`
//! shows it. As in Kafka, an id the principal may not DESCRIBE is
//! TRANSACTIONAL_ID_AUTHORIZATION_FAILED, and a transaction shows only the topics it may
//! DESCRIBE.

use std::collections::BTreeMap;

use kafka_protocol::messages::describe_transactions_response::{TopicData, TransactionState};
use kafka_protocol::messages::{
    DescribeTransactionsRequest, DescribeTransactionsResponse, ProducerId, TopicName,
};
use kafka_protocol::ResponseError;

use super::{str_bytes, transactions, RequestContext};
use crate::security::acl::Operation;
use crate::txn::TxnCall;

pub async fn handle(
    context: &RequestContext<'_>,
    request: DescribeTransactionsRequest,
) -> DescribeTransactionsResponse {
    let mut states = Vec::with_capacity(request.transactional_ids.len());
    for id in &request.transactional_ids {
        if !context.transactional_id_authorized(Operation::Describe, id) {
            states.push(
                TransactionState::default()
                    .with_transactional_id(id.clone())
                    .with_error_code(ResponseError::TransactionalIdAuthorizationFailed.code()),
            );
            continue;
        }
        let answer = transactions::ask(context, |reply| TxnCall::Describe {
            transactional_id: id.to_string(),
            reply,
        })
        .await
        .unwrap_or_else(transactions::unavailable);
        let state = TransactionState::default().with_transactional_id(id.clone());
        states.push(match answer {
            Ok(txn) => {
                let mut by_topic: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
                for (topic, partition) in &txn.partitions {
                    by_topic.entry(topic).or_default().push(*partition);
                }
                let topics = by_topic
                    .into_iter()
                    .filter(|(topic, _)| context.topic_authorized(Operation::Describe, topic))
                    .map(|(topic, partitions)| {
                        TopicData::default()
                            .with_topic(TopicName(str_bytes(topic)))
                            .with_partitions(partitions)
                    })
                    .collect();
                state
                    .with_transaction_state(str_bytes(txn.state.name()))
                    .with_transaction_timeout_ms(txn.timeout_ms)
                    .with_transaction_start_time_ms(txn.start_ms)
                    .with_producer_id(ProducerId(txn.producer_id))
                    .with_producer_epoch(txn.producer_epoch)
                    .with_topics(topics)
            }
            Err(error) => state
                .with_error_code(transactions::error_code(error, 0, 0))
                .with_producer_id(ProducerId(-1))
                .with_producer_epoch(-1),
        });
    }
    DescribeTransactionsResponse::default().with_transaction_states(states)
}
