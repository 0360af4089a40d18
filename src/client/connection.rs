//! One blocking connection to one broker: framing (4-byte big-endian size, request header,
//! body), correlation ids, and the ApiVersions handshake that decides which version of every API
//! is used on this connection. Requests are strictly one at a time, so a response always answers
//! the request just sent; a correlation id mismatch is a protocol error and ends the connection.
//!
//! Opening follows `security.protocol` (`ClientSettings::security`): TLS right after the TCP
//! connection (`stream`), then ApiVersions, then SASL (`sasl`) before anything else is sent.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, ApiVersionsResponse, RequestHeader, ResponseHeader,
};
use kafka_protocol::protocol::{Decodable, Encodable, Request, StrBytes, VersionRange};

use super::cluster::ClientSettings;
use super::error::ClientError;
use super::stream::BrokerStream;

/// Largest response accepted; Kafka's socket.request.max.bytes default is 100 MiB.
const RESPONSE_BYTES_MAX: usize = 100 * 1024 * 1024;

/// Reads one size-prefixed response frame from `stream`, refusing a size over
/// `RESPONSE_BYTES_MAX`; errors name `address`.
pub(super) fn read_frame(stream: &mut impl Read, address: &str) -> Result<Bytes, ClientError> {
    let io_error = |source| ClientError::io(address, source);
    let mut size_bytes = [0u8; 4];
    stream.read_exact(&mut size_bytes).map_err(io_error)?;
    let size = i32::from_be_bytes(size_bytes);
    if size < 0 || size as usize > RESPONSE_BYTES_MAX {
        // A TLS record (an alert or a handshake, version 3.x) read as a size: the listener
        // speaks TLS and the client does not.
        if matches!(size_bytes, [0x15 | 0x16, 0x03, ..]) {
            return Err(ClientError::UnexpectedTls {
                address: address.to_string(),
            });
        }
        return Err(ClientError::BadResponseSize {
            address: address.to_string(),
            size_bytes: i64::from(size),
            limit_bytes: RESPONSE_BYTES_MAX,
        });
    }
    let mut frame = vec![0u8; size as usize];
    stream.read_exact(&mut frame).map_err(io_error)?;
    Ok(Bytes::from(frame))
}
/// How long to wait for a TCP connection to be established.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// ApiVersions version tried first; brokers that do not know it answer with version 0.
const API_VERSIONS_VERSION_PREFERRED: i16 = 3;
/// Kafka's UNSUPPORTED_VERSION error code.
const UNSUPPORTED_VERSION: i16 = 35;

/// Highest version of each API this client has been tested with.
pub fn client_version_max(api: ApiKey) -> i16 {
    match api {
        ApiKey::Metadata => 12,
        ApiKey::CreateTopics => 7,
        ApiKey::DeleteTopics => 6,
        ApiKey::Produce => 9,
        ApiKey::Fetch => 12,
        ApiKey::ListOffsets => 6,
        ApiKey::DescribeConfigs => 4,
        ApiKey::IncrementalAlterConfigs => 1,
        ApiKey::CreatePartitions => 3,
        ApiKey::DescribeQuorum => 2,
        ApiKey::ElectLeaders => 2,
        ApiKey::ApiVersions => API_VERSIONS_VERSION_PREFERRED,
        ApiKey::FindCoordinator => 4,
        ApiKey::JoinGroup => 7,
        ApiKey::SyncGroup => 5,
        ApiKey::Heartbeat => 4,
        ApiKey::LeaveGroup => 4,
        ApiKey::OffsetCommit => 8,
        ApiKey::OffsetFetch => 8,
        ApiKey::ListGroups => 4,
        ApiKey::DescribeGroups => 5,
        ApiKey::DeleteGroups => 2,
        ApiKey::OffsetDelete => 0,
        ApiKey::ListTransactions => 2,
        ApiKey::DescribeTransactions => 0,
        ApiKey::DescribeProducers => 0,
        ApiKey::WriteTxnMarkers => 1,
        ApiKey::SaslHandshake => 1,
        ApiKey::SaslAuthenticate => 2,
        ApiKey::DescribeUserScramCredentials => 0,
        ApiKey::AlterUserScramCredentials => 0,
        ApiKey::DescribeClientQuotas => 1,
        ApiKey::AlterClientQuotas => 1,
        ApiKey::DescribeAcls => 3,
        ApiKey::CreateAcls => 3,
        ApiKey::DeleteAcls => 3,
        _ => 0,
    }
}

/// A connected, handshaken (and, on a SASL listener, authenticated) broker connection.
pub struct Connection {
    stream: BrokerStream,
    address: String,
    client_id: String,
    request_timeout: Duration,
    correlation_id: i32,
    broker_versions: HashMap<i16, VersionRange>,
}

impl Connection {
    /// Connects to `address` (host:port), with TLS if the settings ask for it, runs the
    /// ApiVersions handshake, and authenticates with SASL if the settings ask for it.
    pub fn open(address: &str, settings: &ClientSettings) -> Result<Connection, ClientError> {
        let socket = connect(address)?;
        let io_error = |source| ClientError::io(address, source);
        socket.set_nodelay(true).map_err(io_error)?;
        socket
            .set_read_timeout(Some(settings.request_timeout))
            .map_err(io_error)?;
        let stream = match &settings.security.tls {
            Some(config) => {
                BrokerStream::tls(socket, config.clone(), host(address)).map_err(|reason| {
                    ClientError::Tls {
                        address: address.to_string(),
                        reason,
                    }
                })?
            }
            None => BrokerStream::Plain(socket),
        };
        let mut connection = Connection {
            stream,
            address: address.to_string(),
            client_id: settings.client_id.clone(),
            request_timeout: settings.request_timeout,
            correlation_id: 0,
            broker_versions: HashMap::new(),
        };
        connection.handshake()?;
        if let Some(credentials) = &settings.security.sasl {
            super::sasl::authenticate(&mut connection, credentials)?;
        }
        Ok(connection)
    }

    /// The broker's `host:port`, as given.
    pub fn address(&self) -> &str {
        &self.address
    }

    /// The correlation id of the most recent request.
    pub fn last_correlation_id(&self) -> i32 {
        self.correlation_id
    }

    /// Whether the broker advertises `api` at all.
    pub fn supports(&self, api: ApiKey) -> bool {
        self.broker_versions.contains_key(&(api as i16))
    }

    /// Sends `request` at the highest version both sides support and returns the response.
    pub fn send<R: Request>(
        &mut self,
        api: ApiKey,
        request: &R,
    ) -> Result<R::Response, ClientError> {
        let version = self.version_for::<R>(api)?;
        let correlation_id = self.write_request(api, version, request)?;
        self.read_response::<R::Response>(api, version, correlation_id)
    }

    /// Sends the request `build` makes for the negotiated version, for requests whose fields
    /// differ between versions (FindCoordinator's `key` and `coordinator_keys`). A `read_timeout`
    /// replaces the connection's for this request only: JoinGroup waits at the broker for the
    /// whole rebalance, longer than an ordinary request may take.
    pub fn send_built<R: Request>(
        &mut self,
        api: ApiKey,
        read_timeout: Option<Duration>,
        build: impl FnOnce(i16) -> R,
    ) -> Result<R::Response, ClientError> {
        let version = self.version_for::<R>(api)?;
        let request = build(version);
        if let Some(timeout) = read_timeout {
            self.set_read_timeout(timeout)?;
        }
        let result = self
            .write_request(api, version, &request)
            .and_then(|correlation_id| {
                self.read_response::<R::Response>(api, version, correlation_id)
            });
        if read_timeout.is_some() {
            self.set_read_timeout(self.request_timeout)?;
        }
        result
    }

    fn set_read_timeout(&mut self, timeout: Duration) -> Result<(), ClientError> {
        self.stream
            .socket()
            .set_read_timeout(Some(timeout))
            .map_err(|source| self.io_error(source))
    }

    /// Sends `request` and does not wait for a response: for Produce with acks=0, to which
    /// brokers send none.
    pub fn send_without_response<R: Request>(
        &mut self,
        api: ApiKey,
        request: &R,
    ) -> Result<(), ClientError> {
        let version = self.version_for::<R>(api)?;
        self.write_request(api, version, request).map(|_| ())
    }

    /// The version `send` would use for `api`, for a caller that frames requests itself.
    pub fn version_of<R: Request>(&self, api: ApiKey) -> Result<i16, ClientError> {
        self.version_for::<R>(api)
    }

    /// Ends one-request-at-a-time use: hands over the handshaken stream and the last
    /// correlation id used, for a pipelined sender (`pipelined_connection`) that frames its own
    /// requests and reads their responses on another thread.
    pub fn into_stream(self) -> (BrokerStream, i32) {
        (self.stream, self.correlation_id)
    }

    fn version_for<R: Request>(&self, api: ApiKey) -> Result<i16, ClientError> {
        let client_min = R::VERSIONS.min;
        let client_max = client_version_max(api).min(R::VERSIONS.max);
        let broker = self
            .broker_versions
            .get(&(api as i16))
            .copied()
            .unwrap_or(VersionRange { min: 0, max: -1 });
        let version = client_max.min(broker.max);
        if version < client_min.max(broker.min) {
            return Err(ClientError::UnsupportedVersion {
                address: self.address.clone(),
                api,
                broker_min: broker.min,
                broker_max: broker.max,
                client_min,
                client_max,
            });
        }
        Ok(version)
    }

    fn handshake(&mut self) -> Result<(), ClientError> {
        let request = ApiVersionsRequest::default()
            .with_client_software_name(StrBytes::from_static_str("flink-tools"))
            .with_client_software_version(StrBytes::from_static_str(env!("CARGO_PKG_VERSION")));
        let mut version = API_VERSIONS_VERSION_PREFERRED;
        let response = loop {
            let correlation_id = self.write_request(ApiKey::ApiVersions, version, &request)?;
            let mut body = self.read_body(ApiKey::ApiVersions, version, correlation_id)?;
            let error_code = body.clone().try_get_i16().unwrap_or(0);
            if error_code == UNSUPPORTED_VERSION && version > 0 {
                // The broker answers an unknown version with a v0 body listing what it knows.
                let fallback = decode::<ApiVersionsResponse>(
                    &mut body,
                    0,
                    ApiKey::ApiVersions,
                    &self.address,
                )?;
                version = fallback
                    .api_keys
                    .iter()
                    .find(|key| key.api_key == ApiKey::ApiVersions as i16)
                    .map_or(0, |key| key.max_version.min(version - 1));
                continue;
            }
            break decode::<ApiVersionsResponse>(
                &mut body,
                version,
                ApiKey::ApiVersions,
                &self.address,
            )?;
        };
        if let Some(error) = super::error::KafkaError::from_code(response.error_code) {
            return Err(error.into());
        }
        self.broker_versions = response
            .api_keys
            .iter()
            .map(|key| {
                let range = VersionRange {
                    min: key.min_version,
                    max: key.max_version,
                };
                (key.api_key, range)
            })
            .collect();
        Ok(())
    }

    fn write_request<R: Encodable>(
        &mut self,
        api: ApiKey,
        version: i16,
        request: &R,
    ) -> Result<i32, ClientError> {
        self.correlation_id = self.correlation_id.wrapping_add(1);
        let header = RequestHeader::default()
            .with_request_api_key(api as i16)
            .with_request_api_version(version)
            .with_correlation_id(self.correlation_id)
            .with_client_id(Some(StrBytes::from_string(self.client_id.clone())));
        let mut frame = BytesMut::with_capacity(256);
        frame.put_i32(0);
        let header_version = api.request_header_version(version);
        let encoded = header
            .encode(&mut frame, header_version)
            .and_then(|()| request.encode(&mut frame, version));
        if let Err(source) = encoded {
            return Err(ClientError::Encode {
                api,
                version,
                source: source.into(),
            });
        }
        let size = (frame.len() - 4) as i32;
        frame[0..4].copy_from_slice(&size.to_be_bytes());
        self.stream
            .write_all(&frame)
            .and_then(|()| self.stream.flush())
            .map_err(|source| self.io_error(source))?;
        Ok(self.correlation_id)
    }

    fn read_response<T: Decodable>(
        &mut self,
        api: ApiKey,
        version: i16,
        correlation_id: i32,
    ) -> Result<T, ClientError> {
        let mut body = self.read_body(api, version, correlation_id)?;
        decode::<T>(&mut body, version, api, &self.address)
    }

    /// Reads one response frame, checks its header, and returns the body that follows it.
    fn read_body(
        &mut self,
        api: ApiKey,
        version: i16,
        correlation_id: i32,
    ) -> Result<Bytes, ClientError> {
        let mut frame = read_frame(&mut self.stream, &self.address)?;
        let header_version = api.response_header_version(version);
        let header = decode::<ResponseHeader>(&mut frame, header_version, api, &self.address)?;
        if header.correlation_id != correlation_id {
            return Err(ClientError::CorrelationMismatch {
                address: self.address.clone(),
                expected: correlation_id,
                actual: header.correlation_id,
            });
        }
        Ok(frame)
    }

    fn io_error(&self, source: std::io::Error) -> ClientError {
        ClientError::io(&self.address, source)
    }
}

fn decode<T: Decodable>(
    body: &mut Bytes,
    version: i16,
    api: ApiKey,
    address: &str,
) -> Result<T, ClientError> {
    T::decode(body, version).map_err(|source| ClientError::Decode {
        api,
        version,
        address: address.to_string(),
        source: source.into(),
    })
}

/// The host of a `host:port` address, without the brackets of an IPv6 literal: the name the
/// broker's certificate must carry.
fn host(address: &str) -> &str {
    let host = address.rsplit_once(':').map_or(address, |(host, _)| host);
    host.strip_prefix('[')
        .and_then(|host| host.strip_suffix(']'))
        .unwrap_or(host)
}

/// Resolves `address` and connects to the first socket address that accepts.
fn connect(address: &str) -> Result<TcpStream, ClientError> {
    let resolved = address
        .to_socket_addrs()
        .map_err(|_| ClientError::InvalidAddress {
            address: address.to_string(),
        })?;
    let mut last_error =
        std::io::Error::new(std::io::ErrorKind::NotFound, "address resolved to nothing");
    for socket_address in resolved {
        match TcpStream::connect_timeout(&socket_address, CONNECT_TIMEOUT) {
            Ok(stream) => return Ok(stream),
            Err(error) => last_error = error,
        }
    }
    Err(ClientError::Connect {
        address: address.to_string(),
        source: last_error,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_names_come_without_port_or_brackets() {
        // The TLS server name of an address: its host, an IPv6 literal unbracketed.
        assert_eq!(host("broker-1:9093"), "broker-1");
        assert_eq!(host("127.0.0.1:9093"), "127.0.0.1");
        assert_eq!(host("[::1]:9093"), "::1");
    }

    #[test]
    fn a_tls_alert_read_as_a_size_names_the_mismatch() {
        // A TLS listener's alert to a plaintext client is reported as such, not as a size.
        let alert: &[u8] = &[0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x32];
        let error = read_frame(&mut &alert[..], "broker:9093").unwrap_err();
        assert!(
            matches!(error, ClientError::UnexpectedTls { .. }),
            "{error}"
        );
        let huge: &[u8] = &[0x7f, 0xff, 0xff, 0xff];
        let error = read_frame(&mut &huge[..], "broker:9092").unwrap_err();
        assert!(
            matches!(error, ClientError::BadResponseSize { .. }),
            "{error}"
        );
    }
}
