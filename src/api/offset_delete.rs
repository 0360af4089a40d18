//! OffsetDelete: removes committed offsets of topics the group no longer consumes. As in Kafka,
//! a principal without DELETE on the group is refused as a whole (GROUP_AUTHORIZATION_FAILED),
//! and the partitions of a topic it may not READ are TOPIC_AUTHORIZATION_FAILED, kept from the
//! coordinator.

use kafka_protocol::messages::offset_delete_response::{
    OffsetDeleteResponsePartition, OffsetDeleteResponseTopic,
};
use kafka_protocol::messages::{OffsetDeleteRequest, OffsetDeleteResponse};
use kafka_protocol::ResponseError;

use super::groups::{call, error_code};
use super::RequestContext;
use crate::group::{ErrorCode, GroupCall};
use crate::security::acl::Operation;

pub async fn handle(
    context: &RequestContext<'_>,
    request: OffsetDeleteRequest,
) -> OffsetDeleteResponse {
    if !context.group_authorized(Operation::Delete, &request.group_id) {
        return OffsetDeleteResponse::default()
            .with_error_code(ResponseError::GroupAuthorizationFailed.code());
    }
    // Whether the principal may READ each requested topic, in request order.
    let readable: Vec<bool> = request
        .topics
        .iter()
        .map(|topic| context.topic_authorized(Operation::Read, &topic.name))
        .collect();
    let partitions: Vec<(String, i32)> = request
        .topics
        .iter()
        .zip(&readable)
        .filter(|(_, readable)| **readable)
        .flat_map(|(topic, _)| {
            topic
                .partitions
                .iter()
                .map(|partition| (topic.name.to_string(), partition.partition_index))
        })
        .collect();
    let group_id = request.group_id.to_string();
    let outcome = match group_id.is_empty() {
        true => Err(ErrorCode::InvalidGroupId),
        false => call(context, |reply| GroupCall::DeleteOffsets {
            group_id,
            partitions,
            reply,
        })
        .await
        .unwrap_or(Err(ErrorCode::CoordinatorNotAvailable)),
    };
    let mut codes = match outcome {
        Ok(codes) => codes.into_iter(),
        Err(code) => return OffsetDeleteResponse::default().with_error_code(error_code(code)),
    };
    let topics = request
        .topics
        .iter()
        .zip(readable)
        .map(|(topic, readable)| {
            let partitions = topic
                .partitions
                .iter()
                .map(|partition| {
                    let code = match readable {
                        true => error_code(codes.next().unwrap_or(ErrorCode::None)),
                        false => ResponseError::TopicAuthorizationFailed.code(),
                    };
                    OffsetDeleteResponsePartition::default()
                        .with_partition_index(partition.partition_index)
                        .with_error_code(code)
                })
                .collect();
            OffsetDeleteResponseTopic::default()
                .with_name(topic.name.clone())
                .with_partitions(partitions)
        })
        .collect();
    OffsetDeleteResponse::default().with_topics(topics)
}
