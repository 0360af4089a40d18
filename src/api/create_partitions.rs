//! CreatePartitions: raises a topic's partition count through the controller, which answers once
//! every shard has the new partitions open.

use crate::security::acl::Operation;
use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use kafka_protocol::messages::{CreatePartitionsRequest, CreatePartitionsResponse};
use kafka_protocol::ResponseError;

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
    let increases: Vec<PartitionIncrease> = request
        .topics
        .iter()
        .filter(|topic| !duplicated(&topic.name.to_string()) && alterable(&topic.name))
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
    let results = names
        .iter()
        .map(|name| {
            let result = CreatePartitionsTopicResult::default().with_name(str_bytes(name).into());
            if duplicated(name) {
                return result
                    .with_error_code(ResponseError::InvalidRequest.code())
                    .with_error_message(Some(str_bytes("Duplicate topic in request.")));
            }
            if !alterable(name) {
                return result
                    .with_error_code(ResponseError::TopicAuthorizationFailed.code())
                    .with_error_message(Some(str_bytes("Topic authorization failed.")));
            }
            match outcomes.next() {
                Some(Ok(())) => result,
                Some(Err(TopicError::UnknownTopic)) => result
                    .with_error_code(ResponseError::UnknownTopicOrPartition.code())
                    .with_error_message(Some(str_bytes(&format!(
                        "The topic '{name}' does not exist."
                    )))),
                Some(Err(error)) => result
                    .with_error_code(topic_error_code(&error))
                    .with_error_message(Some(str_bytes(&error.to_string()))),
                None => result
                    .with_error_code(ResponseError::NotController.code())
                    .with_error_message(Some(str_bytes("the controller is not running"))),
            }
        })
        .collect();
    CreatePartitionsResponse::default().with_results(results)
}
