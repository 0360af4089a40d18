//! Metadata: brokers (at the addresses advertised for the listener the client used), topics and
//! partition leaders. Unknown topics are created when `auto.create.topics.enable` and the client
//! allow it, as Kafka does.

use std::sync::Arc;

use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::{BrokerId, MetadataRequest, MetadataResponse};
use kafka_protocol::ResponseError;

use super::authorized_operations::{self, Resource};
use super::{str_bytes, topic_error_code, RequestContext};
use crate::controller::{ControllerRequest, NewTopic};
use crate::metadata::{MetadataImage, TopicId, TopicImage};
use crate::security::acl::Operation;

/// A topic the request named, by name or (v10+) by id.
enum Wanted {
    Name(String),
    Id(uuid::Uuid),
}

pub async fn handle(context: &RequestContext<'_>, request: MetadataRequest) -> MetadataResponse {
    let wanted = wanted_topics(context.version, &request);
    let allow_create = context.version < 4 || request.allow_auto_topic_creation;
    let mut image = context.shard.metadata();
    let mut creation_errors = Vec::new();
    if let Some(wanted) = &wanted {
        if allow_create && context.shard.config.auto_create_topics_enable {
            creation_errors = auto_create(context, &image, wanted).await;
            image = context.shard.metadata();
        }
    }
    let describable = |name: &str| context.topic_authorized(Operation::Describe, name);
    let response = |topic: &Arc<TopicImage>| {
        let operations = authorized_operations::bitfield_for(
            context,
            Resource::Topic,
            &topic.name,
            request.include_topic_authorized_operations,
        );
        topic_response(&image, topic, operations)
    };
    // A topic the principal may not describe is left out of "every topic", and refused by
    // name without saying whether it exists, as in Kafka.
    let topics = match wanted {
        None => image
            .topics
            .values()
            .filter(|topic| describable(&topic.name))
            .map(response)
            .collect(),
        Some(wanted) => wanted
            .iter()
            .map(|entry| match entry {
                Wanted::Name(name) if !describable(name) => unauthorized(Some(name), None),
                Wanted::Name(name) => match image.topic(name) {
                    Some(topic) => response(topic),
                    None => missing_topic(name, &creation_errors),
                },
                Wanted::Id(id) => match image.topic_by_id(TopicId(*id.as_bytes())) {
                    Some(topic) if !describable(&topic.name) => unauthorized(None, Some(*id)),
                    Some(topic) => response(topic),
                    None => MetadataResponseTopic::default()
                        .with_topic_id(*id)
                        .with_error_code(ResponseError::UnknownTopicId.code()),
                },
            })
            .collect(),
    };
    MetadataResponse::default()
        .with_brokers(brokers(context, &image))
        .with_cluster_id(Some(str_bytes(&image.cluster_id)))
        .with_controller_id(BrokerId(image.controller_id))
        .with_topics(topics)
        .with_cluster_authorized_operations(authorized_operations::bitfield_for(
            context,
            Resource::Cluster,
            crate::security::acl::CLUSTER_NAME,
            request.include_cluster_authorized_operations,
        ))
}

fn unauthorized(name: Option<&str>, id: Option<uuid::Uuid>) -> MetadataResponseTopic {
    MetadataResponseTopic::default()
        .with_name(name.map(|name| str_bytes(name).into()))
        .with_topic_id(id.unwrap_or_default())
        .with_error_code(ResponseError::TopicAuthorizationFailed.code())
}

/// `None` means every topic: a null list (v1+) or an empty one (v0).
fn wanted_topics(version: i16, request: &MetadataRequest) -> Option<Vec<Wanted>> {
    let topics = request.topics.as_ref()?;
    if version == 0 && topics.is_empty() {
        return None;
    }
    let wanted = topics
        .iter()
        .map(|topic| match &topic.name {
            Some(name) => Wanted::Name(name.to_string()),
            None => Wanted::Id(topic.topic_id),
        })
        .collect();
    Some(wanted)
}

/// Creates the named topics that do not exist; returns the refusals by name: as in Kafka, a
/// topic the principal may describe but not create (CREATE on the cluster or the topic) is
/// TOPIC_AUTHORIZATION_FAILED.
async fn auto_create(
    context: &RequestContext<'_>,
    image: &MetadataImage,
    wanted: &[Wanted],
) -> Vec<(String, i16)> {
    let cluster_create = context.cluster_authorized(Operation::Create);
    let mut refused = Vec::new();
    let topics: Vec<NewTopic> = wanted
        .iter()
        .filter(|entry| match entry {
            Wanted::Name(name) if image.topic(name).is_none() => {
                if !context.topic_authorized(Operation::Describe, name) {
                    return false;
                }
                let allowed = cluster_create || context.topic_authorized(Operation::Create, name);
                if !allowed {
                    refused.push((name.clone(), ResponseError::TopicAuthorizationFailed.code()));
                }
                allowed
            }
            _ => true,
        })
        .filter_map(|entry| match entry {
            Wanted::Name(name) if image.topic(name).is_none() => Some(NewTopic {
                name: name.clone(),
                partitions: -1,
                replication_factor: -1,
                configs: Default::default(),
                assignments: None,
            }),
            _ => None,
        })
        .collect();
    if topics.is_empty() {
        return refused;
    }
    let names: Vec<String> = topics.iter().map(|topic| topic.name.clone()).collect();
    let (reply, answer) = flume::bounded(1);
    let request = ControllerRequest::CreateTopics {
        topics,
        validate_only: false,
        reply,
    };
    if context.shard.controller.send_async(request).await.is_err() {
        return refused;
    }
    let outcomes = answer.recv_async().await.unwrap_or_default();
    names
        .into_iter()
        .zip(outcomes)
        .filter_map(|(name, outcome)| match outcome {
            Err(error) => Some((name, topic_error_code(&error))),
            Ok(_) => None,
        })
        .filter(|(_, code)| *code != ResponseError::TopicAlreadyExists.code())
        .chain(refused)
        .collect()
}

fn missing_topic(name: &str, creation_errors: &[(String, i16)]) -> MetadataResponseTopic {
    let code = creation_errors
        .iter()
        .find(|(failed, _)| failed == name)
        .map(|(_, code)| *code)
        .unwrap_or(ResponseError::UnknownTopicOrPartition.code());
    MetadataResponseTopic::default()
        .with_name(Some(str_bytes(name).into()))
        .with_error_code(code)
}

fn topic_response(
    image: &MetadataImage,
    topic: &Arc<TopicImage>,
    authorized_operations: i32,
) -> MetadataResponseTopic {
    let partitions = topic
        .partitions
        .iter()
        .map(|partition| {
            let error = match partition.leader {
                -1 => ResponseError::LeaderNotAvailable.code(),
                _ => 0,
            };
            MetadataResponsePartition::default()
                .with_error_code(error)
                .with_partition_index(partition.index)
                .with_leader_id(BrokerId(partition.leader))
                .with_leader_epoch(partition.leader_epoch)
                .with_replica_nodes(partition.replicas.iter().copied().map(BrokerId).collect())
                .with_isr_nodes(partition.isr.iter().copied().map(BrokerId).collect())
                .with_offline_replicas(super::broker_ids(
                    image.offline_replicas_of(topic.id, partition),
                ))
        })
        .collect();
    MetadataResponseTopic::default()
        .with_name(Some(str_bytes(&topic.name).into()))
        .with_topic_id(uuid::Uuid::from_bytes(topic.id.0))
        .with_is_internal(topic.is_internal())
        .with_partitions(partitions)
        .with_topic_authorized_operations(authorized_operations)
}

/// Each broker at its address for the listener this client connected through.
fn brokers(context: &RequestContext<'_>, image: &MetadataImage) -> Vec<MetadataResponseBroker> {
    image
        .live_brokers()
        .filter_map(|broker| {
            let endpoint = advertised_endpoint(context, broker)?;
            Some(
                MetadataResponseBroker::default()
                    .with_node_id(BrokerId(broker.node_id))
                    .with_host(str_bytes(&endpoint.host))
                    .with_port(i32::from(endpoint.port)),
            )
        })
        .collect()
}

/// A broker's address on the listener this client connected through (else its first).
pub fn advertised_endpoint<'a>(
    context: &RequestContext<'_>,
    broker: &'a crate::metadata::BrokerImage,
) -> Option<&'a crate::config::Listener> {
    broker
        .endpoints
        .iter()
        .find(|endpoint| *endpoint.name == *context.connection.listener)
        .or_else(|| broker.endpoints.first())
}
