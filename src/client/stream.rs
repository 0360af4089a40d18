//! The client's byte stream to one broker: the plain socket, or TLS over it (rustls's
//! `StreamOwned`, which does the socket I/O itself). `Connection` reads and writes it one
//! request at a time; `split` hands a pipelined connection (`pipelined_connection`) a writer for
//! its owning thread and a reader for its reader thread.
//!
//! A plain stream splits into two handles of the same socket (`try_clone`), so the plaintext
//! path is what it was before TLS existed. A TLS session cannot be cloned: both halves share it
//! behind a mutex, held only while rustls encrypts or decrypts, never across a blocking socket
//! call. Only the writer writes to the socket, so records leave in the order rustls sealed them;
//! what the reader's processing queues for sending (a TLS 1.3 key update) goes out with the
//! writer's next request.

use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::{Arc, Mutex, MutexGuard};

use rustls::pki_types::ServerName;
use rustls::{ClientConnection, StreamOwned};

/// Ciphertext read from the socket per system call by a split TLS reader.
const TLS_READ_BUFFER_BYTES: usize = 64 * 1024;

/// A connected stream, plain or TLS, with its handshake done.
pub enum BrokerStream {
    Plain(TcpStream),
    Tls(Box<StreamOwned<ClientConnection, TcpStream>>),
}

impl BrokerStream {
    /// Runs the TLS handshake over `socket` for the broker at `host`: its certificate must chain
    /// to `config`'s trust store and (when the configuration checks names) name `host`.
    pub fn tls(
        socket: TcpStream,
        config: Arc<rustls::ClientConfig>,
        host: &str,
    ) -> Result<BrokerStream, String> {
        let name = ServerName::try_from(host.to_string())
            .map_err(|error| format!("'{host}' is not a valid host name: {error}"))?;
        let session = ClientConnection::new(config, name).map_err(|error| error.to_string())?;
        let mut stream = StreamOwned::new(session, socket);
        while stream.conn.is_handshaking() {
            stream
                .conn
                .complete_io(&mut stream.sock)
                .map_err(|error| describe_tls_error(&error))?;
        }
        Ok(BrokerStream::Tls(Box::new(stream)))
    }

    /// The socket underneath, for its timeouts.
    pub fn socket(&self) -> &TcpStream {
        match self {
            BrokerStream::Plain(socket) => socket,
            BrokerStream::Tls(stream) => stream.get_ref(),
        }
    }

    /// A writer and a reader of the stream for two threads.
    pub fn split(self) -> io::Result<(StreamWriter, StreamReader)> {
        match self {
            BrokerStream::Plain(socket) => {
                let reader = socket.try_clone()?;
                Ok((StreamWriter::Plain(socket), StreamReader::Plain(reader)))
            }
            BrokerStream::Tls(stream) => {
                let (session, socket) = stream.into_parts();
                let reader = socket.try_clone()?;
                let session = Arc::new(Mutex::new(session));
                let writer = StreamWriter::Tls {
                    socket,
                    session: session.clone(),
                    records: Vec::new(),
                };
                let reader = StreamReader::Tls(TlsReader {
                    socket: reader,
                    session,
                    ciphertext: vec![0; TLS_READ_BUFFER_BYTES],
                    start: 0,
                    end: 0,
                });
                Ok((writer, reader))
            }
        }
    }
}

impl Read for BrokerStream {
    fn read(&mut self, buffer: &mut [u8]) -> io::Result<usize> {
        match self {
            BrokerStream::Plain(socket) => socket.read(buffer),
            BrokerStream::Tls(stream) => stream.read(buffer),
        }
    }
}

impl Write for BrokerStream {
    fn write(&mut self, buffer: &[u8]) -> io::Result<usize> {
        match self {
            BrokerStream::Plain(socket) => socket.write(buffer),
            BrokerStream::Tls(stream) => stream.write(buffer),
        }
    }

    /// Sends whatever rustls still holds: a request is whole on the wire once flushed.
    fn flush(&mut self) -> io::Result<()> {
        match self {
            BrokerStream::Plain(socket) => socket.flush(),
            BrokerStream::Tls(stream) => stream.flush(),
        }
    }
}

/// The reason in a TLS failure, as rustls words it ("invalid peer certificate: UnknownIssuer"),
/// or the I/O error's text.
pub fn describe_tls_error(error: &io::Error) -> String {
    match error
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
    {
        Some(tls) => tls.to_string(),
        None => error.to_string(),
    }
}

/// Whether `error` comes from TLS (a refused certificate, an alert from the broker) rather
/// than from the socket.
pub fn is_tls_error(error: &io::Error) -> bool {
    error
        .get_ref()
        .is_some_and(|inner| inner.is::<rustls::Error>())
}

/// The owning thread's half of a split stream.
pub enum StreamWriter {
    Plain(TcpStream),
    Tls {
        socket: TcpStream,
        session: Arc<Mutex<ClientConnection>>,
        /// Sealed records waiting to be written, reused between requests.
        records: Vec<u8>,
    },
}

impl StreamWriter {
    /// The socket underneath, for its timeouts and for shutting it down.
    pub fn socket(&self) -> &TcpStream {
        match self {
            StreamWriter::Plain(socket) | StreamWriter::Tls { socket, .. } => socket,
        }
    }

    /// Writes all of `bytes`: straight to the socket, or sealed into TLS records (at most
    /// rustls's buffer, 64 KiB, at a time) that are then written outside the session's lock.
    pub fn write_all(&mut self, mut bytes: &[u8]) -> io::Result<()> {
        let (socket, session, records) = match self {
            StreamWriter::Plain(socket) => return socket.write_all(bytes),
            StreamWriter::Tls {
                socket,
                session,
                records,
            } => (socket, session, records),
        };
        while !bytes.is_empty() {
            records.clear();
            {
                let mut tls = lock(session);
                let taken = tls.writer().write(bytes)?;
                bytes = &bytes[taken..];
                while tls.wants_write() {
                    tls.write_tls(records)?;
                }
            }
            if records.is_empty() {
                return Err(io::ErrorKind::WriteZero.into());
            }
            socket.write_all(records)?;
        }
        Ok(())
    }
}

/// The reader thread's half of a split stream.
pub enum StreamReader {
    Plain(TcpStream),
    Tls(TlsReader),
}

impl StreamReader {
    /// Ends both directions of the socket (the reader's way out of a broken stream).
    pub fn shutdown(&self) {
        let socket = match self {
            StreamReader::Plain(socket) => socket,
            StreamReader::Tls(reader) => &reader.socket,
        };
        let _ = socket.shutdown(Shutdown::Both);
    }
}

impl Read for StreamReader {
    fn read(&mut self, buffer: &mut [u8]) -> io::Result<usize> {
        match self {
            StreamReader::Plain(socket) => socket.read(buffer),
            StreamReader::Tls(reader) => reader.read(buffer),
        }
    }
}

/// Reads TLS records from the socket without the session's lock, then decrypts them under it.
pub struct TlsReader {
    socket: TcpStream,
    session: Arc<Mutex<ClientConnection>>,
    /// Ciphertext read and not yet given to rustls: `ciphertext[start..end]`.
    ciphertext: Vec<u8>,
    start: usize,
    end: usize,
}

impl Read for TlsReader {
    /// Plaintext rustls has, else what the next records hold; 0 once the broker closed the
    /// session with close_notify (an end without it is an `UnexpectedEof` error).
    fn read(&mut self, buffer: &mut [u8]) -> io::Result<usize> {
        loop {
            {
                let mut tls = lock(&self.session);
                match tls.reader().read(buffer) {
                    Ok(read) => return Ok(read),
                    Err(error) if error.kind() == io::ErrorKind::WouldBlock => {}
                    Err(error) => return Err(error),
                }
                if self.start < self.end {
                    let mut pending = &self.ciphertext[self.start..self.end];
                    self.start += tls.read_tls(&mut pending)?;
                    tls.process_new_packets()
                        .map_err(|error| io::Error::new(io::ErrorKind::InvalidData, error))?;
                    continue;
                }
            }
            let read = self.socket.read(&mut self.ciphertext)?;
            (self.start, self.end) = (0, read);
            if read == 0 {
                // Tells rustls the stream ended, so its reader reports how.
                let mut tls = lock(&self.session);
                tls.read_tls(&mut &[][..])?;
                tls.process_new_packets()
                    .map_err(|error| io::Error::new(io::ErrorKind::InvalidData, error))?;
            }
        }
    }
}

/// The session, even if the other half panicked while holding it (releases abort on a panic,
/// so this only matters in tests).
fn lock(session: &Mutex<ClientConnection>) -> MutexGuard<'_, ClientConnection> {
    session
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}
