//! The client's view of a cluster: bootstrap, broker addresses and partition leaders from
//! Metadata, and one lazily opened connection per node so that partition requests go to the
//! partition's leader. A connection that fails is dropped and reopened on next use; callers decide
//! whether to refresh metadata and retry.

use std::collections::HashMap;
use std::time::Duration;

use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::{ApiKey, BrokerId, MetadataRequest, MetadataResponse, TopicName};
use kafka_protocol::protocol::{Request, StrBytes};

use super::connection::Connection;
use super::error::{ClientError, KafkaError};
use super::security::ClientSecurity;

/// Kafka's request.timeout.ms default.
pub const REQUEST_TIMEOUT_DEFAULT: Duration = Duration::from_secs(30);

/// A broker's id, as used for leaders, replicas and the controller.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeId(pub i32);

impl NodeId {
    /// Kafka's "no node" marker, used for a partition without a leader.
    pub const NONE: NodeId = NodeId(-1);
}

/// One partition as Metadata describes it.
#[derive(Debug, Clone)]
pub struct PartitionMetadata {
    pub partition: i32,
    pub leader: NodeId,
    pub replicas: Vec<NodeId>,
    pub in_sync_replicas: Vec<NodeId>,
}

/// One topic as Metadata describes it, partitions sorted by index.
#[derive(Debug, Clone)]
pub struct TopicMetadata {
    pub name: String,
    pub topic_id: [u8; 16],
    pub is_internal: bool,
    pub error: Option<KafkaError>,
    pub partitions: Vec<PartitionMetadata>,
}

/// The topics of one Metadata response.
#[derive(Debug, Clone, Default)]
pub struct ClusterMetadata {
    pub topics: Vec<TopicMetadata>,
}

impl ClusterMetadata {
    pub fn topic(&self, name: &str) -> Option<&TopicMetadata> {
        self.topics.iter().find(|topic| topic.name == name)
    }
}

/// Settings shared by every connection of a client.
#[derive(Debug, Clone)]
pub struct ClientSettings {
    pub client_id: String,
    pub request_timeout: Duration,
    /// TLS and SASL, from Kafka's client keys (`security.protocol`, `ssl.*`, `sasl.*`).
    pub security: ClientSecurity,
}

/// A blocking client for one cluster.
pub struct Client {
    settings: ClientSettings,
    bootstrap_addresses: Vec<String>,
    bootstrap: Option<Connection>,
    node_addresses: HashMap<NodeId, String>,
    connections: HashMap<NodeId, Connection>,
    controller: Option<NodeId>,
}

impl Client {
    /// Connects to the first reachable server of a comma-separated `host:port` list.
    pub fn connect(
        bootstrap_servers: &str,
        settings: ClientSettings,
    ) -> Result<Client, ClientError> {
        let bootstrap_addresses = parse_bootstrap(bootstrap_servers)?;
        let mut client = Client {
            settings,
            bootstrap_addresses,
            bootstrap: None,
            node_addresses: HashMap::new(),
            connections: HashMap::new(),
            controller: None,
        };
        client.bootstrap_connection()?;
        Ok(client)
    }

    /// Fetches metadata for `topics` (all topics when `None`) and remembers broker addresses.
    pub fn metadata(
        &mut self,
        topics: Option<&[String]>,
        allow_auto_topic_creation: bool,
    ) -> Result<ClusterMetadata, ClientError> {
        let request = MetadataRequest::default()
            .with_topics(topics.map(|names| names.iter().map(|name| request_topic(name)).collect()))
            .with_allow_auto_topic_creation(allow_auto_topic_creation);
        let response = self.send_any(ApiKey::Metadata, &request)?;
        Ok(self.absorb_metadata(response))
    }

    /// Fetches metadata for one topic (auto-creating it if the broker does) and returns it; a
    /// topic missing from the answer is UNKNOWN_TOPIC_OR_PARTITION, a topic-level error is
    /// returned as such.
    pub fn topic_metadata(&mut self, topic: &str) -> Result<TopicMetadata, ClientError> {
        const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
        let metadata = self.metadata(Some(&[topic.to_string()]), true)?;
        let found = metadata
            .topic(topic)
            .ok_or(ClientError::Kafka(KafkaError::new(
                UNKNOWN_TOPIC_OR_PARTITION,
            )))?;
        match &found.error {
            Some(error) => Err(error.clone().into()),
            None => Ok(found.clone()),
        }
    }

    /// The correlation id of the last request on the bootstrap connection (for log lines).
    pub fn last_correlation_id(&self) -> i32 {
        self.bootstrap
            .as_ref()
            .map_or(0, Connection::last_correlation_id)
    }

    /// Whether the bootstrap broker advertises `api`.
    pub fn supports(&mut self, api: ApiKey) -> Result<bool, ClientError> {
        Ok(self.bootstrap_connection()?.supports(api))
    }

    /// Sends `request` to any broker (the bootstrap connection).
    pub fn send_any<R: Request>(
        &mut self,
        api: ApiKey,
        request: &R,
    ) -> Result<R::Response, ClientError> {
        let result = self.bootstrap_connection()?.send(api, request);
        if result.as_ref().is_err_and(ClientError::is_transport) {
            self.bootstrap = None;
        }
        result
    }

    /// Sends `request` to the controller when metadata named one, else to any broker.
    pub fn send_controller<R: Request>(
        &mut self,
        api: ApiKey,
        request: &R,
    ) -> Result<R::Response, ClientError> {
        if self.controller.is_none() {
            self.metadata(Some(&[]), false)?;
        }
        match self.controller {
            Some(node) if self.node_addresses.contains_key(&node) => {
                self.send_to(node, api, request)
            }
            _ => self.send_any(api, request),
        }
    }

    /// Sends `request` to node `node`, opening a connection to it if needed.
    pub fn send_to<R: Request>(
        &mut self,
        node: NodeId,
        api: ApiKey,
        request: &R,
    ) -> Result<R::Response, ClientError> {
        let result = self.node_connection(node)?.send(api, request);
        if result.as_ref().is_err_and(ClientError::is_transport) {
            self.connections.remove(&node);
        }
        result
    }

    /// Sends the request `build` makes for the version negotiated with node `node`, with an
    /// optional read timeout for this request only (see `Connection::send_built`).
    pub fn send_built_to<R: Request>(
        &mut self,
        node: NodeId,
        api: ApiKey,
        read_timeout: Option<Duration>,
        build: impl FnOnce(i16) -> R,
    ) -> Result<R::Response, ClientError> {
        let result = self
            .node_connection(node)?
            .send_built(api, read_timeout, build);
        if result.as_ref().is_err_and(ClientError::is_transport) {
            self.connections.remove(&node);
        }
        result
    }

    /// Sends the request `build` makes for the version the bootstrap broker negotiated.
    pub fn send_built_any<R: Request>(
        &mut self,
        api: ApiKey,
        build: impl FnOnce(i16) -> R,
    ) -> Result<R::Response, ClientError> {
        let result = self.bootstrap_connection()?.send_built(api, None, build);
        if result.as_ref().is_err_and(ClientError::is_transport) {
            self.bootstrap = None;
        }
        result
    }

    /// Remembers the address of a node learnt outside Metadata (a group coordinator from
    /// FindCoordinator), dropping a connection to an old address of the same node.
    pub fn remember_node(&mut self, node: NodeId, address: String) {
        if self.node_addresses.get(&node) != Some(&address) {
            self.connections.remove(&node);
            self.node_addresses.insert(node, address);
        }
    }

    /// The nodes and addresses known from the last Metadata, sorted by node id.
    pub fn nodes(&self) -> Vec<(NodeId, String)> {
        let mut nodes: Vec<(NodeId, String)> = self
            .node_addresses
            .iter()
            .map(|(node, address)| (*node, address.clone()))
            .collect();
        nodes.sort();
        nodes
    }

    /// Sends `request` to node `node` without waiting for a response (Produce with acks=0).
    pub fn send_to_without_response<R: Request>(
        &mut self,
        node: NodeId,
        api: ApiKey,
        request: &R,
    ) -> Result<(), ClientError> {
        let result = self
            .node_connection(node)?
            .send_without_response(api, request);
        if result.as_ref().is_err_and(ClientError::is_transport) {
            self.connections.remove(&node);
        }
        result
    }

    fn node_connection(&mut self, node: NodeId) -> Result<&mut Connection, ClientError> {
        if !self.connections.contains_key(&node) {
            let address = self
                .node_addresses
                .get(&node)
                .ok_or(ClientError::UnknownNode { node_id: node.0 })?;
            let connection = Connection::open(address, &self.settings)?;
            self.connections.insert(node, connection);
        }
        self.connections
            .get_mut(&node)
            .ok_or(ClientError::UnknownNode { node_id: node.0 })
    }

    /// The bootstrap connection, reconnecting through the bootstrap list in order if needed.
    fn bootstrap_connection(&mut self) -> Result<&mut Connection, ClientError> {
        if self.bootstrap.is_none() {
            let mut last_error = ClientError::NoBootstrapServers;
            for address in &self.bootstrap_addresses {
                match Connection::open(address, &self.settings) {
                    Ok(connection) => {
                        self.bootstrap = Some(connection);
                        break;
                    }
                    Err(error) => last_error = error,
                }
            }
            if self.bootstrap.is_none() {
                return Err(last_error);
            }
        }
        self.bootstrap
            .as_mut()
            .ok_or(ClientError::NoBootstrapServers)
    }

    fn absorb_metadata(&mut self, response: MetadataResponse) -> ClusterMetadata {
        for broker in &response.brokers {
            let address = format!("{}:{}", broker.host.as_str(), broker.port);
            self.remember_node(NodeId(broker.node_id.0), address);
        }
        self.controller = Some(NodeId(response.controller_id.0)).filter(|node| node.0 >= 0);
        ClusterMetadata {
            topics: response.topics.into_iter().map(topic_metadata).collect(),
        }
    }
}

fn request_topic(name: &str) -> MetadataRequestTopic {
    MetadataRequestTopic::default()
        .with_name(Some(TopicName(StrBytes::from_string(name.to_string()))))
}

fn topic_metadata(
    topic: kafka_protocol::messages::metadata_response::MetadataResponseTopic,
) -> TopicMetadata {
    let name = topic
        .name
        .map(|name| name.0.to_string())
        .unwrap_or_default();
    let mut partitions: Vec<PartitionMetadata> = topic
        .partitions
        .into_iter()
        .map(|partition| PartitionMetadata {
            partition: partition.partition_index,
            leader: NodeId(partition.leader_id.0),
            replicas: node_ids(&partition.replica_nodes),
            in_sync_replicas: node_ids(&partition.isr_nodes),
        })
        .collect();
    partitions.sort_by_key(|partition| partition.partition);
    TopicMetadata {
        error: KafkaError::for_topic(topic.error_code, &name, None),
        name,
        topic_id: *topic.topic_id.as_bytes(),
        is_internal: topic.is_internal,
        partitions,
    }
}

fn node_ids(brokers: &[BrokerId]) -> Vec<NodeId> {
    brokers.iter().map(|broker| NodeId(broker.0)).collect()
}

/// Splits a comma-separated `host:port` list, rejecting entries without a port.
pub fn parse_bootstrap(servers: &str) -> Result<Vec<String>, ClientError> {
    let addresses: Vec<String> = servers
        .split(',')
        .map(str::trim)
        .filter(|entry| !entry.is_empty())
        .map(str::to_string)
        .collect();
    for address in &addresses {
        let port = address.rsplit_once(':').map(|(_, port)| port);
        if port.and_then(|port| port.parse::<u16>().ok()).is_none() {
            return Err(ClientError::InvalidAddress {
                address: address.clone(),
            });
        }
    }
    if addresses.is_empty() {
        return Err(ClientError::NoBootstrapServers);
    }
    Ok(addresses)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bootstrap_lists_need_ports() {
        // Entries are split on commas, trimmed, and each must carry a numeric port.
        let addresses = parse_bootstrap("a:1, b:2,").expect("valid list");
        assert_eq!(addresses, vec!["a:1".to_string(), "b:2".to_string()]);
        assert!(parse_bootstrap("localhost").is_err());
        assert!(parse_bootstrap("").is_err());
    }
}
