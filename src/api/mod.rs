//! One handler per Kafka API. Handlers translate between wire structs and the broker's domain
//! (partitions, metadata, the controller) and choose Kafka error codes; they hold no logic of
//! their own beyond that. `handle` frames one request into at most one response.

mod api_versions;
mod create_topics;
mod delete_topics;
mod fetch;
mod init_producer_id;
mod list_offsets;
mod metadata;
mod produce;

use std::rc::Rc;

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::ApiKey;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

use crate::controller::TopicError;
use crate::protocol::{self, ProtocolError};
use crate::runtime::shard::Shard;

/// What every handler is given besides its request body.
pub struct RequestContext<'a> {
    pub shard: &'a Rc<Shard>,
    /// The listener the connection arrived on; Metadata advertises that listener's addresses.
    pub listener: &'a str,
    pub version: i16,
}

/// Handles one request frame (without its size prefix). `Ok(None)` means no response is due
/// (a produce with acks=0). An error means the connection must be closed.
pub async fn handle(
    shard: &Rc<Shard>,
    listener: &str,
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
    let context = RequestContext {
        shard,
        listener,
        version,
    };
    let frame = &mut frame;
    let respond =
        |body: &dyn EncodeResponse| body.encode_response(correlation_id, key, version).map(Some);
    match key {
        ApiKey::ApiVersions => respond(&api_versions::handle(protocol::decode_body(
            frame, key, version,
        )?)),
        ApiKey::Metadata => {
            respond(&metadata::handle(&context, protocol::decode_body(frame, key, version)?).await)
        }
        ApiKey::CreateTopics => respond(
            &create_topics::handle(&context, protocol::decode_body(frame, key, version)?).await,
        ),
        ApiKey::DeleteTopics => respond(
            &delete_topics::handle(&context, protocol::decode_body(frame, key, version)?).await,
        ),
        ApiKey::Produce => {
            match produce::handle(&context, protocol::decode_body(frame, key, version)?).await {
                Some(response) => respond(&response),
                None => Ok(None),
            }
        }
        ApiKey::Fetch => {
            respond(&fetch::handle(&context, protocol::decode_body(frame, key, version)?).await)
        }
        ApiKey::InitProducerId => respond(
            &init_producer_id::handle(&context, protocol::decode_body(frame, key, version)?).await,
        ),
        ApiKey::ListOffsets => respond(
            &list_offsets::handle(&context, protocol::decode_body(frame, key, version)?).await,
        ),
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
