//! LeaveGroup: one member (v0-2) or a batch of members by id or instance id (v3+). A principal
//! without READ on the group is refused as a whole (the top-level error, no members), as in
//! Kafka.

use kafka_protocol::messages::leave_group_response::MemberResponse;
use kafka_protocol::messages::{LeaveGroupRequest, LeaveGroupResponse};
use kafka_protocol::ResponseError;

use super::groups::{call, error_code};
use super::{str_bytes, RequestContext};
use crate::group::{ErrorCode, GroupCall};
use crate::security::acl::Operation;

pub async fn handle(
    context: &RequestContext<'_>,
    request: LeaveGroupRequest,
) -> LeaveGroupResponse {
    if !context.group_authorized(Operation::Read, &request.group_id) {
        return LeaveGroupResponse::default()
            .with_error_code(ResponseError::GroupAuthorizationFailed.code());
    }
    let members: Vec<(String, Option<String>)> = match context.version >= 3 {
        true => request
            .members
            .iter()
            .map(|member| {
                (
                    member.member_id.to_string(),
                    member.group_instance_id.as_ref().map(|id| id.to_string()),
                )
            })
            .collect(),
        false => vec![(request.member_id.to_string(), None)],
    };
    let group_id = request.group_id.to_string();
    let asked = members.clone();
    let codes = call(context, |reply| GroupCall::Leave {
        group_id,
        members: asked,
        reply,
    })
    .await
    .unwrap_or_else(|| vec![ErrorCode::CoordinatorNotAvailable; members.len()]);
    if context.version < 3 {
        let code = codes.first().copied().unwrap_or(ErrorCode::UnknownMemberId);
        return LeaveGroupResponse::default().with_error_code(error_code(code));
    }
    let responses = members
        .into_iter()
        .zip(codes)
        .map(|((member_id, instance_id), code)| {
            MemberResponse::default()
                .with_member_id(str_bytes(&member_id))
                .with_group_instance_id(instance_id.as_deref().map(str_bytes))
                .with_error_code(error_code(code))
        })
        .collect();
    LeaveGroupResponse::default().with_members(responses)
}
