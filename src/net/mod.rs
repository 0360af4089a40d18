//! Client listeners. Every shard binds every client listener (glommio sets SO_REUSEPORT), so the
//! kernel spreads connections over the shards; a connection is served entirely by the shard that
//! accepted it.

mod connection;
pub mod frame;
pub mod in_flight;

use std::rc::Rc;

use glommio::net::TcpListener;

use crate::runtime::shard::Shard;

/// A bound listener and its name (`PLAINTEXT`, ...).
pub struct BoundListener {
    pub name: Rc<str>,
    pub socket: TcpListener,
}

/// Binds every client listener of the configuration on this shard.
pub fn bind_client_listeners(shard: &Shard) -> std::io::Result<Vec<BoundListener>> {
    shard
        .config
        .client_listeners()
        .map(|listener| {
            let host = if listener.host.is_empty() {
                "0.0.0.0"
            } else {
                listener.host.as_str()
            };
            let socket = TcpListener::bind((host, listener.port)).map_err(|error| {
                std::io::Error::new(
                    std::io::ErrorKind::AddrInUse,
                    format!(
                        "cannot listen on {}://{host}:{}: {error}",
                        listener.name, listener.port
                    ),
                )
            })?;
            Ok(BoundListener {
                name: Rc::from(listener.name.as_str()),
                socket,
            })
        })
        .collect()
}

/// Accepts connections forever, each served as its own task on this shard.
pub async fn accept_loop(shard: Rc<Shard>, listener: BoundListener) {
    loop {
        match listener.socket.accept().await {
            Ok(stream) => {
                glommio::spawn_local(connection::serve(
                    shard.clone(),
                    listener.name.clone(),
                    stream,
                ))
                .detach();
            }
            Err(error) => {
                tracing::warn!("accept on listener {} failed: {error}", listener.name);
                glommio::timer::sleep(std::time::Duration::from_millis(10)).await;
            }
        }
    }
}
