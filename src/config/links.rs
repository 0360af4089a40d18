//! The client side of this node's own links, as Kafka configures them: replica fetches and
//! coordinator requests go to other brokers' inter-broker listener
//! (`inter.broker.listener.name`), registration, heartbeats, metadata and raft messages to the
//! controllers' listener (the first of `controller.listener.names`). Each link speaks its
//! listener's security protocol from `listener.security.protocol.map`; TLS takes the listener's
//! `ssl.*` keys (`listener.name.<listener>.ssl.*` first, then the plain keys): its truststore to
//! check the other end, its keystore as this node's certificate for listeners that ask for one,
//! and `ssl.endpoint.identification.algorithm`. SASL logs in with
//! `sasl.mechanism.inter.broker.protocol` / `sasl.mechanism.controller.protocol` and the
//! listener's JAAS config for that mechanism (`listener.name.<listener>.<mechanism>.sasl.jaas.config`):
//! PLAIN's and SCRAM's `username` and `password`, OAUTHBEARER's login options, with its
//! `sasl.login.*` and `sasl.oauthbearer.*` keys scoped as the JAAS config is, then by listener.
//!
//! Only the settings are read here; the PEM files are loaded when the server starts
//! (`Links::load`).

use indexmap::IndexMap;

use super::security::SecurityProtocol;
use super::ConfigError;
use crate::client::properties::Properties;
use crate::client::security::{ClientSecurity, SecurityError, SecuritySettings, SECURITY_KEYS};

/// Both links of a node.
#[derive(Clone, Debug, Default)]
pub struct Links {
    pub inter_broker: Link,
    pub controller: Link,
}

/// One link: the listener it reaches and how.
#[derive(Clone, Debug, Default)]
pub struct Link {
    pub listener: String,
    pub settings: Option<SecuritySettings>,
    loaded: Option<ClientSecurity>,
}

impl Link {
    /// What a connection on this link goes through: PLAINTEXT for a link whose settings were
    /// never given, and no TLS configuration until `Links::load` ran.
    pub fn security(&self) -> ClientSecurity {
        match (&self.loaded, &self.settings) {
            (Some(loaded), _) => loaded.clone(),
            (None, Some(settings)) => ClientSecurity {
                protocol: settings.protocol,
                tls: None,
                sasl: settings.sasl.clone(),
            },
            (None, None) => ClientSecurity::default(),
        }
    }

    fn load(&mut self) -> Result<(), SecurityError> {
        if let Some(settings) = &self.settings {
            self.loaded = Some(ClientSecurity::load(settings.clone())?);
        }
        Ok(())
    }
}

impl Links {
    /// Reads the PEM material the links' settings name.
    pub fn load(&mut self) -> Result<(), String> {
        for (what, link) in [
            ("the inter-broker link", &mut self.inter_broker),
            ("the controller link", &mut self.controller),
        ] {
            link.load()
                .map_err(|error| format!("{what} (listener {}): {error}", link.listener))?;
        }
        Ok(())
    }
}

/// The settings of a link to `listener`, which speaks `protocol`; `mechanism_key` names the SASL
/// mechanism this node logs in with.
pub fn parse(
    given: &IndexMap<String, String>,
    listener: &str,
    protocol: SecurityProtocol,
    mechanism_key: &str,
) -> Result<Link, ConfigError> {
    let prefix = format!("listener.name.{}.", listener.to_ascii_lowercase());
    let lookup = |key: &str| -> Option<(String, String)> {
        let prefixed = format!("{prefix}{key}");
        given
            .get(&prefixed)
            .map(|value| (prefixed, value.clone()))
            .or_else(|| given.get(key).map(|value| (key.to_string(), value.clone())))
    };
    let mut properties = Properties::default();
    properties.set("security.protocol", protocol.name());
    // Where each client key came from, for errors.
    let mut sources: Vec<(String, String)> = Vec::new();
    for key in SECURITY_KEYS.iter().filter(|key| key.starts_with("ssl.")) {
        if let Some((source, value)) = lookup(key) {
            properties.set(key, &value);
            sources.push((key.to_string(), source));
        }
    }
    if protocol.uses_sasl() {
        let mechanism = given
            .get(mechanism_key)
            .map(|value| value.trim().to_string())
            .unwrap_or_else(|| "GSSAPI".to_string());
        properties.set("sasl.mechanism", &mechanism);
        sources.push(("sasl.mechanism".into(), mechanism_key.to_string()));
        let jaas_key = format!(
            "{prefix}{}.sasl.jaas.config",
            mechanism.to_ascii_lowercase()
        );
        if let Some(jaas) = given.get(&jaas_key) {
            properties.set("sasl.jaas.config", jaas);
        }
        sources.push(("sasl.jaas.config".into(), jaas_key));
        let scoped = format!("{prefix}{}.", mechanism.to_ascii_lowercase());
        for key in SECURITY_KEYS
            .iter()
            .filter(|key| key.starts_with("sasl.login.") || key.starts_with("sasl.oauthbearer."))
        {
            let found = given
                .get(&format!("{scoped}{key}"))
                .map(|value| (format!("{scoped}{key}"), value.clone()));
            if let Some((source, value)) = found.or_else(|| lookup(key)) {
                properties.set(key, &value);
                sources.push((key.to_string(), source));
            }
        }
    }
    let settings = SecuritySettings::parse(&properties).map_err(|error| match error {
        SecurityError::Invalid { key, value, reason } => ConfigError::Invalid {
            key: sources
                .iter()
                .find(|(client_key, _)| *client_key == key)
                .map_or(key, |(_, source)| source.clone()),
            value,
            reason: format!("{reason} (this node logs in to listener {listener} with it)"),
        },
        other => ConfigError::Invalid {
            key: format!("{prefix}ssl.*"),
            value: String::new(),
            reason: other.to_string(),
        },
    })?;
    Ok(Link {
        listener: listener.to_string(),
        settings: Some(settings),
        loaded: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::security::tests::given;
    use crate::config::security::Mechanism;
    use crate::security::scram::ScramMechanism;

    #[test]
    fn plaintext_link_needs_nothing() {
        let link = parse(&given(&[]), "INTERNAL", SecurityProtocol::Plaintext, "m").unwrap();
        let settings = link.settings.unwrap();
        assert_eq!(settings.protocol, SecurityProtocol::Plaintext);
        assert!(settings.tls.is_none() && settings.sasl.is_none());
    }

    #[test]
    fn tls_keys_of_the_listener_come_before_the_plain_ones() {
        let keys = given(&[
            ("ssl.truststore.location", "/plain/ca.pem"),
            (
                "listener.name.internal.ssl.truststore.location",
                "/internal/ca.pem",
            ),
            ("ssl.keystore.location", "/plain/broker.pem"),
            ("ssl.truststore.type", "PEM"),
            ("ssl.keystore.type", "PEM"),
            ("ssl.endpoint.identification.algorithm", ""),
        ]);
        let link = parse(&keys, "INTERNAL", SecurityProtocol::Ssl, "m").unwrap();
        let tls = link.settings.unwrap().tls.unwrap();
        assert_eq!(
            tls.truststore,
            Some(crate::config::security::Pem::File(
                "/internal/ca.pem".into()
            ))
        );
        assert!(tls.keystore.is_some());
        assert!(!tls.verify_host_name);
    }

    #[test]
    fn sasl_logs_in_with_the_mechanism_and_the_listeners_jaas_options() {
        let keys = given(&[
            ("sasl.mechanism.inter.broker.protocol", "SCRAM-SHA-512"),
            (
                "listener.name.internal.scram-sha-512.sasl.jaas.config",
                "org.apache.kafka.common.security.scram.ScramLoginModule required username=\"broker\" password=\"secret\";",
            ),
        ]);
        let link = parse(
            &keys,
            "INTERNAL",
            SecurityProtocol::SaslPlaintext,
            "sasl.mechanism.inter.broker.protocol",
        )
        .unwrap();
        let sasl = link.security().sasl.unwrap();
        assert_eq!(sasl.mechanism, Mechanism::Scram(ScramMechanism::Sha512));
        assert_eq!(
            (sasl.user.as_str(), sasl.password.as_str()),
            ("broker", "secret")
        );
    }

    #[test]
    fn oauthbearer_logs_in_with_the_listeners_login_options_and_keys() {
        const MODULE: &str = "org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule";
        let jaas = format!(r#"{MODULE} required unsecuredLoginStringClaim_sub="broker";"#);
        let mut keys = given(&[
            ("sasl.mechanism.inter.broker.protocol", "OAUTHBEARER"),
            ("listener.name.internal.oauthbearer.sasl.jaas.config", &jaas),
        ]);
        let link = |keys: &IndexMap<String, String>| {
            parse(
                keys,
                "INTERNAL",
                SecurityProtocol::SaslPlaintext,
                "sasl.mechanism.inter.broker.protocol",
            )
        };
        let sasl = link(&keys).unwrap().security().sasl.unwrap();
        assert_eq!(
            (sasl.mechanism, sasl.user.as_str()),
            (Mechanism::OAuthBearer, "broker")
        );
        keys.insert(
            "listener.name.internal.oauthbearer.sasl.login.callback.handler.class".into(),
            "org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginCallbackHandler".into(),
        );
        keys.insert(
            "sasl.oauthbearer.token.endpoint.url".into(),
            "https://idp/token".into(),
        );
        let error = link(&keys).unwrap_err().to_string();
        assert!(
            error.contains("sasl.oauthbearer.token.endpoint.url")
                && error.contains("only file: URLs"),
            "{error}"
        );
        keys.insert(
            "listener.name.internal.sasl.oauthbearer.token.endpoint.url".into(),
            "file:/secrets/broker.jwt".into(),
        );
        let sasl = link(&keys).unwrap().security().sasl.unwrap();
        assert!(sasl.user.contains("/secrets/broker.jwt"), "{sasl:?}");
    }

    #[test]
    fn errors_name_the_brokers_keys() {
        let error = parse(
            &given(&[]),
            "INTERNAL",
            SecurityProtocol::SaslSsl,
            "sasl.mechanism.inter.broker.protocol",
        )
        .unwrap_err()
        .to_string();
        assert!(
            error.contains("sasl.mechanism.inter.broker.protocol") && error.contains("GSSAPI"),
            "{error}"
        );
        let keys = given(&[("sasl.mechanism.controller.protocol", "PLAIN")]);
        let error = parse(
            &keys,
            "CONTROLLER",
            SecurityProtocol::SaslPlaintext,
            "sasl.mechanism.controller.protocol",
        )
        .unwrap_err()
        .to_string();
        assert!(
            error.contains("listener.name.controller.plain.sasl.jaas.config"),
            "{error}"
        );
    }
}
