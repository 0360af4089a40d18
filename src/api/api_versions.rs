//! ApiVersions: the APIs and versions this broker serves (`protocol::SUPPORTED_APIS`), and from
//! v3 the feature levels: `transaction.version` supported from 0 to 2 and finalized at
//! `txn::TRANSACTION_VERSION`, which Kafka 4 clients read to choose transactions version 2.

use bytes::BytesMut;
use kafka_protocol::messages::api_versions_response::{
    ApiVersion, FinalizedFeatureKey, SupportedFeatureKey,
};
use kafka_protocol::messages::{ApiKey, ApiVersionsRequest, ApiVersionsResponse};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

use crate::protocol::{self, ProtocolError, SUPPORTED_APIS};
use crate::txn::TRANSACTION_VERSION;

const TRANSACTION_VERSION_FEATURE: &str = "transaction.version";
/// The levels never change while the broker runs: one epoch, valid (>= 0) so clients take them.
const FINALIZED_FEATURES_EPOCH: i64 = 0;

/// Our list; from v3 the client's software name and version must be what Kafka accepts
/// (letters, digits, '-' and '.', starting and ending with a letter or digit), else the answer
/// carries INVALID_REQUEST, still with the list.
pub fn handle(request: ApiVersionsRequest, version: i16) -> ApiVersionsResponse {
    let response = ApiVersionsResponse::default()
        .with_api_keys(api_keys())
        .with_supported_features(vec![SupportedFeatureKey::default()
            .with_name(StrBytes::from_static_str(TRANSACTION_VERSION_FEATURE))
            .with_min_version(0)
            .with_max_version(TRANSACTION_VERSION)])
        .with_finalized_features_epoch(FINALIZED_FEATURES_EPOCH)
        .with_finalized_features(vec![FinalizedFeatureKey::default()
            .with_name(StrBytes::from_static_str(TRANSACTION_VERSION_FEATURE))
            .with_min_version_level(TRANSACTION_VERSION)
            .with_max_version_level(TRANSACTION_VERSION)]);
    let valid = version < 3
        || (valid_software_field(&request.client_software_name)
            && valid_software_field(&request.client_software_version));
    match valid {
        true => response,
        false => response.with_error_code(ResponseError::InvalidRequest.code()),
    }
}

/// Kafka's `[a-zA-Z0-9](?:[a-zA-Z0-9\-.]*[a-zA-Z0-9])?`.
fn valid_software_field(text: &str) -> bool {
    let bytes = text.as_bytes();
    let edge = |byte: &u8| byte.is_ascii_alphanumeric();
    !bytes.is_empty()
        && bytes.first().is_some_and(edge)
        && bytes.last().is_some_and(edge)
        && bytes
            .iter()
            .all(|byte| byte.is_ascii_alphanumeric() || *byte == b'-' || *byte == b'.')
}

/// A client asked with a newer ApiVersions than we serve: answer in v0 with
/// UNSUPPORTED_VERSION and our list, so it can retry with a version we have (KIP-511).
pub fn unsupported_version(frame: &[u8]) -> Result<BytesMut, ProtocolError> {
    let correlation_id = frame
        .get(4..8)
        .map(|bytes| i32::from_be_bytes(bytes.try_into().expect("four bytes")))
        .ok_or(ProtocolError::Short(frame.len()))?;
    let response = ApiVersionsResponse::default()
        .with_error_code(ResponseError::UnsupportedVersion.code())
        .with_api_keys(api_keys());
    protocol::encode_response(correlation_id, ApiKey::ApiVersions, 0, &response)
}

fn api_keys() -> Vec<ApiVersion> {
    SUPPORTED_APIS
        .iter()
        .map(|(key, min, max)| {
            let (min, max) = protocol::advertised_versions(*key, *min, *max);
            ApiVersion::default()
                .with_api_key(*key as i16)
                .with_min_version(min)
                .with_max_version(max)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Proves Kafka's rule for client software names and versions.
    #[test]
    fn validates_client_software_fields() {
        assert!(valid_software_field("confluent-kafka-python"));
        assert!(valid_software_field("2.16.1-rdkafka-2.12.1"));
        assert!(valid_software_field("a"));
        assert!(!valid_software_field(""));
        assert!(!valid_software_field("-lead"));
        assert!(!valid_software_field("trail."));
        assert!(!valid_software_field("has space"));
        let bad = ApiVersionsRequest::default()
            .with_client_software_name(kafka_protocol::protocol::StrBytes::from_static_str(
                "bad name",
            ))
            .with_client_software_version(kafka_protocol::protocol::StrBytes::from_static_str("1"));
        assert_eq!(
            handle(bad.clone(), 3).error_code,
            ResponseError::InvalidRequest.code()
        );
        assert_eq!(handle(bad, 2).error_code, 0);
    }
}
