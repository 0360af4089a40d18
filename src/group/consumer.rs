//! The consumer-group protocol of KIP-848 (ConsumerGroupHeartbeat) for one group: the broker
//! computes assignments and hands them out through heartbeats. A state machine with time passed
//! in, no I/O.
//!
//! Epochs: the group epoch grows whenever membership, subscriptions or subscribed topics' partition
//! counts change; a new target assignment is then computed. A member reaches the group epoch once
//! it has given up every partition not in its target; partitions still owned by another member
//! are handed over only after that member reports them released, so no partition has two owners.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use super::ErrorCode;

/// Server-side assignors served, as `group.consumer.assignors` names them.
pub const ASSIGNORS: &[&str] = &["uniform", "range"];

/// The rebalance timeout of a member whose first heartbeat carried none: the consumer's default
/// `max.poll.interval.ms`, which is what Kafka's clients send.
const DEFAULT_REBALANCE_TIMEOUT: Duration = Duration::from_secs(300);

/// (topic name, partition).
pub type TopicPartition = (String, i32);

/// What a heartbeat carries, in domain terms.
pub struct Heartbeat {
    pub member_id: String,
    pub member_epoch: i32,
    pub instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    /// `None`: unchanged since the last heartbeat (a new member gets
    /// `DEFAULT_REBALANCE_TIMEOUT`).
    pub rebalance_timeout: Option<Duration>,
    /// `None`: unchanged since the last heartbeat.
    pub subscribed_topics: Option<Vec<String>>,
    pub server_assignor: Option<String>,
    /// Partitions the member owns now; `None`: unchanged.
    pub owned: Option<BTreeSet<TopicPartition>>,
}

pub struct HeartbeatOutcome {
    pub error: ErrorCode,
    pub member_id: String,
    pub member_epoch: i32,
    /// The member's assignment, when it changed since the last answer.
    pub assignment: Option<BTreeSet<TopicPartition>>,
}

impl HeartbeatOutcome {
    fn error(error: ErrorCode, member_id: &str) -> HeartbeatOutcome {
        HeartbeatOutcome {
            error,
            member_id: member_id.to_string(),
            member_epoch: -1,
            assignment: None,
        }
    }
}

pub struct ConsumerMember {
    pub id: String,
    pub instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub epoch: i32,
    pub subscribed: Vec<String>,
    /// What the member was last told it owns.
    pub assigned: BTreeSet<TopicPartition>,
    /// What the member last reported owning (partitions it has not released yet).
    owned: BTreeSet<TopicPartition>,
    last_heartbeat: Instant,
    rebalance_timeout: Duration,
    /// When the member must have released the partitions it is giving up; it is removed after.
    revocation_deadline: Option<Instant>,
    /// Whether the next answer must carry the assignment.
    assignment_changed: bool,
}

pub struct ConsumerGroup {
    pub id: String,
    pub epoch: i32,
    pub assignor: String,
    pub members: BTreeMap<String, ConsumerMember>,
    pub target: BTreeMap<String, BTreeSet<TopicPartition>>,
    /// Partition counts of the subscribed topics when the target was computed.
    topic_partitions: BTreeMap<String, i32>,
    session_timeout: Duration,
}

impl ConsumerGroup {
    pub fn new(id: String, session_timeout: Duration) -> ConsumerGroup {
        ConsumerGroup {
            id,
            epoch: 0,
            assignor: "uniform".into(),
            members: BTreeMap::new(),
            target: BTreeMap::new(),
            topic_partitions: BTreeMap::new(),
            session_timeout,
        }
    }

    /// Kafka's state name for ConsumerGroupDescribe and ListGroups.
    pub fn state(&self) -> &'static str {
        if self.members.is_empty() {
            "Empty"
        } else if self.members.values().all(|member| {
            member.epoch == self.epoch && self.target.get(&member.id) == Some(&member.assigned)
        }) {
            "Stable"
        } else {
            "Reconciling"
        }
    }

    /// Handles one heartbeat. `new_member_id` names a member joining without an id;
    /// `partition_counts` gives the partitions of every existing topic.
    pub fn heartbeat(
        &mut self,
        now: Instant,
        heartbeat: Heartbeat,
        new_member_id: String,
        partition_counts: &BTreeMap<String, i32>,
    ) -> HeartbeatOutcome {
        if heartbeat
            .server_assignor
            .as_deref()
            .is_some_and(|name| !ASSIGNORS.contains(&name))
        {
            return HeartbeatOutcome::error(ErrorCode::UnsupportedAssignor, &heartbeat.member_id);
        }
        if heartbeat.member_epoch < 0 {
            return self.leave(
                &heartbeat.member_id,
                heartbeat.member_epoch,
                partition_counts,
            );
        }
        let member_id = match self.admit(&heartbeat, new_member_id) {
            Ok(member_id) => member_id,
            Err(error) => return HeartbeatOutcome::error(error, &heartbeat.member_id),
        };
        let mut membership_changed = false;
        let member = self.members.entry(member_id.clone()).or_insert_with(|| {
            membership_changed = true;
            ConsumerMember {
                id: member_id.clone(),
                instance_id: heartbeat.instance_id.clone(),
                client_id: heartbeat.client_id.clone(),
                client_host: heartbeat.client_host.clone(),
                epoch: 0,
                subscribed: Vec::new(),
                assigned: BTreeSet::new(),
                owned: BTreeSet::new(),
                last_heartbeat: now,
                rebalance_timeout: DEFAULT_REBALANCE_TIMEOUT,
                revocation_deadline: None,
                assignment_changed: true,
            }
        });
        member.last_heartbeat = now;
        if let Some(timeout) = heartbeat.rebalance_timeout {
            member.rebalance_timeout = timeout;
        }
        if heartbeat.member_epoch == 0 {
            // A (re)joining member owns nothing until told otherwise.
            member.assigned.clear();
            member.owned.clear();
            member.epoch = 0;
            member.assignment_changed = true;
        }
        if let Some(mut topics) = heartbeat.subscribed_topics {
            topics.sort();
            topics.dedup();
            membership_changed |= topics != member.subscribed;
            member.subscribed = topics;
        }
        if let Some(owned) = heartbeat.owned {
            member.owned = owned;
        }
        if let Some(assignor) = heartbeat.server_assignor {
            self.assignor = assignor;
        }
        if membership_changed || self.subscribed_counts(partition_counts) != self.topic_partitions {
            self.bump_epoch(partition_counts);
        }
        self.reconcile(now, &member_id);
        let member = self.members.get_mut(&member_id).expect("admitted above");
        let assignment =
            std::mem::take(&mut member.assignment_changed).then(|| member.assigned.clone());
        HeartbeatOutcome {
            error: ErrorCode::None,
            member_id,
            member_epoch: member.epoch,
            assignment,
        }
    }

    /// Removes members whose session expired or who kept revoked partitions past their rebalance
    /// timeout; true when any was removed.
    pub fn tick(&mut self, now: Instant, partition_counts: &BTreeMap<String, i32>) -> bool {
        let expired: Vec<String> = self
            .members
            .values()
            .filter(|member| {
                now.duration_since(member.last_heartbeat) > self.session_timeout
                    || member
                        .revocation_deadline
                        .is_some_and(|deadline| now > deadline)
            })
            .map(|member| member.id.clone())
            .collect();
        for member_id in &expired {
            tracing::info!(
                "group {}: member {member_id} timed out; removing it",
                self.id
            );
            self.members.remove(member_id);
        }
        if !expired.is_empty() {
            self.bump_epoch(partition_counts);
        }
        !expired.is_empty()
    }

    /// May a commit from `member_id` at `member_epoch` be stored?
    pub fn check_commit(&self, member_id: &str, member_epoch: i32) -> ErrorCode {
        match self.members.get(member_id) {
            None if member_id.is_empty() && member_epoch < 0 && self.members.is_empty() => {
                ErrorCode::None
            }
            None => ErrorCode::UnknownMemberId,
            Some(member) => epoch_check(member.epoch, member_epoch),
        }
    }

    /// May `member_id` at `member_epoch` read the group's committed offsets (OffsetFetch v9+
    /// from a member; a request naming no member is always let through, as Kafka does)?
    pub fn check_fetch(&self, member_id: &str, member_epoch: i32) -> ErrorCode {
        match self.members.get(member_id) {
            None => ErrorCode::UnknownMemberId,
            Some(member) => epoch_check(member.epoch, member_epoch),
        }
    }

    fn admit(&self, heartbeat: &Heartbeat, new_member_id: String) -> Result<String, ErrorCode> {
        if heartbeat.member_epoch == 0 {
            return Ok(match heartbeat.member_id.is_empty() {
                true => new_member_id,
                false => heartbeat.member_id.clone(),
            });
        }
        let member = self
            .members
            .get(&heartbeat.member_id)
            .ok_or(ErrorCode::UnknownMemberId)?;
        if member.epoch != heartbeat.member_epoch {
            return Err(ErrorCode::FencedMemberEpoch);
        }
        Ok(member.id.clone())
    }

    fn leave(
        &mut self,
        member_id: &str,
        epoch: i32,
        partition_counts: &BTreeMap<String, i32>,
    ) -> HeartbeatOutcome {
        if self.members.remove(member_id).is_none() {
            return HeartbeatOutcome::error(ErrorCode::UnknownMemberId, member_id);
        }
        self.bump_epoch(partition_counts);
        HeartbeatOutcome {
            error: ErrorCode::None,
            member_id: member_id.to_string(),
            member_epoch: epoch,
            assignment: None,
        }
    }

    fn subscribed_counts(&self, partition_counts: &BTreeMap<String, i32>) -> BTreeMap<String, i32> {
        self.members
            .values()
            .flat_map(|member| member.subscribed.iter())
            .filter_map(|topic| Some((topic.clone(), *partition_counts.get(topic)?)))
            .collect()
    }

    fn bump_epoch(&mut self, partition_counts: &BTreeMap<String, i32>) {
        self.epoch += 1;
        self.topic_partitions = self.subscribed_counts(partition_counts);
        self.target = match self.assignor.as_str() {
            "range" => range_assignment(&self.members, &self.topic_partitions),
            _ => uniform_assignment(&self.members, &self.topic_partitions, &self.target),
        };
        tracing::info!(
            "group {}: epoch {} with {} member(s), assignor {}",
            self.id,
            self.epoch,
            self.members.len(),
            self.assignor
        );
    }

    /// Moves `member_id` towards its target: first it gives up what is no longer its, then it
    /// takes what its target adds, as soon as no other member still owns it.
    fn reconcile(&mut self, now: Instant, member_id: &str) {
        let target = self.target.get(member_id).cloned().unwrap_or_default();
        let held_elsewhere: BTreeSet<TopicPartition> = self
            .members
            .values()
            .filter(|other| other.id != member_id)
            .flat_map(|other| other.owned.union(&other.assigned).cloned())
            .collect();
        let epoch = self.epoch;
        let member = self
            .members
            .get_mut(member_id)
            .expect("reconciling a member");
        let keep: BTreeSet<TopicPartition> =
            member.assigned.intersection(&target).cloned().collect();
        let revoking = member.assigned.len() != keep.len();
        let still_owns_revoked = member
            .owned
            .iter()
            .any(|partition| !target.contains(partition));
        let next = if revoking || still_owns_revoked {
            member
                .revocation_deadline
                .get_or_insert(now + member.rebalance_timeout);
            keep
        } else {
            member.revocation_deadline = None;
            member.epoch = epoch;
            let free = target
                .difference(&member.assigned)
                .filter(|partition| !held_elsewhere.contains(*partition))
                .cloned();
            keep.into_iter().chain(free).collect()
        };
        if next != member.assigned {
            member.assigned = next;
            member.assignment_changed = true;
        }
    }
}

/// Spreads every subscribed partition evenly, keeping partitions where they are when it can.
fn uniform_assignment(
    members: &BTreeMap<String, ConsumerMember>,
    topics: &BTreeMap<String, i32>,
    previous: &BTreeMap<String, BTreeSet<TopicPartition>>,
) -> BTreeMap<String, BTreeSet<TopicPartition>> {
    let partitions: Vec<TopicPartition> = topics
        .iter()
        .flat_map(|(topic, count)| (0..*count).map(move |index| (topic.clone(), index)))
        .collect();
    let subscribers = |partition: &TopicPartition| {
        members
            .values()
            .filter(|member| member.subscribed.contains(&partition.0))
            .map(|member| member.id.clone())
            .collect::<Vec<_>>()
    };
    let active = members
        .values()
        .filter(|member| !member.subscribed.is_empty())
        .count()
        .max(1);
    let quota = partitions.len().div_ceil(active);
    let mut target: BTreeMap<String, BTreeSet<TopicPartition>> = members
        .keys()
        .map(|id| (id.clone(), BTreeSet::new()))
        .collect();
    let mut unassigned = Vec::new();
    for partition in partitions {
        let owner = previous
            .iter()
            .find(|(_, assigned)| assigned.contains(&partition))
            .map(|(id, _)| id.clone())
            .filter(|id| {
                subscribers(&partition).contains(id)
                    && target.get(id).is_some_and(|held| held.len() < quota)
            });
        match owner {
            Some(id) => {
                target.get_mut(&id).expect("a member").insert(partition);
            }
            None => unassigned.push(partition),
        }
    }
    for partition in unassigned {
        let least_loaded = subscribers(&partition)
            .into_iter()
            .min_by_key(|id| (target[id].len(), id.clone()));
        if let Some(id) = least_loaded {
            target.get_mut(&id).expect("a member").insert(partition);
        }
    }
    target
}

/// Kafka's range assignment: per topic, members by id, contiguous ranges, the first
/// `partitions % members` getting one more.
fn range_assignment(
    members: &BTreeMap<String, ConsumerMember>,
    topics: &BTreeMap<String, i32>,
) -> BTreeMap<String, BTreeSet<TopicPartition>> {
    let mut target: BTreeMap<String, BTreeSet<TopicPartition>> = members
        .keys()
        .map(|id| (id.clone(), BTreeSet::new()))
        .collect();
    for (topic, count) in topics {
        let subscribers: Vec<&String> = members
            .values()
            .filter(|member| member.subscribed.contains(topic))
            .map(|member| &member.id)
            .collect();
        if subscribers.is_empty() {
            continue;
        }
        let (each, extra) = (
            *count as usize / subscribers.len(),
            *count as usize % subscribers.len(),
        );
        let mut next = 0;
        for (position, id) in subscribers.into_iter().enumerate() {
            let take = each + usize::from(position < extra);
            let assigned = target.get_mut(id).expect("a member");
            assigned.extend((next..next + take).map(|index| (topic.clone(), index as i32)));
            next += take;
        }
    }
    target
}

/// Kafka's `validateMemberEpoch`: an epoch ahead of the member's is FENCED_MEMBER_EPOCH, one
/// behind it STALE_MEMBER_EPOCH.
fn epoch_check(expected: i32, received: i32) -> ErrorCode {
    match received.cmp(&expected) {
        std::cmp::Ordering::Greater => ErrorCode::FencedMemberEpoch,
        std::cmp::Ordering::Less => ErrorCode::StaleMemberEpoch,
        std::cmp::Ordering::Equal => ErrorCode::None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn heartbeat(member_id: &str, epoch: i32, owned: Option<&[i32]>) -> Heartbeat {
        Heartbeat {
            member_id: member_id.into(),
            member_epoch: epoch,
            instance_id: None,
            client_id: "client".into(),
            client_host: "/127.0.0.1".into(),
            // As Kafka's clients do: the timeout in the first heartbeat, -1 (unchanged) after.
            rebalance_timeout: (epoch == 0).then(|| Duration::from_secs(30)),
            subscribed_topics: (epoch == 0).then(|| vec!["t".to_string()]),
            server_assignor: None,
            owned: owned.map(|partitions| {
                partitions
                    .iter()
                    .map(|index| ("t".to_string(), *index))
                    .collect()
            }),
        }
    }

    fn indexes(assignment: &BTreeSet<TopicPartition>) -> Vec<i32> {
        assignment.iter().map(|(_, index)| *index).collect()
    }

    /// Proves a second member gets partitions only after the first has released them.
    #[test]
    fn hands_partitions_over_only_after_release() {
        let counts = BTreeMap::from([("t".to_string(), 4)]);
        let now = Instant::now();
        let mut group = ConsumerGroup::new("g".into(), Duration::from_secs(45));
        let first = group.heartbeat(now, heartbeat("a", 0, Some(&[])), "unused".into(), &counts);
        assert_eq!(
            (
                first.member_epoch,
                indexes(first.assignment.as_ref().unwrap())
            ),
            (1, vec![0, 1, 2, 3])
        );
        group.heartbeat(
            now,
            heartbeat("a", 1, Some(&[0, 1, 2, 3])),
            "unused".into(),
            &counts,
        );

        let second = group.heartbeat(now, heartbeat("b", 0, Some(&[])), "unused".into(), &counts);
        assert_eq!(second.member_epoch, 2);
        assert!(
            indexes(second.assignment.as_ref().unwrap()).is_empty(),
            "a still owns everything"
        );

        let revoke = group.heartbeat(now, heartbeat("a", 1, None), "unused".into(), &counts);
        assert_eq!(
            revoke.member_epoch, 1,
            "a stays at its epoch until it releases"
        );
        let kept = indexes(revoke.assignment.as_ref().unwrap());
        assert_eq!(kept.len(), 2);

        let released = group.heartbeat(
            now,
            heartbeat("a", 1, Some(&[kept[0], kept[1]])),
            "unused".into(),
            &counts,
        );
        assert_eq!(released.member_epoch, 2);
        let handed = group.heartbeat(now, heartbeat("b", 2, Some(&[])), "unused".into(), &counts);
        let given = indexes(handed.assignment.as_ref().unwrap());
        assert_eq!(given.len(), 2);
        assert!(given.iter().all(|index| !kept.contains(index)));
        assert_eq!(group.state(), "Stable");
    }

    /// Proves a member asked to revoke keeps the rebalance timeout of its first heartbeat when
    /// later ones say "unchanged" (-1): it is not removed before that timeout passes.
    #[test]
    fn unchanged_rebalance_timeout_keeps_the_first() {
        let counts = BTreeMap::from([("t".to_string(), 2)]);
        let now = Instant::now();
        let mut group = ConsumerGroup::new("g".into(), Duration::from_secs(45));
        group.heartbeat(now, heartbeat("a", 0, Some(&[])), "unused".into(), &counts);
        group.heartbeat(
            now,
            heartbeat("a", 1, Some(&[0, 1])),
            "unused".into(),
            &counts,
        );
        group.heartbeat(now, heartbeat("b", 0, Some(&[])), "unused".into(), &counts);
        let revoke = group.heartbeat(now, heartbeat("a", 1, None), "unused".into(), &counts);
        assert_eq!(indexes(revoke.assignment.as_ref().unwrap()).len(), 1);

        let soon = now + Duration::from_secs(1);
        group.heartbeat(soon, heartbeat("a", 1, None), "unused".into(), &counts);
        assert!(!group.tick(soon, &counts), "a is within its 30 s to revoke");
        assert!(group.members.contains_key("a"));

        let late = now + Duration::from_secs(31);
        group.heartbeat(late, heartbeat("b", 2, None), "unused".into(), &counts);
        assert!(
            group.tick(late, &counts),
            "a kept a revoked partition past 30 s"
        );
        assert!(!group.members.contains_key("a"));
    }

    /// Proves OffsetFetch and OffsetCommit from a member are checked as Kafka's
    /// `validateMemberEpoch` does: unknown member, epoch behind (stale) or ahead (fenced).
    #[test]
    fn checks_members_reading_and_committing_offsets() {
        let counts = BTreeMap::from([("t".to_string(), 2)]);
        let now = Instant::now();
        let mut group = ConsumerGroup::new("g".into(), Duration::from_secs(45));
        group.heartbeat(now, heartbeat("a", 0, Some(&[])), "unused".into(), &counts);
        let epoch = group.members["a"].epoch;
        for check in [ConsumerGroup::check_fetch, ConsumerGroup::check_commit] {
            assert_eq!(check(&group, "a", epoch), ErrorCode::None);
            assert_eq!(check(&group, "a", epoch - 1), ErrorCode::StaleMemberEpoch);
            assert_eq!(check(&group, "a", epoch + 1), ErrorCode::FencedMemberEpoch);
            assert_eq!(check(&group, "b", epoch), ErrorCode::UnknownMemberId);
        }
    }

    /// Proves fencing of stale epochs, leaving, and session expiry.
    #[test]
    fn fences_leaves_and_expires() {
        let counts = BTreeMap::from([("t".to_string(), 2)]);
        let now = Instant::now();
        let mut group = ConsumerGroup::new("g".into(), Duration::from_secs(10));
        group.heartbeat(
            now,
            heartbeat("", 0, Some(&[])),
            "generated".into(),
            &counts,
        );
        assert!(group.members.contains_key("generated"));
        assert_eq!(
            group
                .heartbeat(now, heartbeat("generated", 7, None), "x".into(), &counts)
                .error,
            ErrorCode::FencedMemberEpoch
        );
        assert_eq!(
            group
                .heartbeat(now, heartbeat("ghost", 1, None), "x".into(), &counts)
                .error,
            ErrorCode::UnknownMemberId
        );
        group.heartbeat(now, heartbeat("b", 0, Some(&[])), "x".into(), &counts);
        assert_eq!(
            group
                .heartbeat(now, heartbeat("b", -1, None), "x".into(), &counts)
                .member_epoch,
            -1
        );
        assert!(!group.tick(now + Duration::from_secs(5), &counts));
        assert!(group.tick(now + Duration::from_secs(11), &counts));
        assert_eq!(group.state(), "Empty");
    }

    /// Proves a member that never releases revoked partitions is removed after its rebalance
    /// timeout, and its partitions go to the others.
    #[test]
    fn removes_members_that_do_not_revoke() {
        let counts = BTreeMap::from([("t".to_string(), 2)]);
        let now = Instant::now();
        let mut group = ConsumerGroup::new("g".into(), Duration::from_secs(45));
        group.heartbeat(now, heartbeat("a", 0, Some(&[])), "x".into(), &counts);
        group.heartbeat(now, heartbeat("a", 1, Some(&[0, 1])), "x".into(), &counts);
        group.heartbeat(now, heartbeat("b", 0, Some(&[])), "x".into(), &counts);
        group.heartbeat(now, heartbeat("a", 1, Some(&[0, 1])), "x".into(), &counts);
        assert!(!group.tick(now + Duration::from_secs(20), &counts));
        assert!(
            group.tick(now + Duration::from_secs(31), &counts),
            "a kept revoked partitions too long"
        );
        let taken = group.heartbeat(
            now + Duration::from_secs(31),
            heartbeat("b", 2, Some(&[])),
            "x".into(),
            &counts,
        );
        assert_eq!(indexes(taken.assignment.as_ref().unwrap()), vec![0, 1]);
    }

    /// Proves the range assignor matches Kafka's split.
    #[test]
    fn range_assignor_splits_like_kafka() {
        let counts = BTreeMap::from([("t".to_string(), 5)]);
        let now = Instant::now();
        let mut group = ConsumerGroup::new("g".into(), Duration::from_secs(45));
        for id in ["b", "a"] {
            let mut join = heartbeat(id, 0, Some(&[]));
            join.server_assignor = Some("range".into());
            group.heartbeat(now, join, "x".into(), &counts);
        }
        assert_eq!(indexes(&group.target["a"]), vec![0, 1, 2]);
        assert_eq!(indexes(&group.target["b"]), vec![3, 4]);
    }
}
