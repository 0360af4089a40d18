//! The Kafka wire protocol as Flink serves it: which APIs and versions are advertised, request
//! framing, and response encoding. Message types come from the `kafka-protocol` crate, generated
//! from Kafka's own schemas; this layer only chooses versions and frames bytes.
//!
//! Advertise only what a test exercises: a client picks the highest version both sides list.

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader, RequestKind, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable};

mod frame;
pub use frame::{Frame, SHARED_BYTES_MIN};

/// Bytes of the size prefix of every request and response.
pub const FRAME_SIZE_BYTES: usize = 4;

/// Every API this broker serves, with the versions advertised in ApiVersions.
pub const SUPPORTED_APIS: &[(ApiKey, i16, i16)] = &[
    (ApiKey::Produce, 3, 12),
    (ApiKey::Fetch, 4, 17),
    (ApiKey::ListOffsets, 1, 10),
    (ApiKey::DeleteRecords, 0, 2),
    (ApiKey::Metadata, 0, 13),
    (ApiKey::ApiVersions, 0, 4),
    (ApiKey::CreateTopics, 2, 7),
    (ApiKey::DeleteTopics, 1, 6),
    (ApiKey::InitProducerId, 0, 5),
    (ApiKey::FindCoordinator, 0, 6),
    (ApiKey::JoinGroup, 0, 9),
    (ApiKey::SyncGroup, 0, 5),
    (ApiKey::Heartbeat, 0, 4),
    (ApiKey::LeaveGroup, 0, 5),
    (ApiKey::OffsetCommit, 2, 9),
    (ApiKey::OffsetFetch, 1, 9),
    (ApiKey::ListGroups, 0, 5),
    (ApiKey::DescribeGroups, 0, 6),
    (ApiKey::DeleteGroups, 0, 2),
    (ApiKey::OffsetDelete, 0, 0),
    (ApiKey::ConsumerGroupHeartbeat, 0, 1),
    (ApiKey::ConsumerGroupDescribe, 0, 1),
    (ApiKey::DescribeConfigs, 1, 4),
    (ApiKey::AlterConfigs, 0, 2),
    (ApiKey::IncrementalAlterConfigs, 0, 1),
    (ApiKey::CreatePartitions, 0, 3),
    (ApiKey::DescribeCluster, 0, 2),
    (ApiKey::OffsetForLeaderEpoch, 2, 4),
    (ApiKey::DescribeLogDirs, 1, 4),
    (ApiKey::DescribeTopicPartitions, 0, 0),
    (ApiKey::DescribeQuorum, 0, 2),
    (ApiKey::ElectLeaders, 0, 2),
    (ApiKey::AddPartitionsToTxn, 0, 5),
    (ApiKey::AddOffsetsToTxn, 0, 4),
    (ApiKey::EndTxn, 0, 5),
    (ApiKey::WriteTxnMarkers, 1, 1),
    (ApiKey::TxnOffsetCommit, 0, 5),
    (ApiKey::DescribeProducers, 0, 0),
    (ApiKey::ListTransactions, 0, 2),
    (ApiKey::DescribeTransactions, 0, 0),
    // Version 0 of the handshake sends the mechanism's tokens bare, outside Kafka's framing:
    // only version 1, with SaslAuthenticate, is served (every current client uses it).
    (ApiKey::SaslHandshake, 1, 1),
    (ApiKey::SaslAuthenticate, 0, 2),
    (ApiKey::DescribeUserScramCredentials, 0, 0),
    (ApiKey::AlterUserScramCredentials, 0, 0),
    // Version 1 is the first with pattern types; Kafka 4 serves 2-3.
    (ApiKey::DescribeAcls, 1, 3),
    (ApiKey::CreateAcls, 1, 3),
    (ApiKey::DeleteAcls, 1, 3),
    (ApiKey::DescribeClientQuotas, 0, 1),
    (ApiKey::AlterClientQuotas, 0, 1),
];

/// Versions advertised below what is served, as Kafka 4 does for Produce (KAFKA-18659): it lists
/// Produce from v0 but refuses v0-v2 requests, because librdkafka before 2.10 compresses with
/// gzip, snappy or lz4 only when the broker lists Produce v0. SaslHandshake is listed from v0,
/// as Kafka lists it, because librdkafka takes a broker whose range starts above 0 for one
/// without SASL; it then uses v1.
pub const ADVERTISED_MIN_VERSIONS: &[(ApiKey, i16)] =
    &[(ApiKey::Produce, 0), (ApiKey::SaslHandshake, 0)];

/// The (min, max) versions of `key` that ApiVersions lists.
pub fn advertised_versions(key: ApiKey, min: i16, max: i16) -> (i16, i16) {
    let min = ADVERTISED_MIN_VERSIONS
        .iter()
        .find(|(advertised, _)| *advertised == key)
        .map_or(min, |(_, advertised_min)| *advertised_min);
    (min, max)
}

#[derive(Debug, thiserror::Error)]
pub enum ProtocolError {
    #[error("request too short to hold an API key and version ({0} bytes)")]
    Short(usize),
    #[error("unknown API key {0}")]
    UnknownApiKey(i16),
    #[error("unsupported version {version} of {key:?}")]
    UnsupportedVersion { key: ApiKey, version: i16 },
    #[error("cannot decode {key:?} v{version}: {reason}")]
    Decode {
        key: ApiKey,
        version: i16,
        reason: String,
    },
    #[error("cannot encode response to {key:?} v{version}: {reason}")]
    Encode {
        key: ApiKey,
        version: i16,
        reason: String,
    },
}

/// The versions of `key` this broker serves, if any.
pub fn supported_versions(key: ApiKey) -> Option<(i16, i16)> {
    SUPPORTED_APIS
        .iter()
        .find(|(supported, _, _)| *supported == key)
        .map(|(_, min, max)| (*min, *max))
}

pub fn is_supported(key: ApiKey, version: i16) -> bool {
    supported_versions(key).is_some_and(|(min, max)| (min..=max).contains(&version))
}

/// API key and version from the first four bytes of a request.
pub fn peek_api(frame: &[u8]) -> Result<(ApiKey, i16), ProtocolError> {
    if frame.len() < 4 {
        return Err(ProtocolError::Short(frame.len()));
    }
    let raw_key = i16::from_be_bytes([frame[0], frame[1]]);
    let version = i16::from_be_bytes([frame[2], frame[3]]);
    let key = ApiKey::try_from(raw_key).map_err(|_| ProtocolError::UnknownApiKey(raw_key))?;
    Ok((key, version))
}

/// A request as the broker serves it: its key, version, header and decoded body.
pub struct Request {
    pub key: ApiKey,
    pub version: i16,
    pub header: RequestHeader,
    pub body: RequestKind,
}

/// Decodes one request frame (without its size prefix): API key and version, header, and the
/// body of any API and version this broker serves. Every malformed, unknown or unsupported
/// request is an error, never a panic (the `request_decoding` fuzz target holds it to that).
pub fn decode_request(mut frame: Bytes) -> Result<Request, ProtocolError> {
    let (key, version) = peek_api(&frame)?;
    if !is_supported(key, version) {
        return Err(ProtocolError::UnsupportedVersion { key, version });
    }
    let header = decode_header(&mut frame, key, version)?;
    let body =
        RequestKind::decode(key, &mut frame, version).map_err(|error| ProtocolError::Decode {
            key,
            version,
            reason: error.to_string(),
        })?;
    Ok(Request {
        key,
        version,
        header,
        body,
    })
}

/// Decodes the request header, leaving `frame` at the start of the body.
pub fn decode_header(
    frame: &mut Bytes,
    key: ApiKey,
    version: i16,
) -> Result<RequestHeader, ProtocolError> {
    RequestHeader::decode(frame, key.request_header_version(version)).map_err(|error| {
        ProtocolError::Decode {
            key,
            version,
            reason: format!("header: {error}"),
        }
    })
}

/// Frames a response: size, response header for `key`/`version`, body.
pub fn encode_response<T: Encodable>(
    correlation_id: i32,
    key: ApiKey,
    version: i16,
    body: &T,
) -> Result<BytesMut, ProtocolError> {
    let (header, header_version, size) = framing(correlation_id, key, version, body)?;
    let mut out = BytesMut::with_capacity(FRAME_SIZE_BYTES + size);
    put_frame(&mut out, &header, header_version, size, key, version, body)?;
    Ok(out)
}

/// Frames a response as `encode_response` does, but leaves each of `shared` (record sets the
/// body holds) in its own memory: the frame's parts point at them instead of copying them.
pub fn encode_response_sharing<T: Encodable>(
    correlation_id: i32,
    key: ApiKey,
    version: i16,
    body: &T,
    shared: Vec<Bytes>,
) -> Result<Frame, ProtocolError> {
    let (header, header_version, size) = framing(correlation_id, key, version, body)?;
    let shared_len: usize = shared.iter().map(Bytes::len).sum();
    let copied_len = (FRAME_SIZE_BYTES + size).saturating_sub(shared_len);
    let mut out = frame::PartsBuf::new(shared, copied_len);
    put_frame(&mut out, &header, header_version, size, key, version, body)?;
    Ok(out.finish())
}

fn encode_error(key: ApiKey, version: i16) -> impl Fn(&dyn std::fmt::Display) -> ProtocolError {
    move |error| ProtocolError::Encode {
        key,
        version,
        reason: error.to_string(),
    }
}

/// The response header, its version, and the size of header and body.
fn framing<T: Encodable>(
    correlation_id: i32,
    key: ApiKey,
    version: i16,
    body: &T,
) -> Result<(ResponseHeader, i16, usize), ProtocolError> {
    let encode_error = encode_error(key, version);
    let header = ResponseHeader::default().with_correlation_id(correlation_id);
    let header_version = key.response_header_version(version);
    let size = header
        .compute_size(header_version)
        .map_err(|error| encode_error(&error))?
        + body
            .compute_size(version)
            .map_err(|error| encode_error(&error))?;
    Ok((header, header_version, size))
}

fn put_frame<B: kafka_protocol::protocol::buf::ByteBufMut, T: Encodable>(
    out: &mut B,
    header: &ResponseHeader,
    header_version: i16,
    size: usize,
    key: ApiKey,
    version: i16,
    body: &T,
) -> Result<(), ProtocolError> {
    let encode_error = encode_error(key, version);
    out.put_i32(size as i32);
    header
        .encode(out, header_version)
        .map_err(|error| encode_error(&error))?;
    body.encode(out, version)
        .map_err(|error| encode_error(&error))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(bytes: &[u8]) -> Bytes {
        Bytes::copy_from_slice(bytes)
    }

    /// Proves a request whose array count claims far more elements than its bytes could hold
    /// is a decode error, in both array encodings, and never a reservation of the claimed size
    /// (which would abort the broker; `fuzz/`'s request_decoding target found it).
    #[test]
    fn huge_array_counts_are_decode_errors() {
        // Metadata v0: header (key 3, version 0, correlation 1, null client id), then a topic
        // array of 2^31-1 entries and no bytes for them.
        let classic = [0, 3, 0, 0, 0, 0, 0, 1, 0xff, 0xff, 0x7f, 0xff, 0xff, 0xff];
        assert!(matches!(
            decode_request(frame(&classic)),
            Err(ProtocolError::Decode { .. })
        ));
        // Metadata v12 (flexible): no header tags, then a compact array count of 2^32-2.
        let compact = [
            0, 3, 0, 12, 0, 0, 0, 1, 0xff, 0xff, 0, 0xff, 0xff, 0xff, 0xff, 0x0f,
        ];
        assert!(matches!(
            decode_request(frame(&compact)),
            Err(ProtocolError::Decode { .. })
        ));
    }

    /// Proves a record batch claiming 2^31-1 records fails to decode instead of reserving them.
    #[test]
    fn huge_record_counts_are_decode_errors() {
        let mut batch = crate::storage::batch::tests::encoded_batch(1, 8);
        // recordCount sits at byte 57 of the batch header.
        batch[57..61].copy_from_slice(&i32::MAX.to_be_bytes());
        let mut bytes = Bytes::from(batch);
        assert!(kafka_protocol::records::RecordBatchDecoder::decode(&mut bytes).is_err());
    }
}
