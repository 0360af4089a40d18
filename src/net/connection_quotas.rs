//! Connection limits as Kafka's `ConnectionQuotas` keeps them: `max.connections` for the
//! broker, `max.connections.per.ip` (with `max.connections.per.ip.overrides`) for each client
//! address, `max.connection.creation.rate` for new connections per second, and each address's
//! `connection_creation_rate` quota (KIP-612: an ip entity's, else the default ip entity's, from
//! the metadata image).
//!
//! Every shard accepts on every client listener (SO_REUSEPORT), so the counts are shared by the
//! shards: one `Mutex` taken once per accepted and once per closed connection, never on a
//! request. The per-address creation rates are kept under the same lock, so that an address's
//! connections count against one rate whichever shard accepts them. The arithmetic is `Counts`,
//! pure and with time passed in.
//!
//! A connection over a limit is closed as soon as it is accepted. Kafka does so for the per-IP
//! limit; for `max.connections` its acceptor waits for a free slot instead, and over the creation
//! rate it delays accepting: here both close too, which a client sees the same way (it
//! reconnects after its backoff) without connections queueing unseen in the listen backlog. As
//! in Kafka, the inter-broker listener is exempt from the broker-wide limits (count and rate)
//! when the broker has other client listeners, so clients cannot lock replication out.
//!
//! An address over its `connection_creation_rate` is measured as Kafka measures it: the sampled
//! rate of `quota.window.num` windows of `quota.window.size.seconds` (`quota::rate`), the new
//! connection counted and, if that puts the rate over the quota, taken back out again (a refused
//! connection does not count), with a throttle time of (rate - quota) / quota of the measured
//! window, at most one window. Kafka then holds the accepted socket, unserved, for that time
//! before closing it (`Acceptor.throttledSockets`), so that a client reconnecting at once is
//! slowed down; `net::accept_loop` does the same (`QuotaError::throttle_ms`).

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use crate::config::ServerConfig;
use crate::quota::rate::{self, Rate, Sampling};

/// Why a new connection was refused.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum QuotaError {
    #[error("the broker already has max.connections={max} connections")]
    MaxConnections { max: usize },
    #[error("{address} already has the configured maximum of {max} connections")]
    MaxConnectionsPerIp { address: IpAddr, max: usize },
    #[error("new connections exceed max.connection.creation.rate={rate} per second")]
    CreationRate { rate: u32 },
    #[error("{address} is over its connection_creation_rate quota of {quota} per second (throttled for {throttle_ms} ms)")]
    AddressCreationRate {
        address: IpAddr,
        quota: f64,
        throttle_ms: u64,
    },
}

impl QuotaError {
    /// How long the refused connection is held before it is closed: the throttle time of an
    /// address over its creation rate, as Kafka's acceptor holds it; zero for the others.
    pub fn throttle_ms(&self) -> u64 {
        match self {
            QuotaError::AddressCreationRate { throttle_ms, .. } => *throttle_ms,
            _ => 0,
        }
    }
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
    /// How addresses' creation rates are sampled (`quota.window.num`,
    /// `quota.window.size.seconds`).
    pub address_sampling: Sampling,
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
            address_sampling: config.quota_sampling,
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
    /// is over; `address_quota` is the address's `connection_creation_rate`, if it has one. The
    /// slot gives the connection back when dropped.
    pub fn admit(
        self: &Arc<Self>,
        listener: &str,
        address: IpAddr,
        address_quota: Option<f64>,
        now: Instant,
    ) -> Result<ConnectionSlot, QuotaError> {
        let protected = self.limits.protected_listener.as_deref() == Some(listener);
        let arrival = Arrival {
            address,
            protected,
            address_quota,
        };
        self.counts().admit(&self.limits, arrival, now)?;
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

/// A connection just accepted.
#[derive(Clone, Copy, Debug)]
pub struct Arrival {
    pub address: IpAddr,
    /// It came on the inter-broker listener, which the broker-wide limits do not apply to.
    pub protected: bool,
    /// The address's `connection_creation_rate`, if it has one.
    pub address_quota: Option<f64>,
}

/// Addresses' creation rates forgotten once this many are kept, if idle.
const ADDRESS_RATES_KEPT: usize = 10_000;

/// Open connections, in total and by address, the creation-rate token bucket, and the creation
/// rates of addresses with a quota.
#[derive(Debug)]
pub struct Counts {
    total: usize,
    by_address: HashMap<IpAddr, usize>,
    /// New connections that may still be accepted now: refilled at the rate, holding at most
    /// one second's worth (a burst of `rate` at once is allowed, as Kafka's one-second rate
    /// windows allow).
    creation_tokens: f64,
    refilled_at: Instant,
    /// Where the addresses' rates count time from.
    started: Instant,
    address_rates: HashMap<IpAddr, Rate>,
}

impl Counts {
    pub fn new(limits: &Limits, now: Instant) -> Counts {
        Counts {
            total: 0,
            by_address: HashMap::new(),
            creation_tokens: f64::from(limits.creation_rate_per_second),
            refilled_at: now,
            started: now,
            address_rates: HashMap::new(),
        }
    }

    /// Counts a new connection, or refuses it without counting it: the broker's count and
    /// creation rate, then the address's creation rate, then its count, as Kafka checks them.
    pub fn admit(
        &mut self,
        limits: &Limits,
        arrival: Arrival,
        now: Instant,
    ) -> Result<(), QuotaError> {
        let Arrival {
            address, protected, ..
        } = arrival;
        if !protected && self.total >= limits.max_connections {
            return Err(QuotaError::MaxConnections {
                max: limits.max_connections,
            });
        }
        let rate = f64::from(limits.creation_rate_per_second);
        if !protected {
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
        }
        if let Some(quota) = arrival.address_quota {
            self.count_address_rate(limits.address_sampling, address, quota, now)?;
        }
        let from_address = self.by_address.get(&address).copied().unwrap_or(0);
        let max = limits.max_for(address);
        if from_address >= max {
            return Err(QuotaError::MaxConnectionsPerIp { address, max });
        }
        if !protected {
            self.creation_tokens -= 1.0;
        }
        self.total += 1;
        *self.by_address.entry(address).or_insert(0) += 1;
        Ok(())
    }

    /// Counts a new connection from `address` in its creation rate; over `quota`, takes it back
    /// out and refuses it with Kafka's throttle time, at most one window.
    fn count_address_rate(
        &mut self,
        sampling: Sampling,
        address: IpAddr,
        quota: f64,
        now: Instant,
    ) -> Result<(), QuotaError> {
        let now_ms = now.saturating_duration_since(self.started).as_millis() as u64;
        if self.address_rates.len() >= ADDRESS_RATES_KEPT {
            self.address_rates.retain(|_, rate| {
                rate.measure(sampling, now_ms);
                !rate.is_idle()
            });
        }
        let rates = self.address_rates.entry(address).or_default();
        rates.record(sampling, 1.0, now_ms);
        let (measured, window_ms) = rates.measure(sampling, now_ms);
        let throttle_ms = rate::throttle_ms(measured, window_ms, quota).min(sampling.window_ms);
        if throttle_ms == 0 {
            return Ok(());
        }
        rates.record(sampling, -1.0, now_ms);
        Err(QuotaError::AddressCreationRate {
            address,
            quota,
            throttle_ms,
        })
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
            address_sampling: Sampling::default(),
        }
    }

    fn arrival(address: IpAddr, protected: bool) -> Arrival {
        Arrival {
            address,
            protected,
            address_quota: None,
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
            counts.admit(&limits, arrival(local, false), now).unwrap();
        }
        assert_eq!(
            counts.admit(&limits, arrival(local, false), now),
            Err(QuotaError::MaxConnectionsPerIp {
                address: local,
                max: 2
            })
        );
        counts
            .admit(&limits, arrival(address("10.0.0.1"), false), now)
            .unwrap();
        assert!(counts
            .admit(&limits, arrival(address("10.0.0.9"), true), now)
            .is_err());
        counts.release(local);
        counts.admit(&limits, arrival(local, false), now).unwrap();
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
            .admit(&limits, arrival(address("10.0.0.1"), false), now)
            .unwrap();
        counts
            .admit(&limits, arrival(address("10.0.0.2"), false), now)
            .unwrap();
        let refused = counts.admit(&limits, arrival(address("10.0.0.3"), false), now);
        assert_eq!(refused, Err(QuotaError::MaxConnections { max: 2 }));
        assert_eq!(counts.total, 2);
        counts
            .admit(&limits, arrival(address("10.0.0.4"), true), now)
            .unwrap();
        counts.release(address("10.0.0.1"));
        counts.release(address("10.0.0.4"));
        counts
            .admit(&limits, arrival(address("10.0.0.3"), false), now)
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
            counts.admit(&limits, arrival(local, false), start).unwrap();
        }
        let refused = counts.admit(&limits, arrival(local, false), start);
        assert_eq!(refused, Err(QuotaError::CreationRate { rate: 4 }));
        let later = start + Duration::from_millis(260);
        counts.admit(&limits, arrival(local, false), later).unwrap();
        assert!(counts.admit(&limits, arrival(local, false), later).is_err());
        assert!(
            counts.admit(&limits, arrival(local, true), later).is_ok(),
            "protected"
        );
        let much_later = start + Duration::from_secs(60);
        for _ in 0..4 {
            counts
                .admit(&limits, arrival(local, false), much_later)
                .unwrap();
        }
        assert!(counts
            .admit(&limits, arrival(local, false), much_later)
            .is_err());
    }

    /// Proves an address's `connection_creation_rate` is Kafka's sampled rate: a burst of the
    /// quota's worth over the sampled span passes, then connections are refused (and not
    /// counted) with the throttle time, at most one window, until the first sample expires;
    /// other addresses and addresses without a quota are not held back, on any listener.
    #[test]
    fn limits_each_addresss_creation_rate() {
        let limits = limits();
        let start = Instant::now();
        let mut counts = Counts::new(&limits, start);
        let local = address("127.0.0.1");
        let quota = |address, quota| Arrival {
            address,
            protected: false,
            address_quota: Some(quota),
        };
        // 11 windows of 1 s, counted as at least 10 s: 20 connections at 2 per second.
        for _ in 0..20 {
            counts.admit(&limits, quota(local, 2.0), start).unwrap();
        }
        let refused = counts.admit(&limits, quota(local, 2.0), start);
        assert_eq!(
            refused,
            Err(QuotaError::AddressCreationRate {
                address: local,
                quota: 2.0,
                throttle_ms: 500
            }),
            "21 in 10 s is 2.1 per second: (2.1 - 2) / 2 of 10 s"
        );
        assert_eq!(refused.unwrap_err().throttle_ms(), 500);
        let far_over = counts.admit(&limits, quota(local, 0.5), start);
        assert_eq!(
            far_over.unwrap_err().throttle_ms(),
            1_000,
            "at most one window"
        );
        counts.admit(&limits, arrival(local, false), start).unwrap();
        counts
            .admit(&limits, quota(address("10.0.0.1"), 2.0), start)
            .unwrap();
        let protected = Arrival {
            protected: true,
            ..quota(local, 2.0)
        };
        assert!(counts.admit(&limits, protected, start).is_err());
        let later = start + Duration::from_secs(5);
        assert!(counts.admit(&limits, quota(local, 2.0), later).is_err());
        let expired = start + Duration::from_millis(11_000);
        counts.admit(&limits, quota(local, 2.0), expired).unwrap();
        assert_eq!(counts.total, 23, "refused connections are not counted");
    }
}
