//! The admin calls for users' SCRAM credentials, as Kafka's admin client makes them:
//! DescribeUserScramCredentials (mechanisms and iterations, never secrets) and
//! AlterUserScramCredentials, whose upsertions the client salts and hashes itself (a fresh
//! random salt, `Hi(password, salt, iterations)`), so the password never crosses the network.
//! Both go to any broker; a broker forwards an alteration to the controller.

use bytes::Bytes;
use kafka_protocol::messages::alter_user_scram_credentials_request::{
    ScramCredentialDeletion, ScramCredentialUpsertion,
};
use kafka_protocol::messages::describe_user_scram_credentials_request::UserName;
use kafka_protocol::messages::{
    AlterUserScramCredentialsRequest, ApiKey, DescribeUserScramCredentialsRequest,
};
use kafka_protocol::protocol::StrBytes;

use super::cluster::Client;
use super::error::{ClientError, KafkaError};
use crate::security::scram::{salted_password, ScramMechanism};

/// Random bytes of salt per upsertion (Kafka's admin client uses 130 random bits).
pub const SALT_BYTES: usize = 32;

/// One user's credentials as DescribeUserScramCredentials lists them, or the error it got.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserCredentials {
    pub user: String,
    pub outcome: Result<Vec<(ScramMechanism, i32)>, KafkaError>,
}

/// A credential to create or replace: the salted password, never the password itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upsertion {
    pub user: String,
    pub mechanism: ScramMechanism,
    pub iterations: i32,
    pub salt: Vec<u8>,
    pub salted_password: Vec<u8>,
}

impl Upsertion {
    /// Salts and hashes `password` for `user` with a fresh random salt; `None` if the system's
    /// random source failed.
    pub fn new(
        user: &str,
        mechanism: ScramMechanism,
        iterations: i32,
        password: &str,
    ) -> Option<Upsertion> {
        let salt = crate::security::random_bytes::<SALT_BYTES>()?.to_vec();
        Some(Upsertion::with_salt(
            user, mechanism, iterations, password, salt,
        ))
    }

    /// The upsertion for a given salt (tests, and `new`).
    pub fn with_salt(
        user: &str,
        mechanism: ScramMechanism,
        iterations: i32,
        password: &str,
        salt: Vec<u8>,
    ) -> Upsertion {
        // Iterations below 1 are refused by the broker; hashing them once costs nothing.
        let rounds = u32::try_from(iterations).unwrap_or(1);
        let salted_password = salted_password(mechanism, password.as_bytes(), &salt, rounds);
        Upsertion {
            user: user.to_string(),
            mechanism,
            iterations,
            salt,
            salted_password,
        }
    }
}

/// The credentials of `users`, or of every user that has some when `users` is empty, in the
/// broker's order.
pub fn describe_user_scram_credentials(
    client: &mut Client,
    users: &[String],
) -> Result<Vec<UserCredentials>, ClientError> {
    let named = match users.is_empty() {
        true => None,
        false => Some(
            users
                .iter()
                .map(|user| UserName::default().with_name(StrBytes::from_string(user.clone())))
                .collect(),
        ),
    };
    let request = DescribeUserScramCredentialsRequest::default().with_users(named);
    let response = client.send_any(ApiKey::DescribeUserScramCredentials, &request)?;
    let message = response.error_message.as_ref().map(StrBytes::as_str);
    if let Some(error) = KafkaError::with_message(response.error_code, message) {
        return Err(error.into());
    }
    Ok(response
        .results
        .into_iter()
        .map(|result| {
            let message = result.error_message.as_ref().map(StrBytes::as_str);
            let outcome = match KafkaError::with_message(result.error_code, message) {
                Some(error) => Err(error),
                None => Ok(result
                    .credential_infos
                    .iter()
                    .filter_map(|info| {
                        ScramMechanism::from_code(info.mechanism)
                            .map(|mechanism| (mechanism, info.iterations))
                    })
                    .collect()),
            };
            UserCredentials {
                user: result.user.to_string(),
                outcome,
            }
        })
        .collect())
}

/// Deletes and upserts credentials in one request; the first user's error, if any, is the
/// error (the tool alters one user at a time, as Kafka's does).
pub fn alter_user_scram_credentials(
    client: &mut Client,
    deletions: &[(String, ScramMechanism)],
    upsertions: &[Upsertion],
) -> Result<(), ClientError> {
    let request = AlterUserScramCredentialsRequest::default()
        .with_deletions(
            deletions
                .iter()
                .map(|(user, mechanism)| {
                    ScramCredentialDeletion::default()
                        .with_name(StrBytes::from_string(user.clone()))
                        .with_mechanism(mechanism.code())
                })
                .collect(),
        )
        .with_upsertions(
            upsertions
                .iter()
                .map(|upsertion| {
                    ScramCredentialUpsertion::default()
                        .with_name(StrBytes::from_string(upsertion.user.clone()))
                        .with_mechanism(upsertion.mechanism.code())
                        .with_iterations(upsertion.iterations)
                        .with_salt(Bytes::from(upsertion.salt.clone()))
                        .with_salted_password(Bytes::from(upsertion.salted_password.clone()))
                })
                .collect(),
        );
    let response = client.send_any(ApiKey::AlterUserScramCredentials, &request)?;
    for result in response.results {
        let message = result.error_message.as_ref().map(StrBytes::as_str);
        if let Some(error) = KafkaError::with_message(result.error_code, message) {
            return Err(error.into());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::security::scram::{credential, ScramCredential};

    /// Proves an upsertion carries Hi(password, salt, iterations), from which the broker's
    /// stored credential follows, and that fresh upsertions get different salts.
    #[test]
    fn upsertions_are_salted_client_side() {
        let upsertion = Upsertion::with_salt(
            "alice",
            ScramMechanism::Sha256,
            4096,
            "alice-secret",
            b"salt".to_vec(),
        );
        let expected = salted_password(ScramMechanism::Sha256, b"alice-secret", b"salt", 4096);
        assert_eq!(upsertion.salted_password, expected);
        let stored: ScramCredential = credential(
            ScramMechanism::Sha256,
            upsertion.salt.clone(),
            &upsertion.salted_password,
            upsertion.iterations,
        );
        assert_eq!(stored.iterations, 4096);
        let first = Upsertion::new("alice", ScramMechanism::Sha512, 8192, "pw").unwrap();
        let second = Upsertion::new("alice", ScramMechanism::Sha512, 8192, "pw").unwrap();
        assert_eq!(first.salt.len(), SALT_BYTES);
        assert_ne!(first.salt, second.salt);
        assert_eq!(first.salted_password.len(), 64);
    }
}
