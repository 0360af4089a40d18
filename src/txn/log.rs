//! Records of the `__transaction_state` topic in Kafka's own layout (`TransactionLogKey` and
//! `TransactionLogValue` version 0), so Kafka's tools could read them: key (version 0,
//! transactional id); value (version 0, producer id, producer epoch, timeout, state code,
//! partitions by topic, last update and start timestamps). A null value forgets the id.

use std::collections::{BTreeMap, BTreeSet};

use bytes::{Buf, BufMut, Bytes, BytesMut};

use super::state::{TxnMetadata, TxnState};
use crate::group::offsets_log::{put_string, read_i16, read_i32, read_i64, read_string};
use crate::storage::batch::{self, Writer};

const KEY_VERSION: i16 = 0;
const VALUE_VERSION: i16 = 0;

/// Encodes the records as one batch: each id's metadata, or a tombstone for `None`.
pub fn encode_batch(records: &[(String, Option<TxnMetadata>)], timestamp: i64) -> Vec<u8> {
    let records = records
        .iter()
        .map(|(id, metadata)| (key(id), metadata.as_ref().map(value)))
        .collect();
    batch::encode_records(records, timestamp, Writer::Broker)
}

fn key(transactional_id: &str) -> Bytes {
    let mut buffer = BytesMut::new();
    buffer.put_i16(KEY_VERSION);
    put_string(&mut buffer, transactional_id);
    buffer.freeze()
}

fn value(metadata: &TxnMetadata) -> Bytes {
    let mut buffer = BytesMut::new();
    buffer.put_i16(VALUE_VERSION);
    buffer.put_i64(metadata.producer_id);
    buffer.put_i16(metadata.producer_epoch);
    buffer.put_i32(metadata.timeout_ms);
    buffer.put_i8(metadata.state.code());
    let mut by_topic: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
    for (topic, partition) in &metadata.partitions {
        by_topic.entry(topic).or_default().push(*partition);
    }
    buffer.put_i32(by_topic.len() as i32);
    for (topic, partitions) in by_topic {
        put_string(&mut buffer, topic);
        buffer.put_i32(partitions.len() as i32);
        partitions
            .into_iter()
            .for_each(|partition| buffer.put_i32(partition));
    }
    buffer.put_i64(metadata.last_update_ms);
    buffer.put_i64(metadata.start_ms);
    buffer.freeze()
}

/// Decodes one record: the transactional id and its metadata (`None`: forgotten). `None` for a
/// record this version does not know.
pub fn decode_record(key: &Bytes, value: Option<&Bytes>) -> Option<(String, Option<TxnMetadata>)> {
    let mut key = key.clone();
    if read_i16(&mut key)? != KEY_VERSION {
        return None;
    }
    let transactional_id = read_string(&mut key)?;
    let Some(value) = value else {
        return Some((transactional_id, None));
    };
    let mut value = value.clone();
    // Version 1 (flexible, with tagged fields) is not written here; read only version 0.
    if read_i16(&mut value)? != VALUE_VERSION {
        return None;
    }
    let producer_id = read_i64(&mut value)?;
    let producer_epoch = read_i16(&mut value)?;
    let timeout_ms = read_i32(&mut value)?;
    if value.remaining() < 1 {
        return None;
    }
    let state = TxnState::from_code(value.get_i8())?;
    let mut partitions = BTreeSet::new();
    let topics = read_i32(&mut value)?;
    for _ in 0..topics.max(0) {
        let topic = read_string(&mut value)?;
        let count = read_i32(&mut value)?;
        for _ in 0..count.max(0) {
            partitions.insert((topic.clone(), read_i32(&mut value)?));
        }
    }
    let last_update_ms = read_i64(&mut value)?;
    let start_ms = read_i64(&mut value)?;
    let metadata = TxnMetadata {
        transactional_id: transactional_id.clone(),
        producer_id,
        producer_epoch,
        last_producer_epoch: -1,
        timeout_ms,
        state,
        partitions,
        start_ms,
        last_update_ms,
        next_producer_id: None,
    };
    Some((transactional_id, Some(metadata)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::records::RecordBatchDecoder;

    /// Proves metadata and tombstones come back as they were written.
    #[test]
    fn records_round_trip() {
        let metadata = TxnMetadata {
            transactional_id: "t".into(),
            producer_id: 42,
            producer_epoch: 3,
            last_producer_epoch: -1,
            timeout_ms: 60_000,
            state: TxnState::PrepareCommit,
            partitions: [
                ("a".to_string(), 0),
                ("a".to_string(), 2),
                ("b".to_string(), 1),
            ]
            .into_iter()
            .collect(),
            start_ms: 10,
            last_update_ms: 20,
            next_producer_id: None,
        };
        let records = vec![
            ("t".to_string(), Some(metadata.clone())),
            ("u".to_string(), None),
        ];
        let encoded = encode_batch(&records, 7);
        let set = RecordBatchDecoder::decode(&mut Bytes::from(encoded)).unwrap();
        let decoded: Vec<_> = set
            .records
            .iter()
            .map(|record| {
                decode_record(record.key.as_ref().unwrap(), record.value.as_ref()).unwrap()
            })
            .collect();
        assert_eq!(decoded, records);
        assert_eq!(decode_record(&Bytes::from_static(&[0, 9]), None), None);
    }
}
