//! `flink consumer-groups`: Kafka's kafka-consumer-groups.sh — list groups (`--list`, with
//! `--state`), describe them (`--describe`: offsets and lag, `--members`, `--state`), delete
//! them (`--delete`), delete their offsets (`--delete-offsets`) and reset their offsets
//! (`--reset-offsets`, a dry run unless `--execute`). Flags, tables and messages are Kafka's;
//! errors go to stderr with exit status 1. Runs on the calling thread with the blocking client.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use crate::client::admin::{list_groups, list_offsets, LATEST_TIMESTAMP};
use crate::client::cluster::{Client, ClientSettings};
use crate::client::error::ClientError;
use crate::client::group::{GroupCoordinator, GroupDescription, TopicPartition};
use crate::client::properties::{Properties, PropertiesError};
use crate::client::security::ClientSecurity;

#[path = "consumer_groups_reset.rs"]
mod reset;
#[path = "consumer_groups_table.rs"]
mod table;

use reset::{ResetError, Scenario};
use table::{MemberRow, OffsetRow, ResetRow, StateRow, MISSING};

/// Kafka's default --timeout for admin requests.
const TIMEOUT_MS_DEFAULT: u64 = 5_000;
/// Pause between coordinator retries.
const RETRY_BACKOFF: Duration = Duration::from_millis(100);
/// The states in which a group has no active members, so its offsets may be reset.
const INACTIVE_STATES: [&str; 2] = ["Empty", "Dead"];

#[derive(clap::Args, Debug)]
#[command(group(clap::ArgGroup::new("action").required(true).args(
    ["list", "describe", "delete", "reset_offsets", "delete_offsets"]
)))]
pub struct Args {
    /// The server(s) to connect to (host:port[,host:port...]).
    #[arg(long, value_name = "SERVER")]
    pub bootstrap_server: String,
    /// Property file with client configs (client.id, request.timeout.ms, security.protocol,
    /// ssl.*, sasl.*).
    #[arg(long, value_name = "FILE")]
    pub command_config: Option<PathBuf>,
    /// List all consumer groups.
    #[arg(long)]
    pub list: bool,
    /// Describe consumer groups and list offset lag (number of messages not yet processed).
    #[arg(long)]
    pub describe: bool,
    /// Delete consumer groups.
    #[arg(long)]
    pub delete: bool,
    /// Reset offsets of a consumer group (an inactive one).
    #[arg(long)]
    pub reset_offsets: bool,
    /// Delete offsets of a consumer group for the given --topic.
    #[arg(long)]
    pub delete_offsets: bool,
    /// The consumer group(s) to act on.
    #[arg(long, value_name = "GROUP")]
    pub group: Vec<String>,
    /// Act on all groups.
    #[arg(long)]
    pub all_groups: bool,
    /// With --describe: describe members of the group.
    #[arg(long)]
    pub members: bool,
    /// With --describe: describe the group and list all topic partitions with offsets (default).
    #[arg(long)]
    pub offsets: bool,
    /// With --describe: the group's state; with --list: add the state column, optionally
    /// listing only the given comma-separated states.
    #[arg(long, value_name = "STATES", num_args = 0..=1)]
    pub state: Option<Option<String>>,
    /// The topic(s) whose offsets are reset or deleted: T or T:0,1,2.
    #[arg(long, value_name = "TOPIC")]
    pub topic: Vec<String>,
    /// With --reset-offsets: every topic the group has offsets for.
    #[arg(long)]
    pub all_topics: bool,
    /// Reset to the earliest offset.
    #[arg(long)]
    pub to_earliest: bool,
    /// Reset to the latest offset.
    #[arg(long)]
    pub to_latest: bool,
    /// Reset to this offset.
    #[arg(long, value_name = "OFFSET")]
    pub to_offset: Option<i64>,
    /// Move the current offsets by N (negative moves back).
    #[arg(long, value_name = "N", allow_hyphen_values = true)]
    pub shift_by: Option<i64>,
    /// Reset to the first offset at or after a time: YYYY-MM-DDTHH:mm:SS.sss (UTC unless a zone
    /// like +02:00 is given).
    #[arg(long, value_name = "DATETIME")]
    pub to_datetime: Option<String>,
    /// Only show the reset plan (the default).
    #[arg(long, conflicts_with = "execute")]
    pub dry_run: bool,
    /// Execute the reset.
    #[arg(long)]
    pub execute: bool,
    /// Admin request timeout in milliseconds.
    #[arg(long, value_name = "MS")]
    pub timeout: Option<u64>,
}

/// Failures of a consumer-groups command; each prints as Kafka's tool prints it.
#[derive(Debug, thiserror::Error)]
pub enum ConsumerGroupsError {
    #[error("Executing consumer group command failed due to {0}")]
    Client(#[from] ClientError),
    #[error("{0}")]
    Properties(#[from] PropertiesError),
    #[error("{0}")]
    Reset(#[from] ResetError),
    #[error("Option [{0}] takes one of these options: [all-groups], [group]")]
    MissingGroup(&'static str),
    #[error("One of the reset scopes should be defined: --all-topics, --topic.")]
    MissingScope,
    #[error("Option '[reset-offsets]' requires exactly one of the following scenarios: [to-offset], [to-datetime], [to-earliest], [to-latest], [shift-by]")]
    Scenario,
    #[error("Option [delete-offsets] takes the options [group] (exactly one) and [topic]")]
    DeleteOffsetsArguments,
    #[error("Consumer group '{0}' does not exist.")]
    GroupNotFound(String),
    #[error("Assignments can only be reset if the group '{group}' is inactive, but the current state is {state}.")]
    GroupActive { group: String, state: String },
    #[error("Deletion of some consumer groups failed:\n{0}")]
    DeleteFailed(String),
}

pub fn run(args: Args) -> ExitCode {
    match execute(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("\nError: {error}");
            ExitCode::FAILURE
        }
    }
}

fn execute(args: &Args) -> Result<(), ConsumerGroupsError> {
    validate(args)?;
    let mut client = connect(args)?;
    if args.list {
        list(&mut client, args)
    } else if args.describe {
        describe(&mut client, args)
    } else if args.delete {
        delete(&mut client, args)
    } else if args.delete_offsets {
        delete_offsets(&mut client, args)
    } else {
        reset_offsets(&mut client, args)
    }
}

/// Kafka's option checks, before anything is sent.
fn validate(args: &Args) -> Result<(), ConsumerGroupsError> {
    let needs_group = [
        (args.describe, "describe"),
        (args.delete, "delete"),
        (args.reset_offsets, "reset-offsets"),
    ];
    for (given, action) in needs_group {
        if given && args.group.is_empty() && !args.all_groups {
            return Err(ConsumerGroupsError::MissingGroup(action));
        }
    }
    if args.delete_offsets && (args.group.len() != 1 || args.topic.is_empty()) {
        return Err(ConsumerGroupsError::DeleteOffsetsArguments);
    }
    if args.reset_offsets {
        if args.topic.is_empty() && !args.all_topics {
            return Err(ConsumerGroupsError::MissingScope);
        }
        scenario(args)?;
    }
    Ok(())
}

fn scenario(args: &Args) -> Result<Scenario, ConsumerGroupsError> {
    let mut chosen = Vec::new();
    if args.to_earliest {
        chosen.push(Scenario::Earliest);
    }
    if args.to_latest {
        chosen.push(Scenario::Latest);
    }
    if let Some(offset) = args.to_offset {
        chosen.push(Scenario::Offset(offset));
    }
    if let Some(shift) = args.shift_by {
        chosen.push(Scenario::ShiftBy(shift));
    }
    if let Some(datetime) = &args.to_datetime {
        chosen.push(Scenario::Timestamp(reset::parse_datetime(datetime)?));
    }
    match chosen.as_slice() {
        [scenario] => Ok(*scenario),
        _ => Err(ConsumerGroupsError::Scenario),
    }
}

fn connect(args: &Args) -> Result<Client, ConsumerGroupsError> {
    let properties = match &args.command_config {
        Some(path) => Properties::from_file(path)?,
        None => Properties::default(),
    };
    let timeout_ms = match args.timeout {
        Some(timeout_ms) => timeout_ms,
        None => properties.integer_or("request.timeout.ms", TIMEOUT_MS_DEFAULT)?,
    };
    let settings = ClientSettings {
        client_id: properties
            .get("client.id")
            .unwrap_or("adminclient-1")
            .to_string(),
        request_timeout: Duration::from_millis(timeout_ms),
        security: ClientSecurity::from_properties(&properties)?,
    };
    Ok(Client::connect(&args.bootstrap_server, settings)?)
}

/// Consumer groups: those of protocol type "consumer", and empty groups without a type.
fn consumer_group_ids(
    client: &mut Client,
    states: &[String],
) -> Result<Vec<(String, String)>, ConsumerGroupsError> {
    let groups = list_groups(client, states)?;
    Ok(groups
        .into_iter()
        .filter(|group| group.protocol_type == "consumer" || group.protocol_type.is_empty())
        .map(|group| (group.group_id, group.state))
        .collect())
}

fn list(client: &mut Client, args: &Args) -> Result<(), ConsumerGroupsError> {
    let Some(state_filter) = &args.state else {
        for (group, _) in consumer_group_ids(client, &[])? {
            println!("{group}");
        }
        return Ok(());
    };
    let states: Vec<String> = state_filter
        .iter()
        .flat_map(|states| states.split(','))
        .map(str::trim)
        .filter(|state| !state.is_empty())
        .map(normalize_state)
        .collect();
    let mut groups = consumer_group_ids(client, &states)?;
    // Older brokers ignore the filter; apply it here too.
    groups.retain(|(_, state)| states.is_empty() || states.contains(state));
    print!("{}", table::list_with_state(&groups));
    Ok(())
}

/// Kafka accepts state names in any case ("stable"); the protocol uses "Stable".
fn normalize_state(state: &str) -> String {
    const STATES: [&str; 5] = [
        "PreparingRebalance",
        "CompletingRebalance",
        "Stable",
        "Dead",
        "Empty",
    ];
    STATES
        .iter()
        .find(|known| known.eq_ignore_ascii_case(state))
        .map_or_else(|| state.to_string(), |known| known.to_string())
}

/// The groups named by --group, or every consumer group with --all-groups.
fn target_groups(client: &mut Client, args: &Args) -> Result<Vec<String>, ConsumerGroupsError> {
    if !args.all_groups {
        return Ok(args.group.clone());
    }
    Ok(consumer_group_ids(client, &[])?
        .into_iter()
        .map(|(group, _)| group)
        .collect())
}

fn describe(client: &mut Client, args: &Args) -> Result<(), ConsumerGroupsError> {
    let groups: BTreeSet<String> = target_groups(client, args)?.into_iter().collect();
    for group in groups {
        let mut coordinator = GroupCoordinator::new(&group, RETRY_BACKOFF);
        let description = coordinator.describe(client)?;
        if description.state == "Dead" {
            return Err(ConsumerGroupsError::GroupNotFound(group));
        }
        print_state_notice(&description);
        if args.members {
            print!("{}", table::members(&member_rows(&description)));
        } else if args.state.is_some() && !args.offsets {
            let row = StateRow {
                group: group.clone(),
                coordinator: coordinator.describe_node().unwrap_or_default(),
                assignment_strategy: description.assignment_strategy.clone(),
                state: description.state.clone(),
                members: description.members.len(),
            };
            print!("{}", table::state(&row));
        } else {
            let rows = offset_rows(client, &mut coordinator, &description)?;
            if !rows.is_empty() {
                print!("{}", table::offsets(&rows));
            }
        }
    }
    Ok(())
}

/// Kafka's notes on stderr for a group without members or in a rebalance.
fn print_state_notice(description: &GroupDescription) {
    let group = &description.group_id;
    match description.state.as_str() {
        "Empty" => eprintln!("\nConsumer group '{group}' has no active members."),
        "PreparingRebalance" | "CompletingRebalance" => {
            eprintln!("\nWarning: Consumer group '{group}' is rebalancing.")
        }
        _ => {}
    }
}

fn member_rows(description: &GroupDescription) -> Vec<MemberRow> {
    description
        .members
        .iter()
        .map(|member| MemberRow {
            group: description.group_id.clone(),
            consumer_id: member.member_id.clone(),
            host: member.client_host.clone(),
            client_id: member.client_id.clone(),
            partitions: member.assignment.partition_count(),
        })
        .collect()
}

/// One row per assigned partition (members with more partitions first), then one per committed
/// partition nobody is assigned, each with its log end offset.
fn offset_rows(
    client: &mut Client,
    coordinator: &mut GroupCoordinator,
    description: &GroupDescription,
) -> Result<Vec<OffsetRow>, ConsumerGroupsError> {
    let committed = coordinator.fetch_offsets(client, None)?;
    let mut members: Vec<_> = description
        .members
        .iter()
        .filter(|member| member.assignment.partition_count() > 0)
        .collect();
    members.sort_by_key(|member| std::cmp::Reverse(member.assignment.partition_count()));
    let mut owners: Vec<(TopicPartition, [String; 3])> = Vec::new();
    for member in members {
        let mut partitions: Vec<TopicPartition> = member
            .assignment
            .partitions
            .iter()
            .flat_map(|entry| {
                entry
                    .partitions
                    .iter()
                    .map(|partition| TopicPartition::new(&entry.topic, *partition))
            })
            .collect();
        partitions.sort();
        let owner = [
            member.member_id.clone(),
            member.client_host.clone(),
            member.client_id.clone(),
        ];
        owners.extend(
            partitions
                .into_iter()
                .map(|partition| (partition, owner.clone())),
        );
    }
    let assigned: BTreeSet<TopicPartition> = owners.iter().map(|(tp, _)| tp.clone()).collect();
    let unowned = [
        MISSING.to_string(),
        MISSING.to_string(),
        MISSING.to_string(),
    ];
    owners.extend(
        committed
            .keys()
            .filter(|partition| !assigned.contains(*partition))
            .map(|partition| (partition.clone(), unowned.clone())),
    );
    let partitions: Vec<TopicPartition> = owners.iter().map(|(tp, _)| tp.clone()).collect();
    let ends = log_end_offsets(client, &partitions)?;
    Ok(owners
        .into_iter()
        .map(|(partition, [consumer_id, host, client_id])| OffsetRow {
            group: description.group_id.clone(),
            current_offset: committed.get(&partition).copied(),
            log_end_offset: ends.get(&partition).copied(),
            topic: partition.topic,
            partition: partition.partition,
            consumer_id,
            host,
            client_id,
        })
        .collect())
}

/// Log end offsets; partitions whose offset cannot be read are left out (printed as "-").
fn log_end_offsets(
    client: &mut Client,
    partitions: &[TopicPartition],
) -> Result<BTreeMap<TopicPartition, i64>, ConsumerGroupsError> {
    if partitions.is_empty() {
        return Ok(BTreeMap::new());
    }
    Ok(list_offsets(client, partitions, LATEST_TIMESTAMP)?
        .into_iter()
        .filter_map(|(partition, result)| result.ok().map(|offset| (partition, offset)))
        .collect())
}

fn delete(client: &mut Client, args: &Args) -> Result<(), ConsumerGroupsError> {
    let groups = target_groups(client, args)?;
    let mut deleted = Vec::new();
    let mut failed = Vec::new();
    for group in &groups {
        let mut coordinator = GroupCoordinator::new(group, RETRY_BACKOFF);
        match coordinator.delete(client) {
            Ok(()) => deleted.push(format!("'{group}'")),
            Err(ClientError::Kafka(error)) => failed.push(format!(
                "* Group '{group}' could not be deleted due to: {}: {error}",
                error.name()
            )),
            Err(error) => return Err(error.into()),
        }
    }
    if failed.is_empty() {
        println!(
            "Deletion of requested consumer groups ({}) was successful.",
            deleted.join(", ")
        );
        return Ok(());
    }
    let mut report = failed.join("\n");
    if !deleted.is_empty() {
        report.push_str(&format!(
            "\n\nThese consumer groups were deleted successfully: {}",
            deleted.join(", ")
        ));
    }
    Err(ConsumerGroupsError::DeleteFailed(report))
}

fn delete_offsets(client: &mut Client, args: &Args) -> Result<(), ConsumerGroupsError> {
    let group = &args.group[0];
    let partitions = reset::partitions_to_reset(client, &args.topic)?;
    let mut coordinator = GroupCoordinator::new(group, RETRY_BACKOFF);
    let results = coordinator.delete_offsets(client, &partitions)?;
    println!("Request succeeded for deleting offsets from group {group}.");
    let width = results
        .keys()
        .map(|partition| partition.topic.len())
        .fold(15, usize::max);
    print!("\n{:<width$} {:<10} {:<15}", "TOPIC", "PARTITION", "STATUS");
    for (partition, error) in &results {
        let status = match error {
            None => "Successful".to_string(),
            Some(error) => format!("Error: {error}"),
        };
        print!(
            "\n{:<width$} {:<10} {:<15}",
            partition.topic, partition.partition, status
        );
    }
    println!();
    Ok(())
}

fn reset_offsets(client: &mut Client, args: &Args) -> Result<(), ConsumerGroupsError> {
    let scenario = scenario(args)?;
    if !args.dry_run && !args.execute {
        eprintln!("WARN: No action will be performed as the --execute option is missing. In a future major release, the default behavior of this command will be to prompt the user before executing the reset rather than doing a dry run. You should add the --dry-run option explicitly if you are scripting this command and want to keep the current default behavior without prompting.");
    }
    let mut rows = Vec::new();
    for group in target_groups(client, args)? {
        let mut coordinator = GroupCoordinator::new(&group, RETRY_BACKOFF);
        let description = coordinator.describe(client)?;
        if !INACTIVE_STATES.contains(&description.state.as_str()) {
            return Err(ConsumerGroupsError::GroupActive {
                group,
                state: description.state,
            });
        }
        let committed = coordinator.fetch_offsets(client, None)?;
        let partitions = match args.all_topics {
            true => committed.keys().cloned().collect(),
            false => reset::partitions_to_reset(client, &args.topic)?,
        };
        let mut warnings = Vec::new();
        let planned = reset::plan(client, &partitions, scenario, &committed, &mut warnings)?;
        for warning in warnings {
            eprintln!("WARN {warning}");
        }
        if args.execute {
            coordinator.commit_offsets(client, -1, "", &planned)?;
        }
        rows.extend(planned.into_iter().map(|(partition, new_offset)| ResetRow {
            group: group.clone(),
            topic: partition.topic,
            partition: partition.partition,
            new_offset,
        }));
    }
    print!("{}", table::reset_plan(&rows));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(arguments: &[&str]) -> Result<Args, clap::Error> {
        let mut full = vec!["consumer-groups", "--bootstrap-server", "h:1"];
        full.extend_from_slice(arguments);
        crate::cli::parse_tool_args(&full)
    }

    #[test]
    fn exactly_one_action_is_required() {
        // No action, or two actions, is a usage error; one action parses.
        assert!(parse(&[]).is_err());
        assert!(parse(&["--list", "--describe"]).is_err());
        assert!(parse(&["--list"]).is_ok());
    }

    #[test]
    fn state_is_a_flag_or_a_filter() {
        // --state alone (describe, or list with the column) and --state LIST (list filter).
        let args = parse(&["--list", "--state"]).expect("parses");
        assert_eq!(args.state, Some(None));
        let args = parse(&["--list", "--state", "Stable,Empty"]).expect("parses");
        assert_eq!(args.state, Some(Some("Stable,Empty".to_string())));
        let args = parse(&["--describe", "--group", "g", "--state"]).expect("parses");
        assert!(args.state.is_some() && validate(&args).is_ok());
        assert_eq!(normalize_state("stable"), "Stable");
    }

    #[test]
    fn options_are_checked_as_kafka_checks_them() {
        // Group-taking actions need --group; resets need a scope and exactly one scenario.
        let args = parse(&["--describe"]).expect("parses");
        assert!(matches!(
            validate(&args),
            Err(ConsumerGroupsError::MissingGroup("describe"))
        ));
        let args = parse(&["--reset-offsets", "--group", "g", "--to-earliest"]).expect("parses");
        assert!(matches!(
            validate(&args),
            Err(ConsumerGroupsError::MissingScope)
        ));
        let args = parse(&["--reset-offsets", "--group", "g", "--all-topics"]).expect("parses");
        assert!(matches!(
            validate(&args),
            Err(ConsumerGroupsError::Scenario)
        ));
        let args = parse(&[
            "--reset-offsets",
            "--group",
            "g",
            "--topic",
            "t:0",
            "--shift-by",
            "-2",
            "--execute",
        ])
        .expect("parses");
        assert_eq!(scenario(&args).ok(), Some(Scenario::ShiftBy(-2)));
        let args = parse(&[
            "--reset-offsets",
            "--group",
            "g",
            "--all-topics",
            "--to-datetime",
            "1970-01-01T00:00:01.000",
        ])
        .expect("parses");
        assert_eq!(scenario(&args).ok(), Some(Scenario::Timestamp(1_000)));
        assert!(parse(&["--reset-offsets", "--dry-run", "--execute"]).is_err());
        let args = parse(&["--delete-offsets", "--group", "g"]).expect("parses");
        assert!(validate(&args).is_err());
    }
}
