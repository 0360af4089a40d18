//! WriteTxnMarkers: a transaction coordinator on another broker asks this one to write COMMIT
//! or ABORT markers to partitions it leads (`Shard::write_markers`, on each partition's
//! shard). Each partition is answered with Kafka's code for what happened. As in Kafka, the
//! principal needs ALTER or CLUSTER_ACTION on the cluster; without, every partition is
//! CLUSTER_AUTHORIZATION_FAILED and nothing is written.

use std::sync::Arc;

use kafka_protocol::messages::write_txn_markers_request::WritableTxnMarker;
use kafka_protocol::messages::write_txn_markers_response::{
    WritableTxnMarkerPartitionResult, WritableTxnMarkerResult, WritableTxnMarkerTopicResult,
};
use kafka_protocol::messages::{WriteTxnMarkersRequest, WriteTxnMarkersResponse};
use kafka_protocol::ResponseError;

use super::RequestContext;
use crate::partition::Marker;
use crate::security::acl::Operation;
use crate::storage::batch::ControlType;

pub async fn handle(
    context: &RequestContext<'_>,
    request: WriteTxnMarkersRequest,
) -> WriteTxnMarkersResponse {
    let authorized = context.cluster_authorized(Operation::Alter)
        || context.cluster_authorized(Operation::ClusterAction);
    let mut markers = Vec::with_capacity(request.markers.len());
    for requested in &request.markers {
        if !authorized {
            markers.push(refused(requested));
            continue;
        }
        let marker = Marker {
            producer_id: requested.producer_id.0,
            producer_epoch: requested.producer_epoch,
            coordinator_epoch: requested.coordinator_epoch,
            kind: match requested.transaction_result {
                true => ControlType::Commit,
                false => ControlType::Abort,
            },
        };
        let parts = requested
            .topics
            .iter()
            .flat_map(|topic| {
                let name: Arc<str> = Arc::from(topic.name.as_str());
                topic
                    .partition_indexes
                    .iter()
                    .map(move |index| (name.clone(), *index, marker))
            })
            .collect();
        let mut outcomes = context.shard.write_markers(parts).await.into_iter();
        let topics = requested
            .topics
            .iter()
            .map(|topic| {
                let partitions = topic
                    .partition_indexes
                    .iter()
                    .map(|index| {
                        let code = match outcomes.next().expect("an outcome per partition") {
                            Ok(()) => 0,
                            Err(error) => super::produce::partition_error_code(&error),
                        };
                        WritableTxnMarkerPartitionResult::default()
                            .with_partition_index(*index)
                            .with_error_code(code)
                    })
                    .collect();
                WritableTxnMarkerTopicResult::default()
                    .with_name(topic.name.clone())
                    .with_partitions(partitions)
            })
            .collect();
        markers.push(
            WritableTxnMarkerResult::default()
                .with_producer_id(requested.producer_id)
                .with_topics(topics),
        );
    }
    WriteTxnMarkersResponse::default().with_markers(markers)
}

/// The answer to a marker the principal may not write: every partition refused.
fn refused(requested: &WritableTxnMarker) -> WritableTxnMarkerResult {
    let topics = requested
        .topics
        .iter()
        .map(|topic| {
            let partitions = topic
                .partition_indexes
                .iter()
                .map(|index| {
                    WritableTxnMarkerPartitionResult::default()
                        .with_partition_index(*index)
                        .with_error_code(ResponseError::ClusterAuthorizationFailed.code())
                })
                .collect();
            WritableTxnMarkerTopicResult::default()
                .with_name(topic.name.clone())
                .with_partitions(partitions)
        })
        .collect();
    WritableTxnMarkerResult::default()
        .with_producer_id(requested.producer_id)
        .with_topics(topics)
}
