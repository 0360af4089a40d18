//! Deleting from a log: DeleteRecords and retention move the log start and delete the segments
//! wholly below it, and a deleted partition's log goes, all after `file.delete.delay.ms` as
//! Kafka does. Part of `Log` (see `log.rs`).

use super::*;

impl Log {
    /// Moves the log start to `offset` (DeleteRecords) and deletes the segments wholly below
    /// it. `offset` must lie within the log; a start already past it stays.
    pub async fn delete_records_before(&self, offset: i64) -> Result<i64, StorageError> {
        let (start, end) = (self.start_offset(), self.next_offset());
        if offset < 0 || offset > end {
            return Err(StorageError::OffsetOutOfRange { offset, start, end });
        }
        if offset > start {
            self.changed.set(true);
            self.start_offset.set(offset);
            self.write_checkpoint(true).await?;
            self.epochs.borrow_mut().truncate_from_start(offset)?;
            self.delete_segments_below(offset).await?;
        }
        Ok(self.start_offset())
    }

    /// Deletes inactive segments past `retention.ms` (by their largest timestamp) or beyond
    /// `retention.bytes` (oldest first, while the log stays over the limit), as Kafka does, and
    /// moves the log start past them. Returns how many segments were deleted.
    pub async fn apply_retention(&self, now_ms: i64) -> Result<usize, StorageError> {
        let (retention_ms, retention_bytes) = (
            self.config.get().retention_ms,
            self.config.get().retention_bytes,
        );
        let cut = {
            let segments = self.segments.borrow();
            let mut total: u64 = segments.iter().map(|segment| segment.size()).sum();
            let mut cut = None;
            for (index, segment) in segments[..segments.len() - 1].iter().enumerate() {
                let expired = retention_ms >= 0
                    && segment.max_timestamp() >= 0
                    && now_ms.saturating_sub(segment.max_timestamp()) > retention_ms;
                let oversize = retention_bytes >= 0
                    && total.saturating_sub(segment.size()) >= retention_bytes as u64;
                if !(expired || oversize) {
                    break;
                }
                total -= segment.size();
                cut = Some(segments[index + 1].base_offset);
            }
            cut
        };
        let Some(new_start) = cut else {
            return Ok(0);
        };
        self.changed.set(true);
        if new_start > self.start_offset() {
            self.start_offset.set(new_start);
        }
        self.write_checkpoint(true).await?;
        self.epochs
            .borrow_mut()
            .truncate_from_start(self.start_offset())?;
        self.delete_segments_below(self.start_offset()).await
    }

    /// Deletes the inactive segments that end at or below `offset`.
    async fn delete_segments_below(&self, offset: i64) -> Result<usize, StorageError> {
        let doomed: Vec<Rc<Segment>> = {
            let mut segments = self.segments.borrow_mut();
            let count = segments[..segments.len() - 1]
                .iter()
                .enumerate()
                .take_while(|(index, _)| segments[index + 1].base_offset <= offset)
                .count();
            segments.drain(..count).collect()
        };
        for segment in &doomed {
            tracing::info!(
                "deleting segment {} of {}: below the log start offset {offset}",
                segment.base_offset,
                self.dir.display()
            );
            segment.delete_later(self.file_delete_delay()).await?;
        }
        if self.clean_offset.get() < self.segments.borrow()[0].base_offset {
            self.clean_offset.set(self.segments.borrow()[0].base_offset);
        }
        Ok(doomed.len())
    }

    /// How long deleted segments stay as `.deleted` files (`file.delete.delay.ms`).
    pub(super) fn file_delete_delay(&self) -> std::time::Duration {
        std::time::Duration::from_millis(self.config.get().file_delete_delay_ms.max(0) as u64)
    }

    /// Deletes the log as Kafka deletes a partition: its directory is renamed
    /// `<topic>-<partition>.<unique id>-delete` at once (so the name is free for a topic created
    /// again) and removed after `file.delete.delay.ms`; `remove_deleted_dirs` removes leftovers
    /// at start-up. A zero delay removes it at once.
    pub async fn delete_later(&self) -> Result<(), StorageError> {
        let delay = self.file_delete_delay();
        if delay.is_zero() {
            return self.remove().await;
        }
        let segments: Vec<Rc<Segment>> = self.segments.borrow_mut().drain(..).collect();
        for segment in &segments {
            segment.stop_writes().await;
        }
        let target = deletion_target(&self.dir);
        std::fs::rename(&self.dir, &target).map_err(|error| StorageError::io(&self.dir, error))?;
        if let Some(parent) = self.dir.parent() {
            sync_directory(parent).await?;
        }
        glommio::spawn_local(async move {
            glommio::timer::sleep(delay).await;
            if let Err(error) = std::fs::remove_dir_all(&target) {
                tracing::warn!("cannot delete {}: {error}", target.display());
            }
            drop(segments);
        })
        .detach();
        Ok(())
    }

    /// Deletes every file of the log and its directory.
    pub async fn remove(&self) -> Result<(), StorageError> {
        let segments: Vec<Rc<Segment>> = self.segments.borrow_mut().drain(..).collect();
        for segment in segments {
            segment.remove().await?;
        }
        std::fs::remove_dir_all(&self.dir).map_err(|error| StorageError::io(&self.dir, error))
    }
}
