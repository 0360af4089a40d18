//! DeleteTopics: by name (all versions) or by topic id (v6+). The partitions deleted count
//! against the client's `controller_mutation_rate` (`mutation_quota`).

use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::{DeleteTopicsRequest, DeleteTopicsResponse};
use kafka_protocol::ResponseError;

use super::mutation_quota::{self, MutatingApi};
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
    let eligible: Vec<&String> = wanted
        .iter()
        .filter_map(|entry| entry.as_ref().ok())
        .filter(|name| deletable(name))
        .collect();
    // Each topic's partitions, the first time it is named (a repeat deletes nothing more).
    let estimates = eligible
        .iter()
        .enumerate()
        .map(|(index, name)| {
            let first = !eligible[..index].contains(name);
            let topic = image.topics.get(name.as_str()).filter(|_| first)?;
            Some(topic.partitions.len() as u32)
        })
        .collect();
    let mut mutations = context
        .charge_mutations(MutatingApi::DeleteTopics, estimates)
        .await;
    let names: Vec<String> = mutations
        .admitted_of(&eligible)
        .map(|name| name.to_string())
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
    let mut responses = Vec::with_capacity(wanted.len());
    for entry in wanted {
        let name = match entry {
            Err(id) => {
                responses.push(
                    DeletableTopicResult::default()
                        .with_topic_id(id)
                        .with_error_code(ResponseError::UnknownTopicId.code()),
                );
                continue;
            }
            Ok(name) => name,
        };
        let result = DeletableTopicResult::default().with_name(Some(str_bytes(&name).into()));
        if !deletable(&name) {
            let code = ResponseError::TopicAuthorizationFailed.code();
            responses.push(result.with_error_code(code));
            continue;
        }
        if mutations.refused_next() {
            let (code, message) = mutation_quota::refusal();
            responses.push(
                result
                    .with_error_code(code)
                    .with_error_message(Some(str_bytes(message))),
            );
            continue;
        }
        let outcome = outcomes.next();
        let deleted = match &outcome {
            Some(Ok(_)) => mutations.charged_next(),
            _ => 0,
        };
        mutations.mutated_next(deleted);
        responses.push(match outcome {
            Some(Ok(id)) => result.with_topic_id(uuid::Uuid::from_bytes(id.0)),
            Some(Err(error)) => result
                .with_error_code(topic_error_code(&error))
                .with_error_message(Some(str_bytes(&error.to_string()))),
            None => result.with_error_code(ResponseError::NotController.code()),
        });
    }
    let throttle_time_ms = mutations.settle(context).await;
    DeleteTopicsResponse::default()
        .with_responses(responses)
        .with_throttle_time_ms(throttle_time_ms)
}
