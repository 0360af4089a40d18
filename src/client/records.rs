//! Record batches on the wire: encoding what a producer sends (magic v2, no producer id, so no
//! idempotence) and decoding what Fetch returns. A Fetch response may end in a partial batch and a
//! batch may start before the offset asked for; decoding skips both, and control records
//! (transaction markers) are never shown to callers.

use bytes::{Buf, Bytes, BytesMut};
use indexmap::IndexMap;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::{
    Compression, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions,
    TimestampType, NO_PARTITION_LEADER_EPOCH, NO_PRODUCER_EPOCH, NO_PRODUCER_ID,
};

use super::error::ClientError;

/// Bytes before a batch's records that every v2 batch has: offset, length, epoch, magic, crc,
/// attributes, last offset delta.
const BATCH_LENGTH_FIELD_END: usize = 12;
const LAST_OFFSET_DELTA_POSITION: usize = 23;

/// A record as the producer hands it over.
#[derive(Debug, Clone)]
pub struct OutgoingRecord {
    pub key: Option<Bytes>,
    pub value: Option<Bytes>,
    pub timestamp_ms: i64,
}

impl OutgoingRecord {
    /// Bytes this record adds to a batch, roughly (for batch.size accounting).
    pub fn size_estimate_bytes(&self) -> usize {
        let length = |field: &Option<Bytes>| field.as_ref().map_or(0, Bytes::len);
        length(&self.key) + length(&self.value) + 16
    }
}

/// A record read from a partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IncomingRecord {
    pub partition: i32,
    pub offset: i64,
    pub timestamp_ms: i64,
    pub timestamp_type: TimestampType,
    pub key: Option<Bytes>,
    pub value: Option<Bytes>,
    pub headers: IndexMap<StrBytes, Option<Bytes>>,
}

/// The records of one Fetch partition and where the next fetch starts.
#[derive(Debug, Default)]
pub struct DecodedRecords {
    pub records: Vec<IncomingRecord>,
    /// Offset after the last complete batch, when there was one.
    pub next_offset: Option<i64>,
}

/// Parses a compression codec name as Kafka's compression.type accepts it.
pub fn parse_compression(name: &str) -> Option<Compression> {
    match name.to_ascii_lowercase().as_str() {
        "none" => Some(Compression::None),
        "gzip" => Some(Compression::Gzip),
        "snappy" => Some(Compression::Snappy),
        "lz4" => Some(Compression::Lz4),
        "zstd" => Some(Compression::Zstd),
        _ => None,
    }
}

/// Encodes `records` as one v2 batch for `topic`-`partition`.
pub fn encode_batch(
    records: &[OutgoingRecord],
    compression: Compression,
    topic: &str,
    partition: i32,
) -> Result<Bytes, ClientError> {
    let wire_records: Vec<Record> = records
        .iter()
        .enumerate()
        .map(|(index, record)| wire_record(index as i64, record))
        .collect();
    let options = RecordEncodeOptions {
        version: 2,
        compression,
    };
    let mut buffer = BytesMut::new();
    RecordBatchEncoder::encode(&mut buffer, &wire_records, &options).map_err(|source| {
        ClientError::RecordEncode {
            topic: topic.to_string(),
            partition,
            source: source.into(),
        }
    })?;
    Ok(buffer.freeze())
}

fn wire_record(offset_delta: i64, record: &OutgoingRecord) -> Record {
    Record {
        transactional: false,
        control: false,
        delete_horizon: false,
        partition_leader_epoch: NO_PARTITION_LEADER_EPOCH,
        producer_id: NO_PRODUCER_ID,
        producer_epoch: NO_PRODUCER_EPOCH,
        timestamp_type: TimestampType::Creation,
        offset: offset_delta,
        // The encoder keeps records in one batch while offset - sequence is constant, and takes
        // the batch's base sequence from the first record: this gives -1 (no sequence) for all.
        sequence: (offset_delta - 1) as i32,
        timestamp: record.timestamp_ms,
        key: record.key.clone(),
        value: record.value.clone(),
        headers: IndexMap::new(),
    }
}

/// Decodes the complete batches of a Fetch partition, keeping records at `fetch_offset` or later.
pub fn decode_batches(
    mut data: Bytes,
    topic: &str,
    partition: i32,
    fetch_offset: i64,
) -> Result<DecodedRecords, ClientError> {
    let mut decoded = DecodedRecords::default();
    while data.len() >= LAST_OFFSET_DELTA_POSITION + 4 {
        let base_offset = (&data[0..8]).get_i64();
        let batch_length = (&data[8..12]).get_i32();
        let total_length = BATCH_LENGTH_FIELD_END + batch_length.max(0) as usize;
        if batch_length <= 0 || data.len() < total_length {
            break;
        }
        let last_offset_delta = (&data[LAST_OFFSET_DELTA_POSITION..]).get_i32();
        let mut batch = data.split_to(total_length);
        let record_set =
            RecordBatchDecoder::decode(&mut batch).map_err(|source| ClientError::RecordDecode {
                topic: topic.to_string(),
                partition,
                offset: base_offset,
                source: source.into(),
            })?;
        let visible = record_set
            .records
            .into_iter()
            .filter(|record| !record.control && record.offset >= fetch_offset);
        decoded
            .records
            .extend(visible.map(|record| incoming_record(partition, record)));
        decoded.next_offset = Some(base_offset + i64::from(last_offset_delta) + 1);
    }
    Ok(decoded)
}

fn incoming_record(partition: i32, record: Record) -> IncomingRecord {
    IncomingRecord {
        partition,
        offset: record.offset,
        timestamp_ms: record.timestamp,
        timestamp_type: record.timestamp_type,
        key: record.key,
        value: record.value,
        headers: record.headers,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outgoing(value: &str) -> OutgoingRecord {
        OutgoingRecord {
            key: None,
            value: Some(Bytes::copy_from_slice(value.as_bytes())),
            timestamp_ms: 1_700_000_000_000,
        }
    }

    #[test]
    fn batches_round_trip_and_skip_earlier_offsets() {
        // One encoded batch of three records decodes back; offsets below the fetch offset vanish.
        let records = [outgoing("a"), outgoing("b"), outgoing("c")];
        for compression in [Compression::None, Compression::Gzip, Compression::Lz4] {
            let batch = encode_batch(&records, compression, "t", 0).expect("encodes");
            let decoded = decode_batches(batch, "t", 0, 1).expect("decodes");
            let values: Vec<_> = decoded
                .records
                .iter()
                .map(|record| record.value.clone())
                .collect();
            assert_eq!(values, vec![Some(Bytes::from("b")), Some(Bytes::from("c"))]);
            assert_eq!(decoded.next_offset, Some(3));
        }
    }

    #[test]
    fn one_batch_per_encode_call() {
        // The sequence trick keeps every record in a single batch with base sequence -1.
        let records = [outgoing("a"), outgoing("b"), outgoing("c"), outgoing("d")];
        let batch = encode_batch(&records, Compression::None, "t", 0).expect("encodes");
        let batch_length = (&batch[8..12]).get_i32() as usize;
        assert_eq!(batch.len(), BATCH_LENGTH_FIELD_END + batch_length);
        let base_sequence = (&batch[53..57]).get_i32();
        assert_eq!(base_sequence, -1);
    }

    #[test]
    fn partial_trailing_batch_is_ignored() {
        // Fetch responses may cut the last batch short; only complete batches are decoded.
        let first = encode_batch(&[outgoing("a")], Compression::None, "t", 0).expect("encodes");
        let mut data = BytesMut::from(&first[..]);
        data.extend_from_slice(&first[..first.len() - 3]);
        let decoded = decode_batches(data.freeze(), "t", 0, 0).expect("decodes");
        assert_eq!(decoded.records.len(), 1);
        assert_eq!(decoded.next_offset, Some(1));
    }
}
