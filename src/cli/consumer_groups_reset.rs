//! `flink consumer-groups --reset-offsets`: which partitions to reset (`--topic T`, `--topic
//! T:0,1`, `--all-topics`), the new offset of each under one scenario (`--to-earliest`,
//! `--to-latest`, `--to-offset`, `--shift-by`, `--to-datetime`), clamped into the log's range as
//! Kafka's GroupOffsetsResetter does, and the datetime parsing `--to-datetime` needs.

use std::collections::BTreeMap;

use crate::client::admin::{list_offsets, EARLIEST_TIMESTAMP, LATEST_TIMESTAMP};
use crate::client::cluster::Client;
use crate::client::error::{ClientError, KafkaError};
use crate::client::group::TopicPartition;

/// How the new offsets are chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scenario {
    Earliest,
    Latest,
    Offset(i64),
    ShiftBy(i64),
    /// Milliseconds since the epoch.
    Timestamp(i64),
}

/// Problems with what to reset; each message is Kafka's.
#[derive(Debug, thiserror::Error)]
pub enum ResetError {
    #[error("{0}")]
    Client(#[from] ClientError),
    #[error("Invalid topic arg '{0}', expected topic name and partitions")]
    BadTopicArgument(String),
    #[error("Invalid partition '{partition}' specified in topic arg '{argument}''")]
    BadPartition { partition: String, argument: String },
    #[error("Error parsing datetime '{0}': expected yyyy-MM-ddTHH:mm:SS.sss with an optional zone (Z, +hh:mm)")]
    BadDatetime(String),
    #[error("Cannot shift offset for partition {0} since there is no current committed offset")]
    NothingToShift(String),
    #[error("Error getting offset of topic partition {partition}: {error}")]
    Offset {
        partition: String,
        error: KafkaError,
    },
    #[error("Topic '{0}' does not exist")]
    UnknownTopic(String),
}

/// The partitions named by `--topic` arguments: `T` means every partition of T.
pub fn partitions_to_reset(
    client: &mut Client,
    topic_arguments: &[String],
) -> Result<Vec<TopicPartition>, ResetError> {
    let mut partitions = Vec::new();
    let mut whole_topics = Vec::new();
    for argument in topic_arguments {
        match argument.contains(':') {
            true => partitions.extend(parse_topic_partitions(argument)?),
            false => whole_topics.push(argument.clone()),
        }
    }
    if !whole_topics.is_empty() {
        let metadata = client.metadata(Some(&whole_topics), false)?;
        for topic in &whole_topics {
            let found = metadata
                .topic(topic)
                .filter(|found| found.error.is_none())
                .ok_or_else(|| ResetError::UnknownTopic(topic.clone()))?;
            partitions.extend(
                found
                    .partitions
                    .iter()
                    .map(|partition| TopicPartition::new(topic, partition.partition)),
            );
        }
    }
    partitions.sort();
    partitions.dedup();
    Ok(partitions)
}

/// `T:0,1,2` as Kafka's `parseTopicsWithPartitions` reads it.
pub fn parse_topic_partitions(argument: &str) -> Result<Vec<TopicPartition>, ResetError> {
    let parts: Vec<&str> = argument.split(':').collect();
    let [topic, partitions] = parts.as_slice() else {
        return Err(ResetError::BadTopicArgument(argument.to_string()));
    };
    partitions
        .split(',')
        .map(|partition| {
            partition
                .trim()
                .parse::<i32>()
                .map(|index| TopicPartition::new(topic, index))
                .map_err(|_| ResetError::BadPartition {
                    partition: partition.to_string(),
                    argument: argument.to_string(),
                })
        })
        .collect()
}

/// The new offset of every partition under `scenario`; `committed` is the group's current
/// commits (for `--shift-by`). Warnings (clamping, empty partitions) go to `warnings`.
pub fn plan(
    client: &mut Client,
    partitions: &[TopicPartition],
    scenario: Scenario,
    committed: &BTreeMap<TopicPartition, i64>,
    warnings: &mut Vec<String>,
) -> Result<BTreeMap<TopicPartition, i64>, ResetError> {
    let requested = match scenario {
        Scenario::Earliest => return offsets_at(client, partitions, EARLIEST_TIMESTAMP),
        Scenario::Latest => return offsets_at(client, partitions, LATEST_TIMESTAMP),
        Scenario::Timestamp(timestamp) => {
            return offsets_at_time(client, partitions, timestamp, warnings)
        }
        Scenario::Offset(offset) => partitions
            .iter()
            .map(|partition| (partition.clone(), offset))
            .collect(),
        Scenario::ShiftBy(shift) => shifted(partitions, shift, committed)?,
    };
    clamp(client, requested, warnings)
}

fn shifted(
    partitions: &[TopicPartition],
    shift: i64,
    committed: &BTreeMap<TopicPartition, i64>,
) -> Result<BTreeMap<TopicPartition, i64>, ResetError> {
    partitions
        .iter()
        .map(|partition| match committed.get(partition) {
            Some(offset) => Ok((partition.clone(), offset.saturating_add(shift))),
            None => Err(ResetError::NothingToShift(display(partition))),
        })
        .collect()
}

/// Keeps each requested offset within [log start, log end], warning as Kafka does.
fn clamp(
    client: &mut Client,
    requested: BTreeMap<TopicPartition, i64>,
    warnings: &mut Vec<String>,
) -> Result<BTreeMap<TopicPartition, i64>, ResetError> {
    let partitions: Vec<TopicPartition> = requested.keys().cloned().collect();
    let starts = offsets_at(client, &partitions, EARLIEST_TIMESTAMP)?;
    let ends = offsets_at(client, &partitions, LATEST_TIMESTAMP)?;
    let mut clamped = BTreeMap::new();
    for (partition, offset) in requested {
        let (start, end) = (starts[&partition], ends[&partition]);
        let name = display(&partition);
        let new_offset = if offset > end {
            warnings.push(format!("New offset ({offset}) is higher than latest offset for topic partition {name}. Value will be set to {end}."));
            end
        } else if offset < start {
            warnings.push(format!("New offset ({offset}) is lower than earliest offset for topic partition {name}. Value will be set to {start}."));
            start
        } else {
            offset
        };
        clamped.insert(partition, new_offset);
    }
    Ok(clamped)
}

fn offsets_at(
    client: &mut Client,
    partitions: &[TopicPartition],
    timestamp: i64,
) -> Result<BTreeMap<TopicPartition, i64>, ResetError> {
    let results = list_offsets(client, partitions, timestamp)?;
    let mut offsets = BTreeMap::new();
    for partition in partitions {
        match results.get(partition) {
            Some(Ok(offset)) => offsets.insert(partition.clone(), *offset),
            Some(Err(error)) => {
                return Err(ResetError::Offset {
                    partition: display(partition),
                    error: error.clone(),
                })
            }
            None => {
                return Err(ResetError::Offset {
                    partition: display(partition),
                    error: KafkaError::new(3),
                })
            }
        };
    }
    Ok(offsets)
}

/// Offsets at a timestamp; partitions with no record that late fall back to the log end.
fn offsets_at_time(
    client: &mut Client,
    partitions: &[TopicPartition],
    timestamp: i64,
    warnings: &mut Vec<String>,
) -> Result<BTreeMap<TopicPartition, i64>, ResetError> {
    let mut offsets = offsets_at(client, partitions, timestamp)?;
    let empty: Vec<TopicPartition> = offsets
        .iter()
        .filter(|(_, offset)| **offset < 0)
        .map(|(partition, _)| partition.clone())
        .collect();
    for partition in &empty {
        warnings.push(format!(
            "Partition {} from topic {} is empty. Falling back to latest known offset.",
            partition.partition, partition.topic
        ));
    }
    if !empty.is_empty() {
        offsets.extend(offsets_at(client, &empty, LATEST_TIMESTAMP)?);
    }
    Ok(offsets)
}

fn display(partition: &TopicPartition) -> String {
    format!("{}-{}", partition.topic, partition.partition)
}

/// Parses `yyyy-MM-ddTHH:mm:SS[.sss][zone]` into milliseconds since the epoch; without a zone
/// the time is UTC, with `Z`, `+hh:mm`, `-hh:mm` or `+hhmm` it is shifted to UTC.
pub fn parse_datetime(text: &str) -> Result<i64, ResetError> {
    let bad = || ResetError::BadDatetime(text.to_string());
    let (date, time) = text.split_once('T').ok_or_else(bad)?;
    let date: Vec<&str> = date.split('-').collect();
    let [year, month, day] = date.as_slice() else {
        return Err(bad());
    };
    let (year, month, day) = (number(year, 4)?, number(month, 2)?, number(day, 2)?);
    let zone_at = time.find(['Z', '+', '-']).unwrap_or(time.len());
    let (clock, zone) = time.split_at(zone_at);
    let (clock, fraction) = clock.split_once('.').unwrap_or((clock, "0"));
    let clock: Vec<&str> = clock.split(':').collect();
    let [hour, minute, second] = clock.as_slice() else {
        return Err(bad());
    };
    let (hour, minute, second) = (number(hour, 2)?, number(minute, 2)?, number(second, 2)?);
    let valid = (1..=12).contains(&month)
        && (1..=31).contains(&day)
        && hour < 24
        && minute < 60
        && second < 60;
    if !valid || fraction.is_empty() || !fraction.bytes().all(|byte| byte.is_ascii_digit()) {
        return Err(bad());
    }
    let milliseconds: i64 = format!("{fraction:0<3}")[..3].parse().map_err(|_| bad())?;
    let seconds = days_from_civil(year, month, day) * 86_400 + hour * 3_600 + minute * 60 + second;
    Ok((seconds - zone_offset_seconds(zone).ok_or_else(bad)?) * 1_000 + milliseconds)
}

fn number(text: &str, digits: usize) -> Result<i64, ResetError> {
    match text.len() == digits && text.bytes().all(|byte| byte.is_ascii_digit()) {
        true => text
            .parse()
            .map_err(|_| ResetError::BadDatetime(text.to_string())),
        false => Err(ResetError::BadDatetime(text.to_string())),
    }
}

/// Seconds east of UTC for "", "Z", "+hh:mm", "-hh:mm", "+hhmm" or "+hh".
fn zone_offset_seconds(zone: &str) -> Option<i64> {
    if zone.is_empty() || zone == "Z" {
        return Some(0);
    }
    let sign = match zone.as_bytes()[0] {
        b'+' => 1,
        b'-' => -1,
        _ => return None,
    };
    let digits: String = zone[1..]
        .chars()
        .filter(|character| *character != ':')
        .collect();
    if !(digits.len() == 2 || digits.len() == 4)
        || !digits.bytes().all(|byte| byte.is_ascii_digit())
    {
        return None;
    }
    let hours: i64 = digits[..2].parse().ok()?;
    let minutes: i64 = match digits.len() {
        4 => digits[2..].parse().ok()?,
        _ => 0,
    };
    Some(sign * (hours * 3_600 + minutes * 60))
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let month_index = (month + 9) % 12;
    let day_of_year = (153 * month_index + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn datetimes_parse_as_utc_unless_a_zone_is_given() {
        // Kafka's format, read as UTC, with zones shifting to UTC and bad input rejected.
        assert_eq!(parse_datetime("1970-01-01T00:00:00.000").ok(), Some(0));
        assert_eq!(
            parse_datetime("2024-02-29T12:34:56.789").ok(),
            Some(1_709_210_096_789)
        );
        assert_eq!(
            parse_datetime("2024-02-29T14:34:56.789+02:00").ok(),
            Some(1_709_210_096_789)
        );
        assert_eq!(
            parse_datetime("2024-02-29T12:34:56.789Z").ok(),
            Some(1_709_210_096_789)
        );
        assert_eq!(
            parse_datetime("2024-02-29T10:04:56.789-0230").ok(),
            Some(1_709_210_096_789)
        );
        assert_eq!(
            parse_datetime("2024-02-29T12:34:56").ok(),
            Some(1_709_210_096_000)
        );
        assert!(parse_datetime("2024-02-29 12:34:56.789").is_err());
        assert!(parse_datetime("2024-13-01T00:00:00.000").is_err());
        assert!(parse_datetime("2024-01-01T00:00:00.000+2").is_err());
    }

    #[test]
    fn topic_partition_arguments_follow_kafka() {
        // T:0,2 names two partitions; anything else is Kafka's error.
        let partitions = parse_topic_partitions("t:0,2").expect("valid");
        assert_eq!(
            partitions,
            vec![TopicPartition::new("t", 0), TopicPartition::new("t", 2)]
        );
        assert!(matches!(
            parse_topic_partitions("t:x"),
            Err(ResetError::BadPartition { .. })
        ));
        assert!(matches!(
            parse_topic_partitions("t:0:1"),
            Err(ResetError::BadTopicArgument(_))
        ));
    }

    #[test]
    fn shifting_needs_a_committed_offset() {
        // --shift-by moves from the committed offset and refuses partitions without one.
        let committed = BTreeMap::from([(TopicPartition::new("t", 0), 5)]);
        let shifted_offsets =
            shifted(&[TopicPartition::new("t", 0)], -2, &committed).expect("committed");
        assert_eq!(shifted_offsets[&TopicPartition::new("t", 0)], 3);
        assert!(shifted(&[TopicPartition::new("t", 1)], 1, &committed).is_err());
    }
}
