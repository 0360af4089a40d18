//! Kafka's ConsumerProtocol: the bytes a consumer puts in JoinGroup's protocol metadata (its
//! `Subscription`) and the leader hands out in SyncGroup (each member's `Assignment`). The broker
//! never reads them; only consumers do, so the layout must match Kafka's `ConsumerProtocol`
//! exactly: big-endian, i16-length strings, i32-length arrays and bytes, -1 for null bytes.
//!
//! Decoding accepts any version ≥ 0 and reads only the fields it knows, as Kafka does: newer
//! versions only append fields (generation id, rack), so trailing bytes are ignored.

use bytes::{Buf, BufMut, Bytes, BytesMut};

/// Highest Subscription version this client writes (v1 adds owned partitions).
pub const SUBSCRIPTION_VERSION: i16 = 1;
/// Assignment version this client writes.
pub const ASSIGNMENT_VERSION: i16 = 1;

/// Malformed ConsumerProtocol bytes from another group member.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConsumerProtocolError {
    #[error("consumer protocol {message} ended early while reading {field}")]
    Truncated {
        message: &'static str,
        field: &'static str,
    },
    #[error("consumer protocol {message} has a negative {field} length {length}")]
    NegativeLength {
        message: &'static str,
        field: &'static str,
        length: i32,
    },
    #[error("consumer protocol {message} has a {field} that is not UTF-8")]
    NotUtf8 {
        message: &'static str,
        field: &'static str,
    },
    #[error("consumer protocol {message} has unsupported version {version}")]
    BadVersion { message: &'static str, version: i16 },
}

/// Partitions of one topic, as Subscription's owned partitions and Assignment carry them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicPartitions {
    pub topic: String,
    pub partitions: Vec<i32>,
}

/// What a member subscribes to; JoinGroup's protocol metadata.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Subscription {
    pub version: i16,
    pub topics: Vec<String>,
    pub user_data: Option<Bytes>,
    /// Written from version 1 on.
    pub owned_partitions: Vec<TopicPartitions>,
}

/// The partitions the leader gave a member; SyncGroup's assignment.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Assignment {
    pub version: i16,
    pub partitions: Vec<TopicPartitions>,
    pub user_data: Option<Bytes>,
}

impl Subscription {
    pub fn encode(&self) -> Bytes {
        let mut buffer = BytesMut::with_capacity(64);
        buffer.put_i16(self.version);
        buffer.put_i32(self.topics.len() as i32);
        for topic in &self.topics {
            put_string(&mut buffer, topic);
        }
        put_nullable_bytes(&mut buffer, self.user_data.as_ref());
        if self.version >= 1 {
            put_topic_partitions(&mut buffer, &self.owned_partitions);
        }
        buffer.freeze()
    }

    pub fn decode(mut bytes: Bytes) -> Result<Subscription, ConsumerProtocolError> {
        let mut reader = Reader::new(&mut bytes, "subscription");
        let version = reader.i16("version")?;
        if version < 0 {
            return Err(ConsumerProtocolError::BadVersion {
                message: "subscription",
                version,
            });
        }
        let count = reader.length("topics")?;
        let mut topics = Vec::with_capacity(count.min(1024));
        for _ in 0..count {
            topics.push(reader.string("topic")?);
        }
        let user_data = reader.nullable_bytes("user_data")?;
        let owned_partitions = match version >= 1 {
            true => reader.topic_partitions("owned_partitions")?,
            false => Vec::new(),
        };
        Ok(Subscription {
            version,
            topics,
            user_data,
            owned_partitions,
        })
    }
}

impl Assignment {
    pub fn encode(&self) -> Bytes {
        let mut buffer = BytesMut::with_capacity(64);
        buffer.put_i16(self.version);
        put_topic_partitions(&mut buffer, &self.partitions);
        put_nullable_bytes(&mut buffer, self.user_data.as_ref());
        buffer.freeze()
    }

    /// Decodes an assignment; empty bytes (a member the leader gave nothing, as some clients
    /// send it) decode as an empty assignment.
    pub fn decode(mut bytes: Bytes) -> Result<Assignment, ConsumerProtocolError> {
        if bytes.is_empty() {
            return Ok(Assignment::default());
        }
        let mut reader = Reader::new(&mut bytes, "assignment");
        let version = reader.i16("version")?;
        if version < 0 {
            return Err(ConsumerProtocolError::BadVersion {
                message: "assignment",
                version,
            });
        }
        let partitions = reader.topic_partitions("assigned_partitions")?;
        let user_data = reader.nullable_bytes("user_data")?;
        Ok(Assignment {
            version,
            partitions,
            user_data,
        })
    }

    /// The assigned partitions of `topic`, sorted.
    pub fn partitions_of(&self, topic: &str) -> Vec<i32> {
        let mut partitions: Vec<i32> = self
            .partitions
            .iter()
            .filter(|entry| entry.topic == topic)
            .flat_map(|entry| entry.partitions.iter().copied())
            .collect();
        partitions.sort_unstable();
        partitions
    }

    /// How many partitions this assignment holds over all topics.
    pub fn partition_count(&self) -> usize {
        self.partitions
            .iter()
            .map(|entry| entry.partitions.len())
            .sum()
    }
}

fn put_string(buffer: &mut BytesMut, text: &str) {
    buffer.put_i16(text.len() as i16);
    buffer.put_slice(text.as_bytes());
}

fn put_nullable_bytes(buffer: &mut BytesMut, bytes: Option<&Bytes>) {
    match bytes {
        None => buffer.put_i32(-1),
        Some(bytes) => {
            buffer.put_i32(bytes.len() as i32);
            buffer.put_slice(bytes);
        }
    }
}

fn put_topic_partitions(buffer: &mut BytesMut, entries: &[TopicPartitions]) {
    buffer.put_i32(entries.len() as i32);
    for entry in entries {
        put_string(buffer, &entry.topic);
        buffer.put_i32(entry.partitions.len() as i32);
        for partition in &entry.partitions {
            buffer.put_i32(*partition);
        }
    }
}

/// Bounds-checked reads that name the message and field in their errors.
struct Reader<'a> {
    bytes: &'a mut Bytes,
    message: &'static str,
}

impl<'a> Reader<'a> {
    fn new(bytes: &'a mut Bytes, message: &'static str) -> Reader<'a> {
        Reader { bytes, message }
    }

    fn need(&self, size: usize, field: &'static str) -> Result<(), ConsumerProtocolError> {
        match self.bytes.remaining() >= size {
            true => Ok(()),
            false => Err(ConsumerProtocolError::Truncated {
                message: self.message,
                field,
            }),
        }
    }

    fn i16(&mut self, field: &'static str) -> Result<i16, ConsumerProtocolError> {
        self.need(2, field)?;
        Ok(self.bytes.get_i16())
    }

    fn i32(&mut self, field: &'static str) -> Result<i32, ConsumerProtocolError> {
        self.need(4, field)?;
        Ok(self.bytes.get_i32())
    }

    /// An array length; negative (null) arrays are malformed here.
    fn length(&mut self, field: &'static str) -> Result<usize, ConsumerProtocolError> {
        let length = self.i32(field)?;
        if length < 0 {
            return Err(ConsumerProtocolError::NegativeLength {
                message: self.message,
                field,
                length,
            });
        }
        Ok(length as usize)
    }

    fn string(&mut self, field: &'static str) -> Result<String, ConsumerProtocolError> {
        let length = self.i16(field)?;
        if length < 0 {
            return Err(ConsumerProtocolError::NegativeLength {
                message: self.message,
                field,
                length: i32::from(length),
            });
        }
        self.need(length as usize, field)?;
        let raw = self.bytes.split_to(length as usize);
        String::from_utf8(raw.to_vec()).map_err(|_| ConsumerProtocolError::NotUtf8 {
            message: self.message,
            field,
        })
    }

    fn nullable_bytes(
        &mut self,
        field: &'static str,
    ) -> Result<Option<Bytes>, ConsumerProtocolError> {
        // Version 0 encoders may end the message before user_data; treat that as null.
        if self.bytes.remaining() == 0 {
            return Ok(None);
        }
        let length = self.i32(field)?;
        if length < 0 {
            return Ok(None);
        }
        self.need(length as usize, field)?;
        Ok(Some(self.bytes.split_to(length as usize)))
    }

    fn topic_partitions(
        &mut self,
        field: &'static str,
    ) -> Result<Vec<TopicPartitions>, ConsumerProtocolError> {
        let count = self.length(field)?;
        let mut entries = Vec::with_capacity(count.min(1024));
        for _ in 0..count {
            let topic = self.string("topic")?;
            let partition_count = self.length("partitions")?;
            self.need(partition_count * 4, "partitions")?;
            let partitions = (0..partition_count).map(|_| self.bytes.get_i32()).collect();
            entries.push(TopicPartitions { topic, partitions });
        }
        Ok(entries)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subscription_v0_matches_kafka_bytes() {
        // A v0 subscription to "ab" with null user data is exactly Kafka's ConsumerProtocol bytes.
        let subscription = Subscription {
            version: 0,
            topics: vec!["ab".to_string()],
            user_data: None,
            owned_partitions: Vec::new(),
        };
        let bytes = subscription.encode();
        assert_eq!(
            bytes.as_ref(),
            &[0, 0, 0, 0, 0, 1, 0, 2, b'a', b'b', 0xff, 0xff, 0xff, 0xff]
        );
        assert_eq!(Subscription::decode(bytes), Ok(subscription));
    }

    #[test]
    fn subscription_v1_round_trips_owned_partitions() {
        // Version 1 appends owned partitions, and they survive a round trip.
        let subscription = Subscription {
            version: 1,
            topics: vec!["t".to_string(), "u".to_string()],
            user_data: Some(Bytes::from_static(b"xy")),
            owned_partitions: vec![TopicPartitions {
                topic: "t".to_string(),
                partitions: vec![0, 2],
            }],
        };
        assert_eq!(
            Subscription::decode(subscription.encode()),
            Ok(subscription)
        );
    }

    #[test]
    fn newer_subscriptions_decode_their_known_fields() {
        // A v3 subscription (generation id and rack appended) decodes; the extra bytes are ignored.
        let mut bytes = BytesMut::from(
            Subscription {
                version: 3,
                topics: vec!["t".to_string()],
                user_data: None,
                owned_partitions: Vec::new(),
            }
            .encode()
            .as_ref(),
        );
        bytes.put_i32(7);
        bytes.put_i16(-1);
        let decoded = Subscription::decode(bytes.freeze()).expect("decodes");
        assert_eq!(decoded.version, 3);
        assert_eq!(decoded.topics, vec!["t".to_string()]);
    }

    #[test]
    fn assignment_matches_kafka_bytes_and_round_trips() {
        // An assignment of t:[1] with empty user data has Kafka's layout and decodes back.
        let assignment = Assignment {
            version: 0,
            partitions: vec![TopicPartitions {
                topic: "t".to_string(),
                partitions: vec![1],
            }],
            user_data: Some(Bytes::new()),
        };
        let bytes = assignment.encode();
        let expected: &[u8] = &[
            0, 0, 0, 0, 0, 1, 0, 1, b't', 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 0,
        ];
        assert_eq!(bytes.as_ref(), expected);
        assert_eq!(Assignment::decode(bytes), Ok(assignment.clone()));
        assert_eq!(assignment.partitions_of("t"), vec![1]);
        assert_eq!(Assignment::decode(Bytes::new()), Ok(Assignment::default()));
    }

    #[test]
    fn truncated_input_is_an_error_not_a_panic() {
        // Every prefix of a valid assignment either decodes or reports where it ended.
        let bytes = Assignment {
            version: 1,
            partitions: vec![TopicPartitions {
                topic: "topic".to_string(),
                partitions: vec![0, 1, 2],
            }],
            user_data: Some(Bytes::from_static(b"data")),
        }
        .encode();
        for end in 1..bytes.len() {
            let _ = Assignment::decode(bytes.slice(..end));
            let _ = Subscription::decode(bytes.slice(..end));
        }
        assert!(matches!(
            Assignment::decode(Bytes::from_static(&[0, 0, 0, 0, 0, 1, 0, 9])),
            Err(ConsumerProtocolError::Truncated { .. })
        ));
    }
}
