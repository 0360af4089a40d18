//! OAUTHBEARER's listener settings and `connections.max.reauth.ms`, read as Kafka's broker
//! reads them. Which validator a listener uses is Kafka's
//! `listener.name.<listener>.oauthbearer.sasl.server.callback.handler.class`: empty or the
//! unsecured handler for Kafka's default (options from the listener's
//! `oauthbearer.sasl.jaas.config`), `OAuthBearerValidatorCallbackHandler` for signed tokens
//! checked against the JWK set of `sasl.oauthbearer.jwks.endpoint.url` (a `file:` URL, read
//! once here, at start-up: there is no identity provider to fetch keys from over HTTPS).
//!
//! Each key may be scoped to a listener and mechanism (`ListenerKeys::mechanism_value`).

use super::security::{listener_jaas, ListenerKeys, Mechanism};
use super::ConfigError;
use crate::security::jwks::JwkSet;
use crate::security::oauthbearer::{JwksValidator, UnsecuredValidator, Validator};

/// Kafka's unsecured validator, its default (and the name of its older package).
const UNSECURED_HANDLERS: [&str; 2] = [
    "org.apache.kafka.common.security.oauthbearer.internals.unsecured.OAuthBearerUnsecuredValidatorCallbackHandler",
    "org.apache.kafka.common.security.oauthbearer.internal.unsecured.OAuthBearerUnsecuredValidatorCallbackHandler",
];
/// Kafka's JWKS validator (and its name before Kafka 3.8).
const JWKS_HANDLERS: [&str; 2] = [
    "org.apache.kafka.common.security.oauthbearer.OAuthBearerValidatorCallbackHandler",
    "org.apache.kafka.common.security.oauthbearer.secured.OAuthBearerValidatorCallbackHandler",
];
const OAUTHBEARER: &str = "oauthbearer";

/// `connections.max.reauth.ms` for sessions authenticated with `mechanism` (0: off).
pub(super) fn reauth_ms(keys: &ListenerKeys, mechanism: Mechanism) -> Result<u64, ConfigError> {
    let scope = mechanism.name().to_ascii_lowercase();
    let key = "connections.max.reauth.ms";
    let value = keys.mechanism_value(&scope, key);
    value
        .parse::<i64>()
        .ok()
        .filter(|ms| *ms >= 0)
        .map(|ms| ms as u64)
        .ok_or_else(|| {
            keys.mechanism_invalid(&scope, key, "expected a number of milliseconds, at least 0")
        })
}

/// The listener's OAUTHBEARER validator.
pub(super) fn validator(keys: &ListenerKeys, listener: &str) -> Result<Validator, ConfigError> {
    let jaas_invalid = |reason: String| ConfigError::Invalid {
        key: format!("{}{OAUTHBEARER}.sasl.jaas.config", keys.prefix),
        value: "[hidden]".into(),
        reason,
    };
    let options = listener_jaas(keys, OAUTHBEARER, |_| {
        jaas_invalid(format!(
            "listener {listener} enables OAUTHBEARER, so it needs its login module here, as in org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule required;"
        ))
    })?;
    let option = |name: &str| {
        options
            .iter()
            .rev()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.trim().to_string())
            .unwrap_or_default()
    };
    let handler_key = "sasl.server.callback.handler.class";
    let handler = keys.mechanism_value(OAUTHBEARER, handler_key);
    if handler.is_empty() || UNSECURED_HANDLERS.contains(&handler.as_str()) {
        return unsecured(&option).map_err(jaas_invalid);
    }
    if JWKS_HANDLERS.contains(&handler.as_str()) {
        return jwks(keys).map(Validator::Jwks);
    }
    Err(keys.mechanism_invalid(
        OAUTHBEARER,
        handler_key,
        format!(
            "the OAUTHBEARER validators served are {} (the default) and {}",
            UNSECURED_HANDLERS[0], JWKS_HANDLERS[0]
        ),
    ))
}

/// Kafka's unsecured validator from its JAAS options.
fn unsecured(option: &dyn Fn(&str) -> String) -> Result<Validator, String> {
    let or_default = |value: String, default: &str| match value.is_empty() {
        true => default.to_string(),
        false => value,
    };
    let skew = option("unsecuredValidatorAllowableClockSkewMs");
    let clock_skew_ms = match skew.is_empty() {
        true => 0,
        false => skew.parse::<u64>().map_err(|_| {
            format!("unsecuredValidatorAllowableClockSkewMs must be a number of milliseconds, at least 0: {skew}")
        })?,
    };
    Ok(Validator::Unsecured(UnsecuredValidator {
        principal_claim: or_default(option("unsecuredValidatorPrincipalClaimName"), "sub"),
        scope_claim: or_default(option("unsecuredValidatorScopeClaimName"), "scope"),
        required_scope: option("unsecuredValidatorRequiredScope")
            .split(' ')
            .filter(|scope| !scope.is_empty())
            .map(str::to_string)
            .collect(),
        clock_skew_ms,
    }))
}

/// Kafka's JWKS validator from the `sasl.oauthbearer.*` keys; the JWK set file is read here.
fn jwks(keys: &ListenerKeys) -> Result<JwksValidator, ConfigError> {
    let value = |key: &str| keys.mechanism_value(OAUTHBEARER, key);
    let invalid = |key: &str, reason: String| keys.mechanism_invalid(OAUTHBEARER, key, reason);
    let url_key = "sasl.oauthbearer.jwks.endpoint.url";
    let url = value(url_key);
    let path = match file_path(&url) {
        Ok(path) => path,
        Err(reason) => return Err(invalid(url_key, reason.into())),
    };
    let text = std::fs::read(path)
        .map_err(|error| invalid(url_key, format!("cannot read the JWK set {path}: {error}")))?;
    let keys_read = JwkSet::parse(&text)
        .map_err(|error| invalid(url_key, format!("{path} is not a usable JWK set: {error}")))?;
    let skew_key = "sasl.oauthbearer.clock.skew.seconds";
    let clock_skew_seconds = value(skew_key)
        .parse::<u64>()
        .map_err(|_| invalid(skew_key, "expected a number of seconds, at least 0".into()))?;
    let name = |key: &str| -> Result<String, ConfigError> {
        match value(key) {
            claim if claim.is_empty() => Err(invalid(key, "a claim name must not be empty".into())),
            claim => Ok(claim),
        }
    };
    let issuer = value("sasl.oauthbearer.expected.issuer");
    Ok(JwksValidator {
        keys: keys_read,
        audience: value("sasl.oauthbearer.expected.audience")
            .split(',')
            .map(str::trim)
            .filter(|audience| !audience.is_empty())
            .map(str::to_string)
            .collect(),
        issuer: (!issuer.is_empty()).then_some(issuer),
        subject_claim: name("sasl.oauthbearer.sub.claim.name")?,
        scope_claim: name("sasl.oauthbearer.scope.claim.name")?,
        clock_skew_seconds,
    })
}

/// The path of the JWK set's `file:` URL.
fn file_path(url: &str) -> Result<&str, &'static str> {
    if url.is_empty() {
        return Err("OAuthBearerValidatorCallbackHandler needs the JWK set: set it to a file: URL (file:/path/to/jwks.json)");
    }
    let lower = url.to_ascii_lowercase();
    if lower.starts_with("https:") || lower.starts_with("http:") {
        return Err("fetching a JWK set over HTTP(S) is not supported: save the identity provider's JWK set to a file and give its file: URL");
    }
    file_url_path(url)
}

/// The path of a `file:` URL (`file:/path`, `file:///path`, `file://localhost/path`), or why
/// `url` is not one.
pub(crate) fn file_url_path(url: &str) -> Result<&str, &'static str> {
    let Some(rest) = url
        .get(..5)
        .filter(|s| s.eq_ignore_ascii_case("file:"))
        .map(|_| &url[5..])
    else {
        return Err("expected a file: URL (file:/path/to/file)");
    };
    let path = match rest.strip_prefix("//") {
        Some(authority_and_path) => authority_and_path
            .strip_prefix("localhost")
            .unwrap_or(authority_and_path),
        None => rest,
    };
    match path.starts_with('/') {
        true => Ok(path),
        false => Err("a file: URL needs an absolute path (file:/path/to/file)"),
    }
}

#[cfg(test)]
mod tests {
    use indexmap::IndexMap;

    use super::*;
    use crate::config::security::parse;
    use crate::security::jwks::test_keys::{set, Signer};

    const LOGIN: &str = "org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule";

    fn settings(pairs: &[(&str, &str)]) -> Result<crate::config::security::SaslSettings, String> {
        let given: IndexMap<String, String> = pairs
            .iter()
            .map(|(key, value)| (key.to_string(), value.to_string()))
            .collect();
        let listeners = ["SECURE".to_string()];
        parse(&given, "SECURE:SASL_PLAINTEXT", &listeners, &[])
            .map(|mut security| security.remove(0).sasl.unwrap())
            .map_err(|error| error.to_string())
    }

    /// Proves OAUTHBEARER takes Kafka's unsecured validator by default, with its JAAS options,
    /// and needs the listener's JAAS config.
    #[test]
    fn reads_the_unsecured_validator() {
        let jaas = format!(
            r#"{LOGIN} required unsecuredValidatorRequiredScope="read  write" unsecuredValidatorAllowableClockSkewMs="1500" unsecuredValidatorPrincipalClaimName="user";"#
        );
        let sasl = settings(&[
            ("sasl.enabled.mechanisms", "OAUTHBEARER,PLAIN"),
            (
                "listener.name.secure.plain.sasl.jaas.config",
                "P required user_a=\"b\";",
            ),
            ("listener.name.secure.oauthbearer.sasl.jaas.config", &jaas),
        ])
        .unwrap();
        assert_eq!(
            sasl.mechanisms,
            vec![Mechanism::OAuthBearer, Mechanism::Plain]
        );
        assert_eq!(
            sasl.oauthbearer,
            Some(Validator::Unsecured(UnsecuredValidator {
                principal_claim: "user".into(),
                scope_claim: "scope".into(),
                required_scope: vec!["read".into(), "write".into()],
                clock_skew_ms: 1500,
            }))
        );
        let message = settings(&[("sasl.enabled.mechanisms", "OAUTHBEARER")]).unwrap_err();
        assert!(
            message.contains("listener.name.secure.oauthbearer.sasl.jaas.config"),
            "{message}"
        );
        let bad_skew = format!(r#"{LOGIN} required unsecuredValidatorAllowableClockSkewMs="-1";"#);
        assert!(settings(&[
            ("sasl.enabled.mechanisms", "OAUTHBEARER"),
            (
                "listener.name.secure.oauthbearer.sasl.jaas.config",
                &bad_skew
            ),
        ])
        .is_err());
    }

    /// Proves the JWKS validator is chosen by Kafka's handler class, reads its keys from a
    /// file: URL and its sasl.oauthbearer.* keys, and refuses HTTPS URLs and missing files.
    #[test]
    fn reads_the_jwks_validator() {
        let path = std::env::temp_dir().join(format!("flink-jwks-{}.json", std::process::id()));
        std::fs::write(&path, set(&[&Signer::p256("k")])).unwrap();
        let url = format!("file://{}", path.display());
        let jaas = format!("{LOGIN} required ;");
        let base = [
            ("sasl.enabled.mechanisms", "OAUTHBEARER"),
            (
                "listener.name.secure.oauthbearer.sasl.jaas.config",
                jaas.as_str(),
            ),
            (
                "listener.name.secure.oauthbearer.sasl.server.callback.handler.class",
                JWKS_HANDLERS[0],
            ),
            ("sasl.oauthbearer.expected.audience", "a, b"),
            (
                "listener.name.secure.sasl.oauthbearer.expected.issuer",
                "iss",
            ),
        ];
        let with = |extra: &[(&str, &str)]| {
            let mut pairs = base.to_vec();
            pairs.extend_from_slice(extra);
            settings(&pairs)
        };
        let sasl = with(&[("sasl.oauthbearer.jwks.endpoint.url", &url)]).unwrap();
        let Some(Validator::Jwks(validator)) = sasl.oauthbearer else {
            panic!("expected the JWKS validator");
        };
        assert_eq!(validator.audience, vec!["a", "b"]);
        assert_eq!(validator.issuer.as_deref(), Some("iss"));
        assert_eq!(validator.clock_skew_seconds, 30);
        assert_eq!(validator.subject_claim, "sub");

        let https = with(&[("sasl.oauthbearer.jwks.endpoint.url", "https://idp/jwks")]);
        assert!(https.unwrap_err().contains("HTTP(S) is not supported"));
        let missing = with(&[(
            "sasl.oauthbearer.jwks.endpoint.url",
            "file:/nonexistent/jwks",
        )]);
        assert!(missing.unwrap_err().contains("cannot read the JWK set"));
        assert!(with(&[]).unwrap_err().contains("needs the JWK set"));
        let other = with(&[
            ("sasl.oauthbearer.jwks.endpoint.url", &url),
            (
                "listener.name.secure.oauthbearer.sasl.server.callback.handler.class",
                "x.Y",
            ),
        ]);
        assert!(other.unwrap_err().contains("validators served"));
        std::fs::remove_file(&path).unwrap();
        assert_eq!(file_path("file:/a/b"), Ok("/a/b"));
        assert_eq!(file_path("FILE:///a"), Ok("/a"));
        assert_eq!(file_path("file://localhost/a"), Ok("/a"));
        assert!(file_path("file:a").is_err());
        assert!(file_path("/a").is_err());
    }

    /// Proves connections.max.reauth.ms is read per mechanism, the listener and mechanism
    /// form winning, and 0 (the default) means no bound.
    #[test]
    fn reads_the_reauthentication_bound() {
        let jaas = "P required user_a=\"b\";";
        let sasl = settings(&[
            ("sasl.enabled.mechanisms", "PLAIN,SCRAM-SHA-256"),
            ("listener.name.secure.plain.sasl.jaas.config", jaas),
            ("connections.max.reauth.ms", "2000"),
            (
                "listener.name.secure.scram-sha-256.connections.max.reauth.ms",
                "0",
            ),
        ])
        .unwrap();
        assert_eq!(sasl.reauth_ms(Mechanism::Plain), Some(2000));
        let scram = Mechanism::Scram(crate::security::scram::ScramMechanism::Sha256);
        assert_eq!(sasl.reauth_ms(scram), None);
        let negative = settings(&[
            ("sasl.enabled.mechanisms", "PLAIN"),
            ("listener.name.secure.plain.sasl.jaas.config", jaas),
            ("listener.name.secure.plain.connections.max.reauth.ms", "-5"),
        ]);
        assert!(negative
            .unwrap_err()
            .contains("listener.name.secure.plain.connections.max.reauth.ms"));
        assert!(crate::config::security::is_security_key(
            "listener.name.secure.oauthbearer.sasl.oauthbearer.jwks.endpoint.url"
        ));
        assert!(crate::config::security::is_security_key(
            "connections.max.reauth.ms"
        ));
    }
}
