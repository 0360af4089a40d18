//! Errors of the blocking client: transport failures (with the address involved), protocol
//! failures (with the API and version), and Kafka error codes returned by a broker, which keep
//! Kafka's names (`TOPIC_ALREADY_EXISTS`) and messages so the tools print what Kafka's tools print.

use std::fmt;
use std::io;

use kafka_protocol::messages::ApiKey;
use kafka_protocol::ResponseError;

/// Source error type of the protocol crate (an `anyhow::Error`, boxed).
pub type ProtocolSource = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Everything that can go wrong while talking to a cluster.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("no bootstrap server given (expected host:port[,host:port...])")]
    NoBootstrapServers,
    #[error("invalid broker address '{address}': expected host:port")]
    InvalidAddress { address: String },
    #[error("connection to node at {address} could not be established: {source}")]
    Connect {
        address: String,
        #[source]
        source: io::Error,
    },
    #[error("I/O error talking to {address}: {source}")]
    Io {
        address: String,
        #[source]
        source: io::Error,
    },
    #[error("encoding {api:?} v{version} request failed: {source}")]
    Encode {
        api: ApiKey,
        version: i16,
        #[source]
        source: ProtocolSource,
    },
    #[error("decoding {api:?} v{version} response from {address} failed: {source}")]
    Decode {
        api: ApiKey,
        version: i16,
        address: String,
        #[source]
        source: ProtocolSource,
    },
    #[error("response from {address} has correlation id {actual}, expected {expected}")]
    CorrelationMismatch {
        address: String,
        expected: i32,
        actual: i32,
    },
    #[error("response from {address} announces {size_bytes} bytes, outside 0..={limit_bytes}")]
    BadResponseSize {
        address: String,
        size_bytes: i64,
        limit_bytes: usize,
    },
    #[error("{address} answered with TLS: it is an SSL or SASL_SSL listener, so set security.protocol (and the ssl.* keys) in the client's properties")]
    UnexpectedTls { address: String },
    #[error("broker at {address} supports {api:?} versions {broker_min}..{broker_max}, this client {client_min}..{client_max}")]
    UnsupportedVersion {
        address: String,
        api: ApiKey,
        broker_min: i16,
        broker_max: i16,
        client_min: i16,
        client_max: i16,
    },
    #[error("node {node_id} is not in the cluster metadata")]
    UnknownNode { node_id: i32 },
    #[error("encoding a record batch for {topic}-{partition} failed: {source}")]
    RecordEncode {
        topic: String,
        partition: i32,
        #[source]
        source: ProtocolSource,
    },
    #[error("decoding a record batch of {topic}-{partition} at offset {offset} failed: {source}")]
    RecordDecode {
        topic: String,
        partition: i32,
        offset: i64,
        #[source]
        source: ProtocolSource,
    },
    /// The broker refused the SASL exchange, or the client refused the broker's part of it;
    /// the message is Kafka's (`Authentication failed: Invalid username or password`).
    #[error("Connection to {address} failed authentication due to: {message}")]
    Authentication { address: String, message: String },
    /// The TLS handshake failed, or the broker ended the session with an alert.
    #[error("SSL handshake with {address} failed: {reason}")]
    Tls { address: String, reason: String },
    #[error("Topic {topic} not present in metadata after {waited_ms} ms.")]
    MetadataTimeout { topic: String, waited_ms: u128 },
    #[error("{0}")]
    ConsumerProtocol(#[from] super::consumer_protocol::ConsumerProtocolError),
    #[error("{0}")]
    Kafka(#[from] KafkaError),
}

impl ClientError {
    /// An I/O failure talking to `address`: a TLS one (a certificate refused, an alert from
    /// the broker) is told apart from the socket's own.
    pub fn io(address: &str, source: io::Error) -> ClientError {
        match super::stream::is_tls_error(&source) {
            true => ClientError::Tls {
                address: address.to_string(),
                reason: super::stream::describe_tls_error(&source),
            },
            false => ClientError::Io {
                address: address.to_string(),
                source,
            },
        }
    }

    /// True when the connection that produced this error should be dropped and reopened.
    pub fn is_transport(&self) -> bool {
        matches!(
            self,
            ClientError::Io { .. }
                | ClientError::Connect { .. }
                | ClientError::CorrelationMismatch { .. }
                | ClientError::BadResponseSize { .. }
                | ClientError::Decode { .. }
        )
    }
}

/// A non-zero Kafka error code with the message that goes with it: the broker's own
/// `error_message` when it sent one, otherwise Kafka's default text for the code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KafkaError {
    pub code: i16,
    message: String,
}

impl KafkaError {
    /// The error for a known non-zero `code` with Kafka's default message.
    pub fn new(code: i16) -> KafkaError {
        KafkaError {
            code,
            message: default_message(code).to_string(),
        }
    }

    /// The error for `code`, or `None` for code 0 (no error).
    pub fn from_code(code: i16) -> Option<KafkaError> {
        Self::with_message(code, None)
    }

    /// The error for `code`, preferring the broker's message when it sent a non-empty one.
    pub fn with_message(code: i16, server_message: Option<&str>) -> Option<KafkaError> {
        if code == 0 {
            return None;
        }
        let message = match server_message {
            Some(text) if !text.is_empty() => text.to_string(),
            _ => default_message(code).to_string(),
        };
        Some(KafkaError { code, message })
    }

    /// An error about one topic, worded as Kafka's admin client words it when the broker sent no
    /// message of its own (for example "Topic 'x' already exists.").
    pub fn for_topic(code: i16, topic: &str, server_message: Option<&str>) -> Option<KafkaError> {
        let specific = match code {
            36 => Some(format!("Topic '{topic}' already exists.")),
            _ => None,
        };
        match (server_message.filter(|text| !text.is_empty()), specific) {
            (None, Some(message)) => Some(KafkaError { code, message }),
            (server, _) => Self::with_message(code, server),
        }
    }

    /// Kafka's name for the code, as in `Errors.java`: `UNKNOWN_TOPIC_OR_PARTITION`.
    pub fn name(&self) -> String {
        error_name(self.code)
    }

    pub fn message(&self) -> &str {
        &self.message
    }

    /// Whether Kafka clients retry a request that failed with this code.
    pub fn is_retriable(&self) -> bool {
        ResponseError::try_from_code(self.code).is_some_and(|error| error.is_retriable())
    }

    /// Whether the group coordinator moved or is not ready: find it again and retry
    /// (COORDINATOR_LOAD_IN_PROGRESS, COORDINATOR_NOT_AVAILABLE, NOT_COORDINATOR).
    pub fn is_coordinator_error(&self) -> bool {
        matches!(self.code, 14..=16)
    }

    /// Whether the group membership is gone or outdated and the member must join again
    /// (ILLEGAL_GENERATION, UNKNOWN_MEMBER_ID, REBALANCE_IN_PROGRESS).
    pub fn needs_rejoin(&self) -> bool {
        matches!(self.code, 22 | 25 | 27)
    }

    /// Whether the client's view of partition leadership is stale after this error.
    pub fn invalidates_metadata(&self) -> bool {
        matches!(self.code, 3 | 5 | 6 | 9 | 13 | 74 | 75 | 100)
    }
}

impl fmt::Display for KafkaError {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(&self.message)
    }
}

impl std::error::Error for KafkaError {}

/// Kafka's SCREAMING_SNAKE name for an error code.
pub fn error_name(code: i16) -> String {
    match ResponseError::try_from_code(code) {
        None => "NONE".to_string(),
        Some(ResponseError::Unknown(code)) => format!("UNKNOWN_ERROR_CODE_{code}"),
        Some(error) => screaming_snake(&format!("{error}")),
    }
}

fn screaming_snake(camel: &str) -> String {
    let mut name = String::with_capacity(camel.len() + 8);
    for (index, character) in camel.chars().enumerate() {
        if character.is_ascii_uppercase() && index > 0 {
            name.push('_');
        }
        name.push(character.to_ascii_uppercase());
    }
    name
}

/// Kafka's default message for the codes the tools meet; the rest get a generic text.
fn default_message(code: i16) -> &'static str {
    match code {
        -1 => "The server experienced an unexpected error when processing the request.",
        1 => "The requested offset is not within the range of offsets maintained by the server.",
        2 => "This message has failed its CRC checksum, exceeds the valid size, has a null key for a compacted topic, or is otherwise corrupt.",
        3 => "This server does not host this topic-partition.",
        4 => "The requested fetch size is invalid.",
        5 => "There is no leader for this topic-partition as we are in the middle of a leadership election.",
        6 => "For requests intended only for the leader, this error indicates that the broker is not the current leader. For requests intended for any replica, this error indicates that the broker is not a replica of the topic partition.",
        7 => "The request timed out.",
        8 => "The broker is not available.",
        9 => "The replica is not available for the requested topic-partition.",
        10 => "The request included a message larger than the max message size the server will accept.",
        13 => "The server disconnected before a response was received.",
        14 => "The coordinator is loading and hence can't process requests.",
        15 => "The coordinator is not available.",
        16 => "This is not the correct coordinator.",
        17 => "The request attempted to perform an operation on an invalid topic.",
        18 => "The request included message batch larger than the configured segment size on the server.",
        19 => "Messages are rejected since there are fewer in-sync replicas than required.",
        20 => "Messages are written to the log, but to fewer in-sync replicas than required.",
        21 => "Produce request specified an invalid value for required acks.",
        22 => "Specified group generation id is not valid.",
        23 => "The group member's supported protocols are incompatible with those of existing members or first group member tried to join with empty protocol type or empty protocol list.",
        24 => "The configured groupId is invalid.",
        25 => "The coordinator is not aware of this member.",
        26 => "The session timeout is not within the range allowed by the broker (as configured by group.min.session.timeout.ms and group.max.session.timeout.ms).",
        27 => "The group is rebalancing, so a rejoin is needed.",
        28 => "The committing offset data size is not valid.",
        29 => "Topic authorization failed.",
        30 => "Group authorization failed.",
        31 => "Cluster authorization failed.",
        32 => "The timestamp of the message is out of acceptable range.",
        35 => "The version of API is not supported.",
        36 => "Topic with this name already exists.",
        37 => "Number of partitions is below 1.",
        38 => "Replication factor is below 1 or larger than the number of available brokers.",
        39 => "Replica assignment is invalid.",
        40 => "Configuration is invalid.",
        41 => "This is not the correct controller for this cluster.",
        42 => "This most likely occurs because of a request being malformed by the client library or the message was sent to an incompatible broker. See the broker logs for more details.",
        44 => "Request parameters do not satisfy the configured policy.",
        45 => "The broker received an out of order sequence number.",
        46 => "The broker received a duplicate sequence number.",
        47 => "Producer attempted to produce with an old epoch.",
        48 => "The producer attempted a transactional operation in an invalid state.",
        49 => "The producer attempted to use a producer id which is not currently assigned to its transactional id.",
        50 => "The transaction timeout is larger than the maximum value allowed by the broker (as configured by transaction.max.timeout.ms).",
        51 => "The producer attempted to update a transaction while another concurrent operation on the same transaction was ongoing.",
        52 => "Indicates that the transaction coordinator sending a WriteTxnMarker is no longer the current coordinator for a given producer.",
        53 => "Transactional Id authorization failed.",
        54 => "Security features are disabled.",
        56 => "Disk error when trying to access log file on the disk.",
        68 => "The group is not empty.",
        69 => "The group id does not exist.",
        76 => "The requesting client does not support the compression type of given partition.",
        79 => "The group member needs to have a valid member id before actually entering a consumer group.",
        81 => "The consumer group has reached its max size.",
        86 => "The consumer group is actively subscribed to the topic",
        87 => "One or more records have been rejected due to invalid record format.",
        90 => "There is a newer producer with the same transactionalId which fences the current one.",
        100 => "This server does not host this topic ID.",
        105 => "The transactionalId could not be found",
        _ => "The broker returned an error code this client does not know.",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_kafka_errors_java() {
        // Kafka's names are the SCREAMING_SNAKE form of the protocol crate's variants.
        assert_eq!(error_name(3), "UNKNOWN_TOPIC_OR_PARTITION");
        assert_eq!(error_name(17), "INVALID_TOPIC_EXCEPTION");
        assert_eq!(error_name(36), "TOPIC_ALREADY_EXISTS");
        assert_eq!(error_name(6), "NOT_LEADER_OR_FOLLOWER");
        assert_eq!(error_name(-1), "UNKNOWN_SERVER_ERROR");
    }

    #[test]
    fn topic_errors_prefer_the_broker_message() {
        // Without a broker message, TOPIC_ALREADY_EXISTS reads as Kafka's admin client prints it.
        let error = KafkaError::for_topic(36, "x", None).expect("non-zero code");
        assert_eq!(error.to_string(), "Topic 'x' already exists.");
        let error = KafkaError::for_topic(36, "x", Some("custom")).expect("non-zero code");
        assert_eq!(error.to_string(), "custom");
        assert!(KafkaError::for_topic(0, "x", None).is_none());
        let error = KafkaError::from_code(3).expect("non-zero code");
        assert_eq!(
            error.message(),
            "This server does not host this topic-partition."
        );
        assert!(error.is_retriable());
    }
}
