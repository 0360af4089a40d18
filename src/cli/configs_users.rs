//! `flink configs --entity-type users`: users' SCRAM credentials, as Kafka's ConfigCommand
//! handles them with `--bootstrap-server`. `--alter --add-config
//! 'SCRAM-SHA-256=[iterations=8192,password=...]'` salts and hashes the password here and sends
//! AlterUserScramCredentials; `--delete-config SCRAM-SHA-512` deletes a mechanism's credential;
//! `--describe` prints Kafka's `SCRAM credential configs for user-principal 'alice' are
//! SCRAM-SHA-256=iterations=8192` line per user (DescribeUserScramCredentials).
//!
//! User quotas (`producer_byte_rate`, ...) are keys Kafka accepts here too, but this cluster has
//! no quota APIs: they are refused after Kafka's own checks, and `--describe` lists no quotas.

use regex::Regex;

use super::{exception_class, Changes, Command, ConfigsError};
use crate::client::cluster::Client;
use crate::client::error::KafkaError;
use crate::client::user_credentials::{
    alter_user_scram_credentials, describe_user_scram_credentials, Upsertion,
};
use crate::security::scram::{ScramMechanism, ITERATIONS_MIN};

/// Kafka's default iterations when a credential names none (or -1).
const ITERATIONS_DEFAULT: i32 = 4096;
/// The user and client quota keys Kafka accepts for users (`QuotaConfig`).
const QUOTA_KEYS: [&str; 4] = [
    "producer_byte_rate",
    "consumer_byte_rate",
    "request_percentage",
    "controller_mutation_rate",
];

/// What an `--alter` of a user does, checked before connecting.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct UserAlteration {
    user: String,
    deletions: Vec<ScramMechanism>,
    /// Mechanism, iterations and password of each credential to set.
    upsertions: Vec<(ScramMechanism, i32, String)>,
}

/// Kafka's checks of a user alteration, in its order and with its messages.
pub(super) fn plan(command: &Command, changes: &Changes) -> Result<UserAlteration, ConfigsError> {
    let is_scram = |key: &str| scram_mechanism(key).is_some();
    let is_quota = |key: &str| QUOTA_KEYS.contains(&key);
    let unknown_additions: Vec<&str> = changes
        .additions
        .keys()
        .map(String::as_str)
        .filter(|key| !is_scram(key) && !is_quota(key))
        .collect();
    if !unknown_additions.is_empty() {
        return Err(ConfigsError::Argument(format!(
            "Only quota and SCRAM credential configs can be added for 'users' using --bootstrap-server. Unexpected config names: {}",
            unknown_additions.join(",")
        )));
    }
    let mut unknown_deletions: Vec<&str> = changes
        .deletions
        .iter()
        .map(String::as_str)
        .filter(|key| !is_scram(key) && !is_quota(key))
        .collect();
    unknown_deletions.sort_unstable();
    unknown_deletions.dedup();
    if !unknown_deletions.is_empty() {
        return Err(ConfigsError::Argument(format!(
            "Only quota and SCRAM credential configs can be deleted for 'users' using --bootstrap-server. Unexpected config names: {}",
            unknown_deletions.join(",")
        )));
    }
    let has_scram = changes.additions.keys().any(|key| is_scram(key))
        || changes.deletions.iter().any(|key| is_scram(key));
    let has_quota = changes.additions.keys().any(|key| is_quota(key))
        || changes.deletions.iter().any(|key| is_quota(key));
    if has_scram && command.entity_names.iter().any(String::is_empty) {
        return Err(ConfigsError::Argument(
            "The use of --entity-default or --user-defaults is not allowed with User SCRAM Credentials using --bootstrap-server.".to_string(),
        ));
    }
    if has_scram && has_quota {
        return Err(ConfigsError::Argument(
            "Cannot alter both quota and SCRAM credential configs simultaneously for 'users' using --bootstrap-server.".to_string(),
        ));
    }
    if has_quota {
        // Kafka's admin client, finding no quota API on the broker.
        return Err(ConfigsError::Argument(
            "The broker does not support DESCRIBE_CLIENT_QUOTAS".to_string(),
        ));
    }
    let user = command.entity_names.first().cloned().unwrap_or_default();
    let deletions = changes
        .deletions
        .iter()
        .filter_map(|key| scram_mechanism(key))
        .collect();
    let mut upsertions = Vec::new();
    for (key, value) in &changes.additions {
        if let Some(mechanism) = scram_mechanism(key) {
            let (iterations, password) = parse_credential(mechanism, value)?;
            upsertions.push((mechanism, iterations, password));
        }
    }
    Ok(UserAlteration {
        user,
        deletions,
        upsertions,
    })
}

/// Sends the alteration and prints Kafka's completion line.
pub(super) fn alter(client: &mut Client, alteration: &UserAlteration) -> Result<(), ConfigsError> {
    let deletions: Vec<(String, ScramMechanism)> = alteration
        .deletions
        .iter()
        .map(|mechanism| (alteration.user.clone(), *mechanism))
        .collect();
    let mut upsertions = Vec::new();
    for (mechanism, iterations, password) in &alteration.upsertions {
        let upsertion = Upsertion::new(&alteration.user, *mechanism, *iterations, password)
            .ok_or_else(|| {
                ConfigsError::Argument(
                    "cannot salt the password: the system's random source failed".to_string(),
                )
            })?;
        upsertions.push(upsertion);
    }
    alter_user_scram_credentials(client, &deletions, &upsertions)?;
    println!("Completed updating config for user {}.", alteration.user);
    Ok(())
}

/// Prints each named user's credentials (every user's without a name); the default entity has
/// none, as in Kafka.
pub(super) fn describe(client: &mut Client, command: &Command) -> Result<(), ConfigsError> {
    if command.entity_names.iter().any(String::is_empty) {
        return Ok(());
    }
    for user in describe_user_scram_credentials(client, &command.entity_names)? {
        println!("{}", describe_line(&user.user, &user.outcome));
    }
    Ok(())
}

/// Kafka's line for one user's credentials, or for the error describing them.
fn describe_line(user: &str, outcome: &Result<Vec<(ScramMechanism, i32)>, KafkaError>) -> String {
    match outcome {
        Ok(credentials) => {
            let listed: Vec<String> = credentials
                .iter()
                .map(|(mechanism, iterations)| format!("{}=iterations={iterations}", mechanism.name()))
                .collect();
            format!(
                "SCRAM credential configs for user-principal '{user}' are {}",
                listed.join(", ")
            )
        }
        Err(error) => format!(
            "Error retrieving SCRAM credential configs for user-principal '{user}': ExecutionException: org.apache.kafka.common.errors.{}: {}",
            exception_class(error),
            error.message()
        ),
    }
}

/// A SCRAM mechanism named exactly as Kafka names it (`SCRAM-SHA-256`; case matters there).
fn scram_mechanism(key: &str) -> Option<ScramMechanism> {
    ScramMechanism::ALL
        .into_iter()
        .find(|mechanism| mechanism.name() == key)
}

/// `[iterations=N,]password=P` as Kafka's ConfigCommand reads it: iterations default to 4096
/// (also for -1) and may not be below the mechanism's minimum.
fn parse_credential(mechanism: ScramMechanism, value: &str) -> Result<(i32, String), ConfigsError> {
    // Kafka's enum constant name, which its message shows.
    let constant = mechanism.name().replace('-', "_");
    let invalid =
        || ConfigsError::Argument(format!("Invalid credential property {constant}={value}"));
    let pattern =
        Regex::new(r"^(?:iterations=(-?[0-9]*),)?password=(.*)$").map_err(|_| invalid())?;
    let captures = pattern.captures(value).ok_or_else(invalid)?;
    let password = captures
        .get(2)
        .map_or("", |found| found.as_str())
        .to_string();
    let iterations = match captures.get(1).map(|found| found.as_str()) {
        None | Some("-1") => ITERATIONS_DEFAULT,
        Some(text) => text
            .parse::<i32>()
            .map_err(|_| ConfigsError::Argument(format!("For input string: \"{text}\"")))?,
    };
    if iterations < ITERATIONS_MIN {
        return Err(ConfigsError::Argument(format!(
            "Iterations {iterations} is less than the minimum {ITERATIONS_MIN} required for {}",
            mechanism.name()
        )));
    }
    Ok((iterations, password))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn command(names: &[&str]) -> Command {
        Command {
            bootstrap_server: "h:1".to_string(),
            alter: true,
            all: false,
            entity_type: super::super::EntityType::Users,
            entity_names: names.iter().map(|name| name.to_string()).collect(),
        }
    }

    fn changes(additions: &[(&str, &str)], deletions: &[&str]) -> Changes {
        Changes {
            additions: additions
                .iter()
                .map(|(key, value)| (key.to_string(), value.to_string()))
                .collect::<BTreeMap<_, _>>(),
            deletions: deletions.iter().map(|key| key.to_string()).collect(),
        }
    }

    fn message(names: &[&str], additions: &[(&str, &str)], deletions: &[&str]) -> String {
        match plan(&command(names), &changes(additions, deletions)) {
            Ok(plan) => format!("ok {plan:?}"),
            Err(error) => error.to_string(),
        }
    }

    /// Proves credentials parse as Kafka's pattern reads them: iterations optional (4096, also
    /// for -1), the password the rest of the value, commas and equals signs included.
    #[test]
    fn credentials_parse_as_kafka_reads_them() {
        let plan = plan(
            &command(&["alice"]),
            &changes(
                &[
                    ("SCRAM-SHA-256", "iterations=8192,password=alice-secret"),
                    ("SCRAM-SHA-512", "password=a,b=c"),
                ],
                &[],
            ),
        )
        .unwrap();
        assert_eq!(
            plan.upsertions,
            vec![
                (ScramMechanism::Sha256, 8192, "alice-secret".to_string()),
                (ScramMechanism::Sha512, 4096, "a,b=c".to_string()),
            ]
        );
        let plan = super::plan(&command(&["alice"]), &changes(&[], &["SCRAM-SHA-512"])).unwrap();
        assert_eq!(plan.deletions, vec![ScramMechanism::Sha512]);
        assert_eq!(
            parse_credential(ScramMechanism::Sha256, "iterations=-1,password=p").unwrap(),
            (4096, "p".to_string())
        );
    }

    /// Proves each refusal of Kafka's ConfigCommand for users comes with its message.
    #[test]
    fn refusals_carry_kafkas_messages() {
        /// Entity names, configs to add, configs to delete, and Kafka's message.
        type Case<'a> = (
            &'a [&'a str],
            &'a [(&'a str, &'a str)],
            &'a [&'a str],
            &'a str,
        );
        let cases: &[Case] = &[
            (&["alice"], &[("retention.ms", "1")], &[], "Only quota and SCRAM credential configs can be added for 'users' using --bootstrap-server. Unexpected config names: retention.ms"),
            (&["alice"], &[], &["scram-sha-256"], "Only quota and SCRAM credential configs can be deleted for 'users' using --bootstrap-server. Unexpected config names: scram-sha-256"),
            (&[""], &[("SCRAM-SHA-256", "password=p")], &[], "The use of --entity-default or --user-defaults is not allowed with User SCRAM Credentials using --bootstrap-server."),
            (&["alice"], &[("SCRAM-SHA-256", "password=p"), ("producer_byte_rate", "1024")], &[], "Cannot alter both quota and SCRAM credential configs simultaneously for 'users' using --bootstrap-server."),
            (&["alice"], &[("SCRAM-SHA-256", "iterations=1000,password=p")], &[], "Iterations 1000 is less than the minimum 4096 required for SCRAM-SHA-256"),
            (&["alice"], &[("SCRAM-SHA-512", "secret")], &[], "Invalid credential property SCRAM_SHA_512=secret"),
        ];
        for (names, additions, deletions, expected) in cases {
            assert_eq!(message(names, additions, deletions), *expected);
        }
    }

    /// Proves the describe lines are Kafka's, for credentials and for an error.
    #[test]
    fn describe_lines_match_kafka() {
        let listed = Ok(vec![
            (ScramMechanism::Sha256, 8192),
            (ScramMechanism::Sha512, 4096),
        ]);
        assert_eq!(
            describe_line("alice", &listed),
            "SCRAM credential configs for user-principal 'alice' are SCRAM-SHA-256=iterations=8192, SCRAM-SHA-512=iterations=4096"
        );
        let missing = KafkaError::with_message(
            91,
            Some("Attempt to describe a user credential that does not exist: bob"),
        )
        .unwrap();
        assert_eq!(
            describe_line("bob", &Err(missing)),
            "Error retrieving SCRAM credential configs for user-principal 'bob': ExecutionException: org.apache.kafka.common.errors.ResourceNotFoundException: Attempt to describe a user credential that does not exist: bob"
        );
    }
}
