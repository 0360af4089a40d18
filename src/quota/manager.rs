//! The client quotas of one broker: how many bytes each quota scope produced and fetched
//! lately, how much of a thread its requests took (`request`), how many partitions it created
//! and deleted (`mutation`), and how long a request that
//! went over must hold its connection. Quotas are per broker, as in Kafka's byte rates, and a
//! client's connections may be on different shards, so each scope is counted by one shard, its
//! owner (`owner`); the others send it their records (`ShardRequest::Quota`) and wait for the
//! throttle time. Nothing is asked when the metadata image holds no quota.

use std::collections::HashMap;

use super::mutation::{MutationCall, MutationLedger, MutationVerdict};
use super::rate::{throttle_ms, Rate, Sampling};
use super::{request, QuotaScope, CONSUMER_BYTE_RATE, PRODUCER_BYTE_RATE, REQUEST_PERCENTAGE};

/// Which rate a request counts against.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum QuotaKind {
    /// `producer_byte_rate`: the bytes of produce requests.
    Produce,
    /// `consumer_byte_rate`: the bytes of fetch responses to consumers.
    Fetch,
    /// `request_percentage`: the time requests ran, in percent of a thread (`request`).
    Request,
}

impl QuotaKind {
    pub fn key(self) -> &'static str {
        match self {
            QuotaKind::Produce => PRODUCER_BYTE_RATE,
            QuotaKind::Fetch => CONSUMER_BYTE_RATE,
            QuotaKind::Request => REQUEST_PERCENTAGE,
        }
    }
}

/// One recording: `value` (bytes, or a request's percentage of a thread; negative to take bytes
/// back) of `scope` against `quota` at `now_ms`.
#[derive(Clone, Debug, PartialEq)]
pub struct QuotaRecord {
    pub kind: QuotaKind,
    pub scope: QuotaScope,
    pub quota: f64,
    pub value: f64,
    pub now_ms: u64,
}

/// The shard (of `shard_count`) that counts `scope`.
pub fn owner(scope: &QuotaScope, shard_count: usize) -> usize {
    let text = format!("{}\0{}", scope.user, scope.client_id);
    crc32c::crc32c(text.as_bytes()) as usize % shard_count.max(1)
}

/// Rates forgotten once this many are kept, if idle.
const RATES_KEPT: usize = 10_000;

/// The rates and mutation buckets of the scopes one shard owns.
pub struct QuotaLedger {
    sampling: Sampling,
    rates: HashMap<(QuotaKind, QuotaScope), Rate>,
    mutations: MutationLedger,
}

impl QuotaLedger {
    /// `sampling` for the byte rates (`quota.window.*`), `controller_sampling` for the
    /// mutation buckets (`controller.quota.window.*`).
    pub fn new(sampling: Sampling, controller_sampling: Sampling) -> QuotaLedger {
        QuotaLedger {
            sampling,
            rates: HashMap::new(),
            mutations: MutationLedger::new(controller_sampling),
        }
    }

    /// Charges or corrects partition mutations (`mutation`).
    pub fn mutations(&mut self, call: MutationCall) -> MutationVerdict {
        self.mutations.call(call)
    }

    /// Records `record`; returns how long its client must now be throttled (0 when within its
    /// quota).
    pub fn record(&mut self, record: QuotaRecord) -> u64 {
        let sampling = self.sampling;
        if self.rates.len() >= RATES_KEPT {
            self.rates.retain(|_, rate| {
                rate.measure(sampling, record.now_ms);
                !rate.is_idle()
            });
        }
        let rate = self.rates.entry((record.kind, record.scope)).or_default();
        rate.record(sampling, record.value, record.now_ms);
        let (measured, window_ms) = rate.measure(sampling, record.now_ms);
        match record.kind {
            QuotaKind::Request => request::throttle_ms(measured, window_ms, record.quota, sampling),
            QuotaKind::Produce | QuotaKind::Fetch => throttle_ms(measured, window_ms, record.quota),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Proves usage is counted per scope and kind, and bytes taken back are given back.
    #[test]
    fn counts_per_scope() {
        let mut ledger = QuotaLedger::new(Sampling::default(), Sampling::default());
        let scope = |user: &str, client: &str| QuotaScope {
            user: user.into(),
            client_id: client.into(),
        };
        let mut record = |kind, scope, value| {
            ledger.record(QuotaRecord {
                kind,
                scope,
                quota: 1_000.0,
                value,
                now_ms: 0,
            })
        };
        assert_eq!(record(QuotaKind::Produce, scope("alice", ""), 10_000.0), 0);
        assert_eq!(
            record(QuotaKind::Produce, scope("alice", ""), 10_000.0),
            10_000
        );
        assert_eq!(record(QuotaKind::Produce, scope("bob", ""), 10_000.0), 0);
        assert_eq!(record(QuotaKind::Fetch, scope("alice", ""), 10_000.0), 0);
        assert!(record(QuotaKind::Fetch, scope("", "x"), 20_000.0) > 0);
        assert_eq!(record(QuotaKind::Fetch, scope("", "x"), -20_000.0), 0);
        assert_eq!(record(QuotaKind::Fetch, scope("", "x"), 10_000.0), 0);
        // Request time has a rate of its own, and its throttle is at most one window.
        assert_eq!(record(QuotaKind::Request, scope("alice", ""), 10_000.0), 0);
        assert_eq!(
            record(QuotaKind::Request, scope("alice", ""), 10_000.0),
            1_000
        );
        let owners: std::collections::BTreeSet<usize> = (0..32)
            .map(|user| owner(&scope(&user.to_string(), "c"), 4))
            .collect();
        assert_eq!(owners.len(), 4, "scopes spread over the shards");
    }
}
