//! The leader epoch cache of one partition replica (Kafka's `LeaderEpochFileCache`): for every
//! leader epoch that appended to the log, the offset of its first batch. A follower asks its
//! leader where an epoch ended (OffsetsForLeaderEpoch) to find where their logs diverge; the
//! leader answers from this cache.
//!
//! Invariants: entries ascend strictly by epoch and by start offset, and no epoch is negative.
//! The log keeps every start offset below its end (`truncate_from_end` when it is truncated and
//! when it opens) and at or above its start (`truncate_from_start`).
//!
//! The entries are kept in `<partition dir>/leader-epoch-checkpoint` in Kafka's format: a line
//! with the version `0`, a line with the number of entries, then `<epoch> <start offset>` per
//! entry. Every change is on disk before the call returns (temporary file, fsync, rename, fsync
//! of the directory), so a crash leaves either the old or the new file; the memory copy changes
//! only once the file did, so a failed write can simply be tried again. Plain `std::fs` I/O, as
//! for `log.checkpoint`: a few bytes, written when an epoch starts or the log is cut, never per
//! append. Runs on the shard that owns the partition.

use std::fmt::Write;
use std::path::{Path, PathBuf};

use super::checkpoint::write_replacing;
use super::StorageError;
use crate::replication::epochs::{EpochEntries, EpochLedger};

/// Name of the cache's file in the partition directory (Kafka's).
pub const EPOCH_CHECKPOINT_FILE: &str = "leader-epoch-checkpoint";
pub use crate::replication::epochs::{UNDEFINED_EPOCH, UNDEFINED_EPOCH_OFFSET};
/// The only version of the file format.
const EPOCH_CHECKPOINT_VERSION: &str = "0";

#[derive(Debug)]
pub struct EpochCache {
    path: PathBuf,
    ledger: EpochLedger,
}

impl EpochCache {
    /// Loads the cache of the partition in `dir`. A missing file is an empty cache; so is a
    /// damaged one (with a warning): the log then records epochs again from its next append.
    pub fn open(dir: &Path) -> Result<EpochCache, StorageError> {
        let path = dir.join(EPOCH_CHECKPOINT_FILE);
        let entries = match std::fs::read(&path) {
            Ok(bytes) => parse(&bytes).unwrap_or_else(|reason| {
                tracing::warn!(
                    "ignoring {}: {reason}; the leader epoch cache starts empty",
                    path.display()
                );
                Vec::new()
            }),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(error) => return Err(StorageError::io(&path, error)),
        };
        Ok(EpochCache {
            path,
            ledger: EpochLedger::new(entries),
        })
    }

    /// The entries as pure data (`replication::epochs`).
    pub fn ledger(&self) -> &EpochLedger {
        &self.ledger
    }

    /// Records that `epoch` starts at `start_offset` (`EpochLedger::assigned`).
    pub fn assign(&mut self, epoch: i32, start_offset: i64) -> Result<(), StorageError> {
        let changed = self.ledger.assigned(epoch, start_offset);
        self.persist(changed)
    }

    /// The newest epoch held, if any.
    pub fn latest_epoch(&self) -> Option<i32> {
        self.ledger.latest_epoch()
    }

    /// Kafka's `endOffsetFor` (`EpochLedger::end_offset_for`).
    pub fn end_offset_for(&self, requested_epoch: i32, log_end: i64) -> (i32, i64) {
        self.ledger.end_offset_for(requested_epoch, log_end)
    }

    /// Removes the entries starting at or after `end_offset` (the log was cut there).
    /// A negative `end_offset` changes nothing, as in Kafka.
    pub fn truncate_from_end(&mut self, end_offset: i64) -> Result<(), StorageError> {
        let changed = self.ledger.truncated_from_end(end_offset);
        self.persist(changed)
    }

    /// Follows the log start to `start_offset` (`EpochLedger::truncated_from_start`).
    pub fn truncate_from_start(&mut self, start_offset: i64) -> Result<(), StorageError> {
        let changed = self.ledger.truncated_from_start(start_offset);
        self.persist(changed)
    }

    /// Removes every entry (the log was emptied and starts again elsewhere).
    pub fn clear(&mut self) -> Result<(), StorageError> {
        self.replace(Vec::new())
    }

    /// `(epoch, start offset)` of every epoch held, oldest first.
    pub fn entries(&self) -> &[(i32, i64)] {
        self.ledger.entries()
    }

    fn persist(&mut self, changed: Option<EpochEntries>) -> Result<(), StorageError> {
        match changed {
            Some(entries) => self.replace(entries),
            None => Ok(()),
        }
    }

    /// Writes `entries` durably, then takes them as the cache.
    fn replace(&mut self, entries: EpochEntries) -> Result<(), StorageError> {
        let mut text = format!("{EPOCH_CHECKPOINT_VERSION}\n{}\n", entries.len());
        for (epoch, start) in &entries {
            writeln!(text, "{epoch} {start}").expect("writing to a String cannot fail");
        }
        write_replacing(&self.path, text.as_bytes(), true)?;
        self.ledger.replace(entries);
        Ok(())
    }
}

fn parse(bytes: &[u8]) -> Result<Vec<(i32, i64)>, &'static str> {
    let text = std::str::from_utf8(bytes).map_err(|_| "it is not text")?;
    let mut lines = text.lines();
    if lines.next().map(str::trim) != Some(EPOCH_CHECKPOINT_VERSION) {
        return Err("its version is not 0");
    }
    let count: usize = lines
        .next()
        .and_then(|line| line.trim().parse().ok())
        .ok_or("its entry count is not a number")?;
    let mut entries: Vec<(i32, i64)> = Vec::new();
    for line in lines {
        let mut fields = line.split_whitespace();
        let (Some(epoch), Some(start), None) = (fields.next(), fields.next(), fields.next()) else {
            return Err("an entry is not `<epoch> <start offset>`");
        };
        let (Ok(epoch), Ok(start)) = (epoch.parse::<i32>(), start.parse::<i64>()) else {
            return Err("an entry is not two numbers");
        };
        let ascending = entries
            .last()
            .is_none_or(|(last_epoch, last_start)| epoch > *last_epoch && start > *last_start);
        if epoch < 0 || start < 0 || !ascending {
            return Err("its entries are negative or not ascending");
        }
        entries.push((epoch, start));
    }
    if entries.len() != count {
        return Err("its entry count does not match its entries");
    }
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::test_util::temp_dir;

    fn cache_in(name: &str) -> (PathBuf, EpochCache) {
        let dir = temp_dir(name);
        std::fs::create_dir_all(&dir).unwrap();
        let cache = EpochCache::open(&dir).unwrap();
        (dir, cache)
    }

    fn cache_with(name: &str, entries: &[(i32, i64)]) -> (PathBuf, EpochCache) {
        let (dir, mut cache) = cache_in(name);
        for (epoch, start) in entries {
            cache.assign(*epoch, *start).unwrap();
        }
        assert_eq!(cache.entries(), entries);
        (dir, cache)
    }

    fn reopened(dir: &Path) -> Vec<(i32, i64)> {
        EpochCache::open(dir).unwrap().entries().to_vec()
    }

    /// Proves assign keeps only newer epochs, persists in Kafka's exact text format, and
    /// reopens to the same entries.
    #[test]
    fn assigns_newer_epochs_and_persists_them() {
        let (dir, mut cache) = cache_in("epochs-assign");
        assert_eq!(cache.latest_epoch(), None);
        assert!(
            !dir.join(EPOCH_CHECKPOINT_FILE).exists(),
            "nothing written yet"
        );
        cache.assign(0, 0).unwrap();
        cache.assign(0, 5).unwrap();
        cache.assign(3, 10).unwrap();
        cache.assign(2, 12).unwrap();
        cache.assign(3, 4).unwrap();
        cache.assign(-1, 13).unwrap();
        cache.assign(5, 20).unwrap();
        assert_eq!(cache.entries(), &[(0, 0), (3, 10), (5, 20)]);
        assert_eq!(cache.latest_epoch(), Some(5));
        let text = std::fs::read_to_string(dir.join(EPOCH_CHECKPOINT_FILE)).unwrap();
        assert_eq!(text, "0\n3\n0 0\n3 10\n5 20\n");
        assert_eq!(reopened(&dir), cache.entries());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// Proves a new epoch starting at or before existing entries replaces them (they were
    /// never followed by data of their epoch).
    #[test]
    fn assign_drops_entries_not_followed_by_data() {
        let (dir, mut cache) = cache_with("epochs-overlap", &[(0, 0), (3, 10)]);
        cache.assign(4, 10).unwrap();
        assert_eq!(cache.entries(), &[(0, 0), (4, 10)]);
        cache.assign(6, 5).unwrap();
        assert_eq!(cache.entries(), &[(0, 0), (6, 5)]);
        cache.assign(7, 0).unwrap();
        assert_eq!(cache.entries(), &[(7, 0)]);
        assert_eq!(reopened(&dir), cache.entries());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// Proves `end_offset_for` answers Kafka's `LeaderEpochFileCacheTest` cases.
    #[test]
    fn end_offset_for_answers_as_kafka() {
        let (dir, empty) = cache_in("epochs-end-empty");
        assert_eq!(empty.end_offset_for(0, 100), (-1, -1), "empty cache");
        assert_eq!(empty.end_offset_for(-1, 100), (-1, -1));
        std::fs::remove_dir_all(&dir).unwrap();

        let (dir, cache) = cache_with("epochs-end", &[(0, 10), (2, 13), (4, 17)]);
        let log_end = 20;
        assert_eq!(
            cache.end_offset_for(-1, log_end),
            (-1, -1),
            "undefined epoch"
        );
        assert_eq!(
            cache.end_offset_for(4, log_end),
            (4, 20),
            "latest epoch: log end"
        );
        assert_eq!(cache.end_offset_for(0, log_end), (0, 13));
        assert_eq!(
            cache.end_offset_for(1, log_end),
            (0, 13),
            "no exact epoch: floor"
        );
        assert_eq!(cache.end_offset_for(2, log_end), (2, 17));
        assert_eq!(cache.end_offset_for(3, log_end), (2, 17));
        assert_eq!(
            cache.end_offset_for(5, log_end),
            (-1, -1),
            "newer than latest"
        );
        std::fs::remove_dir_all(&dir).unwrap();

        let (dir, cache) = cache_with("epochs-end-first", &[(5, 11), (6, 12), (7, 13)]);
        assert_eq!(
            cache.end_offset_for(4, 20),
            (4, 11),
            "older than the first epoch: the requested epoch, ending at the first start"
        );
        assert_eq!(cache.end_offset_for(6, 20), (6, 13));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// Proves truncation from the end drops the entries starting at or after the cut, persists,
    /// and leaves the cache alone when nothing starts there.
    #[test]
    fn truncates_from_end() {
        let (dir, mut cache) = cache_with("epochs-end-cut", &[(2, 6), (3, 8), (4, 11)]);
        cache.truncate_from_end(20).unwrap();
        cache.truncate_from_end(-1).unwrap();
        assert_eq!(cache.entries(), &[(2, 6), (3, 8), (4, 11)]);
        cache.truncate_from_end(9).unwrap();
        assert_eq!(cache.entries(), &[(2, 6), (3, 8)]);
        assert_eq!(reopened(&dir), cache.entries());
        cache.truncate_from_end(8).unwrap();
        assert_eq!(cache.entries(), &[(2, 6)]);
        cache.truncate_from_end(0).unwrap();
        assert!(cache.entries().is_empty());
        assert!(reopened(&dir).is_empty());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// Proves truncation from the start keeps the latest entry at or below the new start,
    /// moved to it, and persists.
    #[test]
    fn truncates_from_start() {
        let (dir, mut cache) = cache_with("epochs-start-cut", &[(2, 6), (3, 8), (4, 11)]);
        cache.truncate_from_start(5).unwrap();
        cache.truncate_from_start(6).unwrap();
        assert_eq!(cache.entries(), &[(2, 6), (3, 8), (4, 11)], "nothing below");
        cache.truncate_from_start(9).unwrap();
        assert_eq!(cache.entries(), &[(3, 9), (4, 11)]);
        assert_eq!(reopened(&dir), cache.entries());
        cache.truncate_from_start(11).unwrap();
        assert_eq!(cache.entries(), &[(4, 11)]);
        cache.truncate_from_start(15).unwrap();
        assert_eq!(cache.entries(), &[(4, 15)]);
        assert_eq!(reopened(&dir), cache.entries());
        cache.clear().unwrap();
        assert!(reopened(&dir).is_empty());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// Proves a damaged file opens as an empty cache (which then works and rewrites it), and
    /// that a file in Kafka's format written by Kafka is read.
    #[test]
    fn damaged_file_opens_empty() {
        let (dir, _) = cache_in("epochs-damaged");
        let path = dir.join(EPOCH_CHECKPOINT_FILE);
        let damaged = [
            &b"1\n1\n0 0\n"[..],
            b"0\n2\n0 0\n",
            b"0\n1\n0\n",
            b"0\n2\n3 10\n2 12\n",
            b"0\nx\n",
            b"\xff\xfe",
            b"",
        ];
        for bytes in damaged {
            std::fs::write(&path, bytes).unwrap();
            let entries = reopened(&dir);
            assert!(entries.is_empty(), "{:?}", String::from_utf8_lossy(bytes));
        }
        std::fs::write(&path, "0\n2\n0 0\n7 42\n").unwrap();
        assert_eq!(reopened(&dir), &[(0, 0), (7, 42)]);
        std::fs::write(&path, "0\n1\n0 0 0\n").unwrap();
        let mut cache = EpochCache::open(&dir).unwrap();
        assert!(cache.entries().is_empty());
        cache.assign(1, 3).unwrap();
        assert_eq!(reopened(&dir), &[(1, 3)]);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
