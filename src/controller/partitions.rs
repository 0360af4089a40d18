//! The controller's side of partition leadership: leaders' ISR changes (AlterPartition),
//! leader elections asked for (ElectLeaders), and the periodic return of leadership to
//! preferred replicas (`auto.leader.rebalance.enable`). Each becomes a `partition_change` record;
//! `image::apply` makes it so on every node.

use std::collections::BTreeMap;
use std::time::Instant;

use super::metadata_log::MetadataRecord;
use super::{rpc, Controller, TopicError};

/// Kafka's `leader.imbalance.per.broker.percentage` default: a broker not leading more than
/// this share of the partitions it is the preferred leader of gets them back.
const LEADER_IMBALANCE_PERCENT: usize = 10;

impl Controller {
    /// The record of a leader's ISR change, after Kafka's AlterPartition checks: the sender's
    /// session and leadership are current, the change was made against the partition's
    /// current version, and the new ISR holds the leader and only live, assigned replicas.
    pub(super) fn isr_record(
        &self,
        broker_id: i32,
        broker_epoch: i64,
        change: &rpc::IsrChange,
    ) -> Result<MetadataRecord, TopicError> {
        let name = format!("{}-{}", change.topic, change.partition);
        match self.image.broker(broker_id) {
            Some(broker) if broker.epoch == broker_epoch && !broker.fenced => {}
            _ => {
                return Err(TopicError::StaleBrokerEpoch(format!(
                    "Broker {broker_id} with epoch {broker_epoch} is not a live broker"
                )))
            }
        }
        let topic = self
            .image
            .topic(&change.topic)
            .ok_or(TopicError::UnknownTopic)?;
        let partition = topic
            .partitions
            .get(change.partition as usize)
            .filter(|_| change.partition >= 0)
            .ok_or(TopicError::UnknownTopic)?;
        if partition.leader != broker_id {
            return Err(TopicError::NotLeader(format!(
                "Broker {broker_id} does not lead {name}"
            )));
        }
        if change.leader_epoch != partition.leader_epoch {
            return Err(TopicError::FencedLeaderEpoch(format!(
                "{name} is at leader epoch {}, not {}",
                partition.leader_epoch, change.leader_epoch
            )));
        }
        if change.partition_epoch != partition.partition_epoch {
            return Err(TopicError::InvalidUpdateVersion(format!(
                "{name} is at partition epoch {}, not {}",
                partition.partition_epoch, change.partition_epoch
            )));
        }
        let ineligible = change.isr.iter().find(|replica| {
            !partition.replicas.contains(replica)
                || (!partition.isr.contains(replica)
                    && !self
                        .image
                        .is_eligible(**replica, topic.id, change.partition))
        });
        if let Some(replica) = ineligible {
            return Err(TopicError::IneligibleReplica(format!(
                "Replica {replica} of {name} is not assigned to it or not live"
            )));
        }
        if !change.isr.contains(&broker_id) {
            return Err(TopicError::InvalidRequest(format!(
                "The ISR of {name} must hold its leader {broker_id}"
            )));
        }
        Ok(MetadataRecord::PartitionChange {
            name: change.topic.clone(),
            id: topic.id,
            partition: change.partition,
            leader: broker_id,
            isr: change.isr.clone(),
        })
    }

    /// The record of one leader election. Preferred: the first replica, when it is live and
    /// in sync and does not lead already. Otherwise (unclean), for a leaderless partition only:
    /// a live in-sync replica, or else any live replica, which becomes the whole ISR.
    pub(super) fn election_record(
        &self,
        preferred: bool,
        name: &str,
        index: i32,
    ) -> Result<MetadataRecord, TopicError> {
        let topic = self.image.topic(name).ok_or(TopicError::UnknownTopic)?;
        let partition = topic
            .partitions
            .get(index as usize)
            .filter(|_| index >= 0)
            .ok_or(TopicError::UnknownTopic)?;
        let change = |leader: i32, isr: Vec<i32>| MetadataRecord::PartitionChange {
            name: name.to_string(),
            id: topic.id,
            partition: index,
            leader,
            isr,
        };
        if preferred {
            let first = partition.replicas[0];
            if partition.leader == first {
                return Err(TopicError::ElectionNotNeeded);
            }
            if !self.image.is_eligible(first, topic.id, index) || !partition.isr.contains(&first) {
                return Err(TopicError::PreferredLeaderNotAvailable(format!(
                    "Failed to elect leader for partition {name}-{index} under strategy PreferredReplicaPartitionLeaderElectionStrategy"
                )));
            }
            return Ok(change(first, partition.isr.clone()));
        }
        if partition.leader != -1 {
            return Err(TopicError::ElectionNotNeeded);
        }
        let live = |replica: &&i32| self.image.is_eligible(**replica, topic.id, index);
        if let Some(leader) = partition.isr.iter().find(live) {
            return Ok(change(*leader, partition.isr.clone()));
        }
        match partition.replicas.iter().find(live) {
            Some(leader) => {
                tracing::warn!(
                    "unclean leader election: {name}-{index} is led by out-of-sync replica {leader}; records acknowledged by the ISR {:?} may be lost",
                    partition.isr
                );
                Ok(change(*leader, vec![*leader]))
            }
            None => Err(TopicError::PreferredLeaderNotAvailable(format!(
                "Failed to elect leader for partition {name}-{index} under strategy UncleanLeaderElectionStrategy"
            ))),
        }
    }

    /// Kafka's automatic preferred leader election: every
    /// `leader.imbalance.check.interval.seconds`, each broker that leads fewer than
    /// 90% of the partitions it is the preferred (first) replica of gets back those where
    /// it is live and in sync.
    pub(super) async fn balance_leaders(&mut self) {
        let interval =
            std::time::Duration::from_secs(self.config.leader_imbalance_check_interval_seconds);
        if !self.config.auto_leader_rebalance_enable
            || !self.driver.is_leader()
            || self.balance_checked.elapsed() < interval
        {
            return;
        }
        self.balance_checked = Instant::now();
        // (preferred, led elsewhere) partitions per preferred broker.
        let mut by_broker: BTreeMap<i32, (usize, Vec<(String, i32)>)> = BTreeMap::new();
        for topic in self.image.topics.values() {
            for partition in &topic.partitions {
                let preferred = partition.replicas[0];
                let entry = by_broker.entry(preferred).or_default();
                entry.0 += 1;
                if partition.leader != preferred {
                    entry.1.push((topic.name.clone(), partition.index));
                }
            }
        }
        let mut records = Vec::new();
        for (total, elsewhere) in by_broker.into_values() {
            if elsewhere.len() * 100 <= total * LEADER_IMBALANCE_PERCENT {
                continue;
            }
            records.extend(
                elsewhere
                    .iter()
                    .filter_map(|(name, index)| self.election_record(true, name, *index).ok()),
            );
        }
        if records.is_empty() {
            return;
        }
        tracing::info!(
            "moving the leadership of {} partition(s) back to their preferred replicas",
            records.len()
        );
        if let Err(error) = self.commit(&records).await {
            tracing::warn!("preferred leader election failed: {error}");
        }
    }
}
