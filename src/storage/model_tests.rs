//! Model-based property tests of the partition log: random sequences of appends, reads, flushes,
//! crashes, clean restarts, DeleteRecords, retention, compaction and truncations run against real
//! files (one glommio executor per case) and against an in-memory model of what the log must
//! hold. After every operation the whole log is read back and compared with the model.
//!
//! The model's rules:
//! - an append gives its records consecutive offsets from the log end; when it rolls (the
//!   active segment's base moves, to the append's base offset) everything before the roll point
//!   was closed and so is durable;
//! - a flush and a clean close make everything durable (compaction may too: the log's synced
//!   offset after it is taken as durable); a crash (the log dropped without a flush and reopened
//!   unclean) keeps exactly the durable prefix, the log start clamped to the end, and must not
//!   have lost the latest durable value of any key (compaction may not drop a durable value in
//!   favour of a newer record that the crash then lost);
//! - DeleteRecords moves the log start forward to any offset in `[0, end]`, never back, and
//!   refuses offsets past the end;
//! - retention moves the log start forward to a segment boundary: checked as invariants (the
//!   deleted segments are exactly those below the new start; the segment left in front was not
//!   due for deletion; with time retention alone every deleted segment was expired);
//! - compaction (whose clean point is the active segment's base): below it only the latest record
//!   of each key survives, a tombstone only while younger than `delete_retention_ms`, keyless
//!   records never; offsets, log start and log end never change. A record that is the latest
//!   of its key below the clean point but has a newer one above it may stay (Kafka's key map
//!   ends at the clean point) or go (this cleaner's map spans the durable part of the active
//!   segment): the model follows the log there;
//! - truncation to an offset (a follower's `truncate_to`) is refused below the start, does
//!   nothing at or past the end, and otherwise ends the log where the batch holding the offset
//!   (or the first after it) began: after the last batch ending below the offset, at the base
//!   of the segment holding the offset when that segment keeps no batch, and never below the
//!   start (a log whose start batch goes is emptied at its start). What is left is durable.
//!   A key whose newer record a truncation removed may have lost its older value to an earlier
//!   compaction (the cleaner's key map spans the durable log, not a high watermark): the model
//!   forgets the history of compacted records there;
//! - `truncate_fully_and_start_at` leaves an empty, durable log starting at the offset.
//!
//! The 40 cases (`PROPTEST_CASES=n` for more) take about a second in release builds. A failing
//! case is shrunk and printed as its operation list, with the operation that failed and why;
//! `proptest` keeps no regression file here (the regressions worth keeping are written out as
//! plain tests at the end of this file).

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::Bytes;
use kafka_protocol::records::RecordBatchDecoder;
use proptest::prelude::*;
use proptest::test_runner::{Config as ProptestConfig, TestCaseError};

use super::batch::{self, BatchHeader};
use super::cleaner::tests::{keyed_batch, TestRecord};
use super::log::{Log, LogConfig};
use super::{segment_file_name, StorageError};

/// The records' clock: every timestamp is this minus an age, every "now" this plus a delay.
const NOW_MS: i64 = 1_700_000_000_000;
/// `retention.ms` of the variants that retain by time.
const RETENTION_MS: i64 = 3_600_000;
/// Oldest batch age generated: twice the time retention.
const AGE_MAX_MS: i64 = 2 * RETENTION_MS;
/// Distinct keys: few, so that compaction has something to remove.
const KEYS: u8 = 6;

macro_rules! check {
    ($condition:expr, $($message:tt)+) => {
        if !$condition {
            return Err(format!($($message)+));
        }
    };
}

macro_rules! check_eq {
    ($left:expr, $right:expr, $($message:tt)+) => {{
        let (left, right) = (&$left, &$right);
        if left != right {
            return Err(format!(
                "{}: {:?} != {:?}",
                format!($($message)+),
                left,
                right
            ));
        }
    }};
}

// ---------------------------------------------------------------------------------------------
// Operations

/// One record to append: a key from `key-0..key-5` or none, a value of so many bytes or a
/// tombstone, and a timestamp `age_ms` before `NOW_MS`. The value's text starts with a number
/// unique within the case, so that records cannot be confused.
#[derive(Clone, Debug)]
struct RecordSpec {
    key: Option<u8>,
    value_bytes: Option<u16>,
    age_ms: i64,
}

#[derive(Clone, Debug)]
enum Op {
    /// One `Log::append` of these batches.
    Append(Vec<Vec<RecordSpec>>),
    /// A read at an offset picked in `[start - 1, end + 1]`.
    Read {
        pick: u32,
        max_bytes: usize,
    },
    Flush,
    /// Drop the log without flushing, reopen it unclean.
    Crash,
    /// Close the log, reopen it clean.
    CleanRestart,
    /// DeleteRecords at an offset picked in `[0, end + 1]`.
    DeleteRecords {
        pick: u32,
    },
    /// `apply_retention` at `NOW_MS + after_ms`.
    Retention {
        after_ms: i64,
    },
    /// `compact` at `NOW_MS + after_ms`.
    Compact {
        delete_retention_ms: i64,
        after_ms: i64,
    },
    /// `truncate_to` at an offset picked in `[start - 1, end + 1]`.
    Truncate {
        pick: u32,
    },
    /// `truncate_fully_and_start_at` an offset picked in `[0, end + 50)`.
    TruncateFully {
        pick: u32,
    },
}

/// What the topic keeps: the retention settings and how often compaction is tried.
#[derive(Clone, Copy, Debug)]
enum Variant {
    Plain,
    RetentionBytes(i64),
    RetentionMs,
    RetentionBoth(i64),
    Compacted,
}

impl Variant {
    fn retention(self) -> (i64, i64) {
        match self {
            Variant::Plain | Variant::Compacted => (-1, -1),
            Variant::RetentionBytes(bytes) => (-1, bytes),
            Variant::RetentionMs => (RETENTION_MS, -1),
            Variant::RetentionBoth(bytes) => (RETENTION_MS, bytes),
        }
    }
}

/// A batch of 1 to 6 records, stamped close to one age: most batches are young, some are past
/// the time retention, so that whole segments expire now and then.
fn batch_spec() -> impl Strategy<Value = Vec<RecordSpec>> {
    let key = prop::option::weighted(0.9, 0..KEYS);
    let size = prop_oneof![12 => 0..300u16, 1 => 1000..6000u16];
    let value = prop::option::weighted(0.85, size);
    let record = (key, value, 0..60_000i64);
    let age = prop_oneof![3 => 0..RETENTION_MS / 2, 2 => RETENTION_MS..AGE_MAX_MS];
    (age, prop::collection::vec(record, 1..7)).prop_map(|(age, records)| {
        records
            .into_iter()
            .map(|(key, value_bytes, jitter)| RecordSpec {
                key,
                value_bytes,
                age_ms: age + jitter,
            })
            .collect()
    })
}

fn op(variant: Variant) -> impl Strategy<Value = Op> {
    let batches = prop_oneof![
        4 => batch_spec().prop_map(|batch| vec![batch]),
        1 => prop::collection::vec(batch_spec(), 2..4),
    ];
    let max_bytes = prop_oneof![Just(1usize), Just(100), Just(1000), Just(1 << 16)];
    let compact_weight = match variant {
        Variant::Compacted => 10,
        _ => 2,
    };
    let retention_weight = match variant {
        Variant::Plain | Variant::Compacted => 2,
        _ => 8,
    };
    prop_oneof![
        40 => batches.prop_map(Op::Append),
        8 => (any::<u32>(), max_bytes).prop_map(|(pick, max_bytes)| Op::Read { pick, max_bytes }),
        8 => Just(Op::Flush),
        7 => Just(Op::Crash),
        4 => Just(Op::CleanRestart),
        4 => any::<u32>().prop_map(|pick| Op::DeleteRecords { pick }),
        4 => any::<u32>().prop_map(|pick| Op::Truncate { pick }),
        1 => any::<u32>().prop_map(|pick| Op::TruncateFully { pick }),
        retention_weight => (0..RETENTION_MS).prop_map(|after_ms| Op::Retention { after_ms }),
        compact_weight => (
            prop_oneof![Just(0i64), Just(RETENTION_MS / 2), Just(86_400_000)],
            0..RETENTION_MS,
        )
            .prop_map(|(delete_retention_ms, after_ms)| Op::Compact {
                delete_retention_ms,
                after_ms,
            }),
    ]
}

fn variant() -> impl Strategy<Value = Variant> {
    prop_oneof![
        1 => Just(Variant::Plain),
        1 => (2048..32768i64).prop_map(Variant::RetentionBytes),
        1 => Just(Variant::RetentionMs),
        1 => (2048..32768i64).prop_map(Variant::RetentionBoth),
        2 => Just(Variant::Compacted),
    ]
}

fn log_config(variant: Variant, segment_bytes_max: u64, index: u64, roll_ms: i64) -> LogConfig {
    let (retention_ms, retention_bytes) = variant.retention();
    LogConfig {
        segment_bytes_max,
        index_interval_bytes: index,
        segment_ms: roll_ms,
        retention_ms,
        retention_bytes,
        ..LogConfig::default()
    }
}

/// A log configuration (small segments, small index interval; now and then `segment.ms=0`, which
/// rolls on every append since all timestamps lie in the past) and the operations to run on it.
fn case() -> impl Strategy<Value = (LogConfig, Vec<Op>)> {
    let segment_bytes = prop_oneof![Just(2048u64), Just(4096), Just(8192), Just(16384)];
    let index = prop_oneof![Just(0u64), Just(128), Just(1024)];
    let roll_ms = prop_oneof![9 => Just(i64::MAX), 1 => Just(0i64)];
    (variant(), segment_bytes, index, roll_ms).prop_flat_map(|(variant, segment, index, roll)| {
        (
            Just(log_config(variant, segment, index, roll)),
            prop::collection::vec(op(variant), 1..64),
        )
    })
}

// ---------------------------------------------------------------------------------------------
// The model

#[derive(Clone, Debug, PartialEq, Eq)]
struct Rec {
    key: Option<String>,
    value: Option<String>,
    timestamp: i64,
}

#[derive(Debug, Default)]
struct Model {
    /// The records that must read back: offsets at or above `start` not compacted away.
    records: BTreeMap<i64, Rec>,
    /// Every record appended at or above `start` and not lost in a crash, compacted or not.
    history: BTreeMap<i64, Rec>,
    start: i64,
    end: i64,
    /// Everything below this offset survives a crash.
    durable: i64,
    /// Numbers the values of the case.
    sequence: u64,
}

impl Model {
    fn append(&mut self, records: Vec<Rec>) {
        for record in records {
            self.records.insert(self.end, record.clone());
            self.history.insert(self.end, record);
            self.end += 1;
        }
    }

    /// Loses everything not durable; then checks that compaction did not make the log lose
    /// more: the latest durable record of each key, if a value, must still be there.
    fn crash(&mut self) -> Result<(), String> {
        self.records.split_off(&self.durable);
        self.history.split_off(&self.durable);
        self.end = self.durable;
        self.start = self.start.min(self.end);
        let mut latest: BTreeMap<&str, (i64, &Rec)> = BTreeMap::new();
        for (offset, record) in &self.history {
            if let Some(key) = &record.key {
                latest.insert(key, (*offset, record));
            }
        }
        for (key, (offset, record)) in latest {
            check!(
                record.value.is_none() || self.records.contains_key(&offset),
                "after the crash the log lost {key}'s latest durable value (offset {offset}): \
                 compaction removed it in favour of a newer record that was never durable"
            );
        }
        Ok(())
    }

    fn move_start(&mut self, start: i64) {
        self.start = start;
        self.records = self.records.split_off(&start);
        self.history = self.history.split_off(&start);
    }

    /// Compacts below `clean_offset`: of each key only the latest record survives, a tombstone
    /// only if not older than `horizon_ms`, a keyless record never. Returns the offsets it
    /// leaves to the log: records that are the latest of their key below the clean point but
    /// not in the whole log (Kafka keeps them, as its key map stops at the clean point; this
    /// log's cleaner removes them, as its key map covers the active segment too). The caller
    /// removes those the log no longer holds.
    fn compact(&mut self, clean_offset: i64, horizon_ms: i64) -> Vec<i64> {
        let mut latest: HashMap<&str, i64> = HashMap::new();
        let mut latest_below: HashMap<&str, i64> = HashMap::new();
        for (offset, record) in &self.records {
            if let Some(key) = &record.key {
                latest.insert(key, *offset);
                if *offset < clean_offset {
                    latest_below.insert(key, *offset);
                }
            }
        }
        let mut either = Vec::new();
        let mut removed = Vec::new();
        for (offset, record) in self.records.range(..clean_offset) {
            let Some(key) = record.key.as_deref() else {
                removed.push(*offset);
                continue;
            };
            let kept = record.value.is_some() || record.timestamp >= horizon_ms;
            if latest_below[key] != *offset || !kept {
                removed.push(*offset);
            } else if latest[key] != *offset {
                either.push(*offset);
            }
        }
        for offset in removed {
            self.records.remove(&offset);
        }
        either
    }

    /// Cuts the log at `end`; what is left is durable.
    fn truncate(&mut self, end: i64) {
        self.records.split_off(&end);
        self.history = self.records.clone();
        self.end = end;
        self.durable = end;
    }

    fn start_at(&mut self, offset: i64) {
        self.records.clear();
        self.history.clear();
        (self.start, self.end, self.durable) = (offset, offset, offset);
    }

    fn max_timestamp_in(&self, from: i64, to: i64) -> Option<i64> {
        self.records
            .range(from..to)
            .map(|(_, record)| record.timestamp)
            .max()
    }
}

// ---------------------------------------------------------------------------------------------
// Running a case

fn temp_dir() -> PathBuf {
    static CASES: AtomicUsize = AtomicUsize::new(0);
    let case = CASES.fetch_add(1, Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("flink-model-{}-{case}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// Runs `ops` on a fresh log in its own executor; the error names the failed operation.
fn run_case(config: LogConfig, ops: Vec<Op>) -> Result<(), TestCaseError> {
    let dir = temp_dir();
    let task_dir = dir.clone();
    let outcome = glommio::LocalExecutorBuilder::default()
        .io_memory(512 << 10)
        .spawn(move || async move { Runner::run(&task_dir, config, &ops).await })
        .expect("executor")
        .join();
    let _ = std::fs::remove_dir_all(&dir);
    match outcome {
        Ok(Ok(())) => Ok(()),
        Ok(Err(message)) => Err(TestCaseError::fail(message)),
        Err(error) => Err(TestCaseError::fail(format!("executor failed: {error}"))),
    }
}

struct Runner<'a> {
    dir: &'a Path,
    config: LogConfig,
    log: Option<Log>,
    model: Model,
}

impl Runner<'_> {
    async fn run(dir: &Path, config: LogConfig, ops: &[Op]) -> Result<(), String> {
        let mut runner = Runner {
            dir,
            config,
            log: None,
            model: Model::default(),
        };
        runner.log = Some(runner.open(false).await?);
        runner
            .check_log()
            .await
            .map_err(|error| format!("after open: {error}"))?;
        for (index, op) in ops.iter().enumerate() {
            runner
                .apply(op)
                .await
                .map_err(|error| format!("op {index} {op:?}: {error}"))?;
            runner
                .check_log()
                .await
                .map_err(|error| format!("after op {index} {op:?}: {error}"))?;
        }
        if let Some(log) = runner.log.take() {
            log.remove().await.map_err(|error| error.to_string())?;
        }
        Ok(())
    }

    fn log(&self) -> &Log {
        self.log.as_ref().expect("the log is open")
    }

    async fn open(&self, clean: bool) -> Result<Log, String> {
        Log::open(self.dir, self.config, clean, &mut |_: &BatchHeader| {})
            .await
            .map_err(|error| format!("open (clean {clean}): {error}"))
    }

    async fn apply(&mut self, op: &Op) -> Result<(), String> {
        match op {
            Op::Append(batches) => self.append(batches).await,
            Op::Read { pick, max_bytes } => {
                let span = (self.model.end - self.model.start + 3) as u64;
                let offset = self.model.start - 1 + (u64::from(*pick) % span) as i64;
                self.read(offset, *max_bytes).await
            }
            Op::Flush => {
                self.log()
                    .flush()
                    .await
                    .map_err(|error| error.to_string())?;
                self.model.durable = self.model.end;
                Ok(())
            }
            Op::Crash => {
                drop(self.log.take());
                self.log = Some(self.open(false).await?);
                self.model.crash()
            }
            Op::CleanRestart => {
                let log = self.log.take().expect("the log is open");
                log.close(b"").await.map_err(|error| error.to_string())?;
                drop(log);
                self.log = Some(self.open(true).await?);
                self.model.durable = self.model.end;
                Ok(())
            }
            Op::DeleteRecords { pick } => {
                let offset = (u64::from(*pick) % (self.model.end + 2) as u64) as i64;
                self.delete_records(offset).await
            }
            Op::Retention { after_ms } => self.retention(NOW_MS + after_ms).await,
            Op::Compact {
                delete_retention_ms,
                after_ms,
            } => {
                let now = NOW_MS + after_ms;
                let (start, end) = (self.model.start, self.model.end);
                let clean_offset = self.log().active_base_offset();
                self.log()
                    .compact(*delete_retention_ms, now)
                    .await
                    .map_err(|error| error.to_string())?;
                // Compaction may make the log durable (flushing first is one way to keep its key
                // map from counting records a crash could still lose).
                self.model.durable = self.model.durable.max(self.log().synced_offset());
                let horizon_ms = now.saturating_sub(*delete_retention_ms);
                let either = self.model.compact(clean_offset, horizon_ms);
                if !either.is_empty() {
                    let kept: BTreeMap<i64, Rec> = read_all(self.log(), start, end)
                        .await?
                        .into_iter()
                        .collect();
                    for offset in either {
                        if !kept.contains_key(&offset) {
                            self.model.records.remove(&offset);
                        }
                    }
                }
                Ok(())
            }
            Op::Truncate { pick } => {
                let span = (self.model.end - self.model.start + 3) as u64;
                let offset = self.model.start - 1 + (u64::from(*pick) % span) as i64;
                self.truncate(offset).await
            }
            Op::TruncateFully { pick } => {
                let offset = (u64::from(*pick) % (self.model.end + 50) as u64) as i64;
                self.log()
                    .truncate_fully_and_start_at(offset)
                    .await
                    .map_err(|error| error.to_string())?;
                self.model.start_at(offset);
                check_eq!(segment_files(self.dir)?, [(offset, 0)], "segments left");
                Ok(())
            }
        }
    }

    /// `truncate_to(offset)`, its new end checked against the batches and segments before.
    async fn truncate(&mut self, offset: i64) -> Result<(), String> {
        let (start, end) = (self.model.start, self.model.end);
        let batches = visible_batches(self.log(), start, end).await?;
        let segments = segment_files(self.dir)?;
        let result = self
            .log()
            .truncate_to(offset, &mut |_: &BatchHeader| {})
            .await;
        if offset < start {
            check!(
                matches!(result, Err(StorageError::OffsetOutOfRange { .. })),
                "truncation to {offset} below the start {start} gave {result:?}"
            );
            return Ok(());
        }
        result.map_err(|error| format!("truncation to {offset}: {error}"))?;
        if offset >= end {
            return Ok(());
        }
        let holder = segments
            .iter()
            .map(|(base, _)| *base)
            .filter(|base| *base <= offset)
            .max()
            .ok_or_else(|| format!("no segment holds {offset}: {segments:?}"))?;
        let kept_end = batches
            .iter()
            .filter(|header| header.last_offset() < offset)
            .map(BatchHeader::next_offset)
            .max()
            .unwrap_or(start);
        let expected = start.max(holder).max(kept_end);
        check_eq!(
            self.log().next_offset(),
            expected,
            "log end after truncating to {offset}"
        );
        let files = segment_files(self.dir)?;
        check!(
            files.iter().all(|(base, _)| *base <= expected),
            "a segment starts past the new end {expected}: {files:?}"
        );
        self.model.truncate(expected);
        Ok(())
    }

    async fn append(&mut self, batches: &[Vec<RecordSpec>]) -> Result<(), String> {
        let mut bytes = Vec::new();
        let mut appended = Vec::new();
        for specs in batches {
            let records: Vec<Rec> = specs
                .iter()
                .map(|spec| {
                    self.model.sequence += 1;
                    Rec {
                        key: spec.key.map(|key| format!("key-{key}")),
                        value: spec.value_bytes.map(|size| {
                            format!("{}:{}", self.model.sequence, "v".repeat(size.into()))
                        }),
                        timestamp: NOW_MS - spec.age_ms,
                    }
                })
                .collect();
            let borrowed: Vec<TestRecord<'_>> = records
                .iter()
                .map(|record| {
                    (
                        record.key.as_deref(),
                        record.value.as_deref(),
                        record.timestamp,
                    )
                })
                .collect();
            bytes.extend(keyed_batch(0, &borrowed, None));
            appended.extend(records);
        }
        let mut headers = batch::validate_batches(&bytes, usize::MAX).expect("valid batches");
        let log = self.log();
        let active_before = log.active_base_offset();
        let base = log
            .append(bytes, &mut headers, 0)
            .await
            .map_err(|error| error.to_string())?;
        check_eq!(base, self.model.end, "base offset of the append");
        let active_after = log.active_base_offset();
        if active_after != active_before {
            check_eq!(
                active_after,
                base,
                "a roll starts the new segment at the append"
            );
            self.model.durable = self.model.durable.max(base);
        }
        self.model.append(appended);
        Ok(())
    }

    /// One read at `offset`: outside `[start, end]` an error, at the end nothing, else whole
    /// batches with valid CRCs (about `max_bytes`, at least one) whose records from `offset` on
    /// are the model's.
    async fn read(&self, offset: i64, max_bytes: usize) -> Result<(), String> {
        let (start, end) = (self.model.start, self.model.end);
        let result = self.log().read(offset, max_bytes).await;
        if offset < start || offset > end {
            check!(
                matches!(result, Err(StorageError::OffsetOutOfRange { .. })),
                "read at {offset} outside [{start}, {end}] gave {result:?}"
            );
            return Ok(());
        }
        let bytes = result.map_err(|error| format!("read at {offset}: {error}"))?;
        let expected: Vec<(i64, Rec)> = self
            .model
            .records
            .range(offset..)
            .map(|(offset, record)| (*offset, record.clone()))
            .collect();
        if bytes.is_empty() {
            check!(
                expected.is_empty(),
                "read at {offset} gave nothing but the model holds {:?}",
                expected.first()
            );
            return Ok(());
        }
        let headers = checked_batches(&bytes)?;
        let first = headers[0];
        check!(
            first.next_offset() > offset,
            "read at {offset} starts with batch {first:?}, wholly before it"
        );
        check!(
            bytes.len() <= max_bytes.max(first.size),
            "read at {offset} of {max_bytes} bytes gave {} bytes, first batch {}",
            bytes.len(),
            first.size
        );
        let records = decode(bytes, offset)?;
        check!(
            !records.is_empty(),
            "read at {offset} gave no record at or after it"
        );
        check_eq!(
            records[..],
            expected[..records.len().min(expected.len())],
            "records read at {offset}"
        );
        Ok(())
    }

    async fn delete_records(&mut self, offset: i64) -> Result<(), String> {
        let (start, end) = (self.model.start, self.model.end);
        let result = self.log().delete_records_before(offset).await;
        if offset > end {
            check!(
                matches!(result, Err(StorageError::OffsetOutOfRange { .. })),
                "DeleteRecords at {offset} past the end {end} gave {result:?}"
            );
            return Ok(());
        }
        let new_start = result.map_err(|error| format!("DeleteRecords at {offset}: {error}"))?;
        check_eq!(
            new_start,
            start.max(offset),
            "log start after DeleteRecords"
        );
        self.model.move_start(new_start);
        if new_start > start {
            self.check_front_deleted()?;
        }
        Ok(())
    }

    /// Applies retention at `now` and checks what it did against the segment files before and
    /// after (sizes of inactive segments are their file lengths) and the model's timestamps.
    async fn retention(&mut self, now: i64) -> Result<(), String> {
        let (retention_ms, retention_bytes) =
            (self.config.retention_ms, self.config.retention_bytes);
        let before = segment_files(self.dir)?;
        let start_before = self.model.start;
        let deleted = self
            .log()
            .apply_retention(now)
            .await
            .map_err(|error| error.to_string())?;
        let after = segment_files(self.dir)?;
        let start = self.log().start_offset();
        check!(
            start >= start_before && start <= self.model.end,
            "retention moved the start from {start_before} to {start} (end {})",
            self.model.end
        );
        if start != start_before {
            check!(
                before.iter().any(|(base, _)| *base == start),
                "retention moved the start to {start}, not a segment boundary of {before:?}"
            );
        }
        // The active segment's file may grow meanwhile (zeros written ahead of small writes,
        // `segment_zeroing`, land in the background): only its base offset is compared.
        let (kept, active_base) = (&before[deleted..], |files: &[(i64, u64)]| {
            files.last().map(|(base, _)| *base)
        });
        check_eq!(
            after[..after.len().saturating_sub(1)],
            kept[..kept.len().saturating_sub(1)],
            "inactive segments left by retention"
        );
        check_eq!(
            active_base(&after),
            active_base(kept),
            "active segment after retention"
        );
        let front_was_clean = before.get(1).is_none_or(|(base, _)| *base > start_before);
        if front_was_clean {
            // Everything deleted was deleted by retention itself, so the segment now in front
            // (if inactive) is the one that stopped it: not over the size and not expired.
            if let [(first, first_size), (second, _), ..] = after[..] {
                let inactive: u64 = after[..after.len() - 1].iter().map(|(_, size)| size).sum();
                check!(
                    retention_bytes < 0 || inactive - first_size < retention_bytes as u64,
                    "retention.bytes {retention_bytes} left segment {first} although the inactive \
                     segments after it hold {} bytes: {after:?}",
                    inactive - first_size
                );
                if retention_ms >= 0 && first >= start_before {
                    if let Some(max) = self.model.max_timestamp_in(first, second) {
                        check!(
                            now - max <= retention_ms,
                            "retention.ms left segment {first} whose newest record is {} ms old",
                            now - max
                        );
                    }
                }
            }
            if retention_ms >= 0 && retention_bytes < 0 {
                for pair in before[..deleted + 1].windows(2) {
                    let (from, to) = (pair[0].0, pair[1].0);
                    if from < start_before {
                        continue;
                    }
                    let max = self.model.max_timestamp_in(from, to);
                    check!(
                        max.is_some_and(|max| now - max > retention_ms),
                        "retention.ms deleted segment {from} whose newest record is {max:?} at {now}"
                    );
                }
            }
        }
        self.model.move_start(start);
        if start > start_before {
            self.check_front_deleted()?;
        }
        Ok(())
    }

    /// After the log start moved: no segment but the first starts at or below it (all those
    /// wholly below it are gone).
    fn check_front_deleted(&self) -> Result<(), String> {
        let files = segment_files(self.dir)?;
        if let Some((second, _)) = files.get(1) {
            check!(
                *second > self.model.start,
                "segment {second} lies wholly below the log start {}: {files:?}",
                self.model.start
            );
        }
        Ok(())
    }

    /// The log against the model: offsets, every record from the start on, the reads just
    /// outside the log.
    async fn check_log(&self) -> Result<(), String> {
        let log = self.log();
        let model = &self.model;
        check_eq!(log.next_offset(), model.end, "log end offset");
        check_eq!(log.start_offset(), model.start, "log start offset");
        check_eq!(log.synced_offset(), model.durable, "synced offset");
        check!(
            log.active_base_offset() <= model.end,
            "active segment at {} past the end {}",
            log.active_base_offset(),
            model.end
        );
        let records = read_all(log, model.start, model.end).await?;
        let expected: Vec<(i64, Rec)> = model
            .records
            .iter()
            .map(|(offset, record)| (*offset, record.clone()))
            .collect();
        if records != expected {
            return Err(format!(
                "the log reads back differently from the model: {}",
                first_difference(&records, &expected)
            ));
        }
        let at_end = log.read(model.end, 1 << 20).await;
        check!(
            matches!(&at_end, Ok(bytes) if bytes.is_empty()),
            "read at the end {} gave {at_end:?}",
            model.end
        );
        let past_end = log.read(model.end + 1, 1 << 20).await;
        check!(
            matches!(past_end, Err(StorageError::OffsetOutOfRange { .. })),
            "read past the end gave {past_end:?}"
        );
        if model.start > 0 {
            let below = log.read(model.start - 1, 1 << 20).await;
            check!(
                matches!(below, Err(StorageError::OffsetOutOfRange { .. })),
                "read below the start {} gave {below:?}",
                model.start
            );
        }
        Ok(())
    }
}

#[path = "model_tests_reads.rs"]
mod reads;
use reads::{checked_batches, decode, first_difference, read_all, segment_files, visible_batches};

/// 40 cases, or `PROPTEST_CASES` for a longer hunt.
fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|cases| cases.parse().ok())
        .unwrap_or(40)
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: cases(),
        max_shrink_iters: 2048,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    /// Proves the log agrees with the model after every operation of random histories.
    #[test]
    fn log_matches_model((config, ops) in case()) {
        run_case(config, ops)?;
    }
}

// ---------------------------------------------------------------------------------------------
// Regressions: cases the property test found, minimised.

fn regression_config(segment_bytes_max: u64, index_interval_bytes: u64) -> LogConfig {
    LogConfig {
        segment_bytes_max,
        index_interval_bytes,
        segment_ms: i64::MAX,
        retention_ms: -1,
        retention_bytes: -1,
        ..LogConfig::default()
    }
}

/// One batch of one record: `key-<key>` with a value of `value_bytes`, stamped `NOW_MS`.
fn one_record(key: u8, value_bytes: u16) -> Op {
    Op::Append(vec![vec![RecordSpec {
        key: Some(key),
        value_bytes: Some(value_bytes),
        age_ms: 0,
    }]])
}

fn run_ops(config: LogConfig, ops: Vec<Op>) {
    if let Err(error) = run_case(config, ops) {
        panic!("{error}");
    }
}

/// Proves a log with `index.interval.bytes=0` (an index entry for every batch) reopens after a
/// clean shutdown. Opening trusts the segment, loads its index, whose last entry is the first
/// batch at byte 0, and rescans from there.
#[test]
fn regression_index_interval_zero_clean_restart() {
    run_ops(
        regression_config(4096, 0),
        vec![one_record(0, 10), Op::CleanRestart],
    );
}

/// The same after a crash: the rolled segment lies below the recovery point and is trusted.
#[test]
fn regression_index_interval_zero_crash_after_roll() {
    run_ops(
        regression_config(4096, 0),
        vec![one_record(0, 3000), one_record(1, 3000), Op::Crash],
    );
}

/// Proves compaction never makes a crash lose a key's durable value: the old value of key 0
/// lies in a rolled (durable) segment, its new value in the active segment, unflushed; after
/// compaction and a crash the log must still hold one of them.
#[test]
fn regression_compaction_keeps_durable_value_across_crash() {
    run_ops(
        regression_config(4096, 1024),
        vec![
            one_record(0, 3000),
            one_record(1, 1500),
            one_record(0, 10),
            Op::Compact {
                delete_retention_ms: 86_400_000,
                after_ms: 0,
            },
            Op::Crash,
        ],
    );
}
