//! ConsumerGroupHeartbeat (KIP-848): joins, leaves and keeps alive a member of a consumer group
//! whose assignment the broker computes; the answer carries the member's epoch and, when it
//! changed, its assignment (topics by id). Kafka's checks come first: READ on the group
//! (GROUP_AUTHORIZATION_FAILED), then DESCRIBE on every subscribed topic name
//! (TOPIC_AUTHORIZATION_FAILED, naming the topics refused).

use std::collections::BTreeSet;

use kafka_protocol::messages::consumer_group_heartbeat_response::{Assignment, TopicPartitions};
use kafka_protocol::messages::{ConsumerGroupHeartbeatRequest, ConsumerGroupHeartbeatResponse};
use kafka_protocol::ResponseError;

use super::groups::{call, error_code};
use super::{str_bytes, RequestContext};
use crate::group::consumer::{Heartbeat, HeartbeatOutcome, TopicPartition};
use crate::group::{ErrorCode, GroupCall};
use crate::metadata::{MetadataImage, TopicId};
use crate::security::acl::Operation;

pub async fn handle(
    context: &RequestContext<'_>,
    request: ConsumerGroupHeartbeatRequest,
) -> ConsumerGroupHeartbeatResponse {
    if let Some(refusal) = refusal(context, &request) {
        return refusal;
    }
    let image = context.shard.metadata();
    if request.group_id.is_empty() {
        return response(
            context,
            &image,
            HeartbeatOutcome {
                error: ErrorCode::InvalidGroupId,
                member_id: String::new(),
                member_epoch: -1,
                assignment: None,
            },
        );
    }
    if let Some(regex) = request
        .subscribed_topic_regex
        .as_ref()
        .filter(|regex| !regex.is_empty())
    {
        tracing::warn!(
            "refusing ConsumerGroupHeartbeat with subscribed_topic_regex '{}'",
            regex.as_str()
        );
        let response = ConsumerGroupHeartbeatResponse::default()
            .with_error_code(ResponseError::InvalidRequest.code())
            .with_error_message(Some(str_bytes(
                "subscribed_topic_regex is not supported yet; subscribe by topic names",
            )));
        return response;
    }
    let owned: Option<BTreeSet<TopicPartition>> = request.topic_partitions.as_ref().map(|topics| {
        topics
            .iter()
            .filter_map(|topic| {
                Some((
                    image
                        .topic_by_id(TopicId(*topic.topic_id.as_bytes()))?
                        .name
                        .clone(),
                    &topic.partitions,
                ))
            })
            .flat_map(|(name, partitions)| {
                partitions.iter().map(move |index| (name.clone(), *index))
            })
            .collect()
    });
    let heartbeat = Heartbeat {
        member_id: request.member_id.to_string(),
        member_epoch: request.member_epoch,
        instance_id: request.instance_id.as_ref().map(|id| id.to_string()),
        client_id: context.client_id.clone(),
        client_host: context.connection.client_host.clone(),
        // -1: unchanged since the last heartbeat (Kafka's clients send it after the first).
        rebalance_timeout: u64::try_from(request.rebalance_timeout_ms)
            .ok()
            .map(std::time::Duration::from_millis),
        subscribed_topics: request
            .subscribed_topic_names
            .as_ref()
            .map(|names| names.iter().map(|name| name.to_string()).collect()),
        server_assignor: request
            .server_assignor
            .as_ref()
            .map(|name| name.to_string()),
        owned,
    };
    let member_id = heartbeat.member_id.clone();
    let (group_id, partition_counts) = (
        request.group_id.to_string(),
        context.shard.partition_counts(),
    );
    let outcome = call(context, |reply| GroupCall::ConsumerHeartbeat {
        group_id,
        heartbeat,
        partition_counts,
        reply,
    })
    .await
    .unwrap_or(HeartbeatOutcome {
        error: ErrorCode::CoordinatorNotAvailable,
        member_id,
        member_epoch: -1,
        assignment: None,
    });
    response(context, &image, outcome)
}

/// Kafka's authorization refusal of the heartbeat, if any: no READ on the group, or no
/// DESCRIBE on some subscribed topic (a member must not learn of topics it may not see).
fn refusal(
    context: &RequestContext<'_>,
    request: &ConsumerGroupHeartbeatRequest,
) -> Option<ConsumerGroupHeartbeatResponse> {
    if !context.group_authorized(Operation::Read, &request.group_id) {
        return Some(
            ConsumerGroupHeartbeatResponse::default()
                .with_error_code(ResponseError::GroupAuthorizationFailed.code()),
        );
    }
    let subscribed = request
        .subscribed_topic_names
        .as_deref()
        .unwrap_or_default();
    let mut refused: Vec<&str> = subscribed
        .iter()
        .map(|name| name.as_str())
        .filter(|name| !context.topic_authorized(Operation::Describe, name))
        .collect();
    if refused.is_empty() {
        return None;
    }
    refused.sort_unstable();
    refused.dedup();
    let message = format!("Not authorized to access topics: [{}]", refused.join(", "));
    Some(
        ConsumerGroupHeartbeatResponse::default()
            .with_error_code(ResponseError::TopicAuthorizationFailed.code())
            .with_error_message(Some(str_bytes(&message))),
    )
}

fn response(
    context: &RequestContext<'_>,
    image: &MetadataImage,
    outcome: HeartbeatOutcome,
) -> ConsumerGroupHeartbeatResponse {
    let response = ConsumerGroupHeartbeatResponse::default()
        .with_error_code(error_code(outcome.error))
        .with_member_id(Some(str_bytes(&outcome.member_id)))
        .with_member_epoch(outcome.member_epoch)
        .with_heartbeat_interval_ms(
            i32::try_from(context.shard.config.group_consumer_heartbeat_interval_ms)
                .unwrap_or(i32::MAX),
        );
    match (outcome.error, outcome.assignment) {
        (ErrorCode::None, Some(assignment)) => response.with_assignment(Some(
            Assignment::default().with_topic_partitions(by_topic_id(image, &assignment)),
        )),
        _ => response,
    }
}

fn by_topic_id(
    image: &MetadataImage,
    assignment: &BTreeSet<TopicPartition>,
) -> Vec<TopicPartitions> {
    let mut topics: Vec<TopicPartitions> = Vec::new();
    for (name, index) in assignment {
        let Some(topic) = image.topic(name) else {
            continue;
        };
        let id = uuid::Uuid::from_bytes(topic.id.0);
        match topics.iter_mut().find(|entry| entry.topic_id == id) {
            Some(entry) => entry.partitions.push(*index),
            None => topics.push(
                TopicPartitions::default()
                    .with_topic_id(id)
                    .with_partitions(vec![*index]),
            ),
        }
    }
    topics
}
