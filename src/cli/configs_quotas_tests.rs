//! Unit tests of `cli::configs::quotas`: filters, entities, key checks and describe lines.

use super::super::command_line::{changes, check_args, Args};
use super::*;

/// The checked command of a command line written as one string.
fn command(arguments: &str) -> Command {
    let mut all = vec!["configs", "--bootstrap-server", "h:1"];
    all.extend(arguments.split_whitespace());
    let args: Args = crate::cli::parse_tool_args(&all).expect("parses");
    check_args(&args).expect("valid")
}

fn quotas(entity: &[(&str, Option<&str>)], values: &[(&str, f64)]) -> EntityQuotas {
    EntityQuotas {
        entity: entity
            .iter()
            .map(|(kind, name)| (kind.to_string(), name.map(str::to_string)))
            .collect(),
        values: values
            .iter()
            .map(|(key, value)| (key.to_string(), *value))
            .collect(),
    }
}

#[test]
fn filters_pair_types_with_names_as_kafka_does() {
    // A name is exact, "" the default, a type without a name matches any; always strict.
    let exact = |name: &str| Match::Exact(name.to_string());
    let cases = [
        ("--describe --user alice", vec![(USER, exact("alice"))]),
        ("--describe --entity-type users", vec![(USER, Match::Any)]),
        ("--describe --client-defaults", vec![(CLIENT_ID, Match::Default)]),
        ("--describe --ip 10.0.0.1", vec![(IP, exact("10.0.0.1"))]),
        (
            "--describe --user alice --client app",
            vec![(CLIENT_ID, exact("app")), (USER, exact("alice"))],
        ),
        (
            "--describe --entity-type users --entity-default --entity-type clients --entity-name app",
            vec![(USER, Match::Default), (CLIENT_ID, exact("app"))],
        ),
        (
            "--describe --entity-type users --entity-name alice --entity-type clients",
            vec![(USER, exact("alice")), (CLIENT_ID, Match::Any)],
        ),
    ];
    for (arguments, expected) in cases {
        let expected: Vec<(String, Match)> = expected
            .into_iter()
            .map(|(kind, wanted)| (kind.to_string(), wanted))
            .collect();
        let found = components(&command(arguments)).expect("valid");
        assert_eq!(found, expected, "for {arguments}");
    }
    let too_many = command("--describe --entity-type users --entity-name a --entity-name b");
    assert_eq!(
        components(&too_many).map_err(|error| error.to_string()),
        Err("More entity names specified than entity types".to_string())
    );
}

#[test]
fn alterations_name_the_entity_with_null_defaults() {
    // The default entity's name is null on the wire; a user and a client make one entity.
    let alter = |arguments: &str| {
        let all = format!("--alter --add-config producer_byte_rate=1 {arguments}");
        entity(&command(&all)).expect("valid")
    };
    assert_eq!(alter("--user-defaults"), vec![(USER.to_string(), None)]);
    assert_eq!(
        alter("--entity-type users --entity-name alice --entity-type clients --entity-name app"),
        vec![
            (USER.to_string(), Some("alice".to_string())),
            (CLIENT_ID.to_string(), Some("app".to_string()))
        ]
    );
}

#[test]
fn ip_entities_take_connection_quotas_only() {
    // Other keys are refused with Kafka's message, added and deleted ones in one list.
    let check = |add: &str, delete: &str| {
        let mut all = vec![
            "configs",
            "--alter",
            "--ip",
            "10.0.0.1",
            "--add-config",
            add,
        ];
        if !delete.is_empty() {
            all.extend(["--delete-config", delete]);
        }
        let args: Args = crate::cli::parse_tool_args(&all).expect("parses");
        check_ip_keys(&changes(&args.flags).expect("valid")).map_err(|error| error.to_string())
    };
    assert_eq!(check("connection_creation_rate=5", ""), Ok(()));
    assert_eq!(
        check("connection_creation_rate=5,producer_byte_rate=1", "foo,foo"),
        Err("Only connection quota configs can be added for 'ips' using --bootstrap-server. Unexpected config names: producer_byte_rate,foo".to_string())
    );
}

#[test]
fn entities_hash_as_kafkas_client_quota_entity() {
    // Values the JDK computed for `Objects.hash(entries)` of the same maps.
    let hash = |entity: &[(&str, Option<&str>)]| entity_hash(&quotas(entity, &[]).entity);
    assert_eq!(hash(&[(USER, Some("alice"))]), 96435562);
    assert_eq!(hash(&[(USER, None)]), 3599338);
    assert_eq!(
        hash(&[(USER, Some("alice")), (CLIENT_ID, Some("app"))]),
        -1807757850
    );
    assert_eq!(hash(&[(CLIENT_ID, Some("app"))]), -1904193381);
}

#[test]
fn describe_lines_match_kafka_in_its_order() {
    // Entities and values come in the order of the JDK's HashMaps for the same keys.
    let described = vec![
        quotas(
            &[(USER, Some("alice"))],
            &[
                ("producer_byte_rate", 1048576.0),
                ("consumer_byte_rate", 2097152.0),
            ],
        ),
        quotas(&[(USER, None)], &[("request_percentage", 12.5)]),
        quotas(
            &[(USER, Some("alice")), (CLIENT_ID, Some("app"))],
            &[("producer_byte_rate", 1e7)],
        ),
        quotas(
            &[(CLIENT_ID, Some("app"))],
            &[("controller_mutation_rate", 5.0)],
        ),
        quotas(&[(USER, Some("bob"))], &[("consumer_byte_rate", 1024.0)]),
    ];
    assert_eq!(
        describe_lines(described),
        vec![
            "Quota configs for user-principal 'alice', client-id 'app' are producer_byte_rate=1.0E7",
            "Quota configs for user-principal 'bob' are consumer_byte_rate=1024.0",
            "Quota configs for client-id 'app' are controller_mutation_rate=5.0",
            "Quota configs for the default user-principal are request_percentage=12.5",
            "Quota configs for user-principal 'alice' are consumer_byte_rate=2097152.0, producer_byte_rate=1048576.0",
        ]
    );
    assert_eq!(
        describe_line(&quotas(
            &[(IP, Some("10.0.0.1"))],
            &[("connection_creation_rate", 5.0)]
        )),
        "Quota configs for ip '10.0.0.1' are connection_creation_rate=5.0"
    );
    assert_eq!(
        describe_line(&quotas(&[(CLIENT_ID, None), (USER, None)], &[("producer_byte_rate", 1.0)])),
        "Quota configs for the default user-principal, the default client-id are producer_byte_rate=1.0"
    );
}
