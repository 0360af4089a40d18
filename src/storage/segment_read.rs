//! Reading a segment: whole batches for fetches (from the tail, from disk, or from the
//! read-ahead), batch headers for scans and timestamp lookups, and chunks for the cleaner.

use bytes::Bytes;

use super::{Segment, FETCH_READ_BYTES_MIN, RECOVERY_READ_BYTES};
use crate::storage::batch::{self, BatchHeader};
use crate::storage::StorageError;

impl Segment {
    /// Reads whole batches starting with the one that holds `offset`, about `max_bytes` of them;
    /// the first batch is returned whole even when larger (as Kafka does since KIP-74). A read
    /// that went to disk moves the read-ahead window to where the next sequential read begins.
    pub async fn read(&self, offset: i64, max_bytes: usize) -> Result<Bytes, StorageError> {
        let mut position = self.position_for(offset);
        let end = self.size.get();
        while position < end {
            let want = max_bytes.max(FETCH_READ_BYTES_MIN);
            let from_disk = position < self.tail.borrow().start();
            let chunk = self
                .read_batches(position, want, end, true)
                .await?
                .ok_or_else(|| self.damaged(position))?;
            let mut cursor = 0;
            while let Some(header) = self.header_at(&chunk, cursor)? {
                if header.next_offset() > offset {
                    let (stop, next_offset) = whole_batches_end(&chunk, cursor, max_bytes);
                    if from_disk {
                        self.read_ahead_from(next_offset, want);
                    }
                    return Ok(sliced(chunk, cursor, stop));
                }
                cursor += header.size;
            }
            position += cursor as u64;
        }
        Ok(Bytes::new())
    }

    /// Keeps reads of `length` bytes running ahead of where a read of `offset` will begin, as
    /// far as the disk holds them (the tail is in memory already): `read_ahead::ReadAhead`.
    fn read_ahead_from(&self, offset: i64, length: usize) {
        let next = self.position_for(offset);
        let on_disk = self.tail.borrow().start().min(self.size.get());
        self.read_ahead.advance(&self.file, next, length, on_disk);
    }

    /// Headers of the batches from the one holding `offset` on, in order, with their positions.
    pub async fn headers_from(&self, offset: i64) -> Result<Vec<BatchHeader>, StorageError> {
        let mut headers = Vec::new();
        self.scan_headers(self.position_for(offset), |header| {
            if header.next_offset() > offset {
                headers.push(header);
            }
            true
        })
        .await?;
        Ok(headers)
    }

    /// Hands `visit` the header of every batch from byte `position` (a batch boundary) to the
    /// segment's end, each with its position in the file, until `visit` answers false.
    pub(super) async fn scan_headers(
        &self,
        mut position: u64,
        mut visit: impl FnMut(BatchHeader) -> bool,
    ) -> Result<(), StorageError> {
        let end = self.size.get();
        while position < end {
            let chunk = self
                .read_batches(position, RECOVERY_READ_BYTES, end, false)
                .await?
                .ok_or_else(|| self.damaged(position))?;
            let mut cursor = 0;
            while let Some(header) = self.header_at(&chunk, cursor)? {
                let positioned = BatchHeader {
                    position: position as usize + cursor,
                    ..header
                };
                if !visit(positioned) {
                    return Ok(());
                }
                cursor += header.size;
            }
            position += cursor as u64;
        }
        Ok(())
    }

    /// The first record whose timestamp is at least `timestamp`, as (offset, timestamp), as
    /// Kafka answers ListOffsets: found through the time index, then the first batch whose max
    /// timestamp reaches it, then that batch's records (decompressed if need be).
    pub async fn offset_for_timestamp(
        &self,
        timestamp: i64,
    ) -> Result<Option<(i64, i64)>, StorageError> {
        if self.max_timestamp.get() < timestamp {
            return Ok(None);
        }
        let start = self.base_offset + i64::from(self.time_index.borrow().scan_start(timestamp));
        let found = self
            .headers_from(start)
            .await?
            .into_iter()
            .find(|header| header.max_timestamp >= timestamp);
        let Some(header) = found else {
            return Ok(None);
        };
        if batch::is_log_append_time(&header) {
            return Ok(Some((header.base_offset, header.max_timestamp)));
        }
        let mut bytes = self
            .read_at(header.position as u64, header.size, false)
            .await?;
        let records = kafka_protocol::records::RecordBatchDecoder::decode(&mut bytes)
            .map_err(|error| {
                StorageError::io(
                    &self.log_path,
                    std::io::Error::new(std::io::ErrorKind::InvalidData, error.to_string()),
                )
            })?
            .records;
        let record = records
            .iter()
            .find(|record| record.timestamp >= timestamp)
            .map(|record| (record.offset, record.timestamp));
        Ok(record.or(Some((header.base_offset, header.max_timestamp))))
    }

    /// Whole batches from byte `position`, about a megabyte of them but at least one; empty at
    /// the end of the segment. The cleaner reads segments front to back with it.
    pub async fn read_chunk(&self, position: u64) -> Result<Vec<u8>, StorageError> {
        let end = self.size.get();
        if position >= end {
            return Ok(Vec::new());
        }
        let mut chunk = self
            .read_batches(position, RECOVERY_READ_BYTES, end, false)
            .await?
            .ok_or_else(|| self.damaged(position))?;
        let mut cursor = 0;
        while let Some(header) = self.header_at(&chunk, cursor)? {
            cursor += header.size;
        }
        chunk.truncate(cursor);
        Ok(Vec::from(chunk))
    }

    /// Parses the header at `cursor` of bytes read from this segment. Bytes below `size` were
    /// validated when written, so a malformed header here means the file changed under us.
    fn header_at(&self, chunk: &[u8], cursor: usize) -> Result<Option<BatchHeader>, StorageError> {
        batch::peek_header(chunk, cursor).map_err(|error| {
            StorageError::io(
                &self.log_path,
                std::io::Error::new(std::io::ErrorKind::InvalidData, error.to_string()),
            )
        })
    }

    /// Reads about `want` bytes at `position`, but never less than the whole first batch there,
    /// and nothing at or past `end`. `None` when the first batch there runs past `end` (torn)
    /// or past the end of the file (a truncation cut it under a reader of the old object), so
    /// a caller never loops on a chunk without a whole batch.
    pub(super) async fn read_batches(
        &self,
        position: u64,
        want: usize,
        end: u64,
        ahead: bool,
    ) -> Result<Option<Bytes>, StorageError> {
        let available = (end - position) as usize;
        let chunk = self.read_at(position, want.min(available), ahead).await?;
        match batch::peek_header(&chunk, 0) {
            Ok(Some(_)) => Ok(Some(chunk)),
            Err(_) => Ok(None),
            Ok(None) if chunk.len() < batch::LOG_OVERHEAD_BYTES => Ok(None),
            Ok(None) => {
                let length = i32::from_be_bytes(chunk[8..12].try_into().expect("four bytes"));
                let size = batch::LOG_OVERHEAD_BYTES + length.max(0) as usize;
                if size > available {
                    return Ok(None);
                }
                let whole = self.read_at(position, size, false).await?;
                let complete = matches!(batch::peek_header(&whole, 0), Ok(Some(_)));
                Ok(complete.then_some(whole))
            }
        }
    }

    fn damaged(&self, position: u64) -> StorageError {
        StorageError::io(
            &self.log_path,
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("batch at byte {position} below the validated size is damaged"),
            ),
        )
    }

    /// The bytes `[position, position + length)`: what lies at or above the tail's start comes
    /// from memory (copied first, before any await, so a concurrent write cannot release it),
    /// the rest from disk, or (`ahead`) from the read-ahead when it holds them. A read past the
    /// end of the file comes back short. Each byte is copied at most once on the way, none
    /// when the read-ahead holds all of them.
    pub(super) async fn read_at(
        &self,
        position: u64,
        length: usize,
        ahead: bool,
    ) -> Result<Bytes, StorageError> {
        let end = position + length as u64;
        let (split, memory) = {
            let tail = self.tail.borrow();
            let split = tail.start().clamp(position, end);
            let memory_end = end.min(tail.end());
            let mut memory = Vec::new();
            if split < memory_end {
                memory.reserve_exact((memory_end - split) as usize);
                tail.extend_into(split, memory_end, &mut memory);
            }
            (split, memory)
        };
        if position == split {
            return Ok(Bytes::from(memory));
        }
        let wanted = (split - position) as usize;
        let mut out = Vec::new();
        if ahead {
            if let Some(ready) = self.read_ahead.read(position, wanted).await {
                if ready.len() == wanted && memory.is_empty() {
                    return Ok(ready);
                }
                out.reserve_exact(wanted + memory.len());
                out.extend_from_slice(&ready);
            }
        }
        let from = position + out.len() as u64;
        if from < split {
            let rest = (split - from) as usize;
            let read = self
                .file
                .read_at(from, rest)
                .await
                .map_err(|error| StorageError::io(&self.log_path, error))?;
            out.reserve_exact(read.len() + memory.len());
            out.extend_from_slice(&read);
            if read.len() < rest {
                return Ok(Bytes::from(out));
            }
        }
        out.extend_from_slice(&memory);
        Ok(Bytes::from(out))
    }
}

/// `chunk[from..to]` as `Bytes`: the chunk itself when the part is most of it, else a copy, so
/// that a small answer does not hold a large read's memory.
fn sliced(chunk: Bytes, from: usize, to: usize) -> Bytes {
    if 2 * (to - from) < chunk.len() {
        Bytes::copy_from_slice(&chunk[from..to])
    } else {
        chunk.slice(from..to)
    }
}

/// End of the run of whole batches from `start` that fits `max_bytes` (at least one batch),
/// and the offset after its last batch.
fn whole_batches_end(chunk: &[u8], start: usize, max_bytes: usize) -> (usize, i64) {
    let (mut end, mut next_offset) = (start, 0);
    while let Ok(Some(header)) = batch::peek_header(chunk, end) {
        if end > start && end - start + header.size > max_bytes {
            break;
        }
        end += header.size;
        next_offset = header.next_offset();
    }
    (end, next_offset)
}
