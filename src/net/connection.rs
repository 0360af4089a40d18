//! One client connection: read a request, handle it, write its response, in order. Like Kafka,
//! a connection has one request in progress at a time, which keeps responses in request order.
//! Any framing or decoding error closes this connection only, with a log line.

use std::rc::Rc;

use futures_lite::AsyncWriteExt;
use glommio::net::TcpStream;

use super::frame::{read_frame, FrameError};
use crate::api::ConnectionInfo;
use crate::runtime::shard::Shard;

pub async fn serve(shard: Rc<Shard>, listener: Rc<str>, mut stream: TcpStream) {
    let peer = stream
        .peer_addr()
        .map(|address| address.to_string())
        .unwrap_or_else(|_| "unknown peer".to_string());
    let _ = stream.set_nodelay(true);
    let connection = ConnectionInfo {
        listener,
        client_host: stream
            .peer_addr()
            .map(|address| format!("/{}", address.ip()))
            .unwrap_or_default(),
    };
    let request_bytes_max = shard.config.socket_request_max_bytes as usize;
    crate::metrics::count_connection(1);
    loop {
        let frame = match read_frame(&mut stream, request_bytes_max).await {
            Ok(Some(frame)) => frame,
            Ok(None) => break,
            Err(FrameError::Io(error)) => {
                tracing::debug!(
                    "connection from {peer} on shard {} ended: {error}",
                    shard.id
                );
                break;
            }
            Err(error) => {
                tracing::warn!(
                    "closing connection from {peer} on shard {}: {error}",
                    shard.id
                );
                break;
            }
        };
        if frame.len() >= 2 {
            crate::metrics::count_request(
                i16::from_be_bytes([frame[0], frame[1]]),
                frame.len() + 4,
            );
        }
        let response = match crate::api::handle(&shard, &connection, frame).await {
            Ok(response) => response,
            Err(error) => {
                tracing::warn!(
                    "closing connection from {peer} on shard {}: {error}",
                    shard.id
                );
                break;
            }
        };
        if let Some(response) = response {
            crate::metrics::count_response(response.len());
            if let Err(error) = stream.write_all(&response).await {
                tracing::debug!("connection from {peer} closed while writing: {error}");
                break;
            }
        }
    }
    crate::metrics::count_connection(-1);
    let _ = stream.close().await;
}
