//! FindCoordinator: a group's coordinator is the leader of its `__consumer_offsets` partition,
//! a transactional id's the leader of its `__transaction_state` partition. Each topic is
//! created on first use, as Kafka does: `offsets.topic.num.partitions` partitions of
//! `offsets.topic.replication.factor` replicas, and `transaction.state.log.num.partitions` of
//! `transaction.state.log.replication.factor` (with `transaction.state.log.min.isr`).
//! A key the principal may not DESCRIBE (the group, or the transactional id) is refused before
//! anything is looked up or created, as Kafka's `KafkaApis.getCoordinator` does.

use std::collections::BTreeMap;

use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::{BrokerId, FindCoordinatorRequest, FindCoordinatorResponse};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

use super::{str_bytes, RequestContext};
use crate::controller::{ControllerRequest, NewTopic, TopicError};
use crate::group::{partition_for_group, OFFSETS_TOPIC, OFFSETS_TOPIC_SEGMENT_BYTES};
use crate::security::acl::Operation;
use crate::txn::{partition_for_txn, TRANSACTION_STATE_TOPIC};

const GROUP_KEY_TYPE: i8 = 0;
const TRANSACTION_KEY_TYPE: i8 = 1;

pub async fn handle(
    context: &RequestContext<'_>,
    request: FindCoordinatorRequest,
) -> FindCoordinatorResponse {
    let keys: Vec<StrBytes> = match context.version >= 4 {
        true => request.coordinator_keys.clone(),
        false => vec![request.key.clone()],
    };
    let denied: Vec<Option<(ResponseError, &str)>> = keys
        .iter()
        .map(|key| denial(context, request.key_type, key))
        .collect();
    // The internal topic is created only for a key the principal may describe.
    let ready = match (request.key_type, denied.iter().all(Option::is_some)) {
        (_, true) => Ok(()),
        (TRANSACTION_KEY_TYPE, false) => ensure_transaction_state_topic(context).await,
        (_, false) => ensure_offsets_topic(context).await,
    };
    let coordinators: Vec<Coordinator> = keys
        .into_iter()
        .zip(denied)
        .map(|(key, denied)| match denied {
            Some((error, message)) => Coordinator::default()
                .with_key(key)
                .with_node_id(BrokerId(-1))
                .with_port(-1)
                .with_error_code(error.code())
                .with_error_message(Some(str_bytes(message))),
            None => coordinator(context, request.key_type, key, &ready),
        })
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

/// Kafka's refusal of `key`, with the message of its exception, for a principal without
/// DESCRIBE on it; `None` when it may look.
fn denial(
    context: &RequestContext<'_>,
    key_type: i8,
    key: &str,
) -> Option<(ResponseError, &'static str)> {
    match key_type {
        GROUP_KEY_TYPE if !context.group_authorized(Operation::Describe, key) => Some((
            ResponseError::GroupAuthorizationFailed,
            "Group authorization failed.",
        )),
        TRANSACTION_KEY_TYPE if !context.transactional_id_authorized(Operation::Describe, key) => {
            Some((
                ResponseError::TransactionalIdAuthorizationFailed,
                "Transactional Id authorization failed.",
            ))
        }
        _ => None,
    }
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
    let (topic_name, partition_for): (&str, fn(&str, i32) -> i32) = match key_type {
        GROUP_KEY_TYPE => (OFFSETS_TOPIC, partition_for_group),
        TRANSACTION_KEY_TYPE => (TRANSACTION_STATE_TOPIC, partition_for_txn),
        // Share groups (v6, KIP-932) are not served; nor is any other key type.
        _ => {
            return refused(
                ResponseError::InvalidRequest,
                format!("coordinator key type {key_type} is not supported"),
            )
        }
    };
    if let Err(message) = ready {
        return refused(ResponseError::CoordinatorNotAvailable, message.clone());
    }
    // The coordinator is the leader of the key's partition of the topic.
    let image = context.shard.metadata();
    let leader = image.topic(topic_name).map_or(-1, |topic| {
        let partition = partition_for(&key, topic.partitions.len() as i32);
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
pub async fn ensure_offsets_topic(context: &RequestContext<'_>) -> Result<(), String> {
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
    ensure_internal_topic(context, topic, "offsets.topic.replication.factor").await
}

/// Creates `__transaction_state` unless it exists; Err explains why it cannot be.
pub async fn ensure_transaction_state_topic(context: &RequestContext<'_>) -> Result<(), String> {
    let config = &context.shard.config;
    let topic = NewTopic {
        name: TRANSACTION_STATE_TOPIC.to_string(),
        partitions: config.transaction_state_log_num_partitions,
        replication_factor: config.transaction_state_log_replication_factor,
        configs: BTreeMap::from([
            ("cleanup.policy".to_string(), "compact".to_string()),
            (
                "segment.bytes".to_string(),
                config.transaction_state_log_segment_bytes.to_string(),
            ),
            (
                "min.insync.replicas".to_string(),
                config.transaction_state_log_min_isr.to_string(),
            ),
            ("compression.type".to_string(), "uncompressed".to_string()),
            (
                "unclean.leader.election.enable".to_string(),
                "false".to_string(),
            ),
        ]),
        assignments: None,
    };
    ensure_internal_topic(context, topic, "transaction.state.log.replication.factor").await
}

/// Creates the internal `topic` unless it exists; Err explains why it cannot be (naming
/// `replication_key`, the usual cause).
async fn ensure_internal_topic(
    context: &RequestContext<'_>,
    topic: NewTopic,
    replication_key: &str,
) -> Result<(), String> {
    if context.shard.metadata().topic(&topic.name).is_some() {
        return Ok(());
    }
    let name = topic.name.clone();
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
            tracing::warn!("cannot create {name}: {error} (check {replication_key})");
            Err(format!("cannot create {name}: {error}"))
        }
        None => Err("the controller gave no answer".into()),
    }
}
