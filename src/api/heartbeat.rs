//! Heartbeat: keeps a member's session alive and tells it when to rejoin. A principal without
//! READ on the group is refused, as in Kafka.

use kafka_protocol::messages::{HeartbeatRequest, HeartbeatResponse};
use kafka_protocol::ResponseError;

use super::groups::{call, error_code};
use super::RequestContext;
use crate::group::{ErrorCode, GroupCall};
use crate::security::acl::Operation;

pub async fn handle(context: &RequestContext<'_>, request: HeartbeatRequest) -> HeartbeatResponse {
    if !context.group_authorized(Operation::Read, &request.group_id) {
        return HeartbeatResponse::default()
            .with_error_code(ResponseError::GroupAuthorizationFailed.code());
    }
    let (group_id, member_id) = (request.group_id.to_string(), request.member_id.to_string());
    let generation = request.generation_id;
    let code = call(context, |reply| GroupCall::Heartbeat {
        group_id,
        member_id,
        generation,
        reply,
    })
    .await
    .unwrap_or(ErrorCode::CoordinatorNotAvailable);
    HeartbeatResponse::default().with_error_code(error_code(code))
}
