//! The CONTROLLER listener and the connections to it (`rpc` has the frame format): raft
//! messages from controller to controller, one connection per peer and direction, and calls
//! from brokers and controllers to the active controller. A peer that is down costs nothing but
//! dropped messages, which raft retries by itself. The listener speaks PLAINTEXT or TLS
//! (`config::links`: the same listener's keys on both ends; `ssl.client.auth=required` admits
//! only nodes whose certificate the truststore signs).

use std::collections::BTreeMap;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use futures_lite::AsyncWriteExt;
use glommio::net::TcpListener;
use protobuf::Message as _;
use raft::prelude::Message;

use super::driver::Event;
use super::metadata_log::raft_id;
use super::rpc::{self, Call, Reply, CONTROLLER_CALL, RAFT_MESSAGE};
use super::{Job, TopicError};
use crate::client::security::ClientSecurity;
use crate::config::Voter;
use crate::net::frame::{FrameError, FrameReader};
use crate::net::link;
use crate::net::stream::Stream;

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
            match link::connect(&address, &security, CONNECT_TIMEOUT).await {
                Ok(connected) => {
                    tracing::info!("connected to controller {} at {address}", voter.node_id);
                    stream = Some(connected);
                    warned = false;
                }
                Err(error) => {
                    if !warned {
                        tracing::warn!(
                            "cannot reach controller {} at {address}: {error}",
                            voter.node_id
                        );
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
        let connection = stream.as_mut().expect("connected above");
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

/// Where the CONTROLLER listener hands what arrives.
#[derive(Clone)]
pub struct Inbound {
    pub cluster_id: Rc<str>,
    pub driver: Rc<super::driver::Driver>,
    pub events: flume::Sender<Event>,
    pub calls: flume::Sender<Job>,
}

/// Serves the listener's connections, through TLS when `tls` is given.
pub async fn accept_loop(
    listener: TcpListener,
    inbound: Inbound,
    tls: Option<Arc<rustls::ServerConfig>>,
) {
    loop {
        match listener.accept().await {
            Ok(stream) => {
                let task = accept_connection(stream, inbound.clone(), tls.clone());
                glommio::spawn_local(task).detach();
            }
            Err(error) => {
                tracing::warn!("accept on the controller listener failed: {error}");
                glommio::timer::sleep(Duration::from_millis(10)).await;
            }
        }
    }
}

async fn accept_connection(
    tcp: glommio::net::TcpStream,
    inbound: Inbound,
    tls: Option<Arc<rustls::ServerConfig>>,
) {
    let peer = tcp
        .peer_addr()
        .map(|address| address.to_string())
        .unwrap_or_default();
    let _ = tcp.set_nodelay(true);
    let stream = match tls {
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
    serve_connection(stream, peer, inbound).await;
}

async fn serve_connection(mut stream: Stream, peer: String, inbound: Inbound) {
    let mut warned_cluster = false;
    let mut frames = FrameReader::new();
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
        if self.stream.is_none() {
            let voter = &self.voters[self.target];
            let address = format!("{}:{}", voter.host, voter.port);
            let stream = link::connect(&address, &self.security, CONNECT_TIMEOUT)
                .await
                .map_err(|error| error.to_string())?;
            self.stream = Some(stream);
            self.frames = FrameReader::new();
        }
        self.correlation_id = self.correlation_id.wrapping_add(1);
        let frame =
            rpc::request_frame(CONTROLLER_CALL, self.correlation_id, &self.cluster_id, body);
        let stream = self.stream.as_mut().expect("connected above");
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
