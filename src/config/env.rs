//! Maps `FLINK_*` environment variables to broker configuration keys, as the container image does.
//!
//! `FLINK_` is stripped, then `___` becomes `-`, `__` becomes `_` and `_` becomes `.`, and the key is
//! lower-cased: `FLINK_NUM_PARTITIONS` is `num.partitions`. Variables that configure the launcher
//! rather than the broker are skipped.

/// Variables with the `FLINK_` prefix that are not broker configuration.
const NOT_CONFIG: &[&str] = &[
    "FLINK_HOME",
    "FLINK_VERSION",
    "FLINK_OPTS",
    "FLINK_LOG_LEVEL",
    "FLINK_CLUSTER_ID",
    "FLINK_ADD_SCRAM",
    "FLINK_CONFIG_FILE",
    "FLINK_LOG_DIR",
];

/// Returns the (key, value) pairs named by `FLINK_*` variables, in name order.
pub fn config_from_environment<I>(variables: I) -> Vec<(String, String)>
where
    I: IntoIterator<Item = (String, String)>,
{
    let mut pairs: Vec<(String, String)> = variables
        .into_iter()
        .filter(|(name, _)| name.starts_with("FLINK_") && !NOT_CONFIG.contains(&name.as_str()))
        .map(|(name, value)| (key_for_variable(&name["FLINK_".len()..]), value))
        .filter(|(key, _)| !key.is_empty())
        .collect();
    pairs.sort();
    pairs
}

/// `NUM_PARTITIONS` -> `num.partitions`; `___` -> `-`, `__` -> `_`.
pub fn key_for_variable(suffix: &str) -> String {
    suffix
        .to_ascii_lowercase()
        .replace("___", "\u{1}")
        .replace("__", "\u{2}")
        .replace('_', ".")
        .replace('\u{1}', "-")
        .replace('\u{2}', "_")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Proves the documented mapping of dots, underscores and dashes.
    #[test]
    fn maps_variable_names_to_keys() {
        assert_eq!(key_for_variable("NUM_PARTITIONS"), "num.partitions");
        assert_eq!(
            key_for_variable("LISTENER_SECURITY_PROTOCOL_MAP"),
            "listener.security.protocol.map"
        );
        assert_eq!(key_for_variable("SOME__UNDERSCORE"), "some_underscore");
        assert_eq!(key_for_variable("A___DASH"), "a-dash");
        let pairs = config_from_environment(vec![
            ("FLINK_NODE_ID".to_string(), "1".to_string()),
            ("FLINK_HOME".to_string(), "/opt/flink".to_string()),
            ("PATH".to_string(), "/bin".to_string()),
        ]);
        assert_eq!(pairs, vec![("node.id".to_string(), "1".to_string())]);
    }
}
