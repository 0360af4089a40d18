//! Kafka's token bucket (`org.apache.kafka.common.metrics.stats.TokenBucket`, KIP-599), which
//! `controller_mutation_rate` is enforced with: the bucket refills at the quota per second and
//! holds at most `samples × window × quota` tokens (the burst); a recording takes its value out
//! and may leave the bucket below zero. The quota counts as exhausted while the bucket is below
//! zero, and a client then waits for it to refill to zero: `-tokens / quota` seconds, Kafka's
//! `ControllerMutationQuotaManager.throttleTimeMs`. Unlike the sampled rate (`rate`), one large
//! burst does not hold the quota exhausted until its sample expires. Pure: the time is passed
//! in.

use super::rate::Sampling;

/// One bucket. As Kafka's, a new one is empty and last refilled at time 0 (the epoch, for the
/// wall-clock times it is given), so its first refill fills it.
#[derive(Clone, Debug, Default)]
pub struct TokenBucket {
    tokens: f64,
    refilled_ms: u64,
}

impl TokenBucket {
    /// The tokens left at `now_ms` for `quota` per second.
    pub fn tokens(&mut self, sampling: Sampling, quota: f64, now_ms: u64) -> f64 {
        self.refill(sampling, quota, now_ms);
        self.tokens
    }

    /// Takes `value` tokens out at `now_ms` (a negative value puts them back, up to the burst).
    pub fn record(&mut self, sampling: Sampling, quota: f64, value: f64, now_ms: u64) {
        self.refill(sampling, quota, now_ms);
        self.tokens = (self.tokens - value).min(burst(sampling, quota));
    }

    /// Whether the bucket is full at `now_ms`, so that forgetting it changes nothing.
    pub fn is_full(&mut self, sampling: Sampling, quota: f64, now_ms: u64) -> bool {
        self.tokens(sampling, quota, now_ms) >= burst(sampling, quota)
    }

    fn refill(&mut self, sampling: Sampling, quota: f64, now_ms: u64) {
        let burst = burst(sampling, quota);
        let elapsed_ms = now_ms.saturating_sub(self.refilled_ms);
        self.tokens = (self.tokens + quota * elapsed_ms as f64 / 1000.0).min(burst);
        self.refilled_ms = self.refilled_ms.max(now_ms);
    }
}

/// The most tokens a bucket holds: `samples × window × quota`, 11 s of quota by default.
pub fn burst(sampling: Sampling, quota: f64) -> f64 {
    f64::from(sampling.samples) * sampling.window_ms as f64 / 1000.0 * quota
}

/// How long until a bucket holding `tokens` refills to zero at `quota` per second; zero when it
/// is not below zero.
pub fn throttle_ms(tokens: f64, quota: f64) -> u64 {
    if tokens >= 0.0 || quota <= 0.0 {
        return 0;
    }
    (-tokens / quota * 1000.0).round() as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Proves a new bucket holds the burst, a recording may take it below zero, it refills at
    /// the quota up to the burst, and the wait is the time to refill to zero.
    #[test]
    fn fills_drains_and_refills_as_kafka() {
        let sampling = Sampling::default();
        let mut bucket = TokenBucket::default();
        assert_eq!(bucket.tokens(sampling, 2.0, 50_000), 22.0);
        bucket.record(sampling, 2.0, 30.0, 50_000);
        assert_eq!(bucket.tokens(sampling, 2.0, 50_000), -8.0);
        assert_eq!(throttle_ms(-8.0, 2.0), 4_000);
        assert_eq!(bucket.tokens(sampling, 2.0, 51_000), -6.0);
        assert_eq!(bucket.tokens(sampling, 2.0, 54_000), 0.0);
        assert_eq!(throttle_ms(0.0, 2.0), 0);
        assert!(!bucket.is_full(sampling, 2.0, 60_000));
        assert!(bucket.is_full(sampling, 2.0, 70_000));
        // Tokens put back never exceed the burst.
        bucket.record(sampling, 2.0, -100.0, 70_000);
        assert_eq!(bucket.tokens(sampling, 2.0, 70_000), 22.0);
        // A clock that steps back refills nothing.
        bucket.record(sampling, 2.0, 22.0, 70_000);
        assert_eq!(bucket.tokens(sampling, 2.0, 69_000), 0.0);
    }

    /// Proves the burst follows the sampling: `controller.quota.window.num` ×
    /// `controller.quota.window.size.seconds` × the quota.
    #[test]
    fn the_burst_is_the_sampled_span_of_quota() {
        let sampling = Sampling {
            samples: 5,
            window_ms: 2_000,
        };
        assert_eq!(burst(sampling, 3.0), 30.0);
        assert_eq!(burst(Sampling::default(), 0.5), 5.5);
    }
}
