//! OffsetFetch: committed offsets of one group (v0-7) or several (v8+); -1 where none. With
//! `require_stable` (v7+), a partition whose offset an open transaction has pending is
//! UNSTABLE_OFFSET_COMMIT until the transaction ends. Offsets are shown only of a group and
//! topics the principal may DESCRIBE (`fetch`).

use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponseGroup, OffsetFetchResponsePartition, OffsetFetchResponsePartitions,
    OffsetFetchResponseTopic, OffsetFetchResponseTopics,
};
use kafka_protocol::messages::{GroupId, OffsetFetchRequest, OffsetFetchResponse, TopicName};

use kafka_protocol::ResponseError;

use super::groups::{call, error_code};
use super::{str_bytes, RequestContext};
use crate::group::{ErrorCode, FetchedOffset, GroupCall};
use crate::security::acl::Operation;

/// Rows by topic in the wire layout `$topic`/`$partition`: before v8 and from v8 on, the
/// response holds the same fields under different types.
macro_rules! topics_in_layout {
    ($topic:ident, $partition:ident, $topics:expr) => {
        $topics
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

/// One group's answer before it takes a version's layout: its rows by topic, or its error code.
type GroupRows = Result<Vec<(String, Vec<PartitionRow>)>, i16>;

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
                    .map(|topic| (topic.name.as_str(), topic.partition_indexes.as_slice()))
                    .collect::<Vec<_>>()
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
            let rows = fetch(
                context,
                &group.group_id,
                wanted,
                member,
                request.require_stable,
            )
            .await;
            groups.push(group_response(group.group_id.clone(), rows));
        }
        return OffsetFetchResponse::default().with_groups(groups);
    }
    let wanted = request.topics.as_ref().map(|topics| {
        topics
            .iter()
            .map(|topic| (topic.name.as_str(), topic.partition_indexes.as_slice()))
            .collect::<Vec<_>>()
    });
    let require_stable = context.version >= 7 && request.require_stable;
    let rows = match fetch(
        context,
        &request.group_id,
        wanted.clone(),
        None,
        require_stable,
    )
    .await
    {
        Ok(rows) => rows,
        // Before v2 there is no group error: each named partition carries it, as in Kafka.
        Err(code) if context.version < 2 => wanted
            .unwrap_or_default()
            .into_iter()
            .map(|(topic, partitions)| (topic.to_string(), refused_rows(partitions, code)))
            .collect(),
        Err(code) => return OffsetFetchResponse::default().with_error_code(code),
    };
    OffsetFetchResponse::default().with_topics(topics_in_layout!(
        OffsetFetchResponseTopic,
        OffsetFetchResponsePartition,
        rows
    ))
}

/// The group's committed offsets for the named partitions, or all of them (`None`), as the
/// principal may see them. Kafka's checks: DESCRIBE on the group (else the group's error
/// GROUP_AUTHORIZATION_FAILED); DESCRIBE on each topic, a named topic's partitions being
/// TOPIC_AUTHORIZATION_FAILED and, when all are asked for, a topic silently left out.
async fn fetch(
    context: &RequestContext<'_>,
    group_id: &GroupId,
    wanted: Option<Vec<(&str, &[i32])>>,
    member: Option<(String, i32)>,
    require_stable: bool,
) -> GroupRows {
    if !context.group_authorized(Operation::Describe, group_id) {
        return Err(ResponseError::GroupAuthorizationFailed.code());
    }
    let mut refused = Vec::new();
    let partitions = wanted.map(|topics| {
        let mut partitions = Vec::new();
        for (topic, indexes) in topics {
            match context.topic_authorized(Operation::Describe, topic) {
                true => partitions.extend(indexes.iter().map(|index| (topic.to_string(), *index))),
                false => refused.push((
                    topic.to_string(),
                    refused_rows(indexes, ResponseError::TopicAuthorizationFailed.code()),
                )),
            }
        }
        partitions
    });
    let every_topic = partitions.is_none();
    let offsets = ask(context, group_id, partitions, member, require_stable)
        .await
        .map_err(error_code)?;
    let mut rows = grouped(offsets);
    if every_topic {
        rows.retain(|(topic, _)| context.topic_authorized(Operation::Describe, topic));
    }
    rows.extend(refused);
    Ok(rows)
}

/// Asks the group's coordinator for the committed offsets of `partitions` (`None`: all).
async fn ask(
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

fn group_response(group_id: GroupId, rows: GroupRows) -> OffsetFetchResponseGroup {
    match rows {
        Ok(rows) => OffsetFetchResponseGroup::default()
            .with_group_id(group_id)
            .with_topics(topics_in_layout!(
                OffsetFetchResponseTopics,
                OffsetFetchResponsePartitions,
                rows
            )),
        Err(code) => OffsetFetchResponseGroup::default()
            .with_group_id(group_id)
            .with_error_code(code),
    }
}

/// Rows refusing each of `partitions` with `code`: no offset, no epoch, no metadata.
fn refused_rows(partitions: &[i32], code: i16) -> Vec<PartitionRow> {
    partitions
        .iter()
        .map(|index| (*index, -1, -1, String::new(), code))
        .collect()
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
