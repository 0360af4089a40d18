//! Tests of the classic group state machine: joins, syncs, rebalances, static members,
//! snapshots and expiry, all with time passed in.

use super::*;

fn join_request(member_id: &str) -> JoinRequest {
    JoinRequest {
        group_id: "g".into(),
        member_id: member_id.into(),
        instance_id: None,
        client_id: "client".into(),
        client_host: "/127.0.0.1".into(),
        session_timeout: Duration::from_secs(10),
        rebalance_timeout: Duration::from_secs(30),
        protocol_type: "consumer".into(),
        protocols: vec![("range".into(), Bytes::from_static(b"meta"))],
        requires_known_member_id: true,
    }
}

fn join(
    group: &mut Group,
    now: Instant,
    member_id: &str,
    new_id: &str,
) -> flume::Receiver<JoinOutcome> {
    let (reply, outcome) = flume::bounded(1);
    group.join(
        now,
        join_request(member_id),
        new_id.into(),
        Duration::ZERO,
        reply,
    );
    outcome
}

/// Proves two members join, the leader's assignment reaches both, and a leave rebalances.
#[test]
fn two_members_join_sync_and_leave() {
    let now = Instant::now();
    let mut group = Group::new("g".into());
    let first = join(&mut group, now, "", "a");
    assert_eq!(first.try_recv().unwrap().error, ErrorCode::MemberIdRequired);
    let first = join(&mut group, now, "a", "unused");
    let answer = first.try_recv().unwrap();
    assert_eq!(
        (answer.error, answer.generation, answer.leader.as_str()),
        (ErrorCode::None, 1, "a")
    );
    assert_eq!(answer.members.len(), 1);
    assert_eq!(group.state, GroupState::CompletingRebalance);

    join(&mut group, now, "", "b");
    let second = join(&mut group, now, "b", "unused");
    assert!(second.try_recv().is_err(), "b waits for a to rejoin");
    let first = join(&mut group, now, "a", "unused");
    let leader = first.try_recv().unwrap();
    let follower = second.try_recv().unwrap();
    assert_eq!(
        (
            leader.generation,
            leader.members.len(),
            follower.members.len()
        ),
        (2, 2, 0)
    );

    let (follower_reply, follower_sync) = flume::bounded(1);
    group
        .sync(
            SyncRequest {
                member_id: "b".into(),
                generation: 2,
                assignments: vec![],
            },
            follower_reply,
        )
        .send();
    assert!(
        follower_sync.try_recv().is_err(),
        "follower waits for the leader"
    );
    let (leader_reply, leader_sync) = flume::bounded(1);
    let assignments = vec![
        ("a".into(), Bytes::from_static(b"A")),
        ("b".into(), Bytes::from_static(b"B")),
    ];
    group
        .sync(
            SyncRequest {
                member_id: "a".into(),
                generation: 2,
                assignments,
            },
            leader_reply,
        )
        .send();
    assert_eq!(
        leader_sync.try_recv().unwrap().assignment,
        Bytes::from_static(b"A")
    );
    assert_eq!(
        follower_sync.try_recv().unwrap().assignment,
        Bytes::from_static(b"B")
    );
    assert_eq!(group.state, GroupState::Stable);
    assert_eq!(group.heartbeat(now, "b", 2), ErrorCode::None);

    assert_eq!(group.leave(now, "a", None), ErrorCode::None);
    assert_eq!(group.state, GroupState::PreparingRebalance);
    assert_eq!(group.heartbeat(now, "b", 2), ErrorCode::RebalanceInProgress);
}

/// Proves a silent member is expired after its session timeout and the group empties.
#[test]
fn expires_silent_members() {
    let now = Instant::now();
    let mut group = Group::new("g".into());
    join(&mut group, now, "", "a");
    join(&mut group, now, "a", "unused");
    assert_eq!(group.check_commit("a", 1), ErrorCode::RebalanceInProgress);
    // With members: an admin's commit (no member, no generation) names no member of the group,
    // and a commit naming a member is checked member first, then generation (Kafka's order).
    assert_eq!(group.check_commit("", -1), ErrorCode::UnknownMemberId);
    assert_eq!(
        group.check_commit("stranger", 1),
        ErrorCode::UnknownMemberId
    );
    assert_eq!(group.check_commit("a", 7), ErrorCode::IllegalGeneration);
    group.tick(now + Duration::from_secs(5));
    assert_eq!(group.members.len(), 1);
    group.tick(now + Duration::from_secs(11));
    assert!(group.members.is_empty());
    assert_eq!(group.state, GroupState::Empty);
    assert_eq!(group.check_commit("", -1), ErrorCode::None);
    // An empty group takes a standalone commit whatever member id it carries.
    assert_eq!(group.check_commit("standalone-member", -1), ErrorCode::None);
    assert_eq!(group.heartbeat(now, "a", 1), ErrorCode::UnknownMemberId);
}

/// Proves a static follower coming back under a new id keeps its assignment, no rebalance.
#[test]
fn static_member_rejoins_without_rebalance() {
    let now = Instant::now();
    let mut group = Group::new("g".into());
    let static_join = |group: &mut Group, member_id: &str, new_id: &str, instance: &str| {
        let (reply, outcome) = flume::bounded(1);
        let mut request = join_request(member_id);
        request.instance_id = Some(instance.into());
        group.join(now, request, new_id.into(), Duration::ZERO, reply);
        outcome
    };
    static_join(&mut group, "", "a", "instance-a");
    let second = static_join(&mut group, "", "b", "instance-b");
    let first = static_join(&mut group, "a", "unused", "instance-a");
    let (leader, follower) = (first.try_recv().unwrap(), second.try_recv().unwrap());
    assert_eq!((leader.generation, follower.generation), (2, 2));
    let (reply, synced) = flume::bounded(1);
    let assignments = vec![
        ("a".into(), Bytes::from_static(b"A")),
        ("b".into(), Bytes::from_static(b"B")),
    ];
    group
        .sync(
            SyncRequest {
                member_id: "a".into(),
                generation: 2,
                assignments,
            },
            reply,
        )
        .send();
    assert_eq!(synced.try_recv().unwrap().error, ErrorCode::None);
    assert_eq!(group.state, GroupState::Stable);

    let back = static_join(&mut group, "", "b2", "instance-b")
        .try_recv()
        .unwrap();
    assert_eq!(
        (back.error, back.generation, back.member_id.as_str()),
        (ErrorCode::None, 2, "b2")
    );
    assert_eq!(group.state, GroupState::Stable, "no rebalance");
    let (reply, synced) = flume::bounded(1);
    group
        .sync(
            SyncRequest {
                member_id: "b2".into(),
                generation: 2,
                assignments: vec![],
            },
            reply,
        )
        .send();
    assert_eq!(
        synced.try_recv().unwrap().assignment,
        Bytes::from_static(b"B")
    );
    assert_eq!(
        group.heartbeat(now, "b", 2),
        ErrorCode::UnknownMemberId,
        "the old id is fenced"
    );
    let leader = static_join(&mut group, "", "a2", "instance-a")
        .try_recv()
        .unwrap();
    assert_eq!(
        (leader.leader.as_str(), leader.members.len()),
        ("a2", 2),
        "the leader gets the roster"
    );
    assert_eq!(
        group.state,
        GroupState::Stable,
        "no rebalance for the leader either"
    );
}

/// Proves a stable group's snapshot restores the same members, generation and assignments.
#[test]
fn snapshot_restores_a_stable_group() {
    let now = Instant::now();
    let mut group = Group::new("g".into());
    join(&mut group, now, "", "a");
    join(&mut group, now, "a", "unused");
    assert!(
        group.snapshot(0).is_none(),
        "mid-rebalance groups are not stored"
    );
    let (reply, _synced) = flume::bounded(1);
    group
        .sync(
            SyncRequest {
                member_id: "a".into(),
                generation: 1,
                assignments: vec![("a".into(), Bytes::from_static(b"A"))],
            },
            reply,
        )
        .send();
    let snapshot = group.snapshot(5).expect("stable");
    let mut restored = Group::new("g".into());
    restored.restore(snapshot, now);
    assert_eq!(
        (
            restored.state,
            restored.generation,
            restored.leader.as_deref()
        ),
        (GroupState::Stable, 1, Some("a"))
    );
    assert_eq!(restored.heartbeat(now, "a", 1), ErrorCode::None);
    let (reply, synced) = flume::bounded(1);
    restored
        .sync(
            SyncRequest {
                member_id: "a".into(),
                generation: 1,
                assignments: vec![],
            },
            reply,
        )
        .send();
    assert_eq!(
        synced.try_recv().unwrap().assignment,
        Bytes::from_static(b"A")
    );
}

/// Proves offsets expire only past retention and only while the group has no members.
#[test]
fn expires_offsets_of_empty_groups() {
    let mut group = Group::new("g".into());
    let committed = |commit_timestamp| CommittedOffset {
        offset: 1,
        leader_epoch: -1,
        metadata: String::new(),
        commit_timestamp,
    };
    group.offsets.insert(("old".into(), 0), committed(1_000));
    group.offsets.insert(("new".into(), 0), committed(9_000));
    assert_eq!(
        group.expired_offsets(10_000, 5_000),
        vec![("old".to_string(), 0)]
    );
    join(&mut group, Instant::now(), "", "a");
    join(&mut group, Instant::now(), "a", "unused");
    assert!(
        group.expired_offsets(10_000, 5_000).is_empty(),
        "an active group keeps its offsets"
    );
}

/// Proves a follower rejoining unchanged gets the current generation without a rebalance.
#[test]
fn unchanged_rejoin_keeps_the_generation() {
    let now = Instant::now();
    let mut group = Group::new("g".into());
    join(&mut group, now, "", "a");
    join(&mut group, now, "a", "unused");
    let again = join(&mut group, now, "a", "unused").try_recv().unwrap();
    assert_eq!(
        (again.generation, again.members.len()),
        (1, 1),
        "awaiting sync: same generation"
    );
    assert_eq!(group.state, GroupState::CompletingRebalance);
}

/// Proves an unknown member id is refused and mismatched protocols are rejected.
#[test]
fn refuses_unknown_members_and_protocols() {
    let now = Instant::now();
    let mut group = Group::new("g".into());
    assert_eq!(
        join(&mut group, now, "ghost", "x")
            .try_recv()
            .unwrap()
            .error,
        ErrorCode::UnknownMemberId
    );
    join(&mut group, now, "", "a");
    join(&mut group, now, "a", "unused");
    let (reply, outcome) = flume::bounded(1);
    let mut other = join_request("");
    other.protocols = vec![("roundrobin".into(), Bytes::new())];
    group.join(now, other, "c".into(), Duration::ZERO, reply);
    assert_eq!(
        outcome.try_recv().unwrap().error,
        ErrorCode::InconsistentGroupProtocol
    );
}

/// Proves members of a newer generation than the stored one rejoin into a fresh generation.
#[test]
fn members_rejoin_after_an_older_snapshot_is_restored() {
    let now = Instant::now();
    let snapshot = GroupSnapshot {
        protocol_type: "consumer".into(),
        generation: 1,
        protocol: Some("range".into()),
        leader: Some("a".into()),
        state_timestamp: 0,
        members: vec![MemberSnapshot {
            member_id: "a".into(),
            instance_id: None,
            client_id: "c".into(),
            client_host: "h".into(),
            rebalance_timeout_ms: 300_000,
            session_timeout_ms: 6_000,
            subscription: Bytes::from_static(b"meta"),
            assignment: Bytes::from_static(b"A"),
        }],
    };
    let mut group = Group::new("g".into());
    group.restore(snapshot, now);
    assert_eq!(group.heartbeat(now, "a", 2), ErrorCode::IllegalGeneration);
    assert_eq!(group.heartbeat(now, "b", 2), ErrorCode::UnknownMemberId);
    let mut request = join_request("a");
    request.protocols.push(("roundrobin".into(), Bytes::new()));
    let (reply, outcome) = flume::bounded(1);
    group.join(now, request, "unused".into(), Duration::ZERO, reply);
    let answer = outcome
        .try_recv()
        .expect("the rejoin completes a generation");
    assert_eq!((answer.error, answer.generation), (ErrorCode::None, 2));
}
