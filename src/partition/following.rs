//! A follower replica's side of a partition: appending what its leader sent, dropping answers
//! that no longer apply, and truncating a diverged suffix (decided by `replication::follower`,
//! done here under the append permit).

use super::{FetchedAt, Partition, PartitionError, ProducerState};
use crate::replication::follower::follower_high_watermark;
use crate::storage::batch::BatchHeader;

impl Partition {
    /// Appends batches copied from the leader, their offsets and epochs kept, writes them to
    /// the file, and takes the leader's high watermark as far as this log reaches.
    pub async fn append_replicated(
        &self,
        at: FetchedAt,
        batches: Vec<u8>,
        headers: Vec<BatchHeader>,
        leader_high_watermark: i64,
    ) -> Result<(), PartitionError> {
        let permit = self.lock_appends().await;
        self.check_online()?;
        if !self.fetch_is_current(at) {
            return Ok(());
        }
        if !headers.is_empty() {
            let active_before = self.log.active_base_offset();
            self.storage(self.log.append_replicated(batches, &headers).await)?;
            if self.log.active_base_offset() != active_before {
                let snapshot = self.producers.borrow().snapshot();
                if let Err(error) = self
                    .log
                    .write_snapshot(self.log.active_base_offset(), &snapshot)
                    .await
                {
                    tracing::warn!(
                        "cannot write a producer snapshot of {}: {error}",
                        self.name()
                    );
                }
            }
            self.record_producers(&headers).await?;
            // The next fetch tells the leader this replica has these records, and the leader
            // counts them as committed once every in-sync replica says so: they must survive a
            // crash of this process (written to the file; an fsync is left to flush.ms, as in
            // Kafka, whose followers leave them in the page cache).
            self.storage(self.log.write_pending().await)?;
        }
        let high_watermark = follower_high_watermark(
            self.high_watermark.get(),
            leader_high_watermark,
            self.log.next_offset(),
        );
        if high_watermark > self.high_watermark.get() {
            self.set_high_watermark(high_watermark);
        }
        drop(permit);
        self.wake_waiters();
        Ok(())
    }

    /// Whether a fetch that started at `at` still describes this replica (checked under the
    /// append permit, so no role change or append comes between the check and the write).
    fn fetch_is_current(&self, at: FetchedAt) -> bool {
        let current = at.still_applies(
            self.is_leader(),
            self.leader_epoch(),
            self.log.next_offset(),
        );
        if !current {
            tracing::debug!(
                "{}: dropping a fetch answer from leader epoch {} at offset {}",
                self.name(),
                at.leader_epoch,
                at.fetch_offset
            );
        }
        current
    }

    /// What a follower's next fetch asks for: its log end and the epoch of its last batch.
    pub fn fetch_position(&self) -> (i64, i32) {
        (
            self.log.next_offset(),
            self.log.latest_epoch().unwrap_or(-1),
        )
    }

    /// The largest epoch at most `epoch` in this log and where it ends (OffsetForLeaderEpoch).
    pub fn end_offset_for_epoch(&self, epoch: i32) -> (i32, i64) {
        self.log.end_offset_for_epoch(epoch)
    }

    /// Drops every record from `offset` on (a follower's divergent suffix), rebuilding the
    /// idempotent producers' state from what remains.
    pub async fn truncate_to(&self, at: FetchedAt, offset: i64) -> Result<(), PartitionError> {
        let _permit = self.lock_appends().await;
        self.check_online()?;
        if !self.fetch_is_current(at) {
            return Ok(());
        }
        if offset >= self.log.next_offset() {
            // Nothing to cut, but epochs this replica started without writing a batch (it
            // led briefly) may still end here; Kafka drops them too.
            self.log.truncate_epochs_from(offset)?;
            return Ok(());
        }
        tracing::warn!(
            "truncating {} from log end {} to {offset}",
            self.name(),
            self.log.next_offset()
        );
        let mut producers = ProducerState::default();
        let truncated = self.log.truncate_to(offset, &mut producers).await;
        self.offline_on_error(truncated, "truncation")?;
        *self.producers.borrow_mut() = producers;
        self.set_high_watermark(self.high_watermark.get().min(self.log.next_offset()));
        Ok(())
    }

    /// Empties the log and starts it at `offset` (a follower whose log ends before the
    /// leader's starts).
    pub async fn truncate_fully_and_start_at(
        &self,
        at: FetchedAt,
        offset: i64,
    ) -> Result<(), PartitionError> {
        let _permit = self.lock_appends().await;
        self.check_online()?;
        if !self.fetch_is_current(at) {
            return Ok(());
        }
        tracing::warn!(
            "{} restarts its log at offset {offset}, the leader's log start",
            self.name()
        );
        let restarted = self.log.truncate_fully_and_start_at(offset).await;
        self.offline_on_error(restarted, "restarting the log")?;
        *self.producers.borrow_mut() = ProducerState::default();
        self.set_high_watermark(offset);
        Ok(())
    }
}
