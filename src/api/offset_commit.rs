//! OffsetCommit: stores committed offsets through the group's coordinator (durably, in
//! `__consumer_offsets`) once the member and generation check out. As in Kafka, a principal
//! without READ on the group gets GROUP_AUTHORIZATION_FAILED for every partition, and one
//! without READ on a topic TOPIC_AUTHORIZATION_FAILED for that topic's partitions.

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
use crate::security::acl::Operation;

/// Kafka's `offset.metadata.max.bytes` default.
const OFFSET_METADATA_BYTES_MAX: usize = 4096;

/// One partition's offset as a commit request carries it.
pub struct RequestedOffset {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub leader_epoch: i32,
    pub metadata: Option<String>,
}

/// Each requested partition: the offset to store, or the error code it gets without being
/// stored (a topic the principal may not READ, an unknown partition, metadata over
/// `offset.metadata.max.bytes`, in Kafka's order).
pub fn check_offsets(
    context: &RequestContext<'_>,
    requested: Vec<RequestedOffset>,
) -> Vec<Result<(String, i32, CommittedOffset), i16>> {
    let image = context.shard.metadata();
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_millis() as i64);
    // The partitions of a topic come together: one decision per run of them, and none at all
    // without an authorizer.
    let authorizes = context.authorizes();
    let mut readable: Option<(String, bool)> = None;
    requested
        .into_iter()
        .map(|requested| {
            let allowed = match &readable {
                _ if !authorizes => true,
                Some((topic, allowed)) if *topic == requested.topic => *allowed,
                _ => {
                    let allowed = context.topic_authorized(Operation::Read, &requested.topic);
                    readable = Some((requested.topic.clone(), allowed));
                    allowed
                }
            };
            if !allowed {
                return Err(ResponseError::TopicAuthorizationFailed.code());
            }
            let metadata = requested.metadata.unwrap_or_default();
            let exists = image.topic(&requested.topic).is_some_and(|known| {
                (0..known.partitions.len() as i32).contains(&requested.partition)
            });
            match (exists, metadata.len() > OFFSET_METADATA_BYTES_MAX) {
                (false, _) => Err(ResponseError::UnknownTopicOrPartition.code()),
                (true, true) => Err(ResponseError::OffsetMetadataTooLarge.code()),
                (true, false) => Ok((
                    requested.topic,
                    requested.partition,
                    CommittedOffset {
                        offset: requested.offset,
                        leader_epoch: requested.leader_epoch,
                        metadata,
                        commit_timestamp: now,
                    },
                )),
            }
        })
        .collect()
}

pub async fn handle(
    context: &RequestContext<'_>,
    request: OffsetCommitRequest,
) -> OffsetCommitResponse {
    if !context.group_authorized(Operation::Read, &request.group_id) {
        let refused = ResponseError::GroupAuthorizationFailed.code();
        return response(&request, std::iter::repeat(refused));
    }
    let requested = request
        .topics
        .iter()
        .flat_map(|topic| {
            topic.partitions.iter().map(|partition| RequestedOffset {
                topic: topic.name.to_string(),
                partition: partition.partition_index,
                offset: partition.committed_offset,
                leader_epoch: partition.committed_leader_epoch,
                metadata: partition
                    .committed_metadata
                    .as_ref()
                    .map(|text| text.to_string()),
            })
        })
        .collect();
    let (group_id, member_id) = (request.group_id.to_string(), request.member_id.to_string());
    let generation = request.generation_id_or_member_epoch;
    let codes = commit_codes(
        context,
        &request.group_id,
        requested,
        |offsets| async move {
            let code = call(context, |reply| GroupCall::Commit {
                group_id,
                member_id,
                generation,
                offsets,
                reply,
            })
            .await
            .unwrap_or(ErrorCode::CoordinatorNotAvailable);
            error_code(code)
        },
    )
    .await;
    response(&request, codes.into_iter())
}

/// The answer: each requested partition with the next of `codes`.
fn response(
    request: &OffsetCommitRequest,
    mut codes: impl Iterator<Item = i16>,
) -> OffsetCommitResponse {
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

/// Each requested partition's error code: its own refusal (`check_offsets`), or else what
/// `store` answers for all the partitions that passed (INVALID_GROUP_ID for an empty group id;
/// nothing is stored when no partition passed).
pub async fn commit_codes<F: std::future::Future<Output = i16>>(
    context: &RequestContext<'_>,
    group_id: &str,
    requested: Vec<RequestedOffset>,
    store: impl FnOnce(Vec<(String, i32, CommittedOffset)>) -> F,
) -> Vec<i16> {
    let checked = check_offsets(context, requested);
    let offsets: Vec<_> = checked
        .iter()
        .filter_map(|entry| entry.as_ref().ok().cloned())
        .collect();
    let group_code = if group_id.is_empty() {
        error_code(ErrorCode::InvalidGroupId)
    } else if offsets.is_empty() {
        0
    } else {
        store(offsets).await
    };
    checked
        .into_iter()
        .map(|entry| match entry {
            Ok(_) => group_code,
            Err(code) => code,
        })
        .collect()
}
