//! Certificates replaced without a restart, as Kafka's dynamic listener configs allow (KIP-226):
//! a TLS listener's key, chain and truststore are read again when the broker's dynamic configs
//! change one of its `listener.name.<listener>.ssl.*` keys (`flink-configs.sh --entity-type
//! brokers --alter --add-config listener.name.ssl.ssl.keystore.location=...`, for this broker or
//! every broker), or when one of the files they name is rewritten. Each shard's accept loop
//! compares the dynamic keys on every connection and looks at the files at most once per
//! `CHECK_INTERVAL`; new connections get the new material, open ones keep theirs. Material that does not load is logged and the previous
//! one kept.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use indexmap::IndexMap;

use crate::config::security::{self, Pem};
use crate::runtime::shard::Shard;

const CHECK_INTERVAL: Duration = Duration::from_secs(1);

pub struct TlsReloader {
    listener: Rc<str>,
    config: Arc<rustls::ServerConfig>,
    /// The listener's dynamic `ssl.*` keys the current material was built with.
    dynamic: BTreeMap<String, String>,
    /// The files it was read from, with their modification times.
    files: Vec<(PathBuf, Option<SystemTime>)>,
    checked: Instant,
}

/// The key prefix of a listener's own keys.
fn prefix(listener: &str) -> String {
    format!("listener.name.{}.", listener.to_ascii_lowercase())
}

fn modified(path: &PathBuf) -> Option<SystemTime> {
    std::fs::metadata(path)
        .and_then(|meta| meta.modified())
        .ok()
}

fn files_of(settings: &security::TlsSettings) -> Vec<(PathBuf, Option<SystemTime>)> {
    [
        Some(&settings.key),
        Some(&settings.certificate_chain),
        settings.truststore.as_ref(),
    ]
    .into_iter()
    .flatten()
    .filter_map(|pem| match pem {
        Pem::File(path) => Some(path.clone()),
        Pem::Inline(_) => None,
    })
    .map(|path| {
        let time = modified(&path);
        (path, time)
    })
    .collect()
}

impl TlsReloader {
    pub fn new(shard: &Shard, listener: Rc<str>, config: Arc<rustls::ServerConfig>) -> Self {
        let files = shard
            .config
            .listener_security(&listener)
            .and_then(|security| security.tls.as_ref())
            .map(files_of)
            .unwrap_or_default();
        TlsReloader {
            dynamic: dynamic_keys(shard, &listener),
            listener,
            config,
            files,
            checked: Instant::now(),
        }
    }

    /// The material for a connection accepted now. A change of the dynamic configs is taken up
    /// by the first connection after it reaches this shard; the files are looked at once per
    /// `CHECK_INTERVAL` at most.
    pub fn current(&mut self, shard: &Shard) -> Arc<rustls::ServerConfig> {
        let dynamic = dynamic_keys(shard, &self.listener);
        let mut rewritten = false;
        if self.checked.elapsed() >= CHECK_INTERVAL {
            self.checked = Instant::now();
            rewritten = self
                .files
                .iter()
                .any(|(path, time)| modified(path) != *time);
        }
        if dynamic != self.dynamic || rewritten {
            self.reload(shard, dynamic);
        }
        self.config.clone()
    }

    fn reload(&mut self, shard: &Shard, dynamic: BTreeMap<String, String>) {
        let mut given: IndexMap<String, String> = shard
            .config
            .static_properties
            .iter()
            .map(|(key, value)| (key.clone(), value.clone()))
            .collect();
        given.extend(dynamic.clone());
        let loaded = security::listener_tls_settings(&given, &self.listener)
            .map_err(|error| error.to_string())
            .and_then(|settings| {
                let config = super::tls::server_config(&self.listener, &settings)
                    .map_err(|error| error.to_string())?;
                Ok((settings, config))
            });
        match loaded {
            Ok((settings, config)) => {
                tracing::info!(
                    "listener {}: TLS material reloaded on shard {}",
                    self.listener,
                    shard.id
                );
                self.files = files_of(&settings);
                self.config = config;
            }
            Err(error) => {
                tracing::warn!(
                    "listener {}: new TLS material not used, the previous one stays: {error}",
                    self.listener
                );
                // Not tried again until something changes once more.
                self.files = self
                    .files
                    .iter()
                    .map(|(path, _)| (path.clone(), modified(path)))
                    .collect();
            }
        }
        self.dynamic = dynamic;
    }
}

/// The listener's `ssl.*` keys among the broker's dynamic configs: every broker's defaults, then
/// this broker's own.
fn dynamic_keys(shard: &Shard, listener: &str) -> BTreeMap<String, String> {
    let image = shard.metadata();
    let prefix = prefix(listener);
    let node = shard.config.node_id.to_string();
    let mut keys = BTreeMap::new();
    for layer in ["", node.as_str()] {
        if let Some(configs) = image.broker_configs.get(layer) {
            keys.extend(
                configs
                    .iter()
                    .filter(|(key, _)| key.starts_with(&prefix) && is_dynamic_ssl_key(key))
                    .map(|(key, value)| (key.clone(), value.clone())),
            );
        }
    }
    keys
}

/// The listener keys Kafka lets be changed while running (`DynamicBrokerConfig`'s SSL keys).
pub fn is_dynamic_ssl_key(key: &str) -> bool {
    let Some(rest) = key.strip_prefix("listener.name.") else {
        return false;
    };
    let Some((_, key)) = rest.split_once('.') else {
        return false;
    };
    DYNAMIC_SSL_KEYS.contains(&key)
}

const DYNAMIC_SSL_KEYS: &[&str] = &[
    "ssl.keystore.type",
    "ssl.keystore.location",
    "ssl.keystore.key",
    "ssl.keystore.certificate.chain",
    "ssl.truststore.type",
    "ssl.truststore.location",
    "ssl.truststore.certificates",
    "ssl.client.auth",
    "ssl.enabled.protocols",
];
