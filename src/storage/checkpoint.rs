//! Small files beside a partition's segments that bound recovery and remember deletions:
//!
//! - `log.checkpoint`: `recovery.point=<offset>` (everything below it was fsynced, so those
//!   segments need no scan after a crash) and `log.start.offset=<offset>` (records below it
//!   were deleted by DeleteRecords or retention), and `high.watermark=<offset>` as the partition
//!   last reported it (at most the true one: a restarted leader starts from it rather than from
//!   its log start). Replaced atomically (write, fsync, rename).
//! - `<offset, 20 digits>.snapshot`: the state of the batch observer (idempotent producers)
//!   after everything below `offset`, written when a segment rolls and at a clean shutdown, so
//!   that start-up replays batches only from the latest snapshot on.
//!
//! Plain `std::fs` I/O for a few hundred bytes, written at rolls and checkpoints; the writes
//! and listings a running shard makes go to its blocking thread (`blocking::off_reactor`).

use std::io::Write;
use std::path::{Path, PathBuf};

use super::blocking::off_reactor;
use super::{segment_file_name, StorageError};

const CHECKPOINT_FILE: &str = "log.checkpoint";
const SNAPSHOT_EXTENSION: &str = "snapshot";
/// Snapshots kept per partition; older ones are deleted when a new one is written.
const SNAPSHOTS_KEPT: usize = 2;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Checkpoint {
    pub recovery_point: i64,
    pub log_start_offset: i64,
    /// 0 when the file has none (written before replication).
    pub high_watermark: i64,
}

impl Checkpoint {
    /// Reads the checkpoint of the log in `dir`; all zeros when there is none or it is damaged
    /// (which only makes recovery scan more).
    pub fn read(dir: &Path) -> Checkpoint {
        let mut checkpoint = Checkpoint::default();
        let Ok(text) = std::fs::read_to_string(dir.join(CHECKPOINT_FILE)) else {
            return checkpoint;
        };
        for line in text.lines() {
            let Some((key, value)) = line.split_once('=') else {
                continue;
            };
            let Ok(value) = value.trim().parse::<i64>() else {
                continue;
            };
            match key.trim() {
                "recovery.point" => checkpoint.recovery_point = value,
                "log.start.offset" => checkpoint.log_start_offset = value,
                "high.watermark" => checkpoint.high_watermark = value,
                _ => {}
            }
        }
        checkpoint
    }

    /// Writes the checkpoint durably (the rename is synced too when `sync_dir`), off the
    /// reactor. Callers serialize writes of one directory (they share a temporary file).
    pub async fn write(&self, dir: &Path, sync_dir: bool) -> Result<(), StorageError> {
        let text = format!(
            "recovery.point={}\nlog.start.offset={}\nhigh.watermark={}\n",
            self.recovery_point, self.log_start_offset, self.high_watermark
        );
        let path = dir.join(CHECKPOINT_FILE);
        off_reactor(move || write_replacing(&path, text.as_bytes(), sync_dir)).await
    }
}

/// Writes `bytes` to `path` through a temporary file (`path` with extension `tmp`), fsynced
/// and renamed over it; the rename is made durable too when `sync_dir`.
pub(super) fn write_replacing(
    path: &Path,
    bytes: &[u8],
    sync_dir: bool,
) -> Result<(), StorageError> {
    let temporary = path.with_extension("tmp");
    let io_error = |error| StorageError::io(&temporary, error);
    let mut file = std::fs::File::create(&temporary).map_err(io_error)?;
    file.write_all(bytes).map_err(io_error)?;
    file.sync_data().map_err(io_error)?;
    std::fs::rename(&temporary, path).map_err(|error| StorageError::io(path, error))?;
    if sync_dir {
        if let Some(dir) = path.parent() {
            std::fs::File::open(dir)
                .and_then(|directory| directory.sync_all())
                .map_err(|error| StorageError::io(dir, error))?;
        }
    }
    Ok(())
}

/// Writes the snapshot taken at `offset` and deletes all but the newest few, off the reactor.
/// Callers serialize writes of one directory.
pub async fn write_snapshot(dir: &Path, offset: i64, bytes: Vec<u8>) -> Result<(), StorageError> {
    let dir = dir.to_path_buf();
    off_reactor(move || {
        write_replacing(
            &dir.join(segment_file_name(offset, SNAPSHOT_EXTENSION)),
            &bytes,
            false,
        )?;
        let snapshots = snapshot_offsets(&dir)?;
        for old in snapshots.iter().rev().skip(SNAPSHOTS_KEPT) {
            remove_snapshot(&dir, *old);
        }
        Ok(())
    })
    .await
}

/// The newest snapshot taken at or below `offset`, with its offset.
pub fn latest_snapshot(dir: &Path, offset: i64) -> Result<Option<(i64, Vec<u8>)>, StorageError> {
    let snapshots = snapshot_offsets(dir)?;
    let Some(found) = snapshots.into_iter().rev().find(|taken| *taken <= offset) else {
        return Ok(None);
    };
    let path = snapshot_path(dir, found);
    let bytes = std::fs::read(&path).map_err(|error| StorageError::io(&path, error))?;
    Ok(Some((found, bytes)))
}

/// Deletes snapshots taken above `offset` (the log was cut below them).
pub fn remove_snapshots_above(dir: &Path, offset: i64) -> Result<(), StorageError> {
    for taken in snapshot_offsets(dir)? {
        if taken > offset {
            remove_snapshot(dir, taken);
        }
    }
    Ok(())
}

fn remove_snapshot(dir: &Path, offset: i64) {
    let path = snapshot_path(dir, offset);
    if let Err(error) = std::fs::remove_file(&path) {
        tracing::warn!("cannot remove {}: {error}", path.display());
    }
}

fn snapshot_path(dir: &Path, offset: i64) -> PathBuf {
    dir.join(segment_file_name(offset, SNAPSHOT_EXTENSION))
}

/// Offsets of the snapshots in `dir`, ascending.
fn snapshot_offsets(dir: &Path) -> Result<Vec<i64>, StorageError> {
    let entries = std::fs::read_dir(dir).map_err(|error| StorageError::io(dir, error))?;
    let suffix = format!(".{SNAPSHOT_EXTENSION}");
    let mut offsets = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|error| StorageError::io(dir, error))?;
        let name = entry.file_name();
        if let Some(offset) = name
            .to_str()
            .and_then(|name| name.strip_suffix(&suffix))
            .and_then(|stem| stem.parse::<i64>().ok())
        {
            offsets.push(offset);
        }
    }
    offsets.sort_unstable();
    Ok(offsets)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::test_util::{run, temp_dir};

    /// Proves the checkpoint round-trips and defaults to zeros, and that snapshots are found
    /// by offset, pruned to the newest few, and removed above a cut.
    #[test]
    fn checkpoints_and_snapshots() {
        let dir = temp_dir("checkpoint-files");
        std::fs::create_dir_all(&dir).unwrap();
        assert_eq!(Checkpoint::read(&dir), Checkpoint::default());
        run(move || async move {
            let checkpoint = Checkpoint {
                recovery_point: 42,
                log_start_offset: 7,
                high_watermark: 40,
            };
            checkpoint.write(&dir, true).await.unwrap();
            assert_eq!(Checkpoint::read(&dir), checkpoint);
            for offset in [10, 20, 30] {
                write_snapshot(&dir, offset, format!("at {offset}").into_bytes())
                    .await
                    .unwrap();
            }
            assert_eq!(snapshot_offsets(&dir).unwrap(), vec![20, 30]);
            assert_eq!(
                latest_snapshot(&dir, 25).unwrap(),
                Some((20, b"at 20".to_vec()))
            );
            assert_eq!(latest_snapshot(&dir, 19).unwrap(), None);
            remove_snapshots_above(&dir, 25).unwrap();
            assert_eq!(snapshot_offsets(&dir).unwrap(), vec![20]);
            std::fs::remove_dir_all(&dir).unwrap();
        });
    }
}
