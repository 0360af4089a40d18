//! The controller's metadata log: every change to cluster metadata as records, one per line,
//! each line carrying its own CRC-32C. The lines of one change form one entry of the metadata
//! quorum's Raft log (`controller::quorum`, `raft.log` in `log.dirs/__cluster_metadata-0/`).
//! Logs written before the quorum existed (`metadata.log`, the same lines) are imported once.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::quorum::{Committed, QuorumError, QuorumNode, QuorumOptions};
use crate::metadata::TopicId;
use crate::quota::QuotaEntity;
use crate::security::acl::{
    AclBinding, AclEntry, Operation, PatternType, Permission, ResourcePattern, ResourceType,
};

pub const METADATA_DIR: &str = "__cluster_metadata-0";
const METADATA_FILE: &str = "metadata.log";

#[derive(Clone, Debug, PartialEq)]
pub enum MetadataRecord {
    CreateTopic {
        name: String,
        id: TopicId,
        partitions: i32,
        replication_factor: i16,
        configs: BTreeMap<String, String>,
        /// Replicas of each partition, the preferred leader first; empty in logs written before
        /// brokers registered, where every replica is on the controller's own node.
        assignments: Vec<Vec<i32>>,
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
    /// User `user`'s entries (its SCRAM credentials, as Kafka kept them in user configs) are
    /// now exactly `configs`.
    UserConfigs {
        user: String,
        configs: BTreeMap<String, String>,
    },
    /// The topic now has `partitions` partitions (CreatePartitions), the new ones placed as
    /// `assignments` says (empty: on the controller's own node, as in older logs).
    Partitions {
        name: String,
        id: TopicId,
        partitions: i32,
        assignments: Vec<Vec<i32>>,
    },
    /// Broker `id` (re)started with these advertised endpoints; it is fenced until it has
    /// recovered its logs and caught up.
    RegisterBroker {
        id: i32,
        epoch: i64,
        endpoints: Vec<crate::config::Listener>,
    },
    /// Broker `id`'s session (`epoch`) ended: it leads nothing until unfenced.
    FenceBroker {
        id: i32,
        epoch: i64,
    },
    /// Broker `id` caught up with the metadata log and may lead again.
    UnfenceBroker {
        id: i32,
        epoch: i64,
    },
    /// Broker `id`'s replicas in failed log directories during session `epoch` are now
    /// exactly `replicas` (topic id, partition; KIP-112): they lead nothing and leave their
    /// ISRs until the broker registers again.
    ReplicasOffline {
        id: i32,
        epoch: i64,
        replicas: Vec<(TopicId, i32)>,
    },
    /// Partition `partition` of the topic is now led by `leader` with in-sync replicas `isr`
    /// (an ISR change from its leader, or a leader election).
    PartitionChange {
        name: String,
        id: TopicId,
        partition: i32,
        leader: i32,
        isr: Vec<i32>,
    },
    /// An ACL was created (Kafka's `AccessControlEntryRecord`).
    CreateAcl(AclBinding),
    /// An ACL was deleted (Kafka's `RemoveAccessControlEntryRecord`).
    RemoveAcl(AclBinding),
    /// Quota `key` of `entity` is now `value`, or removed (Kafka's `ClientQuotaRecord`).
    ClientQuota {
        entity: QuotaEntity,
        key: String,
        value: Option<f64>,
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

/// The metadata log on disk: Raft entries (`controller::quorum`), each holding the records of
/// one change as lines. `open` replays it; `driver::Driver` then runs the quorum.
pub struct MetadataLog {
    pub quorum: QuorumNode,
    /// The records of the bootstrap file beside the log (`bootstrap`), which the first active
    /// controller commits into a log that holds nothing yet.
    pub bootstrap: Option<Vec<MetadataRecord>>,
}

impl MetadataLog {
    /// Opens the quorum's log under `log_dir` (created with `voters`, as node ids, the first
    /// time) with `log_dir`'s bootstrap file, and returns every entry known committed. A log
    /// written by an earlier version as `metadata.log` lines is imported once, when this node is
    /// the only voter.
    pub fn open(
        log_dir: &Path,
        node_id: i32,
        voters: &[i32],
    ) -> Result<(MetadataLog, Vec<Committed>), MetadataLogError> {
        let dir = log_dir.join(METADATA_DIR);
        let id = raft_id(node_id);
        let voters: Vec<u64> = voters.iter().copied().map(raft_id).collect();
        let mut log = MetadataLog {
            quorum: QuorumNode::open(&dir, id, &voters, QuorumOptions::default())?,
            bootstrap: super::bootstrap::read(log_dir)?,
        };
        let mut entries = log.drain()?;
        let legacy = dir.join(METADATA_FILE);
        if entries.is_empty() && voters == [id] && legacy.exists() {
            let imported = read_legacy(&legacy)?;
            if !imported.is_empty() {
                entries.push(log.append(&imported)?);
                tracing::info!(
                    "imported {} record(s) of {} into the metadata quorum's log",
                    imported.len(),
                    legacy.display()
                );
            }
        }
        Ok((log, entries))
    }

    /// Appends records as one entry and returns it once committed. Only a quorum of one commits
    /// without messages, so only it may call this (at start-up and in tests).
    pub fn append(&mut self, records: &[MetadataRecord]) -> Result<Committed, MetadataLogError> {
        let data = encode_entry(records);
        self.quorum.propose(data.clone())?;
        for _ in 0..COMMIT_ROUNDS_MAX {
            if let Some(committed) = self
                .quorum
                .ready()?
                .committed
                .into_iter()
                .find(|committed| committed.data[..] == data[..])
            {
                return Ok(committed);
            }
        }
        Err(MetadataLogError::NotCommitted)
    }

    /// Every committed entry not yet returned, driving the quorum until it has nothing to do.
    fn drain(&mut self) -> Result<Vec<Committed>, MetadataLogError> {
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

/// The data of one entry holding `records`.
pub fn encode_entry(records: &[MetadataRecord]) -> Vec<u8> {
    records
        .iter()
        .map(encode_line)
        .collect::<String>()
        .into_bytes()
}

/// The records of committed entries, in order.
pub fn records_of(entries: &[Committed]) -> Result<Vec<MetadataRecord>, MetadataLogError> {
    let mut records = Vec::new();
    for entry in entries {
        let decoded = decode_entry(&entry.data, records.len())?;
        records.extend(decoded);
    }
    Ok(records)
}

/// Raft ids start at 1 (0 means none); Kafka node ids start at 0.
pub fn raft_id(node_id: i32) -> u64 {
    node_id as u64 + 1
}

/// The node id of a raft id.
pub fn node_id(raft_id: u64) -> i32 {
    raft_id as i32 - 1
}

pub fn decode_entry(
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
            assignments,
        } => {
            format!(
                "create_topic {name} {} {partitions} {replication_factor} {}{}",
                id.to_hex(),
                encode_configs(configs),
                encode_assignments(assignments)
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
        MetadataRecord::UserConfigs { user, configs } => {
            format!("user_configs {} {}", escape(user), encode_configs(configs))
        }
        MetadataRecord::Partitions {
            name,
            id,
            partitions,
            assignments,
        } => {
            format!(
                "partitions {name} {} {partitions}{}",
                id.to_hex(),
                encode_assignments(assignments)
            )
        }
        MetadataRecord::RegisterBroker {
            id,
            epoch,
            endpoints,
        } => {
            let endpoints: Vec<String> = endpoints
                .iter()
                .map(|listener| format!("{}://{}:{}", listener.name, listener.host, listener.port))
                .collect();
            format!(
                "register_broker {id} {epoch} {}",
                escape(&endpoints.join(","))
            )
        }
        MetadataRecord::FenceBroker { id, epoch } => format!("fence_broker {id} {epoch}"),
        MetadataRecord::UnfenceBroker { id, epoch } => format!("unfence_broker {id} {epoch}"),
        MetadataRecord::PartitionChange {
            name,
            id,
            partition,
            leader,
            isr,
        } => {
            let isr: Vec<String> = isr.iter().map(i32::to_string).collect();
            format!(
                "partition_change {name} {} {partition} {leader} {}",
                id.to_hex(),
                isr.join(":")
            )
        }
        MetadataRecord::ProducerIds { next_producer_id } => {
            format!("producer_ids {next_producer_id}")
        }
        MetadataRecord::ReplicasOffline {
            id,
            epoch,
            replicas,
        } => {
            let replicas: Vec<String> = replicas
                .iter()
                .map(|(topic, partition)| format!("{}:{partition}", topic.to_hex()))
                .collect();
            let replicas = match replicas.is_empty() {
                true => "-".to_string(),
                false => replicas.join(","),
            };
            format!("replicas_offline {id} {epoch} {replicas}")
        }
        MetadataRecord::CreateAcl(binding) => format!("acl {}", encode_acl(binding)),
        MetadataRecord::RemoveAcl(binding) => format!("remove_acl {}", encode_acl(binding)),
        MetadataRecord::ClientQuota { entity, key, value } => {
            let parts: Vec<String> = entity
                .parts()
                .iter()
                .map(|(kind, name)| match name {
                    Some(name) => format!("{kind}:{}", escape(name)),
                    None => kind.clone(),
                })
                .collect();
            let value = value.map_or("-".to_string(), |value| value.to_string());
            format!("client_quota {} {} {value}", parts.join(","), escape(key))
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
        ["create_topic", name, topic_id, partitions, replication_factor, configs, rest @ ..]
            if rest.len() <= 1 =>
        {
            Ok(MetadataRecord::CreateTopic {
                name: name.to_string(),
                id: id(topic_id)?,
                partitions: partitions.parse().map_err(|_| "bad partition count")?,
                replication_factor: replication_factor
                    .parse()
                    .map_err(|_| "bad replication factor")?,
                configs: decode_configs(configs),
                assignments: decode_assignments(rest.first().copied())?,
            })
        }
        ["topic_configs", name, topic_id, configs] => Ok(MetadataRecord::TopicConfigs {
            name: name.to_string(),
            id: id(topic_id)?,
            configs: decode_configs(configs),
        }),
        ["user_configs", user, configs] => Ok(MetadataRecord::UserConfigs {
            user: unescape(user),
            configs: decode_configs(configs),
        }),
        ["broker_configs", broker, configs] => Ok(MetadataRecord::BrokerConfigs {
            broker: match *broker {
                "-" => String::new(),
                broker => broker.to_string(),
            },
            configs: decode_configs(configs),
        }),
        ["partitions", name, topic_id, partitions, rest @ ..] if rest.len() <= 1 => {
            Ok(MetadataRecord::Partitions {
                name: name.to_string(),
                id: id(topic_id)?,
                partitions: partitions.parse().map_err(|_| "bad partition count")?,
                assignments: decode_assignments(rest.first().copied())?,
            })
        }
        ["register_broker", broker, epoch, endpoints] => Ok(MetadataRecord::RegisterBroker {
            id: broker.parse().map_err(|_| "bad broker id")?,
            epoch: epoch.parse().map_err(|_| "bad broker epoch")?,
            endpoints: crate::config::listeners::parse_listeners("endpoints", &unescape(endpoints))
                .map_err(|error| error.to_string())?,
        }),
        ["fence_broker", broker, epoch] => Ok(MetadataRecord::FenceBroker {
            id: broker.parse().map_err(|_| "bad broker id")?,
            epoch: epoch.parse().map_err(|_| "bad broker epoch")?,
        }),
        ["unfence_broker", broker, epoch] => Ok(MetadataRecord::UnfenceBroker {
            id: broker.parse().map_err(|_| "bad broker id")?,
            epoch: epoch.parse().map_err(|_| "bad broker epoch")?,
        }),
        ["partition_change", name, topic_id, partition, leader, isr] => {
            Ok(MetadataRecord::PartitionChange {
                name: name.to_string(),
                id: id(topic_id)?,
                partition: partition.parse().map_err(|_| "bad partition")?,
                leader: leader.parse().map_err(|_| "bad leader")?,
                isr: isr
                    .split(':')
                    .filter(|member| !member.is_empty())
                    .map(|member| member.parse().map_err(|_| "bad ISR member".to_string()))
                    .collect::<Result<_, _>>()?,
            })
        }
        ["delete_topic", name, topic_id] => Ok(MetadataRecord::DeleteTopic {
            name: name.to_string(),
            id: id(topic_id)?,
        }),
        ["replicas_offline", broker, epoch, replicas] => Ok(MetadataRecord::ReplicasOffline {
            id: broker.parse().map_err(|_| "bad broker id")?,
            epoch: epoch.parse().map_err(|_| "bad broker epoch")?,
            replicas: match *replicas {
                "-" => Vec::new(),
                replicas => replicas
                    .split(',')
                    .map(|replica| {
                        let (topic, partition) = replica
                            .split_once(':')
                            .ok_or_else(|| format!("bad replica {replica}"))?;
                        Ok((
                            id(topic)?,
                            partition
                                .parse()
                                .map_err(|_| format!("bad replica {replica}"))?,
                        ))
                    })
                    .collect::<Result<_, String>>()?,
            },
        }),
        ["producer_ids", next] => Ok(MetadataRecord::ProducerIds {
            next_producer_id: next.parse().map_err(|_| "bad producer id")?,
        }),
        ["acl", acl @ ..] => Ok(MetadataRecord::CreateAcl(decode_acl(acl)?)),
        ["remove_acl", acl @ ..] => Ok(MetadataRecord::RemoveAcl(decode_acl(acl)?)),
        ["client_quota", entity, key, value] => {
            let parts = entity
                .split(',')
                .map(|part| match part.split_once(':') {
                    Some((kind, name)) => (kind.to_string(), Some(unescape(name))),
                    None => (part.to_string(), None),
                })
                .collect();
            Ok(MetadataRecord::ClientQuota {
                entity: QuotaEntity::new(parts).map_err(|error| error.to_string())?,
                key: unescape(key),
                value: match *value {
                    "-" => None,
                    value => Some(value.parse().map_err(|_| format!("bad quota {value}"))?),
                },
            })
        }
        _ => Err(format!("unknown record '{body}'")),
    }
}

/// `TOPIC LITERAL orders User:alice * WRITE ALLOW`, the free-form fields escaped.
fn encode_acl(binding: &AclBinding) -> String {
    let (pattern, entry) = (&binding.pattern, &binding.entry);
    format!(
        "{} {} {} {} {} {} {}",
        pattern.resource_type,
        pattern.pattern_type,
        escape(&pattern.name),
        escape(&entry.principal),
        escape(&entry.host),
        entry.operation,
        entry.permission
    )
}

fn decode_acl(fields: &[&str]) -> Result<AclBinding, String> {
    let [resource_type, pattern_type, name, principal, host, operation, permission] = fields else {
        return Err(format!("an ACL has 7 fields, not {}", fields.len()));
    };
    let named = |what: &str, text: &str| format!("bad {what} '{text}'");
    Ok(AclBinding {
        pattern: ResourcePattern {
            resource_type: ResourceType::parse(resource_type)
                .ok_or_else(|| named("resource type", resource_type))?,
            pattern_type: PatternType::parse(pattern_type)
                .ok_or_else(|| named("pattern type", pattern_type))?,
            name: unescape(name),
        },
        entry: AclEntry {
            principal: unescape(principal),
            host: unescape(host),
            operation: Operation::parse(operation).ok_or_else(|| named("operation", operation))?,
            permission: Permission::parse(permission)
                .ok_or_else(|| named("permission", permission))?,
        },
    })
}

/// ` 4:5:6;5:6:4` (a leading space), or nothing for no assignments.
fn encode_assignments(assignments: &[Vec<i32>]) -> String {
    if assignments.is_empty() {
        return String::new();
    }
    let partitions: Vec<String> = assignments
        .iter()
        .map(|replicas| {
            let ids: Vec<String> = replicas.iter().map(i32::to_string).collect();
            ids.join(":")
        })
        .collect();
    format!(" {}", partitions.join(";"))
}

fn decode_assignments(text: Option<&str>) -> Result<Vec<Vec<i32>>, String> {
    let Some(text) = text else {
        return Ok(Vec::new());
    };
    text.split(';')
        .map(|replicas| {
            replicas
                .split(':')
                .map(|id| id.parse().map_err(|_| format!("bad replica '{id}'")))
                .collect()
        })
        .collect()
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
                assignments: vec![vec![4, 5], vec![5, 6]],
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
            MetadataRecord::UserConfigs {
                user: "a user, with = signs".into(),
                configs: BTreeMap::from([(
                    "SCRAM-SHA-512".into(),
                    "salt=c2FsdA==,stored_key=a2V5,server_key=a2V5,iterations=4096".into(),
                )]),
            },
            MetadataRecord::Partitions {
                name: "orders".into(),
                id,
                partitions: 9,
                assignments: Vec::new(),
            },
            MetadataRecord::RegisterBroker {
                id: 4,
                epoch: 7,
                endpoints: crate::config::listeners::parse_listeners(
                    "listeners",
                    "PLAINTEXT://:19092,PLAINTEXT_HOST://localhost:29092",
                )
                .unwrap(),
            },
            MetadataRecord::FenceBroker { id: 4, epoch: 7 },
            MetadataRecord::UnfenceBroker { id: 4, epoch: 7 },
            MetadataRecord::ReplicasOffline {
                id: 4,
                epoch: 7,
                replicas: vec![(TopicId([3; 16]), 0), (TopicId([9; 16]), 12)],
            },
            MetadataRecord::ReplicasOffline {
                id: 4,
                epoch: 8,
                replicas: Vec::new(),
            },
            MetadataRecord::PartitionChange {
                name: "t".into(),
                id: TopicId([9; 16]),
                partition: 2,
                leader: 5,
                isr: vec![5, 6],
            },
            MetadataRecord::DeleteTopic {
                name: "orders".into(),
                id,
            },
            MetadataRecord::ProducerIds {
                next_producer_id: 2000,
            },
            MetadataRecord::CreateAcl(AclBinding {
                pattern: ResourcePattern {
                    resource_type: ResourceType::Topic,
                    pattern_type: PatternType::Prefixed,
                    name: "a name, with = %".into(),
                },
                entry: AclEntry {
                    principal: "User:CN=a b,O=c".into(),
                    host: "*".into(),
                    operation: Operation::DescribeConfigs,
                    permission: Permission::Deny,
                },
            }),
            MetadataRecord::ClientQuota {
                entity: QuotaEntity::new(vec![
                    ("user".into(), Some("a, b:c".into())),
                    ("client-id".into(), None),
                ])
                .unwrap(),
                key: "producer_byte_rate".into(),
                value: Some(1048576.0),
            },
            MetadataRecord::ClientQuota {
                entity: QuotaEntity::new(vec![("ip".into(), Some("10.0.0.1".into()))]).unwrap(),
                key: "connection_creation_rate".into(),
                value: None,
            },
            MetadataRecord::RemoveAcl(AclBinding {
                pattern: ResourcePattern {
                    resource_type: ResourceType::Cluster,
                    pattern_type: PatternType::Literal,
                    name: "kafka-cluster".into(),
                },
                entry: AclEntry {
                    principal: "User:*".into(),
                    host: "10.0.0.1".into(),
                    operation: Operation::All,
                    permission: Permission::Allow,
                },
            }),
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
            let (mut log, replayed) = MetadataLog::open(&dir, 0, &[0]).unwrap();
            assert!(replayed.is_empty());
            log.append(&records[..2]).unwrap();
            log.append(&records[2..]).unwrap();
        }
        let (mut log, replayed) = MetadataLog::open(&dir, 0, &[0]).unwrap();
        assert_eq!(records_of(&replayed).unwrap(), records);
        log.append(&records[..1]).unwrap();
        drop(log);
        let (_, replayed) = MetadataLog::open(&dir, 0, &[0]).unwrap();
        assert_eq!(records_of(&replayed).unwrap().len(), records.len() + 1);
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
            let (mut log, replayed) = MetadataLog::open(&dir, 1, &[1]).unwrap();
            assert_eq!(records_of(&replayed).unwrap(), records);
            log.append(&records[records.len() - 1..]).unwrap();
        }
        let (_, replayed) = MetadataLog::open(&dir, 1, &[1]).unwrap();
        let replayed = records_of(&replayed).unwrap();
        assert_eq!(replayed.len(), records.len() + 1);
        assert_eq!(replayed[..records.len()], records[..]);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
