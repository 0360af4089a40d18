//! Append throughput of the storage engine (`flink::storage::Log`), for comparison with the raw
//! sequential O_DIRECT bandwidth of the same disk that `bench/storage.sh` measures with dd in the
//! same run. One ~1 MiB Kafka v2 batch of 1 KiB records is built once and appended `--total-mib`
//! times to a fresh log on one pinned glommio executor, the way the broker's produce path does it:
//! a fresh buffer per request (a clone of the template), `batch::validate_batches` for the headers
//! (CRC-32C included), then `Log::append`. Modes:
//!
//! - `write-behind`: appends only, then one `Log::flush` at the end, all inside the timing.
//! - `fsync-per-batch`: `Log::flush` after every append (what `acks=all` costs).
//! - `prepare-only`: the clone and the validation without any I/O, to show the CPU ceiling.
//!
//! Each run prints one machine-readable line:
//! `log_append mode=write-behind batches=.. batch_bytes=.. records_per_batch=.. mib=.. seconds=.. mib_per_s=..`
//!
//! Run it through `make bench-storage` (bench/storage.sh), which also measures the baseline.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use bytes::Bytes;
use clap::Parser;
use glommio::{LocalExecutorBuilder, Placement};
use kafka_protocol::records::Compression;

use flink::client::records::{encode_batch, OutgoingRecord};
use flink::storage::batch::{self, BatchHeader};

/// Bytes of each record's value.
const RECORD_VALUE_BYTES: usize = 1024;
/// The batch is the largest that fits in this many bytes.
const BATCH_BYTES_MAX: usize = 1 << 20;
/// The broker's default `message.max.bytes`, which the produce path validates against.
const MESSAGE_MAX_BYTES: usize = 1_048_588;
/// As the broker's `log.segment.bytes` and `log.index.interval.bytes` defaults.
const SEGMENT_BYTES: u64 = 1 << 30;
const INDEX_INTERVAL_BYTES: u64 = 4096;
/// As `EXECUTOR_IO_MEMORY_BYTES` in src/runtime/mod.rs.
const EXECUTOR_IO_MEMORY_BYTES: usize = 512 << 10;
/// As the broker's `.flink-io-probe` (see io_uring_notes.md, "The poll-probe bug").
const IO_PROBE_FILE: &str = ".flink-io-probe";
const IO_PROBE_BYTES: usize = 4096;
/// The partition directory the log lives in, under `--dir`.
const LOG_DIR_NAME: &str = "log_append-0";
const MIB: f64 = (1u64 << 20) as f64;

#[derive(Parser, Debug)]
#[command(about = "Append throughput of flink::storage::Log (see bench/README.md)")]
struct Args {
    /// Directory for the log; put it on the disk dd measures. Emptied of the log before and after.
    #[arg(long, default_value = "target/bench-log")]
    dir: PathBuf,
    /// MiB to append (rounded up to whole batches).
    #[arg(long, default_value_t = 2048)]
    total_mib: u64,
    /// Comma-separated: write-behind, fsync-per-batch, prepare-only; or `all`.
    #[arg(long, default_value = "write-behind,fsync-per-batch")]
    mode: String,
    /// CPU to pin the executor to (default: the first CPU the process may run on).
    #[arg(long)]
    cpu: Option<usize>,
    /// Passed by `cargo bench`; ignored.
    #[arg(long, hide = true)]
    bench: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    WriteBehind,
    FsyncPerBatch,
    PrepareOnly,
}

impl Mode {
    fn parse(name: &str) -> Result<Mode, String> {
        match name {
            "write-behind" => Ok(Mode::WriteBehind),
            "fsync-per-batch" => Ok(Mode::FsyncPerBatch),
            "prepare-only" => Ok(Mode::PrepareOnly),
            other => Err(format!(
                "unknown mode {other:?}: write-behind, fsync-per-batch, prepare-only or all"
            )),
        }
    }

    fn name(self) -> &'static str {
        match self {
            Mode::WriteBehind => "write-behind",
            Mode::FsyncPerBatch => "fsync-per-batch",
            Mode::PrepareOnly => "prepare-only",
        }
    }
}

/// Every call into the storage engine is here, so that a change of the `Log` API is fixed in one
/// place.
mod engine {
    use std::path::Path;

    use flink::storage::batch::BatchHeader;
    use flink::storage::{Log, LogConfig, StorageError};

    /// A fresh log with the broker's defaults (no flush policy, nothing deleted by retention).
    pub async fn open(dir: &Path) -> Result<Log, StorageError> {
        let config = LogConfig {
            segment_bytes_max: super::SEGMENT_BYTES,
            index_interval_bytes: super::INDEX_INTERVAL_BYTES,
            ..LogConfig::default()
        };
        Log::open(dir, config, false, &mut |_: &BatchHeader| {}).await
    }

    /// One produce request's append: the owned buffer and the headers validation gave.
    pub async fn append(
        log: &Log,
        batches: Vec<u8>,
        mut headers: Vec<BatchHeader>,
    ) -> Result<i64, StorageError> {
        log.append(batches, &mut headers, 0).await
    }

    pub async fn flush(log: &Log) -> Result<(), StorageError> {
        log.flush().await
    }

    pub fn next_offset(log: &Log) -> i64 {
        log.next_offset()
    }

    pub async fn read(log: &Log, offset: i64, max_bytes: usize) -> Result<Vec<u8>, StorageError> {
        Ok(log.read(offset, max_bytes).await?.to_vec())
    }

    pub async fn remove(log: Log) -> Result<(), StorageError> {
        log.remove().await
    }
}

struct Template {
    bytes: Vec<u8>,
    header: BatchHeader,
}

struct Outcome {
    mode: Mode,
    batches: u64,
    bytes: u64,
    elapsed: Duration,
}

type BoxError = Box<dyn std::error::Error>;

fn main() {
    let args = Args::parse();
    if let Err(error) = run(args) {
        eprintln!("log_append: {error}");
        std::process::exit(1);
    }
}

fn run(args: Args) -> Result<(), BoxError> {
    let modes: Vec<Mode> = if args.mode == "all" {
        vec![Mode::WriteBehind, Mode::FsyncPerBatch, Mode::PrepareOnly]
    } else {
        args.mode
            .split(',')
            .map(|name| Mode::parse(name.trim()))
            .collect::<Result<_, _>>()?
    };
    let template = build_template()?;
    let batch_bytes = template.bytes.len() as u64;
    let batches = (args.total_mib << 20).div_ceil(batch_bytes).max(1);

    flink::runtime::preflight::check(1)?;
    let cpu = match args.cpu {
        Some(cpu) => cpu,
        None => *flink::runtime::cpu::allowed_cpus()?
            .first()
            .ok_or("the process may run on no CPU")?,
    };
    std::fs::create_dir_all(&args.dir)?;
    let probe = args.dir.join(IO_PROBE_FILE);
    std::fs::write(&probe, vec![0u8; IO_PROBE_BYTES])?;
    let log_dir = args.dir.join(LOG_DIR_NAME);

    let records_per_batch = template.header.record_count;
    let probe_path = probe.clone();
    let outcomes = LocalExecutorBuilder::new(Placement::Fixed(cpu))
        .name("log-append")
        .io_memory(EXECUTOR_IO_MEMORY_BYTES)
        .spawn(move || async move {
            prime_poll_probe(&probe_path).await;
            let mut outcomes = Vec::new();
            for mode in modes {
                let outcome = match mode {
                    Mode::PrepareOnly => prepare_only(&template, batches),
                    _ => run_mode(mode, &log_dir, &template, batches).await,
                };
                outcomes.push(outcome.map_err(|error| format!("{}: {error}", mode.name())));
            }
            outcomes
        })?
        .join()
        .map_err(|error| format!("executor: {error}"))?;
    let _ = std::fs::remove_file(&probe);

    for outcome in outcomes {
        let outcome = outcome?;
        let seconds = outcome.elapsed.as_secs_f64();
        let mib = outcome.bytes as f64 / MIB;
        println!(
            "log_append mode={} batches={} batch_bytes={} records_per_batch={} mib={:.1} seconds={:.3} mib_per_s={:.1}",
            outcome.mode.name(),
            outcome.batches,
            batch_bytes,
            records_per_batch,
            mib,
            seconds,
            mib / seconds
        );
    }
    Ok(())
}

/// The largest batch of 1 KiB records that fits in `BATCH_BYTES_MAX`, checked as the produce
/// path checks what it receives.
fn build_template() -> Result<Template, BoxError> {
    let value: Bytes = (0..RECORD_VALUE_BYTES)
        .map(|index| (index % 251) as u8)
        .collect::<Vec<u8>>()
        .into();
    let record = OutgoingRecord {
        key: None,
        value: Some(value),
        timestamp_ms: now_ms(),
    };
    let mut count = BATCH_BYTES_MAX / RECORD_VALUE_BYTES;
    loop {
        let records = vec![record.clone(); count];
        let bytes = encode_batch(&records, Compression::None, "log_append", 0)?;
        if bytes.len() <= BATCH_BYTES_MAX {
            let headers = batch::validate_batches(&bytes, MESSAGE_MAX_BYTES)?;
            let [header] = headers[..] else {
                return Err(
                    format!("the template holds {} batches, not one", headers.len()).into(),
                );
            };
            if header.record_count as usize != count || header.size != bytes.len() {
                return Err(format!("the template batch parses wrongly: {header:?}").into());
            }
            return Ok(Template {
                bytes: bytes.to_vec(),
                header,
            });
        }
        count -= 1;
    }
}

/// Records are stamped now, as a producer would, so time-based roll and retention see them as new.
fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| since.as_millis() as i64)
}

/// What the produce path does per request before the log: a fresh owned buffer and its headers.
fn prepare(template: &Template) -> Result<(Vec<u8>, Vec<BatchHeader>), BoxError> {
    let bytes = template.bytes.clone();
    let headers = batch::validate_batches(&bytes, MESSAGE_MAX_BYTES)?;
    Ok((bytes, headers))
}

async fn run_mode(
    mode: Mode,
    log_dir: &Path,
    template: &Template,
    batches: u64,
) -> Result<Outcome, BoxError> {
    match std::fs::remove_dir_all(log_dir) {
        Err(error) if error.kind() != std::io::ErrorKind::NotFound => return Err(error.into()),
        _ => {}
    }
    let log = engine::open(log_dir).await?;
    let started = Instant::now();
    for _ in 0..batches {
        let (bytes, headers) = prepare(template)?;
        engine::append(&log, bytes, headers).await?;
        if mode == Mode::FsyncPerBatch {
            engine::flush(&log).await?;
        }
    }
    if mode == Mode::WriteBehind {
        engine::flush(&log).await?;
    }
    let elapsed = started.elapsed();
    check_log(&log, template, batches).await?;
    engine::remove(log).await?;
    Ok(Outcome {
        mode,
        batches,
        bytes: batches * template.bytes.len() as u64,
        elapsed,
    })
}

/// After the timing: the log end is right, and the first and last batches read back intact.
async fn check_log(
    log: &flink::storage::Log,
    template: &Template,
    batches: u64,
) -> Result<(), BoxError> {
    let per_batch = i64::from(template.header.last_offset_delta) + 1;
    let expected_end = batches as i64 * per_batch;
    let end = engine::next_offset(log);
    if end != expected_end {
        return Err(format!("log end offset {end}, expected {expected_end}").into());
    }
    for base_offset in [0, expected_end - per_batch] {
        let bytes = engine::read(log, base_offset, template.bytes.len()).await?;
        let headers = batch::validate_batches(&bytes, MESSAGE_MAX_BYTES)
            .map_err(|error| format!("batch at offset {base_offset} reads back bad: {error}"))?;
        // Only the base offset and the partition leader epoch (bytes 0..8 and 12..16) change.
        if headers.len() != 1
            || headers[0].base_offset != base_offset
            || bytes[16..] != template.bytes[16..]
        {
            return Err(format!("batch at offset {base_offset} reads back different").into());
        }
    }
    Ok(())
}

fn prepare_only(template: &Template, batches: u64) -> Result<Outcome, BoxError> {
    let started = Instant::now();
    for _ in 0..batches {
        let prepared = prepare(template)?;
        std::hint::black_box(prepared);
    }
    Ok(Outcome {
        mode: Mode::PrepareOnly,
        batches,
        bytes: batches * template.bytes.len() as u64,
        elapsed: started.elapsed(),
    })
}

/// glommio probes a device for polled I/O with the first file a thread opens for Direct I/O;
/// the broker opens a non-empty probe file first so the answer is right, and so does this.
async fn prime_poll_probe(path: &Path) {
    match glommio::io::DmaFile::open(path).await {
        Ok(file) => {
            let _ = file.close().await;
        }
        Err(error) => eprintln!("log_append: io probe {} failed: {error}", path.display()),
    }
}
