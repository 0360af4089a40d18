//! ListOffsets: earliest (-2), latest (-1) and by timestamp, answered by each partition's shard.

use std::sync::Arc;

use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use kafka_protocol::messages::{ListOffsetsRequest, ListOffsetsResponse};

use super::RequestContext;
use crate::partition::PartitionError;
use crate::runtime::mesh::{ListOffsetsPart, OffsetQuery, ShardRequest};

const LATEST_TIMESTAMP: i64 = -1;
const EARLIEST_TIMESTAMP: i64 = -2;

pub async fn handle(
    context: &RequestContext<'_>,
    request: ListOffsetsRequest,
) -> ListOffsetsResponse {
    let image = context.shard.metadata();
    let mut parts = Vec::new();
    let mut slots = Vec::new();
    for topic in &request.topics {
        let known = image.topic(topic.name.as_str());
        for partition in &topic.partitions {
            let hosted = known.filter(|known| {
                (0..known.partitions.len() as i32).contains(&partition.partition_index)
            });
            let Some(hosted) = hosted else {
                slots.push(false);
                continue;
            };
            let query = match partition.timestamp {
                LATEST_TIMESTAMP => OffsetQuery::Latest,
                EARLIEST_TIMESTAMP => OffsetQuery::Earliest,
                timestamp => OffsetQuery::Timestamp(timestamp),
            };
            let shard = context.shard.owner_of(hosted, partition.partition_index);
            let topic_name: Arc<str> = Arc::from(topic.name.as_str());
            parts.push((
                shard,
                ListOffsetsPart {
                    topic: topic_name,
                    partition: partition.partition_index,
                    query,
                },
            ));
            slots.push(true);
        }
    }
    let mut answers = context
        .shard
        .scatter(parts, |parts, reply| ShardRequest::ListOffsets {
            parts,
            reply,
        })
        .await
        .into_iter();
    let mut slots = slots.into_iter();
    let topics = request
        .topics
        .iter()
        .map(|topic| {
            let partitions = topic
                .partitions
                .iter()
                .map(|partition| {
                    let answer = match slots.next() {
                        Some(true) => answers.next().expect("an answer per hosted part"),
                        _ => Err(PartitionError::NotHosted(String::new())),
                    };
                    partition_response(context.version, partition.partition_index, answer)
                })
                .collect();
            ListOffsetsTopicResponse::default()
                .with_name(topic.name.clone())
                .with_partitions(partitions)
        })
        .collect();
    ListOffsetsResponse::default().with_topics(topics)
}

fn partition_response(
    version: i16,
    index: i32,
    answer: Result<(i64, i64), PartitionError>,
) -> ListOffsetsPartitionResponse {
    let response = ListOffsetsPartitionResponse::default().with_partition_index(index);
    match answer {
        Ok((offset, timestamp)) => response
            .with_offset(offset)
            .with_timestamp(timestamp)
            // Leader epochs are in the response from v4 on.
            .with_leader_epoch(if version >= 4 && offset >= 0 { 0 } else { -1 }),
        Err(error) => response.with_error_code(super::produce::partition_error_code(&error)),
    }
}
