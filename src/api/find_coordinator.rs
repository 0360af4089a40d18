//! FindCoordinator: this node coordinates every group (single node). The `__consumer_offsets`
//! topic is created on first use, as Kafka does, with `offsets.topic.num.partitions` partitions
//! and `offsets.topic.replication.factor` replicas.

use std::collections::BTreeMap;

use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::{BrokerId, FindCoordinatorRequest, FindCoordinatorResponse};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

use super::{str_bytes, RequestContext};
use crate::controller::{ControllerRequest, NewTopic, TopicError};
use crate::group::{partition_for_group, OFFSETS_TOPIC, OFFSETS_TOPIC_SEGMENT_BYTES};

const GROUP_KEY_TYPE: i8 = 0;
const TRANSACTION_KEY_TYPE: i8 = 1;

pub async fn handle(
    context: &RequestContext<'_>,
    request: FindCoordinatorRequest,
) -> FindCoordinatorResponse {
    let ready = ensure_offsets_topic(context).await;
    let keys: Vec<StrBytes> = match context.version >= 4 {
        true => request.coordinator_keys.clone(),
        false => vec![request.key.clone()],
    };
    let coordinators: Vec<Coordinator> = keys
        .into_iter()
        .map(|key| coordinator(context, request.key_type, key, &ready))
        .collect();
    if context.version >= 4 {
        return FindCoordinatorResponse::default().with_coordinators(coordinators);
    }
    let only = coordinators.into_iter().next().unwrap_or_default();
    FindCoordinatorResponse::default()
        .with_error_code(only.error_code)
        .with_error_message(only.error_message)
        .with_node_id(only.node_id)
        .with_host(only.host)
        .with_port(only.port)
}

fn coordinator(
    context: &RequestContext<'_>,
    key_type: i8,
    key: StrBytes,
    ready: &Result<(), String>,
) -> Coordinator {
    let refused = |error: ResponseError, message: String| {
        Coordinator::default()
            .with_key(key.clone())
            .with_node_id(BrokerId(-1))
            .with_error_code(error.code())
            .with_error_message(Some(str_bytes(&message)))
    };
    match key_type {
        GROUP_KEY_TYPE => {}
        TRANSACTION_KEY_TYPE => {
            return refused(
                ResponseError::CoordinatorNotAvailable,
                "transactions are not supported yet".into(),
            )
        }
        // Share groups (v6, KIP-932) are not served; nor is any other key type.
        _ => {
            return refused(
                ResponseError::InvalidRequest,
                format!("coordinator key type {key_type} is not supported"),
            )
        }
    }
    if let Err(message) = ready {
        return refused(ResponseError::CoordinatorNotAvailable, message.clone());
    }
    // The coordinator is the leader of the group's `__consumer_offsets` partition.
    let image = context.shard.metadata();
    let leader = image.topic(OFFSETS_TOPIC).map_or(-1, |topic| {
        let partition = partition_for_group(&key, topic.partitions.len() as i32);
        topic.partitions[partition as usize].leader
    });
    let node_id = leader;
    let endpoint = image
        .live_brokers()
        .find(|broker| broker.node_id == node_id)
        .and_then(|broker| {
            broker
                .endpoints
                .iter()
                .find(|endpoint| *endpoint.name == *context.connection.listener)
                .or(broker.endpoints.first())
        });
    match endpoint {
        Some(endpoint) => Coordinator::default()
            .with_key(key)
            .with_node_id(BrokerId(node_id))
            .with_host(str_bytes(&endpoint.host))
            .with_port(i32::from(endpoint.port)),
        None => refused(
            ResponseError::CoordinatorNotAvailable,
            "no advertised listener".into(),
        ),
    }
}

/// Creates `__consumer_offsets` unless it exists; Err explains why it cannot be.
async fn ensure_offsets_topic(context: &RequestContext<'_>) -> Result<(), String> {
    if context.shard.metadata().topic(OFFSETS_TOPIC).is_some() {
        return Ok(());
    }
    let config = &context.shard.config;
    let topic = NewTopic {
        name: OFFSETS_TOPIC.to_string(),
        partitions: config.offsets_topic_num_partitions,
        replication_factor: config.offsets_topic_replication_factor,
        configs: BTreeMap::from([
            ("cleanup.policy".to_string(), "compact".to_string()),
            (
                "segment.bytes".to_string(),
                OFFSETS_TOPIC_SEGMENT_BYTES.to_string(),
            ),
            ("compression.type".to_string(), "producer".to_string()),
        ]),
        assignments: None,
    };
    let (reply, answer) = flume::bounded(1);
    let request = ControllerRequest::CreateTopics {
        topics: vec![topic],
        validate_only: false,
        reply,
    };
    context
        .shard
        .controller
        .send_async(request)
        .await
        .map_err(|_| "the controller has stopped".to_string())?;
    let outcome = answer
        .recv_async()
        .await
        .map_err(|_| "the controller has stopped".to_string())?;
    match outcome.into_iter().next() {
        Some(Ok(_)) | Some(Err(TopicError::AlreadyExists(_))) => Ok(()),
        Some(Err(error)) => {
            tracing::warn!(
                "cannot create {OFFSETS_TOPIC}: {error} (check offsets.topic.replication.factor)"
            );
            Err(format!("cannot create {OFFSETS_TOPIC}: {error}"))
        }
        None => Err("the controller gave no answer".into()),
    }
}
