//! Record-level validation of produced batches, as Kafka's `LogValidator` does it for a client's
//! batches: the header's record count and offset range agree with the records actually present,
//! every record is well formed (varints in range, lengths within the record, header counts not
//! negative, nothing left over), compressed batches decompress cleanly within a bound, and record
//! timestamps lie within `message.timestamp.before.max.ms` / `.after.max.ms` of the broker's clock.
//!
//! Records are walked, never materialised: keys, values and headers are skipped over, and a
//! compressed batch is decompressed as a stream through a small buffer, so memory stays constant
//! whatever a batch claims. `batch::validate_batches` (framing, magic, CRC, size) runs first.

use std::io::Read;

use super::batch::BatchHeader;

/// Compression codecs (the low three bits of a batch's attributes).
const CODEC_MASK: i16 = 0x07;
const CODEC_NONE: i16 = 0;
const CODEC_GZIP: i16 = 1;
const CODEC_SNAPPY: i16 = 2;
const CODEC_LZ4: i16 = 3;
const CODEC_ZSTD: i16 = 4;
const TRANSACTIONAL_ATTRIBUTE: i16 = 1 << 4;
const CONTROL_ATTRIBUTE: i16 = 1 << 5;
const LOG_APPEND_TIME_ATTRIBUTE: i16 = 1 << 3;
/// Produce v7 is the first that may carry zstd (KIP-110).
const ZSTD_PRODUCE_VERSION_MIN: i16 = 7;
/// The least a decompressed batch may grow to before it is refused: see `decompressed_bytes_max`.
const DECOMPRESSED_BYTES_FLOOR: u64 = 64 << 20;
/// How many times `max.message.bytes` a compressed batch may decompress to.
const DECOMPRESSION_RATIO_MAX: u64 = 64;
/// Bytes of the xerial snappy framing's magic header (Kafka's snappy format).
const SNAPPY_XERIAL_MAGIC: &[u8; 8] = b"\x82SNAPPY\x00";
const SNAPPY_XERIAL_HEADER_BYTES: usize = 16;

/// What a produced batch is checked against.
#[derive(Clone, Copy, Debug)]
pub struct ValidationConfig {
    /// `max.message.bytes`, which also bounds decompression (see `decompressed_bytes_max`).
    pub max_message_bytes: usize,
    /// `message.timestamp.type=LogAppendTime`: record timestamps are the broker's, unchecked.
    pub log_append_time: bool,
    /// `message.timestamp.before.max.ms`: how far in the past a record's timestamp may lie.
    pub timestamp_before_max_ms: i64,
    /// `message.timestamp.after.max.ms`: how far in the future a record's timestamp may lie.
    pub timestamp_after_max_ms: i64,
    /// The broker's clock when the request arrived.
    pub now_ms: i64,
    /// The Produce request's version (zstd needs v7+).
    pub produce_version: i16,
}

impl ValidationConfig {
    /// The most a compressed batch may decompress to: `max.message.bytes` times 64, at least
    /// 64 MiB. Kafka itself bounds only what it recompresses; a bound is needed here because a
    /// small compressed batch can otherwise make the broker inflate gigabytes (a few kilobytes of
    /// zstd describe a gigabyte of zeros). Producers' batches are far below it: their batch size
    /// limits what they compress.
    pub fn decompressed_bytes_max(&self) -> u64 {
        (self.max_message_bytes as u64)
            .saturating_mul(DECOMPRESSION_RATIO_MAX)
            .max(DECOMPRESSED_BYTES_FLOOR)
    }
}

/// What the records of the validated batches showed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RecordsSummary {
    /// The records without a key, by their index in their batch (a compacted topic refuses
    /// them, naming each in `record_errors` as Kafka does).
    pub keyless_records: Vec<i32>,
}

/// Why a produced batch was refused; each maps to a Kafka error code (`api::produce`). The
/// index of the record at fault, when one is, goes back in the response's `record_errors`.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RecordError {
    /// Kafka's InvalidRecordException (INVALID_RECORD).
    #[error("{0}")]
    Invalid(String, Option<i32>),
    /// Kafka's InvalidTimestampException (INVALID_TIMESTAMP).
    #[error("{0}")]
    Timestamp(String, Option<i32>),
    /// UNSUPPORTED_COMPRESSION_TYPE.
    #[error("{0}")]
    Compression(String),
}

impl RecordError {
    /// The index of the record at fault within its batch, if the fault is one record's.
    pub fn record_index(&self) -> Option<i32> {
        match self {
            RecordError::Invalid(_, record) | RecordError::Timestamp(_, record) => *record,
            RecordError::Compression(_) => None,
        }
    }
}

/// Checks the records of every batch of one partition's produce data, as Kafka checks a client's
/// batches. `headers` come from `batch::validate_batches` over the same `buffer`.
pub fn validate_client_batches(
    buffer: &[u8],
    headers: &[BatchHeader],
    config: &ValidationConfig,
    partition: &str,
) -> Result<RecordsSummary, RecordError> {
    let mut summary = RecordsSummary::default();
    for header in headers {
        check_header(header, config, partition)?;
        let records = &buffer
            [header.position + super::batch::BATCH_HEADER_BYTES..header.position + header.size];
        let mut at = None;
        let walked = walk_records(records, header, config, &mut at)
            .map_err(|error| error.in_partition(header, config, partition, at))?;
        summary.keyless_records.extend(walked.keyless_records);
    }
    Ok(summary)
}

/// The header checks of Kafka's `LogValidator.validateBatch` for a client's batch.
fn check_header(
    header: &BatchHeader,
    config: &ValidationConfig,
    partition: &str,
) -> Result<(), RecordError> {
    let invalid = |message: String| Err(RecordError::Invalid(message, None));
    if header.record_count <= 0 {
        return invalid(format!(
            "Invalid reported count for record batch: {} in topic partition {partition}.",
            header.record_count
        ));
    }
    if i64::from(header.last_offset_delta) + 1 != i64::from(header.record_count) {
        return invalid(format!(
            "Inconsistent batch offset range [0, {}] and count of records {} in topic partition {partition}.",
            header.last_offset_delta, header.record_count
        ));
    }
    if header.attributes & CONTROL_ATTRIBUTE != 0 {
        return invalid(format!(
            "Clients are not allowed to write control records in topic partition {partition}."
        ));
    }
    if header.producer_id >= 0 && header.base_sequence < 0 {
        return invalid(format!(
            "Invalid sequence number {} in record batch with producerId {} in topic partition {partition}.",
            header.base_sequence, header.producer_id
        ));
    }
    if header.attributes & TRANSACTIONAL_ATTRIBUTE != 0 && header.producer_id < 0 {
        return invalid(format!(
            "Transactional record batch without a producer id in topic partition {partition}."
        ));
    }
    match header.attributes & CODEC_MASK {
        CODEC_NONE | CODEC_GZIP | CODEC_SNAPPY | CODEC_LZ4 => Ok(()),
        CODEC_ZSTD if config.produce_version >= ZSTD_PRODUCE_VERSION_MIN => Ok(()),
        CODEC_ZSTD => Err(RecordError::Compression(format!(
            "Produce requests with version {} are not allowed to use ZStandard compression",
            config.produce_version
        ))),
        codec => Err(RecordError::Compression(format!(
            "Unknown compression type id {codec} in topic partition {partition}."
        ))),
    }
}

/// A failure while walking records, before it is put in words for the client.
#[derive(Debug)]
enum WalkError {
    /// The records end before what the batch or a record says is there.
    Underflow,
    VarintTooLong,
    RecordSize {
        expected: i64,
        read: u64,
    },
    NegativeRecordSize(i32),
    NegativeLength {
        field: &'static str,
        length: i32,
    },
    NegativeHeaderCount(i32),
    OffsetDelta {
        index: i32,
        delta: i32,
    },
    TrailingBytes,
    DecompressedTooLarge(u64),
    Decompression(String),
    Timestamp {
        timestamp: i64,
        index: i32,
    },
}

impl WalkError {
    fn in_partition(
        self,
        header: &BatchHeader,
        config: &ValidationConfig,
        partition: &str,
        record: Option<i32>,
    ) -> RecordError {
        let message = match self {
            WalkError::Timestamp { timestamp, index } => {
                return RecordError::Timestamp(
                    format!(
                        "Timestamp {timestamp} of message with offset {index} is out of range. The timestamp should be within [{}, {}] in topic partition {partition}.",
                        config.now_ms.saturating_sub(config.timestamp_before_max_ms),
                        config.now_ms.saturating_add(config.timestamp_after_max_ms),
                    ),
                    record,
                );
            }
            WalkError::Underflow => format!(
                "Found invalid record structure: the batch of {} records ends early",
                header.record_count
            ),
            WalkError::VarintTooLong => "Found invalid record structure: a varint is longer than its type allows".to_string(),
            WalkError::RecordSize { expected, read } => format!(
                "Invalid record size: expected to read {expected} bytes in record payload, but instead read {read}"
            ),
            WalkError::NegativeRecordSize(size) => format!("Invalid record size {size}"),
            WalkError::NegativeLength { field, length } => {
                format!("Invalid negative {field} size {length}")
            }
            WalkError::NegativeHeaderCount(count) => {
                format!("Found invalid number of record headers {count}")
            }
            WalkError::OffsetDelta { index, delta } => format!(
                "Record {index} of the batch has offset delta {delta}; the records of a batch must have offset deltas 0, 1, 2, ..."
            ),
            WalkError::TrailingBytes => format!(
                "Incorrect declared batch size, records still remaining after the {} declared",
                header.record_count
            ),
            WalkError::DecompressedTooLarge(max) => format!(
                "The compressed batch decompresses to more than {max} bytes"
            ),
            WalkError::Decompression(reason) => {
                format!("Failed to decompress the record batch: {reason}")
            }
        };
        RecordError::Invalid(format!("{message} in topic partition {partition}."), record)
    }
}

/// Walks the records of one batch (`records`: the bytes after its 61-byte header); `at` is left
/// at the index of the record being read when an error stops the walk.
fn walk_records(
    records: &[u8],
    header: &BatchHeader,
    config: &ValidationConfig,
    at: &mut Option<i32>,
) -> Result<RecordsSummary, WalkError> {
    let limit = config.decompressed_bytes_max();
    match header.attributes & CODEC_MASK {
        CODEC_GZIP => walk(
            &mut StreamSource::new(flate2::read::GzDecoder::new(records), limit),
            header,
            config,
            at,
        ),
        CODEC_SNAPPY => walk(
            &mut StreamSource::new(SnappyReader::new(records, limit), limit),
            header,
            config,
            at,
        ),
        CODEC_LZ4 => {
            let decoder = lz4::Decoder::new(records)
                .map_err(|error| WalkError::Decompression(error.to_string()))?;
            walk(&mut StreamSource::new(decoder, limit), header, config, at)
        }
        CODEC_ZSTD => {
            let decoder = zstd::stream::read::Decoder::with_buffer(records)
                .map_err(|error| WalkError::Decompression(error.to_string()))?;
            walk(&mut StreamSource::new(decoder, limit), header, config, at)
        }
        _ => walk(&mut SliceSource { bytes: records }, header, config, at),
    }
}

/// The records' bytes, from a slice or a decompressing stream.
trait Source {
    fn byte(&mut self) -> Result<u8, WalkError>;
    fn skip(&mut self, count: u64) -> Result<(), WalkError>;
    /// Bytes consumed so far.
    fn consumed(&self) -> u64;
    /// Whether every byte has been consumed.
    fn at_end(&mut self) -> Result<bool, WalkError>;
}

struct SliceSource<'a> {
    bytes: &'a [u8],
}

// `consumed` is relative: the walk only compares differences.
impl Source for SliceSource<'_> {
    fn byte(&mut self) -> Result<u8, WalkError> {
        let (&first, rest) = self.bytes.split_first().ok_or(WalkError::Underflow)?;
        self.bytes = rest;
        Ok(first)
    }

    fn skip(&mut self, count: u64) -> Result<(), WalkError> {
        let count = usize::try_from(count).map_err(|_| WalkError::Underflow)?;
        self.bytes = self.bytes.get(count..).ok_or(WalkError::Underflow)?;
        Ok(())
    }

    fn consumed(&self) -> u64 {
        u64::MAX - self.bytes.len() as u64
    }

    fn at_end(&mut self) -> Result<bool, WalkError> {
        Ok(self.bytes.is_empty())
    }
}

/// A decompressing reader behind an 8 KiB buffer, refusing to go past `limit` bytes.
struct StreamSource<R> {
    inner: R,
    buffer: Box<[u8; 8192]>,
    start: usize,
    end: usize,
    /// Bytes taken out of the buffer so far.
    consumed: u64,
    /// Bytes read from `inner` so far.
    produced: u64,
    limit: u64,
}

impl<R: Read> StreamSource<R> {
    fn new(inner: R, limit: u64) -> StreamSource<R> {
        StreamSource {
            inner,
            buffer: Box::new([0; 8192]),
            start: 0,
            end: 0,
            consumed: 0,
            produced: 0,
            limit,
        }
    }

    /// Refills the buffer; false at the end of the stream.
    fn fill(&mut self) -> Result<bool, WalkError> {
        if self.start < self.end {
            return Ok(true);
        }
        let read = loop {
            match self.inner.read(&mut self.buffer[..]) {
                Ok(read) => break read,
                Err(error) if error.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(error) if error.kind() == std::io::ErrorKind::UnexpectedEof => {
                    return Err(WalkError::Decompression(
                        "the compressed data ends early".to_string(),
                    ))
                }
                Err(error) => return Err(WalkError::Decompression(error.to_string())),
            }
        };
        self.produced += read as u64;
        if self.produced > self.limit {
            return Err(WalkError::DecompressedTooLarge(self.limit));
        }
        self.start = 0;
        self.end = read;
        Ok(read > 0)
    }
}

impl<R: Read> Source for StreamSource<R> {
    fn byte(&mut self) -> Result<u8, WalkError> {
        if !self.fill()? {
            return Err(WalkError::Underflow);
        }
        let byte = self.buffer[self.start];
        self.start += 1;
        self.consumed += 1;
        Ok(byte)
    }

    fn skip(&mut self, mut count: u64) -> Result<(), WalkError> {
        while count > 0 {
            if !self.fill()? {
                return Err(WalkError::Underflow);
            }
            let step = count.min((self.end - self.start) as u64);
            self.start += step as usize;
            self.consumed += step;
            count -= step;
        }
        Ok(())
    }

    fn consumed(&self) -> u64 {
        self.consumed
    }

    fn at_end(&mut self) -> Result<bool, WalkError> {
        Ok(!self.fill()?)
    }
}

/// Walks `record_count` records from `source`, checking each as Kafka's `DefaultRecord` reads
/// it, then that nothing follows them.
fn walk(
    source: &mut impl Source,
    header: &BatchHeader,
    config: &ValidationConfig,
    at: &mut Option<i32>,
) -> Result<RecordsSummary, WalkError> {
    let mut summary = RecordsSummary::default();
    let check_times = !config.log_append_time && header.attributes & LOG_APPEND_TIME_ATTRIBUTE == 0;
    for index in 0..header.record_count {
        *at = Some(index);
        let size = read_varint(source)?;
        if size < 0 {
            return Err(WalkError::NegativeRecordSize(size));
        }
        let start = source.consumed();
        let _attributes = source.byte()?;
        let timestamp_delta = read_varlong(source)?;
        let offset_delta = read_varint(source)?;
        if offset_delta != index {
            return Err(WalkError::OffsetDelta {
                index,
                delta: offset_delta,
            });
        }
        if skip_field(source, start, size, "key")? {
            summary.keyless_records.push(index);
        }
        skip_field(source, start, size, "value")?;
        let header_count = read_varint(source)?;
        if header_count < 0 {
            return Err(WalkError::NegativeHeaderCount(header_count));
        }
        for _ in 0..header_count {
            if skip_field(source, start, size, "header key")? {
                // Kafka refuses a null header key ("Invalid negative header key size").
                return Err(WalkError::NegativeLength {
                    field: "header key",
                    length: -1,
                });
            }
            skip_field(source, start, size, "header value")?;
        }
        let read = source.consumed() - start;
        if read != size as u64 {
            return Err(WalkError::RecordSize {
                expected: i64::from(size),
                read,
            });
        }
        if check_times {
            check_timestamp(
                header.base_timestamp.saturating_add(timestamp_delta),
                index,
                config,
            )?;
        }
    }
    *at = None;
    if !source.at_end()? {
        return Err(WalkError::TrailingBytes);
    }
    Ok(summary)
}

/// Reads a field's length and skips its bytes, refusing a negative length other than -1 (null)
/// and a field running past the record's declared `size`. Returns whether the field is null.
fn skip_field(
    source: &mut impl Source,
    record_start: u64,
    size: i32,
    field: &'static str,
) -> Result<bool, WalkError> {
    let length = read_varint(source)?;
    if length == -1 {
        return Ok(true);
    }
    if length < 0 {
        return Err(WalkError::NegativeLength { field, length });
    }
    let used = source.consumed() - record_start;
    let end = used + length as u64;
    if end > size as u64 {
        return Err(WalkError::RecordSize {
            expected: i64::from(size),
            read: end,
        });
    }
    source.skip(length as u64)?;
    Ok(false)
}

/// Kafka's `validateTimestamp` for CreateTime topics: at most `before.max.ms` in the past and
/// `after.max.ms` in the future of the broker's clock.
fn check_timestamp(timestamp: i64, index: i32, config: &ValidationConfig) -> Result<(), WalkError> {
    let now = config.now_ms;
    let too_old = timestamp < now && now.saturating_sub(timestamp) > config.timestamp_before_max_ms;
    let too_new = timestamp > now && timestamp.saturating_sub(now) > config.timestamp_after_max_ms;
    if too_old || too_new {
        return Err(WalkError::Timestamp { timestamp, index });
    }
    Ok(())
}

/// A zigzag varint of at most 5 bytes (Kafka's `ByteUtils.readVarint`).
fn read_varint(source: &mut impl Source) -> Result<i32, WalkError> {
    let raw = read_unsigned(source, 5)?;
    let raw = u32::try_from(raw).map_err(|_| WalkError::VarintTooLong)?;
    Ok(((raw >> 1) as i32) ^ -((raw & 1) as i32))
}

/// A zigzag varlong of at most 10 bytes.
fn read_varlong(source: &mut impl Source) -> Result<i64, WalkError> {
    let raw = read_unsigned(source, 10)?;
    Ok(((raw >> 1) as i64) ^ -((raw & 1) as i64))
}

fn read_unsigned(source: &mut impl Source, bytes_max: u32) -> Result<u64, WalkError> {
    let mut value: u64 = 0;
    for index in 0..bytes_max {
        let byte = source.byte()?;
        value |= u64::from(byte & 0x7f) << (7 * index);
        if byte & 0x80 == 0 {
            return Ok(value);
        }
    }
    Err(WalkError::VarintTooLong)
}

/// Kafka's snappy framing (snappy-java's "xerial" stream: a 16-byte header, then blocks of a
/// 4-byte big-endian length and a raw snappy block), or a single raw snappy block when the
/// header is absent, as Kafka's reader falls back to. Each block's claimed size is checked
/// against what is left of `limit` before anything is allocated for it.
struct SnappyReader<'a> {
    compressed: &'a [u8],
    block: Vec<u8>,
    position: usize,
    remaining_limit: u64,
    raw: bool,
}

impl<'a> SnappyReader<'a> {
    fn new(compressed: &'a [u8], limit: u64) -> SnappyReader<'a> {
        let framed = compressed.len() >= SNAPPY_XERIAL_HEADER_BYTES
            && compressed.starts_with(SNAPPY_XERIAL_MAGIC);
        SnappyReader {
            compressed: if framed {
                &compressed[SNAPPY_XERIAL_HEADER_BYTES..]
            } else {
                compressed
            },
            block: Vec::new(),
            position: 0,
            remaining_limit: limit,
            raw: !framed,
        }
    }

    fn next_block(&mut self) -> std::io::Result<bool> {
        if self.compressed.is_empty() {
            return Ok(false);
        }
        let block = if self.raw {
            std::mem::take(&mut self.compressed)
        } else {
            if self.compressed.len() < 4 {
                return Err(invalid_data("a snappy block length is cut short"));
            }
            let length =
                u32::from_be_bytes(self.compressed[..4].try_into().expect("four bytes")) as usize;
            let rest = &self.compressed[4..];
            if rest.len() < length {
                return Err(invalid_data("a snappy block is cut short"));
            }
            self.compressed = &rest[length..];
            &rest[..length]
        };
        let size = snap::raw::decompress_len(block)
            .map_err(|error| invalid_data(&error.to_string()))? as u64;
        if size > self.remaining_limit {
            // Reported by the stream's own limit check once it reads past it.
            return Err(std::io::Error::other(format!(
                "a snappy block claims {size} bytes, more than the batch may decompress to"
            )));
        }
        self.remaining_limit -= size;
        self.block.resize(size as usize, 0);
        snap::raw::Decoder::new()
            .decompress(block, &mut self.block)
            .map_err(|error| invalid_data(&error.to_string()))?;
        self.position = 0;
        Ok(true)
    }
}

impl Read for SnappyReader<'_> {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        while self.position >= self.block.len() {
            if !self.next_block()? {
                return Ok(0);
            }
        }
        let count = out.len().min(self.block.len() - self.position);
        out[..count].copy_from_slice(&self.block[self.position..self.position + count]);
        self.position += count;
        Ok(count)
    }
}

fn invalid_data(message: &str) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, message.to_string())
}

#[cfg(test)]
#[path = "validator_tests.rs"]
mod tests;
