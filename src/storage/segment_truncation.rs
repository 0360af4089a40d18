//! Cutting a segment for a log's truncation: where the cut falls, and the cut itself (the
//! `.log` and its indexes, durably). Part of `Segment` (see `segment.rs`).

use super::{IndexEntry, Segment, TimeIndexEntry};
use crate::storage::StorageError;

impl Segment {
    /// Where truncating to `offset` cuts this segment (Kafka's `truncateTo`: the batch holding
    /// `offset` goes whole): the byte position of the first batch whose last offset is at least
    /// `offset` (the size if there is none), and the offset the segment then ends at: after
    /// the last batch kept, or the base offset if none is.
    pub async fn truncation_point(&self, offset: i64) -> Result<(u64, i64), StorageError> {
        // Start one index entry before the floor entry of `offset`: the first batch read is
        // then always kept, so the end of the kept part is known even when the cut falls on
        // the floor entry's batch.
        let relative = u32::try_from((offset - self.base_offset).max(0)).unwrap_or(u32::MAX);
        let position = {
            let index = self.index.borrow();
            let entries = index.entries();
            let floor = entries.partition_point(|entry| entry.relative_offset <= relative);
            floor
                .checked_sub(2)
                .map_or(0, |before| u64::from(entries[before].position))
        };
        let mut kept_end = self.base_offset;
        let mut cut = self.size.get();
        self.scan_headers(position, |header| {
            if header.next_offset() > offset {
                cut = header.position as u64;
                return false;
            }
            kept_end = header.next_offset();
            true
        })
        .await?;
        Ok((cut, kept_end))
    }

    /// Cuts the segment's files at byte `position`, a batch boundary, after which the segment
    /// ends at `end_offset` (both from `truncation_point`): the `.log` and its indexes keep
    /// exactly what lies below it, durably: the offset and time indexes are those a rebuild
    /// would give, the transaction index keeps the transactions whose marker is kept. The
    /// segment is closed first, so nothing of it is in flight or only in memory.
    /// This object still describes the old contents afterwards (reads past the cut fail): the
    /// caller replaces it by opening the segment again with `Recovery::Trust`, which is cheap
    /// because the indexes on disk are exact prefixes of what a rebuild would give.
    ///
    /// A crash in between leaves indexes shorter than the `.log` (trusted indexes cover a
    /// prefix, the rest is scanned) or, with the `.log` cut, nothing inconsistent.
    pub async fn cut_at(&self, position: u64, end_offset: i64) -> Result<(), StorageError> {
        assert!(
            position <= self.size.get(),
            "cutting {} at byte {position}, past its size {}",
            self.log_path.display(),
            self.size.get()
        );
        self.close().await?;
        let index: Vec<u8> = self
            .index
            .borrow()
            .entries()
            .iter()
            .filter(|entry| u64::from(entry.position) < position)
            .flat_map(IndexEntry::encode)
            .collect();
        // A time entry (t, o) was added beside the offset entry of the batch at o + 1, and
        // goes with it: the batches kept are those starting below `end_offset`.
        let relative_end = end_offset - self.base_offset;
        let time_index: Vec<u8> = self
            .time_index
            .borrow()
            .entries()
            .iter()
            .filter(|entry| i64::from(entry.relative_offset) + 1 < relative_end)
            .flat_map(TimeIndexEntry::encode)
            .collect();
        self.index_file.rewrite(index).await?;
        self.index_file.sync_and_close().await?;
        self.time_index_file.rewrite(time_index).await?;
        self.time_index_file.sync_and_close().await?;
        self.txn_index.cut(end_offset).await?;
        let io_error = |error| StorageError::io(&self.log_path, error);
        self.file.truncate(position).await.map_err(io_error)?;
        self.file.fdatasync().await.map_err(io_error)
    }
}
