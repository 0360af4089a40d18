//! CreateTopics: validates on the controller, which answers once every shard has the topic.

use std::collections::BTreeMap;

use kafka_protocol::messages::create_topics_response::CreatableTopicResult;
use kafka_protocol::messages::{CreateTopicsRequest, CreateTopicsResponse};
use kafka_protocol::ResponseError;

use super::{str_bytes, topic_error_code, RequestContext};
use crate::controller::{ControllerRequest, NewTopic};

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
    let topics: Vec<NewTopic> = request
        .topics
        .iter()
        .filter(|topic| !duplicated(&topic.name.to_string()))
        .map(|topic| {
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
            }
        })
        .collect();
    let (reply, answer) = flume::bounded(1);
    let request_sent = context
        .shard
        .controller
        .send_async(ControllerRequest::CreateTopics {
            topics,
            validate_only: request.validate_only,
            reply,
        })
        .await;
    let mut outcomes = match request_sent {
        Ok(()) => answer.recv_async().await.unwrap_or_default().into_iter(),
        Err(_) => Vec::new().into_iter(),
    };
    let results = names
        .iter()
        .map(|name| {
            let result = CreatableTopicResult::default().with_name(str_bytes(name).into());
            if duplicated(name) {
                return result
                    .with_error_code(ResponseError::InvalidRequest.code())
                    .with_error_message(Some(str_bytes(&format!(
                        "Create topics request from client contains duplicate topic {name}"
                    ))));
            }
            match outcomes.next() {
                Some(Ok(topic)) => result
                    .with_topic_id(uuid::Uuid::from_bytes(topic.id.0))
                    .with_num_partitions(topic.partitions.len() as i32)
                    .with_replication_factor(topic.replication_factor() as i16)
                    .with_configs(Some(Vec::new())),
                Some(Err(error)) => result
                    .with_error_code(topic_error_code(&error))
                    .with_error_message(Some(str_bytes(&error.to_string()))),
                None => result
                    .with_error_code(ResponseError::NotController.code())
                    .with_error_message(Some(str_bytes("the controller is not running"))),
            }
        })
        .collect();
    CreateTopicsResponse::default().with_topics(results)
}
