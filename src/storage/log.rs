//! The log of one partition replica: an ordered list of segments, the last one active.
//!
//! Invariants: segments are contiguous and ordered by base offset; only the active (last) segment
//! is appended to; `next_offset` (the log end offset) is the active segment's next offset;
//! `start_offset` (the log start) is at least the first segment's base offset and at most the
//! log end, and moves forward only (DeleteRecords, retention) unless the log is emptied to start
//! again elsewhere (`truncate_fully_and_start_at`). The caller (the partition) serialises
//! appends, retention, truncation and compaction's segment swaps; reads may run at any time and
//! work on a copy of the segment list, so a segment replaced under a read stays readable through
//! its open file until the read lets go.
//!
//! Recovery is bounded by what was not yet durable: `log.checkpoint` holds the recovery point
//! (everything below it was fsynced), and after a clean shutdown every segment is trusted. Only
//! segments that reach past the recovery point are scanned batch by batch; the others load their
//! indexes and verify what follows the last index entry. The batch observer (idempotent producer
//! state) is restored from the newest snapshot below the first scanned segment and replayed from
//! there.
//!
//! Compaction keeps offsets stable: segments may shrink, empty or merge with their successors,
//! but the first segment's base offset and the log end never change. After a crash during a
//! swap, recovery finds at worst a merged segment renamed over its group's first `.log` while
//! later members of the group are still there; they overlap the merged segment's offsets and
//! are deleted on open, as are leftover `.log.cleaned` files.
//!
//! Replication: the leader epoch cache (`epoch_cache`, in `leader-epoch-checkpoint`) holds the
//! first offset of every epoch that appended; its entries start within `[start_offset, log
//! end]`, at the end only for an epoch a leader began without appending yet (open drops those,
//! as Kafka does, and fits the cache to the log). Truncation (`truncate_to`: a follower drops
//! what diverges from its leader; `truncate_fully_and_start_at`) is the only way the log end
//! moves back. It never runs with an append, retention or a compaction swap (the caller's
//! append permit), but reads may: reads wait while one runs and a read it overlapped starts
//! over, so no read returns bytes that a finished truncation removed. A compaction planned
//! before a truncation is not installed. A crash at any step of a truncation leaves files that
//! `open` recovers to a valid log (the steps and what each leaves are listed on each function).

use std::cell::{Cell, RefCell};
use std::path::{Path, PathBuf};
use std::rc::Rc;

use bytes::Bytes;
use glommio::sync::Semaphore;

use super::batch::{AbortedTxn, BatchHeader};
use super::checkpoint::{self, Checkpoint};
use super::cleaner::{self, CleanedGroup, CompactionStats, CLEANED_EXTENSION};
use super::epoch_cache::EpochCache;
use super::segment::{Recovery, Segment, DELETED_SUFFIX};
use super::txn_index;
use super::{segment_file_name, StorageError};

/// Per-log settings taken from broker and topic configuration (Kafka's names in comments).
#[derive(Clone, Copy, Debug)]
pub struct LogConfig {
    /// `segment.bytes` / `log.segment.bytes`.
    pub segment_bytes_max: u64,
    /// `index.interval.bytes` / `log.index.interval.bytes`.
    pub index_interval_bytes: u64,
    /// `segment.ms` / `log.roll.ms`: roll the active segment once its first batch is this old.
    pub segment_ms: i64,
    /// `retention.ms` / `log.retention.ms`; negative keeps everything.
    pub retention_ms: i64,
    /// `retention.bytes` / `log.retention.bytes`; negative keeps everything.
    pub retention_bytes: i64,
    /// `flush.messages` / `log.flush.interval.messages`: fsync after this many messages.
    pub flush_messages: i64,
    /// `flush.ms` / `log.flush.interval.ms`: fsync data older than this.
    pub flush_ms: i64,
    /// `file.delete.delay.ms` / `log.segment.delete.delay.ms`: how long a deleted segment's
    /// files (renamed `.deleted`) and a deleted partition's directory (renamed `-delete`) stay.
    pub file_delete_delay_ms: i64,
}

impl Default for LogConfig {
    /// Kafka's defaults.
    fn default() -> LogConfig {
        LogConfig {
            segment_bytes_max: 1 << 30,
            index_interval_bytes: 4096,
            segment_ms: 7 * 24 * 60 * 60 * 1000,
            retention_ms: 7 * 24 * 60 * 60 * 1000,
            retention_bytes: -1,
            flush_messages: i64::MAX,
            flush_ms: i64::MAX,
            file_delete_delay_ms: 60_000,
        }
    }
}

/// Sees every batch of a log when it is opened, to rebuild state kept beside the log.
pub trait BatchObserver {
    /// Replaces the state by a snapshot's; false when it cannot be read (then every batch of
    /// the log is observed instead).
    fn restore(&mut self, snapshot: &[u8]) -> bool;
    /// Sees a batch; returns the transaction it ended if it is an ABORT marker, which the log
    /// keeps in the marker segment's transaction index.
    fn observe(&mut self, header: &BatchHeader) -> Option<AbortedTxn>;
    /// Aborted transactions the restored snapshot carried (snapshots written before segments
    /// had transaction indexes), taken once for the indexes.
    fn take_restored_aborted(&mut self) -> Vec<AbortedTxn> {
        Vec::new()
    }
}

/// A plain closure observes every batch and has no snapshots.
impl<F: FnMut(&BatchHeader)> BatchObserver for F {
    fn restore(&mut self, _snapshot: &[u8]) -> bool {
        false
    }

    fn observe(&mut self, header: &BatchHeader) -> Option<AbortedTxn> {
        self(header);
        None
    }
}

pub struct Log {
    dir: PathBuf,
    config: Cell<LogConfig>,
    segments: RefCell<Vec<Rc<Segment>>>,
    start_offset: Cell<i64>,
    /// The last recovery point written to `log.checkpoint`.
    checkpointed: Cell<Checkpoint>,
    /// The high watermark as the partition last reported it, for the checkpoint.
    high_watermark: Cell<i64>,
    /// Something was appended or deleted since the log was opened or last closed.
    changed: Cell<bool>,
    /// Segments based below this offset have been compacted since they were rolled (Kafka's
    /// cleaner checkpoint, kept in memory: after a restart the whole log counts as dirty).
    clean_offset: Cell<i64>,
    /// The leader epoch cache.
    epochs: RefCell<EpochCache>,
    /// Truncations started so far: a read during which it changed starts over, and a
    /// compaction planned before it changed is dropped.
    truncations: Cell<u64>,
    /// Held by a truncation while it runs (one permit); reads wait for it.
    truncation_lock: Semaphore,
    /// Held while `log.checkpoint` or a snapshot is written (off the reactor, so writes of one
    /// log could otherwise overlap on their temporary files).
    files_lock: Semaphore,
}

/// Cleaned copies of a log's inactive segments, written but not yet swapped in.
pub struct CompactionPlan {
    groups: Vec<CleanedGroup>,
    /// The active segment's base offset when the plan was made: everything below it is clean
    /// once the plan is installed.
    clean_offset: i64,
    /// The log's truncation count when the plan was made: a truncation since may have removed
    /// records whose keys made the plan drop older values, so the plan is not installed.
    truncations: u64,
}

impl Log {
    /// Opens the log in `dir`, creating the directory and a first segment when empty. After a
    /// clean shutdown (`clean`) every segment is trusted; otherwise the segments reaching past
    /// the recovery point are scanned and cut after their last valid batch.
    pub async fn open(
        dir: &Path,
        config: LogConfig,
        clean: bool,
        observer: &mut dyn BatchObserver,
    ) -> Result<Log, StorageError> {
        std::fs::create_dir_all(dir).map_err(|error| StorageError::io(dir, error))?;
        remove_leftover_cleaned(dir)?;
        let checkpoint = Checkpoint::read(dir);
        let mut base_offsets = segment_base_offsets(dir)?;
        if base_offsets.is_empty() {
            base_offsets.push(checkpoint.log_start_offset.max(0));
        }
        // The first segment that must be scanned: the one holding the recovery point.
        let first_scanned = if clean {
            usize::MAX
        } else {
            base_offsets
                .partition_point(|base| *base <= checkpoint.recovery_point)
                .saturating_sub(1)
        };
        let replay_from = match base_offsets.get(first_scanned) {
            Some(base) => *base,
            None => i64::MAX,
        };
        let snapshot = checkpoint::latest_snapshot(dir, replay_from)?;
        let observe_from = match snapshot {
            Some((offset, bytes)) if observer.restore(&bytes) => offset,
            _ => i64::MIN,
        };
        let mut segments: Vec<Rc<Segment>> = Vec::with_capacity(base_offsets.len());
        for (position, base_offset) in base_offsets.iter().copied().enumerate() {
            if let Some(previous) = segments.last() {
                if base_offset < previous.next_offset() {
                    remove_merged_leftover(dir, base_offset, previous.base_offset)?;
                    continue;
                }
            }
            let interval = config.index_interval_bytes;
            let segment = if position < first_scanned {
                let segment = Segment::open(dir, base_offset, interval, Recovery::Trust).await?;
                replay(&segment, observe_from, observer).await?;
                segment
            } else {
                let mut aborted = Vec::new();
                let mut observe = |header: &BatchHeader| {
                    if header.base_offset >= observe_from {
                        aborted.extend(observer.observe(header));
                    }
                };
                let segment =
                    Segment::open(dir, base_offset, interval, Recovery::Scan(&mut observe)).await?;
                aborted
                    .into_iter()
                    .for_each(|txn| segment.txn_index().add(txn));
                segment
            };
            segments.push(segment);
        }
        settle_txn_indexes(&segments, observer).await?;
        if let Some((_, inactive)) = segments.split_last() {
            inactive.iter().for_each(|segment| segment.release_tail());
        }
        let end = segments.last().expect("at least one segment").next_offset();
        checkpoint::remove_snapshots_above(dir, end)?;
        let start_offset = checkpoint
            .log_start_offset
            .clamp(segments[0].base_offset, end);
        let epochs = open_epoch_cache(dir, start_offset, end)?;
        let log = Log {
            dir: dir.to_path_buf(),
            config: Cell::new(config),
            clean_offset: Cell::new(segments[0].base_offset),
            segments: RefCell::new(segments),
            start_offset: Cell::new(start_offset),
            high_watermark: Cell::new(checkpoint.high_watermark.clamp(start_offset, end)),
            checkpointed: Cell::new(checkpoint),
            changed: Cell::new(false),
            epochs: RefCell::new(epochs),
            truncations: Cell::new(0),
            truncation_lock: Semaphore::new(1),
            files_lock: Semaphore::new(1),
        };
        log.write_checkpoint(false).await?;
        Ok(log)
    }

    /// The high watermark the checkpoint held at open, or last reported: at most the true one.
    pub fn checkpointed_high_watermark(&self) -> i64 {
        self.high_watermark.get()
    }

    /// Takes the partition's high watermark for the next checkpoint (written at rolls, moves
    /// of the recovery point and close; never on its own).
    pub fn set_high_watermark(&self, offset: i64) {
        self.high_watermark.set(offset);
    }

    /// The log end offset: the offset the next record will get.
    pub fn next_offset(&self) -> i64 {
        self.active().next_offset()
    }

    /// Bytes of every segment, as they will be on disk.
    pub fn size_bytes(&self) -> u64 {
        self.segments
            .borrow()
            .iter()
            .map(|segment| segment.size())
            .sum()
    }

    /// The first offset still in the log.
    pub fn start_offset(&self) -> i64 {
        self.start_offset.get()
    }

    /// The base offset of the active segment.
    pub fn active_base_offset(&self) -> i64 {
        self.active().base_offset
    }

    /// Everything below this offset is durable.
    pub fn synced_offset(&self) -> i64 {
        let segments = self.segments.borrow();
        let active = segments.last().expect("a log has at least one segment");
        active.synced_offset().max(active.base_offset)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn config(&self) -> LogConfig {
        self.config.get()
    }

    /// Takes new settings (a topic's configs changed). Segments already open keep their index
    /// interval; everything else applies from the next append, roll or retention pass.
    pub fn set_config(&self, config: LogConfig) {
        self.config.set(config)
    }

    /// Assigns offsets from the log end to the validated `batches`, then appends them (rolling
    /// first when the active segment is full or older than `segment.ms`). Returns the base
    /// offset given to the first batch. The batches are stamped with `leader_epoch`, which the
    /// epoch cache records as starting at the first of them when it is a new epoch.
    pub async fn append(
        &self,
        batches: impl AsRef<[u8]>,
        headers: &mut [BatchHeader],
        leader_epoch: i32,
    ) -> Result<i64, StorageError> {
        let base_offset = self.next_offset();
        let mut next = base_offset;
        // The bytes are not changed here: the segment's copy takes each header's offset and
        // epoch (`Segment::append`), so the request's buffer is copied once, into the tail.
        for header in headers.iter_mut() {
            header.base_offset = next;
            header.leader_epoch = leader_epoch;
            next = header.next_offset();
        }
        // Recorded before the data, as Kafka does: an entry whose data a crash lost starts at
        // the log end and is dropped when the log opens.
        self.epochs.borrow_mut().assign(leader_epoch, base_offset)?;
        self.append_assigned(batches.as_ref(), headers).await?;
        Ok(base_offset)
    }

    /// Appends validated batches that already carry their offsets and leader epochs, as a
    /// follower copies them from its leader. They must continue the log: the first at or after
    /// the log end, each next one at or after where the previous ends (a compacted leader's
    /// log has gaps); otherwise nothing is written and the error is `NonContiguous`. Every batch of an epoch newer than the latest one held starts that
    /// epoch in the epoch cache. Rolls as `append` does.
    pub async fn append_replicated(
        &self,
        batches: Vec<u8>,
        headers: &[BatchHeader],
    ) -> Result<(), StorageError> {
        let mut expected = self.next_offset();
        for header in headers {
            if header.base_offset < expected {
                return Err(StorageError::NonContiguous {
                    expected,
                    received: header.base_offset,
                });
            }
            expected = header.next_offset();
        }
        if headers.is_empty() {
            return Ok(());
        }
        {
            let mut epochs = self.epochs.borrow_mut();
            for header in headers {
                epochs.assign(header.leader_epoch, header.base_offset)?;
            }
        }
        self.append_assigned(&batches, headers).await
    }

    /// Appends batches whose offsets continue the log, rolling first when the active segment
    /// is full or older than `segment.ms`, and between batches wherever the next one's offsets
    /// would lie more than `i32::MAX` past the segment's base (Kafka's rule: index entries hold
    /// offsets relative to the base). A follower's batches from a compacted leader may jump that
    /// far; a client's cannot, its offsets being assigned here from the log end.
    async fn append_assigned(
        &self,
        batches: &[u8],
        headers: &[BatchHeader],
    ) -> Result<(), StorageError> {
        self.changed.set(true);
        let mut first = 0;
        while first < headers.len() {
            let base = self.active().base_offset;
            let mut end = run_end(headers, first, base);
            let bytes = run_bytes(headers, first, end);
            if end == first || self.should_roll(bytes, now_ms()) {
                self.roll(headers[first].base_offset).await?;
                end = run_end(headers, first, headers[first].base_offset);
            }
            if first == 0 && end == headers.len() {
                return self.active().append(batches, headers).await;
            }
            // Part of the batches: positions rebased to the part.
            let start = headers[first].position;
            let last = &headers[end - 1];
            let part: Vec<BatchHeader> = headers[first..end]
                .iter()
                .map(|header| BatchHeader {
                    position: header.position - start,
                    ..*header
                })
                .collect();
            self.active()
                .append(&batches[start..last.position + last.size], &part)
                .await?;
            first = end;
        }
        Ok(())
    }

    /// The newest leader epoch that appended to (or was assigned by a leader of) this log.
    pub fn latest_epoch(&self) -> Option<i32> {
        self.epochs.borrow().latest_epoch()
    }

    /// Records that `epoch` starts at `start_offset`: a new leader does it at its log end
    /// before any append, so that followers asking for the previous epoch learn its end. A
    /// no-op unless `epoch` is newer than the latest held.
    pub fn assign_epoch(&self, epoch: i32, start_offset: i64) -> Result<(), StorageError> {
        self.epochs.borrow_mut().assign(epoch, start_offset)
    }

    /// Drops the epoch cache entries starting at or after `offset`, leaving the log as it is:
    /// a follower truncating to its log end still ends there the epochs it started as a
    /// leader without appending (`truncate_to` does this for what it cuts).
    pub fn truncate_epochs_from(&self, offset: i64) -> Result<(), StorageError> {
        self.epochs.borrow_mut().truncate_from_end(offset)
    }

    /// The answer to OffsetsForLeaderEpoch for `epoch`: (epoch, end offset) as Kafka's
    /// `endOffsetFor` gives it from the epoch cache and the log end; (-1, -1) when unknown.
    pub fn end_offset_for_epoch(&self, epoch: i32) -> (i32, i64) {
        self.epochs
            .borrow()
            .end_offset_for(epoch, self.next_offset())
    }

    fn should_roll(&self, incoming_bytes: u64, now_ms: i64) -> bool {
        let active = self.active();
        if active.size() == 0 {
            return false;
        }
        let full = active.size() + incoming_bytes > self.config.get().segment_bytes_max;
        let old = active
            .first_timestamp()
            .is_some_and(|first| now_ms.saturating_sub(first) > self.config.get().segment_ms);
        full || old
    }

    /// Reads whole batches from `offset`, about `max_bytes` of them. Reading at the log end
    /// returns no bytes; outside `[start, end]` is an error. A read never returns bytes that a
    /// truncation which returned already removed: it waits for a running truncation and
    /// starts over if one began while it read.
    pub async fn read(&self, offset: i64, max_bytes: usize) -> Result<Bytes, StorageError> {
        loop {
            let truncations = self.settled().await;
            let read = self.read_segments(offset, max_bytes).await;
            if self.truncations.get() == truncations {
                return read;
            }
        }
    }

    async fn read_segments(&self, offset: i64, max_bytes: usize) -> Result<Bytes, StorageError> {
        let (start, end) = (self.start_offset(), self.next_offset());
        if offset < start || offset > end {
            return Err(StorageError::OffsetOutOfRange { offset, start, end });
        }
        let segments: Vec<Rc<Segment>> = self.segments.borrow().clone();
        let first = segments
            .partition_point(|segment| segment.base_offset <= offset)
            .saturating_sub(1);
        for segment in &segments[first..] {
            let bytes = segment.read(offset, max_bytes).await?;
            if !bytes.is_empty() {
                return Ok(bytes);
            }
        }
        Ok(Bytes::new())
    }

    /// The first batch at or after the log start whose max timestamp is at least `timestamp`:
    /// its base offset (never below the log start) and max timestamp.
    pub async fn offset_for_timestamp(
        &self,
        timestamp: i64,
    ) -> Result<Option<(i64, i64)>, StorageError> {
        loop {
            let truncations = self.settled().await;
            let found = self.offset_for_timestamp_in_segments(timestamp).await;
            if self.truncations.get() == truncations {
                return found;
            }
        }
    }

    async fn offset_for_timestamp_in_segments(
        &self,
        timestamp: i64,
    ) -> Result<Option<(i64, i64)>, StorageError> {
        let segments: Vec<Rc<Segment>> = self.segments.borrow().clone();
        let start = self.start_offset();
        for segment in segments {
            if segment.next_offset() <= start {
                continue;
            }
            if let Some((offset, found)) = segment.offset_for_timestamp(timestamp).await? {
                if offset.max(start) < segment.next_offset() {
                    return Ok(Some((offset.max(start), found)));
                }
            }
        }
        Ok(None)
    }

    /// The record with the largest timestamp at or after the log start (the first such
    /// record), as (offset, timestamp): Kafka's ListOffsets MAX_TIMESTAMP. `None` when empty.
    pub async fn max_timestamp(&self) -> Result<Option<(i64, i64)>, StorageError> {
        loop {
            let truncations = self.settled().await;
            let found = self.max_timestamp_in_segments().await;
            if self.truncations.get() == truncations {
                return found;
            }
        }
    }

    async fn max_timestamp_in_segments(&self) -> Result<Option<(i64, i64)>, StorageError> {
        let segments: Vec<Rc<Segment>> = self.segments.borrow().clone();
        let start = self.start_offset();
        let mut best: Option<&Rc<Segment>> = None;
        for segment in segments
            .iter()
            .filter(|segment| segment.next_offset() > start)
        {
            if best.is_none_or(|best| segment.max_timestamp() > best.max_timestamp()) {
                best = Some(segment);
            }
        }
        match best {
            Some(segment) if segment.max_timestamp() >= 0 => {
                segment.offset_for_timestamp(segment.max_timestamp()).await
            }
            _ => Ok(None),
        }
    }

    /// Makes everything appended so far durable; then records the recovery point when it has
    /// moved to another segment than the one last recorded (cheap enough to do on every roll,
    /// rare enough not to cost a file write per fsync).
    pub async fn flush(&self) -> Result<(), StorageError> {
        self.active().flush().await?;
        if self.active_base_offset() > self.checkpointed.get().recovery_point {
            self.write_checkpoint(false).await?;
        }
        Ok(())
    }

    /// Writes appended bytes still only in memory to disk, without an fsync.
    pub async fn write_pending(&self) -> Result<(), StorageError> {
        self.active().write_pending().await
    }

    /// The offset below which every batch is written to the file: segments before the active
    /// one were flushed when they rolled.
    pub fn written_offset(&self) -> i64 {
        self.active().written_offset()
    }

    /// Returns once every batch below `offset` is written to the file (see
    /// `Segment::write_through`); a roll meanwhile wrote the segment it was in.
    pub async fn write_through(&self, offset: i64) -> Result<(), StorageError> {
        self.active().write_through(offset).await
    }

    /// Flushes and closes the active segment and writes the snapshot and checkpoint, for a
    /// clean shutdown.
    /// A log untouched since it was opened is left as it is: its files already are what a
    /// clean start needs, and a shard with thousands of idle partitions stops at once.
    pub async fn close(&self, snapshot: &[u8]) -> Result<(), StorageError> {
        if !self.changed.replace(false) {
            return Ok(());
        }
        self.active().close().await?;
        self.write_snapshot(self.next_offset(), snapshot).await?;
        self.write_checkpoint(true).await
    }

    /// Records the recovery point (the log end's durable part) and the log start, as they are
    /// once earlier checkpoint writes of this log are done.
    pub(super) async fn write_checkpoint(&self, sync_dir: bool) -> Result<(), StorageError> {
        let _writing = self.lock_files().await;
        let checkpoint = Checkpoint {
            recovery_point: self.synced_offset(),
            log_start_offset: self.start_offset(),
            high_watermark: self.high_watermark.get().min(self.next_offset()),
        };
        if checkpoint != self.checkpointed.get() || sync_dir {
            checkpoint.write(&self.dir, sync_dir).await?;
            self.checkpointed.set(checkpoint);
        }
        Ok(())
    }

    /// Writes a snapshot of the observer's state at the active segment's base (taken by the
    /// caller right after a roll, before recording the batches of the append that rolled).
    pub async fn write_snapshot(&self, offset: i64, snapshot: &[u8]) -> Result<(), StorageError> {
        let _writing = self.lock_files().await;
        checkpoint::write_snapshot(&self.dir, offset, snapshot.to_vec()).await
    }

    pub(super) async fn lock_files(&self) -> glommio::sync::Permit<'_> {
        self.files_lock
            .acquire_permit(1)
            .await
            .expect("the files lock is never closed")
    }

    /// Whether compaction is due: some inactive segment was rolled since the last compaction,
    /// and such segments make up at least `min_dirty_ratio` of the inactive bytes (Kafka's
    /// `min.cleanable.dirty.ratio`, measured in whole segments).
    pub fn needs_compaction(&self, min_dirty_ratio: f64) -> bool {
        let segments = self.segments.borrow();
        let Some((_, inactive)) = segments.split_last() else {
            return false;
        };
        let total: u64 = inactive.iter().map(|segment| segment.size()).sum();
        let dirty: u64 = inactive
            .iter()
            .filter(|segment| segment.base_offset >= self.clean_offset.get())
            .map(|segment| segment.size())
            .sum();
        dirty > 0 && dirty as f64 >= min_dirty_ratio * total as f64
    }

    /// Compacts the inactive segments in one go, for tests; the partition uses
    /// `plan_compaction` and `install_compaction` to let appends through meanwhile.
    #[cfg(test)]
    pub async fn compact(
        &self,
        delete_retention_ms: i64,
        now_ms: i64,
    ) -> Result<CompactionStats, StorageError> {
        let plan = self
            .plan_compaction(delete_retention_ms, now_ms, i64::MAX)
            .await?;
        self.install_compaction(plan).await
    }

    /// Reads the whole log into a key map and writes cleaned copies of the inactive segments,
    /// merged into groups of at most `segment.bytes`. Tombstones written before
    /// `now_ms - delete_retention_ms` are dropped. Appends may continue meanwhile.
    pub async fn plan_compaction(
        &self,
        delete_retention_ms: i64,
        now_ms: i64,
        committed_end: i64,
    ) -> Result<CompactionPlan, StorageError> {
        // Only durable, committed records (below `committed_end`, the last stable offset: a
        // follower may still truncate what is above the high watermark, and an open
        // transaction may still abort) may make older values of their keys go: flush first,
        // and leave whatever is appended meanwhile out of the map. Records of aborted
        // transactions (the segments' transaction indexes) are dropped.
        self.active().flush().await?;
        let truncations = self.truncations.get();
        let durable_end = self.synced_offset().min(committed_end);
        let segments: Vec<Rc<Segment>> = self.segments.borrow().clone();
        let clean_offset = segments.last().map_or(0, |active| active.base_offset);
        let aborted = segments
            .iter()
            .flat_map(|segment| segment.txn_index().entries())
            .collect();
        let map = cleaner::build_key_map(&segments, durable_end, aborted).await?;
        let horizon_ms = now_ms.saturating_sub(delete_retention_ms);
        let groups = cleaner::write_groups(
            &self.dir,
            &segments,
            &map,
            horizon_ms,
            self.config.get().segment_bytes_max,
        )
        .await?;
        Ok(CompactionPlan {
            groups,
            clean_offset,
            truncations,
        })
    }

    /// Swaps the cleaned segments of `plan` in. The caller holds off appends meanwhile.
    pub async fn install_compaction(
        &self,
        plan: CompactionPlan,
    ) -> Result<CompactionStats, StorageError> {
        let mut stats = CompactionStats::default();
        if plan.truncations != self.truncations.get() {
            tracing::info!(
                "dropping a compaction of {} planned before a truncation",
                self.dir.display()
            );
            plan.groups
                .iter()
                .for_each(|group| remove_cleaned(&group.cleaned_path));
            return Ok(stats);
        }
        let mut groups = plan.groups.into_iter();
        while let Some(group) = groups.next() {
            if !group.changed || self.position_of(&group.segments).is_none() {
                remove_cleaned(&group.cleaned_path);
            } else if let Err(error) = self.swap(&group).await {
                remove_cleaned(&group.cleaned_path);
                groups.for_each(|group| remove_cleaned(&group.cleaned_path));
                return Err(error);
            }
            stats.add(&group.stats);
        }
        self.clean_offset.set(plan.clean_offset);
        self.changed.set(true);
        Ok(stats)
    }

    /// Replaces a group of segments by its cleaned copy: rename over the first `.log` (atomic),
    /// reopen it (which rebuilds its indexes), delete the others, then update the list.
    async fn swap(&self, group: &CleanedGroup) -> Result<(), StorageError> {
        let first = &group.segments[0];
        // The merged segment's transaction index, written first over the first segment's: a
        // crash before the rename leaves it beside the first `.log`, whose open drops the
        // entries of the later members (their markers lie past its end; they keep their own).
        let aborted = group
            .segments
            .iter()
            .flat_map(|segment| segment.txn_index().entries())
            .collect();
        first.txn_index().close();
        txn_index::write_file(first.txn_index().path().to_path_buf(), aborted).await?;
        std::fs::rename(&group.cleaned_path, first.log_path())
            .map_err(|error| StorageError::io(first.log_path(), error))?;
        sync_directory(&self.dir).await?;
        let cleaned = Segment::open(
            &self.dir,
            first.base_offset,
            self.config.get().index_interval_bytes,
            Recovery::Scan(&mut |_| {}),
        )
        .await?;
        cleaned.release_tail();
        for merged in &group.segments[1..] {
            merged.delete_later(self.file_delete_delay()).await?;
        }
        let index = self
            .position_of(&group.segments)
            .expect("segments are swapped only under the append permit");
        self.segments.borrow_mut().splice(
            index..index + group.segments.len(),
            std::iter::once(cleaned),
        );
        Ok(())
    }

    /// Where `run` sits, in order, among the inactive segments; `None` if it no longer does
    /// (the log was removed meanwhile).
    fn position_of(&self, run: &[Rc<Segment>]) -> Option<usize> {
        let segments = self.segments.borrow();
        let inactive = &segments[..segments.len().saturating_sub(1)];
        let start = inactive
            .iter()
            .position(|segment| Rc::ptr_eq(segment, &run[0]))?;
        let candidates = inactive.get(start..start + run.len())?;
        let same = candidates
            .iter()
            .zip(run)
            .all(|(held, planned)| Rc::ptr_eq(held, planned));
        same.then_some(start)
    }

    fn active(&self) -> Rc<Segment> {
        self.segments
            .borrow()
            .last()
            .expect("a log has at least one segment")
            .clone()
    }

    /// Starts a new active segment at `base_offset`. An empty active segment (a follower whose
    /// leader's next batch lies beyond what it can index) is replaced rather than kept.
    async fn roll(&self, base_offset: i64) -> Result<(), StorageError> {
        let previous = self.active();
        let empty = previous.size() == 0;
        if empty && base_offset == previous.base_offset {
            return Ok(());
        }
        if !empty {
            previous.close().await?;
        }
        let segment = Segment::open(
            &self.dir,
            base_offset,
            self.config.get().index_interval_bytes,
            Recovery::Scan(&mut |_| {}),
        )
        .await?;
        tracing::debug!(
            "rolled {} to a new segment at offset {base_offset}",
            self.dir.display()
        );
        if empty {
            *self
                .segments
                .borrow_mut()
                .last_mut()
                .expect("a log has at least one segment") = segment;
            previous.remove().await?;
        } else {
            self.segments.borrow_mut().push(segment);
        }
        self.write_checkpoint(false).await
    }
}

/// The end of the run of batches from `first` that a segment based at `base` can index: each
/// batch's last offset at most `i32::MAX` past the base.
fn run_end(headers: &[BatchHeader], first: usize, base: i64) -> usize {
    let fits = |header: &BatchHeader| header.last_offset() - base <= i64::from(i32::MAX);
    first
        + headers[first..]
            .iter()
            .take_while(|header| fits(header))
            .count()
}

fn run_bytes(headers: &[BatchHeader], first: usize, end: usize) -> u64 {
    headers[first..end]
        .iter()
        .map(|header| header.size as u64)
        .sum()
}

/// Loads the leader epoch cache of the log in `dir` and fits it to the log `[start, end)`:
/// entries starting at or past the end go (a crash lost the data they announced, or came in
/// the middle of a truncation; or a leader began an epoch without appending, which Kafka also
/// forgets on restart), the latest one starting at or below the start moves to it, and a log
/// written before epochs were recorded, whose batches all carry epoch 0, gets epoch 0 from its
/// start.
fn open_epoch_cache(dir: &Path, start: i64, end: i64) -> Result<EpochCache, StorageError> {
    let mut epochs = EpochCache::open(dir)?;
    epochs.truncate_from_end(end)?;
    if epochs.entries().is_empty() && start < end {
        epochs.assign(0, start)?;
    }
    epochs.truncate_from_start(start)?;
    Ok(epochs)
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_millis() as i64)
}

/// Deletes `*.log.cleaned` files: cleaned segments whose swap a crash interrupted before their
/// rename, so the segments they came from are still in place.
fn remove_leftover_cleaned(dir: &Path) -> Result<(), StorageError> {
    let entries = std::fs::read_dir(dir).map_err(|error| StorageError::io(dir, error))?;
    let suffix = format!(".log.{CLEANED_EXTENSION}");
    for entry in entries {
        let entry = entry.map_err(|error| StorageError::io(dir, error))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let why = if name.ends_with(&suffix) {
            "left over from an interrupted compaction"
        } else if name.ends_with(DELETED_SUFFIX) {
            "deleted before the broker stopped (file.delete.delay.ms)"
        } else {
            continue;
        };
        tracing::info!("removing {}: {why}", entry.path().display());
        std::fs::remove_file(entry.path())
            .map_err(|error| StorageError::io(entry.path(), error))?;
    }
    Ok(())
}

/// Kafka's suffix for a deleted partition's directory awaiting `file.delete.delay.ms`.
pub const DELETED_DIR_SUFFIX: &str = "-delete";

/// The name partition directory `dir` takes once deleted: `<name>.<unique id>-delete`, which
/// frees its name at once and which `remove_deleted_dirs` finishes at the next start.
pub fn deletion_target(dir: &Path) -> PathBuf {
    let name = dir
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_default();
    let unique: String = crate::controller::random_uuid()
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect();
    dir.with_file_name(format!("{name}.{unique}{DELETED_DIR_SUFFIX}"))
}

/// Removes partition directories that were deleted (renamed `-delete`) before the broker
/// stopped, as Kafka's log manager does at start-up. A partition directory's name ends in its
/// partition number, so the suffix cannot be mistaken for a live one.
pub fn remove_deleted_dirs(log_dir: &Path) {
    let Ok(entries) = std::fs::read_dir(log_dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.ends_with(DELETED_DIR_SUFFIX) && entry.path().is_dir() {
            match std::fs::remove_dir_all(entry.path()) {
                Ok(()) => tracing::info!("removed {}: a deleted partition", entry.path().display()),
                Err(error) => {
                    tracing::warn!("cannot remove {}: {error}", entry.path().display())
                }
            }
        }
    }
}

/// Deletes the segment at `base_offset`, which the segment at `merged_into` already covers: a
/// crash came between renaming a merged segment in and deleting the segments it replaced.
fn remove_merged_leftover(
    dir: &Path,
    base_offset: i64,
    merged_into: i64,
) -> Result<(), StorageError> {
    tracing::warn!(
        "removing segment {base_offset} of {}: compaction merged it into segment {merged_into}",
        dir.display()
    );
    for extension in ["log", "index", "timeindex", "txnindex"] {
        let path = dir.join(segment_file_name(base_offset, extension));
        match std::fs::remove_file(&path) {
            Err(error) if error.kind() != std::io::ErrorKind::NotFound => {
                return Err(StorageError::io(path, error))
            }
            _ => {}
        }
    }
    Ok(())
}

fn remove_cleaned(path: &Path) {
    if let Err(error) = std::fs::remove_file(path) {
        if error.kind() != std::io::ErrorKind::NotFound {
            tracing::warn!("cannot remove {}: {error}", path.display());
        }
    }
}

/// Makes a rename in `dir` durable (off the reactor).
async fn sync_directory(dir: &Path) -> Result<(), StorageError> {
    let dir = dir.to_path_buf();
    super::blocking::off_reactor(move || {
        std::fs::File::open(&dir)
            .and_then(|directory| directory.sync_all())
            .map_err(|error| StorageError::io(&dir, error))
    })
    .await
}

/// Base offsets of the `.log` files in `dir`, ascending.
fn segment_base_offsets(dir: &Path) -> Result<Vec<i64>, StorageError> {
    let entries = std::fs::read_dir(dir).map_err(|error| StorageError::io(dir, error))?;
    let mut base_offsets = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|error| StorageError::io(dir, error))?;
        let name = entry.file_name();
        let Some(stem) = name.to_str().and_then(|name| name.strip_suffix(".log")) else {
            continue;
        };
        if let Ok(base_offset) = stem.parse::<i64>() {
            base_offsets.push(base_offset);
        }
    }
    base_offsets.sort_unstable();
    Ok(base_offsets)
}

#[path = "log_retention.rs"]
mod retention;
#[path = "log_txn_index.rs"]
mod txn_indexes;
use txn_indexes::{replay, settle_txn_indexes};
#[path = "log_truncation.rs"]
mod truncation;

#[cfg(test)]
#[path = "log_unit_tests.rs"]
mod tests;

#[cfg(test)]
#[path = "log_replication_tests.rs"]
mod replication_tests;
