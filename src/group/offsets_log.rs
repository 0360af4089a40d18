//! Committed offsets as records of the `__consumer_offsets` topic, in Kafka's own layout so
//! Kafka's tools could read them: key version 1 (group, topic, partition) and value version 3
//! (offset, leader epoch, metadata, commit timestamp); a null value deletes the offset.
//! Group-metadata records (key version 2) are read past: membership is rebuilt by rejoining.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};

use super::classic::CommittedOffset;

const OFFSET_KEY_VERSION: i16 = 1;
const OFFSET_VALUE_VERSION: i16 = 3;

/// One change to a group's committed offsets.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OffsetRecord {
    pub group: String,
    pub topic: String,
    pub partition: i32,
    /// `None` deletes the committed offset.
    pub value: Option<CommittedOffset>,
}

/// Encodes records as one uncompressed record batch (offsets are assigned on append).
pub fn encode_batch(records: &[OffsetRecord], timestamp: i64) -> Vec<u8> {
    let records: Vec<Record> = records
        .iter()
        .enumerate()
        .map(|(index, record)| Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: 0,
            producer_id: -1,
            producer_epoch: -1,
            timestamp_type: TimestampType::Creation,
            offset: index as i64,
            // The encoder keeps records in one batch only while offset minus sequence is
            // constant; this makes it so with the batch's base sequence -1 (no producer id).
            sequence: index as i32 - 1,
            timestamp,
            key: Some(encode_key(record)),
            value: record.value.as_ref().map(encode_value),
            headers: Default::default(),
        })
        .collect();
    let mut buffer = BytesMut::new();
    let options = RecordEncodeOptions {
        version: 2,
        compression: Compression::None,
    };
    RecordBatchEncoder::encode(&mut buffer, &records, &options)
        .expect("encoding into memory cannot fail");
    buffer.to_vec()
}

/// Decodes one `__consumer_offsets` record; `None` for records that are not offset commits.
pub fn decode_record(key: &Bytes, value: Option<&Bytes>) -> Option<OffsetRecord> {
    let mut key = key.clone();
    let version = read_i16(&mut key)?;
    if !(0..=1).contains(&version) {
        return None;
    }
    let group = read_string(&mut key)?;
    let topic = read_string(&mut key)?;
    let partition = read_i32(&mut key)?;
    let value = match value {
        None => None,
        Some(value) => Some(decode_value(&mut value.clone())?),
    };
    Some(OffsetRecord {
        group,
        topic,
        partition,
        value,
    })
}

fn encode_key(record: &OffsetRecord) -> Bytes {
    let mut key = BytesMut::new();
    key.put_i16(OFFSET_KEY_VERSION);
    put_string(&mut key, &record.group);
    put_string(&mut key, &record.topic);
    key.put_i32(record.partition);
    key.freeze()
}

fn encode_value(offset: &CommittedOffset) -> Bytes {
    let mut value = BytesMut::new();
    value.put_i16(OFFSET_VALUE_VERSION);
    value.put_i64(offset.offset);
    value.put_i32(offset.leader_epoch);
    put_string(&mut value, &offset.metadata);
    value.put_i64(offset.commit_timestamp);
    value.freeze()
}

/// Values of versions 0 to 3; version 1 carries an expiry we ignore, 0 to 2 no leader epoch.
fn decode_value(value: &mut Bytes) -> Option<CommittedOffset> {
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

fn put_string(buffer: &mut BytesMut, text: &str) {
    buffer.put_i16(text.len() as i16);
    buffer.put_slice(text.as_bytes());
}

fn read_i16(buffer: &mut Bytes) -> Option<i16> {
    (buffer.remaining() >= 2).then(|| buffer.get_i16())
}

fn read_i32(buffer: &mut Bytes) -> Option<i32> {
    (buffer.remaining() >= 4).then(|| buffer.get_i32())
}

fn read_i64(buffer: &mut Bytes) -> Option<i64> {
    (buffer.remaining() >= 8).then(|| buffer.get_i64())
}

fn read_string(buffer: &mut Bytes) -> Option<String> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::records::RecordBatchDecoder;

    /// Proves commits and deletions survive encoding into a batch and decoding back.
    #[test]
    fn round_trips_offset_records() {
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
        let deletion = OffsetRecord {
            value: None,
            ..commit.clone()
        };
        let batch = encode_batch(&[commit.clone(), deletion.clone()], 7);
        let set = RecordBatchDecoder::decode(&mut Bytes::from(batch)).unwrap();
        let decoded: Vec<OffsetRecord> = set
            .records
            .iter()
            .filter_map(|record| decode_record(record.key.as_ref()?, record.value.as_ref()))
            .collect();
        assert_eq!(decoded, vec![commit, deletion]);
    }
}
