//! Log compaction for topics with `cleanup.policy=compact`, with Kafka's semantics: of every key
//! only the record with the latest offset survives; a tombstone (null value) survives until it is
//! older than `delete.retention.ms`, so that consumers catching up still see the deletion; records
//! without a key are dropped. Survivors keep their offsets, so the log start and end offsets never
//! move, and a fetch at an offset that was compacted away gets the next surviving batch.
//!
//! The work is split so that a partition's appends stop only for the swap: `Log::plan_compaction`
//! builds the key → latest offset map over the whole log (the active segment included: a newer
//! value there already makes older ones obsolete) and writes each group of inactive segments,
//! filtered, to `<first base>.log.cleaned` (this file's `write_group`); `Log::install_compaction`
//! then renames each cleaned file over its group's first `.log`, deletes the group's other
//! segments and reopens the result. The active segment is never rewritten. Batches whose records
//! all survive are copied byte for byte; the others are re-encoded from their survivors.
//!
//! Everything here runs on the shard that owns the partition.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::rc::Rc;

use bytes::{Bytes, BytesMut};
use glommio::io::{BufferedFile, OpenOptions};
use kafka_protocol::records::{
    Compression, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions,
};

use super::batch::{self, AbortedTxn, BatchHeader, RetainedHeader};
use super::segment::Segment;
use super::{segment_file_name, StorageError};

/// Kafka's `delete.retention.ms` default: tombstones stay readable for a day.
pub const DELETE_RETENTION_MS_DEFAULT: i64 = 86_400_000;
/// Kafka's `min.cleanable.dirty.ratio` default.
pub const MIN_CLEANABLE_DIRTY_RATIO_DEFAULT: f64 = 0.5;
/// Extension of a segment being rewritten; leftovers of a crash are deleted when a log opens.
pub const CLEANED_EXTENSION: &str = "cleaned";
/// Memory the key map of one compaction may use (Kafka's `log.cleaner.dedupe.buffer.size` is
/// 128 MiB for all cleaner threads). A log with more distinct key bytes is left uncompacted.
const KEY_MAP_BYTES_MAX: usize = 64 << 20;
/// Bookkeeping bytes counted per key map entry besides the key itself.
const KEY_MAP_ENTRY_OVERHEAD_BYTES: usize = 48;
/// Cleaned output is written in pieces of about this size.
const CLEANED_WRITE_BYTES: usize = 1 << 20;

/// How a topic wants its partitions compacted, from its topic-level configs.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CleanerConfig {
    pub delete_retention_ms: i64,
    pub min_cleanable_dirty_ratio: f64,
}

impl CleanerConfig {
    /// `None` unless `cleanup.policy` lists `compact`. Unparsable values fall back to Kafka's
    /// defaults (the controller validated the numeric ones when the topic was created).
    pub fn from_topic_configs(configs: &BTreeMap<String, String>) -> Option<CleanerConfig> {
        let policy = configs.get("cleanup.policy")?;
        if !policy.split(',').any(|policy| policy.trim() == "compact") {
            return None;
        }
        let number = |key: &str| configs.get(key).and_then(|value| value.trim().parse().ok());
        Some(CleanerConfig {
            delete_retention_ms: number("delete.retention.ms")
                .unwrap_or(DELETE_RETENTION_MS_DEFAULT),
            min_cleanable_dirty_ratio: configs
                .get("min.cleanable.dirty.ratio")
                .and_then(|value| value.trim().parse().ok())
                .unwrap_or(MIN_CLEANABLE_DIRTY_RATIO_DEFAULT),
        })
    }
}

/// What one compaction did, summed over its segment groups.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CompactionStats {
    /// Inactive segments read and rewritten.
    pub segments_before: usize,
    /// Segments they became (groups of small segments merge into one).
    pub segments_after: usize,
    pub records_read: u64,
    pub records_kept: u64,
    pub bytes_before: u64,
    pub bytes_after: u64,
}

impl CompactionStats {
    pub fn add(&mut self, other: &CompactionStats) {
        self.segments_before += other.segments_before;
        self.segments_after += other.segments_after;
        self.records_read += other.records_read;
        self.records_kept += other.records_kept;
        self.bytes_before += other.bytes_before;
        self.bytes_after += other.bytes_after;
    }
}

/// The latest offset of every key in the log, bounded by `KEY_MAP_BYTES_MAX`.
#[derive(Debug, Default)]
pub struct KeyMap {
    latest: HashMap<Bytes, i64>,
    bytes: usize,
    /// Aborted transactions of the log: their records neither count for their keys nor
    /// survive (Kafka's cleaner discards them the same way).
    aborted: Vec<AbortedTxn>,
}

impl KeyMap {
    /// Whether the data batch belongs to an aborted transaction.
    fn is_aborted(&self, header: &BatchHeader) -> bool {
        batch::is_transactional(header)
            && !batch::is_control(header)
            && self.aborted.iter().any(|txn| {
                txn.producer_id == header.producer_id
                    && (txn.first_offset..=txn.last_offset).contains(&header.base_offset)
            })
    }

    pub fn latest(&self, key: &[u8]) -> Option<i64> {
        self.latest.get(key).copied()
    }

    /// Records that `key` was written at `offset`; offsets arrive in increasing order.
    fn insert(&mut self, path: &Path, key: &[u8], offset: i64) -> Result<(), StorageError> {
        if let Some(latest) = self.latest.get_mut(key) {
            *latest = offset;
            return Ok(());
        }
        self.bytes += key.len() + KEY_MAP_ENTRY_OVERHEAD_BYTES;
        if self.bytes > KEY_MAP_BYTES_MAX {
            return Err(StorageError::KeyMapFull {
                path: path.to_path_buf(),
                bytes_max: KEY_MAP_BYTES_MAX,
            });
        }
        // A copy: a slice would keep the whole chunk it was read in alive.
        self.latest.insert(Bytes::copy_from_slice(key), offset);
        Ok(())
    }
}

/// Reads every batch of `segments` (up to their size now, and only records below
/// `durable_end`) into a key map.
pub async fn build_key_map(
    segments: &[Rc<Segment>],
    durable_end: i64,
    aborted: Vec<AbortedTxn>,
) -> Result<KeyMap, StorageError> {
    let mut map = KeyMap {
        aborted,
        ..KeyMap::default()
    };
    for segment in segments {
        let mut scan = SegmentScan::new(segment);
        while let Some(chunk) = scan.next().await? {
            for (header, bytes) in batches_of(&chunk) {
                if batch::is_control(&header) || map.is_aborted(&header) {
                    continue;
                }
                for record in decode_batch(segment.log_path(), &header, bytes)? {
                    if record.offset >= durable_end {
                        // Not yet durable: a crash could lose it, so it must not make the
                        // cleaner drop an older, durable value of its key.
                        break;
                    }
                    if let Some(key) = &record.key {
                        map.insert(segment.log_path(), key, record.offset)?;
                    }
                }
            }
        }
    }
    Ok(map)
}

/// Writes the survivors of every inactive segment of `segments` (the whole log; its last,
/// active segment is not touched) to cleaned files in `dir`, fsynced. Consecutive segments share
/// one cleaned file while what is written so far plus the next segment's size fits in
/// `segment_bytes_max` and their offsets span less than `i32::MAX` (Kafka groups by the sizes
/// before cleaning; counting what was written lets one pass merge the segments it empties).
/// Tombstones older than `tombstone_horizon_ms` are dropped.
pub async fn write_groups(
    dir: &Path,
    segments: &[Rc<Segment>],
    map: &KeyMap,
    tombstone_horizon_ms: i64,
    segment_bytes_max: u64,
) -> Result<Vec<CleanedGroup>, StorageError> {
    let mut groups: Vec<CleanedGroup> = Vec::new();
    let mut next = 0;
    while next + 1 < segments.len() {
        let first = &segments[next];
        let log_name = segment_file_name(first.base_offset, "log");
        let cleaned_path = dir.join(format!("{log_name}.{CLEANED_EXTENSION}"));
        let mut group = GroupWriter {
            writer: CleanedWriter::create(&cleaned_path).await?,
            segments: Vec::new(),
            changed: false,
            stats: CompactionStats::default(),
        };
        let written = async {
            loop {
                group
                    .add(&segments[next], map, tombstone_horizon_ms)
                    .await?;
                next += 1;
                let Some(after) = segments.get(next + 1) else {
                    break;
                };
                let fits = group.writer.size() + segments[next].size() <= segment_bytes_max;
                if !fits || after.base_offset - first.base_offset >= i64::from(i32::MAX) {
                    break;
                }
            }
            group.finish(cleaned_path.clone()).await
        }
        .await;
        match written {
            Ok(cleaned) => groups.push(cleaned),
            Err(error) => {
                remove_cleaned_files(&cleaned_path, &groups);
                return Err(error);
            }
        }
    }
    Ok(groups)
}

/// A group of segments rewritten to `cleaned_path`, waiting to be swapped in.
pub struct CleanedGroup {
    pub segments: Vec<Rc<Segment>>,
    pub cleaned_path: PathBuf,
    /// False when the rewrite equals the one segment it came from: nothing to swap.
    pub changed: bool,
    pub stats: CompactionStats,
}

fn remove_cleaned_files(failed: &Path, written: &[CleanedGroup]) {
    let paths = written.iter().map(|group| group.cleaned_path.as_path());
    for path in std::iter::once(failed).chain(paths) {
        let _ = std::fs::remove_file(path);
    }
}

/// The cleaned file of one group being written.
struct GroupWriter {
    writer: CleanedWriter,
    segments: Vec<Rc<Segment>>,
    changed: bool,
    stats: CompactionStats,
}

impl GroupWriter {
    async fn add(
        &mut self,
        segment: &Rc<Segment>,
        map: &KeyMap,
        tombstone_horizon_ms: i64,
    ) -> Result<(), StorageError> {
        self.segments.push(segment.clone());
        self.changed |= self.segments.len() > 1;
        self.stats.segments_before += 1;
        self.stats.bytes_before += segment.size();
        let mut scan = SegmentScan::new(segment);
        while let Some(chunk) = scan.next().await? {
            for (header, bytes) in batches_of(&chunk) {
                let outcome = filter_batch(
                    segment.log_path(),
                    &header,
                    bytes.clone(),
                    map,
                    tombstone_horizon_ms,
                )?;
                self.stats.records_read += outcome.records;
                self.stats.records_kept += outcome.kept;
                match outcome.filtered {
                    Filtered::Unchanged => self.writer.push(&bytes).await?,
                    Filtered::Removed => self.changed = true,
                    Filtered::Rewritten(rewritten) => {
                        self.changed = true;
                        self.writer.push(&rewritten).await?;
                    }
                }
            }
        }
        Ok(())
    }

    async fn finish(self, cleaned_path: PathBuf) -> Result<CleanedGroup, StorageError> {
        let mut stats = self.stats;
        stats.segments_after = 1;
        stats.bytes_after = self.writer.finish().await?;
        Ok(CleanedGroup {
            segments: self.segments,
            cleaned_path,
            changed: self.changed,
            stats,
        })
    }
}

/// What compaction makes of one batch.
#[derive(Debug, PartialEq, Eq)]
pub enum Filtered {
    /// Every record survives: the batch is kept byte for byte.
    Unchanged,
    /// No record survives.
    Removed,
    /// Some records survive, re-encoded as this one batch.
    Rewritten(Vec<u8>),
}

#[derive(Debug)]
pub struct FilterOutcome {
    pub filtered: Filtered,
    pub records: u64,
    pub kept: u64,
}

/// Filters one batch (`bytes`, described by `header`) against the key map. Control batches are
/// kept as they are; a batch of an aborted transaction goes whole.
pub fn filter_batch(
    path: &Path,
    header: &BatchHeader,
    bytes: Bytes,
    map: &KeyMap,
    tombstone_horizon_ms: i64,
) -> Result<FilterOutcome, StorageError> {
    if batch::is_control(header) {
        let records = u64::try_from(header.record_count).unwrap_or(0);
        return Ok(FilterOutcome {
            filtered: Filtered::Unchanged,
            records,
            kept: records,
        });
    }
    if map.is_aborted(header) {
        return Ok(FilterOutcome {
            filtered: Filtered::Removed,
            records: u64::try_from(header.record_count).unwrap_or(0),
            kept: 0,
        });
    }
    let (records, compression) = decode_batch_with_codec(path, header, bytes)?;
    let total = records.len() as u64;
    let survivors: Vec<Record> = records
        .into_iter()
        .filter(|record| survives(record, map, tombstone_horizon_ms))
        .collect();
    let kept = survivors.len() as u64;
    let filtered = if kept == total {
        Filtered::Unchanged
    } else if survivors.is_empty() {
        Filtered::Removed
    } else {
        Filtered::Rewritten(rewrite_batch(path, header, compression, survivors)?)
    };
    Ok(FilterOutcome {
        filtered,
        records: total,
        kept,
    })
}

/// The latest record of its key, unless it is a tombstone past its retention. Keyless records
/// never survive (a compacted topic cannot tell them apart).
fn survives(record: &Record, map: &KeyMap, tombstone_horizon_ms: i64) -> bool {
    let Some(key) = &record.key else {
        return false;
    };
    let latest = map.latest(key).is_none_or(|latest| latest == record.offset);
    latest && (record.value.is_some() || record.timestamp >= tombstone_horizon_ms)
}

/// Re-encodes the survivors of a batch with its codec, keeping what Kafka keeps of the original
/// header: attributes (codec, timestamp type, transactional flag), the producer id and epoch,
/// and the sequence numbers. For a batch of an idempotent producer the rewrite also keeps the
/// original last offset, so the producer's last sequence number survives a restart; other
/// batches end at their last survivor, so that readers that advance by record offsets (the
/// group coordinator's loader) move past them.
fn rewrite_batch(
    path: &Path,
    header: &BatchHeader,
    compression: Compression,
    mut survivors: Vec<Record>,
) -> Result<Vec<u8>, StorageError> {
    let first_offset = survivors[0].offset;
    let last_offset = survivors[survivors.len() - 1].offset;
    // The encoder keeps records in one batch only while offset minus sequence is constant; the
    // real base sequence is written into the header afterwards.
    for record in &mut survivors {
        record.sequence = (record.offset - header.base_offset) as i32;
    }
    let mut buffer = BytesMut::new();
    let options = RecordEncodeOptions {
        version: 2,
        compression,
    };
    RecordBatchEncoder::encode(&mut buffer, &survivors, &options)
        .map_err(|error| compaction_error(path, header, error))?;
    let mut bytes = buffer.to_vec();
    let encoded = single_batch(path, header, &bytes)?;
    let idempotent = header.producer_id >= 0 && header.base_sequence >= 0;
    let retained = RetainedHeader {
        attributes: header.attributes,
        last_offset_delta: match idempotent {
            true => (header.last_offset() - first_offset) as i32,
            false => (last_offset - first_offset) as i32,
        },
        max_timestamp: match batch::is_log_append_time(header) {
            true => header.max_timestamp,
            false => encoded.max_timestamp,
        },
        base_sequence: match idempotent {
            true => {
                ((i64::from(header.base_sequence) + first_offset - header.base_offset)
                    % (i64::from(i32::MAX) + 1)) as i32
            }
            false => -1,
        },
    };
    batch::retain_header(&mut bytes, &retained);
    single_batch(path, header, &bytes)?;
    Ok(bytes)
}

/// Checks that `bytes` is exactly one valid batch and returns its header.
fn single_batch(
    path: &Path,
    header: &BatchHeader,
    bytes: &[u8],
) -> Result<BatchHeader, StorageError> {
    let headers = batch::validate_batches(bytes, usize::MAX)
        .map_err(|error| compaction_error(path, header, error))?;
    match headers.as_slice() {
        [single] => Ok(*single),
        more => Err(compaction_error(
            path,
            header,
            format!("re-encoding gave {} batches, not one", more.len()),
        )),
    }
}

fn decode_batch(
    path: &Path,
    header: &BatchHeader,
    bytes: Bytes,
) -> Result<Vec<Record>, StorageError> {
    Ok(decode_batch_with_codec(path, header, bytes)?.0)
}

fn decode_batch_with_codec(
    path: &Path,
    header: &BatchHeader,
    mut bytes: Bytes,
) -> Result<(Vec<Record>, Compression), StorageError> {
    let set = RecordBatchDecoder::decode(&mut bytes)
        .map_err(|error| compaction_error(path, header, error))?;
    Ok((set.records, set.compression))
}

fn compaction_error(path: &Path, header: &BatchHeader, reason: impl ToString) -> StorageError {
    StorageError::Compaction {
        path: path.to_path_buf(),
        offset: header.base_offset,
        reason: reason.to_string(),
    }
}

/// The batches of a chunk of whole batches, with their bytes.
fn batches_of(chunk: &Bytes) -> Vec<(BatchHeader, Bytes)> {
    let mut batches = Vec::new();
    let mut cursor = 0;
    while let Ok(Some(header)) = batch::peek_header(chunk, cursor) {
        batches.push((header, chunk.slice(cursor..cursor + header.size)));
        cursor += header.size;
    }
    batches
}

/// Reads a segment front to back in chunks of whole batches.
struct SegmentScan<'a> {
    segment: &'a Segment,
    position: u64,
}

impl<'a> SegmentScan<'a> {
    fn new(segment: &'a Segment) -> SegmentScan<'a> {
        SegmentScan {
            segment,
            position: 0,
        }
    }

    async fn next(&mut self) -> Result<Option<Bytes>, StorageError> {
        let chunk = self.segment.read_chunk(self.position).await?;
        if chunk.is_empty() {
            return Ok(None);
        }
        self.position += chunk.len() as u64;
        Ok(Some(Bytes::from(chunk)))
    }
}

/// Appends to a new cleaned file in pieces of `CLEANED_WRITE_BYTES`.
struct CleanedWriter {
    path: PathBuf,
    file: BufferedFile,
    position: u64,
    pending: Vec<u8>,
}

impl CleanedWriter {
    async fn create(path: &Path) -> Result<CleanedWriter, StorageError> {
        let file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .buffered_open(path)
            .await
            .map_err(|error| StorageError::io(path, error))?;
        Ok(CleanedWriter {
            path: path.to_path_buf(),
            file,
            position: 0,
            pending: Vec::new(),
        })
    }

    async fn push(&mut self, bytes: &[u8]) -> Result<(), StorageError> {
        self.pending.extend_from_slice(bytes);
        if self.pending.len() >= CLEANED_WRITE_BYTES {
            self.write_pending().await?;
        }
        Ok(())
    }

    async fn write_pending(&mut self) -> Result<(), StorageError> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let pending = std::mem::take(&mut self.pending);
        let length = pending.len();
        let written = self
            .file
            .write_at(pending, self.position)
            .await
            .map_err(|error| StorageError::io(&self.path, error))?;
        if written != length {
            return Err(StorageError::io(
                &self.path,
                std::io::Error::new(std::io::ErrorKind::WriteZero, "short write"),
            ));
        }
        self.position += length as u64;
        Ok(())
    }

    /// Bytes written or pending so far.
    fn size(&self) -> u64 {
        self.position + self.pending.len() as u64
    }

    /// Writes what is pending, fsyncs and closes the file; returns its size.
    async fn finish(mut self) -> Result<u64, StorageError> {
        self.write_pending().await?;
        let io_error = |error| StorageError::io(&self.path, error);
        self.file.fdatasync().await.map_err(io_error)?;
        self.file
            .close()
            .await
            .map_err(|error| StorageError::io(&self.path, error))?;
        Ok(self.position)
    }
}

#[cfg(test)]
pub mod tests {
    use super::*;
    use kafka_protocol::records::TimestampType;

    /// One record to encode: key, value (`None` is a tombstone) and timestamp.
    pub type TestRecord<'a> = (Option<&'a str>, Option<&'a str>, i64);

    /// Encodes `records` as one uncompressed batch at `base_offset`; `producer` is an idempotent
    /// producer's (id, base sequence), or `None`.
    pub fn keyed_batch(
        base_offset: i64,
        records: &[TestRecord<'_>],
        producer: Option<(i64, i32)>,
    ) -> Vec<u8> {
        let (producer_id, base_sequence) = producer.unwrap_or((-1, -1));
        let records: Vec<Record> = records
            .iter()
            .enumerate()
            .map(|(index, (key, value, timestamp))| Record {
                transactional: false,
                control: false,
                delete_horizon: false,
                partition_leader_epoch: 0,
                producer_id,
                producer_epoch: if producer_id < 0 { -1 } else { 0 },
                timestamp_type: TimestampType::Creation,
                offset: base_offset + index as i64,
                sequence: base_sequence + index as i32,
                timestamp: *timestamp,
                key: key.map(|key| Bytes::copy_from_slice(key.as_bytes())),
                value: value.map(|value| Bytes::copy_from_slice(value.as_bytes())),
                headers: Default::default(),
            })
            .collect();
        let mut buffer = BytesMut::new();
        let options = RecordEncodeOptions {
            version: 2,
            compression: Compression::None,
        };
        RecordBatchEncoder::encode(&mut buffer, &records, &options).expect("encode batch");
        buffer.to_vec()
    }

    fn key_map(entries: &[(&str, i64)]) -> KeyMap {
        let mut map = KeyMap::default();
        for (key, offset) in entries {
            map.insert(Path::new("test"), key.as_bytes(), *offset)
                .unwrap();
        }
        map
    }

    fn filter(bytes: Vec<u8>, map: &KeyMap, horizon_ms: i64) -> FilterOutcome {
        let header = batch::validate_batches(&bytes, usize::MAX).unwrap()[0];
        filter_batch(
            Path::new("test"),
            &header,
            Bytes::from(bytes),
            map,
            horizon_ms,
        )
        .unwrap()
    }

    fn rewritten(outcome: FilterOutcome) -> (BatchHeader, Vec<Record>) {
        let Filtered::Rewritten(bytes) = outcome.filtered else {
            panic!("expected a rewritten batch, got {:?}", outcome.filtered);
        };
        let header = batch::validate_batches(&bytes, usize::MAX).unwrap()[0];
        let set = RecordBatchDecoder::decode(&mut Bytes::from(bytes)).unwrap();
        (header, set.records)
    }

    /// Proves an idempotent batch keeps its producer, its sequences and its last offset when
    /// some of its records are compacted away.
    #[test]
    fn rewrite_keeps_producer_history() {
        let batch = keyed_batch(
            10,
            &[
                (Some("a"), Some("1"), 5),
                (Some("b"), Some("2"), 6),
                (Some("a"), Some("3"), 7),
                (Some("c"), Some("4"), 8),
                (Some("b"), Some("5"), 9),
            ],
            Some((7, 100)),
        );
        let map = key_map(&[("a", 12), ("b", 20), ("c", 13)]);
        let outcome = filter(batch, &map, 0);
        assert_eq!((outcome.records, outcome.kept), (5, 2));
        let (header, records) = rewritten(outcome);
        assert_eq!(header.base_offset, 12);
        assert_eq!(header.next_offset(), 15, "the original last offset stays");
        assert_eq!((header.producer_id, header.producer_epoch), (7, 0));
        assert_eq!(header.base_sequence, 102);
        assert_eq!(header.last_sequence(), 104);
        assert_eq!(header.record_count, 2);
        let kept: Vec<(i64, i32, &[u8])> = records
            .iter()
            .map(|record| {
                (
                    record.offset,
                    record.sequence,
                    record.value.as_deref().unwrap(),
                )
            })
            .collect();
        assert_eq!(kept, vec![(12, 102, &b"3"[..]), (13, 103, &b"4"[..])]);
    }

    /// Proves a plain batch ends at its last survivor, drops keyless records and expired
    /// tombstones, keeps young tombstones, and is left alone or removed when nothing or
    /// everything goes.
    /// Proves a batch of an aborted transaction goes whole, one of a committed transaction of
    /// the same producer is filtered by key as usual, and markers stay.
    #[test]
    fn drops_aborted_transactions() {
        let transactional = |key: &str| {
            let mut bytes = batch::encode_records(
                vec![(Bytes::from(key.to_string()), Some(Bytes::from_static(b"v")))],
                0,
                batch::Writer::Transaction {
                    producer_id: 7,
                    producer_epoch: 0,
                },
            );
            batch::assign_offset(&mut bytes, 0, 10, 0);
            bytes
        };
        let map = KeyMap {
            aborted: vec![AbortedTxn {
                producer_id: 7,
                first_offset: 5,
                last_offset: 12,
                last_stable_offset: 13,
            }],
            ..key_map(&[("k", 10)])
        };
        let outcome = filter(transactional("k"), &map, 0);
        assert!(matches!(outcome.filtered, Filtered::Removed));
        assert_eq!((outcome.records, outcome.kept), (1, 0));
        let committed = KeyMap {
            aborted: Vec::new(),
            ..key_map(&[("k", 10)])
        };
        assert!(matches!(
            filter(transactional("k"), &committed, 0).filtered,
            Filtered::Unchanged
        ));
        let marker = batch::encode_marker(7, 0, 0, batch::ControlType::Abort, 0);
        assert!(matches!(
            filter(marker, &map, 0).filtered,
            Filtered::Unchanged
        ));
    }

    #[test]
    fn filters_plain_batches() {
        let records = [
            (Some("a"), None, 100),
            (None, Some("keyless"), 100),
            (Some("b"), None, 200),
            (Some("c"), Some("3"), 100),
            (Some("d"), Some("4"), 100),
        ];
        let map = key_map(&[("a", 0), ("b", 2), ("c", 3), ("d", 9)]);
        let (header, kept) = rewritten(filter(keyed_batch(0, &records, None), &map, 150));
        assert_eq!(header.base_offset, 2);
        assert_eq!(header.next_offset(), 4);
        assert_eq!(header.base_sequence, -1);
        let offsets: Vec<i64> = kept.iter().map(|record| record.offset).collect();
        assert_eq!(offsets, vec![2, 3], "young tombstone b and latest c stay");
        assert!(kept[0].value.is_none());

        let all_latest = key_map(&[("a", 0), ("b", 1)]);
        let young = [(Some("a"), Some("1"), 0), (Some("b"), None, 500)];
        let outcome = filter(keyed_batch(0, &young, None), &all_latest, 150);
        assert_eq!(outcome.filtered, Filtered::Unchanged);
        let outcome = filter(keyed_batch(5, &young, None), &all_latest, 150);
        assert_eq!(outcome.filtered, Filtered::Removed);
        assert_eq!((outcome.records, outcome.kept), (2, 0));
    }

    /// Proves only topics whose cleanup.policy lists compact get a cleaner config, with Kafka's
    /// defaults filled in.
    #[test]
    fn reads_topic_configs() {
        let configs = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
            pairs
                .iter()
                .map(|(key, value)| (key.to_string(), value.to_string()))
                .collect()
        };
        assert_eq!(CleanerConfig::from_topic_configs(&configs(&[])), None);
        let delete = configs(&[("cleanup.policy", "delete")]);
        assert_eq!(CleanerConfig::from_topic_configs(&delete), None);
        let compact = configs(&[("cleanup.policy", "compact, delete")]);
        assert_eq!(
            CleanerConfig::from_topic_configs(&compact),
            Some(CleanerConfig {
                delete_retention_ms: DELETE_RETENTION_MS_DEFAULT,
                min_cleanable_dirty_ratio: MIN_CLEANABLE_DIRTY_RATIO_DEFAULT,
            })
        );
        let tuned = configs(&[
            ("cleanup.policy", "compact"),
            ("delete.retention.ms", "1000"),
            ("min.cleanable.dirty.ratio", "0.1"),
        ]);
        assert_eq!(
            CleanerConfig::from_topic_configs(&tuned),
            Some(CleanerConfig {
                delete_retention_ms: 1000,
                min_cleanable_dirty_ratio: 0.1,
            })
        );
    }
}
