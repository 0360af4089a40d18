//! OffsetForLeaderEpoch: where a leader epoch ends in the leader's log, which clients (and
//! followers of other brokers) use to detect a log truncated under them after a leader change.
//! Answered from the partition's leader epoch cache (`leader-epoch-checkpoint`): the largest
//! epoch at most the one asked, ending where the next epoch starts, or at the log end for the
//! current epoch.

use std::sync::Arc;

use kafka_protocol::messages::offset_for_leader_epoch_response::{
    EpochEndOffset, OffsetForLeaderTopicResult,
};
use kafka_protocol::messages::{OffsetForLeaderEpochRequest, OffsetForLeaderEpochResponse};
use kafka_protocol::ResponseError;

use super::authorize::scatter_authorized;
use super::{scatter_partitions, RequestContext};
use crate::runtime::mesh::{ListOffsetsPart, OffsetQuery, ShardRequest};
use crate::security::acl::Operation;

/// Kafka's UNDEFINED_EPOCH and UNDEFINED_EPOCH_OFFSET.
const UNDEFINED: i32 = -1;
/// `current_leader_epoch` when the client does not check it.
const NO_EPOCH_CHECK: i32 = -1;

pub async fn handle(
    context: &RequestContext<'_>,
    request: OffsetForLeaderEpochRequest,
) -> OffsetForLeaderEpochResponse {
    let image = context.shard.metadata();
    let requested = request
        .topics
        .iter()
        .flat_map(|topic| {
            let name: Arc<str> = Arc::from(topic.topic.as_str());
            topic.partitions.iter().map(move |partition| {
                let part = ListOffsetsPart {
                    topic: name.clone(),
                    partition: partition.partition,
                    query: OffsetQuery::EpochEnd(partition.leader_epoch),
                };
                (topic.topic.as_str(), partition.partition, part)
            })
        })
        .collect();
    // Kafka's check: CLUSTER_ACTION (a follower) covers every topic; otherwise DESCRIBE on each.
    let build = |parts, reply| ShardRequest::ListOffsets { parts, reply };
    let mut ends = match context.cluster_authorized(Operation::ClusterAction) {
        true => scatter_partitions(context, requested, build).await,
        false => scatter_authorized(context, Operation::Describe, requested, build).await,
    }
    .into_iter();
    let topics = request
        .topics
        .iter()
        .map(|topic| {
            let partitions = topic
                .partitions
                .iter()
                .map(|partition| {
                    let end = ends.next().expect("an answer per partition");
                    let result = EpochEndOffset::default()
                        .with_partition(partition.partition)
                        .with_leader_epoch(UNDEFINED)
                        .with_end_offset(i64::from(UNDEFINED));
                    let leader_epoch = image
                        .topic(topic.topic.as_str())
                        .and_then(|known| known.partitions.get(partition.partition as usize))
                        .map(|known| known.leader_epoch);
                    match (end, leader_epoch) {
                        (Ok((end, epoch)), Some(leader_epoch)) => epoch_end(
                            result,
                            partition.current_leader_epoch,
                            leader_epoch,
                            (epoch as i32, end),
                        ),
                        (Err(error), _) => {
                            result.with_error_code(super::produce::partition_error_code(&error))
                        }
                        (Ok(_), None) => {
                            result.with_error_code(ResponseError::UnknownTopicOrPartition.code())
                        }
                    }
                })
                .collect();
            OffsetForLeaderTopicResult::default()
                .with_topic(topic.topic.clone())
                .with_partitions(partitions)
        })
        .collect();
    OffsetForLeaderEpochResponse::default().with_topics(topics)
}

/// The answer for one partition whose leader is in `leader_epoch` and whose log answered
/// `found` (epoch, end offset) for the requested epoch, checking the client's view of the
/// leader epoch first as Kafka does.
fn epoch_end(
    result: EpochEndOffset,
    current_leader_epoch: i32,
    leader_epoch: i32,
    found: (i32, i64),
) -> EpochEndOffset {
    if current_leader_epoch != NO_EPOCH_CHECK && current_leader_epoch < leader_epoch {
        return result.with_error_code(ResponseError::FencedLeaderEpoch.code());
    }
    if current_leader_epoch > leader_epoch {
        return result.with_error_code(ResponseError::UnknownLeaderEpoch.code());
    }
    result.with_leader_epoch(found.0).with_end_offset(found.1)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Proves the leader epoch checks and that the log's answer is passed on.
    #[test]
    fn answers_as_kafka() {
        let base = || {
            EpochEndOffset::default()
                .with_leader_epoch(-1)
                .with_end_offset(-1)
        };
        let current = epoch_end(base(), -1, 3, (3, 42));
        assert_eq!((current.leader_epoch, current.end_offset), (3, 42));
        let older = epoch_end(base(), 3, 3, (1, 17));
        assert_eq!(
            (older.error_code, older.leader_epoch, older.end_offset),
            (0, 1, 17)
        );
        let unknown = epoch_end(base(), -1, 3, (-1, -1));
        assert_eq!((unknown.leader_epoch, unknown.end_offset), (-1, -1));
        assert_eq!(
            epoch_end(base(), 5, 0, (0, 42)).error_code,
            ResponseError::UnknownLeaderEpoch.code()
        );
        assert_eq!(
            epoch_end(base(), 1, 2, (2, 42)).error_code,
            ResponseError::FencedLeaderEpoch.code()
        );
    }
}
