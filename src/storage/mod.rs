//! Partition logs on disk in Kafka's layout: `log.dirs/<topic>-<partition>/` holding segments
//! `<base offset, 20 digits>.log` with their sparse `.index`. Everything here runs on the shard that
//! owns the partition and does its I/O through that shard's io_uring (glommio files). Topics with
//! `cleanup.policy=compact` are compacted by `cleaner` (driven by `runtime::cleaner`). Beside the
//! segments, `epoch_cache` keeps Kafka's `leader-epoch-checkpoint` for replication.

pub mod batch;
pub mod blocking;
pub mod checkpoint;
pub mod cleaner;
pub mod epoch_cache;
pub mod index_file;
pub mod log;
pub mod log_dirs;
#[cfg(test)]
mod log_tests;
#[cfg(test)]
mod model_tests;
pub mod offset_index;
pub mod partition_metadata;
mod read_ahead;
pub mod segment;
pub mod tail;
#[cfg(test)]
pub(crate) mod test_util;
pub mod time_index;
pub mod txn_index;
#[cfg(test)]
mod txn_index_tests;
pub mod validator;

use std::path::PathBuf;

pub use cleaner::{CleanerConfig, CompactionStats};
pub use epoch_cache::EpochCache;
pub use log::{now_ms, remove_deleted_dirs, BatchObserver, Log, LogConfig};
pub use segment::prime_direct_io;

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("I/O error on {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("offset {offset} is outside the log [{start}, {end}]")]
    OffsetOutOfRange { offset: i64, start: i64, end: i64 },
    #[error("cannot compact the batch at offset {offset} of {path}: {reason}")]
    Compaction {
        path: PathBuf,
        offset: i64,
        reason: String,
    },
    #[error("compacting {path} needs a key map over {bytes_max} bytes; the log stays as it is")]
    KeyMapFull { path: PathBuf, bytes_max: usize },
    #[error("fdatasync of {path} failed: {reason}")]
    SyncFailed { path: PathBuf, reason: String },
    #[error("{path} was closed for shutdown")]
    Closed { path: PathBuf },
    #[error("replicated batches must continue the log at offset {expected}, but one starts at {received}")]
    NonContiguous { expected: i64, received: i64 },
}

impl StorageError {
    pub fn io(path: impl Into<PathBuf>, source: impl Into<std::io::Error>) -> StorageError {
        StorageError::Io {
            path: path.into(),
            source: source.into(),
        }
    }
}

/// `00000000000000000042.log` for base offset 42 and extension `log`.
pub fn segment_file_name(base_offset: i64, extension: &str) -> String {
    format!("{base_offset:020}.{extension}")
}

/// The settings of one partition's log from its topic's resolved configs
/// (`metadata::configs::resolve_topic`: the topic's overrides over the broker's `log.*` keys):
/// `segment.bytes`, `segment.ms`, `retention.ms`, `retention.bytes`, `flush.messages`,
/// `flush.ms`, `index.interval.bytes`. Retention applies only when `cleanup.policy` includes
/// `delete` (the default), as in Kafka.
pub fn log_config(resolved: &std::collections::BTreeMap<String, String>) -> LogConfig {
    let defaults = LogConfig::default();
    let number = |key: &str, default: i64| {
        resolved
            .get(key)
            .and_then(|value| value.trim().parse::<i64>().ok())
            .unwrap_or(default)
    };
    let deletes = resolved
        .get("cleanup.policy")
        .is_none_or(|policy| policy.split(',').any(|policy| policy.trim() == "delete"));
    let (retention_ms, retention_bytes) = match deletes {
        true => (
            number("retention.ms", defaults.retention_ms),
            number("retention.bytes", defaults.retention_bytes),
        ),
        false => (-1, -1),
    };
    LogConfig {
        segment_bytes_max: number("segment.bytes", defaults.segment_bytes_max as i64).max(14)
            as u64,
        index_interval_bytes: number("index.interval.bytes", defaults.index_interval_bytes as i64)
            .max(0) as u64,
        segment_ms: number("segment.ms", defaults.segment_ms),
        retention_ms,
        retention_bytes,
        flush_messages: number("flush.messages", defaults.flush_messages),
        flush_ms: number("flush.ms", defaults.flush_ms),
        file_delete_delay_ms: number("file.delete.delay.ms", defaults.file_delete_delay_ms).max(0),
    }
}
