//! One handler per Kafka API. Handlers translate between wire structs and the broker's domain
//! (partitions, metadata, the controller) and choose Kafka error codes; they hold no logic of
//! their own beyond that. `decode` turns a frame into a request, `sequencing` says how it is
//! ordered against the other requests of its connection (`net::connection` keeps to it), and
//! `handle` serves it into at most one response.

mod acls;
mod add_offsets_to_txn;
mod add_partitions_to_txn;
mod alter_configs;
mod api_versions;
mod authorize;
mod authorized_operations;
mod client_quotas;
mod consumer_group_describe;
mod consumer_group_heartbeat;
mod create_partitions;
mod create_topics;
mod delete_groups;
mod delete_records;
mod delete_topics;
mod describe_cluster;
mod describe_configs;
mod describe_groups;
mod describe_log_dirs;
mod describe_producers;
mod describe_quorum;
mod describe_topic_partitions;
mod describe_transactions;
mod elect_leaders;
mod end_txn;
mod fetch;
pub mod fetch_session;
mod find_coordinator;
mod groups;
mod heartbeat;
mod init_producer_id;
mod join_group;
mod leave_group;
mod list_groups;
mod list_offsets;
mod list_transactions;
mod metadata;
mod mutation_quota;
mod offset_commit;
mod offset_delete;
mod offset_fetch;
mod offset_for_leader_epoch;
mod produce;
mod request_quota;
pub mod sasl;
pub mod scram_credentials;
mod sync_group;
mod throttle;
pub mod transactions;
mod txn_offset_commit;
mod write_txn_markers;

use std::cell::Cell;
use std::rc::Rc;

use bytes::Bytes;
use kafka_protocol::messages::{ApiKey, RequestKind};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

use crate::controller::{ControllerRequest, TopicError};
use crate::metrics::latency::{self, Timed};
use crate::partition::PartitionError;
use crate::protocol::{self, Frame, ProtocolError};
use crate::runtime::busy_time::BusyClock;
use crate::runtime::mesh::ShardRequest;
use crate::runtime::shard::Shard;

/// What every handler is given besides its request body.
pub struct RequestContext<'a> {
    pub shard: &'a Rc<Shard>,
    pub connection: &'a ConnectionInfo,
    pub version: i16,
    /// The client id from the request header (empty if none).
    pub client_id: String,
    /// Signalled once the request has reached every shard it changes (see `Sequencing`).
    pub dispatched: &'a Dispatched,
    /// The client's request quota, when the request counts against one (`request_quota`).
    pub request_quota: Option<request_quota::RequestQuota>,
    /// How long the request's task has run, once it counts against a request quota.
    pub clock: &'a BusyClock,
}

/// A request read off a connection, ready to be served.
pub enum Decoded {
    /// ApiVersions at a version this broker does not serve: answered at once, without decoding
    /// its body (KIP-511: the answer lists the versions the client should use).
    Answered(Frame),
    /// Boxed: a decoded body is hundreds of bytes, an early answer a pointer.
    Request(Box<protocol::Request>),
}

/// Decodes one request frame (without its size prefix). An error means the connection must be
/// closed.
pub fn decode(frame: Bytes) -> Result<Decoded, ProtocolError> {
    let (key, version) = protocol::peek_api(&frame)?;
    if key == ApiKey::ApiVersions && !protocol::is_supported(key, version) {
        return api_versions::unsupported_version(&frame)
            .map(|answer| Decoded::Answered(answer.into()));
    }
    protocol::decode_request(frame).map(|request| Decoded::Request(Box::new(request)))
}

/// How a request is ordered against the other requests of its connection. Kafka clients count
/// on a connection's side effects happening in request order (an idempotent producer with
/// five requests in flight, a consumer's successive commits); reads need no order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sequencing {
    /// Reads (and creations that are idempotent, such as Metadata's auto-creation): may run
    /// beside any other request of the connection.
    Concurrent,
    /// Produce: started only once the connection's previous produce has been dispatched to
    /// the owners of its partitions (`Dispatched`); from there the owners keep the order
    /// (`Shard::dispatch`, `partition::append_permit`). Appends never wait for one another's
    /// fsync or replication.
    Produce,
    /// Every other change (groups, offset commits, topics, configs, a follower's fetch): runs
    /// alone, once every earlier request of the connection has completed, and completes before
    /// any later one starts, as a Kafka broker serves every request of a connection.
    Exclusive,
}

/// How `request` is ordered against the other requests of its connection.
pub fn sequencing(request: &protocol::Request) -> Sequencing {
    match &request.body {
        RequestKind::Produce(_) => Sequencing::Produce,
        // A follower's fetch moves its progress at the leader (and so the high watermark and
        // the ISR); replica fetchers send one at a time anyway.
        RequestKind::Fetch(body) if fetch::is_follower(body, request.version) => {
            Sequencing::Exclusive
        }
        RequestKind::ApiVersions(_)
        | RequestKind::Metadata(_)
        | RequestKind::Fetch(_)
        | RequestKind::ListOffsets(_)
        | RequestKind::OffsetFetch(_)
        | RequestKind::FindCoordinator(_)
        | RequestKind::ListGroups(_)
        | RequestKind::DescribeGroups(_)
        | RequestKind::ConsumerGroupDescribe(_)
        | RequestKind::DescribeConfigs(_)
        | RequestKind::DescribeCluster(_)
        | RequestKind::OffsetForLeaderEpoch(_)
        | RequestKind::DescribeLogDirs(_)
        | RequestKind::DescribeTopicPartitions(_)
        | RequestKind::DescribeQuorum(_)
        | RequestKind::ListTransactions(_)
        | RequestKind::DescribeTransactions(_)
        | RequestKind::DescribeProducers(_)
        | RequestKind::DescribeUserScramCredentials(_)
        | RequestKind::DescribeAcls(_)
        | RequestKind::DescribeClientQuotas(_) => Sequencing::Concurrent,
        _ => Sequencing::Exclusive,
    }
}

/// Whether `request` is answered at all: a produce with acks=0 is not, as in Kafka.
pub fn expects_response(request: &protocol::Request) -> bool {
    !matches!(&request.body, RequestKind::Produce(body) if body.acks == 0)
}

/// The most bytes a response to `request` may take beyond a small one (a fetch's records):
/// its connection counts them against its byte bound while the request is handled.
pub fn response_bytes_max(request: &protocol::Request) -> usize {
    match &request.body {
        RequestKind::Fetch(body) => fetch::response_bytes_max(body),
        _ => 0,
    }
}

/// Told by a handler when its request has been dispatched (`Sequencing::Produce`). Dropping it
/// tells too, so a handler that ends, or never dispatches anything, releases the waiter.
pub struct Dispatched {
    signal: Cell<Option<flume::Sender<()>>>,
}

impl Dispatched {
    /// The signal, and what its waiter awaits: `recv_async` returns (with an error) once the
    /// signal is given or dropped.
    pub fn new() -> (Dispatched, flume::Receiver<()>) {
        let (signal, wait) = flume::bounded(1);
        let dispatched = Dispatched {
            signal: Cell::new(Some(signal)),
        };
        (dispatched, wait)
    }

    pub fn signal(&self) {
        drop(self.signal.take());
    }
}

/// Sends one part per requested (topic, partition), in request order, to the shard owning it,
/// and returns the answers in that order (`Shard::scatter_led`: unknown partitions are
/// answered `NotHosted`, those another broker leads `NotLeader`).
pub async fn scatter_partitions<P, R>(
    context: &RequestContext<'_>,
    requested: Vec<(&str, i32, P)>,
    build: impl Fn(Vec<P>, flume::Sender<Vec<Result<R, PartitionError>>>) -> ShardRequest,
) -> Vec<Result<R, PartitionError>> {
    let requested = requested
        .into_iter()
        .map(|(topic, partition, part)| (std::sync::Arc::from(topic), partition, part))
        .collect();
    context.shard.scatter_led(requested, build).await
}

/// Sends the controller the request `build` makes around a reply channel and waits for its
/// answer; `None` if the controller has stopped.
pub async fn ask_controller<T>(
    context: &RequestContext<'_>,
    build: impl FnOnce(flume::Sender<T>) -> ControllerRequest,
) -> Option<T> {
    let (reply, answer) = flume::bounded(1);
    context
        .shard
        .controller
        .send_async(build(reply))
        .await
        .ok()?;
    answer.recv_async().await.ok()
}

/// What a handler may need to know about the connection a request came on.
pub struct ConnectionInfo {
    /// The listener the connection arrived on; Metadata advertises that listener's addresses.
    pub listener: Rc<str>,
    /// The client's address as Kafka's tools show it (`/127.0.0.1`).
    pub client_host: String,
    /// The client's address and port, for log lines.
    pub peer: String,
    /// The connection's SASL authentication (on SASL listeners).
    pub sasl: sasl::SaslState,
    /// The client certificate's principal (`User:` and its mapped subject) on a TLS listener
    /// that got one.
    pub tls_principal: Option<String>,
    /// Until when no further request is read: a client over a quota (KIP-219).
    pub muted_until: Cell<Option<std::time::Instant>>,
    /// Partitions this connection's transactional producer has had added to its transaction
    /// in its current epoch (transactions version 2, `api::transactions::add_produced`).
    pub txn_added: std::cell::RefCell<crate::txn::join::AddedPartitions>,
}

impl ConnectionInfo {
    /// Who the connection acts for, as Kafka's principal builder says: the SASL user on a SASL
    /// listener, else the client certificate's mapped subject, else `User:ANONYMOUS`.
    pub fn principal(&self) -> String {
        match (self.sasl.is_enabled(), &self.tls_principal) {
            (false, Some(principal)) => principal.clone(),
            _ => self.sasl.principal(),
        }
    }

    /// Reads no further request before `until` (a later time wins).
    pub fn mute_until(&self, until: std::time::Instant) {
        if self.muted_until.get().is_none_or(|current| current < until) {
            self.muted_until.set(Some(until));
        }
    }

    /// The client's address as ACLs name hosts (`127.0.0.1`).
    pub fn client_address(&self) -> &str {
        self.client_host.trim_start_matches('/')
    }
}

/// Serves one decoded request. `Ok(None)` means no response is due (a produce with acks=0).
/// An error means the connection must be closed.
pub async fn handle(
    shard: &Rc<Shard>,
    connection: &ConnectionInfo,
    request: protocol::Request,
    dispatched: &Dispatched,
) -> Result<Option<Frame>, ProtocolError> {
    let clock = BusyClock::default();
    let serving = serve(shard, connection, request, dispatched, &clock);
    clock.measure(serving).await
}

/// `handle`, its polls timed by `clock` once the request counts against a request quota.
async fn serve(
    shard: &Rc<Shard>,
    connection: &ConnectionInfo,
    request: protocol::Request,
    dispatched: &Dispatched,
    clock: &BusyClock,
) -> Result<Option<Frame>, ProtocolError> {
    let (key, version) = (request.key, request.version);
    let correlation_id = request.header.correlation_id;
    let client_id = request
        .header
        .client_id
        .as_ref()
        .map(|id| id.to_string())
        .unwrap_or_default();
    let mut context = RequestContext {
        shard,
        connection,
        version,
        client_id,
        dispatched,
        request_quota: None,
        clock,
    };
    context.request_quota = request_quota::resolve(&context, &request);
    if context.request_quota.is_some() {
        clock.start();
    }
    let context = context;
    // Every response but a fetch's goes out here, once the request quota is applied.
    macro_rules! respond {
        ($body:expr) => {
            context.respond(correlation_id, key, $body).await
        };
    }
    match request.body {
        RequestKind::ApiVersions(body) => respond!(api_versions::handle(body, version)),
        RequestKind::SaslHandshake(body) => {
            respond!(context.sasl_exchange(|exchange| sasl::handshake(exchange, body)))
        }
        RequestKind::SaslAuthenticate(body) => {
            respond!(context.sasl_exchange(|exchange| sasl::authenticate(exchange, body)))
        }
        RequestKind::DescribeUserScramCredentials(body) => {
            respond!(scram_credentials::describe(&context, body))
        }
        RequestKind::AlterUserScramCredentials(body) => {
            respond!(scram_credentials::alter(&context, body).await)
        }
        RequestKind::CreateAcls(body) => respond!(acls::create(&context, body).await),
        RequestKind::DescribeAcls(body) => respond!(acls::describe(&context, body)),
        RequestKind::DescribeClientQuotas(body) => {
            respond!(client_quotas::describe(&context, body))
        }
        RequestKind::AlterClientQuotas(body) => {
            respond!(client_quotas::alter(&context, body).await)
        }
        RequestKind::DeleteAcls(body) => respond!(acls::delete(&context, body).await),
        RequestKind::Metadata(body) => respond!(metadata::handle(&context, body).await),
        RequestKind::CreateTopics(body) => respond!(create_topics::handle(&context, body).await),
        RequestKind::DeleteTopics(body) => respond!(delete_topics::handle(&context, body).await),
        RequestKind::Produce(body) => {
            let started = std::time::Instant::now();
            let response = produce::handle(&context, body).await;
            latency::record(Timed::Produce, started.elapsed());
            match response {
                Some(response) => respond!(response),
                None => Ok(None),
            }
        }
        RequestKind::Fetch(body) => {
            let started = std::time::Instant::now();
            let timed = match fetch::is_follower(&body, version) {
                true => Timed::FollowerFetch,
                false => Timed::ConsumerFetch,
            };
            let (response, session) = fetch::handle(&context, body).await;
            latency::record(timed, started.elapsed());
            let response = fetch::throttle_requests(&context, response, session).await;
            let shared = fetch::record_sets(&response, protocol::SHARED_BYTES_MIN);
            protocol::encode_response_sharing(correlation_id, key, version, &response, shared)
                .map(Some)
        }
        RequestKind::ListOffsets(body) => respond!(list_offsets::handle(&context, body).await),
        RequestKind::DeleteRecords(body) => respond!(delete_records::handle(&context, body).await),
        RequestKind::InitProducerId(body) => {
            respond!(init_producer_id::handle(&context, body).await)
        }
        RequestKind::FindCoordinator(body) => {
            respond!(find_coordinator::handle(&context, body).await)
        }
        RequestKind::JoinGroup(body) => respond!(join_group::handle(&context, body).await),
        RequestKind::SyncGroup(body) => respond!(sync_group::handle(&context, body).await),
        RequestKind::Heartbeat(body) => respond!(heartbeat::handle(&context, body).await),
        RequestKind::LeaveGroup(body) => respond!(leave_group::handle(&context, body).await),
        RequestKind::OffsetCommit(body) => respond!(offset_commit::handle(&context, body).await),
        RequestKind::OffsetFetch(body) => respond!(offset_fetch::handle(&context, body).await),
        RequestKind::ListGroups(body) => respond!(list_groups::handle(&context, body).await),
        RequestKind::DescribeGroups(body) => {
            respond!(describe_groups::handle(&context, body).await)
        }
        RequestKind::DeleteGroups(body) => respond!(delete_groups::handle(&context, body).await),
        RequestKind::OffsetDelete(body) => respond!(offset_delete::handle(&context, body).await),
        RequestKind::ConsumerGroupHeartbeat(body) => {
            respond!(consumer_group_heartbeat::handle(&context, body).await)
        }
        RequestKind::ConsumerGroupDescribe(body) => {
            respond!(consumer_group_describe::handle(&context, body).await)
        }
        RequestKind::DescribeConfigs(body) => {
            respond!(describe_configs::handle(&context, body).await)
        }
        RequestKind::AlterConfigs(body) => respond!(alter_configs::handle(&context, body).await),
        RequestKind::IncrementalAlterConfigs(body) => {
            respond!(alter_configs::handle_incremental(&context, body).await)
        }
        RequestKind::CreatePartitions(body) => {
            respond!(create_partitions::handle(&context, body).await)
        }
        RequestKind::DescribeCluster(body) => {
            respond!(describe_cluster::handle(&context, body).await)
        }
        RequestKind::OffsetForLeaderEpoch(body) => {
            respond!(offset_for_leader_epoch::handle(&context, body).await)
        }
        RequestKind::DescribeLogDirs(body) => {
            respond!(describe_log_dirs::handle(&context, body).await)
        }
        RequestKind::DescribeTopicPartitions(body) => {
            respond!(describe_topic_partitions::handle(&context, body).await)
        }
        RequestKind::DescribeQuorum(body) => {
            respond!(describe_quorum::handle(&context, body).await)
        }
        RequestKind::ElectLeaders(body) => respond!(elect_leaders::handle(&context, body).await),
        RequestKind::AddPartitionsToTxn(body) => {
            respond!(add_partitions_to_txn::handle(&context, body).await)
        }
        RequestKind::AddOffsetsToTxn(body) => {
            respond!(add_offsets_to_txn::handle(&context, body).await)
        }
        RequestKind::TxnOffsetCommit(body) => {
            respond!(txn_offset_commit::handle(&context, body).await)
        }
        RequestKind::EndTxn(body) => respond!(end_txn::handle(&context, body).await),
        RequestKind::WriteTxnMarkers(body) => {
            respond!(write_txn_markers::handle(&context, body).await)
        }
        RequestKind::ListTransactions(body) => {
            respond!(list_transactions::handle(&context, body).await)
        }
        RequestKind::DescribeTransactions(body) => {
            respond!(describe_transactions::handle(&context, body).await)
        }
        RequestKind::DescribeProducers(body) => {
            respond!(describe_producers::handle(&context, body).await)
        }
        _ => Err(ProtocolError::UnsupportedVersion { key, version }),
    }
}

impl RequestContext<'_> {
    /// Runs `step` of the connection's SASL exchange, with SCRAM credentials from the shard's
    /// metadata image.
    fn sasl_exchange<T>(&self, step: impl FnOnce(&sasl::SaslExchange<'_>) -> T) -> T {
        let image = self.shard.metadata();
        let scram_credential =
            |user: &str, mechanism| scram_credentials::lookup(&image, user, mechanism);
        step(&sasl::SaslExchange {
            state: &self.connection.sasl,
            peer: &self.connection.peer,
            listener: &self.connection.listener,
            version: self.version,
            scram_credential: &scram_credential,
        })
    }
}

/// The Kafka error code for a topic change the controller refused.
pub fn topic_error_code(error: &TopicError) -> i16 {
    let error = match error {
        TopicError::AlreadyExists(_) => ResponseError::TopicAlreadyExists,
        TopicError::InvalidName(_) => ResponseError::InvalidTopicException,
        TopicError::InvalidPartitions(_) => ResponseError::InvalidPartitions,
        TopicError::InvalidReplicationFactor(_) => ResponseError::InvalidReplicationFactor,
        TopicError::InvalidConfig(_) => ResponseError::InvalidConfig,
        TopicError::InvalidReplicaAssignment(_) => ResponseError::InvalidReplicaAssignment,
        TopicError::InvalidRequest(_) => ResponseError::InvalidRequest,
        TopicError::UnknownTopic => ResponseError::UnknownTopicOrPartition,
        TopicError::Storage(_) => ResponseError::KafkaStorageError,
        TopicError::NotController(_) => ResponseError::NotController,
        TopicError::InconsistentClusterId(_) => ResponseError::InconsistentClusterId,
        TopicError::StaleBrokerEpoch(_) => ResponseError::StaleBrokerEpoch,
        TopicError::Timeout(_) => ResponseError::RequestTimedOut,
        TopicError::DuplicateBrokerRegistration(_) => ResponseError::DuplicateBrokerRegistration,
        TopicError::FencedLeaderEpoch(_) => ResponseError::FencedLeaderEpoch,
        TopicError::InvalidUpdateVersion(_) => ResponseError::InvalidUpdateVersion,
        TopicError::IneligibleReplica(_) => ResponseError::IneligibleReplica,
        TopicError::NotLeader(_) => ResponseError::NotLeaderOrFollower,
        TopicError::PreferredLeaderNotAvailable(_) => ResponseError::PreferredLeaderNotAvailable,
        TopicError::ElectionNotNeeded => ResponseError::ElectionNotNeeded,
        TopicError::TopicAuthorizationFailed => ResponseError::TopicAuthorizationFailed,
        TopicError::ClusterAuthorizationFailed => ResponseError::ClusterAuthorizationFailed,
    };
    error.code()
}

pub fn str_bytes(text: &str) -> StrBytes {
    StrBytes::from_string(text.to_string())
}

/// Node ids as the protocol's `BrokerId`s.
pub fn broker_ids(ids: Vec<i32>) -> Vec<kafka_protocol::messages::BrokerId> {
    ids.into_iter()
        .map(kafka_protocol::messages::BrokerId)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic, ReplicaState};
    use kafka_protocol::messages::{
        BrokerId, FetchRequest, MetadataRequest, OffsetCommitRequest, ProduceRequest, RequestHeader,
    };

    fn request(key: ApiKey, body: RequestKind) -> protocol::Request {
        protocol::Request {
            key,
            version: 0,
            header: RequestHeader::default(),
            body,
        }
    }

    fn fetch(body: FetchRequest) -> protocol::Request {
        request(ApiKey::Fetch, RequestKind::Fetch(body))
    }

    /// Proves reads run beside anything, produces go in dispatch order, every other change
    /// (a follower's fetch, named in the field of its version, included) runs alone, and only
    /// an acks=0 produce goes unanswered.
    #[test]
    fn sequences_requests_by_their_side_effects() {
        let produce = |acks| {
            let body = ProduceRequest::default().with_acks(acks);
            request(ApiKey::Produce, RequestKind::Produce(body))
        };
        assert_eq!(sequencing(&produce(1)), Sequencing::Produce);
        assert!(expects_response(&produce(1)) && expects_response(&produce(-1)));
        assert!(!expects_response(&produce(0)));
        let metadata = request(
            ApiKey::Metadata,
            RequestKind::Metadata(MetadataRequest::default()),
        );
        assert_eq!(sequencing(&metadata), Sequencing::Concurrent);
        assert_eq!(
            sequencing(&fetch(FetchRequest::default())),
            Sequencing::Concurrent
        );
        let follower = FetchRequest::default().with_replica_id(BrokerId(2));
        assert_eq!(sequencing(&fetch(follower)), Sequencing::Exclusive);
        let follower = FetchRequest::default()
            .with_replica_state(ReplicaState::default().with_replica_id(BrokerId(2)));
        let mut v15 = fetch(follower);
        v15.version = 15;
        assert_eq!(sequencing(&v15), Sequencing::Exclusive);
        let commit = request(
            ApiKey::OffsetCommit,
            RequestKind::OffsetCommit(OffsetCommitRequest::default()),
        );
        assert_eq!(sequencing(&commit), Sequencing::Exclusive);
        assert!(expects_response(&commit));
    }

    /// Proves a fetch reserves the smaller of its max_bytes and its partitions' sum, and other
    /// requests nothing.
    #[test]
    fn fetches_reserve_their_records() {
        let partition = |bytes| FetchPartition::default().with_partition_max_bytes(bytes);
        let topic = FetchTopic::default().with_partitions(vec![partition(300), partition(400)]);
        let body = FetchRequest::default().with_topics(vec![topic]);
        assert_eq!(
            response_bytes_max(&fetch(body.clone().with_max_bytes(1000))),
            700
        );
        assert_eq!(response_bytes_max(&fetch(body.with_max_bytes(500))), 500);
        let metadata = request(
            ApiKey::Metadata,
            RequestKind::Metadata(MetadataRequest::default()),
        );
        assert_eq!(response_bytes_max(&metadata), 0);
    }
}
