//! The controller's metadata log: every change to topics, one record per line, each line
//! carrying its own CRC-32C so a torn last line is detected and dropped on replay. It lives in
//! `log.dirs/__cluster_metadata-0/`. The Raft quorum will carry these same records.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

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
}

pub struct MetadataLog {
    path: PathBuf,
    file: File,
}

impl MetadataLog {
    /// Opens the log under `log_dir`, replaying it. A damaged final line (a torn write) is cut
    /// off with a warning; damage anywhere else is an error.
    pub fn open(log_dir: &Path) -> Result<(MetadataLog, Vec<MetadataRecord>), MetadataLogError> {
        let dir = log_dir.join(METADATA_DIR);
        let path = dir.join(METADATA_FILE);
        let io = |source| MetadataLogError::Io {
            path: path.clone(),
            source,
        };
        std::fs::create_dir_all(&dir).map_err(io)?;
        let text = match std::fs::read(&path) {
            Ok(bytes) => bytes,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(error) => return Err(io(error)),
        };
        let (records, valid_bytes) = replay(&path, &text)?;
        if valid_bytes < text.len() {
            tracing::warn!(
                "metadata log {}: dropping a torn last record of {} bytes",
                path.display(),
                text.len() - valid_bytes
            );
        }
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(io)?;
        file.set_len(valid_bytes as u64).map_err(io)?;
        Ok((MetadataLog { path, file }, records))
    }

    /// Appends records and makes them durable before returning.
    pub fn append(&mut self, records: &[MetadataRecord]) -> Result<(), MetadataLogError> {
        let text: String = records.iter().map(encode_line).collect();
        let io = |source| MetadataLogError::Io {
            path: self.path.clone(),
            source,
        };
        self.file.write_all(text.as_bytes()).map_err(io)?;
        self.file.sync_data().map_err(io)
    }
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

    /// Proves records survive a round trip and a torn last line is dropped, not fatal.
    #[test]
    fn replays_and_drops_torn_tail() {
        let dir = std::env::temp_dir().join(format!("flink-metadata-log-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let create = MetadataRecord::CreateTopic {
            name: "orders".into(),
            id: TopicId([1; 16]),
            partitions: 6,
            replication_factor: 1,
            configs: BTreeMap::from([
                ("cleanup.policy".into(), "compact,delete".into()),
                ("x".into(), "a b=c%".into()),
            ]),
        };
        let delete = MetadataRecord::DeleteTopic {
            name: "orders".into(),
            id: TopicId([1; 16]),
        };
        let producer_ids = MetadataRecord::ProducerIds {
            next_producer_id: 2000,
        };
        let topic_configs = MetadataRecord::TopicConfigs {
            name: "orders".into(),
            id: TopicId([1; 16]),
            configs: BTreeMap::from([("retention.ms".into(), "1000".into())]),
        };
        let default_configs = MetadataRecord::BrokerConfigs {
            broker: String::new(),
            configs: BTreeMap::from([("log.retention.ms".into(), "5".into())]),
        };
        let partitions = MetadataRecord::Partitions {
            name: "orders".into(),
            id: TopicId([1; 16]),
            partitions: 9,
        };
        {
            let (mut log, records) = MetadataLog::open(&dir).unwrap();
            assert!(records.is_empty());
            log.append(&[
                create.clone(),
                topic_configs.clone(),
                default_configs.clone(),
                partitions.clone(),
                delete.clone(),
                producer_ids.clone(),
            ])
            .unwrap();
        }
        let path = dir.join(METADATA_DIR).join(METADATA_FILE);
        let mut file = OpenOptions::new().append(true).open(&path).unwrap();
        file.write_all(b"1234 create_topic half").unwrap();
        let (_, records) = MetadataLog::open(&dir).unwrap();
        assert_eq!(
            records,
            vec![
                create,
                topic_configs,
                default_configs,
                partitions,
                delete,
                producer_ids
            ]
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
