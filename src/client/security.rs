//! The security settings of Kafka's clients, from the tools' properties (`--command-config`,
//! `--producer.config`, ...): `security.protocol`, the `ssl.*` keys (PEM only, as the broker
//! reads them, through the same `config::security` helpers) and `sasl.mechanism` with
//! `sasl.jaas.config` (PLAIN, SCRAM and OAUTHBEARER). OAUTHBEARER logs in as Kafka's client
//! does: by default with Kafka's unsecured login (`unsecuredLogin*` JAAS options), or with
//! `sasl.login.callback.handler.class` naming `OAuthBearerLoginCallbackHandler`, with the token
//! in the file of a `file:` `sasl.oauthbearer.token.endpoint.url` (no identity provider is
//! reached over HTTP(S)). `SecuritySettings::parse` is pure; `ClientSecurity::load` reads the PEM
//! material once and builds the rustls configuration every connection of a client shares, and
//! checks a token file, so a missing file fails the tool before it connects.
//!
//! Keys a protocol does not use are ignored, as Kafka ignores them (`sasl.*` over SSL, `ssl.*`
//! over SASL_PLAINTEXT).

use std::fmt;
use std::path::Path;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, ClientConfig, DigitallySignedStruct, SignatureScheme};

use super::properties::{Properties, PropertiesError};
use crate::config::oauthbearer::file_url_path;
use crate::config::security::{
    enabled_protocols, key_password, keystore, parse_jaas_module, truststore, KeyPassword,
    KeyProblem, Mechanism, Pem, SecurityProtocol,
};
use crate::security::login::LoginError;
use crate::security::oauthbearer_login::{TokenFile, TokenSource, UnsecuredLogin};
use crate::security::pem;
use crate::security::scram::ScramMechanism;

/// The client keys read here, which tools that warn about unused keys take as used.
pub const SECURITY_KEYS: [&str; 20] = [
    "security.protocol",
    "ssl.truststore.type",
    "ssl.truststore.location",
    "ssl.truststore.certificates",
    "ssl.truststore.password",
    "ssl.keystore.type",
    "ssl.keystore.location",
    "ssl.keystore.key",
    "ssl.keystore.certificate.chain",
    "ssl.keystore.password",
    "ssl.key.password",
    "ssl.endpoint.identification.algorithm",
    "ssl.enabled.protocols",
    "ssl.protocol",
    "sasl.mechanism",
    "sasl.jaas.config",
    "sasl.login.callback.handler.class",
    "sasl.oauthbearer.token.endpoint.url",
    "sasl.oauthbearer.sub.claim.name",
    "sasl.oauthbearer.scope.claim.name",
];

/// Kafka's client defaults for the keys above that have one.
const DEFAULTS: [(&str, &str); 7] = [
    ("ssl.keystore.type", "JKS"),
    ("ssl.truststore.type", "JKS"),
    ("ssl.endpoint.identification.algorithm", "https"),
    ("ssl.enabled.protocols", "TLSv1.2,TLSv1.3"),
    ("sasl.mechanism", "PLAIN"),
    ("sasl.oauthbearer.sub.claim.name", "sub"),
    ("sasl.oauthbearer.scope.claim.name", "scope"),
];

/// Where the system's CA certificates usually are, for a client given no truststore (Kafka
/// then trusts the JVM's CAs): Debian and Ubuntu, Fedora and RHEL, Alpine and macOS, SUSE.
const SYSTEM_CA_FILES: [&str; 4] = [
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/cert.pem",
    "/etc/ssl/ca-bundle.pem",
];

/// The JAAS login modules whose `username` and `password` options this client uses.
const PLAIN_LOGIN_MODULE: &str = "org.apache.kafka.common.security.plain.PlainLoginModule";
const SCRAM_LOGIN_MODULE: &str = "org.apache.kafka.common.security.scram.ScramLoginModule";
/// OAUTHBEARER's login module, whose options the login callback handler reads.
const OAUTHBEARER_LOGIN_MODULE: &str =
    "org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule";
/// Kafka's unsecured login, OAUTHBEARER's default (and the name of its older package).
const UNSECURED_LOGIN_HANDLERS: [&str; 2] = [
    "org.apache.kafka.common.security.oauthbearer.internals.unsecured.OAuthBearerUnsecuredLoginCallbackHandler",
    "org.apache.kafka.common.security.oauthbearer.internal.unsecured.OAuthBearerUnsecuredLoginCallbackHandler",
];
/// Kafka's login with a token from its token endpoint (and its name before Kafka 3.8).
const TOKEN_LOGIN_HANDLERS: [&str; 2] = [
    "org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginCallbackHandler",
    "org.apache.kafka.common.security.oauthbearer.secured.OAuthBearerLoginCallbackHandler",
];

#[derive(Debug, thiserror::Error)]
pub enum SecurityError {
    #[error("Invalid value {value} for configuration {key}: {reason}")]
    Invalid {
        key: String,
        value: String,
        reason: String,
    },
    #[error("cannot read the {what} of {key} from {source_name}: {reason}")]
    Material {
        key: &'static str,
        what: &'static str,
        source_name: String,
        reason: String,
    },
    #[error("TLS settings: {0}")]
    Tls(String),
    #[error("sasl.oauthbearer.token.endpoint.url: {0}")]
    Token(#[from] LoginError),
}

/// SASL credentials from `sasl.mechanism` and `sasl.jaas.config`.
#[derive(Clone, PartialEq, Eq)]
pub struct SaslCredentials {
    pub mechanism: Mechanism,
    /// PLAIN's and SCRAM's user; with OAUTHBEARER, who logs in, for messages (the unsecured
    /// token's principal, or the token file).
    pub user: String,
    /// PLAIN's and SCRAM's password; empty with OAUTHBEARER.
    pub password: String,
    /// Where OAUTHBEARER's token comes from.
    pub oauthbearer: Option<TokenSource>,
}

impl fmt::Debug for SaslCredentials {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("SaslCredentials")
            .field("mechanism", &self.mechanism)
            .field("user", &self.user)
            .field("password", &"[hidden]")
            .field("oauthbearer", &self.oauthbearer)
            .finish()
    }
}

/// A client's TLS settings, before any file is read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsClientSettings {
    /// CA certificates the broker's chain must end in; `None`: the system's.
    pub truststore: Option<Pem>,
    /// The client certificate's key and chain, for listeners that ask for one.
    pub keystore: Option<(Pem, Pem)>,
    /// What opens the key when it is encrypted (`ssl.key.password`).
    pub key_password: Option<KeyPassword>,
    /// `ssl.endpoint.identification.algorithm=https`: the broker's certificate must name the
    /// host connected to. Empty: any name, but the chain is still verified.
    pub verify_host_name: bool,
    pub tls12: bool,
    pub tls13: bool,
}

/// What `security.protocol` and the keys it uses ask of every connection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SecuritySettings {
    pub protocol: SecurityProtocol,
    pub tls: Option<TlsClientSettings>,
    pub sasl: Option<SaslCredentials>,
}

impl SecuritySettings {
    /// Reads the security keys of `properties`; a value Kafka would refuse, or one this client
    /// cannot honour, is an error naming the key.
    pub fn parse(properties: &Properties) -> Result<SecuritySettings, SecurityError> {
        let value = |key: &str| {
            properties
                .get(key)
                .map(|value| value.trim().to_string())
                .or_else(|| {
                    DEFAULTS
                        .iter()
                        .find(|(known, _)| *known == key)
                        .map(|(_, default)| default.to_string())
                })
                .unwrap_or_default()
        };
        let protocol_name = properties.get("security.protocol").unwrap_or("PLAINTEXT");
        let protocol = SecurityProtocol::parse(protocol_name.trim()).ok_or_else(|| {
            invalid(
                "security.protocol",
                protocol_name,
                "String must be one of: PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL",
            )
        })?;
        let tls = match protocol.uses_tls() {
            true => Some(tls_settings(&value)?),
            false => None,
        };
        let sasl = match protocol.uses_sasl() {
            true => Some(sasl_credentials(&value, protocol)?),
            false => None,
        };
        Ok(SecuritySettings {
            protocol,
            tls,
            sasl,
        })
    }
}

fn tls_settings(value: &dyn Fn(&str) -> String) -> Result<TlsClientSettings, SecurityError> {
    let problem = |problem: KeyProblem| invalid(problem.key, &value(problem.key), problem.reason);
    let algorithm = value("ssl.endpoint.identification.algorithm");
    let verify_host_name = match algorithm.to_ascii_lowercase().as_str() {
        "https" => true,
        "" => false,
        _ => {
            return Err(invalid(
                "ssl.endpoint.identification.algorithm",
                &algorithm,
                "expected https (check the broker's host name) or empty (do not)",
            ))
        }
    };
    let (tls12, tls13) = enabled_protocols(value).map_err(problem)?;
    Ok(TlsClientSettings {
        truststore: truststore(value).map_err(problem)?,
        keystore: keystore(value).map_err(problem)?,
        key_password: key_password(value),
        verify_host_name,
        tls12,
        tls13,
    })
}

fn sasl_credentials(
    value: &dyn Fn(&str) -> String,
    protocol: SecurityProtocol,
) -> Result<SaslCredentials, SecurityError> {
    let name = value("sasl.mechanism");
    let mechanism = match (name.as_str(), ScramMechanism::parse(&name)) {
        ("PLAIN", _) => Mechanism::Plain,
        ("OAUTHBEARER", _) => Mechanism::OAuthBearer,
        (_, Some(scram)) if scram.name() == name => Mechanism::Scram(scram),
        _ => return Err(invalid(
            "sasl.mechanism",
            &name,
            "this client supports PLAIN, SCRAM-SHA-256, SCRAM-SHA-512 and OAUTHBEARER (not GSSAPI)",
        )),
    };
    let jaas = value("sasl.jaas.config");
    let example = match mechanism {
        Mechanism::Scram(_) => {
            format!("{SCRAM_LOGIN_MODULE} required username=\"alice\" password=\"alice-secret\";")
        }
        Mechanism::Plain => {
            format!("{PLAIN_LOGIN_MODULE} required username=\"alice\" password=\"alice-secret\";")
        }
        Mechanism::OAuthBearer => {
            format!("{OAUTHBEARER_LOGIN_MODULE} required unsecuredLoginStringClaim_sub=\"alice\";")
        }
    };
    if jaas.is_empty() {
        return Err(SecurityError::Invalid {
            key: "sasl.jaas.config".to_string(),
            value: String::new(),
            reason: format!(
                "security.protocol={} with {} needs its login module, as in {example}",
                protocol.name(),
                mechanism.name()
            ),
        });
    }
    let (module, options) = parse_jaas_module(&jaas).map_err(hidden_jaas)?;
    if mechanism == Mechanism::OAuthBearer {
        if module != OAUTHBEARER_LOGIN_MODULE {
            return Err(hidden_jaas(format!(
                "login module {module} is not OAUTHBEARER's: use {OAUTHBEARER_LOGIN_MODULE}"
            )));
        }
        let source = token_source(value, &options)?;
        return Ok(SaslCredentials {
            mechanism,
            user: source.describe(),
            password: String::new(),
            oauthbearer: Some(source),
        });
    }
    if module != PLAIN_LOGIN_MODULE && module != SCRAM_LOGIN_MODULE {
        return Err(hidden_jaas(format!(
            "login module {module} is not supported: use {PLAIN_LOGIN_MODULE} or {SCRAM_LOGIN_MODULE}"
        )));
    }
    let option = |wanted: &str| {
        options
            .iter()
            .find(|(key, _)| key == wanted)
            .map(|(_, value)| value.clone())
            .ok_or_else(|| hidden_jaas(format!("{module} needs a {wanted} option")))
    };
    Ok(SaslCredentials {
        mechanism,
        user: option("username")?,
        password: option("password")?,
        oauthbearer: None,
    })
}

/// An error in `sasl.jaas.config`, whose value may hold a password and is never shown.
fn hidden_jaas(reason: String) -> SecurityError {
    SecurityError::Invalid {
        key: "sasl.jaas.config".to_string(),
        value: "[hidden]".to_string(),
        reason,
    }
}

/// OAUTHBEARER's token source, as `sasl.login.callback.handler.class` chooses it: Kafka's
/// unsecured login (the default), or a token from the file of a `file:` token endpoint.
fn token_source(
    value: &dyn Fn(&str) -> String,
    options: &[(String, String)],
) -> Result<TokenSource, SecurityError> {
    let handler_key = "sasl.login.callback.handler.class";
    let url_key = "sasl.oauthbearer.token.endpoint.url";
    let handler = value(handler_key);
    if handler.is_empty() || UNSECURED_LOGIN_HANDLERS.contains(&handler.as_str()) {
        let login = UnsecuredLogin::from_options(options).map_err(|error| {
            let hint = match value(url_key).is_empty() {
                true => String::new(),
                false => format!(
                    " ({url_key} is read only with {handler_key}={})",
                    TOKEN_LOGIN_HANDLERS[0]
                ),
            };
            hidden_jaas(format!("{error}{hint}"))
        })?;
        return Ok(TokenSource::Unsecured(login));
    }
    if !TOKEN_LOGIN_HANDLERS.contains(&handler.as_str()) {
        return Err(invalid(
            handler_key,
            &handler,
            format!(
                "the OAUTHBEARER logins of this client are {} (the default) and {} with a file: {url_key}",
                UNSECURED_LOGIN_HANDLERS[0], TOKEN_LOGIN_HANDLERS[0]
            ),
        ));
    }
    let url = value(url_key);
    let path = token_file_path(&url).map_err(|reason| invalid(url_key, &url, reason))?;
    let claim_name = |key: &str| match value(key) {
        name if name.is_empty() => Err(invalid(key, "", "expected the name of a claim")),
        name => Ok(name),
    };
    let file = TokenFile::new(
        path.into(),
        &claim_name("sasl.oauthbearer.sub.claim.name")?,
        &claim_name("sasl.oauthbearer.scope.claim.name")?,
        options,
    )
    .map_err(|error| hidden_jaas(error.to_string()))?;
    Ok(TokenSource::File(file))
}

/// The path of the token endpoint's `file:` URL: the only kind of endpoint served here.
fn token_file_path(url: &str) -> Result<&str, String> {
    let lower = url.to_ascii_lowercase();
    if url.is_empty() || lower.starts_with("https:") || lower.starts_with("http:") {
        return Err("only file: URLs are supported (file:/path/to/token, the file holding the token): this client does not fetch tokens from an identity provider over HTTP(S)".to_string());
    }
    file_url_path(url).map_err(str::to_string)
}

fn invalid(key: &str, value: &str, reason: impl Into<String>) -> SecurityError {
    SecurityError::Invalid {
        key: key.to_string(),
        value: value.to_string(),
        reason: reason.into(),
    }
}

/// Security ready for connections: the rustls configuration built once, and SASL credentials.
#[derive(Clone)]
pub struct ClientSecurity {
    pub protocol: SecurityProtocol,
    pub tls: Option<Arc<ClientConfig>>,
    pub sasl: Option<SaslCredentials>,
}

impl Default for ClientSecurity {
    fn default() -> ClientSecurity {
        ClientSecurity {
            protocol: SecurityProtocol::Plaintext,
            tls: None,
            sasl: None,
        }
    }
}

impl fmt::Debug for ClientSecurity {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("ClientSecurity")
            .field("protocol", &self.protocol)
            .field("tls", &self.tls.is_some())
            .field("sasl", &self.sasl)
            .finish()
    }
}

impl ClientSecurity {
    /// Parses and loads the security keys of `properties` (`SecuritySettings::parse`, `load`).
    pub fn from_properties(properties: &Properties) -> Result<ClientSecurity, PropertiesError> {
        let settings = SecuritySettings::parse(properties)?;
        Ok(ClientSecurity::load(settings)?)
    }

    /// Reads the PEM material of `settings` and builds the TLS configuration; reads and checks
    /// an OAUTHBEARER token file once, so that a missing or malformed one fails early.
    pub fn load(settings: SecuritySettings) -> Result<ClientSecurity, SecurityError> {
        let source = settings
            .sasl
            .as_ref()
            .and_then(|sasl| sasl.oauthbearer.as_ref());
        if let Some(TokenSource::File(file)) = source {
            crate::security::login::file_token(file)?;
        }
        let tls = match &settings.tls {
            Some(tls) => Some(client_config(tls)?),
            None => None,
        };
        Ok(ClientSecurity {
            protocol: settings.protocol,
            tls,
            sasl: settings.sasl,
        })
    }
}

fn client_config(settings: &TlsClientSettings) -> Result<Arc<ClientConfig>, SecurityError> {
    let material = |key: &'static str, what: &'static str, source: &Pem, reason: String| {
        SecurityError::Material {
            key,
            what,
            source_name: pem::source_name(source),
            reason,
        }
    };
    let truststore = match &settings.truststore {
        Some(truststore) => truststore.clone(),
        None => system_truststore()?,
    };
    let roots = pem::root_store(&truststore).map_err(|reason| {
        material(
            "ssl.truststore.location",
            "CA certificates",
            &truststore,
            reason,
        )
    })?;
    let provider = pem::provider();
    let verifier = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .build()
        .map_err(|error| SecurityError::Tls(error.to_string()))?;
    let verifier: Arc<dyn ServerCertVerifier> = match settings.verify_host_name {
        true => verifier,
        false => Arc::new(AnyHostName(verifier)),
    };
    let versions = pem::protocol_versions(settings.tls12, settings.tls13);
    let builder = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&versions)
        .map_err(|error| SecurityError::Tls(error.to_string()))?
        .dangerous()
        .with_custom_certificate_verifier(verifier);
    let config = match &settings.keystore {
        Some((key, chain)) => {
            let chain = pem::certificates(chain).map_err(|reason| {
                material("ssl.keystore.location", "certificate chain", chain, reason)
            })?;
            let key = pem::private_key(key, settings.key_password.as_ref())
                .map_err(|reason| material("ssl.keystore.location", "private key", key, reason))?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|error| SecurityError::Tls(format!("the client certificate: {error}")))?
        }
        None => builder.with_no_client_auth(),
    };
    Ok(Arc::new(config))
}

/// The system's CA bundle, for a client given no truststore.
fn system_truststore() -> Result<Pem, SecurityError> {
    SYSTEM_CA_FILES
        .iter()
        .map(Path::new)
        .find(|path| path.is_file())
        .map(|path| Pem::File(path.to_path_buf()))
        .ok_or_else(|| SecurityError::Invalid {
            key: "ssl.truststore.location".to_string(),
            value: String::new(),
            reason: format!(
                "no truststore given and no system CA bundle found ({}): set ssl.truststore.type=PEM with ssl.truststore.location or ssl.truststore.certificates",
                SYSTEM_CA_FILES.join(", ")
            ),
        })
}

/// `ssl.endpoint.identification.algorithm=` (empty): the broker's chain is verified as usual,
/// but the host name it names is not checked. webpki checks the name last, after the chain,
/// so a name mismatch is the only refusal let through.
#[derive(Debug)]
struct AnyHostName(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for AnyHostName {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let verified =
            self.0
                .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now);
        match verified {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        certificate: &CertificateDer<'_>,
        signature: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0
            .verify_tls12_signature(message, certificate, signature)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        certificate: &CertificateDer<'_>,
        signature: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0
            .verify_tls13_signature(message, certificate, signature)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn properties(pairs: &[(&str, &str)]) -> Properties {
        let mut properties = Properties::default();
        for (key, value) in pairs {
            properties.set(key, value);
        }
        properties
    }

    fn parse(pairs: &[(&str, &str)]) -> Result<SecuritySettings, SecurityError> {
        SecuritySettings::parse(&properties(pairs))
    }

    const SCRAM_JAAS: &str = r#"org.apache.kafka.common.security.scram.ScramLoginModule required username="alice" password="alice-secret";"#;

    /// Proves no keys mean PLAINTEXT, and an unknown protocol is refused with Kafka's message.
    #[test]
    fn plaintext_by_default() {
        let settings = parse(&[]).unwrap();
        assert_eq!(settings.protocol, SecurityProtocol::Plaintext);
        assert!(settings.tls.is_none() && settings.sasl.is_none());
        // Keys of protocols not in use are ignored, as Kafka ignores them.
        assert!(parse(&[("sasl.mechanism", "GSSAPI")]).is_ok());
        let error = parse(&[("security.protocol", "KERBEROS")]).unwrap_err();
        assert_eq!(
            error.to_string(),
            "Invalid value KERBEROS for configuration security.protocol: String must be one of: \
             PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL"
        );
        assert_eq!(
            parse(&[
                ("security.protocol", "sasl_ssl"),
                ("sasl.jaas.config", SCRAM_JAAS)
            ])
            .unwrap()
            .protocol,
            SecurityProtocol::SaslSsl
        );
    }

    /// Proves SASL_SSL with SCRAM reads the truststore, the mechanism and the JAAS user, and
    /// checks host names unless the algorithm is empty.
    #[test]
    fn sasl_ssl_with_scram() {
        let settings = parse(&[
            ("security.protocol", "SASL_SSL"),
            ("ssl.truststore.type", "PEM"),
            ("ssl.truststore.location", "/certs/ca.pem"),
            ("sasl.mechanism", "SCRAM-SHA-512"),
            ("sasl.jaas.config", SCRAM_JAAS),
        ])
        .unwrap();
        let tls = settings.tls.unwrap();
        assert_eq!(tls.truststore, Some(Pem::File("/certs/ca.pem".into())));
        assert_eq!(tls.keystore, None);
        assert!(tls.verify_host_name && tls.tls12 && tls.tls13);
        let sasl = settings.sasl.unwrap();
        assert_eq!(sasl.mechanism, Mechanism::Scram(ScramMechanism::Sha512));
        assert_eq!(
            (sasl.user.as_str(), sasl.password.as_str()),
            ("alice", "alice-secret")
        );
        assert!(!format!("{sasl:?}").contains("alice-secret"));
        let unchecked = parse(&[
            ("security.protocol", "SSL"),
            ("ssl.endpoint.identification.algorithm", ""),
        ])
        .unwrap();
        assert!(!unchecked.tls.unwrap().verify_host_name);
    }

    /// Proves a client certificate is read from one file or inline key and chain, and that
    /// PEM is the only store type (naming the key), and an encrypted key's password is kept.
    #[test]
    fn keystores_as_the_broker_reads_them() {
        let file = parse(&[
            ("security.protocol", "SSL"),
            ("ssl.keystore.type", "PEM"),
            ("ssl.keystore.location", "/certs/client.pem"),
        ])
        .unwrap();
        let path = Pem::File("/certs/client.pem".into());
        assert_eq!(file.tls.unwrap().keystore, Some((path.clone(), path)));
        let inline = parse(&[
            ("security.protocol", "SSL"),
            ("ssl.keystore.type", "PEM"),
            ("ssl.keystore.key", "KEY"),
            ("ssl.keystore.certificate.chain", "CHAIN"),
        ])
        .unwrap();
        assert_eq!(
            inline.tls.unwrap().keystore,
            Some((Pem::Inline("KEY".into()), Pem::Inline("CHAIN".into())))
        );
        let message = |pairs: &[(&str, &str)]| parse(pairs).unwrap_err().to_string();
        let jks = message(&[
            ("security.protocol", "SSL"),
            ("ssl.truststore.location", "/certs/ca.jks"),
        ]);
        assert!(
            jks.contains("ssl.truststore.type") && jks.contains("JKS"),
            "{jks}"
        );
        let encrypted = parse(&[
            ("security.protocol", "SSL"),
            ("ssl.keystore.type", "PEM"),
            ("ssl.keystore.location", "/certs/client.pem"),
            ("ssl.key.password", "x"),
        ])
        .unwrap();
        let password = encrypted.tls.unwrap().key_password;
        assert_eq!(password, Some(KeyPassword("x".into())));
        let algorithm = message(&[
            ("security.protocol", "SSL"),
            ("ssl.endpoint.identification.algorithm", "ldaps"),
        ]);
        assert!(algorithm.contains("ssl.endpoint.identification.algorithm"));
    }

    /// Proves unsupported mechanisms, a missing or foreign JAAS config and a JAAS config
    /// without a password are refused, and that the password is never printed.
    #[test]
    fn sasl_refusals() {
        let message = |pairs: &[(&str, &str)]| {
            let mut all = vec![("security.protocol", "SASL_PLAINTEXT")];
            all.extend_from_slice(pairs);
            parse(&all).unwrap_err().to_string()
        };
        let gssapi = message(&[("sasl.mechanism", "GSSAPI")]);
        assert!(
            gssapi.contains("GSSAPI") && gssapi.contains("OAUTHBEARER"),
            "{gssapi}"
        );
        let missing = message(&[]);
        assert!(missing.contains("sasl.jaas.config"), "{missing}");
        let foreign = message(&[(
            "sasl.jaas.config",
            "com.example.Login required username=\"a\" password=\"secret\";",
        )]);
        assert!(foreign.contains("com.example.Login") && !foreign.contains("secret"));
        let no_password = message(&[(
            "sasl.jaas.config",
            "org.apache.kafka.common.security.plain.PlainLoginModule required username=\"a\";",
        )]);
        assert!(no_password.contains("password option"), "{no_password}");
        let plain = parse(&[
            ("security.protocol", "SASL_PLAINTEXT"),
            ("sasl.jaas.config", SCRAM_JAAS),
        ])
        .unwrap();
        assert_eq!(plain.sasl.unwrap().mechanism, Mechanism::Plain);
    }

    const OAUTH_MODULE: &str =
        "org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule";
    const TOKEN_HANDLER: &str =
        "org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginCallbackHandler";

    fn oauth(pairs: &[(&str, &str)]) -> Result<SecuritySettings, SecurityError> {
        let mut all = vec![
            ("security.protocol", "SASL_PLAINTEXT"),
            ("sasl.mechanism", "OAUTHBEARER"),
        ];
        all.extend_from_slice(pairs);
        parse(&all)
    }

    /// Proves OAUTHBEARER logs in with Kafka's unsecured login by default (the JAAS line's
    /// validator options left alone), and that its refusals name the reason.
    #[test]
    fn oauthbearer_unsecured_login() {
        let jaas = format!(
            r#"{OAUTH_MODULE} required unsecuredLoginStringClaim_sub="alice" unsecuredValidatorRequiredScope="kafka";"#
        );
        let sasl = oauth(&[("sasl.jaas.config", &jaas)]).unwrap().sasl.unwrap();
        assert_eq!(sasl.mechanism, Mechanism::OAuthBearer);
        assert_eq!(sasl.user, "alice");
        assert!(matches!(sasl.oauthbearer, Some(TokenSource::Unsecured(_))));
        let message = |pairs: &[(&str, &str)]| oauth(pairs).unwrap_err().to_string();
        let missing = message(&[("sasl.jaas.config", &format!("{OAUTH_MODULE} required;"))]);
        assert!(
            missing.contains("No principal name in JWT claim: sub"),
            "{missing}"
        );
        let with_url = message(&[
            ("sasl.jaas.config", &format!("{OAUTH_MODULE} required;")),
            ("sasl.oauthbearer.token.endpoint.url", "file:/t"),
        ]);
        assert!(with_url.contains(TOKEN_HANDLER), "{with_url}");
        let scram = message(&[("sasl.jaas.config", SCRAM_JAAS)]);
        assert!(scram.contains("is not OAUTHBEARER's"), "{scram}");
        let none = message(&[]);
        assert!(none.contains("unsecuredLoginStringClaim_sub"), "{none}");
        let handler = message(&[
            ("sasl.jaas.config", &jaas),
            ("sasl.login.callback.handler.class", "com.example.Login"),
        ]);
        assert!(handler.starts_with("Invalid value com.example.Login for configuration sasl.login.callback.handler.class"), "{handler}");
    }

    /// Proves the token endpoint is a file: URL (its path and the claim names kept), that an
    /// HTTP(S) endpoint is refused saying only file URLs are supported, and that loading reads
    /// the file.
    #[test]
    fn oauthbearer_token_from_a_file() {
        let jaas = format!(r#"{OAUTH_MODULE} required extension_traceId="7";"#);
        let settings = |url: &str| {
            oauth(&[
                ("sasl.jaas.config", &jaas),
                ("sasl.login.callback.handler.class", TOKEN_HANDLER),
                ("sasl.oauthbearer.token.endpoint.url", url),
                ("sasl.oauthbearer.sub.claim.name", "client_id"),
            ])
        };
        let sasl = settings("file:///tokens/alice.jwt").unwrap().sasl.unwrap();
        let Some(TokenSource::File(file)) = &sasl.oauthbearer else {
            panic!("expected a token file: {sasl:?}");
        };
        assert_eq!(file.path, std::path::PathBuf::from("/tokens/alice.jwt"));
        assert_eq!(
            (file.subject_claim.as_str(), file.scope_claim.as_str()),
            ("client_id", "scope")
        );
        assert_eq!(
            file.extensions,
            vec![("traceId".to_string(), "7".to_string())]
        );
        assert!(sasl.user.contains("/tokens/alice.jwt"));
        for url in ["https://idp.example/token", "http://idp/token", ""] {
            let error = settings(url).unwrap_err().to_string();
            assert!(
                error.contains("sasl.oauthbearer.token.endpoint.url")
                    && error.contains("only file: URLs are supported"),
                "{error}"
            );
        }
        assert!(settings("file:relative").is_err());
        let error = ClientSecurity::load(settings("file:/nonexistent/token.jwt").unwrap())
            .unwrap_err()
            .to_string();
        assert!(error.contains("/nonexistent/token.jwt"), "{error}");
    }

    /// Proves loading reports a missing PEM file with the key and the path, and that a client
    /// without TLS needs no material.
    #[test]
    fn loading_reads_the_material() {
        assert!(ClientSecurity::from_properties(&Properties::default())
            .unwrap()
            .tls
            .is_none());
        let error = ClientSecurity::from_properties(&properties(&[
            ("security.protocol", "SSL"),
            ("ssl.truststore.type", "PEM"),
            ("ssl.truststore.location", "/nonexistent/ca.pem"),
        ]))
        .unwrap_err()
        .to_string();
        assert!(
            error.contains("ssl.truststore.location") && error.contains("/nonexistent/ca.pem"),
            "{error}"
        );
    }
}
