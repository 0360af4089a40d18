//! Recovering a segment when it opens: a trusted segment's indexes are loaded and what follows
//! the last entry verified; otherwise every batch is scanned with its CRC, the file is cut after
//! the last good one and the indexes are rebuilt; with it, the accounting of each batch's index
//! entries and timestamps, which appends share. Part of `Segment` (see `segment.rs`).

use super::*;

impl Segment {
    /// Scans the whole segment, keeping the valid prefix and rebuilding both indexes.
    pub(super) async fn recover(
        &self,
        observe: &mut dyn FnMut(&BatchHeader),
    ) -> Result<(), StorageError> {
        self.scan_from(0, observe).await?;
        self.rewrite_indexes().await
    }

    /// Loads a segment trusted to be whole: its indexes (rebuilt if malformed) and the
    /// batches after the last offset-index entry, which are verified as on recovery.
    pub(super) async fn load(&self) -> Result<(), StorageError> {
        let file_size = self.file_size().await?;
        let index = OffsetIndex::decode_all(&self.index_file.read_all()?, file_size);
        let time_index = TimeIndex::decode_all(&self.time_index_file.read_all()?);
        let (Some(index), Some(time_index)) = (index, time_index) else {
            tracing::warn!(
                "rebuilding the indexes of {}: they are malformed",
                self.log_path.display()
            );
            return self.recover(&mut |_| {}).await;
        };
        let (start, start_offset) = index.last().map_or((0, self.base_offset), |entry| {
            (
                u64::from(entry.position),
                self.base_offset + i64::from(entry.relative_offset),
            )
        });
        let checked =
            index.is_empty() || self.batch_starts_at(start, start_offset, file_size).await?;
        if !checked {
            tracing::warn!(
                "rebuilding the indexes of {}: the last index entry does not point at the batch of offset {start_offset}",
                self.log_path.display()
            );
            return self.recover(&mut |_| {}).await;
        }
        self.index_persisted.set(index.len());
        self.time_index_persisted.set(time_index.len());
        if let Some(last) = time_index.last() {
            self.max_timestamp.set(last.timestamp);
        }
        *self.index.borrow_mut() = index;
        *self.time_index.borrow_mut() = time_index;
        self.next_offset.set(start_offset);
        if start > 0 {
            let first = self
                .read_batches(0, batch::BATCH_HEADER_BYTES, file_size, false)
                .await?;
            let header = first.and_then(|chunk| batch::peek_header(&chunk, 0).ok().flatten());
            self.first_timestamp
                .set(header.map(|header| header.max_timestamp));
        }
        self.scan_from(start, &mut |_| {}).await
    }

    /// Whether a whole batch with a valid CRC and base offset `offset` starts at `position`.
    async fn batch_starts_at(
        &self,
        position: u64,
        offset: i64,
        file_size: u64,
    ) -> Result<bool, StorageError> {
        if position >= file_size {
            return Ok(false);
        }
        let Some(chunk) = self
            .read_batches(position, batch::BATCH_HEADER_BYTES, file_size, false)
            .await?
        else {
            return Ok(false);
        };
        Ok(match batch::peek_header(&chunk, 0) {
            Ok(Some(header)) => {
                header.base_offset == offset && batch::verify_crc(&chunk, &header).is_ok()
            }
            _ => false,
        })
    }

    /// Whether a batch read back can follow what was recovered so far: its offsets lie after
    /// the previous batch and within what a segment can index. The base offset is outside the
    /// CRC, so a damaged one is caught only here.
    fn follows(&self, header: &BatchHeader) -> bool {
        let end = header
            .base_offset
            .checked_add(i64::from(header.last_offset_delta) + 1);
        header.base_offset >= self.next_offset.get()
            && header.last_offset_delta >= 0
            && end.is_some_and(|end| end - self.base_offset <= i64::from(u32::MAX))
    }

    /// Scans batches from byte `start` (a batch boundary) to the end of the file, verifying
    /// each CRC, and cuts the file after the last good one. Sets size, next offset, timestamps
    /// and the tail; adds index entries for the batches scanned.
    async fn scan_from(
        &self,
        start: u64,
        observe: &mut dyn FnMut(&BatchHeader),
    ) -> Result<(), StorageError> {
        let file_size = self.file_size().await?;
        let mut position = start;
        while position < file_size {
            let Some(chunk) = self
                .read_batches(position, RECOVERY_READ_BYTES, file_size, false)
                .await?
            else {
                break;
            };
            let mut cursor = 0;
            let damaged = loop {
                match batch::peek_header(&chunk, cursor) {
                    Ok(Some(header))
                        if batch::verify_crc(&chunk, &header).is_ok() && self.follows(&header) =>
                    {
                        let at = position + cursor as u64;
                        let indexed = self
                            .index
                            .borrow()
                            .last()
                            .is_some_and(|entry| u64::from(entry.position) >= at);
                        if indexed {
                            // A loaded index already covers it (the scan of a trusted
                            // segment starts at its last entry).
                            self.bytes_since_index_entry
                                .set(self.bytes_since_index_entry.get() + header.size as u64);
                            self.note_timestamps(&header);
                        } else {
                            self.note_batch(&header, at);
                        }
                        observe(&header);
                        self.next_offset.set(header.next_offset());
                        cursor += header.size;
                    }
                    Ok(None) if cursor > 0 => break false,
                    _ => break true,
                }
            };
            position += cursor as u64;
            if damaged {
                break;
            }
        }
        if position < file_size {
            self.cut_tail(position, file_size).await?;
        }
        self.size.set(position);
        self.written.set(position);
        self.synced_bytes.set(position);
        self.synced_offset.set(self.next_offset.get());
        let tail_start = align_down(position);
        let partial = self
            .read_at(tail_start, (position - tail_start) as usize, false)
            .await?;
        self.submitted.set(tail_start);
        *self.tail.borrow_mut() = Tail::new(tail_start, &partial, &|size| {
            self.file.alloc_dma_buffer(size)
        });
        Ok(())
    }

    /// Truncates the file at `position`, saying what was dropped: zero padding after a flushed
    /// partial block is expected after a crash; anything else is a torn or corrupt write.
    async fn cut_tail(&self, position: u64, file_size: u64) -> Result<(), StorageError> {
        let dropped = file_size - position;
        let sample = self
            .read_at(
                position,
                dropped.min(RECOVERY_READ_BYTES as u64) as usize,
                false,
            )
            .await?;
        if dropped <= sample.len() as u64 && sample.iter().all(|byte| *byte == 0) {
            tracing::info!(
                "trimming {} bytes of zero padding from {} at byte {position}",
                dropped,
                self.log_path.display()
            );
        } else {
            tracing::warn!(
                "truncating {} at byte {position}: dropping {dropped} bytes of torn or corrupt data after offset {}",
                self.log_path.display(),
                self.next_offset.get() - 1
            );
        }
        self.file
            .truncate(position)
            .await
            .map_err(|error| StorageError::io(&self.log_path, error))
    }

    /// Accounts for a batch stored at `position`: index entries every `index_interval_bytes`,
    /// time index entries beside them when time moved forward, and the timestamps.
    pub(super) fn note_batch(&self, header: &BatchHeader, position: u64) {
        // `Log` rolls before offsets outgrow a segment and segments stay under 2 GiB plus one
        // batch; should either ever not fit, the batch goes without an index entry (reads scan
        // from the previous one) rather than stopping the broker.
        let relative = u32::try_from(header.base_offset - self.base_offset);
        let position32 = u32::try_from(position);
        if let (true, Ok(relative_offset), Ok(position)) = (
            self.bytes_since_index_entry.get() >= self.index_interval_bytes,
            relative,
            position32,
        ) {
            self.index.borrow_mut().push(IndexEntry {
                relative_offset,
                position,
            });
            if self.max_timestamp.get() >= 0 {
                // Everything before this batch has timestamps at most the max so far.
                let before = relative_offset.saturating_sub(1);
                self.time_index.borrow_mut().maybe_push(TimeIndexEntry {
                    timestamp: self.max_timestamp.get(),
                    relative_offset: before,
                });
            }
            self.bytes_since_index_entry.set(0);
        }
        self.bytes_since_index_entry
            .set(self.bytes_since_index_entry.get() + header.size as u64);
        self.note_timestamps(header);
    }

    fn note_timestamps(&self, header: &BatchHeader) {
        if self.first_timestamp.get().is_none() {
            self.first_timestamp.set(Some(header.max_timestamp));
        }
        self.max_timestamp
            .set(self.max_timestamp.get().max(header.max_timestamp));
    }

    /// Writes both indexes whole (after a scan rebuilt them); the files are closed again
    /// until the next entries arrive.
    async fn rewrite_indexes(&self) -> Result<(), StorageError> {
        let index = self.index.borrow().encode_all();
        let time_index = self.time_index.borrow().encode_all();
        self.index_file.rewrite(index).await?;
        self.time_index_file.rewrite(time_index).await?;
        self.index_file.close();
        self.time_index_file.close();
        self.index_persisted.set(self.index.borrow().len());
        self.time_index_persisted
            .set(self.time_index.borrow().len());
        Ok(())
    }

    async fn file_size(&self) -> Result<u64, StorageError> {
        self.file
            .file_size()
            .await
            .map_err(|error| StorageError::io(&self.log_path, error))
    }
}
