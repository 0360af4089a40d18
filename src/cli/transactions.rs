//! `flink transactions`: Kafka's kafka-transactions.sh. `list` shows every broker's
//! transactional ids (`--duration-filter` keeps those open longer than it), `describe` one id's
//! transaction at its coordinator, `describe-producers` the producers a partition's leader (or
//! `--broker-id`'s replica) knows, `abort` writes an ABORT marker for the transaction that starts
//! at `--start-offset` (or for `--producer-id`, `--producer-epoch` and `--coordinator-epoch`),
//! and `find-hanging` lists the open transactions of a broker's partitions, older than
//! `--max-transaction-timeout` minutes, that their coordinator no longer counts as its own.
//!
//! Flags, tables and messages are Kafka 4's: tables are `ToolsUtils.prettyPrintTable`'s, a
//! failure prints what was being done, the cause and Kafka's "Enable debug logging" sentence on
//! stderr, and every failure, a refused command line included, exits 1. Runs on the calling
//! thread with the blocking client, which connects on the first call that needs the cluster, as
//! Kafka's admin client does.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::process::ExitCode;

use crate::client::admin::admin_settings;
use crate::client::cluster::{Client, ClientSettings, ClusterMetadata, NodeId};
use crate::client::error::{ClientError, KafkaError};
use crate::client::group::TopicPartition;
use crate::client::properties::{Properties, PropertiesError};
use crate::client::transactions::{
    abort_transaction, describe_producers, describe_transaction, list_transactions, AbortSpec,
    ProducerState, TransactionDescription, TransactionListing,
};

use super::metadata_quorum::{now_ms, table};
use super::producer_perf::{parse_tool_command, RawArgs};

/// The name usage messages give the tool.
const NAME: &str = "flink-transactions.sh";
/// Partitions (and topics) per request of `find-hanging`, as Kafka batches them.
const BATCH_SIZE_MAX: usize = 500;
const MILLISECONDS_PER_MINUTE: i64 = 60_000;
/// TRANSACTIONAL_ID_NOT_FOUND: `find-hanging` takes it to mean the id has no transaction.
const TRANSACTIONAL_ID_NOT_FOUND: i16 = 105;

const LIST_HEADERS: [&str; 4] = [
    "TransactionalId",
    "Coordinator",
    "ProducerId",
    "TransactionState",
];
const DESCRIBE_HEADERS: [&str; 9] = [
    "CoordinatorId",
    "TransactionalId",
    "ProducerId",
    "ProducerEpoch",
    "TransactionState",
    "TransactionTimeoutMs",
    "CurrentTransactionStartTimeMs",
    "TransactionDurationMs",
    "TopicPartitions",
];
const PRODUCERS_HEADERS: [&str; 6] = [
    "ProducerId",
    "ProducerEpoch",
    "LatestCoordinatorEpoch",
    "LastSequence",
    "LastTimestamp",
    "CurrentTransactionStartOffset",
];
const HANGING_HEADERS: [&str; 8] = [
    "Topic",
    "Partition",
    "ProducerId",
    "ProducerEpoch",
    "CoordinatorEpoch",
    "StartOffset",
    "LastTimestamp",
    "Duration(min)",
];

#[derive(clap::Parser, Debug)]
#[command(
    name = NAME,
    version,
    disable_version_flag = true,
    about = "This tool is used to analyze the transactional state of producers in the cluster. \
             It can be used to detect and recover from hanging transactions."
)]
pub struct Options {
    /// Show the version of this Flink distribution and exit.
    #[arg(short = 'v', long, action = clap::ArgAction::Version)]
    pub version: (),
    /// Property file containing configs to be passed to admin client (client.id,
    /// request.timeout.ms, security.protocol, ssl.*, sasl.*).
    #[arg(long, value_name = "FILE")]
    pub command_config: Option<PathBuf>,
    /// Hostname and port for the broker to connect to, in the form `host:port` (multiple
    /// comma-separated entries can be given).
    #[arg(long, value_name = "host:port")]
    pub bootstrap_server: String,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(clap::Subcommand, Debug)]
pub enum Command {
    /// List transactions.
    List(ListArgs),
    /// Describe the state of an active transactional-id.
    Describe(DescribeArgs),
    /// Describe the states of active producers for a topic partition.
    DescribeProducers(DescribeProducersArgs),
    /// Abort a hanging transaction (requires administrative privileges).
    Abort(AbortArgs),
    /// Find hanging transactions.
    FindHanging(FindHangingArgs),
}

#[derive(clap::Args, Debug)]
pub struct ListArgs {
    /// Duration (in millis) to filter by: if < 0, all transactions will be returned; otherwise,
    /// only transactions running longer than this duration will be returned.
    #[arg(long, value_name = "MS", allow_negative_numbers = true)]
    pub duration_filter: Option<i64>,
}

#[derive(clap::Args, Debug)]
pub struct DescribeArgs {
    /// Transactional id.
    #[arg(long, value_name = "ID")]
    pub transactional_id: String,
}

#[derive(clap::Args, Debug)]
pub struct DescribeProducersArgs {
    /// Optional broker id to describe the producer state on a specific replica.
    #[arg(long, value_name = "ID")]
    pub broker_id: Option<i32>,
    /// Topic name.
    #[arg(long, value_name = "TOPIC")]
    pub topic: String,
    /// Partition number.
    #[arg(long, value_name = "PARTITION")]
    pub partition: i32,
}

#[derive(clap::Args, Debug)]
pub struct AbortArgs {
    /// Topic name.
    #[arg(long, value_name = "TOPIC")]
    pub topic: String,
    /// Partition number.
    #[arg(long, value_name = "PARTITION")]
    pub partition: i32,
    /// Start offset of the transaction to abort (brokers on versions 3.0 and above need only
    /// this).
    #[arg(long, value_name = "OFFSET")]
    pub start_offset: Option<i64>,
    /// Producer id (brokers older than 3.0 need it with --producer-epoch and
    /// --coordinator-epoch).
    #[arg(long, value_name = "ID")]
    pub producer_id: Option<i64>,
    /// Producer epoch.
    #[arg(long, value_name = "EPOCH")]
    pub producer_epoch: Option<i16>,
    /// Coordinator epoch.
    #[arg(long, value_name = "EPOCH", allow_negative_numbers = true)]
    pub coordinator_epoch: Option<i32>,
}

#[derive(clap::Args, Debug)]
pub struct FindHangingArgs {
    /// Broker id to search for hanging transactions.
    #[arg(long, value_name = "ID")]
    pub broker_id: Option<i32>,
    /// Maximum transaction timeout in minutes to limit the scope of the search (15 minutes by
    /// default).
    #[arg(long, value_name = "MINUTES", default_value_t = 15)]
    pub max_transaction_timeout: i32,
    /// Topic name to limit search to (required if --partition is specified).
    #[arg(long, value_name = "TOPIC")]
    pub topic: Option<String>,
    /// Partition number.
    #[arg(long, value_name = "PARTITION")]
    pub partition: Option<i32>,
}

/// Failures of a transactions command, each printed as Kafka's `printErrorAndExit` prints it.
#[derive(Debug, thiserror::Error)]
pub enum TransactionsError {
    /// A command line or a cluster state the tool refuses, with Kafka's message.
    #[error("{0}")]
    Refused(String),
    /// A failed step: what was being done, then the cause's message.
    #[error("{context}: {cause}. Enable debug logging for additional detail.")]
    Failed { context: String, cause: String },
}

pub fn run(args: RawArgs) -> ExitCode {
    let options = match parse_tool_command::<Options>(NAME, &args.arguments) {
        Ok(options) => options,
        Err(code) => return code,
    };
    match execute(&options) {
        Ok(output) => {
            print!("{output}");
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("{error}");
            ExitCode::FAILURE
        }
    }
}

/// What the command prints on success.
fn execute(options: &Options) -> Result<String, TransactionsError> {
    let mut admin = Admin::new(options)?;
    match &options.command {
        Command::List(args) => list(&mut admin, args),
        Command::Describe(args) => describe(&mut admin, args),
        Command::DescribeProducers(args) => describe_producers_of(&mut admin, args),
        Command::Abort(args) => abort(&mut admin, args),
        Command::FindHanging(args) => find_hanging(&mut admin, args),
    }
}

/// Kafka's `Admin`: the settings of `--command-config`, and a client that connects on the first
/// call, so that each call's failure, an unreachable broker included, is reported as that call's.
struct Admin {
    bootstrap_servers: String,
    settings: ClientSettings,
    client: Option<Client>,
}

impl Admin {
    fn new(options: &Options) -> Result<Admin, TransactionsError> {
        let properties = match &options.command_config {
            Some(path) => Properties::from_file(path).map_err(|error| match error {
                PropertiesError::Read { path, source } => TransactionsError::Failed {
                    context: "Failed to load admin client properties".to_string(),
                    cause: format!("{path} ({})", io_error_text(&source)),
                },
                other => TransactionsError::Refused(other.to_string()),
            })?,
            None => Properties::default(),
        };
        let settings = admin_settings(&properties)
            .map_err(|error| TransactionsError::Refused(error.to_string()))?;
        Ok(Admin {
            bootstrap_servers: options.bootstrap_server.clone(),
            settings,
            client: None,
        })
    }

    fn client(&mut self) -> Result<&mut Client, ClientError> {
        let client = match self.client.take() {
            Some(client) => client,
            None => Client::connect(&self.bootstrap_servers, self.settings.clone())?,
        };
        Ok(self.client.insert(client))
    }
}

/// An I/O error as Java words it: the system's text without Rust's "(os error N)".
fn io_error_text(error: &std::io::Error) -> String {
    let text = error.to_string();
    match text.find(" (os error") {
        Some(end) => text[..end].to_string(),
        None => text,
    }
}

/// Reports a failed admin call as Kafka does: `context`, then the cause's own message.
fn failed(context: impl Into<String>) -> impl FnOnce(ClientError) -> TransactionsError {
    move |error| TransactionsError::Failed {
        context: context.into(),
        cause: match &error {
            ClientError::Kafka(kafka) => kafka.message().to_string(),
            other => other.to_string(),
        },
    }
}

fn list(admin: &mut Admin, args: &ListArgs) -> Result<String, TransactionsError> {
    let duration_filter_ms = args.duration_filter.unwrap_or(-1);
    let listings = admin
        .client()
        .and_then(|client| list_transactions(client, &[], duration_filter_ms))
        .map_err(failed("Failed to list transactions"))?;
    Ok(list_table(&listings))
}

/// `list`: one row per transactional id, by coordinator.
fn list_table(listings: &BTreeMap<NodeId, Vec<TransactionListing>>) -> String {
    let rows: Vec<Vec<String>> = listings
        .iter()
        .flat_map(|(node, listed)| {
            listed.iter().map(move |listing| {
                vec![
                    listing.transactional_id.clone(),
                    node.0.to_string(),
                    listing.producer_id.to_string(),
                    listing.state.clone(),
                ]
            })
        })
        .collect();
    table(&LIST_HEADERS, &rows)
}

fn describe(admin: &mut Admin, args: &DescribeArgs) -> Result<String, TransactionsError> {
    let id = &args.transactional_id;
    let description = admin
        .client()
        .and_then(|client| describe_transaction(client, id))
        .map_err(failed(format!(
            "Failed to describe transaction state of transactional-id `{id}`"
        )))?;
    Ok(describe_table(id, &description, now_ms()))
}

/// `describe`: the one row of the id's transaction; the duration counts from its start to
/// `now_ms`.
fn describe_table(id: &str, description: &TransactionDescription, now_ms: i64) -> String {
    let (start, duration) = match description.transaction_start_time_ms {
        Some(start) => (start.to_string(), (now_ms - start).to_string()),
        None => ("None".to_string(), "None".to_string()),
    };
    let partitions: Vec<String> = description
        .topic_partitions
        .iter()
        .map(TopicPartition::to_string)
        .collect();
    let row = vec![
        description.coordinator_id.to_string(),
        id.to_string(),
        description.producer_id.to_string(),
        description.producer_epoch.to_string(),
        description.state.clone(),
        description.transaction_timeout_ms.to_string(),
        start,
        duration,
        partitions.join(","),
    ];
    table(&DESCRIBE_HEADERS, &[row])
}

fn describe_producers_of(
    admin: &mut Admin,
    args: &DescribeProducersArgs,
) -> Result<String, TransactionsError> {
    let partition = TopicPartition::new(&args.topic, args.partition);
    let on = match args.broker_id {
        Some(broker) => format!("broker {broker}"),
        None => "leader".to_string(),
    };
    let producers = partition_producers(admin, &partition, args.broker_id).map_err(failed(
        format!("Failed to describe producers for partition {partition} on {on}"),
    ))?;
    Ok(producers_table(&producers))
}

/// The producers of one partition, at its leader or at `broker`.
fn partition_producers(
    admin: &mut Admin,
    partition: &TopicPartition,
    broker: Option<i32>,
) -> Result<Vec<ProducerState>, ClientError> {
    let client = admin.client()?;
    let mut results =
        describe_producers(client, std::slice::from_ref(partition), broker.map(NodeId))?;
    match results.remove(partition) {
        Some(result) => Ok(result?),
        None => Ok(Vec::new()),
    }
}

/// `describe-producers`: one row per producer, "None" where no transaction is open.
fn producers_table(producers: &[ProducerState]) -> String {
    let rows: Vec<Vec<String>> = producers
        .iter()
        .map(|producer| {
            vec![
                producer.producer_id.to_string(),
                producer.producer_epoch.to_string(),
                producer.coordinator_epoch.unwrap_or(-1).to_string(),
                producer.last_sequence.to_string(),
                producer.last_timestamp.to_string(),
                producer
                    .current_transaction_start_offset
                    .map_or_else(|| "None".to_string(), |offset| offset.to_string()),
            ]
        })
        .collect();
    table(&PRODUCERS_HEADERS, &rows)
}

fn abort(admin: &mut Admin, args: &AbortArgs) -> Result<String, TransactionsError> {
    let partition = TopicPartition::new(&args.topic, args.partition);
    let spec = match (args.start_offset, args.producer_id) {
        (None, None) => {
            return Err(TransactionsError::Refused(
                "The transaction to abort must be identified either with --start-offset (for \
                 brokers on 3.0 or above) or with --producer-id, --producer-epoch, and \
                 --coordinator-epoch (for older brokers)"
                    .to_string(),
            ))
        }
        (None, Some(producer_id)) => spec_from_arguments(partition, producer_id, args)?,
        (Some(start_offset), _) => {
            let producers = partition_producers(admin, &partition, None).map_err(failed(
                format!("Failed to validate producer state for partition {partition}"),
            ))?;
            spec_for_start_offset(partition, &producers, start_offset)?
        }
    };
    admin
        .client()
        .and_then(|client| abort_transaction(client, &spec))
        .map_err(failed(format!("Failed to abort transaction {spec}")))?;
    Ok(String::new())
}

/// The abort of `--producer-id`, which needs `--producer-epoch` and `--coordinator-epoch` too. A
/// negative coordinator epoch (a producer whose transactions never got a marker) becomes 0, which
/// no coordinator epoch is below.
fn spec_from_arguments(
    partition: TopicPartition,
    producer_id: i64,
    args: &AbortArgs,
) -> Result<AbortSpec, TransactionsError> {
    let missing =
        |flag: &str| TransactionsError::Refused(format!("Missing required argument --{flag}"));
    let producer_epoch = args
        .producer_epoch
        .ok_or_else(|| missing("producer-epoch"))?;
    let coordinator_epoch = args
        .coordinator_epoch
        .ok_or_else(|| missing("coordinator-epoch"))?;
    Ok(AbortSpec {
        partition,
        producer_id,
        producer_epoch,
        coordinator_epoch: coordinator_epoch.max(0),
    })
}

/// The abort of the transaction that starts at `start_offset`: the first producer whose open
/// transaction starts there, with its coordinator epoch (0 when it has none).
fn spec_for_start_offset(
    partition: TopicPartition,
    producers: &[ProducerState],
    start_offset: i64,
) -> Result<AbortSpec, TransactionsError> {
    let Some(producer) = producers
        .iter()
        .find(|producer| producer.current_transaction_start_offset == Some(start_offset))
    else {
        return Err(TransactionsError::Refused(format!(
            "Could not find any open transactions starting at offset {start_offset} on \
             partition {partition}"
        )));
    };
    Ok(AbortSpec {
        partition,
        producer_id: producer.producer_id,
        // Kafka's tool narrows the epoch to a short the same way.
        producer_epoch: producer.producer_epoch as i16,
        coordinator_epoch: producer.coordinator_epoch.unwrap_or(0),
    })
}

fn find_hanging(admin: &mut Admin, args: &FindHangingArgs) -> Result<String, TransactionsError> {
    check_find_hanging(args)?;
    let max_timeout_ms = i64::from(args.max_transaction_timeout) * MILLISECONDS_PER_MINUTE;
    let partitions = partitions_to_search(admin, args)?;
    let candidates = candidate_transactions(admin, args.broker_id, max_timeout_ms, &partitions)?;
    if candidates.is_empty() {
        return Ok(hanging_table(&[], now_ms()));
    }
    let producer_ids: BTreeSet<i64> = candidates
        .iter()
        .map(|open| open.producer.producer_id)
        .collect();
    let transactional_ids = lookup_transactional_ids(admin, &producer_ids)?;
    let descriptions = describe_transactions(admin, &transactional_ids)?;
    let hanging = hanging_transactions(candidates, &transactional_ids, &descriptions);
    Ok(hanging_table(&hanging, now_ms()))
}

/// Kafka's checks of the `find-hanging` flags, in its order.
fn check_find_hanging(args: &FindHangingArgs) -> Result<(), TransactionsError> {
    let refused = |message: &str| Err(TransactionsError::Refused(message.to_string()));
    if args.topic.is_none() && args.broker_id.is_none() {
        return refused(
            "The `find-hanging` command requires either --topic or --broker-id to limit the \
             scope of the search",
        );
    }
    if args.partition.is_some() && args.topic.is_none() {
        return refused("The --partition argument requires --topic to be provided");
    }
    Ok(())
}

/// The partitions to look at: the one named, the topic's, or every topic's (internal ones
/// too), kept to those with a replica on `--broker-id` when it is given.
fn partitions_to_search(
    admin: &mut Admin,
    args: &FindHangingArgs,
) -> Result<Vec<TopicPartition>, TransactionsError> {
    if let (Some(topic), Some(partition)) = (&args.topic, args.partition) {
        return Ok(vec![TopicPartition::new(topic, partition)]);
    }
    let named = args.topic.as_ref().map(|topic| vec![topic.clone()]);
    let context = match &named {
        Some(topics) => format!("Failed to describe {} topics", topics.len()),
        None => "Failed to list topics".to_string(),
    };
    let metadata = admin
        .client()
        .and_then(|client| client.metadata(named.as_deref(), false))
        .and_then(|metadata| check_topics(metadata, named.as_deref().unwrap_or_default()))
        .map_err(failed(context))?;
    Ok(partitions_on_broker(&metadata, args.broker_id))
}

/// The metadata, or the first error of a topic in it or missing from it.
fn check_topics(
    metadata: ClusterMetadata,
    named: &[String],
) -> Result<ClusterMetadata, ClientError> {
    const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
    if let Some(error) = metadata.topics.iter().find_map(|topic| topic.error.clone()) {
        return Err(error.into());
    }
    if named.iter().any(|name| metadata.topic(name).is_none()) {
        return Err(KafkaError::new(UNKNOWN_TOPIC_OR_PARTITION).into());
    }
    Ok(metadata)
}

/// Every partition in `metadata`, or those with a replica on `broker` when it is given.
fn partitions_on_broker(metadata: &ClusterMetadata, broker: Option<i32>) -> Vec<TopicPartition> {
    metadata
        .topics
        .iter()
        .flat_map(|topic| {
            topic
                .partitions
                .iter()
                .filter(move |partition| {
                    broker.is_none_or(|id| partition.replicas.contains(&NodeId(id)))
                })
                .map(|partition| TopicPartition::new(&topic.name, partition.partition))
        })
        .collect()
}

/// One producer's open transaction on one partition.
#[derive(Debug, Clone, PartialEq, Eq)]
struct OpenTransaction {
    partition: TopicPartition,
    producer: ProducerState,
}

/// The open transactions of `partitions` whose producer last wrote longer ago than the largest
/// transaction timeout, asked in batches of BATCH_SIZE_MAX partitions.
fn candidate_transactions(
    admin: &mut Admin,
    broker: Option<i32>,
    max_timeout_ms: i64,
    partitions: &[TopicPartition],
) -> Result<Vec<OpenTransaction>, TransactionsError> {
    // Kafka prints the broker as a Java Optional.
    let broker_text = match broker {
        Some(id) => format!("Optional[{id}]"),
        None => "Optional.empty".to_string(),
    };
    let mut candidates = Vec::new();
    for batch in partitions.chunks(BATCH_SIZE_MAX) {
        let producers = admin
            .client()
            .and_then(|client| describe_producers(client, batch, broker.map(NodeId)))
            .and_then(every_result)
            .map_err(failed(format!(
                "Failed to describe producers for {} partitions on broker {broker_text}",
                batch.len()
            )))?;
        candidates.extend(open_transactions_older_than(
            &producers,
            max_timeout_ms,
            now_ms(),
        ));
    }
    Ok(candidates)
}

/// Every partition's value, or the first partition's error.
fn every_result<V>(
    results: BTreeMap<TopicPartition, Result<V, KafkaError>>,
) -> Result<BTreeMap<TopicPartition, V>, ClientError> {
    results
        .into_iter()
        .map(|(partition, result)| result.map(|value| (partition, value)))
        .collect::<Result<_, _>>()
        .map_err(ClientError::from)
}

/// Kafka's candidates: open transactions whose producer's last write is more than
/// `max_timeout_ms` before `now_ms`.
fn open_transactions_older_than(
    producers: &BTreeMap<TopicPartition, Vec<ProducerState>>,
    max_timeout_ms: i64,
    now_ms: i64,
) -> Vec<OpenTransaction> {
    producers
        .iter()
        .flat_map(|(partition, states)| {
            states
                .iter()
                .filter(|state| state.current_transaction_start_offset.is_some())
                .filter(move |state| now_ms - state.last_timestamp > max_timeout_ms)
                .map(move |state| OpenTransaction {
                    partition: partition.clone(),
                    producer: state.clone(),
                })
        })
        .collect()
}

/// The transactional id of each producer id, as the coordinators list them.
fn lookup_transactional_ids(
    admin: &mut Admin,
    producer_ids: &BTreeSet<i64>,
) -> Result<BTreeMap<i64, String>, TransactionsError> {
    let filter: Vec<i64> = producer_ids.iter().copied().collect();
    let listings = admin
        .client()
        .and_then(|client| list_transactions(client, &filter, -1))
        .map_err(failed(format!(
            "Failed to list transactions for {} producers",
            producer_ids.len()
        )))?;
    Ok(listings
        .into_values()
        .flatten()
        .filter(|listing| producer_ids.contains(&listing.producer_id))
        .map(|listing| (listing.producer_id, listing.transactional_id))
        .collect())
}

/// The partitions of each transactional id's transaction at its coordinator; `None` for an id
/// the coordinator does not know.
fn describe_transactions(
    admin: &mut Admin,
    transactional_ids: &BTreeMap<i64, String>,
) -> Result<BTreeMap<String, Option<BTreeSet<TopicPartition>>>, TransactionsError> {
    let context = format!(
        "Failed to describe {} transactions",
        transactional_ids.len()
    );
    let mut descriptions = BTreeMap::new();
    for id in transactional_ids.values() {
        let description = match admin
            .client()
            .and_then(|client| describe_transaction(client, id))
        {
            Ok(description) => Some(description.topic_partitions.into_iter().collect()),
            Err(ClientError::Kafka(error)) if error.code == TRANSACTIONAL_ID_NOT_FOUND => None,
            Err(error) => return Err(failed(context)(error)),
        };
        descriptions.insert(id.clone(), description);
    }
    Ok(descriptions)
}

/// Kafka's `filterHangingTransactions`: an open transaction hangs when its producer has no
/// transactional id, its id is unknown to the coordinator, or the coordinator's transaction for
/// it does not include the partition (then no marker will ever come from the coordinator).
fn hanging_transactions(
    candidates: Vec<OpenTransaction>,
    transactional_ids: &BTreeMap<i64, String>,
    descriptions: &BTreeMap<String, Option<BTreeSet<TopicPartition>>>,
) -> Vec<OpenTransaction> {
    let mut by_producer: BTreeMap<i64, Vec<OpenTransaction>> = BTreeMap::new();
    for candidate in candidates {
        by_producer
            .entry(candidate.producer.producer_id)
            .or_default()
            .push(candidate);
    }
    by_producer
        .into_iter()
        .flat_map(|(producer_id, open)| {
            let partitions = transactional_ids
                .get(&producer_id)
                .and_then(|id| descriptions.get(id))
                .and_then(Option::as_ref);
            open.into_iter().filter(move |transaction| {
                partitions.is_none_or(|listed| !listed.contains(&transaction.partition))
            })
        })
        .collect()
}

/// `find-hanging`: one row per hanging transaction, its age in whole minutes at `now_ms`.
fn hanging_table(hanging: &[OpenTransaction], now_ms: i64) -> String {
    let rows: Vec<Vec<String>> = hanging
        .iter()
        .map(|open| {
            let producer = &open.producer;
            vec![
                open.partition.topic.clone(),
                open.partition.partition.to_string(),
                producer.producer_id.to_string(),
                producer.producer_epoch.to_string(),
                producer.coordinator_epoch.unwrap_or(-1).to_string(),
                producer
                    .current_transaction_start_offset
                    .unwrap_or(-1)
                    .to_string(),
                producer.last_timestamp.to_string(),
                ((now_ms - producer.last_timestamp) / MILLISECONDS_PER_MINUTE).to_string(),
            ]
        })
        .collect();
    table(&HANGING_HEADERS, &rows)
}

#[cfg(test)]
#[path = "transactions_tests.rs"]
mod tests;
