//! SASL authentication on SASL_PLAINTEXT and SASL_SSL listeners: SaslHandshake (v1) picks a
//! mechanism, SaslAuthenticate (v0–2) carries its exchange, and until it succeeds a connection
//! may send nothing else but ApiVersions (anything else closes it, as Kafka's
//! `SaslServerAuthenticator` does). A failed authentication is answered
//! SASL_AUTHENTICATION_FAILED with Kafka's message, logged, and the connection is closed at
//! its next request.
//!
//! Mechanisms: PLAIN (RFC 4616), checked against the listener's JAAS users; SCRAM-SHA-256 and
//! SCRAM-SHA-512 (`security::scram`), two round trips against the credentials in the metadata
//! image (AlterUserScramCredentials).

use std::cell::RefCell;
use std::rc::Rc;

use kafka_protocol::messages::{
    ApiKey, SaslAuthenticateRequest, SaslAuthenticateResponse, SaslHandshakeRequest,
    SaslHandshakeResponse,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

use super::RequestContext;
use crate::config::security::{Mechanism, SaslSettings};
use crate::security::scram::{ScramMechanism, ScramServer};

/// Where a connection is in its authentication.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Phase {
    /// Waiting for SaslHandshake.
    Handshake,
    /// The mechanism is chosen; waiting for SaslAuthenticate.
    Authenticate(Mechanism),
    /// Authenticated as this user.
    Done(String),
    /// Refused: the connection closes at its next request.
    Failed(String),
}

/// A connection's authentication: `None` on listeners without SASL.
pub struct SaslState {
    settings: Option<Rc<SaslSettings>>,
    phase: RefCell<Phase>,
    /// A SCRAM exchange between its two messages.
    scram: RefCell<Option<ScramServer>>,
}

/// Why a request may not be served before authentication.
#[derive(Debug, thiserror::Error)]
pub enum SaslRefusal {
    #[error("unexpected Kafka request of type {0:?} during SASL handshake")]
    Unexpected(ApiKey),
    #[error("{0}")]
    Failed(String),
}

impl SaslState {
    pub fn new(settings: Option<Rc<SaslSettings>>) -> SaslState {
        SaslState {
            settings,
            phase: RefCell::new(Phase::Handshake),
            scram: RefCell::new(None),
        }
    }

    /// Whether the connection's listener asks for SASL.
    pub fn is_enabled(&self) -> bool {
        self.settings.is_some()
    }

    /// The authenticated user's principal as Kafka writes it (`User:alice`); `User:ANONYMOUS`
    /// on a listener without SASL.
    pub fn principal(&self) -> String {
        match &*self.phase.borrow() {
            Phase::Done(user) => format!("User:{user}"),
            _ => "User:ANONYMOUS".to_string(),
        }
    }

    /// Whether a request with `key` may be served now.
    pub fn admit(&self, key: ApiKey) -> Result<(), SaslRefusal> {
        if self.settings.is_none() {
            return Ok(());
        }
        match (&*self.phase.borrow(), key) {
            (Phase::Done(_), _) => Ok(()),
            (Phase::Failed(reason), _) => Err(SaslRefusal::Failed(reason.clone())),
            (_, ApiKey::ApiVersions) => Ok(()),
            (Phase::Handshake, ApiKey::SaslHandshake) => Ok(()),
            (Phase::Authenticate(_), ApiKey::SaslAuthenticate) => Ok(()),
            (_, key) => Err(SaslRefusal::Unexpected(key)),
        }
    }
}

pub fn handshake(
    context: &RequestContext<'_>,
    body: SaslHandshakeRequest,
) -> SaslHandshakeResponse {
    let state = &context.connection.sasl;
    let Some(settings) = &state.settings else {
        // Kafka's answer to a handshake where no SASL is expected.
        return SaslHandshakeResponse::default()
            .with_error_code(ResponseError::IllegalSaslState.code());
    };
    let enabled: Vec<StrBytes> = settings
        .mechanisms
        .iter()
        .map(|mechanism| StrBytes::from_static_str(mechanism.name()))
        .collect();
    let response = SaslHandshakeResponse::default().with_mechanisms(enabled);
    if *state.phase.borrow() != Phase::Handshake {
        return response.with_error_code(ResponseError::IllegalSaslState.code());
    }
    let asked = body.mechanism.as_str();
    match settings.mechanisms.iter().find(|m| m.name() == asked) {
        Some(mechanism) => {
            *state.phase.borrow_mut() = Phase::Authenticate(*mechanism);
            response
        }
        None => {
            let reason = format!("Unsupported SASL mechanism {asked}");
            tracing::info!(
                "Failed authentication with {} on listener {} ({reason})",
                context.connection.peer,
                context.connection.listener
            );
            *state.phase.borrow_mut() = Phase::Failed(reason);
            response.with_error_code(ResponseError::UnsupportedSaslMechanism.code())
        }
    }
}

pub fn authenticate(
    context: &RequestContext<'_>,
    body: SaslAuthenticateRequest,
) -> SaslAuthenticateResponse {
    let state = &context.connection.sasl;
    let phase = state.phase.borrow().clone();
    let (Some(settings), Phase::Authenticate(mechanism)) = (&state.settings, phase) else {
        return SaslAuthenticateResponse::default()
            .with_error_code(ResponseError::IllegalSaslState.code())
            .with_error_message(Some(StrBytes::from_static_str(
                "SaslAuthenticate request received before a successful SaslHandshake",
            )));
    };
    let outcome = match mechanism {
        Mechanism::Plain => plain(settings, &body.auth_bytes).map(|user| (Vec::new(), Some(user))),
        Mechanism::Scram(scram) => scram_step(context, scram, &body.auth_bytes),
    };
    match outcome {
        // The exchange goes on (SCRAM's server-first message).
        Ok((answer, None)) => {
            SaslAuthenticateResponse::default().with_auth_bytes(bytes::Bytes::from(answer))
        }
        Ok((answer, Some(user))) => {
            tracing::debug!(
                "{} authenticated as User:{user} with {} on listener {}",
                context.connection.peer,
                mechanism.name(),
                context.connection.listener
            );
            *state.phase.borrow_mut() = Phase::Done(user);
            // session_lifetime_ms 0: no re-authentication (connections.max.reauth.ms = 0).
            SaslAuthenticateResponse::default().with_auth_bytes(bytes::Bytes::from(answer))
        }
        Err(message) => {
            tracing::info!(
                "Failed authentication with {} on listener {} ({message})",
                context.connection.peer,
                context.connection.listener
            );
            *state.phase.borrow_mut() = Phase::Failed(message.clone());
            SaslAuthenticateResponse::default()
                .with_error_code(ResponseError::SaslAuthenticationFailed.code())
                .with_error_message(Some(StrBytes::from_string(message)))
        }
    }
}

/// One SCRAM message: the server's answer, with the user once the exchange succeeded. Every
/// refusal reads the same to the client, as in Kafka; the log line says why.
fn scram_step(
    context: &RequestContext<'_>,
    mechanism: ScramMechanism,
    message: &[u8],
) -> Result<(Vec<u8>, Option<String>), String> {
    let state = &context.connection.sasl;
    let mut server = state
        .scram
        .borrow_mut()
        .take()
        .unwrap_or_else(|| ScramServer::new(mechanism));
    let image = context.shard.metadata();
    let stepped = server.step(message, &server_nonce(), |user| {
        super::scram_credentials::lookup(&image, user, mechanism)
    });
    match stepped {
        Ok((answer, user)) => {
            if user.is_none() {
                *state.scram.borrow_mut() = Some(server);
            }
            Ok((answer, user))
        }
        Err(error) => {
            tracing::debug!(
                "SCRAM exchange with {} failed: {error}",
                context.connection.peer
            );
            Err(format!(
                "Authentication failed during authentication due to invalid credentials with SASL mechanism {}",
                mechanism.name()
            ))
        }
    }
}

/// A fresh server nonce: 18 random bytes in base64 (no ',').
fn server_nonce() -> String {
    use base64::Engine;
    use ring::rand::SecureRandom;
    let mut bytes = [0u8; 18];
    // The system's random source; a failure leaves zeros, which only weakens this exchange.
    let _ = ring::rand::SystemRandom::new().fill(&mut bytes);
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// PLAIN (RFC 4616): `[authzid] NUL authcid NUL passwd`, checked against the JAAS users; the
/// authenticated user, or Kafka's reason for refusing.
fn plain(settings: &SaslSettings, token: &[u8]) -> Result<String, String> {
    plain_user(settings, token).map_err(|reason| format!("Authentication failed: {reason}"))
}

fn plain_user(settings: &SaslSettings, token: &[u8]) -> Result<String, &'static str> {
    let mut fields = token.split(|byte| *byte == 0);
    let (Some(authzid), Some(username), Some(password), None) =
        (fields.next(), fields.next(), fields.next(), fields.next())
    else {
        return Err("Invalid SASL/PLAIN response: expected 3 tokens");
    };
    let (Ok(authzid), Ok(username)) = (std::str::from_utf8(authzid), std::str::from_utf8(username))
    else {
        return Err("Invalid SASL/PLAIN response: not UTF-8");
    };
    if username.is_empty() {
        return Err("Invalid SASL/PLAIN response: Authentication ID must not be empty");
    }
    if !authzid.is_empty() && authzid != username {
        return Err("Client requested an authorization id that is different from username");
    }
    let known = settings.plain_users.get(username);
    // Compared in time independent of where they differ, and of whether the user exists.
    let expected = known.map_or(&[][..], |password| password.as_bytes());
    let equal = crate::security::constant_time_eq(expected, password) && known.is_some();
    match equal {
        true => Ok(username.to_string()),
        false => Err("Invalid username or password"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> SaslSettings {
        SaslSettings {
            mechanisms: vec![Mechanism::Plain],
            plain_users: [("alice".to_string(), "alice-secret".to_string())].into(),
        }
    }

    /// Proves PLAIN accepts the right password (with or without an authorization id equal to
    /// the user) and refuses wrong ones, unknown users, other authorization ids and malformed
    /// tokens with Kafka's reasons.
    #[test]
    fn plain_checks_the_jaas_users() {
        let settings = settings();
        assert_eq!(
            plain_user(&settings, b"\0alice\0alice-secret"),
            Ok("alice".into())
        );
        assert_eq!(
            plain_user(&settings, b"alice\0alice\0alice-secret"),
            Ok("alice".into())
        );
        let wrong = Err("Invalid username or password");
        assert_eq!(plain_user(&settings, b"\0alice\0alice-secreT"), wrong);
        assert_eq!(plain_user(&settings, b"\0alice\0alice-secret2"), wrong);
        assert_eq!(plain_user(&settings, b"\0bob\0"), wrong);
        assert!(plain_user(&settings, b"bob\0alice\0alice-secret").is_err());
        assert!(plain_user(&settings, b"\0alice").is_err());
        assert!(plain_user(&settings, b"\0\0x").is_err());
    }

    /// Proves a SASL connection admits only ApiVersions and the exchange in order until it is
    /// authenticated, then everything; a failed one nothing; a listener without SASL anything.
    #[test]
    fn admits_only_the_exchange_before_authentication() {
        let state = SaslState::new(Some(Rc::new(settings())));
        assert!(state.admit(ApiKey::ApiVersions).is_ok());
        assert!(state.admit(ApiKey::SaslHandshake).is_ok());
        assert!(matches!(
            state.admit(ApiKey::Metadata),
            Err(SaslRefusal::Unexpected(ApiKey::Metadata))
        ));
        assert!(state.admit(ApiKey::SaslAuthenticate).is_err());
        *state.phase.borrow_mut() = Phase::Authenticate(Mechanism::Plain);
        assert!(state.admit(ApiKey::SaslAuthenticate).is_ok());
        assert!(state.admit(ApiKey::Produce).is_err());
        *state.phase.borrow_mut() = Phase::Done("alice".into());
        assert!(state.admit(ApiKey::Produce).is_ok());
        assert_eq!(state.principal(), "User:alice");
        *state.phase.borrow_mut() = Phase::Failed("no".into());
        assert!(state.admit(ApiKey::ApiVersions).is_err());
        let open = SaslState::new(None);
        assert!(open.admit(ApiKey::Produce).is_ok());
        assert_eq!(open.principal(), "User:ANONYMOUS");
    }
}
