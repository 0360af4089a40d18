//! The CONTROLLER listener and the connections to it (`rpc` has the frame format): raft
//! messages from controller to controller, one connection per peer and direction, and calls
//! from brokers and controllers to the active controller. A peer that is down costs nothing but
//! dropped messages, which raft retries by itself. The listener speaks PLAINTEXT or TLS
//! (`config::links`: the same listener's keys on both ends; `ssl.client.auth=required` admits
//! only nodes whose certificate the truststore signs), and on SASL listeners takes Kafka's
//! SaslHandshake and SaslAuthenticate frames (`api::sasl`) before any of its own. A session
//! the listener limits (`connections.max.reauth.ms`) ends with its connection, and the node
//! logs in again by connecting again.

use std::collections::BTreeMap;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures_lite::AsyncWriteExt;
use glommio::net::TcpListener;
use kafka_protocol::messages::{ApiKey, RequestKind};
use protobuf::Message as _;
use raft::prelude::Message;

use super::driver::Event;
use super::metadata_log::raft_id;
use super::rpc::{self, Call, Reply, CONTROLLER_CALL, RAFT_MESSAGE};
use super::{Job, TopicError};
use crate::api::sasl::{SaslExchange, SaslState};
use crate::client::security::ClientSecurity;
use crate::config::security::SaslSettings;
use crate::config::Voter;
use crate::net::frame::{FrameError, FrameReader};
use crate::net::stream::Stream;
use crate::runtime::peer::{PeerConnection, PeerError};

/// Raft messages queued for one peer before new ones are dropped.
const PEER_QUEUE: usize = 1024;
/// Pause before connecting again to a controller that refused or dropped a connection.
const RECONNECT_DELAY: Duration = Duration::from_millis(200);
/// Largest frame the controller listener reads.
const FRAME_BYTES_MAX: usize = 64 << 20;
/// The longest a metadata fetch may wait for a new entry.
const FETCH_WAIT_MAX: Duration = Duration::from_secs(5);
/// How long a call keeps looking for the active controller.
pub const CALL_DEADLINE: Duration = Duration::from_secs(15);
/// How long connecting, TLS handshake included, may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// A sender per other voter, each drained by a task that keeps a connection to it.
pub fn spawn_peers(
    voters: &[Voter],
    own_id: i32,
    cluster_id: &Rc<str>,
    security: &ClientSecurity,
) -> BTreeMap<u64, flume::Sender<Message>> {
    voters
        .iter()
        .filter(|voter| voter.node_id != own_id)
        .map(|voter| {
            let (sender, queue) = flume::bounded(PEER_QUEUE);
            let task = send_to_peer(voter.clone(), queue, cluster_id.clone(), security.clone());
            glommio::spawn_local(task).detach();
            (raft_id(voter.node_id), sender)
        })
        .collect()
}

async fn send_to_peer(
    voter: Voter,
    queue: flume::Receiver<Message>,
    cluster_id: Rc<str>,
    security: ClientSecurity,
) {
    let address = format!("{}:{}", voter.host, voter.port);
    let mut stream: Option<Stream> = None;
    let mut warned = false;
    while let Ok(message) = queue.recv_async().await {
        if stream.is_none() {
            match connect(&address, &security).await {
                Ok((connected, _)) => {
                    tracing::info!("connected to controller {} at {address}", voter.node_id);
                    stream = Some(connected);
                    warned = false;
                }
                Err(error) => {
                    if !warned {
                        match error.is_security() {
                            true => tracing::error!(
                                "controller {} at {address} refused this node: {error}",
                                voter.node_id
                            ),
                            false => tracing::warn!(
                                "cannot reach controller {} at {address}: {error}",
                                voter.node_id
                            ),
                        }
                        warned = true;
                    }
                    // What queued meanwhile is stale; raft sends again.
                    glommio::timer::sleep(RECONNECT_DELAY).await;
                    queue.drain().for_each(drop);
                    continue;
                }
            }
        }
        let body = match message.write_to_bytes() {
            Ok(body) => body,
            Err(error) => {
                tracing::error!("cannot encode a raft message: {error}");
                continue;
            }
        };
        let frame = rpc::request_frame(RAFT_MESSAGE, 0, &cluster_id, &body);
        let Some(connection) = stream.as_mut() else {
            continue;
        };
        // TLS keeps what the socket did not take until flushed.
        let written = async {
            connection.write_all(&frame).await?;
            connection.flush().await
        };
        if let Err(error) = written.await {
            tracing::debug!("connection to controller {} lost: {error}", voter.node_id);
            stream = None;
        }
    }
}

/// Connects to the controller listener at `address` and logs in as the link's security says
/// (TLS, then SASL in Kafka's frames); the stream and what was read ahead of it.
async fn connect(
    address: &str,
    security: &ClientSecurity,
) -> Result<(Stream, FrameReader), PeerError> {
    PeerConnection::open_stream(address, LINK_CLIENT_ID, security, CONNECT_TIMEOUT).await
}

/// The client id of this node's SASL requests to the controllers.
const LINK_CLIENT_ID: &str = "flink-controller-link";

/// Where the CONTROLLER listener hands what arrives.
#[derive(Clone)]
pub struct Inbound {
    pub cluster_id: Rc<str>,
    pub driver: Rc<super::driver::Driver>,
    pub events: flume::Sender<Event>,
    pub calls: flume::Sender<Job>,
}

/// How the listener's connections must prove who they are: TLS when `tls` is given, then SASL
/// when `sasl` is.
#[derive(Clone, Default)]
pub struct ListenerGuard {
    pub tls: Option<Arc<rustls::ServerConfig>>,
    pub sasl: Option<Rc<SaslSettings>>,
    /// The listener's name, for log lines.
    pub name: Rc<str>,
}

/// Serves the listener's connections.
pub async fn accept_loop(listener: TcpListener, inbound: Inbound, guard: ListenerGuard) {
    loop {
        match listener.accept().await {
            Ok(stream) => {
                let task = accept_connection(stream, inbound.clone(), guard.clone());
                glommio::spawn_local(task).detach();
            }
            Err(error) => {
                tracing::warn!("accept on the controller listener failed: {error}");
                glommio::timer::sleep(Duration::from_millis(10)).await;
            }
        }
    }
}

async fn accept_connection(tcp: glommio::net::TcpStream, inbound: Inbound, guard: ListenerGuard) {
    let peer = tcp
        .peer_addr()
        .map(|address| address.to_string())
        .unwrap_or_default();
    let _ = tcp.set_nodelay(true);
    let stream = match guard.tls.clone() {
        None => Stream::Plain(tcp),
        Some(config) => {
            let handshake = async { crate::net::tls::accept(tcp, config).await.map(Some) };
            let deadline = async {
                glommio::timer::sleep(CONNECT_TIMEOUT * 5).await;
                Ok(None)
            };
            match futures_lite::future::or(handshake, deadline).await {
                Ok(Some(stream)) => Stream::Tls(Box::new(stream)),
                Ok(None) => {
                    tracing::warn!(
                        "controller connection from {peer}: the TLS handshake timed out"
                    );
                    return;
                }
                Err(error) => {
                    tracing::warn!(
                        "Failed authentication with {peer} on the controller listener (SSL handshake failed: {error})"
                    );
                    return;
                }
            }
        }
    };
    serve_connection(stream, peer, inbound, guard).await;
}

async fn serve_connection(
    mut stream: Stream,
    peer: String,
    inbound: Inbound,
    guard: ListenerGuard,
) {
    let mut warned_cluster = false;
    let mut frames = FrameReader::new();
    let sasl = SaslState::new(guard.sasl.clone());
    loop {
        let frame = match frames.read_frame(&mut stream, FRAME_BYTES_MAX).await {
            Ok(Some(frame)) => frame,
            Ok(None) => break,
            Err(FrameError::Io(error)) => {
                tracing::debug!("controller connection from {peer} ended: {error}");
                break;
            }
            Err(error) => {
                tracing::warn!("closing controller connection from {peer}: {error}");
                break;
            }
        };
        if let Some(key) = sasl_request(&frame) {
            match serve_sasl(&frame, key, &sasl, &peer, &guard.name, &inbound) {
                Ok(response) => {
                    if stream.write_all(&response).await.is_err() || stream.flush().await.is_err() {
                        break;
                    }
                    if sasl.is_failed() {
                        break;
                    }
                    continue;
                }
                Err(reason) => {
                    tracing::warn!("closing controller connection from {peer}: {reason}");
                    break;
                }
            }
        }
        if let Err(refusal) = sasl.admit_frame(None, std::time::Instant::now()) {
            tracing::warn!("closing controller connection from {peer}: {refusal}");
            break;
        }
        let (header, body) = match rpc::parse_request(&frame) {
            Ok(parsed) => parsed,
            Err(error) => {
                tracing::warn!("closing controller connection from {peer}: {error}");
                break;
            }
        };
        if *header.cluster_id != *inbound.cluster_id {
            if !warned_cluster {
                tracing::error!(
                    "{peer} belongs to cluster {} but this is cluster {}: ignoring it",
                    header.cluster_id,
                    inbound.cluster_id
                );
                warned_cluster = true;
            }
            if header.api_key != CONTROLLER_CALL {
                continue;
            }
        }
        match header.api_key {
            RAFT_MESSAGE => match Message::parse_from_bytes(body) {
                Ok(message) => {
                    let _ = inbound.events.try_send(Event::Message(Box::new(message)));
                }
                Err(error) => {
                    tracing::warn!(
                        "closing controller connection from {peer}: bad raft message: {error}"
                    );
                    break;
                }
            },
            CONTROLLER_CALL => {
                let reply = match rpc::decode::<Call>(body) {
                    Err(error) => {
                        tracing::warn!("closing controller connection from {peer}: {error}");
                        break;
                    }
                    Ok(_) if *header.cluster_id != *inbound.cluster_id => {
                        // A broker of another cluster is told so by name.
                        Reply::Refused(TopicError::InconsistentClusterId(format!(
                            "The request's cluster id {} does not match this cluster's id {}",
                            header.cluster_id, inbound.cluster_id
                        )))
                    }
                    Ok(Call::FetchMetadata {
                        from_index,
                        wait_ms,
                        ..
                    }) => {
                        let wait = Duration::from_millis(u64::from(wait_ms)).min(FETCH_WAIT_MAX);
                        let fetched = inbound.driver.fetch(from_index, wait).await;
                        Reply::Metadata {
                            snapshot: fetched.snapshot,
                            entries: fetched.entries,
                            leader: inbound.driver.leader(),
                        }
                    }
                    Ok(call) => {
                        let (reply, answer) = flume::bounded(1);
                        if inbound
                            .calls
                            .send_async(Job::Call(call, reply))
                            .await
                            .is_err()
                        {
                            break;
                        }
                        match answer.recv_async().await {
                            Ok(reply) => reply,
                            Err(_) => break,
                        }
                    }
                };
                // Every reply carries the index this controller has applied: a broker that
                // made a change waits until it has applied as far before answering its client.
                let body = rpc::encode(&(inbound.driver.applied_index(), reply));
                let mut response = Vec::with_capacity(8 + body.len());
                response.extend_from_slice(&((body.len() + 4) as i32).to_be_bytes());
                response.extend_from_slice(&header.correlation_id.to_be_bytes());
                response.extend_from_slice(&body);
                if stream.write_all(&response).await.is_err() || stream.flush().await.is_err() {
                    break;
                }
            }
            key => {
                tracing::warn!("closing controller connection from {peer}: API key {key} is not served on the controller listener");
                break;
            }
        }
    }
    let _ = stream.close().await;
}

/// The SASL request a frame carries, if it is one.
fn sasl_request(frame: &[u8]) -> Option<ApiKey> {
    let key = i16::from_be_bytes([*frame.first()?, *frame.get(1)?]);
    [ApiKey::SaslHandshake, ApiKey::SaslAuthenticate]
        .into_iter()
        .find(|sasl| *sasl as i16 == key)
}

/// Serves one SaslHandshake or SaslAuthenticate on the listener (Kafka's exchange, as on the
/// brokers' listeners, with SCRAM credentials from this controller's metadata); the response
/// frame, or why the connection must close.
fn serve_sasl(
    frame: &Bytes,
    key: ApiKey,
    sasl: &SaslState,
    peer: &str,
    listener: &str,
    inbound: &Inbound,
) -> Result<BytesMut, String> {
    sasl.admit_frame(Some(key), std::time::Instant::now())
        .map_err(|refusal| refusal.to_string())?;
    let request = match crate::protocol::decode_request(frame.clone()) {
        Ok(request) => request,
        Err(error) => return Err(error.to_string()),
    };
    let image = inbound.driver.image();
    let bootstrap = inbound.driver.bootstrap_image();
    let scram_credential = |user: &str, mechanism| {
        // A quorum that has committed nothing yet logs in with the bootstrap credentials
        // (`flink-storage.sh format --add-scram`), as Kafka's controllers do.
        let image = match image.metadata_index {
            0 => bootstrap.unwrap_or(&image),
            _ => &image,
        };
        crate::api::scram_credentials::lookup(image, user, mechanism)
    };
    let exchange = SaslExchange {
        state: sasl,
        peer,
        listener,
        version: request.version,
        scram_credential: &scram_credential,
    };
    let correlation_id = request.header.correlation_id;
    let encoded = match request.body {
        RequestKind::SaslHandshake(body) => {
            let response = crate::api::sasl::handshake(&exchange, body);
            crate::protocol::encode_response(correlation_id, key, request.version, &response)
        }
        RequestKind::SaslAuthenticate(body) => {
            let response = crate::api::sasl::authenticate(&exchange, body);
            crate::protocol::encode_response(correlation_id, key, request.version, &response)
        }
        _ => return Err(format!("API key {} is not served here", key as i16)),
    };
    encoded.map_err(|error| error.to_string())
}

/// A connection to whichever controller is active, found by asking the voters in turn and
/// following their hints.
pub struct ControllerClient {
    voters: Vec<Voter>,
    cluster_id: Rc<str>,
    security: ClientSecurity,
    target: usize,
    stream: Option<Stream>,
    /// Reads the responses of `stream` (replaced with it).
    frames: FrameReader,
    correlation_id: i32,
    /// The metadata index the controller that answered last had applied.
    pub last_index: u64,
    /// Whether a refused login was logged since the last success.
    refusal_logged: bool,
}

impl ControllerClient {
    pub fn new(
        voters: Vec<Voter>,
        cluster_id: Rc<str>,
        security: ClientSecurity,
    ) -> ControllerClient {
        ControllerClient {
            voters,
            cluster_id,
            security,
            target: 0,
            stream: None,
            frames: FrameReader::new(),
            correlation_id: 0,
            last_index: 0,
            refusal_logged: false,
        }
    }

    /// Sends the next calls to controller `node_id` (a known leader), if it is a voter and not
    /// the current target.
    pub fn prefer(&mut self, node_id: i32) {
        if let Some(position) = self
            .voters
            .iter()
            .position(|voter| voter.node_id == node_id)
        {
            if position != self.target {
                self.target = position;
                self.stream = None;
            }
        }
    }

    /// Sends `call` to the active controller, retrying elsewhere until `deadline` passes.
    pub async fn call(&mut self, call: &Call, deadline: Duration) -> Reply {
        let until = std::time::Instant::now() + deadline;
        let body = rpc::encode(call);
        loop {
            match self.try_call(&body).await {
                Ok(Reply::Refused(TopicError::NotController(leader))) => {
                    self.stream = None;
                    match self.voters.iter().position(|voter| voter.node_id == leader) {
                        Some(position) if position != self.target => self.target = position,
                        _ => {
                            self.target = (self.target + 1) % self.voters.len();
                            glommio::timer::sleep(RECONNECT_DELAY).await;
                        }
                    }
                }
                Ok(reply) => return reply,
                Err(error) => {
                    tracing::debug!(
                        "controller {} did not answer: {error}",
                        self.voters[self.target].node_id
                    );
                    self.stream = None;
                    self.target = (self.target + 1) % self.voters.len();
                    glommio::timer::sleep(RECONNECT_DELAY).await;
                }
            }
            if std::time::Instant::now() >= until {
                return Reply::Refused(TopicError::NotController(-1));
            }
        }
    }

    async fn try_call(&mut self, body: &[u8]) -> Result<Reply, String> {
        let stream = match &mut self.stream {
            Some(stream) => stream,
            None => {
                let voter = &self.voters[self.target];
                let address = format!("{}:{}", voter.host, voter.port);
                let (stream, frames) = match connect(&address, &self.security).await {
                    Ok(connected) => connected,
                    Err(error) if error.is_security() => {
                        if !self.refusal_logged {
                            tracing::error!(
                                "controller {} at {address} refused this node: {error}",
                                voter.node_id
                            );
                            self.refusal_logged = true;
                        }
                        return Err(error.to_string());
                    }
                    Err(error) => return Err(error.to_string()),
                };
                self.refusal_logged = false;
                self.frames = frames;
                self.stream.insert(stream)
            }
        };
        self.correlation_id = self.correlation_id.wrapping_add(1);
        let frame =
            rpc::request_frame(CONTROLLER_CALL, self.correlation_id, &self.cluster_id, body);
        stream
            .write_all(&frame)
            .await
            .map_err(|error| error.to_string())?;
        stream.flush().await.map_err(|error| error.to_string())?;
        let read = self.frames.read_frame(stream, FRAME_BYTES_MAX);
        let timeout = async {
            glommio::timer::sleep(CALL_DEADLINE).await;
            Ok(None)
        };
        let response = futures_lite::future::or(read, timeout)
            .await
            .map_err(|error| error.to_string())?
            .ok_or("no response")?;
        if response.len() < 4 || response[..4] != self.correlation_id.to_be_bytes() {
            return Err("response does not match the request".into());
        }
        let (index, reply) = rpc::decode::<(u64, Reply)>(&response[4..])?;
        self.last_index = index;
        Ok(reply)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Proves Kafka's SASL frames are told from the listener's own by their API key, and that
    /// short frames are neither.
    #[test]
    fn tells_sasl_frames_from_the_listeners_own() {
        let frame = |key: i16| rpc::request_frame(key, 1, "cluster", b"body")[4..].to_vec();
        assert_eq!(
            sasl_request(&frame(ApiKey::SaslHandshake as i16)),
            Some(ApiKey::SaslHandshake)
        );
        assert_eq!(
            sasl_request(&frame(ApiKey::SaslAuthenticate as i16)),
            Some(ApiKey::SaslAuthenticate)
        );
        assert_eq!(sasl_request(&frame(RAFT_MESSAGE)), None);
        assert_eq!(sasl_request(&frame(CONTROLLER_CALL)), None);
        assert_eq!(sasl_request(&frame(ApiKey::ApiVersions as i16)), None);
        assert_eq!(sasl_request(&[0]), None);
    }
}
