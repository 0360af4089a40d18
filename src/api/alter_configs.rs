//! AlterConfigs (which replaces a resource's whole set of overrides) and IncrementalAlterConfigs
//! (SET, DELETE, APPEND, SUBTRACT per key), for topics and brokers. The controller checks and
//! records the change; every shard then applies it to the logs it hosts.

use kafka_protocol::messages::{
    AlterConfigsRequest, AlterConfigsResponse, IncrementalAlterConfigsRequest,
    IncrementalAlterConfigsResponse,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

use super::describe_configs::{BROKER_RESOURCE, TOPIC_RESOURCE};
use super::{ask_controller, str_bytes, topic_error_code, RequestContext};
use crate::controller::{
    ConfigAlteration, ConfigOp, ConfigResource, ControllerRequest, TopicError,
};
use crate::security::acl::Operation;

pub async fn handle(
    context: &RequestContext<'_>,
    request: AlterConfigsRequest,
) -> AlterConfigsResponse {
    let resources = request
        .resources
        .iter()
        .map(|resource| {
            let ops = resource
                .configs
                .iter()
                .map(|config| match &config.value {
                    Some(value) => ConfigOp::Set(config.name.to_string(), value.to_string()),
                    None => ConfigOp::Delete(config.name.to_string()),
                })
                .collect();
            (
                resource.resource_type,
                resource.resource_name.clone(),
                true,
                Ok(ops),
            )
        })
        .collect();
    let outcomes = alter(context, resources, request.validate_only).await;
    AlterConfigsResponse::default().with_responses(
        outcomes
            .into_iter()
            .map(|(resource_type, resource_name, outcome)| {
                let (code, message) = outcome_fields(outcome);
                kafka_protocol::messages::alter_configs_response::AlterConfigsResourceResponse::default()
                    .with_resource_type(resource_type)
                    .with_resource_name(resource_name)
                    .with_error_code(code)
                    .with_error_message(message)
            })
            .collect(),
    )
}

pub async fn handle_incremental(
    context: &RequestContext<'_>,
    request: IncrementalAlterConfigsRequest,
) -> IncrementalAlterConfigsResponse {
    let resources = request
        .resources
        .iter()
        .map(|resource| {
            let ops: Result<Vec<ConfigOp>, TopicError> = resource
                .configs
                .iter()
                .map(|config| {
                    let name = config.name.to_string();
                    let value = config.value.as_ref().map(|value| value.to_string());
                    match (config.config_operation, value) {
                        (1, _) => Ok(ConfigOp::Delete(name)),
                        (0, Some(value)) => Ok(ConfigOp::Set(name, value)),
                        (2, Some(value)) => Ok(ConfigOp::Append(name, value)),
                        (3, Some(value)) => Ok(ConfigOp::Subtract(name, value)),
                        (0 | 2 | 3, None) => Err(TopicError::InvalidRequest(format!(
                            "Null value not supported for : {name}"
                        ))),
                        (other, _) => Err(TopicError::InvalidRequest(format!(
                            "Unknown config operation {other} for {name}"
                        ))),
                    }
                })
                .collect();
            (
                resource.resource_type,
                resource.resource_name.clone(),
                false,
                ops,
            )
        })
        .collect();
    let outcomes = alter(context, resources, request.validate_only).await;
    IncrementalAlterConfigsResponse::default().with_responses(
        outcomes
            .into_iter()
            .map(|(resource_type, resource_name, outcome)| {
                let (code, message) = outcome_fields(outcome);
                kafka_protocol::messages::incremental_alter_configs_response::AlterConfigsResourceResponse::default()
                    .with_resource_type(resource_type)
                    .with_resource_name(resource_name)
                    .with_error_code(code)
                    .with_error_message(message)
            })
            .collect(),
    )
}

/// (resource type, resource name, replace the whole set?, operations or why they are invalid)
type Requested = (i8, StrBytes, bool, Result<Vec<ConfigOp>, TopicError>);

/// Sends every well-formed alteration to the controller in one request and answers each
/// resource in request order.
async fn alter(
    context: &RequestContext<'_>,
    requested: Vec<Requested>,
    validate_only: bool,
) -> Vec<(i8, StrBytes, Result<(), TopicError>)> {
    let mut alterations = Vec::new();
    let checked: Vec<(i8, StrBytes, Result<(), TopicError>)> = requested
        .into_iter()
        .map(|(resource_type, name, replace, ops)| {
            let outcome = ops.and_then(|ops| {
                // Kafka's check: ALTER_CONFIGS on the topic, or on the cluster for a broker.
                let resource = match resource_type {
                    TOPIC_RESOURCE if !context.topic_authorized(Operation::AlterConfigs, &name) => {
                        return Err(TopicError::TopicAuthorizationFailed)
                    }
                    BROKER_RESOURCE if !context.cluster_authorized(Operation::AlterConfigs) => {
                        return Err(TopicError::ClusterAuthorizationFailed)
                    }
                    TOPIC_RESOURCE => ConfigResource::Topic(name.to_string()),
                    BROKER_RESOURCE => ConfigResource::Broker(name.to_string()),
                    other => {
                        return Err(TopicError::InvalidRequest(format!(
                            "Unsupported resource type {other}"
                        )))
                    }
                };
                alterations.push(ConfigAlteration {
                    resource,
                    replace,
                    ops,
                });
                Ok(())
            });
            (resource_type, name, outcome)
        })
        .collect();
    let answers = match alterations.is_empty() {
        true => Vec::new(),
        false => ask_controller(context, |reply| ControllerRequest::AlterConfigs {
            alterations,
            validate_only,
            reply,
        })
        .await
        .unwrap_or_default(),
    };
    let mut answers = answers.into_iter();
    checked
        .into_iter()
        .map(|(resource_type, name, outcome)| {
            let outcome = outcome.and_then(|()| {
                answers.next().unwrap_or_else(|| {
                    Err(TopicError::Storage("the controller is not running".into()))
                })
            });
            (resource_type, name, outcome)
        })
        .collect()
}

fn outcome_fields(outcome: Result<(), TopicError>) -> (i16, Option<StrBytes>) {
    match outcome {
        Ok(()) => (0, None),
        Err(TopicError::UnknownTopic) => (
            ResponseError::UnknownTopicOrPartition.code(),
            Some(str_bytes("The topic does not exist.")),
        ),
        Err(error) => (
            topic_error_code(&error),
            Some(str_bytes(&error.to_string())),
        ),
    }
}
