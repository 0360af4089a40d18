//! DescribeGroups: state, protocol and members (with their metadata and assignments).

use kafka_protocol::messages::describe_groups_response::{DescribedGroup, DescribedGroupMember};
use kafka_protocol::messages::{DescribeGroupsRequest, DescribeGroupsResponse, GroupId};

use super::authorized_operations::{self, Resource};
use super::groups::{call, error_code};
use super::{str_bytes, RequestContext};
use crate::group::{ErrorCode, GroupCall};
use crate::security::acl::Operation;
use kafka_protocol::ResponseError;

pub async fn handle(
    context: &RequestContext<'_>,
    request: DescribeGroupsRequest,
) -> DescribeGroupsResponse {
    let mut groups = Vec::with_capacity(request.groups.len());
    for group_id in &request.groups {
        let id = group_id.to_string();
        if !context.group_authorized(Operation::Describe, &id) {
            groups.push(
                DescribedGroup::default()
                    .with_group_id(group_id.clone())
                    .with_error_code(ResponseError::GroupAuthorizationFailed.code()),
            );
            continue;
        }
        let described = match id.is_empty() {
            true => None,
            false => {
                call(context, |reply| GroupCall::Describe {
                    group_id: id,
                    reply,
                })
                .await
            }
        };
        let Some(described) = described else {
            groups.push(
                DescribedGroup::default()
                    .with_group_id(group_id.clone())
                    .with_error_code(error_code(ErrorCode::InvalidGroupId)),
            );
            continue;
        };
        let members = described
            .members
            .into_iter()
            .map(|member| {
                DescribedGroupMember::default()
                    .with_member_id(str_bytes(&member.member_id))
                    .with_group_instance_id(member.instance_id.as_deref().map(str_bytes))
                    .with_client_id(str_bytes(&member.client_id))
                    .with_client_host(str_bytes(&member.client_host))
                    .with_member_metadata(member.metadata)
                    .with_member_assignment(member.assignment)
            })
            .collect();
        // From v6 on an unknown group is GROUP_ID_NOT_FOUND (KIP-1043); before, a Dead group.
        let (error, message) = match described.state {
            "Dead" if context.version >= 6 && described.error == ErrorCode::None => (
                ErrorCode::GroupIdNotFound,
                Some(str_bytes(&format!(
                    "Group {} not found.",
                    described.group_id
                ))),
            ),
            _ => (described.error, None),
        };
        groups.push(
            DescribedGroup::default()
                .with_error_code(error_code(error))
                .with_error_message(message)
                .with_group_id(GroupId(str_bytes(&described.group_id)))
                .with_group_state(str_bytes(described.state))
                .with_protocol_type(str_bytes(&described.protocol_type))
                .with_protocol_data(str_bytes(&described.protocol))
                .with_members(members)
                .with_authorized_operations(authorized_operations::bitfield_for(
                    context,
                    Resource::Group,
                    &described.group_id,
                    request.include_authorized_operations,
                )),
        );
    }
    DescribeGroupsResponse::default().with_groups(groups)
}
