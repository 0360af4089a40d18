//! Kafka's "range" partition assignor (`RangeAssignor`), run by the group leader. Per topic, the
//! members subscribed to it are sorted by member id and the topic's partitions are cut into
//! contiguous ranges in that order; the first `partitions % members` members get one extra.
//! Pure: it sees member subscriptions and partition counts and returns assignments.

use std::collections::BTreeMap;

/// The protocol name members announce in JoinGroup for this assignor.
pub const RANGE_ASSIGNOR_NAME: &str = "range";

/// One member's subscription as the leader sees it in the JoinGroup response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberSubscription {
    pub member_id: String,
    pub topics: Vec<String>,
}

/// Partitions per topic, per member id. Every member appears, even with nothing assigned.
pub type GroupAssignment = BTreeMap<String, BTreeMap<String, Vec<i32>>>;

/// Assigns the partitions of every subscribed topic; `partition_counts` has each topic's
/// partition count, and topics missing from it (unknown to metadata) are skipped.
pub fn assign(
    members: &[MemberSubscription],
    partition_counts: &BTreeMap<String, i32>,
) -> GroupAssignment {
    let mut assignment: GroupAssignment = members
        .iter()
        .map(|member| (member.member_id.clone(), BTreeMap::new()))
        .collect();
    for (topic, subscribers) in subscribers_by_topic(members) {
        let Some(&partition_count) = partition_counts.get(&topic) else {
            continue;
        };
        for (member_id, range) in split_ranges(&subscribers, partition_count) {
            if range.is_empty() {
                continue;
            }
            if let Some(topics) = assignment.get_mut(&member_id) {
                topics.insert(topic.clone(), range);
            }
        }
    }
    assignment
}

/// Member ids subscribed to each topic, sorted and without duplicates.
fn subscribers_by_topic(members: &[MemberSubscription]) -> BTreeMap<String, Vec<String>> {
    let mut subscribers: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for member in members {
        for topic in &member.topics {
            subscribers
                .entry(topic.clone())
                .or_default()
                .push(member.member_id.clone());
        }
    }
    for member_ids in subscribers.values_mut() {
        member_ids.sort();
        member_ids.dedup();
    }
    subscribers
}

/// Kafka's range split of partitions `0..partition_count` over `sorted_members`.
fn split_ranges(sorted_members: &[String], partition_count: i32) -> Vec<(String, Vec<i32>)> {
    let member_count = sorted_members.len() as i32;
    if member_count == 0 || partition_count <= 0 {
        return Vec::new();
    }
    let per_member = partition_count / member_count;
    let with_extra = partition_count % member_count;
    sorted_members
        .iter()
        .enumerate()
        .map(|(index, member_id)| {
            let index = index as i32;
            let start = per_member * index + index.min(with_extra);
            let length = per_member + i32::from(index < with_extra);
            (member_id.clone(), (start..start + length).collect())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(member_id: &str, topics: &[&str]) -> MemberSubscription {
        MemberSubscription {
            member_id: member_id.to_string(),
            topics: topics.iter().map(|topic| topic.to_string()).collect(),
        }
    }

    #[test]
    fn ranges_are_contiguous_and_the_first_members_get_the_extra() {
        // 7 partitions over 3 members sorted by id: 3, 2, 2 in member id order.
        let members = [
            member("c", &["t"]),
            member("a", &["t"]),
            member("b", &["t"]),
        ];
        let counts = BTreeMap::from([("t".to_string(), 7)]);
        let assignment = assign(&members, &counts);
        assert_eq!(assignment["a"]["t"], vec![0, 1, 2]);
        assert_eq!(assignment["b"]["t"], vec![3, 4]);
        assert_eq!(assignment["c"]["t"], vec![5, 6]);
    }

    #[test]
    fn topics_are_split_independently_and_idle_members_stay_listed() {
        // Each topic is split over its own subscribers; a member with nothing still appears.
        let members = [
            member("m1", &["x", "y"]),
            member("m2", &["x"]),
            member("m3", &["y", "unknown"]),
        ];
        let counts = BTreeMap::from([("x".to_string(), 2), ("y".to_string(), 1)]);
        let assignment = assign(&members, &counts);
        assert_eq!(assignment["m1"]["x"], vec![0]);
        assert_eq!(assignment["m2"]["x"], vec![1]);
        assert_eq!(assignment["m1"]["y"], vec![0]);
        assert!(assignment["m3"].is_empty());
        assert_eq!(assignment.len(), 3);
    }
}
