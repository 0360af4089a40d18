//! How metadata records change the image, and where new replicas go. Every node applies the
//! same committed records in the same order with these functions, so every node's image agrees:
//! leader changes that follow from a broker being fenced or unfenced are worked out here from
//! the record, not written as records of their own.

use std::collections::BTreeSet;
use std::sync::Arc;

use super::metadata_log::MetadataRecord;
use crate::metadata::{BrokerImage, MetadataImage, PartitionImage, TopicId, TopicImage};

/// Applies one record to an image; the only place metadata changes. `node_id` places the
/// replicas of records written before brokers registered (a single combined node's own id).
pub fn apply(image: &mut MetadataImage, record: &MetadataRecord, node_id: i32) {
    match record {
        MetadataRecord::CreateTopic { name, .. } => {
            let topic = topic_image(image, record, node_id).expect("a create record");
            image.topic_names.insert(topic.id, name.clone());
            image.topics.insert(name.clone(), Arc::new(topic));
        }
        MetadataRecord::DeleteTopic { name, id } => {
            if image.topics.get(name).is_some_and(|topic| topic.id == *id) {
                image.topics.remove(name);
                image.topic_names.remove(id);
            }
        }
        MetadataRecord::ProducerIds { next_producer_id } => {
            image.next_producer_id = *next_producer_id;
        }
        MetadataRecord::TopicConfigs { name, id, configs } => {
            if let Some(topic) = image.topics.get_mut(name).filter(|topic| topic.id == *id) {
                Arc::make_mut(topic).configs = configs.clone();
            }
        }
        MetadataRecord::BrokerConfigs { broker, configs } => {
            match configs.is_empty() {
                true => image.broker_configs.remove(broker),
                false => image.broker_configs.insert(broker.clone(), configs.clone()),
            };
        }
        MetadataRecord::UserConfigs { user, configs } => {
            match configs.is_empty() {
                true => image.user_configs.remove(user),
                false => image.user_configs.insert(user.clone(), configs.clone()),
            };
        }
        MetadataRecord::CreateAcl(binding) => {
            image.acls.insert(binding.clone());
        }
        MetadataRecord::RemoveAcl(binding) => {
            image.acls.remove(binding);
        }
        MetadataRecord::ClientQuota { entity, key, value } => {
            image.client_quotas.set(entity, key, *value);
        }
        MetadataRecord::Partitions {
            name,
            id,
            partitions,
            assignments,
        } => {
            let live: Vec<i32> = image.live_brokers().map(|broker| broker.node_id).collect();
            if let Some(topic) = image.topics.get_mut(name).filter(|topic| topic.id == *id) {
                let topic = Arc::make_mut(topic);
                let first = topic.partitions.len() as i32;
                for index in first..*partitions {
                    let replicas = assignments
                        .get((index - first) as usize)
                        .cloned()
                        .unwrap_or_else(|| vec![node_id]);
                    topic.partitions.push(new_partition(index, replicas, &live));
                }
            }
        }
        MetadataRecord::RegisterBroker {
            id,
            epoch,
            endpoints,
        } => {
            let broker = BrokerImage {
                node_id: *id,
                endpoints: endpoints.clone(),
                epoch: *epoch,
                fenced: true,
            };
            match image.brokers.iter_mut().find(|known| known.node_id == *id) {
                Some(known) => *known = broker,
                None => {
                    image.brokers.push(broker);
                    image.brokers.sort_by_key(|broker| broker.node_id);
                }
            }
            // A new session looks at its log directories afresh and reports what still fails.
            image.offline_replicas.remove(id);
            move_leadership_from(image, *id);
        }
        MetadataRecord::FenceBroker { id, epoch } => {
            if let Some(broker) = session(image, *id, *epoch) {
                broker.fenced = true;
                move_leadership_from(image, *id);
            }
        }
        MetadataRecord::UnfenceBroker { id, epoch } => {
            if let Some(broker) = session(image, *id, *epoch) {
                broker.fenced = false;
                restore_leadership_to(image, *id);
            }
        }
        MetadataRecord::ReplicasOffline {
            id,
            epoch,
            replicas,
        } => {
            if session(image, *id, *epoch).is_none() {
                return;
            }
            let offline: BTreeSet<(TopicId, i32)> = replicas.iter().copied().collect();
            match offline.is_empty() {
                true => image.offline_replicas.remove(id),
                false => image.offline_replicas.insert(*id, offline.clone()),
            };
            move_offline_replicas(image, *id, &offline);
        }
        MetadataRecord::PartitionChange {
            name,
            id,
            partition,
            leader,
            isr,
        } => {
            let Some(topic) = image.topics.get_mut(name).filter(|topic| topic.id == *id) else {
                return;
            };
            if let Some(changed) = Arc::make_mut(topic).partitions.get_mut(*partition as usize) {
                if changed.leader != *leader {
                    changed.leader_epoch += 1;
                }
                changed.leader = *leader;
                changed.isr = isr.clone();
                changed.partition_epoch += 1;
            }
        }
    }
}

/// The broker `id` if `epoch` is its current session.
fn session(image: &mut MetadataImage, id: i32, epoch: i64) -> Option<&mut BrokerImage> {
    image
        .brokers
        .iter_mut()
        .find(|broker| broker.node_id == id && broker.epoch == epoch)
}

/// A fenced broker leaves the ISR of every partition where another replica remains (the last
/// member stays: it alone may hold the latest acknowledged writes), and every partition it led
/// gets the next live member of its ISR as leader, or none (-1) when no in-sync replica is
/// live: unclean election is off.
fn move_leadership_from(image: &mut MetadataImage, id: i32) {
    let eligible = Eligibility::of(image);
    change_partitions(image, |topic, partition| {
        leave(partition, topic, id, &eligible)
    });
}

/// Replica `id` leaves the partition's ISR unless it is the last member, and its leadership
/// goes to the next eligible ISR member, or to none (-1).
fn leave(partition: &mut PartitionImage, topic: TopicId, id: i32, eligible: &Eligibility) {
    if partition.isr.len() > 1 {
        partition.isr.retain(|replica| *replica != id);
    }
    if partition.leader == id {
        partition.leader = partition
            .isr
            .iter()
            .copied()
            .find(|replica| *replica != id && eligible.can_lead(*replica, topic, partition))
            .unwrap_or(-1);
    }
}

/// Broker `id`'s replicas in `offline` (in failed log directories) are treated as its fencing
/// treats all of them: out of the ISR where another member remains, and their leadership given
/// to the next eligible in-sync replica, or to none.
fn move_offline_replicas(image: &mut MetadataImage, id: i32, offline: &BTreeSet<(TopicId, i32)>) {
    let eligible = Eligibility::of(image);
    change_partitions(image, |topic, partition| {
        if offline.contains(&(topic, partition.index)) {
            leave(partition, topic, id, &eligible);
        }
    });
}

/// Every leaderless partition with `id` in its ISR is led by `id` again, unless its replica
/// there is offline.
fn restore_leadership_to(image: &mut MetadataImage, id: i32) {
    let eligible = Eligibility::of(image);
    change_partitions(image, |topic, partition| {
        if partition.leader == -1
            && partition.isr.contains(&id)
            && eligible.can_lead(id, topic, partition)
        {
            partition.leader = id;
        }
    });
}

/// Which replicas may lead, taken from the image before a change is applied.
struct Eligibility {
    live: Vec<i32>,
    offline: std::collections::BTreeMap<i32, BTreeSet<(TopicId, i32)>>,
}

impl Eligibility {
    fn of(image: &MetadataImage) -> Eligibility {
        Eligibility {
            live: image.live_brokers().map(|broker| broker.node_id).collect(),
            offline: image.offline_replicas.clone(),
        }
    }

    fn can_lead(&self, replica: i32, topic: TopicId, partition: &PartitionImage) -> bool {
        self.live.contains(&replica)
            && !self
                .offline
                .get(&replica)
                .is_some_and(|offline| offline.contains(&(topic, partition.index)))
    }
}

/// Applies `change` (given each partition's topic id) to every partition. Each it changed gets
/// a new partition epoch, and a new leader epoch if its leader changed.
fn change_partitions(
    image: &mut MetadataImage,
    mut change: impl FnMut(TopicId, &mut PartitionImage),
) {
    for topic in image.topics.values_mut() {
        let id = topic.id;
        let touched = topic.partitions.iter().any(|partition| {
            let mut changed = partition.clone();
            change(id, &mut changed);
            changed != *partition
        });
        if !touched {
            continue;
        }
        for partition in &mut Arc::make_mut(topic).partitions {
            let before = partition.clone();
            change(id, partition);
            if partition.leader != before.leader {
                partition.leader_epoch += 1;
            }
            if *partition != before {
                partition.partition_epoch += 1;
            }
        }
    }
}

/// A new partition: its live replicas are in sync (all are empty; a fenced one joins once it
/// fetches, as in Kafka), and the first live one leads. With none live, all are.
fn new_partition(index: i32, replicas: Vec<i32>, live: &[i32]) -> PartitionImage {
    let mut isr: Vec<i32> = replicas
        .iter()
        .copied()
        .filter(|replica| live.contains(replica))
        .collect();
    if isr.is_empty() {
        isr = replicas.clone();
    }
    PartitionImage {
        index,
        leader: isr
            .first()
            .copied()
            .filter(|leader| live.contains(leader))
            .unwrap_or(-1),
        leader_epoch: 0,
        partition_epoch: 0,
        isr,
        replicas,
    }
}

/// The image of a topic created by `record`.
pub fn topic_image(
    image: &MetadataImage,
    record: &MetadataRecord,
    node_id: i32,
) -> Option<TopicImage> {
    let MetadataRecord::CreateTopic {
        name,
        id,
        partitions,
        configs,
        assignments,
        ..
    } = record
    else {
        return None;
    };
    let live: Vec<i32> = image.live_brokers().map(|broker| broker.node_id).collect();
    let partitions = (0..*partitions)
        .map(|index| {
            let replicas = assignments
                .get(index as usize)
                .cloned()
                .unwrap_or_else(|| vec![node_id]);
            new_partition(index, replicas, &live)
        })
        .collect();
    Some(TopicImage {
        name: name.clone(),
        id: *id,
        partitions,
        configs: configs.clone(),
    })
}

/// Kafka's rack-unaware placement: partition `p`'s first replica is broker `(p + start) % n`,
/// the others follow at a shift that grows every `n` partitions, so replicas of one partition
/// are on distinct brokers and leaders spread evenly. `start` and `shift` are random per call.
pub fn place_replicas(
    brokers: &[i32],
    first_partition: i32,
    partitions: i32,
    replication_factor: usize,
    start: usize,
    shift: usize,
) -> Vec<Vec<i32>> {
    let count = brokers.len();
    let mut shift = shift % count;
    (first_partition..first_partition + partitions)
        .map(|partition| {
            let partition = partition as usize;
            if partition > 0 && partition.is_multiple_of(count) {
                shift += 1;
            }
            let first = (partition + start) % count;
            let mut replicas = vec![brokers[first]];
            for j in 0..replication_factor.saturating_sub(1) {
                let offset = 1 + (shift + j) % (count - 1);
                replicas.push(brokers[(first + offset) % count]);
            }
            replicas
        })
        .collect()
}

pub fn log_record(record: &MetadataRecord) {
    match record {
        MetadataRecord::CreateTopic { name, partitions, replication_factor, .. } => tracing::info!(
            "created topic {name} with {partitions} partition(s), replication factor {replication_factor}"
        ),
        MetadataRecord::DeleteTopic { name, .. } => tracing::info!("deleted topic {name}"),
        MetadataRecord::ProducerIds { .. } => {}
        MetadataRecord::TopicConfigs { name, configs, .. } => {
            tracing::info!("configs of topic {name} are now {configs:?}")
        }
        // Never the credentials themselves.
        MetadataRecord::UserConfigs { user, configs } => tracing::info!(
            "SCRAM credentials of user {user} are now {:?}",
            configs.keys().collect::<Vec<_>>()
        ),
        MetadataRecord::CreateAcl(binding) => {
            tracing::info!("added ACL {} on {}", binding.entry, binding.pattern)
        }
        MetadataRecord::RemoveAcl(binding) => {
            tracing::info!("removed ACL {} on {}", binding.entry, binding.pattern)
        }
        MetadataRecord::ClientQuota { entity, key, value } => match value {
            Some(value) => tracing::info!("client quota {key} of {entity:?} is now {value}"),
            None => tracing::info!("client quota {key} of {entity:?} is removed"),
        },
        MetadataRecord::BrokerConfigs { broker, configs } => match broker.is_empty() {
            true => tracing::info!("default broker configs are now {configs:?}"),
            false => tracing::info!("dynamic configs of broker {broker} are now {configs:?}"),
        },
        MetadataRecord::Partitions {
            name, partitions, ..
        } => tracing::info!("topic {name} now has {partitions} partition(s)"),
        MetadataRecord::RegisterBroker { id, epoch, .. } => {
            tracing::info!(
                "broker {id} registered with epoch {epoch} (fenced until it has recovered its logs and caught up)"
            )
        }
        MetadataRecord::FenceBroker { id, epoch } => {
            tracing::info!("broker {id} (epoch {epoch}) is fenced")
        }
        MetadataRecord::UnfenceBroker { id, epoch } => {
            tracing::info!("broker {id} (epoch {epoch}) is unfenced")
        }
        MetadataRecord::PartitionChange {
            name,
            partition,
            leader,
            isr,
            ..
        } => tracing::info!("partition {name}-{partition}: leader {leader}, ISR {isr:?}"),
        MetadataRecord::ReplicasOffline { id, replicas, .. } => tracing::warn!(
            "broker {id} has {} replica(s) in failed log directories: they lead nothing and leave their ISRs",
            replicas.len()
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metadata::TopicId;

    /// Proves Kafka's placement: replicas of a partition on distinct brokers, and first
    /// replicas (leaders) spread evenly over the brokers.
    #[test]
    fn places_replicas_on_distinct_brokers() {
        let brokers = [4, 5, 6];
        for start in 0..3 {
            for shift in 0..3 {
                let placed = place_replicas(&brokers, 0, 6, 3, start, shift);
                for replicas in &placed {
                    let mut distinct = replicas.clone();
                    distinct.sort();
                    distinct.dedup();
                    assert_eq!(distinct.len(), 3, "{placed:?}");
                }
                for broker in brokers {
                    let led = placed
                        .iter()
                        .filter(|replicas| replicas[0] == broker)
                        .count();
                    assert_eq!(led, 2, "{placed:?}");
                }
            }
        }
        assert_eq!(place_replicas(&[1], 0, 2, 1, 0, 0), vec![vec![1], vec![1]]);
    }

    fn registered(ids: &[i32]) -> MetadataImage {
        let mut image = MetadataImage::default();
        for &id in ids {
            let register = MetadataRecord::RegisterBroker {
                id,
                epoch: id as i64,
                endpoints: Vec::new(),
            };
            apply(&mut image, &register, 0);
            let unfence = MetadataRecord::UnfenceBroker {
                id,
                epoch: id as i64,
            };
            apply(&mut image, &unfence, 0);
        }
        image
    }

    fn create(image: &mut MetadataImage, assignments: Vec<Vec<i32>>) {
        let create = MetadataRecord::CreateTopic {
            name: "t".into(),
            id: TopicId([1; 16]),
            partitions: assignments.len() as i32,
            replication_factor: assignments[0].len() as i16,
            configs: Default::default(),
            assignments,
        };
        apply(image, &create, 0);
    }

    /// (leader, leader epoch, ISR) of every partition of topic `t`.
    fn states(image: &MetadataImage) -> Vec<(i32, i32, Vec<i32>)> {
        image.topics["t"]
            .partitions
            .iter()
            .map(|partition| {
                (
                    partition.leader,
                    partition.leader_epoch,
                    partition.isr.clone(),
                )
            })
            .collect()
    }

    /// Proves fencing moves leadership to another in-sync replica and drops the fenced broker
    /// from every ISR it is not the last member of; the returning broker leads nothing until
    /// its leader adds it back to the ISR and a preferred election hands leadership back.
    /// A stale session's records change nothing.
    #[test]
    fn fencing_moves_leaders_within_the_isr() {
        let mut image = registered(&[4, 5]);
        create(&mut image, vec![vec![4, 5], vec![5, 4]]);
        assert_eq!(states(&image), vec![(4, 0, vec![4, 5]), (5, 0, vec![5, 4])]);
        apply(
            &mut image,
            &MetadataRecord::FenceBroker { id: 4, epoch: 3 },
            0,
        );
        assert_eq!(states(&image)[0], (4, 0, vec![4, 5]), "stale epoch ignored");
        apply(
            &mut image,
            &MetadataRecord::FenceBroker { id: 4, epoch: 4 },
            0,
        );
        assert_eq!(states(&image), vec![(5, 1, vec![5]), (5, 0, vec![5])]);
        assert_eq!(image.live_brokers().count(), 1);
        apply(
            &mut image,
            &MetadataRecord::UnfenceBroker { id: 4, epoch: 4 },
            0,
        );
        assert_eq!(states(&image), vec![(5, 1, vec![5]), (5, 0, vec![5])]);
        let change = |leader, isr: Vec<i32>| MetadataRecord::PartitionChange {
            name: "t".into(),
            id: TopicId([1; 16]),
            partition: 0,
            leader,
            isr,
        };
        apply(&mut image, &change(5, vec![5, 4]), 0);
        assert_eq!(states(&image)[0], (5, 1, vec![5, 4]), "ISR expanded");
        apply(&mut image, &change(4, vec![5, 4]), 0);
        assert_eq!(
            states(&image)[0],
            (4, 2, vec![5, 4]),
            "preferred leader back"
        );
        assert_eq!(image.topics["t"].partitions[0].partition_epoch, 3);
    }

    /// Proves a partition created with a fenced replica leaves it out of the ISR (so acks=all
    /// does not wait for it, as in Kafka), and one created with none live keeps them all.
    #[test]
    fn new_partitions_leave_fenced_replicas_out_of_the_isr() {
        let mut image = registered(&[4, 5, 6]);
        apply(
            &mut image,
            &MetadataRecord::FenceBroker { id: 6, epoch: 6 },
            0,
        );
        create(&mut image, vec![vec![6, 4, 5], vec![4, 6, 5]]);
        assert_eq!(states(&image), vec![(4, 0, vec![4, 5]), (4, 0, vec![4, 5])]);
        let mut image = registered(&[4]);
        apply(
            &mut image,
            &MetadataRecord::FenceBroker { id: 4, epoch: 4 },
            0,
        );
        create(&mut image, vec![vec![4]]);
        assert_eq!(states(&image), vec![(-1, 0, vec![4])]);
    }

    /// Proves a partition whose only in-sync replica is fenced goes offline keeping that ISR
    /// (no unclean election), and is led by that replica again once it is unfenced.
    #[test]
    fn last_in_sync_replica_keeps_the_partition() {
        let mut image = registered(&[4, 5]);
        create(&mut image, vec![vec![4]]);
        apply(
            &mut image,
            &MetadataRecord::FenceBroker { id: 4, epoch: 4 },
            0,
        );
        assert_eq!(states(&image), vec![(-1, 1, vec![4])]);
        apply(
            &mut image,
            &MetadataRecord::UnfenceBroker { id: 4, epoch: 4 },
            0,
        );
        assert_eq!(states(&image), vec![(4, 2, vec![4])]);
    }

    /// Proves replicas in a failed log directory lose leadership to the next in-sync replica
    /// and leave their ISRs, while the broker's other replicas keep theirs; that a fenced
    /// broker's partitions are never handed to an offline replica, nor an offline last ISR
    /// member restored by unfencing; and that a new registration clears the set.
    #[test]
    fn offline_replicas_lose_leadership_and_the_isr() {
        let mut image = registered(&[4, 5, 6]);
        create(
            &mut image,
            vec![vec![4, 5], vec![4, 5], vec![5, 4], vec![4]],
        );
        let topic = TopicId([1; 16]);
        let offline = |epoch, replicas: Vec<i32>| MetadataRecord::ReplicasOffline {
            id: 4,
            epoch,
            replicas: replicas.into_iter().map(|index| (topic, index)).collect(),
        };
        apply(&mut image, &offline(3, vec![0, 2, 3]), 0);
        assert_eq!(
            states(&image)[0],
            (4, 0, vec![4, 5]),
            "stale session ignored"
        );
        apply(&mut image, &offline(4, vec![0, 2, 3]), 0);
        assert_eq!(
            states(&image),
            vec![
                (5, 1, vec![5]),
                (4, 0, vec![4, 5]),
                (5, 0, vec![5]),
                (-1, 1, vec![4]),
            ]
        );
        assert!(image.is_replica_offline(4, topic, 0));
        assert!(!image.is_eligible(4, topic, 0));
        assert!(image.is_eligible(4, topic, 1));
        assert_eq!(
            image.offline_replicas_of(topic, &image.topics["t"].partitions[2]),
            vec![4]
        );

        // Broker 5 is fenced: partition 2 (led by 5, 4 offline there) gets no leader, though
        // 4 is live; partition 1 stays with 4, which is online there.
        apply(
            &mut image,
            &MetadataRecord::FenceBroker { id: 5, epoch: 5 },
            0,
        );
        assert_eq!(states(&image)[1], (4, 0, vec![4]));
        assert_eq!(states(&image)[2], (-1, 1, vec![5]));
        apply(
            &mut image,
            &MetadataRecord::FenceBroker { id: 4, epoch: 4 },
            0,
        );
        apply(
            &mut image,
            &MetadataRecord::UnfenceBroker { id: 4, epoch: 4 },
            0,
        );
        assert_eq!(
            states(&image)[3].0,
            -1,
            "an offline last ISR member is not restored"
        );

        let register = MetadataRecord::RegisterBroker {
            id: 4,
            epoch: 7,
            endpoints: Vec::new(),
        };
        apply(&mut image, &register, 0);
        assert!(!image.is_replica_offline(4, topic, 0));
        apply(
            &mut image,
            &MetadataRecord::UnfenceBroker { id: 4, epoch: 7 },
            0,
        );
        assert_eq!(
            states(&image)[3].0,
            4,
            "led again after a restart that found it well"
        );
    }

    /// Proves a new partition is led by its first live replica, with its live replicas in sync.
    #[test]
    fn new_partitions_start_with_their_live_replicas_in_sync() {
        let mut image = registered(&[5, 6]);
        create(&mut image, vec![vec![4, 5, 6]]);
        assert_eq!(states(&image), vec![(5, 0, vec![5, 6])]);
    }
}
