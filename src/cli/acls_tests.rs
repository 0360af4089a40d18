//! Unit tests of `cli::acls`: which bindings and filters each flag combination yields, Kafka's
//! refusals, and the exact text of every line the tool prints.

use clap::Parser;

use super::plan::{acls_to_add, acls_to_remove, check_args, list_request};
use super::*;
use crate::client::error::KafkaError;
use crate::security::acl::{Operation, PatternType, Permission, ResourceType};

/// The options of `command`, words split at blanks, after `--bootstrap-server h:1`.
fn parse(command: &str) -> Options {
    let mut all = vec![NAME, "--bootstrap-server", "h:1"];
    all.extend(command.split_whitespace());
    Options::try_parse_from(all).expect("parses")
}

fn pattern(resource_type: ResourceType, name: &str, pattern_type: PatternType) -> ResourcePattern {
    ResourcePattern {
        resource_type,
        pattern_type,
        name: name.to_string(),
    }
}

fn topic(name: &str) -> ResourcePattern {
    pattern(ResourceType::Topic, name, PatternType::Literal)
}

fn entry(principal: &str, host: &str, operation: Operation, permission: Permission) -> AclEntry {
    AclEntry {
        principal: principal.to_string(),
        host: host.to_string(),
        operation,
        permission,
    }
}

fn allow(principal: &str, operation: Operation) -> AclEntry {
    entry(principal, "*", operation, Permission::Allow)
}

/// The message of a refused command line, or a panic naming what was produced instead.
fn usage(result: Result<impl std::fmt::Debug, AclsError>) -> String {
    match result {
        Err(AclsError::Usage(message)) => message,
        other => panic!("expected a usage error, got {other:?}"),
    }
}

/// The message of a failed command, or a panic naming what was produced instead.
fn failure(result: Result<impl std::fmt::Debug, AclsError>) -> String {
    match result {
        Err(AclsError::Failed(message)) => message,
        other => panic!("expected a failure, got {other:?}"),
    }
}

fn add(command: &str) -> AclsByPattern {
    acls_to_add(&parse(command)).expect("bindings")
}

/// Proves Kafka's option checks, in its order and with its messages.
#[test]
fn option_combinations_follow_kafka() {
    let none = Options::try_parse_from([NAME, "--list"]).expect("parses");
    assert_eq!(
        usage(check_args(&none)),
        "One of --bootstrap-server or --bootstrap-controller must be specified"
    );
    let both = parse("--bootstrap-controller c:1 --list");
    assert_eq!(
        usage(check_args(&both)),
        "Only one of --bootstrap-server or --bootstrap-controller must be specified"
    );
    let exactly_one = "Command must include exactly one action: --list, --add, --remove. ";
    assert_eq!(usage(check_args(&parse(""))), exactly_one);
    assert_eq!(usage(check_args(&parse("--add --list"))), exactly_one);
    let cases = [
        (
            "--list --allow-host h",
            "Option \"[list]\" can't be used with option \"[allow-host]\"",
        ),
        (
            "--list --producer --deny-principal User:a",
            "Option \"[list]\" can't be used with option \"[producer]\"",
        ),
        (
            "--add --producer --topic t --operation Read",
            "Option \"[producer]\" can't be used with option \"[operation]\"",
        ),
        (
            "--add --consumer --deny-host h",
            "Option \"[consumer]\" can't be used with option \"[deny-host]\"",
        ),
        (
            "--add --principal User:a",
            "The --principal option is only available if --list is set",
        ),
        (
            "--add --producer --group g",
            "With --producer you must specify a --topic",
        ),
        (
            "--add --idempotent --topic t",
            "The --idempotent option is only available if --producer is set",
        ),
        ("--add --consumer --topic t", CONSUMER_RESOURCES),
        (
            "--add --consumer --topic t --group g --cluster",
            CONSUMER_RESOURCES,
        ),
    ];
    for (command, message) in cases {
        assert_eq!(usage(check_args(&parse(command))), message, "{command}");
    }
    // With --producer too, the cluster and transactional ids are the producer's.
    let both_roles = parse("--add --consumer --producer --topic t --group g --cluster");
    assert_eq!(check_args(&both_roles).expect("accepted"), Action::Add);
    assert_eq!(
        check_args(&parse("--list")).expect("accepted"),
        Action::List
    );
}

const CONSUMER_RESOURCES: &str = "With --consumer you must specify a --topic and a --group and \
    no --cluster or --transactional-id option should be specified.";

/// Proves the bindings of --add: principals times operations times hosts, every host by
/// default, one set per resource and pattern type, ALL when no operation is given.
#[test]
fn add_yields_kafkas_bindings() {
    let acls = add("--add --topic t --allow-principal User:alice");
    let expected = AclsByPattern::from([(
        topic("t"),
        BTreeSet::from([allow("User:alice", Operation::All)]),
    )]);
    assert_eq!(acls, expected);

    // Names and hosts are trimmed, as Kafka trims them.
    let mut options = parse(
        "--add --group g --resource-pattern-type prefixed --allow-principal User:a \
         --allow-principal User:b --deny-principal User:c --operation Read --operation describe",
    );
    options.topic = vec![" t ".to_string()];
    options.allow_host = vec!["10.0.0.1 ".to_string()];
    let acls = acls_to_add(&options).expect("bindings");
    let mut entries = BTreeSet::new();
    for principal in ["User:a", "User:b"] {
        for operation in [Operation::Read, Operation::Describe] {
            entries.insert(entry(principal, "10.0.0.1", operation, Permission::Allow));
        }
    }
    for operation in [Operation::Read, Operation::Describe] {
        entries.insert(entry("User:c", "*", operation, Permission::Deny));
    }
    let prefixed_topic = pattern(ResourceType::Topic, "t", PatternType::Prefixed);
    let prefixed_group = pattern(ResourceType::Group, "g", PatternType::Prefixed);
    let expected =
        AclsByPattern::from([(prefixed_topic, entries.clone()), (prefixed_group, entries)]);
    assert_eq!(acls, expected);

    // Transactional ids are not trimmed: Kafka does not trim them.
    let mut options = parse(
        "--add --cluster --delegation-token d --user-principal User:u --allow-principal User:a",
    );
    options.transactional_id = vec![" x".to_string()];
    let acls = acls_to_add(&options).expect("bindings");
    let resources: Vec<(ResourceType, &str)> = acls
        .keys()
        .map(|pattern| (pattern.resource_type, pattern.name.as_str()))
        .collect();
    assert_eq!(
        resources,
        [
            (ResourceType::Cluster, "kafka-cluster"),
            (ResourceType::TransactionalId, " x"),
            (ResourceType::DelegationToken, "d"),
            (ResourceType::User, "User:u"),
        ]
    );
}

/// Proves --add's refusals: a filter pattern type, no principal, no resource, an operation
/// the resource type does not have (with Kafka's list of those it has), a bad principal.
#[test]
fn add_refusals_follow_kafka() {
    let any = parse("--add --topic t --resource-pattern-type ANY");
    assert_eq!(
        usage(acls_to_add(&any)),
        "A '--resource-pattern-type' value of 'ANY' is not valid when adding acls."
    );
    assert_eq!(
        usage(acls_to_add(&parse("--add --topic t"))),
        "You must specify one of: --allow-principal, --deny-principal when trying to add ACLs."
    );
    let no_resource = "You must provide at least one resource: --topic <topic> or --cluster or \
                       --group <group> or --delegation-token <Delegation Token ID>";
    let nothing = parse("--add --allow-principal User:a");
    assert_eq!(usage(acls_to_add(&nothing)), no_resource);
    // The cluster has only a literal pattern: with PREFIXED, --cluster names nothing.
    let prefixed_cluster =
        parse("--add --cluster --resource-pattern-type PREFIXED --allow-principal User:a");
    assert_eq!(usage(acls_to_add(&prefixed_cluster)), no_resource);
    let read_cluster = parse("--add --cluster --operation Read --allow-principal User:a");
    assert_eq!(
        usage(acls_to_add(&read_cluster)),
        "ResourceType CLUSTER only supports operations [CREATE, CLUSTER_ACTION, DESCRIBE_CONFIGS, \
         ALTER_CONFIGS, IDEMPOTENT_WRITE, ALTER, DESCRIBE, ALL]"
    );
    // Kafka reads PascalCase names or them in capitals, not the enum's own names.
    let underscored =
        parse("--add --cluster --operation IDEMPOTENT_WRITE --allow-principal User:a");
    assert!(usage(acls_to_add(&underscored)).starts_with("ResourceType CLUSTER only supports"));
    let capitals = add("--add --cluster --operation IDEMPOTENTWRITE --allow-principal User:a");
    assert_eq!(
        capitals.values().next(),
        Some(&BTreeSet::from([allow(
            "User:a",
            Operation::IdempotentWrite
        )]))
    );
    let bad_principal = parse("--add --topic t --allow-principal alice");
    assert_eq!(
        failure(acls_to_add(&bad_principal)),
        "expected a string in format principalType:principalName but got alice"
    );
    let bad_type = parse("--list --topic t --resource-pattern-type unknown");
    assert_eq!(
        failure(list_request(&bad_type)),
        "Cannot parse argument 'unknown' of option resource-pattern-type"
    );
}

/// Proves --producer and --consumer yield exactly Kafka's convenience sets, merged when both
/// are given.
#[test]
fn producer_and_consumer_sets() {
    use Operation::{Create, Describe, IdempotentWrite, Read, Write};
    let alice = |operations: &[Operation]| -> BTreeSet<AclEntry> {
        operations
            .iter()
            .map(|operation| allow("User:alice", *operation))
            .collect()
    };
    let producer = add("--add --producer --topic t --transactional-id x --idempotent --group ignored --allow-principal User:alice");
    let expected = AclsByPattern::from([
        (topic("t"), alice(&[Write, Describe, Create])),
        (
            pattern(ResourceType::TransactionalId, "x", PatternType::Literal),
            alice(&[Write, Describe]),
        ),
        (
            pattern(ResourceType::Cluster, "kafka-cluster", PatternType::Literal),
            alice(&[IdempotentWrite]),
        ),
    ]);
    assert_eq!(producer, expected);

    let consumer = add("--add --consumer --topic t --group g --allow-principal User:alice");
    let group = pattern(ResourceType::Group, "g", PatternType::Literal);
    let expected = AclsByPattern::from([
        (topic("t"), alice(&[Read, Describe])),
        (group.clone(), alice(&[Read])),
    ]);
    assert_eq!(consumer, expected);

    let both = add("--add --producer --consumer --topic t --group g --allow-principal User:alice");
    let expected = AclsByPattern::from([
        (topic("t"), alice(&[Write, Describe, Create, Read])),
        (group, alice(&[Read])),
    ]);
    assert_eq!(both, expected);
}

/// Proves the filters of --remove and --list: without principals --remove deletes whole
/// filters, MATCH and ANY are filters, --list names no filter without a resource.
#[test]
fn remove_and_list_filters() {
    let everything = acls_to_remove(&parse("--remove --topic t")).expect("filters");
    assert_eq!(
        everything,
        AclsByPattern::from([(topic("t"), BTreeSet::new())])
    );
    let matching = parse("--remove --topic t --resource-pattern-type match --allow-principal User:a --operation Write");
    let expected = AclsByPattern::from([(
        pattern(ResourceType::Topic, "t", PatternType::Match),
        BTreeSet::from([allow("User:a", Operation::Write)]),
    )]);
    assert_eq!(acls_to_remove(&matching).expect("filters"), expected);

    let (filters, principals) = list_request(&parse("--list")).expect("request");
    assert!(filters.is_empty() && principals.is_empty());
    let (filters, principals) = list_request(&parse(
        "--list --topic t --cluster --principal User:b --principal User:a",
    ))
    .expect("request");
    let cluster = pattern(ResourceType::Cluster, "kafka-cluster", PatternType::Literal);
    assert_eq!(filters, BTreeSet::from([topic("t"), cluster]));
    assert_eq!(
        principals.into_iter().collect::<Vec<_>>(),
        ["User:a", "User:b"]
    );
}

/// Proves the exact text of --add, --list and the questions of --remove (Kafka's blanks,
/// tabs and blank lines included).
#[test]
fn output_is_kafkas() {
    let read = allow("User:alice", Operation::Read);
    let write = entry("User:bob", "10.0.0.1", Operation::Write, Permission::Deny);
    assert_eq!(
        adding_text(&topic("t"), [&read, &write].into_iter()),
        "Adding ACLs for resource `ResourcePattern(resourceType=TOPIC, name=t, patternType=LITERAL)`: \n \
         \t(principal=User:alice, host=*, operation=READ, permissionType=ALLOW)\n\
         \t(principal=User:bob, host=10.0.0.1, operation=WRITE, permissionType=DENY)\n\n"
    );
    let binding = AclBinding {
        pattern: topic("t"),
        entry: read.clone(),
    };
    assert_eq!(
        exists_text(&binding),
        "Acl (pattern=ResourcePattern(resourceType=TOPIC, name=t, patternType=LITERAL), \
         entry=(principal=User:alice, host=*, operation=READ, permissionType=ALLOW)) already exists.\n"
    );
    let group = pattern(ResourceType::Group, "g", PatternType::Prefixed);
    let listed = AclsByPattern::from([
        (topic("t"), BTreeSet::from([read.clone(), write.clone()])),
        (group.clone(), BTreeSet::from([read.clone()])),
    ]);
    assert_eq!(
        current_text(&listed),
        "Current ACLs for resource `ResourcePattern(resourceType=TOPIC, name=t, patternType=LITERAL)`:\n\
         \t(principal=User:alice, host=*, operation=READ, permissionType=ALLOW)\n\
         \t(principal=User:bob, host=10.0.0.1, operation=WRITE, permissionType=DENY)\n\n\
         Current ACLs for resource `ResourcePattern(resourceType=GROUP, name=g, patternType=PREFIXED)`:\n\
         \t(principal=User:alice, host=*, operation=READ, permissionType=ALLOW)\n\n"
    );
    let mut printed = Vec::new();
    let bob = BTreeSet::from(["User:bob".to_string()]);
    write_listing(&listed, &bob, &mut printed).expect("written");
    assert_eq!(
        String::from_utf8(printed).expect("text"),
        "ACLs for principal `User:bob`\n\
         Current ACLs for resource `ResourcePattern(resourceType=TOPIC, name=t, patternType=LITERAL)`:\n\
         \t(principal=User:bob, host=10.0.0.1, operation=WRITE, permissionType=DENY)\n\n"
    );
    let any = pattern(ResourceType::Topic, "t", PatternType::Any);
    assert_eq!(
        delete_all_question(&any),
        "Are you sure you want to delete all ACLs for resource filter \
         `ResourcePattern(resourceType=TOPIC, name=t, patternType=ANY)`? (y/n)\n"
    );
    assert_eq!(
        remove_question(&group, &BTreeSet::from([read])),
        "Are you sure you want to remove ACLs: \n \
         \t(principal=User:alice, host=*, operation=READ, permissionType=ALLOW)\n \
         from resource filter `ResourcePattern(resourceType=GROUP, name=g, patternType=PREFIXED)`? (y/n)\n"
    );
}

/// Proves the answers --remove takes: `y` in any case confirms, anything else declines, and no
/// answer at all fails rather than deleting.
#[test]
fn questions_read_one_answer() {
    for (answer, confirmed) in [
        ("y\n", true),
        ("Y\r\n", true),
        ("n\n", false),
        ("yes\n", false),
    ] {
        let mut printed = Vec::new();
        let result = confirm("Sure? (y/n)\n", &mut answer.as_bytes(), &mut printed);
        assert_eq!(result.expect("answered"), confirmed, "{answer:?}");
        assert_eq!(printed, b"Sure? (y/n)\n");
    }
    let unanswered = confirm("Sure? (y/n)\n", &mut "".as_bytes(), &mut Vec::new());
    assert!(matches!(unanswered, Err(AclsError::Failed(_))));
}

/// Proves a declined --remove asks each question and never connects, and a confirmed one
/// connects (here: fails to).
#[test]
fn declined_removal_sends_nothing() {
    let options = parse("--remove --topic a --topic b");
    let acls = acls_to_remove(&options).expect("filters");
    let refuse = || -> Result<Client, ClientError> { Err(ClientError::NoBootstrapServers) };
    let mut printed = Vec::new();
    remove(
        &acls,
        &options,
        &refuse,
        &mut "n\nn\n".as_bytes(),
        &mut printed,
    )
    .expect("declined");
    let printed = String::from_utf8(printed).expect("text");
    assert_eq!(printed.matches("(y/n)").count(), 2, "{printed}");
    let confirmed = remove(
        &acls,
        &options,
        &refuse,
        &mut "y\n".as_bytes(),
        &mut Vec::new(),
    );
    assert!(matches!(
        confirmed,
        Err(AclsError::Client(ClientError::NoBootstrapServers))
    ));
}

/// Proves a refused command line is refused before any connection, and how errors print.
#[test]
fn refusals_and_reports() {
    // Port 1 would fail to connect: the usage error comes first.
    let options = parse("--add --cluster --operation Read --allow-principal User:a");
    let error = execute(&options, &mut "".as_bytes(), &mut Vec::new()).expect_err("refused");
    let text = report(&error);
    assert!(
        text.starts_with("ResourceType CLUSTER only supports operations [CREATE, "),
        "{text}"
    );
    assert!(text.contains("Usage: flink-acls.sh"), "{text}");
    let controller =
        Options::try_parse_from([NAME, "--bootstrap-controller", "c:1", "--list"]).expect("parses");
    let error = execute(&controller, &mut "".as_bytes(), &mut Vec::new()).expect_err("refused");
    assert!(report(&error).starts_with("--bootstrap-controller is not supported"));

    let disabled =
        KafkaError::with_message(54, Some("No Authorizer is configured.")).expect("an error");
    assert_eq!(
        report(&AclsError::Client(disabled.into())),
        "Error while executing ACL command: org.apache.kafka.common.errors.SecurityDisabledException: \
         No Authorizer is configured.\n\
         java.util.concurrent.ExecutionException: org.apache.kafka.common.errors.\
         SecurityDisabledException: No Authorizer is configured.\n"
    );
    let denied = KafkaError::new(31);
    assert!(report(&AclsError::Client(denied.into())).starts_with(
        "Error while executing ACL command: org.apache.kafka.common.errors.\
         ClusterAuthorizationException: Cluster authorization failed.\n"
    ));
}
