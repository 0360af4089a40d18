//! ListOffsets: earliest (-2), latest (-1; the last stable offset for READ_COMMITTED), max timestamp (-3, v7+) and by timestamp, answered by
//! each partition's shard.

use std::sync::Arc;

use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use kafka_protocol::messages::{ListOffsetsRequest, ListOffsetsResponse};

use super::authorize::scatter_authorized;
use super::RequestContext;
use crate::partition::PartitionError;
use crate::runtime::mesh::{ListOffsetsPart, OffsetQuery, ShardRequest};
use crate::security::acl::Operation;

const LATEST_TIMESTAMP: i64 = -1;
const EARLIEST_TIMESTAMP: i64 = -2;
/// ListOffsets v7+ (KIP-734): the record with the largest timestamp.
const MAX_TIMESTAMP: i64 = -3;
/// ListOffsets v8+ (KIP-405): the first offset on local disk; with no tiered storage, the log
/// start.
const EARLIEST_LOCAL_TIMESTAMP: i64 = -4;
/// ListOffsets v9+ (KIP-1005): the last offset in tiered storage; with none, -1 as Kafka
/// answers when remote storage is off.
const LATEST_TIERED_TIMESTAMP: i64 = -5;

pub async fn handle(
    context: &RequestContext<'_>,
    request: ListOffsetsRequest,
) -> ListOffsetsResponse {
    let requested = request
        .topics
        .iter()
        .flat_map(|topic| {
            let name: Arc<str> = Arc::from(topic.name.as_str());
            topic.partitions.iter().map(move |partition| {
                let query = match partition.timestamp {
                    LATEST_TIMESTAMP if request.isolation_level == 1 => OffsetQuery::LastStable,
                    LATEST_TIMESTAMP => OffsetQuery::Latest,
                    EARLIEST_TIMESTAMP => OffsetQuery::Earliest,
                    MAX_TIMESTAMP if context.version >= 7 => OffsetQuery::MaxTimestamp,
                    EARLIEST_LOCAL_TIMESTAMP if context.version >= 8 => OffsetQuery::Earliest,
                    LATEST_TIERED_TIMESTAMP if context.version >= 9 => OffsetQuery::LatestTiered,
                    timestamp => OffsetQuery::Timestamp(timestamp),
                };
                let part = ListOffsetsPart {
                    topic: name.clone(),
                    partition: partition.partition_index,
                    query,
                };
                (topic.name.as_str(), partition.partition_index, part)
            })
        })
        .collect();
    // Kafka's check: DESCRIBE on each topic.
    let answers = scatter_authorized(context, Operation::Describe, requested, |parts, reply| {
        ShardRequest::ListOffsets { parts, reply }
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
                    let answer = answers.next().expect("an answer per partition");
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
