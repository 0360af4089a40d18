//! The group coordinator: consumer groups and their committed offsets.
//!
//! A group lives on the shard that owns its `__consumer_offsets` partition
//! (`partition_for_group`, Kafka's `abs(groupId.hashCode) % partitions`); requests for it are
//! routed there over the mesh, so one group's state is touched by one core only. Committed
//! offsets are appended to that partition (fsynced) before a commit is answered, and read back
//! when the partition is opened. Kafka error codes are chosen in `api/`, from `ErrorCode`.

pub mod classic;
pub mod consumer;
mod coordinator;
pub mod offsets_log;

pub use coordinator::Coordinator;

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;

use classic::CommittedOffset;

/// The internal topic holding committed offsets.
pub const OFFSETS_TOPIC: &str = "__consumer_offsets";
/// Kafka's `offsets.topic.segment.bytes` default.
pub const OFFSETS_TOPIC_SEGMENT_BYTES: u64 = 100 << 20;
/// How often group timeouts (sessions, rebalance deadlines) are checked.
pub const GROUP_TICK: Duration = Duration::from_millis(100);

/// Outcomes of group operations; `api/` maps each to its Kafka error code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorCode {
    None,
    CoordinatorLoadInProgress,
    CoordinatorNotAvailable,
    /// Another broker leads the group's offsets partition.
    NotCoordinator,
    IllegalGeneration,
    InconsistentGroupProtocol,
    UnknownMemberId,
    RebalanceInProgress,
    MemberIdRequired,
    GroupIdNotFound,
    NonEmptyGroup,
    GroupSubscribedToTopic,
    InvalidGroupId,
    InvalidSessionTimeout,
    /// A transactional offset commit from a producer epoch older than the partition's.
    ProducerFenced,
    FencedMemberEpoch,
    StaleMemberEpoch,
    UnsupportedAssignor,
}

pub struct JoinRequest {
    pub group_id: String,
    pub member_id: String,
    pub instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub session_timeout: Duration,
    pub rebalance_timeout: Duration,
    pub protocol_type: String,
    pub protocols: Vec<(String, Bytes)>,
    /// JoinGroup v4+: a member without an id is first told its id (MEMBER_ID_REQUIRED).
    pub requires_known_member_id: bool,
}

pub struct JoinOutcome {
    pub error: ErrorCode,
    pub generation: i32,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub leader: String,
    pub member_id: String,
    /// (member id, instance id, metadata), for the leader only.
    pub members: Vec<(String, Option<String>, Bytes)>,
}

impl JoinOutcome {
    pub fn error(error: ErrorCode, member_id: &str) -> JoinOutcome {
        JoinOutcome {
            error,
            generation: -1,
            protocol_type: None,
            protocol_name: None,
            leader: String::new(),
            member_id: member_id.to_string(),
            members: Vec::new(),
        }
    }
}

pub struct SyncRequest {
    pub member_id: String,
    pub generation: i32,
    pub assignments: Vec<(String, Bytes)>,
}

pub struct SyncOutcome {
    pub error: ErrorCode,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub assignment: Bytes,
}

impl SyncOutcome {
    pub fn error(error: ErrorCode) -> SyncOutcome {
        SyncOutcome {
            error,
            protocol_type: None,
            protocol_name: None,
            assignment: Bytes::new(),
        }
    }
}

pub struct MemberDescription {
    pub member_id: String,
    pub instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub metadata: Bytes,
    pub assignment: Bytes,
}

pub struct GroupDescription {
    pub error: ErrorCode,
    pub group_id: String,
    /// Kafka's state name; "Dead" for a group that does not exist.
    pub state: &'static str,
    pub protocol_type: String,
    pub protocol: String,
    pub members: Vec<MemberDescription>,
}

pub struct GroupListing {
    pub group_id: String,
    pub protocol_type: String,
    pub state: &'static str,
    /// "classic" or "consumer" (KIP-848).
    pub group_type: &'static str,
}

/// (topic, partition, committed offset if any, whether a transaction's offset for it is
/// pending: UNSTABLE_OFFSET_COMMIT when the reader asked for stable offsets only).
pub type FetchedOffset = (String, i32, Option<CommittedOffset>, bool);

/// A request for the coordinator of one group, carried to the owning shard.
pub enum GroupCall {
    Join {
        request: JoinRequest,
        reply: flume::Sender<JoinOutcome>,
    },
    Sync {
        group_id: String,
        request: SyncRequest,
        reply: flume::Sender<SyncOutcome>,
    },
    Heartbeat {
        group_id: String,
        member_id: String,
        generation: i32,
        reply: flume::Sender<ErrorCode>,
    },
    Leave {
        group_id: String,
        members: Vec<(String, Option<String>)>,
        reply: flume::Sender<Vec<ErrorCode>>,
    },
    Commit {
        group_id: String,
        member_id: String,
        generation: i32,
        offsets: Vec<(String, i32, CommittedOffset)>,
        reply: flume::Sender<ErrorCode>,
    },
    /// TxnOffsetCommit: offsets committed in a transaction.
    TxnCommit {
        commit: Box<TxnCommit>,
        reply: flume::Sender<ErrorCode>,
    },
    /// `partitions` None means every committed offset of the group.
    FetchOffsets {
        group_id: String,
        partitions: Option<Vec<(String, i32)>>,
        /// (member id, member epoch) when the request names a member (OffsetFetch v9+).
        member: Option<(String, i32)>,
        /// OffsetFetch v7+'s `require_stable`: flag partitions with offsets pending in an
        /// open transaction.
        require_stable: bool,
        reply: flume::Sender<Result<Vec<FetchedOffset>, ErrorCode>>,
    },
    Describe {
        group_id: String,
        reply: flume::Sender<GroupDescription>,
    },
    /// Groups of this shard only; the caller asks every shard.
    List {
        reply: flume::Sender<Vec<GroupListing>>,
    },
    Delete {
        group_id: String,
        reply: flume::Sender<ErrorCode>,
    },
    DeleteOffsets {
        group_id: String,
        partitions: Vec<(String, i32)>,
        reply: flume::Sender<Result<Vec<ErrorCode>, ErrorCode>>,
    },
    /// KIP-848; `partition_counts` are the partitions of every topic, from the caller's image.
    ConsumerHeartbeat {
        group_id: String,
        heartbeat: consumer::Heartbeat,
        partition_counts: BTreeMap<String, i32>,
        reply: flume::Sender<consumer::HeartbeatOutcome>,
    },
    ConsumerDescribe {
        group_id: String,
        reply: flume::Sender<Option<ConsumerGroupDescription>>,
    },
}

/// Offsets a transactional producer commits for a group (TxnOffsetCommit).
pub struct TxnCommit {
    pub group_id: String,
    pub producer_id: i64,
    pub producer_epoch: i16,
    /// The member and generation (v3+; empty and -1 when the client does not say).
    pub member_id: String,
    pub generation: i32,
    pub offsets: Vec<(String, i32, CommittedOffset)>,
}

/// A KIP-848 group as ConsumerGroupDescribe shows it.
pub struct ConsumerGroupDescription {
    pub state: &'static str,
    pub epoch: i32,
    pub assignor: String,
    /// (member, its current assignment, its target assignment).
    pub members: Vec<ConsumerMemberAssignment>,
}

pub type ConsumerMemberAssignment = (
    ConsumerMemberDescription,
    Vec<consumer::TopicPartition>,
    Vec<consumer::TopicPartition>,
);

pub struct ConsumerMemberDescription {
    pub member_id: String,
    pub instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub member_epoch: i32,
    pub subscribed: Vec<String>,
}

impl GroupCall {
    /// Answers the call with `error` without serving it.
    pub fn fail(self, error: ErrorCode) {
        match self {
            GroupCall::Join { request, reply } => {
                drop(reply.send(JoinOutcome::error(error, &request.member_id)))
            }
            GroupCall::Sync { reply, .. } => drop(reply.send(SyncOutcome::error(error))),
            GroupCall::Heartbeat { reply, .. }
            | GroupCall::Commit { reply, .. }
            | GroupCall::TxnCommit { reply, .. }
            | GroupCall::Delete { reply, .. } => drop(reply.send(error)),
            GroupCall::Leave { members, reply, .. } => drop(reply.send(vec![error; members.len()])),
            GroupCall::FetchOffsets { reply, .. } => drop(reply.send(Err(error))),
            GroupCall::Describe { group_id, reply } => drop(reply.send(GroupDescription {
                error,
                group_id,
                state: "Dead",
                protocol_type: String::new(),
                protocol: String::new(),
                members: Vec::new(),
            })),
            GroupCall::List { reply } => drop(reply.send(Vec::new())),
            GroupCall::DeleteOffsets { reply, .. } => drop(reply.send(Err(error))),
            GroupCall::ConsumerHeartbeat {
                heartbeat, reply, ..
            } => drop(reply.send(consumer::HeartbeatOutcome {
                error,
                member_id: heartbeat.member_id,
                member_epoch: -1,
                assignment: None,
            })),
            GroupCall::ConsumerDescribe { reply, .. } => drop(reply.send(None)),
        }
    }

    /// The group this call is for; `None` for calls every shard answers.
    pub fn group_id(&self) -> Option<&str> {
        match self {
            GroupCall::Join { request, .. } => Some(&request.group_id),
            GroupCall::TxnCommit { commit, .. } => Some(&commit.group_id),
            GroupCall::Sync { group_id, .. }
            | GroupCall::Heartbeat { group_id, .. }
            | GroupCall::Leave { group_id, .. }
            | GroupCall::Commit { group_id, .. }
            | GroupCall::FetchOffsets { group_id, .. }
            | GroupCall::Describe { group_id, .. }
            | GroupCall::Delete { group_id, .. }
            | GroupCall::DeleteOffsets { group_id, .. }
            | GroupCall::ConsumerHeartbeat { group_id, .. }
            | GroupCall::ConsumerDescribe { group_id, .. } => Some(group_id),
            GroupCall::List { .. } => None,
        }
    }
}

/// Kafka's choice of `__consumer_offsets` partition: `Utils.abs(groupId.hashCode()) % count`,
/// with Java's `String.hashCode` over UTF-16 code units.
pub fn partition_for_group(group_id: &str, partition_count: i32) -> i32 {
    let hash = group_id.encode_utf16().fold(0i32, |hash, unit| {
        hash.wrapping_mul(31).wrapping_add(i32::from(unit))
    });
    let positive = if hash == i32::MIN { 0 } else { hash.abs() };
    positive % partition_count
}

/// Topics of a consumer-protocol subscription (version, topics array, ...); empty if unreadable.
pub fn subscription_topics(metadata: &Bytes) -> Vec<String> {
    let mut cursor: &[u8] = metadata;
    let mut topics = Vec::new();
    let take = |cursor: &mut &[u8], count: usize| -> Option<Vec<u8>> {
        let (head, tail) = (cursor.get(..count)?, cursor.get(count..)?);
        *cursor = tail;
        Some(head.to_vec())
    };
    let parsed = (|| -> Option<()> {
        take(&mut cursor, 2)?;
        let count = i32::from_be_bytes(take(&mut cursor, 4)?.try_into().ok()?);
        for _ in 0..count.max(0) {
            let length = i16::from_be_bytes(take(&mut cursor, 2)?.try_into().ok()?);
            topics.push(String::from_utf8(take(&mut cursor, length.max(0) as usize)?).ok()?);
        }
        Some(())
    })();
    if parsed.is_none() {
        topics.clear();
    }
    topics
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Proves the partition choice matches Kafka's for known group ids.
    #[test]
    fn partition_for_group_matches_kafka() {
        // Java: "my-group".hashCode() == -1906497762, abs % 50 == 12.
        assert_eq!(partition_for_group("my-group", 50), 12);
        // "" hashes to 0; "polygenelubricants".hashCode() == Integer.MIN_VALUE, whose abs is 0.
        assert_eq!(partition_for_group("", 50), 0);
        assert_eq!(partition_for_group("polygenelubricants", 50), 0);
    }

    /// Proves subscription metadata yields its topics and garbage yields none.
    #[test]
    fn reads_subscription_topics() {
        let metadata = Bytes::from_static(&[
            0, 1, 0, 0, 0, 2, 0, 1, b'a', 0, 2, b'b', b'c', 0xff, 0xff, 0xff, 0xff,
        ]);
        assert_eq!(
            subscription_topics(&metadata),
            vec!["a".to_string(), "bc".to_string()]
        );
        assert!(subscription_topics(&Bytes::from_static(&[0, 1, 0, 0, 0, 9])).is_empty());
    }
}
