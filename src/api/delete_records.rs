//! DeleteRecords (KIP-107): moves each partition's log start offset forward, deleting the
//! segments wholly below it; the records below it are no longer served. Offset -1 means the
//! high watermark. Answered per partition with the new low watermark (the log start offset).

use std::sync::Arc;

use kafka_protocol::messages::delete_records_response::{
    DeleteRecordsPartitionResult, DeleteRecordsTopicResult,
};
use kafka_protocol::messages::{DeleteRecordsRequest, DeleteRecordsResponse};

use super::authorize::scatter_authorized;
use super::RequestContext;
use crate::runtime::mesh::ShardRequest;
use crate::security::acl::Operation;

pub async fn handle(
    context: &RequestContext<'_>,
    request: DeleteRecordsRequest,
) -> DeleteRecordsResponse {
    let requested = request
        .topics
        .iter()
        .flat_map(|topic| {
            let name: Arc<str> = Arc::from(topic.name.as_str());
            topic.partitions.iter().map(move |partition| {
                let part = (name.clone(), partition.partition_index, partition.offset);
                (topic.name.as_str(), partition.partition_index, part)
            })
        })
        .collect();
    // Kafka's check: DELETE on each topic.
    let answers = scatter_authorized(context, Operation::Delete, requested, |parts, reply| {
        ShardRequest::DeleteRecords { parts, reply }
    })
    .await;
    let mut answers = answers.into_iter();
    let topics = request
        .topics
        .iter()
        .map(|topic| {
            let partitions = topic
                .partitions
                .iter()
                .map(|partition| {
                    let result = DeleteRecordsPartitionResult::default()
                        .with_partition_index(partition.partition_index);
                    match answers.next().expect("an answer per partition") {
                        Ok(low_watermark) => result.with_low_watermark(low_watermark),
                        Err(error) => result
                            .with_low_watermark(-1)
                            .with_error_code(super::produce::partition_error_code(&error)),
                    }
                })
                .collect();
            DeleteRecordsTopicResult::default()
                .with_name(topic.name.clone())
                .with_partitions(partitions)
        })
        .collect();
    DeleteRecordsResponse::default().with_topics(topics)
}
