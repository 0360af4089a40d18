//! One client connection, pipelined: requests are read ahead and each is handled as its own task
//! on this shard, so that they complete in any order, while responses are written strictly in
//! request order (Kafka's guarantee per connection). A produce waiting for its fsync or its
//! replicas does not stop the next request from being read and appended.
//!
//! Two loops share the connection, both in its task: the reader reads a frame, decodes it and
//! starts its handler as `api::sequencing` orders it (reads at once; a produce once the previous
//! produce has reached its owners, so that appends keep request order; any other change alone);
//! the writer awaits the handlers in request order and writes their responses. A produce with
//! acks=0 gets no response and never holds up the writer.
//!
//! Bounds: `queued.max.requests` requests and `queued.max.request.bytes` bytes in flight per
//! connection (`in_flight::InFlight`). At either, the reader stops reading the socket, leaving
//! the next request's body unread (the client's sends then block), until responses drain; only
//! what arrived with the request's size was read ahead (at most 64 KiB, `frame::FrameReader`).
//!
//! Any framing or decoding error closes this connection only, with a log line, once the
//! responses of the requests before it are written; a response that cannot be encoded closes it
//! at that point in the order.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

use futures_lite::{AsyncRead, AsyncWrite, AsyncWriteExt};
use glommio::net::TcpStream;
use glommio::task::JoinHandle;

use super::connection_quotas::ConnectionSlot;
use super::frame::{FrameError, FrameReader, Receive};
use super::in_flight::InFlight;
use super::stream::Stream;
use crate::api::{ConnectionInfo, Decoded, Dispatched, Sequencing};
use crate::protocol::{Frame, ProtocolError};
use crate::runtime::shard::Shard;

type Handled = Result<Option<Frame>, ProtocolError>;

/// How long a client has to complete the TLS handshake once connected.
const TLS_HANDSHAKE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// A connection's listener and what the listener asks of it.
pub struct Accepted {
    pub listener: Rc<str>,
    pub tls: Option<std::sync::Arc<rustls::ServerConfig>>,
    pub sasl: Option<Rc<crate::config::security::SaslSettings>>,
    pub principals: Rc<crate::security::principal::PrincipalMapper>,
}

/// Serves the connection until the client closes it or it fails; `slot` holds its place in
/// the broker's connection counts until then. A TLS listener's connection first completes its
/// handshake (a failure is logged, as Kafka logs it, and closes the connection).
pub async fn serve(shard: Rc<Shard>, accepted: Accepted, stream: TcpStream, slot: ConnectionSlot) {
    let peer = stream
        .peer_addr()
        .map(|address| address.to_string())
        .unwrap_or_else(|_| "unknown peer".to_string());
    let client_host = stream
        .peer_addr()
        .map(|address| format!("/{}", address.ip()))
        .unwrap_or_default();
    let _ = stream.set_nodelay(true);
    let mut tls_principal = None;
    let stream = match accepted.tls {
        None => Stream::Plain(stream),
        Some(config) => {
            let handshake = async { Some(super::tls::accept(stream, config).await) };
            let timeout = async {
                glommio::timer::sleep(TLS_HANDSHAKE_TIMEOUT).await;
                None
            };
            match futures_lite::future::or(handshake, timeout).await {
                Some(Ok(tls)) => {
                    tracing::debug!(
                        "{} connection from {peer} on listener {}",
                        tls.protocol(),
                        accepted.listener
                    );
                    if let Some(certificate) = tls.peer_certificate() {
                        let principal = crate::security::principal::subject_name(certificate)
                            .and_then(|name| accepted.principals.map(&name));
                        match principal {
                            Ok(name) => tls_principal = Some(format!("User:{name}")),
                            Err(error) => {
                                tracing::info!(
                                    "Failed authentication with {peer} on listener {} ({error})",
                                    accepted.listener
                                );
                                return;
                            }
                        }
                    }
                    Stream::Tls(Box::new(tls))
                }
                Some(Err(error)) => {
                    tracing::info!(
                        "Failed authentication with {peer} on listener {} (SSL handshake failed: {error})",
                        accepted.listener
                    );
                    return;
                }
                None => {
                    tracing::info!(
                        "Failed authentication with {peer} on listener {} (SSL handshake not completed within {} s)",
                        accepted.listener,
                        TLS_HANDSHAKE_TIMEOUT.as_secs()
                    );
                    return;
                }
            }
        }
    };
    let connection = Rc::new(ConnectionInfo {
        listener: accepted.listener,
        client_host,
        peer: peer.clone(),
        txn_added: Default::default(),
        sasl: crate::api::sasl::SaslState::new(accepted.sasl),
        tls_principal,
        muted_until: Default::default(),
    });
    let pipeline = Rc::new(Pipeline::new(InFlight::new(
        shard.config.queued_max_requests,
        shard.config.request_bytes_in_flight_max(),
    )));
    let socket = Rc::new(RefCell::new(stream));
    crate::metrics::count_connection(1);
    let reader = Reader {
        shard: shard.clone(),
        connection: connection.clone(),
        pipeline: pipeline.clone(),
        socket: SocketHalf(socket.clone()),
        frames: FrameReader::new(),
        peer: &peer,
    };
    let reading = async {
        reader.run().await;
        pipeline.reading_ended();
        // The writer decides when the connection ends: after the last response.
        std::future::pending::<()>().await
    };
    let mut writer = SocketHalf(socket);
    futures_lite::future::or(
        write_responses(&shard, &connection, &pipeline, &mut writer),
        reading,
    )
    .await;
    // Handlers still running finish on their own (their tasks are detached); only their
    // responses are dropped.
    pipeline.responses.borrow_mut().clear();
    crate::metrics::count_connection(-1);
    let _ = writer.close().await;
    drop(slot);
}

/// A response to write, in request order.
enum Response {
    /// Known when the request was read (ApiVersions of an unsupported version).
    Ready(Frame),
    /// The handler's task.
    Handler(JoinHandle<Handled>),
}

/// What the reader and the writer of a connection share.
struct Pipeline {
    in_flight: RefCell<InFlight>,
    /// Responses due, in request order.
    responses: RefCell<VecDeque<Response>>,
    reading_ended: Cell<bool>,
    /// Wakes the reader when room is made or a handler ends.
    reader_wakeup: Wakeup,
    /// Wakes the writer when a response is queued or reading ends.
    writer_wakeup: Wakeup,
}

impl Pipeline {
    fn new(in_flight: InFlight) -> Pipeline {
        Pipeline {
            in_flight: RefCell::new(in_flight),
            responses: RefCell::new(VecDeque::new()),
            reading_ended: Cell::new(false),
            reader_wakeup: Wakeup::default(),
            writer_wakeup: Wakeup::default(),
        }
    }

    fn push(&self, response: Response) {
        self.responses.borrow_mut().push_back(response);
        self.writer_wakeup.wake();
    }

    fn reading_ended(&self) {
        self.reading_ended.set(true);
        self.writer_wakeup.wake();
    }

    /// A handler ended (see `InFlight::finish`).
    fn finish(&self, held: usize, response_size: usize) {
        self.in_flight.borrow_mut().finish(held, response_size);
        self.reader_wakeup.wake();
    }

    /// A request was answered (see `InFlight::answered`).
    fn answered(&self, response_size: usize) {
        self.in_flight.borrow_mut().answered(response_size);
        self.reader_wakeup.wake();
    }

    /// The next response due; `None` once reading has ended and every response is out.
    async fn next_response(&self) -> Option<Response> {
        self.writer_wakeup
            .until(|| !self.responses.borrow().is_empty() || self.reading_ended.get())
            .await;
        self.responses.borrow_mut().pop_front()
    }

    async fn until_in_flight(&self, ready: impl Fn(&InFlight) -> bool) {
        self.reader_wakeup
            .until(|| ready(&self.in_flight.borrow()))
            .await;
    }
}

/// Wakes the one task that waits on it (a connection's reader, or its writer).
#[derive(Default)]
struct Wakeup {
    waker: Cell<Option<Waker>>,
}

impl Wakeup {
    fn wake(&self) {
        if let Some(waker) = self.waker.take() {
            waker.wake();
        }
    }

    /// Returns once `ready` holds, checking it again at each wake-up.
    async fn until(&self, ready: impl Fn() -> bool) {
        std::future::poll_fn(|context| match ready() {
            true => Poll::Ready(()),
            false => {
                self.waker.set(Some(context.waker().clone()));
                Poll::Pending
            }
        })
        .await
    }
}

/// The reading side: frames in, handlers started in order.
struct Reader<'a> {
    shard: Rc<Shard>,
    connection: Rc<ConnectionInfo>,
    pipeline: Rc<Pipeline>,
    socket: SocketHalf,
    frames: FrameReader,
    peer: &'a str,
}

impl Reader<'_> {
    /// Reads and starts requests until the stream ends or a request is malformed.
    async fn run(mut self) {
        let request_bytes_max = self.shard.config.socket_request_max_bytes as usize;
        // The previous produce, until it has been dispatched to its owners.
        let mut previous_produce: Option<flume::Receiver<()>> = None;
        let mut previous_exclusive = false;
        loop {
            let size = match self
                .frames
                .read_size(&mut self.socket, request_bytes_max)
                .await
            {
                Ok(Some(size)) => size,
                Ok(None) => return,
                Err(error) => return self.log_frame_error(error),
            };
            // Backpressure: the body stays in the socket until there is room for it.
            self.pipeline
                .until_in_flight(|in_flight| in_flight.admits(size))
                .await;
            self.pipeline.in_flight.borrow_mut().admit(size);
            let frame = match self.frames.read_body(&mut self.socket, size).await {
                Ok(frame) => frame,
                Err(error) => return self.log_frame_error(error),
            };
            if frame.len() >= 2 {
                crate::metrics::count_request(
                    i16::from_be_bytes([frame[0], frame[1]]),
                    frame.len() + 4,
                );
            }
            let request = match crate::api::decode(frame) {
                Ok(Decoded::Request(request)) => request,
                Ok(Decoded::Answered(response)) => {
                    let mut in_flight = self.pipeline.in_flight.borrow_mut();
                    in_flight.start(0);
                    in_flight.finish(size, response.len());
                    drop(in_flight);
                    self.pipeline.push(Response::Ready(response));
                    continue;
                }
                Err(error) => {
                    tracing::warn!(
                        "closing connection from {} on shard {}: {error}",
                        self.peer,
                        self.shard.id
                    );
                    return;
                }
            };
            let sequencing = crate::api::sequencing(&request);
            if sequencing == Sequencing::Exclusive || previous_exclusive {
                self.pipeline.until_in_flight(InFlight::idle).await;
            }
            // Checked once the requests before it are done (SASL requests run alone): only
            // ApiVersions and the SASL exchange come before authentication, and a session
            // past its lifetime ends here unless this begins its re-authentication.
            if let Err(refusal) = self
                .connection
                .sasl
                .admit(request.key, std::time::Instant::now())
            {
                tracing::info!(
                    "closing connection from {} on shard {}: {refusal}",
                    self.peer,
                    self.shard.id
                );
                return;
            }
            if sequencing == Sequencing::Produce {
                if let Some(previous) = previous_produce.take() {
                    // Returns (with an error) once the previous produce is dispatched.
                    let _ = previous.recv_async().await;
                }
            }
            previous_exclusive = sequencing == Sequencing::Exclusive;
            // A client over a quota (byte rate, request time) is served again once its throttle
            // time is over; a produce sets it before it is dispatched, so the next one waits.
            if let Some(until) = self.connection.muted_until.take() {
                glommio::timer::sleep(until.saturating_duration_since(std::time::Instant::now()))
                    .await;
            }
            let (dispatched, dispatch_wait) = Dispatched::new();
            if sequencing == Sequencing::Produce {
                previous_produce = Some(dispatch_wait);
            }
            let expects_response = crate::api::expects_response(&request);
            // A fetch holds room for its records while it runs, so that fetches are not read
            // faster than their responses drain (capped at the bound: a larger response is let
            // through alone).
            let reserved = crate::api::response_bytes_max(&request)
                .min(self.shard.config.request_bytes_in_flight_max());
            self.pipeline.in_flight.borrow_mut().start(reserved);
            let handler = self.start(request, size + reserved, dispatched, expects_response);
            if expects_response {
                self.pipeline.push(Response::Handler(handler));
            }
        }
    }

    /// Runs the handler as a task of its own, which keeps the connection's accounting when it
    /// ends (letting go of the `held` bytes); a request without response is answered then.
    fn start(
        &self,
        request: Box<crate::protocol::Request>,
        held: usize,
        dispatched: Dispatched,
        expects_response: bool,
    ) -> JoinHandle<Handled> {
        let (shard, connection, pipeline) = (
            self.shard.clone(),
            self.connection.clone(),
            self.pipeline.clone(),
        );
        let handling = async move {
            let handled = crate::api::handle(&shard, &connection, *request, &dispatched).await;
            drop(dispatched);
            let response_size = match (&handled, expects_response) {
                (Ok(Some(response)), true) => response.len(),
                _ => 0,
            };
            pipeline.finish(held, response_size);
            if !expects_response {
                pipeline.answered(0);
            }
            handled
        };
        glommio::spawn_local(handling).detach()
    }

    fn log_frame_error(&self, error: FrameError) {
        match error {
            FrameError::Io(error) => tracing::debug!(
                "connection from {} on shard {} ended: {error}",
                self.peer,
                self.shard.id
            ),
            error => tracing::warn!(
                "closing connection from {} on shard {}: {error}",
                self.peer,
                self.shard.id
            ),
        }
    }
}

/// Writes the responses in request order until reading has ended and all are written, a write
/// fails, a response cannot be made, or an authentication failed (after its answer, as Kafka
/// closes the connection then; SASL requests run alone, so nothing else is due).
async fn write_responses(
    shard: &Shard,
    connection: &ConnectionInfo,
    pipeline: &Pipeline,
    socket: &mut SocketHalf,
) {
    let peer = connection.peer.as_str();
    while let Some(response) = pipeline.next_response().await {
        let handled = match response {
            Response::Ready(response) => Ok(Some(response)),
            // `None`: the task was cancelled, which happens only when the executor stops.
            Response::Handler(handler) => match handler.await {
                Some(handled) => handled,
                None => return,
            },
        };
        let response = match handled {
            Ok(Some(response)) => response,
            Ok(None) => {
                pipeline.answered(0);
                continue;
            }
            Err(error) => {
                tracing::warn!(
                    "closing connection from {peer} on shard {}: {error}",
                    shard.id
                );
                return;
            }
        };
        crate::metrics::count_response(response.len());
        for part in response.parts() {
            if let Err(error) = socket.write_all(part).await {
                tracing::debug!("connection from {peer} closed while writing: {error}");
                return;
            }
        }
        // A TLS stream may hold the last records until flushed (a plain socket has nothing).
        if let Err(error) = socket.flush().await {
            tracing::debug!("connection from {peer} closed while writing: {error}");
            return;
        }
        pipeline.answered(response.len());
        if connection.sasl.is_failed() {
            tracing::debug!("closing connection from {peer}: authentication failed");
            return;
        }
    }
}

/// The reader's or the writer's use of the connection's stream. glommio keeps a read and a
/// write in progress apart (a waker each), so both sides may wait at once; the stream is
/// borrowed only inside a poll, never across an await. Over TLS either side may also write
/// records rustls owes (a key update's answer) or wait for the socket; both sides run in the
/// connection's one task, so they share its waker and neither can miss a wake-up.
struct SocketHalf(Rc<RefCell<Stream>>);

impl AsyncRead for SocketHalf {
    fn poll_read(
        self: Pin<&mut Self>,
        context: &mut Context<'_>,
        buffer: &mut [u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut *self.0.borrow_mut()).poll_read(context, buffer)
    }
}

impl Receive for SocketHalf {
    fn receive_uninit(&mut self, buffer: &mut bytes::BytesMut) -> Option<std::io::Result<usize>> {
        self.0.borrow_mut().receive_uninit(buffer)
    }
}

impl AsyncWrite for SocketHalf {
    fn poll_write(
        self: Pin<&mut Self>,
        context: &mut Context<'_>,
        buffer: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut *self.0.borrow_mut()).poll_write(context, buffer)
    }

    fn poll_flush(self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut *self.0.borrow_mut()).poll_flush(context)
    }

    fn poll_close(self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut *self.0.borrow_mut()).poll_close(context)
    }
}
