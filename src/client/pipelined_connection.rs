//! A broker connection with several Produce requests in flight. The owning thread writes
//! requests back to back; a reader thread of the connection reads the responses in order (a
//! broker answers a connection's requests in the order they arrived), stamps each with the time
//! it arrived, and hands it with the request's descriptor to a channel that all connections of a
//! producer share.
//!
//! The caller bounds the requests in flight (max.in.flight.requests.per.connection), and with
//! them everything queued here: the reader holds at most that many descriptors and sends at
//! most that many replies. The reply channel is unbounded in type so that the reader never
//! blocks on it: a reader blocked while the owner blocks writing to a full socket would deadlock.
//! The handshake (TLS, ApiVersions, SASL) is `Connection`'s; after it, this module frames
//! requests itself, over the halves of the connection's stream (`stream::BrokerStream::split`).

use std::io::BufReader;
use std::net::Shutdown;
use std::sync::mpsc::{self, Receiver, Sender};
use std::thread;
use std::time::Instant;

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{
    ApiKey, ProduceRequest, ProduceResponse, RequestHeader, ResponseHeader,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};

use super::cluster::ClientSettings;
use super::connection::Connection;
use super::error::ClientError;
use super::stream::{StreamReader, StreamWriter};

/// The reader's buffer: several small Produce responses per read system call.
const READ_BUFFER_BYTES: usize = 64 * 1024;

/// A response to one request, or why there is none, with the request's descriptor.
pub struct Reply<D> {
    /// Which connection the request went out on (`PipelinedConnection::id`).
    pub connection_id: u64,
    pub descriptor: D,
    pub outcome: Result<ProduceResponse, ClientError>,
    /// When the reader had the whole response (or the error).
    pub received_at: Instant,
}

/// A request that could not be handed over, with its descriptor back.
pub struct SendFailure<D> {
    pub error: ClientError,
    pub descriptor: D,
}

struct Pending<D> {
    correlation_id: i32,
    descriptor: D,
}

pub struct PipelinedConnection<D> {
    id: u64,
    address: String,
    client_id: StrBytes,
    stream: StreamWriter,
    version: i16,
    correlation_id: i32,
    pending: Sender<Pending<D>>,
}

impl<D: Send + 'static> PipelinedConnection<D> {
    /// Connects to `address`, negotiates versions, and starts the reader thread, which sends
    /// replies to `replies` tagged with `id`.
    pub fn open(
        address: &str,
        settings: &ClientSettings,
        id: u64,
        replies: Sender<Reply<D>>,
    ) -> Result<PipelinedConnection<D>, ClientError> {
        let connection = Connection::open(address, settings)?;
        let version = connection.version_of::<ProduceRequest>(ApiKey::Produce)?;
        let (stream, correlation_id) = connection.into_stream();
        let io_error = |source| ClientError::io(address, source);
        stream
            .socket()
            .set_write_timeout(Some(settings.request_timeout))
            .map_err(io_error)?;
        let (stream, reader) = stream.split().map_err(io_error)?;
        let (pending, pending_receiver) = mpsc::channel();
        let reader = ReplyReader {
            stream: BufReader::with_capacity(READ_BUFFER_BYTES, reader),
            address: address.to_string(),
            version,
            connection_id: id,
        };
        thread::Builder::new()
            .name(format!("produce-reader-{id}"))
            .spawn(move || reader.run(pending_receiver, replies))
            .map_err(io_error)?;
        Ok(PipelinedConnection {
            id,
            address: address.to_string(),
            client_id: StrBytes::from_string(settings.client_id.clone()),
            stream,
            version,
            correlation_id,
            pending,
        })
    }

    pub fn id(&self) -> u64 {
        self.id
    }

    /// Writes `request` and hands its descriptor to the reader, which replies when the
    /// response arrives.
    pub fn send(&mut self, request: &ProduceRequest, descriptor: D) -> Result<(), SendFailure<D>> {
        let correlation_id = match self.write(request) {
            Ok(correlation_id) => correlation_id,
            Err(error) => return Err(SendFailure { error, descriptor }),
        };
        let pending = Pending {
            correlation_id,
            descriptor,
        };
        self.pending.send(pending).map_err(|returned| SendFailure {
            error: self.closed_error(),
            descriptor: returned.0.descriptor,
        })
    }

    /// Writes `request` without expecting a response (Produce with acks=0).
    pub fn send_without_reply(&mut self, request: &ProduceRequest) -> Result<(), ClientError> {
        self.write(request).map(|_| ())
    }

    fn write(&mut self, request: &ProduceRequest) -> Result<i32, ClientError> {
        self.correlation_id = self.correlation_id.wrapping_add(1);
        let frame = encode_request(request, self.version, self.correlation_id, &self.client_id)?;
        self.stream
            .write_all(&frame)
            .map_err(|source| ClientError::io(&self.address, source))?;
        Ok(self.correlation_id)
    }

    fn closed_error(&self) -> ClientError {
        ClientError::Io {
            address: self.address.clone(),
            source: std::io::Error::new(
                std::io::ErrorKind::ConnectionAborted,
                "the connection failed on an earlier request",
            ),
        }
    }
}

impl<D> Drop for PipelinedConnection<D> {
    fn drop(&mut self) {
        // Wakes a reader blocked on a response that will never be read; it then ends.
        let _ = self.stream.socket().shutdown(Shutdown::Both);
    }
}

/// The reader thread's half of a connection.
struct ReplyReader {
    stream: BufReader<StreamReader>,
    address: String,
    version: i16,
    connection_id: u64,
}

impl ReplyReader {
    /// Answers every descriptor in order until the owner hangs up. After the first failure the
    /// stream is out of step, so every later descriptor gets an error reply without a read.
    fn run<D>(mut self, pending: Receiver<Pending<D>>, replies: Sender<Reply<D>>) {
        let mut broken = false;
        while let Ok(next) = pending.recv() {
            let outcome = match broken {
                true => Err(self.broken_error()),
                false => self.read_response(next.correlation_id),
            };
            if outcome.is_err() && !broken {
                broken = true;
                self.stream.get_ref().shutdown();
            }
            let reply = Reply {
                connection_id: self.connection_id,
                descriptor: next.descriptor,
                outcome,
                received_at: Instant::now(),
            };
            if replies.send(reply).is_err() {
                return;
            }
        }
    }

    fn read_response(&mut self, correlation_id: i32) -> Result<ProduceResponse, ClientError> {
        let mut frame = super::connection::read_frame(&mut self.stream, &self.address)?;
        let header_version = ApiKey::Produce.response_header_version(self.version);
        let header = ResponseHeader::decode(&mut frame, header_version)
            .map_err(|source| self.decode_error(source))?;
        if header.correlation_id != correlation_id {
            return Err(ClientError::CorrelationMismatch {
                address: self.address.clone(),
                expected: correlation_id,
                actual: header.correlation_id,
            });
        }
        ProduceResponse::decode(&mut frame, self.version)
            .map_err(|source| self.decode_error(source))
    }

    fn decode_error(&self, source: impl Into<super::error::ProtocolSource>) -> ClientError {
        ClientError::Decode {
            api: ApiKey::Produce,
            version: self.version,
            address: self.address.clone(),
            source: source.into(),
        }
    }

    fn broken_error(&self) -> ClientError {
        ClientError::Io {
            address: self.address.clone(),
            source: std::io::Error::new(
                std::io::ErrorKind::ConnectionAborted,
                "the connection failed on an earlier request",
            ),
        }
    }
}

/// Frames a Produce request: size, request header, body.
fn encode_request(
    request: &ProduceRequest,
    version: i16,
    correlation_id: i32,
    client_id: &StrBytes,
) -> Result<BytesMut, ClientError> {
    let header = RequestHeader::default()
        .with_request_api_key(ApiKey::Produce as i16)
        .with_request_api_version(version)
        .with_correlation_id(correlation_id)
        .with_client_id(Some(client_id.clone()));
    let body_bytes: usize = request
        .topic_data
        .iter()
        .flat_map(|topic| &topic.partition_data)
        .map(|partition| partition.records.as_ref().map_or(0, Bytes::len))
        .sum();
    let mut frame = BytesMut::with_capacity(body_bytes + 256);
    frame.put_i32(0);
    let header_version = ApiKey::Produce.request_header_version(version);
    header
        .encode(&mut frame, header_version)
        .and_then(|()| request.encode(&mut frame, version))
        .map_err(|source| ClientError::Encode {
            api: ApiKey::Produce,
            version,
            source: source.into(),
        })?;
    let size = (frame.len() - 4) as i32;
    frame[0..4].copy_from_slice(&size.to_be_bytes());
    Ok(frame)
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
    use kafka_protocol::messages::TopicName;

    #[test]
    fn frames_carry_their_size_and_decode_back() {
        // The size prefix counts header and body; the body decodes to the request sent.
        let records = Bytes::from_static(b"not really a batch");
        let request = ProduceRequest::default().with_acks(1).with_topic_data(vec![
            TopicProduceData::default()
                .with_name(TopicName(StrBytes::from_static_str("t")))
                .with_partition_data(vec![PartitionProduceData::default()
                    .with_index(3)
                    .with_records(Some(records.clone()))]),
        ]);
        let client_id = StrBytes::from_static_str("perf");
        for version in [3, 9] {
            let frame = encode_request(&request, version, 42, &client_id).expect("encodes");
            let size = i32::from_be_bytes([frame[0], frame[1], frame[2], frame[3]]);
            assert_eq!(size as usize, frame.len() - 4);
            let mut body = frame.freeze().slice(4..);
            let header_version = ApiKey::Produce.request_header_version(version);
            let header = RequestHeader::decode(&mut body, header_version).expect("header");
            assert_eq!(header.correlation_id, 42);
            let decoded = ProduceRequest::decode(&mut body, version).expect("body");
            assert_eq!(decoded, request);
        }
    }
}
