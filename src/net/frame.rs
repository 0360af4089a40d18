//! Request framing: a 4-byte big-endian size, then that many bytes.
//!
//! `FrameReader` keeps one read buffer per connection. It reads whatever the socket holds (up to
//! `READ_AHEAD_BYTES` beyond the frame it needs), so a burst of pipelined requests costs one
//! `recv` rather than two per request, and each frame is split off the buffer without a copy.
//! The frames of one read share its allocation until the last of them is dropped; an emptied
//! buffer lets go of it, so an idle connection holds no buffer.
//! A socket that can receive into memory not yet written (`Receive::receive_uninit`) never has
//! the buffer zero-filled first: a produced byte is written once, by the kernel, before it is
//! appended.

use std::io;

use bytes::{Bytes, BytesMut};
use futures_lite::AsyncReadExt;

#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("request size {size} is negative")]
    NegativeSize { size: i32 },
    #[error("request of {size} bytes is larger than socket.request.max.bytes ({max} bytes)")]
    TooLarge { size: usize, max: usize },
    #[error("connection closed in the middle of a request ({received} of {expected} bytes)")]
    Truncated { received: usize, expected: usize },
    #[error("read failed: {0}")]
    Io(#[from] io::Error),
}

/// Bytes read beyond the frame being completed, when the socket has them: room for a few small
/// pipelined requests, little enough that a connection holds no more than this unaccounted.
const READ_AHEAD_BYTES: usize = 64 << 10;

/// What is read through when the socket has nothing and glommio must wait for it.
const WAIT_READ_BYTES: usize = 4 << 10;

/// A source of frames: any async reader, optionally with a way to receive straight into a
/// buffer's spare capacity.
pub trait Receive: futures_lite::AsyncRead + Unpin {
    /// Receives what is available now into `buffer`'s spare capacity without blocking:
    /// `Some(Ok(0))` at the end of the stream, `Some(Err(WouldBlock))` when nothing is
    /// available, `None` when this source cannot (the caller reads through `AsyncRead`).
    fn receive_uninit(&mut self, _buffer: &mut BytesMut) -> Option<io::Result<usize>> {
        None
    }
}

impl Receive for glommio::net::TcpStream {
    fn receive_uninit(&mut self, buffer: &mut BytesMut) -> Option<io::Result<usize>> {
        Some(receive_into_spare(
            std::os::fd::AsRawFd::as_raw_fd(self),
            buffer,
        ))
    }
}

#[cfg(test)]
impl<T: AsRef<[u8]> + Unpin> Receive for futures_lite::io::Cursor<T> {}

/// One non-blocking `recv` into `buffer`'s spare capacity, which it then counts as filled.
pub fn receive_into_spare(fd: std::os::fd::RawFd, buffer: &mut BytesMut) -> io::Result<usize> {
    let spare = buffer.spare_capacity_mut();
    // SAFETY: the kernel writes at most `spare.len()` bytes into the spare capacity, which
    // `spare_capacity_mut` hands out as writable; only the `received` bytes it reports written
    // are then counted as initialized.
    let received = unsafe {
        libc::recv(
            fd,
            spare.as_mut_ptr().cast(),
            spare.len(),
            libc::MSG_DONTWAIT,
        )
    };
    if received < 0 {
        return Err(io::Error::last_os_error());
    }
    let received = received as usize;
    // SAFETY: `recv` initialized `received` bytes right after the buffer's current length.
    unsafe { buffer.set_len(buffer.len() + received) };
    Ok(received)
}

/// Reads frames off one stream, through a buffer of its own (see the module's comment).
#[derive(Default)]
pub struct FrameReader {
    buffer: BytesMut,
}

impl FrameReader {
    pub fn new() -> FrameReader {
        FrameReader::default()
    }

    /// Reads one frame; `Ok(None)` at a clean end of stream between frames.
    pub async fn read_frame<R: Receive>(
        &mut self,
        reader: &mut R,
        frame_bytes_max: usize,
    ) -> Result<Option<Bytes>, FrameError> {
        match self.read_size(reader, frame_bytes_max).await? {
            Some(size) => self.read_body(reader, size).await.map(Some),
            None => Ok(None),
        }
    }

    /// Reads the 4-byte size of the next frame and checks it against `frame_bytes_max`;
    /// `Ok(None)` at a clean end of stream between frames. The body is not waited for, so that a
    /// connection can wait for room before taking it (backpressure); only what the socket
    /// already held may have been read with the size.
    pub async fn read_size<R: Receive>(
        &mut self,
        reader: &mut R,
        frame_bytes_max: usize,
    ) -> Result<Option<usize>, FrameError> {
        let received = self.fill(reader, 4).await?;
        if received == 0 {
            return Ok(None);
        }
        if received < 4 {
            return Err(FrameError::Truncated {
                received,
                expected: 4,
            });
        }
        let size_bytes = self.take(4);
        let size = i32::from_be_bytes([size_bytes[0], size_bytes[1], size_bytes[2], size_bytes[3]]);
        if size < 0 {
            return Err(FrameError::NegativeSize { size });
        }
        let size = size as usize;
        if size > frame_bytes_max {
            return Err(FrameError::TooLarge {
                size,
                max: frame_bytes_max,
            });
        }
        Ok(Some(size))
    }

    /// Reads the `size` bytes of the frame whose size `read_size` returned.
    pub async fn read_body<R: Receive>(
        &mut self,
        reader: &mut R,
        size: usize,
    ) -> Result<Bytes, FrameError> {
        let received = self.fill(reader, size).await?;
        if received < size {
            return Err(FrameError::Truncated {
                received,
                expected: size,
            });
        }
        Ok(self.take(size).freeze())
    }

    /// Splits `count` buffered bytes off the front. An emptied buffer lets go of its memory
    /// (the frames split off it keep what they need), so an idle connection holds none.
    fn take(&mut self, count: usize) -> BytesMut {
        let taken = self.buffer.split_to(count);
        if self.buffer.is_empty() {
            self.buffer = BytesMut::new();
        }
        taken
    }

    /// Reads until the buffer holds `wanted` bytes or the stream ends; returns how many it
    /// holds (at most `wanted` counted).
    async fn fill<R: Receive>(&mut self, reader: &mut R, wanted: usize) -> io::Result<usize> {
        while self.buffer.len() < wanted {
            // Room for the rest of the frame and a little more: one allocation per large frame,
            // which then leaves the buffer whole (`split_to`).
            let missing = wanted - self.buffer.len();
            self.buffer.reserve(missing.max(READ_AHEAD_BYTES));
            match reader.receive_uninit(&mut self.buffer) {
                Some(Ok(0)) => break,
                Some(Ok(_)) => continue,
                Some(Err(error)) if error.kind() == io::ErrorKind::Interrupted => continue,
                Some(Err(error)) if error.kind() != io::ErrorKind::WouldBlock => return Err(error),
                // Nothing yet (or no direct path): wait through the reactor, taking what arrives.
                // At most what the frame still misses goes through this copy; the rest of a
                // large frame then arrives directly.
                Some(Err(_)) | None => {
                    let mut arrived = [0u8; WAIT_READ_BYTES];
                    let limit = WAIT_READ_BYTES.min(missing);
                    match reader.read(&mut arrived[..limit]).await? {
                        0 => break,
                        count => self.buffer.extend_from_slice(&arrived[..count]),
                    }
                }
            }
        }
        Ok(self.buffer.len().min(wanted))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(bytes: &[u8], max: usize) -> Result<Option<Bytes>, FrameError> {
        futures_lite::future::block_on(
            FrameReader::new().read_frame(&mut futures_lite::io::Cursor::new(bytes.to_vec()), max),
        )
    }

    /// Proves whole frames read, and negative, oversize and cut frames are errors.
    #[test]
    fn frames_requests() {
        assert_eq!(
            read(&[0, 0, 0, 2, 7, 8], 10).unwrap().unwrap().as_ref(),
            &[7, 8]
        );
        assert!(read(&[], 10).unwrap().is_none());
        assert!(matches!(
            read(&[0xff, 0, 0, 0], 10),
            Err(FrameError::NegativeSize { .. })
        ));
        assert!(matches!(
            read(&[0, 0, 1, 0], 10),
            Err(FrameError::TooLarge { size: 256, max: 10 })
        ));
        assert!(matches!(
            read(&[0, 0, 0, 5, 1], 10),
            Err(FrameError::Truncated {
                received: 1,
                expected: 5
            })
        ));
        assert!(matches!(
            read(&[0, 0], 10),
            Err(FrameError::Truncated { .. })
        ));
    }

    /// Proves pipelined frames that arrive together are split apart in order, whole.
    #[test]
    fn splits_frames_that_arrive_together() {
        let mut bytes = Vec::new();
        for body in [&b"first"[..], b"", b"third one"] {
            bytes.extend_from_slice(&(body.len() as i32).to_be_bytes());
            bytes.extend_from_slice(body);
        }
        let mut cursor = futures_lite::io::Cursor::new(bytes);
        let mut reader = FrameReader::new();
        let mut frames = Vec::new();
        futures_lite::future::block_on(async {
            while let Some(frame) = reader.read_frame(&mut cursor, 100).await.unwrap() {
                frames.push(frame);
            }
        });
        assert_eq!(frames, [&b"first"[..], b"", b"third one"]);
    }

    /// Proves the direct receive fills spare capacity with exactly what was sent, leaves the
    /// buffer as it was when nothing is there, and reports the end of the stream as 0.
    #[test]
    fn receives_into_spare_capacity() {
        use std::io::Write;
        use std::os::fd::AsRawFd;
        let (mut sender, receiver) = std::os::unix::net::UnixStream::pair().unwrap();
        let mut buffer = BytesMut::with_capacity(64);
        buffer.extend_from_slice(b"kept ");
        let nothing = receive_into_spare(receiver.as_raw_fd(), &mut buffer).unwrap_err();
        assert_eq!(nothing.kind(), io::ErrorKind::WouldBlock);
        sender.write_all(b"and received").unwrap();
        assert_eq!(
            receive_into_spare(receiver.as_raw_fd(), &mut buffer).unwrap(),
            12
        );
        assert_eq!(&buffer[..], b"kept and received");
        drop(sender);
        assert_eq!(
            receive_into_spare(receiver.as_raw_fd(), &mut buffer).unwrap(),
            0
        );
        assert_eq!(&buffer[..], b"kept and received");
    }
}
