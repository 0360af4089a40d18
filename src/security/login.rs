//! A SASL login from the client's side, whatever carries its messages: the tools' client
//! (`client::sasl`) and this broker's own links (`runtime::peer`) both send what `next` gives in
//! SaslAuthenticate requests and feed it the answers. PLAIN is one message (RFC 4616); SCRAM is
//! `scram::ScramClient`'s exchange, which also checks that the server knows the credential.

use bytes::Bytes;

use crate::client::security::SaslCredentials;
use crate::config::security::Mechanism;
use crate::security::scram::{ClientStep, ScramClient, ScramError};

/// Random bytes in a SCRAM client nonce (base64 without padding: 32 characters).
const CLIENT_NONCE_BYTES: usize = 24;

#[derive(Debug, thiserror::Error)]
pub enum LoginError {
    #[error("no SCRAM nonce: the system's random source failed")]
    NoNonce,
    #[error("this client does not support {0}")]
    Unsupported(&'static str),
    #[error(transparent)]
    Scram(#[from] ScramError),
}

/// One SASL login as a client, independent of how its messages travel: `next` takes the
/// server's last message (nothing at first) and gives the next one to send, until the login is
/// done.
pub struct SaslLogin {
    credentials: SaslCredentials,
    scram: Option<ScramClient>,
    sent_plain: bool,
}

/// What the login does next.
pub enum LoginStep {
    Send(Vec<u8>),
    Done,
}

impl SaslLogin {
    pub fn new(credentials: &SaslCredentials) -> Result<SaslLogin, LoginError> {
        let scram = match credentials.mechanism {
            Mechanism::Scram(mechanism) => {
                use base64::Engine;
                let nonce = crate::security::random_bytes::<CLIENT_NONCE_BYTES>()
                    .ok_or(LoginError::NoNonce)?;
                let nonce = base64::engine::general_purpose::STANDARD.encode(nonce);
                Some(ScramClient::new(
                    mechanism,
                    &credentials.user,
                    &credentials.password,
                    &nonce,
                ))
            }
            Mechanism::Plain => None,
            Mechanism::OAuthBearer => return Err(LoginError::Unsupported("OAUTHBEARER")),
        };
        Ok(SaslLogin {
            credentials: credentials.clone(),
            scram,
            sent_plain: false,
        })
    }

    pub fn mechanism(&self) -> &'static str {
        self.credentials.mechanism.name()
    }

    pub fn user(&self) -> &str {
        &self.credentials.user
    }

    pub fn next(&mut self, server_message: &Bytes) -> Result<LoginStep, LoginError> {
        match &mut self.scram {
            Some(scram) => match scram.step(server_message)? {
                ClientStep::Send(message) => Ok(LoginStep::Send(message)),
                ClientStep::Done => Ok(LoginStep::Done),
            },
            None if self.sent_plain => Ok(LoginStep::Done),
            None => {
                self.sent_plain = true;
                let token = format!("\0{}\0{}", self.credentials.user, self.credentials.password);
                Ok(LoginStep::Send(token.into_bytes()))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::security::scram::ScramMechanism;

    fn credentials(mechanism: Mechanism) -> SaslCredentials {
        SaslCredentials {
            mechanism,
            user: "broker".into(),
            password: "secret".into(),
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

    #[test]
    fn oauthbearer_is_not_a_login_of_this_client() {
        assert!(matches!(
            SaslLogin::new(&credentials(Mechanism::OAuthBearer)),
            Err(LoginError::Unsupported("OAUTHBEARER"))
        ));
    }
}
