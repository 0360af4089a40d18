//! `flink storage format --add-scram` (Kafka's KIP-900): SCRAM credentials for the bootstrap
//! metadata, so they exist from the cluster's first moment (SCRAM between brokers before any
//! broker is up, users able to log in on first start).
//!
//! Each argument is Kafka's: `SCRAM-SHA-256=[name=alice,password=alice-secret]`, or with the
//! salt and salted password given (base64) instead of the password,
//! `SCRAM-SHA-512=[name=alice,iterations=8192,salt="N3E=",saltedpassword="YCE="]`. The checks
//! and their messages are those of Kafka's `ScramParser`; a password is salted here with a fresh
//! random salt and only the derived keys are kept. The result is one `user_configs` record per
//! user, the record AlterUserScramCredentials makes.

use std::collections::BTreeMap;

use base64::alphabet::STANDARD;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::DecodePaddingMode;
use base64::Engine;

use crate::client::user_credentials::{Upsertion, SALT_BYTES};
use crate::controller::metadata_log::MetadataRecord;
use crate::security::scram::{self, ScramMechanism, ITERATIONS_DEFAULT};

/// Java's basic base64 decoder: the standard alphabet, padding optional.
const BASE64: GeneralPurpose = GeneralPurpose::new(
    &STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum AddScramError {
    #[error("Failed to find equals sign in SCRAM argument '{0}'")]
    NoEquals(String),
    #[error("The add-scram mechanism {0} is not supported.")]
    UnknownMechanism(String),
    #[error("Expected configuration string to start with [")]
    NoOpeningBracket,
    #[error("Expected configuration string to end with ]")]
    NoClosingBracket,
    #[error("No equals sign found in SCRAM component: {0}")]
    NoComponentEquals(String),
    #[error("You must supply 'name' to add-scram")]
    NoName,
    /// Kafka takes an empty name; no client can log in as one, and AlterUserScramCredentials
    /// refuses it with this message.
    #[error("Username must not be empty")]
    EmptyName,
    #[error("Failed to decode given salt: {0}")]
    BadSalt(String),
    #[error("Failed to parse iterations count: {0}")]
    BadIterations(String),
    #[error("You must supply one of 'password' or 'saltedpassword' to add-scram")]
    NoPassword,
    #[error("You must supply 'salt' with 'saltedpassword' to add-scram")]
    SaltedPasswordWithoutSalt,
    #[error("Failed to decode given saltedPassword: {0}")]
    BadSaltedPassword(String),
    #[error("Unknown SCRAM configurations: {0}")]
    UnknownKeys(String),
    #[error("The 'iterations' value must be >= {} for add-scram using {}", scram::ITERATIONS_MIN, enum_name(*.0))]
    TooFewIterations(ScramMechanism),
    #[error("The 'iterations' value must be <= {} for add-scram using {}", scram::ITERATIONS_MAX, enum_name(*.0))]
    TooManyIterations(ScramMechanism),
    /// Kafka takes any length; a salted password of another length can match no password, and
    /// AlterUserScramCredentials refuses it with this message.
    #[error("Invalid salt or salted password for {}", .0.name())]
    InvalidSaltedPassword(ScramMechanism),
    #[error("cannot salt the password: the system's random source failed")]
    NoRandomness,
}

/// What one `--add-scram` argument gives, before a missing salt is drawn.
#[derive(Debug, PartialEq, Eq)]
pub struct ScramArgument {
    pub mechanism: ScramMechanism,
    pub name: String,
    pub salt: Option<Vec<u8>>,
    pub iterations: i32,
    pub secret: Secret,
}

#[derive(Debug, PartialEq, Eq)]
pub enum Secret {
    Password(String),
    SaltedPassword(Vec<u8>),
}

/// The bootstrap records of `arguments`: one `user_configs` record per user, holding the
/// credential of each mechanism given (the last, when a user's mechanism is given twice, as
/// replaying Kafka's records keeps the last).
pub fn records(arguments: &[String]) -> Result<Vec<MetadataRecord>, AddScramError> {
    let mut users: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    for argument in arguments {
        let parsed = parse(argument)?;
        let credential = credential(&parsed, random_salt)?;
        users
            .entry(parsed.name)
            .or_default()
            .insert(parsed.mechanism.name().to_string(), credential.to_config());
    }
    Ok(users
        .into_iter()
        .map(|(user, configs)| MetadataRecord::UserConfigs { user, configs })
        .collect())
}

/// Parses one argument as Kafka's `ScramParser` does (its checks in its order).
pub fn parse(argument: &str) -> Result<ScramArgument, AddScramError> {
    let argument = argument.trim();
    let (mechanism, config) = argument
        .split_once('=')
        .ok_or_else(|| AddScramError::NoEquals(argument.to_string()))?;
    let mechanism = ScramMechanism::ALL
        .into_iter()
        .find(|known| known.name() == mechanism)
        .ok_or_else(|| AddScramError::UnknownMechanism(mechanism.to_string()))?;
    let config = config
        .strip_prefix('[')
        .ok_or(AddScramError::NoOpeningBracket)?;
    let config = config
        .strip_suffix(']')
        .ok_or(AddScramError::NoClosingBracket)?;
    let mut components = BTreeMap::new();
    for component in java_split(config) {
        let (key, value) = component
            .split_once('=')
            .ok_or_else(|| AddScramError::NoComponentEquals(component.to_string()))?;
        components.insert(key, unquote(value));
    }
    let name = components.remove("name").ok_or(AddScramError::NoName)?;
    if name.is_empty() {
        return Err(AddScramError::EmptyName);
    }
    let salt = match components.remove("salt") {
        None => None,
        Some(text) => Some(
            BASE64
                .decode(text)
                .map_err(|_| AddScramError::BadSalt(text.to_string()))?,
        ),
    };
    let iterations = match components.remove("iterations") {
        None => ITERATIONS_DEFAULT,
        Some(text) => text
            .parse()
            .map_err(|_| AddScramError::BadIterations(text.to_string()))?,
    };
    let secret = match (
        components.remove("password"),
        components.remove("saltedpassword"),
    ) {
        (Some(password), _) => Secret::Password(password.to_string()),
        (None, None) => return Err(AddScramError::NoPassword),
        (None, Some(_)) if salt.is_none() => return Err(AddScramError::SaltedPasswordWithoutSalt),
        (None, Some(text)) => Secret::SaltedPassword(
            BASE64
                .decode(text)
                .map_err(|_| AddScramError::BadSaltedPassword(text.to_string()))?,
        ),
    };
    if !components.is_empty() {
        let keys: Vec<&str> = components.into_keys().collect();
        return Err(AddScramError::UnknownKeys(keys.join(", ")));
    }
    Ok(ScramArgument {
        mechanism,
        name: name.to_string(),
        salt,
        iterations,
        secret,
    })
}

/// The stored credential of a parsed argument, `random_salt` drawing the salt when none was
/// given; the iterations are checked first, as Kafka checks them.
pub fn credential(
    argument: &ScramArgument,
    random_salt: fn() -> Option<Vec<u8>>,
) -> Result<scram::ScramCredential, AddScramError> {
    let mechanism = argument.mechanism;
    let salt = match &argument.salt {
        Some(salt) => salt.clone(),
        None => random_salt().ok_or(AddScramError::NoRandomness)?,
    };
    if argument.iterations < scram::ITERATIONS_MIN {
        return Err(AddScramError::TooFewIterations(mechanism));
    }
    if argument.iterations > scram::ITERATIONS_MAX {
        return Err(AddScramError::TooManyIterations(mechanism));
    }
    let salted_password = match &argument.secret {
        Secret::SaltedPassword(salted) => salted.clone(),
        Secret::Password(password) => {
            Upsertion::with_salt(
                &argument.name,
                mechanism,
                argument.iterations,
                password,
                salt.clone(),
            )
            .salted_password
        }
    };
    if salt.is_empty() || salted_password.len() != mechanism.hash_bytes() {
        return Err(AddScramError::InvalidSaltedPassword(mechanism));
    }
    Ok(scram::credential(
        mechanism,
        salt,
        &salted_password,
        argument.iterations,
    ))
}

fn random_salt() -> Option<Vec<u8>> {
    crate::security::random_bytes::<SALT_BYTES>().map(|salt| salt.to_vec())
}

/// Java's `ScramMechanism` constant name (`SCRAM_SHA_256`), which Kafka's messages print.
fn enum_name(mechanism: ScramMechanism) -> String {
    mechanism.name().replace('-', "_")
}

/// `text.split(",")` as Java splits: trailing empty pieces are dropped, and text without a
/// comma is one piece (so an empty string is one empty piece).
fn java_split(text: &str) -> Vec<&str> {
    let mut pieces: Vec<&str> = text.split(',').collect();
    if pieces.len() > 1 {
        while pieces.last() == Some(&"") {
            pieces.pop();
        }
    }
    pieces
}

/// A value in double quotes loses them (`salt="N3E="`).
fn unquote(value: &str) -> &str {
    match value.len() >= 2 && value.starts_with('"') && value.ends_with('"') {
        true => &value[1..value.len() - 1],
        false => value,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixed_salt() -> Option<Vec<u8>> {
        Some(b"fixed salt".to_vec())
    }

    fn error_of(argument: &str) -> String {
        match parse(argument).and_then(|parsed| credential(&parsed, fixed_salt)) {
            Ok(parsed) => panic!("{argument} was accepted: {parsed:?}"),
            Err(error) => error.to_string(),
        }
    }

    /// Kafka's help examples parse: a password with the default iterations, and a salt and
    /// salted password in quotes with iterations.
    #[test]
    fn parses_kafkas_examples() {
        let parsed = parse("SCRAM-SHA-256=[name=alice,password=alice-secret]").unwrap();
        assert_eq!(
            parsed,
            ScramArgument {
                mechanism: ScramMechanism::Sha256,
                name: "alice".to_string(),
                salt: None,
                iterations: 4096,
                secret: Secret::Password("alice-secret".to_string()),
            }
        );
        let parsed = parse(
            r#" SCRAM-SHA-512=[name=alice,iterations=8192,salt="N3E=",saltedpassword="YCE="] "#,
        )
        .unwrap();
        assert_eq!(parsed.mechanism, ScramMechanism::Sha512);
        assert_eq!(parsed.iterations, 8192);
        assert_eq!(parsed.salt, Some(b"7q".to_vec()));
        assert_eq!(parsed.secret, Secret::SaltedPassword(b"`!".to_vec()));
        // Padding is optional, as for Java's decoder; a password may hold '=' and quotes.
        let parsed = parse(r#"SCRAM-SHA-512=[name=bob,salt=N3E,password="a=b"]"#).unwrap();
        assert_eq!(parsed.salt, Some(b"7q".to_vec()));
        assert_eq!(parsed.secret, Secret::Password("a=b".to_string()));
    }

    /// Every refusal is Kafka's, with its wording.
    #[test]
    fn refuses_as_kafka_does() {
        let cases = [
            (
                "SCRAM-SHA-256",
                "Failed to find equals sign in SCRAM argument 'SCRAM-SHA-256'",
            ),
            (
                "SCRAM-SHA-1=[name=a,password=b]",
                "The add-scram mechanism SCRAM-SHA-1 is not supported.",
            ),
            (
                "scram-sha-256=[name=a,password=b]",
                "The add-scram mechanism scram-sha-256 is not supported.",
            ),
            (
                "SCRAM-SHA-256=name=a,password=b]",
                "Expected configuration string to start with [",
            ),
            (
                "SCRAM-SHA-256=[name=a,password=b",
                "Expected configuration string to end with ]",
            ),
            (
                "SCRAM-SHA-256=[]",
                "No equals sign found in SCRAM component: ",
            ),
            (
                "SCRAM-SHA-256=[name=a,password]",
                "No equals sign found in SCRAM component: password",
            ),
            (
                "SCRAM-SHA-256=[password=b]",
                "You must supply 'name' to add-scram",
            ),
            (
                "SCRAM-SHA-256=[name=,password=b]",
                "Username must not be empty",
            ),
            (
                "SCRAM-SHA-256=[name=a,salt=!!,password=b]",
                "Failed to decode given salt: !!",
            ),
            (
                "SCRAM-SHA-256=[name=a,iterations=many,password=b]",
                "Failed to parse iterations count: many",
            ),
            (
                "SCRAM-SHA-256=[name=a]",
                "You must supply one of 'password' or 'saltedpassword' to add-scram",
            ),
            (
                "SCRAM-SHA-256=[name=a,saltedpassword=YCE=]",
                "You must supply 'salt' with 'saltedpassword' to add-scram",
            ),
            (
                "SCRAM-SHA-256=[name=a,salt=N3E=,saltedpassword=?]",
                "Failed to decode given saltedPassword: ?",
            ),
            (
                "SCRAM-SHA-256=[name=a,password=b,user=c,extra=d]",
                "Unknown SCRAM configurations: extra, user",
            ),
            (
                "SCRAM-SHA-256=[name=a,iterations=4095,password=b]",
                "The 'iterations' value must be >= 4096 for add-scram using SCRAM_SHA_256",
            ),
            (
                "SCRAM-SHA-512=[name=a,iterations=16385,password=b]",
                "The 'iterations' value must be <= 16384 for add-scram using SCRAM_SHA_512",
            ),
            (
                "SCRAM-SHA-256=[name=a,salt=N3E=,saltedpassword=YCE=]",
                "Invalid salt or salted password for SCRAM-SHA-256",
            ),
        ];
        for (argument, message) in cases {
            assert_eq!(error_of(argument), message, "{argument}");
        }
    }

    /// A password is salted and hashed with the given iterations: the credential is the one
    /// AlterUserScramCredentials stores for the same salted password, and one given as salt and
    /// salted password is kept as it is.
    #[test]
    fn derives_the_stored_credential() {
        let parsed =
            parse("SCRAM-SHA-256=[name=alice,iterations=8192,password=alice-secret]").unwrap();
        let made = credential(&parsed, fixed_salt).unwrap();
        let salted =
            scram::salted_password(ScramMechanism::Sha256, b"alice-secret", b"fixed salt", 8192);
        let expected = scram::credential(
            ScramMechanism::Sha256,
            b"fixed salt".to_vec(),
            &salted,
            8192,
        );
        assert_eq!(made, expected);
        let given = format!(
            "SCRAM-SHA-256=[name=alice,iterations=8192,salt={},saltedpassword={}]",
            BASE64.encode(b"fixed salt"),
            BASE64.encode(&salted)
        );
        let parsed = parse(&given).unwrap();
        assert_eq!(credential(&parsed, || None).unwrap(), expected);
    }

    /// One record per user, holding each mechanism given; a mechanism given twice keeps the last.
    #[test]
    fn groups_credentials_by_user() {
        let arguments = [
            "SCRAM-SHA-256=[name=bob,password=first]",
            "SCRAM-SHA-512=[name=alice,password=alice-secret]",
            "SCRAM-SHA-256=[name=alice,iterations=8192,password=alice-secret]",
            "SCRAM-SHA-256=[name=bob,iterations=5000,password=second]",
        ]
        .map(String::from);
        let made = records(&arguments).unwrap();
        let summary: Vec<(String, Vec<(String, i32)>)> = made
            .iter()
            .map(|record| match record {
                MetadataRecord::UserConfigs { user, configs } => (
                    user.clone(),
                    configs
                        .iter()
                        .map(|(mechanism, value)| {
                            let stored = scram::ScramCredential::from_config(value).unwrap();
                            (mechanism.clone(), stored.iterations)
                        })
                        .collect(),
                ),
                other => panic!("unexpected record {other:?}"),
            })
            .collect();
        assert_eq!(
            summary,
            vec![
                (
                    "alice".to_string(),
                    vec![
                        ("SCRAM-SHA-256".to_string(), 8192),
                        ("SCRAM-SHA-512".to_string(), 4096)
                    ]
                ),
                ("bob".to_string(), vec![("SCRAM-SHA-256".to_string(), 5000)]),
            ]
        );
        assert_eq!(records(&[]).unwrap(), Vec::new());
        assert!(records(&["SCRAM-SHA-256=[name=a]".to_string()]).is_err());
    }
}
