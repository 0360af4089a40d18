//! Broker configuration: `server.properties` keys with Kafka's names and defaults, typed and
//! validated once at start-up. Every default is written here, next to its key.
//!
//! Sources, later ones winning: the embedded default (only when no file and no environment is
//! given), a properties file, `FLINK_*` environment variables (`--from-env`), `--override` pairs.
//! Unknown keys are warned about; invalid values are errors that name the key and the value.

pub mod connections;
pub mod env;
pub mod links;
pub mod listeners;
pub(crate) mod oauthbearer;
pub mod properties;
pub mod security;

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::PathBuf;

use indexmap::IndexMap;

pub use listeners::{Listener, Voter};

use crate::runtime::placement::CpuPinning;

/// The configuration `make run` and a bare `flink server` use: one combined node on localhost.
pub const EMBEDDED_DEFAULT: &str = "\
node.id=1
process.roles=broker,controller
listeners=PLAINTEXT://:9092,CONTROLLER://:9093
advertised.listeners=PLAINTEXT://localhost:9092
controller.listener.names=CONTROLLER
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
controller.quorum.voters=1@localhost:9093
log.dirs=/tmp/flink-combined-logs
num.partitions=1
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
group.initial.rebalance.delay.ms=0
";

/// What `queued.max.request.bytes=-1` (Kafka's default, no bound) bounds each connection to:
/// room for sixteen 1 MiB produce requests (the Java producer's `max.request.size`), well beyond
/// the five a producer keeps in flight. A single larger request (up to
/// `socket.request.max.bytes`) is still read when nothing else of its connection is in flight.
pub const QUEUED_REQUEST_BYTES_PER_CONNECTION: usize = 16 << 20;

/// The most `idle.poll.time.us` takes: 10 ms, beyond which polling only burns the CPU.
const IDLE_POLL_TIME_US_MAX: u64 = 10_000;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("missing required configuration '{key}': {reason}")]
    Missing { key: String, reason: String },
    #[error("invalid value '{value}' for configuration '{key}': {reason}")]
    Invalid {
        key: String,
        value: String,
        reason: String,
    },
    #[error("cannot read configuration file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    Broker,
    Controller,
}

/// The typed broker configuration.
#[derive(Clone, Debug)]
pub struct ServerConfig {
    pub node_id: i32,
    pub process_roles: Vec<Role>,
    pub listeners: Vec<Listener>,
    pub advertised_listeners: Vec<Listener>,
    pub controller_listener_names: Vec<String>,
    /// Each listener's security protocol, TLS material and SASL mechanisms.
    pub listener_security: Vec<security::ListenerSecurity>,
    /// The standard authorizer (`authorizer.class.name`); `None`: every request is allowed.
    pub authorizer: Option<crate::security::acl::Authorizer>,
    /// How this node connects to other brokers and to the controllers.
    pub links: links::Links,
    pub controller_quorum_voters: Vec<Voter>,
    pub log_dirs: Vec<PathBuf>,
    pub num_partitions: i32,
    pub default_replication_factor: i16,
    pub offsets_topic_replication_factor: i16,
    pub offsets_topic_num_partitions: i32,
    /// `transaction.state.log.*`: how `__transaction_state` is created on first use.
    pub transaction_state_log_replication_factor: i16,
    pub transaction_state_log_num_partitions: i32,
    pub transaction_state_log_min_isr: i32,
    pub transaction_state_log_segment_bytes: u64,
    /// `transaction.max.timeout.ms`: the longest `transaction.timeout.ms` a producer may ask.
    pub transaction_max_timeout_ms: i32,
    /// `transactional.id.expiration.ms`: a transactional id idle this long is forgotten.
    pub transactional_id_expiration_ms: i64,
    /// `transaction.abort.timed.out.transaction.cleanup.interval.ms`.
    pub transaction_abort_interval_ms: u64,
    /// `transaction.remove.expired.transaction.cleanup.interval.ms`.
    pub transaction_remove_expired_interval_ms: u64,
    /// `transaction.partition.verification.enable`: leaders verify version 1 clients'
    /// transactional batches with the coordinator (KIP-890 part 1).
    pub transaction_partition_verification_enable: bool,
    pub group_initial_rebalance_delay_ms: u64,
    /// `group.min.session.timeout.ms` / `group.max.session.timeout.ms`: the session timeouts a
    /// classic group member may ask for (JoinGroup answers INVALID_SESSION_TIMEOUT outside).
    pub group_min_session_timeout_ms: i32,
    pub group_max_session_timeout_ms: i32,
    /// `group.consumer.session.timeout.ms` and `group.consumer.heartbeat.interval.ms`: what a
    /// KIP-848 member gets, within their `.min.` and `.max.` bounds (checked at start-up, as
    /// Kafka does).
    pub group_consumer_session_timeout_ms: u64,
    pub group_consumer_heartbeat_interval_ms: u64,
    pub offsets_retention_minutes: u64,
    pub offsets_retention_check_interval_ms: u64,
    pub auto_create_topics_enable: bool,
    pub log_segment_bytes: u64,
    pub log_index_interval_bytes: u32,
    /// `log.roll.ms`, else `log.roll.hours`.
    pub log_roll_ms: i64,
    /// `log.retention.ms`, else `.minutes`, else `.hours`; negative keeps everything.
    pub log_retention_ms: i64,
    pub log_retention_bytes: i64,
    pub log_retention_check_interval_ms: u64,
    pub log_flush_interval_messages: i64,
    /// `log.flush.interval.ms`; unset means never by time (Kafka's Long.MAX_VALUE).
    pub log_flush_interval_ms: i64,
    pub message_max_bytes: u32,
    pub socket_request_max_bytes: u32,
    /// `queued.max.requests`: requests one connection may have read and not yet answered.
    pub queued_max_requests: usize,
    /// `queued.max.request.bytes`: -1, or the bytes one connection may hold in requests being
    /// handled and responses not yet written (see `request_bytes_in_flight_max`).
    pub queued_max_request_bytes: i64,
    /// `max.connections`: client connections the broker keeps open at once.
    pub max_connections: usize,
    /// `max.connections.per.ip`, and `max.connections.per.ip.overrides` by address.
    pub max_connections_per_ip: usize,
    pub max_connections_per_ip_overrides: BTreeMap<IpAddr, usize>,
    /// `max.connection.creation.rate`: new client connections accepted per second.
    pub max_connection_creation_rate: u32,
    /// Shards to run; 0 means one per CPU of the process's CPU set.
    pub shard_count: usize,
    /// Port of the Prometheus endpoint (`GET /metrics`); 0 serves none.
    pub metrics_port: u16,
    /// Whether the controller gets a core of its own; `None` decides by core count.
    pub controller_dedicated_core: Option<bool>,
    /// `cpu.pinning`: how executors are placed on the CPUs of the process's CPU set.
    pub cpu_pinning: CpuPinning,
    /// `idle.poll.time.us`: how long an idle shard polls before it sleeps; `None` is `auto`
    /// (`runtime::placement::idle_poll_times`).
    pub idle_poll_time: Option<std::time::Duration>,
    /// How often a broker heartbeats to the active controller.
    pub broker_heartbeat_interval_ms: u64,
    /// How long the active controller waits for a heartbeat before fencing a broker.
    pub broker_session_timeout_ms: u64,
    /// Raft's election timeout; a tick of the quorum's clock is a tenth of it.
    pub controller_quorum_election_timeout_ms: u64,
    /// Metadata log bytes between snapshots of the metadata image.
    pub metadata_log_max_record_bytes_between_snapshots: u64,
    /// The listener followers fetch from leaders on (`inter.broker.listener.name`, upper case);
    /// empty: the first client listener.
    pub inter_broker_listener_name: String,
    /// A follower that has not caught up for this long leaves the ISR.
    pub replica_lag_time_max_ms: u64,
    /// How long a follower's fetch waits at the leader for new records.
    pub replica_fetch_wait_max_ms: u64,
    /// `producer.id.expiration.ms`: an idempotent producer idle this long is forgotten, checked
    /// every `producer.id.expiration.check.interval.ms`.
    pub producer_id_expiration_ms: i64,
    pub producer_id_expiration_check_interval_ms: u64,
    /// `fetch.max.bytes`: the most one Fetch response carries, whatever the request asks.
    pub fetch_max_bytes: u32,
    /// `max.incremental.fetch.session.cache.slots`: fetch sessions (KIP-227) kept, over all shards.
    pub max_incremental_fetch_session_cache_slots: u32,
    /// Bytes a follower asks for per partition and per fetch response.
    pub replica_fetch_max_bytes: u32,
    pub replica_fetch_response_max_bytes: u32,
    /// Pause after a failed follower fetch.
    pub replica_fetch_backoff_ms: u64,
    /// Whether the active controller moves leadership back to preferred replicas.
    pub auto_leader_rebalance_enable: bool,
    pub leader_imbalance_check_interval_seconds: u64,
    /// How client quotas' rates are sampled (`quota.window.num`, `quota.window.size.seconds`).
    pub quota_sampling: crate::quota::rate::Sampling,
    /// How `controller_mutation_rate` buckets are sized (`controller.quota.window.num`,
    /// `controller.quota.window.size.seconds`).
    pub controller_quota_sampling: crate::quota::rate::Sampling,
    /// Every key given at start-up with its value, as DescribeConfigs reports them
    /// (STATIC_BROKER_CONFIG).
    pub static_properties: std::collections::BTreeMap<String, String>,
}

/// Keys this broker reads, with Kafka's defaults ("" = no default).
pub const KEYS: &[(&str, &str)] = &[
    ("node.id", ""),
    ("process.roles", ""),
    ("listeners", "PLAINTEXT://:9092"),
    ("advertised.listeners", ""),
    (
        "listener.security.protocol.map",
        "PLAINTEXT:PLAINTEXT,SSL:SSL,SASL_PLAINTEXT:SASL_PLAINTEXT,SASL_SSL:SASL_SSL",
    ),
    ("controller.listener.names", ""),
    ("inter.broker.listener.name", ""),
    ("controller.quorum.voters", ""),
    ("log.dirs", ""),
    ("log.dir", "/tmp/flink-logs"),
    ("num.partitions", "1"),
    ("default.replication.factor", "1"),
    ("offsets.topic.replication.factor", "3"),
    ("offsets.topic.num.partitions", "50"),
    ("offsets.retention.minutes", "10080"),
    ("offsets.retention.check.interval.ms", "600000"),
    ("transaction.state.log.replication.factor", "3"),
    ("transaction.state.log.min.isr", "2"),
    ("transaction.state.log.num.partitions", "50"),
    ("transaction.state.log.segment.bytes", "104857600"),
    ("transaction.max.timeout.ms", "900000"),
    ("transactional.id.expiration.ms", "604800000"),
    (
        "transaction.abort.timed.out.transaction.cleanup.interval.ms",
        "10000",
    ),
    (
        "transaction.remove.expired.transaction.cleanup.interval.ms",
        "3600000",
    ),
    ("transaction.partition.verification.enable", "true"),
    ("group.initial.rebalance.delay.ms", "3000"),
    ("group.min.session.timeout.ms", "6000"),
    ("group.max.session.timeout.ms", "1800000"),
    ("group.consumer.session.timeout.ms", "45000"),
    ("group.consumer.min.session.timeout.ms", "45000"),
    ("group.consumer.max.session.timeout.ms", "60000"),
    ("group.consumer.heartbeat.interval.ms", "5000"),
    ("group.consumer.min.heartbeat.interval.ms", "5000"),
    ("group.consumer.max.heartbeat.interval.ms", "15000"),
    ("auto.create.topics.enable", "true"),
    ("log.segment.bytes", "1073741824"),
    ("log.index.interval.bytes", "4096"),
    ("log.roll.ms", ""),
    ("log.roll.hours", "168"),
    ("log.retention.ms", ""),
    ("log.retention.minutes", ""),
    ("log.retention.hours", "168"),
    ("log.retention.bytes", "-1"),
    ("log.retention.check.interval.ms", "300000"),
    ("log.flush.interval.messages", "9223372036854775807"),
    ("log.flush.interval.ms", ""),
    ("message.max.bytes", "1048588"),
    ("socket.request.max.bytes", "104857600"),
    ("queued.max.requests", "500"),
    ("queued.max.request.bytes", "-1"),
    ("max.connections", "2147483647"),
    ("max.connections.per.ip", "2147483647"),
    ("max.connections.per.ip.overrides", ""),
    ("max.connection.creation.rate", "2147483647"),
    ("shard.count", "0"),
    ("controller.dedicated.core", "auto"),
    ("cpu.pinning", "auto"),
    ("idle.poll.time.us", "auto"),
    ("metrics.port", "0"),
    ("broker.heartbeat.interval.ms", "2000"),
    ("broker.session.timeout.ms", "9000"),
    ("controller.quorum.election.timeout.ms", "1000"),
    (
        "metadata.log.max.record.bytes.between.snapshots",
        "20971520",
    ),
    ("replica.lag.time.max.ms", "30000"),
    ("replica.fetch.wait.max.ms", "500"),
    ("fetch.max.bytes", "57671680"),
    ("max.incremental.fetch.session.cache.slots", "1000"),
    ("producer.id.expiration.ms", "86400000"),
    ("producer.id.expiration.check.interval.ms", "600000"),
    ("replica.fetch.max.bytes", "1048576"),
    ("replica.fetch.response.max.bytes", "10485760"),
    ("replica.fetch.backoff.ms", "1000"),
    ("auto.leader.rebalance.enable", "true"),
    ("leader.imbalance.check.interval.seconds", "300"),
    ("min.insync.replicas", "1"),
    ("quota.window.num", "11"),
    ("quota.window.size.seconds", "1"),
    ("controller.quota.window.num", "11"),
    ("controller.quota.window.size.seconds", "1"),
];

/// Kafka keys accepted without effect yet (the issue that gives them effect removes them here).
const ACCEPTED_KEYS: &[&str] = &[
    "num.network.threads",
    "num.io.threads",
    "num.recovery.threads.per.data.dir",
    "socket.send.buffer.bytes",
    "socket.receive.buffer.bytes",
    "unclean.leader.election.enable",
    "delete.topic.enable",
    "broker.rack",
    "cluster.id",
];

/// Kafka's checks of the KIP-848 group timeouts (`GroupCoordinatorConfig`): each value within
/// its bounds, the bounds in order, and the heartbeat interval below the session timeout.
fn validate_consumer_group_timeouts(lookup: &Lookup) -> Result<(), ConfigError> {
    let value = |key: &str| lookup.number::<u64>(key);
    let check = |holds: bool, key: &str, relation: &str, other: &str| match holds {
        true => Ok(()),
        false => Err(ConfigError::Invalid {
            key: key.to_string(),
            value: lookup.value(key),
            reason: format!("{key} must be {relation} {other}"),
        }),
    };
    for kind in ["session.timeout", "heartbeat.interval"] {
        let key = format!("group.consumer.{kind}.ms");
        let min_key = format!("group.consumer.min.{kind}.ms");
        let max_key = format!("group.consumer.max.{kind}.ms");
        let (set, min, max) = (value(&key)?, value(&min_key)?, value(&max_key)?);
        check(max >= min, &max_key, "greater than or equal to", &min_key)?;
        check(set >= min, &key, "greater than or equal to", &min_key)?;
        check(set <= max, &key, "less than or equal to", &max_key)?;
    }
    let (interval, session) = (
        value("group.consumer.heartbeat.interval.ms")?,
        value("group.consumer.session.timeout.ms")?,
    );
    check(
        interval < session,
        "group.consumer.heartbeat.interval.ms",
        "less than",
        "group.consumer.session.timeout.ms",
    )
}

impl ServerConfig {
    /// Builds and validates the configuration; returns it with warnings for unknown keys.
    pub fn from_properties(
        given: &IndexMap<String, String>,
    ) -> Result<(ServerConfig, Vec<String>), ConfigError> {
        let warnings = given
            .keys()
            .filter(|key| !KEYS.iter().any(|(known, _)| known == key))
            .filter(|key| !ACCEPTED_KEYS.contains(&key.as_str()))
            .filter(|key| !security::is_security_key(key))
            .map(|key| format!("unknown configuration '{key}' was supplied and is ignored"))
            .collect();
        let lookup = Lookup { given };
        let config = ServerConfig::build(&lookup)?;
        Ok((config, warnings))
    }

    fn build(lookup: &Lookup) -> Result<ServerConfig, ConfigError> {
        let node_id = lookup.required("node.id", "KRaft mode needs a node id")?;
        let node_id = parse_number::<i32>("node.id", &node_id)?;
        let process_roles = parse_roles(&lookup.required(
            "process.roles",
            "set broker, controller or broker,controller",
        )?)?;
        let listeners = listeners::parse_listeners("listeners", &lookup.value("listeners"))?;
        let controller_listener_names: Vec<String> =
            split_list(&lookup.value("controller.listener.names"))
                .map(str::to_ascii_uppercase)
                .collect();
        let controller_quorum_voters = listeners::parse_voters(
            "controller.quorum.voters",
            &lookup.required(
                "controller.quorum.voters",
                "list the controllers as id@host:port",
            )?,
        )?;
        let advertised_value = lookup.value("advertised.listeners");
        let advertised_listeners = if advertised_value.is_empty() {
            listeners
                .iter()
                .filter(|listener| !controller_listener_names.contains(&listener.name))
                .cloned()
                .collect()
        } else {
            listeners::parse_listeners("advertised.listeners", &advertised_value)?
        };
        let log_dirs_value = match lookup.value("log.dirs") {
            dirs if dirs.is_empty() => lookup.value("log.dir"),
            dirs => dirs,
        };
        let listener_names: Vec<String> = listeners.iter().map(|l| l.name.clone()).collect();
        let listener_security = security::parse(
            lookup.given,
            &lookup.value("listener.security.protocol.map"),
            &listener_names,
            &controller_listener_names,
        )?;
        let mut config = ServerConfig {
            node_id,
            process_roles,
            listener_security,
            authorizer: security::authorizer(lookup.given)?,
            links: links::Links::default(),
            listeners,
            advertised_listeners,
            controller_listener_names,
            controller_quorum_voters,
            log_dirs: split_list(&log_dirs_value).map(PathBuf::from).collect(),
            num_partitions: lookup.number("num.partitions")?,
            default_replication_factor: lookup.number("default.replication.factor")?,
            offsets_topic_replication_factor: lookup.number("offsets.topic.replication.factor")?,
            offsets_topic_num_partitions: lookup.number("offsets.topic.num.partitions")?,
            transaction_state_log_replication_factor: lookup
                .number("transaction.state.log.replication.factor")?,
            transaction_state_log_num_partitions: lookup
                .number("transaction.state.log.num.partitions")?,
            transaction_state_log_min_isr: lookup.number("transaction.state.log.min.isr")?,
            transaction_state_log_segment_bytes: lookup
                .number("transaction.state.log.segment.bytes")?,
            transaction_max_timeout_ms: lookup.number("transaction.max.timeout.ms")?,
            transactional_id_expiration_ms: lookup.number("transactional.id.expiration.ms")?,
            transaction_abort_interval_ms: lookup
                .number("transaction.abort.timed.out.transaction.cleanup.interval.ms")?,
            transaction_remove_expired_interval_ms: lookup
                .number("transaction.remove.expired.transaction.cleanup.interval.ms")?,
            transaction_partition_verification_enable: lookup
                .boolean("transaction.partition.verification.enable")?,
            group_initial_rebalance_delay_ms: lookup.number("group.initial.rebalance.delay.ms")?,
            group_min_session_timeout_ms: lookup.number("group.min.session.timeout.ms")?,
            group_max_session_timeout_ms: lookup.number("group.max.session.timeout.ms")?,
            group_consumer_session_timeout_ms: lookup
                .number("group.consumer.session.timeout.ms")?,
            group_consumer_heartbeat_interval_ms: lookup
                .number("group.consumer.heartbeat.interval.ms")?,
            offsets_retention_minutes: lookup.number("offsets.retention.minutes")?,
            offsets_retention_check_interval_ms: lookup
                .number("offsets.retention.check.interval.ms")?,
            auto_create_topics_enable: lookup.boolean("auto.create.topics.enable")?,
            log_segment_bytes: lookup.number("log.segment.bytes")?,
            log_index_interval_bytes: lookup.number("log.index.interval.bytes")?,
            log_roll_ms: lookup.milliseconds("log.roll.ms", &[("log.roll.hours", 3_600_000)])?,
            log_retention_ms: lookup.milliseconds(
                "log.retention.ms",
                &[
                    ("log.retention.minutes", 60_000),
                    ("log.retention.hours", 3_600_000),
                ],
            )?,
            log_retention_bytes: lookup.number("log.retention.bytes")?,
            log_retention_check_interval_ms: lookup.number("log.retention.check.interval.ms")?,
            log_flush_interval_messages: lookup.number("log.flush.interval.messages")?,
            log_flush_interval_ms: lookup.milliseconds("log.flush.interval.ms", &[])?,
            message_max_bytes: lookup.number("message.max.bytes")?,
            socket_request_max_bytes: lookup.number("socket.request.max.bytes")?,
            queued_max_requests: lookup.count("queued.max.requests")?,
            queued_max_request_bytes: lookup.number("queued.max.request.bytes")?,
            max_connections: lookup.count("max.connections")?,
            max_connections_per_ip: lookup.count("max.connections.per.ip")?,
            max_connections_per_ip_overrides: connections::parse_per_ip_overrides(
                &lookup.value("max.connections.per.ip.overrides"),
            )?,
            max_connection_creation_rate: lookup.count("max.connection.creation.rate")? as u32,
            shard_count: lookup.number("shard.count")?,
            metrics_port: lookup.number("metrics.port")?,
            controller_dedicated_core: match lookup.value("controller.dedicated.core").as_str() {
                "auto" => None,
                _ => Some(lookup.boolean("controller.dedicated.core")?),
            },
            cpu_pinning: lookup.cpu_pinning("cpu.pinning")?,
            idle_poll_time: match lookup.value("idle.poll.time.us").as_str() {
                "auto" => None,
                _ => Some(std::time::Duration::from_micros(lookup.bounded(
                    "idle.poll.time.us",
                    0,
                    IDLE_POLL_TIME_US_MAX,
                )?)),
            },
            broker_heartbeat_interval_ms: lookup.number("broker.heartbeat.interval.ms")?,
            broker_session_timeout_ms: lookup.number("broker.session.timeout.ms")?,
            controller_quorum_election_timeout_ms: lookup
                .number("controller.quorum.election.timeout.ms")?,
            metadata_log_max_record_bytes_between_snapshots: lookup
                .number("metadata.log.max.record.bytes.between.snapshots")?,
            inter_broker_listener_name: lookup
                .value("inter.broker.listener.name")
                .to_ascii_uppercase(),
            replica_lag_time_max_ms: lookup.number("replica.lag.time.max.ms")?,
            replica_fetch_wait_max_ms: lookup.number("replica.fetch.wait.max.ms")?,
            fetch_max_bytes: lookup.number("fetch.max.bytes")?,
            max_incremental_fetch_session_cache_slots: lookup
                .number("max.incremental.fetch.session.cache.slots")?,
            producer_id_expiration_ms: lookup.number("producer.id.expiration.ms")?,
            producer_id_expiration_check_interval_ms: lookup
                .number("producer.id.expiration.check.interval.ms")?,
            replica_fetch_max_bytes: lookup.number("replica.fetch.max.bytes")?,
            replica_fetch_response_max_bytes: lookup.number("replica.fetch.response.max.bytes")?,
            replica_fetch_backoff_ms: lookup.number("replica.fetch.backoff.ms")?,
            auto_leader_rebalance_enable: lookup.boolean("auto.leader.rebalance.enable")?,
            leader_imbalance_check_interval_seconds: lookup
                .number("leader.imbalance.check.interval.seconds")?,
            quota_sampling: lookup.sampling("quota.window")?,
            controller_quota_sampling: lookup.sampling("controller.quota.window")?,
            static_properties: lookup
                .given
                .iter()
                .map(|(key, value)| (key.clone(), value.clone()))
                .collect(),
        };
        config.validate(lookup)?;
        config.links = config.parse_links(lookup)?;
        Ok(config)
    }

    /// The client side of the inter-broker listener (brokers only) and of the first controller
    /// listener (`config::links`).
    fn parse_links(&self, lookup: &Lookup) -> Result<links::Links, ConfigError> {
        let mut parsed = links::Links::default();
        if let Some(name) = self.inter_broker_listener().filter(|_| self.is_broker()) {
            parsed.inter_broker = links::parse(
                lookup.given,
                name,
                self.security_protocol(name),
                "sasl.mechanism.inter.broker.protocol",
            )?;
        }
        if let Some(name) = self.controller_listener_names.first() {
            // A broker-only node has no controller listener of its own: the map says what the
            // controllers' speaks.
            let protocol = match self.listener_security(name) {
                Some(security) => security.protocol,
                None => security::protocol_map(&lookup.value("listener.security.protocol.map"))?
                    .get(name)
                    .copied()
                    .unwrap_or(security::SecurityProtocol::Plaintext),
            };
            parsed.controller = links::parse(
                lookup.given,
                name,
                protocol,
                "sasl.mechanism.controller.protocol",
            )?;
        }
        Ok(parsed)
    }

    /// The bytes one connection may hold in requests being handled and responses waiting to
    /// be written before it stops reading (`queued.max.request.bytes`). Kafka's -1 bounds
    /// nothing; here it means `QUEUED_REQUEST_BYTES_PER_CONNECTION`, so that a client that
    /// pipelines without reading its responses cannot take the broker's memory.
    pub fn request_bytes_in_flight_max(&self) -> usize {
        match usize::try_from(self.queued_max_request_bytes) {
            Ok(bytes) if bytes > 0 => bytes,
            _ => QUEUED_REQUEST_BYTES_PER_CONNECTION,
        }
    }

    pub fn is_broker(&self) -> bool {
        self.process_roles.contains(&Role::Broker)
    }

    pub fn is_controller(&self) -> bool {
        self.process_roles.contains(&Role::Controller)
    }

    /// The name of the listener followers fetch on: `inter.broker.listener.name`, else the
    /// first PLAINTEXT client listener (Kafka's `security.inter.broker.protocol` default), else
    /// the first client listener.
    pub fn inter_broker_listener(&self) -> Option<&str> {
        if !self.inter_broker_listener_name.is_empty() {
            return Some(self.inter_broker_listener_name.as_str());
        }
        let plaintext = self.client_listeners().find(|listener| {
            self.security_protocol(&listener.name) == security::SecurityProtocol::Plaintext
        });
        plaintext
            .or_else(|| self.client_listeners().next())
            .map(|listener| listener.name.as_str())
    }

    /// The security of listener `name` (PLAINTEXT for a name no listener has).
    pub fn listener_security(&self, name: &str) -> Option<&security::ListenerSecurity> {
        self.listener_security
            .iter()
            .find(|listener| listener.name == name)
    }

    pub fn security_protocol(&self, name: &str) -> security::SecurityProtocol {
        self.listener_security(name)
            .map_or(security::SecurityProtocol::Plaintext, |listener| {
                listener.protocol
            })
    }

    /// Listeners that serve Kafka clients (every listener but the controller's).
    pub fn client_listeners(&self) -> impl Iterator<Item = &Listener> {
        self.listeners
            .iter()
            .filter(|listener| !self.controller_listener_names.contains(&listener.name))
    }

    fn validate(&self, lookup: &Lookup) -> Result<(), ConfigError> {
        let invalid = |key: &str, reason: String| ConfigError::Invalid {
            key: key.to_string(),
            value: lookup.value(key),
            reason,
        };
        if self.node_id < 0 {
            return Err(invalid("node.id", "must be zero or more".into()));
        }
        validate_consumer_group_timeouts(lookup)?;
        if self.controller_listener_names.is_empty() {
            return Err(ConfigError::Missing {
                key: "controller.listener.names".into(),
                reason: "KRaft mode names the controller listener, e.g. CONTROLLER".into(),
            });
        }
        if self.is_controller()
            && !self
                .controller_quorum_voters
                .iter()
                .any(|voter| voter.node_id == self.node_id)
        {
            return Err(invalid(
                "controller.quorum.voters",
                format!(
                    "a controller's node.id {} must be one of the voters",
                    self.node_id
                ),
            ));
        }
        for (index, listener) in self.listeners.iter().enumerate() {
            let clash = self.listeners[..index].iter().find(|other| {
                other.port == listener.port
                    && listener.port != 0
                    && (other.host == listener.host
                        || other.host.is_empty()
                        || listener.host.is_empty())
            });
            if let Some(other) = clash {
                return Err(invalid(
                    "listeners",
                    format!(
                        "Each listener must have a different port: {} and {} both use port {}",
                        other.name, listener.name, listener.port
                    ),
                ));
            }
        }
        if self.controller_quorum_election_timeout_ms < 10 {
            return Err(invalid(
                "controller.quorum.election.timeout.ms",
                "must be at least 10".into(),
            ));
        }
        if self.broker_heartbeat_interval_ms == 0
            || self.broker_heartbeat_interval_ms >= self.broker_session_timeout_ms
        {
            return Err(invalid(
                "broker.heartbeat.interval.ms",
                format!(
                    "must be more than 0 and less than broker.session.timeout.ms ({})",
                    self.broker_session_timeout_ms
                ),
            ));
        }
        if self.is_controller()
            && !self
                .listeners
                .iter()
                .any(|listener| self.controller_listener_names.contains(&listener.name))
        {
            return Err(invalid(
                "listeners",
                format!(
                    "a controller needs a listener named in controller.listener.names ({})",
                    self.controller_listener_names.join(",")
                ),
            ));
        }
        let inter_broker = lookup
            .value("inter.broker.listener.name")
            .to_ascii_uppercase();
        if self.is_broker()
            && !inter_broker.is_empty()
            && !self
                .client_listeners()
                .any(|listener| listener.name == inter_broker)
        {
            return Err(invalid(
                "inter.broker.listener.name",
                format!(
                    "must be one of the broker's listeners ({})",
                    self.client_listeners()
                        .map(|listener| listener.name.as_str())
                        .collect::<Vec<_>>()
                        .join(",")
                ),
            ));
        }
        if self.is_broker() && self.client_listeners().next().is_none() {
            return Err(invalid(
                "listeners",
                "a broker needs a listener besides the controller's".into(),
            ));
        }
        if self.log_dirs.is_empty() {
            return Err(invalid(
                "log.dirs",
                "must name at least one directory".into(),
            ));
        }
        if let Some(twice) = self
            .log_dirs
            .iter()
            .enumerate()
            .find(|(index, dir)| self.log_dirs[..*index].contains(dir))
        {
            return Err(invalid(
                "log.dirs",
                format!("duplicate log directory {}", twice.1.display()),
            ));
        }
        if self.offsets_topic_num_partitions < 1 {
            return Err(invalid(
                "offsets.topic.num.partitions",
                "must be at least 1".into(),
            ));
        }
        if self.transaction_state_log_num_partitions < 1 {
            return Err(invalid(
                "transaction.state.log.num.partitions",
                "must be at least 1".into(),
            ));
        }
        if self.transaction_max_timeout_ms < 1 {
            return Err(invalid(
                "transaction.max.timeout.ms",
                "must be at least 1".into(),
            ));
        }
        if self.num_partitions < 1 {
            return Err(invalid("num.partitions", "must be at least 1".into()));
        }
        if self.log_segment_bytes < 14 {
            return Err(invalid(
                "log.segment.bytes",
                "must be at least 14 bytes".into(),
            ));
        }
        if self.socket_request_max_bytes < 1024 {
            return Err(invalid(
                "socket.request.max.bytes",
                "must be at least 1024".into(),
            ));
        }
        if self.producer_id_expiration_ms < 1 {
            return Err(invalid(
                "producer.id.expiration.ms",
                "must be at least 1".into(),
            ));
        }
        if self.producer_id_expiration_check_interval_ms < 1 {
            return Err(invalid(
                "producer.id.expiration.check.interval.ms",
                "must be at least 1".into(),
            ));
        }
        if self.fetch_max_bytes < 1024 {
            return Err(invalid("fetch.max.bytes", "must be at least 1024".into()));
        }
        self.validate_connection_limits(lookup)
    }

    /// Kafka's rules for the request queue and connection keys.
    fn validate_connection_limits(&self, lookup: &Lookup) -> Result<(), ConfigError> {
        let invalid = |key: &str, reason: &str| ConfigError::Invalid {
            key: key.to_string(),
            value: lookup.value(key),
            reason: reason.to_string(),
        };
        if self.queued_max_requests < 1 {
            return Err(invalid("queued.max.requests", "must be at least 1"));
        }
        if self.queued_max_request_bytes < 1 && self.queued_max_request_bytes != -1 {
            return Err(invalid(
                "queued.max.request.bytes",
                "must be -1 (the default bound per connection) or at least 1",
            ));
        }
        if self.max_connections_per_ip == 0 && self.max_connections_per_ip_overrides.is_empty() {
            return Err(invalid(
                "max.connections.per.ip",
                "can be set to zero only if max.connections.per.ip.overrides is set",
            ));
        }
        Ok(())
    }
}

/// Looks keys up in what was given, falling back to the defaults in `KEYS`.
struct Lookup<'a> {
    given: &'a IndexMap<String, String>,
}

impl Lookup<'_> {
    fn value(&self, key: &str) -> String {
        if let Some(value) = self.given.get(key) {
            return value.trim().to_string();
        }
        let default = KEYS.iter().find(|(known, _)| *known == key);
        default
            .map(|(_, value)| value.to_string())
            .unwrap_or_default()
    }

    fn required(&self, key: &str, reason: &str) -> Result<String, ConfigError> {
        match self.value(key) {
            value if value.is_empty() => Err(ConfigError::Missing {
                key: key.to_string(),
                reason: reason.to_string(),
            }),
            value => Ok(value),
        }
    }

    fn number<T: std::str::FromStr>(&self, key: &str) -> Result<T, ConfigError> {
        parse_number(key, &self.value(key))
    }

    /// A duration in milliseconds set by `key`, or else by the first of `coarser` that is set
    /// (each with its unit in milliseconds), as Kafka resolves `log.retention.ms` / `.minutes`
    /// / `.hours`. Unset everywhere is `i64::MAX`; a negative value means unlimited.
    fn milliseconds(&self, key: &str, coarser: &[(&str, i64)]) -> Result<i64, ConfigError> {
        let mut choices = vec![(key, 1i64)];
        choices.extend_from_slice(coarser);
        for (name, unit) in choices {
            let value = self.value(name);
            if value.is_empty() {
                continue;
            }
            let amount: i64 = parse_number(name, &value)?;
            return Ok(if amount < 0 {
                -1
            } else {
                amount.saturating_mul(unit)
            });
        }
        Ok(i64::MAX)
    }

    fn cpu_pinning(&self, key: &str) -> Result<CpuPinning, ConfigError> {
        let value = self.value(key);
        CpuPinning::parse(&value).ok_or_else(|| ConfigError::Invalid {
            key: key.to_string(),
            value,
            reason: format!("expected one of {}", CpuPinning::VALUES),
        })
    }

    /// A whole number of `key` within `[min, max]`.
    fn bounded(&self, key: &str, min: u64, max: u64) -> Result<u64, ConfigError> {
        let value: u64 = self.number(key)?;
        if (min..=max).contains(&value) {
            return Ok(value);
        }
        Err(ConfigError::Invalid {
            key: key.to_string(),
            value: self.value(key),
            reason: format!("must be from {min} to {max}"),
        })
    }

    /// A Kafka INT key that must be zero or more (connection counts and rates).
    fn count(&self, key: &str) -> Result<usize, ConfigError> {
        let value: i32 = self.number(key)?;
        usize::try_from(value).map_err(|_| ConfigError::Invalid {
            key: key.to_string(),
            value: self.value(key),
            reason: "must be zero or more".into(),
        })
    }

    /// A quota sampling: `<prefix>.num` windows of `<prefix>.size.seconds` (each at least 1).
    fn sampling(&self, prefix: &str) -> Result<crate::quota::rate::Sampling, ConfigError> {
        Ok(crate::quota::rate::Sampling {
            samples: self.number::<u32>(&format!("{prefix}.num"))?.max(1),
            window_ms: self
                .number::<u64>(&format!("{prefix}.size.seconds"))?
                .max(1)
                .saturating_mul(1000),
        })
    }

    fn boolean(&self, key: &str) -> Result<bool, ConfigError> {
        match self.value(key).to_ascii_lowercase().as_str() {
            "true" => Ok(true),
            "false" => Ok(false),
            _ => Err(ConfigError::Invalid {
                key: key.to_string(),
                value: self.value(key),
                reason: "expected true or false".into(),
            }),
        }
    }
}

fn parse_number<T: std::str::FromStr>(key: &str, value: &str) -> Result<T, ConfigError> {
    value.parse().map_err(|_| ConfigError::Invalid {
        key: key.to_string(),
        value: value.to_string(),
        reason: "not a valid number in range".into(),
    })
}

fn parse_roles(value: &str) -> Result<Vec<Role>, ConfigError> {
    let mut roles = Vec::new();
    for role in split_list(value) {
        let role = match role {
            "broker" => Role::Broker,
            "controller" => Role::Controller,
            _ => {
                return Err(ConfigError::Invalid {
                    key: "process.roles".into(),
                    value: value.to_string(),
                    reason: format!("unknown role '{role}'; use broker, controller or both"),
                })
            }
        };
        if !roles.contains(&role) {
            roles.push(role);
        }
    }
    Ok(roles)
}

fn split_list(value: &str) -> impl Iterator<Item = &str> {
    value
        .split(',')
        .map(str::trim)
        .filter(|item| !item.is_empty())
}

#[cfg(test)]
mod tests;
