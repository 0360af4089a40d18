//! `flink console-consumer`: Kafka's kafka-console-consumer.sh. With `--group` (or a `group.id`
//! consumer property) it joins that consumer group with the range assignor, starts at the group's
//! committed offsets (earliest with `--from-beginning`, else `auto.offset.reset`, only where none
//! was committed), auto-commits, and commits and leaves the group on exit. Without a group it
//! assigns itself the topic's partitions (or `--partition`) and starts at the earliest or latest
//! offset or at `--offset`. Kafka's tool makes up a group id (`console-consumer-NNNNN`) in that
//! case; this one stays group-less, so it leaves no groups or commits behind.
//!
//! Records print with Kafka's DefaultMessageFormatter layout; the tool stops on Ctrl+C,
//! `--max-messages` or `--timeout-ms`, reporting `Processed a total of N messages` on stderr.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::client::cluster::{Client, ClientSettings, REQUEST_TIMEOUT_DEFAULT};
use crate::client::consumer::{Consumer, ConsumerSettings, StartPosition};
use crate::client::error::ClientError;
use crate::client::group_consumer::{GroupConsumer, GroupSettings};
use crate::client::properties::{Properties, PropertiesError};
use crate::client::records::IncomingRecord;
use crate::client::security::ClientSecurity;

#[path = "console_consumer_formatter.rs"]
mod formatter;

use formatter::Formatter;

/// Longest a Fetch waits at the broker for data (fetch.max.wait.ms).
const FETCH_WAIT_MS_MAX: i32 = 500;
/// Exit status of a process stopped by SIGINT, as the JVM reports it for Kafka's tool.
const EXIT_INTERRUPTED: u8 = 130;

/// Set by the SIGINT/SIGTERM handler; the consume loop checks it between fetches.
static INTERRUPTED: AtomicBool = AtomicBool::new(false);

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The Kafka server to connect to (host:port[,host:port...]).
    #[arg(long, value_name = "SERVER")]
    pub bootstrap_server: String,
    /// The topic to consume from.
    #[arg(long)]
    pub topic: String,
    /// Start at the earliest offset rather than the latest when there is no other position.
    #[arg(long)]
    pub from_beginning: bool,
    /// Consume only this partition.
    #[arg(long)]
    pub partition: Option<i32>,
    /// Start offset with --partition: earliest, latest or a non-negative number.
    #[arg(long, value_name = "OFFSET", allow_hyphen_values = true)]
    pub offset: Option<String>,
    /// Exit after this many messages.
    #[arg(long, value_name = "N")]
    pub max_messages: Option<u64>,
    /// Exit when no message arrives for this long.
    #[arg(long, value_name = "MS")]
    pub timeout_ms: Option<u64>,
    /// Formatter properties: print.key, print.value, print.timestamp, print.partition,
    /// print.offset, print.headers, key.separator, line.separator, ...
    #[arg(long = "property", value_name = "NAME=VALUE")]
    pub properties: Vec<String>,
    /// Consumer properties: auto.offset.reset, isolation.level, fetch.max.wait.ms, ...
    #[arg(
        long = "consumer-property",
        alias = "command-property",
        value_name = "NAME=VALUE"
    )]
    pub consumer_properties: Vec<String>,
    /// Consumer properties file.
    #[arg(
        long = "consumer.config",
        alias = "command-config",
        value_name = "FILE"
    )]
    pub consumer_config: Option<PathBuf>,
    /// The consumer group to join; offsets are committed to it.
    #[arg(long)]
    pub group: Option<String>,
    /// read_uncommitted (default) or read_committed.
    #[arg(long, value_name = "LEVEL")]
    pub isolation_level: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ConsumerToolError {
    #[error("{0}")]
    Client(#[from] ClientError),
    #[error("{0}")]
    Properties(#[from] PropertiesError),
    #[error("The partition is required when offset is specified.")]
    OffsetWithoutPartition,
    #[error("Options from-beginning and offset cannot be specified together.")]
    OffsetWithFromBeginning,
    #[error("The provided offset value '{0}' is incorrect. Valid values are 'earliest', 'latest', or a non-negative long.")]
    BadOffset(String),
    #[error("Invalid value {value} for configuration {key}")]
    InvalidValue { key: &'static str, value: String },
    #[error("Options group and partition cannot be specified together.")]
    GroupWithPartition,
    #[error("Option [group] and [group.id] were specified with different values: '{option}' and '{property}'")]
    GroupMismatch { option: String, property: String },
}

/// The consumer the tool reads with: a group member, or one that assigns itself partitions.
enum Reader {
    Assigned(Box<Consumer>),
    Group(Box<GroupConsumer>),
}

impl Reader {
    fn poll(&mut self) -> Result<Vec<IncomingRecord>, ClientError> {
        match self {
            Reader::Assigned(consumer) => consumer.poll(),
            Reader::Group(consumer) => consumer.poll(),
        }
    }

    fn take_warnings(&mut self) -> Vec<String> {
        match self {
            Reader::Assigned(consumer) => consumer.take_warnings(),
            Reader::Group(consumer) => consumer.take_warnings(),
        }
    }

    /// Puts fetched records that were not printed back, so that a commit does not skip them.
    fn unread(&mut self, records: &[IncomingRecord]) {
        let mut first_unread: BTreeMap<i32, i64> = BTreeMap::new();
        for record in records {
            first_unread
                .entry(record.partition)
                .or_insert(record.offset);
        }
        for (partition, offset) in first_unread {
            match self {
                Reader::Assigned(consumer) => consumer.seek(partition, offset),
                Reader::Group(consumer) => consumer.seek(partition, offset),
            }
        }
    }

    /// Commits and leaves the group; nothing to do without one.
    fn close(&mut self) -> Result<(), ClientError> {
        match self {
            Reader::Assigned(_) => Ok(()),
            Reader::Group(consumer) => consumer.close(),
        }
    }
}

/// Why the consume loop stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stop {
    MaxMessages,
    Timeout,
    Interrupted,
    OutputClosed,
}

pub fn run(args: Args) -> ExitCode {
    let prepared = prepare(&args);
    let (mut reader, formatter) = match prepared {
        Ok(prepared) => prepared,
        Err(error) => {
            eprintln!("ERROR {error}");
            return ExitCode::FAILURE;
        }
    };
    install_interrupt_handler();
    let mut processed = 0u64;
    let mut outcome = consume(&args, &mut reader, &formatter, &mut processed);
    let closed = reader.close();
    for warning in reader.take_warnings() {
        eprintln!("WARN [Consumer clientId=console-consumer] {warning}");
    }
    if let (Ok(_), Err(error)) = (&outcome, closed) {
        outcome = Err(error);
    }
    let status = match outcome {
        Ok(Stop::Timeout) => {
            eprintln!("ERROR Error processing message, terminating consumer process: TimeoutException: no message within --timeout-ms");
            ExitCode::SUCCESS
        }
        Ok(Stop::Interrupted) => ExitCode::from(EXIT_INTERRUPTED),
        Ok(Stop::MaxMessages | Stop::OutputClosed) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("ERROR Error processing message, terminating consumer process: {error}");
            ExitCode::FAILURE
        }
    };
    eprintln!("Processed a total of {processed} messages");
    status
}

fn prepare(args: &Args) -> Result<(Reader, Formatter), ConsumerToolError> {
    let formatter = Formatter::from_properties(&Properties::from_arguments(&args.properties)?)?;
    let start = start_position(args)?;
    let mut properties = match &args.consumer_config {
        Some(path) => Properties::from_file(path)?,
        None => Properties::default(),
    };
    properties.extend(Properties::from_arguments(&args.consumer_properties)?);
    let group = group_id(args, &properties)?;
    let group_settings = match &group {
        Some(group) => Some(group_settings(group, &properties)?),
        None => None,
    };
    let mut settings = consumer_settings(args, &properties)?;
    if let Some(group_settings) = &group_settings {
        // A fetch must return in time for the next heartbeat.
        let heartbeat_ms = group_settings
            .heartbeat_interval
            .as_millis()
            .min(i32::MAX as u128);
        settings.fetch_wait_ms = settings.fetch_wait_ms.min(heartbeat_ms as i32);
    }
    let timeout_ms = properties.integer_or(
        "request.timeout.ms",
        REQUEST_TIMEOUT_DEFAULT.as_millis() as u64,
    )?;
    let client_settings = ClientSettings {
        client_id: properties
            .get("client.id")
            .unwrap_or("console-consumer")
            .to_string(),
        request_timeout: Duration::from_millis(timeout_ms),
        security: ClientSecurity::from_properties(&properties)?,
    };
    let client = Client::connect(&args.bootstrap_server, client_settings)?;
    let offset_reset = settings.offset_reset;
    let consumer = Consumer::new(client, &args.topic, args.partition, start, settings);
    let reader = match group_settings {
        Some(group_settings) => Reader::Group(Box::new(GroupConsumer::new(
            consumer,
            group_settings,
            offset_reset,
        ))),
        None => Reader::Assigned(Box::new(consumer)),
    };
    Ok((reader, formatter))
}

/// The group to join: --group, else the group.id consumer property; they must agree.
fn group_id(args: &Args, properties: &Properties) -> Result<Option<String>, ConsumerToolError> {
    let group = match (&args.group, properties.get("group.id")) {
        (Some(option), Some(property)) if option != property => {
            return Err(ConsumerToolError::GroupMismatch {
                option: option.clone(),
                property: property.to_string(),
            })
        }
        (Some(option), _) => Some(option.clone()),
        (None, property) => property.map(str::to_string),
    };
    if group.is_some() && args.partition.is_some() {
        return Err(ConsumerToolError::GroupWithPartition);
    }
    Ok(group)
}

/// Kafka's consumer group settings from the consumer properties, with Kafka's defaults.
fn group_settings(
    group: &str,
    properties: &Properties,
) -> Result<GroupSettings, ConsumerToolError> {
    let defaults = GroupSettings::new(group);
    let milliseconds = |duration: Duration| duration.as_millis() as u64;
    Ok(GroupSettings {
        session_timeout_ms: properties
            .integer_or("session.timeout.ms", defaults.session_timeout_ms)?,
        rebalance_timeout_ms: properties
            .integer_or("max.poll.interval.ms", defaults.rebalance_timeout_ms)?,
        heartbeat_interval: Duration::from_millis(properties.integer_or(
            "heartbeat.interval.ms",
            milliseconds(defaults.heartbeat_interval),
        )?),
        auto_commit: properties.bool_or("enable.auto.commit", defaults.auto_commit)?,
        auto_commit_interval: Duration::from_millis(properties.integer_or(
            "auto.commit.interval.ms",
            milliseconds(defaults.auto_commit_interval),
        )?),
        retry_backoff: Duration::from_millis(
            properties.integer_or("retry.backoff.ms", milliseconds(defaults.retry_backoff))?,
        ),
        ..defaults
    })
}

/// The start of every assigned partition: --offset, else earliest with --from-beginning, else
/// auto.offset.reset's choice (latest by default).
fn start_position(args: &Args) -> Result<StartPosition, ConsumerToolError> {
    let Some(offset) = &args.offset else {
        return Ok(match args.from_beginning {
            true => StartPosition::Earliest,
            false => StartPosition::Latest,
        });
    };
    if args.partition.is_none() {
        return Err(ConsumerToolError::OffsetWithoutPartition);
    }
    if args.from_beginning {
        return Err(ConsumerToolError::OffsetWithFromBeginning);
    }
    parse_offset(offset)
}

fn parse_offset(text: &str) -> Result<StartPosition, ConsumerToolError> {
    match text.to_ascii_lowercase().as_str() {
        "earliest" => Ok(StartPosition::Earliest),
        "latest" => Ok(StartPosition::Latest),
        number => match number.parse::<i64>() {
            Ok(offset) if offset >= 0 => Ok(StartPosition::Offset(offset)),
            _ => Err(ConsumerToolError::BadOffset(text.to_string())),
        },
    }
}

fn consumer_settings(
    args: &Args,
    properties: &Properties,
) -> Result<ConsumerSettings, ConsumerToolError> {
    let defaults = ConsumerSettings::default();
    let reset_text = match args.from_beginning {
        true => "earliest",
        false => properties.get("auto.offset.reset").unwrap_or("latest"),
    };
    let offset_reset = match reset_text {
        "earliest" => StartPosition::Earliest,
        "latest" | "none" => StartPosition::Latest,
        other => return Err(invalid("auto.offset.reset", other)),
    };
    let isolation_text = args
        .isolation_level
        .as_deref()
        .or(properties.get("isolation.level"))
        .unwrap_or("read_uncommitted");
    let isolation_level = match isolation_text {
        "read_uncommitted" => 0,
        "read_committed" => 1,
        other => return Err(invalid("isolation.level", other)),
    };
    let mut fetch_wait_ms = properties.integer_or("fetch.max.wait.ms", FETCH_WAIT_MS_MAX)?;
    if let Some(timeout_ms) = args.timeout_ms {
        // A fetch must return in time for --timeout-ms to be noticed.
        fetch_wait_ms = fetch_wait_ms.min(timeout_ms.min(i32::MAX as u64) as i32);
    }
    Ok(ConsumerSettings {
        fetch_wait_ms,
        fetch_bytes_min: properties.integer_or("fetch.min.bytes", defaults.fetch_bytes_min)?,
        fetch_bytes_max: properties.integer_or("fetch.max.bytes", defaults.fetch_bytes_max)?,
        partition_fetch_bytes_max: properties.integer_or(
            "max.partition.fetch.bytes",
            defaults.partition_fetch_bytes_max,
        )?,
        offset_reset,
        allow_auto_topic_creation: properties.bool_or("allow.auto.create.topics", true)?,
        isolation_level,
        ..defaults
    })
}

fn invalid(key: &'static str, value: &str) -> ConsumerToolError {
    ConsumerToolError::InvalidValue {
        key,
        value: value.to_string(),
    }
}

/// Fetches and prints until a stop condition; `processed` counts printed records.
fn consume(
    args: &Args,
    reader: &mut Reader,
    formatter: &Formatter,
    processed: &mut u64,
) -> Result<Stop, ClientError> {
    let timeout = args.timeout_ms.map(Duration::from_millis);
    let mut last_message_at = Instant::now();
    let mut output = Vec::with_capacity(64 * 1024);
    loop {
        if INTERRUPTED.load(Ordering::Relaxed) {
            return Ok(Stop::Interrupted);
        }
        if args.max_messages.is_some_and(|max| *processed >= max) {
            return Ok(Stop::MaxMessages);
        }
        if timeout.is_some_and(|timeout| last_message_at.elapsed() >= timeout) {
            return Ok(Stop::Timeout);
        }
        let records = reader.poll()?;
        for warning in reader.take_warnings() {
            eprintln!("WARN [Consumer clientId=console-consumer] {warning}");
        }
        output.clear();
        for (index, record) in records.iter().enumerate() {
            if args.max_messages.is_some_and(|max| *processed >= max) {
                reader.unread(&records[index..]);
                break;
            }
            formatter.write(record, &mut output);
            *processed += 1;
        }
        if !records.is_empty() {
            last_message_at = Instant::now();
            let mut stdout = std::io::stdout().lock();
            if stdout
                .write_all(&output)
                .and_then(|()| stdout.flush())
                .is_err()
            {
                return Ok(Stop::OutputClosed);
            }
        }
    }
}

extern "C" fn on_interrupt(_signal: libc::c_int) {
    INTERRUPTED.store(true, Ordering::Relaxed);
}

/// Routes SIGINT and SIGTERM to a flag so the tool can print its total before exiting.
fn install_interrupt_handler() {
    let handler = on_interrupt as extern "C" fn(libc::c_int);
    // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
    unsafe {
        libc::signal(libc::SIGINT, handler as libc::sighandler_t);
        libc::signal(libc::SIGTERM, handler as libc::sighandler_t);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(arguments: &[&str]) -> Args {
        let mut full = vec![
            "console-consumer",
            "--bootstrap-server",
            "h:1",
            "--topic",
            "t",
        ];
        full.extend_from_slice(arguments);
        crate::cli::parse_tool_args(&full).expect("parses")
    }

    #[test]
    fn offset_rules_follow_kafka() {
        // --offset needs --partition, excludes --from-beginning, and must be a known word or >= 0.
        assert!(matches!(
            start_position(&parse(&["--offset", "5"])),
            Err(ConsumerToolError::OffsetWithoutPartition)
        ));
        let args = parse(&["--partition", "0", "--offset", "5"]);
        assert_eq!(start_position(&args).ok(), Some(StartPosition::Offset(5)));
        let args = parse(&["--partition", "0", "--offset", "earliest"]);
        assert_eq!(start_position(&args).ok(), Some(StartPosition::Earliest));
        assert!(start_position(&parse(&["--partition", "0", "--offset", "-3"])).is_err());
        assert!(start_position(&parse(&[
            "--partition",
            "0",
            "--offset",
            "1",
            "--from-beginning"
        ]))
        .is_err());
        assert_eq!(
            start_position(&parse(&["--from-beginning"])).ok(),
            Some(StartPosition::Earliest)
        );
        assert_eq!(
            start_position(&parse(&[])).ok(),
            Some(StartPosition::Latest)
        );
    }

    #[test]
    fn properties_reach_formatter_and_settings() {
        // --property feeds the formatter; --consumer-property feeds the fetch settings.
        let args = parse(&[
            "--property",
            "print.key=true",
            "--property",
            "key.separator=,",
            "--timeout-ms",
            "100",
        ]);
        let properties = Properties::from_arguments(&args.properties).expect("valid");
        let formatter = Formatter::from_properties(&properties).expect("valid");
        assert!(formatter.print_key && formatter.print_value);
        assert_eq!(formatter.key_separator, b",");
        let consumer_properties =
            Properties::from_arguments(&["auto.offset.reset=earliest".to_string()]).expect("valid");
        let settings = consumer_settings(&args, &consumer_properties).expect("valid");
        assert_eq!(settings.offset_reset, StartPosition::Earliest);
        assert_eq!(settings.fetch_wait_ms, 100);
        assert!(parse(&["--group", "g"]).group.is_some());
    }

    #[test]
    fn group_options_follow_kafka() {
        // --group and group.id must agree, exclude --partition, and group properties apply.
        let none = Properties::default();
        let args = parse(&["--group", "g"]);
        assert_eq!(group_id(&args, &none).ok().flatten().as_deref(), Some("g"));
        let property = Properties::from_arguments(&["group.id=h".to_string()]).expect("valid");
        assert_eq!(
            group_id(&parse(&[]), &property).ok().flatten().as_deref(),
            Some("h")
        );
        assert!(matches!(
            group_id(&args, &property),
            Err(ConsumerToolError::GroupMismatch { .. })
        ));
        assert!(matches!(
            group_id(&parse(&["--group", "g", "--partition", "0"]), &none),
            Err(ConsumerToolError::GroupWithPartition)
        ));
        assert_eq!(group_id(&parse(&[]), &none).ok(), Some(None));
        let properties = Properties::from_arguments(&[
            "session.timeout.ms=10000".to_string(),
            "heartbeat.interval.ms=1000".to_string(),
            "enable.auto.commit=false".to_string(),
        ])
        .expect("valid");
        let settings = group_settings("g", &properties).expect("valid");
        assert_eq!(settings.session_timeout_ms, 10_000);
        assert_eq!(settings.heartbeat_interval, Duration::from_secs(1));
        assert!(!settings.auto_commit);
        let defaults = group_settings("g", &none).expect("valid");
        assert_eq!(defaults.session_timeout_ms, 45_000);
        assert_eq!(defaults.heartbeat_interval, Duration::from_secs(3));
        assert_eq!(defaults.auto_commit_interval, Duration::from_secs(5));
    }
}
