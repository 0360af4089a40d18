//! The broker's read-only view of cluster metadata: brokers, topics, partitions and their
//! leaders. The controller is its only writer; it builds a new immutable `MetadataImage` for every
//! change and hands each shard an `Arc` of it. Shards never mutate an image.

pub mod configs;
pub mod uuid;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use crate::config::Listener;

/// A topic's 128-bit id, printed as Kafka prints `Uuid`: URL-safe base64 without padding.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TopicId(pub [u8; 16]);

impl TopicId {
    pub fn to_hex(self) -> String {
        self.0.iter().map(|byte| format!("{byte:02x}")).collect()
    }

    pub fn from_hex(text: &str) -> Option<TopicId> {
        if text.len() != 32 {
            return None;
        }
        let mut bytes = [0u8; 16];
        for (index, byte) in bytes.iter_mut().enumerate() {
            *byte = u8::from_str_radix(text.get(index * 2..index * 2 + 2)?, 16).ok()?;
        }
        Some(TopicId(bytes))
    }

    /// A 64-bit digest of the id, for spreading partitions over shards.
    pub fn digest(self) -> u64 {
        let (high, low) = self.0.split_at(8);
        u64::from_be_bytes(high.try_into().expect("eight bytes"))
            ^ u64::from_be_bytes(low.try_into().expect("eight bytes")).rotate_left(29)
    }
}

/// A registered broker: its id, advertised endpoints, and session.
#[derive(Clone, Debug)]
pub struct BrokerImage {
    pub node_id: i32,
    pub endpoints: Vec<Listener>,
    /// Given by the controller at each registration; heartbeats must carry it.
    pub epoch: i64,
    /// A fenced broker leads nothing and is not shown to clients.
    pub fenced: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PartitionImage {
    pub index: i32,
    pub leader: i32,
    pub leader_epoch: i32,
    /// Grows with every change of the partition (leader or ISR): AlterPartition names the
    /// version it changes, so a leader's stale ISR change is refused.
    pub partition_epoch: i32,
    pub replicas: Vec<i32>,
    /// The in-sync replicas: every one holds every record below the leader's high watermark.
    pub isr: Vec<i32>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TopicImage {
    pub name: String,
    pub id: TopicId,
    pub partitions: Vec<PartitionImage>,
    /// Topic-level configuration overrides (`--config`).
    pub configs: BTreeMap<String, String>,
}

impl TopicImage {
    pub fn is_internal(&self) -> bool {
        self.name.starts_with("__")
    }

    pub fn replication_factor(&self) -> usize {
        self.partitions
            .first()
            .map_or(0, |partition| partition.replicas.len())
    }
}

/// One consistent version of the cluster's metadata.
#[derive(Clone, Debug, Default)]
pub struct MetadataImage {
    /// Grows by one for every change the controller applies.
    pub epoch: u64,
    pub cluster_id: String,
    pub controller_id: i32,
    pub brokers: Vec<BrokerImage>,
    pub topics: BTreeMap<String, Arc<TopicImage>>,
    /// Topic names by id (Fetch v13+, Metadata and DeleteTopics by id).
    pub topic_names: BTreeMap<TopicId, String>,
    /// Broker configs set while running (IncrementalAlterConfigs), by broker id as text; ""
    /// holds the cluster-wide defaults.
    pub broker_configs: BTreeMap<String, BTreeMap<String, String>>,
    /// Users' entries by user name: their SCRAM credentials (`SCRAM-SHA-256` →
    /// `salt=...,stored_key=...,server_key=...,iterations=N`).
    pub user_configs: BTreeMap<String, BTreeMap<String, String>>,
    /// Every ACL (CreateAcls), by resource pattern.
    pub acls: crate::security::acl::Acls,
    /// Every client quota (AlterClientQuotas), by entity.
    pub client_quotas: crate::quota::ClientQuotas,
    /// Producer ids below this have been handed out.
    pub next_producer_id: i64,
    /// The metadata log index this image includes (the Raft index of its last entry).
    pub metadata_index: u64,
    /// Replicas (topic id, partition) each broker reported in a failed log directory during
    /// its current session (KIP-112): they lead nothing and are out of their ISRs.
    pub offline_replicas: BTreeMap<i32, BTreeSet<(TopicId, i32)>>,
}

impl MetadataImage {
    pub fn topic(&self, name: &str) -> Option<&Arc<TopicImage>> {
        self.topics.get(name)
    }

    pub fn topic_by_id(&self, id: TopicId) -> Option<&Arc<TopicImage>> {
        self.topics.get(self.topic_names.get(&id)?)
    }

    /// Registered brokers that are not fenced: those clients are shown.
    pub fn live_brokers(&self) -> impl Iterator<Item = &BrokerImage> {
        self.brokers.iter().filter(|broker| !broker.fenced)
    }

    pub fn broker(&self, node_id: i32) -> Option<&BrokerImage> {
        self.brokers.iter().find(|broker| broker.node_id == node_id)
    }

    pub fn is_live(&self, node_id: i32) -> bool {
        self.broker(node_id).is_some_and(|broker| !broker.fenced)
    }

    /// Whether broker `node_id`'s replica of the partition is in a failed log directory.
    pub fn is_replica_offline(&self, node_id: i32, topic: TopicId, partition: i32) -> bool {
        self.offline_replicas
            .get(&node_id)
            .is_some_and(|offline| offline.contains(&(topic, partition)))
    }

    /// Whether broker `node_id`'s replica of the partition may lead or join the ISR: its
    /// broker is live and its log directory serves.
    pub fn is_eligible(&self, node_id: i32, topic: TopicId, partition: i32) -> bool {
        self.is_live(node_id) && !self.is_replica_offline(node_id, topic, partition)
    }

    /// The replicas of the partition in failed log directories (Metadata's offline_replicas).
    pub fn offline_replicas_of(&self, topic: TopicId, partition: &PartitionImage) -> Vec<i32> {
        partition
            .replicas
            .iter()
            .copied()
            .filter(|replica| self.is_replica_offline(*replica, topic, partition.index))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Proves topic ids round-trip through their hex form.
    #[test]
    fn topic_id_hex_round_trip() {
        let id = TopicId([0xab; 16]);
        assert_eq!(TopicId::from_hex(&id.to_hex()), Some(id));
        assert_eq!(TopicId::from_hex("zz"), None);
    }
}
