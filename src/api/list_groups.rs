//! ListGroups: every group of every shard, filtered by state (v4+) and type (v5+). As in Kafka,
//! a principal with DESCRIBE on the cluster sees every group, any other only the groups it may
//! DESCRIBE.

use kafka_protocol::messages::list_groups_response::ListedGroup;
use kafka_protocol::messages::{GroupId, ListGroupsRequest, ListGroupsResponse};

use super::{str_bytes, RequestContext};
use crate::security::acl::Operation;

pub async fn handle(
    context: &RequestContext<'_>,
    request: ListGroupsRequest,
) -> ListGroupsResponse {
    let wanted_state = |state: &str| {
        request.states_filter.is_empty()
            || request
                .states_filter
                .iter()
                .any(|wanted| wanted.eq_ignore_ascii_case(state))
    };
    let wanted_type = |group_type: &str| {
        request.types_filter.is_empty()
            || request
                .types_filter
                .iter()
                .any(|wanted| wanted.eq_ignore_ascii_case(group_type))
    };
    let every_group = context.cluster_authorized(Operation::Describe);
    let groups = context
        .shard
        .list_groups()
        .await
        .into_iter()
        .filter(|listing| wanted_state(listing.state) && wanted_type(listing.group_type))
        .filter(|listing| {
            every_group || context.group_authorized(Operation::Describe, &listing.group_id)
        })
        .map(|listing| {
            ListedGroup::default()
                .with_group_id(GroupId(str_bytes(&listing.group_id)))
                .with_protocol_type(str_bytes(&listing.protocol_type))
                .with_group_state(str_bytes(listing.state))
                .with_group_type(str_bytes(listing.group_type))
        })
        .collect();
    ListGroupsResponse::default().with_groups(groups)
}
