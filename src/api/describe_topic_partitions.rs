//! DescribeTopicPartitions (KIP-966): topics and their partitions in name order, at most
//! `response_partition_limit` partitions per response, with a cursor to continue from.

use crate::security::acl::Operation;
use kafka_protocol::messages::describe_topic_partitions_response::{
    Cursor, DescribeTopicPartitionsResponsePartition, DescribeTopicPartitionsResponseTopic,
};
use kafka_protocol::messages::{
    BrokerId, DescribeTopicPartitionsRequest, DescribeTopicPartitionsResponse,
};
use kafka_protocol::ResponseError;

use super::{str_bytes, RequestContext};
use crate::metadata::{MetadataImage, TopicImage};

/// Kafka's `max.request.partition.size.limit`: the most partitions one response carries.
const PARTITIONS_PER_RESPONSE_MAX: usize = 2000;

pub async fn handle(
    context: &RequestContext<'_>,
    request: DescribeTopicPartitionsRequest,
) -> DescribeTopicPartitionsResponse {
    let image = context.shard.metadata();
    // Kafka's check: DESCRIBE on each topic; unauthorized topics are left out of "every
    // topic" and refused by name.
    let describable = |name: &str| context.topic_authorized(Operation::Describe, name);
    let mut names: Vec<String> = match request.topics.is_empty() {
        true => image
            .topics
            .keys()
            .filter(|name| describable(name))
            .cloned()
            .collect(),
        false => request
            .topics
            .iter()
            .map(|topic| topic.name.to_string())
            .collect(),
    };
    names.sort_unstable();
    names.dedup();
    let (cursor_topic, cursor_partition) = match &request.cursor {
        Some(cursor) => (
            cursor.topic_name.to_string(),
            cursor.partition_index.max(0) as usize,
        ),
        None => (String::new(), 0),
    };
    let mut budget = match request.response_partition_limit {
        limit if limit > 0 => (limit as usize).min(PARTITIONS_PER_RESPONSE_MAX),
        _ => PARTITIONS_PER_RESPONSE_MAX,
    };
    let mut topics = Vec::new();
    let mut next_cursor = None;
    for name in names.iter().filter(|name| **name >= cursor_topic) {
        if !describable(name) {
            topics.push(
                DescribeTopicPartitionsResponseTopic::default()
                    .with_error_code(ResponseError::TopicAuthorizationFailed.code())
                    .with_name(Some(str_bytes(name).into())),
            );
            continue;
        }
        let Some(topic) = image.topic(name) else {
            topics.push(
                DescribeTopicPartitionsResponseTopic::default()
                    .with_error_code(ResponseError::UnknownTopicOrPartition.code())
                    .with_name(Some(str_bytes(name).into())),
            );
            continue;
        };
        let first = if *name == cursor_topic {
            cursor_partition
        } else {
            0
        };
        if budget == 0 {
            next_cursor = Some((name.clone(), first));
            break;
        }
        let end = topic.partitions.len().min(first + budget);
        budget -= end.saturating_sub(first);
        topics.push(topic_response(&image, topic, first, end));
        if end < topic.partitions.len() {
            next_cursor = Some((name.clone(), end));
            break;
        }
    }
    DescribeTopicPartitionsResponse::default()
        .with_topics(topics)
        .with_next_cursor(next_cursor.map(|(topic, partition)| {
            Cursor::default()
                .with_topic_name(str_bytes(&topic).into())
                .with_partition_index(partition as i32)
        }))
}

fn topic_response(
    image: &MetadataImage,
    topic: &TopicImage,
    first: usize,
    end: usize,
) -> DescribeTopicPartitionsResponseTopic {
    let partitions = topic.partitions[first.min(end)..end]
        .iter()
        .map(|partition| {
            DescribeTopicPartitionsResponsePartition::default()
                .with_partition_index(partition.index)
                .with_leader_id(BrokerId(partition.leader))
                .with_leader_epoch(partition.leader_epoch)
                .with_replica_nodes(partition.replicas.iter().copied().map(BrokerId).collect())
                .with_isr_nodes(partition.isr.iter().copied().map(BrokerId).collect())
                .with_eligible_leader_replicas(Some(Vec::new()))
                .with_last_known_elr(Some(Vec::new()))
                .with_offline_replicas(super::broker_ids(
                    image.offline_replicas_of(topic.id, partition),
                ))
        })
        .collect();
    DescribeTopicPartitionsResponseTopic::default()
        .with_name(Some(str_bytes(&topic.name).into()))
        .with_topic_id(uuid::Uuid::from_bytes(topic.id.0))
        .with_is_internal(topic.is_internal())
        .with_partitions(partitions)
}
