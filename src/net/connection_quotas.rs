//! Connection limits as Kafka's `ConnectionQuotas` keeps them: `max.connections` for the
//! broker, `max.connections.per.ip` (with `max.connections.per.ip.overrides`) for each client
//! address, and `max.connection.creation.rate` for new connections per second.
//!
//! Every shard accepts on every client listener (SO_REUSEPORT), so the counts are shared by the
//! shards: one `Mutex` taken once per accepted and once per closed connection, never on a
//! request. The arithmetic is `Counts`, pure and with time passed in.
//!
//! A connection over a limit is closed as soon as it is accepted. Kafka does so for the per-IP
//! limit; for `max.connections` its acceptor waits for a free slot instead, and over the creation
//! rate it delays accepting: here both close too, which a client sees the same way (it
//! reconnects after its backoff) without connections queueing unseen in the listen backlog. As
//! in Kafka, the inter-broker listener is exempt from the broker-wide limits (count and rate)
//! when the broker has other client listeners, so clients cannot lock replication out.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use crate::config::ServerConfig;

/// Why a new connection was refused.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum QuotaError {
    #[error("the broker already has max.connections={max} connections")]
    MaxConnections { max: usize },
    #[error("{address} already has the configured maximum of {max} connections")]
    MaxConnectionsPerIp { address: IpAddr, max: usize },
    #[error("new connections exceed max.connection.creation.rate={rate} per second")]
    CreationRate { rate: u32 },
}

/// The limits, from the configuration.
#[derive(Clone, Debug)]
pub struct Limits {
    pub max_connections: usize,
    pub max_connections_per_ip: usize,
    pub per_ip_overrides: BTreeMap<IpAddr, usize>,
    pub creation_rate_per_second: u32,
    /// The listener the broker-wide limits do not apply to (see the module notes).
    pub protected_listener: Option<String>,
}

impl Limits {
    pub fn from_config(config: &ServerConfig) -> Limits {
        let protected_listener = match config.client_listeners().count() > 1 {
            true => config.inter_broker_listener().map(str::to_string),
            false => None,
        };
        Limits {
            max_connections: config.max_connections,
            max_connections_per_ip: config.max_connections_per_ip,
            per_ip_overrides: config.max_connections_per_ip_overrides.clone(),
            creation_rate_per_second: config.max_connection_creation_rate,
            protected_listener,
        }
    }

    fn max_for(&self, address: IpAddr) -> usize {
        self.per_ip_overrides
            .get(&address)
            .copied()
            .unwrap_or(self.max_connections_per_ip)
    }
}

/// The open client connections of the broker, shared by every shard.
pub struct ConnectionQuotas {
    limits: Limits,
    counts: Mutex<Counts>,
}

impl ConnectionQuotas {
    pub fn new(limits: Limits, now: Instant) -> Arc<ConnectionQuotas> {
        Arc::new(ConnectionQuotas {
            counts: Mutex::new(Counts::new(&limits, now)),
            limits,
        })
    }

    /// Counts a connection from `address` just accepted on `listener`, or says which limit it
    /// is over. The slot gives the connection back when dropped.
    pub fn admit(
        self: &Arc<Self>,
        listener: &str,
        address: IpAddr,
        now: Instant,
    ) -> Result<ConnectionSlot, QuotaError> {
        let protected = self.limits.protected_listener.as_deref() == Some(listener);
        self.counts().admit(&self.limits, address, protected, now)?;
        Ok(ConnectionSlot {
            quotas: self.clone(),
            address,
        })
    }

    fn counts(&self) -> MutexGuard<'_, Counts> {
        // A panic while holding the lock aborts the process (panic = "abort"); in tests the
        // counts are still consistent, as every update is a single step.
        self.counts
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// One admitted connection; dropping it releases its place in the counts.
pub struct ConnectionSlot {
    quotas: Arc<ConnectionQuotas>,
    address: IpAddr,
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        self.quotas.counts().release(self.address);
    }
}

/// Open connections, in total and by address, and the creation-rate token bucket.
#[derive(Debug)]
pub struct Counts {
    total: usize,
    by_address: HashMap<IpAddr, usize>,
    /// New connections that may still be accepted now: refilled at the rate, holding at most
    /// one second's worth (a burst of `rate` at once is allowed, as Kafka's one-second rate
    /// windows allow).
    creation_tokens: f64,
    refilled_at: Instant,
}

impl Counts {
    pub fn new(limits: &Limits, now: Instant) -> Counts {
        Counts {
            total: 0,
            by_address: HashMap::new(),
            creation_tokens: f64::from(limits.creation_rate_per_second),
            refilled_at: now,
        }
    }

    /// Counts a new connection, or refuses it without counting it. `protected`: it came on the
    /// inter-broker listener, which only the per-IP limit applies to.
    pub fn admit(
        &mut self,
        limits: &Limits,
        address: IpAddr,
        protected: bool,
        now: Instant,
    ) -> Result<(), QuotaError> {
        if !protected && self.total >= limits.max_connections {
            return Err(QuotaError::MaxConnections {
                max: limits.max_connections,
            });
        }
        let from_address = self.by_address.get(&address).copied().unwrap_or(0);
        let max = limits.max_for(address);
        if from_address >= max {
            return Err(QuotaError::MaxConnectionsPerIp { address, max });
        }
        if !protected {
            let rate = f64::from(limits.creation_rate_per_second);
            let elapsed = now
                .saturating_duration_since(self.refilled_at)
                .as_secs_f64();
            self.creation_tokens = (self.creation_tokens + elapsed * rate).min(rate);
            self.refilled_at = now.max(self.refilled_at);
            if self.creation_tokens < 1.0 {
                return Err(QuotaError::CreationRate {
                    rate: limits.creation_rate_per_second,
                });
            }
            self.creation_tokens -= 1.0;
        }
        self.total += 1;
        *self.by_address.entry(address).or_insert(0) += 1;
        Ok(())
    }

    /// A connection from `address` closed.
    pub fn release(&mut self, address: IpAddr) {
        self.total = self.total.saturating_sub(1);
        if let Some(count) = self.by_address.get_mut(&address) {
            *count -= 1;
            if *count == 0 {
                self.by_address.remove(&address);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn limits() -> Limits {
        Limits {
            max_connections: usize::MAX,
            max_connections_per_ip: usize::MAX,
            per_ip_overrides: BTreeMap::new(),
            creation_rate_per_second: u32::MAX,
            protected_listener: None,
        }
    }

    fn address(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    /// Proves the per-IP limit and its overrides count each address apart, and a closed
    /// connection frees its place.
    #[test]
    fn limits_connections_per_address() {
        let mut limits = limits();
        limits.max_connections_per_ip = 2;
        limits.per_ip_overrides.insert(address("10.0.0.9"), 0);
        let now = Instant::now();
        let mut counts = Counts::new(&limits, now);
        let local = address("127.0.0.1");
        for _ in 0..2 {
            counts.admit(&limits, local, false, now).unwrap();
        }
        assert_eq!(
            counts.admit(&limits, local, false, now),
            Err(QuotaError::MaxConnectionsPerIp {
                address: local,
                max: 2
            })
        );
        counts
            .admit(&limits, address("10.0.0.1"), false, now)
            .unwrap();
        assert!(counts
            .admit(&limits, address("10.0.0.9"), true, now)
            .is_err());
        counts.release(local);
        counts.admit(&limits, local, false, now).unwrap();
        assert_eq!(counts.total, 3);
    }

    /// Proves max.connections counts every address, refused connections are not counted, and
    /// the protected listener is exempt.
    #[test]
    fn limits_connections_of_the_broker() {
        let mut limits = limits();
        limits.max_connections = 2;
        let now = Instant::now();
        let mut counts = Counts::new(&limits, now);
        counts
            .admit(&limits, address("10.0.0.1"), false, now)
            .unwrap();
        counts
            .admit(&limits, address("10.0.0.2"), false, now)
            .unwrap();
        let refused = counts.admit(&limits, address("10.0.0.3"), false, now);
        assert_eq!(refused, Err(QuotaError::MaxConnections { max: 2 }));
        assert_eq!(counts.total, 2);
        counts
            .admit(&limits, address("10.0.0.4"), true, now)
            .unwrap();
        counts.release(address("10.0.0.1"));
        counts.release(address("10.0.0.4"));
        counts
            .admit(&limits, address("10.0.0.3"), false, now)
            .unwrap();
    }

    /// Proves the creation rate allows a second's burst, then one connection per 1/rate
    /// seconds, and refused connections take no token.
    #[test]
    fn limits_the_creation_rate() {
        let mut limits = limits();
        limits.creation_rate_per_second = 4;
        let start = Instant::now();
        let mut counts = Counts::new(&limits, start);
        let local = address("127.0.0.1");
        for _ in 0..4 {
            counts.admit(&limits, local, false, start).unwrap();
        }
        let refused = counts.admit(&limits, local, false, start);
        assert_eq!(refused, Err(QuotaError::CreationRate { rate: 4 }));
        let later = start + Duration::from_millis(260);
        counts.admit(&limits, local, false, later).unwrap();
        assert!(counts.admit(&limits, local, false, later).is_err());
        assert!(
            counts.admit(&limits, local, true, later).is_ok(),
            "protected"
        );
        let much_later = start + Duration::from_secs(60);
        for _ in 0..4 {
            counts.admit(&limits, local, false, much_later).unwrap();
        }
        assert!(counts.admit(&limits, local, false, much_later).is_err());
    }
}
