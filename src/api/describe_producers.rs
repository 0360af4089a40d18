//! DescribeProducers: the idempotent and transactional producers each replica of a partition
//! hosted here knows (leader or follower, as Kafka answers), with the first offset of a producer's open transaction (what
//! `kafka-transactions.sh describe-producers` and `find-hanging` read). The partitions of a
//! topic the principal may not READ are TOPIC_AUTHORIZATION_FAILED, as in Kafka.

use std::sync::Arc;

use kafka_protocol::messages::describe_producers_response::{
    PartitionResponse, ProducerState, TopicResponse,
};
use kafka_protocol::messages::{DescribeProducersRequest, DescribeProducersResponse, ProducerId};
use kafka_protocol::ResponseError;

use super::{str_bytes, RequestContext};
use crate::runtime::mesh::ShardRequest;
use crate::security::acl::Operation;

/// The message of Kafka's refusal (`ApiError` of TOPIC_AUTHORIZATION_FAILED).
const TOPIC_REFUSED_MESSAGE: &str = "Topic authorization failed.";

pub async fn handle(
    context: &RequestContext<'_>,
    request: DescribeProducersRequest,
) -> DescribeProducersResponse {
    // Whether the principal may READ each requested topic, in request order.
    let readable: Vec<bool> = request
        .topics
        .iter()
        .map(|topic| context.topic_authorized(Operation::Read, &topic.name))
        .collect();
    let requested = request
        .topics
        .iter()
        .zip(&readable)
        .filter(|(_, readable)| **readable)
        .flat_map(|(topic, _)| {
            let name: Arc<str> = Arc::from(topic.name.as_str());
            topic
                .partition_indexes
                .iter()
                .map(move |index| (name.clone(), *index, (name.clone(), *index)))
        })
        .collect();
    let mut answers = context
        .shard
        .scatter_hosted(requested, |parts, reply| ShardRequest::DescribeProducers {
            parts,
            reply,
        })
        .await
        .into_iter();
    let topics = request
        .topics
        .iter()
        .zip(readable)
        .map(|(topic, readable)| {
            let partitions = topic
                .partition_indexes
                .iter()
                .map(|index| {
                    let response = PartitionResponse::default().with_partition_index(*index);
                    if !readable {
                        return response
                            .with_error_code(ResponseError::TopicAuthorizationFailed.code())
                            .with_error_message(Some(str_bytes(TOPIC_REFUSED_MESSAGE)));
                    }
                    match answers.next().expect("an answer per partition") {
                        Ok(producers) => response.with_active_producers(
                            producers
                                .into_iter()
                                .map(
                                    |(id, epoch, sequence, timestamp, coordinator_epoch, first)| {
                                        ProducerState::default()
                                            .with_producer_id(ProducerId(id))
                                            .with_producer_epoch(i32::from(epoch))
                                            .with_last_sequence(sequence)
                                            .with_last_timestamp(timestamp)
                                            .with_coordinator_epoch(coordinator_epoch)
                                            .with_current_txn_start_offset(first)
                                    },
                                )
                                .collect(),
                        ),
                        Err(error) => response
                            .with_error_code(super::produce::partition_error_code(&error))
                            .with_error_message(Some(str_bytes(&error.to_string()))),
                    }
                })
                .collect();
            TopicResponse::default()
                .with_name(topic.name.clone())
                .with_partitions(partitions)
        })
        .collect();
    DescribeProducersResponse::default().with_topics(topics)
}
