//! TLS for the SSL and SASL_SSL listeners: rustls (pure Rust, the `ring` provider) over the
//! shard's own glommio socket. rustls is a state machine without I/O of its own: `TlsStream`
//! feeds it the bytes the socket has (`read_tls`) and writes what it produces (`write_tls`),
//! both through non-blocking polls of the socket, so a TLS connection stays on the shard's
//! io_uring like a plaintext one and the connection's reader and writer share it the same way
//! (`net::connection`). Costs: one copy each way (records are decrypted into rustls's buffer,
//! then copied out; plaintext is copied into records), and no `recv` straight into the frame
//! buffer (`frame::Receive`); io_uring_notes.md has the figures.
//!
//! Settings come from Kafka's keys (`config::security`): PEM key and chain, a PEM truststore
//! for client certificates, `ssl.client.auth`, `ssl.enabled.protocols`; the PEM material is
//! read by `security::pem`, which the tools' client shares.
//!
//! The same stream carries this broker's own connections to other brokers and to the
//! controllers when their listener uses TLS (`connect`, with a rustls client configuration
//! built from the listener's keys by `net::link`).

use std::io::{self, Read, Write};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures_lite::{AsyncRead, AsyncWrite};
use glommio::net::TcpStream;
use rustls::client::ClientConfig;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::server::{ServerConfig, ServerConnection, WebPkiClientVerifier};
use rustls::{ClientConnection, Connection};

use crate::config::security::{ClientAuth, Pem, TlsSettings};
use crate::security::pem;

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("listener {listener}: cannot read the {what} from {source_name}: {reason}")]
    Material {
        listener: String,
        what: &'static str,
        source_name: String,
        reason: String,
    },
    #[error("listener {listener}: {reason}")]
    Settings { listener: String, reason: String },
}

/// The rustls server configuration of a TLS listener, from its PEM material.
pub fn server_config(
    listener: &str,
    settings: &TlsSettings,
) -> Result<Arc<ServerConfig>, TlsError> {
    let material = |what: &'static str, source: &Pem, reason: String| TlsError::Material {
        listener: listener.to_string(),
        what,
        source_name: pem::source_name(source),
        reason,
    };
    let settings_error = |reason: String| TlsError::Settings {
        listener: listener.to_string(),
        reason,
    };
    let chain = pem::certificates(&settings.certificate_chain)
        .map_err(|reason| material("certificate chain", &settings.certificate_chain, reason))?;
    let key = pem::private_key(&settings.key, settings.key_password.as_ref())
        .map_err(|reason| material("private key", &settings.key, reason))?;
    let provider = pem::provider();
    let versions = pem::protocol_versions(settings.tls12, settings.tls13);
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&versions)
        .map_err(|error| settings_error(error.to_string()))?;
    let builder = match (&settings.truststore, settings.client_auth) {
        (Some(truststore), client_auth) if client_auth != ClientAuth::None => {
            let roots = pem::root_store(truststore)
                .map_err(|reason| material("truststore", truststore, reason))?;
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
            let verifier = match client_auth {
                ClientAuth::Requested => verifier.allow_unauthenticated(),
                _ => verifier,
            };
            let verifier = verifier
                .build()
                .map_err(|error| settings_error(format!("client certificates: {error}")))?;
            builder.with_client_cert_verifier(verifier)
        }
        _ => builder.with_no_client_auth(),
    };
    let config = builder
        .with_single_cert(chain, key)
        .map_err(|error| settings_error(format!("the key and certificate: {error}")))?;
    Ok(Arc::new(config))
}

/// A TLS connection over a glommio socket: accepted by a listener, or opened by this node.
pub struct TlsStream {
    tcp: TcpStream,
    tls: Connection,
    close_sent: bool,
}

/// The socket as the blocking `Read`/`Write` rustls takes, for one poll: a read or write that
/// would wait is `WouldBlock`, and the task's waker is registered with the socket.
struct PollIo<'a, 'b> {
    tcp: &'a mut TcpStream,
    context: &'a mut Context<'b>,
}

impl Read for PollIo<'_, '_> {
    fn read(&mut self, buffer: &mut [u8]) -> io::Result<usize> {
        match Pin::new(&mut *self.tcp).poll_read(self.context, buffer) {
            Poll::Ready(result) => result,
            Poll::Pending => Err(io::ErrorKind::WouldBlock.into()),
        }
    }
}

impl Write for PollIo<'_, '_> {
    fn write(&mut self, buffer: &[u8]) -> io::Result<usize> {
        match Pin::new(&mut *self.tcp).poll_write(self.context, buffer) {
            Poll::Ready(result) => result,
            Poll::Pending => Err(io::ErrorKind::WouldBlock.into()),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Completes the TLS handshake of a connection just accepted.
pub async fn accept(tcp: TcpStream, config: Arc<ServerConfig>) -> io::Result<TlsStream> {
    let tls = ServerConnection::new(config).map_err(io::Error::other)?;
    handshake(tcp, tls.into()).await
}

/// Completes the TLS handshake of a connection this node opened to `server_name`.
pub async fn connect(
    tcp: TcpStream,
    config: Arc<ClientConfig>,
    server_name: ServerName<'static>,
) -> io::Result<TlsStream> {
    let tls = ClientConnection::new(config, server_name).map_err(io::Error::other)?;
    handshake(tcp, tls.into()).await
}

async fn handshake(tcp: TcpStream, tls: Connection) -> io::Result<TlsStream> {
    let mut stream = TlsStream {
        tcp,
        tls,
        close_sent: false,
    };
    std::future::poll_fn(|context| stream.poll_handshake(context)).await?;
    Ok(stream)
}

impl TlsStream {
    /// The DER certificate the other end presented, if any (a client's: `ssl.client.auth`).
    pub fn peer_certificate(&self) -> Option<&CertificateDer<'static>> {
        self.tls.peer_certificates()?.first()
    }

    /// The negotiated protocol version, as Kafka names it (`TLSv1.3`).
    pub fn protocol(&self) -> &'static str {
        match self.tls.protocol_version() {
            Some(rustls::ProtocolVersion::TLSv1_3) => "TLSv1.3",
            Some(rustls::ProtocolVersion::TLSv1_2) => "TLSv1.2",
            _ => "TLS",
        }
    }

    fn poll_handshake(&mut self, context: &mut Context<'_>) -> Poll<io::Result<()>> {
        loop {
            if self.tls.wants_write() {
                match self.poll_write_tls(context) {
                    Poll::Ready(Ok(())) => {}
                    other => return other,
                }
            }
            if !self.tls.is_handshaking() {
                return Poll::Ready(Ok(()));
            }
            match self.poll_read_tls(context) {
                Poll::Ready(Ok(0)) => {
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "the connection was closed during the TLS handshake",
                    )))
                }
                Poll::Ready(Ok(_)) => {}
                Poll::Ready(Err(error)) => return Poll::Ready(Err(error)),
                Poll::Pending => return Poll::Pending,
            }
        }
    }

    /// Reads TLS records off the socket into rustls and processes them: the bytes read, 0 at
    /// the end of the stream. A record rustls refuses is an `InvalidData` error, after the
    /// alert that says why has been sent if the socket takes it.
    fn poll_read_tls(&mut self, context: &mut Context<'_>) -> Poll<io::Result<usize>> {
        let mut io = PollIo {
            tcp: &mut self.tcp,
            context,
        };
        let read = match self.tls.read_tls(&mut io) {
            Ok(read) => read,
            Err(error) if error.kind() == io::ErrorKind::WouldBlock => return Poll::Pending,
            Err(error) => return Poll::Ready(Err(error)),
        };
        if let Err(error) = self.tls.process_new_packets() {
            let _ = self.poll_write_tls(context);
            return Poll::Ready(Err(io::Error::new(io::ErrorKind::InvalidData, error)));
        }
        Poll::Ready(Ok(read))
    }

    /// Writes everything rustls has to send; pending while the socket cannot take it.
    fn poll_write_tls(&mut self, context: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.tls.wants_write() {
            let mut io = PollIo {
                tcp: &mut self.tcp,
                context,
            };
            match self.tls.write_tls(&mut io) {
                Ok(0) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                Ok(_) => {}
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => return Poll::Pending,
                Err(error) => return Poll::Ready(Err(error)),
            }
        }
        Poll::Ready(Ok(()))
    }
}

impl AsyncRead for TlsStream {
    fn poll_read(
        self: Pin<&mut Self>,
        context: &mut Context<'_>,
        buffer: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        loop {
            match this.tls.reader().read(buffer) {
                // 0: the client sent close_notify.
                Ok(read) => return Poll::Ready(Ok(read)),
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => {}
                Err(error) => return Poll::Ready(Err(error)),
            }
            // What rustls must answer by itself (a key update) goes out as the socket allows;
            // the writer side flushes whatever is left.
            if this.tls.wants_write() {
                if let Poll::Ready(Err(error)) = this.poll_write_tls(context) {
                    return Poll::Ready(Err(error));
                }
            }
            match this.poll_read_tls(context) {
                Poll::Ready(Ok(0)) => return Poll::Ready(Ok(0)),
                Poll::Ready(Ok(_)) => {}
                Poll::Ready(Err(error)) => return Poll::Ready(Err(error)),
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

impl AsyncWrite for TlsStream {
    /// Takes plaintext once what rustls already holds is written: a connection never buffers
    /// more than one write's records.
    fn poll_write(
        self: Pin<&mut Self>,
        context: &mut Context<'_>,
        buffer: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        match this.poll_write_tls(context) {
            Poll::Ready(Ok(())) => {}
            Poll::Ready(Err(error)) => return Poll::Ready(Err(error)),
            Poll::Pending => return Poll::Pending,
        }
        let written = this.tls.writer().write(buffer)?;
        if let Poll::Ready(Err(error)) = this.poll_write_tls(context) {
            return Poll::Ready(Err(error));
        }
        Poll::Ready(Ok(written))
    }

    fn poll_flush(self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        match this.poll_write_tls(context) {
            Poll::Ready(Ok(())) => Pin::new(&mut this.tcp).poll_flush(context),
            other => other,
        }
    }

    fn poll_close(self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if !this.close_sent {
            this.tls.send_close_notify();
            this.close_sent = true;
        }
        match this.poll_write_tls(context) {
            Poll::Ready(Ok(())) => Pin::new(&mut this.tcp).poll_close(context),
            other => other,
        }
    }
}
