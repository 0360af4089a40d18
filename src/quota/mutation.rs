//! `controller_mutation_rate` (KIP-599): partitions created by CreateTopics and
//! CreatePartitions and deleted by DeleteTopics, counted per quota scope in Kafka's token bucket
//! (`token_bucket`, sampled by `controller.quota.window.num` and
//! `controller.quota.window.size.seconds`). A request charges its topics in order, as Kafka's
//! controller charges each topic once it has passed every other check:
//! - strict (CreateTopics v6+, CreatePartitions v3+, DeleteTopics v5+; Kafka's
//!   `StrictControllerMutationQuota`): a topic is refused while the bucket is below zero, and
//!   otherwise takes all its partitions, however far below zero that leaves the bucket; the
//!   request's throttle time is set only by a refusal (the time to refill to zero then);
//! - permissive (older versions, `PermissiveControllerMutationQuota`): every topic is taken,
//!   and a bucket left below zero throttles the request for the time to refill to zero.
//!
//! The buckets of one shard's scopes live in `MutationLedger`, kept in the shard's
//! `QuotaLedger` (the scope's owner by `manager::owner`, as for the byte rates). Pure: the time
//! is passed in.

use std::collections::HashMap;

use super::rate::Sampling;
use super::token_bucket::{throttle_ms, TokenBucket};
use super::QuotaScope;

/// One request's topics, charged against its client's `controller_mutation_rate`.
#[derive(Clone, Debug, PartialEq)]
pub struct MutationCharge {
    pub scope: QuotaScope,
    pub quota: f64,
    pub strict: bool,
    /// The partitions each topic would create or delete, in request order; `None` for a topic
    /// that never reaches the quota (Kafka refuses it before: unauthorized, repeated, or known
    /// to fail).
    pub partitions: Vec<Option<u32>>,
    pub now_ms: u64,
}

/// What a charge or a correction decided.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MutationVerdict {
    /// Per topic of the charge, whether it goes on (a refused one gets
    /// THROTTLING_QUOTA_EXCEEDED); empty for a correction.
    pub admitted: Vec<bool>,
    /// How long the client must wait: strict, set by a refusal only; permissive (and after a
    /// correction), the time the bucket takes to refill to zero.
    pub throttle_ms: u64,
}

/// A call on the ledger of the shard that owns `scope`.
#[derive(Clone, Debug, PartialEq)]
pub enum MutationCall {
    Charge(MutationCharge),
    /// Changes a charge once the controller has answered: `partitions` go back for topics it
    /// refused (negative: more are taken, for a topic that made more partitions than charged).
    Correct {
        scope: QuotaScope,
        quota: f64,
        partitions: f64,
        now_ms: u64,
    },
}

impl MutationCall {
    /// The scope whose bucket the call is for.
    pub fn scope(&self) -> &QuotaScope {
        match self {
            MutationCall::Charge(charge) => &charge.scope,
            MutationCall::Correct { scope, .. } => scope,
        }
    }
}

/// Buckets forgotten once this many are kept, if full (a full bucket is a new one).
const BUCKETS_KEPT: usize = 10_000;

/// The mutation buckets of the scopes one shard owns.
pub struct MutationLedger {
    sampling: Sampling,
    /// Each scope's bucket with the quota it was last used at (which sizes its burst).
    buckets: HashMap<QuotaScope, (f64, TokenBucket)>,
}

impl MutationLedger {
    pub fn new(sampling: Sampling) -> MutationLedger {
        MutationLedger {
            sampling,
            buckets: HashMap::new(),
        }
    }

    pub fn call(&mut self, call: MutationCall) -> MutationVerdict {
        match call {
            MutationCall::Charge(charge) => self.charge(charge),
            MutationCall::Correct {
                scope,
                quota,
                partitions,
                now_ms,
            } => {
                let sampling = self.sampling;
                let bucket = self.bucket(scope, quota, now_ms);
                bucket.record(sampling, quota, -partitions, now_ms);
                MutationVerdict {
                    admitted: Vec::new(),
                    throttle_ms: throttle_ms(bucket.tokens(sampling, quota, now_ms), quota),
                }
            }
        }
    }

    fn charge(&mut self, charge: MutationCharge) -> MutationVerdict {
        let sampling = self.sampling;
        let (quota, now_ms) = (charge.quota, charge.now_ms);
        let bucket = self.bucket(charge.scope, quota, now_ms);
        let mut verdict = MutationVerdict::default();
        for partitions in charge.partitions {
            let Some(partitions) = partitions else {
                verdict.admitted.push(true);
                continue;
            };
            let tokens = bucket.tokens(sampling, quota, now_ms);
            if charge.strict && tokens < 0.0 {
                verdict.throttle_ms = throttle_ms(tokens, quota);
                verdict.admitted.push(false);
                continue;
            }
            bucket.record(sampling, quota, f64::from(partitions), now_ms);
            if !charge.strict {
                let left = bucket.tokens(sampling, quota, now_ms);
                verdict.throttle_ms = verdict.throttle_ms.max(throttle_ms(left, quota));
            }
            verdict.admitted.push(true);
        }
        verdict
    }

    /// The bucket of `scope`, forgetting full ones first when too many are kept.
    fn bucket(&mut self, scope: QuotaScope, quota: f64, now_ms: u64) -> &mut TokenBucket {
        let sampling = self.sampling;
        if self.buckets.len() >= BUCKETS_KEPT && !self.buckets.contains_key(&scope) {
            self.buckets
                .retain(|_, (quota, bucket)| !bucket.is_full(sampling, *quota, now_ms));
        }
        let (last_quota, bucket) = self.buckets.entry(scope).or_default();
        *last_quota = quota;
        bucket
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW_MS: u64 = 1_700_000_000_000;

    fn scope(client_id: &str) -> QuotaScope {
        QuotaScope {
            user: String::new(),
            client_id: client_id.into(),
        }
    }

    fn charge(strict: bool, partitions: &[Option<u32>], now_ms: u64) -> MutationCall {
        MutationCall::Charge(MutationCharge {
            scope: scope("admin"),
            quota: 2.0,
            strict,
            partitions: partitions.to_vec(),
            now_ms,
        })
    }

    /// Proves a strict request takes a topic while the bucket is not below zero, however many
    /// partitions it has, refuses every later topic once it is, and is throttled only by a
    /// refusal, for the time the bucket takes to refill to zero.
    #[test]
    fn strict_refuses_topics_once_the_bucket_is_below_zero() {
        let mut ledger = MutationLedger::new(Sampling::default());
        // The burst is 11 s × 2 = 22 partitions.
        let verdict = ledger.call(charge(true, &[Some(20), Some(5), Some(1), None], NOW_MS));
        assert_eq!(verdict.admitted, vec![true, true, false, true]);
        assert_eq!(verdict.throttle_ms, 1_500, "-3 tokens at 2 per second");
        let verdict = ledger.call(charge(true, &[Some(1)], NOW_MS + 1_000));
        assert_eq!(verdict.admitted, vec![false]);
        assert_eq!(verdict.throttle_ms, 500);
        let verdict = ledger.call(charge(true, &[Some(4)], NOW_MS + 1_500));
        assert_eq!((verdict.admitted, verdict.throttle_ms), (vec![true], 0));
    }

    /// Proves a permissive request takes every topic and is throttled for the time the bucket
    /// takes to refill to zero after its last topic.
    #[test]
    fn permissive_takes_all_and_throttles() {
        let mut ledger = MutationLedger::new(Sampling::default());
        let verdict = ledger.call(charge(false, &[Some(20), Some(5), Some(1)], NOW_MS));
        assert_eq!(verdict.admitted, vec![true; 3]);
        assert_eq!(verdict.throttle_ms, 2_000, "-4 tokens at 2 per second");
        let verdict = ledger.call(charge(false, &[Some(0)], NOW_MS + 2_000));
        assert_eq!(verdict.throttle_ms, 0);
    }

    /// Proves a correction gives back what the controller refused (and reports the wait that
    /// is left), and that scopes are counted apart.
    #[test]
    fn corrections_and_scopes() {
        let mut ledger = MutationLedger::new(Sampling::default());
        ledger.call(charge(true, &[Some(30)], NOW_MS));
        let other = MutationCall::Charge(MutationCharge {
            scope: scope("other"),
            quota: 2.0,
            strict: true,
            partitions: vec![Some(1)],
            now_ms: NOW_MS,
        });
        assert_eq!(ledger.call(other).admitted, vec![true]);
        let corrected = ledger.call(MutationCall::Correct {
            scope: scope("admin"),
            quota: 2.0,
            partitions: 6.0,
            now_ms: NOW_MS,
        });
        assert_eq!(corrected.throttle_ms, 1_000, "-2 tokens left");
        let verdict = ledger.call(charge(true, &[Some(1)], NOW_MS + 1_000));
        assert_eq!(verdict.admitted, vec![true]);
    }
}
