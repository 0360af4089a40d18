//! `flink console-producer`: Kafka's kafka-console-producer.sh. Reads lines from standard input
//! (a reader thread feeds a bounded channel so batches can be sent after linger.ms even while
//! input is slow), optionally splits each into key and value, and produces them with the blocking
//! producer. Exits only when every record is acknowledged or has failed; any failure makes the
//! exit status non-zero.

use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use kafka_protocol::records::Compression;

use crate::client::cluster::{Client, ClientSettings};
use crate::client::error::ClientError;
use crate::client::producer::{DeliveryFailure, Producer, ProducerSettings};
use crate::client::properties::{Properties, PropertiesError};
use crate::client::records::{parse_compression, OutgoingRecord};
use crate::client::security::ClientSecurity;

/// Lines read ahead of the producer; the reader blocks when this many wait.
const LINES_QUEUED_MAX: usize = 4096;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The Kafka server to connect to (host:port[,host:port...]).
    #[arg(long, alias = "broker-list", value_name = "SERVER")]
    pub bootstrap_server: String,
    /// The topic to produce messages to.
    #[arg(long)]
    pub topic: String,
    /// Line reader properties: parse.key, key.separator, ignore.error, null.marker.
    #[arg(long = "property", value_name = "NAME=VALUE")]
    pub properties: Vec<String>,
    /// Producer properties: acks, linger.ms, batch.size, compression.type, ...
    #[arg(
        long = "producer-property",
        alias = "command-property",
        value_name = "NAME=VALUE"
    )]
    pub producer_properties: Vec<String>,
    /// Producer properties file.
    #[arg(
        long = "producer.config",
        alias = "command-config",
        value_name = "FILE"
    )]
    pub producer_config: Option<PathBuf>,
    /// Acknowledgements the leader needs: -1/all, 0 or 1.
    #[arg(long, value_name = "ACKS", allow_hyphen_values = true)]
    pub request_required_acks: Option<String>,
    /// none, gzip, snappy, lz4 or zstd; gzip when given without a value.
    #[arg(long, num_args = 0..=1, default_missing_value = "gzip", value_name = "CODEC")]
    pub compression_codec: Option<String>,
    /// Send each line synchronously, waiting for its acknowledgement.
    #[arg(long)]
    pub sync: bool,
    /// Bytes per partition batch (batch.size).
    #[arg(long, value_name = "BYTES")]
    pub batch_size: Option<usize>,
    /// How long a record may wait for its batch to fill, in ms (linger.ms).
    #[arg(long, value_name = "MS")]
    pub timeout: Option<u64>,
    /// Ack timeout of a Produce request (request.timeout.ms).
    #[arg(long, value_name = "MS")]
    pub request_timeout_ms: Option<i32>,
    /// Retries of retriable errors (retries).
    #[arg(long, value_name = "N")]
    pub message_send_max_retries: Option<u32>,
    /// Wait between retries (retry.backoff.ms).
    #[arg(long, value_name = "MS")]
    pub retry_backoff_ms: Option<u64>,
    /// How long to wait for topic metadata (max.block.ms).
    #[arg(long, value_name = "MS")]
    pub max_block_ms: Option<u64>,
}

#[derive(Debug, thiserror::Error)]
pub enum ProducerToolError {
    #[error("{0}")]
    Client(#[from] ClientError),
    #[error("{0}")]
    Properties(#[from] PropertiesError),
    #[error("Invalid value {value} for configuration {key}")]
    InvalidValue { key: &'static str, value: String },
    #[error("No key separator found on line number {line_number}: '{line}'")]
    MissingKeySeparator { line_number: u64, line: String },
}

/// How lines become records (Kafka's LineMessageReader properties).
#[derive(Debug, Clone, PartialEq, Eq)]
struct LineFormat {
    parse_key: bool,
    key_separator: String,
    ignore_error: bool,
    null_marker: Option<String>,
}

/// The producer tool's settings after merging flags and properties the way Kafka does.
struct ToolSettings {
    client: ClientSettings,
    producer: ProducerSettings,
    linger: Duration,
}

pub fn run(args: Args) -> ExitCode {
    match execute(&args) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(error) => {
            eprintln!("ERROR {error}");
            ExitCode::FAILURE
        }
    }
}

/// Produces standard input; Ok(false) when some record failed.
fn execute(args: &Args) -> Result<bool, ProducerToolError> {
    let format = line_format(&Properties::from_arguments(&args.properties)?)?;
    let settings = tool_settings(args)?;
    let client = Client::connect(&args.bootstrap_server, settings.client.clone())?;
    let mut producer = Producer::new(client, &args.topic, settings.producer.clone());
    let interactive = std::io::stdin().is_terminal();
    let immediate = interactive || args.sync;
    let lines = spawn_reader();
    let mut delivered_all = true;
    let mut oldest_pending: Option<Instant> = None;
    let mut line_number = 0u64;
    prompt(interactive);
    let outcome = loop {
        let wait = oldest_pending.map_or(Duration::from_secs(3600), |since| {
            settings.linger.saturating_sub(since.elapsed())
        });
        match lines.recv_timeout(wait) {
            Ok(line) => {
                line_number += 1;
                let record = match to_record(&format, &line, line_number) {
                    Ok(record) => record,
                    Err(error) => break Err(error),
                };
                producer.append(record);
                oldest_pending = oldest_pending.or(Some(Instant::now()));
                let lingered =
                    oldest_pending.is_some_and(|since| since.elapsed() >= settings.linger);
                if immediate || lingered {
                    producer.flush();
                }
                prompt(interactive);
            }
            Err(RecvTimeoutError::Timeout) => producer.flush(),
            Err(RecvTimeoutError::Disconnected) => break Ok(()),
        }
        if !producer.has_pending() {
            oldest_pending = None;
        }
        delivered_all &= report(&args.topic, producer.take_failures());
    };
    producer.flush();
    delivered_all &= report(&args.topic, producer.take_failures());
    outcome.map(|()| delivered_all)
}

fn prompt(interactive: bool) {
    if interactive {
        let mut stdout = std::io::stdout();
        // A prompt that cannot be shown is no reason to stop producing.
        let _ = stdout.write_all(b">").and_then(|()| stdout.flush());
    }
}

/// Reads standard input on its own thread; the channel closes at end of input.
fn spawn_reader() -> Receiver<Vec<u8>> {
    let (sender, receiver) = mpsc::sync_channel(LINES_QUEUED_MAX);
    thread::spawn(move || {
        let mut input = std::io::stdin().lock();
        loop {
            let mut line = Vec::new();
            match input.read_until(b'\n', &mut line) {
                Ok(0) | Err(_) => return,
                Ok(_) => {
                    strip_line_end(&mut line);
                    if sender.send(line).is_err() {
                        return;
                    }
                }
            }
        }
    });
    receiver
}

/// Removes `\n`, `\r\n` or `\r` at the end, as Java's readLine does.
fn strip_line_end(line: &mut Vec<u8>) {
    if line.last() == Some(&b'\n') {
        line.pop();
    }
    if line.last() == Some(&b'\r') {
        line.pop();
    }
}

/// Prints Kafka's ErrorLoggingCallback lines; true when there was nothing to print.
fn report(topic: &str, failures: Vec<DeliveryFailure>) -> bool {
    let describe = |length: Option<usize>| {
        length.map_or("null".to_string(), |length| format!("{length} bytes"))
    };
    for failure in &failures {
        eprintln!(
            "ERROR Error when sending message to topic {topic} with key: {}, value: {} with error:\n{}",
            describe(failure.key_bytes),
            describe(failure.value_bytes),
            failure.reason
        );
    }
    failures.is_empty()
}

fn line_format(properties: &Properties) -> Result<LineFormat, ProducerToolError> {
    Ok(LineFormat {
        parse_key: properties.bool_or("parse.key", false)?,
        key_separator: properties.get("key.separator").unwrap_or("\t").to_string(),
        ignore_error: properties.bool_or("ignore.error", false)?,
        null_marker: properties.get("null.marker").map(str::to_string),
    })
}

/// Splits one line into key and value per the line format.
fn to_record(
    format: &LineFormat,
    line: &[u8],
    line_number: u64,
) -> Result<OutgoingRecord, ProducerToolError> {
    let (key, value) = match format.parse_key {
        false => (None, line),
        true => match find(line, format.key_separator.as_bytes()) {
            Some(index) => (
                Some(&line[..index]),
                &line[index + format.key_separator.len()..],
            ),
            None if format.ignore_error => (None, line),
            None => {
                return Err(ProducerToolError::MissingKeySeparator {
                    line_number,
                    line: String::from_utf8_lossy(line).into_owned(),
                })
            }
        },
    };
    let to_bytes = |field: &[u8]| match &format.null_marker {
        Some(marker) if marker.as_bytes() == field => None,
        _ => Some(Bytes::copy_from_slice(field)),
    };
    Ok(OutgoingRecord {
        key: key.and_then(to_bytes),
        value: to_bytes(value),
        timestamp_ms: now_ms(),
    })
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() {
        return None;
    }
    haystack
        .windows(needle.len())
        .position(|window| window == needle)
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_millis() as i64)
}

/// Merges flags over properties over the config file, as Kafka's ConsoleProducer does: an
/// explicit flag wins, then a property, then the flag's default.
fn tool_settings(args: &Args) -> Result<ToolSettings, ProducerToolError> {
    let mut properties = match &args.producer_config {
        Some(path) => Properties::from_file(path)?,
        None => Properties::default(),
    };
    properties.extend(Properties::from_arguments(&args.producer_properties)?);
    let defaults = ProducerSettings::default();
    let acks_text = args
        .request_required_acks
        .as_deref()
        .or(properties.get("acks"))
        .unwrap_or("-1");
    let codec = args
        .compression_codec
        .as_deref()
        .or(properties.get("compression.type"))
        .unwrap_or("none");
    let request_timeout_ms = match args.request_timeout_ms {
        Some(timeout) => timeout,
        None => properties.integer_or("request.timeout.ms", defaults.request_timeout_ms)?,
    };
    let producer = ProducerSettings {
        acks: parse_acks(acks_text)?,
        compression: compression(codec)?,
        batch_bytes_max: pick(
            args.batch_size,
            &properties,
            "batch.size",
            defaults.batch_bytes_max,
        )?,
        request_bytes_max: properties.integer_or("max.request.size", defaults.request_bytes_max)?,
        request_timeout_ms,
        retries: pick(
            args.message_send_max_retries,
            &properties,
            "retries",
            defaults.retries,
        )?,
        retry_backoff: Duration::from_millis(pick(
            args.retry_backoff_ms,
            &properties,
            "retry.backoff.ms",
            100,
        )?),
        metadata_wait: Duration::from_millis(pick(
            args.max_block_ms,
            &properties,
            "max.block.ms",
            60_000,
        )?),
        ..defaults
    };
    let client = ClientSettings {
        client_id: properties
            .get("client.id")
            .unwrap_or("console-producer")
            .to_string(),
        request_timeout: Duration::from_millis(request_timeout_ms.max(1) as u64 + 5_000),
        security: ClientSecurity::from_properties(&properties)?,
    };
    let linger = Duration::from_millis(pick(args.timeout, &properties, "linger.ms", 1000)?);
    Ok(ToolSettings {
        client,
        producer,
        linger,
    })
}

fn pick<T: std::str::FromStr>(
    flag: Option<T>,
    properties: &Properties,
    key: &str,
    default: T,
) -> Result<T, PropertiesError> {
    match flag {
        Some(value) => Ok(value),
        None => properties.integer_or(key, default),
    }
}

fn parse_acks(text: &str) -> Result<i16, ProducerToolError> {
    match text.trim() {
        "all" | "-1" => Ok(-1),
        "0" => Ok(0),
        "1" => Ok(1),
        other => Err(ProducerToolError::InvalidValue {
            key: "acks",
            value: other.to_string(),
        }),
    }
}

fn compression(codec: &str) -> Result<Compression, ProducerToolError> {
    parse_compression(codec).ok_or_else(|| ProducerToolError::InvalidValue {
        key: "compression.type",
        value: codec.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(arguments: &[&str]) -> Args {
        let mut full = vec![
            "console-producer",
            "--bootstrap-server",
            "h:1",
            "--topic",
            "t",
        ];
        full.extend_from_slice(arguments);
        crate::cli::parse_tool_args(&full).expect("parses")
    }

    #[test]
    fn flags_override_properties_which_override_defaults() {
        // An explicit --request-required-acks beats acks=, which beats the default of all (-1).
        let args = parse(&[
            "--producer-property",
            "acks=1",
            "--producer-property",
            "linger.ms=7",
        ]);
        let settings = tool_settings(&args).expect("valid");
        assert_eq!(settings.producer.acks, 1);
        assert_eq!(settings.linger, Duration::from_millis(7));
        let args = parse(&[
            "--producer-property",
            "acks=1",
            "--request-required-acks",
            "0",
        ]);
        assert_eq!(tool_settings(&args).expect("valid").producer.acks, 0);
        let args = parse(&[]);
        assert_eq!(tool_settings(&args).expect("valid").producer.acks, -1);
        let args = parse(&["--compression-codec"]);
        assert_eq!(
            tool_settings(&args).expect("valid").producer.compression,
            Compression::Gzip
        );
    }

    #[test]
    fn lines_split_into_key_and_value() {
        // parse.key splits on the first separator; without it the whole line is the value.
        let arguments = ["parse.key=true".to_string(), "key.separator=::".to_string()];
        let format =
            line_format(&Properties::from_arguments(&arguments).expect("valid")).expect("valid");
        let record = to_record(&format, b"k::v::w", 1).expect("has separator");
        assert_eq!(record.key, Some(Bytes::from("k")));
        assert_eq!(record.value, Some(Bytes::from("v::w")));
        assert!(to_record(&format, b"novalue", 2).is_err());
        let plain = line_format(&Properties::default()).expect("valid");
        let record = to_record(&plain, b"a\tb", 3).expect("plain");
        assert_eq!(
            (record.key, record.value),
            (None, Some(Bytes::from("a\tb")))
        );
    }

    #[test]
    fn line_ends_are_stripped_like_read_line() {
        // "\r\n" and "\n" both end a line; other bytes stay.
        let mut line = b"abc\r\n".to_vec();
        strip_line_end(&mut line);
        assert_eq!(line, b"abc");
        let mut line = b"abc".to_vec();
        strip_line_end(&mut line);
        assert_eq!(line, b"abc");
    }
}
