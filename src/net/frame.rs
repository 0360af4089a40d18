//! Request framing: a 4-byte big-endian size, then that many bytes.

use bytes::Bytes;
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
    Io(#[from] std::io::Error),
}

/// Reads one request frame; `Ok(None)` at a clean end of stream between requests.
pub async fn read_frame<R: futures_lite::AsyncRead + Unpin>(
    reader: &mut R,
    request_bytes_max: usize,
) -> Result<Option<Bytes>, FrameError> {
    match read_size(reader, request_bytes_max).await? {
        Some(size) => read_body(reader, size).await.map(Some),
        None => Ok(None),
    }
}

/// Reads the 4-byte size of the next request and checks it against `request_bytes_max`;
/// `Ok(None)` at a clean end of stream between requests. The body is left in the socket, so
/// that a connection can wait for room before reading it (backpressure).
pub async fn read_size<R: futures_lite::AsyncRead + Unpin>(
    reader: &mut R,
    request_bytes_max: usize,
) -> Result<Option<usize>, FrameError> {
    let mut size_bytes = [0u8; 4];
    let received = read_full(reader, &mut size_bytes).await?;
    if received == 0 {
        return Ok(None);
    }
    if received < size_bytes.len() {
        return Err(FrameError::Truncated {
            received,
            expected: size_bytes.len(),
        });
    }
    let size = i32::from_be_bytes(size_bytes);
    if size < 0 {
        return Err(FrameError::NegativeSize { size });
    }
    let size = size as usize;
    if size > request_bytes_max {
        return Err(FrameError::TooLarge {
            size,
            max: request_bytes_max,
        });
    }
    Ok(Some(size))
}

/// Reads the `size` bytes of a request whose size `read_size` returned.
pub async fn read_body<R: futures_lite::AsyncRead + Unpin>(
    reader: &mut R,
    size: usize,
) -> Result<Bytes, FrameError> {
    let mut body = vec![0u8; size];
    let received = read_full(reader, &mut body).await?;
    if received < size {
        return Err(FrameError::Truncated {
            received,
            expected: size,
        });
    }
    Ok(Bytes::from(body))
}

/// Fills `buffer` unless the stream ends first; returns how many bytes arrived.
async fn read_full<R: futures_lite::AsyncRead + Unpin>(
    reader: &mut R,
    buffer: &mut [u8],
) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buffer.len() {
        match reader.read(&mut buffer[filled..]).await? {
            0 => break,
            count => filled += count,
        }
    }
    Ok(filled)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(bytes: &[u8], max: usize) -> Result<Option<Bytes>, FrameError> {
        futures_lite::future::block_on(read_frame(
            &mut futures_lite::io::Cursor::new(bytes.to_vec()),
            max,
        ))
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
}
