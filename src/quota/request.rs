//! The request quota (`request_percentage`, Kafka's `ClientRequestQuotaManager`): which
//! requests count, how a request's time becomes a share of a thread, and how long a client over
//! its share is throttled. A request counts the time its task spent running on the shard
//! (`runtime::busy_time`), recorded as a percentage of one thread per second (`nanos × 100 /
//! 1e9`, so 200 is two threads' worth) in the scope's sampled rate (`rate`, the byte rates'
//! `quota.window.*` sampling), on the shard that owns the scope (`manager`). The throttle is
//! Kafka's, (rate - quota) / quota of the measured window, at most one window. Pure: the time
//! is passed in.

use std::time::Duration;

use kafka_protocol::messages::ApiKey;

use super::rate::{self, Sampling};

/// What the exemption rules need to know of a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RequestFacts {
    pub key: ApiKey,
    /// A produce with acks=0: no response will carry a throttle time.
    pub unanswered: bool,
    /// A fetch with a replica id: a follower replicating.
    pub from_follower: bool,
    /// Served while the connection's SASL exchange is under way (before authentication, or
    /// re-authenticating): Kafka's authenticator serves these, not its request handlers.
    pub authenticating: bool,
    /// The principal may do cluster actions (CLUSTER_ACTION or ALTER on the cluster).
    pub cluster_action_allowed: bool,
}

/// Why a request does not count against the request quota.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exemption {
    /// Produce with acks=0 (Kafka's `sendNoOpResponseExemptThrottle`).
    Unanswered,
    /// A follower's fetch (replication is never throttled by client quotas).
    FollowerFetch,
    /// A cluster action between brokers (WriteTxnMarkers), when the principal may do it.
    ClusterAction,
    /// ApiVersions and the SASL exchange before authentication, and re-authentication.
    Authentication,
}

/// Whether and why `facts`'s request is exempt, as Kafka decides: its request handlers send
/// these with `sendResponseExemptThrottle` (a cluster action refused for authorization is
/// counted, as `handleError` throttles a `ClusterAuthorizationException`), and its
/// authenticator, before the request handlers, serves the SASL exchange.
pub fn exemption(facts: &RequestFacts) -> Option<Exemption> {
    if facts.authenticating {
        return Some(Exemption::Authentication);
    }
    match facts.key {
        ApiKey::Produce if facts.unanswered => Some(Exemption::Unanswered),
        ApiKey::Fetch if facts.from_follower => Some(Exemption::FollowerFetch),
        ApiKey::WriteTxnMarkers if facts.cluster_action_allowed => Some(Exemption::ClusterAction),
        _ => None,
    }
}

/// A request's running time as Kafka records it: the percentage of one thread it would use
/// in one second (`nanos × 100 / 1e9`).
pub fn percentage(busy: Duration) -> f64 {
    busy.as_nanos() as f64 * 100.0 / 1e9
}

/// How long a client whose request time runs at `rate` (percent) over the measured
/// `window_ms` must wait under `quota`: Kafka's throttle time, at most one sampling window
/// (`ClientRequestQuotaManager.maxThrottleTimeMs`).
pub fn throttle_ms(rate: f64, window_ms: u64, quota: f64, sampling: Sampling) -> u64 {
    rate::throttle_ms(rate, window_ms, quota).min(sampling.window_ms)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quota::rate::Rate;

    fn facts(key: ApiKey) -> RequestFacts {
        RequestFacts {
            key,
            unanswered: false,
            from_follower: false,
            authenticating: false,
            cluster_action_allowed: false,
        }
    }

    /// Proves Kafka's exemptions: acks=0 produces, followers' fetches, authorized cluster
    /// actions and the SASL exchange; everything else counts, ApiVersions once authenticated.
    #[test]
    fn exempts_as_kafka() {
        assert_eq!(exemption(&facts(ApiKey::Metadata)), None);
        assert_eq!(exemption(&facts(ApiKey::ApiVersions)), None);
        assert_eq!(exemption(&facts(ApiKey::Produce)), None);
        let unanswered = RequestFacts {
            unanswered: true,
            ..facts(ApiKey::Produce)
        };
        assert_eq!(exemption(&unanswered), Some(Exemption::Unanswered));
        assert_eq!(exemption(&facts(ApiKey::Fetch)), None);
        let follower = RequestFacts {
            from_follower: true,
            ..facts(ApiKey::Fetch)
        };
        assert_eq!(exemption(&follower), Some(Exemption::FollowerFetch));
        assert_eq!(exemption(&facts(ApiKey::WriteTxnMarkers)), None);
        let broker = RequestFacts {
            cluster_action_allowed: true,
            ..facts(ApiKey::WriteTxnMarkers)
        };
        assert_eq!(exemption(&broker), Some(Exemption::ClusterAction));
        let allowed_metadata = RequestFacts {
            cluster_action_allowed: true,
            ..facts(ApiKey::Metadata)
        };
        assert_eq!(exemption(&allowed_metadata), None);
        for key in [
            ApiKey::ApiVersions,
            ApiKey::SaslHandshake,
            ApiKey::SaslAuthenticate,
        ] {
            let exchange = RequestFacts {
                authenticating: true,
                ..facts(key)
            };
            assert_eq!(exemption(&exchange), Some(Exemption::Authentication));
        }
        // After authentication the SASL requests reach the handlers and count.
        assert_eq!(exemption(&facts(ApiKey::SaslHandshake)), None);
    }

    /// Proves a request's time is a percentage of a thread-second and the throttle is Kafka's,
    /// bounded by one window.
    #[test]
    fn converts_time_and_bounds_the_throttle() {
        assert_eq!(percentage(Duration::from_millis(10)), 1.0);
        assert_eq!(percentage(Duration::from_micros(50)), 0.005);
        assert_eq!(percentage(Duration::from_secs(2)), 200.0);
        let sampling = Sampling::default();
        // 20 % over a 10 s window against 10 %: 10 s by the formula, bounded to 1 s.
        assert_eq!(throttle_ms(20.0, 10_000, 10.0, sampling), 1_000);
        assert_eq!(throttle_ms(10.5, 10_000, 10.0, sampling), 500);
        assert_eq!(throttle_ms(9.0, 10_000, 10.0, sampling), 0);
    }

    /// Proves a client sending requests of 2 ms each back to back, and waiting out each
    /// throttle, is held near a 5 % quota, where it would use 100 % of a thread unthrottled.
    #[test]
    fn a_throttled_client_keeps_to_its_share() {
        let sampling = Sampling::default();
        let mut rate = Rate::default();
        let (quota, request_ms) = (5.0, 2u64);
        let (mut now, mut busy_ms) = (0u64, 0u64);
        while now < 120_000 {
            now += request_ms;
            busy_ms += request_ms;
            rate.record(sampling, percentage(Duration::from_millis(request_ms)), now);
            let (measured, window) = rate.measure(sampling, now);
            now += throttle_ms(measured, window, quota, sampling);
        }
        let share = busy_ms as f64 * 100.0 / now as f64;
        assert!(
            (share - quota).abs() / quota < 0.2,
            "{share} % against {quota} %"
        );
    }
}
