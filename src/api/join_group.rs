//! JoinGroup: hands the join to the group's coordinator and waits for the rebalance to finish.
//! A principal without READ on the group is refused first, as in Kafka.

use std::time::Duration;

use kafka_protocol::messages::join_group_response::JoinGroupResponseMember;
use kafka_protocol::messages::{JoinGroupRequest, JoinGroupResponse};
use kafka_protocol::ResponseError;

use super::groups::{call, error_code};
use super::{str_bytes, RequestContext};
use crate::group::{ErrorCode, GroupCall, JoinOutcome, JoinRequest};
use crate::security::acl::Operation;

pub async fn handle(context: &RequestContext<'_>, request: JoinGroupRequest) -> JoinGroupResponse {
    if !context.group_authorized(Operation::Read, &request.group_id) {
        // Kafka's error answer: no member id, generation -1.
        return response(context.version, JoinOutcome::error(ErrorCode::None, ""))
            .with_error_code(ResponseError::GroupAuthorizationFailed.code());
    }
    if request.group_id.is_empty() {
        return response(
            context.version,
            JoinOutcome::error(ErrorCode::InvalidGroupId, &request.member_id),
        );
    }
    let config = &context.shard.config;
    if request.session_timeout_ms < config.group_min_session_timeout_ms
        || request.session_timeout_ms > config.group_max_session_timeout_ms
    {
        return response(
            context.version,
            JoinOutcome::error(ErrorCode::InvalidSessionTimeout, &request.member_id),
        );
    }
    // Before v1 there was no rebalance timeout: it was the session timeout.
    let rebalance_timeout_ms = if context.version >= 1 {
        request.rebalance_timeout_ms
    } else {
        request.session_timeout_ms
    };
    let join = JoinRequest {
        group_id: request.group_id.to_string(),
        member_id: request.member_id.to_string(),
        instance_id: request.group_instance_id.as_ref().map(|id| id.to_string()),
        client_id: context.client_id.clone(),
        client_host: context.connection.client_host.clone(),
        session_timeout: Duration::from_millis(request.session_timeout_ms.max(0) as u64),
        rebalance_timeout: Duration::from_millis(rebalance_timeout_ms.max(0) as u64),
        protocol_type: request.protocol_type.to_string(),
        protocols: request
            .protocols
            .iter()
            .map(|protocol| (protocol.name.to_string(), protocol.metadata.clone()))
            .collect(),
        requires_known_member_id: context.version >= 4,
    };
    let member_id = join.member_id.clone();
    let outcome = call(context, |reply| GroupCall::Join {
        request: join,
        reply,
    })
    .await
    .unwrap_or_else(|| JoinOutcome::error(ErrorCode::CoordinatorNotAvailable, &member_id));
    response(context.version, outcome)
}

fn response(version: i16, outcome: JoinOutcome) -> JoinGroupResponse {
    let members = outcome
        .members
        .into_iter()
        .map(|(member_id, instance_id, metadata)| {
            JoinGroupResponseMember::default()
                .with_member_id(str_bytes(&member_id))
                .with_group_instance_id(instance_id.as_deref().map(str_bytes))
                .with_metadata(metadata)
        })
        .collect();
    let response = JoinGroupResponse::default()
        .with_error_code(error_code(outcome.error))
        .with_generation_id(outcome.generation)
        .with_leader(str_bytes(&outcome.leader))
        .with_member_id(str_bytes(&outcome.member_id))
        .with_members(members);
    // v7 added the protocol type; before it, the name could not be null.
    match version >= 7 {
        true => response
            .with_protocol_type(outcome.protocol_type.as_deref().map(str_bytes))
            .with_protocol_name(outcome.protocol_name.as_deref().map(str_bytes)),
        false => response.with_protocol_name(Some(str_bytes(
            outcome.protocol_name.as_deref().unwrap_or_default(),
        ))),
    }
}
