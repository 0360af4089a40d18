//! OffsetFetch: committed offsets of one group (v0-7) or several (v8+); -1 where none. With
//! `require_stable` (v7+), a partition whose offset an open transaction has pending is
//! UNSTABLE_OFFSET_COMMIT until the transaction ends.

use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponseGroup, OffsetFetchResponsePartition, OffsetFetchResponsePartitions,
    OffsetFetchResponseTopic, OffsetFetchResponseTopics,
};
use kafka_protocol::messages::{GroupId, OffsetFetchRequest, OffsetFetchResponse, TopicName};

use kafka_protocol::ResponseError;

use super::groups::{call, error_code};
use super::{str_bytes, RequestContext};
use crate::group::{ErrorCode, FetchedOffset, GroupCall};

/// Committed offsets by topic in the wire layout `$topic`/`$partition`: before v8 and from v8
/// on, the response holds the same fields under different types.
macro_rules! topics_in_layout {
    ($topic:ident, $partition:ident, $offsets:expr) => {
        grouped($offsets)
            .into_iter()
            .map(|(topic, partitions)| {
                let partitions = partitions
                    .into_iter()
                    .map(|(index, offset, epoch, metadata, error)| {
                        $partition::default()
                            .with_partition_index(index)
                            .with_committed_offset(offset)
                            .with_committed_leader_epoch(epoch)
                            .with_metadata(Some(str_bytes(&metadata)))
                            .with_error_code(error)
                    })
                    .collect();
                $topic::default()
                    .with_name(TopicName(str_bytes(&topic)))
                    .with_partitions(partitions)
            })
            .collect::<Vec<_>>()
    };
}

pub async fn handle(
    context: &RequestContext<'_>,
    request: OffsetFetchRequest,
) -> OffsetFetchResponse {
    if context.version >= 8 {
        let mut groups = Vec::with_capacity(request.groups.len());
        for group in &request.groups {
            let wanted = group.topics.as_ref().map(|topics| {
                topics
                    .iter()
                    .flat_map(|topic| {
                        topic
                            .partition_indexes
                            .iter()
                            .map(|index| (topic.name.to_string(), *index))
                    })
                    .collect()
            });
            // v9+: a member reading its group's offsets names itself (Kafka checks it against a
            // KIP-848 group); no member id and a negative epoch name nobody.
            let member = match (&group.member_id, group.member_epoch) {
                (None, epoch) if epoch < 0 => None,
                (id, epoch) => Some((
                    id.as_ref().map_or_else(String::new, |id| id.to_string()),
                    epoch,
                )),
            };
            let fetched = fetch(
                context,
                &group.group_id,
                wanted,
                member,
                request.require_stable,
            )
            .await;
            groups.push(group_response(group.group_id.clone(), fetched));
        }
        return OffsetFetchResponse::default().with_groups(groups);
    }
    let wanted = request.topics.as_ref().map(|topics| {
        topics
            .iter()
            .flat_map(|topic| {
                topic
                    .partition_indexes
                    .iter()
                    .map(|index| (topic.name.to_string(), *index))
            })
            .collect()
    });
    let require_stable = context.version >= 7 && request.require_stable;
    match fetch(context, &request.group_id, wanted, None, require_stable).await {
        Ok(offsets) => OffsetFetchResponse::default().with_topics(topics_in_layout!(
            OffsetFetchResponseTopic,
            OffsetFetchResponsePartition,
            offsets
        )),
        Err(code) => OffsetFetchResponse::default().with_error_code(error_code(code)),
    }
}

async fn fetch(
    context: &RequestContext<'_>,
    group_id: &GroupId,
    partitions: Option<Vec<(String, i32)>>,
    member: Option<(String, i32)>,
    require_stable: bool,
) -> Result<Vec<FetchedOffset>, ErrorCode> {
    if group_id.is_empty() {
        return Err(ErrorCode::InvalidGroupId);
    }
    let group_id = group_id.to_string();
    call(context, |reply| GroupCall::FetchOffsets {
        group_id,
        partitions,
        member,
        require_stable,
        reply,
    })
    .await
    .unwrap_or(Err(ErrorCode::CoordinatorNotAvailable))
}

fn group_response(
    group_id: GroupId,
    fetched: Result<Vec<FetchedOffset>, ErrorCode>,
) -> OffsetFetchResponseGroup {
    let offsets = match fetched {
        Ok(offsets) => offsets,
        Err(code) => {
            return OffsetFetchResponseGroup::default()
                .with_group_id(group_id)
                .with_error_code(error_code(code))
        }
    };
    let topics = topics_in_layout!(
        OffsetFetchResponseTopics,
        OffsetFetchResponsePartitions,
        offsets
    );
    OffsetFetchResponseGroup::default()
        .with_group_id(group_id)
        .with_topics(topics)
}

/// (partition, offset or -1, leader epoch or -1, metadata, error code) per topic, topics in
/// first-seen order. A partition whose offset a transaction has pending, when the reader asked
/// for stable offsets, is UNSTABLE_OFFSET_COMMIT with no offset, as Kafka answers.
type PartitionRow = (i32, i64, i32, String, i16);

fn grouped(offsets: Vec<FetchedOffset>) -> Vec<(String, Vec<PartitionRow>)> {
    let mut topics: Vec<(String, Vec<PartitionRow>)> = Vec::new();
    for (topic, partition, committed, unstable) in offsets {
        let row = match committed {
            _ if unstable => (
                partition,
                -1,
                -1,
                String::new(),
                ResponseError::UnstableOffsetCommit.code(),
            ),
            Some(committed) => (
                partition,
                committed.offset,
                committed.leader_epoch,
                committed.metadata,
                0,
            ),
            None => (partition, -1, -1, String::new(), 0),
        };
        match topics.iter_mut().find(|(name, _)| *name == topic) {
            Some((_, rows)) => rows.push(row),
            None => topics.push((topic, vec![row])),
        }
    }
    topics
}
