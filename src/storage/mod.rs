//! Partition logs on disk in Kafka's layout: `log.dirs/<topic>-<partition>/` holding segments
//! `<base offset, 20 digits>.log` with their sparse `.index`. Everything here runs on the shard that
//! owns the partition and does its I/O through that shard's io_uring (glommio files). Topics with
//! `cleanup.policy=compact` are compacted by `cleaner` (driven by `runtime::cleaner`).

pub mod batch;
pub mod cleaner;
pub mod log;
pub mod offset_index;
pub mod segment;

use std::path::PathBuf;

pub use cleaner::{CleanerConfig, CompactionStats};
pub use log::{Log, LogConfig};

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
