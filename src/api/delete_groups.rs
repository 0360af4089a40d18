//! DeleteGroups: removes empty groups and their committed offsets; a group the principal may
//! not DELETE is GROUP_AUTHORIZATION_FAILED, as in Kafka.

use kafka_protocol::messages::delete_groups_response::DeletableGroupResult;
use kafka_protocol::messages::{DeleteGroupsRequest, DeleteGroupsResponse};
use kafka_protocol::ResponseError;

use super::groups::{call, error_code};
use super::RequestContext;
use crate::group::{ErrorCode, GroupCall};
use crate::security::acl::Operation;

pub async fn handle(
    context: &RequestContext<'_>,
    request: DeleteGroupsRequest,
) -> DeleteGroupsResponse {
    let mut results = Vec::with_capacity(request.groups_names.len());
    for group_id in &request.groups_names {
        let id = group_id.to_string();
        let code = if !context.group_authorized(Operation::Delete, &id) {
            ResponseError::GroupAuthorizationFailed.code()
        } else if id.is_empty() {
            error_code(ErrorCode::InvalidGroupId)
        } else {
            let deleted = call(context, |reply| GroupCall::Delete {
                group_id: id,
                reply,
            })
            .await;
            error_code(deleted.unwrap_or(ErrorCode::CoordinatorNotAvailable))
        };
        results.push(
            DeletableGroupResult::default()
                .with_group_id(group_id.clone())
                .with_error_code(code),
        );
    }
    DeleteGroupsResponse::default().with_results(results)
}
