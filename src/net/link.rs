//! Opening this node's own connections to other brokers and to the controllers
//! (`config::links`): the socket, then TLS when the link's listener uses it. SASL follows on top,
//! in Kafka's SaslHandshake/SaslAuthenticate exchange (`runtime::peer`, with
//! `security::login::SaslLogin`).

use std::time::{Duration, Instant};

use glommio::net::TcpStream;
use rustls::pki_types::ServerName;

use super::stream::Stream;
use crate::client::security::ClientSecurity;

#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    #[error("cannot connect to {address}: {reason}")]
    Connect { address: String, reason: String },
    #[error("connecting to {0} timed out")]
    ConnectTimeout(String),
    #[error("TLS with {address} failed: {reason}")]
    Tls { address: String, reason: String },
    #[error("{address} refused this node's SASL login as {user}: {reason}")]
    Authentication {
        address: String,
        user: String,
        reason: String,
    },
}

/// Connects to `address` (`host:port`) within `timeout`, through TLS when `security` asks.
/// With `affinity` (shard, shard count), from a source port that steers the connection to that
/// shard of the other broker (`net::steering`).
pub async fn connect(
    address: &str,
    security: &ClientSecurity,
    timeout: Duration,
    affinity: Option<(usize, usize)>,
) -> Result<Stream, LinkError> {
    let connect = async {
        let connected = match affinity {
            Some((shard, shards)) if shards > 1 => {
                super::steering::connect_to_shard(address, shard, shards, timeout).await
            }
            _ => TcpStream::connect(address).await.map_err(Into::into),
        };
        connected.map_err(|error| LinkError::Connect {
            address: address.to_string(),
            reason: error.to_string(),
        })
    };
    let deadline = async {
        glommio::timer::sleep(timeout).await;
        Err(LinkError::ConnectTimeout(address.to_string()))
    };
    let tcp = futures_lite::future::or(connect, deadline).await?;
    let _ = tcp.set_nodelay(true);
    if !security.protocol.uses_tls() {
        return Ok(Stream::Plain(tcp));
    }
    let tls_error = |reason: String| LinkError::Tls {
        address: address.to_string(),
        reason,
    };
    let config = security
        .tls
        .clone()
        .ok_or_else(|| tls_error("the link's TLS material was not loaded".into()))?;
    let host = address
        .rsplit_once(':')
        .map_or(address, |(host, _)| host)
        .trim_start_matches('[')
        .trim_end_matches(']');
    let server_name = ServerName::try_from(host.to_string())
        .map_err(|error| tls_error(format!("{host} is not a host name: {error}")))?;
    let handshake = async {
        super::tls::connect(tcp, config, server_name)
            .await
            .map_err(|error| tls_error(error.to_string()))
    };
    let deadline = async {
        glommio::timer::sleep(timeout).await;
        Err(tls_error("the handshake timed out".into()))
    };
    let stream = futures_lite::future::or(handshake, deadline).await?;
    Ok(Stream::Tls(Box::new(stream)))
}

/// When a session that the server said lasts `lifetime_ms` must log in again: a little before
/// its end, as Kafka's clients do (KIP-368); `None` when it does not end.
pub fn reauthenticate_at(now: Instant, lifetime_ms: i64) -> Option<Instant> {
    let lifetime = u64::try_from(lifetime_ms).ok().filter(|ms| *ms > 0)?;
    // Between 85% and 95% of the lifetime in Kafka; 90% here.
    now.checked_add(Duration::from_millis(lifetime / 10 * 9))
}
