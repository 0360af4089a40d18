//! CreatePartitions: raises a topic's partition count through the controller, which answers once
//! every shard has the new partitions open. The partitions added count against the client's
//! `controller_mutation_rate` (`mutation_quota`).

use crate::security::acl::Operation;
use kafka_protocol::messages::create_partitions_request::CreatePartitionsTopic;
use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use kafka_protocol::messages::{CreatePartitionsRequest, CreatePartitionsResponse};
use kafka_protocol::ResponseError;

use super::mutation_quota::{self, MutatingApi};
use super::{ask_controller, str_bytes, topic_error_code, RequestContext};
use crate::controller::{ControllerRequest, PartitionIncrease, TopicError};

pub async fn handle(
    context: &RequestContext<'_>,
    request: CreatePartitionsRequest,
) -> CreatePartitionsResponse {
    let names: Vec<String> = request
        .topics
        .iter()
        .map(|topic| topic.name.to_string())
        .collect();
    let duplicated = |name: &String| names.iter().filter(|other| *other == name).count() > 1;
    // Kafka's check: ALTER on each topic.
    let alterable = |name: &str| context.topic_authorized(Operation::Alter, name);
    let eligible: Vec<&CreatePartitionsTopic> = request
        .topics
        .iter()
        .filter(|topic| !duplicated(&topic.name.to_string()) && alterable(&topic.name))
        .collect();
    // The partitions each topic gains, as far as this broker's image tells (an unknown topic
    // or a count that does not grow it is refused before the quota).
    let image = context.shard.metadata();
    let estimates = eligible
        .iter()
        .map(|topic| {
            let name: &str = &topic.name;
            let current = image.topics.get(name)?.partitions.len() as i64;
            u32::try_from(i64::from(topic.count) - current)
                .ok()
                .filter(|added| *added > 0)
        })
        .collect();
    let mut mutations = context
        .charge_mutations(MutatingApi::CreatePartitions, estimates)
        .await;
    let increases: Vec<PartitionIncrease> = mutations
        .admitted_of(&eligible)
        .map(|topic| PartitionIncrease {
            name: topic.name.to_string(),
            count: topic.count,
            assignments: topic.assignments.as_ref().map(|assignments| {
                assignments
                    .iter()
                    .map(|assignment| assignment.broker_ids.iter().map(|id| id.0).collect())
                    .collect()
            }),
        })
        .collect();
    let validate_only = request.validate_only;
    let mut outcomes = ask_controller(context, |reply| ControllerRequest::CreatePartitions {
        increases,
        validate_only,
        reply,
    })
    .await
    .unwrap_or_default()
    .into_iter();
    let mut results = Vec::with_capacity(names.len());
    for name in &names {
        let result = CreatePartitionsTopicResult::default().with_name(str_bytes(name).into());
        let (code, message) = if duplicated(name) {
            let code = ResponseError::InvalidRequest.code();
            (code, "Duplicate topic in request.".to_string())
        } else if !alterable(name) {
            let code = ResponseError::TopicAuthorizationFailed.code();
            (code, "Topic authorization failed.".to_string())
        } else if mutations.refused_next() {
            let (code, message) = mutation_quota::refusal();
            (code, message.to_string())
        } else {
            let outcome = outcomes.next();
            let created = match outcome {
                Some(Ok(())) => mutations.charged_next(),
                _ => 0,
            };
            mutations.mutated_next(created);
            match outcome {
                Some(Ok(())) => {
                    results.push(result);
                    continue;
                }
                Some(Err(TopicError::UnknownTopic)) => (
                    ResponseError::UnknownTopicOrPartition.code(),
                    format!("The topic '{name}' does not exist."),
                ),
                Some(Err(error)) => (topic_error_code(&error), error.to_string()),
                None => (
                    ResponseError::NotController.code(),
                    "the controller is not running".to_string(),
                ),
            }
        };
        results.push(
            result
                .with_error_code(code)
                .with_error_message(Some(str_bytes(&message))),
        );
    }
    let throttle_time_ms = mutations.settle(context).await;
    CreatePartitionsResponse::default()
        .with_results(results)
        .with_throttle_time_ms(throttle_time_ms)
}
