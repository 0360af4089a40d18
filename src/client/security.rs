//! The security settings of Kafka's clients, from the tools' properties (`--command-config`,
//! `--producer.config`, ...): `security.protocol`, the `ssl.*` keys (PEM only, as the broker
//! reads them, through the same `config::security` helpers) and `sasl.mechanism` with
//! `sasl.jaas.config` (PLAIN and SCRAM). `SecuritySettings::parse` is pure; `ClientSecurity::load`
//! reads the PEM material once and builds the rustls configuration every connection of a client
//! shares, so a missing file fails the tool before it connects.
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
use crate::config::security::{
    enabled_protocols, key_password, keystore, parse_jaas_module, truststore, KeyPassword,
    KeyProblem, Mechanism, Pem, SecurityProtocol,
};
use crate::security::pem;
use crate::security::scram::ScramMechanism;

/// The client keys read here, which tools that warn about unused keys take as used.
pub const SECURITY_KEYS: [&str; 16] = [
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
];

/// Kafka's client defaults for the keys above that have one.
const DEFAULTS: [(&str, &str); 5] = [
    ("ssl.keystore.type", "JKS"),
    ("ssl.truststore.type", "JKS"),
    ("ssl.endpoint.identification.algorithm", "https"),
    ("ssl.enabled.protocols", "TLSv1.2,TLSv1.3"),
    ("sasl.mechanism", "PLAIN"),
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
}

/// SASL credentials from `sasl.mechanism` and `sasl.jaas.config`.
#[derive(Clone, PartialEq, Eq)]
pub struct SaslCredentials {
    pub mechanism: Mechanism,
    pub user: String,
    pub password: String,
}

impl fmt::Debug for SaslCredentials {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("SaslCredentials")
            .field("mechanism", &self.mechanism)
            .field("user", &self.user)
            .field("password", &"[hidden]")
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
        (_, Some(scram)) if scram.name() == name => Mechanism::Scram(scram),
        _ => {
            return Err(invalid(
                "sasl.mechanism",
                &name,
                "this client supports PLAIN, SCRAM-SHA-256 and SCRAM-SHA-512 (not OAUTHBEARER or GSSAPI)",
            ))
        }
    };
    let jaas = value("sasl.jaas.config");
    let example = match mechanism {
        Mechanism::Scram(_) => SCRAM_LOGIN_MODULE,
        // OAUTHBEARER was refused above.
        Mechanism::Plain | Mechanism::OAuthBearer => PLAIN_LOGIN_MODULE,
    };
    if jaas.is_empty() {
        return Err(SecurityError::Invalid {
            key: "sasl.jaas.config".to_string(),
            value: String::new(),
            reason: format!(
                "security.protocol={} needs the user and password, as in {example} required username=\"alice\" password=\"alice-secret\";",
                protocol.name()
            ),
        });
    }
    let hidden = |reason: String| SecurityError::Invalid {
        key: "sasl.jaas.config".to_string(),
        value: "[hidden]".to_string(),
        reason,
    };
    let (module, options) = parse_jaas_module(&jaas).map_err(hidden)?;
    if module != PLAIN_LOGIN_MODULE && module != SCRAM_LOGIN_MODULE {
        return Err(hidden(format!(
            "login module {module} is not supported: use {PLAIN_LOGIN_MODULE} or {SCRAM_LOGIN_MODULE}"
        )));
    }
    let option = |wanted: &str| {
        options
            .iter()
            .find(|(key, _)| key == wanted)
            .map(|(_, value)| value.clone())
            .ok_or_else(|| hidden(format!("{module} needs a {wanted} option")))
    };
    Ok(SaslCredentials {
        mechanism,
        user: option("username")?,
        password: option("password")?,
    })
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

    /// Reads the PEM material of `settings` and builds the TLS configuration.
    pub fn load(settings: SecuritySettings) -> Result<ClientSecurity, SecurityError> {
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
        let oauth = message(&[("sasl.mechanism", "OAUTHBEARER")]);
        assert!(
            oauth.contains("OAUTHBEARER") && oauth.contains("not"),
            "{oauth}"
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
