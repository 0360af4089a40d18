//! The request quota at the APIs (`quota::request`, Kafka's `ClientRequestQuotaManager`): a
//! request that counts against its client's `request_percentage` has its task's running time
//! measured (`runtime::busy_time`) from when `handle` resolves its quota until its response is
//! built; that time is then recorded on the shard owning the quota's scope, the response's
//! `throttle_time_ms` raised to the throttle that results (the larger of it and a byte-rate or
//! mutation throttle already set), and the connection muted for it (KIP-219), as Kafka's
//! `sendResponseMaybeThrottle` does. When the metadata image holds no `request_percentage`,
//! nothing is resolved, timed or recorded.

use kafka_protocol::messages::{ApiKey, RequestKind};
use kafka_protocol::protocol::Encodable;

use super::{fetch, RequestContext};
use crate::protocol::{self, Frame, ProtocolError};
use crate::quota::manager::{QuotaKind, QuotaRecord};
use crate::quota::request::{exemption, percentage, RequestFacts};
use crate::quota::{QuotaScope, REQUEST_PERCENTAGE};
use crate::security::acl::Operation;

/// The quota a request counts against, and the scope its time is counted in.
pub struct RequestQuota {
    quota: f64,
    scope: QuotaScope,
}

/// The request quota `request` counts against: `None` when the image holds no
/// `request_percentage` (one check), when the request is exempt, or when no entity sets one
/// for its client.
pub fn resolve(context: &RequestContext<'_>, request: &protocol::Request) -> Option<RequestQuota> {
    if !context
        .shard
        .metadata()
        .client_quotas
        .holds_request_percentage()
    {
        return None;
    }
    let facts = RequestFacts {
        key: request.key,
        unanswered: !super::expects_response(request),
        from_follower: matches!(&request.body,
            RequestKind::Fetch(body) if fetch::is_follower(body, request.version)),
        authenticating: context.connection.sasl.is_exchanging(),
        cluster_action_allowed: request.key == ApiKey::WriteTxnMarkers
            && (context.cluster_authorized(Operation::ClusterAction)
                || context.cluster_authorized(Operation::Alter)),
    };
    if exemption(&facts).is_some() {
        return None;
    }
    let (quota, scope) = context.resolve_quota(REQUEST_PERCENTAGE)?;
    Some(RequestQuota { quota, scope })
}

impl RequestContext<'_> {
    /// Records the time this request has run so far against its client's request quota and
    /// mutes the connection for the throttle that results; returns it (0 when the request does
    /// not count).
    pub async fn request_throttle(&self) -> i32 {
        let Some(quota) = &self.request_quota else {
            return 0;
        };
        let record = QuotaRecord {
            kind: QuotaKind::Request,
            scope: quota.scope.clone(),
            quota: quota.quota,
            value: percentage(self.clock.busy()),
            now_ms: crate::storage::now_ms().max(0) as u64,
        };
        let throttle_ms = self.shard.record_quota(record).await;
        self.mute_for("requests", throttle_ms)
    }

    /// Applies the request quota to `body` and frames it: `handle`'s one way out for every
    /// response but a fetch's.
    pub async fn respond<T: ThrottleTime + Encodable>(
        &self,
        correlation_id: i32,
        key: ApiKey,
        mut body: T,
    ) -> Result<Option<Frame>, ProtocolError> {
        body.raise_throttle_time_ms(self.request_throttle().await);
        protocol::encode_response(correlation_id, key, self.version, &body)
            .map(|frame| Some(Frame::from(frame)))
    }
}

/// A response body's `throttle_time_ms`, for the responses that have one.
pub trait ThrottleTime {
    /// Raises `throttle_time_ms` to `throttle_ms`; a larger one already set stays. A response
    /// without the field ignores it (the connection is muted all the same).
    fn raise_throttle_time_ms(&mut self, throttle_ms: i32);
}

/// Implements `ThrottleTime` for response types with a `throttle_time_ms` field.
macro_rules! throttle_time_field {
    ($($response:ident),* $(,)?) => {
        $(impl ThrottleTime for kafka_protocol::messages::$response {
            fn raise_throttle_time_ms(&mut self, throttle_ms: i32) {
                self.throttle_time_ms = self.throttle_time_ms.max(throttle_ms);
            }
        })*
    };
}

/// Implements `ThrottleTime` for response types without the field.
macro_rules! no_throttle_time_field {
    ($($response:ident),* $(,)?) => {
        $(impl ThrottleTime for kafka_protocol::messages::$response {
            fn raise_throttle_time_ms(&mut self, _throttle_ms: i32) {}
        })*
    };
}

throttle_time_field!(
    AddOffsetsToTxnResponse,
    AddPartitionsToTxnResponse,
    AlterClientQuotasResponse,
    AlterConfigsResponse,
    AlterUserScramCredentialsResponse,
    ApiVersionsResponse,
    ConsumerGroupDescribeResponse,
    ConsumerGroupHeartbeatResponse,
    CreateAclsResponse,
    CreatePartitionsResponse,
    CreateTopicsResponse,
    DeleteAclsResponse,
    DeleteGroupsResponse,
    DeleteRecordsResponse,
    DeleteTopicsResponse,
    DescribeAclsResponse,
    DescribeClientQuotasResponse,
    DescribeClusterResponse,
    DescribeConfigsResponse,
    DescribeGroupsResponse,
    DescribeLogDirsResponse,
    DescribeProducersResponse,
    DescribeTopicPartitionsResponse,
    DescribeTransactionsResponse,
    DescribeUserScramCredentialsResponse,
    ElectLeadersResponse,
    EndTxnResponse,
    FetchResponse,
    FindCoordinatorResponse,
    HeartbeatResponse,
    IncrementalAlterConfigsResponse,
    InitProducerIdResponse,
    JoinGroupResponse,
    LeaveGroupResponse,
    ListGroupsResponse,
    ListOffsetsResponse,
    ListTransactionsResponse,
    MetadataResponse,
    OffsetCommitResponse,
    OffsetDeleteResponse,
    OffsetFetchResponse,
    OffsetForLeaderEpochResponse,
    ProduceResponse,
    SyncGroupResponse,
    TxnOffsetCommitResponse,
);

no_throttle_time_field!(
    DescribeQuorumResponse,
    SaslAuthenticateResponse,
    SaslHandshakeResponse,
    WriteTxnMarkersResponse,
);

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::{MetadataResponse, SaslHandshakeResponse};

    /// Proves the request's throttle replaces a smaller one and leaves a larger one.
    #[test]
    fn raises_throttle_times() {
        let mut response = MetadataResponse::default().with_throttle_time_ms(300);
        response.raise_throttle_time_ms(100);
        assert_eq!(response.throttle_time_ms, 300);
        response.raise_throttle_time_ms(700);
        assert_eq!(response.throttle_time_ms, 700);
        let mut handshake = SaslHandshakeResponse::default();
        handshake.raise_throttle_time_ms(700);
        assert_eq!(handshake, SaslHandshakeResponse::default());
    }
}
