//! Client listeners. Every shard binds every client listener (glommio sets SO_REUSEPORT), so the
//! kernel spreads connections over the shards; a connection is served entirely by the shard that
//! accepted it. The shards bind in order and shard 0 steers each port's connections by source
//! port (`steering`), so that replica fetchers reach the shard they fetch from. The connection
//! limits are the broker's, shared by the shards (`connection_quotas`).

mod connection;
pub mod connection_quotas;
pub mod frame;
pub mod in_flight;
pub mod link;
pub mod steering;
pub mod stream;
pub mod tls;
pub mod tls_reload;

use crate::security::principal::PrincipalMapper;
use std::cell::Cell;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use glommio::net::TcpListener;

use crate::runtime::shard::Shard;
use connection_quotas::{ConnectionQuotas, QuotaError};

/// Refused connections are logged at info at most this often per listener and shard (with how
/// many there were since), each one at debug: a client retrying against a limit must not flood
/// the log.
const REFUSAL_LOG_INTERVAL: Duration = Duration::from_secs(10);

/// The most connections refused for their address's creation rate that one listener of one
/// shard holds open until their throttle time is over (`QuotaError::throttle_ms`); beyond it
/// they are closed at once, so that a flood cannot hold file descriptors. Each is held at most
/// one quota window.
const THROTTLED_CONNECTIONS_HELD_MAX: usize = 1024;

/// A bound listener, its name (`PLAINTEXT`, ...) and what its connections must go through.
pub struct BoundListener {
    pub name: Rc<str>,
    pub socket: TcpListener,
    /// The TLS configuration of an SSL or SASL_SSL listener.
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// The SASL settings of a SASL_PLAINTEXT or SASL_SSL listener.
    pub sasl: Option<Rc<crate::config::security::SaslSettings>>,
    /// How client certificates' subjects become principals (`ssl.principal.mapping.rules`).
    pub principals: Rc<PrincipalMapper>,
}

/// Binds every client listener of the configuration on this shard (after the shards before it:
/// `steering` counts on shard `i` being the `i`-th socket of each port).
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
            // Shard 0 steers each port's connections (`steering`).
            let steer = (shard.id.0 == 0).then(|| shard.mesh.shard_count());
            let socket = steering::bind_listener(host, listener.port, steer).map_err(|error| {
                std::io::Error::new(
                    std::io::ErrorKind::AddrInUse,
                    format!(
                        "cannot listen on {}://{host}:{}: {error}",
                        listener.name, listener.port
                    ),
                )
            })?;
            let security = shard.config.listener_security(&listener.name);
            let tls = match security.and_then(|security| security.tls.as_ref()) {
                Some(settings) => Some(tls::server_config(&listener.name, settings).map_err(
                    |error| std::io::Error::new(std::io::ErrorKind::InvalidInput, error),
                )?),
                None => None,
            };
            let principals = security
                .and_then(|security| security.tls.as_ref())
                .map(|settings| settings.principal_mapper.clone())
                .unwrap_or_default();
            Ok(BoundListener {
                name: Rc::from(listener.name.as_str()),
                socket,
                tls,
                principals: Rc::new(principals),
                sasl: security
                    .and_then(|security| security.sasl.clone())
                    .map(Rc::new),
            })
        })
        .collect()
}

/// Accepts connections forever, each served as its own task on this shard, unless it is over a
/// connection limit: then it is closed at once, or, over its address's creation rate, once its
/// throttle time is over (unserved until then, as Kafka's acceptor holds it).
pub async fn accept_loop(shard: Rc<Shard>, listener: BoundListener, quotas: Arc<ConnectionQuotas>) {
    let mut refusals = RefusalLog::default();
    let held = Rc::new(Cell::new(0usize));
    let mut tls = listener
        .tls
        .clone()
        .map(|config| tls_reload::TlsReloader::new(&shard, listener.name.clone(), config));
    loop {
        let stream = match listener.socket.accept().await {
            Ok(stream) => stream,
            Err(error) => {
                tracing::warn!("accept on listener {} failed: {error}", listener.name);
                glommio::timer::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let peer = match stream.peer_addr() {
            Ok(peer) => peer,
            // Gone already (reset before it was accepted): nothing to serve.
            Err(error) => {
                tracing::debug!("connection on listener {} closed: {error}", listener.name);
                continue;
            }
        };
        let address = peer.ip().to_canonical();
        let address_quota = shard.metadata().client_quotas.connection_rate(address);
        match quotas.admit(&listener.name, address, address_quota, Instant::now()) {
            Ok(slot) => {
                glommio::spawn_local(connection::serve(
                    shard.clone(),
                    connection::Accepted {
                        listener: listener.name.clone(),
                        tls: tls.as_mut().map(|tls| tls.current(&shard)),
                        sasl: listener.sasl.clone(),
                        principals: listener.principals.clone(),
                    },
                    stream,
                    slot,
                ))
                .detach();
            }
            Err(refusal) => {
                refusals.note(&listener.name, &peer.to_string(), &refusal);
                let throttle = Duration::from_millis(refusal.throttle_ms());
                if throttle.is_zero() || held.get() >= THROTTLED_CONNECTIONS_HELD_MAX {
                    drop(stream);
                    continue;
                }
                held.set(held.get() + 1);
                let held = held.clone();
                glommio::spawn_local(async move {
                    glommio::timer::sleep(throttle).await;
                    drop(stream);
                    held.set(held.get() - 1);
                })
                .detach();
            }
        }
    }
}

/// Logs refused connections without flooding: see `REFUSAL_LOG_INTERVAL`.
#[derive(Default)]
struct RefusalLog {
    last_info: Option<Instant>,
    unlogged: u64,
}

impl RefusalLog {
    fn note(&mut self, listener: &str, peer: &str, refusal: &QuotaError) {
        tracing::debug!("closed connection from {peer} on listener {listener}: {refusal}");
        self.unlogged += 1;
        let now = Instant::now();
        if self
            .last_info
            .is_some_and(|last| now.duration_since(last) < REFUSAL_LOG_INTERVAL)
        {
            return;
        }
        tracing::info!(
            "closed {} new connection(s) on listener {listener}; the latest from {peer}: {refusal}",
            self.unlogged
        );
        self.last_info = Some(now);
        self.unlogged = 0;
    }
}
