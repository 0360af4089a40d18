//! `flink consumer-perf-test`: Kafka's kafka-consumer-perf-test.sh (ConsumerPerformance). Joins
//! a consumer group on one topic, reads until `--messages` records arrived or `--timeout` ms
//! passed without one, and prints Kafka's CSV-like summary (or a line per reporting interval
//! with `--show-detailed-stats`). Bytes are key plus value bytes, MB are MiB, as in Kafka.
//!
//! rebalance.time.ms is the time spent joining the group (until the member has an assignment,
//! again after each rebalance); fetch.time.ms is the rest of the run.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use clap::{CommandFactory, Parser};

use super::producer_perf::{parse_tool_command, usage_error, RawArgs, SplitMix64};
use crate::client::cluster::{Client, ClientSettings, REQUEST_TIMEOUT_DEFAULT};
use crate::client::consumer::{Consumer, ConsumerSettings, StartPosition};
use crate::client::error::ClientError;
use crate::client::group_consumer::{GroupConsumer, GroupSettings};
use crate::client::properties::{Properties, PropertiesError};
use crate::client::security::{ClientSecurity, SECURITY_KEYS};

const NAME: &str = "consumer-perf-test";
const HEADER_FIELDS_EXTRA: &str =
    ", rebalance.time.ms, fetch.time.ms, fetch.MB.sec, fetch.nMsg.sec";
/// The consumer properties this tool reads from --consumer.config; others are warned about.
const HONOURED_PROPERTIES: [&str; 12] = [
    "client.id",
    "fetch.max.wait.ms",
    "fetch.min.bytes",
    "fetch.max.bytes",
    "session.timeout.ms",
    "heartbeat.interval.ms",
    "enable.auto.commit",
    "auto.commit.interval.ms",
    "request.timeout.ms",
    "retry.backoff.ms",
    "key.deserializer",
    "value.deserializer",
];
const BYTES_PER_MB: f64 = 1024.0 * 1024.0;

#[derive(Parser, Debug)]
#[command(
    about = "This tool is used to verify the consumer performance (Kafka's kafka-consumer-perf-test.sh)."
)]
pub struct Options {
    /// REQUIRED: The server(s) to connect to.
    #[arg(long, value_name = "SERVER")]
    pub bootstrap_server: String,
    /// REQUIRED: The topic to consume from.
    #[arg(long, value_name = "TOPIC")]
    pub topic: String,
    /// REQUIRED: The number of messages to consume.
    #[arg(long, value_name = "COUNT", allow_negative_numbers = true)]
    pub messages: i64,
    /// The group id to consume on (default: perf-consumer-<random number>).
    #[arg(long, value_name = "GID")]
    pub group: Option<String>,
    /// The amount of data to fetch in a single request (max.partition.fetch.bytes).
    #[arg(long, value_name = "SIZE", default_value_t = 1024 * 1024)]
    pub fetch_size: i32,
    /// Accepted for compatibility and ignored: the socket keeps the system's buffer size.
    #[arg(long, value_name = "SIZE", default_value_t = 2 * 1024 * 1024)]
    pub socket_buffer_size: i32,
    /// If the consumer does not already have an established offset to consume from, start with
    /// the latest message present in the log rather than the earliest message.
    #[arg(long)]
    pub from_latest: bool,
    /// Consumer config properties file (also --command-config, Kafka 4's name): client.id,
    /// fetch settings, ..., and security.protocol with the ssl.* and sasl.* keys.
    #[arg(
        long = "consumer.config",
        alias = "command-config",
        value_name = "CONFIG-FILE"
    )]
    pub consumer_config: Option<PathBuf>,
    /// Accepted for compatibility; this consumer keeps no client metrics, so nothing extra is
    /// printed.
    #[arg(long)]
    pub print_metrics: bool,
    /// If set, stats are reported for each reporting interval as configured by
    /// --reporting-interval.
    #[arg(long)]
    pub show_detailed_stats: bool,
    /// The maximum allowed time in milliseconds between returned records.
    #[arg(long, value_name = "MILLISECONDS", default_value_t = 10_000)]
    pub timeout: u64,
    /// Interval in milliseconds at which to print progress info.
    #[arg(
        long,
        value_name = "INTERVAL_MS",
        default_value_t = 5_000,
        allow_negative_numbers = true
    )]
    pub reporting_interval: i64,
    /// The date format to use for formatting the time field. See java.text.SimpleDateFormat for
    /// options (letters y M d E a H k K h m s S Z X z are supported).
    #[arg(
        long,
        value_name = "DATE FORMAT",
        default_value = "yyyy-MM-dd HH:mm:ss:SSS"
    )]
    pub date_format: String,
    /// If set, skips printing the header for the stats.
    #[arg(long)]
    pub hide_header: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum ConsumerPerfError {
    #[error("{0}")]
    Client(#[from] ClientError),
    #[error("{0}")]
    Properties(#[from] PropertiesError),
    #[error("Illegal pattern character '{0}' in --date-format")]
    DatePattern(char),
    #[error("Unterminated quote in --date-format")]
    DateQuote,
}

/// The counters of Kafka's consume loop.
#[derive(Debug, Default, Clone, Copy)]
struct Progress {
    messages: u64,
    bytes: u64,
}

pub fn run(args: RawArgs) -> ExitCode {
    if args.arguments.is_empty() {
        // As Kafka's tool: no arguments prints the usage and fails.
        let _ = Options::command()
            .name(NAME)
            .write_help(&mut std::io::stderr());
        return ExitCode::FAILURE;
    }
    let options = match parse_tool_command::<Options>(NAME, &args.arguments) {
        Ok(options) => options,
        Err(code) => return code,
    };
    if options.reporting_interval <= 0 {
        return usage_error::<Options>(NAME, "Reporting interval must be greater than 0.");
    }
    let format = match DateFormat::parse(&options.date_format) {
        Ok(format) => format,
        Err(error) => return usage_error::<Options>(NAME, &error.to_string()),
    };
    match execute(&options, &format) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("ERROR {error}");
            ExitCode::FAILURE
        }
    }
}

fn execute(options: &Options, format: &DateFormat) -> Result<(), ConsumerPerfError> {
    let properties = match &options.consumer_config {
        Some(path) => Properties::from_file(path)?,
        None => Properties::default(),
    };
    for key in properties.keys() {
        if !HONOURED_PROPERTIES.contains(&key) && !SECURITY_KEYS.contains(&key) {
            eprintln!("WARN The configuration '{key}' was supplied but isn't used by flink consumer-perf-test.");
        }
    }
    let group = options.group.clone().unwrap_or_else(random_group);
    let mut consumer = group_consumer(options, &properties, &group)?;
    if !options.hide_header {
        print_header(options.show_detailed_stats);
    }
    let start = SystemTime::now();
    let started = Instant::now();
    let mut rebalance = RebalanceClock::new(started);
    let consumed = consume(options, format, &mut consumer, &mut rebalance)?;
    let ended = Instant::now();
    let end = SystemTime::now();
    // Warnings a Kafka consumer would log (commit or leave failures) do not fail the test.
    let _ = consumer.close();
    for warning in consumer.take_warnings() {
        eprintln!("WARN {warning}");
    }
    if !options.show_detailed_stats {
        let elapsed = ended.saturating_duration_since(started);
        println!(
            "{}",
            summary_line(format, start, end, elapsed, rebalance.total, consumed)
        );
    }
    Ok(())
}

fn print_header(detailed: bool) {
    match detailed {
        false => println!("start.time, end.time, data.consumed.in.MB, MB.sec, data.consumed.in.nMsg, nMsg.sec{HEADER_FIELDS_EXTRA}"),
        true => println!("time, threadId, data.consumed.in.MB, MB.sec, data.consumed.in.nMsg, nMsg.sec{HEADER_FIELDS_EXTRA}"),
    }
}

/// Kafka's consume loop: poll until enough messages or `--timeout` ms without any.
fn consume(
    options: &Options,
    format: &DateFormat,
    consumer: &mut GroupConsumer,
    rebalance: &mut RebalanceClock,
) -> Result<Progress, ConsumerPerfError> {
    let wanted = options.messages.max(0) as u64;
    let timeout = Duration::from_millis(options.timeout);
    let interval = Duration::from_millis(options.reporting_interval as u64);
    let mut progress = Progress::default();
    let mut reported = Progress::default();
    let mut now = Instant::now();
    let mut last_report = now;
    let mut last_consumed = now;
    while progress.messages < wanted && now.saturating_duration_since(last_consumed) <= timeout {
        let records = consumer.poll()?;
        now = Instant::now();
        rebalance.observe(consumer.is_joined(), now);
        for warning in consumer.take_warnings() {
            eprintln!("WARN {warning}");
        }
        if !records.is_empty() {
            last_consumed = now;
        }
        for record in &records {
            progress.messages += 1;
            progress.bytes += record.key.as_ref().map_or(0, |key| key.len() as u64);
            progress.bytes += record.value.as_ref().map_or(0, |value| value.len() as u64);
            if now.saturating_duration_since(last_report) >= interval {
                if options.show_detailed_stats {
                    let line = detailed_line(
                        format,
                        progress,
                        reported,
                        last_report,
                        now,
                        rebalance.round,
                    );
                    println!("{line}");
                }
                rebalance.round = Duration::ZERO;
                last_report = now;
                reported = progress;
            }
        }
    }
    if progress.messages < wanted {
        println!("WARNING: Exiting before consuming the expected number of messages: timeout ({} ms) exceeded. You can use the --timeout option to increase the timeout.", options.timeout);
    }
    Ok(progress)
}

/// Time spent joining: from the start (or from losing the assignment) to having one.
struct RebalanceClock {
    joining_since: Option<Instant>,
    total: Duration,
    /// Joining time since the last detailed report.
    round: Duration,
}

impl RebalanceClock {
    fn new(start: Instant) -> RebalanceClock {
        RebalanceClock {
            joining_since: Some(start),
            total: Duration::ZERO,
            round: Duration::ZERO,
        }
    }

    fn observe(&mut self, joined: bool, now: Instant) {
        match (joined, self.joining_since) {
            (true, Some(since)) => {
                let spent = now.saturating_duration_since(since);
                self.total += spent;
                self.round += spent;
                self.joining_since = None;
            }
            (false, None) => self.joining_since = Some(now),
            _ => {}
        }
    }
}

/// `%s, %s, %.4f, %.4f, %d, %.4f, %d, %d, %.4f, %.4f`: Kafka's summary line.
fn summary_line(
    format: &DateFormat,
    start: SystemTime,
    end: SystemTime,
    elapsed: Duration,
    rebalance: Duration,
    consumed: Progress,
) -> String {
    let elapsed_ms = elapsed.as_millis() as i64;
    let rebalance_ms = rebalance.as_millis() as i64;
    let fetch_ms = elapsed_ms - rebalance_ms;
    let elapsed_seconds = elapsed_ms as f64 / 1000.0;
    let fetch_seconds = fetch_ms as f64 / 1000.0;
    let megabytes = consumed.bytes as f64 / BYTES_PER_MB;
    format!(
        "{}, {}, {}, {}, {}, {}, {}, {}, {}, {}",
        format.format(start),
        format.format(end),
        java_fixed4(megabytes),
        java_fixed4(megabytes / elapsed_seconds),
        consumed.messages,
        java_fixed4(consumed.messages as f64 / elapsed_seconds),
        rebalance_ms,
        fetch_ms,
        java_fixed4(megabytes / fetch_seconds),
        java_fixed4(consumed.messages as f64 / fetch_seconds),
    )
}

/// `%s, %d, %.4f, %.4f, %d, %.4f, %d, %d, %.4f, %.4f`: Kafka's printConsumerProgress line.
fn detailed_line(
    format: &DateFormat,
    now_progress: Progress,
    last: Progress,
    interval_start: Instant,
    now: Instant,
    rebalance_in_round: Duration,
) -> String {
    let elapsed_ms = now.saturating_duration_since(interval_start).as_millis() as i64;
    let interval_megabytes = (now_progress.bytes - last.bytes) as f64 / BYTES_PER_MB;
    let interval_messages = now_progress.messages - last.messages;
    let rebalance_ms = rebalance_in_round.as_millis() as i64;
    let fetch_ms = elapsed_ms - rebalance_ms;
    let per_fetch_second = |amount: f64| match fetch_ms <= 0 {
        true => 0.0,
        false => 1000.0 * amount / fetch_ms as f64,
    };
    format!(
        "{}, 0, {}, {}, {}, {}, {}, {}, {}, {}",
        format.format(SystemTime::now()),
        java_fixed4(now_progress.bytes as f64 / BYTES_PER_MB),
        java_fixed4(1000.0 * interval_megabytes / elapsed_ms as f64),
        now_progress.messages,
        java_fixed4(interval_messages as f64 / elapsed_ms as f64 * 1000.0),
        rebalance_ms,
        fetch_ms,
        java_fixed4(per_fetch_second(interval_megabytes)),
        java_fixed4(per_fetch_second(interval_messages as f64)),
    )
}

/// Java's `%.4f`, including how it writes infinities and NaN.
fn java_fixed4(value: f64) -> String {
    match value {
        value if value.is_nan() => "NaN".to_string(),
        value if value == f64::INFINITY => "Infinity".to_string(),
        value if value == f64::NEG_INFINITY => "-Infinity".to_string(),
        value => format!("{value:.4}"),
    }
}

fn random_group() -> String {
    let seed = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_nanos() as u64);
    format!("perf-consumer-{}", SplitMix64(seed).next_u64() % 100_000)
}

/// A group consumer as Kafka's tool configures one: the group, max.partition.fetch.bytes from
/// --fetch-size, auto.offset.reset from --from-latest, client.id perf-consumer-client.
fn group_consumer(
    options: &Options,
    properties: &Properties,
    group: &str,
) -> Result<GroupConsumer, ConsumerPerfError> {
    let defaults = ConsumerSettings::default();
    let offset_reset = match options.from_latest {
        true => StartPosition::Latest,
        false => StartPosition::Earliest,
    };
    let group_defaults = GroupSettings::new(group);
    let milliseconds = |key: &str, default: Duration| -> Result<Duration, PropertiesError> {
        properties
            .integer_or(key, default.as_millis() as u64)
            .map(Duration::from_millis)
    };
    let group_settings = GroupSettings {
        session_timeout_ms: properties
            .integer_or("session.timeout.ms", group_defaults.session_timeout_ms)?,
        heartbeat_interval: milliseconds(
            "heartbeat.interval.ms",
            group_defaults.heartbeat_interval,
        )?,
        auto_commit: properties.bool_or("enable.auto.commit", group_defaults.auto_commit)?,
        auto_commit_interval: milliseconds(
            "auto.commit.interval.ms",
            group_defaults.auto_commit_interval,
        )?,
        retry_backoff: milliseconds("retry.backoff.ms", group_defaults.retry_backoff)?,
        ..group_defaults
    };
    // A fetch must return in time for the next heartbeat.
    let heartbeat_ms = group_settings
        .heartbeat_interval
        .as_millis()
        .min(i32::MAX as u128) as i32;
    let settings = ConsumerSettings {
        fetch_wait_ms: properties
            .integer_or("fetch.max.wait.ms", defaults.fetch_wait_ms)?
            .min(heartbeat_ms),
        fetch_bytes_min: properties.integer_or("fetch.min.bytes", defaults.fetch_bytes_min)?,
        fetch_bytes_max: properties.integer_or("fetch.max.bytes", defaults.fetch_bytes_max)?,
        partition_fetch_bytes_max: options.fetch_size,
        offset_reset,
        retry_backoff: group_settings.retry_backoff,
        ..defaults
    };
    let client_settings = ClientSettings {
        client_id: properties
            .get("client.id")
            .unwrap_or("perf-consumer-client")
            .to_string(),
        request_timeout: milliseconds("request.timeout.ms", REQUEST_TIMEOUT_DEFAULT)?,
        security: ClientSecurity::from_properties(properties)?,
    };
    let client = Client::connect(&options.bootstrap_server, client_settings)?;
    let consumer = Consumer::new(client, &options.topic, None, offset_reset, settings);
    Ok(GroupConsumer::new(consumer, group_settings, offset_reset))
}

/// A java.text.SimpleDateFormat pattern, compiled, formatting in the local time zone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DateFormat {
    parts: Vec<DatePart>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum DatePart {
    Literal(String),
    Field { letter: char, width: usize },
}

/// The broken-down local time a pattern formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct LocalTime {
    year: i64,
    month: u32,
    day: u32,
    weekday: u32,
    hour: u32,
    minute: u32,
    second: u32,
    millisecond: u32,
    offset_seconds: i64,
}

const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];
const WEEKDAYS: [&str; 7] = [
    "Sunday",
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
];

impl DateFormat {
    /// Compiles `pattern`: letters are fields, 'quoted' text and other characters literal.
    pub fn parse(pattern: &str) -> Result<DateFormat, ConsumerPerfError> {
        let mut parts = Vec::new();
        let mut literal = String::new();
        let mut characters = pattern.chars().peekable();
        while let Some(character) = characters.next() {
            if character == '\'' {
                if characters.peek() == Some(&'\'') {
                    characters.next();
                    literal.push('\'');
                    continue;
                }
                loop {
                    match characters.next() {
                        None => return Err(ConsumerPerfError::DateQuote),
                        Some('\'') if characters.peek() == Some(&'\'') => {
                            characters.next();
                            literal.push('\'');
                        }
                        Some('\'') => break,
                        Some(quoted) => literal.push(quoted),
                    }
                }
                continue;
            }
            if !character.is_ascii_alphabetic() {
                literal.push(character);
                continue;
            }
            if !"yMdEaHkKhmsSZXz".contains(character) {
                return Err(ConsumerPerfError::DatePattern(character));
            }
            let mut width = 1;
            while characters.peek() == Some(&character) {
                characters.next();
                width += 1;
            }
            if !literal.is_empty() {
                parts.push(DatePart::Literal(std::mem::take(&mut literal)));
            }
            parts.push(DatePart::Field {
                letter: character,
                width,
            });
        }
        if !literal.is_empty() {
            parts.push(DatePart::Literal(literal));
        }
        Ok(DateFormat { parts })
    }

    /// Formats `time` in the local time zone (TZ, else the system's).
    pub fn format(&self, time: SystemTime) -> String {
        let (local, zone) = local_time(time);
        self.format_local(&local, &zone)
    }

    fn format_local(&self, local: &LocalTime, zone: &str) -> String {
        let mut text = String::new();
        for part in &self.parts {
            match part {
                DatePart::Literal(literal) => text.push_str(literal),
                DatePart::Field { letter, width } => {
                    text.push_str(&format_field(*letter, *width, local, zone))
                }
            }
        }
        text
    }
}

fn format_field(letter: char, width: usize, local: &LocalTime, zone: &str) -> String {
    let number = |value: i64| format!("{value:0width$}");
    match letter {
        'y' if width == 2 => format!("{:02}", local.year.rem_euclid(100)),
        'y' => number(local.year),
        'M' if width >= 4 => MONTHS[local.month as usize - 1].to_string(),
        'M' if width == 3 => MONTHS[local.month as usize - 1][..3].to_string(),
        'M' => number(i64::from(local.month)),
        'd' => number(i64::from(local.day)),
        'E' if width >= 4 => WEEKDAYS[local.weekday as usize].to_string(),
        'E' => WEEKDAYS[local.weekday as usize][..3].to_string(),
        'a' => (if local.hour < 12 { "AM" } else { "PM" }).to_string(),
        'H' => number(i64::from(local.hour)),
        'k' => number(i64::from(if local.hour == 0 { 24 } else { local.hour })),
        'K' => number(i64::from(local.hour % 12)),
        'h' => number(i64::from(match local.hour % 12 {
            0 => 12,
            hour => hour,
        })),
        'm' => number(i64::from(local.minute)),
        's' => number(i64::from(local.second)),
        'S' => number(i64::from(local.millisecond)),
        'Z' => zone_offset(local.offset_seconds, false, false),
        'X' if local.offset_seconds == 0 => "Z".to_string(),
        'X' if width == 1 => zone_offset(local.offset_seconds, true, false),
        'X' => zone_offset(local.offset_seconds, false, width >= 3),
        _ => zone.to_string(),
    }
}

/// `+hhmm`, `+hh` (hours only) or `+hh:mm`.
fn zone_offset(offset_seconds: i64, hours_only: bool, colon: bool) -> String {
    let sign = if offset_seconds < 0 { '-' } else { '+' };
    let minutes = offset_seconds.abs() / 60;
    let (hours, minutes) = (minutes / 60, minutes % 60);
    match (hours_only, colon) {
        (true, _) => format!("{sign}{hours:02}"),
        (false, true) => format!("{sign}{hours:02}:{minutes:02}"),
        (false, false) => format!("{sign}{hours:02}{minutes:02}"),
    }
}

/// The local broken-down time of `time` and the zone's abbreviation, from the C library.
fn local_time(time: SystemTime) -> (LocalTime, String) {
    let since_epoch = time.duration_since(UNIX_EPOCH).unwrap_or_default();
    let seconds = since_epoch.as_secs() as libc::time_t;
    // SAFETY: localtime_r only writes the tm we own; an all-zero tm is a valid initial value.
    let mut broken: libc::tm = unsafe { std::mem::zeroed() };
    let converted = unsafe { !libc::localtime_r(&seconds, &mut broken).is_null() };
    if !converted {
        // No local time (cannot happen for times after 1970): show UTC from zeroes.
        broken.tm_mday = 1;
        broken.tm_year = 70;
    }
    let zone = match broken.tm_zone.is_null() {
        true => String::new(),
        // SAFETY: a non-null tm_zone points at a NUL-terminated string owned by the C library.
        false => unsafe { std::ffi::CStr::from_ptr(broken.tm_zone) }
            .to_string_lossy()
            .into_owned(),
    };
    let local = LocalTime {
        year: i64::from(broken.tm_year) + 1900,
        month: broken.tm_mon as u32 + 1,
        day: broken.tm_mday as u32,
        weekday: broken.tm_wday as u32,
        hour: broken.tm_hour as u32,
        minute: broken.tm_min as u32,
        second: broken.tm_sec.min(59) as u32,
        millisecond: since_epoch.subsec_millis(),
        offset_seconds: broken.tm_gmtoff,
    };
    (local, zone)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(arguments: &[&str]) -> Result<Options, clap::Error> {
        let full = std::iter::once(NAME).chain(arguments.iter().copied());
        Options::try_parse_from(full)
    }

    fn sample_time() -> LocalTime {
        LocalTime {
            year: 2024,
            month: 3,
            day: 7,
            weekday: 4,
            hour: 15,
            minute: 4,
            second: 5,
            millisecond: 9,
            offset_seconds: 3600,
        }
    }

    #[test]
    fn parses_kafka_flags_and_defaults() {
        // Kafka's defaults: 1 MiB fetches, 10 s timeout, 5 s interval, Kafka's date format.
        let options = parse(&[
            "--bootstrap-server",
            "h:1",
            "--topic",
            "t",
            "--messages",
            "5",
        ])
        .expect("ok");
        assert_eq!(options.fetch_size, 1024 * 1024);
        assert_eq!(options.timeout, 10_000);
        assert_eq!(options.reporting_interval, 5_000);
        assert_eq!(options.date_format, "yyyy-MM-dd HH:mm:ss:SSS");
        assert!(parse(&["--bootstrap-server", "h:1", "--topic", "t"]).is_err());
        assert!(random_group().starts_with("perf-consumer-"));
    }

    #[test]
    fn dates_follow_simple_date_format() {
        // Kafka's default pattern, names, 12-hour clock, quotes and zones.
        let time = sample_time();
        let format = |pattern: &str| {
            DateFormat::parse(pattern)
                .expect("valid pattern")
                .format_local(&time, "CET")
        };
        assert_eq!(format("yyyy-MM-dd HH:mm:ss:SSS"), "2024-03-07 15:04:05:009");
        assert_eq!(format("EEE, d MMM yy hh:mm a"), "Thu, 7 Mar 24 03:04 PM");
        assert_eq!(format("EEEE MMMM"), "Thursday March");
        assert_eq!(
            format("'at' HH 'o''clock' z Z XXX"),
            "at 15 o'clock CET +0100 +01:00"
        );
        assert!(matches!(
            DateFormat::parse("yyyy-qq"),
            Err(ConsumerPerfError::DatePattern('q'))
        ));
        assert!(DateFormat::parse("'open").is_err());
    }

    #[test]
    fn summary_uses_kafka_format() {
        // 2 MiB and 1000 messages in 2 s, 500 ms of it joining.
        let format = DateFormat::parse("'t'").expect("valid");
        let consumed = Progress {
            messages: 1000,
            bytes: 2 * 1024 * 1024,
        };
        let line = summary_line(
            &format,
            SystemTime::now(),
            SystemTime::now(),
            Duration::from_secs(2),
            Duration::from_millis(500),
            consumed,
        );
        assert_eq!(
            line,
            "t, t, 2.0000, 1.0000, 1000, 500.0000, 500, 1500, 1.3333, 666.6667"
        );
        assert_eq!(java_fixed4(f64::INFINITY), "Infinity");
    }

    #[test]
    fn rebalance_time_counts_only_joining() {
        // Joined after 300 ms; lost the assignment at 1 s and joined again at 1.2 s.
        let start = Instant::now();
        let mut clock = RebalanceClock::new(start);
        clock.observe(false, start + Duration::from_millis(100));
        clock.observe(true, start + Duration::from_millis(300));
        clock.observe(true, start + Duration::from_millis(900));
        clock.observe(false, start + Duration::from_millis(1000));
        clock.observe(true, start + Duration::from_millis(1200));
        assert_eq!(clock.total, Duration::from_millis(500));
    }
}
