//! DescribeQuorum (KIP-595, KIP-836, KIP-853): the state of the metadata quorum, the Raft log
//! `__cluster_metadata-0`, as the active controller sees it. Kafka's brokers forward the request
//! to the active controller; here the broker asks its controller over the controller channel.
//!
//! Answers as Kafka's `KafkaRaftClient` does: a request naming anything but exactly
//! `__cluster_metadata` partition 0 gets UNKNOWN_TOPIC_OR_PARTITION on every partition it
//! named; a controller that cannot answer gets that error on the partition. v1 adds each
//! replica's last fetch and last caught-up times, v2 error messages, replica directory ids
//! (none here: the voters come from `controller.quorum.voters`, which names no directories)
//! and the voters' controller listener endpoints.

use crate::security::acl::Operation;
use kafka_protocol::messages::describe_quorum_response::{
    Listener, Node, PartitionData, ReplicaState, TopicData,
};
use kafka_protocol::messages::{BrokerId, DescribeQuorumRequest, DescribeQuorumResponse};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

use super::{ask_controller, str_bytes, topic_error_code, RequestContext};
use crate::config::listeners::Voter;
use crate::controller::{ControllerRequest, QuorumStatus, ReplicaStatus};

/// The metadata log's topic and its one partition.
pub const METADATA_TOPIC: &str = "__cluster_metadata";
pub const METADATA_PARTITION: i32 = 0;

/// First version with error messages, replica directory ids and the `nodes` list.
const NODES_VERSION: i16 = 2;

pub async fn handle(
    context: &RequestContext<'_>,
    request: DescribeQuorumRequest,
) -> DescribeQuorumResponse {
    // Kafka's check: DESCRIBE on the cluster.
    if !context.cluster_authorized(Operation::Describe) {
        return response().with_error_code(ResponseError::ClusterAuthorizationFailed.code());
    }
    if !names_metadata_partition(&request) {
        return unknown_partitions(&request);
    }
    let version = context.version;
    let answer = ask_controller(context, |reply| ControllerRequest::DescribeQuorum { reply }).await;
    match answer {
        Some(Ok(status)) => {
            let config = &context.shard.config;
            let listener_name = config
                .controller_listener_names
                .first()
                .map_or("", String::as_str);
            described(
                version,
                &status,
                &config.controller_quorum_voters,
                listener_name,
            )
        }
        Some(Err(error)) => {
            let message = (version >= NODES_VERSION).then(|| str_bytes(&error.to_string()));
            partition_error(topic_error_code(&error), message)
        }
        None => response()
            .with_error_code(ResponseError::NotController.code())
            .with_error_message(
                (version >= NODES_VERSION).then(|| str_bytes("the controller is not running")),
            ),
    }
}

/// Kafka's `hasValidTopicPartition`: exactly one topic, `__cluster_metadata`, with exactly one
/// partition, 0.
fn names_metadata_partition(request: &DescribeQuorumRequest) -> bool {
    match request.topics.as_slice() {
        [topic] => {
            topic.topic_name.as_str() == METADATA_TOPIC
                && matches!(topic.partitions.as_slice(),
                    [partition] if partition.partition_index == METADATA_PARTITION)
        }
        _ => false,
    }
}

/// Every requested partition, echoed with UNKNOWN_TOPIC_OR_PARTITION and nothing else (Kafka's
/// `getPartitionLevelErrorResponse`); no top-level error.
fn unknown_partitions(request: &DescribeQuorumRequest) -> DescribeQuorumResponse {
    let code = ResponseError::UnknownTopicOrPartition.code();
    let topics = request
        .topics
        .iter()
        .map(|topic| {
            TopicData::default()
                .with_topic_name(topic.topic_name.clone())
                .with_partitions(
                    topic
                        .partitions
                        .iter()
                        .map(|partition| partition_data(partition.partition_index, code))
                        .collect(),
                )
        })
        .collect();
    response().with_topics(topics)
}

/// The metadata partition alone, carrying `code` (Kafka's `singletonErrorResponse`).
fn partition_error(code: i16, message: Option<StrBytes>) -> DescribeQuorumResponse {
    let partition = partition_data(METADATA_PARTITION, code).with_error_message(message);
    response().with_topics(vec![metadata_topic(partition)])
}

/// The quorum as `version` carries it (Kafka's `RaftUtil.singletonDescribeQuorumResponse`).
/// From v2 every voter is listed in `nodes` with its endpoint on the controller listener, as
/// `controller.quorum.voters` gives it; observers are not.
fn described(
    version: i16,
    status: &QuorumStatus,
    configured_voters: &[Voter],
    listener_name: &str,
) -> DescribeQuorumResponse {
    let replicas = |statuses: &[ReplicaStatus]| -> Vec<ReplicaState> {
        statuses.iter().map(replica_state).collect()
    };
    let partition = partition_data(METADATA_PARTITION, 0)
        .with_leader_id(BrokerId(status.leader_id))
        .with_leader_epoch(status.leader_epoch)
        .with_high_watermark(status.high_watermark)
        .with_current_voters(replicas(&status.voters))
        .with_observers(replicas(&status.observers));
    let response = response().with_topics(vec![metadata_topic(partition)]);
    if version < NODES_VERSION {
        return response;
    }
    let nodes = status
        .voters
        .iter()
        .map(|voter| {
            let listeners = configured_voters
                .iter()
                .filter(|configured| configured.node_id == voter.replica_id)
                .map(|configured| {
                    Listener::default()
                        .with_name(str_bytes(listener_name))
                        .with_host(str_bytes(&configured.host))
                        .with_port(configured.port)
                })
                .collect();
            Node::default()
                .with_node_id(BrokerId(voter.replica_id))
                .with_listeners(listeners)
        })
        .collect();
    response.with_nodes(nodes)
}

/// One replica; its directory id stays nil (no directories are configured), which is also the
/// only value v0 and v1 can carry. v0 leaves the timestamps out when encoding.
fn replica_state(status: &ReplicaStatus) -> ReplicaState {
    ReplicaState::default()
        .with_replica_id(BrokerId(status.replica_id))
        .with_log_end_offset(status.log_end_offset)
        .with_last_fetch_timestamp(status.last_fetch_timestamp)
        .with_last_caught_up_timestamp(status.last_caught_up_timestamp)
}

/// A response with no error and a null error message (the crate's default is "").
fn response() -> DescribeQuorumResponse {
    DescribeQuorumResponse::default().with_error_message(None)
}

fn metadata_topic(partition: PartitionData) -> TopicData {
    TopicData::default()
        .with_topic_name(str_bytes(METADATA_TOPIC).into())
        .with_partitions(vec![partition])
}

/// A partition with `code`, a null message and Kafka's zero defaults elsewhere.
fn partition_data(index: i32, code: i16) -> PartitionData {
    PartitionData::default()
        .with_partition_index(index)
        .with_error_code(code)
        .with_error_message(None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::BytesMut;
    use kafka_protocol::messages::describe_quorum_request::{
        PartitionData as RequestPartition, TopicData as RequestTopic,
    };
    use kafka_protocol::protocol::{Decodable, Encodable};

    fn request(topics: &[(&str, &[i32])]) -> DescribeQuorumRequest {
        DescribeQuorumRequest::default().with_topics(
            topics
                .iter()
                .map(|(name, partitions)| {
                    RequestTopic::default()
                        .with_topic_name(str_bytes(name).into())
                        .with_partitions(
                            partitions
                                .iter()
                                .map(|index| {
                                    RequestPartition::default().with_partition_index(*index)
                                })
                                .collect(),
                        )
                })
                .collect(),
        )
    }

    fn single_node() -> QuorumStatus {
        QuorumStatus {
            leader_id: 1,
            leader_epoch: 3,
            high_watermark: 42,
            voters: vec![ReplicaStatus {
                replica_id: 1,
                log_end_offset: 42,
                last_fetch_timestamp: 1_700_000_000_000,
                last_caught_up_timestamp: 1_700_000_000_000,
            }],
            observers: vec![ReplicaStatus {
                replica_id: 4,
                log_end_offset: 40,
                last_fetch_timestamp: -1,
                last_caught_up_timestamp: -1,
            }],
        }
    }

    fn voters() -> Vec<Voter> {
        vec![Voter {
            node_id: 1,
            host: "localhost".into(),
            port: 9093,
        }]
    }

    fn round_trip(response: &DescribeQuorumResponse, version: i16) -> DescribeQuorumResponse {
        let mut buffer = BytesMut::new();
        response.encode(&mut buffer, version).expect("encodes");
        let mut bytes = buffer.freeze();
        let decoded = DescribeQuorumResponse::decode(&mut bytes, version).expect("decodes");
        assert!(bytes.is_empty(), "v{version} left bytes over");
        decoded
    }

    /// Proves only `__cluster_metadata` partition 0, alone, is the metadata partition.
    #[test]
    fn only_the_metadata_partition_is_valid() {
        assert!(names_metadata_partition(&request(&[(
            METADATA_TOPIC,
            &[0]
        )])));
        assert!(!names_metadata_partition(&request(&[(
            METADATA_TOPIC,
            &[1]
        )])));
        assert!(!names_metadata_partition(&request(&[(
            METADATA_TOPIC,
            &[0, 0]
        )])));
        assert!(!names_metadata_partition(&request(&[("orders", &[0])])));
        assert!(!names_metadata_partition(&request(&[
            (METADATA_TOPIC, &[0]),
            (METADATA_TOPIC, &[0])
        ])));
        assert!(!names_metadata_partition(&request(&[])));
    }

    /// Proves a wrong request echoes each partition it named with UNKNOWN_TOPIC_OR_PARTITION
    /// and no top-level error, in every version.
    #[test]
    fn wrong_partitions_are_unknown() {
        let answer = unknown_partitions(&request(&[("orders", &[0, 7]), ("x", &[])]));
        for version in 0..=2 {
            let decoded = round_trip(&answer, version);
            assert_eq!(decoded.error_code, 0);
            let names: Vec<&str> = decoded
                .topics
                .iter()
                .map(|t| t.topic_name.as_str())
                .collect();
            assert_eq!(names, ["orders", "x"]);
            let partitions: Vec<(i32, i16)> = decoded.topics[0]
                .partitions
                .iter()
                .map(|p| (p.partition_index, p.error_code))
                .collect();
            assert_eq!(partitions, [(0, 3), (7, 3)]);
            assert!(decoded.topics[1].partitions.is_empty());
        }
    }

    /// Proves each served version carries what Kafka's does: v0 offsets only, v1 the
    /// timestamps, v2 the voters' endpoints on the controller listener and null messages.
    #[test]
    fn versions_round_trip() {
        let status = single_node();
        for version in 0..=2 {
            let decoded = round_trip(
                &described(version, &status, &voters(), "CONTROLLER"),
                version,
            );
            let [topic] = decoded.topics.as_slice() else {
                panic!("one topic")
            };
            assert_eq!(topic.topic_name.as_str(), METADATA_TOPIC);
            let [partition] = topic.partitions.as_slice() else {
                panic!("one partition")
            };
            assert_eq!(
                (
                    partition.error_code,
                    partition.leader_id.0,
                    partition.leader_epoch,
                    partition.high_watermark
                ),
                (0, 1, 3, 42)
            );
            let voter = &partition.current_voters[0];
            let observer = &partition.observers[0];
            assert_eq!((voter.replica_id.0, voter.log_end_offset), (1, 42));
            assert_eq!((observer.replica_id.0, observer.log_end_offset), (4, 40));
            let expected_fetch = if version >= 1 { 1_700_000_000_000 } else { -1 };
            assert_eq!(voter.last_fetch_timestamp, expected_fetch);
            assert_eq!(voter.last_caught_up_timestamp, expected_fetch);
            assert_eq!(observer.last_fetch_timestamp, -1);
            if version < 2 {
                assert!(decoded.nodes.is_empty());
                continue;
            }
            assert_eq!(decoded.error_message, None);
            assert_eq!(partition.error_message, None);
            let [node] = decoded.nodes.as_slice() else {
                panic!("one node per voter")
            };
            let endpoints: Vec<(&str, &str, u16)> = node
                .listeners
                .iter()
                .map(|l| (l.name.as_str(), l.host.as_str(), l.port))
                .collect();
            assert_eq!(node.node_id.0, 1);
            assert_eq!(endpoints, [("CONTROLLER", "localhost", 9093)]);
        }
    }

    /// Proves a voter missing from `controller.quorum.voters` is listed without endpoints.
    #[test]
    fn voter_without_configured_address_has_no_endpoints() {
        let mut status = single_node();
        status.voters.push(ReplicaStatus {
            replica_id: 2,
            ..ReplicaStatus::default()
        });
        let answer = described(2, &status, &voters(), "CONTROLLER");
        let ids: Vec<(i32, usize)> = answer
            .nodes
            .iter()
            .map(|node| (node.node_id.0, node.listeners.len()))
            .collect();
        assert_eq!(ids, [(1, 1), (2, 0)]);
    }

    /// Proves a controller's refusal lands on the metadata partition, with its message from v2.
    #[test]
    fn controller_errors_land_on_the_partition() {
        let answer = partition_error(6, Some(str_bytes("not the leader")));
        let decoded = round_trip(&answer, 2);
        assert_eq!(decoded.error_code, 0);
        let partition = &decoded.topics[0].partitions[0];
        assert_eq!((partition.partition_index, partition.error_code), (0, 6));
        assert_eq!(
            partition.error_message.as_ref().map(StrBytes::as_str),
            Some("not the leader")
        );
        let decoded = round_trip(&partition_error(6, None), 0);
        assert_eq!(decoded.topics[0].partitions[0].error_code, 6);
    }
}
