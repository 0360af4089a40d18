//! Byte-rate quotas at the APIs (KIP-219): a produce or a consumer's fetch counts its bytes
//! against the client's quota (`quota::manager`, on the shard that owns the quota's scope); one
//! that goes over is answered at once with `throttle_time_ms`, and its connection starts no
//! further request until that time has passed (`ConnectionInfo::muted_until`), as Kafka mutes
//! the channel.

use std::time::{Duration, Instant};

use super::RequestContext;
use crate::quota::manager::{QuotaKind, QuotaRecord};
use crate::quota::QuotaScope;

impl RequestContext<'_> {
    /// The client's quota `key` and the scope it is counted in, by Kafka's precedence; `None`
    /// when no entity sets it.
    pub fn resolve_quota(&self, key: &str) -> Option<(f64, QuotaScope)> {
        let image = self.shard.metadata();
        if image.client_quotas.is_empty() {
            return None;
        }
        // The quota's user is the principal's name (`alice` for `User:alice`).
        let principal = self.connection.principal();
        let user = principal.split_once(':').map_or("", |(_, name)| name);
        image.client_quotas.resolve(key, user, &self.client_id)
    }

    /// Counts `bytes` (negative: takes them back) against the client's `kind` quota; returns
    /// the throttle time that results (0 when within the quota or there is none).
    async fn record_quota(&self, kind: QuotaKind, bytes: f64) -> u64 {
        let Some((quota, scope)) = self.resolve_quota(kind.key()) else {
            return 0;
        };
        let record = QuotaRecord {
            kind,
            scope,
            quota,
            value: bytes,
            now_ms: crate::storage::now_ms().max(0) as u64,
        };
        self.shard.record_quota(record).await
    }

    /// Counts `bytes` against the client's `kind` quota and mutes the connection for the
    /// throttle time that results; returns it.
    pub async fn throttle(&self, kind: QuotaKind, bytes: usize) -> i32 {
        let throttle_ms = self.record_quota(kind, bytes as f64).await;
        self.mute_for(&format!("{kind:?}"), throttle_ms)
    }

    /// Mutes the connection for `throttle_ms` (KIP-219: the client is answered at once and
    /// served again after that); returns it as the response's `throttle_time_ms`.
    pub fn mute_for(&self, what: &str, throttle_ms: u64) -> i32 {
        if throttle_ms > 0 {
            self.connection
                .mute_until(Instant::now() + Duration::from_millis(throttle_ms));
            tracing::debug!(
                "throttling {what} of client {} for {throttle_ms} ms",
                self.client_id
            );
        }
        throttle_ms.min(i32::MAX as u64) as i32
    }

    /// Takes back bytes `throttle` counted (a throttled fetch is answered without records).
    pub async fn unthrottle(&self, kind: QuotaKind, bytes: usize) {
        self.record_quota(kind, -(bytes as f64)).await;
    }
}
