//! What a hostile producer's bytes reach in the broker: the record batches of one partition of a
//! Produce request go through `storage::batch::validate_batches` (framing, magic, CRC-32C, size)
//! and `storage::validator::validate_client_batches` (Kafka's `LogValidator`: header fields,
//! every record, decompression, timestamps), as the produce handler runs them. Neither may
//! panic. What both accept is appended, as a leader does, to a long-lived log with small
//! segments (so that rolls and index entries come often), written through and read back: the
//! read must return exactly the appended batches with their assigned offsets (CRC still valid,
//! offsets increasing), and every batch must decode with the protocol crate's
//! `RecordBatchDecoder` (which the broker's cleaner and timestamp lookups use) to as many records
//! as its header counts, at the offsets the log gave them.
//!
//! Input layout: 4 control bytes, then the produce payload (one or more record batches).
//! - byte 0, framing: bit 0 repair: every batch-shaped part of the payload gets magic 2, a
//!   `batchLength` that fits the part (its own when it fits, otherwise the rest of the payload;
//!   fewer than 61 bytes left are kept as they are) and a correct CRC-32C; bits 1-2 (with
//!   repair) fix the counts: 0 no, 1 `lastOffsetDelta = recordCount - 1`, 2 `recordCount` = the
//!   whole records the (uncompressed) record bytes hold and `lastOffsetDelta` to match, 3
//!   `recordCount` only; bit 3 (with repair) clears the control and transactional attributes.
//! - byte 1, compression (with repair): bits 0-2 a codec id (0 none, 1 gzip, 2 snappy, 3 lz4,
//!   4 zstd, 5-7 unknown); bit 3 writes it into the attributes; bit 4 compresses the part's
//!   record bytes with it (and writes it), so that records under compression reach the
//!   record checks; bit 5 makes that snappy a raw block rather than xerial-framed.
//! - byte 2, `ValidationConfig`: bits 0-1 `max.message.bytes` (512, 16384, 1048588, 8 MiB);
//!   bits 2-3 timestamp bounds before/after the broker's clock (unbounded, 1 h, 0, unbounded
//!   before and 0 after); bit 4 `LogAppendTime` (the batches are then stamped, as the produce
//!   handler does); bits 5-7 the Produce version, 3 + value mod 7.
//! - byte 3, the log: bits 0-1 `index.interval.bytes` (0, 32, 128, 256; taken by segments
//!   rolled from then on); bits 2-3 `segment.bytes` (1024, 4096, 16384, 1 MiB); bit 4 read back
//!   one batch per read rather than up to 1 MiB; bits 5-7 what follows the append and its
//!   read: 6 a flush, 7 an unclean reopen (the log is dropped without a flush or close, as a
//!   killed process leaves it, opened again, scanning what was not flushed, and the batches are
//!   read back again), anything else nothing (both cost a few milliseconds: an fsync, opening
//!   every segment).
//!
//! Validation runs on the fuzzing thread; accepted payloads go to one long-lived glommio
//! executor thread (one per fuzzing process, in a directory of its own) over a channel it
//! awaits as a glommio task. It appends them to one log, recreated after `APPENDS_PER_LOG`
//! appends or `ROLLS_PER_LOG` segment rolls (a reopen opens every segment) or when it outgrows
//! `LOG_BYTES_MAX`.

#![no_main]

use std::path::{Path, PathBuf};
use std::sync::{mpsc, Mutex, OnceLock};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use flink::storage::batch::{self, BatchHeader};
use flink::storage::validator::{self, ValidationConfig};
use flink::storage::{Log, LogConfig};
use kafka_protocol::compression::{Compressor, Gzip, Lz4, Snappy, Zstd};
use kafka_protocol::records::RecordBatchDecoder;
use libfuzzer_sys::fuzz_target;

const CONTROL_BYTES: usize = 4;
/// The broker's clock: the seeds' records are stamped a little before it.
const NOW_MS: i64 = 1_700_000_001_000;
const APPENDS_PER_LOG: u64 = 1024;
const ROLLS_PER_LOG: u64 = 64;
const LOG_BYTES_MAX: u64 = 1 << 20;

const LENGTH_AT: usize = 8;
const MAGIC_AT: usize = 16;
const CRC_AT: usize = 17;
const ATTRIBUTES_AT: usize = 21;
const LAST_OFFSET_DELTA_AT: usize = 23;
const BASE_TIMESTAMP_AT: usize = 27;
const RECORD_COUNT_AT: usize = 57;
const CODEC_MASK: i16 = 0x07;
const CODEC_GZIP: i16 = 1;
const CODEC_SNAPPY: i16 = 2;
const TRANSACTIONAL_AND_CONTROL: i16 = 0x30;
const SNAPPY_XERIAL_HEADER: &[u8; 16] = b"\x82SNAPPY\x00\x00\x00\x00\x01\x00\x00\x00\x01";

fuzz_target!(|data: &[u8]| {
    let Some(job) = validate(data) else {
        return;
    };
    let worker = worker()
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    worker.jobs.send(job).expect("the executor thread is gone");
    let mut waited = Duration::ZERO;
    let result = loop {
        match worker.results.recv_timeout(ANSWER_WAIT) {
            Ok(result) => break result,
            // libFuzzer's timeout report shows only this thread, waiting: say what the
            // executor is doing.
            Err(mpsc::RecvTimeoutError::Timeout) => {
                waited += ANSWER_WAIT;
                eprintln!(
                    "the executor thread has not answered for {} s; it is at: {}",
                    waited.as_secs(),
                    STAGE
                        .lock()
                        .unwrap_or_else(|poisoned| poisoned.into_inner())
                );
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => panic!("the executor thread died"),
        }
    };
    if let Err(failure) = result {
        panic!("{failure}");
    }
});

/// The executor keeps a timer of this period armed, so that its reactor never sleeps without a
/// deadline: a precaution against the stalls of the first runs, in which it slept on in
/// `io_uring_enter` while reopening a log, with work waiting (README). `FLINK_FUZZ_NO_TICK`
/// set: no timer.
const TICK: Duration = Duration::from_millis(50);

/// How long the fuzzing thread waits for the executor before saying where it is.
const ANSWER_WAIT: Duration = Duration::from_secs(20);

/// What the executor thread is doing (for the report above).
static STAGE: Mutex<String> = Mutex::new(String::new());

fn stage(what: String) {
    *STAGE
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner()) = what;
}

/// One input, decoded.
struct Case {
    payload: Vec<u8>,
    validation: ValidationConfig,
    log: LogConfig,
    read_bytes_max: usize,
    flush: bool,
    reopen: bool,
}

impl Case {
    fn parse(input: &[u8]) -> Case {
        let mut control = [0u8; CONTROL_BYTES];
        let given = input.len().min(CONTROL_BYTES);
        control[..given].copy_from_slice(&input[..given]);
        let [framing, codec, validation, log] = control;
        let mut payload = input[given..].to_vec();
        if framing & 0x01 != 0 {
            payload = repair(&payload, framing, codec);
        }
        let (before, after) = [
            (i64::MAX, i64::MAX),
            (3_600_000, 3_600_000),
            (0, 0),
            (i64::MAX, 0),
        ][usize::from((validation >> 2) & 0x03)];
        let validation = ValidationConfig {
            max_message_bytes: [512, 16_384, 1_048_588, 8 << 20][usize::from(validation & 0x03)],
            log_append_time: validation & 0x10 != 0,
            timestamp_before_max_ms: before,
            timestamp_after_max_ms: after,
            now_ms: NOW_MS,
            produce_version: 3 + i16::from(validation >> 5) % 7,
        };
        let log_config = LogConfig {
            segment_bytes_max: [1024, 4096, 16_384, 1 << 20][usize::from((log >> 2) & 0x03)],
            index_interval_bytes: [0, 32, 128, 256][usize::from(log & 0x03)],
            segment_ms: i64::MAX,
            retention_ms: -1,
            retention_bytes: -1,
            ..LogConfig::default()
        };
        Case {
            payload,
            validation,
            log: log_config,
            read_bytes_max: if log & 0x10 != 0 { 1 } else { 1 << 20 },
            flush: log >> 5 == 6,
            reopen: log >> 5 == 7,
        }
    }
}

/// Rebuilds `payload` with every batch-shaped part framed correctly (see the layout above).
fn repair(payload: &[u8], framing: u8, codec_control: u8) -> Vec<u8> {
    let count_fix = (framing >> 1) & 0x03;
    let tidy = framing & 0x08 != 0;
    let codec = i16::from(codec_control & 0x07);
    let compress = codec_control & 0x10 != 0;
    let set_codec = compress || codec_control & 0x08 != 0;
    let raw_snappy = codec_control & 0x20 != 0;
    let mut out = Vec::with_capacity(payload.len() + 64);
    let mut cursor = 0;
    while payload.len() - cursor >= batch::BATCH_HEADER_BYTES {
        let rest = payload.len() - cursor;
        let declared = read_i32(payload, cursor + LENGTH_AT);
        let minimum = (batch::BATCH_HEADER_BYTES - batch::LOG_OVERHEAD_BYTES) as i32;
        let size = if declared >= minimum && declared as usize <= rest - batch::LOG_OVERHEAD_BYTES {
            batch::LOG_OVERHEAD_BYTES + declared as usize
        } else {
            rest
        };
        let part = &payload[cursor..cursor + size];
        cursor += size;
        let mut header = part[..batch::BATCH_HEADER_BYTES].to_vec();
        let mut records = part[batch::BATCH_HEADER_BYTES..].to_vec();
        let mut attributes = read_i16(&header, ATTRIBUTES_AT);
        if tidy {
            attributes &= !TRANSACTIONAL_AND_CONTROL;
        }
        if set_codec {
            attributes = (attributes & !CODEC_MASK) | codec;
        }
        // Records can be counted only while they are plain bytes.
        let counted = (compress || attributes & CODEC_MASK == 0).then(|| count_records(&records));
        if compress {
            records = compress_records(codec, &records, raw_snappy);
        }
        let record_count = read_i32(&header, RECORD_COUNT_AT);
        let (record_count, last_offset_delta) = match (count_fix, counted) {
            (1, _) | (2, None) => (record_count, Some(record_count.wrapping_sub(1))),
            (2, Some(counted)) => (counted, Some(counted - 1)),
            (3, Some(counted)) => (counted, None),
            _ => (record_count, None),
        };
        header[ATTRIBUTES_AT..ATTRIBUTES_AT + 2].copy_from_slice(&attributes.to_be_bytes());
        header[RECORD_COUNT_AT..RECORD_COUNT_AT + 4].copy_from_slice(&record_count.to_be_bytes());
        if let Some(delta) = last_offset_delta {
            header[LAST_OFFSET_DELTA_AT..LAST_OFFSET_DELTA_AT + 4]
                .copy_from_slice(&delta.to_be_bytes());
        }
        let length = (batch::BATCH_HEADER_BYTES - batch::LOG_OVERHEAD_BYTES + records.len()) as i32;
        header[LENGTH_AT..LENGTH_AT + 4].copy_from_slice(&length.to_be_bytes());
        header[MAGIC_AT] = 2;
        out.extend_from_slice(&header);
        out.extend_from_slice(&records);
        let start = out.len() - header.len() - records.len();
        let crc = crc32c::crc32c(&out[start + ATTRIBUTES_AT..]);
        out[start + CRC_AT..start + CRC_AT + 4].copy_from_slice(&crc.to_be_bytes());
    }
    out.extend_from_slice(&payload[cursor..]);
    out
}

/// How many whole records (a varint size, then that many bytes) `records` holds from its start.
fn count_records(mut records: &[u8]) -> i32 {
    let mut count = 0;
    loop {
        let mut raw: u32 = 0;
        let mut length = None;
        for (index, byte) in records.iter().take(5).enumerate() {
            raw |= u32::from(byte & 0x7f) << (7 * index);
            if byte & 0x80 == 0 {
                length = Some(index + 1);
                break;
            }
        }
        let Some(length) = length else {
            return count;
        };
        let size = ((raw >> 1) as i32) ^ -((raw & 1) as i32);
        if size < 0 || records.len() - length < size as usize {
            return count;
        }
        records = &records[length + size as usize..];
        count += 1;
    }
}

/// `records` compressed as a producer does (the protocol crate's compressors, Kafka's framing).
fn compress_records(codec: i16, records: &[u8], raw_snappy: bool) -> Vec<u8> {
    let mut out = BytesMut::new();
    let fill = |buffer: &mut BytesMut| {
        buffer.extend_from_slice(records);
        Ok(())
    };
    let compressed = match codec {
        1 => Gzip::compress(&mut out, fill),
        2 => Snappy::compress(&mut out, fill),
        3 => Lz4::compress(&mut out, fill),
        4 => Zstd::compress(&mut out, fill),
        _ => return records.to_vec(),
    };
    compressed.expect("compressing in memory cannot fail");
    if codec == CODEC_SNAPPY && raw_snappy {
        // The xerial frame of a single block, unwrapped: header, 4-byte length, block.
        let header = SNAPPY_XERIAL_HEADER.len();
        if out.len() >= header + 4 && read_i32(&out, header) as usize == out.len() - header - 4 {
            return out[header + 4..].to_vec();
        }
    }
    out.to_vec()
}

/// A payload both validators accepted, as the produce handler hands it to the partition.
struct Job {
    batches: Vec<u8>,
    headers: Vec<BatchHeader>,
    log: LogConfig,
    read_bytes_max: usize,
    flush: bool,
    reopen: bool,
    what: String,
}

/// `FLINK_FUZZ_VERBOSE` set: say on stderr what each input reached (for replaying seeds).
fn verbose() -> bool {
    static VERBOSE: OnceLock<bool> = OnceLock::new();
    *VERBOSE.get_or_init(|| std::env::var_os("FLINK_FUZZ_VERBOSE").is_some())
}

/// The produce handler's checks; `None` when they refuse the payload.
fn validate(input: &[u8]) -> Option<Job> {
    let case = Case::parse(input);
    let config = &case.validation;
    let refused = |stage: &str, error: &dyn std::fmt::Display| {
        if verbose() {
            eprintln!("refused by {stage}: {error}");
        }
    };
    let mut headers = batch::validate_batches(&case.payload, config.max_message_bytes)
        .map_err(|error| refused("validate_batches", &error))
        .ok()?;
    validator::validate_client_batches(&case.payload, &headers, config, "fuzz-0")
        .map_err(|error| refused("validate_client_batches", &error))
        .ok()?;
    let batches = if config.log_append_time {
        batch::stamp_log_append_time(&case.payload, &mut headers, NOW_MS).to_vec()
    } else {
        case.payload
    };
    let what = format!(
        "{} batches of {} bytes accepted ({config:?}), appended with segment.bytes {} and \
         index.interval.bytes {}",
        headers.len(),
        batches.len(),
        case.log.segment_bytes_max,
        case.log.index_interval_bytes
    );
    if verbose() {
        eprintln!("{what}");
    }
    Some(Job {
        batches,
        headers,
        log: case.log,
        read_bytes_max: case.read_bytes_max,
        flush: case.flush,
        reopen: case.reopen,
        what,
    })
}

static SCRATCH: OnceLock<PathBuf> = OnceLock::new();

extern "C" {
    fn atexit(callback: extern "C" fn()) -> std::ffi::c_int;
}

extern "C" fn remove_scratch() {
    if let Some(dir) = SCRATCH.get() {
        let _ = std::fs::remove_dir_all(dir);
    }
}

struct Worker {
    jobs: flume::Sender<Job>,
    results: mpsc::Receiver<Result<(), String>>,
}

fn worker() -> &'static Mutex<Worker> {
    static WORKER: OnceLock<Mutex<Worker>> = OnceLock::new();
    WORKER.get_or_init(|| {
        let (jobs, job_queue) = flume::unbounded::<Job>();
        let (result_queue, results) = mpsc::channel();
        let root = std::env::var_os("FLINK_FUZZ_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(std::env::temp_dir);
        let dir = root.join(format!("flink-fuzz-produce-{}", std::process::id()));
        // The log outlives every input: take it along when the process exits (libFuzzer ends
        // with `exit`) or aborts on a finding.
        SCRATCH.set(dir.clone()).expect("one scratch directory");
        // SAFETY: registers a plain function without arguments, as atexit(3) takes it.
        unsafe { atexit(remove_scratch) };
        // A panic aborts the process (libFuzzer's hook): take the scratch directory along.
        let scratch = dir.clone();
        let abort = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let _ = std::fs::remove_dir_all(&scratch);
            abort(info);
        }));
        glommio::LocalExecutorBuilder::default()
            .name("produce-validation")
            .io_memory(512 << 10)
            .spawn(move || async move {
                if std::env::var_os("FLINK_FUZZ_NO_TICK").is_none() {
                    // A timer always armed: see TICK.
                    glommio::spawn_local(async {
                        loop {
                            glommio::timer::sleep(TICK).await;
                        }
                    })
                    .detach();
                }
                let mut state = State {
                    dir: dir.clone(),
                    log: None,
                    appends: 0,
                    rolls: 0,
                };
                // Waits as a glommio task, so that the reactor keeps reaping completions (of
                // the closes of dropped files, say) between inputs.
                while let Ok(job) = job_queue.recv_async().await {
                    let result = state
                        .append_and_read(&job)
                        .await
                        .map_err(|failure| format!("{}: {failure}", job.what));
                    stage("waiting for the next input".to_string());
                    if result_queue.send(result).is_err() {
                        break;
                    }
                }
                if let Some(log) = state.log.take() {
                    let _ = log.remove().await;
                }
                let _ = std::fs::remove_dir_all(&dir);
            })
            .expect("cannot start a glommio executor (io_uring, locked memory?)");
        Mutex::new(Worker { jobs, results })
    })
}

macro_rules! ensure {
    ($condition:expr, $($message:tt)+) => {
        if !$condition {
            return Err(format!($($message)+));
        }
    };
}

/// The executor thread's log.
struct State {
    dir: PathBuf,
    log: Option<Log>,
    /// Appends to the current log, and segment rolls they made.
    appends: u64,
    rolls: u64,
}

impl State {
    /// Makes sure there is a log, recreated empty when it has taken enough.
    async fn prepare(&mut self, config: LogConfig) -> Result<(), String> {
        let stale = self.log.as_ref().is_some_and(|log| {
            self.appends >= APPENDS_PER_LOG
                || self.rolls >= ROLLS_PER_LOG
                || log.size_bytes() > LOG_BYTES_MAX
        });
        if stale {
            stage(format!("removing the log after {} appends", self.appends));
            let log = self.log.take().expect("a log");
            log.remove()
                .await
                .map_err(|error| format!("cannot remove the log: {error}"))?;
        }
        if self.log.is_none() {
            let _ = std::fs::remove_dir_all(&self.dir);
            stage("opening a new log".to_string());
            self.log = Some(open(&self.dir, config, false).await?);
            self.appends = 0;
            self.rolls = 0;
        }
        self.log.as_ref().expect("a log").set_config(config);
        Ok(())
    }

    async fn append_and_read(&mut self, job: &Job) -> Result<(), String> {
        self.prepare(job.log).await?;
        self.appends += 1;
        let log = self.log.as_ref().expect("a log");
        let start = log.next_offset();
        let active = log.active_base_offset();
        let mut headers = job.headers.clone();
        stage(format!("appending at {start}: {}", job.what));
        let base = log
            .append(job.batches.clone(), &mut headers, 0)
            .await
            .map_err(|error| format!("append at {start} failed: {error}"))?;
        if log.active_base_offset() != active {
            self.rolls += 1;
        }
        ensure!(
            base == start,
            "appended at {base}, not at the log end {start}"
        );
        // What the log must hold now: the batches with their offsets and leader epoch 0.
        let mut expected = job.batches.clone();
        let mut next = base;
        for header in &headers {
            ensure!(
                header.base_offset == next,
                "the batch at byte {} was given offset {}, not {next}",
                header.position,
                header.base_offset
            );
            batch::assign_offset(&mut expected, header.position, next, 0);
            next = header.next_offset();
        }
        ensure!(
            log.next_offset() == next,
            "the log ends at {} after an append of [{base}, {next})",
            log.next_offset()
        );
        stage(format!("writing through {next}"));
        log.write_through(next)
            .await
            .map_err(|error| format!("write through {next} failed: {error}"))?;
        ensure!(
            log.written_offset() == log.next_offset(),
            "written through {next}: written offset {}, log end {}",
            log.written_offset(),
            log.next_offset()
        );
        if job.flush {
            stage("flushing".to_string());
            log.flush()
                .await
                .map_err(|error| format!("flush failed: {error}"))?;
        }
        let read = read_range(log, base, next, job.read_bytes_max).await?;
        stage("checking the batches read back".to_string());
        check_read(&read, &expected, base)?;
        if job.reopen {
            let log = self.log.take().expect("a log");
            stage(format!("dropping the log at {next}"));
            drop(log);
            stage(format!("reopening the log dropped at {next}"));
            let log = open(&self.dir, job.log, false).await?;
            ensure!(
                log.next_offset() == next,
                "reopened, the log ends at {}, not {next}",
                log.next_offset()
            );
            let read = read_range(&log, base, next, job.read_bytes_max).await;
            self.log = Some(log);
            check_read(&read?, &expected, base)
                .map_err(|failure| format!("after a reopen: {failure}"))?;
        }
        Ok(())
    }
}

async fn open(dir: &Path, config: LogConfig, clean: bool) -> Result<Log, String> {
    Log::open(dir, config, clean, &mut |_: &BatchHeader| {})
        .await
        .map_err(|error| format!("cannot open the log in {dir:?}: {error}"))
}

/// Reads `[from, to)` from `log`, `read_bytes_max` at a time: the bytes of its batches.
async fn read_range(
    log: &Log,
    from: i64,
    to: i64,
    read_bytes_max: usize,
) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    let mut offset = from;
    while offset < to {
        stage(format!("reading at {offset} of [{from}, {to})"));
        let bytes = log
            .read(offset, read_bytes_max)
            .await
            .map_err(|error| format!("read at {offset} failed: {error}"))?;
        ensure!(
            !bytes.is_empty(),
            "read at {offset} returned nothing before the log end {to}"
        );
        let headers = batch::validate_batches(&bytes, usize::MAX)
            .map_err(|error| format!("read at {offset} returned a bad batch: {error}"))?;
        let first = headers.first().expect("a batch");
        ensure!(
            first.base_offset == offset,
            "read at {offset} returned a batch at {}",
            first.base_offset
        );
        offset = headers.last().expect("a batch").next_offset();
        out.extend_from_slice(&bytes);
    }
    let after = log
        .read(to, read_bytes_max)
        .await
        .map_err(|error| format!("read at the log end {to} failed: {error}"))?;
    ensure!(
        after.is_empty(),
        "read at the log end {to} returned {} bytes",
        after.len()
    );
    Ok(out)
}

/// The bytes read back are the appended batches, each with a valid CRC, at increasing offsets,
/// and each decodes to its records with the protocol crate's decoder.
fn check_read(read: &[u8], expected: &[u8], base: i64) -> Result<(), String> {
    let headers = batch::validate_batches(read, usize::MAX)
        .map_err(|error| format!("the read-back batches are bad: {error}"))?;
    let mut next = base;
    for header in &headers {
        batch::verify_crc(read, header)
            .map_err(|error| format!("batch at {}: {error}", header.base_offset))?;
        ensure!(
            header.base_offset == next,
            "the batch read back at byte {} has offset {}, not {next}",
            header.position,
            header.base_offset
        );
        ensure!(
            header.leader_epoch == 0,
            "the batch at {} has leader epoch {}",
            header.base_offset,
            header.leader_epoch
        );
        next = header.next_offset();
        decode(
            &read[header.position..header.position + header.size],
            header,
        )?;
    }
    ensure!(
        read == expected,
        "the {} bytes read back differ from the {} appended (offsets assigned)",
        read.len(),
        expected.len()
    );
    Ok(())
}

/// Decodes one batch as the broker's cleaner and timestamp lookups do: as many records as the
/// header counts, at the batch's offsets.
fn decode(bytes: &[u8], header: &BatchHeader) -> Result<(), String> {
    // The decoder adds each record's timestamp delta to the base timestamp unchecked, which
    // overflows (a panic in this build) on a base the validator accepts; counts and offsets do
    // not depend on it, so the copy decoded gets base timestamp 0 (and its CRC again).
    let mut copy = bytes.to_vec();
    copy[BASE_TIMESTAMP_AT..BASE_TIMESTAMP_AT + 8].fill(0);
    let crc = crc32c::crc32c(&copy[ATTRIBUTES_AT..]);
    copy[CRC_AT..CRC_AT + 4].copy_from_slice(&crc.to_be_bytes());
    let set = match RecordBatchDecoder::decode(&mut Bytes::from(copy)) {
        Ok(set) => set,
        Err(error) if excused(bytes, &error) => {
            if verbose() {
                eprintln!("the decoder refuses the batch, excused: {error:#}");
            }
            return Ok(());
        }
        Err(error) => {
            return Err(format!(
                "the validator accepted the batch at {} ({} records) but the decoder fails: \
                 {error:#}",
                header.base_offset, header.record_count
            ))
        }
    };
    ensure!(
        set.records.len() == header.record_count as usize,
        "the batch at {} counts {} records, the decoder finds {}",
        header.base_offset,
        header.record_count,
        set.records.len()
    );
    for (index, record) in set.records.iter().enumerate() {
        ensure!(
            record.offset == header.base_offset + index as i64,
            "record {index} of the batch at {} decodes at offset {}",
            header.base_offset,
            record.offset
        );
    }
    Ok(())
}

/// Where the decoder refuses, legitimately, what Kafka (and so the validator) accepts.
fn excused(batch: &[u8], error: &anyhow::Error) -> bool {
    let attributes = read_i16(batch, ATTRIBUTES_AT);
    let records = &batch[batch::BATCH_HEADER_BYTES..];
    // Header keys: Kafka reads them as UTF-8 with replacement, the decoder insists on UTF-8.
    let utf8 = error
        .chain()
        .any(|cause| cause.downcast_ref::<std::str::Utf8Error>().is_some());
    // Snappy: Kafka (snappy-java) takes the xerial framing on its 8-byte magic whatever the
    // version fields after it; the decoder wants the whole 16-byte header it writes itself.
    let snappy_header = attributes & CODEC_MASK == CODEC_SNAPPY
        && records.starts_with(&SNAPPY_XERIAL_HEADER[..8])
        && !records.starts_with(SNAPPY_XERIAL_HEADER);
    // Gzip: Kafka (GZIPInputStream) and the validator stop after the member that holds the
    // records and ignore what follows it; the decoder fails on any byte after the member.
    let gzip_trailing = attributes & CODEC_MASK == CODEC_GZIP && gzip_trailing_bytes(records);
    utf8 || snappy_header || gzip_trailing
}

/// Whether bytes follow the first gzip member of `compressed`.
fn gzip_trailing_bytes(compressed: &[u8]) -> bool {
    use std::io::Read;
    let mut decoder = flate2::bufread::GzDecoder::new(compressed);
    if std::io::copy(&mut decoder, &mut std::io::sink()).is_err() {
        return false;
    }
    let _ = decoder.read(&mut [0u8; 1]);
    !decoder.into_inner().is_empty()
}

fn read_i16(buffer: &[u8], at: usize) -> i16 {
    i16::from_be_bytes([buffer[at], buffer[at + 1]])
}

fn read_i32(buffer: &[u8], at: usize) -> i32 {
    i32::from_be_bytes(buffer[at..at + 4].try_into().expect("four bytes"))
}
