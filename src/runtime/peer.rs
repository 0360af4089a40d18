//! A connection from this broker to another's inter-broker listener, carrying one Kafka request
//! at a time: replica fetches (`runtime::fetcher`), and through a shard's `PeerPool` transaction
//! markers (`txn::coordinator`) and partitions added to transactions (`api::transactions`).
//! Plain request and response; the other broker serves it like any client.

use std::cell::RefCell;
use std::collections::HashMap;
use std::time::Duration;

use bytes::{BufMut, BytesMut};
use futures_lite::AsyncWriteExt;
use glommio::net::TcpStream;
use kafka_protocol::messages::{ApiKey, RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};

/// How long a connection attempt may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum PeerError {
    #[error("cannot connect to {address}: {reason}")]
    Connect { address: String, reason: String },
    #[error("connecting to {0} timed out")]
    ConnectTimeout(String),
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

pub struct PeerConnection {
    pub address: String,
    stream: TcpStream,
    frames: crate::net::frame::FrameReader,
    correlation_id: i32,
    client_id: &'static str,
}

impl PeerConnection {
    pub async fn open(address: &str, client_id: &'static str) -> Result<PeerConnection, PeerError> {
        let connect = async {
            TcpStream::connect(address)
                .await
                .map_err(|error| PeerError::Connect {
                    address: address.to_string(),
                    reason: error.to_string(),
                })
        };
        let timeout = async {
            glommio::timer::sleep(CONNECT_TIMEOUT).await;
            Err(PeerError::ConnectTimeout(address.to_string()))
        };
        let stream = futures_lite::future::or(connect, timeout).await?;
        let _ = stream.set_nodelay(true);
        Ok(PeerConnection {
            address: address.to_string(),
            stream,
            frames: crate::net::frame::FrameReader::new(),
            correlation_id: 0,
            client_id,
        })
    }

    /// Sends `request` as `key` version `version` and waits up to `timeout` for its response,
    /// of at most `frame_bytes_max` bytes.
    pub async fn request<Request: Encodable, Response: Decodable>(
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
}

impl PeerPool {
    pub fn new(client_id: &'static str) -> PeerPool {
        PeerPool {
            idle: RefCell::new(HashMap::new()),
            client_id,
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
            None => PeerConnection::open(address, self.client_id).await?,
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
