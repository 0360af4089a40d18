//! The controller's metadata log: every change to cluster metadata as records, one per line,
//! each line carrying its own CRC-32C. The lines of one change form one entry of the metadata
//! quorum's Raft log (`controller::quorum`, `raft.log` in `log.dirs/__cluster_metadata-0/`).
//! Logs written before the quorum existed (`metadata.log`, the same lines) are imported once.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::quorum::{QuorumError, QuorumNode, QuorumOptions};
use crate::metadata::TopicId;

pub const METADATA_DIR: &str = "__cluster_metadata-0";
const METADATA_FILE: &str = "metadata.log";

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MetadataRecord {
    CreateTopic {
        name: String,
        id: TopicId,
        partitions: i32,
        replication_factor: i16,
        configs: BTreeMap<String, String>,
    },
    DeleteTopic {
        name: String,
        id: TopicId,
    },
    /// Producer ids below `next_producer_id` have been handed out.
    ProducerIds {
        next_producer_id: i64,
    },
    /// The topic's overrides are now exactly `configs`.
    TopicConfigs {
        name: String,
        id: TopicId,
        configs: BTreeMap<String, String>,
    },
    /// The dynamic configs of broker `broker` (its id as text, "" for every broker's default)
    /// are now exactly `configs`.
    BrokerConfigs {
        broker: String,
        configs: BTreeMap<String, String>,
    },
    /// The topic now has `partitions` partitions (CreatePartitions).
    Partitions {
        name: String,
        id: TopicId,
        partitions: i32,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum MetadataLogError {
    #[error("I/O error on metadata log {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("metadata log {path} is corrupt at line {line}: {reason}")]
    Corrupt {
        path: PathBuf,
        line: usize,
        reason: String,
    },
    #[error("metadata quorum: {0}")]
    Quorum(#[from] QuorumError),
    #[error("metadata log entry {index} cannot be read: {reason}")]
    BadEntry { index: usize, reason: String },
    #[error("the metadata quorum did not commit the change")]
    NotCommitted,
}

/// Ready rounds a quorum of one needs to commit a proposal (persist, then commit).
const COMMIT_ROUNDS_MAX: usize = 8;

/// The metadata log: Raft entries (`controller::quorum`), each holding the records of one
/// change as lines. Today the quorum is this node alone, so an append is committed as soon as it
/// is durable.
pub struct MetadataLog {
    quorum: QuorumNode,
}

impl MetadataLog {
    /// Opens the quorum's log under `log_dir` and returns every committed record. A log written
    /// by an earlier version as `metadata.log` lines is imported once into the quorum's log.
    pub fn open(
        log_dir: &Path,
        node_id: i32,
    ) -> Result<(MetadataLog, Vec<MetadataRecord>), MetadataLogError> {
        let dir = log_dir.join(METADATA_DIR);
        let id = raft_id(node_id);
        let mut log = MetadataLog {
            quorum: QuorumNode::open(&dir, id, &[id], QuorumOptions::default())?,
        };
        let mut records = Vec::new();
        for data in log.drain()? {
            records.extend(decode_entry(&data, records.len())?);
        }
        let legacy = dir.join(METADATA_FILE);
        if records.is_empty() && legacy.exists() {
            let imported = read_legacy(&legacy)?;
            if !imported.is_empty() {
                log.append(&imported)?;
                tracing::info!(
                    "imported {} record(s) of {} into the metadata quorum's log",
                    imported.len(),
                    legacy.display()
                );
            }
            records = imported;
        }
        Ok((log, records))
    }

    /// Appends records as one entry and returns once it is committed (durable on a majority).
    pub fn append(&mut self, records: &[MetadataRecord]) -> Result<(), MetadataLogError> {
        let data: String = records.iter().map(encode_line).collect();
        self.quorum.propose(data.clone().into_bytes())?;
        for _ in 0..COMMIT_ROUNDS_MAX {
            if self
                .quorum
                .ready()?
                .committed
                .iter()
                .any(|committed| committed[..] == *data.as_bytes())
            {
                return Ok(());
            }
        }
        Err(MetadataLogError::NotCommitted)
    }

    /// Every committed entry not yet returned, driving the quorum until it has nothing to do.
    fn drain(&mut self) -> Result<Vec<bytes::Bytes>, MetadataLogError> {
        let mut committed = Vec::new();
        for _ in 0..COMMIT_ROUNDS_MAX {
            let output = self.quorum.ready()?;
            if output.committed.is_empty() && output.messages.is_empty() {
                break;
            }
            committed.extend(output.committed);
        }
        Ok(committed)
    }
}

/// Raft ids start at 1 (0 means none); Kafka node ids start at 0.
fn raft_id(node_id: i32) -> u64 {
    node_id as u64 + 1
}

fn decode_entry(
    data: &[u8],
    records_before: usize,
) -> Result<Vec<MetadataRecord>, MetadataLogError> {
    data.split_inclusive(|&byte| byte == b'\n')
        .enumerate()
        .map(|(line, bytes)| {
            decode_line(bytes).map_err(|reason| MetadataLogError::BadEntry {
                index: records_before + line,
                reason,
            })
        })
        .collect()
}

/// The records of a `metadata.log` written before the quorum existed. A damaged final line (a
/// torn write) is dropped with a warning; damage anywhere else is an error.
fn read_legacy(path: &Path) -> Result<Vec<MetadataRecord>, MetadataLogError> {
    let text = std::fs::read(path).map_err(|source| MetadataLogError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let (records, valid_bytes) = replay(path, &text)?;
    if valid_bytes < text.len() {
        tracing::warn!(
            "metadata log {}: dropping a torn last record of {} bytes",
            path.display(),
            text.len() - valid_bytes
        );
    }
    Ok(records)
}

fn replay(path: &Path, text: &[u8]) -> Result<(Vec<MetadataRecord>, usize), MetadataLogError> {
    let mut records = Vec::new();
    let mut valid_bytes = 0;
    let lines: Vec<&[u8]> = text.split_inclusive(|&byte| byte == b'\n').collect();
    for (number, line) in lines.iter().enumerate() {
        match decode_line(line) {
            Ok(record) => {
                records.push(record);
                valid_bytes += line.len();
            }
            Err(_) if number + 1 == lines.len() => break,
            Err(reason) => {
                return Err(MetadataLogError::Corrupt {
                    path: path.to_path_buf(),
                    line: number + 1,
                    reason,
                })
            }
        }
    }
    Ok((records, valid_bytes))
}

fn encode_line(record: &MetadataRecord) -> String {
    let body = match record {
        MetadataRecord::CreateTopic {
            name,
            id,
            partitions,
            replication_factor,
            configs,
        } => {
            format!(
                "create_topic {name} {} {partitions} {replication_factor} {}",
                id.to_hex(),
                encode_configs(configs)
            )
        }
        MetadataRecord::DeleteTopic { name, id } => format!("delete_topic {name} {}", id.to_hex()),
        MetadataRecord::TopicConfigs { name, id, configs } => {
            format!(
                "topic_configs {name} {} {}",
                id.to_hex(),
                encode_configs(configs)
            )
        }
        MetadataRecord::BrokerConfigs { broker, configs } => {
            // The broker field is never empty on disk: "-" is the cluster default.
            let broker = if broker.is_empty() { "-" } else { broker };
            format!("broker_configs {broker} {}", encode_configs(configs))
        }
        MetadataRecord::Partitions {
            name,
            id,
            partitions,
        } => {
            format!("partitions {name} {} {partitions}", id.to_hex())
        }
        MetadataRecord::ProducerIds { next_producer_id } => {
            format!("producer_ids {next_producer_id}")
        }
    };
    format!("{:08x} {body}\n", crc32c::crc32c(body.as_bytes()))
}

fn decode_line(line: &[u8]) -> Result<MetadataRecord, String> {
    let line = std::str::from_utf8(line).map_err(|_| "not UTF-8".to_string())?;
    let line = line.strip_suffix('\n').ok_or("no line end")?;
    let (crc, body) = line.split_once(' ').ok_or("no checksum")?;
    let crc = u32::from_str_radix(crc, 16).map_err(|_| "bad checksum field")?;
    if crc != crc32c::crc32c(body.as_bytes()) {
        return Err("checksum mismatch".into());
    }
    let fields: Vec<&str> = body.split(' ').collect();
    let id = |text: &str| TopicId::from_hex(text).ok_or_else(|| format!("bad topic id {text}"));
    match fields.as_slice() {
        ["create_topic", name, topic_id, partitions, replication_factor, configs] => {
            Ok(MetadataRecord::CreateTopic {
                name: name.to_string(),
                id: id(topic_id)?,
                partitions: partitions.parse().map_err(|_| "bad partition count")?,
                replication_factor: replication_factor
                    .parse()
                    .map_err(|_| "bad replication factor")?,
                configs: decode_configs(configs),
            })
        }
        ["topic_configs", name, topic_id, configs] => Ok(MetadataRecord::TopicConfigs {
            name: name.to_string(),
            id: id(topic_id)?,
            configs: decode_configs(configs),
        }),
        ["broker_configs", broker, configs] => Ok(MetadataRecord::BrokerConfigs {
            broker: match *broker {
                "-" => String::new(),
                broker => broker.to_string(),
            },
            configs: decode_configs(configs),
        }),
        ["partitions", name, topic_id, partitions] => Ok(MetadataRecord::Partitions {
            name: name.to_string(),
            id: id(topic_id)?,
            partitions: partitions.parse().map_err(|_| "bad partition count")?,
        }),
        ["delete_topic", name, topic_id] => Ok(MetadataRecord::DeleteTopic {
            name: name.to_string(),
            id: id(topic_id)?,
        }),
        ["producer_ids", next] => Ok(MetadataRecord::ProducerIds {
            next_producer_id: next.parse().map_err(|_| "bad producer id")?,
        }),
        _ => Err(format!("unknown record '{body}'")),
    }
}

fn encode_configs(configs: &BTreeMap<String, String>) -> String {
    let pairs: Vec<String> = configs
        .iter()
        .map(|(key, value)| format!("{}={}", escape(key), escape(value)))
        .collect();
    pairs.join(",")
}

fn decode_configs(text: &str) -> BTreeMap<String, String> {
    text.split(',')
        .filter(|pair| !pair.is_empty())
        .filter_map(|pair| pair.split_once('='))
        .map(|(key, value)| (unescape(key), unescape(value)))
        .collect()
}

/// Characters that separate fields, written as `%XX`.
const ESCAPED: &[char] = &['%', ' ', ',', '=', '\n', '\r'];

fn escape(text: &str) -> String {
    text.chars()
        .map(|c| match ESCAPED.contains(&c) {
            true => format!("%{:02X}", c as u32),
            false => c.to_string(),
        })
        .collect()
}

fn unescape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find('%') {
        out.push_str(&rest[..at]);
        let code = rest
            .get(at + 1..at + 3)
            .and_then(|hex| u8::from_str_radix(hex, 16).ok());
        match code {
            Some(code) => {
                out.push(code as char);
                rest = &rest[at + 3..];
            }
            None => {
                out.push('%');
                rest = &rest[at + 1..];
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample_records() -> Vec<MetadataRecord> {
        let id = TopicId([1; 16]);
        vec![
            MetadataRecord::CreateTopic {
                name: "orders".into(),
                id,
                partitions: 6,
                replication_factor: 1,
                configs: BTreeMap::from([
                    ("cleanup.policy".into(), "compact,delete".into()),
                    ("x".into(), "a b=c%".into()),
                ]),
            },
            MetadataRecord::TopicConfigs {
                name: "orders".into(),
                id,
                configs: BTreeMap::from([("retention.ms".into(), "1000".into())]),
            },
            MetadataRecord::BrokerConfigs {
                broker: String::new(),
                configs: BTreeMap::from([("log.retention.ms".into(), "5".into())]),
            },
            MetadataRecord::Partitions {
                name: "orders".into(),
                id,
                partitions: 9,
            },
            MetadataRecord::DeleteTopic {
                name: "orders".into(),
                id,
            },
            MetadataRecord::ProducerIds {
                next_producer_id: 2000,
            },
        ]
    }

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("flink-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    /// Proves every kind of record survives the quorum's log across reopens, in order, for
    /// node id 0 too (raft ids start at 1).
    #[test]
    fn records_survive_reopen() {
        let dir = scratch("metadata-log");
        let records = sample_records();
        {
            let (mut log, replayed) = MetadataLog::open(&dir, 0).unwrap();
            assert!(replayed.is_empty());
            log.append(&records[..2]).unwrap();
            log.append(&records[2..]).unwrap();
        }
        let (mut log, replayed) = MetadataLog::open(&dir, 0).unwrap();
        assert_eq!(replayed, records);
        log.append(&records[..1]).unwrap();
        drop(log);
        let (_, replayed) = MetadataLog::open(&dir, 0).unwrap();
        assert_eq!(replayed.len(), records.len() + 1);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// Proves a `metadata.log` of lines from before the quorum is imported once (its torn last
    /// line dropped), and later changes follow it.
    #[test]
    fn imports_the_line_log_once() {
        let dir = scratch("metadata-import");
        let records = sample_records();
        std::fs::create_dir_all(dir.join(METADATA_DIR)).unwrap();
        let mut text: String = records.iter().map(encode_line).collect();
        text.push_str("1234 create_topic half");
        std::fs::write(dir.join(METADATA_DIR).join(METADATA_FILE), text).unwrap();
        {
            let (mut log, replayed) = MetadataLog::open(&dir, 1).unwrap();
            assert_eq!(replayed, records);
            log.append(&records[5..]).unwrap();
        }
        let (_, replayed) = MetadataLog::open(&dir, 1).unwrap();
        assert_eq!(replayed.len(), records.len() + 1);
        assert_eq!(replayed[..records.len()], records[..]);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
