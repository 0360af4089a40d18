//! `flink leader-election`: Kafka's kafka-leader-election.sh. Asks any broker for preferred or
//! unclean leader elections (ElectLeaders) of one partition (`--topic` and `--partition`), of the
//! partitions a JSON file lists (`--path-to-json-file`, Kafka's `{"partitions": [{"topic": ..,
//! "partition": ..}]}`), or of every partition (`--all-topic-partitions`), and prints Kafka's
//! lines: the partitions elected, those whose leader was already the one asked for, and each
//! failure; any failure exits 1. Runs on the calling thread with the blocking client.

use std::path::PathBuf;
use std::process::ExitCode;

use kafka_protocol::messages::elect_leaders_request::TopicPartitions;
use kafka_protocol::messages::{ApiKey, ElectLeadersRequest, TopicName};
use kafka_protocol::protocol::StrBytes;

use crate::client::admin::admin_settings;
use crate::client::cluster::Client;
use crate::client::error::KafkaError;
use crate::client::properties::Properties;

use super::configs::exception_class;

/// Kafka's ELECTION_NOT_NEEDED: the partition already has the leader asked for.
const ELECTION_NOT_NEEDED: i16 = 84;
/// How long the brokers may take (Kafka's default admin timeout).
const ELECTION_TIMEOUT_MS: i32 = 30_000;

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
#[value(rename_all = "UPPER")]
pub enum ElectionType {
    #[value(alias = "preferred")]
    Preferred,
    #[value(alias = "unclean")]
    Unclean,
}

#[derive(clap::Args, Debug)]
#[command(group(
    clap::ArgGroup::new("partitions")
        .required(true)
        .args(["topic", "all_topic_partitions", "path_to_json_file"]),
))]
pub struct Args {
    /// A hostname and port for the broker to connect to, in the form host:port. Multiple
    /// comma separated URLs can be given.
    #[arg(long, value_name = "host:port", required = true)]
    pub bootstrap_server: String,
    /// Type of election to attempt: PREFERRED or UNCLEAN.
    #[arg(long, value_name = "election type", ignore_case = true)]
    pub election_type: ElectionType,
    /// Name of topic for which to perform an election (needs --partition).
    #[arg(long, value_name = "topic name", requires = "partition")]
    pub topic: Option<String>,
    /// Partition id for which to perform an election (needs --topic).
    #[arg(long, value_name = "partition id", requires = "topic")]
    pub partition: Option<i32>,
    /// Perform election on all of the eligible topic partitions.
    #[arg(long)]
    pub all_topic_partitions: bool,
    /// The JSON file with the list of partitions for which leader elections should be
    /// performed.
    #[arg(long, value_name = "Path to JSON file")]
    pub path_to_json_file: Option<PathBuf>,
    /// Configuration properties files to pass to the admin client (also --command-config,
    /// Kafka 4's name): client.id, request.timeout.ms, security.protocol, ssl.*, sasl.*.
    #[arg(
        long = "admin.config",
        alias = "command-config",
        value_name = "config file"
    )]
    pub admin_config: Option<PathBuf>,
}

pub fn run(args: Args) -> ExitCode {
    match execute(&args) {
        Ok((output, failed)) => {
            print!("{output}");
            match failed {
                0 => ExitCode::SUCCESS,
                count => {
                    eprintln!("Error: {count} replica(s) could not be elected");
                    ExitCode::FAILURE
                }
            }
        }
        Err(message) => {
            eprintln!("{message}");
            ExitCode::FAILURE
        }
    }
}

/// Kafka's lines for the elections done and the number of partitions that failed.
fn execute(args: &Args) -> Result<(String, usize), String> {
    let properties = match &args.admin_config {
        Some(path) => Properties::from_file(path).map_err(|error| error.to_string())?,
        None => Properties::default(),
    };
    let partitions = match (&args.topic, args.partition, &args.path_to_json_file) {
        (Some(topic), Some(partition), _) => Some(vec![(topic.clone(), partition)]),
        (_, _, Some(path)) => Some(partitions_from_json(
            &std::fs::read_to_string(path)
                .map_err(|error| format!("Cannot read {}: {error}", path.display()))?,
        )?),
        _ => None,
    };
    let settings = admin_settings(&properties).map_err(|error| error.to_string())?;
    let mut client =
        Client::connect(&args.bootstrap_server, settings).map_err(|error| error.to_string())?;
    let request = ElectLeadersRequest::default()
        .with_election_type(match args.election_type {
            ElectionType::Preferred => 0,
            ElectionType::Unclean => 1,
        })
        .with_timeout_ms(ELECTION_TIMEOUT_MS)
        .with_topic_partitions(partitions.map(group_by_topic));
    let response = client
        .send_any(ApiKey::ElectLeaders, &request)
        .map_err(|error| error.to_string())?;
    if let Some(error) = KafkaError::with_message(response.error_code, None) {
        return Err(format!(
            "Error completing leader election: org.apache.kafka.common.errors.{}: {}",
            exception_class(&error),
            error.message()
        ));
    }
    let mut outcomes = Vec::new();
    for topic in &response.replica_election_results {
        for partition in &topic.partition_result {
            let name = format!("{}-{}", topic.topic.as_str(), partition.partition_id);
            let message = partition.error_message.as_ref().map(StrBytes::as_str);
            outcomes.push((name, partition.error_code, message.map(str::to_string)));
        }
    }
    Ok(report(args.election_type, &outcomes))
}

/// Kafka's output for (partition, error code, message) outcomes.
fn report(kind: ElectionType, outcomes: &[(String, i16, Option<String>)]) -> (String, usize) {
    let kind = match kind {
        ElectionType::Preferred => "PREFERRED",
        ElectionType::Unclean => "UNCLEAN",
    };
    let named = |code: i16| -> Vec<&str> {
        outcomes
            .iter()
            .filter(|(_, outcome, _)| *outcome == code)
            .map(|(name, _, _)| name.as_str())
            .collect()
    };
    let mut output = String::new();
    let elected = named(0);
    if !elected.is_empty() {
        output.push_str(&format!(
            "Successfully completed leader election ({kind}) for partitions {}\n",
            elected.join(", ")
        ));
    }
    let not_needed = named(ELECTION_NOT_NEEDED);
    if !not_needed.is_empty() {
        output.push_str(&format!(
            "Valid replica already elected for partitions {}\n",
            not_needed.join(", ")
        ));
    }
    let mut failed = 0;
    for (name, code, message) in outcomes {
        if *code == 0 || *code == ELECTION_NOT_NEEDED {
            continue;
        }
        failed += 1;
        let error = KafkaError::with_message(*code, message.as_deref())
            .expect("a non-zero code is an error");
        output.push_str(&format!(
            "Error completing leader election ({kind}) for partition: {name}: org.apache.kafka.common.errors.{}: {}\n",
            exception_class(&error),
            error.message()
        ));
    }
    (output, failed)
}

fn group_by_topic(partitions: Vec<(String, i32)>) -> Vec<TopicPartitions> {
    let mut topics: Vec<TopicPartitions> = Vec::new();
    for (topic, partition) in partitions {
        match topics
            .iter_mut()
            .find(|known| known.topic.as_str() == topic)
        {
            Some(known) => known.partitions.push(partition),
            None => topics.push(
                TopicPartitions::default()
                    .with_topic(TopicName(StrBytes::from_string(topic)))
                    .with_partitions(vec![partition]),
            ),
        }
    }
    topics
}

/// The (topic, partition) pairs of Kafka's election JSON: the objects of its `partitions`
/// array, each with a string `topic` and a number `partition` (other fields are ignored).
fn partitions_from_json(text: &str) -> Result<Vec<(String, i32)>, String> {
    let start = text
        .find("\"partitions\"")
        .and_then(|at| text[at..].find('[').map(|open| at + open + 1))
        .ok_or("The JSON must have a \"partitions\" array")?;
    let end = text[start..]
        .find(']')
        .map(|close| start + close)
        .ok_or("The \"partitions\" array is not closed")?;
    text[start..end]
        .split('}')
        .filter(|entry| entry.contains('{'))
        .map(|entry| {
            let topic = json_field(entry, "topic")
                .and_then(|value| value.strip_prefix('"')?.split('"').next())
                .map(str::to_string);
            let partition = json_field(entry, "partition").and_then(|value| {
                let digits: String = value
                    .chars()
                    .take_while(|c| c.is_ascii_digit() || *c == '-')
                    .collect();
                digits.parse::<i32>().ok()
            });
            match (topic, partition) {
                (Some(topic), Some(partition)) => Ok((topic, partition)),
                _ => Err(format!(
                    "Each partition needs a \"topic\" and a \"partition\": {}}}",
                    entry.trim()
                )),
            }
        })
        .collect()
}

/// What follows `"name":` in `object`, leading spaces skipped.
fn json_field<'a>(object: &'a str, name: &str) -> Option<&'a str> {
    let key = format!("\"{name}\"");
    let after = &object[object.find(&key)? + key.len()..];
    Some(after.trim_start().strip_prefix(':')?.trim_start())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Proves Kafka's lines: elected partitions, those already led as asked, and one line per
    /// failure, which counts towards the exit code.
    #[test]
    fn reports_as_kafka() {
        let outcomes = vec![
            ("t-0".to_string(), 0, None),
            ("t-1".to_string(), 0, None),
            ("t-2".to_string(), ELECTION_NOT_NEEDED, None),
            ("t-3".to_string(), 80, Some("not in sync".to_string())),
        ];
        let (output, failed) = report(ElectionType::Preferred, &outcomes);
        assert_eq!(failed, 1);
        assert_eq!(
            output,
            "Successfully completed leader election (PREFERRED) for partitions t-0, t-1\n\
             Valid replica already elected for partitions t-2\n\
             Error completing leader election (PREFERRED) for partition: t-3: \
             org.apache.kafka.common.errors.PreferredLeaderNotAvailableException: not in sync\n"
        );
    }

    /// Proves the JSON file format is Kafka's.
    #[test]
    fn reads_kafka_json() {
        let text =
            r#"{"partitions": [{"topic": "a", "partition": 1}, {"topic": "b", "partition": 0}]}"#;
        assert_eq!(
            partitions_from_json(text).unwrap(),
            vec![("a".to_string(), 1), ("b".to_string(), 0)]
        );
        assert!(partitions_from_json(r#"{"partitions": [{"topic": "a"}]}"#).is_err());
    }
}
