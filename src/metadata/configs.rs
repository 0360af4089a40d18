//! Topic and broker configuration as Kafka resolves it: a topic's value comes from its own
//! override (DYNAMIC_TOPIC_CONFIG), else from a broker-level synonym set dynamically for this
//! broker, dynamically for every broker, or in server.properties, else from the default. One
//! resolver feeds both the logs (`resolve_topic`) and DescribeConfigs (`describe_topic`,
//! `describe_broker`), so what a client is shown is what the broker uses.

use std::collections::BTreeMap;

use crate::config::ServerConfig;

/// Where a value comes from; the numbers are DescribeConfigs' `config_source`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConfigSource {
    DynamicTopic = 1,
    DynamicBroker = 2,
    DynamicDefaultBroker = 3,
    StaticBroker = 4,
    Default = 5,
}

/// DescribeConfigs' `config_type` (v3+).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConfigType {
    Boolean = 1,
    String = 2,
    Int = 3,
    Long = 5,
    Double = 6,
    List = 7,
}

/// A broker key that stands for a topic config, and the factor turning its unit into the
/// topic's (`log.retention.hours` is 3,600,000 of `retention.ms`'s milliseconds).
struct Synonym {
    key: &'static str,
    factor: i64,
}

const fn same(key: &'static str) -> Synonym {
    Synonym { key, factor: 1 }
}

struct TopicConfigDef {
    name: &'static str,
    config_type: ConfigType,
    /// Broker keys in Kafka's order of precedence; the first is the one settable dynamically.
    synonyms: &'static [Synonym],
    /// The value when no synonym is set and none has a default.
    default: Option<&'static str>,
    /// For enumerated values, the ones allowed.
    choices: &'static [&'static str],
}

const LONG_MAX: &str = "9223372036854775807";
const HOUR_MS: i64 = 3_600_000;

macro_rules! topic_config {
    ($name:expr, $type:ident, [$($synonym:expr),*], $default:expr) => {
        topic_config!($name, $type, [$($synonym),*], $default, [])
    };
    ($name:expr, $type:ident, [$($synonym:expr),*], $default:expr, [$($choice:expr),*]) => {
        TopicConfigDef {
            name: $name,
            config_type: ConfigType::$type,
            synonyms: &[$($synonym),*],
            default: $default,
            choices: &[$($choice),*],
        }
    };
}

/// Kafka 4's topic configs, with their broker synonyms and defaults.
const TOPIC_CONFIGS: &[TopicConfigDef] = &[
    topic_config!(
        "cleanup.policy",
        List,
        [same("log.cleanup.policy")],
        Some("delete"),
        ["compact", "delete"]
    ),
    topic_config!(
        "compression.type",
        String,
        [same("compression.type")],
        Some("producer"),
        ["uncompressed", "zstd", "lz4", "snappy", "gzip", "producer"]
    ),
    topic_config!(
        "delete.retention.ms",
        Long,
        [same("log.cleaner.delete.retention.ms")],
        Some("86400000")
    ),
    topic_config!(
        "file.delete.delay.ms",
        Long,
        [same("log.segment.delete.delay.ms")],
        Some("60000")
    ),
    topic_config!(
        "flush.messages",
        Long,
        [same("log.flush.interval.messages")],
        Some(LONG_MAX)
    ),
    topic_config!(
        "flush.ms",
        Long,
        [same("log.flush.interval.ms")],
        Some(LONG_MAX)
    ),
    topic_config!(
        "follower.replication.throttled.replicas",
        List,
        [same("follower.replication.throttled.replicas")],
        Some("")
    ),
    topic_config!(
        "index.interval.bytes",
        Int,
        [same("log.index.interval.bytes")],
        Some("4096")
    ),
    topic_config!(
        "leader.replication.throttled.replicas",
        List,
        [same("leader.replication.throttled.replicas")],
        Some("")
    ),
    topic_config!(
        "local.retention.bytes",
        Long,
        [same("log.local.retention.bytes")],
        Some("-2")
    ),
    topic_config!(
        "local.retention.ms",
        Long,
        [same("log.local.retention.ms")],
        Some("-2")
    ),
    topic_config!(
        "max.compaction.lag.ms",
        Long,
        [same("log.cleaner.max.compaction.lag.ms")],
        Some(LONG_MAX)
    ),
    topic_config!(
        "max.message.bytes",
        Int,
        [same("message.max.bytes")],
        Some("1048588")
    ),
    topic_config!(
        "message.timestamp.after.max.ms",
        Long,
        [same("log.message.timestamp.after.max.ms")],
        Some("3600000")
    ),
    topic_config!(
        "message.timestamp.before.max.ms",
        Long,
        [same("log.message.timestamp.before.max.ms")],
        Some(LONG_MAX)
    ),
    topic_config!(
        "message.timestamp.type",
        String,
        [same("log.message.timestamp.type")],
        Some("CreateTime"),
        ["CreateTime", "LogAppendTime"]
    ),
    topic_config!(
        "min.cleanable.dirty.ratio",
        Double,
        [same("log.cleaner.min.cleanable.ratio")],
        Some("0.5")
    ),
    topic_config!(
        "min.compaction.lag.ms",
        Long,
        [same("log.cleaner.min.compaction.lag.ms")],
        Some("0")
    ),
    topic_config!(
        "min.insync.replicas",
        Int,
        [same("min.insync.replicas")],
        Some("1")
    ),
    topic_config!(
        "preallocate",
        Boolean,
        [same("log.preallocate")],
        Some("false"),
        ["true", "false"]
    ),
    topic_config!(
        "remote.storage.enable",
        Boolean,
        [],
        Some("false"),
        ["true", "false"]
    ),
    topic_config!(
        "retention.bytes",
        Long,
        [same("log.retention.bytes")],
        Some("-1")
    ),
    topic_config!(
        "retention.ms",
        Long,
        [
            same("log.retention.ms"),
            Synonym {
                key: "log.retention.minutes",
                factor: 60_000
            },
            Synonym {
                key: "log.retention.hours",
                factor: HOUR_MS
            }
        ],
        Some("604800000")
    ),
    topic_config!(
        "segment.bytes",
        Int,
        [same("log.segment.bytes")],
        Some("1073741824")
    ),
    topic_config!(
        "segment.index.bytes",
        Int,
        [same("log.index.size.max.bytes")],
        Some("10485760")
    ),
    topic_config!(
        "segment.jitter.ms",
        Long,
        [
            same("log.roll.jitter.ms"),
            Synonym {
                key: "log.roll.jitter.hours",
                factor: HOUR_MS
            }
        ],
        Some("0")
    ),
    topic_config!(
        "segment.ms",
        Long,
        [
            same("log.roll.ms"),
            Synonym {
                key: "log.roll.hours",
                factor: HOUR_MS
            }
        ],
        Some("604800000")
    ),
    topic_config!(
        "unclean.leader.election.enable",
        Boolean,
        [same("unclean.leader.election.enable")],
        Some("false"),
        ["true", "false"]
    ),
];

/// Defaults of the broker synonyms that `config::KEYS` does not read itself.
const SYNONYM_DEFAULTS: &[(&str, &str)] = &[
    ("log.cleanup.policy", "delete"),
    ("compression.type", "producer"),
    ("log.cleaner.delete.retention.ms", "86400000"),
    ("log.segment.delete.delay.ms", "60000"),
    ("log.local.retention.bytes", "-2"),
    ("log.local.retention.ms", "-2"),
    ("log.cleaner.max.compaction.lag.ms", LONG_MAX),
    // Kafka 4's default (KIP-1030): at most an hour ahead of the broker's clock.
    ("log.message.timestamp.after.max.ms", "3600000"),
    ("log.message.timestamp.before.max.ms", LONG_MAX),
    ("log.message.timestamp.type", "CreateTime"),
    ("log.cleaner.min.cleanable.ratio", "0.5"),
    ("log.cleaner.min.compaction.lag.ms", "0"),
    ("min.insync.replicas", "1"),
    ("log.preallocate", "false"),
    ("log.index.size.max.bytes", "10485760"),
    ("log.roll.jitter.ms", ""),
    ("log.roll.jitter.hours", "0"),
    ("unclean.leader.election.enable", "false"),
    ("follower.replication.throttled.replicas", ""),
    ("leader.replication.throttled.replicas", ""),
];

/// The broker-level layers a topic value may come from, most specific first.
pub struct BrokerLayers<'a> {
    /// Set dynamically for this broker (`--entity-name <node id>`).
    pub dynamic: Option<&'a BTreeMap<String, String>>,
    /// Set dynamically for every broker (`--entity-default`).
    pub dynamic_default: Option<&'a BTreeMap<String, String>>,
    pub config: &'a ServerConfig,
}

impl<'a> BrokerLayers<'a> {
    pub fn new(
        config: &'a ServerConfig,
        dynamic: &'a BTreeMap<String, BTreeMap<String, String>>,
    ) -> BrokerLayers<'a> {
        BrokerLayers {
            dynamic: dynamic.get(&config.node_id.to_string()),
            dynamic_default: dynamic.get(""),
            config,
        }
    }

    /// The broker layers in precedence order, each with its source.
    fn layers(&self) -> [(Option<&'a BTreeMap<String, String>>, ConfigSource); 3] {
        [
            (self.dynamic, ConfigSource::DynamicBroker),
            (self.dynamic_default, ConfigSource::DynamicDefaultBroker),
            (
                Some(&self.config.static_properties),
                ConfigSource::StaticBroker,
            ),
        ]
    }
}

/// A value as DescribeConfigs shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Described {
    pub name: String,
    pub value: Option<String>,
    pub source: ConfigSource,
    pub read_only: bool,
    pub config_type: ConfigType,
    /// (name, value, source), most specific first; the entry's own value is the first.
    pub synonyms: Vec<Synonymous>,
}

/// The value every topic config takes for a topic with `overrides`, by name.
pub fn resolve_topic(
    overrides: &BTreeMap<String, String>,
    broker: &BrokerLayers,
) -> BTreeMap<String, String> {
    TOPIC_CONFIGS
        .iter()
        .map(|def| {
            let (value, _, _) = topic_value(def, overrides, broker);
            (def.name.to_string(), value)
        })
        .collect()
}

/// Every topic config of a topic with `overrides`, with sources and synonyms.
pub fn describe_topic(
    overrides: &BTreeMap<String, String>,
    broker: &BrokerLayers,
) -> Vec<Described> {
    TOPIC_CONFIGS
        .iter()
        .map(|def| {
            let (value, source, synonyms) = topic_value(def, overrides, broker);
            Described {
                name: def.name.to_string(),
                value: Some(value),
                source,
                read_only: false,
                config_type: def.config_type,
                synonyms,
            }
        })
        .collect()
}

/// The value in force for `def` (in the topic's unit), its source, and every place a value was
/// found, most specific first: the override, each broker layer's synonyms, the defaults.
fn topic_value(
    def: &TopicConfigDef,
    overrides: &BTreeMap<String, String>,
    broker: &BrokerLayers,
) -> (String, ConfigSource, Vec<Synonymous>) {
    let mut found: Vec<Synonymous> = Vec::new();
    if let Some(value) = overrides.get(def.name) {
        found.push((
            def.name.to_string(),
            Some(value.clone()),
            ConfigSource::DynamicTopic,
        ));
    }
    for (layer, source) in broker.layers() {
        for synonym in def.synonyms {
            if let Some(value) = layer.and_then(|layer| layer.get(synonym.key)) {
                found.push((synonym.key.to_string(), Some(value.clone()), source));
            }
        }
    }
    for synonym in def.synonyms {
        if let Some(value) = broker_default(synonym.key) {
            found.push((
                synonym.key.to_string(),
                Some(value.to_string()),
                ConfigSource::Default,
            ));
        }
    }
    let (value, source) = match found.first() {
        Some((key, value, source)) => {
            let factor = def
                .synonyms
                .iter()
                .find(|synonym| synonym.key == key)
                .map_or(1, |synonym| synonym.factor);
            (
                scaled(value.as_deref().unwrap_or_default(), factor),
                *source,
            )
        }
        None => (
            def.default.unwrap_or_default().to_string(),
            ConfigSource::Default,
        ),
    };
    (value, source, found)
}

/// A synonym as DescribeConfigs lists it: name, value, source.
pub type Synonymous = (String, Option<String>, ConfigSource);

fn scaled(value: &str, factor: i64) -> String {
    match (factor, value.trim().parse::<i64>()) {
        (1, _) | (_, Err(_)) => value.to_string(),
        (factor, Ok(number)) => number.saturating_mul(factor).to_string(),
    }
}

/// A broker key's default, if it has one.
fn broker_default(key: &str) -> Option<&'static str> {
    crate::config::KEYS
        .iter()
        .chain(SYNONYM_DEFAULTS)
        .find(|(known, _)| *known == key)
        .map(|(_, default)| *default)
        .filter(|default| !default.is_empty())
}

/// Broker keys that may be set while the broker runs: the primary synonym of every topic config
/// (Kafka's dynamic log configs). Their values reach every log through `resolve_topic`.
pub fn is_dynamic_broker_key(key: &str) -> bool {
    TOPIC_CONFIGS.iter().any(|def| {
        def.synonyms
            .first()
            .is_some_and(|synonym| synonym.key == key)
    })
}

/// The broker's configs: every key it reads or stands for a topic config, with their sources.
/// `default_only` describes the cluster-wide dynamic defaults (the resource named "").
pub fn describe_broker(broker: &BrokerLayers, default_only: bool) -> Vec<Described> {
    let mut keys: Vec<&str> = crate::config::KEYS
        .iter()
        .map(|(key, _)| *key)
        .chain(SYNONYM_DEFAULTS.iter().map(|(key, _)| *key))
        .collect();
    keys.sort_unstable();
    keys.dedup();
    keys.into_iter()
        .filter_map(|key| {
            let mut synonyms: Vec<Synonymous> = broker
                .layers()
                .into_iter()
                .filter(|(_, source)| {
                    !default_only || *source == ConfigSource::DynamicDefaultBroker
                })
                .filter_map(|(layer, source)| {
                    layer
                        .and_then(|layer| layer.get(key))
                        .map(|value| (key.to_string(), Some(value.clone()), source))
                })
                .collect();
            if default_only && synonyms.is_empty() {
                return None;
            }
            if !default_only {
                if let Some(value) = broker_default(key) {
                    synonyms.push((
                        key.to_string(),
                        Some(value.to_string()),
                        ConfigSource::Default,
                    ));
                }
            }
            let (value, source) = synonyms
                .first()
                .map_or((None, ConfigSource::Default), |(_, value, source)| {
                    (value.clone(), *source)
                });
            Some(Described {
                name: key.to_string(),
                value,
                source,
                read_only: !is_dynamic_broker_key(key),
                config_type: broker_key_type(key),
                synonyms,
            })
        })
        .collect()
}

fn broker_key_type(key: &str) -> ConfigType {
    TOPIC_CONFIGS
        .iter()
        .find(|def| {
            def.synonyms
                .first()
                .is_some_and(|synonym| synonym.key == key)
        })
        .map_or(ConfigType::String, |def| def.config_type)
}

/// Whether a topic config or its dynamic broker synonym holds a list (APPEND/SUBTRACT apply).
pub fn is_list(name: &str) -> bool {
    TOPIC_CONFIGS.iter().any(|def| {
        def.config_type == ConfigType::List
            && (def.name == name
                || def
                    .synonyms
                    .first()
                    .is_some_and(|synonym| synonym.key == name))
    })
}

/// Where APPEND and SUBTRACT start on a list config that has no override: its static default
/// (the topic config's, or its dynamic broker synonym's), as Kafka's
/// `ConfigurationControlManager` takes it from the config schema.
pub fn list_default(name: &str) -> &'static str {
    if let Some((_, value)) = SYNONYM_DEFAULTS.iter().find(|(key, _)| *key == name) {
        return value;
    }
    TOPIC_CONFIGS
        .iter()
        .find(|def| {
            def.name == name
                || def
                    .synonyms
                    .first()
                    .is_some_and(|synonym| synonym.key == name)
        })
        .and_then(|def| def.default)
        .unwrap_or("")
}

/// Checks a topic override the way Kafka's `LogConfig.validate` does, with Kafka's messages.
pub fn validate_topic_config(name: &str, value: &str) -> Result<(), String> {
    let def = TOPIC_CONFIGS
        .iter()
        .find(|def| def.name == name)
        .ok_or_else(|| format!("Unknown topic config name: {name}"))?;
    validate_value(name, value, def)
}

/// Checks a dynamic broker config: only the dynamic keys, typed like the topic config they
/// stand for.
/// A user's entry: a SCRAM credential in Kafka's config form.
pub fn validate_user_config(name: &str, value: &str) -> Result<(), String> {
    use crate::security::scram::{ScramCredential, ScramMechanism};
    if ScramMechanism::parse(name).is_none() {
        return Err(format!(
            "Unknown user config {name}: only SCRAM credentials are kept"
        ));
    }
    match ScramCredential::from_config(value) {
        Some(_) => Ok(()),
        None => Err(format!("Invalid SCRAM credential for {name}")),
    }
}

pub fn validate_broker_config(name: &str, value: &str) -> Result<(), String> {
    // A TLS listener's material (KIP-226); each broker loads it and keeps the old on failure.
    if crate::net::tls_reload::is_dynamic_ssl_key(name) {
        return Ok(());
    }
    let def = TOPIC_CONFIGS
        .iter()
        .find(|def| {
            def.synonyms
                .first()
                .is_some_and(|synonym| synonym.key == name)
        })
        .ok_or_else(|| format!("Cannot update these configs dynamically: Set({name})"))?;
    validate_value(name, value, def)
}

fn validate_value(name: &str, value: &str, def: &TopicConfigDef) -> Result<(), String> {
    let invalid = |reason: &str| {
        Err(format!(
            "Invalid value {value} for configuration {name}: {reason}"
        ))
    };
    let trimmed = value.trim();
    match def.config_type {
        ConfigType::Long if trimmed.parse::<i64>().is_err() => {
            return invalid("Not a number of type LONG")
        }
        ConfigType::Int if trimmed.parse::<i32>().is_err() => {
            return invalid("Not a number of type INT")
        }
        ConfigType::Double if trimmed.parse::<f64>().is_err() => {
            return invalid("Not a number of type DOUBLE")
        }
        ConfigType::Boolean
            if !["true", "false"].contains(&trimmed.to_ascii_lowercase().as_str()) =>
        {
            return invalid("Expected value to be either true or false")
        }
        _ => {}
    }
    if def.choices.is_empty() || def.config_type == ConfigType::Boolean {
        return Ok(());
    }
    let items: Vec<&str> = match def.config_type {
        ConfigType::List => trimmed.split(',').map(str::trim).collect(),
        _ => vec![trimmed],
    };
    match items.iter().find(|item| !def.choices.contains(item)) {
        Some(_) if def.config_type == ConfigType::List => invalid(&format!(
            "String must be one of: {}",
            def.choices.join(", ")
        )),
        Some(_) => invalid(&format!(
            "String must be one of: {}",
            def.choices.join(", ")
        )),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server_config(pairs: &[(&str, &str)]) -> ServerConfig {
        let mut text = String::from(
            "node.id=1\nprocess.roles=broker,controller\ncontroller.quorum.voters=1@localhost:9093\n\
             listeners=PLAINTEXT://:9092,CONTROLLER://:9093\ncontroller.listener.names=CONTROLLER\n\
             log.dirs=/tmp/x\n",
        );
        for (key, value) in pairs {
            text.push_str(&format!("{key}={value}\n"));
        }
        ServerConfig::from_properties(&crate::config::properties::parse(&text))
            .expect("valid")
            .0
    }

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(key, value)| (key.to_string(), value.to_string()))
            .collect()
    }

    /// Proves the precedence topic override > dynamic broker > dynamic default > static >
    /// default, with unit conversion from hour-valued synonyms.
    #[test]
    fn resolves_in_kafkas_order() {
        let config = server_config(&[("log.retention.hours", "2")]);
        let none = BTreeMap::new();
        let layers = BrokerLayers::new(&config, &none);
        let resolved = resolve_topic(&BTreeMap::new(), &layers);
        assert_eq!(resolved["retention.ms"], "7200000");
        assert_eq!(resolved["cleanup.policy"], "delete");
        assert_eq!(resolved["segment.ms"], "604800000");
        assert_eq!(resolved["max.message.bytes"], "1048588");

        let dynamic = BTreeMap::from([
            ("".to_string(), map(&[("log.retention.ms", "5000")])),
            ("1".to_string(), map(&[("log.retention.ms", "6000")])),
        ]);
        let layers = BrokerLayers::new(&config, &dynamic);
        assert_eq!(
            resolve_topic(&BTreeMap::new(), &layers)["retention.ms"],
            "6000"
        );
        let overrides = map(&[("retention.ms", "100")]);
        let described = describe_topic(&overrides, &layers);
        let retention = described.iter().find(|d| d.name == "retention.ms").unwrap();
        assert_eq!(retention.value.as_deref(), Some("100"));
        assert_eq!(retention.source, ConfigSource::DynamicTopic);
        let sources: Vec<(&str, ConfigSource)> = retention
            .synonyms
            .iter()
            .map(|(name, _, source)| (name.as_str(), *source))
            .collect();
        assert_eq!(
            sources,
            [
                ("retention.ms", ConfigSource::DynamicTopic),
                ("log.retention.ms", ConfigSource::DynamicBroker),
                ("log.retention.ms", ConfigSource::DynamicDefaultBroker),
                ("log.retention.hours", ConfigSource::StaticBroker),
                ("log.retention.hours", ConfigSource::Default),
            ]
        );
    }

    /// Proves a value from a default is shown with its synonym, as Kafka shows
    /// `DEFAULT_CONFIG:log.segment.bytes=1073741824` under `segment.bytes`.
    #[test]
    fn default_values_name_their_broker_synonym() {
        let config = server_config(&[]);
        let none = BTreeMap::new();
        let layers = BrokerLayers::new(&config, &none);
        let described = describe_topic(&BTreeMap::new(), &layers);
        let segment = described
            .iter()
            .find(|d| d.name == "segment.bytes")
            .unwrap();
        assert_eq!(segment.source, ConfigSource::Default);
        assert_eq!(segment.value.as_deref(), Some("1073741824"));
        assert_eq!(
            segment.synonyms,
            [(
                "log.segment.bytes".to_string(),
                Some("1073741824".to_string()),
                ConfigSource::Default
            )]
        );
        let remote = described
            .iter()
            .find(|d| d.name == "remote.storage.enable")
            .unwrap();
        assert_eq!(remote.value.as_deref(), Some("false"));
    }

    /// Proves broker descriptions: static keys, dynamic defaults only for "", read-only flags.
    #[test]
    fn describes_broker_configs() {
        let config = server_config(&[("num.partitions", "3")]);
        let dynamic = BTreeMap::from([("".to_string(), map(&[("log.retention.ms", "5000")]))]);
        let layers = BrokerLayers::new(&config, &dynamic);
        let all = describe_broker(&layers, false);
        let partitions = all.iter().find(|d| d.name == "num.partitions").unwrap();
        assert_eq!(partitions.value.as_deref(), Some("3"));
        assert_eq!(partitions.source, ConfigSource::StaticBroker);
        assert!(partitions.read_only);
        let retention = all.iter().find(|d| d.name == "log.retention.ms").unwrap();
        assert_eq!(retention.source, ConfigSource::DynamicDefaultBroker);
        assert!(!retention.read_only);
        let defaults = describe_broker(&layers, true);
        assert_eq!(defaults.len(), 1);
        assert_eq!(defaults[0].name, "log.retention.ms");
    }

    /// Proves values are checked with Kafka's messages.
    #[test]
    fn validates_values() {
        assert!(validate_topic_config("retention.ms", "1000").is_ok());
        assert_eq!(
            validate_topic_config("retention.ms", "soon").unwrap_err(),
            "Invalid value soon for configuration retention.ms: Not a number of type LONG"
        );
        assert!(validate_topic_config("cleanup.policy", "compact,delete").is_ok());
        assert!(validate_topic_config("cleanup.policy", "forever").is_err());
        assert!(validate_topic_config("message.timestamp.type", "LogAppendTime").is_ok());
        assert!(validate_topic_config("message.timestamp.type", "Now").is_err());
        assert!(validate_topic_config("retention", "1").is_err());
        assert!(validate_broker_config("log.retention.ms", "1").is_ok());
        assert_eq!(
            validate_broker_config("num.io.threads", "4").unwrap_err(),
            "Cannot update these configs dynamically: Set(num.io.threads)"
        );
    }
}
