//! Shared plumbing of the group APIs: routing a call to the group's coordinator shard, waiting
//! for its answer, and the Kafka error codes of group outcomes.

use kafka_protocol::ResponseError;

use super::RequestContext;
use crate::group::{ErrorCode, GroupCall};

/// Sends the call built around a fresh reply channel to the group's coordinator and waits.
/// `None` only if the coordinator's shard has stopped (the process is exiting).
pub async fn call<T>(
    context: &RequestContext<'_>,
    build: impl FnOnce(flume::Sender<T>) -> GroupCall,
) -> Option<T> {
    let (reply, answer) = flume::bounded(1);
    context.shard.group_call(build(reply)).await;
    answer.recv_async().await.ok()
}

pub fn error_code(error: ErrorCode) -> i16 {
    let error = match error {
        ErrorCode::None => return 0,
        ErrorCode::CoordinatorLoadInProgress => ResponseError::CoordinatorLoadInProgress,
        ErrorCode::CoordinatorNotAvailable => ResponseError::CoordinatorNotAvailable,
        ErrorCode::NotCoordinator => ResponseError::NotCoordinator,
        ErrorCode::IllegalGeneration => ResponseError::IllegalGeneration,
        ErrorCode::InconsistentGroupProtocol => ResponseError::InconsistentGroupProtocol,
        ErrorCode::UnknownMemberId => ResponseError::UnknownMemberId,
        ErrorCode::RebalanceInProgress => ResponseError::RebalanceInProgress,
        ErrorCode::MemberIdRequired => ResponseError::MemberIdRequired,
        ErrorCode::GroupIdNotFound => ResponseError::GroupIdNotFound,
        ErrorCode::NonEmptyGroup => ResponseError::NonEmptyGroup,
        ErrorCode::GroupSubscribedToTopic => ResponseError::GroupSubscribedToTopic,
        ErrorCode::InvalidGroupId => ResponseError::InvalidGroupId,
        ErrorCode::InvalidSessionTimeout => ResponseError::InvalidSessionTimeout,
        ErrorCode::ProducerFenced => ResponseError::ProducerFenced,
        ErrorCode::FencedMemberEpoch => ResponseError::FencedMemberEpoch,
        ErrorCode::StaleMemberEpoch => ResponseError::StaleMemberEpoch,
        ErrorCode::UnsupportedAssignor => ResponseError::UnsupportedAssignor,
    };
    error.code()
}
