//! Unit tests of `cli::configs`: argument checks, parsing and output lines, kept apart so the
//! command stays readable.

use super::command_line::{parse_add_config, ADD_CONFIG_FORMAT};
use super::*;
use crate::client::admin::ConfigSynonym;

fn parse(arguments: &[&str]) -> Args {
    let mut all = vec!["configs"];
    all.extend_from_slice(arguments);
    crate::cli::parse_tool_args(&all).expect("parses")
}

fn check_message(arguments: &[&str]) -> String {
    let mut all = vec!["--bootstrap-server", "h:1"];
    all.extend_from_slice(arguments);
    match check_args(&parse(&all)) {
        Ok(command) => format!("ok {command:?}"),
        Err(error) => error.to_string(),
    }
}

#[test]
fn shorthand_flags_name_the_same_entities() {
    // --topic, --broker and --broker-defaults stand for --entity-type/--entity-name/-default.
    let command = check_args(&parse(&[
        "--bootstrap-server",
        "h:1",
        "--describe",
        "--topic",
        "t",
    ]))
    .expect("valid");
    assert_eq!(command.entity_type, EntityType::Topics);
    assert_eq!(command.entity_names, vec!["t".to_string()]);
    let command = check_args(&parse(&[
        "--bootstrap-server",
        "h:1",
        "--alter",
        "--broker-defaults",
        "--delete-config",
        "a, b",
    ]))
    .expect("valid");
    assert_eq!(command.entity_type, EntityType::Brokers);
    assert_eq!(command.entity_names, vec![String::new()]);
    let command = check_args(&parse(&[
        "--bootstrap-server",
        "h:1",
        "--describe",
        "--entity-type",
        "brokers",
    ]))
    .expect("valid");
    assert!(command.entity_names.is_empty() && !command.alter);
    let command = check_args(&parse(&[
        "--bootstrap-server",
        "h:1",
        "--alter",
        "--user",
        "alice",
        "--delete-config",
        "SCRAM-SHA-512",
    ]))
    .expect("valid");
    assert_eq!(command.entity_type, EntityType::Users);
    assert_eq!(command.entity_names, vec!["alice".to_string()]);
}

#[test]
fn quota_entities_pair_names_with_types_by_position() {
    // Shorthand flags list the named entities' types first (client before user), then the
    // defaults'; --entity-name and --entity-default keep their command-line order.
    let checked = |arguments: &str| {
        let all: Vec<&str> = arguments.split_whitespace().collect();
        check_args(&parse(&all)).expect("valid")
    };
    let command = checked("--bootstrap-server h:1 --describe --user-defaults --client app");
    assert_eq!(
        command.entity_types,
        [EntityType::Clients, EntityType::Users]
    );
    assert_eq!(command.entity_names, ["app", ""]);
    let command = checked(
        "--bootstrap-server h:1 --alter --entity-type users --entity-default --entity-type \
         clients --entity-name app --delete-config producer_byte_rate",
    );
    assert_eq!(
        command.entity_types,
        [EntityType::Users, EntityType::Clients]
    );
    assert_eq!(command.entity_names, ["", "app"]);
    let command = checked("--bootstrap-server h:1 --describe --ip 127.0.0.1");
    assert_eq!(command.entity_type, EntityType::Ips);
}

#[test]
fn completion_lines_name_the_first_entity() {
    // Kafka names the first type and name given, or the type's defaults.
    let completed_for = |arguments: &[&str]| {
        let mut all = vec![
            "--bootstrap-server",
            "h:1",
            "--alter",
            "--delete-config",
            "x",
        ];
        all.extend_from_slice(arguments);
        completed(&check_args(&parse(&all)).expect("valid"))
    };
    assert_eq!(
        completed_for(&["--topic", "test"]),
        "Completed updating config for topic test."
    );
    assert_eq!(
        completed_for(&["--broker", "1"]),
        "Completed updating config for broker 1."
    );
    assert_eq!(
        completed_for(&["--broker-defaults"]),
        "Completed updating default config for brokers in the cluster."
    );
    assert_eq!(
        completed_for(&["--user", "alice", "--client", "app"]),
        "Completed updating config for client app."
    );
    assert_eq!(
        completed_for(&["--ip-defaults"]),
        "Completed updating default config for ips in the cluster."
    );
    assert_eq!(
        completed_for(&["--ip", "10.0.0.1"]),
        "Completed updating config for ip 10.0.0.1."
    );
}

#[test]
fn command_lines_kafka_refuses_get_its_messages() {
    // Each case is one of kafka-configs.sh's checks, with its message word for word.
    let cases: &[(&[&str], &str)] = &[
        (&["--entity-type", "topics"], "Command must include exactly one action: --describe, --alter"),
        (&["--describe", "--topic", "t", "--add-config", "a=1"], "Option \"[describe]\" can't be used with option \"[add-config]\""),
        (&["--describe", "--topic", "t", "--delete-config", "a"], "Option \"[describe]\" can't be used with option \"[delete-config]\""),
        (&["--describe", "--broker", "1", "--broker-defaults"], "Duplicate entity type(s) specified: brokers"),
        (&["--describe", "--entity-type", "brokers", "--broker", "1", "--broker-defaults"], "Duplicate entity type(s) specified: brokers,brokers"),
        (&["--describe", "--entity-type", "groups"], "Invalid entity type groups, the entity type must be one of topics, clients, users, brokers, ips with a --bootstrap-server or --bootstrap-controller argument"),
        (&["--describe", "--entity-type", "users", "--entity-type", "ips"], "Only 'users' and 'clients' entity types may be specified together"),
        (&["--describe", "--ip", "not an address"], "The entity name for ips must be a valid IP or resolvable host, but it is: not an address"),
        (&["--alter", "--entity-type", "ips", "--add-config", "connection_creation_rate=1"], "An entity-name or default entity must be specified with --alter of users, clients, brokers or ips"),
        (&["--describe", "--client", "app", "--entity-name", "x"], "--entity-{type,name,default} should not be used in conjunction with specific entity flags"),
        (&["--alter", "--entity-type", "users", "--entity-type", "clients", "--entity-name", "alice", "--add-config", "a=1"], "An entity name must be specified for every entity type"),
        (&["--alter", "--entity-type", "users", "--add-config", "SCRAM-SHA-256=[password=p]"], "An entity-name or default entity must be specified with --alter of users, clients, brokers or ips"),
        (&["--describe", "--user", "alice", "--user-defaults"], "Duplicate entity type(s) specified: users"),
        (&["--describe"], "At least one entity type must be specified"),
        (&["--describe", "--entity-type", "topics", "--entity-type", "brokers"], "Only 'users' and 'clients' entity types may be specified together"),
        (&["--describe", "--entity-name", "t", "--topic", "t"], "--entity-{type,name,default} should not be used in conjunction with specific entity flags"),
        (&["--describe", "--broker", "one"], "The entity name for brokers must be a valid integer broker id, but it is: one"),
        (&["--describe", "--entity-type", "topics", "--entity-default"], "--entity-default must not be specified with --describe of topics"),
        (&["--alter", "--entity-type", "brokers", "--add-config", "a=1"], "An entity-name or default entity must be specified with --alter of users, clients, brokers or ips"),
        (&["--alter", "--entity-type", "topics", "--add-config", "a=1"], "An entity name must be specified with --alter of topics"),
        (&["--alter", "--topic", "t", "--add-config", "a=1", "--add-config-file", "f"], "Only one of --add-config or --add-config-file must be specified"),
        (&["--alter", "--topic", "t"], "At least one of --add-config, --add-config-file, or --delete-config must be specified with --alter"),
        (&["--alter", "--entity-type", "topics", "--entity-name", "a", "--entity-name", "b", "--delete-config", "x"], "An entity name must be specified for every entity type"),
    ];
    for (arguments, message) in cases {
        assert_eq!(check_message(arguments), *message, "for {arguments:?}");
    }
    let without_bootstrap = check_args(&parse(&["--describe", "--topic", "t"]));
    assert_eq!(
        without_bootstrap
            .map(|_| ())
            .map_err(|error| error.to_string()),
        Err("Either --bootstrap-server or --bootstrap-controller must be specified.".into())
    );
}

#[test]
fn add_config_groups_values_in_brackets() {
    // Brackets keep commas in a value and are dropped; blanks around '=' are trimmed.
    let pairs = parse_add_config("retention.ms=1000,cleanup.policy=[compact,delete], a = b ")
        .expect("valid");
    let expected = [
        ("retention.ms", "1000"),
        ("cleanup.policy", "compact,delete"),
        ("a", "b"),
    ];
    let expected: Vec<(String, String)> = expected
        .iter()
        .map(|(key, value)| (key.to_string(), value.to_string()))
        .collect();
    assert_eq!(pairs, expected);
    assert_eq!(
        parse_add_config("empty=,").expect("valid"),
        vec![("empty".to_string(), String::new())]
    );
    assert_eq!(
        parse_add_config("k=[a=b]").expect("valid"),
        vec![("k".to_string(), "a=b".to_string())]
    );
    for bad in ["a=b=c", "novalue", "", "a=1,,b=2"] {
        let error = parse_add_config(bad).map_err(|error| error.to_string());
        assert_eq!(error, Err(ADD_CONFIG_FORMAT.to_string()), "for {bad:?}");
    }
}

#[test]
fn alter_changes_check_keys_and_trim_deletions() {
    // Deletions are trimmed; a key outside Kafka's characters is refused before sending.
    let args = parse(&[
        "--alter",
        "--topic",
        "t",
        "--add-config",
        "b=2,a=1",
        "--delete-config",
        " x ,y",
    ]);
    let changes = changes(&args.flags).expect("valid");
    assert_eq!(
        changes.additions,
        vec![
            ("b".to_string(), "2".to_string()),
            ("a".to_string(), "1".to_string())
        ]
    );
    assert_eq!(changes.deletions, vec!["x".to_string(), "y".to_string()]);
    let args = parse(&["--alter", "--topic", "t", "--add-config", "bad key=1"]);
    assert_eq!(
        super::changes(&args.flags)
            .map(|_| ())
            .map_err(|error| error.to_string()),
        Err("Invalid character found for config key: bad key".to_string())
    );
}

#[test]
fn describe_lines_match_kafka() {
    // Headers name the entity as Kafka does; entries print value, sensitivity and synonyms.
    let topic = Entity {
        entity_type: EntityType::Topics,
        name: "test".into(),
    };
    let defaults = Entity {
        entity_type: EntityType::Brokers,
        name: String::new(),
    };
    let broker = Entity {
        entity_type: EntityType::Brokers,
        name: "1".into(),
    };
    assert_eq!(topic.header(false), "Dynamic configs for topic test are:");
    assert_eq!(topic.header(true), "All configs for topic test are:");
    assert_eq!(broker.header(false), "Dynamic configs for broker 1 are:");
    assert_eq!(
        defaults.header(true),
        "Default configs for brokers in the cluster are:"
    );
    let entry = ConfigEntry {
        name: "retention.ms".into(),
        value: Some("1000".into()),
        source: ConfigSource::DynamicTopicConfig,
        is_sensitive: false,
        read_only: false,
        synonyms: vec![
            ConfigSynonym {
                name: "retention.ms".into(),
                value: Some("1000".into()),
                source: ConfigSource::DynamicTopicConfig,
            },
            ConfigSynonym {
                name: "log.retention.hours".into(),
                value: None,
                source: ConfigSource::DefaultConfig,
            },
        ],
    };
    assert_eq!(
        entry_line(&entry),
        "  retention.ms=1000 sensitive=false synonyms={DYNAMIC_TOPIC_CONFIG:retention.ms=1000, DEFAULT_CONFIG:log.retention.hours=null}"
    );
}

#[test]
fn describe_keeps_the_entitys_own_configs_sorted() {
    // Without --all only values set on the entity itself show; names come out sorted.
    let entry = |name: &str, source| ConfigEntry {
        name: name.into(),
        value: None,
        source,
        is_sensitive: true,
        read_only: false,
        synonyms: Vec::new(),
    };
    let entries = vec![
        entry("z", ConfigSource::DynamicDefaultBrokerConfig),
        entry("b", ConfigSource::DefaultConfig),
        entry("a", ConfigSource::DynamicDefaultBrokerConfig),
    ];
    let defaults = Entity {
        entity_type: EntityType::Brokers,
        name: String::new(),
    };
    let names = |entries: Vec<ConfigEntry>| -> Vec<String> {
        entries.into_iter().map(|entry| entry.name).collect()
    };
    assert_eq!(
        names(selected(entries.clone(), &defaults, false)),
        ["a", "z"]
    );
    assert_eq!(names(selected(entries, &defaults, true)), ["a", "b", "z"]);
    assert_eq!(
        entry_line(&entry("p", ConfigSource::DynamicBrokerConfig)),
        "  p=null sensitive=true synonyms={}"
    );
}

#[test]
fn errors_print_as_kafka_prints_them() {
    // Argument errors stand alone; cluster errors follow the quoted arguments as the
    // ExecutionException line of Kafka's stack trace.
    let arguments = vec![
        "--describe".to_string(),
        "--topic".to_string(),
        "x".to_string(),
    ];
    let invalid = ConfigsError::InvalidConfigs(vec!["a".into(), "b".into()]);
    assert_eq!(report(&invalid, &arguments), "Invalid config(s): a,b");
    let unknown =
        KafkaError::with_message(3, Some("The topic 'x' does not exist.")).expect("an error");
    let error = ConfigsError::Client(ClientError::Kafka(unknown));
    assert_eq!(
        report(&error, &arguments),
        "Error while executing config command with args '--describe --topic x'\n\
         java.util.concurrent.ExecutionException: org.apache.kafka.common.errors.\
         UnknownTopicOrPartitionException: The topic 'x' does not exist."
    );
    let bad_name = ConfigsError::InvalidTopic("Topic name cannot be \".\" or \"..\"".into());
    assert!(report(&bad_name, &arguments).ends_with(
        "\norg.apache.kafka.common.errors.InvalidTopicException: Topic name cannot be \".\" or \"..\""
    ));
}

#[test]
fn exception_classes_follow_kafka_names() {
    // Kafka's classes are the code names in CamelCase, with a few irregular ones.
    let class = |code| exception_class(&KafkaError::new(code));
    assert_eq!(class(3), "UnknownTopicOrPartitionException");
    assert_eq!(class(37), "InvalidPartitionsException");
    assert_eq!(class(42), "InvalidRequestException");
    assert_eq!(class(40), "InvalidConfigurationException");
    assert_eq!(class(17), "InvalidTopicException");
    assert_eq!(class(29), "TopicAuthorizationException");
    assert_eq!(class(-1), "UnknownServerException");
    assert_eq!(class(7), "TimeoutException");
    assert_eq!(class(44), "PolicyViolationException");
}

#[test]
fn entities_check_names_before_asking() {
    // Topic names follow Kafka's rules, broker names must be integers, defaults pass.
    let topic = |name: &str| Entity {
        entity_type: EntityType::Topics,
        name: name.into(),
    };
    assert!(topic("ok-topic").check().is_ok());
    assert!(matches!(
        topic("a b").check(),
        Err(ConfigsError::InvalidTopic(_))
    ));
    let broker = Entity {
        entity_type: EntityType::Brokers,
        name: "x".into(),
    };
    assert_eq!(
        broker.check().map_err(|error| error.to_string()),
        Err("The entity name for brokers must be a valid integer broker id, found: x".into())
    );
    assert_eq!(
        broker.dynamic_source(),
        Some(ConfigSource::DynamicBrokerConfig)
    );
}
