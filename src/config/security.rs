//! Listener security as Kafka configures it: `listener.security.protocol.map` gives each
//! listener PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL; the `ssl.*` and `sasl.*` keys, each of
//! which a `listener.name.<listener>.` prefix overrides for one listener (the listener name in
//! lower case, as Kafka writes it), give the TLS material and the SASL mechanisms; and
//! `listener.name.<listener>.<mechanism>.sasl.jaas.config` lists a mechanism's users
//! (`user_<name>="<password>"` for PLAIN, as Kafka's `PlainLoginModule` takes them).
//! Mechanism-scoped keys (`connections.max.reauth.ms`, OAUTHBEARER's, `config::oauthbearer`)
//! may also be set as `listener.name.<listener>.<mechanism>.<key>`.
//!
//! Only what a listener needs is checked here (files are read when the listeners start, so a
//! missing certificate is a start-up error naming its key).

use std::collections::BTreeMap;
use std::path::PathBuf;

use indexmap::IndexMap;

use super::ConfigError;
use crate::security::acl::{self, Authorizer};
use crate::security::principal::PrincipalMapper;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SecurityProtocol {
    Plaintext,
    Ssl,
    SaslPlaintext,
    SaslSsl,
}

impl SecurityProtocol {
    pub fn parse(name: &str) -> Option<SecurityProtocol> {
        match name.to_ascii_uppercase().as_str() {
            "PLAINTEXT" => Some(SecurityProtocol::Plaintext),
            "SSL" => Some(SecurityProtocol::Ssl),
            "SASL_PLAINTEXT" => Some(SecurityProtocol::SaslPlaintext),
            "SASL_SSL" => Some(SecurityProtocol::SaslSsl),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            SecurityProtocol::Plaintext => "PLAINTEXT",
            SecurityProtocol::Ssl => "SSL",
            SecurityProtocol::SaslPlaintext => "SASL_PLAINTEXT",
            SecurityProtocol::SaslSsl => "SASL_SSL",
        }
    }

    pub fn uses_tls(self) -> bool {
        matches!(self, SecurityProtocol::Ssl | SecurityProtocol::SaslSsl)
    }

    pub fn uses_sasl(self) -> bool {
        matches!(
            self,
            SecurityProtocol::SaslPlaintext | SecurityProtocol::SaslSsl
        )
    }
}

/// `ssl.client.auth`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClientAuth {
    None,
    Requested,
    Required,
}

/// PEM material given as a file (`*.location`) or inline (`ssl.keystore.key`, ...).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Pem {
    File(PathBuf),
    Inline(String),
}

/// A TLS listener's settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsSettings {
    /// The private key (`ssl.keystore.key`, or the key in `ssl.keystore.location`).
    pub key: Pem,
    /// What opens the key when it is encrypted (`ssl.key.password`).
    pub key_password: Option<KeyPassword>,
    /// The certificate chain (`ssl.keystore.certificate.chain`, or `ssl.keystore.location`).
    pub certificate_chain: Pem,
    /// Certificates that client certificates must chain to (`ssl.truststore.*`).
    pub truststore: Option<Pem>,
    pub client_auth: ClientAuth,
    /// `ssl.enabled.protocols`: TLSv1.2 and/or TLSv1.3.
    pub tls12: bool,
    pub tls13: bool,
    /// How a client certificate's subject becomes its principal (`ssl.principal.mapping.rules`).
    pub principal_mapper: PrincipalMapper,
}

/// `ssl.key.password`: the passphrase of an encrypted PKCS#8 key. Never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct KeyPassword(pub String);

impl std::fmt::Debug for KeyPassword {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("[hidden]")
    }
}

/// `ssl.key.password`, when set.
pub fn key_password(value: KeyValue) -> Option<KeyPassword> {
    Some(value("ssl.key.password"))
        .filter(|password| !password.is_empty())
        .map(KeyPassword)
}

/// SASL mechanisms this broker serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Mechanism {
    Plain,
    /// SCRAM-SHA-256 or SCRAM-SHA-512, with credentials from the metadata log.
    Scram(crate::security::scram::ScramMechanism),
    /// OAUTHBEARER, with the listener's token validator.
    OAuthBearer,
}

impl Mechanism {
    pub fn name(self) -> &'static str {
        match self {
            Mechanism::Plain => "PLAIN",
            Mechanism::Scram(scram) => scram.name(),
            Mechanism::OAuthBearer => crate::security::oauthbearer::MECHANISM,
        }
    }
}

/// A SASL listener's settings.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SaslSettings {
    /// `sasl.enabled.mechanisms`, in the order given.
    pub mechanisms: Vec<Mechanism>,
    /// PLAIN's users and passwords, from the listener's PLAIN JAAS config.
    pub plain_users: BTreeMap<String, String>,
    /// How OAUTHBEARER tokens are checked, when the listener enables it.
    pub oauthbearer: Option<crate::security::oauthbearer::Validator>,
    /// `connections.max.reauth.ms` of each enabled mechanism (KIP-368; 0: sessions do not
    /// expire but with an OAUTHBEARER token).
    pub reauth_ms: BTreeMap<Mechanism, u64>,
}

impl SaslSettings {
    /// The longest a session authenticated with `mechanism` lasts before it must
    /// re-authenticate; `None` when unbounded.
    pub fn reauth_ms(&self, mechanism: Mechanism) -> Option<u64> {
        self.reauth_ms.get(&mechanism).copied().filter(|ms| *ms > 0)
    }
}

/// What one listener asks of its connections.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListenerSecurity {
    pub name: String,
    pub protocol: SecurityProtocol,
    pub tls: Option<TlsSettings>,
    pub sasl: Option<SaslSettings>,
}

/// Keys (without a listener prefix) this module reads, with Kafka's defaults.
pub const SECURITY_KEYS: &[(&str, &str)] = &[
    ("ssl.keystore.type", "JKS"),
    ("ssl.keystore.location", ""),
    ("ssl.keystore.password", ""),
    ("ssl.key.password", ""),
    ("ssl.keystore.key", ""),
    ("ssl.keystore.certificate.chain", ""),
    ("ssl.truststore.type", "JKS"),
    ("ssl.truststore.location", ""),
    ("ssl.truststore.password", ""),
    ("ssl.truststore.certificates", ""),
    ("ssl.client.auth", "none"),
    ("ssl.enabled.protocols", "TLSv1.2,TLSv1.3"),
    ("ssl.protocol", "TLSv1.3"),
    ("ssl.endpoint.identification.algorithm", "https"),
    ("ssl.principal.mapping.rules", "DEFAULT"),
    ("sasl.enabled.mechanisms", "GSSAPI"),
    ("sasl.mechanism.inter.broker.protocol", "GSSAPI"),
    ("sasl.mechanism.controller.protocol", "GSSAPI"),
    ("sasl.server.callback.handler.class", ""),
    ("connections.max.reauth.ms", "0"),
    ("sasl.oauthbearer.jwks.endpoint.url", ""),
    ("sasl.oauthbearer.expected.audience", ""),
    ("sasl.oauthbearer.expected.issuer", ""),
    ("sasl.oauthbearer.sub.claim.name", "sub"),
    ("sasl.oauthbearer.scope.claim.name", "scope"),
    ("sasl.oauthbearer.clock.skew.seconds", "30"),
    // Read by the links' OAUTHBEARER login (`config::links`).
    ("sasl.login.callback.handler.class", ""),
    ("sasl.oauthbearer.token.endpoint.url", ""),
    ("authorizer.class.name", ""),
    ("super.users", ""),
    ("allow.everyone.if.no.acl.found", "false"),
];

/// The authorizer `authorizer.class.name` names (Kafka's standard authorizer, the only one
/// served), with `super.users` (principals separated by `;`) and
/// `allow.everyone.if.no.acl.found`; `None` when the key is empty: every request is allowed.
pub fn authorizer(given: &IndexMap<String, String>) -> Result<Option<Authorizer>, ConfigError> {
    let keys = ListenerKeys {
        given,
        prefix: String::new(),
    };
    match keys.value("authorizer.class.name").as_str() {
        "" => return Ok(None),
        acl::STANDARD_AUTHORIZER => {}
        other => {
            return Err(keys.invalid(
                "authorizer.class.name",
                format!(
                    "Class {other} cannot be found (the authorizer served is {})",
                    acl::STANDARD_AUTHORIZER
                ),
            ))
        }
    }
    let super_users = keys
        .value("super.users")
        .split(';')
        .map(str::trim)
        .filter(|principal| !principal.is_empty())
        .map(|principal| match principal.split_once(':') {
            Some((kind, name)) if !kind.is_empty() && !name.is_empty() => Ok(principal.to_string()),
            _ => Err(keys.invalid(
                "super.users",
                format!("{principal} is not a principal of the form Type:name"),
            )),
        })
        .collect::<Result<_, _>>()?;
    let allow_if_no_acl = match keys
        .value("allow.everyone.if.no.acl.found")
        .to_ascii_lowercase()
        .as_str()
    {
        "true" => true,
        "false" => false,
        _ => {
            return Err(keys.invalid(
                "allow.everyone.if.no.acl.found",
                "Expected value to be either true or false",
            ))
        }
    };
    Ok(Some(Authorizer {
        super_users,
        allow_if_no_acl,
    }))
}

/// Whether `key` is one this module reads: a security key, with or without a listener prefix
/// (and a mechanism's), or a listener's JAAS config.
pub fn is_security_key(key: &str) -> bool {
    let unprefixed = match key.strip_prefix("listener.name.") {
        Some(rest) => match rest.split_once('.') {
            Some((_, key)) => key,
            None => return false,
        },
        None => key,
    };
    let known = |key: &str| SECURITY_KEYS.iter().any(|(known, _)| *known == key);
    known(unprefixed)
        || unprefixed
            .split_once('.')
            .is_some_and(|(_, rest)| rest == "sasl.jaas.config" || known(rest))
}

/// Looks a key up for one listener: the `listener.name.<listener>.` form first, then the bare
/// key, then Kafka's default.
pub(super) struct ListenerKeys<'a> {
    pub(super) given: &'a IndexMap<String, String>,
    /// `listener.name.<listener>.`
    pub(super) prefix: String,
}

impl ListenerKeys<'_> {
    /// A mechanism-scoped key: `listener.name.<listener>.<mechanism>.<key>` first, then as
    /// `value` looks it up. `mechanism` is in lower case.
    pub(super) fn mechanism_value(&self, mechanism: &str, key: &str) -> String {
        let scoped = format!("{}{mechanism}.{key}", self.prefix);
        match self.given.get(&scoped) {
            Some(value) => value.trim().to_string(),
            None => self.value(key),
        }
    }

    /// A mechanism-scoped key's error, naming the key as it was set.
    pub(super) fn mechanism_invalid(
        &self,
        mechanism: &str,
        key: &str,
        reason: impl Into<String>,
    ) -> ConfigError {
        let scoped = format!("{}{mechanism}.{key}", self.prefix);
        match self.given.contains_key(&scoped) {
            true => ConfigError::Invalid {
                key: scoped,
                value: self.mechanism_value(mechanism, key),
                reason: reason.into(),
            },
            false => self.invalid(key, reason),
        }
    }

    pub(super) fn value(&self, key: &str) -> String {
        let prefixed = format!("{}{key}", self.prefix);
        if let Some(value) = self.given.get(&prefixed) {
            return value.trim().to_string();
        }
        if let Some(value) = self.given.get(key) {
            return value.trim().to_string();
        }
        SECURITY_KEYS
            .iter()
            .find(|(known, _)| *known == key)
            .map(|(_, value)| value.to_string())
            .unwrap_or_default()
    }

    /// The key as the user would set it for this listener (for error messages).
    fn name(&self, key: &str) -> String {
        let prefixed = format!("{}{key}", self.prefix);
        match self.given.contains_key(&prefixed) {
            true => prefixed,
            false => key.to_string(),
        }
    }

    pub(super) fn invalid(&self, key: &str, reason: impl Into<String>) -> ConfigError {
        ConfigError::Invalid {
            key: self.name(key),
            value: self.value(key),
            reason: reason.into(),
        }
    }
}

/// `listener.security.protocol.map` (`map_value`): the security protocol of each listener name
/// it lists, names in upper case.
pub fn protocol_map(map_value: &str) -> Result<BTreeMap<String, SecurityProtocol>, ConfigError> {
    let map_error = |reason: String| ConfigError::Invalid {
        key: "listener.security.protocol.map".into(),
        value: map_value.to_string(),
        reason,
    };
    let mut map = BTreeMap::new();
    for pair in map_value
        .split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
    {
        let (name, protocol) = pair
            .split_once(':')
            .ok_or_else(|| map_error(format!("'{pair}' is not of the form NAME:PROTOCOL")))?;
        let protocol = SecurityProtocol::parse(protocol.trim()).ok_or_else(|| {
            map_error(format!(
                "'{pair}': the security protocol must be PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL"
            ))
        })?;
        map.insert(name.trim().to_ascii_uppercase(), protocol);
    }
    Ok(map)
}

/// Every listener's security, from `listener.security.protocol.map` (`map_value`) and the
/// security keys. A controller listener absent from the map is PLAINTEXT, as in Kafka.
pub fn parse(
    given: &IndexMap<String, String>,
    map_value: &str,
    listeners: &[String],
    controller_listeners: &[String],
) -> Result<Vec<ListenerSecurity>, ConfigError> {
    let map = protocol_map(map_value)?;
    let map_error = |reason: String| ConfigError::Invalid {
        key: "listener.security.protocol.map".into(),
        value: map_value.to_string(),
        reason,
    };
    let mut security = Vec::new();
    for name in listeners {
        let protocol = match map.get(name) {
            Some(protocol) => *protocol,
            None if controller_listeners.contains(name) => SecurityProtocol::Plaintext,
            None => {
                return Err(map_error(format!(
                    "no security protocol for listener {name}"
                )))
            }
        };
        let keys = ListenerKeys {
            given,
            prefix: format!("listener.name.{}.", name.to_ascii_lowercase()),
        };
        security.push(ListenerSecurity {
            name: name.clone(),
            protocol,
            tls: match protocol.uses_tls() {
                true => Some(tls_settings(&keys)?),
                false => None,
            },
            sasl: match protocol.uses_sasl() {
                true => Some(sasl_settings(&keys, name)?),
                false => None,
            },
        });
    }
    Ok(security)
}

/// The TLS settings of `listener` from the keys `given` (the static ones with the broker's
/// dynamic listener keys over them: `net::tls_reload`).
pub fn listener_tls_settings(
    given: &IndexMap<String, String>,
    listener: &str,
) -> Result<TlsSettings, ConfigError> {
    tls_settings(&ListenerKeys {
        given,
        prefix: format!("listener.name.{}.", listener.to_ascii_lowercase()),
    })
}

fn tls_settings(keys: &ListenerKeys) -> Result<TlsSettings, ConfigError> {
    let value = |key: &str| keys.value(key);
    let invalid = |problem: KeyProblem| keys.invalid(problem.key, problem.reason);
    // A listener always needs its key, so its store type is checked even when no key is given.
    pem_store_type(&value, "ssl.keystore.type").map_err(invalid)?;
    let Some((key, certificate_chain)) = keystore(&value).map_err(invalid)? else {
        return Err(keys.invalid(
            "ssl.keystore.location",
            "a TLS listener needs its key and certificate: set ssl.keystore.location (a PEM file with both), or ssl.keystore.key and ssl.keystore.certificate.chain",
        ));
    };
    let truststore = truststore(&value).map_err(invalid)?;
    let client_auth = match keys.value("ssl.client.auth").to_ascii_lowercase().as_str() {
        "none" => ClientAuth::None,
        "requested" => ClientAuth::Requested,
        "required" => ClientAuth::Required,
        _ => return Err(keys.invalid("ssl.client.auth", "expected none, requested or required")),
    };
    if client_auth != ClientAuth::None && truststore.is_none() {
        return Err(keys.invalid(
            "ssl.client.auth",
            "client certificates need a truststore to check them against: set ssl.truststore.location or ssl.truststore.certificates",
        ));
    }
    let (tls12, tls13) = enabled_protocols(&value).map_err(invalid)?;
    let rules = keys.value("ssl.principal.mapping.rules");
    let principal_mapper = PrincipalMapper::parse(&rules)
        .map_err(|error| keys.invalid("ssl.principal.mapping.rules", error.to_string()))?;
    Ok(TlsSettings {
        key,
        key_password: key_password(&value),
        certificate_chain,
        truststore,
        client_auth,
        tls12,
        tls13,
        principal_mapper,
    })
}

/// A TLS key whose value cannot be used, and why; the broker and the tools' client each say it
/// in their own words (a listener prefix, a properties file).
#[derive(Debug, PartialEq, Eq)]
pub struct KeyProblem {
    pub key: &'static str,
    pub reason: String,
}

impl KeyProblem {
    fn new(key: &'static str, reason: impl Into<String>) -> KeyProblem {
        KeyProblem {
            key,
            reason: reason.into(),
        }
    }
}

/// A TLS key's value as set, or Kafka's default when it is not.
pub type KeyValue<'a> = &'a dyn Fn(&str) -> String;

/// Checks that the store type `key` (`ssl.keystore.type`, `ssl.truststore.type`) is PEM, the
/// only type read here.
pub fn pem_store_type(value: KeyValue, key: &'static str) -> Result<(), KeyProblem> {
    let given = value(key);
    match given.to_ascii_uppercase().as_str() {
        "PEM" => Ok(()),
        _ => Err(KeyProblem::new(
            key,
            format!("{given} stores are not supported: set it to PEM (the key and certificates in PEM files or values)"),
        )),
    }
}

/// The private key and certificate chain of `ssl.keystore.location` (one PEM file holding
/// both) or of `ssl.keystore.key` with `ssl.keystore.certificate.chain`; `None` when neither is
/// set. An encrypted key is opened with `ssl.key.password` (`key_password`).
pub fn keystore(value: KeyValue) -> Result<Option<(Pem, Pem)>, KeyProblem> {
    let location = value("ssl.keystore.location");
    let (inline_key, inline_chain) = (
        value("ssl.keystore.key"),
        value("ssl.keystore.certificate.chain"),
    );
    if location.is_empty() && inline_key.is_empty() {
        return Ok(None);
    }
    pem_store_type(value, "ssl.keystore.type")?;
    match (location.is_empty(), inline_key.is_empty()) {
        (false, true) => Ok(Some((
            Pem::File(PathBuf::from(&location)),
            Pem::File(PathBuf::from(&location)),
        ))),
        (true, false) if !inline_chain.is_empty() => {
            Ok(Some((Pem::Inline(inline_key), Pem::Inline(inline_chain))))
        }
        (true, false) => Err(KeyProblem::new(
            "ssl.keystore.certificate.chain",
            "ssl.keystore.key is set, so the certificate chain must be too",
        )),
        _ => Err(KeyProblem::new(
            "ssl.keystore.location",
            "set either ssl.keystore.location or ssl.keystore.key with ssl.keystore.certificate.chain, not both",
        )),
    }
}

/// The certificates of `ssl.truststore.location` or `ssl.truststore.certificates`; `None` when
/// neither is set.
pub fn truststore(value: KeyValue) -> Result<Option<Pem>, KeyProblem> {
    let (location, certificates) = (
        value("ssl.truststore.location"),
        value("ssl.truststore.certificates"),
    );
    let pem = match (location.is_empty(), certificates.is_empty()) {
        (true, true) => return Ok(None),
        (false, true) => Pem::File(PathBuf::from(location)),
        (true, false) => Pem::Inline(certificates),
        (false, false) => {
            return Err(KeyProblem::new(
                "ssl.truststore.location",
                "set either ssl.truststore.location or ssl.truststore.certificates, not both",
            ))
        }
    };
    pem_store_type(value, "ssl.truststore.type")?;
    Ok(Some(pem))
}

/// `ssl.enabled.protocols`: whether TLSv1.2 and TLSv1.3 are enabled (at least one must be).
pub fn enabled_protocols(value: KeyValue) -> Result<(bool, bool), KeyProblem> {
    let (mut tls12, mut tls13) = (false, false);
    for protocol in value("ssl.enabled.protocols")
        .split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
    {
        match protocol {
            "TLSv1.2" => tls12 = true,
            "TLSv1.3" => tls13 = true,
            // Kafka drops what the JVM does not offer; these are not offered here.
            "TLSv1" | "TLSv1.1" | "SSLv3" => {}
            _ => {
                return Err(KeyProblem::new(
                    "ssl.enabled.protocols",
                    format!("unknown protocol {protocol}: use TLSv1.2 and/or TLSv1.3"),
                ))
            }
        }
    }
    if !(tls12 || tls13) {
        return Err(KeyProblem::new(
            "ssl.enabled.protocols",
            "enables neither TLSv1.2 nor TLSv1.3, the protocols served here",
        ));
    }
    Ok((tls12, tls13))
}

fn sasl_settings(keys: &ListenerKeys, listener: &str) -> Result<SaslSettings, ConfigError> {
    let mut settings = SaslSettings::default();
    for mechanism in keys
        .value("sasl.enabled.mechanisms")
        .split(',')
        .map(str::trim)
        .filter(|m| !m.is_empty())
    {
        let scram = crate::security::scram::ScramMechanism::parse(mechanism);
        let mechanism = match (mechanism.to_ascii_uppercase().as_str(), scram) {
            ("PLAIN", _) => Mechanism::Plain,
            ("OAUTHBEARER", _) => Mechanism::OAuthBearer,
            (_, Some(scram)) => Mechanism::Scram(scram),
            (other, None) => {
                return Err(keys.invalid(
                    "sasl.enabled.mechanisms",
                    format!("SASL mechanism {other} is not supported: use PLAIN, SCRAM-SHA-256, SCRAM-SHA-512 or OAUTHBEARER"),
                ))
            }
        };
        if !settings.mechanisms.contains(&mechanism) {
            settings.mechanisms.push(mechanism);
        }
    }
    if settings.mechanisms.is_empty() {
        return Err(keys.invalid(
            "sasl.enabled.mechanisms",
            format!("listener {listener} uses SASL but enables no mechanism"),
        ));
    }
    for mechanism in settings.mechanisms.clone() {
        let reauth_ms = super::oauthbearer::reauth_ms(keys, mechanism)?;
        settings.reauth_ms.insert(mechanism, reauth_ms);
    }
    if settings.mechanisms.contains(&Mechanism::OAuthBearer) {
        settings.oauthbearer = Some(super::oauthbearer::validator(keys, listener)?);
    }
    if settings.mechanisms.contains(&Mechanism::Plain) {
        let options = listener_jaas(keys, "plain", |key| {
            ConfigError::Invalid {
            key,
            value: "[hidden]".into(),
            reason: format!(
                "listener {listener} enables PLAIN, so its users must be listed here, as in org.apache.kafka.common.security.plain.PlainLoginModule required user_alice=\"alice-secret\";"
            ),
        }
        })?;
        settings.plain_users = options
            .into_iter()
            .filter_map(|(option, value)| Some((option.strip_prefix("user_")?.to_string(), value)))
            .collect();
    }
    Ok(settings)
}

/// The options of a mechanism's JAAS configuration for one listener
/// (`listener.name.<listener>.<mechanism>.sasl.jaas.config`, `mechanism` in lower case), which
/// must be set: `missing` makes the error for its key when it is not.
pub(super) fn listener_jaas(
    keys: &ListenerKeys,
    mechanism: &str,
    missing: impl FnOnce(String) -> ConfigError,
) -> Result<Vec<(String, String)>, ConfigError> {
    let key = format!("{}{mechanism}.sasl.jaas.config", keys.prefix);
    match keys.given.get(&key).map(|v| v.trim()).unwrap_or_default() {
        "" => Err(missing(key)),
        jaas => parse_jaas(jaas).map_err(|reason| ConfigError::Invalid {
            key,
            value: "[hidden]".into(),
            reason,
        }),
    }
}

/// The options of a one-module JAAS configuration: `<LoginModule class> required key="value"
/// ...;`. Values may be quoted (with `\"` and `\\` escapes) or bare.
pub fn parse_jaas(text: &str) -> Result<Vec<(String, String)>, String> {
    parse_jaas_module(text).map(|(_, options)| options)
}

/// The login module class of a one-module JAAS configuration and its options (`parse_jaas`).
pub fn parse_jaas_module(text: &str) -> Result<(String, Vec<(String, String)>), String> {
    let text = text.trim();
    let text = text
        .strip_suffix(';')
        .ok_or("a JAAS configuration ends with ';'")?;
    let mut rest = text.trim_start();
    let module_end = rest
        .find(char::is_whitespace)
        .ok_or("a JAAS configuration names its login module, then 'required'")?;
    let module = rest[..module_end].to_string();
    rest = rest[module_end..].trim_start();
    let flag_end = rest.find(char::is_whitespace).unwrap_or(rest.len());
    match &rest[..flag_end] {
        "required" | "requisite" | "sufficient" | "optional" => {}
        flag => return Err(format!("'{flag}' is not a JAAS control flag (required)")),
    }
    rest = rest[flag_end..].trim_start();
    let mut options = Vec::new();
    while !rest.is_empty() {
        let (key, after) = rest
            .split_once('=')
            .ok_or_else(|| format!("'{rest}' is not of the form key=\"value\""))?;
        let key = key.trim().to_string();
        let after = after.trim_start();
        let (value, remainder) = match after.strip_prefix('"') {
            Some(quoted) => {
                let mut value = String::new();
                let mut chars = quoted.char_indices();
                let mut end = None;
                while let Some((index, c)) = chars.next() {
                    match c {
                        '\\' => value.extend(chars.next().map(|(_, escaped)| escaped)),
                        '"' => {
                            end = Some(index + 1);
                            break;
                        }
                        c => value.push(c),
                    }
                }
                let end = end.ok_or_else(|| format!("the value of {key} has no closing quote"))?;
                (value, &quoted[end..])
            }
            None => {
                let end = after.find(char::is_whitespace).unwrap_or(after.len());
                (after[..end].to_string(), &after[end..])
            }
        };
        options.push((key, value));
        rest = remainder.trim_start();
    }
    Ok((module, options))
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    pub(in crate::config) fn given(pairs: &[(&str, &str)]) -> IndexMap<String, String> {
        pairs
            .iter()
            .map(|(key, value)| (key.to_string(), value.to_string()))
            .collect()
    }

    /// Proves a JAAS configuration's options are read with quotes and escapes, and malformed
    /// ones are refused with a reason.
    #[test]
    fn parses_jaas_options() {
        let options = parse_jaas(
            r#"org.apache.kafka.common.security.plain.PlainLoginModule required
               username="admin" password="a\"b" user_admin="admin-secret" user_bob=bare;"#,
        )
        .unwrap();
        assert_eq!(
            options,
            vec![
                ("username".to_string(), "admin".to_string()),
                ("password".to_string(), "a\"b".to_string()),
                ("user_admin".to_string(), "admin-secret".to_string()),
                ("user_bob".to_string(), "bare".to_string()),
            ]
        );
        assert!(parse_jaas("PlainLoginModule required user_a=\"x\"").is_err());
        assert!(parse_jaas("PlainLoginModule maybe user_a=\"x\";").is_err());
        assert!(parse_jaas("PlainLoginModule required user_a=\"x;").is_err());
    }

    /// Proves each listener gets its protocol, listener-prefixed keys win over bare ones, and
    /// what a TLS or SASL listener lacks is a start-up error naming the key.
    #[test]
    fn reads_each_listeners_security() {
        let listeners = ["PLAINTEXT".to_string(), "SECURE".to_string()];
        let jaas = r#"org.apache.kafka.common.security.plain.PlainLoginModule required user_alice="alice-secret";"#;
        let keys = given(&[
            ("ssl.keystore.type", "PEM"),
            ("ssl.keystore.location", "/bare.pem"),
            ("listener.name.secure.ssl.keystore.location", "/secure.pem"),
            ("listener.name.secure.sasl.enabled.mechanisms", "PLAIN"),
            ("listener.name.secure.plain.sasl.jaas.config", jaas),
        ]);
        let map = "PLAINTEXT:PLAINTEXT,SECURE:SASL_SSL";
        let security = parse(&keys, map, &listeners, &[]).unwrap();
        assert_eq!(security[0].protocol, SecurityProtocol::Plaintext);
        assert!(security[0].tls.is_none() && security[0].sasl.is_none());
        let tls = security[1].tls.as_ref().unwrap();
        assert_eq!(tls.key, Pem::File("/secure.pem".into()));
        assert!(tls.tls12 && tls.tls13);
        assert_eq!(tls.client_auth, ClientAuth::None);
        let sasl = security[1].sasl.as_ref().unwrap();
        assert_eq!(sasl.mechanisms, vec![Mechanism::Plain]);
        assert_eq!(sasl.plain_users["alice"], "alice-secret");

        let error = |pairs: &[(&str, &str)], map: &str| {
            parse(&given(pairs), map, &listeners, &[])
                .unwrap_err()
                .to_string()
        };
        let message = error(&[], "PLAINTEXT:PLAINTEXT,SECURE:SSL");
        assert!(message.contains("ssl.keystore.type"), "{message}");
        let message = error(
            &[("ssl.keystore.type", "PEM")],
            "PLAINTEXT:PLAINTEXT,SECURE:SSL",
        );
        assert!(message.contains("ssl.keystore.location"), "{message}");
        let message = error(
            &[("listener.name.secure.sasl.enabled.mechanisms", "GSSAPI")],
            "PLAINTEXT:PLAINTEXT,SECURE:SASL_PLAINTEXT",
        );
        assert!(
            message.contains("listener.name.secure.sasl.enabled.mechanisms")
                && message.contains("GSSAPI"),
            "{message}"
        );
        let message = error(&[], "PLAINTEXT:PLAINTEXT,SECURE:KERBEROS");
        assert!(message.contains("SASL_SSL"), "{message}");
        let message = error(&[], "PLAINTEXT:PLAINTEXT");
        assert!(message.contains("no security protocol for listener SECURE"));
        assert!(is_security_key("listener.name.secure.ssl.client.auth"));
        assert!(is_security_key(
            "listener.name.secure.plain.sasl.jaas.config"
        ));
        assert!(!is_security_key("listener.name.secure.num.partitions"));
    }
}
