//! `controller_mutation_rate` at CreateTopics, CreatePartitions and DeleteTopics (KIP-599): a
//! request's topics are charged, in order, the partitions each would create or delete, against
//! the client's quota (`quota::mutation`, on the shard that owns the quota's scope) before the
//! controller sees them. Kafka charges at the controller, once a topic has passed every other
//! check; here the checks this broker can make from its image come first (a topic that already
//! exists, a partition count that is not valid, an unknown topic: none of them is charged), and
//! once the controller has answered, what it refused is given back (`Mutations::settle`).
//!
//! A strict request (new versions) has the topics over the quota answered
//! THROTTLING_QUOTA_EXCEEDED; the others go on. Either way the response carries
//! `throttle_time_ms` and the connection is muted for it, as for the byte rates; an old version
//! whose client does not wait out the throttle itself (before KIP-219) is answered only once
//! it is over, as Kafka answers it.

use std::time::{Duration, Instant};

use kafka_protocol::ResponseError;

use super::RequestContext;
use crate::quota::mutation::{MutationCall, MutationCharge, MutationVerdict};
use crate::quota::{QuotaScope, CONTROLLER_MUTATION_RATE};

/// The error code and Kafka's message of a topic refused over the quota.
pub fn refusal() -> (i16, &'static str) {
    let code = ResponseError::ThrottlingQuotaExceeded.code();
    (code, "The throttling quota has been exceeded.")
}

/// The APIs that create or delete partitions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MutatingApi {
    CreateTopics,
    CreatePartitions,
    DeleteTopics,
}

impl MutatingApi {
    /// The first version refused topic by topic over the quota (KIP-599); older versions are
    /// only throttled, as their clients do not know THROTTLING_QUOTA_EXCEEDED.
    fn strict_since(self) -> i16 {
        match self {
            MutatingApi::CreateTopics => 6,
            MutatingApi::CreatePartitions => 3,
            MutatingApi::DeleteTopics => 5,
        }
    }

    /// The first version whose client waits out `throttle_time_ms` itself (KIP-219).
    fn client_throttles_since(self) -> i16 {
        match self {
            MutatingApi::CreateTopics => 3,
            MutatingApi::CreatePartitions => 1,
            MutatingApi::DeleteTopics => 2,
        }
    }
}

/// A request's topics as charged, until the controller's answer settles them.
pub struct Mutations {
    api: MutatingApi,
    /// The quota and the scope charged; `None` when no quota applies (every topic goes on).
    quota: Option<(f64, QuotaScope)>,
    strict: bool,
    charged: Vec<Option<u32>>,
    /// What each charged topic really created or deleted, as the handler settles them in order.
    mutated: Vec<u32>,
    verdict: MutationVerdict,
    /// When the verdict's throttle time was measured.
    measured_at: Instant,
}

impl RequestContext<'_> {
    /// Charges the partitions each topic would create or delete (in request order; `None` for a
    /// topic the quota does not see) against the client's `controller_mutation_rate`.
    pub async fn charge_mutations(
        &self,
        api: MutatingApi,
        partitions: Vec<Option<u32>>,
    ) -> Mutations {
        let strict = self.version >= api.strict_since();
        let quota = self.resolve_quota(CONTROLLER_MUTATION_RATE);
        let verdict = match &quota {
            None => MutationVerdict::default(),
            Some((quota, scope)) => {
                let charge = MutationCharge {
                    scope: scope.clone(),
                    quota: *quota,
                    strict,
                    partitions: partitions.clone(),
                    now_ms: now_ms(),
                };
                let verdict = self
                    .shard
                    .record_mutations(MutationCall::Charge(charge))
                    .await;
                if verdict.admitted.contains(&false) {
                    tracing::debug!(
                        "refusing topics of {api:?} from client {} over its {CONTROLLER_MUTATION_RATE} {quota}: retry after {} ms",
                        self.client_id,
                        verdict.throttle_ms
                    );
                }
                verdict
            }
        };
        Mutations {
            api,
            quota,
            strict,
            charged: partitions,
            mutated: Vec::new(),
            verdict,
            measured_at: Instant::now(),
        }
    }
}

impl Mutations {
    /// Whether topic `index` (of those charged) goes on to the controller.
    pub fn admitted(&self, index: usize) -> bool {
        self.verdict.admitted.get(index).copied().unwrap_or(true)
    }

    /// The topics (those charged, in order) that go on to the controller.
    pub fn admitted_of<'a, T>(&'a self, topics: &'a [T]) -> impl Iterator<Item = &'a T> + 'a {
        let admitted = |(index, topic)| self.admitted(index).then_some(topic);
        topics.iter().enumerate().filter_map(admitted)
    }

    /// Whether the next charged topic, in request order, was refused over the quota (it is then
    /// settled as mutating nothing). Otherwise the handler settles it with `mutated_next` once
    /// the controller has answered for it.
    pub fn refused_next(&mut self) -> bool {
        let refused = !self.admitted(self.mutated.len());
        if refused {
            self.mutated.push(0);
        }
        refused
    }

    /// The partitions the next charged topic was charged (0 for one the quota did not see).
    pub fn charged_next(&self) -> u32 {
        let index = self.mutated.len();
        self.charged.get(index).copied().flatten().unwrap_or(0)
    }

    /// Settles the next charged topic: it created or deleted `partitions` (0 if refused).
    pub fn mutated_next(&mut self, partitions: u32) {
        self.mutated.push(partitions);
    }

    /// Settles the charge once every topic is: what a topic was charged and did not create or
    /// delete goes back to the bucket. Mutes the connection for the throttle time (an old
    /// version is answered only after it) and returns the response's `throttle_time_ms`.
    pub async fn settle(mut self, context: &RequestContext<'_>) -> i32 {
        let Some((quota, scope)) = self.quota.take() else {
            return 0;
        };
        let mut given_back = 0i64;
        for (index, actual) in self.mutated.iter().copied().enumerate() {
            let charged = self.charged.get(index).copied().flatten();
            if let (Some(charged), true) = (charged, self.admitted(index)) {
                given_back += i64::from(charged) - i64::from(actual);
            }
        }
        let mut throttle_ms = self.verdict.throttle_ms;
        if given_back != 0 {
            let call = MutationCall::Correct {
                scope,
                quota,
                partitions: given_back as f64,
                now_ms: now_ms(),
            };
            let corrected = context.shard.record_mutations(call).await;
            // A strict request's throttle comes from its refusals alone.
            if !self.strict {
                (throttle_ms, self.measured_at) = (corrected.throttle_ms, Instant::now());
            }
        }
        // As Kafka's `throttleTime`: the time since it was measured has been waited already.
        let waited_ms = self.measured_at.elapsed().as_millis() as u64;
        let throttle_ms = throttle_ms.saturating_sub(waited_ms);
        let throttle_time_ms = context.mute_for("partition mutations", throttle_ms);
        if throttle_ms > 0 && context.version < self.api.client_throttles_since() {
            glommio::timer::sleep(Duration::from_millis(throttle_ms)).await;
        }
        throttle_time_ms
    }
}

fn now_ms() -> u64 {
    crate::storage::now_ms().max(0) as u64
}
