//! SyncGroup: the leader's assignment goes to every member through the coordinator. A principal
//! without READ on the group is refused, as in Kafka.

use kafka_protocol::messages::{SyncGroupRequest, SyncGroupResponse};
use kafka_protocol::ResponseError;

use super::groups::{call, error_code};
use super::{str_bytes, RequestContext};
use crate::group::{ErrorCode, GroupCall, SyncOutcome, SyncRequest};
use crate::security::acl::Operation;

pub async fn handle(context: &RequestContext<'_>, request: SyncGroupRequest) -> SyncGroupResponse {
    if !context.group_authorized(Operation::Read, &request.group_id) {
        return SyncGroupResponse::default()
            .with_error_code(ResponseError::GroupAuthorizationFailed.code());
    }
    let sync = SyncRequest {
        member_id: request.member_id.to_string(),
        generation: request.generation_id,
        assignments: request
            .assignments
            .iter()
            .map(|entry| (entry.member_id.to_string(), entry.assignment.clone()))
            .collect(),
    };
    let group_id = request.group_id.to_string();
    let outcome = call(context, |reply| GroupCall::Sync {
        group_id,
        request: sync,
        reply,
    })
    .await
    .unwrap_or_else(|| SyncOutcome::error(ErrorCode::CoordinatorNotAvailable));
    let response = SyncGroupResponse::default()
        .with_error_code(error_code(outcome.error))
        .with_assignment(outcome.assignment);
    match context.version >= 5 {
        true => response
            .with_protocol_type(outcome.protocol_type.as_deref().map(str_bytes))
            .with_protocol_name(outcome.protocol_name.as_deref().map(str_bytes)),
        false => response,
    }
}
