//! ElectLeaders (KIP-460): preferred or unclean leader elections, decided by the active
//! controller (`Controller::election_record`) and answered partition by partition. A request
//! naming no partitions means every partition; its answer then lists only the partitions whose
//! election was needed, as Kafka's does.

use crate::security::acl::Operation;
use std::collections::BTreeMap;

use kafka_protocol::messages::elect_leaders_response::{PartitionResult, ReplicaElectionResult};
use kafka_protocol::messages::{ElectLeadersRequest, ElectLeadersResponse, TopicName};
use kafka_protocol::ResponseError;

use super::{ask_controller, str_bytes, topic_error_code, RequestContext};
use crate::controller::{ControllerRequest, TopicError};

/// Kafka's ElectionType: 0 preferred, 1 unclean.
const PREFERRED: i8 = 0;
const UNCLEAN: i8 = 1;

pub async fn handle(
    context: &RequestContext<'_>,
    request: ElectLeadersRequest,
) -> ElectLeadersResponse {
    // v0 has no election type: it is always a preferred election.
    let election_type = match context.version {
        0 => PREFERRED,
        _ => request.election_type,
    };
    // Kafka's check: ALTER on the cluster.
    if !context.cluster_authorized(Operation::Alter) {
        return ElectLeadersResponse::default()
            .with_error_code(ResponseError::ClusterAuthorizationFailed.code());
    }
    if election_type != PREFERRED && election_type != UNCLEAN {
        return ElectLeadersResponse::default()
            .with_error_code(ResponseError::InvalidRequest.code());
    }
    let every_partition = request.topic_partitions.is_none();
    let partitions: Vec<(String, i32)> = match &request.topic_partitions {
        Some(topics) => topics
            .iter()
            .flat_map(|topic| {
                let name = topic.topic.to_string();
                topic
                    .partitions
                    .iter()
                    .map(move |index| (name.clone(), *index))
            })
            .collect(),
        None => {
            let image = context.shard.metadata();
            image
                .topics
                .values()
                .flat_map(|topic| {
                    (0..topic.partitions.len() as i32).map(|index| (topic.name.clone(), index))
                })
                .collect()
        }
    };
    let results = ask_controller(context, |reply| ControllerRequest::ElectLeaders {
        preferred: election_type == PREFERRED,
        partitions: partitions.clone(),
        reply,
    })
    .await
    .unwrap_or_else(|| {
        let stopped = TopicError::Storage("the controller has stopped".into());
        partitions.iter().map(|_| Err(stopped.clone())).collect()
    });
    let mut by_topic: BTreeMap<String, Vec<PartitionResult>> = BTreeMap::new();
    for ((topic, index), result) in partitions.into_iter().zip(results) {
        if every_partition && result == Err(TopicError::ElectionNotNeeded) {
            continue;
        }
        let answer = PartitionResult::default().with_partition_id(index);
        let answer = match result {
            Ok(()) => answer,
            Err(error) => answer
                .with_error_code(topic_error_code(&error))
                .with_error_message(Some(str_bytes(&error.to_string()))),
        };
        by_topic.entry(topic).or_default().push(answer);
    }
    let results = by_topic
        .into_iter()
        .map(|(topic, partition_result)| {
            ReplicaElectionResult::default()
                .with_topic(TopicName(str_bytes(&topic)))
                .with_partition_result(partition_result)
        })
        .collect();
    ElectLeadersResponse::default().with_replica_election_results(results)
}
