//! SASL on a client connection, as Kafka's `SaslClientAuthenticator` runs it once ApiVersions
//! has been answered: SaslHandshake (v1) names the mechanism, then SaslAuthenticate (v0-2)
//! frames carry the mechanism's messages (`security::login::SaslLogin`: PLAIN's one, SCRAM's
//! two round trips, which also check that the broker knows the credential, or OAUTHBEARER's
//! token, whose refusal the broker's challenge, acknowledged, turns into its error).
//! A refusal is an `Authentication` error carrying the broker's message, which no caller
//! retries: a wrong password stays wrong.

use bytes::Bytes;
use kafka_protocol::messages::{ApiKey, SaslAuthenticateRequest, SaslHandshakeRequest};
use kafka_protocol::protocol::StrBytes;

use super::connection::Connection;
use super::error::{ClientError, KafkaError};
use super::security::SaslCredentials;
use crate::config::security::Mechanism;
use crate::security::login::{LoginStep, SaslLogin};

/// Kafka's UNSUPPORTED_SASL_MECHANISM error code.
const UNSUPPORTED_SASL_MECHANISM: i16 = 33;

/// Authenticates `connection` with `credentials`.
pub(super) fn authenticate(
    connection: &mut Connection,
    credentials: &SaslCredentials,
) -> Result<(), ClientError> {
    let mut login =
        SaslLogin::new(credentials).map_err(|error| refused(connection, error.to_string()))?;
    handshake(connection, credentials.mechanism)?;
    // Three steps at most: SCRAM's client-first and client-final, then the server's signature.
    let mut server_message = Bytes::new();
    loop {
        let step = login
            .next(&server_message)
            .map_err(|error| refused(connection, error.to_string()))?;
        match step {
            LoginStep::Send(message) => server_message = exchange(connection, message)?,
            LoginStep::Done => return Ok(()),
        }
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
