//! ConsumerGroupDescribe (KIP-848): epochs, assignor, and each member's current and target
//! assignment.

use kafka_protocol::messages::consumer_group_describe_response::{
    Assignment, DescribedGroup, Member, TopicPartitions,
};
use kafka_protocol::messages::{
    ConsumerGroupDescribeRequest, ConsumerGroupDescribeResponse, TopicName,
};
use kafka_protocol::ResponseError;

use super::authorized_operations::{self, Resource};
use super::groups::call;
use super::{str_bytes, RequestContext};
use crate::group::consumer::TopicPartition;
use crate::group::GroupCall;
use crate::metadata::MetadataImage;
use crate::security::acl::Operation;

/// ConsumerGroupDescribe's member type for a member that joined with the new protocol.
const MEMBER_TYPE_CONSUMER: i8 = 1;

pub async fn handle(
    context: &RequestContext<'_>,
    request: ConsumerGroupDescribeRequest,
) -> ConsumerGroupDescribeResponse {
    let image = context.shard.metadata();
    let mut groups = Vec::with_capacity(request.group_ids.len());
    for group_id in &request.group_ids {
        let id = group_id.to_string();
        if !context.group_authorized(Operation::Describe, &id) {
            groups.push(
                DescribedGroup::default()
                    .with_group_id(group_id.clone())
                    .with_error_code(ResponseError::GroupAuthorizationFailed.code()),
            );
            continue;
        }
        let described = call(context, |reply| GroupCall::ConsumerDescribe {
            group_id: id,
            reply,
        })
        .await
        .flatten();
        let Some(described) = described else {
            groups.push(
                DescribedGroup::default()
                    .with_group_id(group_id.clone())
                    .with_error_code(ResponseError::GroupIdNotFound.code())
                    .with_error_message(Some(str_bytes(&format!(
                        "Group {} not found.",
                        group_id.as_str()
                    )))),
            );
            continue;
        };
        let members = described
            .members
            .iter()
            .map(|(member, assigned, target)| {
                Member::default()
                    .with_member_id(str_bytes(&member.member_id))
                    .with_instance_id(member.instance_id.as_deref().map(str_bytes))
                    .with_member_epoch(member.member_epoch)
                    .with_client_id(str_bytes(&member.client_id))
                    .with_client_host(str_bytes(&member.client_host))
                    .with_subscribed_topic_names(
                        member
                            .subscribed
                            .iter()
                            .map(|name| TopicName(str_bytes(name)))
                            .collect(),
                    )
                    .with_assignment(assignment(&image, assigned))
                    .with_target_assignment(assignment(&image, target))
                    .with_member_type(MEMBER_TYPE_CONSUMER)
            })
            .collect();
        groups.push(
            DescribedGroup::default()
                .with_group_id(group_id.clone())
                .with_group_state(str_bytes(described.state))
                .with_group_epoch(described.epoch)
                .with_assignment_epoch(described.epoch)
                .with_assignor_name(str_bytes(&described.assignor))
                .with_members(members)
                .with_authorized_operations(authorized_operations::bitfield_for(
                    context,
                    Resource::Group,
                    group_id.as_str(),
                    request.include_authorized_operations,
                )),
        );
    }
    ConsumerGroupDescribeResponse::default().with_groups(groups)
}

fn assignment(image: &MetadataImage, partitions: &[TopicPartition]) -> Assignment {
    let mut topics: Vec<TopicPartitions> = Vec::new();
    for (name, index) in partitions {
        let Some(topic) = image.topic(name) else {
            continue;
        };
        match topics
            .iter_mut()
            .find(|entry| entry.topic_name.as_str() == name)
        {
            Some(entry) => entry.partitions.push(*index),
            None => topics.push(
                TopicPartitions::default()
                    .with_topic_id(uuid::Uuid::from_bytes(topic.id.0))
                    .with_topic_name(TopicName(str_bytes(name)))
                    .with_partitions(vec![*index]),
            ),
        }
    }
    Assignment::default().with_topic_partitions(topics)
}
