//! Segment recovery on corrupted files: the input becomes `00000000000000000000.log` (and, if
//! asked, its `.index` and `.timeindex`) in a scratch directory, which `Log::open` then recovers.
//! The log that comes out must be sound: open does not panic or fail, the log end is at least
//! its start, every batch from start to end reads back whole with a valid CRC and increasing
//! offsets, valid batches before the first corrupted byte are all kept, and the recovered log
//! takes an append that survives a flush and an unclean reopen.
//!
//! Input layout: 5 header bytes, then the optional index bytes, then the payload.
//! - byte 0, flags: bits 0-1 how many valid batches the file starts with (0-3); bit 2 open
//!   clean (trust the segment and its indexes) rather than after a crash; bits 3-4 the index
//!   interval (0, 64, 256 or 4096 bytes); bit 5 splice: the payload overwrites the valid batches
//!   from a position instead of following them (an empty payload cuts the file there, as a
//!   torn write does); bit 6 repair: batch-shaped payload gets magic 2
//!   and a correct CRC, so that header fields outside the CRC (base offset, length, leader
//!   epoch) and batches that are valid but nonsensical reach recovery; bit 7 write the index
//!   files from the input.
//! - bytes 1-2: the splice position (little-endian, modulo the valid bytes + 1).
//! - byte 3, byte 4: lengths of the `.index` and `.timeindex` contents that follow (bit 7).
//!
//! All inputs run on one long-lived glommio executor thread (one per fuzzing process, in a
//! directory of its own), fed over a channel: an executor per input would spend most of the
//! time setting up io_uring.

#![no_main]

use std::path::{Path, PathBuf};
use std::sync::{mpsc, Mutex, OnceLock};

use bytes::{Bytes, BytesMut};
use flink::storage::batch::{self, BatchHeader};
use flink::storage::{Log, LogConfig};
use kafka_protocol::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use libfuzzer_sys::fuzz_target;

const HEADER_BYTES: usize = 5;
const SEGMENT: &str = "00000000000000000000";
const TIMESTAMP: i64 = 1_700_000_000_000;

fuzz_target!(|data: &[u8]| {
    let worker = worker()
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    worker
        .inputs
        .send(data.to_vec())
        .expect("the executor thread is gone");
    match worker.results.recv() {
        Ok(Ok(())) => {}
        Ok(Err(failure)) => panic!("{failure}"),
        Err(_) => panic!("the executor thread died"),
    }
});

struct Worker {
    inputs: mpsc::Sender<Vec<u8>>,
    results: mpsc::Receiver<Result<(), String>>,
}

fn worker() -> &'static Mutex<Worker> {
    static WORKER: OnceLock<Mutex<Worker>> = OnceLock::new();
    WORKER.get_or_init(|| {
        let (inputs, input_queue) = mpsc::channel::<Vec<u8>>();
        let (result_queue, results) = mpsc::channel();
        let root = std::env::var_os("FLINK_FUZZ_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(std::env::temp_dir);
        let dir = root.join(format!("flink-fuzz-segment-{}", std::process::id()));
        // A panic aborts the process (libFuzzer's hook): take the scratch directory along.
        let scratch = dir.clone();
        let abort = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let _ = std::fs::remove_dir_all(&scratch);
            abort(info);
        }));
        glommio::LocalExecutorBuilder::default()
            .name("segment-recovery")
            .io_memory(512 << 10)
            .spawn(move || async move {
                // Blocking on the channel is fine: nothing else runs on this executor.
                while let Ok(input) = input_queue.recv() {
                    let result = check(&dir, &input).await;
                    if result_queue.send(result).is_err() {
                        break;
                    }
                }
                let _ = std::fs::remove_dir_all(&dir);
            })
            .expect("cannot start a glommio executor (io_uring, locked memory?)");
        Mutex::new(Worker { inputs, results })
    })
}

/// One input, decoded.
struct Case {
    clean: bool,
    index_interval_bytes: u64,
    /// The `.log` file.
    file: Vec<u8>,
    /// `.index` and `.timeindex`, when the input gives them.
    indexes: Option<(Vec<u8>, Vec<u8>)>,
    /// The valid batches the file was built from and their byte ranges.
    valid: Vec<(BatchHeader, Vec<u8>)>,
    /// The first byte that may differ from the valid batches: all before it is intact.
    intact_until: usize,
}

impl Case {
    fn parse(input: &[u8]) -> Case {
        let mut header = [0u8; HEADER_BYTES];
        let given = input.len().min(HEADER_BYTES);
        header[..given].copy_from_slice(&input[..given]);
        let mut rest = &input[given..];
        let flags = header[0];
        let (splice, repair, with_indexes) =
            (flags & 0x20 != 0, flags & 0x40 != 0, flags & 0x80 != 0);
        let indexes = with_indexes.then(|| {
            let mut take = |length: usize| {
                let (taken, left) = rest.split_at(length.min(rest.len()));
                rest = left;
                taken.to_vec()
            };
            let index = take(usize::from(header[3]));
            let time_index = take(usize::from(header[4]));
            (index, time_index)
        });
        let valid = valid_batches(usize::from(flags & 0x03));
        let mut file: Vec<u8> = valid.iter().flat_map(|(_, bytes)| bytes.clone()).collect();
        let valid_bytes = file.len();
        let at = if splice {
            usize::from(u16::from_le_bytes([header[1], header[2]])) % (valid_bytes + 1)
        } else {
            valid_bytes
        };
        file.truncate(at);
        file.extend_from_slice(rest);
        if splice && !rest.is_empty() && file.len() < valid_bytes {
            // The payload overwrote the middle: the valid bytes after it are still there. (An
            // empty payload leaves the file cut at the position: a torn write.)
            let all: Vec<u8> = valid.iter().flat_map(|(_, bytes)| bytes.clone()).collect();
            file.extend_from_slice(&all[file.len()..]);
        }
        if repair {
            repair_batches(&mut file, at);
        }
        Case {
            clean: flags & 0x04 != 0,
            index_interval_bytes: [0, 64, 256, 4096][usize::from((flags >> 3) & 0x03)],
            file,
            indexes,
            valid,
            intact_until: at,
        }
    }
}

/// `count` valid batches at offsets from 0: the i-th holds i + 1 keyed records.
fn valid_batches(count: usize) -> Vec<(BatchHeader, Vec<u8>)> {
    let mut batches = Vec::new();
    let mut offset = 0i64;
    let mut position = 0usize;
    for index in 0..count {
        let bytes = encode_batch(offset, index + 1, index * 40);
        let headers = batch::validate_batches(&bytes, usize::MAX).expect("a valid batch");
        assert_eq!(headers.len(), 1, "one batch");
        let mut header = headers[0];
        header.position = position;
        offset = header.next_offset();
        position += bytes.len();
        batches.push((header, bytes));
    }
    batches
}

fn encode_batch(base_offset: i64, count: usize, value_bytes: usize) -> Vec<u8> {
    let records: Vec<Record> = (0..count)
        .map(|index| Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: 0,
            producer_id: -1,
            producer_epoch: -1,
            timestamp_type: TimestampType::Creation,
            offset: base_offset + index as i64,
            // The encoder starts a new batch where offset minus sequence changes.
            sequence: index as i32,
            timestamp: TIMESTAMP + index as i64,
            key: Some(Bytes::from(format!("key-{index}"))),
            value: Some(Bytes::from(vec![b'v'; value_bytes])),
            headers: Default::default(),
        })
        .collect();
    let mut buffer = BytesMut::new();
    let options = RecordEncodeOptions {
        version: 2,
        compression: Compression::None,
    };
    RecordBatchEncoder::encode(&mut buffer, &records, &options).expect("encode a batch");
    buffer.to_vec()
}

/// Gives every batch-shaped run of bytes from `from` on magic 2 and a correct CRC-32C.
fn repair_batches(file: &mut [u8], from: usize) {
    let mut cursor = from;
    while file.len() - cursor >= batch::BATCH_HEADER_BYTES {
        let length = i32::from_be_bytes(file[cursor + 8..cursor + 12].try_into().unwrap());
        let minimum = (batch::BATCH_HEADER_BYTES - batch::LOG_OVERHEAD_BYTES) as i32;
        if length < minimum {
            break;
        }
        let size = batch::LOG_OVERHEAD_BYTES + length as usize;
        if size > file.len() - cursor {
            break;
        }
        file[cursor + 16] = 2;
        let crc = crc32c(&file[cursor + 21..cursor + size]);
        file[cursor + 17..cursor + 21].copy_from_slice(&crc.to_be_bytes());
        cursor += size;
    }
}

/// CRC-32C (Castagnoli), bitwise: the fuzz target needs no dependency for it.
fn crc32c(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for byte in bytes {
        crc ^= u32::from(*byte);
        for _ in 0..8 {
            crc = (crc >> 1) ^ (0x82F6_3B78 & (crc & 1).wrapping_neg());
        }
    }
    !crc
}

macro_rules! ensure {
    ($condition:expr, $($message:tt)+) => {
        if !$condition {
            return Err(format!($($message)+));
        }
    };
}

async fn check(dir: &Path, input: &[u8]) -> Result<(), String> {
    let case = Case::parse(input);
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir).map_err(|error| format!("cannot create {dir:?}: {error}"))?;
    let write = |extension: &str, bytes: &[u8]| {
        let path = dir.join(format!("{SEGMENT}.{extension}"));
        std::fs::write(&path, bytes).map_err(|error| format!("cannot write {path:?}: {error}"))
    };
    write("log", &case.file)?;
    if let Some((index, time_index)) = &case.indexes {
        write("index", index)?;
        write("timeindex", time_index)?;
    }
    let config = LogConfig {
        segment_bytes_max: 1 << 20,
        index_interval_bytes: case.index_interval_bytes,
        segment_ms: i64::MAX,
        retention_ms: -1,
        retention_bytes: -1,
        ..LogConfig::default()
    };
    let what = format!(
        "{} open of {} bytes, {} valid batches intact below byte {}, index interval {}{}",
        if case.clean { "clean" } else { "unclean" },
        case.file.len(),
        case.valid.len(),
        case.intact_until,
        case.index_interval_bytes,
        if case.indexes.is_some() {
            ", index files given"
        } else {
            ""
        },
    );
    let outcome = recover_and_append(dir, config, &case).await;
    let _ = std::fs::remove_dir_all(dir);
    outcome.map_err(|failure| format!("{what}: {failure}"))
}

async fn recover_and_append(dir: &Path, config: LogConfig, case: &Case) -> Result<(), String> {
    let log = Log::open(dir, config, case.clean, &mut |_: &BatchHeader| {})
        .await
        .map_err(|error| format!("open failed: {error}"))?;
    let (start, end) = (log.start_offset(), log.next_offset());
    ensure!(end >= start, "log end {end} below its start {start}");
    let batches = read_all(&log).await?;

    let intact: Vec<&(BatchHeader, Vec<u8>)> = case
        .valid
        .iter()
        .filter(|(header, _)| header.position + header.size <= case.intact_until)
        .collect();
    ensure!(
        batches.len() >= intact.len(),
        "{} batches read back, but the {} valid batches before byte {} must all be kept",
        batches.len(),
        intact.len(),
        case.intact_until
    );
    for (index, ((expected, bytes), (_, read))) in intact.iter().zip(&batches).enumerate() {
        ensure!(
            read == bytes,
            "valid batch {index} at offset {} reads back changed",
            expected.base_offset
        );
    }

    // The recovered log takes an append, reads it back, and keeps it across an unclean reopen.
    let appended = encode_batch(end, 3, 10);
    let mut headers = batch::validate_batches(&appended, usize::MAX).expect("a valid batch");
    let base = log
        .append(appended.clone(), &mut headers, 0)
        .await
        .map_err(|error| format!("append after recovery failed: {error}"))?;
    ensure!(
        base == end,
        "append after recovery at {base}, not at the end {end}"
    );
    let read = log
        .read(end, 1 << 20)
        .await
        .map_err(|error| format!("read of the appended batch failed: {error}"))?;
    ensure!(
        read[..] == appended[..],
        "the appended batch reads back changed"
    );
    log.flush()
        .await
        .map_err(|error| format!("flush after recovery failed: {error}"))?;
    drop(log);
    let log = Log::open(dir, config, false, &mut |_: &BatchHeader| {})
        .await
        .map_err(|error| format!("reopen failed: {error}"))?;
    ensure!(
        log.next_offset() == end + 3,
        "reopened log ends at {}, not {}",
        log.next_offset(),
        end + 3
    );
    let bytes = |batches: &[(BatchHeader, Vec<u8>)]| -> Vec<Vec<u8>> {
        batches.iter().map(|(_, bytes)| bytes.clone()).collect()
    };
    let reread = read_all(&log).await?;
    let mut expected = bytes(&batches);
    expected.push(appended);
    ensure!(
        bytes(&reread) == expected,
        "after the append and an unclean reopen the log reads back {} batches, not the {} \
         recovered plus the appended one",
        reread.len(),
        batches.len()
    );
    log.remove()
        .await
        .map_err(|error| format!("cannot remove the log: {error}"))
}

/// Every batch from the log start to its end: whole, CRC valid, offsets increasing.
async fn read_all(log: &Log) -> Result<Vec<(BatchHeader, Vec<u8>)>, String> {
    let (start, end) = (log.start_offset(), log.next_offset());
    let mut batches: Vec<(BatchHeader, Vec<u8>)> = Vec::new();
    let mut offset = start;
    while offset < end {
        let bytes = log
            .read(offset, 1 << 16)
            .await
            .map_err(|error| format!("read at {offset} (log [{start}, {end})) failed: {error}"))?;
        ensure!(
            !bytes.is_empty(),
            "read at {offset} returned nothing before the log end {end}"
        );
        let headers = batch::validate_batches(&bytes, usize::MAX)
            .map_err(|error| format!("read at {offset} returned a bad batch: {error}"))?;
        for header in headers {
            batch::verify_crc(&bytes, &header)
                .map_err(|error| format!("batch at {}: {error}", header.base_offset))?;
            if let Some((previous, _)) = batches.last() {
                ensure!(
                    header.base_offset >= previous.next_offset(),
                    "batch at offset {} follows one ending at {}",
                    header.base_offset,
                    previous.next_offset()
                );
            }
            ensure!(
                header.next_offset() > offset && header.next_offset() <= end,
                "read at {offset} returned batch [{}, {}) of log [{start}, {end})",
                header.base_offset,
                header.next_offset()
            );
            let bytes = bytes[header.position..header.position + header.size].to_vec();
            batches.push((header, bytes));
        }
        offset = batches.last().expect("a batch").0.next_offset();
    }
    Ok(batches)
}
