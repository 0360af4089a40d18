//! DescribeCluster (KIP-700): the cluster id, the controller and the brokers at their addresses
//! for the client's listener. Without an authorizer every cluster operation is allowed, and the
//! authorized operations are reported as such when asked.

use kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use kafka_protocol::messages::{BrokerId, DescribeClusterRequest, DescribeClusterResponse};
use kafka_protocol::ResponseError;

use super::metadata::advertised_endpoint;
use super::{str_bytes, RequestContext};

/// `endpoint_type` values (v1+).
const BROKER_ENDPOINTS: i8 = 1;

/// Kafka's "not requested" value of authorized operations.
const OPERATIONS_NOT_REQUESTED: i32 = i32::MIN;

/// Kafka's `AclOperation` codes allowed on the cluster resource when no authorizer is set:
/// CREATE 5, ALTER 7, DESCRIBE 8, CLUSTER_ACTION 9, DESCRIBE_CONFIGS 10, ALTER_CONFIGS 11,
/// IDEMPOTENT_WRITE 12.
const CLUSTER_OPERATIONS: &[u32] = &[5, 7, 8, 9, 10, 11, 12];

pub async fn handle(
    context: &RequestContext<'_>,
    request: DescribeClusterRequest,
) -> DescribeClusterResponse {
    let response = DescribeClusterResponse::default().with_endpoint_type(BROKER_ENDPOINTS);
    if context.version >= 1 && request.endpoint_type != BROKER_ENDPOINTS {
        return response
            .with_error_code(ResponseError::UnsupportedEndpointType.code())
            .with_error_message(Some(str_bytes(
                "This broker serves broker endpoints only (endpoint type 1).",
            )));
    }
    let image = context.shard.metadata();
    // v2 may ask for fenced brokers too (KIP-1073), each marked as such.
    let with_fenced = context.version >= 2 && request.include_fenced_brokers;
    let brokers = image
        .brokers
        .iter()
        .filter(|broker| with_fenced || !broker.fenced)
        .filter_map(|broker| {
            let endpoint = advertised_endpoint(context, broker)?;
            Some(
                DescribeClusterBroker::default()
                    .with_broker_id(BrokerId(broker.node_id))
                    .with_host(str_bytes(&endpoint.host))
                    .with_port(i32::from(endpoint.port))
                    .with_rack(None)
                    .with_is_fenced(broker.fenced),
            )
        })
        .collect();
    let operations = match request.include_cluster_authorized_operations {
        true => CLUSTER_OPERATIONS
            .iter()
            .fold(0i32, |bits, operation| bits | (1 << operation)),
        false => OPERATIONS_NOT_REQUESTED,
    };
    response
        .with_cluster_id(str_bytes(&image.cluster_id))
        .with_controller_id(BrokerId(image.controller_id))
        .with_brokers(brokers)
        .with_cluster_authorized_operations(operations)
}
