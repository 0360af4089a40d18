//! `flink metadata-quorum`: Kafka's kafka-metadata-quorum.sh. `describe --status` prints the
//! cluster id (DescribeCluster) and the metadata quorum's leader, epoch, high watermark, the
//! largest follower lag and the voters and observers with their endpoints (DescribeQuorum);
//! `describe --replication` prints one row per replica: leader, followers, observers. Lines,
//! padding, table layout, messages and exit codes follow Kafka 4: a refused command line prints
//! its message alone, any other failure the exception's message and its first stack trace line,
//! and both exit 1.
//!
//! Only `--bootstrap-server` is served: Flink's controllers speak a private protocol on the
//! CONTROLLER listener, so `--bootstrap-controller` is refused, and so are Kafka's
//! `add-controller` and `remove-controller` (the voters are fixed by `controller.quorum.voters`).
//! Runs on the calling thread with the blocking client.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::client::admin::{
    admin_settings, describe_cluster_id, describe_quorum, QuorumInfo, QuorumReplica,
};
use crate::client::cluster::Client;
use crate::client::error::ClientError;
use crate::client::properties::{Properties, PropertiesError};
use crate::metadata::uuid::uuid_to_base64;

use super::configs::exception_class;

/// Width of the labels of `--status` (Kafka pads each to 24 characters).
const STATUS_LABEL_WIDTH: usize = 24;
/// The columns of `--replication`.
const REPLICATION_HEADERS: [&str; 7] = [
    "NodeId",
    "DirectoryId",
    "LogEndOffset",
    "Lag",
    "LastFetchTimestamp",
    "LastCaughtUpTimestamp",
    "Status",
];
pub(crate) const BOOTSTRAP_CONTROLLER_REFUSED: &str =
    "--bootstrap-controller is not supported: Flink \
    controllers speak a private protocol on the CONTROLLER listener. Use --bootstrap-server with \
    a broker's address; the broker asks the active controller.";

#[derive(clap::Args, Debug)]
#[command(group(
    clap::ArgGroup::new("connection")
        .required(true)
        .args(["bootstrap_server", "bootstrap_controller"]),
))]
pub struct Args {
    /// A comma-separated list of host:port pairs to use for establishing the connection to the
    /// cluster.
    #[arg(long, value_name = "SERVER")]
    pub bootstrap_server: Option<String>,
    /// Not supported: Flink controllers are reached through the brokers.
    #[arg(long, value_name = "CONTROLLER")]
    pub bootstrap_controller: Option<String>,
    /// Property file containing configs to be passed to the admin client (client.id,
    /// request.timeout.ms, security.protocol, ssl.*, sasl.*).
    #[arg(long, value_name = "FILE")]
    pub command_config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: QuorumCommand,
}

#[derive(clap::Subcommand, Debug)]
pub enum QuorumCommand {
    /// Describe the metadata quorum info.
    Describe(DescribeArgs),
    /// Not supported: the voters are fixed by controller.quorum.voters.
    #[command(hide = true)]
    AddController(IgnoredArgs),
    /// Not supported: the voters are fixed by controller.quorum.voters.
    #[command(hide = true)]
    RemoveController(IgnoredArgs),
}

#[derive(clap::Args, Debug)]
pub struct DescribeArgs {
    /// A short summary of the quorum status.
    #[arg(long)]
    pub status: bool,
    /// Detailed information about the status of replication.
    #[arg(long)]
    pub replication: bool,
    /// With --replication: times as "N ms ago".
    #[arg(long)]
    pub human_readable: bool,
}

/// The arguments of a refused subcommand, accepted so that the refusal is what is printed.
#[derive(clap::Args, Debug)]
pub struct IgnoredArgs {
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, hide = true)]
    pub arguments: Vec<String>,
}

/// Failures of a metadata-quorum command. `report` prints each as Kafka's tool does.
#[derive(Debug, thiserror::Error)]
pub enum QuorumError {
    /// A command line Kafka refuses before asking the cluster (its TerseException).
    #[error("{0}")]
    Terse(String),
    /// No voter is the leader the quorum names (Kafka's `Optional.get` on an empty Optional).
    #[error("No value present")]
    NoLeader,
    /// A timestamp in the future or before 1970 with `--human-readable`.
    #[error(
        "Error while computing relative time, possible drift in system clock.\n\
         Current timestamp is {now_ms}, {what} timestamp is {timestamp_ms}"
    )]
    ClockDrift {
        now_ms: i64,
        what: &'static str,
        timestamp_ms: i64,
    },
    #[error("{0}")]
    Properties(#[from] PropertiesError),
    #[error("{0}")]
    Client(#[from] ClientError),
}

pub fn run(args: Args) -> ExitCode {
    match execute(&args) {
        Ok(output) => {
            print!("{output}");
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("{}", report(&error));
            ExitCode::FAILURE
        }
    }
}

/// What the command prints on success.
fn execute(args: &Args) -> Result<String, QuorumError> {
    let properties = match &args.command_config {
        Some(path) if !path.exists() => {
            return Err(QuorumError::Terse(format!(
                "Properties file {} does not exist.",
                path.display()
            )))
        }
        Some(path) => Properties::from_file(path)?,
        None => Properties::default(),
    };
    let describe = match &args.command {
        QuorumCommand::Describe(describe) => describe,
        QuorumCommand::AddController(_) | QuorumCommand::RemoveController(_) => {
            return Err(QuorumError::Terse(
                "Flink's controller quorum is fixed by controller.quorum.voters: controllers \
                 cannot be added or removed at run time."
                    .to_string(),
            ))
        }
    };
    let bootstrap_server = match (&args.bootstrap_server, &args.bootstrap_controller) {
        (Some(servers), _) => servers,
        (None, _) => return Err(QuorumError::Terse(BOOTSTRAP_CONTROLLER_REFUSED.to_string())),
    };
    let view = check_describe(describe)?;
    let mut client = Client::connect(bootstrap_server, admin_settings(&properties)?)?;
    match view {
        View::Status => {
            let cluster_id = describe_cluster_id(&mut client)?;
            status_text(&cluster_id, &describe_quorum(&mut client)?)
        }
        View::Replication { human_readable } => {
            let quorum = describe_quorum(&mut client)?;
            let now = human_readable.then(now_ms);
            replication_text(&quorum, now)
        }
    }
}

/// What `describe` shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum View {
    Status,
    Replication { human_readable: bool },
}

/// Kafka's checks of the `describe` flags, in its order.
fn check_describe(describe: &DescribeArgs) -> Result<View, QuorumError> {
    let terse = |message: &str| Err(QuorumError::Terse(message.to_string()));
    match (describe.status, describe.replication) {
        (true, true) => terse(
            "Only one of --status or --replication should be specified with describe sub-command",
        ),
        (false, true) => Ok(View::Replication {
            human_readable: describe.human_readable,
        }),
        (true, false) if describe.human_readable => {
            terse("The option --human-readable is only supported along with --replication")
        }
        (true, false) => Ok(View::Status),
        (false, false) => {
            terse("One of --status or --replication must be specified with describe sub-command")
        }
    }
}

/// What stderr shows for `error`: a refused command line alone; anything else as Kafka's tool
/// prints a Throwable, its message and then its stack trace, of which only the first line (the
/// exception) is Flink's to reproduce. Errors from the cluster arrive wrapped in the admin
/// client's ExecutionException.
fn report(error: &QuorumError) -> String {
    let (message, exception) = match error {
        QuorumError::Terse(message) => return message.clone(),
        QuorumError::NoLeader => (
            error.to_string(),
            format!("java.util.NoSuchElementException: {error}"),
        ),
        QuorumError::ClockDrift { .. } => (
            error.to_string(),
            format!("org.apache.kafka.common.KafkaException: {error}"),
        ),
        QuorumError::Client(ClientError::Kafka(kafka)) => {
            let cause = format!(
                "org.apache.kafka.common.errors.{}: {}",
                exception_class(kafka),
                kafka.message()
            );
            let exception = format!("java.util.concurrent.ExecutionException: {cause}");
            (cause, exception)
        }
        QuorumError::Properties(_) | QuorumError::Client(_) => return error.to_string(),
    };
    format!("{message}\n{exception}")
}

/// `--status`: eight labelled lines, as Kafka's `handleDescribeStatus` prints them.
fn status_text(cluster_id: &str, quorum: &QuorumInfo) -> Result<String, QuorumError> {
    let leader_index = leader_index(quorum)?;
    let leader = &quorum.voters[leader_index];
    // Kafka's Stream.min keeps the first of equal offsets; the lag time is 0 only when that
    // voter is the leader itself.
    let (lagging_index, lagging) = quorum
        .voters
        .iter()
        .enumerate()
        .reduce(
            |least, next| match next.1.log_end_offset < least.1.log_end_offset {
                true => next,
                false => least,
            },
        )
        .ok_or(QuorumError::NoLeader)?;
    let max_follower_lag = leader.log_end_offset - lagging.log_end_offset;
    let max_follower_lag_time_ms = match (
        lagging_index == leader_index,
        leader.last_caught_up_timestamp,
        lagging.last_caught_up_timestamp,
    ) {
        (true, _, _) => 0,
        (false, Some(leader_time), Some(lagging_time)) => leader_time - lagging_time,
        (false, _, _) => -1,
    };
    let lines = [
        ("ClusterId:", cluster_id.to_string()),
        ("LeaderId:", quorum.leader_id.to_string()),
        ("LeaderEpoch:", quorum.leader_epoch.to_string()),
        ("HighWatermark:", quorum.high_watermark.to_string()),
        ("MaxFollowerLag:", max_follower_lag.to_string()),
        (
            "MaxFollowerLagTimeMs:",
            max_follower_lag_time_ms.to_string(),
        ),
        ("CurrentVoters:", replica_list(quorum, &quorum.voters)),
        ("CurrentObservers:", replica_list(quorum, &quorum.observers)),
    ];
    Ok(lines
        .iter()
        .map(|(label, value)| format!("{label:<STATUS_LABEL_WIDTH$}{value}\n"))
        .collect())
}

/// The position among the voters of the first voter that is the leader.
fn leader_index(quorum: &QuorumInfo) -> Result<usize, QuorumError> {
    quorum
        .voters
        .iter()
        .position(|voter| voter.replica_id == quorum.leader_id)
        .ok_or(QuorumError::NoLeader)
}

/// `[{"id": 1, "directoryId": "…", "endpoints": ["CONTROLLER://host:9093"]}, …]`: the directory
/// id only when there is one, the endpoints only when `nodes` has some for the replica.
fn replica_list(quorum: &QuorumInfo, replicas: &[QuorumReplica]) -> String {
    let entries: Vec<String> = replicas
        .iter()
        .map(|replica| {
            let mut entry = format!("{{\"id\": {}", replica.replica_id);
            if replica.directory_id != [0; 16] {
                let directory = uuid_to_base64(replica.directory_id);
                entry.push_str(&format!(", \"directoryId\": \"{directory}\""));
            }
            let endpoints = quorum
                .nodes
                .get(&replica.replica_id)
                .map_or(&[][..], Vec::as_slice);
            if !endpoints.is_empty() {
                let quoted: Vec<String> = endpoints
                    .iter()
                    .map(|endpoint| format!("\"{endpoint}\""))
                    .collect();
                entry.push_str(&format!(", \"endpoints\": [{}]", quoted.join(", ")));
            }
            entry.push('}');
            entry
        })
        .collect();
    format!("[{}]", entries.join(", "))
}

/// `--replication`: the leader, then the other voters, then the observers, in Kafka's table
/// layout. `now_ms` is set for `--human-readable`, which shows times as "N ms ago".
fn replication_text(quorum: &QuorumInfo, now_ms: Option<i64>) -> Result<String, QuorumError> {
    let leader = &quorum.voters[leader_index(quorum)?];
    let followers = quorum
        .voters
        .iter()
        .filter(|voter| voter.replica_id != quorum.leader_id);
    let mut rows = vec![replication_row(leader, leader, "Leader", now_ms)?];
    for follower in followers {
        rows.push(replication_row(leader, follower, "Follower", now_ms)?);
    }
    for observer in &quorum.observers {
        rows.push(replication_row(leader, observer, "Observer", now_ms)?);
    }
    Ok(table(&REPLICATION_HEADERS, &rows))
}

fn replication_row(
    leader: &QuorumReplica,
    replica: &QuorumReplica,
    status: &str,
    now_ms: Option<i64>,
) -> Result<Vec<String>, QuorumError> {
    let time = |timestamp: Option<i64>, what: &'static str| match (timestamp, now_ms) {
        (None, _) => Ok("-1".to_string()),
        (Some(timestamp), None) => Ok(timestamp.to_string()),
        (Some(timestamp), Some(now)) => {
            relative_time_ms(timestamp, now, what).map(|elapsed| format!("{elapsed} ms ago"))
        }
    };
    Ok(vec![
        replica.replica_id.to_string(),
        uuid_to_base64(replica.directory_id),
        replica.log_end_offset.to_string(),
        (leader.log_end_offset - replica.log_end_offset).to_string(),
        time(replica.last_fetch_timestamp, "last fetch")?,
        time(replica.last_caught_up_timestamp, "last caught up")?,
        status.to_string(),
    ])
}

/// Milliseconds from `timestamp_ms` to `now_ms`; Kafka refuses a time at or before the epoch
/// and one after now.
fn relative_time_ms(
    timestamp_ms: i64,
    now_ms: i64,
    what: &'static str,
) -> Result<i64, QuorumError> {
    match timestamp_ms > 0 && timestamp_ms <= now_ms {
        true => Ok(now_ms - timestamp_ms),
        false => Err(QuorumError::ClockDrift {
            now_ms,
            what,
            timestamp_ms,
        }),
    }
}

/// Kafka's `ToolsUtils.prettyPrintTable`: each cell padded to its column's widest, and every
/// cell, the last one too, followed by a tab.
pub(crate) fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers
        .iter()
        .map(|header| header.chars().count())
        .collect();
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let line = |cells: &mut dyn Iterator<Item = &str>| -> String {
        let mut text: String = cells
            .zip(&widths)
            .map(|(cell, width)| format!("{cell:<width$}\t"))
            .collect();
        text.push('\n');
        text
    };
    let mut text = line(&mut headers.iter().copied());
    for row in rows {
        text.push_str(&line(&mut row.iter().map(String::as_str)));
    }
    text
}

/// Milliseconds since the Unix epoch by this machine's clock.
pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_millis() as i64)
}

#[cfg(test)]
#[path = "metadata_quorum_tests.rs"]
mod tests;
