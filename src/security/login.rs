//! A SASL login from the client's side, whatever carries its messages: the tools' client
//! (`client::sasl`) and this broker's own links (`runtime::peer`) both send what `next` gives in
//! SaslAuthenticate requests and feed it the answers. PLAIN is one message (RFC 4616); SCRAM is
//! `scram::ScramClient`'s exchange, which also checks that the server knows the credential;
//! OAUTHBEARER is `oauthbearer_login::OAuthBearerClient`'s, with a token made for this login
//! (Kafka's unsecured login, at the time of day) or read from its file now, so that a login
//! again (KIP-368) sends a fresh one.
//!
//! This is the edge of those pure exchanges: it reads the clock, the system's random source
//! and the token file (a small, bounded read, once per login).

use std::io::Read;
use std::path::Path;

use bytes::Bytes;

use crate::client::security::SaslCredentials;
use crate::config::security::Mechanism;
use crate::security::oauthbearer_login::{
    OAuthBearerClient, OAuthLoginError, TokenFile, TokenSource,
};
use crate::security::scram::{ClientStep, ScramClient, ScramError};

/// Random bytes in a SCRAM client nonce (base64 without padding: 32 characters).
const CLIENT_NONCE_BYTES: usize = 24;
/// The largest token file read: as large as an initial response Kafka's servers take.
const TOKEN_FILE_BYTES_MAX: u64 = crate::security::oauthbearer::INITIAL_RESPONSE_BYTES_MAX as u64;

#[derive(Debug, thiserror::Error)]
pub enum LoginError {
    #[error("no SCRAM nonce: the system's random source failed")]
    NoNonce,
    #[error("OAUTHBEARER credentials without a token source")]
    NoTokenSource,
    #[error("cannot read the OAUTHBEARER token from {path}: {reason}")]
    TokenFile { path: String, reason: String },
    #[error(transparent)]
    Scram(#[from] ScramError),
    #[error(transparent)]
    OAuthBearer(#[from] OAuthLoginError),
}

/// One SASL login as a client, independent of how its messages travel: `next` takes the
/// server's last message (nothing at first) and gives the next one to send, until the login is
/// done.
pub struct SaslLogin {
    credentials: SaslCredentials,
    exchange: Exchange,
}

enum Exchange {
    Plain { sent: bool },
    Scram(ScramClient),
    OAuthBearer(OAuthBearerClient),
}

/// What the login does next.
pub enum LoginStep {
    Send(Vec<u8>),
    Done,
}

impl SaslLogin {
    pub fn new(credentials: &SaslCredentials) -> Result<SaslLogin, LoginError> {
        let exchange = match credentials.mechanism {
            Mechanism::Scram(mechanism) => {
                use base64::Engine;
                let nonce = crate::security::random_bytes::<CLIENT_NONCE_BYTES>()
                    .ok_or(LoginError::NoNonce)?;
                let nonce = base64::engine::general_purpose::STANDARD.encode(nonce);
                Exchange::Scram(ScramClient::new(
                    mechanism,
                    &credentials.user,
                    &credentials.password,
                    &nonce,
                ))
            }
            Mechanism::Plain => Exchange::Plain { sent: false },
            Mechanism::OAuthBearer => {
                let source = credentials
                    .oauthbearer
                    .as_ref()
                    .ok_or(LoginError::NoTokenSource)?;
                let token = match source {
                    TokenSource::Unsecured(login) => login.token(crate::security::wall_clock_ms()),
                    TokenSource::File(file) => file_token(file)?,
                };
                Exchange::OAuthBearer(OAuthBearerClient::new(&token, source.extensions()))
            }
        };
        Ok(SaslLogin {
            credentials: credentials.clone(),
            exchange,
        })
    }

    pub fn mechanism(&self) -> &'static str {
        self.credentials.mechanism.name()
    }

    pub fn user(&self) -> &str {
        &self.credentials.user
    }

    pub fn next(&mut self, server_message: &Bytes) -> Result<LoginStep, LoginError> {
        match &mut self.exchange {
            Exchange::Scram(scram) => match scram.step(server_message)? {
                ClientStep::Send(message) => Ok(LoginStep::Send(message)),
                ClientStep::Done => Ok(LoginStep::Done),
            },
            Exchange::OAuthBearer(client) => match client.step(server_message)? {
                Some(message) => Ok(LoginStep::Send(message)),
                None => Ok(LoginStep::Done),
            },
            Exchange::Plain { sent: true } => Ok(LoginStep::Done),
            Exchange::Plain { sent } => {
                *sent = true;
                let token = format!("\0{}\0{}", self.credentials.user, self.credentials.password);
                Ok(LoginStep::Send(token.into_bytes()))
            }
        }
    }
}

/// The token in `file`, read now and checked as Kafka's client checks it.
pub fn file_token(file: &TokenFile) -> Result<String, LoginError> {
    let contents = read_token_file(&file.path).map_err(|reason| LoginError::TokenFile {
        path: file.path.display().to_string(),
        reason,
    })?;
    Ok(file.token(&contents)?)
}

fn read_token_file(path: &Path) -> Result<String, String> {
    let mut contents = String::new();
    let opened = std::fs::File::open(path).map_err(|error| error.to_string())?;
    opened
        .take(TOKEN_FILE_BYTES_MAX + 1)
        .read_to_string(&mut contents)
        .map_err(|error| error.to_string())?;
    match contents.len() as u64 > TOKEN_FILE_BYTES_MAX {
        true => Err(format!("larger than {TOKEN_FILE_BYTES_MAX} bytes")),
        false => Ok(contents),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::security::oauthbearer::{InitialResponse, UnsecuredValidator, Validator};
    use crate::security::oauthbearer_login::UnsecuredLogin;
    use crate::security::scram::ScramMechanism;

    fn credentials(mechanism: Mechanism) -> SaslCredentials {
        SaslCredentials {
            mechanism,
            user: "broker".into(),
            password: "secret".into(),
            oauthbearer: None,
        }
    }

    fn unsecured(options: &[(&str, &str)]) -> SaslCredentials {
        let options: Vec<(String, String)> = options
            .iter()
            .map(|(key, value)| (key.to_string(), value.to_string()))
            .collect();
        let login = UnsecuredLogin::from_options(&options).unwrap();
        SaslCredentials {
            oauthbearer: Some(TokenSource::Unsecured(login)),
            ..credentials(Mechanism::OAuthBearer)
        }
    }

    fn sent(step: LoginStep) -> Vec<u8> {
        match step {
            LoginStep::Send(message) => message,
            LoginStep::Done => panic!("expected a message to send"),
        }
    }

    #[test]
    fn plain_sends_one_message_then_is_done() {
        let mut login = SaslLogin::new(&credentials(Mechanism::Plain)).unwrap();
        assert_eq!(login.mechanism(), "PLAIN");
        match login.next(&Bytes::new()).unwrap() {
            LoginStep::Send(message) => assert_eq!(message, b"\0broker\0secret"),
            LoginStep::Done => panic!("PLAIN sends its token first"),
        }
        assert!(matches!(
            login.next(&Bytes::new()).unwrap(),
            LoginStep::Done
        ));
    }

    #[test]
    fn scram_starts_with_the_client_first_message_and_checks_the_server() {
        let mut login =
            SaslLogin::new(&credentials(Mechanism::Scram(ScramMechanism::Sha256))).unwrap();
        match login.next(&Bytes::new()).unwrap() {
            LoginStep::Send(message) => {
                let text = String::from_utf8(message).unwrap();
                assert!(text.starts_with("n,,n=broker,r="), "{text}");
            }
            LoginStep::Done => panic!("SCRAM sends its client-first message first"),
        }
        // A server-first message whose nonce does not extend the client's is refused.
        let bogus = Bytes::from_static(b"r=other,s=c2FsdA==,i=4096");
        assert!(login.next(&bogus).is_err());
    }

    /// Proves OAUTHBEARER sends the initial response with a token made now (accepted by the
    /// broker's unsecured validator) and the extensions, and is done on an empty answer.
    #[test]
    fn oauthbearer_sends_a_fresh_token_and_is_done_on_success() {
        let credentials = unsecured(&[
            ("unsecuredLoginStringClaim_sub", "broker"),
            ("unsecuredLoginExtension_traceId", "42"),
        ]);
        let mut login = SaslLogin::new(&credentials).unwrap();
        assert_eq!(login.mechanism(), "OAUTHBEARER");
        let message = sent(login.next(&Bytes::new()).unwrap());
        let response = InitialResponse::parse(&message).unwrap();
        assert_eq!(
            response.extensions.get("traceId").map(String::as_str),
            Some("42")
        );
        let validator = Validator::Unsecured(UnsecuredValidator {
            principal_claim: "sub".into(),
            scope_claim: "scope".into(),
            required_scope: Vec::new(),
            clock_skew_ms: 0,
        });
        let now_ms = crate::security::wall_clock_ms();
        let token = validator.validate(&response.token, now_ms).unwrap();
        assert_eq!(token.principal, "broker");
        assert!(token.expires_at_ms > now_ms + 3_500_000);
        assert!(matches!(
            login.next(&Bytes::new()).unwrap(),
            LoginStep::Done
        ));
    }

    /// Proves a refused token's challenge is answered with ^A, after which the server's
    /// failure ends the login (an answer without one is an error naming the challenge).
    #[test]
    fn oauthbearer_acknowledges_a_challenge() {
        let credentials = unsecured(&[("unsecuredLoginStringClaim_sub", "broker")]);
        let mut login = SaslLogin::new(&credentials).unwrap();
        sent(login.next(&Bytes::new()).unwrap());
        let challenge = Bytes::from_static(br#"{"status":"invalid_token"}"#);
        assert_eq!(sent(login.next(&challenge).unwrap()), vec![0x01]);
        let error = login.next(&Bytes::new()).err().unwrap().to_string();
        assert!(error.contains("invalid_token"), "{error}");
    }

    /// Proves a token file is read at each login (a replaced token is sent the next time),
    /// and that a missing file or one that is not a token is an error naming it.
    #[test]
    fn oauthbearer_reads_the_token_file_at_each_login() {
        use base64::Engine;
        let encode = |text: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(text);
        let token = |sub: &str| {
            let claims = format!(r#"{{"sub":"{sub}","exp":4000000000}}"#);
            format!(
                "{}.{}.{}",
                encode(r#"{"alg":"RS256"}"#),
                encode(&claims),
                encode("sig")
            )
        };
        let directory = std::env::temp_dir().join(format!("flink-login-{}", std::process::id()));
        std::fs::create_dir_all(&directory).unwrap();
        let path = directory.join("token.jwt");
        let file = TokenFile::new(path.clone(), "sub", "scope", &[]).unwrap();
        let credentials = SaslCredentials {
            oauthbearer: Some(TokenSource::File(file)),
            ..credentials(Mechanism::OAuthBearer)
        };
        let missing = SaslLogin::new(&credentials).err().unwrap().to_string();
        assert!(missing.contains(&path.display().to_string()), "{missing}");
        for sub in ["alice", "bob"] {
            std::fs::write(&path, format!("{}\n", token(sub))).unwrap();
            let message = sent(
                SaslLogin::new(&credentials)
                    .unwrap()
                    .next(&Bytes::new())
                    .unwrap(),
            );
            assert_eq!(InitialResponse::parse(&message).unwrap().token, token(sub));
        }
        std::fs::write(&path, "not a token").unwrap();
        let malformed = SaslLogin::new(&credentials).err().unwrap().to_string();
        assert!(
            malformed.starts_with("Malformed JWT provided"),
            "{malformed}"
        );
        std::fs::remove_dir_all(&directory).unwrap();
    }

    #[test]
    fn oauthbearer_needs_a_token_source() {
        assert!(matches!(
            SaslLogin::new(&credentials(Mechanism::OAuthBearer)),
            Err(LoginError::NoTokenSource)
        ));
    }
}
