//! SASL/OAUTHBEARER from the client's side, as Kafka's Java client logs in (its
//! `OAuthBearerSaslClient` and two login callback handlers), pure: the time and the token file's
//! text are passed in, so the tools' client and this broker's own links share it.
//!
//! - `UnsecuredLogin` is Kafka's default login (`OAuthBearerUnsecuredLoginCallbackHandler`):
//!   from the JAAS options `unsecuredLogin*` it makes an unsigned JWT, header `{"alg":"none"}`,
//!   claims `exp` and `iat` (seconds since the epoch, the milliseconds as a fraction, as Kafka
//!   writes them) and then the claims the options give, and the SASL extensions to send. Every
//!   login makes a fresh token.
//! - `TokenFile` is Kafka's `OAuthBearerLoginCallbackHandler` with a `file:` token endpoint: the
//!   file holds a JWT (trimmed), checked only as Kafka's client checks it (three sections, `exp`
//!   and the subject claim); the broker validates it. The file is read at every login.
//! - `OAuthBearerClient` is the exchange (RFC 7628 §3.1): the initial response
//!   `n,,^Aauth=Bearer <token>^A[key=value^A]*^A`; an empty answer ends it, a JSON challenge
//!   (a refused token) is acknowledged with `^A`, after which the server fails the exchange.

use std::path::PathBuf;

use base64::Engine;
use serde_json::{Number, Value};

use super::jwt::{Jws, JwtError};

/// Options of Kafka's unsecured login.
const PRINCIPAL_CLAIM_NAME_OPTION: &str = "unsecuredLoginPrincipalClaimName";
const SCOPE_CLAIM_NAME_OPTION: &str = "unsecuredLoginScopeClaimName";
const LIFETIME_SECONDS_OPTION: &str = "unsecuredLoginLifetimeSeconds";
const STRING_CLAIM_PREFIX: &str = "unsecuredLoginStringClaim_";
const NUMBER_CLAIM_PREFIX: &str = "unsecuredLoginNumberClaim_";
const LIST_CLAIM_PREFIX: &str = "unsecuredLoginListClaim_";
const UNSECURED_EXTENSION_PREFIX: &str = "unsecuredLoginExtension_";
/// The extension options of Kafka's `OAuthBearerLoginCallbackHandler`.
const EXTENSION_PREFIX: &str = "extension_";

const DEFAULT_PRINCIPAL_CLAIM: &str = "sub";
const DEFAULT_SCOPE_CLAIM: &str = "scope";
const DEFAULT_LIFETIME_SECONDS: i64 = 3600;
/// The claims the unsecured login computes itself.
const RESERVED_CLAIMS: [&str; 2] = ["iat", "exp"];
/// The initial response's own key, which no extension may take.
const AUTH_KEY: &str = "auth";
const SEPARATOR: u8 = 0x01;

/// Why a login cannot make or send its token. The messages are Kafka's where it has one.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum OAuthLoginError {
    #[error("Cannot explicitly set the '{0}' claim")]
    ReservedClaim(String),
    #[error("the '{0}' claim is set by more than one unsecuredLogin*Claim_ option")]
    DuplicateClaim(String),
    #[error("{option}: '{value}' is not a number")]
    Number { option: String, value: String },
    #[error("{LIFETIME_SECONDS_OPTION}: '{0}' is not a whole number of seconds")]
    Lifetime(String),
    #[error(
        "No principal name in JWT claim: {0} (set it with {STRING_CLAIM_PREFIX}{0}=\"<name>\")"
    )]
    NoPrincipal(String),
    #[error("The '{claim}' claim was not of type {expected}")]
    ClaimType {
        claim: String,
        expected: &'static str,
    },
    #[error("Extension name {0} is invalid")]
    ExtensionName(String),
    #[error("Extension value ({value}) for extension {name} is invalid")]
    ExtensionValue { name: String, value: String },
    #[error("Empty JWT provided; expected three sections (header, payload, and signature)")]
    EmptyToken,
    #[error("Malformed JWT provided; expected three sections (header, payload, and signature), but {0} sections provided")]
    Sections(usize),
    #[error("Malformed JWT provided; expected at least three sections (header, payload, and signature), but {0} section missing")]
    SectionMissing(&'static str),
    #[error("Malformed JWT provided; its {0} section holds characters that are not base64url")]
    SectionCharacters(&'static str),
    #[error("Could not validate the access token: {0}")]
    Token(#[from] JwtError),
    #[error("{0} value must be non-null")]
    ClaimMissing(String),
    #[error("{claim} value must be non-negative; value given was \"{value_ms}\"")]
    Negative { claim: String, value_ms: i64 },
    #[error("{0} value must be non-null, non-empty, and non-whitespace")]
    Blank(String),
    /// The server answered the client's `^A` without failing the exchange.
    #[error("the server refused the token ({0}) but did not end the exchange")]
    AfterChallenge(String),
}

/// Where a login's token comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenSource {
    Unsecured(UnsecuredLogin),
    File(TokenFile),
}

impl TokenSource {
    /// Who logs in, for messages: the unsecured token's principal, or the token file.
    pub fn describe(&self) -> String {
        match self {
            TokenSource::Unsecured(login) => login.principal.clone(),
            TokenSource::File(file) => format!("the token in {}", file.path.display()),
        }
    }

    /// The SASL extensions sent with the token.
    pub fn extensions(&self) -> &[(String, String)] {
        match self {
            TokenSource::Unsecured(login) => &login.extensions,
            TokenSource::File(file) => &file.extensions,
        }
    }
}

/// Kafka's unsecured login, its JAAS options read and checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnsecuredLogin {
    /// The principal claim's value.
    pub principal: String,
    lifetime_seconds: i64,
    /// The claims besides `exp` and `iat`, in the order given: name and value as JSON text.
    claims: Vec<(String, String)>,
    pub extensions: Vec<(String, String)>,
}

impl UnsecuredLogin {
    /// Reads the `unsecuredLogin*` options (others are left to whoever reads them: the
    /// broker's validator options share the line) and refuses what Kafka's login refuses.
    pub fn from_options(options: &[(String, String)]) -> Result<UnsecuredLogin, OAuthLoginError> {
        let option = |name: &str| {
            options
                .iter()
                .rev()
                .find(|(key, _)| key == name)
                .map(|(_, value)| value.as_str())
        };
        let claim_name = |name: &str, default: &str| {
            option(name)
                .map(str::trim)
                .filter(|value| !value.is_empty())
                .unwrap_or(default)
                .to_string()
        };
        let principal_claim = claim_name(PRINCIPAL_CLAIM_NAME_OPTION, DEFAULT_PRINCIPAL_CLAIM);
        let scope_claim = claim_name(SCOPE_CLAIM_NAME_OPTION, DEFAULT_SCOPE_CLAIM);
        let lifetime = option(LIFETIME_SECONDS_OPTION);
        let lifetime_seconds = match lifetime {
            None => DEFAULT_LIFETIME_SECONDS,
            Some(text) => text
                .parse::<i64>()
                .map_err(|_| OAuthLoginError::Lifetime(text.to_string()))?,
        };
        let mut claims: Vec<(String, Claim)> = Vec::new();
        for (key, value) in options {
            let Some((name, claim)) = claim_option(key, value)? else {
                continue;
            };
            if RESERVED_CLAIMS.contains(&name) {
                return Err(OAuthLoginError::ReservedClaim(name.to_string()));
            }
            if claims.iter().any(|(known, _)| known == name) {
                return Err(OAuthLoginError::DuplicateClaim(name.to_string()));
            }
            claims.push((name.to_string(), claim));
        }
        let claim = |name: &str| claims.iter().find(|(known, _)| known == name).map(|c| &c.1);
        let principal = match claim(&principal_claim) {
            Some(Claim::String(value)) if !value.trim().is_empty() => value.clone(),
            Some(Claim::Number(_) | Claim::List(_)) => {
                return Err(wrong_type(&principal_claim, "String"))
            }
            _ => return Err(OAuthLoginError::NoPrincipal(principal_claim)),
        };
        if let Some(Claim::Number(_)) = claim(&scope_claim) {
            return Err(wrong_type(&scope_claim, "List"));
        }
        Ok(UnsecuredLogin {
            principal,
            lifetime_seconds,
            claims: claims
                .into_iter()
                .map(|(name, claim)| (name, claim.json()))
                .collect(),
            extensions: extensions(options, UNSECURED_EXTENSION_PREFIX)?,
        })
    }

    /// A fresh token, issued at `now_ms` (milliseconds since the epoch).
    pub fn token(&self, now_ms: i64) -> String {
        let issued_at = now_ms as f64 / 1000.0;
        let expires = issued_at + self.lifetime_seconds as f64;
        let mut claims = format!(
            "{{\"exp\":{},\"iat\":{}",
            seconds(expires),
            seconds(issued_at)
        );
        for (name, value) in &self.claims {
            claims.push_str(&format!(",{}:{value}", Value::String(name.clone())));
        }
        claims.push('}');
        let encode = |json: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(json);
        format!("{}.{}.", encode(r#"{"alg":"none"}"#), encode(&claims))
    }
}

/// A claim of the unsecured login's options.
enum Claim {
    String(String),
    /// As JSON writes it.
    Number(String),
    List(Vec<String>),
}

impl Claim {
    fn json(self) -> String {
        match self {
            Claim::String(value) => Value::String(value).to_string(),
            Claim::Number(json) => json,
            Claim::List(elements) => {
                Value::Array(elements.into_iter().map(Value::String).collect()).to_string()
            }
        }
    }
}

/// The claim a `unsecuredLogin*Claim_<name>` option sets; `None` for other options (and, as
/// in Kafka, for a prefix with no name after it).
fn claim_option<'a>(
    key: &'a str,
    value: &str,
) -> Result<Option<(&'a str, Claim)>, OAuthLoginError> {
    let named = |prefix: &str| key.strip_prefix(prefix).filter(|name| !name.is_empty());
    if let Some(name) = named(STRING_CLAIM_PREFIX) {
        return Ok(Some((name, Claim::String(value.to_string()))));
    }
    if let Some(name) = named(NUMBER_CLAIM_PREFIX) {
        let number = value
            .trim()
            .parse::<f64>()
            .ok()
            .and_then(Number::from_f64)
            .ok_or_else(|| OAuthLoginError::Number {
                option: key.to_string(),
                value: value.to_string(),
            })?;
        return Ok(Some((name, Claim::Number(number.to_string()))));
    }
    if let Some(name) = named(LIST_CLAIM_PREFIX) {
        return Ok(Some((name, Claim::List(list_elements(value)))));
    }
    Ok(None)
}

/// A list claim's elements: the value's first character separates the rest (`,a,b`, `|a|b`);
/// one character or none is the empty list. Empty elements are kept (Kafka adds one more
/// where the separator starts or doubles in the list; validators drop blank scope elements).
fn list_elements(value: &str) -> Vec<String> {
    let mut characters = value.chars();
    let Some(separator) = characters.next() else {
        return Vec::new();
    };
    match characters.as_str() {
        "" => Vec::new(),
        rest => rest.split(separator).map(str::to_string).collect(),
    }
}

/// A `Number` as JSON writes it: seconds with their fraction.
fn seconds(value: f64) -> String {
    Number::from_f64(value).map_or_else(|| "0".to_string(), |number| number.to_string())
}

fn wrong_type(claim: &str, expected: &'static str) -> OAuthLoginError {
    OAuthLoginError::ClaimType {
        claim: claim.to_string(),
        expected,
    }
}

/// The SASL extensions of the options named `<prefix><name>`, checked as Kafka's
/// `OAuthBearerClientInitialResponse` checks them: names of letters, not `auth`; values of
/// printable ASCII, space and line breaks, not empty.
fn extensions(
    options: &[(String, String)],
    prefix: &str,
) -> Result<Vec<(String, String)>, OAuthLoginError> {
    let mut extensions: Vec<(String, String)> = Vec::new();
    for (key, value) in options {
        let Some(name) = key.strip_prefix(prefix) else {
            continue;
        };
        if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphabetic()) || name == AUTH_KEY {
            return Err(OAuthLoginError::ExtensionName(name.to_string()));
        }
        let value_ok = !value.is_empty()
            && value
                .bytes()
                .all(|b| matches!(b, 0x21..=0x7e | b' ' | b'\t' | b'\r' | b'\n'));
        if !value_ok {
            return Err(OAuthLoginError::ExtensionValue {
                name: name.to_string(),
                value: value.clone(),
            });
        }
        extensions.retain(|(known, _)| known != name);
        extensions.push((name.to_string(), value.clone()));
    }
    Ok(extensions)
}

/// A token from a file (Kafka's `sasl.oauthbearer.token.endpoint.url=file:...`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenFile {
    pub path: PathBuf,
    /// `sasl.oauthbearer.sub.claim.name`.
    pub subject_claim: String,
    /// `sasl.oauthbearer.scope.claim.name`.
    pub scope_claim: String,
    /// From the JAAS options `extension_<name>`.
    pub extensions: Vec<(String, String)>,
}

impl TokenFile {
    pub fn new(
        path: PathBuf,
        subject_claim: &str,
        scope_claim: &str,
        options: &[(String, String)],
    ) -> Result<TokenFile, OAuthLoginError> {
        Ok(TokenFile {
            path,
            subject_claim: subject_claim.to_string(),
            scope_claim: scope_claim.to_string(),
            extensions: extensions(options, EXTENSION_PREFIX)?,
        })
    }

    /// The token in `contents` (the file's text, trimmed), checked as Kafka's client checks
    /// it: three base64url sections, claims of the right types, `exp` and the subject present.
    /// Whether the token is still valid is the broker's to say.
    pub fn token(&self, contents: &str) -> Result<String, OAuthLoginError> {
        let token = contents.trim();
        if token.is_empty() {
            return Err(OAuthLoginError::EmptyToken);
        }
        let sections: Vec<&str> = token.split('.').collect();
        if sections.len() != 3 {
            return Err(OAuthLoginError::Sections(sections.len()));
        }
        for (section, name) in sections.iter().zip(["header", "payload", "signature"]) {
            if section.is_empty() {
                return Err(OAuthLoginError::SectionMissing(name));
            }
            if !section
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            {
                return Err(OAuthLoginError::SectionCharacters(name));
            }
        }
        let jws = Jws::parse(token)?;
        jws.scope_claim(&self.scope_claim)?;
        let expires = jws
            .number_claim("exp")?
            .ok_or_else(|| OAuthLoginError::ClaimMissing("exp".into()))?;
        not_negative("exp", expires)?;
        if let Some(issued_at) = jws.number_claim("iat")? {
            not_negative("iat", issued_at)?;
        }
        match jws.string_claim(&self.subject_claim)? {
            Some(subject) if !subject.trim().is_empty() => Ok(token.to_string()),
            _ => Err(OAuthLoginError::Blank(self.subject_claim.clone())),
        }
    }
}

fn not_negative(claim: &str, seconds: f64) -> Result<(), OAuthLoginError> {
    match seconds < 0.0 {
        true => Err(OAuthLoginError::Negative {
            claim: claim.to_string(),
            value_ms: (seconds * 1000.0) as i64,
        }),
        false => Ok(()),
    }
}

/// The client's side of one exchange.
#[derive(Debug)]
pub struct OAuthBearerClient {
    state: ClientState,
}

#[derive(Debug)]
enum ClientState {
    /// The initial response, not sent yet.
    Start(Vec<u8>),
    /// The initial response was sent.
    Sent,
    /// The server refused the token with this challenge; the client acknowledged it.
    Acknowledged(String),
    Done,
}

impl OAuthBearerClient {
    pub fn new(token: &str, extensions: &[(String, String)]) -> OAuthBearerClient {
        OAuthBearerClient {
            state: ClientState::Start(initial_response(token, extensions)),
        }
    }

    /// Takes the server's last message (nothing at first) and gives the next one to send, or
    /// `None` once the server accepted the token.
    pub fn step(&mut self, server_message: &[u8]) -> Result<Option<Vec<u8>>, OAuthLoginError> {
        match std::mem::replace(&mut self.state, ClientState::Done) {
            ClientState::Start(initial_response) => {
                self.state = ClientState::Sent;
                Ok(Some(initial_response))
            }
            ClientState::Sent if server_message.is_empty() => Ok(None),
            ClientState::Sent => {
                let challenge = String::from_utf8_lossy(server_message).into_owned();
                self.state = ClientState::Acknowledged(challenge);
                Ok(Some(vec![SEPARATOR]))
            }
            ClientState::Acknowledged(challenge) => Err(OAuthLoginError::AfterChallenge(challenge)),
            ClientState::Done => Ok(None),
        }
    }
}

/// RFC 7628's initial response as Kafka's client writes it: no authorization id, the token,
/// then the extensions.
pub fn initial_response(token: &str, extensions: &[(String, String)]) -> Vec<u8> {
    let separator = char::from(SEPARATOR);
    let mut message = format!("n,,{separator}{AUTH_KEY}=Bearer {token}");
    for (key, value) in extensions {
        message.push_str(&format!("{separator}{key}={value}"));
    }
    message.push(separator);
    message.push(separator);
    message.into_bytes()
}

#[cfg(test)]
#[path = "oauthbearer_login_tests.rs"]
mod tests;
