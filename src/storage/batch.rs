//! Kafka record batches (magic v2) as the wire and the log carry them: header parsing, validation
//! and offset assignment. Records are never decoded here; a batch is stored byte for byte as it
//! arrived, with only its base offset and partition leader epoch rewritten (both lie outside the
//! CRC-32C, which covers attributes to the end).

/// Bytes of the fixed batch header before the records.
pub const BATCH_HEADER_BYTES: usize = 61;
/// Bytes of `baseOffset` + `batchLength`: the part not counted by `batchLength`.
pub const LOG_OVERHEAD_BYTES: usize = 12;

const MAGIC_V2: i8 = 2;
const LENGTH_OFFSET: usize = 8;
pub const LEADER_EPOCH_OFFSET: usize = 12;
const MAGIC_OFFSET: usize = 16;
const CRC_OFFSET: usize = 17;
const ATTRIBUTES_OFFSET: usize = 21;
const LAST_OFFSET_DELTA_OFFSET: usize = 23;
const BASE_TIMESTAMP_OFFSET: usize = 27;
const MAX_TIMESTAMP_OFFSET: usize = 35;
const PRODUCER_ID_OFFSET: usize = 43;
const PRODUCER_EPOCH_OFFSET: usize = 51;
const BASE_SEQUENCE_OFFSET: usize = 53;
const RECORD_COUNT_OFFSET: usize = 57;
const LOG_APPEND_TIME_ATTRIBUTE: i16 = 1 << 3;
const CONTROL_ATTRIBUTE: i16 = 1 << 5;
const TRANSACTIONAL_ATTRIBUTE: i16 = 1 << 4;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BatchError {
    #[error("record batch at byte {position} is truncated")]
    Truncated { position: usize },
    #[error("record batch at byte {position} has invalid length {length}")]
    InvalidLength { position: usize, length: i32 },
    #[error("record batch at byte {position} has an invalid offset range: last offset delta {last_offset_delta}")]
    InvalidOffsetRange {
        position: usize,
        last_offset_delta: i32,
    },
    #[error("record batch at byte {position} has magic {magic}; only magic 2 is supported")]
    UnsupportedMagic { position: usize, magic: i8 },
    #[error("record batch at byte {position} fails its CRC-32C check (stored {stored:#x}, computed {computed:#x})")]
    CorruptCrc {
        position: usize,
        stored: u32,
        computed: u32,
    },
    #[error("record batch of {size} bytes is larger than the {max} bytes allowed")]
    TooLarge { size: usize, max: usize },
    #[error("produce request carries no record batch")]
    Empty,
}

/// The header fields of one batch, and where it sits in its buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BatchHeader {
    pub position: usize,
    pub base_offset: i64,
    /// The batch's partitionLeaderEpoch: the epoch of the leader that appended it (stamped by
    /// `Log::append`, kept as it is by a follower's `Log::append_replicated`).
    pub leader_epoch: i32,
    /// Whole size of the batch in bytes, header included.
    pub size: usize,
    pub last_offset_delta: i32,
    pub base_timestamp: i64,
    pub max_timestamp: i64,
    pub record_count: i32,
    pub attributes: i16,
    /// -1 when the producer is not idempotent.
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub base_sequence: i32,
    /// For a control batch: what its first record says; `None` for a data batch.
    pub control: Option<Control>,
}

/// A control record: a transaction marker's type and the epoch of the coordinator that wrote
/// it (-1 when the value cannot be read or is not a marker's).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Control {
    pub kind: ControlType,
    pub coordinator_epoch: i32,
}

/// A transaction of a partition that ended in an ABORT marker: read_committed consumers skip
/// the producer's records from `first_offset` up to the marker at `last_offset`, and the
/// cleaner drops them. `last_stable_offset` is the partition's once the marker was written
/// (every transaction aborted later began at or after it). Kept in the `.txnindex` of the
/// marker's segment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AbortedTxn {
    pub producer_id: i64,
    pub first_offset: i64,
    pub last_offset: i64,
    pub last_stable_offset: i64,
}

/// What a control record says (Kafka's `ControlRecordType`, the key's second field).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ControlType {
    Abort,
    Commit,
    /// Another type (a KRaft leader change or snapshot record), or a key that cannot be read.
    Other(i16),
}

impl ControlType {
    pub fn code(self) -> i16 {
        match self {
            ControlType::Abort => 0,
            ControlType::Commit => 1,
            ControlType::Other(code) => code,
        }
    }
}

impl BatchHeader {
    pub fn last_offset(&self) -> i64 {
        self.base_offset + i64::from(self.last_offset_delta)
    }

    pub fn next_offset(&self) -> i64 {
        self.last_offset() + 1
    }

    /// The sequence number of the batch's last record (sequences wrap at i32::MAX).
    pub fn last_sequence(&self) -> i32 {
        ((i64::from(self.base_sequence) + i64::from(self.last_offset_delta))
            % (i64::from(i32::MAX) + 1)) as i32
    }
}

/// Reads the header of the batch at `position` without checking its CRC. Returns `Ok(None)` when
/// fewer bytes than the whole batch are present (a batch cut by a read limit or a torn write).
pub fn peek_header(buffer: &[u8], position: usize) -> Result<Option<BatchHeader>, BatchError> {
    if buffer.len() < position + LOG_OVERHEAD_BYTES {
        return Ok(None);
    }
    let length = read_i32(buffer, position + LENGTH_OFFSET);
    if length < (BATCH_HEADER_BYTES - LOG_OVERHEAD_BYTES) as i32 {
        return Err(BatchError::InvalidLength { position, length });
    }
    let size = LOG_OVERHEAD_BYTES + length as usize;
    if buffer.len() < position + BATCH_HEADER_BYTES {
        return Ok(None);
    }
    let magic = buffer[position + MAGIC_OFFSET] as i8;
    if magic != MAGIC_V2 {
        return Err(BatchError::UnsupportedMagic { position, magic });
    }
    let header = BatchHeader {
        position,
        base_offset: read_i64(buffer, position),
        leader_epoch: read_i32(buffer, position + LEADER_EPOCH_OFFSET),
        size,
        last_offset_delta: read_i32(buffer, position + LAST_OFFSET_DELTA_OFFSET),
        base_timestamp: read_i64(buffer, position + BASE_TIMESTAMP_OFFSET),
        max_timestamp: read_i64(buffer, position + MAX_TIMESTAMP_OFFSET),
        record_count: read_i32(buffer, position + RECORD_COUNT_OFFSET),
        attributes: read_i16(buffer, position + ATTRIBUTES_OFFSET),
        producer_id: read_i64(buffer, position + PRODUCER_ID_OFFSET),
        producer_epoch: read_i16(buffer, position + PRODUCER_EPOCH_OFFSET),
        base_sequence: read_i32(buffer, position + BASE_SEQUENCE_OFFSET),
        control: None,
    };
    if header.last_offset_delta < 0 {
        return Err(BatchError::InvalidOffsetRange {
            position,
            last_offset_delta: header.last_offset_delta,
        });
    }
    if buffer.len() < position + size {
        return Ok(None);
    }
    let control = match header.attributes & CONTROL_ATTRIBUTE != 0 {
        true => Some(control_type(
            &buffer[position + BATCH_HEADER_BYTES..position + size],
        )),
        false => None,
    };
    Ok(Some(BatchHeader { control, ..header }))
}

/// What the first record of a control batch says (`records`: the batch after its header):
/// the type its key names and, for a marker, the coordinator epoch of its value. Control
/// batches are never compressed; a key that cannot be read is `Other(-1)`.
fn control_type(records: &[u8]) -> Control {
    let mut cursor = records;
    let mut key = || {
        let _length = read_varint(&mut cursor)?;
        let _attributes = take(&mut cursor, 1)?;
        let _timestamp_delta = read_varint(&mut cursor)?;
        let _offset_delta = read_varint(&mut cursor)?;
        let key_length = usize::try_from(read_varint(&mut cursor)?).ok()?;
        let key = take(&mut cursor, key_length)?;
        let kind = i16::from_be_bytes([*key.get(2)?, *key.get(3)?]);
        Some(kind)
    };
    let kind = match key() {
        Some(0) => ControlType::Abort,
        Some(1) => ControlType::Commit,
        Some(other) => ControlType::Other(other),
        None => ControlType::Other(-1),
    };
    let mut value = || {
        let value_length = read_varint(&mut cursor)?;
        let value = take(&mut cursor, usize::try_from(value_length).ok()?)?;
        Some(i32::from_be_bytes(value.get(2..6)?.try_into().ok()?))
    };
    let coordinator_epoch = match kind {
        ControlType::Abort | ControlType::Commit => value().unwrap_or(-1),
        ControlType::Other(_) => -1,
    };
    Control {
        kind,
        coordinator_epoch,
    }
}

fn take<'a>(cursor: &mut &'a [u8], count: usize) -> Option<&'a [u8]> {
    let (head, tail) = (cursor.get(..count)?, cursor.get(count..)?);
    *cursor = tail;
    Some(head)
}

/// A zig-zag varint (at most 10 bytes, as a varlong).
fn read_varint(cursor: &mut &[u8]) -> Option<i64> {
    let mut value: u64 = 0;
    for shift in 0..10 {
        let byte = *take(cursor, 1)?.first()?;
        value |= u64::from(byte & 0x7f) << (7 * shift);
        if byte & 0x80 == 0 {
            return Some((value >> 1) as i64 ^ -((value & 1) as i64));
        }
    }
    None
}

/// Checks the stored CRC-32C of a whole batch.
pub fn verify_crc(buffer: &[u8], header: &BatchHeader) -> Result<(), BatchError> {
    let start = header.position;
    let stored = read_u32(buffer, start + CRC_OFFSET);
    let computed = crc32c::crc32c(&buffer[start + ATTRIBUTES_OFFSET..start + header.size]);
    if stored != computed {
        return Err(BatchError::CorruptCrc {
            position: start,
            stored,
            computed,
        });
    }
    Ok(())
}

/// Validates every batch of a produce payload: whole, magic 2, CRC-32C, each at most
/// `batch_bytes_max`. Returns the headers in order.
pub fn validate_batches(
    buffer: &[u8],
    batch_bytes_max: usize,
) -> Result<Vec<BatchHeader>, BatchError> {
    let mut headers = Vec::new();
    let mut position = 0;
    while position < buffer.len() {
        let header = peek_header(buffer, position)?.ok_or(BatchError::Truncated { position })?;
        if header.size > batch_bytes_max {
            return Err(BatchError::TooLarge {
                size: header.size,
                max: batch_bytes_max,
            });
        }
        verify_crc(buffer, &header)?;
        position += header.size;
        headers.push(header);
    }
    if headers.is_empty() {
        return Err(BatchError::Empty);
    }
    Ok(headers)
}

/// Stamps every batch with the broker's time (`message.timestamp.type=LogAppendTime`), as
/// Kafka does: the timestamp-type attribute is set and the max timestamp becomes `now_ms`; both
/// lie inside the CRC, which is computed again. Records keep their own timestamps; readers take
/// the batch's. Returns the rewritten copy; `headers` are updated to match.
pub fn stamp_log_append_time(
    buffer: &[u8],
    headers: &mut [BatchHeader],
    now_ms: i64,
) -> bytes::Bytes {
    let mut out = buffer.to_vec();
    for header in headers.iter_mut() {
        header.attributes |= LOG_APPEND_TIME_ATTRIBUTE;
        header.max_timestamp = now_ms;
        let batch = &mut out[header.position..header.position + header.size];
        batch[ATTRIBUTES_OFFSET..ATTRIBUTES_OFFSET + 2]
            .copy_from_slice(&header.attributes.to_be_bytes());
        batch[MAX_TIMESTAMP_OFFSET..MAX_TIMESTAMP_OFFSET + 8]
            .copy_from_slice(&now_ms.to_be_bytes());
        let crc = crc32c::crc32c(&batch[ATTRIBUTES_OFFSET..]);
        batch[CRC_OFFSET..CRC_OFFSET + 4].copy_from_slice(&crc.to_be_bytes());
    }
    bytes::Bytes::from(out)
}

/// Rewrites base offset and partition leader epoch in place; the CRC stays valid.
pub fn assign_offset(buffer: &mut [u8], position: usize, base_offset: i64, leader_epoch: i32) {
    buffer[position..position + 8].copy_from_slice(&base_offset.to_be_bytes());
    buffer[position + LEADER_EPOCH_OFFSET..position + LEADER_EPOCH_OFFSET + 4]
        .copy_from_slice(&leader_epoch.to_be_bytes());
}

/// Header fields a compacted batch takes from the batch it was rewritten from, so that the
/// rewrite describes the same producer history (see `storage::cleaner`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetainedHeader {
    pub attributes: i16,
    pub last_offset_delta: i32,
    pub max_timestamp: i64,
    pub base_sequence: i32,
}

/// Overwrites attributes, last offset delta, max timestamp and base sequence of the one batch in
/// `buffer`, then recomputes its CRC-32C (all four fields lie inside the checksummed range).
pub fn retain_header(buffer: &mut [u8], retained: &RetainedHeader) {
    assert!(
        buffer.len() >= BATCH_HEADER_BYTES,
        "a batch of {} bytes has no whole header",
        buffer.len()
    );
    let mut put = |at: usize, bytes: &[u8]| buffer[at..at + bytes.len()].copy_from_slice(bytes);
    put(ATTRIBUTES_OFFSET, &retained.attributes.to_be_bytes());
    put(
        LAST_OFFSET_DELTA_OFFSET,
        &retained.last_offset_delta.to_be_bytes(),
    );
    put(MAX_TIMESTAMP_OFFSET, &retained.max_timestamp.to_be_bytes());
    put(BASE_SEQUENCE_OFFSET, &retained.base_sequence.to_be_bytes());
    let crc = crc32c::crc32c(&buffer[ATTRIBUTES_OFFSET..]);
    buffer[CRC_OFFSET..CRC_OFFSET + 4].copy_from_slice(&crc.to_be_bytes());
}

/// Whether the batch holds control records (transaction markers) rather than data.
pub fn is_control(header: &BatchHeader) -> bool {
    header.attributes & CONTROL_ATTRIBUTE != 0
}

/// Whether the batch belongs to a transaction (its producer's data or its marker).
pub fn is_transactional(header: &BatchHeader) -> bool {
    header.attributes & TRANSACTIONAL_ATTRIBUTE != 0
}

/// Encodes a transaction marker as Kafka writes one: a control batch of the producer's, one
/// record with key (version 0, type) and value (version 0, coordinator epoch), no sequence.
pub fn encode_marker(
    producer_id: i64,
    producer_epoch: i16,
    coordinator_epoch: i32,
    control: ControlType,
    timestamp: i64,
) -> Vec<u8> {
    let mut key = Vec::with_capacity(4);
    key.extend_from_slice(&0i16.to_be_bytes());
    key.extend_from_slice(&control.code().to_be_bytes());
    let mut value = Vec::with_capacity(6);
    value.extend_from_slice(&0i16.to_be_bytes());
    value.extend_from_slice(&coordinator_epoch.to_be_bytes());
    let mut record = Vec::with_capacity(16);
    record.push(0); // attributes
    write_varint(&mut record, 0); // timestamp delta
    write_varint(&mut record, 0); // offset delta
    write_varint(&mut record, key.len() as i64);
    record.extend_from_slice(&key);
    write_varint(&mut record, value.len() as i64);
    record.extend_from_slice(&value);
    write_varint(&mut record, 0); // headers
    let mut records = Vec::with_capacity(record.len() + 2);
    write_varint(&mut records, record.len() as i64);
    records.extend_from_slice(&record);

    let size = BATCH_HEADER_BYTES + records.len();
    let mut batch = vec![0u8; size];
    let mut put = |at: usize, bytes: &[u8]| batch[at..at + bytes.len()].copy_from_slice(bytes);
    put(0, &0i64.to_be_bytes());
    put(
        LENGTH_OFFSET,
        &((size - LOG_OVERHEAD_BYTES) as i32).to_be_bytes(),
    );
    put(LEADER_EPOCH_OFFSET, &(-1i32).to_be_bytes());
    put(MAGIC_OFFSET, &[MAGIC_V2 as u8]);
    put(
        ATTRIBUTES_OFFSET,
        &(CONTROL_ATTRIBUTE | TRANSACTIONAL_ATTRIBUTE).to_be_bytes(),
    );
    put(LAST_OFFSET_DELTA_OFFSET, &0i32.to_be_bytes());
    put(BASE_TIMESTAMP_OFFSET, &timestamp.to_be_bytes());
    put(MAX_TIMESTAMP_OFFSET, &timestamp.to_be_bytes());
    put(PRODUCER_ID_OFFSET, &producer_id.to_be_bytes());
    put(PRODUCER_EPOCH_OFFSET, &producer_epoch.to_be_bytes());
    put(BASE_SEQUENCE_OFFSET, &(-1i32).to_be_bytes());
    put(RECORD_COUNT_OFFSET, &1i32.to_be_bytes());
    put(BATCH_HEADER_BYTES, &records);
    let crc = crc32c::crc32c(&batch[ATTRIBUTES_OFFSET..]);
    batch[CRC_OFFSET..CRC_OFFSET + 4].copy_from_slice(&crc.to_be_bytes());
    batch
}

/// Who writes a batch the broker encodes itself: the producer id and epoch of a transactional
/// write (the offsets of a transaction), or nobody.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Writer {
    Broker,
    Transaction {
        producer_id: i64,
        producer_epoch: i16,
    },
}

/// Encodes (key, value) records as one uncompressed batch (offsets are assigned on append),
/// with no sequence: the broker's own records in its internal topics.
pub fn encode_records(
    records: Vec<(bytes::Bytes, Option<bytes::Bytes>)>,
    timestamp: i64,
    writer: Writer,
) -> Vec<u8> {
    use kafka_protocol::records::{
        Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
    };
    let (transactional, producer_id, producer_epoch) = match writer {
        Writer::Broker => (false, -1, -1),
        Writer::Transaction {
            producer_id,
            producer_epoch,
        } => (true, producer_id, producer_epoch),
    };
    let records: Vec<Record> = records
        .into_iter()
        .enumerate()
        .map(|(index, (key, value))| Record {
            transactional,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: 0,
            producer_id,
            producer_epoch,
            timestamp_type: TimestampType::Creation,
            offset: index as i64,
            // The encoder keeps records in one batch only while offset minus sequence is
            // constant; this makes it so with the batch's base sequence -1 (no sequence).
            sequence: index as i32 - 1,
            timestamp,
            key: Some(key),
            value,
            headers: Default::default(),
        })
        .collect();
    let mut buffer = bytes::BytesMut::new();
    let options = RecordEncodeOptions {
        version: 2,
        compression: Compression::None,
    };
    RecordBatchEncoder::encode(&mut buffer, &records, &options)
        .expect("encoding into memory cannot fail");
    buffer.to_vec()
}

fn write_varint(out: &mut Vec<u8>, value: i64) {
    let mut zigzag = ((value << 1) ^ (value >> 63)) as u64;
    while zigzag >= 0x80 {
        out.push((zigzag as u8 & 0x7f) | 0x80);
        zigzag >>= 7;
    }
    out.push(zigzag as u8);
}

/// Whether the batch's timestamps were set by the broker (`message.timestamp.type=LogAppendTime`).
pub fn is_log_append_time(header: &BatchHeader) -> bool {
    header.attributes & LOG_APPEND_TIME_ATTRIBUTE != 0
}

fn read_i16(buffer: &[u8], at: usize) -> i16 {
    i16::from_be_bytes([buffer[at], buffer[at + 1]])
}

fn read_i32(buffer: &[u8], at: usize) -> i32 {
    i32::from_be_bytes(buffer[at..at + 4].try_into().expect("four bytes"))
}

fn read_u32(buffer: &[u8], at: usize) -> u32 {
    u32::from_be_bytes(buffer[at..at + 4].try_into().expect("four bytes"))
}

fn read_i64(buffer: &[u8], at: usize) -> i64 {
    i64::from_be_bytes(buffer[at..at + 8].try_into().expect("eight bytes"))
}

#[cfg(test)]
pub mod tests {
    use super::*;
    use bytes::BytesMut;
    use kafka_protocol::records::{
        Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
    };

    /// Encodes `count` small records as one batch with the protocol crate's encoder.
    pub fn encoded_batch(count: i32, value_bytes: usize) -> Vec<u8> {
        encoded_batch_with(count, value_bytes, Compression::None)
    }

    /// `encoded_batch` compressed with `compression`.
    pub fn encoded_batch_with(count: i32, value_bytes: usize, compression: Compression) -> Vec<u8> {
        let records: Vec<Record> = (0..count)
            .map(|index| Record {
                transactional: false,
                control: false,
                delete_horizon: false,
                partition_leader_epoch: 0,
                producer_id: -1,
                producer_epoch: -1,
                timestamp_type: TimestampType::Creation,
                offset: i64::from(index),
                sequence: index,
                timestamp: 1_700_000_000_000 + i64::from(index),
                key: Some(bytes::Bytes::from(format!("key-{index}"))),
                value: Some(bytes::Bytes::from(vec![b'v'; value_bytes])),
                headers: Default::default(),
            })
            .collect();
        let mut buffer = BytesMut::new();
        let options = RecordEncodeOptions {
            version: 2,
            compression,
        };
        RecordBatchEncoder::encode(&mut buffer, &records, &options).expect("encode batch");
        buffer.to_vec()
    }

    /// Proves a valid batch parses, and offset assignment keeps its CRC valid.
    #[test]
    fn validates_and_assigns_offsets() {
        let mut buffer = encoded_batch(5, 10);
        let headers = validate_batches(&buffer, 1 << 20).unwrap();
        assert_eq!(headers.len(), 1);
        assert_eq!(headers[0].record_count, 5);
        assert_eq!(headers[0].last_offset_delta, 4);
        assert_eq!(headers[0].size, buffer.len());
        assign_offset(&mut buffer, 0, 1000, 7);
        let headers = validate_batches(&buffer, 1 << 20).unwrap();
        assert_eq!(headers[0].base_offset, 1000);
        assert_eq!(headers[0].leader_epoch, 7);
        assert_eq!(headers[0].next_offset(), 1005);
    }

    /// Proves corrupt, truncated, oversize and old-magic batches are refused with their reason.
    #[test]
    fn refuses_bad_batches() {
        let buffer = encoded_batch(3, 10);
        let mut corrupt = buffer.clone();
        let last = corrupt.len() - 1;
        corrupt[last] ^= 0xff;
        assert!(matches!(
            validate_batches(&corrupt, 1 << 20),
            Err(BatchError::CorruptCrc { .. })
        ));
        assert_eq!(
            validate_batches(&buffer[..buffer.len() - 1], 1 << 20),
            Err(BatchError::Truncated { position: 0 })
        );
        assert!(matches!(
            validate_batches(&buffer, 10),
            Err(BatchError::TooLarge { .. })
        ));
        let mut old = buffer.clone();
        old[MAGIC_OFFSET] = 1;
        assert!(matches!(
            validate_batches(&old, 1 << 20),
            Err(BatchError::UnsupportedMagic { .. })
        ));
        assert_eq!(validate_batches(&[], 1 << 20), Err(BatchError::Empty));
        let garbage = [0u8; 12];
        assert!(matches!(
            validate_batches(&garbage, 1 << 20),
            Err(BatchError::InvalidLength { .. })
        ));
    }

    /// Proves a LogAppendTime stamp keeps the batch valid (CRC recomputed) and marks every
    /// record's timestamp as the broker's.
    #[test]
    fn stamps_log_append_time() {
        let encoded = encoded_batch(3, 10);
        let mut headers = validate_batches(&encoded, usize::MAX).unwrap();
        let stamped = stamp_log_append_time(&encoded, &mut headers, 1_700_000_000_123);
        let reread = validate_batches(&stamped, usize::MAX).unwrap();
        assert_eq!(reread, headers);
        assert!(is_log_append_time(&reread[0]));
        assert_eq!(reread[0].max_timestamp, 1_700_000_000_123);
        let mut bytes = stamped.clone();
        let set = kafka_protocol::records::RecordBatchDecoder::decode(&mut bytes).unwrap();
        assert_eq!(set.records.len(), 3);
        assert!(set
            .records
            .iter()
            .all(|record| record.timestamp_type == TimestampType::LogAppend));
    }
}
