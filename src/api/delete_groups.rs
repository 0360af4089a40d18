//! DeleteGroups: removes empty groups and their committed offsets.

use kafka_protocol::messages::delete_groups_response::DeletableGroupResult;
use kafka_protocol::messages::{DeleteGroupsRequest, DeleteGroupsResponse};

use super::groups::{call, error_code};
use super::RequestContext;
use crate::group::{ErrorCode, GroupCall};

pub async fn handle(
    context: &RequestContext<'_>,
    request: DeleteGroupsRequest,
) -> DeleteGroupsResponse {
    let mut results = Vec::with_capacity(request.groups_names.len());
    for group_id in &request.groups_names {
        let id = group_id.to_string();
        let code = match id.is_empty() {
            true => ErrorCode::InvalidGroupId,
            false => call(context, |reply| GroupCall::Delete {
                group_id: id,
                reply,
            })
            .await
            .unwrap_or(ErrorCode::CoordinatorNotAvailable),
        };
        results.push(
            DeletableGroupResult::default()
                .with_group_id(group_id.clone())
                .with_error_code(error_code(code)),
        );
    }
    DeleteGroupsResponse::default().with_results(results)
}
