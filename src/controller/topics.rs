//! Rules for new topics, as Kafka applies them: legal names, partition counts, replication
//! factors that the registered brokers can meet, and known topic-level configs with valid values.

use std::collections::BTreeMap;

/// Longest topic name Kafka allows.
const TOPIC_NAME_CHARS_MAX: usize = 249;

#[derive(Clone, Debug, thiserror::Error, PartialEq, Eq)]
pub enum TopicError {
    #[error("Topic '{0}' already exists.")]
    AlreadyExists(String),
    #[error("{0}")]
    InvalidName(String),
    #[error("{0}")]
    InvalidPartitions(String),
    #[error("{0}")]
    InvalidReplicationFactor(String),
    #[error("{0}")]
    InvalidConfig(String),
    #[error("{0}")]
    InvalidReplicaAssignment(String),
    #[error("{0}")]
    InvalidRequest(String),
    #[error("This server does not host this topic-partition.")]
    UnknownTopic,
    #[error("{0}")]
    Storage(String),
    /// Not the active controller; the one this node knows of (-1 if none).
    #[error("This is not the active controller (the active controller is {0})")]
    NotController(i32),
    #[error("{0}")]
    InconsistentClusterId(String),
    #[error("{0}")]
    StaleBrokerEpoch(String),
    #[error("{0}")]
    Timeout(String),
    #[error("{0}")]
    DuplicateBrokerRegistration(String),
    /// An ISR change from a leader of an older (or unknown) leader epoch.
    #[error("{0}")]
    FencedLeaderEpoch(String),
    /// An ISR change made against an older version of the partition.
    #[error("{0}")]
    InvalidUpdateVersion(String),
    /// An ISR change adding a replica that is fenced or not assigned.
    #[error("{0}")]
    IneligibleReplica(String),
    /// An ISR change from a broker that does not lead the partition.
    #[error("{0}")]
    NotLeader(String),
    #[error("{0}")]
    PreferredLeaderNotAvailable(String),
    #[error("Leader election not needed for topic partition.")]
    ElectionNotNeeded,
    #[error("Topic authorization failed.")]
    TopicAuthorizationFailed,
    #[error("Cluster authorization failed.")]
    ClusterAuthorizationFailed,
}

pub fn validate_name(name: &str) -> Result<(), TopicError> {
    let invalid = |reason: String| Err(TopicError::InvalidName(reason));
    if name.is_empty() {
        return invalid("Topic name is illegal, it can't be empty".into());
    }
    if name == "." || name == ".." {
        return invalid("Topic name cannot be \".\" or \"..\"".into());
    }
    if name.len() > TOPIC_NAME_CHARS_MAX {
        return invalid(format!(
            "Topic name is illegal, it can't be longer than {TOPIC_NAME_CHARS_MAX} characters, topic name: {name}"
        ));
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '_' || c == '-')
    {
        return invalid(format!(
            "Topic name \"{name}\" is illegal, it contains a character other than ASCII alphanumerics, '.', '_' and '-'"
        ));
    }
    Ok(())
}

pub fn validate_counts(
    partitions: i32,
    replication_factor: i16,
    brokers: usize,
) -> Result<(), TopicError> {
    if partitions < 1 {
        return Err(TopicError::InvalidPartitions(
            "Number of partitions must be larger than 0.".into(),
        ));
    }
    if replication_factor < 1 {
        return Err(TopicError::InvalidReplicationFactor(
            "Replication factor must be larger than 0.".into(),
        ));
    }
    if replication_factor as usize > brokers {
        return Err(TopicError::InvalidReplicationFactor(format!(
            "Unable to replicate the partition {replication_factor} time(s): The target replication factor of \
             {replication_factor} cannot be reached because only {brokers} broker(s) are registered."
        )));
    }
    Ok(())
}

/// Checks every override by Kafka's rules for topic configs (`metadata::configs`).
pub fn validate_configs(configs: &BTreeMap<String, String>) -> Result<(), TopicError> {
    for (key, value) in configs {
        crate::metadata::configs::validate_topic_config(key, value)
            .map_err(TopicError::InvalidConfig)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Proves Kafka's topic rules: names, counts against brokers, and config names.
    #[test]
    fn applies_kafkas_rules() {
        assert!(validate_name("test-topic.v1_a").is_ok());
        assert!(validate_name("bad topic").is_err());
        assert!(validate_name("..").is_err());
        assert!(validate_name(&"x".repeat(250)).is_err());
        assert!(validate_counts(3, 1, 1).is_ok());
        assert!(matches!(
            validate_counts(0, 1, 1),
            Err(TopicError::InvalidPartitions(_))
        ));
        assert!(matches!(
            validate_counts(1, 3, 1),
            Err(TopicError::InvalidReplicationFactor(_))
        ));
        let good = BTreeMap::from([("retention.ms".to_string(), "1000".to_string())]);
        assert!(validate_configs(&good).is_ok());
        let unknown = BTreeMap::from([("retention".to_string(), "1".to_string())]);
        assert!(validate_configs(&unknown).is_err());
        let bad = BTreeMap::from([("segment.bytes".to_string(), "big".to_string())]);
        assert!(validate_configs(&bad).is_err());
    }
}
