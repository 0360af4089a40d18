//! OffsetCommit: stores committed offsets through the group's coordinator (durably, in
//! `__consumer_offsets`) once the member and generation check out.

use std::time::{SystemTime, UNIX_EPOCH};

use kafka_protocol::messages::offset_commit_response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use kafka_protocol::messages::{OffsetCommitRequest, OffsetCommitResponse};
use kafka_protocol::ResponseError;

use super::groups::{call, error_code};
use super::RequestContext;
use crate::group::classic::CommittedOffset;
use crate::group::{ErrorCode, GroupCall};

/// Kafka's `offset.metadata.max.bytes` default.
const OFFSET_METADATA_BYTES_MAX: usize = 4096;

pub async fn handle(
    context: &RequestContext<'_>,
    request: OffsetCommitRequest,
) -> OffsetCommitResponse {
    let image = context.shard.metadata();
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_millis() as i64);
    // Each partition: Ok(offset to store) or the error it gets without being stored.
    let mut checked = Vec::new();
    for topic in &request.topics {
        let known = image.topic(topic.name.as_str());
        for partition in &topic.partitions {
            let metadata = partition
                .committed_metadata
                .as_ref()
                .map(|text| text.to_string())
                .unwrap_or_default();
            let exists = known.is_some_and(|known| {
                (0..known.partitions.len() as i32).contains(&partition.partition_index)
            });
            checked.push(match (exists, metadata.len() > OFFSET_METADATA_BYTES_MAX) {
                (false, _) => Err(ResponseError::UnknownTopicOrPartition.code()),
                (true, true) => Err(ResponseError::OffsetMetadataTooLarge.code()),
                (true, false) => Ok((
                    topic.name.to_string(),
                    partition.partition_index,
                    CommittedOffset {
                        offset: partition.committed_offset,
                        leader_epoch: partition.committed_leader_epoch,
                        metadata,
                        commit_timestamp: now,
                    },
                )),
            });
        }
    }
    let offsets: Vec<_> = checked
        .iter()
        .filter_map(|entry| entry.as_ref().ok().cloned())
        .collect();
    let group_code = if request.group_id.is_empty() {
        ErrorCode::InvalidGroupId
    } else if offsets.is_empty() {
        ErrorCode::None
    } else {
        let (group_id, member_id) = (request.group_id.to_string(), request.member_id.to_string());
        let generation = request.generation_id_or_member_epoch;
        call(context, |reply| GroupCall::Commit {
            group_id,
            member_id,
            generation,
            offsets,
            reply,
        })
        .await
        .unwrap_or(ErrorCode::CoordinatorNotAvailable)
    };
    let mut codes = checked.into_iter().map(|entry| match entry {
        Ok(_) => error_code(group_code),
        Err(code) => code,
    });
    let topics = request
        .topics
        .iter()
        .map(|topic| {
            let partitions = topic
                .partitions
                .iter()
                .map(|partition| {
                    OffsetCommitResponsePartition::default()
                        .with_partition_index(partition.partition_index)
                        .with_error_code(codes.next().expect("a code per partition"))
                })
                .collect();
            OffsetCommitResponseTopic::default()
                .with_name(topic.name.clone())
                .with_partitions(partitions)
        })
        .collect();
    OffsetCommitResponse::default().with_topics(topics)
}
