//! DeleteTopics: by name (all versions) or by topic id (v6+).

use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::{DeleteTopicsRequest, DeleteTopicsResponse};
use kafka_protocol::ResponseError;

use super::{str_bytes, topic_error_code, RequestContext};
use crate::controller::ControllerRequest;
use crate::metadata::TopicId;
use crate::security::acl::Operation;

pub async fn handle(
    context: &RequestContext<'_>,
    request: DeleteTopicsRequest,
) -> DeleteTopicsResponse {
    let image = context.shard.metadata();
    // Each wanted deletion: the name if known, else the unknown id.
    let mut wanted: Vec<Result<String, uuid::Uuid>> = request
        .topic_names
        .iter()
        .map(|name| Ok(name.to_string()))
        .collect();
    for state in &request.topics {
        wanted.push(match &state.name {
            Some(name) => Ok(name.to_string()),
            None => image
                .topic_by_id(TopicId(*state.topic_id.as_bytes()))
                .map(|topic| topic.name.clone())
                .ok_or(state.topic_id),
        });
    }
    // Kafka's check: DELETE on each topic.
    let deletable = |name: &str| context.topic_authorized(Operation::Delete, name);
    let names: Vec<String> = wanted
        .iter()
        .filter_map(|entry| entry.as_ref().ok().cloned())
        .filter(|name| deletable(name))
        .collect();
    let (reply, answer) = flume::bounded(1);
    let sent = context
        .shard
        .controller
        .send_async(ControllerRequest::DeleteTopics { names, reply })
        .await;
    let mut outcomes = match sent {
        Ok(()) => answer.recv_async().await.unwrap_or_default().into_iter(),
        Err(_) => Vec::new().into_iter(),
    };
    let responses = wanted
        .into_iter()
        .map(|entry| match entry {
            Err(id) => DeletableTopicResult::default()
                .with_topic_id(id)
                .with_error_code(ResponseError::UnknownTopicId.code()),
            Ok(name) if !deletable(&name) => DeletableTopicResult::default()
                .with_name(Some(str_bytes(&name).into()))
                .with_error_code(ResponseError::TopicAuthorizationFailed.code()),
            Ok(name) => {
                let result =
                    DeletableTopicResult::default().with_name(Some(str_bytes(&name).into()));
                match outcomes.next() {
                    Some(Ok(id)) => result.with_topic_id(uuid::Uuid::from_bytes(id.0)),
                    Some(Err(error)) => result
                        .with_error_code(topic_error_code(&error))
                        .with_error_message(Some(str_bytes(&error.to_string()))),
                    None => result.with_error_code(ResponseError::NotController.code()),
                }
            }
        })
        .collect();
    DeleteTopicsResponse::default().with_responses(responses)
}
