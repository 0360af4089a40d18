//! `flink configs --entity-type users`: users' SCRAM credentials, as Kafka's ConfigCommand
//! handles them with `--bootstrap-server`. `--alter --add-config
//! 'SCRAM-SHA-256=[iterations=8192,password=...]'` salts and hashes the password here and sends
//! AlterUserScramCredentials; `--delete-config SCRAM-SHA-512` deletes a mechanism's credential;
//! `--describe` prints Kafka's `SCRAM credential configs for user-principal 'alice' are
//! SCRAM-SHA-256=iterations=8192` line per user (DescribeUserScramCredentials).
//!
//! `plan` also makes Kafka's checks of the keys given for users and clients, which may hold
//! quotas (`producer_byte_rate`, ...): an alteration of quotas goes to `quotas`, never mixed
//! with one of credentials.

use regex::Regex;

use super::{exception_class, Changes, Command, ConfigsError, EntityType};
use crate::cli::jvm_text::{array_buffer, scala_map_order, scala_set, SCALA_SMALL_COLLECTION_MAX};
use crate::client::cluster::Client;
use crate::client::error::KafkaError;
use crate::client::user_credentials::{
    alter_user_scram_credentials, describe_user_scram_credentials, Upsertion,
};
use crate::quota::{
    CONSUMER_BYTE_RATE, CONTROLLER_MUTATION_RATE, PRODUCER_BYTE_RATE, REQUEST_PERCENTAGE,
};
use crate::security::scram::{ScramMechanism, ITERATIONS_DEFAULT, ITERATIONS_MIN};

/// The user and client quota keys Kafka accepts for users and clients (`QuotaConfig`).
const QUOTA_KEYS: [&str; 4] = [
    PRODUCER_BYTE_RATE,
    CONSUMER_BYTE_RATE,
    REQUEST_PERCENTAGE,
    CONTROLLER_MUTATION_RATE,
];
/// RESOURCE_NOT_FOUND: a user without credentials, which Kafka's tool does not list.
const RESOURCE_NOT_FOUND: i16 = 91;

/// What an `--alter` of a user's credentials does, checked before connecting.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct ScramAlteration {
    user: String,
    deletions: Vec<ScramMechanism>,
    /// Mechanism, iterations and password of each credential to set.
    upsertions: Vec<(ScramMechanism, i32, String)>,
}

/// Kafka's checks of the keys of a user or client alteration, in its order and with its
/// messages (Scala's collections printed as Scala prints them). `None` when the alteration is
/// of quotas.
pub(super) fn plan(
    command: &Command,
    changes: &Changes,
) -> Result<Option<ScramAlteration>, ConfigsError> {
    let is_scram = |key: &str| scram_mechanism(key).is_some();
    let is_quota = |key: &str| QUOTA_KEYS.contains(&key);
    let is_unknown = |key: &str| !is_scram(key) && !is_quota(key);
    let keys = scala_map_order(changes.keys().map(str::to_string).collect());
    let pick = |wanted: &dyn Fn(&str) -> bool| -> Vec<String> {
        keys.iter().filter(|key| wanted(key)).cloned().collect()
    };
    let pick_deletions = |wanted: &dyn Fn(&str) -> bool| -> Vec<String> {
        let deletions = changes.deletions.iter();
        deletions.filter(|key| wanted(key)).cloned().collect()
    };
    let (unknown_additions, scram_additions) = (pick(&is_unknown), pick(&is_scram));
    let (unknown_deletions, scram_deletions) =
        (pick_deletions(&is_unknown), pick_deletions(&is_scram));
    let has_quota = keys
        .iter()
        .chain(&changes.deletions)
        .any(|key| is_quota(key));
    let has_scram = !scram_additions.is_empty() || !scram_deletions.is_empty();
    let of_clients = command.entity_type == EntityType::Clients || command.entity_types.len() == 2;
    if of_clients && !(unknown_additions.is_empty() && scram_additions.is_empty()) {
        // A small set adds the SCRAM keys after the others; a larger one is a hash trie.
        let names = match keys.len() <= SCALA_SMALL_COLLECTION_MAX {
            true => [unknown_additions, scram_additions].concat(),
            false => pick(&|key: &str| !is_quota(key)),
        };
        return Err(ConfigsError::Argument(format!(
            "Only quota configs can be added for 'clients' using --bootstrap-server. Unexpected config names: {}",
            scala_set(&names)
        )));
    }
    if of_clients && !(unknown_deletions.is_empty() && scram_deletions.is_empty()) {
        return Err(ConfigsError::Argument(format!(
            "Only quota configs can be deleted for 'clients' using --bootstrap-server. Unexpected config names: {}",
            array_buffer(&[unknown_deletions, scram_deletions].concat())
        )));
    }
    if !unknown_additions.is_empty() {
        return Err(ConfigsError::Argument(format!(
            "Only quota and SCRAM credential configs can be added for 'users' using --bootstrap-server. Unexpected config names: {}",
            scala_set(&unknown_additions)
        )));
    }
    if !unknown_deletions.is_empty() {
        return Err(ConfigsError::Argument(format!(
            "Only quota and SCRAM credential configs can be deleted for 'users' using --bootstrap-server. Unexpected config names: {}",
            array_buffer(&unknown_deletions)
        )));
    }
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
        return Ok(None);
    }
    let user = command.entity_names.first().cloned().unwrap_or_default();
    let deletions = scram_deletions
        .iter()
        .filter_map(|key| scram_mechanism(key))
        .collect();
    let mut upsertions = Vec::new();
    for key in &scram_additions {
        if let (Some(mechanism), Some(value)) = (scram_mechanism(key), changes.value(key)) {
            let (iterations, password) = parse_credential(mechanism, value)?;
            upsertions.push((mechanism, iterations, password));
        }
    }
    Ok(Some(ScramAlteration {
        user,
        deletions,
        upsertions,
    }))
}

/// Sends the alteration of one user's credentials.
pub(super) fn alter(client: &mut Client, alteration: &ScramAlteration) -> Result<(), ConfigsError> {
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
    Ok(())
}

/// Prints each named user's credentials (every user's without a name). A user without
/// credentials is left out, as Kafka's admin client leaves it out of the users described.
pub(super) fn describe(client: &mut Client, command: &Command) -> Result<(), ConfigsError> {
    for user in describe_user_scram_credentials(client, &command.entity_names)? {
        let missing = matches!(&user.outcome, Err(error) if error.code == RESOURCE_NOT_FOUND);
        if !missing {
            println!("{}", describe_line(&user.user, &user.outcome));
        }
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
    use super::*;

    fn command(names: &[&str]) -> Command {
        command_of(&[EntityType::Users], names)
    }

    fn command_of(types: &[EntityType], names: &[&str]) -> Command {
        Command {
            bootstrap_server: "h:1".to_string(),
            alter: true,
            all: false,
            entity_type: types[0],
            entity_types: types.to_vec(),
            entity_names: names.iter().map(|name| name.to_string()).collect(),
        }
    }

    fn changes(additions: &[(&str, &str)], deletions: &[&str]) -> Changes {
        Changes {
            additions: additions
                .iter()
                .map(|(key, value)| (key.to_string(), value.to_string()))
                .collect(),
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
        .unwrap()
        .unwrap();
        assert_eq!(
            plan.upsertions,
            // In the order of Kafka's Properties, which puts -512 first.
            vec![
                (ScramMechanism::Sha512, 4096, "a,b=c".to_string()),
                (ScramMechanism::Sha256, 8192, "alice-secret".to_string()),
            ]
        );
        let plan = super::plan(&command(&["alice"]), &changes(&[], &["SCRAM-SHA-512"]))
            .unwrap()
            .unwrap();
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
            (&["alice"], &[("retention.ms", "1")], &[], "Only quota and SCRAM credential configs can be added for 'users' using --bootstrap-server. Unexpected config names: Set(retention.ms)"),
            (&["alice"], &[], &["scram-sha-256"], "Only quota and SCRAM credential configs can be deleted for 'users' using --bootstrap-server. Unexpected config names: ArrayBuffer(scram-sha-256)"),
            (&[""], &[("SCRAM-SHA-256", "password=p")], &[], "The use of --entity-default or --user-defaults is not allowed with User SCRAM Credentials using --bootstrap-server."),
            (&["alice"], &[("SCRAM-SHA-256", "password=p"), ("producer_byte_rate", "1024")], &[], "Cannot alter both quota and SCRAM credential configs simultaneously for 'users' using --bootstrap-server."),
            (&["alice"], &[("SCRAM-SHA-256", "iterations=1000,password=p")], &[], "Iterations 1000 is less than the minimum 4096 required for SCRAM-SHA-256"),
            (&["alice"], &[("SCRAM-SHA-512", "secret")], &[], "Invalid credential property SCRAM_SHA_512=secret"),
        ];
        for (names, additions, deletions, expected) in cases {
            assert_eq!(message(names, additions, deletions), *expected);
        }
    }

    /// Proves clients, and a user's clients, take quota keys only, refused with Kafka's
    /// messages (the other keys before the SCRAM ones), and that quotas plan no credentials.
    #[test]
    fn clients_take_quota_keys_only() {
        let clients = command_of(&[EntityType::Clients], &["app"]);
        let refused = |command: &Command, additions: &[(&str, &str)], deletions: &[&str]| {
            plan(command, &changes(additions, deletions))
                .map(|_| ())
                .map_err(|error| error.to_string())
        };
        assert_eq!(
            refused(&clients, &[("SCRAM-SHA-256", "password=x"), ("foo", "1")], &[]),
            Err("Only quota configs can be added for 'clients' using --bootstrap-server. Unexpected config names: Set(foo, SCRAM-SHA-256)".to_string())
        );
        assert_eq!(
            refused(&clients, &[], &["SCRAM-SHA-256", "foo"]),
            Err("Only quota configs can be deleted for 'clients' using --bootstrap-server. Unexpected config names: ArrayBuffer(foo, SCRAM-SHA-256)".to_string())
        );
        let user_client = command_of(&[EntityType::Users, EntityType::Clients], &["alice", "app"]);
        assert!(
            refused(&user_client, &[("SCRAM-SHA-512", "password=x")], &[]).is_err_and(|message| {
                message.starts_with("Only quota configs can be added for 'clients'")
            })
        );
        let quotas = changes(&[("producer_byte_rate", "1024")], &["consumer_byte_rate"]);
        assert_eq!(plan(&user_client, &quotas).unwrap(), None);
        assert_eq!(plan(&command(&[""]), &quotas).unwrap(), None);
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
