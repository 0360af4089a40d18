//! Truncation of a log: a follower's divergent suffix (`truncate_to`), or the whole log when
//! its leader's starts past its end (`truncate_fully_and_start_at`), and the lock that keeps
//! reads from returning bytes a truncation removed. Part of `Log` (see `log.rs`).

use std::rc::Rc;

use glommio::sync::Permit;

use super::{replay, settle_txn_indexes, sync_directory, BatchObserver, Log};
use crate::storage::checkpoint::{self, Checkpoint};
use crate::storage::segment::{Recovery, Segment};
use crate::storage::StorageError;

impl Log {
    /// Kafka's `truncateTo`, for a follower whose log diverged from its leader's: removes every
    /// batch whose last offset is at least `offset` (a batch holding `offset` goes whole), so
    /// the log then ends at or below `offset`. A no-op when `offset` is at or past the log end;
    /// an error below the log start (`truncate_fully_and_start_at` empties a log). When the
    /// batch holding the log start goes, nothing at or above the start is left: the log is
    /// emptied and starts again at its start offset.
    ///
    /// `observer` must be fresh: it is rebuilt as `open` rebuilds one, from the newest producer
    /// snapshot at or below the new end, then every batch after it. The caller holds the append
    /// permit; reads may run meanwhile (see `read`). After an error the log must be opened
    /// again, which recovers it as after a crash at that step.
    ///
    /// The steps, each leaving a log that `open` recovers:
    /// 1. The segments after the one holding the cut are removed, newest first, then the
    ///    directory is synced: the log on disk stays a prefix of the old one, never one with
    ///    a gap, and holds at least everything below the new end.
    /// 2. That segment is cut (`Segment::cut_at`: indexes, then the `.log`, each synced) and
    ///    opened again in place of the old object. From here the log on disk is the new one.
    /// 3. Producer snapshots above the new end are removed: until then `open` after a crash
    ///    ignores and removes them itself (it restores only from a snapshot at or below the
    ///    first segment it scans, which lies below the log end).
    /// 4. The epoch cache drops the entries from the new end on; until then `open` does.
    /// 5. `log.checkpoint` gets the new end as its recovery point: until then it may name an
    ///    offset past the log end, which only makes `open` scan the last segment.
    pub async fn truncate_to(
        &self,
        offset: i64,
        observer: &mut dyn BatchObserver,
    ) -> Result<(), StorageError> {
        let (start, end) = (self.start_offset(), self.next_offset());
        if offset < start {
            return Err(StorageError::OffsetOutOfRange { offset, start, end });
        }
        if offset >= end {
            return Ok(());
        }
        let _truncating = self.begin_truncation().await;
        let segments: Vec<Rc<Segment>> = self.segments.borrow().clone();
        let holding = segments
            .partition_point(|segment| segment.base_offset <= offset)
            .checked_sub(1)
            .expect("the first segment starts at or below the log start");
        let holder = segments[holding].clone();
        let (position, new_end) = holder.truncation_point(offset).await?;
        if new_end < start {
            self.start_afresh(start).await?;
            return self.rebuild_observer(observer).await;
        }
        tracing::info!(
            "truncating {} to offset {new_end} (to {offset} asked; the log ended at {end})",
            self.dir.display()
        );
        for segment in segments[holding + 1..].iter().rev() {
            segment.delete_later(self.file_delete_delay()).await?;
            let removed = self.segments.borrow_mut().pop();
            assert!(
                removed.is_some_and(|removed| Rc::ptr_eq(&removed, segment)),
                "the segments of {} changed during a truncation",
                self.dir.display()
            );
        }
        sync_directory(&self.dir).await?;
        // Even a segment left whole is closed this way (its cut is at its size), so that it
        // has nothing in flight when it is opened again as the active segment.
        holder.cut_at(position, new_end).await?;
        let interval = self.config.get().index_interval_bytes;
        let reopened =
            Segment::open(&self.dir, holder.base_offset, interval, Recovery::Trust).await?;
        let new_end = reopened.next_offset();
        {
            let mut segments = self.segments.borrow_mut();
            let last = segments.last_mut().expect("the holding segment is left");
            assert!(
                Rc::ptr_eq(last, &holder),
                "the segments of {} changed during a truncation",
                self.dir.display()
            );
            *last = reopened;
        }
        self.remove_snapshots_above(new_end).await?;
        self.epochs.borrow_mut().truncate_from_end(new_end)?;
        let clean_offset = self.clean_offset.get().min(holder.base_offset);
        self.clean_offset.set(clean_offset);
        self.write_checkpoint(true).await?;
        self.rebuild_observer(observer).await
    }

    /// Kafka's `truncateFullyAndStartAt`, for a follower whose log ends before its leader's log
    /// start: removes every segment, producer snapshot and epoch cache entry, and starts an
    /// empty log at `offset` (log start = log end = `offset`). The caller holds the append
    /// permit; reads may run meanwhile (see `read`). After an error the log must be opened
    /// again.
    ///
    /// The steps, each leaving a log that `open` recovers:
    /// 1. Producer snapshots are removed (which only costs a longer replay).
    /// 2. `log.checkpoint` gets `offset` as log start and recovery point: the old segments,
    ///    opened now, are hidden below the start when they end at or before `offset` (the
    ///    follower's case); otherwise what lies at or above `offset` stays visible.
    /// 3. The epoch cache is emptied. A log that `open` finds with no epoch but with records
    ///    (only when `offset` is below the old end) is taken as written in epoch 0.
    /// 4. The segments are removed, oldest first (what is left is contiguous), and the
    ///    directory is synced.
    /// 5. An empty segment is created at `offset`: without it, `open` creates the same one
    ///    from the checkpoint's log start.
    pub async fn truncate_fully_and_start_at(&self, offset: i64) -> Result<(), StorageError> {
        if offset < 0 {
            let (start, end) = (self.start_offset(), self.next_offset());
            return Err(StorageError::OffsetOutOfRange { offset, start, end });
        }
        let _truncating = self.begin_truncation().await;
        self.start_afresh(offset).await
    }

    /// Deletes the producer snapshots taken above `offset` (off the reactor).
    async fn remove_snapshots_above(&self, offset: i64) -> Result<(), StorageError> {
        let _writing = self.lock_files().await;
        let dir = self.dir.clone();
        crate::storage::blocking::off_reactor(move || {
            checkpoint::remove_snapshots_above(&dir, offset)
        })
        .await
    }

    /// The body of `truncate_fully_and_start_at`, run under the truncation lock.
    async fn start_afresh(&self, offset: i64) -> Result<(), StorageError> {
        tracing::info!(
            "emptying {}: it starts again at offset {offset}",
            self.dir.display()
        );
        self.remove_snapshots_above(i64::MIN).await?;
        self.high_watermark.set(offset);
        let checkpoint = Checkpoint {
            recovery_point: offset,
            log_start_offset: offset,
            high_watermark: offset,
        };
        {
            let _writing = self.lock_files().await;
            checkpoint.write(&self.dir, true).await?;
            self.checkpointed.set(checkpoint);
        }
        self.epochs.borrow_mut().clear()?;
        let segments: Vec<Rc<Segment>> = self.segments.borrow().clone();
        for segment in &segments {
            segment.delete_later(self.file_delete_delay()).await?;
        }
        sync_directory(&self.dir).await?;
        let interval = self.config.get().index_interval_bytes;
        let fresh = Segment::open(&self.dir, offset, interval, Recovery::Scan(&mut |_| {})).await?;
        *self.segments.borrow_mut() = vec![fresh];
        self.start_offset.set(offset);
        self.clean_offset.set(offset);
        self.write_checkpoint(true).await
    }

    /// Rebuilds a fresh `observer` as `open` does: from the newest producer snapshot at or
    /// below the log end if it takes it, then every batch from the snapshot's offset on (every
    /// batch of the log without one).
    async fn rebuild_observer(&self, observer: &mut dyn BatchObserver) -> Result<(), StorageError> {
        let observe_from = match checkpoint::latest_snapshot(&self.dir, self.next_offset())? {
            Some((offset, bytes)) if observer.restore(&bytes) => offset,
            _ => i64::MIN,
        };
        let segments: Vec<Rc<Segment>> = self.segments.borrow().clone();
        for segment in &segments {
            replay(segment, observe_from, observer).await?;
        }
        settle_txn_indexes(&segments, observer).await
    }

    /// Starts a truncation: reads wait until the returned permit drops, and reads running
    /// now start over when they end.
    async fn begin_truncation(&self) -> Permit<'_> {
        let permit = self
            .truncation_lock
            .acquire_permit(1)
            .await
            .expect("the truncation lock is never closed");
        self.truncations.set(self.truncations.get() + 1);
        self.changed.set(true);
        permit
    }

    /// Waits until no truncation runs, then returns how many have started so far.
    pub(super) async fn settled(&self) -> u64 {
        if self.truncation_lock.available() == 0 {
            let permit = self.truncation_lock.acquire_permit(1).await;
            drop(permit.expect("the truncation lock is never closed"));
        }
        self.truncations.get()
    }
}
