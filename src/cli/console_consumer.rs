//! `flink console-consumer`: Kafka's kafka-console-consumer.sh without consumer groups. It assigns
//! itself the topic's partitions (or `--partition`), starts at the earliest or latest offset or at
//! `--offset`, prints records with Kafka's DefaultMessageFormatter layout, and stops on Ctrl+C,
//! `--max-messages` or `--timeout-ms`, reporting `Processed a total of N messages` on stderr.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::client::cluster::{Client, ClientSettings, REQUEST_TIMEOUT_DEFAULT};
use crate::client::consumer::{Consumer, ConsumerSettings, StartPosition};
use crate::client::error::ClientError;
use crate::client::properties::{Properties, PropertiesError};

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
    #[arg(long = "consumer-property", value_name = "NAME=VALUE")]
    pub consumer_properties: Vec<String>,
    /// Consumer properties file.
    #[arg(
        long = "consumer.config",
        alias = "command-config",
        value_name = "FILE"
    )]
    pub consumer_config: Option<PathBuf>,
    /// Consumer group (accepted; the broker has no groups yet, so partitions are assigned).
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
    let (mut consumer, formatter) = match prepared {
        Ok(prepared) => prepared,
        Err(error) => {
            eprintln!("ERROR {error}");
            return ExitCode::FAILURE;
        }
    };
    install_interrupt_handler();
    let mut processed = 0u64;
    let outcome = consume(&args, &mut consumer, &formatter, &mut processed);
    let status = match outcome {
        Ok(Stop::Timeout) => {
            eprintln!("ERROR Error processing message, terminating consumer process:  (kafka.tools.ConsoleConsumer$)\norg.apache.kafka.common.errors.TimeoutException");
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

fn prepare(args: &Args) -> Result<(Consumer, Formatter), ConsumerToolError> {
    let formatter = Formatter::from_properties(&Properties::from_arguments(&args.properties)?)?;
    let start = start_position(args)?;
    let mut properties = match &args.consumer_config {
        Some(path) => Properties::from_file(path)?,
        None => Properties::default(),
    };
    properties.extend(Properties::from_arguments(&args.consumer_properties)?);
    let settings = consumer_settings(args, &properties)?;
    if let Some(group) = &args.group {
        eprintln!("WARN Consumer groups are not supported by this broker yet: ignoring --group {group}; partitions are assigned directly and no offsets are committed.");
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
    };
    let client = Client::connect(&args.bootstrap_server, client_settings)?;
    let consumer = Consumer::new(client, &args.topic, args.partition, start, settings);
    Ok((consumer, formatter))
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
    consumer: &mut Consumer,
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
        let records = consumer.poll()?;
        for warning in consumer.take_warnings() {
            eprintln!("WARN [Consumer clientId=console-consumer] {warning}");
        }
        output.clear();
        for record in &records {
            if args.max_messages.is_some_and(|max| *processed >= max) {
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
    use clap::Parser;

    #[derive(Parser)]
    struct Harness {
        #[command(flatten)]
        args: Args,
    }

    fn parse(arguments: &[&str]) -> Args {
        let mut full = vec![
            "console-consumer",
            "--bootstrap-server",
            "h:1",
            "--topic",
            "t",
        ];
        full.extend_from_slice(arguments);
        Harness::try_parse_from(full).expect("parses").args
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
}
