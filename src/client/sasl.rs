//! SASL on a client connection, as Kafka's `SaslClientAuthenticator` runs it once ApiVersions
//! has been answered: SaslHandshake (v1) names the mechanism, then SaslAuthenticate (v0-2)
//! frames carry the mechanism's messages: PLAIN's one (RFC 4616), or SCRAM's two round trips
//! (`security::scram::ScramClient`, which also checks that the broker knows the credential).
//! A refusal is an `Authentication` error carrying the broker's message, which no caller
//! retries: a wrong password stays wrong.

use bytes::Bytes;
use kafka_protocol::messages::{ApiKey, SaslAuthenticateRequest, SaslHandshakeRequest};
use kafka_protocol::protocol::StrBytes;

use super::connection::Connection;
use super::error::{ClientError, KafkaError};
use super::security::SaslCredentials;
use crate::config::security::Mechanism;
use crate::security::scram::{ClientStep, ScramClient};

/// Kafka's UNSUPPORTED_SASL_MECHANISM error code.
const UNSUPPORTED_SASL_MECHANISM: i16 = 33;
/// Random bytes in a SCRAM client nonce (base64 without padding: 32 characters).
const CLIENT_NONCE_BYTES: usize = 24;

/// Authenticates `connection` with `credentials`.
pub(super) fn authenticate(
    connection: &mut Connection,
    credentials: &SaslCredentials,
) -> Result<(), ClientError> {
    handshake(connection, credentials.mechanism)?;
    match credentials.mechanism {
        Mechanism::Plain => {
            let token = format!("\0{}\0{}", credentials.user, credentials.password);
            exchange(connection, token.into_bytes()).map(|_| ())
        }
        Mechanism::Scram(mechanism) => {
            let nonce = client_nonce(connection)?;
            let mut client =
                ScramClient::new(mechanism, &credentials.user, &credentials.password, &nonce);
            // Three steps at most: the client-first, the client-final, the server's signature.
            let mut server_message = Bytes::new();
            loop {
                let step = client
                    .step(&server_message)
                    .map_err(|error| refused(connection, error.to_string()))?;
                match step {
                    ClientStep::Send(message) => server_message = exchange(connection, message)?,
                    ClientStep::Done => return Ok(()),
                }
            }
        }
        // The tools' properties refuse it (`client::security`); a broker's mechanism only.
        Mechanism::OAuthBearer => Err(refused(
            connection,
            "this client does not support OAUTHBEARER".to_string(),
        )),
    }
}

fn handshake(connection: &mut Connection, mechanism: Mechanism) -> Result<(), ClientError> {
    let request =
        SaslHandshakeRequest::default().with_mechanism(StrBytes::from_static_str(mechanism.name()));
    let response = connection.send(ApiKey::SaslHandshake, &request)?;
    match response.error_code {
        0 => Ok(()),
        UNSUPPORTED_SASL_MECHANISM => {
            let enabled: Vec<&str> = response.mechanisms.iter().map(|m| m.as_str()).collect();
            Err(refused(
                connection,
                format!(
                    "Client SASL mechanism '{}' not enabled in the server, enabled mechanisms are [{}]",
                    mechanism.name(),
                    enabled.join(", ")
                ),
            ))
        }
        code => Err(refused(
            connection,
            KafkaError::new(code).message().to_string(),
        )),
    }
}

/// Sends one SASL message and returns the broker's answer; a refusal carries Kafka's message.
fn exchange(connection: &mut Connection, message: Vec<u8>) -> Result<Bytes, ClientError> {
    let request = SaslAuthenticateRequest::default().with_auth_bytes(Bytes::from(message));
    let response = connection.send(ApiKey::SaslAuthenticate, &request)?;
    let error = KafkaError::with_message(
        response.error_code,
        response
            .error_message
            .as_ref()
            .map(|message| message.as_str()),
    );
    match error {
        None => Ok(response.auth_bytes),
        Some(error) => Err(refused(connection, error.message().to_string())),
    }
}

fn refused(connection: &Connection, message: String) -> ClientError {
    ClientError::Authentication {
        address: connection.address().to_string(),
        message,
    }
}

/// A fresh client nonce: random bytes from the system in base64 (no ',').
fn client_nonce(connection: &Connection) -> Result<String, ClientError> {
    use base64::Engine;
    let bytes = crate::security::random_bytes::<CLIENT_NONCE_BYTES>().ok_or_else(|| {
        refused(
            connection,
            "no SCRAM nonce: the system's random source failed".to_string(),
        )
    })?;
    Ok(base64::engine::general_purpose::STANDARD.encode(bytes))
}
