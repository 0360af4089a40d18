//! DescribeCluster (KIP-700): the cluster id, the controller and the brokers at their addresses
//! for the client's listener. Without an authorizer every cluster operation is allowed, and the
//! authorized operations are reported as such when asked.

use kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use kafka_protocol::messages::{BrokerId, DescribeClusterRequest, DescribeClusterResponse};
use kafka_protocol::ResponseError;

use super::authorized_operations::{self, Resource};
use super::metadata::advertised_endpoint;
use super::{str_bytes, RequestContext};

/// `endpoint_type` values (v1+).
const BROKER_ENDPOINTS: i8 = 1;

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
    let operations = authorized_operations::bitfield_for(
        context,
        Resource::Cluster,
        crate::security::acl::CLUSTER_NAME,
        request.include_cluster_authorized_operations,
    );
    response
        .with_cluster_id(str_bytes(&image.cluster_id))
        .with_controller_id(BrokerId(image.controller_id))
        .with_brokers(brokers)
        .with_cluster_authorized_operations(operations)
}
