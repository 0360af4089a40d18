//! The byte-rate quotas of one broker: how many bytes each quota scope produced and fetched
//! lately, and how long a request that went over must hold its connection. Quotas are per
//! broker, as in Kafka, and a client's connections may be on different shards, so the rates
//! are one table every shard records into under a lock; it is touched only when the metadata
//! image holds quotas, once per produce or fetch.

use std::collections::HashMap;
use std::sync::Mutex;

use super::rate::{throttle_ms, Rate, Sampling};
use super::{ClientQuotas, QuotaScope, CONSUMER_BYTE_RATE, PRODUCER_BYTE_RATE};

/// Which byte rate a request counts against.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum QuotaKind {
    /// `producer_byte_rate`: the bytes of produce requests.
    Produce,
    /// `consumer_byte_rate`: the bytes of fetch responses to consumers.
    Fetch,
}

impl QuotaKind {
    fn key(self) -> &'static str {
        match self {
            QuotaKind::Produce => PRODUCER_BYTE_RATE,
            QuotaKind::Fetch => CONSUMER_BYTE_RATE,
        }
    }
}

/// Rates forgotten once this many are kept, if idle.
const RATES_KEPT: usize = 10_000;

pub struct QuotaManager {
    sampling: Sampling,
    rates: Mutex<HashMap<(QuotaKind, QuotaScope), Rate>>,
}

impl QuotaManager {
    pub fn new(sampling: Sampling) -> QuotaManager {
        QuotaManager {
            sampling,
            rates: Mutex::new(HashMap::new()),
        }
    }

    /// Counts `bytes` of `user` with `client_id` against the quota `quotas` gives them, if
    /// any; returns how long the client must now be throttled (0 when within its quota).
    pub fn record(
        &self,
        quotas: &ClientQuotas,
        kind: QuotaKind,
        who: (&str, &str),
        bytes: usize,
        now_ms: u64,
    ) -> u64 {
        let sampling = self.sampling;
        self.with_rate(quotas, kind, who, now_ms, |rate, quota| {
            rate.record(sampling, bytes as f64, now_ms);
            let (measured, window_ms) = rate.measure(sampling, now_ms);
            throttle_ms(measured, window_ms, quota)
        })
        .unwrap_or(0)
    }

    /// Takes back `bytes` recorded by `record` (a throttled fetch answered without its records,
    /// as Kafka answers it).
    pub fn unrecord(
        &self,
        quotas: &ClientQuotas,
        kind: QuotaKind,
        who: (&str, &str),
        bytes: usize,
        now_ms: u64,
    ) {
        let sampling = self.sampling;
        self.with_rate(quotas, kind, who, now_ms, |rate, _| {
            rate.record(sampling, -(bytes as f64), now_ms)
        });
    }

    /// Runs `use_rate` on the rate of the scope the quota of `who` applies to, with the quota;
    /// `None` when there is no quota.
    fn with_rate<R>(
        &self,
        quotas: &ClientQuotas,
        kind: QuotaKind,
        (user, client_id): (&str, &str),
        now_ms: u64,
        use_rate: impl FnOnce(&mut Rate, f64) -> R,
    ) -> Option<R> {
        let (quota, scope) = quotas.resolve(kind.key(), user, client_id)?;
        let mut rates = self
            .rates
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if rates.len() >= RATES_KEPT {
            let sampling = self.sampling;
            rates.retain(|_, rate| {
                rate.measure(sampling, now_ms);
                !rate.is_idle()
            });
        }
        Some(use_rate(rates.entry((kind, scope)).or_default(), quota))
    }
}

#[cfg(test)]
mod tests {
    use super::super::{QuotaEntity, CLIENT_ID, USER};
    use super::*;

    /// Proves usage is counted per scope: a user's quota gathers all its clients, other users
    /// are untouched, and an unrecorded fetch gives its bytes back.
    #[test]
    fn counts_per_scope() {
        let mut quotas = ClientQuotas::default();
        let user = QuotaEntity::new(vec![(USER.into(), Some("alice".into()))]).unwrap();
        quotas.set(&user, PRODUCER_BYTE_RATE, Some(1_000.0));
        let clients = QuotaEntity::new(vec![(CLIENT_ID.into(), None)]).unwrap();
        quotas.set(&clients, CONSUMER_BYTE_RATE, Some(1_000.0));
        let manager = QuotaManager::new(Sampling::default());
        let produce = |who, bytes| manager.record(&quotas, QuotaKind::Produce, who, bytes, 0);
        assert_eq!(produce(("alice", "a"), 10_000), 0);
        // The second client of the same user goes over the user's 10 s allowance.
        assert_eq!(produce(("alice", "b"), 10_000), 10_000);
        assert_eq!(produce(("bob", "a"), 1_000_000), 0);
        let fetch = |who, bytes| manager.record(&quotas, QuotaKind::Fetch, who, bytes, 0);
        assert!(fetch(("bob", "x"), 20_000) > 0);
        manager.unrecord(&quotas, QuotaKind::Fetch, ("bob", "x"), 20_000, 0);
        // Client ids are counted apart under the default client quota.
        assert_eq!(fetch(("bob", "y"), 10_000), 0);
        assert_eq!(fetch(("bob", "x"), 10_000), 0);
    }
}
