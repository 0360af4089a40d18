//! SASL/OAUTHBEARER (RFC 7628, Kafka's KIP-255) on the broker's side, as a pure state machine:
//! the client's initial response (`n,a=<authzid>,^Aauth=Bearer <token>^A[key=value^A]*^A`) is
//! read as strictly as Kafka's `OAuthBearerClientInitialResponse` reads it, and the token is
//! checked by the listener's validator, with the time passed in:
//!
//! - `Validator::Unsecured`, Kafka's default (`OAuthBearerUnsecuredValidatorCallbackHandler`):
//!   an unsigned JWT (`alg` `none`), its principal and scope claims named by JAAS options, an
//!   optional required scope and clock skew.
//! - `Validator::Jwks` (Kafka's `OAuthBearerValidatorCallbackHandler`): a JWT signed with a key
//!   of the listener's JWK set (`security::jwks`), with `exp` and `iat` required and the
//!   expected audience and issuer checked.
//!
//! A refused token is answered as Kafka answers it: a challenge (`{"status":"invalid_token"}`),
//! to which the client replies `^A`; only then does the exchange fail, with the challenge as
//! the message. The reason goes to the log, never to the client.

use std::collections::{BTreeMap, BTreeSet};

use super::jwks::{JwkSet, JwksError};
use super::jwt::{Jws, JwtError, TimeRules};

pub const MECHANISM: &str = "OAUTHBEARER";

/// The longest initial response read, as Kafka's `sasl.server.max.receive.size` (512 KiB).
pub const INITIAL_RESPONSE_BYTES_MAX: usize = 512 * 1024;

const SEPARATOR: u8 = 0x01;

/// Why an exchange failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum OAuthError {
    /// A malformed message: the client is told only Kafka's generic refusal.
    #[error("{0}")]
    Malformed(String),
    /// The client acknowledged the server's challenge; the message is the challenge.
    #[error("{0}")]
    Refused(String),
    /// The token is valid but names another authorization id than the one asked for.
    #[error("Authentication failed: Client requested an authorization id ({requested}) that is different from the token's principal name ({principal})")]
    AuthorizationId {
        requested: String,
        principal: String,
    },
}

/// Why a token was refused: the challenge's fields and, for the log, the reason.
#[derive(Debug, Clone, PartialEq)]
pub struct Rejection {
    /// `invalid_token`, or `insufficient_scope` when a required scope is missing.
    pub status: &'static str,
    /// The required scope, as Kafka writes a list (`[a, b]`), when it was missing.
    pub scope: Option<String>,
    pub reason: String,
}

impl Rejection {
    fn invalid(reason: impl ToString) -> Rejection {
        Rejection {
            status: "invalid_token",
            scope: None,
            reason: reason.to_string(),
        }
    }

    /// The server's challenge (RFC 7628 §3.2.2), spelt as Kafka spells it.
    pub fn challenge(&self) -> String {
        match &self.scope {
            Some(scope) => format!(
                r#"{{"status":"{}", "scope":"{}"}}"#,
                self.status,
                scope.replace('\\', "\\\\").replace('"', "\\\"")
            ),
            None => format!(r#"{{"status":"{}"}}"#, self.status),
        }
    }
}

/// A valid token: who it is for and until when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Token {
    pub principal: String,
    /// `exp`, in milliseconds since the epoch.
    pub expires_at_ms: i64,
    pub scope: BTreeSet<String>,
}

/// The client's initial response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InitialResponse {
    /// As sent (`=2C` and `=3D` escapes kept, as Kafka keeps them); empty when absent.
    pub authorization_id: String,
    pub token: String,
    /// Key-value pairs besides `auth`: accepted and not used, as by Kafka's validators.
    pub extensions: BTreeMap<String, String>,
}

impl InitialResponse {
    pub fn parse(message: &[u8]) -> Result<InitialResponse, OAuthError> {
        let invalid = || OAuthError::Malformed("Invalid OAUTHBEARER client first message".into());
        if message.len() > INITIAL_RESPONSE_BYTES_MAX {
            return Err(invalid());
        }
        let rest = message.strip_prefix(b"n,").ok_or_else(invalid)?;
        let comma = rest
            .iter()
            .position(|byte| *byte == b',')
            .ok_or_else(invalid)?;
        let (authorization, rest) = (&rest[..comma], &rest[comma + 1..]);
        let authorization_id = match authorization {
            [] => String::new(),
            _ => {
                let name = authorization.strip_prefix(b"a=").ok_or_else(invalid)?;
                if !is_sasl_name(name) {
                    return Err(invalid());
                }
                String::from_utf8_lossy(name).into_owned()
            }
        };
        // ^A, then key=value^A pairs, then ^A.
        let pairs = rest
            .strip_prefix(&[SEPARATOR])
            .and_then(|pairs| pairs.strip_suffix(&[SEPARATOR]))
            .ok_or_else(invalid)?;
        let mut properties = BTreeMap::new();
        if !pairs.is_empty() {
            let pairs = pairs.strip_suffix(&[SEPARATOR]).ok_or_else(invalid)?;
            for pair in pairs.split(|byte| *byte == SEPARATOR) {
                let equals = pair
                    .iter()
                    .position(|byte| *byte == b'=')
                    .ok_or_else(invalid)?;
                let (key, value) = (&pair[..equals], &pair[equals + 1..]);
                let key_ok = !key.is_empty() && key.iter().all(u8::is_ascii_alphabetic);
                let value_ok = !value.is_empty()
                    && value
                        .iter()
                        .all(|byte| matches!(byte, 0x21..=0x7e | b' ' | b'\t' | b'\r' | b'\n'));
                if !(key_ok && value_ok) {
                    return Err(invalid());
                }
                // Both are ASCII by the checks above.
                properties.insert(
                    String::from_utf8_lossy(key).into_owned(),
                    String::from_utf8_lossy(value).into_owned(),
                );
            }
        }
        let auth = properties.remove("auth").ok_or_else(|| {
            OAuthError::Malformed(
                "Invalid OAUTHBEARER client first message: 'auth' not specified".into(),
            )
        })?;
        let token = bearer_token(&auth)?;
        Ok(InitialResponse {
            authorization_id,
            token,
            extensions: properties,
        })
    }
}

/// RFC 7628's saslname: characters 0x01–0x7F but `=` and `,`, which are written `=3D`, `=2C`.
fn is_sasl_name(name: &[u8]) -> bool {
    let mut index = 0;
    while index < name.len() {
        match name[index] {
            b'=' if matches!(name.get(index + 1..index + 3), Some(b"2C" | b"3D")) => index += 3,
            b'=' | b',' | 0 | 0x80.. => return false,
            _ => index += 1,
        }
    }
    index > 0
}

/// `auth`'s value: `<scheme> <token>`, the scheme `Bearer` in any case, the token of
/// `[-_.a-zA-Z0-9]` (RFC 6750's b64token as Kafka narrows it).
fn bearer_token(auth: &str) -> Result<String, OAuthError> {
    let malformed = || {
        OAuthError::Malformed(
            "Invalid OAUTHBEARER client first message: invalid 'auth' format".into(),
        )
    };
    let (scheme, token) = auth.split_once(' ').ok_or_else(malformed)?;
    let token = token.trim_start_matches(' ');
    let scheme_ok = !scheme.is_empty()
        && scheme
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_');
    let token_ok = !token.is_empty()
        && token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if !(scheme_ok && token_ok) {
        return Err(malformed());
    }
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(OAuthError::Malformed(format!(
            "Invalid scheme in OAUTHBEARER client first message: {scheme}"
        )));
    }
    Ok(token.to_string())
}

/// How a listener checks tokens (`listener.name.<l>.oauthbearer.sasl.server.callback.handler.class`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Validator {
    Unsecured(UnsecuredValidator),
    Jwks(JwksValidator),
}

/// Kafka's unsecured validator, with its JAAS options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnsecuredValidator {
    /// `unsecuredValidatorPrincipalClaimName` (`sub`).
    pub principal_claim: String,
    /// `unsecuredValidatorScopeClaimName` (`scope`).
    pub scope_claim: String,
    /// `unsecuredValidatorRequiredScope`, space-separated.
    pub required_scope: Vec<String>,
    /// `unsecuredValidatorAllowableClockSkewMs`.
    pub clock_skew_ms: u64,
}

/// Kafka's JWKS validator, with its `sasl.oauthbearer.*` keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JwksValidator {
    pub keys: JwkSet,
    /// `sasl.oauthbearer.expected.audience`: when set, `aud` must name one of these.
    pub audience: Vec<String>,
    /// `sasl.oauthbearer.expected.issuer`: when set, `iss` must be it.
    pub issuer: Option<String>,
    /// `sasl.oauthbearer.sub.claim.name` (`sub`).
    pub subject_claim: String,
    /// `sasl.oauthbearer.scope.claim.name` (`scope`).
    pub scope_claim: String,
    /// `sasl.oauthbearer.clock.skew.seconds` (30).
    pub clock_skew_seconds: u64,
}

impl Validator {
    /// The token's principal and expiry, or why it is refused.
    pub fn validate(&self, token: &str, now_ms: i64) -> Result<Token, Rejection> {
        match self {
            Validator::Unsecured(validator) => validator.validate(token, now_ms),
            Validator::Jwks(validator) => validator.validate(token, now_ms).map_err(|reason| {
                Rejection::invalid(format!("Could not validate the access token: {reason}"))
            }),
        }
    }
}

impl UnsecuredValidator {
    fn validate(&self, token: &str, now_ms: i64) -> Result<Token, Rejection> {
        let jws = Jws::parse(token).map_err(Rejection::invalid)?;
        if jws.algorithm() != Some("none") {
            return Err(Rejection::invalid(
                "Unsecured JWS must have 'none' for an algorithm",
            ));
        }
        if !jws.signature.is_empty() {
            return Err(Rejection::invalid(
                "Unsecured JWS must not contain a digital signature",
            ));
        }
        let scope = jws
            .scope_claim(&self.scope_claim)
            .map_err(Rejection::invalid)?;
        let principal = principal(&jws, &self.principal_claim).map_err(Rejection::invalid)?;
        let rules = TimeRules {
            issued_at_required: false,
            skew_ms: self.clock_skew_ms,
        };
        let expires_at_ms = jws.check_times(now_ms, rules).map_err(Rejection::invalid)?;
        if let Some(missing) = self.required_scope.iter().find(|s| !scope.contains(*s)) {
            let required = format!("[{}]", self.required_scope.join(", "));
            let provided: Vec<&str> = scope.iter().map(String::as_str).collect();
            return Err(Rejection {
                status: "insufficient_scope",
                reason: format!(
                    "The provided scope ([{}]) was missing a required scope ({missing}).  All required scope elements: {required}",
                    provided.join(", ")
                ),
                scope: Some(required),
            });
        }
        Ok(Token {
            principal,
            expires_at_ms,
            scope,
        })
    }
}

/// Why a signed token is not valid.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SignedTokenError {
    #[error(transparent)]
    Token(#[from] JwtError),
    #[error(transparent)]
    Signature(#[from] JwksError),
    #[error("No Audience (aud) claim present.")]
    NoAudience,
    #[error("Audience (aud) claim [{}] doesn't contain an acceptable identifier. Expected one of [{}] as an aud value.", found.join(", "), expected.join(", "))]
    Audience {
        found: Vec<String>,
        expected: Vec<String>,
    },
    /// jose4j's rule, which Kafka's validator keeps: a token naming an audience is refused
    /// where none is expected.
    #[error("Audience (aud) claim [{}] present in the JWT but no expected audience value(s) were provided (sasl.oauthbearer.expected.audience).", found.join(", "))]
    UnexpectedAudience { found: Vec<String> },
    #[error("Issuer (iss) claim value ({found}) doesn't match expected value of {expected}")]
    Issuer { found: String, expected: String },
}

impl JwksValidator {
    fn validate(&self, token: &str, now_ms: i64) -> Result<Token, SignedTokenError> {
        let jws = Jws::parse(token)?;
        self.keys.verify(&jws)?;
        let rules = TimeRules {
            issued_at_required: true,
            skew_ms: self.clock_skew_seconds.saturating_mul(1000),
        };
        let expires_at_ms = jws.check_times(now_ms, rules)?;
        self.check_audience(&jws)?;
        if let Some(expected) = &self.issuer {
            let found = jws.string_claim("iss")?.unwrap_or_default();
            if found != expected {
                return Err(SignedTokenError::Issuer {
                    found: found.to_string(),
                    expected: expected.clone(),
                });
            }
        }
        Ok(Token {
            principal: principal(&jws, &self.subject_claim)?,
            expires_at_ms,
            scope: jws.scope_claim(&self.scope_claim)?,
        })
    }
}

impl JwksValidator {
    /// `aud` (a string or a list of strings) against `sasl.oauthbearer.expected.audience`.
    fn check_audience(&self, jws: &Jws) -> Result<(), SignedTokenError> {
        let wrong_type = || JwtError::Type {
            claim: "aud".into(),
            expected: "String",
        };
        let found: Vec<String> = match jws.claims.get("aud") {
            None | Some(serde_json::Value::Null) => {
                return match self.audience.is_empty() {
                    true => Ok(()),
                    false => Err(SignedTokenError::NoAudience),
                }
            }
            Some(serde_json::Value::String(one)) => vec![one.clone()],
            Some(serde_json::Value::Array(many)) => many
                .iter()
                .map(|aud| aud.as_str().map(str::to_string).ok_or_else(wrong_type))
                .collect::<Result<_, _>>()?,
            Some(_) => return Err(wrong_type().into()),
        };
        if self.audience.is_empty() {
            return Err(SignedTokenError::UnexpectedAudience { found });
        }
        match found.iter().any(|aud| self.audience.contains(aud)) {
            true => Ok(()),
            false => Err(SignedTokenError::Audience {
                found,
                expected: self.audience.clone(),
            }),
        }
    }
}

/// The principal claim: a string that is not blank.
fn principal(jws: &Jws, claim: &str) -> Result<String, JwtError> {
    match jws.string_claim(claim)? {
        Some(name) if !name.trim().is_empty() => Ok(name.to_string()),
        Some(_) => Err(JwtError::Missing(claim.to_string())),
        None => Err(JwtError::Missing(claim.to_string())),
    }
}

/// What one message of the exchange leads to.
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    /// The token was refused: send the challenge and wait for the client's `^A`.
    Challenge {
        challenge: String,
        reason: String,
    },
    Authenticated(Token),
}

/// One connection's exchange: at most a challenge between the client's messages.
#[derive(Debug, Default)]
pub struct OAuthServer {
    challenge: Option<String>,
}

impl OAuthServer {
    /// Takes the client's next message. After a challenge, `^A` ends the exchange refused;
    /// any other message is read as a new initial response, as Kafka's server reads it.
    pub fn step(
        &mut self,
        validator: &Validator,
        message: &[u8],
        now_ms: i64,
    ) -> Result<Step, OAuthError> {
        if let (Some(challenge), [SEPARATOR]) = (&self.challenge, message) {
            return Err(OAuthError::Refused(challenge.clone()));
        }
        self.challenge = None;
        let response = InitialResponse::parse(message)?;
        let token = match validator.validate(&response.token, now_ms) {
            Ok(token) => token,
            Err(rejection) => {
                let challenge = rejection.challenge();
                self.challenge = Some(challenge.clone());
                return Ok(Step::Challenge {
                    challenge,
                    reason: rejection.reason,
                });
            }
        };
        let requested = response.authorization_id;
        if !requested.is_empty() && requested != token.principal {
            return Err(OAuthError::AuthorizationId {
                requested,
                principal: token.principal,
            });
        }
        Ok(Step::Authenticated(token))
    }
}

#[cfg(test)]
#[path = "oauthbearer_tests.rs"]
mod tests;
