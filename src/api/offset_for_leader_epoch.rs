//! OffsetForLeaderEpoch: the end offset of a leader epoch, which clients use to detect a log
//! truncated under them after a leader change. Every partition here has had one leader epoch,
//! the image's, since its first batch; its end is the log end offset.

use std::sync::Arc;

use kafka_protocol::messages::offset_for_leader_epoch_response::{
    EpochEndOffset, OffsetForLeaderTopicResult,
};
use kafka_protocol::messages::{OffsetForLeaderEpochRequest, OffsetForLeaderEpochResponse};
use kafka_protocol::ResponseError;

use super::{scatter_partitions, RequestContext};
use crate::runtime::mesh::{ListOffsetsPart, OffsetQuery, ShardRequest};

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
                    query: OffsetQuery::Latest,
                };
                (topic.topic.as_str(), partition.partition, part)
            })
        })
        .collect();
    let mut ends = scatter_partitions(context, requested, |parts, reply| {
        ShardRequest::ListOffsets { parts, reply }
    })
    .await
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
                        (Ok((log_end, _)), Some(leader_epoch)) => epoch_end(
                            result,
                            partition.current_leader_epoch,
                            partition.leader_epoch,
                            leader_epoch,
                            log_end,
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

/// The answer for one partition whose only leader epoch is `leader_epoch` and whose log ends
/// at `log_end`, checking the client's view of the epoch first as Kafka does.
fn epoch_end(
    result: EpochEndOffset,
    current_leader_epoch: i32,
    requested_epoch: i32,
    leader_epoch: i32,
    log_end: i64,
) -> EpochEndOffset {
    if current_leader_epoch != NO_EPOCH_CHECK && current_leader_epoch < leader_epoch {
        return result.with_error_code(ResponseError::FencedLeaderEpoch.code());
    }
    if current_leader_epoch > leader_epoch {
        return result.with_error_code(ResponseError::UnknownLeaderEpoch.code());
    }
    // Nothing was ever appended: no epoch has an end yet.
    if log_end == 0 || requested_epoch > leader_epoch || requested_epoch < 0 {
        return result;
    }
    result
        .with_leader_epoch(leader_epoch)
        .with_end_offset(log_end)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Proves Kafka's answers: the current epoch ends at the log end, a later or unknown one
    /// is undefined, and a stale or future `current_leader_epoch` is refused.
    #[test]
    fn answers_as_kafka() {
        let base = || {
            EpochEndOffset::default()
                .with_leader_epoch(-1)
                .with_end_offset(-1)
        };
        let current = epoch_end(base(), -1, 0, 0, 42);
        assert_eq!((current.leader_epoch, current.end_offset), (0, 42));
        let later = epoch_end(base(), 0, 3, 0, 42);
        assert_eq!(
            (later.error_code, later.leader_epoch, later.end_offset),
            (0, -1, -1)
        );
        let empty = epoch_end(base(), -1, 0, 0, 0);
        assert_eq!(empty.end_offset, -1);
        assert_eq!(
            epoch_end(base(), 5, 0, 0, 42).error_code,
            ResponseError::UnknownLeaderEpoch.code()
        );
        assert_eq!(
            epoch_end(base(), 1, 1, 2, 42).error_code,
            ResponseError::FencedLeaderEpoch.code()
        );
    }
}
