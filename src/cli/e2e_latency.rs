//! `flink e2e-latency`: Kafka's kafka-e2e-latency.sh (EndToEndLatency), with Kafka's positional
//! arguments `broker_list topic num_messages producer_acks message_size_bytes [properties_file]`.
//!
//! Kafka's mode sends one message, waits for its acknowledgement, then polls until the
//! consumer has it: the latency is that whole round, one message at a time. `--rate N` is
//! flink's addition for latency under load: a producer sends N messages/s on a fixed schedule
//! while a consumer on its own thread reads them; each payload carries its scheduled send time,
//! and latency is receive time minus that (so a producer that falls behind counts against
//! latency instead of hiding it).
//!
//! Both print Kafka's lines (average in ms, percentiles in whole ms) and a line with
//! p50/p99/p99.9/p99.99 in microseconds from an HDR histogram.

use std::ffi::OsString;
use std::process::ExitCode;
use std::sync::mpsc::{self, Receiver};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use hdrhistogram::Histogram;
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::{ApiKey, CreateTopicsRequest, TopicName};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::Compression;

use super::producer_perf::{latency_histogram, RawArgs, SplitMix64, LATENCY_US_MAX};
use crate::client::accumulator::AccumulatorSettings;
use crate::client::cluster::{Client, ClientSettings, REQUEST_TIMEOUT_DEFAULT};
use crate::client::consumer::{Consumer, ConsumerSettings, StartPosition};
use crate::client::error::{ClientError, KafkaError};
use crate::client::pipelined_producer::{PipelinedProducer, PipelinedSettings};
use crate::client::producer::{Producer, ProducerSettings};
use crate::client::properties::{Properties, PropertiesError};
use crate::client::records::{parse_compression, IncomingRecord, OutgoingRecord};
use crate::client::security::ClientSecurity;

/// Kafka's POLL_TIMEOUT_MS: how long to wait for a message before giving up.
const POLL_TIMEOUT: Duration = Duration::from_secs(60);
/// Kafka prints a progress line every this many messages.
const PROGRESS_EVERY: u64 = 1000;
/// The topic Kafka's tool creates when it is missing.
const DEFAULT_PARTITIONS: i32 = 1;
const DEFAULT_REPLICATION_FACTOR: i16 = 1;
const ADMIN_TIMEOUT_MS: i32 = 30_000;
const TOPIC_ALREADY_EXISTS: i16 = 36;
const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
/// A rate-mode payload starts with its scheduled send time and its sequence number.
const STAMP_BYTES: usize = 16;

const USAGE: &str = "USAGE: flink-e2e-latency.sh broker_list topic num_messages producer_acks message_size_bytes [optional] properties_file [--rate messages_per_second]";

const HELP: &str = "\
Measures the end-to-end latency of messages through a topic (Kafka's kafka-e2e-latency.sh).

Usage: flink-e2e-latency.sh broker_list topic num_messages producer_acks message_size_bytes [properties_file] [--rate N]

Arguments:
  broker_list         bootstrap server(s), host:port[,host:port...]
  topic               topic to produce to and consume from (created with 1 partition if missing)
  num_messages        number of messages to send
  producer_acks       1 or all
  message_size_bytes  size of each message
  properties_file     optional client properties (compression.type, client.id, request.timeout.ms,
                      fetch.max.wait.ms, and security.protocol with the ssl.* and sasl.* keys
                      are used)

Options:
  --rate N            send N messages/sec from one thread while another consumes, instead of one
                      message at a time; latency is receive time minus the scheduled send time
                      carried in the payload (message_size_bytes must be at least 16)
  -h, --help          print this help

Prints Kafka's `Avg latency: %.4f ms` and `Percentiles: 50th = %d, 99th = %d, 99.9th = %d` (ms),
then `Percentiles (us): 50th = %d, 99th = %d, 99.9th = %d, 99.99th = %d`.";

#[derive(Debug, thiserror::Error)]
pub enum LatencyError {
    #[error("{0}")]
    Client(#[from] ClientError),
    #[error("{0}")]
    Properties(#[from] PropertiesError),
    #[error("Latency testing requires synchronous acknowledgement. Please use 1 or all")]
    Acks,
    #[error("Invalid value {value} for configuration {key}")]
    InvalidValue { key: &'static str, value: String },
    #[error("Creation of topic {topic} failed: {source}")]
    CreateTopic {
        topic: String,
        #[source]
        source: ClientError,
    },
    #[error("Error when sending the message: {0}")]
    Send(String),
    #[error("poll() timed out before finding a result (timeout:[{}])", POLL_TIMEOUT.as_millis())]
    PollTimeout,
    #[error("The message read [{read}] did not match the message sent [{sent}]")]
    Mismatch { read: String, sent: String },
    #[error("Only one result was expected during this test. We found [{0}]")]
    TooMany(usize),
    #[error("rate mode received {received} of {expected} messages before timing out ({} ms without a message)", POLL_TIMEOUT.as_millis())]
    RateTimeout { received: u64, expected: u64 },
    #[error("the consumer thread failed: {0}")]
    ConsumerThread(String),
}

/// The parsed command line.
#[derive(Debug, Clone, PartialEq)]
struct Command {
    brokers: String,
    topic: String,
    num_messages: u64,
    acks: i16,
    message_bytes: usize,
    properties_file: Option<String>,
    rate: Option<f64>,
}

#[derive(Debug, PartialEq)]
enum Parsed {
    Help,
    Run(Command),
}

/// The latencies of a run.
struct Latencies {
    histogram: Histogram<u64>,
    total: Duration,
    count: u64,
}

impl Latencies {
    fn new() -> Latencies {
        Latencies {
            histogram: latency_histogram(),
            total: Duration::ZERO,
            count: 0,
        }
    }

    fn record(&mut self, latency: Duration) {
        self.total += latency;
        self.count += 1;
        let micros = latency.as_micros().min(u128::from(LATENCY_US_MAX)) as u64;
        self.histogram.saturating_record(micros);
    }

    /// Kafka's two lines, then the microsecond line.
    fn report(&self) -> String {
        let average_ms = self.total.as_secs_f64() * 1000.0 / self.count.max(1) as f64;
        let micros = |quantile: f64| self.histogram.value_at_quantile(quantile);
        let millis = |quantile: f64| micros(quantile) / 1000;
        format!(
            "Avg latency: {average_ms:.4} ms\nPercentiles: 50th = {}, 99th = {}, 99.9th = {}\nPercentiles (us): 50th = {}, 99th = {}, 99.9th = {}, 99.99th = {}",
            millis(0.5),
            millis(0.99),
            millis(0.999),
            micros(0.5),
            micros(0.99),
            micros(0.999),
            micros(0.9999),
        )
    }
}

pub fn run(args: RawArgs) -> ExitCode {
    let command = match parse_command(&args.arguments) {
        Ok(Parsed::Help) => {
            println!("{HELP}");
            return ExitCode::SUCCESS;
        }
        Ok(Parsed::Run(command)) => command,
        Err(message) => {
            eprintln!("{message}");
            return ExitCode::FAILURE;
        }
    };
    match execute(&command) {
        Ok(latencies) => {
            println!("{}", latencies.report());
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("ERROR {error}");
            ExitCode::FAILURE
        }
    }
}

/// Kafka's positional arguments plus `--rate N` anywhere; errors are the message to print.
fn parse_command(arguments: &[OsString]) -> Result<Parsed, String> {
    let mut positional = Vec::new();
    let mut rate_text = None;
    let mut arguments = arguments.iter().map(|argument| argument.to_string_lossy());
    while let Some(argument) = arguments.next() {
        match argument.as_ref() {
            "-h" | "--help" => return Ok(Parsed::Help),
            "--rate" => {
                let value = arguments
                    .next()
                    .ok_or_else(|| format!("error: --rate needs a value\n{USAGE}"))?;
                rate_text = Some(value.into_owned());
            }
            flag if flag.starts_with("--rate=") => {
                rate_text = Some(flag["--rate=".len()..].to_string());
            }
            flag if flag.starts_with("--") => {
                return Err(format!("error: unknown option '{flag}'\n{USAGE}"));
            }
            _ => positional.push(argument.into_owned()),
        }
    }
    if positional.len() != 5 && positional.len() != 6 {
        return Err(USAGE.to_string());
    }
    let number = |name: &str, text: &str| -> Result<u64, String> {
        text.parse::<u64>()
            .ok()
            .filter(|value| *value > 0)
            .ok_or_else(|| {
                format!("error: {name} must be a positive integer, not '{text}'\n{USAGE}")
            })
    };
    let acks = match positional[3].as_str() {
        "1" => 1,
        "all" => -1,
        _ => return Err(format!("ERROR {}", LatencyError::Acks)),
    };
    let rate = match rate_text {
        None => None,
        Some(text) => Some(
            text.parse::<f64>()
                .ok()
                .filter(|rate| rate.is_finite() && *rate > 0.0)
                .ok_or_else(|| {
                    format!("error: --rate must be a positive number, not '{text}'\n{USAGE}")
                })?,
        ),
    };
    let message_bytes = number("message_size_bytes", &positional[4])? as usize;
    if rate.is_some() && message_bytes < STAMP_BYTES {
        return Err(format!("error: with --rate, message_size_bytes must be at least {STAMP_BYTES} (the payload carries its send time)\n{USAGE}"));
    }
    Ok(Parsed::Run(Command {
        brokers: positional[0].clone(),
        topic: positional[1].clone(),
        num_messages: number("num_messages", &positional[2])?,
        acks,
        message_bytes,
        properties_file: positional
            .get(5)
            .filter(|file| !file.trim().is_empty())
            .cloned(),
        rate,
    }))
}

fn execute(command: &Command) -> Result<Latencies, LatencyError> {
    let properties = match &command.properties_file {
        Some(path) => Properties::from_file(std::path::Path::new(path))?,
        None => Properties::default(),
    };
    // Read once: the PEM material is loaded here, not by each of the three clients.
    let security = ClientSecurity::from_properties(&properties)?;
    let client_settings = |suffix: &str| -> Result<ClientSettings, LatencyError> {
        let timeout_ms = properties.integer_or(
            "request.timeout.ms",
            REQUEST_TIMEOUT_DEFAULT.as_millis() as u64,
        )?;
        let client_id = properties.get("client.id").unwrap_or("e2e-latency");
        Ok(ClientSettings {
            client_id: format!("{client_id}-{suffix}"),
            request_timeout: Duration::from_millis(timeout_ms) + Duration::from_secs(5),
            security: security.clone(),
        })
    };
    let mut admin = Client::connect(&command.brokers, client_settings("admin")?)?;
    ensure_topic(&mut admin, &command.topic)?;
    let fetch_wait_default = match command.rate {
        // Kafka's fetch.max.wait.ms=0: no temporal batching while one message is in flight.
        None => 0,
        // Under load, long polls that the broker ends when data arrives.
        Some(_) => 500,
    };
    let consumer_settings = ConsumerSettings {
        fetch_wait_ms: properties.integer_or("fetch.max.wait.ms", fetch_wait_default)?,
        offset_reset: StartPosition::Latest,
        allow_auto_topic_creation: false,
        ..ConsumerSettings::default()
    };
    let consumer_client = Client::connect(&command.brokers, client_settings("consumer")?)?;
    let mut consumer = Consumer::new(
        consumer_client,
        &command.topic,
        None,
        StartPosition::Latest,
        consumer_settings,
    );
    let partition_count = partition_count(&mut admin, &command.topic)?;
    seek_to_end(&mut consumer, partition_count)?;
    let codec = properties.get("compression.type").unwrap_or("none");
    let compression = parse_compression(codec).ok_or(LatencyError::InvalidValue {
        key: "compression.type",
        value: codec.to_string(),
    })?;
    match command.rate {
        None => {
            let producer_settings = ProducerSettings {
                acks: command.acks,
                compression,
                metadata_wait: POLL_TIMEOUT,
                ..ProducerSettings::default()
            };
            let producer_client = Client::connect(&command.brokers, client_settings("producer")?)?;
            let producer = Producer::new(producer_client, &command.topic, producer_settings);
            one_at_a_time(command, producer, consumer)
        }
        Some(rate) => {
            let settings = rate_producer_settings(command.acks, compression);
            let producer = PipelinedProducer::connect(
                &command.brokers,
                client_settings("producer")?,
                &command.topic,
                settings,
            )?;
            at_fixed_rate(command, rate, producer, consumer)
        }
    }
}

/// The rate mode's producer: Kafka's defaults, but no linger, so a message leaves as soon as a
/// request slot is free.
fn rate_producer_settings(acks: i16, compression: Compression) -> PipelinedSettings {
    PipelinedSettings {
        acks,
        accumulator: AccumulatorSettings {
            batch_bytes_max: 16_384,
            linger: Duration::ZERO,
            compression,
        },
        in_flight_max: 5,
        request_bytes_max: 1_048_576,
        buffer_bytes_max: 33_554_432,
        request_timeout: REQUEST_TIMEOUT_DEFAULT,
        delivery_timeout: Duration::from_secs(120),
        retries: i32::MAX as u32,
        retry_backoff: Duration::from_millis(100),
        metadata_wait: POLL_TIMEOUT,
    }
}

/// Creates the topic with one partition when it does not exist, as Kafka's tool does.
fn ensure_topic(client: &mut Client, topic: &str) -> Result<(), LatencyError> {
    let topics = [topic.to_string()];
    let metadata = client.metadata(Some(&topics), false)?;
    let missing = metadata.topic(topic).is_none_or(|found| {
        found
            .error
            .as_ref()
            .is_some_and(|error| error.code == UNKNOWN_TOPIC_OR_PARTITION)
    });
    if !missing {
        return Ok(());
    }
    println!("Topic \"{topic}\" does not exist. Will create topic with {DEFAULT_PARTITIONS} partition(s) and replication factor = {DEFAULT_REPLICATION_FACTOR}");
    let request = CreateTopicsRequest::default()
        .with_topics(vec![CreatableTopic::default()
            .with_name(TopicName(StrBytes::from_string(topic.to_string())))
            .with_num_partitions(DEFAULT_PARTITIONS)
            .with_replication_factor(DEFAULT_REPLICATION_FACTOR)])
        .with_timeout_ms(ADMIN_TIMEOUT_MS);
    let created = client
        .send_controller(ApiKey::CreateTopics, &request)
        .and_then(|response| {
            let failure = response.topics.into_iter().find_map(|result| {
                let message = result.error_message.as_ref().map(StrBytes::as_str);
                KafkaError::for_topic(result.error_code, topic, message)
                    .filter(|error| error.code != TOPIC_ALREADY_EXISTS)
            });
            failure.map_or(Ok(()), |error| Err(error.into()))
        });
    created.map_err(|source| {
        println!("Creation of topic {topic} failed");
        LatencyError::CreateTopic {
            topic: topic.to_string(),
            source,
        }
    })
}

/// The topic's partition count once every partition has a leader (bounded by POLL_TIMEOUT).
fn partition_count(client: &mut Client, topic: &str) -> Result<usize, LatencyError> {
    let deadline = Instant::now() + POLL_TIMEOUT;
    let topics = [topic.to_string()];
    loop {
        let metadata = client.metadata(Some(&topics), false)?;
        if let Some(found) = metadata.topic(topic).filter(|found| found.error.is_none()) {
            let led = found
                .partitions
                .iter()
                .all(|partition| partition.leader.0 >= 0);
            if led && !found.partitions.is_empty() {
                return Ok(found.partitions.len());
            }
        }
        if Instant::now() >= deadline {
            return Err(ClientError::MetadataTimeout {
                topic: topic.to_string(),
                waited_ms: POLL_TIMEOUT.as_millis(),
            }
            .into());
        }
        thread::sleep(Duration::from_millis(100));
    }
}

/// Polls until every partition has a position at the log end (Kafka's seekToEnd + position);
/// anything read meanwhile was written before the test and is dropped.
fn seek_to_end(consumer: &mut Consumer, partition_count: usize) -> Result<(), LatencyError> {
    let deadline = Instant::now() + POLL_TIMEOUT;
    while consumer.positions().len() < partition_count {
        consumer.poll()?;
        if Instant::now() >= deadline {
            return Err(LatencyError::PollTimeout);
        }
    }
    consumer.take_warnings();
    Ok(())
}

/// Kafka's loop: send one message synchronously, then poll until it arrives.
fn one_at_a_time(
    command: &Command,
    mut producer: Producer,
    mut consumer: Consumer,
) -> Result<Latencies, LatencyError> {
    let mut latencies = Latencies::new();
    let mut random = SplitMix64(0);
    for index in 0..command.num_messages {
        let letter = b'A' + (random.next_u64() % 26) as u8;
        let message = Bytes::from(vec![letter; command.message_bytes]);
        let begin = Instant::now();
        producer.append(OutgoingRecord {
            key: None,
            value: Some(message.clone()),
            timestamp_ms: now_ms(),
        });
        producer.flush();
        if let Some(failure) = producer.take_failures().into_iter().next() {
            return Err(LatencyError::Send(failure.reason));
        }
        let records = poll_once(&mut consumer)?;
        let elapsed = begin.elapsed();
        validate(&message, &records)?;
        if index.is_multiple_of(PROGRESS_EVERY) {
            println!("{index}\t{}", java_double(as_milliseconds(elapsed)));
        }
        latencies.record(elapsed);
    }
    Ok(latencies)
}

/// Kafka's `consumer.poll(60 s)`: the first non-empty fetch, or a timeout.
fn poll_once(consumer: &mut Consumer) -> Result<Vec<IncomingRecord>, LatencyError> {
    let deadline = Instant::now() + POLL_TIMEOUT;
    loop {
        let records = consumer.poll()?;
        if !records.is_empty() {
            return Ok(records);
        }
        if Instant::now() >= deadline {
            return Err(LatencyError::PollTimeout);
        }
    }
}

/// Kafka's checks: exactly one record, with the value sent.
fn validate(sent: &Bytes, records: &[IncomingRecord]) -> Result<(), LatencyError> {
    let read = records
        .first()
        .and_then(|record| record.value.clone())
        .unwrap_or_default();
    if read != *sent {
        return Err(LatencyError::Mismatch {
            read: String::from_utf8_lossy(&read).into_owned(),
            sent: String::from_utf8_lossy(sent).into_owned(),
        });
    }
    if records.len() != 1 {
        return Err(LatencyError::TooMany(records.len()));
    }
    Ok(())
}

/// flink's fixed-rate mode: this thread sends on schedule, a consumer thread measures.
fn at_fixed_rate(
    command: &Command,
    rate: f64,
    mut producer: PipelinedProducer<u64>,
    consumer: Consumer,
) -> Result<Latencies, LatencyError> {
    let base = Instant::now();
    let (sent_count, sent_count_receiver) = mpsc::channel();
    let expected = command.num_messages;
    let reader = thread::Builder::new()
        .name("e2e-consumer".to_string())
        .spawn(move || receive_stamped(consumer, base, expected, sent_count_receiver))
        .map_err(|error| LatencyError::ConsumerThread(error.to_string()))?;
    let interval = Duration::from_secs_f64(1.0 / rate);
    let mut padding = vec![b'A'; command.message_bytes - STAMP_BYTES];
    let mut random = SplitMix64(0);
    let mut failed = 0u64;
    let mut first_failure = None;
    for sequence in 0..command.num_messages {
        let scheduled = base + interval.mul_f64(sequence as f64);
        producer.poll_until(scheduled);
        let mut payload = Vec::with_capacity(command.message_bytes);
        let stamp = scheduled.saturating_duration_since(base).as_nanos() as u64;
        payload.extend_from_slice(&stamp.to_be_bytes());
        payload.extend_from_slice(&sequence.to_be_bytes());
        padding.fill(b'A' + (random.next_u64() % 26) as u8);
        payload.extend_from_slice(&padding);
        producer.send(
            OutgoingRecord {
                key: None,
                value: Some(Bytes::from(payload)),
                timestamp_ms: now_ms(),
            },
            sequence,
        );
        count_failures(&mut producer, &mut failed, &mut first_failure);
    }
    producer.flush();
    count_failures(&mut producer, &mut failed, &mut first_failure);
    // The consumer waits only for what was delivered.
    let _ = sent_count.send(command.num_messages - failed);
    let latencies = reader
        .join()
        .map_err(|_| LatencyError::ConsumerThread("it panicked".to_string()))??;
    match first_failure {
        Some(reason) => Err(LatencyError::Send(format!(
            "{failed} message(s) failed, the first with: {reason}"
        ))),
        None => Ok(latencies),
    }
}

fn count_failures(
    producer: &mut PipelinedProducer<u64>,
    failed: &mut u64,
    first_failure: &mut Option<String>,
) {
    for delivery in producer.take_deliveries() {
        if let Err(reason) = delivery.result {
            *failed += delivery.tokens.len() as u64;
            first_failure.get_or_insert(reason);
        }
    }
}

/// The consumer thread of rate mode: reads stamped messages until it has `expected` (lowered
/// when the producer reports failures) or none came for POLL_TIMEOUT.
fn receive_stamped(
    mut consumer: Consumer,
    base: Instant,
    mut expected: u64,
    sent_count: Receiver<u64>,
) -> Result<Latencies, LatencyError> {
    let mut latencies = Latencies::new();
    let mut last_received = Instant::now();
    while latencies.count < expected {
        if let Ok(delivered) = sent_count.try_recv() {
            expected = delivered;
            continue;
        }
        let records = consumer.poll()?;
        let now = Instant::now();
        if records.is_empty() && now.saturating_duration_since(last_received) >= POLL_TIMEOUT {
            return Err(LatencyError::RateTimeout {
                received: latencies.count,
                expected,
            });
        }
        for record in &records {
            let Some(stamp) = record
                .value
                .as_ref()
                .and_then(|value| value.get(..8))
                .and_then(|bytes| <[u8; 8]>::try_from(bytes).ok())
            else {
                continue;
            };
            let sent_at = base + Duration::from_nanos(u64::from_be_bytes(stamp));
            let latency = now.saturating_duration_since(sent_at);
            if latencies.count.is_multiple_of(PROGRESS_EVERY) {
                println!(
                    "{}\t{}",
                    latencies.count,
                    java_double(as_milliseconds(latency))
                );
            }
            latencies.record(latency);
            last_received = now;
        }
    }
    Ok(latencies)
}

/// Milliseconds computed as Kafka's tool does (`nanoseconds / 1000.0 / 1000.0`), so that the
/// shortest decimal form is the same.
fn as_milliseconds(duration: Duration) -> f64 {
    duration.as_nanos() as f64 / 1000.0 / 1000.0
}

/// A double as Java's `Double.toString` writes ordinary magnitudes (`2.0`, not `2`).
fn java_double(value: f64) -> String {
    match value.fract() == 0.0 && value.is_finite() {
        true => format!("{value:.1}"),
        false => format!("{value}"),
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_millis() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(arguments: &[&str]) -> Result<Parsed, String> {
        let arguments: Vec<OsString> = arguments.iter().map(OsString::from).collect();
        parse_command(&arguments)
    }

    #[test]
    fn positional_arguments_follow_kafka() {
        // Five or six positionals; acks 1 or all only; --rate may come anywhere.
        let Ok(Parsed::Run(command)) = parse(&["h:1", "t", "100", "all", "20"]) else {
            panic!("five positionals parse");
        };
        assert_eq!(
            (command.num_messages, command.acks, command.message_bytes),
            (100, -1, 20)
        );
        assert_eq!(command.rate, None);
        let Ok(Parsed::Run(command)) = parse(&[
            "--rate",
            "500",
            "h:1",
            "t",
            "100",
            "1",
            "64",
            "client.properties",
        ]) else {
            panic!("rate and a properties file parse");
        };
        assert_eq!(command.rate, Some(500.0));
        assert_eq!(
            command.properties_file.as_deref(),
            Some("client.properties")
        );
        assert!(parse(&["h:1", "t", "100", "1"])
            .unwrap_err()
            .starts_with("USAGE: "));
        assert!(parse(&["h:1", "t", "100", "0", "20"])
            .unwrap_err()
            .contains("Please use 1 or all"));
        assert!(parse(&["h:1", "t", "100", "1", "8", "--rate=10"]).is_err());
        assert!(parse(&["h:1", "t", "x", "1", "20"]).is_err());
        assert!(parse(&["h:1", "t", "1", "1", "20", "--bogus"]).is_err());
        assert_eq!(parse(&["--help"]), Ok(Parsed::Help));
    }

    #[test]
    fn report_has_kafka_lines_and_microseconds() {
        // 1 ms, 2 ms and 3.5 ms: Kafka's whole-ms percentiles and exact microseconds.
        let mut latencies = Latencies::new();
        for micros in [1_000, 2_000, 3_500] {
            latencies.record(Duration::from_micros(micros));
        }
        assert_eq!(
            latencies.report(),
            "Avg latency: 2.1667 ms\nPercentiles: 50th = 2, 99th = 3, 99.9th = 3\nPercentiles (us): 50th = 2000, 99th = 3501, 99.9th = 3501, 99.99th = 3501"
        );
    }

    #[test]
    fn validation_uses_kafka_messages() {
        // A different value or more than one record fails as Kafka's tool fails.
        let record = |value: &'static str| IncomingRecord {
            partition: 0,
            offset: 0,
            timestamp_ms: 0,
            timestamp_type: kafka_protocol::records::TimestampType::Creation,
            key: None,
            value: Some(Bytes::from_static(value.as_bytes())),
            headers: Default::default(),
        };
        let sent = Bytes::from_static(b"AAAA");
        assert!(validate(&sent, &[record("AAAA")]).is_ok());
        assert!(matches!(
            validate(&sent, &[record("BBBB")]),
            Err(LatencyError::Mismatch { .. })
        ));
        assert!(matches!(
            validate(&sent, &[record("AAAA"), record("AAAA")]),
            Err(LatencyError::TooMany(2))
        ));
        assert!(validate(&sent, &[]).is_err());
        assert_eq!(java_double(2.0), "2.0");
        assert_eq!(java_double(0.25), "0.25");
    }
}
