//! Cluster-wide admin look-ups the group tools need: ListGroups on every broker (each broker
//! lists only the groups it coordinates) and ListOffsets routed to each partition's leader
//! (log start, log end, or the first offset at or after a timestamp).

use std::collections::BTreeMap;

use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::{ApiKey, BrokerId, ListGroupsRequest, ListOffsetsRequest};
use kafka_protocol::protocol::StrBytes;

use super::cluster::{Client, NodeId};
use super::error::{ClientError, KafkaError};
use super::group::{group_by_topic, topic_name, TopicPartition};

/// ListOffsets timestamps that mean "log start" and "log end".
pub const EARLIEST_TIMESTAMP: i64 = -2;
pub const LATEST_TIMESTAMP: i64 = -1;
/// LEADER_NOT_AVAILABLE, for a partition metadata shows without a leader.
const LEADER_NOT_AVAILABLE: i16 = 5;

/// One group as ListGroups reports it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct ListedGroup {
    pub group_id: String,
    pub protocol_type: String,
    /// Kafka's state name; empty when the broker is older than ListGroups v4.
    pub state: String,
}

/// Lists the groups of every broker, sorted by group id; `states` filters by state name when
/// the brokers support ListGroups v4 (an empty filter lists all).
pub fn list_groups(
    client: &mut Client,
    states: &[String],
) -> Result<Vec<ListedGroup>, ClientError> {
    client.metadata(Some(&[]), false)?;
    let mut groups = Vec::new();
    for (node, _) in client.nodes() {
        let response = client.send_built_to(node, ApiKey::ListGroups, None, |version| {
            let request = ListGroupsRequest::default();
            match version >= 4 {
                true => request.with_states_filter(
                    states
                        .iter()
                        .map(|state| StrBytes::from_string(state.clone()))
                        .collect(),
                ),
                false => request,
            }
        })?;
        if let Some(error) = KafkaError::from_code(response.error_code) {
            return Err(error.into());
        }
        groups.extend(response.groups.into_iter().map(|group| ListedGroup {
            group_id: group.group_id.0.to_string(),
            protocol_type: group.protocol_type.to_string(),
            state: group.group_state.to_string(),
        }));
    }
    groups.sort();
    groups.dedup_by(|later, earlier| later.group_id == earlier.group_id);
    Ok(groups)
}

/// The offset of every partition at `timestamp` (or EARLIEST/LATEST_TIMESTAMP), asking each
/// partition's leader. A partition that fails has its error instead; -1 means no record at or
/// after the timestamp.
pub fn list_offsets(
    client: &mut Client,
    partitions: &[TopicPartition],
    timestamp: i64,
) -> Result<BTreeMap<TopicPartition, Result<i64, KafkaError>>, ClientError> {
    let by_topic = group_by_topic(partitions);
    let topics: Vec<String> = by_topic.keys().cloned().collect();
    let metadata = client.metadata(Some(&topics), false)?;
    let mut results = BTreeMap::new();
    let mut by_leader: BTreeMap<NodeId, Vec<TopicPartition>> = BTreeMap::new();
    for partition in partitions {
        let topic = metadata.topic(&partition.topic);
        let leader = topic.and_then(|topic| {
            topic
                .partitions
                .iter()
                .find(|candidate| candidate.partition == partition.partition)
                .map(|candidate| candidate.leader)
        });
        match (topic.and_then(|topic| topic.error.clone()), leader) {
            (Some(error), _) => results.insert(partition.clone(), Err(error)),
            (None, None) => results.insert(partition.clone(), Err(KafkaError::new(3))),
            (None, Some(NodeId::NONE)) => results.insert(
                partition.clone(),
                Err(KafkaError::new(LEADER_NOT_AVAILABLE)),
            ),
            (None, Some(leader)) => {
                by_leader.entry(leader).or_default().push(partition.clone());
                None
            }
        };
    }
    for (leader, partitions) in by_leader {
        results.extend(list_offsets_at(client, leader, &partitions, timestamp)?);
    }
    Ok(results)
}

fn list_offsets_at(
    client: &mut Client,
    leader: NodeId,
    partitions: &[TopicPartition],
    timestamp: i64,
) -> Result<BTreeMap<TopicPartition, Result<i64, KafkaError>>, ClientError> {
    let topics = group_by_topic(partitions)
        .into_iter()
        .map(|(topic, indexes)| {
            ListOffsetsTopic::default()
                .with_name(topic_name(&topic))
                .with_partitions(
                    indexes
                        .into_iter()
                        .map(|index| {
                            ListOffsetsPartition::default()
                                .with_partition_index(index)
                                .with_current_leader_epoch(-1)
                                .with_timestamp(timestamp)
                        })
                        .collect(),
                )
        })
        .collect();
    let request = ListOffsetsRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_topics(topics);
    let response = client.send_to(leader, ApiKey::ListOffsets, &request)?;
    let mut results = BTreeMap::new();
    for topic in response.topics {
        for answer in topic.partitions {
            let key = TopicPartition::new(topic.name.as_str(), answer.partition_index);
            let result = match KafkaError::from_code(answer.error_code) {
                Some(error) => Err(error),
                None => Ok(answer.offset),
            };
            results.insert(key, result);
        }
    }
    Ok(results)
}
