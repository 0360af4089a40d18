//! One handler per Kafka API. Handlers translate between wire structs and the broker's domain
//! (partitions, metadata, the controller) and choose Kafka error codes; they hold no logic of
//! their own beyond that. `handle` frames one request into at most one response.

mod api_versions;
mod consumer_group_describe;
mod consumer_group_heartbeat;
mod create_topics;
mod delete_groups;
mod delete_records;
mod delete_topics;
mod describe_groups;
mod fetch;
mod find_coordinator;
mod groups;
mod heartbeat;
mod init_producer_id;
mod join_group;
mod leave_group;
mod list_groups;
mod list_offsets;
mod metadata;
mod offset_commit;
mod offset_delete;
mod offset_fetch;
mod produce;
mod sync_group;

use std::rc::Rc;

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::ApiKey;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

use crate::controller::TopicError;
use crate::partition::PartitionError;
use crate::protocol::{self, ProtocolError};
use crate::runtime::mesh::ShardRequest;
use crate::runtime::shard::Shard;

/// What every handler is given besides its request body.
pub struct RequestContext<'a> {
    pub shard: &'a Rc<Shard>,
    pub connection: &'a ConnectionInfo,
    pub version: i16,
    /// The client id from the request header (empty if none).
    pub client_id: String,
}

/// Sends one part per requested (topic, partition), in request order, to the shard owning it,
/// and returns the answers in that order. A partition of an unknown topic, or past the topic's
/// partition count, is answered `NotHosted` without leaving this shard.
pub async fn scatter_partitions<P, R>(
    context: &RequestContext<'_>,
    requested: Vec<(&str, i32, P)>,
    build: impl Fn(Vec<P>, flume::Sender<Vec<Result<R, PartitionError>>>) -> ShardRequest,
) -> Vec<Result<R, PartitionError>> {
    let image = context.shard.metadata();
    let mut parts = Vec::new();
    let mut hosted = Vec::with_capacity(requested.len());
    for (topic, partition, part) in requested {
        let known = image
            .topic(topic)
            .filter(|known| (0..known.partitions.len() as i32).contains(&partition));
        hosted.push(known.is_some());
        if let Some(known) = known {
            parts.push((context.shard.owner_of(known, partition), part));
        }
    }
    let mut answers = context.shard.scatter(parts, build).await.into_iter();
    hosted
        .into_iter()
        .map(|hosted| match hosted {
            true => answers.next().expect("an answer per hosted part"),
            false => Err(PartitionError::NotHosted(String::new())),
        })
        .collect()
}

/// What a handler may need to know about the connection a request came on.
pub struct ConnectionInfo {
    /// The listener the connection arrived on; Metadata advertises that listener's addresses.
    pub listener: Rc<str>,
    /// The client's address as Kafka's tools show it (`/127.0.0.1`).
    pub client_host: String,
}

/// Handles one request frame (without its size prefix). `Ok(None)` means no response is due
/// (a produce with acks=0). An error means the connection must be closed.
pub async fn handle(
    shard: &Rc<Shard>,
    connection: &ConnectionInfo,
    mut frame: Bytes,
) -> Result<Option<BytesMut>, ProtocolError> {
    let (key, version) = protocol::peek_api(&frame)?;
    if key == ApiKey::ApiVersions && !protocol::is_supported(key, version) {
        return api_versions::unsupported_version(&frame).map(Some);
    }
    if !protocol::is_supported(key, version) {
        return Err(ProtocolError::UnsupportedVersion { key, version });
    }
    let header = protocol::decode_header(&mut frame, key, version)?;
    let correlation_id = header.correlation_id;
    let client_id = header
        .client_id
        .as_ref()
        .map(|id| id.to_string())
        .unwrap_or_default();
    let context = RequestContext {
        shard,
        connection,
        version,
        client_id,
    };
    let frame = &mut frame;
    let respond =
        |body: &dyn EncodeResponse| body.encode_response(correlation_id, key, version).map(Some);
    // Decodes the body for `key`/`version`, runs the handler and frames its response.
    macro_rules! serve {
        ($handler:path) => {
            respond(&$handler(&context, protocol::decode_body(frame, key, version)?).await)
        };
    }
    match key {
        ApiKey::ApiVersions => respond(&api_versions::handle(protocol::decode_body(
            frame, key, version,
        )?)),
        ApiKey::Metadata => serve!(metadata::handle),
        ApiKey::CreateTopics => serve!(create_topics::handle),
        ApiKey::DeleteTopics => serve!(delete_topics::handle),
        ApiKey::Produce => {
            match produce::handle(&context, protocol::decode_body(frame, key, version)?).await {
                Some(response) => respond(&response),
                None => Ok(None),
            }
        }
        ApiKey::Fetch => serve!(fetch::handle),
        ApiKey::ListOffsets => serve!(list_offsets::handle),
        ApiKey::DeleteRecords => serve!(delete_records::handle),
        ApiKey::InitProducerId => serve!(init_producer_id::handle),
        ApiKey::FindCoordinator => serve!(find_coordinator::handle),
        ApiKey::JoinGroup => serve!(join_group::handle),
        ApiKey::SyncGroup => serve!(sync_group::handle),
        ApiKey::Heartbeat => serve!(heartbeat::handle),
        ApiKey::LeaveGroup => serve!(leave_group::handle),
        ApiKey::OffsetCommit => serve!(offset_commit::handle),
        ApiKey::OffsetFetch => serve!(offset_fetch::handle),
        ApiKey::ListGroups => serve!(list_groups::handle),
        ApiKey::DescribeGroups => serve!(describe_groups::handle),
        ApiKey::DeleteGroups => serve!(delete_groups::handle),
        ApiKey::OffsetDelete => serve!(offset_delete::handle),
        ApiKey::ConsumerGroupHeartbeat => serve!(consumer_group_heartbeat::handle),
        ApiKey::ConsumerGroupDescribe => serve!(consumer_group_describe::handle),
        _ => Err(ProtocolError::UnsupportedVersion { key, version }),
    }
}

/// Lets `handle` frame any response body through one path.
trait EncodeResponse {
    fn encode_response(
        &self,
        correlation_id: i32,
        key: ApiKey,
        version: i16,
    ) -> Result<BytesMut, ProtocolError>;
}

impl<T: kafka_protocol::protocol::Encodable> EncodeResponse for T {
    fn encode_response(
        &self,
        correlation_id: i32,
        key: ApiKey,
        version: i16,
    ) -> Result<BytesMut, ProtocolError> {
        protocol::encode_response(correlation_id, key, version, self)
    }
}

/// The Kafka error code for a topic change the controller refused.
pub fn topic_error_code(error: &TopicError) -> i16 {
    let error = match error {
        TopicError::AlreadyExists(_) => ResponseError::TopicAlreadyExists,
        TopicError::InvalidName(_) => ResponseError::InvalidTopicException,
        TopicError::InvalidPartitions(_) => ResponseError::InvalidPartitions,
        TopicError::InvalidReplicationFactor(_) => ResponseError::InvalidReplicationFactor,
        TopicError::InvalidConfig(_) => ResponseError::InvalidConfig,
        TopicError::UnknownTopic => ResponseError::UnknownTopicOrPartition,
        TopicError::Storage(_) => ResponseError::KafkaStorageError,
    };
    error.code()
}

pub fn str_bytes(text: &str) -> StrBytes {
    StrBytes::from_string(text.to_string())
}
