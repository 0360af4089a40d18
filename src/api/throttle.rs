//! Byte-rate quotas at the APIs (KIP-219): a produce or a consumer's fetch counts its bytes
//! against the client's quota (`quota::manager`); one that goes over is answered at once with
//! `throttle_time_ms`, and its connection reads no further request until that time has passed
//! (`ConnectionInfo::muted_until`), as Kafka mutes the channel.

use std::time::{Duration, Instant};

use super::RequestContext;
use crate::quota::manager::QuotaKind;

impl RequestContext<'_> {
    /// The quota's user and client id for this request: the principal's name (`alice` for
    /// `User:alice`) and the header's client id.
    fn quota_identity(&self) -> (String, &str) {
        let principal = self.connection.principal();
        let user = match principal.split_once(':') {
            Some((_, name)) => name.to_string(),
            None => principal,
        };
        (user, &self.client_id)
    }

    /// Counts `bytes` against the client's `kind` quota and mutes the connection for the
    /// throttle time that results; returns it (0 when within the quota or there is none).
    pub fn throttle(&self, kind: QuotaKind, bytes: usize) -> i32 {
        let image = self.shard.metadata();
        if image.client_quotas.is_empty() {
            return 0;
        }
        let (user, client_id) = self.quota_identity();
        let now_ms = crate::storage::now_ms().max(0) as u64;
        let throttle_ms = self.shard.quotas.record(
            &image.client_quotas,
            kind,
            (&user, client_id),
            bytes,
            now_ms,
        );
        if throttle_ms > 0 {
            self.connection
                .mute_until(Instant::now() + Duration::from_millis(throttle_ms));
            tracing::debug!(
                "throttling {kind:?} of user {user} client {client_id} for {throttle_ms} ms"
            );
        }
        throttle_ms.min(i32::MAX as u64) as i32
    }

    /// Takes back bytes `throttle` counted (a throttled fetch is answered without records).
    pub fn unthrottle(&self, kind: QuotaKind, bytes: usize) {
        let image = self.shard.metadata();
        let (user, client_id) = self.quota_identity();
        let now_ms = crate::storage::now_ms().max(0) as u64;
        self.shard.quotas.unrecord(
            &image.client_quotas,
            kind,
            (&user, client_id),
            bytes,
            now_ms,
        );
    }
}
