//! `flink topics`: Kafka's kafka-topics.sh — create, list, describe, delete topics and add
//! partitions to them (`--alter --partitions`) with the same flags, the same output and the same
//! error line (`Error while executing topic command :`). Runs on the calling thread with the
//! blocking client.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;

use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::delete_topics_request::DeleteTopicState;
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::{
    ApiKey, CreateTopicsRequest, DeleteTopicsRequest, DescribeConfigsRequest, TopicName,
};
use kafka_protocol::protocol::StrBytes;

use crate::client::admin::{admin_settings, create_partitions, NewPartitions};
use crate::client::cluster::{Client, TopicMetadata};
use crate::client::error::{ClientError, KafkaError};
use crate::client::properties::{Properties, PropertiesError};
use crate::metadata::uuid::uuid_to_base64;

#[path = "topics_assignment.rs"]
mod assignment;
#[path = "topics_pattern.rs"]
mod pattern;

/// Timeout sent with CreateTopics, DeleteTopics and CreatePartitions (Kafka's
/// default.api.timeout.ms is larger; the admin client sends request.timeout.ms).
const ADMIN_TIMEOUT_MS: i32 = 30_000;
/// DescribeConfigs resource type of a topic, and config source of a built-in default.
const RESOURCE_TYPE_TOPIC: i8 = 2;
const CONFIG_SOURCE_DEFAULT: i8 = 5;

#[derive(clap::Args, Debug)]
#[command(group(clap::ArgGroup::new("action").required(true).args(["create", "list", "describe", "delete", "alter"])))]
pub struct Args {
    /// The Kafka server to connect to (host:port[,host:port...]).
    #[arg(long, value_name = "SERVER")]
    pub bootstrap_server: String,
    /// Property file with client configs (client.id, request.timeout.ms, security.protocol,
    /// ssl.*, sasl.*).
    #[arg(long, value_name = "FILE")]
    pub command_config: Option<PathBuf>,
    /// Create a new topic.
    #[arg(long)]
    pub create: bool,
    /// List all available topics.
    #[arg(long)]
    pub list: bool,
    /// List details for the given topics.
    #[arg(long)]
    pub describe: bool,
    /// Delete a topic.
    #[arg(long)]
    pub delete: bool,
    /// Alter the number of partitions (to alter topic configurations, use flink-configs.sh).
    #[arg(long)]
    pub alter: bool,
    /// The topic to create, alter, describe or delete (a regular expression except for create).
    #[arg(long)]
    pub topic: Option<String>,
    /// The number of partitions of the topic being created (broker default when absent) or
    /// altered (only increases are allowed).
    #[arg(long)]
    pub partitions: Option<i32>,
    /// The replication factor of the topic being created (broker default when absent).
    #[arg(long)]
    pub replication_factor: Option<i16>,
    /// The brokers of each partition of the topic being created or altered, partitions
    /// separated by commas and a partition's replicas by colons (`1:2,2:3`); with --alter, the
    /// existing partitions' entries come first and are left as they are.
    #[arg(long, value_name = "BROKER:BROKER,...")]
    pub replica_assignment: Option<String>,
    /// A topic configuration override (name=value), repeatable.
    #[arg(long = "config", value_name = "NAME=VALUE")]
    pub configs: Vec<String>,
    /// With --create: do nothing if the topic exists.
    #[arg(long)]
    pub if_not_exists: bool,
    /// With --alter, --describe or --delete: do nothing if the topic does not exist.
    #[arg(long)]
    pub if_exists: bool,
    /// Leave internal topics out of --list and --describe.
    #[arg(long)]
    pub exclude_internal: bool,
}

/// Failures of a topic command; each prints as Kafka's tool prints it.
#[derive(Debug, thiserror::Error)]
pub enum TopicsError {
    #[error("{0}")]
    Client(#[from] ClientError),
    #[error("{0}")]
    Properties(#[from] PropertiesError),
    #[error("Missing required argument \"[topic]\"")]
    MissingTopic,
    #[error("Missing required argument \"[partitions]\"")]
    MissingPartitions,
    #[error("Option combination \"[[bootstrap-server], [config]]\" can't be used with option \"[alter]\" (To alter topic configurations, the kafka-configs tool can be used.)")]
    AlterWithConfig,
    #[error("Topic '{0}' does not exist as expected")]
    TopicDoesNotExist(String),
    #[error("Invalid regular expression '{0}' in --topic")]
    BadPattern(String),
    #[error("Option \"[{used}]\" can't be used with option \"[{other}]\"")]
    InvalidCombination {
        used: &'static str,
        other: &'static str,
    },
    #[error(transparent)]
    Assignment(#[from] assignment::AssignmentError),
}

pub fn run(args: Args) -> ExitCode {
    match execute(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("Error while executing topic command : {error}");
            ExitCode::FAILURE
        }
    }
}

fn execute(args: &Args) -> Result<(), TopicsError> {
    if args.alter {
        check_alter(args)?;
    }
    if args.create {
        check_create(args)?;
    }
    let mut client = connect(args)?;
    if args.create {
        create(&mut client, args)
    } else if args.list {
        list(&mut client, args)
    } else if args.describe {
        describe(&mut client, args)
    } else if args.alter {
        alter(&mut client, args)
    } else {
        delete(&mut client, args)
    }
}

fn connect(args: &Args) -> Result<Client, TopicsError> {
    let properties = match &args.command_config {
        Some(path) => Properties::from_file(path)?,
        None => Properties::default(),
    };
    let settings = admin_settings(&properties)?;
    Ok(Client::connect(&args.bootstrap_server, settings)?)
}

fn create(client: &mut Client, args: &Args) -> Result<(), TopicsError> {
    let name = args.topic.as_deref().ok_or(TopicsError::MissingTopic)?;
    let configs = Properties::from_arguments(&args.configs)?;
    let assignment = check_create(args)?;
    if name.contains('.') || name.contains('_') {
        println!("WARNING: Due to limitations in metric names, topics with a period ('.') or underscore ('_') could collide. To avoid issues it is best to use either, but not both.");
    }
    let topic = CreatableTopic::default()
        .with_name(topic_name(name))
        .with_num_partitions(args.partitions.unwrap_or(-1))
        .with_replication_factor(args.replication_factor.unwrap_or(-1))
        .with_assignments(assignment::creatable(&assignment))
        .with_configs(creatable_configs(&args.configs, &configs));
    let request = CreateTopicsRequest::default()
        .with_topics(vec![topic])
        .with_timeout_ms(ADMIN_TIMEOUT_MS);
    let response = client.send_controller(ApiKey::CreateTopics, &request)?;
    for result in response.topics {
        let message = result.error_message.as_ref().map(StrBytes::as_str);
        match KafkaError::for_topic(result.error_code, name, message) {
            None => println!("Created topic {name}."),
            Some(error) if error.code == TOPIC_ALREADY_EXISTS && args.if_not_exists => {}
            Some(error) => return Err(ClientError::from(error).into()),
        }
    }
    Ok(())
}

const TOPIC_ALREADY_EXISTS: i16 = 36;

/// CreateTopics configs in the order given on the command line (last value of a key wins).
fn creatable_configs(entries: &[String], configs: &Properties) -> Vec<CreatableTopicConfig> {
    let mut seen = Vec::new();
    for entry in entries {
        let key = entry
            .split_once('=')
            .map_or(entry.as_str(), |(key, _)| key)
            .trim();
        if !seen.contains(&key) {
            seen.push(key);
        }
    }
    seen.into_iter()
        .map(|key| {
            let value = configs
                .get(key)
                .map(|value| StrBytes::from_string(value.to_string()));
            CreatableTopicConfig::default()
                .with_name(StrBytes::from_string(key.to_string()))
                .with_value(value)
        })
        .collect()
}

fn list(client: &mut Client, args: &Args) -> Result<(), TopicsError> {
    for topic in matching_topics(client, args)? {
        println!("{}", topic.name);
    }
    Ok(())
}

fn describe(client: &mut Client, args: &Args) -> Result<(), TopicsError> {
    let topics = matching_topics(client, args)?;
    ensure_found(args, &topics)?;
    let describe_configs = client.supports(ApiKey::DescribeConfigs)?;
    for topic in &topics {
        let configs = match describe_configs {
            true => topic_configs(client, &topic.name)?,
            false => String::new(),
        };
        print_topic(topic, &configs);
    }
    Ok(())
}

fn delete(client: &mut Client, args: &Args) -> Result<(), TopicsError> {
    let topics = matching_topics(client, args)?;
    ensure_found(args, &topics)?;
    if topics.is_empty() {
        return Ok(());
    }
    let states = topics
        .iter()
        .map(|topic| DeleteTopicState::default().with_name(Some(topic_name(&topic.name))))
        .collect();
    let names = topics.iter().map(|topic| topic_name(&topic.name)).collect();
    let request = DeleteTopicsRequest::default()
        .with_topics(states)
        .with_topic_names(names)
        .with_timeout_ms(ADMIN_TIMEOUT_MS);
    let response = client.send_controller(ApiKey::DeleteTopics, &request)?;
    for result in response.responses {
        let name = result
            .name
            .map(|name| name.0.to_string())
            .unwrap_or_default();
        let message = result.error_message.as_ref().map(StrBytes::as_str);
        if let Some(error) = KafkaError::for_topic(result.error_code, &name, message) {
            return Err(ClientError::from(error).into());
        }
    }
    Ok(())
}

/// Grows every topic --topic selects to --partitions partitions with CreatePartitions. Kafka
/// prints nothing on success; a count that is not an increase comes back from the broker as
/// INVALID_PARTITIONS with its own message.
fn alter(client: &mut Client, args: &Args) -> Result<(), TopicsError> {
    let count = args.partitions.ok_or(TopicsError::MissingPartitions)?;
    let topics = matching_topics(client, args)?;
    ensure_found(args, &topics)?;
    if topics.is_empty() {
        return Ok(());
    }
    let assignment = match &args.replica_assignment {
        Some(text) => Some(assignment::parse(text)?),
        None => None,
    };
    // Kafka's tool takes the whole assignment and sends the entries past a topic's existing
    // partitions.
    let counts: BTreeMap<String, NewPartitions> = topics
        .iter()
        .map(|topic| {
            let assignments = assignment.as_ref().map(|assignment| {
                assignment
                    .iter()
                    .skip(topic.partitions.len())
                    .cloned()
                    .collect()
            });
            (topic.name.clone(), NewPartitions { count, assignments })
        })
        .collect();
    let results = create_partitions(client, &counts, ADMIN_TIMEOUT_MS)?;
    match results.into_values().find_map(Result::err) {
        Some(error) => Err(ClientError::from(error).into()),
        None => Ok(()),
    }
}

/// kafka-topics.sh's argument checks for --create: a replica assignment says the partition
/// count and the replication factor itself. The assignment, if given.
fn check_create(args: &Args) -> Result<Vec<Vec<i32>>, TopicsError> {
    let Some(text) = &args.replica_assignment else {
        return Ok(Vec::new());
    };
    for (given, other) in [
        (args.partitions.is_some(), "partitions"),
        (args.replication_factor.is_some(), "replication-factor"),
    ] {
        if given {
            return Err(TopicsError::InvalidCombination {
                used: "replica-assignment",
                other,
            });
        }
    }
    Ok(assignment::parse(text)?)
}

/// kafka-topics.sh's argument checks for --alter: a topic and a count are required, and configs
/// belong to kafka-configs.sh.
fn check_alter(args: &Args) -> Result<(), TopicsError> {
    if args.topic.is_none() {
        return Err(TopicsError::MissingTopic);
    }
    if !args.configs.is_empty() {
        return Err(TopicsError::AlterWithConfig);
    }
    if args.partitions.is_none() {
        return Err(TopicsError::MissingPartitions);
    }
    Ok(())
}

/// Topics selected by --topic (exact name or regular expression) and --exclude-internal, sorted.
fn matching_topics(client: &mut Client, args: &Args) -> Result<Vec<TopicMetadata>, TopicsError> {
    let matcher = match &args.topic {
        Some(text) => Some(
            pattern::Pattern::parse(text).ok_or_else(|| TopicsError::BadPattern(text.clone()))?,
        ),
        None => None,
    };
    let metadata = client.metadata(None, false)?;
    let mut topics: Vec<TopicMetadata> = metadata
        .topics
        .into_iter()
        .filter(|topic| topic.error.is_none())
        .filter(|topic| !(args.exclude_internal && topic.is_internal))
        .filter(|topic| {
            let exact = args.topic.as_deref() == Some(topic.name.as_str());
            matcher
                .as_ref()
                .is_none_or(|matcher| exact || matcher.matches(&topic.name))
        })
        .collect();
    topics.sort_by(|left, right| left.name.cmp(&right.name));
    Ok(topics)
}

/// Kafka fails --describe and --delete of a missing topic unless --if-exists is given.
fn ensure_found(args: &Args, topics: &[TopicMetadata]) -> Result<(), TopicsError> {
    match (&args.topic, topics.is_empty(), args.if_exists) {
        (Some(name), true, false) => Err(TopicsError::TopicDoesNotExist(name.clone())),
        _ => Ok(()),
    }
}

/// The non-default configs of a topic as `k=v,k=v`, from DescribeConfigs.
fn topic_configs(client: &mut Client, name: &str) -> Result<String, TopicsError> {
    let resource = DescribeConfigsResource::default()
        .with_resource_type(RESOURCE_TYPE_TOPIC)
        .with_resource_name(StrBytes::from_string(name.to_string()))
        .with_configuration_keys(None);
    let request = DescribeConfigsRequest::default().with_resources(vec![resource]);
    let response = client.send_any(ApiKey::DescribeConfigs, &request)?;
    let mut pairs = Vec::new();
    for result in response.results {
        let message = result.error_message.as_ref().map(StrBytes::as_str);
        if let Some(error) = KafkaError::for_topic(result.error_code, name, message) {
            return Err(ClientError::from(error).into());
        }
        for config in result.configs {
            if config.config_source == CONFIG_SOURCE_DEFAULT {
                continue;
            }
            let value = config.value.as_ref().map_or("null", StrBytes::as_str);
            pairs.push(format!("{}={value}", config.name.as_str()));
        }
    }
    Ok(pairs.join(","))
}

fn print_topic(topic: &TopicMetadata, configs: &str) {
    let mut line = format!("Topic: {}", topic.name);
    // Kafka leaves the id out when it is the zero UUID (no id known).
    if topic.topic_id != [0; 16] {
        line.push_str(&format!("\tTopicId: {}", uuid_to_base64(topic.topic_id)));
    }
    let replication_factor = topic
        .partitions
        .first()
        .map_or(0, |partition| partition.replicas.len());
    line.push_str(&format!(
        "\tPartitionCount: {}\tReplicationFactor: {replication_factor}\tConfigs: {configs}",
        topic.partitions.len()
    ));
    println!("{line}");
    for partition in &topic.partitions {
        let leader = match partition.leader.0 {
            leader if leader >= 0 => leader.to_string(),
            _ => "none".to_string(),
        };
        println!(
            "\tTopic: {}\tPartition: {}\tLeader: {leader}\tReplicas: {}\tIsr: {}\tElr: \tLastKnownElr: ",
            topic.name,
            partition.partition,
            join_nodes(&partition.replicas),
            join_nodes(&partition.in_sync_replicas)
        );
    }
}

fn join_nodes(nodes: &[crate::client::cluster::NodeId]) -> String {
    nodes
        .iter()
        .map(|node| node.0.to_string())
        .collect::<Vec<_>>()
        .join(",")
}

fn topic_name(name: &str) -> TopicName {
    TopicName(StrBytes::from_string(name.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_kafka_flags() {
        // The flags of kafka-topics.sh parse, with repeatable --config and absent counts as None.
        let args: Args = crate::cli::parse_tool_args(&[
            "topics",
            "--bootstrap-server",
            "h:1",
            "--create",
            "--topic",
            "t",
            "--config",
            "a=1",
            "--config",
            "b=2",
            "--if-not-exists",
        ])
        .expect("parses");
        assert!(args.create && args.if_not_exists);
        assert_eq!(args.configs, vec!["a=1", "b=2"]);
        assert_eq!(args.partitions, None);
        assert!(
            crate::cli::parse_tool_args::<Args>(&["topics", "--bootstrap-server", "h:1"]).is_err()
        );
    }

    #[test]
    fn alter_needs_a_topic_and_a_count_and_no_configs() {
        // --alter parses as an action; kafka-topics.sh's checks then ask for what is missing.
        let parse = |extra: &[&str]| {
            let mut arguments = vec!["topics", "--bootstrap-server", "h:1", "--alter"];
            arguments.extend_from_slice(extra);
            crate::cli::parse_tool_args::<Args>(&arguments).expect("parses")
        };
        let missing_count = check_alter(&parse(&["--topic", "t"])).map_err(|e| e.to_string());
        assert_eq!(
            missing_count,
            Err("Missing required argument \"[partitions]\"".to_string())
        );
        assert!(matches!(
            check_alter(&parse(&["--partitions", "3"])),
            Err(TopicsError::MissingTopic)
        ));
        assert!(matches!(
            check_alter(&parse(&[
                "--topic",
                "t",
                "--partitions",
                "3",
                "--config",
                "a=b"
            ])),
            Err(TopicsError::AlterWithConfig)
        ));
        let args = parse(&["--topic", "t", "--partitions", "3"]);
        assert!(args.alter && check_alter(&args).is_ok());
        assert_eq!(args.partitions, Some(3));
    }

    #[test]
    fn replica_assignment_replaces_the_counts() {
        let parse = |extra: &[&str]| {
            let mut arguments = vec!["topics", "--bootstrap-server", "h:1", "--create"];
            arguments.extend_from_slice(extra);
            crate::cli::parse_tool_args::<Args>(&arguments).expect("parses")
        };
        let args = parse(&["--topic", "t", "--replica-assignment", "4:5,5:6"]);
        assert_eq!(check_create(&args).unwrap(), vec![vec![4, 5], vec![5, 6]]);
        let both = parse(&[
            "--topic",
            "t",
            "--replica-assignment",
            "4",
            "--partitions",
            "1",
        ]);
        assert_eq!(
            check_create(&both).unwrap_err().to_string(),
            "Option \"[replica-assignment]\" can't be used with option \"[partitions]\""
        );
        let factor = parse(&[
            "--topic",
            "t",
            "--replica-assignment",
            "4",
            "--replication-factor",
            "1",
        ]);
        assert!(matches!(
            check_create(&factor),
            Err(TopicsError::InvalidCombination {
                other: "replication-factor",
                ..
            })
        ));
        assert!(check_create(&parse(&["--topic", "t"])).unwrap().is_empty());
    }

    #[test]
    fn configs_keep_command_line_order() {
        // Repeated keys collapse to their last value, in first-seen order.
        let entries = vec!["b=1".to_string(), "a=2".to_string(), "b=3".to_string()];
        let properties = Properties::from_arguments(&entries).expect("valid");
        let configs = creatable_configs(&entries, &properties);
        let pairs: Vec<(String, Option<String>)> = configs
            .iter()
            .map(|config| {
                let value = config
                    .value
                    .as_ref()
                    .map(|value| value.as_str().to_string());
                (config.name.as_str().to_string(), value)
            })
            .collect();
        assert_eq!(
            pairs,
            vec![
                ("b".to_string(), Some("3".to_string())),
                ("a".to_string(), Some("2".to_string()))
            ]
        );
    }
}
