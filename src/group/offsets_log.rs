//! Records of the `__consumer_offsets` topic, in Kafka's own layout so Kafka's tools could read
//! them: committed offsets (key version 1: group, topic, partition; value version 3: offset,
//! leader epoch, metadata, commit timestamp) and group metadata (key version 2: group; value
//! version 3: protocol type, generation, protocol, leader, state timestamp, members). A null
//! value deletes what its key names.

use crate::storage::batch::{self, Writer};
use bytes::{Buf, BufMut, Bytes, BytesMut};

use super::classic::CommittedOffset;

const OFFSET_KEY_VERSION: i16 = 1;
const OFFSET_VALUE_VERSION: i16 = 3;
const GROUP_KEY_VERSION: i16 = 2;
const GROUP_VALUE_VERSION: i16 = 3;

/// One change to a group's committed offsets.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OffsetRecord {
    pub group: String,
    pub topic: String,
    pub partition: i32,
    /// `None` deletes the committed offset.
    pub value: Option<CommittedOffset>,
}

/// A classic group's membership as of its last stable (or empty) generation.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GroupSnapshot {
    pub protocol_type: String,
    pub generation: i32,
    pub protocol: Option<String>,
    pub leader: Option<String>,
    pub state_timestamp: i64,
    pub members: Vec<MemberSnapshot>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemberSnapshot {
    pub member_id: String,
    pub instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub rebalance_timeout_ms: i32,
    pub session_timeout_ms: i32,
    pub subscription: Bytes,
    pub assignment: Bytes,
}

/// One change to a group's metadata; `None` deletes the group.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupRecord {
    pub group: String,
    pub value: Option<GroupSnapshot>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OffsetsTopicRecord {
    Offset(OffsetRecord),
    Group(GroupRecord),
}

/// Encodes records as one uncompressed record batch (offsets are assigned on append), the
/// transaction's when `writer` names one (TxnOffsetCommit).
pub fn encode_batch(records: &[OffsetsTopicRecord], timestamp: i64, writer: Writer) -> Vec<u8> {
    let records = records
        .iter()
        .map(|record| match record {
            OffsetsTopicRecord::Offset(offset) => {
                (offset_key(offset), offset.value.as_ref().map(offset_value))
            }
            OffsetsTopicRecord::Group(group) => (
                group_key(&group.group),
                group.value.as_ref().map(group_value),
            ),
        })
        .collect();
    batch::encode_records(records, timestamp, writer)
}

/// Decodes one `__consumer_offsets` record; `None` for a record of a kind or version we do not know.
pub fn decode_record(key: &Bytes, value: Option<&Bytes>) -> Option<OffsetsTopicRecord> {
    let mut key = key.clone();
    match read_i16(&mut key)? {
        0 | 1 => {
            let group = read_string(&mut key)?;
            let topic = read_string(&mut key)?;
            let partition = read_i32(&mut key)?;
            let value = match value {
                None => None,
                Some(value) => Some(decode_offset_value(&mut value.clone())?),
            };
            Some(OffsetsTopicRecord::Offset(OffsetRecord {
                group,
                topic,
                partition,
                value,
            }))
        }
        GROUP_KEY_VERSION => {
            let group = read_string(&mut key)?;
            let value = match value {
                None => None,
                Some(value) => Some(decode_group_value(&mut value.clone())?),
            };
            Some(OffsetsTopicRecord::Group(GroupRecord { group, value }))
        }
        _ => None,
    }
}

fn offset_key(record: &OffsetRecord) -> Bytes {
    let mut key = BytesMut::new();
    key.put_i16(OFFSET_KEY_VERSION);
    put_string(&mut key, &record.group);
    put_string(&mut key, &record.topic);
    key.put_i32(record.partition);
    key.freeze()
}

fn offset_value(offset: &CommittedOffset) -> Bytes {
    let mut value = BytesMut::new();
    value.put_i16(OFFSET_VALUE_VERSION);
    value.put_i64(offset.offset);
    value.put_i32(offset.leader_epoch);
    put_string(&mut value, &offset.metadata);
    value.put_i64(offset.commit_timestamp);
    value.freeze()
}

/// Values of versions 0 to 3; version 1 carries an expiry we ignore, 0 to 2 no leader epoch.
fn decode_offset_value(value: &mut Bytes) -> Option<CommittedOffset> {
    let version = read_i16(value)?;
    let offset = read_i64(value)?;
    let leader_epoch = if version >= 3 { read_i32(value)? } else { -1 };
    let metadata = read_string(value)?;
    let commit_timestamp = read_i64(value)?;
    Some(CommittedOffset {
        offset,
        leader_epoch,
        metadata,
        commit_timestamp,
    })
}

fn group_key(group: &str) -> Bytes {
    let mut key = BytesMut::new();
    key.put_i16(GROUP_KEY_VERSION);
    put_string(&mut key, group);
    key.freeze()
}

fn group_value(snapshot: &GroupSnapshot) -> Bytes {
    let mut value = BytesMut::new();
    value.put_i16(GROUP_VALUE_VERSION);
    put_string(&mut value, &snapshot.protocol_type);
    value.put_i32(snapshot.generation);
    put_nullable_string(&mut value, snapshot.protocol.as_deref());
    put_nullable_string(&mut value, snapshot.leader.as_deref());
    value.put_i64(snapshot.state_timestamp);
    value.put_i32(snapshot.members.len() as i32);
    for member in &snapshot.members {
        put_string(&mut value, &member.member_id);
        put_nullable_string(&mut value, member.instance_id.as_deref());
        put_string(&mut value, &member.client_id);
        put_string(&mut value, &member.client_host);
        value.put_i32(member.rebalance_timeout_ms);
        value.put_i32(member.session_timeout_ms);
        put_bytes(&mut value, &member.subscription);
        put_bytes(&mut value, &member.assignment);
    }
    value.freeze()
}

/// Group values of versions 1 to 3 (version 0 lacks rebalance timeouts; we read it as 1 would).
fn decode_group_value(value: &mut Bytes) -> Option<GroupSnapshot> {
    let version = read_i16(value)?;
    let protocol_type = read_string(value)?;
    let generation = read_i32(value)?;
    let protocol = read_nullable_string(value)?;
    let leader = read_nullable_string(value)?;
    let state_timestamp = if version >= 2 { read_i64(value)? } else { -1 };
    let count = read_i32(value)?;
    let mut members = Vec::with_capacity(count.clamp(0, 1024) as usize);
    for _ in 0..count.max(0) {
        let member_id = read_string(value)?;
        let instance_id = if version >= 3 {
            read_nullable_string(value)?
        } else {
            None
        };
        let client_id = read_string(value)?;
        let client_host = read_string(value)?;
        let rebalance_timeout_ms = if version >= 1 { read_i32(value)? } else { -1 };
        let session_timeout_ms = read_i32(value)?;
        let subscription = read_bytes(value)?;
        let assignment = read_bytes(value)?;
        members.push(MemberSnapshot {
            member_id,
            instance_id,
            client_id,
            client_host,
            rebalance_timeout_ms,
            session_timeout_ms,
            subscription,
            assignment,
        });
    }
    Some(GroupSnapshot {
        protocol_type,
        generation,
        protocol,
        leader,
        state_timestamp,
        members,
    })
}

pub(crate) fn put_string(buffer: &mut BytesMut, text: &str) {
    buffer.put_i16(text.len() as i16);
    buffer.put_slice(text.as_bytes());
}

fn put_nullable_string(buffer: &mut BytesMut, text: Option<&str>) {
    match text {
        Some(text) => put_string(buffer, text),
        None => buffer.put_i16(-1),
    }
}

fn put_bytes(buffer: &mut BytesMut, bytes: &Bytes) {
    buffer.put_i32(bytes.len() as i32);
    buffer.put_slice(bytes);
}

pub(crate) fn read_i16(buffer: &mut Bytes) -> Option<i16> {
    (buffer.remaining() >= 2).then(|| buffer.get_i16())
}

pub(crate) fn read_i32(buffer: &mut Bytes) -> Option<i32> {
    (buffer.remaining() >= 4).then(|| buffer.get_i32())
}

pub(crate) fn read_i64(buffer: &mut Bytes) -> Option<i64> {
    (buffer.remaining() >= 8).then(|| buffer.get_i64())
}

fn read_nullable_string(buffer: &mut Bytes) -> Option<Option<String>> {
    let length = read_i16(&mut buffer.clone())?;
    if length < 0 {
        buffer.advance(2);
        return Some(None);
    }
    read_string(buffer).map(Some)
}

pub(crate) fn read_string(buffer: &mut Bytes) -> Option<String> {
    let length = read_i16(buffer)?;
    if length < 0 {
        return Some(String::new());
    }
    let length = length as usize;
    if buffer.remaining() < length {
        return None;
    }
    String::from_utf8(buffer.split_to(length).to_vec()).ok()
}

fn read_bytes(buffer: &mut Bytes) -> Option<Bytes> {
    let length = read_i32(buffer)?;
    if length < 0 {
        return Some(Bytes::new());
    }
    let length = length as usize;
    (buffer.remaining() >= length).then(|| buffer.split_to(length))
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::records::RecordBatchDecoder;

    /// Proves offset commits, group snapshots and deletions survive one batch and decode back.
    #[test]
    fn round_trips_records() {
        let commit = OffsetRecord {
            group: "g".into(),
            topic: "orders".into(),
            partition: 3,
            value: Some(CommittedOffset {
                offset: 42,
                leader_epoch: 0,
                metadata: "m".into(),
                commit_timestamp: 7,
            }),
        };
        let snapshot = GroupSnapshot {
            protocol_type: "consumer".into(),
            generation: 4,
            protocol: Some("range".into()),
            leader: Some("a".into()),
            state_timestamp: 9,
            members: vec![MemberSnapshot {
                member_id: "a".into(),
                instance_id: Some("static-a".into()),
                client_id: "client".into(),
                client_host: "/127.0.0.1".into(),
                rebalance_timeout_ms: 300_000,
                session_timeout_ms: 45_000,
                subscription: Bytes::from_static(b"sub"),
                assignment: Bytes::from_static(b"assigned"),
            }],
        };
        let records = vec![
            OffsetsTopicRecord::Offset(commit.clone()),
            OffsetsTopicRecord::Offset(OffsetRecord {
                value: None,
                ..commit
            }),
            OffsetsTopicRecord::Group(GroupRecord {
                group: "g".into(),
                value: Some(snapshot),
            }),
            OffsetsTopicRecord::Group(GroupRecord {
                group: "g".into(),
                value: None,
            }),
        ];
        let batch = encode_batch(&records, 7, Writer::Broker);
        let set = RecordBatchDecoder::decode(&mut Bytes::from(batch)).unwrap();
        let decoded: Vec<OffsetsTopicRecord> = set
            .records
            .iter()
            .filter_map(|record| decode_record(record.key.as_ref()?, record.value.as_ref()))
            .collect();
        assert_eq!(decoded, records);
    }
}
