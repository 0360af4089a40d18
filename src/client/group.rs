//! One consumer group's coordinator as the client sees it: finding it (FindCoordinator), sending
//! it requests with Kafka's retry rule (COORDINATOR_LOAD_IN_PROGRESS, COORDINATOR_NOT_AVAILABLE,
//! NOT_COORDINATOR and lost connections mean "find the coordinator again and retry after a short
//! backoff", a bounded number of times), and the group requests that are not membership:
//! OffsetCommit, OffsetFetch, OffsetDelete, DescribeGroups and DeleteGroups.
//!
//! Requests whose fields differ between versions are built for the negotiated version.

use std::collections::BTreeMap;
use std::thread;
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::offset_delete_request::{
    OffsetDeleteRequestPartition, OffsetDeleteRequestTopic,
};
use kafka_protocol::messages::offset_fetch_request::{
    OffsetFetchRequestGroup, OffsetFetchRequestTopic, OffsetFetchRequestTopics,
};
use kafka_protocol::messages::{
    ApiKey, DeleteGroupsRequest, DescribeGroupsRequest, FindCoordinatorRequest, GroupId,
    OffsetCommitRequest, OffsetDeleteRequest, OffsetFetchRequest, OffsetFetchResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;

use super::cluster::{Client, NodeId};
use super::consumer_protocol::Assignment;
use super::error::{ClientError, KafkaError};

/// FindCoordinator key type of a consumer group (1 would be a transactional id).
const KEY_TYPE_GROUP: i8 = 0;
/// How often a request is retried after the coordinator moved or was not ready.
const COORDINATOR_ATTEMPTS_MAX: u32 = 40;

/// A topic partition, ordered by topic then partition as Kafka's tools print them.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TopicPartition {
    pub topic: String,
    pub partition: i32,
}

impl TopicPartition {
    pub fn new(topic: &str, partition: i32) -> TopicPartition {
        TopicPartition {
            topic: topic.to_string(),
            partition,
        }
    }
}

impl std::fmt::Display for TopicPartition {
    /// `topic-partition`, as Kafka's `TopicPartition.toString` prints it.
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(formatter, "{}-{}", self.topic, self.partition)
    }
}

/// The coordinator of one group, found lazily and forgotten when it moves.
#[derive(Debug, Clone)]
pub struct GroupCoordinator {
    group_id: String,
    node: Option<NodeId>,
    address: String,
    retry_backoff: Duration,
}

/// One member of a group as DescribeGroups reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberDescription {
    pub member_id: String,
    pub client_id: String,
    pub client_host: String,
    pub assignment: Assignment,
}

/// A group as DescribeGroups reports it; `state` uses Kafka's names (Stable, Empty, Dead, ...).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupDescription {
    pub group_id: String,
    pub state: String,
    pub protocol_type: String,
    pub assignment_strategy: String,
    pub members: Vec<MemberDescription>,
}

impl GroupCoordinator {
    pub fn new(group_id: &str, retry_backoff: Duration) -> GroupCoordinator {
        GroupCoordinator {
            group_id: group_id.to_string(),
            node: None,
            address: String::new(),
            retry_backoff,
        }
    }

    pub fn group_id(&self) -> &str {
        &self.group_id
    }

    /// The coordinator as Kafka's tool prints it: `host:port  (id)`, once found.
    pub fn describe_node(&self) -> Option<String> {
        self.node
            .map(|node| format!("{}  ({})", self.address, node.0))
    }

    /// Forgets the coordinator so that the next request looks it up again.
    pub fn forget(&mut self) {
        self.node = None;
    }

    /// Runs `attempt` against the coordinator, finding it first and again whenever it moved,
    /// with a short backoff between attempts. Other errors are returned at once.
    pub fn call<T>(
        &mut self,
        client: &mut Client,
        mut attempt: impl FnMut(&mut Client, NodeId) -> Result<T, ClientError>,
    ) -> Result<T, ClientError> {
        let mut attempts = 0;
        loop {
            attempts += 1;
            let result = self
                .find(client)
                .and_then(|node| attempt(&mut *client, node));
            let retry = match &result {
                Err(ClientError::Kafka(error)) => error.is_coordinator_error(),
                Err(error) => error.is_transport(),
                Ok(_) => false,
            };
            if !retry || attempts >= COORDINATOR_ATTEMPTS_MAX {
                return result;
            }
            self.forget();
            thread::sleep(self.retry_backoff);
        }
    }

    /// The coordinator's node, asking any broker with FindCoordinator if it is not known.
    pub fn find(&mut self, client: &mut Client) -> Result<NodeId, ClientError> {
        if let Some(node) = self.node {
            return Ok(node);
        }
        let (node, address) = find_coordinator(client, KEY_TYPE_GROUP, &self.group_id)?;
        self.node = Some(node);
        self.address = address;
        Ok(node)
    }

    /// Commits `offsets`; a member passes its generation and id, an admin -1 and "".
    pub fn commit_offsets(
        &mut self,
        client: &mut Client,
        generation_id: i32,
        member_id: &str,
        offsets: &BTreeMap<TopicPartition, i64>,
    ) -> Result<(), ClientError> {
        let request = OffsetCommitRequest::default()
            .with_group_id(group_id(&self.group_id))
            .with_generation_id_or_member_epoch(generation_id)
            .with_member_id(StrBytes::from_string(member_id.to_string()))
            .with_topics(commit_topics(offsets));
        self.call(client, |client, node| {
            let response = client.send_to(node, ApiKey::OffsetCommit, &request)?;
            let first_error = response
                .topics
                .iter()
                .flat_map(|topic| topic.partitions.iter())
                .find_map(|partition| KafkaError::from_code(partition.error_code));
            match first_error {
                Some(error) => Err(error.into()),
                None => Ok(()),
            }
        })
    }

    /// Committed offsets of the group: of `partitions`, or of every partition when `None`.
    /// Partitions without a committed offset are left out.
    pub fn fetch_offsets(
        &mut self,
        client: &mut Client,
        partitions: Option<&[TopicPartition]>,
    ) -> Result<BTreeMap<TopicPartition, i64>, ClientError> {
        let by_topic = partitions.map(group_by_topic);
        let group = self.group_id.clone();
        self.call(client, |client, node| {
            let response = client.send_built_to(node, ApiKey::OffsetFetch, None, |version| {
                offset_fetch_request(version, &group, by_topic.as_ref())
            })?;
            committed_offsets(response)
        })
    }

    /// Deletes the group's committed offsets of `partitions` (OffsetDelete); returns the
    /// per-partition errors.
    pub fn delete_offsets(
        &mut self,
        client: &mut Client,
        partitions: &[TopicPartition],
    ) -> Result<BTreeMap<TopicPartition, Option<KafkaError>>, ClientError> {
        let topics = group_by_topic(partitions)
            .into_iter()
            .map(|(topic, partitions)| {
                OffsetDeleteRequestTopic::default()
                    .with_name(topic_name(&topic))
                    .with_partitions(
                        partitions
                            .into_iter()
                            .map(|partition| {
                                OffsetDeleteRequestPartition::default()
                                    .with_partition_index(partition)
                            })
                            .collect(),
                    )
            })
            .collect();
        let request = OffsetDeleteRequest::default()
            .with_group_id(group_id(&self.group_id))
            .with_topics(topics);
        self.call(client, |client, node| {
            let response = client.send_to(node, ApiKey::OffsetDelete, &request)?;
            if let Some(error) = KafkaError::from_code(response.error_code) {
                return Err(error.into());
            }
            let mut results = BTreeMap::new();
            for topic in &response.topics {
                for partition in &topic.partitions {
                    let key = TopicPartition::new(topic.name.as_str(), partition.partition_index);
                    results.insert(key, KafkaError::from_code(partition.error_code));
                }
            }
            Ok(results)
        })
    }

    /// Describes the group (DescribeGroups). A group the coordinator does not know comes back
    /// in state "Dead" with no members, as Kafka reports it.
    pub fn describe(&mut self, client: &mut Client) -> Result<GroupDescription, ClientError> {
        let request = DescribeGroupsRequest::default().with_groups(vec![group_id(&self.group_id)]);
        let described = self.call(client, |client, node| {
            let response = client.send_to(node, ApiKey::DescribeGroups, &request)?;
            let group = response
                .groups
                .into_iter()
                .next()
                .ok_or(ClientError::Kafka(KafkaError::new(69)))?;
            let message = group.error_message.as_ref().map(StrBytes::as_str);
            match KafkaError::with_message(group.error_code, message) {
                Some(error) => Err(error.into()),
                None => Ok(group),
            }
        })?;
        let mut members = Vec::with_capacity(described.members.len());
        for member in described.members {
            members.push(MemberDescription {
                member_id: member.member_id.to_string(),
                client_id: member.client_id.to_string(),
                client_host: member.client_host.to_string(),
                assignment: decode_member_assignment(
                    &described.protocol_type,
                    member.member_assignment,
                )?,
            });
        }
        Ok(GroupDescription {
            group_id: described.group_id.0.to_string(),
            state: described.group_state.to_string(),
            protocol_type: described.protocol_type.to_string(),
            assignment_strategy: described.protocol_data.to_string(),
            members,
        })
    }

    /// Deletes the group (DeleteGroups); a non-empty group fails with NON_EMPTY_GROUP.
    pub fn delete(&mut self, client: &mut Client) -> Result<(), ClientError> {
        let group = self.group_id.clone();
        let request = DeleteGroupsRequest::default().with_groups_names(vec![group_id(&group)]);
        self.call(client, |client, node| {
            let response = client.send_to(node, ApiKey::DeleteGroups, &request)?;
            let code = response
                .results
                .iter()
                .find(|result| result.group_id.0.as_str() == group.as_str())
                .map_or(0, |result| result.error_code);
            match KafkaError::from_code(code) {
                Some(error) => Err(error.into()),
                None => Ok(()),
            }
        })
    }
}

/// Assignments of groups that are not consumer groups are opaque; they count as empty.
fn decode_member_assignment(
    protocol_type: &StrBytes,
    bytes: Bytes,
) -> Result<Assignment, ClientError> {
    match protocol_type.as_str() {
        "consumer" => Ok(Assignment::decode(bytes)?),
        _ => Ok(Assignment::default()),
    }
}

/// Asks any broker with FindCoordinator which node coordinates `key` (a group id for key type 0,
/// a transactional id for 1) and remembers its address: the node and its `host:port`. The
/// coordinator's error comes back with its code and the broker's message.
pub fn find_coordinator(
    client: &mut Client,
    key_type: i8,
    key: &str,
) -> Result<(NodeId, String), ClientError> {
    let key = StrBytes::from_string(key.to_string());
    let response = client.send_built_any(ApiKey::FindCoordinator, |version| {
        let request = FindCoordinatorRequest::default().with_key_type(key_type);
        match version >= 4 {
            true => request.with_coordinator_keys(vec![key]),
            false => request.with_key(key),
        }
    })?;
    let (code, message, node, host, port) = match response.coordinators.first() {
        Some(found) => (
            found.error_code,
            found.error_message.clone(),
            found.node_id.0,
            found.host.to_string(),
            found.port,
        ),
        None => (
            response.error_code,
            response.error_message.clone(),
            response.node_id.0,
            response.host.to_string(),
            response.port,
        ),
    };
    if let Some(error) = KafkaError::with_message(code, message.as_ref().map(StrBytes::as_str)) {
        return Err(error.into());
    }
    let address = format!("{host}:{port}");
    client.remember_node(NodeId(node), address.clone());
    Ok((NodeId(node), address))
}

pub fn group_id(group: &str) -> GroupId {
    GroupId(StrBytes::from_string(group.to_string()))
}

pub fn topic_name(topic: &str) -> TopicName {
    TopicName(StrBytes::from_string(topic.to_string()))
}

/// Partitions grouped by topic, both sorted.
pub fn group_by_topic(partitions: &[TopicPartition]) -> BTreeMap<String, Vec<i32>> {
    let mut by_topic: BTreeMap<String, Vec<i32>> = BTreeMap::new();
    for partition in partitions {
        by_topic
            .entry(partition.topic.clone())
            .or_default()
            .push(partition.partition);
    }
    for partitions in by_topic.values_mut() {
        partitions.sort_unstable();
        partitions.dedup();
    }
    by_topic
}

fn commit_topics(offsets: &BTreeMap<TopicPartition, i64>) -> Vec<OffsetCommitRequestTopic> {
    let mut topics: BTreeMap<&str, Vec<OffsetCommitRequestPartition>> = BTreeMap::new();
    for (partition, offset) in offsets {
        topics.entry(partition.topic.as_str()).or_default().push(
            OffsetCommitRequestPartition::default()
                .with_partition_index(partition.partition)
                .with_committed_offset(*offset)
                .with_committed_leader_epoch(-1)
                .with_committed_metadata(Some(StrBytes::from_static_str(""))),
        );
    }
    topics
        .into_iter()
        .map(|(topic, partitions)| {
            OffsetCommitRequestTopic::default()
                .with_name(topic_name(topic))
                .with_partitions(partitions)
        })
        .collect()
}

/// OffsetFetch for one group: v8 puts the group in `groups`, older versions at the top level.
/// `None` topics ask for every committed partition.
fn offset_fetch_request(
    version: i16,
    group: &str,
    by_topic: Option<&BTreeMap<String, Vec<i32>>>,
) -> OffsetFetchRequest {
    if version >= 8 {
        let topics = by_topic.map(|by_topic| {
            by_topic
                .iter()
                .map(|(topic, partitions)| {
                    OffsetFetchRequestTopics::default()
                        .with_name(topic_name(topic))
                        .with_partition_indexes(partitions.clone())
                })
                .collect()
        });
        let request_group = OffsetFetchRequestGroup::default()
            .with_group_id(group_id(group))
            .with_topics(topics);
        return OffsetFetchRequest::default().with_groups(vec![request_group]);
    }
    let topics = by_topic.map(|by_topic| {
        by_topic
            .iter()
            .map(|(topic, partitions)| {
                OffsetFetchRequestTopic::default()
                    .with_name(topic_name(topic))
                    .with_partition_indexes(partitions.clone())
            })
            .collect()
    });
    OffsetFetchRequest::default()
        .with_group_id(group_id(group))
        .with_topics(topics)
}

/// The committed offsets of an OffsetFetch response, either layout; errors become `Err`.
fn committed_offsets(
    response: OffsetFetchResponse,
) -> Result<BTreeMap<TopicPartition, i64>, ClientError> {
    let mut offsets = BTreeMap::new();
    let mut record = |topic: &str, partition: i32, offset: i64, code: i16| {
        if let Some(error) = KafkaError::from_code(code) {
            return Err(ClientError::Kafka(error));
        }
        if offset >= 0 {
            offsets.insert(TopicPartition::new(topic, partition), offset);
        }
        Ok(())
    };
    if let Some(group) = response.groups.into_iter().next() {
        if let Some(error) = KafkaError::from_code(group.error_code) {
            return Err(error.into());
        }
        for topic in group.topics {
            for partition in topic.partitions {
                let (index, offset) = (partition.partition_index, partition.committed_offset);
                record(topic.name.as_str(), index, offset, partition.error_code)?;
            }
        }
    } else {
        if let Some(error) = KafkaError::from_code(response.error_code) {
            return Err(error.into());
        }
        for topic in response.topics {
            for partition in topic.partitions {
                let (index, offset) = (partition.partition_index, partition.committed_offset);
                record(topic.name.as_str(), index, offset, partition.error_code)?;
            }
        }
    }
    Ok(offsets)
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::protocol::Encodable;

    #[test]
    fn offset_fetch_requests_encode_at_every_version() {
        // The request built for each version encodes: no field is set that the version lacks.
        let by_topic = BTreeMap::from([("t".to_string(), vec![0, 1])]);
        for version in 1..=8 {
            let mut buffer = bytes::BytesMut::new();
            offset_fetch_request(version, "g", Some(&by_topic))
                .encode(&mut buffer, version)
                .expect("encodes");
        }
        let mut buffer = bytes::BytesMut::new();
        offset_fetch_request(8, "g", None)
            .encode(&mut buffer, 8)
            .expect("encodes");
    }

    #[test]
    fn partitions_group_by_topic_sorted() {
        // Partitions are grouped per topic, sorted and deduplicated.
        let partitions = [
            TopicPartition::new("b", 1),
            TopicPartition::new("a", 2),
            TopicPartition::new("b", 0),
            TopicPartition::new("b", 1),
        ];
        let grouped = group_by_topic(&partitions);
        assert_eq!(grouped["a"], vec![2]);
        assert_eq!(grouped["b"], vec![0, 1]);
    }
}
