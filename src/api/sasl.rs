//! SASL authentication on SASL_PLAINTEXT and SASL_SSL listeners: SaslHandshake (v1) picks a
//! mechanism, SaslAuthenticate (v0–2) carries its exchange, and until it succeeds a connection
//! may send nothing else but ApiVersions (anything else closes it, as Kafka's
//! `SaslServerAuthenticator` does). A failed authentication is answered
//! SASL_AUTHENTICATION_FAILED with Kafka's message, logged, and the connection is closed once
//! the answer is written.
//!
//! Mechanisms: PLAIN (RFC 4616), checked against the listener's JAAS users; SCRAM-SHA-256 and
//! SCRAM-SHA-512 (`security::scram`), two round trips against the credentials in the metadata
//! image (AlterUserScramCredentials); OAUTHBEARER (`security::oauthbearer`), a token checked by
//! the listener's validator, a refusal answered with a challenge first.
//!
//! Re-authentication (KIP-368): a session lasts `connections.max.reauth.ms` (per mechanism),
//! or until its OAUTHBEARER token expires if sooner, as SaslAuthenticate v1+ tells the client
//! (`session_lifetime_ms`). A client that authenticated with v1+ may send SaslHandshake and
//! SaslAuthenticate again on its connection, with the same mechanism and principal, at most
//! once a second; a session that ended without it is closed at its next request. The old
//! session stays in force until the new one is made; the SASL requests run alone
//! (`Sequencing::Exclusive`), so requests before them complete first.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::{Duration, Instant};

use kafka_protocol::messages::{
    ApiKey, SaslAuthenticateRequest, SaslAuthenticateResponse, SaslHandshakeRequest,
    SaslHandshakeResponse,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

use crate::config::security::{Mechanism, SaslSettings};
use crate::security::oauthbearer::{OAuthError, OAuthServer, Step};
use crate::security::scram::{ScramCredential, ScramMechanism, ScramServer};

/// Re-authentications are started at most this often per connection, as in Kafka.
const REAUTHENTICATION_INTERVAL_MIN: Duration = Duration::from_secs(1);

/// An authenticated session.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Session {
    user: String,
    mechanism: Mechanism,
    /// When the session ends unless the client re-authenticates; `None`: never.
    expires_at: Option<Instant>,
    /// Whether the client sent SaslAuthenticate v1 or later, so knows of session lifetimes.
    reauthenticates: bool,
    /// When its last re-authentication began.
    reauthenticated_at: Option<Instant>,
}

impl Session {
    fn principal(&self) -> String {
        format!("User:{}", self.user)
    }
}

/// Where a connection is in its authentication.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Phase {
    /// Waiting for SaslHandshake.
    Handshake,
    /// The mechanism is chosen; waiting for SaslAuthenticate.
    Authenticate(Mechanism),
    /// Authenticated.
    Done(Session),
    /// Re-authenticating: the session holds until the exchange ends. `None` until the
    /// handshake has named the mechanism.
    Reauthenticate(Session, Option<Mechanism>),
    /// Refused: the connection closes once the answer is written.
    Failed(String),
}

/// A connection's authentication: `None` on listeners without SASL.
pub struct SaslState {
    settings: Option<Rc<SaslSettings>>,
    phase: RefCell<Phase>,
    /// A SCRAM exchange between its two messages.
    scram: RefCell<Option<ScramServer>>,
    /// An OAUTHBEARER exchange after a challenge.
    oauthbearer: RefCell<Option<OAuthServer>>,
    /// Whether any SaslAuthenticate of the exchange was v1 or later.
    versioned: std::cell::Cell<bool>,
}

/// Why a request may not be served.
#[derive(Debug, thiserror::Error)]
pub enum SaslRefusal {
    #[error("unexpected {} during SASL handshake", unexpected(.0))]
    Unexpected(Option<ApiKey>),
    #[error("{0}")]
    Failed(String),
    #[error("Disconnecting expired channel: the session of {0} ended without re-authentication")]
    Expired(String),
}

fn unexpected(key: &Option<ApiKey>) -> String {
    match key {
        Some(key) => format!("Kafka request of type {key:?}"),
        None => "controller message".to_string(),
    }
}

/// What a successful exchange gives.
struct Authenticated {
    user: String,
    /// When the credential expires (an OAUTHBEARER token's `exp`), in ms since the epoch.
    expires_at_ms: Option<i64>,
}

/// The server's answer and, once the exchange succeeded, who authenticated; or Kafka's message
/// for a refusal.
type Outcome = Result<(Vec<u8>, Option<Authenticated>), String>;

/// What the SASL requests of one connection need, whichever listener serves them: the broker's
/// (`RequestContext::sasl_exchange`) or the controller's (`controller::transport`).
pub struct SaslExchange<'a> {
    pub state: &'a SaslState,
    /// The client's address and port, for log lines.
    pub peer: &'a str,
    pub listener: &'a str,
    /// The request's version.
    pub version: i16,
    /// The SCRAM credential of a user, from the metadata the node holds.
    pub scram_credential: &'a dyn Fn(&str, ScramMechanism) -> Option<ScramCredential>,
}

impl SaslState {
    pub fn new(settings: Option<Rc<SaslSettings>>) -> SaslState {
        SaslState {
            settings,
            phase: RefCell::new(Phase::Handshake),
            scram: RefCell::new(None),
            oauthbearer: RefCell::new(None),
            versioned: std::cell::Cell::new(false),
        }
    }

    /// Whether the connection's listener asks for SASL.
    pub fn is_enabled(&self) -> bool {
        self.settings.is_some()
    }

    /// Whether the connection's SASL exchange is under way: before authentication, or
    /// re-authenticating (Kafka's authenticator serves these requests, not its handlers).
    pub fn is_exchanging(&self) -> bool {
        self.settings.is_some() && !matches!(*self.phase.borrow(), Phase::Done(_))
    }

    /// Whether the exchange was refused: the connection ends once the answer is written.
    pub fn is_failed(&self) -> bool {
        matches!(*self.phase.borrow(), Phase::Failed(_))
    }

    /// The authenticated user's principal as Kafka writes it (`User:alice`); `User:ANONYMOUS`
    /// on a listener without SASL.
    pub fn principal(&self) -> String {
        match &*self.phase.borrow() {
            Phase::Done(session) | Phase::Reauthenticate(session, _) => session.principal(),
            _ => "User:ANONYMOUS".to_string(),
        }
    }

    /// Whether a request with `key` may be served at `now`. A SaslHandshake on an
    /// authenticated connection whose client can re-authenticate begins re-authentication.
    pub fn admit(&self, key: ApiKey, now: Instant) -> Result<(), SaslRefusal> {
        self.admit_frame(Some(key), now)
    }

    /// `admit` for any frame: `None` is a frame that is not a Kafka request (the controller
    /// listener's own messages), admitted as any request but the exchange's own.
    pub fn admit_frame(&self, key: Option<ApiKey>, now: Instant) -> Result<(), SaslRefusal> {
        if self.settings.is_none() {
            return Ok(());
        }
        let mut phase = self.phase.borrow_mut();
        match (&mut *phase, key) {
            (Phase::Done(session), Some(ApiKey::SaslHandshake))
                if can_reauthenticate(session, now) =>
            {
                session.reauthenticated_at = Some(now);
                let session = session.clone();
                self.versioned.set(false);
                *phase = Phase::Reauthenticate(session, None);
                Ok(())
            }
            (Phase::Done(session), _) => match session.expires_at {
                Some(expires_at) if now > expires_at => {
                    Err(SaslRefusal::Expired(session.principal()))
                }
                _ => Ok(()),
            },
            (Phase::Failed(reason), _) => Err(SaslRefusal::Failed(reason.clone())),
            (Phase::Reauthenticate(_, None), Some(ApiKey::SaslHandshake)) => Ok(()),
            (Phase::Reauthenticate(_, Some(_)), Some(ApiKey::SaslAuthenticate)) => Ok(()),
            (Phase::Reauthenticate(..), key) => Err(SaslRefusal::Unexpected(key)),
            (_, Some(ApiKey::ApiVersions)) => Ok(()),
            (Phase::Handshake, Some(ApiKey::SaslHandshake)) => Ok(()),
            (Phase::Authenticate(_), Some(ApiKey::SaslAuthenticate)) => Ok(()),
            (_, key) => Err(SaslRefusal::Unexpected(key)),
        }
    }

    fn fail(&self, reason: String) {
        *self.phase.borrow_mut() = Phase::Failed(reason);
    }
}

/// Whether a SaslHandshake now begins re-authentication: the session has a lifetime, its
/// client knows of it, and the last re-authentication began over a second ago (Kafka's
/// `KafkaChannel::maybeBeginServerReauthentication`).
fn can_reauthenticate(session: &Session, now: Instant) -> bool {
    session.expires_at.is_some()
        && session.reauthenticates
        && session
            .reauthenticated_at
            .is_none_or(|at| now.saturating_duration_since(at) >= REAUTHENTICATION_INTERVAL_MIN)
}

/// A session's lifetime as Kafka's `SaslServerAuthenticator` reckons it: the smaller of
/// `connections.max.reauth.ms` and what is left of the credential, either when only one is
/// known, never negative; `None` when neither bounds it.
pub fn session_lifetime_ms(
    reauth_ms: Option<u64>,
    credential_expires_at_ms: Option<i64>,
    now_ms: i64,
) -> Option<u64> {
    let left = credential_expires_at_ms.map(|expires| expires.saturating_sub(now_ms).max(0) as u64);
    match (reauth_ms, left) {
        (None, None) => None,
        (Some(bound), None) | (None, Some(bound)) => Some(bound),
        (Some(reauth), Some(left)) => Some(reauth.min(left)),
    }
}

/// When a session of `lifetime_ms` begun at `now` ends; `None` for a lifetime beyond what an
/// `Instant` can hold (a token whose `exp` is ages away), which never ends in practice.
fn session_end(now: Instant, lifetime_ms: u64) -> Option<Instant> {
    now.checked_add(Duration::from_millis(lifetime_ms))
}

pub fn handshake(exchange: &SaslExchange<'_>, body: SaslHandshakeRequest) -> SaslHandshakeResponse {
    let state = exchange.state;
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
    let phase = state.phase.borrow().clone();
    let previous = match phase {
        Phase::Handshake => None,
        Phase::Reauthenticate(session, None) => Some(session),
        // After authentication, from a client that cannot re-authenticate (Kafka's answer).
        _ => return response.with_error_code(ResponseError::IllegalSaslState.code()),
    };
    let asked = body.mechanism.as_str();
    let Some(mechanism) = settings.mechanisms.iter().find(|m| m.name() == asked) else {
        let reason = format!("Unsupported SASL mechanism {asked}");
        log_failure(exchange, &reason);
        state.fail(reason);
        return response.with_error_code(ResponseError::UnsupportedSaslMechanism.code());
    };
    *state.phase.borrow_mut() = match previous {
        None => Phase::Authenticate(*mechanism),
        Some(session) if session.mechanism == *mechanism => {
            Phase::Reauthenticate(session, Some(*mechanism))
        }
        // Kafka answers the handshake, then ends the connection.
        Some(session) => {
            let reason = format!(
                "SASL mechanism '{asked}' requested by client is not supported for re-authentication of mechanism '{}'",
                session.mechanism.name()
            );
            log_failure(exchange, &reason);
            Phase::Failed(reason)
        }
    };
    response
}

pub fn authenticate(
    exchange: &SaslExchange<'_>,
    body: SaslAuthenticateRequest,
) -> SaslAuthenticateResponse {
    let state = exchange.state;
    let phase = state.phase.borrow().clone();
    let (mechanism, previous) = match phase {
        Phase::Authenticate(mechanism) => (mechanism, None),
        Phase::Reauthenticate(session, Some(mechanism)) => (mechanism, Some(session)),
        _ => {
            return SaslAuthenticateResponse::default()
                .with_error_code(ResponseError::IllegalSaslState.code())
                .with_error_message(Some(StrBytes::from_static_str(
                    "SaslAuthenticate request received before a successful SaslHandshake",
                )))
        }
    };
    let Some(settings) = &state.settings else {
        return SaslAuthenticateResponse::default()
            .with_error_code(ResponseError::IllegalSaslState.code());
    };
    // Kafka takes any v1+ request of the exchange as the client knowing session lifetimes.
    state
        .versioned
        .set(state.versioned.get() || exchange.version > 0);
    let during = match previous {
        Some(_) => "re-authentication",
        None => "authentication",
    };
    let outcome = match mechanism {
        Mechanism::Plain => plain(settings, &body.auth_bytes).map(|user| {
            let user = Authenticated {
                user,
                expires_at_ms: None,
            };
            (Vec::new(), Some(user))
        }),
        Mechanism::Scram(scram) => scram_step(exchange, scram, &body.auth_bytes, during),
        Mechanism::OAuthBearer => oauthbearer_step(exchange, settings, &body.auth_bytes, during),
    };
    let outcome = outcome.and_then(|(answer, user)| match (user, &previous) {
        (Some(user), Some(session)) if user.user != session.user => Err(format!(
            "Cannot change principals during re-authentication from User.{}: User.{}",
            session.user, user.user
        )),
        (user, _) => Ok((answer, user)),
    });
    match outcome {
        // The exchange goes on (SCRAM's server-first message, OAUTHBEARER's challenge).
        Ok((answer, None)) => {
            SaslAuthenticateResponse::default().with_auth_bytes(bytes::Bytes::from(answer))
        }
        Ok((answer, Some(user))) => {
            let lifetime_ms = begin_session(exchange, settings, mechanism, user, previous);
            SaslAuthenticateResponse::default()
                .with_auth_bytes(bytes::Bytes::from(answer))
                .with_session_lifetime_ms(lifetime_ms.min(i64::MAX as u64) as i64)
        }
        Err(message) => {
            log_failure(exchange, &message);
            state.fail(message.clone());
            SaslAuthenticateResponse::default()
                .with_error_code(ResponseError::SaslAuthenticationFailed.code())
                .with_error_message(Some(StrBytes::from_string(message)))
        }
    }
}

/// Starts the session `user` authenticated (or re-authenticated) and returns its lifetime for
/// the client (0: unbounded).
fn begin_session(
    exchange: &SaslExchange<'_>,
    settings: &SaslSettings,
    mechanism: Mechanism,
    user: Authenticated,
    previous: Option<Session>,
) -> u64 {
    let state = exchange.state;
    let (now, now_ms) = (Instant::now(), crate::security::wall_clock_ms());
    let lifetime_ms =
        session_lifetime_ms(settings.reauth_ms(mechanism), user.expires_at_ms, now_ms);
    let session = Session {
        user: user.user,
        mechanism,
        expires_at: lifetime_ms.and_then(|ms| session_end(now, ms)),
        reauthenticates: state.versioned.get(),
        reauthenticated_at: previous
            .as_ref()
            .and_then(|session| session.reauthenticated_at),
    };
    let (peer, listener) = (exchange.peer, exchange.listener);
    let lifetime = lifetime_ms.map_or("no session expiration".to_string(), |ms| {
        format!("session lifetime {ms} ms")
    });
    match previous {
        Some(_) => tracing::info!(
            "{peer} re-authenticated as {} with {} on listener {listener} ({lifetime})",
            session.principal(),
            mechanism.name()
        ),
        None => tracing::debug!(
            "{peer} authenticated as {} with {} on listener {listener} ({lifetime})",
            session.principal(),
            mechanism.name()
        ),
    }
    *state.phase.borrow_mut() = Phase::Done(session);
    lifetime_ms.unwrap_or(0)
}

fn log_failure(exchange: &SaslExchange<'_>, reason: &str) {
    tracing::info!(
        "Failed authentication with {} on listener {} ({reason})",
        exchange.peer,
        exchange.listener
    );
}

/// One OAUTHBEARER message: the challenge for a refused token, or the token's principal.
fn oauthbearer_step(
    exchange: &SaslExchange<'_>,
    settings: &SaslSettings,
    message: &[u8],
    during: &str,
) -> Outcome {
    let generic = || {
        format!("Authentication failed during {during} due to invalid credentials with SASL mechanism OAUTHBEARER")
    };
    let Some(validator) = &settings.oauthbearer else {
        return Err(generic());
    };
    let state = exchange.state;
    let mut server = state.oauthbearer.borrow_mut().take().unwrap_or_default();
    match server.step(validator, message, crate::security::wall_clock_ms()) {
        Ok(Step::Challenge { challenge, reason }) => {
            tracing::info!(
                "OAUTHBEARER token from {} on listener {} refused: {reason}",
                exchange.peer,
                exchange.listener
            );
            *state.oauthbearer.borrow_mut() = Some(server);
            Ok((challenge.into_bytes(), None))
        }
        Ok(Step::Authenticated(token)) => {
            let user = Authenticated {
                user: token.principal,
                expires_at_ms: Some(token.expires_at_ms),
            };
            Ok((Vec::new(), Some(user)))
        }
        Err(OAuthError::Malformed(reason)) => {
            tracing::debug!(
                "OAUTHBEARER exchange with {} failed: {reason}",
                exchange.peer
            );
            Err(generic())
        }
        Err(refused) => Err(refused.to_string()),
    }
}

/// One SCRAM message: the server's answer, with the user once the exchange succeeded. Every
/// refusal reads the same to the client, as in Kafka; the log line says why.
fn scram_step(
    exchange: &SaslExchange<'_>,
    mechanism: ScramMechanism,
    message: &[u8],
    during: &str,
) -> Outcome {
    let state = exchange.state;
    let mut server = state
        .scram
        .borrow_mut()
        .take()
        .unwrap_or_else(|| ScramServer::new(mechanism));
    let stepped = server.step(message, &server_nonce(), |user| {
        (exchange.scram_credential)(user, mechanism)
    });
    match stepped {
        Ok((answer, user)) => {
            if user.is_none() {
                *state.scram.borrow_mut() = Some(server);
            }
            let user = user.map(|user| Authenticated {
                user,
                expires_at_ms: None,
            });
            Ok((answer, user))
        }
        Err(error) => {
            tracing::debug!("SCRAM exchange with {} failed: {error}", exchange.peer);
            Err(format!(
                "Authentication failed during {during} due to invalid credentials with SASL mechanism {}",
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
            ..SaslSettings::default()
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
        let now = Instant::now();
        let admit = |key| state.admit(key, now);
        assert!(admit(ApiKey::ApiVersions).is_ok());
        assert!(admit(ApiKey::SaslHandshake).is_ok());
        assert!(matches!(
            admit(ApiKey::Metadata),
            Err(SaslRefusal::Unexpected(Some(ApiKey::Metadata)))
        ));
        assert!(admit(ApiKey::SaslAuthenticate).is_err());
        *state.phase.borrow_mut() = Phase::Authenticate(Mechanism::Plain);
        assert!(admit(ApiKey::SaslAuthenticate).is_ok());
        assert!(admit(ApiKey::Produce).is_err());
        *state.phase.borrow_mut() = Phase::Done(session(None, true));
        assert!(admit(ApiKey::Produce).is_ok());
        assert_eq!(state.principal(), "User:alice");
        *state.phase.borrow_mut() = Phase::Failed("no".into());
        assert!(admit(ApiKey::ApiVersions).is_err());
        assert!(state.is_failed());
        // The controller listener's own frames wait for the exchange like any request.
        let controller = SaslState::new(Some(Rc::new(settings())));
        assert!(matches!(
            controller.admit_frame(None, now),
            Err(SaslRefusal::Unexpected(None))
        ));
        *controller.phase.borrow_mut() = Phase::Done(session(None, true));
        assert!(controller.admit_frame(None, now).is_ok());
        let open = SaslState::new(None);
        assert!(open.admit(ApiKey::Produce, now).is_ok());
        assert!(open.admit_frame(None, now).is_ok());
        assert_eq!(open.principal(), "User:ANONYMOUS");
    }

    fn session(expires_at: Option<Instant>, reauthenticates: bool) -> Session {
        Session {
            user: "alice".into(),
            mechanism: Mechanism::OAuthBearer,
            expires_at,
            reauthenticates,
            reauthenticated_at: None,
        }
    }

    /// Proves KIP-368's rules at the gate: a session past its lifetime is closed at its next
    /// request; a SaslHandshake from a client that knows of lifetimes begins re-authentication
    /// (even once expired), at most once a second, admitting only the exchange meanwhile with
    /// the old principal in force; without a lifetime or from a v0 client it does not.
    #[test]
    fn expires_sessions_and_admits_reauthentication() {
        let state = SaslState::new(Some(Rc::new(settings())));
        let start = Instant::now();
        let later = start + Duration::from_secs(5);
        *state.phase.borrow_mut() =
            Phase::Done(session(Some(start + Duration::from_secs(2)), true));
        assert!(state.admit(ApiKey::Produce, start).is_ok());
        assert!(matches!(
            state.admit(ApiKey::Produce, later),
            Err(SaslRefusal::Expired(principal)) if principal == "User:alice"
        ));
        assert!(state.admit(ApiKey::SaslHandshake, later).is_ok());
        assert!(matches!(
            &*state.phase.borrow(),
            Phase::Reauthenticate(_, None)
        ));
        assert_eq!(state.principal(), "User:alice");
        assert!(state.admit(ApiKey::Produce, later).is_err());
        assert!(state.admit(ApiKey::ApiVersions, later).is_err());
        let mut reauthenticated = session(Some(later + Duration::from_secs(2)), true);
        reauthenticated.reauthenticated_at = Some(later);
        *state.phase.borrow_mut() =
            Phase::Reauthenticate(reauthenticated.clone(), Some(Mechanism::OAuthBearer));
        assert!(state.admit(ApiKey::SaslAuthenticate, later).is_ok());
        assert!(state.admit(ApiKey::Fetch, later).is_err());

        // Again within a second: the handshake is served as an ordinary request (and answered
        // ILLEGAL_SASL_STATE by the handler).
        *state.phase.borrow_mut() = Phase::Done(reauthenticated);
        let soon = later + Duration::from_millis(500);
        assert!(state.admit(ApiKey::SaslHandshake, soon).is_ok());
        assert!(matches!(&*state.phase.borrow(), Phase::Done(_)));
        *state.phase.borrow_mut() = Phase::Done(session(None, true));
        assert!(state.admit(ApiKey::SaslHandshake, later).is_ok());
        assert!(matches!(&*state.phase.borrow(), Phase::Done(_)));
        *state.phase.borrow_mut() = Phase::Done(session(Some(later), false));
        assert!(state.admit(ApiKey::SaslHandshake, start).is_ok());
        assert!(matches!(&*state.phase.borrow(), Phase::Done(_)));
    }

    /// Proves the session lifetime is Kafka's: connections.max.reauth.ms, the credential's
    /// remaining lifetime, the smaller of both, never negative, or none.
    #[test]
    fn reckons_session_lifetimes() {
        let now = 1_000_000;
        assert_eq!(session_lifetime_ms(None, None, now), None);
        assert_eq!(session_lifetime_ms(Some(2000), None, now), Some(2000));
        assert_eq!(session_lifetime_ms(None, Some(now + 500), now), Some(500));
        assert_eq!(
            session_lifetime_ms(Some(2000), Some(now + 500), now),
            Some(500)
        );
        assert_eq!(
            session_lifetime_ms(Some(200), Some(now + 500), now),
            Some(200)
        );
        assert_eq!(
            session_lifetime_ms(Some(200), Some(now - 500), now),
            Some(0)
        );
        assert_eq!(session_lifetime_ms(None, Some(i64::MIN), i64::MAX), Some(0));
        let now = Instant::now();
        assert_eq!(
            session_end(now, 2000),
            Some(now + Duration::from_millis(2000))
        );
        // A token expiring in 292 million years, or any lifetime at all, must not overflow
        // the clock (`Instant + Duration` panics where `checked_add` says `None`).
        let far = session_lifetime_ms(None, Some(i64::MAX), 0);
        assert_eq!(far, Some(i64::MAX as u64));
        assert!(session_end(now, u64::MAX).is_none_or(|end| end > now));
    }
}
