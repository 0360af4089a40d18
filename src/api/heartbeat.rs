//! Heartbeat: keeps a member's session alive and tells it when to rejoin.

use kafka_protocol::messages::{HeartbeatRequest, HeartbeatResponse};

use super::groups::{call, error_code};
use super::RequestContext;
use crate::group::{ErrorCode, GroupCall};

pub async fn handle(context: &RequestContext<'_>, request: HeartbeatRequest) -> HeartbeatResponse {
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
