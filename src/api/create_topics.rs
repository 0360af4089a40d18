//! CreateTopics: validates on the controller, which answers once every shard has the topic.
//! The partitions created count against the client's `controller_mutation_rate`
//! (`mutation_quota`).

use crate::security::acl::Operation;
use std::collections::BTreeMap;

use kafka_protocol::messages::create_topics_request::{CreatableReplicaAssignment, CreatableTopic};
use kafka_protocol::messages::create_topics_response::{
    CreatableTopicConfigs, CreatableTopicResult,
};
use kafka_protocol::messages::{CreateTopicsRequest, CreateTopicsResponse};
use kafka_protocol::ResponseError;

use super::mutation_quota::{self, MutatingApi};
use super::{ask_controller, str_bytes, topic_error_code, RequestContext};
use crate::controller::{ControllerRequest, NewTopic};
use crate::metadata::configs::{self, BrokerLayers};
use crate::metadata::MetadataImage;

pub async fn handle(
    context: &RequestContext<'_>,
    request: CreateTopicsRequest,
) -> CreateTopicsResponse {
    let names: Vec<String> = request
        .topics
        .iter()
        .map(|topic| topic.name.to_string())
        .collect();
    let duplicated = |name: &String| names.iter().filter(|other| *other == name).count() > 1;
    // Kafka's check: CREATE on the cluster, or else on each topic.
    let cluster_create = context.cluster_authorized(Operation::Create);
    let creatable =
        |name: &str| cluster_create || context.topic_authorized(Operation::Create, name);
    let eligible: Vec<&CreatableTopic> = request
        .topics
        .iter()
        .filter(|topic| !duplicated(&topic.name.to_string()) && creatable(&topic.name))
        .collect();
    let image = context.shard.metadata();
    let estimates = eligible
        .iter()
        .map(|topic| partitions_created(context, &image, topic))
        .collect();
    let mut mutations = context
        .charge_mutations(MutatingApi::CreateTopics, estimates)
        .await;
    let topics: Vec<NewTopic> = mutations
        .admitted_of(&eligible)
        .map(|topic| new_topic(topic))
        .collect();
    let validate_only = request.validate_only;
    let mut outcomes = ask_controller(context, |reply| ControllerRequest::CreateTopics {
        topics,
        validate_only,
        reply,
    })
    .await
    .unwrap_or_default()
    .into_iter();
    let mut results = Vec::with_capacity(names.len());
    for name in &names {
        let result = CreatableTopicResult::default().with_name(str_bytes(name).into());
        if duplicated(name) {
            results.push(
                result
                    .with_error_code(ResponseError::InvalidRequest.code())
                    .with_error_message(Some(str_bytes(&format!(
                        "Create topics request from client contains duplicate topic {name}"
                    )))),
            );
            continue;
        }
        if !creatable(name) {
            results.push(
                result
                    .with_error_code(ResponseError::TopicAuthorizationFailed.code())
                    .with_error_message(Some(str_bytes("Authorization failed."))),
            );
            continue;
        }
        if mutations.refused_next() {
            let (code, message) = mutation_quota::refusal();
            results.push(
                result
                    .with_error_code(code)
                    .with_error_message(Some(str_bytes(message))),
            );
            continue;
        }
        let outcome = outcomes.next();
        let created = match &outcome {
            Some(Ok(topic)) => topic.partitions.len() as u32,
            _ => 0,
        };
        mutations.mutated_next(created);
        results.push(match outcome {
            Some(Ok(topic)) => result
                .with_topic_id(uuid::Uuid::from_bytes(topic.id.0))
                .with_num_partitions(topic.partitions.len() as i32)
                .with_replication_factor(topic.replication_factor() as i16)
                .with_configs(Some(created_configs(context, &topic))),
            Some(Err(error)) => result
                .with_error_code(topic_error_code(&error))
                .with_error_message(Some(str_bytes(&error.to_string()))),
            None => result
                .with_error_code(ResponseError::NotController.code())
                .with_error_message(Some(str_bytes("the controller is not running"))),
        });
    }
    let throttle_time_ms = mutations.settle(context).await;
    CreateTopicsResponse::default()
        .with_topics(results)
        .with_throttle_time_ms(throttle_time_ms)
}

/// The topic the controller is asked to create.
fn new_topic(topic: &CreatableTopic) -> NewTopic {
    let assigned = topic.assignments.len() as i32;
    NewTopic {
        name: topic.name.to_string(),
        partitions: if assigned > 0 {
            assigned
        } else {
            topic.num_partitions
        },
        replication_factor: match topic.assignments.first() {
            Some(assignment) => assignment.broker_ids.len() as i16,
            None => topic.replication_factor,
        },
        configs: topic
            .configs
            .iter()
            .filter_map(|config| {
                Some((config.name.to_string(), config.value.as_ref()?.to_string()))
            })
            .collect::<BTreeMap<_, _>>(),
        assignments: (assigned > 0).then(|| assignments_in_order(&topic.assignments)),
    }
}

/// The partitions creating `topic` charges to the client's mutation quota; `None` for a topic
/// the controller will refuse before its quota, as far as this broker's image tells (one that
/// exists, a partition count that is not valid).
fn partitions_created(
    context: &RequestContext<'_>,
    image: &MetadataImage,
    topic: &CreatableTopic,
) -> Option<u32> {
    let name: &str = &topic.name;
    if image.topics.contains_key(name) {
        return None;
    }
    let partitions = match (topic.assignments.len(), topic.num_partitions) {
        (0, -1) => context.shard.config.num_partitions,
        (0, count) => count,
        (assigned, _) => assigned as i32,
    };
    u32::try_from(partitions).ok().filter(|count| *count > 0)
}

/// The client's replica lists in partition order (it may send them in any order; a gap shows
/// as an empty list, which the controller refuses).
fn assignments_in_order(assignments: &[CreatableReplicaAssignment]) -> Vec<Vec<i32>> {
    let mut ordered = vec![Vec::new(); assignments.len()];
    for assignment in assignments {
        if let Some(slot) = usize::try_from(assignment.partition_index)
            .ok()
            .and_then(|index| ordered.get_mut(index))
        {
            *slot = assignment.broker_ids.iter().map(|id| id.0).collect();
        }
    }
    ordered
}

/// Every config of a new topic with its source, as CreateTopics v5+ returns them.
fn created_configs(
    context: &RequestContext<'_>,
    topic: &crate::metadata::TopicImage,
) -> Vec<CreatableTopicConfigs> {
    let image = context.shard.metadata();
    let layers = BrokerLayers::new(&context.shard.config, &image.broker_configs);
    configs::describe_topic(&topic.configs, &layers)
        .into_iter()
        .map(|described| {
            CreatableTopicConfigs::default()
                .with_name(str_bytes(&described.name))
                .with_value(described.value.as_deref().map(str_bytes))
                .with_read_only(described.read_only)
                .with_config_source(described.source as i8)
                .with_is_sensitive(false)
        })
        .collect()
}
