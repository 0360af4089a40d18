//! SASL authentication on SASL_PLAINTEXT and SASL_SSL listeners: SaslHandshake (v1) picks a
//! mechanism, SaslAuthenticate (v0–2) carries its exchange, and until it succeeds a connection
//! may send nothing else but ApiVersions (anything else closes it, as Kafka's
//! `SaslServerAuthenticator` does). A failed authentication is answered
//! SASL_AUTHENTICATION_FAILED with Kafka's message, logged, and the connection is closed at
//! its next request.
//!
//! Mechanisms: PLAIN (RFC 4616), checked against the listener's JAAS users.

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
        }
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
        Mechanism::Plain => plain(settings, &body.auth_bytes),
    };
    match outcome {
        Ok(user) => {
            tracing::debug!(
                "{} authenticated as User:{user} with {} on listener {}",
                context.connection.peer,
                mechanism.name(),
                context.connection.listener
            );
            *state.phase.borrow_mut() = Phase::Done(user);
            // session_lifetime_ms 0: no re-authentication (connections.max.reauth.ms = 0).
            SaslAuthenticateResponse::default()
        }
        Err(reason) => {
            let message = format!("Authentication failed: {reason}");
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

/// PLAIN (RFC 4616): `[authzid] NUL authcid NUL passwd`, checked against the JAAS users; the
/// authenticated user, or Kafka's reason for refusing.
fn plain(settings: &SaslSettings, token: &[u8]) -> Result<String, &'static str> {
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
    let equal = constant_time_eq(expected, password) && known.is_some();
    match equal {
        true => Ok(username.to_string()),
        false => Err("Invalid username or password"),
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let mut difference = a.len() ^ b.len();
    for index in 0..a.len().max(b.len()) {
        let x = a.get(index).copied().unwrap_or(0);
        let y = b.get(index).copied().unwrap_or(0);
        difference |= usize::from(x ^ y);
    }
    difference == 0
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
            plain(&settings, b"\0alice\0alice-secret"),
            Ok("alice".into())
        );
        assert_eq!(
            plain(&settings, b"alice\0alice\0alice-secret"),
            Ok("alice".into())
        );
        let wrong = Err("Invalid username or password");
        assert_eq!(plain(&settings, b"\0alice\0alice-secreT"), wrong);
        assert_eq!(plain(&settings, b"\0alice\0alice-secret2"), wrong);
        assert_eq!(plain(&settings, b"\0bob\0"), wrong);
        assert!(plain(&settings, b"bob\0alice\0alice-secret").is_err());
        assert!(plain(&settings, b"\0alice").is_err());
        assert!(plain(&settings, b"\0\0x").is_err());
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
