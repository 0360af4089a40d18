//! `flink producer-perf-test`: Kafka's kafka-producer-perf-test.sh (ProducerPerformance). Sends
//! `--num-records` records of `--record-size` random uppercase letters (or payloads from a file,
//! or increasing numbers) through the pipelined producer, throttled to `--throughput` records/s
//! with Kafka's ThroughputThrottler, and prints Kafka's lines: one per 5 s window and a summary
//! with percentiles (and a steady-state summary after `--warmup-records`).
//!
//! Latency is Kafka's: from handing a record to the producer to its acknowledgement arriving.
//! It is kept in microseconds in an HDR histogram and printed in Kafka's millisecond formats.
//!
//! The three perf tools parse their own arguments (see [`RawArgs`]) so that a usage error exits
//! with status 1, as Kafka's tools do, rather than clap's 2.

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use clap::error::ErrorKind;
use clap::{CommandFactory, Parser};
use hdrhistogram::Histogram;

use crate::client::accumulator::AccumulatorSettings;
use crate::client::cluster::{ClientSettings, REQUEST_TIMEOUT_DEFAULT};
use crate::client::error::ClientError;
use crate::client::pipelined_producer::{Delivery, PipelinedProducer, PipelinedSettings};
use crate::client::properties::{Properties, PropertiesError};
use crate::client::records::{parse_compression, OutgoingRecord};
use crate::client::security::{ClientSecurity, SECURITY_KEYS};

/// Kafka's Stats.reportingInterval.
const REPORTING_INTERVAL: Duration = Duration::from_secs(5);
/// Bytes of random letters that random payloads are cut from (plus one record's length).
const PAYLOAD_POOL_BYTES: usize = 1024 * 1024;
/// Latencies above this are recorded as this (one hour, in microseconds).
pub const LATENCY_US_MAX: u64 = 3_600_000_000;
/// Batch failures printed in full; the rest are only counted.
const FAILURES_PRINTED_MAX: u64 = 10;
/// The producer properties this tool reads; others are warned about.
const HONOURED_PROPERTIES: [&str; 16] = [
    "bootstrap.servers",
    "acks",
    "batch.size",
    "linger.ms",
    "compression.type",
    "max.in.flight.requests.per.connection",
    "client.id",
    "request.timeout.ms",
    "delivery.timeout.ms",
    "retries",
    "retry.backoff.ms",
    "max.request.size",
    "buffer.memory",
    "max.block.ms",
    "key.serializer",
    "value.serializer",
];

/// A tool's command line, left unparsed by `flink` itself: the tool parses it (see
/// [`parse_tool_command`]) to choose its own exit status and help.
#[derive(clap::Args, Debug)]
#[command(disable_help_flag = true)]
pub struct RawArgs {
    #[arg(num_args = 0.., allow_hyphen_values = true, trailing_var_arg = true)]
    pub arguments: Vec<OsString>,
}

/// Parses a perf tool's arguments: help prints and exits 0, a usage error prints and exits 1.
pub fn parse_tool_command<P: Parser>(name: &str, arguments: &[OsString]) -> Result<P, ExitCode> {
    let full = std::iter::once(OsString::from(name)).chain(arguments.iter().cloned());
    P::try_parse_from(full).map_err(|error| {
        let _ = error.print();
        match error.kind() {
            ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => ExitCode::SUCCESS,
            _ => ExitCode::FAILURE,
        }
    })
}

/// A usage error found after parsing, printed the way clap prints its own.
pub fn usage_error<P: CommandFactory>(name: &'static str, message: &str) -> ExitCode {
    let mut command = P::command().name(name);
    let _ = command.error(ErrorKind::ValueValidation, message).print();
    ExitCode::FAILURE
}

#[derive(Parser, Debug)]
#[command(
    about = "This tool is used to verify the producer performance (Kafka's kafka-producer-perf-test.sh).",
    group(clap::ArgGroup::new("payload").required(true)
        .args(["record_size", "payload_file", "payload_monotonic"]))
)]
pub struct Options {
    /// Produce messages to this topic.
    #[arg(long, value_name = "TOPIC")]
    pub topic: String,
    /// Number of messages to produce.
    #[arg(long, value_name = "NUM-RECORDS", allow_negative_numbers = true)]
    pub num_records: i64,
    /// Message size in bytes (random uppercase letters). Exactly one of --record-size,
    /// --payload-file or --payload-monotonic is required.
    #[arg(long, value_name = "RECORD-SIZE", allow_negative_numbers = true)]
    pub record_size: Option<i64>,
    /// File to read the message payloads from (UTF-8 text); each record is a payload chosen at
    /// random.
    #[arg(long, value_name = "PAYLOAD-FILE")]
    pub payload_file: Option<PathBuf>,
    /// Payload is the record's number, counting up from 0.
    #[arg(long)]
    pub payload_monotonic: bool,
    /// Delimiter between the payloads of --payload-file (a literal string, \n for new line).
    #[arg(long, value_name = "PAYLOAD-DELIMITER", default_value = "\\n")]
    pub payload_delimiter: String,
    /// Throttle maximum message throughput to *approximately* THROUGHPUT messages/sec. Set this
    /// to -1 to disable throttling.
    #[arg(long, value_name = "THROUGHPUT", allow_negative_numbers = true)]
    pub throughput: f64,
    /// Producer configuration properties like bootstrap.servers, client.id, acks, batch.size,
    /// linger.ms, compression.type, max.in.flight.requests.per.connection. These take precedence
    /// over those of --producer.config.
    #[arg(
        long = "producer-props",
        alias = "command-property",
        value_name = "PROP-NAME=PROP-VALUE",
        num_args = 1..
    )]
    pub producer_props: Vec<String>,
    /// Producer config properties file (also --command-config, Kafka 4's name): client.id,
    /// acks, ..., and security.protocol with the ssl.* and sasl.* keys.
    #[arg(
        long = "producer.config",
        alias = "command-config",
        value_name = "CONFIG-FILE"
    )]
    pub producer_config: Option<PathBuf>,
    /// Accepted for compatibility; this producer keeps no client metrics, so nothing extra is
    /// printed.
    #[arg(long)]
    pub print_metrics: bool,
    /// Not supported: flink's tools have no transactional producer; the tool refuses to run.
    #[arg(long, value_name = "TRANSACTIONAL-ID")]
    pub transactional_id: Option<String>,
    /// Not supported (transactions); the tool refuses to run.
    #[arg(
        long,
        value_name = "TRANSACTION-DURATION",
        allow_negative_numbers = true
    )]
    pub transaction_duration_ms: Option<i64>,
    /// The number of records to treat as warmup; these initial records are not included in the
    /// steady-state statistics, printed as an additional summary line.
    #[arg(
        long,
        value_name = "WARMUP-RECORDS",
        default_value_t = 0,
        allow_negative_numbers = true
    )]
    pub warmup_records: i64,
}

#[derive(Debug, thiserror::Error)]
pub enum ProducerPerfError {
    #[error("{0}")]
    Client(#[from] ClientError),
    #[error("{0}")]
    Properties(#[from] PropertiesError),
    #[error("Missing required configuration \"bootstrap.servers\" which has no default value.")]
    MissingBootstrapServers,
    #[error("Invalid value {value} for configuration {key}: {reason}")]
    InvalidValue {
        key: &'static str,
        value: String,
        reason: &'static str,
    },
    #[error("Transactions are not supported by flink producer-perf-test ({0}); run without it.")]
    Transactions(&'static str),
    #[error("File does not exist or empty file provided: {0}")]
    PayloadFile(String),
}

/// What each record carries through the producer to its delivery.
struct Sent {
    at: Instant,
    bytes: u32,
    steady: bool,
}

pub fn run(args: RawArgs) -> ExitCode {
    const NAME: &str = "producer-perf-test";
    if args.arguments.is_empty() {
        // As Kafka's tool: no arguments prints the help and succeeds.
        let _ = Options::command().name(NAME).print_help();
        return ExitCode::SUCCESS;
    }
    let options = match parse_tool_command::<Options>(NAME, &args.arguments) {
        Ok(options) => options,
        Err(code) => return code,
    };
    if let Err(message) = validate(&options) {
        return usage_error::<Options>(NAME, message);
    }
    match execute(&options) {
        Ok(0) => ExitCode::SUCCESS,
        Ok(failed) => {
            eprintln!("ERROR {failed} records could not be sent");
            ExitCode::FAILURE
        }
        Err(error) => {
            eprintln!("ERROR {error}");
            ExitCode::FAILURE
        }
    }
}

/// Kafka's ConfigPostProcessor checks, with its messages.
fn validate(options: &Options) -> Result<(), &'static str> {
    if options.num_records <= 0 {
        return Err("--num-records should be greater than zero");
    }
    if options.warmup_records >= options.num_records {
        return Err("The value for --warmup-records must be strictly fewer than the number of records in the test, --num-records.");
    }
    if options.record_size.is_some_and(|size| size <= 0) {
        return Err("--record-size should be greater than zero");
    }
    if options.producer_props.is_empty() && options.producer_config.is_none() {
        return Err("Either --producer-props or --producer.config must be specified.");
    }
    if options
        .transaction_duration_ms
        .is_some_and(|duration| duration <= 0)
    {
        return Err("--transaction-duration-ms should be greater than zero");
    }
    if options.throughput == 0.0 || options.throughput.is_nan() {
        // Kafka's throttler blocks forever at 0; refusing is kinder.
        return Err("--throughput must be positive, or negative (-1) for no throttling");
    }
    Ok(())
}

/// Runs the test and prints Kafka's lines; returns how many records failed.
fn execute(options: &Options) -> Result<u64, ProducerPerfError> {
    let properties = producer_properties(options)?;
    if options.transactional_id.is_some() {
        return Err(ProducerPerfError::Transactions("--transactional-id"));
    }
    if options.transaction_duration_ms.is_some() {
        return Err(ProducerPerfError::Transactions("--transaction-duration-ms"));
    }
    if properties.get("transactional.id").is_some() {
        return Err(ProducerPerfError::Transactions("transactional.id"));
    }
    for key in properties.keys() {
        if !HONOURED_PROPERTIES.contains(&key) && !SECURITY_KEYS.contains(&key) {
            eprintln!("WARN The configuration '{key}' was supplied but isn't used by flink producer-perf-test.");
        }
    }
    let (bootstrap, client_settings, settings) = perf_settings(&properties)?;
    let payloads = Payloads::new(options)?;
    let mut producer: PipelinedProducer<Sent> =
        PipelinedProducer::connect(&bootstrap, client_settings, &options.topic, settings)?;
    let num_records = options.num_records as u64;
    let warmup_records = options.warmup_records.max(0) as u64;
    if warmup_records > 0 {
        println!("Warmup first {warmup_records} records. Steady state results will print after the complete test summary.");
    }
    let mut run = RunStats {
        all: Stats::new(Instant::now(), false),
        steady: None,
        failed: 0,
        topic: options.topic.clone(),
    };
    let mut random = SplitMix64(0);
    let mut throttler = Throttler::new(options.throughput, Instant::now());
    for index in 0..num_records {
        let value = payloads.next(index, &mut random);
        let send_start = Instant::now();
        if warmup_records > 0 && index == warmup_records {
            run.steady = Some(Stats::new(send_start, true));
            run.all.suppress_printing = true;
        }
        let sent = Sent {
            at: send_start,
            bytes: value.len() as u32,
            steady: run.steady.is_some(),
        };
        let record = OutgoingRecord {
            key: None,
            value: Some(value),
            timestamp_ms: now_ms(),
        };
        producer.send(record, sent);
        if producer.has_deliveries() {
            run.absorb(producer.take_deliveries());
        }
        if throttler.should_throttle(index, send_start) {
            if let Some(sleep) = throttler.throttle() {
                producer.poll_until(Instant::now() + sleep);
                run.absorb(producer.take_deliveries());
            }
        }
    }
    producer.flush();
    run.absorb(producer.take_deliveries());
    let now = Instant::now();
    println!("{}", run.all.total_line(now));
    if let Some(steady) = &run.steady {
        println!("{}", steady.total_line(now));
    }
    Ok(run.failed)
}

/// The --producer.config file overlaid with --producer-props.
fn producer_properties(options: &Options) -> Result<Properties, ProducerPerfError> {
    let mut properties = match &options.producer_config {
        Some(path) => Properties::from_file(path)?,
        None => Properties::default(),
    };
    properties.extend(Properties::from_arguments(&options.producer_props)?);
    Ok(properties)
}

/// The producer settings from Kafka's property names, with Kafka 4's defaults.
fn perf_settings(
    properties: &Properties,
) -> Result<(String, ClientSettings, PipelinedSettings), ProducerPerfError> {
    let bootstrap = properties
        .get("bootstrap.servers")
        .filter(|servers| !servers.trim().is_empty())
        .ok_or(ProducerPerfError::MissingBootstrapServers)?
        .to_string();
    let milliseconds = |key: &str, default: u64| -> Result<Duration, PropertiesError> {
        properties
            .integer_or(key, default)
            .map(Duration::from_millis)
    };
    let acks = parse_acks(properties.get("acks").unwrap_or("all"))?;
    let codec = properties.get("compression.type").unwrap_or("none");
    let compression = parse_compression(codec).ok_or(ProducerPerfError::InvalidValue {
        key: "compression.type",
        value: codec.to_string(),
        reason: "String must be one of: none, gzip, snappy, lz4, zstd",
    })?;
    let in_flight_max: usize = properties.integer_or("max.in.flight.requests.per.connection", 5)?;
    if in_flight_max == 0 {
        return Err(ProducerPerfError::InvalidValue {
            key: "max.in.flight.requests.per.connection",
            value: "0".to_string(),
            reason: "Value must be at least 1",
        });
    }
    let request_timeout = milliseconds(
        "request.timeout.ms",
        REQUEST_TIMEOUT_DEFAULT.as_millis() as u64,
    )?;
    let settings = PipelinedSettings {
        acks,
        accumulator: AccumulatorSettings {
            batch_bytes_max: properties.integer_or("batch.size", 16_384)?,
            linger: milliseconds("linger.ms", 5)?,
            compression,
        },
        in_flight_max,
        request_bytes_max: properties.integer_or("max.request.size", 1_048_576)?,
        buffer_bytes_max: properties.integer_or("buffer.memory", 33_554_432)?,
        request_timeout,
        delivery_timeout: milliseconds("delivery.timeout.ms", 120_000)?,
        retries: properties.integer_or("retries", i32::MAX as u32)?,
        retry_backoff: milliseconds("retry.backoff.ms", 100)?,
        metadata_wait: milliseconds("max.block.ms", 60_000)?,
    };
    let client = ClientSettings {
        client_id: properties
            .get("client.id")
            .unwrap_or("perf-producer-client")
            .to_string(),
        // The socket waits a little longer than the broker may take to answer.
        request_timeout: request_timeout + Duration::from_secs(5),
        security: ClientSecurity::from_properties(properties)?,
    };
    Ok((bootstrap, client, settings))
}

fn parse_acks(text: &str) -> Result<i16, ProducerPerfError> {
    match text.trim() {
        "all" | "-1" => Ok(-1),
        "0" => Ok(0),
        "1" => Ok(1),
        other => Err(ProducerPerfError::InvalidValue {
            key: "acks",
            value: other.to_string(),
            reason: "String must be one of: all, -1, 0, 1",
        }),
    }
}

/// Where record values come from.
enum Payloads {
    /// Slices of `record_bytes` at random offsets of a pool of random uppercase letters: each
    /// record different, as Kafka's, without generating every byte of every record.
    Random {
        pool: Bytes,
        record_bytes: usize,
    },
    File(Vec<Bytes>),
    Monotonic,
}

impl Payloads {
    fn new(options: &Options) -> Result<Payloads, ProducerPerfError> {
        if let Some(size) = options.record_size {
            let record_bytes = size as usize;
            let mut random = SplitMix64(0x5eed);
            let pool: Vec<u8> = (0..PAYLOAD_POOL_BYTES + record_bytes)
                .map(|_| b'A' + (random.next_u64() % 26) as u8)
                .collect();
            return Ok(Payloads::Random {
                pool: Bytes::from(pool),
                record_bytes,
            });
        }
        if let Some(path) = &options.payload_file {
            let shown = std::path::absolute(path).unwrap_or_else(|_| path.clone());
            println!("Reading payloads from: {}", shown.display());
            let text = std::fs::read(path)
                .ok()
                .filter(|text| !text.is_empty())
                .ok_or_else(|| ProducerPerfError::PayloadFile(shown.display().to_string()))?;
            let payloads = split_payloads(&text, &options.payload_delimiter);
            println!("Number of messages read: {}", payloads.len());
            if payloads.is_empty() {
                return Err(ProducerPerfError::PayloadFile(shown.display().to_string()));
            }
            return Ok(Payloads::File(payloads));
        }
        Ok(Payloads::Monotonic)
    }

    fn next(&self, index: u64, random: &mut SplitMix64) -> Bytes {
        match self {
            Payloads::Random { pool, record_bytes } => {
                let offsets = (pool.len() - record_bytes + 1) as u64;
                let start = (random.next_u64() % offsets) as usize;
                pool.slice(start..start + record_bytes)
            }
            Payloads::File(payloads) => {
                payloads[(random.next_u64() % payloads.len() as u64) as usize].clone()
            }
            Payloads::Monotonic => Bytes::from(index.to_string()),
        }
    }
}

/// Splits a payload file on `delimiter` ("\n" when given as the two characters `\n`), dropping
/// empty pieces as Java's Scanner does between delimiters at the ends.
fn split_payloads(text: &[u8], delimiter: &str) -> Vec<Bytes> {
    let delimiter = match delimiter {
        "\\n" => "\n",
        other => other,
    };
    let text = Bytes::copy_from_slice(text);
    let needle = delimiter.as_bytes();
    let mut payloads = Vec::new();
    let mut start = 0;
    let mut position = 0;
    while !needle.is_empty() && position + needle.len() <= text.len() {
        if &text[position..position + needle.len()] == needle {
            if position > start {
                payloads.push(text.slice(start..position));
            }
            position += needle.len();
            start = position;
        } else {
            position += 1;
        }
    }
    if start < text.len() {
        payloads.push(text.slice(start..));
    }
    payloads
}

/// Kafka's ThroughputThrottler: once the average rate since the start exceeds the target, each
/// record adds 1/target s of sleep debt, paid off in sleeps of at least 2 ms.
struct Throttler {
    start: Instant,
    target_per_second: f64,
    sleep_per_record: Duration,
    sleep_deficit: Duration,
}

impl Throttler {
    const SLEEP_MIN: Duration = Duration::from_millis(2);

    fn new(target_per_second: f64, start: Instant) -> Throttler {
        let sleep_per_record = match target_per_second > 0.0 {
            true => Duration::from_secs_f64(1.0 / target_per_second),
            false => Duration::ZERO,
        };
        Throttler {
            start,
            target_per_second,
            sleep_per_record,
            sleep_deficit: Duration::ZERO,
        }
    }

    fn should_throttle(&self, sent_so_far: u64, now: Instant) -> bool {
        if self.target_per_second < 0.0 {
            return false;
        }
        let elapsed = now.saturating_duration_since(self.start).as_secs_f64();
        elapsed > 0.0 && sent_so_far as f64 / elapsed > self.target_per_second
    }

    /// The sleep due now, if the debt reached the minimum sleep.
    fn throttle(&mut self) -> Option<Duration> {
        self.sleep_deficit += self.sleep_per_record;
        if self.sleep_deficit < Self::SLEEP_MIN {
            return None;
        }
        Some(std::mem::take(&mut self.sleep_deficit))
    }
}

/// The overall and steady-state statistics of a run and the failures seen.
struct RunStats {
    all: Stats,
    steady: Option<Stats>,
    failed: u64,
    topic: String,
}

impl RunStats {
    fn absorb(&mut self, deliveries: Vec<Delivery<Sent>>) {
        for delivery in deliveries {
            if let Err(reason) = &delivery.result {
                if self.failed < FAILURES_PRINTED_MAX {
                    eprintln!(
                        "ERROR Error when sending {} record(s) to topic {} partition {}: {reason}",
                        delivery.tokens.len(),
                        self.topic,
                        delivery.partition
                    );
                }
                self.failed += delivery.tokens.len() as u64;
                continue;
            }
            for sent in &delivery.tokens {
                let latency = delivery.completed_at.saturating_duration_since(sent.at);
                let latency_us = latency.as_micros().min(u128::from(LATENCY_US_MAX)) as u64;
                self.all
                    .record(latency_us, sent.bytes, delivery.completed_at);
                if let Some(steady) = self.steady.as_mut().filter(|_| sent.steady) {
                    steady.record(latency_us, sent.bytes, delivery.completed_at);
                }
            }
        }
    }
}

/// Kafka's ProducerPerformance.Stats, with latencies in microseconds in an HDR histogram
/// instead of a sample of whole milliseconds.
struct Stats {
    start: Instant,
    steady_state: bool,
    suppress_printing: bool,
    histogram: Histogram<u64>,
    count: u64,
    bytes: u64,
    latency_total_us: u64,
    latency_max_us: u64,
    window: Window,
}

#[derive(Default)]
struct Window {
    start: Option<Instant>,
    count: u64,
    bytes: u64,
    latency_total_us: u64,
    latency_max_us: u64,
}

impl Stats {
    fn new(start: Instant, steady_state: bool) -> Stats {
        Stats {
            start,
            steady_state,
            suppress_printing: false,
            histogram: latency_histogram(),
            count: 0,
            bytes: 0,
            latency_total_us: 0,
            latency_max_us: 0,
            window: Window {
                start: Some(start),
                ..Window::default()
            },
        }
    }

    fn record(&mut self, latency_us: u64, bytes: u32, now: Instant) {
        self.count += 1;
        self.bytes += u64::from(bytes);
        self.latency_total_us += latency_us;
        self.latency_max_us = self.latency_max_us.max(latency_us);
        self.histogram.saturating_record(latency_us);
        let window = &mut self.window;
        window.count += 1;
        window.bytes += u64::from(bytes);
        window.latency_total_us += latency_us;
        window.latency_max_us = window.latency_max_us.max(latency_us);
        let window_start = *window.start.get_or_insert(now);
        if now.saturating_duration_since(window_start) >= REPORTING_INTERVAL {
            if self.steady_state && self.count == self.window.count {
                println!("In steady state.");
            }
            if !self.suppress_printing {
                println!("{}", self.window_line(now));
            }
            self.window = Window {
                start: Some(now),
                ..Window::default()
            };
        }
    }

    /// `%d records sent, %.1f records/sec (%.2f MB/sec), %.1f ms avg latency, %.1f ms max latency.`
    fn window_line(&self, now: Instant) -> String {
        let window = &self.window;
        let elapsed_ms = window.start.map_or(0.0, |start| {
            milliseconds(now.saturating_duration_since(start))
        });
        format!(
            "{} records sent, {:.1} records/sec ({:.2} MB/sec), {:.1} ms avg latency, {:.1} ms max latency.",
            window.count,
            1000.0 * window.count as f64 / elapsed_ms,
            1000.0 * window.bytes as f64 / elapsed_ms / (1024.0 * 1024.0),
            window.latency_total_us as f64 / window.count as f64 / 1000.0,
            window.latency_max_us as f64 / 1000.0,
        )
    }

    /// `%d%s records sent, %f records/sec (%.2f MB/sec), %.2f ms avg latency, %.2f ms max
    /// latency, %d ms 50th, %d ms 95th, %d ms 99th, %d ms 99.9th.`
    fn total_line(&self, now: Instant) -> String {
        let elapsed_ms = milliseconds(now.saturating_duration_since(self.start));
        let percentile_ms = |quantile: f64| self.histogram.value_at_quantile(quantile) / 1000;
        format!(
            "{}{} records sent, {:.6} records/sec ({:.2} MB/sec), {:.2} ms avg latency, {:.2} ms max latency, {} ms 50th, {} ms 95th, {} ms 99th, {} ms 99.9th.",
            self.count,
            if self.steady_state { " steady state" } else { "" },
            1000.0 * self.count as f64 / elapsed_ms,
            1000.0 * self.bytes as f64 / elapsed_ms / (1024.0 * 1024.0),
            self.latency_total_us as f64 / self.count as f64 / 1000.0,
            self.latency_max_us as f64 / 1000.0,
            percentile_ms(0.5),
            percentile_ms(0.95),
            percentile_ms(0.99),
            percentile_ms(0.999),
        )
    }
}

/// A histogram of latencies in microseconds, 1 µs to an hour, three significant digits.
pub fn latency_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, LATENCY_US_MAX, 3).expect("constant histogram bounds are valid")
}

fn milliseconds(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_millis() as i64)
}

/// SplitMix64: a small, fast generator for payloads and payload choice (deterministic per seed,
/// as Kafka's tool seeds its generator with 0).
pub struct SplitMix64(pub u64);

impl SplitMix64 {
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut mixed = self.0;
        mixed = (mixed ^ (mixed >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        mixed = (mixed ^ (mixed >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        mixed ^ (mixed >> 31)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(arguments: &[&str]) -> Result<Options, clap::Error> {
        let full = std::iter::once("producer-perf-test").chain(arguments.iter().copied());
        Options::try_parse_from(full)
    }

    #[test]
    fn parses_kafka_flags() {
        // Kafka's flag names, a negative throughput, and several properties after one flag.
        let options = parse(&[
            "--topic",
            "t",
            "--num-records",
            "10",
            "--record-size",
            "100",
            "--throughput",
            "-1",
            "--producer-props",
            "bootstrap.servers=h:1",
            "acks=1",
            "--warmup-records",
            "2",
        ])
        .expect("parses");
        assert_eq!(options.throughput, -1.0);
        assert_eq!(options.producer_props.len(), 2);
        assert!(validate(&options).is_ok());
        // Exactly one payload option is required.
        assert!(parse(&["--topic", "t", "--num-records", "1", "--throughput", "1"]).is_err());
        let both = [
            "--topic",
            "t",
            "--num-records",
            "1",
            "--throughput",
            "1",
            "--record-size",
            "1",
            "--payload-monotonic",
        ];
        assert!(parse(&both).is_err());
    }

    #[test]
    fn kafka_checks_reject_bad_numbers() {
        // Warmup must be below the record count; properties are required.
        let base = ["--topic", "t", "--record-size", "1", "--throughput", "5"];
        let with = |extra: &[&str]| {
            let mut arguments = base.to_vec();
            arguments.extend_from_slice(extra);
            validate(&parse(&arguments).expect("parses"))
        };
        let props = ["--producer-props", "bootstrap.servers=h:1"];
        assert!(with(&[&["--num-records", "0"][..], &props].concat()).is_err());
        assert!(
            with(&[&["--num-records", "5", "--warmup-records", "5"][..], &props].concat()).is_err()
        );
        assert!(with(&["--num-records", "5"]).is_err());
        assert!(with(&[&["--num-records", "5"][..], &props].concat()).is_ok());
    }

    #[test]
    fn properties_follow_kafka_defaults() {
        // Kafka 4 defaults: acks=all, linger.ms=5, batch.size=16384, 5 in flight.
        let properties =
            Properties::from_arguments(&["bootstrap.servers=h:1".to_string()]).expect("valid");
        let (bootstrap, client, settings) = perf_settings(&properties).expect("valid");
        assert_eq!(bootstrap, "h:1");
        assert_eq!(client.client_id, "perf-producer-client");
        assert_eq!(settings.acks, -1);
        assert_eq!(settings.accumulator.linger, Duration::from_millis(5));
        assert_eq!(settings.accumulator.batch_bytes_max, 16_384);
        assert_eq!(settings.in_flight_max, 5);
        assert!(matches!(
            perf_settings(&Properties::default()),
            Err(ProducerPerfError::MissingBootstrapServers)
        ));
        let bad = Properties::from_arguments(&["bootstrap.servers=h:1".into(), "acks=2".into()])
            .expect("valid");
        assert!(perf_settings(&bad).is_err());
    }

    #[test]
    fn throttler_paces_to_the_target() {
        // At 1000 records/s, 10 records sent "instantly" owe 10 ms of sleep, paid in >= 2 ms.
        let start = Instant::now();
        let mut throttler = Throttler::new(1000.0, start);
        let now = start + Duration::from_millis(1);
        assert!(throttler.should_throttle(10, now));
        assert!(!throttler.should_throttle(1, now));
        assert_eq!(throttler.throttle(), None);
        assert_eq!(throttler.throttle(), Some(Duration::from_millis(2)));
        let unthrottled = Throttler::new(-1.0, start);
        assert!(!unthrottled.should_throttle(1_000_000, now));
    }

    #[test]
    fn lines_use_kafka_formats() {
        // Two records of 1 KiB with 1.5 ms and 3.25 ms latency over one second.
        let start = Instant::now();
        let mut stats = Stats::new(start, false);
        stats.record(1_500, 1024, start);
        stats.record(3_250, 1024, start);
        let line = stats.total_line(start + Duration::from_secs(1));
        assert_eq!(
            line,
            "2 records sent, 2.000000 records/sec (0.00 MB/sec), 2.38 ms avg latency, 3.25 ms max latency, 1 ms 50th, 3 ms 95th, 3 ms 99th, 3 ms 99.9th."
        );
        let window = stats.window_line(start + Duration::from_secs(2));
        assert_eq!(
            window,
            "2 records sent, 1.0 records/sec (0.00 MB/sec), 2.4 ms avg latency, 3.2 ms max latency."
        );
        let steady = Stats::new(start, true);
        assert!(steady
            .total_line(start + Duration::from_secs(1))
            .starts_with("0 steady state records sent"));
    }

    #[test]
    fn payload_files_split_on_the_delimiter() {
        // The default "\n" (as typed) means new line; empty pieces are dropped.
        let payloads = split_payloads(b"a\nbb\n\nccc\n", "\\n");
        assert_eq!(
            payloads,
            vec![Bytes::from("a"), Bytes::from("bb"), Bytes::from("ccc")]
        );
        assert_eq!(
            split_payloads(b"x::y", "::"),
            vec![Bytes::from("x"), Bytes::from("y")]
        );
    }

    #[test]
    fn random_payloads_are_uppercase_letters_of_the_record_size() {
        // Every payload has the requested length and only A..Z.
        let options = parse(&[
            "--topic",
            "t",
            "--num-records",
            "1",
            "--record-size",
            "7",
            "--throughput",
            "1",
        ])
        .expect("parses");
        let payloads = Payloads::new(&options).expect("random payloads");
        let mut random = SplitMix64(1);
        for index in 0..100 {
            let payload = payloads.next(index, &mut random);
            assert_eq!(payload.len(), 7);
            assert!(payload.iter().all(u8::is_ascii_uppercase));
        }
    }
}
