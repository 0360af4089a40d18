//! ApiVersions: the APIs and versions this broker serves (`protocol::SUPPORTED_APIS`).

use bytes::BytesMut;
use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::{ApiKey, ApiVersionsRequest, ApiVersionsResponse};
use kafka_protocol::ResponseError;

use crate::protocol::{self, ProtocolError, SUPPORTED_APIS};

pub fn handle(_request: ApiVersionsRequest) -> ApiVersionsResponse {
    ApiVersionsResponse::default().with_api_keys(api_keys())
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
