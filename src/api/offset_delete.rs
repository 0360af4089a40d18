//! OffsetDelete: removes committed offsets of topics the group no longer consumes.

use kafka_protocol::messages::offset_delete_response::{
    OffsetDeleteResponsePartition, OffsetDeleteResponseTopic,
};
use kafka_protocol::messages::{OffsetDeleteRequest, OffsetDeleteResponse};

use super::groups::{call, error_code};
use super::RequestContext;
use crate::group::{ErrorCode, GroupCall};

pub async fn handle(
    context: &RequestContext<'_>,
    request: OffsetDeleteRequest,
) -> OffsetDeleteResponse {
    let partitions: Vec<(String, i32)> = request
        .topics
        .iter()
        .flat_map(|topic| {
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
        .map(|topic| {
            let partitions = topic
                .partitions
                .iter()
                .map(|partition| {
                    let code = codes.next().unwrap_or(ErrorCode::None);
                    OffsetDeleteResponsePartition::default()
                        .with_partition_index(partition.partition_index)
                        .with_error_code(error_code(code))
                })
                .collect();
            OffsetDeleteResponseTopic::default()
                .with_name(topic.name.clone())
                .with_partitions(partitions)
        })
        .collect();
    OffsetDeleteResponse::default().with_topics(topics)
}
