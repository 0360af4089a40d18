//! TxnOffsetCommit: offsets a transactional producer commits for a group (a consume-transform-
//! produce loop's `sendOffsetsToTransaction`). The group's coordinator stores them in
//! `__consumer_offsets` as part of the producer's transaction; they take effect with its COMMIT
//! marker and vanish with an ABORT. From v3 the member and generation are checked as an
//! OffsetCommit's are.

use kafka_protocol::messages::txn_offset_commit_response::{
    TxnOffsetCommitResponsePartition, TxnOffsetCommitResponseTopic,
};
use kafka_protocol::messages::{TxnOffsetCommitRequest, TxnOffsetCommitResponse};

use super::groups::{call, error_code};
use super::offset_commit::{commit_codes, RequestedOffset};
use super::RequestContext;
use crate::group::{ErrorCode, GroupCall, TxnCommit};

pub async fn handle(
    context: &RequestContext<'_>,
    request: TxnOffsetCommitRequest,
) -> TxnOffsetCommitResponse {
    let requested = request
        .topics
        .iter()
        .flat_map(|topic| {
            topic.partitions.iter().map(|partition| RequestedOffset {
                topic: topic.name.to_string(),
                partition: partition.partition_index,
                offset: partition.committed_offset,
                leader_epoch: partition.committed_leader_epoch,
                metadata: partition
                    .committed_metadata
                    .as_ref()
                    .map(|text| text.to_string()),
            })
        })
        .collect();
    let (group_id, member_id) = (request.group_id.to_string(), request.member_id.to_string());
    let (producer_id, producer_epoch) = (request.producer_id.0, request.producer_epoch);
    let generation = request.generation_id;
    let commit = |offsets| async move {
        let commit = TxnCommit {
            group_id,
            producer_id,
            producer_epoch,
            member_id,
            generation,
            offsets,
        };
        let code = call(context, |reply| GroupCall::TxnCommit {
            commit: Box::new(commit),
            reply,
        })
        .await
        .unwrap_or(ErrorCode::CoordinatorNotAvailable);
        // Before v3, a fenced producer hears INVALID_PRODUCER_EPOCH (KIP-588).
        match code {
            ErrorCode::ProducerFenced if context.version < 3 => {
                kafka_protocol::ResponseError::InvalidProducerEpoch.code()
            }
            code => error_code(code),
        }
    };
    let codes = commit_codes(context, &request.group_id, requested, commit).await;
    let mut codes = codes.into_iter();
    let topics = request
        .topics
        .iter()
        .map(|topic| {
            let partitions = topic
                .partitions
                .iter()
                .map(|partition| {
                    TxnOffsetCommitResponsePartition::default()
                        .with_partition_index(partition.partition_index)
                        .with_error_code(codes.next().expect("a code per partition"))
                })
                .collect();
            TxnOffsetCommitResponseTopic::default()
                .with_name(topic.name.clone())
                .with_partitions(partitions)
        })
        .collect();
    TxnOffsetCommitResponse::default().with_topics(topics)
}
