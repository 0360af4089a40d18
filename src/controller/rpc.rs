//! What brokers and controllers ask the active controller, and its replies, with their binary
//! form for the CONTROLLER listener. The listener speaks Kafka's framing (a 4-byte size, a
//! request header v1 with the sender's cluster id as client id) but two private API keys:
//! `RAFT_MESSAGE` carries one raft-rs message one way, `CONTROLLER_CALL` a `Call` answered by a
//! `Reply`. Decoding checks every length against the bytes present, so a hostile frame costs at
//! most its own size.

use std::collections::BTreeMap;

use bytes::{BufMut, Bytes, BytesMut};

use super::{
    ConfigAlteration, ConfigOp, ConfigResource, NewTopic, PartitionIncrease, QuorumStatus,
    QuotaAlteration, ReplicaStatus, TopicError,
};
use crate::config::Listener;
use crate::metadata::{TopicId, TopicImage};
use crate::security::acl::{AclBinding, AclFilter};

/// One raft-rs `Message` (protobuf); no response.
pub const RAFT_MESSAGE: i16 = 10_000;
/// A `Call`; the response carries its `Reply`.
pub const CONTROLLER_CALL: i16 = 10_001;

#[derive(Clone, Debug, PartialEq)]
pub enum Call {
    CreateTopics {
        topics: Vec<NewTopic>,
        validate_only: bool,
    },
    DeleteTopics {
        names: Vec<String>,
    },
    AlterConfigs {
        alterations: Vec<ConfigAlteration>,
        validate_only: bool,
    },
    CreatePartitions {
        increases: Vec<PartitionIncrease>,
        validate_only: bool,
    },
    AllocateProducerIds,
    DescribeQuorum,
    /// A broker (re)starting: answered with its new broker epoch.
    RegisterBroker {
        broker_id: i32,
        cluster_id: String,
        /// Random per process start: tells a restart from a second process with the same id.
        incarnation: String,
        endpoints: Vec<Listener>,
    },
    /// A broker's session is alive and has applied the metadata log up to `metadata_index`;
    /// `offline_replicas` are its replicas in log directories that failed (KIP-112), which
    /// must lead nothing and leave their ISRs. `want_fence`: the broker is not ready to serve
    /// (its logs are still being recovered) and must stay fenced (Kafka's field).
    BrokerHeartbeat {
        broker_id: i32,
        epoch: i64,
        metadata_index: u64,
        offline_replicas: Vec<(TopicId, i32)>,
        want_fence: bool,
    },
    /// The broker is stopping: fence it now (Kafka's controlled shutdown).
    ControlledShutdown {
        broker_id: i32,
        epoch: i64,
    },
    /// Committed metadata entries after `from_index`, waiting up to `wait_ms` for one when
    /// there is none yet (any controller answers).
    FetchMetadata {
        broker_id: i32,
        from_index: u64,
        wait_ms: u32,
    },
    /// A partition leader's ISR changes (Kafka's AlterPartition), answered change by change.
    AlterPartition {
        broker_id: i32,
        broker_epoch: i64,
        changes: Vec<IsrChange>,
    },
    /// Leader elections (Kafka's ElectLeaders), answered partition by partition: `preferred`
    /// moves leadership to each partition's first replica when it is live and in sync;
    /// otherwise a leaderless partition gets a live replica, in sync if any (unclean).
    ElectLeaders {
        preferred: bool,
        partitions: Vec<(String, i32)>,
    },
    /// New ACLs (CreateAcls), answered binding by binding; one that exists already succeeds.
    CreateAcls {
        bindings: Vec<AclBinding>,
    },
    /// Deletes the ACLs each filter matches (DeleteAcls), answered with them filter by filter.
    DeleteAcls {
        filters: Vec<AclFilter>,
    },
    /// Client quota changes (AlterClientQuotas), answered entity by entity.
    AlterClientQuotas {
        alterations: Vec<QuotaAlteration>,
        validate_only: bool,
    },
}

/// The ISR a partition's leader wants, and the versions it saw when it decided.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IsrChange {
    pub topic: String,
    pub partition: i32,
    pub leader_epoch: i32,
    pub partition_epoch: i32,
    pub isr: Vec<i32>,
}

impl Wire for IsrChange {
    fn put(&self, out: &mut Vec<u8>) {
        self.topic.put(out);
        self.partition.put(out);
        self.leader_epoch.put(out);
        self.partition_epoch.put(out);
        self.isr.put(out);
    }
    fn get(reader: &mut Reader) -> Result<Self, String> {
        Ok(IsrChange {
            topic: String::get(reader)?,
            partition: i32::get(reader)?,
            leader_epoch: i32::get(reader)?,
            partition_epoch: i32::get(reader)?,
            isr: Vec::get(reader)?,
        })
    }
}

#[derive(Clone, Debug, PartialEq)]
pub enum Reply {
    Topics(Vec<Result<TopicImage, TopicError>>),
    Deleted(Vec<Result<TopicId, TopicError>>),
    Done(Vec<Result<(), TopicError>>),
    ProducerIds(std::ops::Range<i64>),
    Quorum(QuorumStatus),
    Registered {
        epoch: i64,
    },
    Heartbeat {
        fenced: bool,
    },
    /// Entries after the asked index, preceded by the latest snapshot when the log no longer
    /// holds the entries right after that index.
    Metadata {
        snapshot: Option<(u64, Bytes)>,
        entries: Vec<(u64, Bytes)>,
        leader: i32,
    },
    /// The whole call failed: not the active controller, a stale session, a foreign cluster.
    Refused(TopicError),
    /// The ACLs each filter of a DeleteAcls deleted.
    AclsDeleted(Vec<Result<Vec<AclBinding>, TopicError>>),
}

impl Call {
    /// Whether the call changes metadata (a broker must see the change before answering).
    pub fn is_write(&self) -> bool {
        matches!(
            self,
            Call::CreateTopics {
                validate_only: false,
                ..
            } | Call::DeleteTopics { .. }
                | Call::AlterConfigs {
                    validate_only: false,
                    ..
                }
                | Call::CreatePartitions {
                    validate_only: false,
                    ..
                }
                | Call::AlterPartition { .. }
                | Call::ElectLeaders { .. }
                | Call::CreateAcls { .. }
                | Call::DeleteAcls { .. }
                | Call::AlterClientQuotas {
                    validate_only: false,
                    ..
                }
        )
    }
}

/// A request frame (without its size prefix): header v1, then the body.
pub fn request_frame(api_key: i16, correlation_id: i32, cluster_id: &str, body: &[u8]) -> BytesMut {
    let mut frame = BytesMut::with_capacity(14 + cluster_id.len() + body.len());
    frame.put_i32(0);
    frame.put_i16(api_key);
    frame.put_i16(0);
    frame.put_i32(correlation_id);
    frame.put_i16(cluster_id.len() as i16);
    frame.put_slice(cluster_id.as_bytes());
    frame.put_slice(body);
    let size = (frame.len() - 4) as i32;
    frame[..4].copy_from_slice(&size.to_be_bytes());
    frame
}

/// A request's header fields and body.
pub struct RequestHeader {
    pub api_key: i16,
    pub correlation_id: i32,
    pub cluster_id: String,
}

pub fn parse_request(frame: &[u8]) -> Result<(RequestHeader, &[u8]), String> {
    let mut reader = Reader(frame);
    let api_key = i16::get(&mut reader)?;
    let _version = i16::get(&mut reader)?;
    let correlation_id = i32::get(&mut reader)?;
    let length = i16::get(&mut reader)?;
    let cluster_id = String::from_utf8(reader.take(length.max(0) as usize)?.to_vec())
        .map_err(|_| "client id is not UTF-8".to_string())?;
    Ok((
        RequestHeader {
            api_key,
            correlation_id,
            cluster_id,
        },
        reader.0,
    ))
}

pub fn encode<T: Wire>(value: &T) -> Vec<u8> {
    let mut out = Vec::new();
    value.put(&mut out);
    out
}

/// Decodes a whole value; trailing bytes are an error.
pub fn decode<T: Wire>(bytes: &[u8]) -> Result<T, String> {
    let mut reader = Reader(bytes);
    let value = T::get(&mut reader)?;
    match reader.0.is_empty() {
        true => Ok(value),
        false => Err(format!("{} bytes after the value", reader.0.len())),
    }
}

pub struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    /// Whether every byte has been read.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn take(&mut self, count: usize) -> Result<&'a [u8], String> {
        if count > self.0.len() {
            return Err(format!("{count} bytes wanted, {} left", self.0.len()));
        }
        let (taken, rest) = self.0.split_at(count);
        self.0 = rest;
        Ok(taken)
    }

    /// A count of items each at least one byte long, checked against the bytes left.
    fn count(&mut self) -> Result<usize, String> {
        let count = u32::get(self)? as usize;
        match count <= self.0.len() {
            true => Ok(count),
            false => Err(format!(
                "{count} items cannot fit in {} bytes",
                self.0.len()
            )),
        }
    }

    fn tag(&mut self) -> Result<u8, String> {
        Ok(self.take(1)?[0])
    }
}

/// A value with a binary form.
pub trait Wire: Sized {
    fn put(&self, out: &mut Vec<u8>);
    fn get(reader: &mut Reader) -> Result<Self, String>;
}

macro_rules! wire_number {
    ($($kind:ty),*) => {$(
        impl Wire for $kind {
            fn put(&self, out: &mut Vec<u8>) {
                out.extend_from_slice(&self.to_be_bytes());
            }
            fn get(reader: &mut Reader) -> Result<Self, String> {
                let bytes = reader.take(std::mem::size_of::<$kind>())?;
                Ok(<$kind>::from_be_bytes(bytes.try_into().expect("sized")))
            }
        }
    )*};
}
wire_number!(u8, i16, i32, u32, i64, u64);

impl Wire for bool {
    fn put(&self, out: &mut Vec<u8>) {
        out.push(u8::from(*self));
    }
    fn get(reader: &mut Reader) -> Result<Self, String> {
        Ok(reader.tag()? != 0)
    }
}

impl Wire for Bytes {
    fn put(&self, out: &mut Vec<u8>) {
        (self.len() as u32).put(out);
        out.extend_from_slice(self);
    }
    fn get(reader: &mut Reader) -> Result<Self, String> {
        let length = u32::get(reader)? as usize;
        Ok(Bytes::copy_from_slice(reader.take(length)?))
    }
}

impl Wire for String {
    fn put(&self, out: &mut Vec<u8>) {
        Bytes::copy_from_slice(self.as_bytes()).put(out);
    }
    fn get(reader: &mut Reader) -> Result<Self, String> {
        String::from_utf8(Bytes::get(reader)?.to_vec()).map_err(|_| "text is not UTF-8".into())
    }
}

impl<T: Wire> Wire for Vec<T> {
    fn put(&self, out: &mut Vec<u8>) {
        (self.len() as u32).put(out);
        for item in self {
            item.put(out);
        }
    }
    fn get(reader: &mut Reader) -> Result<Self, String> {
        let count = reader.count()?;
        (0..count).map(|_| T::get(reader)).collect()
    }
}

impl<T: Wire> Wire for Option<T> {
    fn put(&self, out: &mut Vec<u8>) {
        self.is_some().put(out);
        if let Some(value) = self {
            value.put(out);
        }
    }
    fn get(reader: &mut Reader) -> Result<Self, String> {
        match bool::get(reader)? {
            true => Ok(Some(T::get(reader)?)),
            false => Ok(None),
        }
    }
}

impl<A: Wire, B: Wire> Wire for (A, B) {
    fn put(&self, out: &mut Vec<u8>) {
        self.0.put(out);
        self.1.put(out);
    }
    fn get(reader: &mut Reader) -> Result<Self, String> {
        Ok((A::get(reader)?, B::get(reader)?))
    }
}

impl Wire for BTreeMap<String, String> {
    fn put(&self, out: &mut Vec<u8>) {
        let pairs: Vec<(String, String)> =
            self.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        pairs.put(out);
    }
    fn get(reader: &mut Reader) -> Result<Self, String> {
        Ok(Vec::<(String, String)>::get(reader)?.into_iter().collect())
    }
}

impl<T: Wire, E: Wire> Wire for Result<T, E> {
    fn put(&self, out: &mut Vec<u8>) {
        match self {
            Ok(value) => {
                true.put(out);
                value.put(out);
            }
            Err(error) => {
                false.put(out);
                error.put(out);
            }
        }
    }
    fn get(reader: &mut Reader) -> Result<Self, String> {
        match bool::get(reader)? {
            true => Ok(Ok(T::get(reader)?)),
            false => Ok(Err(E::get(reader)?)),
        }
    }
}

impl Wire for () {
    fn put(&self, _: &mut Vec<u8>) {}
    fn get(_: &mut Reader) -> Result<Self, String> {
        Ok(())
    }
}

impl Wire for TopicId {
    fn put(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.0);
    }
    fn get(reader: &mut Reader) -> Result<Self, String> {
        Ok(TopicId(reader.take(16)?.try_into().expect("16 bytes")))
    }
}

impl Wire for Listener {
    fn put(&self, out: &mut Vec<u8>) {
        self.name.put(out);
        self.host.put(out);
        (self.port as u32).put(out);
    }
    fn get(reader: &mut Reader) -> Result<Self, String> {
        Ok(Listener {
            name: String::get(reader)?,
            host: String::get(reader)?,
            port: u16::try_from(u32::get(reader)?).map_err(|_| "bad port")?,
        })
    }
}

impl Wire for TopicError {
    fn put(&self, out: &mut Vec<u8>) {
        let (tag, text) = match self {
            TopicError::AlreadyExists(text) => (0, text.clone()),
            TopicError::InvalidName(text) => (1, text.clone()),
            TopicError::InvalidPartitions(text) => (2, text.clone()),
            TopicError::InvalidReplicationFactor(text) => (3, text.clone()),
            TopicError::InvalidConfig(text) => (4, text.clone()),
            TopicError::InvalidReplicaAssignment(text) => (5, text.clone()),
            TopicError::InvalidRequest(text) => (6, text.clone()),
            TopicError::UnknownTopic => (7, String::new()),
            TopicError::Storage(text) => (8, text.clone()),
            TopicError::NotController(leader) => (9, leader.to_string()),
            TopicError::InconsistentClusterId(text) => (10, text.clone()),
            TopicError::StaleBrokerEpoch(text) => (11, text.clone()),
            TopicError::Timeout(text) => (12, text.clone()),
            TopicError::DuplicateBrokerRegistration(text) => (13, text.clone()),
            TopicError::FencedLeaderEpoch(text) => (14, text.clone()),
            TopicError::InvalidUpdateVersion(text) => (15, text.clone()),
            TopicError::IneligibleReplica(text) => (16, text.clone()),
            TopicError::NotLeader(text) => (17, text.clone()),
            TopicError::PreferredLeaderNotAvailable(text) => (18, text.clone()),
            TopicError::ElectionNotNeeded => (19, String::new()),
            TopicError::TopicAuthorizationFailed => (20, String::new()),
            TopicError::ClusterAuthorizationFailed => (21, String::new()),
        };
        (tag as u8).put(out);
        text.put(out);
    }
    fn get(reader: &mut Reader) -> Result<Self, String> {
        let tag = reader.tag()?;
        let text = String::get(reader)?;
        Ok(match tag {
            0 => TopicError::AlreadyExists(text),
            1 => TopicError::InvalidName(text),
            2 => TopicError::InvalidPartitions(text),
            3 => TopicError::InvalidReplicationFactor(text),
            4 => TopicError::InvalidConfig(text),
            5 => TopicError::InvalidReplicaAssignment(text),
            6 => TopicError::InvalidRequest(text),
            7 => TopicError::UnknownTopic,
            8 => TopicError::Storage(text),
            9 => TopicError::NotController(text.parse().map_err(|_| "bad leader id")?),
            10 => TopicError::InconsistentClusterId(text),
            11 => TopicError::StaleBrokerEpoch(text),
            12 => TopicError::Timeout(text),
            13 => TopicError::DuplicateBrokerRegistration(text),
            14 => TopicError::FencedLeaderEpoch(text),
            15 => TopicError::InvalidUpdateVersion(text),
            16 => TopicError::IneligibleReplica(text),
            17 => TopicError::NotLeader(text),
            18 => TopicError::PreferredLeaderNotAvailable(text),
            19 => TopicError::ElectionNotNeeded,
            20 => TopicError::TopicAuthorizationFailed,
            21 => TopicError::ClusterAuthorizationFailed,
            tag => return Err(format!("unknown error tag {tag}")),
        })
    }
}

impl Wire for NewTopic {
    fn put(&self, out: &mut Vec<u8>) {
        self.name.put(out);
        self.partitions.put(out);
        self.replication_factor.put(out);
        self.configs.put(out);
        self.assignments.put(out);
    }
    fn get(reader: &mut Reader) -> Result<Self, String> {
        Ok(NewTopic {
            name: String::get(reader)?,
            partitions: i32::get(reader)?,
            replication_factor: i16::get(reader)?,
            configs: <BTreeMap<String, String> as Wire>::get(reader)?,
            assignments: Option::get(reader)?,
        })
    }
}

impl Wire for ConfigAlteration {
    fn put(&self, out: &mut Vec<u8>) {
        match &self.resource {
            ConfigResource::Topic(name) => (0u8, name.clone()).put(out),
            ConfigResource::Broker(id) => (1u8, id.clone()).put(out),
            ConfigResource::User(user) => (2u8, user.clone()).put(out),
        }
        self.replace.put(out);
        let ops: Vec<(u8, (String, String))> = self
            .ops
            .iter()
            .map(|op| match op {
                ConfigOp::Set(key, value) => (0, (key.clone(), value.clone())),
                ConfigOp::Delete(key) => (1, (key.clone(), String::new())),
                ConfigOp::Append(key, value) => (2, (key.clone(), value.clone())),
                ConfigOp::Subtract(key, value) => (3, (key.clone(), value.clone())),
            })
            .collect();
        ops.put(out);
    }
    fn get(reader: &mut Reader) -> Result<Self, String> {
        let resource = match <(u8, String)>::get(reader)? {
            (0, name) => ConfigResource::Topic(name),
            (1, id) => ConfigResource::Broker(id),
            (2, user) => ConfigResource::User(user),
            (tag, _) => return Err(format!("unknown resource tag {tag}")),
        };
        let replace = bool::get(reader)?;
        let ops = Vec::<(u8, (String, String))>::get(reader)?
            .into_iter()
            .map(|(tag, (key, value))| match tag {
                0 => Ok(ConfigOp::Set(key, value)),
                1 => Ok(ConfigOp::Delete(key)),
                2 => Ok(ConfigOp::Append(key, value)),
                3 => Ok(ConfigOp::Subtract(key, value)),
                tag => Err(format!("unknown config operation {tag}")),
            })
            .collect::<Result<_, _>>()?;
        Ok(ConfigAlteration {
            resource,
            replace,
            ops,
        })
    }
}

impl Wire for PartitionIncrease {
    fn put(&self, out: &mut Vec<u8>) {
        self.name.put(out);
        self.count.put(out);
        self.assignments.put(out);
    }
    fn get(reader: &mut Reader) -> Result<Self, String> {
        Ok(PartitionIncrease {
            name: String::get(reader)?,
            count: i32::get(reader)?,
            assignments: Option::get(reader)?,
        })
    }
}

impl Wire for ReplicaStatus {
    fn put(&self, out: &mut Vec<u8>) {
        self.replica_id.put(out);
        self.log_end_offset.put(out);
        self.last_fetch_timestamp.put(out);
        self.last_caught_up_timestamp.put(out);
    }
    fn get(reader: &mut Reader) -> Result<Self, String> {
        Ok(ReplicaStatus {
            replica_id: i32::get(reader)?,
            log_end_offset: i64::get(reader)?,
            last_fetch_timestamp: i64::get(reader)?,
            last_caught_up_timestamp: i64::get(reader)?,
        })
    }
}

impl Wire for QuorumStatus {
    fn put(&self, out: &mut Vec<u8>) {
        self.leader_id.put(out);
        self.leader_epoch.put(out);
        self.high_watermark.put(out);
        self.voters.put(out);
        self.observers.put(out);
    }
    fn get(reader: &mut Reader) -> Result<Self, String> {
        Ok(QuorumStatus {
            leader_id: i32::get(reader)?,
            leader_epoch: i32::get(reader)?,
            high_watermark: i64::get(reader)?,
            voters: Vec::get(reader)?,
            observers: Vec::get(reader)?,
        })
    }
}

impl Wire for Call {
    fn put(&self, out: &mut Vec<u8>) {
        match self {
            Call::CreateTopics {
                topics,
                validate_only,
            } => {
                0u8.put(out);
                topics.put(out);
                validate_only.put(out);
            }
            Call::DeleteTopics { names } => {
                1u8.put(out);
                names.put(out);
            }
            Call::AlterConfigs {
                alterations,
                validate_only,
            } => {
                2u8.put(out);
                alterations.put(out);
                validate_only.put(out);
            }
            Call::CreatePartitions {
                increases,
                validate_only,
            } => {
                3u8.put(out);
                increases.put(out);
                validate_only.put(out);
            }
            Call::AllocateProducerIds => 4u8.put(out),
            Call::DescribeQuorum => 5u8.put(out),
            Call::RegisterBroker {
                broker_id,
                cluster_id,
                incarnation,
                endpoints,
            } => {
                6u8.put(out);
                broker_id.put(out);
                cluster_id.put(out);
                incarnation.put(out);
                endpoints.put(out);
            }
            Call::BrokerHeartbeat {
                broker_id,
                epoch,
                metadata_index,
                offline_replicas,
                want_fence,
            } => {
                7u8.put(out);
                broker_id.put(out);
                epoch.put(out);
                metadata_index.put(out);
                offline_replicas.put(out);
                want_fence.put(out);
            }
            Call::ControlledShutdown { broker_id, epoch } => {
                9u8.put(out);
                broker_id.put(out);
                epoch.put(out);
            }
            Call::FetchMetadata {
                broker_id,
                from_index,
                wait_ms,
            } => {
                8u8.put(out);
                broker_id.put(out);
                from_index.put(out);
                wait_ms.put(out);
            }
            Call::AlterPartition {
                broker_id,
                broker_epoch,
                changes,
            } => {
                10u8.put(out);
                broker_id.put(out);
                broker_epoch.put(out);
                changes.put(out);
            }
            Call::ElectLeaders {
                preferred,
                partitions,
            } => {
                11u8.put(out);
                preferred.put(out);
                partitions.put(out);
            }
            Call::CreateAcls { bindings } => {
                12u8.put(out);
                bindings.put(out);
            }
            Call::DeleteAcls { filters } => {
                13u8.put(out);
                filters.put(out);
            }
            Call::AlterClientQuotas {
                alterations,
                validate_only,
            } => {
                14u8.put(out);
                alterations.put(out);
                validate_only.put(out);
            }
        }
    }
    fn get(reader: &mut Reader) -> Result<Self, String> {
        Ok(match reader.tag()? {
            0 => Call::CreateTopics {
                topics: Vec::get(reader)?,
                validate_only: bool::get(reader)?,
            },
            1 => Call::DeleteTopics {
                names: Vec::get(reader)?,
            },
            2 => Call::AlterConfigs {
                alterations: Vec::get(reader)?,
                validate_only: bool::get(reader)?,
            },
            3 => Call::CreatePartitions {
                increases: Vec::get(reader)?,
                validate_only: bool::get(reader)?,
            },
            4 => Call::AllocateProducerIds,
            5 => Call::DescribeQuorum,
            6 => Call::RegisterBroker {
                broker_id: i32::get(reader)?,
                cluster_id: String::get(reader)?,
                incarnation: String::get(reader)?,
                endpoints: Vec::get(reader)?,
            },
            7 => Call::BrokerHeartbeat {
                broker_id: i32::get(reader)?,
                epoch: i64::get(reader)?,
                metadata_index: u64::get(reader)?,
                offline_replicas: Vec::get(reader)?,
                want_fence: bool::get(reader)?,
            },
            8 => Call::FetchMetadata {
                broker_id: i32::get(reader)?,
                from_index: u64::get(reader)?,
                wait_ms: u32::get(reader)?,
            },
            9 => Call::ControlledShutdown {
                broker_id: i32::get(reader)?,
                epoch: i64::get(reader)?,
            },
            10 => Call::AlterPartition {
                broker_id: i32::get(reader)?,
                broker_epoch: i64::get(reader)?,
                changes: Vec::get(reader)?,
            },
            11 => Call::ElectLeaders {
                preferred: bool::get(reader)?,
                partitions: Vec::get(reader)?,
            },
            12 => Call::CreateAcls {
                bindings: Vec::get(reader)?,
            },
            13 => Call::DeleteAcls {
                filters: Vec::get(reader)?,
            },
            14 => Call::AlterClientQuotas {
                alterations: Vec::get(reader)?,
                validate_only: bool::get(reader)?,
            },
            tag => return Err(format!("unknown call {tag}")),
        })
    }
}

impl Wire for Reply {
    fn put(&self, out: &mut Vec<u8>) {
        match self {
            Reply::Topics(results) => {
                0u8.put(out);
                results.put(out);
            }
            Reply::Deleted(results) => {
                1u8.put(out);
                results.put(out);
            }
            Reply::Done(results) => {
                2u8.put(out);
                results.put(out);
            }
            Reply::ProducerIds(range) => {
                3u8.put(out);
                (range.start, range.end).put(out);
            }
            Reply::Quorum(status) => {
                4u8.put(out);
                status.put(out);
            }
            Reply::Registered { epoch } => {
                5u8.put(out);
                epoch.put(out);
            }
            Reply::Heartbeat { fenced } => {
                6u8.put(out);
                fenced.put(out);
            }
            Reply::Metadata {
                snapshot,
                entries,
                leader,
            } => {
                7u8.put(out);
                snapshot.put(out);
                entries.put(out);
                leader.put(out);
            }
            Reply::Refused(error) => {
                8u8.put(out);
                error.put(out);
            }
            Reply::AclsDeleted(results) => {
                9u8.put(out);
                results.put(out);
            }
        }
    }
    fn get(reader: &mut Reader) -> Result<Self, String> {
        Ok(match reader.tag()? {
            0 => Reply::Topics(Vec::get(reader)?),
            1 => Reply::Deleted(Vec::get(reader)?),
            2 => Reply::Done(Vec::get(reader)?),
            3 => {
                let (start, end) = <(i64, i64)>::get(reader)?;
                Reply::ProducerIds(start..end)
            }
            4 => Reply::Quorum(QuorumStatus::get(reader)?),
            5 => Reply::Registered {
                epoch: i64::get(reader)?,
            },
            6 => Reply::Heartbeat {
                fenced: bool::get(reader)?,
            },
            7 => Reply::Metadata {
                snapshot: Option::get(reader)?,
                entries: Vec::get(reader)?,
                leader: i32::get(reader)?,
            },
            8 => Reply::Refused(TopicError::get(reader)?),
            9 => Reply::AclsDeleted(Vec::get(reader)?),
            tag => return Err(format!("unknown reply {tag}")),
        })
    }
}

#[cfg(test)]
#[path = "rpc_tests.rs"]
mod tests;
