//! DescribeConfigs: topic and broker configs with their sources and synonyms, from the same
//! resolver the logs use (`metadata::configs`).

use crate::security::acl::Operation;
use kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult, DescribeConfigsSynonym,
};
use kafka_protocol::messages::{DescribeConfigsRequest, DescribeConfigsResponse};
use kafka_protocol::ResponseError;

use super::{str_bytes, RequestContext};
use crate::metadata::configs::{self, BrokerLayers, Described};

/// DescribeConfigs' resource types.
pub const TOPIC_RESOURCE: i8 = 2;
pub const BROKER_RESOURCE: i8 = 4;

pub async fn handle(
    context: &RequestContext<'_>,
    request: DescribeConfigsRequest,
) -> DescribeConfigsResponse {
    let image = context.shard.metadata();
    let layers = BrokerLayers::new(&context.shard.config, &image.broker_configs);
    let results = request
        .resources
        .iter()
        .map(|resource| {
            let name = resource.resource_name.to_string();
            let result = DescribeConfigsResult::default()
                .with_resource_type(resource.resource_type)
                .with_resource_name(resource.resource_name.clone());
            // Kafka's check: DESCRIBE_CONFIGS on the topic, or on the cluster for a broker.
            let described = match resource.resource_type {
                TOPIC_RESOURCE if !context.topic_authorized(Operation::DescribeConfigs, &name) => {
                    Err((
                        ResponseError::TopicAuthorizationFailed,
                        "Topic authorization failed.".to_string(),
                    ))
                }
                BROKER_RESOURCE if !context.cluster_authorized(Operation::DescribeConfigs) => {
                    Err((
                        ResponseError::ClusterAuthorizationFailed,
                        "Cluster authorization failed.".to_string(),
                    ))
                }
                TOPIC_RESOURCE => match image.topic(&name) {
                    Some(topic) => Ok(configs::describe_topic(&topic.configs, &layers)),
                    None => Err((
                        ResponseError::UnknownTopicOrPartition,
                        format!("The topic '{name}' does not exist."),
                    )),
                },
                BROKER_RESOURCE => broker_configs(context, &layers, &name),
                other => Err((
                    ResponseError::InvalidRequest,
                    format!("Unsupported resource type {other}"),
                )),
            };
            match described {
                Ok(described) => {
                    let wanted = resource.configuration_keys.as_ref();
                    result.with_configs(
                        described
                            .into_iter()
                            .filter(|entry| {
                                wanted
                                    .is_none_or(|keys| keys.iter().any(|key| **key == *entry.name))
                            })
                            .map(|entry| entry_result(entry, request.include_synonyms))
                            .collect(),
                    )
                }
                Err((error, message)) => result
                    .with_error_code(error.code())
                    .with_error_message(Some(str_bytes(&message))),
            }
        })
        .collect();
    DescribeConfigsResponse::default().with_results(results)
}

/// This broker's configs ("" is the cluster-wide dynamic defaults); another broker's id is
/// refused, as Kafka refuses a request sent to the wrong broker.
fn broker_configs(
    context: &RequestContext<'_>,
    layers: &BrokerLayers,
    name: &str,
) -> Result<Vec<Described>, (ResponseError, String)> {
    let node_id = context.shard.config.node_id.to_string();
    match name {
        "" => Ok(configs::describe_broker(layers, true)),
        name if name == node_id => Ok(configs::describe_broker(layers, false)),
        name => Err((
            ResponseError::InvalidRequest,
            format!(
                "Unexpected broker id, expected {node_id} or empty string, but received {name}"
            ),
        )),
    }
}

fn entry_result(entry: Described, include_synonyms: bool) -> DescribeConfigsResourceResult {
    let synonyms = match include_synonyms {
        true => entry
            .synonyms
            .iter()
            .map(|(name, value, source)| {
                DescribeConfigsSynonym::default()
                    .with_name(str_bytes(name))
                    .with_value(value.as_deref().map(str_bytes))
                    .with_source(*source as i8)
            })
            .collect(),
        false => Vec::new(),
    };
    DescribeConfigsResourceResult::default()
        .with_name(str_bytes(&entry.name))
        .with_value(entry.value.as_deref().map(str_bytes))
        .with_read_only(entry.read_only)
        .with_config_source(entry.source as i8)
        .with_is_sensitive(false)
        .with_config_type(entry.config_type as i8)
        .with_synonyms(synonyms)
}
