//! A connection from this broker to another's inter-broker listener, carrying one Kafka request
//! at a time: replica fetches (`runtime::fetcher`), and through a shard's `PeerPool` transaction
//! markers (`txn::coordinator`) and partitions added to transactions (`api::transactions`).
//! Plain request and response; the other broker serves it like any client. The connection goes
//! through the inter-broker listener's TLS and SASL (`config::links`, `net::link`); a session
//! the other broker limits (KIP-368) logs in again before its end.

use std::cell::RefCell;
use std::collections::HashMap;
use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};
use futures_lite::AsyncWriteExt;
use kafka_protocol::messages::{
    ApiKey, RequestHeader, ResponseHeader, SaslAuthenticateRequest, SaslAuthenticateResponse,
    SaslHandshakeRequest, SaslHandshakeResponse,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};

use crate::client::security::ClientSecurity;
use crate::net::link::{self, LinkError};
use crate::net::stream::Stream;
use crate::security::login::{LoginStep, SaslLogin};

/// How long a connection attempt may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// SaslHandshake and SaslAuthenticate versions this node sends.
const SASL_HANDSHAKE_VERSION: i16 = 1;
const SASL_AUTHENTICATE_VERSION: i16 = 2;
/// The largest SASL answer taken.
const SASL_RESPONSE_BYTES_MAX: usize = 1 << 20;

#[derive(Debug, thiserror::Error)]
pub enum PeerError {
    #[error(transparent)]
    Link(#[from] LinkError),
    #[error("cannot encode a {0:?} request: {1}")]
    Encode(ApiKey, String),
    #[error("connection to {address} failed: {reason}")]
    Io { address: String, reason: String },
    #[error("no {0:?} response in time")]
    Timeout(ApiKey),
    #[error("{0} closed the connection")]
    Closed(String),
    #[error("bad {key:?} response: {reason}")]
    Decode { key: ApiKey, reason: String },
    #[error("the response does not match the request")]
    Mismatch,
}

impl PeerError {
    /// A refused login or a failed TLS handshake: trying again will not help until the
    /// configuration changes.
    pub fn is_security(&self) -> bool {
        matches!(
            self,
            PeerError::Link(LinkError::Authentication { .. } | LinkError::Tls { .. })
        )
    }
}

pub struct PeerConnection {
    pub address: String,
    stream: Stream,
    frames: crate::net::frame::FrameReader,
    correlation_id: i32,
    client_id: &'static str,
    security: ClientSecurity,
    /// When the SASL session must log in again (KIP-368).
    reauthenticate_at: Option<Instant>,
}

impl PeerConnection {
    /// Connects to the broker at `address` and logs in as `security` says.
    pub async fn open(
        address: &str,
        client_id: &'static str,
        security: &ClientSecurity,
    ) -> Result<PeerConnection, PeerError> {
        PeerConnection::open_within(address, client_id, security, CONNECT_TIMEOUT, None).await
    }

    /// As `open`, steered to shard `shard` of the broker's `shards` (`net::steering`): a replica
    /// fetcher reaches the shard that owns what it fetches.
    pub async fn open_to_shard(
        address: &str,
        client_id: &'static str,
        security: &ClientSecurity,
        (shard, shards): (usize, usize),
    ) -> Result<PeerConnection, PeerError> {
        let affinity = Some((shard, shards));
        PeerConnection::open_within(address, client_id, security, CONNECT_TIMEOUT, affinity).await
    }

    /// Connects to `address` within `timeout`, logs in, and hands over the stream with what
    /// was read ahead of it, for a link whose own messages follow the login (the controller
    /// link's). Such a link logs in again by connecting again.
    pub async fn open_stream(
        address: &str,
        client_id: &'static str,
        security: &ClientSecurity,
        timeout: Duration,
    ) -> Result<(Stream, crate::net::frame::FrameReader), PeerError> {
        let connection =
            PeerConnection::open_within(address, client_id, security, timeout, None).await?;
        Ok((connection.stream, connection.frames))
    }

    async fn open_within(
        address: &str,
        client_id: &'static str,
        security: &ClientSecurity,
        timeout: Duration,
        affinity: Option<(usize, usize)>,
    ) -> Result<PeerConnection, PeerError> {
        let stream = link::connect(address, security, timeout, affinity).await?;
        let mut connection = PeerConnection {
            address: address.to_string(),
            stream,
            frames: crate::net::frame::FrameReader::new(),
            correlation_id: 0,
            client_id,
            security: security.clone(),
            reauthenticate_at: None,
        };
        connection.authenticate().await?;
        Ok(connection)
    }

    /// Logs in with the link's SASL credentials, if it has any: SaslHandshake names the
    /// mechanism, SaslAuthenticate frames carry its messages.
    async fn authenticate(&mut self) -> Result<(), PeerError> {
        let Some(credentials) = self.security.sasl.clone() else {
            return Ok(());
        };
        let address = self.address.clone();
        let refused = |reason: String| {
            PeerError::Link(LinkError::Authentication {
                address: address.clone(),
                user: credentials.user.clone(),
                reason,
            })
        };
        let mut login = SaslLogin::new(&credentials).map_err(|error| refused(error.to_string()))?;
        let handshake = SaslHandshakeRequest::default()
            .with_mechanism(StrBytes::from_static_str(login.mechanism()));
        let answer: SaslHandshakeResponse = self
            .exchange(ApiKey::SaslHandshake, SASL_HANDSHAKE_VERSION, &handshake)
            .await?;
        if answer.error_code != 0 {
            let enabled: Vec<&str> = answer.mechanisms.iter().map(|m| m.as_str()).collect();
            return Err(refused(format!(
                "mechanism {} is not enabled there (error {}; enabled: {})",
                login.mechanism(),
                answer.error_code,
                enabled.join(", ")
            )));
        }
        let mut server_message = Bytes::new();
        loop {
            let step = login.next(&server_message);
            let message = match step.map_err(|error| refused(error.to_string()))? {
                LoginStep::Send(message) => message,
                LoginStep::Done => return Ok(()),
            };
            let request = SaslAuthenticateRequest::default().with_auth_bytes(Bytes::from(message));
            let answer: SaslAuthenticateResponse = self
                .exchange(
                    ApiKey::SaslAuthenticate,
                    SASL_AUTHENTICATE_VERSION,
                    &request,
                )
                .await?;
            if answer.error_code != 0 {
                let message = answer.error_message.as_ref().map(|m| m.to_string());
                return Err(refused(
                    message.unwrap_or_else(|| format!("error {}", answer.error_code)),
                ));
            }
            self.reauthenticate_at =
                link::reauthenticate_at(Instant::now(), answer.session_lifetime_ms);
            server_message = answer.auth_bytes;
        }
    }

    async fn exchange<Request: Encodable, Response: Decodable>(
        &mut self,
        key: ApiKey,
        version: i16,
        request: &Request,
    ) -> Result<Response, PeerError> {
        self.send(
            key,
            version,
            request,
            CONNECT_TIMEOUT,
            SASL_RESPONSE_BYTES_MAX,
        )
        .await
    }

    /// Sends `request` as `key` version `version` and waits up to `timeout` for its response,
    /// of at most `frame_bytes_max` bytes; a session about to end logs in again first.
    pub async fn request<Request: Encodable, Response: Decodable>(
        &mut self,
        key: ApiKey,
        version: i16,
        request: &Request,
        timeout: Duration,
        frame_bytes_max: usize,
    ) -> Result<Response, PeerError> {
        if self
            .reauthenticate_at
            .is_some_and(|at| Instant::now() >= at)
        {
            self.authenticate().await?;
        }
        self.send(key, version, request, timeout, frame_bytes_max)
            .await
    }

    async fn send<Request: Encodable, Response: Decodable>(
        &mut self,
        key: ApiKey,
        version: i16,
        request: &Request,
        timeout: Duration,
        frame_bytes_max: usize,
    ) -> Result<Response, PeerError> {
        self.correlation_id = self.correlation_id.wrapping_add(1);
        let header = RequestHeader::default()
            .with_request_api_key(key as i16)
            .with_request_api_version(version)
            .with_correlation_id(self.correlation_id)
            .with_client_id(Some(StrBytes::from_static_str(self.client_id)));
        let mut frame = BytesMut::with_capacity(256);
        frame.put_i32(0);
        header
            .encode(&mut frame, key.request_header_version(version))
            .and_then(|()| request.encode(&mut frame, version))
            .map_err(|error| PeerError::Encode(key, error.to_string()))?;
        let size = (frame.len() - 4) as i32;
        frame[..4].copy_from_slice(&size.to_be_bytes());
        let address = self.address.clone();
        let io = |error: std::io::Error| PeerError::Io {
            address: address.clone(),
            reason: error.to_string(),
        };
        self.stream.write_all(&frame).await.map_err(io)?;
        self.stream.flush().await.map_err(io)?;
        let read = async {
            self.frames
                .read_frame(&mut self.stream, frame_bytes_max)
                .await
                .map_err(|error| PeerError::Io {
                    address: self.address.clone(),
                    reason: error.to_string(),
                })
        };
        let timeout = async {
            glommio::timer::sleep(timeout).await;
            Err(PeerError::Timeout(key))
        };
        let mut body = futures_lite::future::or(read, timeout)
            .await?
            .ok_or_else(|| PeerError::Closed(self.address.clone()))?;
        let header = ResponseHeader::decode(&mut body, key.response_header_version(version))
            .map_err(|error| PeerError::Decode {
                key,
                reason: error.to_string(),
            })?;
        if header.correlation_id != self.correlation_id {
            return Err(PeerError::Mismatch);
        }
        Response::decode(&mut body, version).map_err(|error| PeerError::Decode {
            key,
            reason: error.to_string(),
        })
    }
}

/// Idle connections to other brokers, one kept per broker, shared by a shard's tasks: a request
/// takes the broker's connection (or opens one), and gives it back once answered; a connection
/// that failed is dropped.
pub struct PeerPool {
    idle: RefCell<HashMap<i32, PeerConnection>>,
    client_id: &'static str,
    security: ClientSecurity,
}

impl PeerPool {
    pub fn new(client_id: &'static str, security: ClientSecurity) -> PeerPool {
        PeerPool {
            idle: RefCell::new(HashMap::new()),
            client_id,
            security,
        }
    }

    /// Sends `request` to broker `node_id` at `address` and waits for its response.
    pub async fn request<Request: Encodable, Response: Decodable>(
        &self,
        node_id: i32,
        address: &str,
        key: ApiKey,
        version: i16,
        request: &Request,
        timeout: Duration,
    ) -> Result<Response, PeerError> {
        let cached = self.idle.borrow_mut().remove(&node_id);
        let mut connection = match cached.filter(|open| open.address == address) {
            Some(open) => open,
            None => PeerConnection::open(address, self.client_id, &self.security).await?,
        };
        let response = connection
            .request(key, version, request, timeout, POOLED_RESPONSE_BYTES_MAX)
            .await?;
        self.idle.borrow_mut().insert(node_id, connection);
        Ok(response)
    }
}

/// The largest response a pooled request takes (coordinator traffic, never records).
const POOLED_RESPONSE_BYTES_MAX: usize = 16 << 20;
