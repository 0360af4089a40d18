//! Cluster-wide admin calls of the tools. For the group tools: ListGroups on every broker (each
//! broker lists only the groups it coordinates) and ListOffsets routed to each partition's leader
//! (log start, log end, or the first offset at or after a timestamp). For the config and topic
//! tools: DescribeConfigs and IncrementalAlterConfigs, sent to the broker a resource belongs to
//! (a broker's own configs are only known to that broker; topics and the cluster-wide broker
//! defaults to any broker), and CreatePartitions, sent to the controller as Kafka's admin client
//! does. For the metadata quorum tool: DescribeCluster (the cluster id) and DescribeQuorum, sent
//! to any broker, which asks the active controller.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use kafka_protocol::messages::create_partitions_request::{
    CreatePartitionsAssignment, CreatePartitionsTopic,
};
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult,
};
use kafka_protocol::messages::describe_quorum_request::{
    PartitionData as QuorumPartitionRequest, TopicData as QuorumTopicRequest,
};
use kafka_protocol::messages::describe_quorum_response::{
    Node as QuorumNode, PartitionData as QuorumPartition, ReplicaState,
};
use kafka_protocol::messages::incremental_alter_configs_request::{
    AlterConfigsResource, AlterableConfig,
};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::{
    ApiKey, BrokerId, CreatePartitionsRequest, DescribeClusterRequest, DescribeConfigsRequest,
    DescribeQuorumRequest, DescribeQuorumResponse, IncrementalAlterConfigsRequest,
    ListGroupsRequest, ListOffsetsRequest,
};
use kafka_protocol::protocol::StrBytes;

use super::cluster::{Client, ClientSettings, NodeId, REQUEST_TIMEOUT_DEFAULT};
use super::error::{ClientError, KafkaError};
use super::group::{group_by_topic, topic_name, TopicPartition};
use super::properties::{Properties, PropertiesError};
use super::security::ClientSecurity;

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

/// The settings of Kafka's admin client from `--command-config` properties: `client.id`
/// (default `adminclient-1`), `request.timeout.ms` (default 30 s) and the security keys.
pub fn admin_settings(properties: &Properties) -> Result<ClientSettings, PropertiesError> {
    let timeout_ms = properties.integer_or(
        "request.timeout.ms",
        REQUEST_TIMEOUT_DEFAULT.as_millis() as u64,
    )?;
    Ok(ClientSettings {
        client_id: properties
            .get("client.id")
            .unwrap_or("adminclient-1")
            .to_string(),
        request_timeout: Duration::from_millis(timeout_ms),
        security: ClientSecurity::from_properties(properties)?,
    })
}

/// The kinds of config resource the tools name, with Kafka's `ConfigResource.Type` codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ConfigResourceType {
    Topic,
    Broker,
}

impl ConfigResourceType {
    pub fn code(self) -> i8 {
        match self {
            ConfigResourceType::Topic => 2,
            ConfigResourceType::Broker => 4,
        }
    }
}

/// A topic, one broker (named by its node id), or the cluster-wide broker defaults (a broker
/// resource with the empty name), as Kafka's `ConfigResource`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ConfigResource {
    pub resource_type: ConfigResourceType,
    pub name: String,
}

impl ConfigResource {
    pub fn topic(name: &str) -> ConfigResource {
        ConfigResource {
            resource_type: ConfigResourceType::Topic,
            name: name.to_string(),
        }
    }

    pub fn broker(name: &str) -> ConfigResource {
        ConfigResource {
            resource_type: ConfigResourceType::Broker,
            name: name.to_string(),
        }
    }

    /// The broker that must answer for this resource: a broker's own configs live only on that
    /// broker, so they go there; anything else may go to any broker (`None`).
    pub fn owner(&self) -> Option<NodeId> {
        match self.resource_type {
            ConfigResourceType::Broker => self.name.parse().ok().map(NodeId),
            ConfigResourceType::Topic => None,
        }
    }
}

/// Where a config value comes from, as DescribeConfigs' `config_source` says; printed with the
/// names of Kafka's `ConfigEntry.ConfigSource`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ConfigSource {
    Unknown,
    DynamicTopicConfig,
    DynamicBrokerConfig,
    DynamicDefaultBrokerConfig,
    StaticBrokerConfig,
    DefaultConfig,
    DynamicBrokerLoggerConfig,
    DynamicClientMetricsConfig,
    DynamicGroupConfig,
}

impl ConfigSource {
    pub fn from_code(code: i8) -> ConfigSource {
        match code {
            1 => ConfigSource::DynamicTopicConfig,
            2 => ConfigSource::DynamicBrokerConfig,
            3 => ConfigSource::DynamicDefaultBrokerConfig,
            4 => ConfigSource::StaticBrokerConfig,
            5 => ConfigSource::DefaultConfig,
            6 => ConfigSource::DynamicBrokerLoggerConfig,
            7 => ConfigSource::DynamicClientMetricsConfig,
            8 => ConfigSource::DynamicGroupConfig,
            _ => ConfigSource::Unknown,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            ConfigSource::Unknown => "UNKNOWN",
            ConfigSource::DynamicTopicConfig => "DYNAMIC_TOPIC_CONFIG",
            ConfigSource::DynamicBrokerConfig => "DYNAMIC_BROKER_CONFIG",
            ConfigSource::DynamicDefaultBrokerConfig => "DYNAMIC_DEFAULT_BROKER_CONFIG",
            ConfigSource::StaticBrokerConfig => "STATIC_BROKER_CONFIG",
            ConfigSource::DefaultConfig => "DEFAULT_CONFIG",
            ConfigSource::DynamicBrokerLoggerConfig => "DYNAMIC_BROKER_LOGGER_CONFIG",
            ConfigSource::DynamicClientMetricsConfig => "DYNAMIC_CLIENT_METRICS_CONFIG",
            ConfigSource::DynamicGroupConfig => "DYNAMIC_GROUP_CONFIG",
        }
    }
}

impl fmt::Display for ConfigSource {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.name())
    }
}

/// One value a config could take from another level (the topic override, a broker key, the
/// default), in the order the broker resolves them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigSynonym {
    pub name: String,
    /// `None` when the broker hides it (a sensitive config) or it has no value.
    pub value: Option<String>,
    pub source: ConfigSource,
}

/// One config of a resource as DescribeConfigs reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigEntry {
    pub name: String,
    /// `None` when the broker hides it (a sensitive config) or it has no value.
    pub value: Option<String>,
    pub source: ConfigSource,
    pub is_sensitive: bool,
    pub read_only: bool,
    pub synonyms: Vec<ConfigSynonym>,
}

/// The configs of each resource, or the error the broker gave for it. Resources owned by one
/// broker are asked of that broker, the rest of any broker, one request per broker.
pub fn describe_configs(
    client: &mut Client,
    resources: &[ConfigResource],
    include_synonyms: bool,
) -> Result<BTreeMap<ConfigResource, Result<Vec<ConfigEntry>, KafkaError>>, ClientError> {
    let mut by_owner: BTreeMap<Option<NodeId>, Vec<ConfigResource>> = BTreeMap::new();
    for resource in resources {
        by_owner
            .entry(resource.owner())
            .or_default()
            .push(resource.clone());
    }
    learn_addresses(client, by_owner.keys().flatten().copied())?;
    let mut results = BTreeMap::new();
    for (owner, resources) in by_owner {
        let request = DescribeConfigsRequest::default()
            .with_resources(resources.iter().map(describe_configs_resource).collect())
            .with_include_synonyms(include_synonyms);
        let response = match owner {
            Some(node) => client.send_to(node, ApiKey::DescribeConfigs, &request)?,
            None => client.send_any(ApiKey::DescribeConfigs, &request)?,
        };
        let mut answers: Vec<(ConfigResource, Result<Vec<ConfigEntry>, KafkaError>)> = response
            .results
            .into_iter()
            .filter_map(described_resource)
            .collect();
        for resource in resources {
            let position = answers
                .iter()
                .position(|(answered, _)| *answered == resource);
            let result = match position {
                Some(index) => answers.swap_remove(index).1,
                None => Err(missing_from_response(&resource)),
            };
            results.insert(resource, result);
        }
    }
    Ok(results)
}

/// The operations of IncrementalAlterConfigs, with Kafka's `AlterConfigOp.OpType` codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AlterConfigOpType {
    Set,
    Delete,
    Append,
    Subtract,
}

impl AlterConfigOpType {
    pub fn code(self) -> i8 {
        match self {
            AlterConfigOpType::Set => 0,
            AlterConfigOpType::Delete => 1,
            AlterConfigOpType::Append => 2,
            AlterConfigOpType::Subtract => 3,
        }
    }
}

/// One change to one config of a resource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlterConfigOp {
    pub name: String,
    pub op_type: AlterConfigOpType,
    pub value: Option<String>,
}

impl AlterConfigOp {
    pub fn set(name: &str, value: &str) -> AlterConfigOp {
        AlterConfigOp {
            name: name.to_string(),
            op_type: AlterConfigOpType::Set,
            value: Some(value.to_string()),
        }
    }

    /// A deletion carries the empty value, as Kafka's admin client sends it.
    pub fn delete(name: &str) -> AlterConfigOp {
        AlterConfigOp {
            name: name.to_string(),
            op_type: AlterConfigOpType::Delete,
            value: Some(String::new()),
        }
    }
}

/// Applies `operations` to one resource in one IncrementalAlterConfigs request (the broker
/// applies them all or none), sent to the broker that owns the resource.
pub fn incremental_alter_configs(
    client: &mut Client,
    resource: &ConfigResource,
    operations: &[AlterConfigOp],
) -> Result<(), ClientError> {
    let configs = operations
        .iter()
        .map(|operation| {
            AlterableConfig::default()
                .with_name(StrBytes::from_string(operation.name.clone()))
                .with_config_operation(operation.op_type.code())
                .with_value(operation.value.clone().map(StrBytes::from_string))
        })
        .collect();
    let request = IncrementalAlterConfigsRequest::default().with_resources(vec![
        AlterConfigsResource::default()
            .with_resource_type(resource.resource_type.code())
            .with_resource_name(StrBytes::from_string(resource.name.clone()))
            .with_configs(configs),
    ]);
    let response = match resource.owner() {
        Some(node) => {
            learn_addresses(client, [node])?;
            client.send_to(node, ApiKey::IncrementalAlterConfigs, &request)?
        }
        None => client.send_any(ApiKey::IncrementalAlterConfigs, &request)?,
    };
    for answer in response.responses {
        let message = answer.error_message.as_ref().map(StrBytes::as_str);
        if let Some(error) = KafkaError::with_message(answer.error_code, message) {
            return Err(error.into());
        }
    }
    Ok(())
}

/// Grows each topic to the given total partition count with one CreatePartitions request to the
/// controller; each topic gets its own answer, since the broker judges them one by one.
pub fn create_partitions(
    client: &mut Client,
    counts: &BTreeMap<String, NewPartitions>,
    timeout_ms: i32,
) -> Result<BTreeMap<String, Result<(), KafkaError>>, ClientError> {
    let topics = counts
        .iter()
        .map(|(topic, wanted)| {
            let assignments = wanted.assignments.as_ref().map(|assignments| {
                assignments
                    .iter()
                    .map(|brokers| {
                        CreatePartitionsAssignment::default()
                            .with_broker_ids(brokers.iter().copied().map(BrokerId).collect())
                    })
                    .collect()
            });
            CreatePartitionsTopic::default()
                .with_name(topic_name(topic))
                .with_count(wanted.count)
                .with_assignments(assignments)
        })
        .collect();
    let request = CreatePartitionsRequest::default()
        .with_topics(topics)
        .with_timeout_ms(timeout_ms);
    let response = client.send_controller(ApiKey::CreatePartitions, &request)?;
    let mut results: BTreeMap<String, Result<(), KafkaError>> = counts
        .keys()
        .map(|topic| (topic.clone(), Err(missing_from_response_named(topic))))
        .collect();
    for answer in response.results {
        let topic = answer.name.0.to_string();
        let message = answer.error_message.as_ref().map(StrBytes::as_str);
        let result = match KafkaError::for_topic(answer.error_code, &topic, message) {
            Some(error) => Err(error),
            None => Ok(()),
        };
        results.insert(topic, result);
    }
    Ok(results)
}

/// What CreatePartitions asks for one topic: the partition count it grows to, and the brokers
/// of each new partition when they are chosen by hand (Kafka's `NewPartitions`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewPartitions {
    pub count: i32,
    pub assignments: Option<Vec<Vec<i32>>>,
}

/// The metadata log's topic and partition, which DescribeQuorum names.
const METADATA_TOPIC: &str = "__cluster_metadata";
const METADATA_PARTITION: i32 = 0;

/// The cluster id, from DescribeCluster as Kafka's admin client asks it.
pub fn describe_cluster_id(client: &mut Client) -> Result<String, ClientError> {
    let request = DescribeClusterRequest::default();
    let response = client.send_any(ApiKey::DescribeCluster, &request)?;
    let message = response.error_message.as_ref().map(StrBytes::as_str);
    match KafkaError::with_message(response.error_code, message) {
        Some(error) => Err(error.into()),
        None => Ok(response.cluster_id.to_string()),
    }
}

/// One replica of the metadata quorum (Kafka's `QuorumInfo.ReplicaState`); timestamps are
/// milliseconds since the epoch, `None` where the broker sent -1.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuorumReplica {
    pub replica_id: i32,
    /// All zeros when the replica has no directory id.
    pub directory_id: [u8; 16],
    pub log_end_offset: i64,
    pub last_fetch_timestamp: Option<i64>,
    pub last_caught_up_timestamp: Option<i64>,
}

/// One endpoint of a voter (Kafka's `RaftVoterEndpoint`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VoterEndpoint {
    pub listener: String,
    pub host: String,
    pub port: u16,
}

impl fmt::Display for VoterEndpoint {
    /// `LISTENER://host:port`, an IPv6 host in square brackets.
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.host.contains(':') {
            true => write!(
                formatter,
                "{}://[{}]:{}",
                self.listener, self.host, self.port
            ),
            false => write!(formatter, "{}://{}:{}", self.listener, self.host, self.port),
        }
    }
}

/// The metadata quorum as DescribeQuorum reports it (Kafka's `QuorumInfo`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct QuorumInfo {
    pub leader_id: i32,
    pub leader_epoch: i32,
    pub high_watermark: i64,
    pub voters: Vec<QuorumReplica>,
    pub observers: Vec<QuorumReplica>,
    /// The endpoints of each voter by node id (DescribeQuorum v2+; empty before).
    pub nodes: BTreeMap<i32, Vec<VoterEndpoint>>,
}

/// The metadata quorum, asked of any broker. Errors as Kafka's admin client raises them: the
/// top-level error, an answer that is not exactly the metadata partition (UNKNOWN_SERVER_ERROR),
/// then the partition's error.
pub fn describe_quorum(client: &mut Client) -> Result<QuorumInfo, ClientError> {
    let request = DescribeQuorumRequest::default().with_topics(vec![QuorumTopicRequest::default()
        .with_topic_name(topic_name(METADATA_TOPIC))
        .with_partitions(vec![
            QuorumPartitionRequest::default().with_partition_index(METADATA_PARTITION)
        ])]);
    let response = client.send_any(ApiKey::DescribeQuorum, &request)?;
    Ok(quorum_info(response)?)
}

fn quorum_info(response: DescribeQuorumResponse) -> Result<QuorumInfo, KafkaError> {
    let message = response.error_message.as_ref().map(StrBytes::as_str);
    if let Some(error) = KafkaError::with_message(response.error_code, message) {
        return Err(error);
    }
    let [topic] = response.topics.as_slice() else {
        return Err(unknown_server_error(&format!(
            "DescribeMetadataQuorum received {} topics when 1 was expected",
            response.topics.len()
        )));
    };
    if topic.topic_name.as_str() != METADATA_TOPIC {
        return Err(unknown_server_error(&format!(
            "DescribeMetadataQuorum received a topic with name {} when {METADATA_TOPIC} was \
             expected",
            topic.topic_name.as_str()
        )));
    }
    let [partition] = topic.partitions.as_slice() else {
        return Err(unknown_server_error(&format!(
            "DescribeMetadataQuorum received a topic {} with {} partitions when 1 was expected",
            topic.topic_name.as_str(),
            topic.partitions.len()
        )));
    };
    if partition.partition_index != METADATA_PARTITION {
        return Err(unknown_server_error(&format!(
            "DescribeMetadataQuorum received a single partition with index {} when \
             {METADATA_PARTITION} was expected",
            partition.partition_index
        )));
    }
    let message = partition.error_message.as_ref().map(StrBytes::as_str);
    if let Some(error) = KafkaError::with_message(partition.error_code, message) {
        return Err(error);
    }
    Ok(quorum_of(partition, &response.nodes))
}

fn quorum_of(partition: &QuorumPartition, nodes: &[QuorumNode]) -> QuorumInfo {
    let replicas = |states: &[ReplicaState]| states.iter().map(quorum_replica).collect();
    QuorumInfo {
        leader_id: partition.leader_id.0,
        leader_epoch: partition.leader_epoch,
        high_watermark: partition.high_watermark,
        voters: replicas(&partition.current_voters),
        observers: replicas(&partition.observers),
        nodes: nodes
            .iter()
            .map(|node| {
                let endpoints = node
                    .listeners
                    .iter()
                    .map(|listener| VoterEndpoint {
                        listener: listener.name.to_string(),
                        host: listener.host.to_string(),
                        port: listener.port,
                    })
                    .collect();
                (node.node_id.0, endpoints)
            })
            .collect(),
    }
}

fn quorum_replica(state: &ReplicaState) -> QuorumReplica {
    let known = |timestamp: i64| (timestamp != -1).then_some(timestamp);
    QuorumReplica {
        replica_id: state.replica_id.0,
        directory_id: *state.replica_directory_id.as_bytes(),
        log_end_offset: state.log_end_offset,
        last_fetch_timestamp: known(state.last_fetch_timestamp),
        last_caught_up_timestamp: known(state.last_caught_up_timestamp),
    }
}

fn unknown_server_error(message: &str) -> KafkaError {
    const UNKNOWN_SERVER_ERROR: i16 = -1;
    KafkaError::with_message(UNKNOWN_SERVER_ERROR, Some(message))
        .unwrap_or_else(|| KafkaError::new(UNKNOWN_SERVER_ERROR))
}

/// Fetches broker addresses from Metadata when the client does not know one of `nodes` yet.
pub(super) fn learn_addresses(
    client: &mut Client,
    nodes: impl IntoIterator<Item = NodeId>,
) -> Result<(), ClientError> {
    let known = client.nodes();
    let unknown = nodes
        .into_iter()
        .any(|node| !known.iter().any(|(known_node, _)| *known_node == node));
    if unknown {
        client.metadata(Some(&[]), false)?;
    }
    Ok(())
}

fn describe_configs_resource(resource: &ConfigResource) -> DescribeConfigsResource {
    DescribeConfigsResource::default()
        .with_resource_type(resource.resource_type.code())
        .with_resource_name(StrBytes::from_string(resource.name.clone()))
        .with_configuration_keys(None)
}

/// One resource of a DescribeConfigs response; resource types the tools do not name are skipped.
fn described_resource(
    result: DescribeConfigsResult,
) -> Option<(ConfigResource, Result<Vec<ConfigEntry>, KafkaError>)> {
    let resource_type = [ConfigResourceType::Topic, ConfigResourceType::Broker]
        .into_iter()
        .find(|candidate| candidate.code() == result.resource_type)?;
    let resource = ConfigResource {
        resource_type,
        name: result.resource_name.to_string(),
    };
    let message = result.error_message.as_ref().map(StrBytes::as_str);
    let outcome = match KafkaError::with_message(result.error_code, message) {
        Some(error) => Err(error),
        None => Ok(result.configs.into_iter().map(config_entry).collect()),
    };
    Some((resource, outcome))
}

fn config_entry(config: DescribeConfigsResourceResult) -> ConfigEntry {
    ConfigEntry {
        name: config.name.to_string(),
        value: config.value.map(|value| value.to_string()),
        source: ConfigSource::from_code(config.config_source),
        is_sensitive: config.is_sensitive,
        read_only: config.read_only,
        synonyms: config
            .synonyms
            .into_iter()
            .map(|synonym| ConfigSynonym {
                name: synonym.name.to_string(),
                value: synonym.value.map(|value| value.to_string()),
                source: ConfigSource::from_code(synonym.source),
            })
            .collect(),
    }
}

/// UNKNOWN_SERVER_ERROR for a resource the broker left out of its answer.
fn missing_from_response(resource: &ConfigResource) -> KafkaError {
    missing_from_response_named(&resource.name)
}

fn missing_from_response_named(name: &str) -> KafkaError {
    unknown_server_error(&format!("The broker's response did not mention '{name}'."))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resources_go_to_their_owner() {
        // Only a single broker's own configs need that broker; defaults and topics go anywhere.
        assert_eq!(ConfigResource::broker("3").owner(), Some(NodeId(3)));
        assert_eq!(ConfigResource::broker("").owner(), None);
        assert_eq!(ConfigResource::topic("7").owner(), None);
    }

    #[test]
    fn config_sources_keep_kafka_names() {
        // The codes of DescribeConfigs map to the names kafka-configs.sh prints.
        let names: Vec<&str> = (0..=9)
            .map(|code| ConfigSource::from_code(code).name())
            .collect();
        assert_eq!(
            names,
            [
                "UNKNOWN",
                "DYNAMIC_TOPIC_CONFIG",
                "DYNAMIC_BROKER_CONFIG",
                "DYNAMIC_DEFAULT_BROKER_CONFIG",
                "STATIC_BROKER_CONFIG",
                "DEFAULT_CONFIG",
                "DYNAMIC_BROKER_LOGGER_CONFIG",
                "DYNAMIC_CLIENT_METRICS_CONFIG",
                "DYNAMIC_GROUP_CONFIG",
                "UNKNOWN",
            ]
        );
    }

    #[test]
    fn described_resources_carry_their_errors_and_synonyms() {
        // A resource-level error wins over its configs; synonyms keep their order and nulls.
        use kafka_protocol::messages::describe_configs_response::DescribeConfigsSynonym;
        let failed = DescribeConfigsResult::default()
            .with_error_code(3)
            .with_resource_type(2)
            .with_resource_name(StrBytes::from_static_str("gone"));
        let (resource, outcome) = described_resource(failed).expect("a topic");
        assert_eq!(resource, ConfigResource::topic("gone"));
        assert_eq!(outcome.map_err(|error| error.code), Err(3));

        let synonym = DescribeConfigsSynonym::default()
            .with_name(StrBytes::from_static_str("log.retention.hours"))
            .with_value(None)
            .with_source(4);
        let config = DescribeConfigsResourceResult::default()
            .with_name(StrBytes::from_static_str("retention.ms"))
            .with_value(Some(StrBytes::from_static_str("1000")))
            .with_config_source(1)
            .with_synonyms(vec![synonym]);
        let answered = DescribeConfigsResult::default()
            .with_resource_type(4)
            .with_resource_name(StrBytes::from_static_str(""))
            .with_configs(vec![config]);
        let (resource, outcome) = described_resource(answered).expect("a broker");
        assert_eq!(resource, ConfigResource::broker(""));
        let entries = outcome.expect("no error");
        assert_eq!(entries[0].source, ConfigSource::DynamicTopicConfig);
        assert_eq!(entries[0].value.as_deref(), Some("1000"));
        assert_eq!(
            entries[0].synonyms,
            vec![ConfigSynonym {
                name: "log.retention.hours".to_string(),
                value: None,
                source: ConfigSource::StaticBrokerConfig,
            }]
        );
    }

    /// Proves DescribeQuorum answers become Kafka's `QuorumInfo`: -1 timestamps are unknown,
    /// endpoints are keyed by node, and the errors come out in the admin client's order.
    #[test]
    fn quorum_answers_follow_kafka_admin() {
        use kafka_protocol::messages::describe_quorum_response::{Listener, TopicData};
        let voter = ReplicaState::default()
            .with_replica_id(BrokerId(1))
            .with_log_end_offset(9)
            .with_last_fetch_timestamp(5)
            .with_last_caught_up_timestamp(-1);
        let partition = QuorumPartition::default()
            .with_leader_id(BrokerId(1))
            .with_leader_epoch(2)
            .with_high_watermark(9)
            .with_current_voters(vec![voter]);
        let node = QuorumNode::default()
            .with_node_id(BrokerId(1))
            .with_listeners(vec![Listener::default()
                .with_name(StrBytes::from_static_str("CONTROLLER"))
                .with_host(StrBytes::from_static_str("::1"))
                .with_port(9093)]);
        let answer = |partition: QuorumPartition, name: &str| {
            DescribeQuorumResponse::default()
                .with_topics(vec![TopicData::default()
                    .with_topic_name(topic_name(name))
                    .with_partitions(vec![partition])])
                .with_nodes(vec![node.clone()])
        };
        let info = quorum_info(answer(partition.clone(), METADATA_TOPIC)).expect("no error");
        assert_eq!(
            (info.leader_id, info.leader_epoch, info.high_watermark),
            (1, 2, 9)
        );
        assert_eq!(info.voters[0].last_fetch_timestamp, Some(5));
        assert_eq!(info.voters[0].last_caught_up_timestamp, None);
        assert_eq!(info.voters[0].directory_id, [0; 16]);
        assert_eq!(info.nodes[&1][0].to_string(), "CONTROLLER://[::1]:9093");

        let refused = partition.clone().with_error_code(6);
        let error = quorum_info(answer(refused, METADATA_TOPIC)).expect_err("partition error");
        assert_eq!(error.code, 6);
        let error = quorum_info(answer(partition.clone(), "orders")).expect_err("wrong topic");
        assert_eq!(
            (error.code, error.message()),
            (
                -1,
                "DescribeMetadataQuorum received a topic with name orders when \
                 __cluster_metadata was expected"
            )
        );
        let top = answer(partition, METADATA_TOPIC).with_error_code(41);
        assert_eq!(quorum_info(top).expect_err("top-level error").code, 41);
    }

    #[test]
    fn admin_settings_follow_kafka_defaults() {
        // Without a command config the admin client is adminclient-1 with a 30 s timeout.
        let settings = admin_settings(&Properties::default()).expect("defaults");
        assert_eq!(settings.client_id, "adminclient-1");
        assert_eq!(settings.request_timeout, Duration::from_secs(30));
        let mut properties = Properties::default();
        properties.set("request.timeout.ms", "x");
        assert!(admin_settings(&properties).is_err());
    }
}
