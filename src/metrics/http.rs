//! A minimal HTTP/1.1 endpoint for Prometheus: `GET /metrics` on `metrics.port`, served by
//! shard 0. Each scrape gathers a snapshot from every shard over the mesh; anything else gets
//! 404, a request head over 8 KiB or slower than 10 s is dropped. One request per connection
//! (`Connection: close`), which is how Prometheus scrapes small targets anyway.

use std::rc::Rc;
use std::time::Duration;

use futures_lite::{AsyncReadExt, AsyncWriteExt};
use glommio::net::{TcpListener, TcpStream};

use super::{render, ShardMetrics};
use crate::runtime::mesh::ShardRequest;
use crate::runtime::shard::Shard;

const REQUEST_HEAD_BYTES_MAX: usize = 8 << 10;
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Binds `0.0.0.0:port`; the error names the port.
pub fn bind(port: u16) -> std::io::Result<TcpListener> {
    crate::net::steering::bind_listener("0.0.0.0", port, None).map_err(|error| {
        std::io::Error::new(
            std::io::ErrorKind::AddrInUse,
            format!("cannot listen for metrics on port {port} (metrics.port): {error}"),
        )
    })
}

/// Serves scrapes until the process ends.
pub async fn serve(shard: Rc<Shard>, listener: TcpListener) {
    loop {
        match listener.accept().await {
            Ok(stream) => {
                glommio::spawn_local(answer(shard.clone(), stream)).detach();
            }
            Err(error) => {
                tracing::warn!("metrics accept failed: {error}");
                glommio::timer::sleep(Duration::from_millis(10)).await;
            }
        }
    }
}

async fn answer(shard: Rc<Shard>, mut stream: TcpStream) {
    let _ = stream.set_read_timeout(Some(REQUEST_TIMEOUT));
    let Some(head) = read_head(&mut stream).await else {
        return;
    };
    let request_line = head.lines().next().unwrap_or_default();
    let mut parts = request_line.split(' ');
    let (method, path) = (parts.next(), parts.next());
    let path = path.map(|path| path.split('?').next().unwrap_or(path));
    let response = if method == Some("GET") && path == Some("/metrics") {
        let body = render(&gather(&shard).await);
        format!(
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
    } else {
        let body = "only GET /metrics is served here\n";
        format!(
            "HTTP/1.1 404 Not Found\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
    };
    let _ = stream.write_all(response.as_bytes()).await;
    let _ = stream.close().await;
}

/// The request head up to the blank line, if it arrives whole and small enough.
async fn read_head(stream: &mut TcpStream) -> Option<String> {
    let mut head = Vec::new();
    let mut buffer = [0u8; 1024];
    while !head.windows(4).any(|window| window == b"\r\n\r\n") {
        let read = stream.read(&mut buffer).await.ok()?;
        if read == 0 || head.len() + read > REQUEST_HEAD_BYTES_MAX {
            return None;
        }
        head.extend_from_slice(&buffer[..read]);
    }
    String::from_utf8(head).ok()
}

/// Every shard's snapshot, in shard order, each taken on its own executor.
async fn gather(shard: &Rc<Shard>) -> Vec<ShardMetrics> {
    shard
        .ask_every_shard(|reply| ShardRequest::Metrics { reply })
        .await
}
