//! One segment of a partition log: a `.log` file of record batches and its sparse `.index`.
//!
//! Invariants: `size` is the byte length of whole, validated batches; bytes past it (a torn write)
//! are never served and are cut off on recovery. `next_offset` is one past the last offset stored.
//! Appends to a segment are serialised by the partition; reads run concurrently with appends and
//! only see bytes below `size`, which grows after a write completes.

use std::cell::{Cell, RefCell};
use std::path::{Path, PathBuf};

use bytes::Bytes;
use glommio::io::{BufferedFile, OpenOptions};

use super::batch::{self, BatchHeader};
use super::offset_index::{IndexEntry, OffsetIndex, INDEX_ENTRY_BYTES};
use super::{segment_file_name, StorageError};

/// How much of a segment recovery reads at a time.
const RECOVERY_READ_BYTES: usize = 1 << 20;
/// Smallest read a fetch makes, so a small `max_bytes` still finds its batch in one read.
const FETCH_READ_BYTES_MIN: usize = 64 << 10;

pub struct Segment {
    pub base_offset: i64,
    log_path: PathBuf,
    index_path: PathBuf,
    log_file: BufferedFile,
    index_file: BufferedFile,
    size: Cell<u64>,
    next_offset: Cell<i64>,
    index: RefCell<OffsetIndex>,
    bytes_since_index_entry: Cell<u64>,
    index_interval_bytes: u64,
}

impl Segment {
    /// Opens (creating if absent) the segment starting at `base_offset` and recovers it: scans
    /// every batch, cuts a torn or corrupt tail, and rebuilds the index from what remains.
    /// `observe` sees the header of every batch kept.
    pub async fn open(
        dir: &Path,
        base_offset: i64,
        index_interval_bytes: u64,
        observe: &mut dyn FnMut(&BatchHeader),
    ) -> Result<Segment, StorageError> {
        let log_path = dir.join(segment_file_name(base_offset, "log"));
        let index_path = dir.join(segment_file_name(base_offset, "index"));
        let log_file = open_read_write(&log_path).await?;
        let index_file = open_read_write(&index_path).await?;
        let segment = Segment {
            base_offset,
            log_path,
            index_path,
            log_file,
            index_file,
            size: Cell::new(0),
            next_offset: Cell::new(base_offset),
            index: RefCell::new(OffsetIndex::default()),
            bytes_since_index_entry: Cell::new(0),
            index_interval_bytes,
        };
        segment.recover(observe).await?;
        Ok(segment)
    }

    pub fn size(&self) -> u64 {
        self.size.get()
    }

    pub fn next_offset(&self) -> i64 {
        self.next_offset.get()
    }

    /// Appends validated batches whose offsets are already assigned; `headers` describe them.
    pub async fn append(
        &self,
        batches: Vec<u8>,
        headers: &[BatchHeader],
    ) -> Result<(), StorageError> {
        let position = self.size.get();
        let length = batches.len() as u64;
        let written = self
            .log_file
            .write_at(batches, position)
            .await
            .map_err(|error| StorageError::io(&self.log_path, error))?;
        if written as u64 != length {
            return Err(StorageError::io(
                &self.log_path,
                std::io::Error::new(std::io::ErrorKind::WriteZero, "short write to segment"),
            ));
        }
        for header in headers {
            self.maybe_index(header, position + header.position as u64)
                .await?;
        }
        let last = headers.last().expect("append of at least one batch");
        self.next_offset.set(last.next_offset());
        self.size.set(position + length);
        Ok(())
    }

    /// Reads whole batches starting with the one that holds `offset`, about `max_bytes` of them;
    /// the first batch is returned whole even when larger (as Kafka does since KIP-74).
    pub async fn read(&self, offset: i64, max_bytes: usize) -> Result<Bytes, StorageError> {
        // Below the base offset (compaction emptied the end of the segment before) reads from
        // the start; past what an index can hold reads from the last entry.
        let relative = u32::try_from((offset - self.base_offset).max(0)).unwrap_or(u32::MAX);
        let mut position = u64::from(self.index.borrow().lookup(relative));
        let end = self.size.get();
        while position < end {
            let want = max_bytes.max(FETCH_READ_BYTES_MIN);
            let chunk = self
                .read_batches(position, want, end)
                .await?
                .ok_or_else(|| self.damaged(position))?;
            let mut cursor = 0;
            while let Some(header) = self.header_at(&chunk, cursor)? {
                if header.next_offset() > offset {
                    let stop = whole_batches_end(&chunk, cursor, max_bytes);
                    return Ok(Bytes::copy_from_slice(&chunk[cursor..stop]));
                }
                cursor += header.size;
            }
            position += cursor as u64;
        }
        Ok(Bytes::new())
    }

    /// Headers of the batches in this segment, in order (used by ListOffsets by timestamp).
    pub async fn batch_headers(&self) -> Result<Vec<BatchHeader>, StorageError> {
        let mut headers = Vec::new();
        let mut position = 0u64;
        let end = self.size.get();
        while position < end {
            let chunk = self
                .read_batches(position, RECOVERY_READ_BYTES, end)
                .await?
                .ok_or_else(|| self.damaged(position))?;
            let mut cursor = 0;
            while let Some(header) = self.header_at(&chunk, cursor)? {
                headers.push(BatchHeader {
                    position: position as usize + cursor,
                    ..header
                });
                cursor += header.size;
            }
            position += cursor as u64;
        }
        Ok(headers)
    }

    /// Whole batches from byte `position`, about a megabyte of them but at least one; empty at
    /// the end of the segment. The cleaner reads segments front to back with it.
    pub async fn read_chunk(&self, position: u64) -> Result<Vec<u8>, StorageError> {
        let end = self.size.get();
        if position >= end {
            return Ok(Vec::new());
        }
        let mut chunk = self
            .read_batches(position, RECOVERY_READ_BYTES, end)
            .await?
            .ok_or_else(|| self.damaged(position))?;
        let mut cursor = 0;
        while let Some(header) = self.header_at(&chunk, cursor)? {
            cursor += header.size;
        }
        chunk.truncate(cursor);
        Ok(chunk)
    }

    pub fn log_path(&self) -> &Path {
        &self.log_path
    }

    pub async fn flush(&self) -> Result<(), StorageError> {
        self.log_file
            .fdatasync()
            .await
            .map_err(|error| StorageError::io(&self.log_path, error))?;
        self.index_file
            .fdatasync()
            .await
            .map_err(|error| StorageError::io(&self.index_path, error))
    }

    /// Removes both files; the segment must not be used afterwards.
    pub async fn remove(&self) -> Result<(), StorageError> {
        self.log_file
            .remove()
            .await
            .map_err(|error| StorageError::io(&self.log_path, error))?;
        self.index_file
            .remove()
            .await
            .map_err(|error| StorageError::io(&self.index_path, error))
    }

    async fn recover(&self, observe: &mut dyn FnMut(&BatchHeader)) -> Result<(), StorageError> {
        let file_size = self
            .log_file
            .file_size()
            .await
            .map_err(|error| StorageError::io(&self.log_path, error))?;
        let mut position = 0u64;
        let mut index = OffsetIndex::default();
        let mut next_offset = self.base_offset;
        let mut since_entry = 0u64;
        'scan: while position < file_size {
            let Some(chunk) = self
                .read_batches(position, RECOVERY_READ_BYTES, file_size)
                .await?
            else {
                break;
            };
            let mut cursor = 0;
            loop {
                match batch::peek_header(&chunk, cursor) {
                    Ok(Some(header)) if batch::verify_crc(&chunk, &header).is_ok() => {
                        self.note_recovered(
                            &mut index,
                            &mut since_entry,
                            &header,
                            position + cursor as u64,
                        );
                        observe(&header);
                        next_offset = header.next_offset();
                        cursor += header.size;
                    }
                    Ok(None) if cursor > 0 => break,
                    _ => break 'scan,
                }
            }
            position += cursor as u64;
        }
        if position < file_size {
            tracing::warn!(
                "truncating {} at byte {position}: dropping {} bytes of torn or corrupt data after offset {}",
                self.log_path.display(),
                file_size - position,
                next_offset - 1
            );
            self.log_file
                .truncate(position)
                .await
                .map_err(|error| StorageError::io(&self.log_path, error))?;
        }
        self.rewrite_index(&index).await?;
        self.size.set(position);
        self.next_offset.set(next_offset);
        self.bytes_since_index_entry.set(since_entry);
        *self.index.borrow_mut() = index;
        Ok(())
    }

    fn note_recovered(
        &self,
        index: &mut OffsetIndex,
        since_entry: &mut u64,
        header: &BatchHeader,
        position: u64,
    ) {
        if *since_entry >= self.index_interval_bytes {
            index.push(self.index_entry(header.base_offset, position));
            *since_entry = 0;
        }
        *since_entry += header.size as u64;
    }

    async fn maybe_index(&self, header: &BatchHeader, position: u64) -> Result<(), StorageError> {
        if self.bytes_since_index_entry.get() >= self.index_interval_bytes {
            let entry = self.index_entry(header.base_offset, position);
            let slot = (self.index.borrow().len() * INDEX_ENTRY_BYTES) as u64;
            self.index_file
                .write_at(entry.encode().to_vec(), slot)
                .await
                .map_err(|error| StorageError::io(&self.index_path, error))?;
            self.index.borrow_mut().push(entry);
            self.bytes_since_index_entry.set(0);
        }
        self.bytes_since_index_entry
            .set(self.bytes_since_index_entry.get() + header.size as u64);
        Ok(())
    }

    fn index_entry(&self, base_offset: i64, position: u64) -> IndexEntry {
        IndexEntry {
            relative_offset: u32::try_from(base_offset - self.base_offset)
                .expect("segment spans under 2^32 offsets"),
            position: u32::try_from(position).expect("segment under 4 GiB"),
        }
    }

    async fn rewrite_index(&self, index: &OffsetIndex) -> Result<(), StorageError> {
        let io_error = |error| StorageError::io(&self.index_path, error);
        self.index_file.truncate(0).await.map_err(io_error)?;
        if index.len() > 0 {
            self.index_file
                .write_at(index.encode_all(), 0)
                .await
                .map_err(|error| StorageError::io(&self.index_path, error))?;
        }
        Ok(())
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
    /// and nothing at or past `end`. `None` when the first batch there runs past `end` (torn).
    async fn read_batches(
        &self,
        position: u64,
        want: usize,
        end: u64,
    ) -> Result<Option<Vec<u8>>, StorageError> {
        let available = (end - position) as usize;
        let chunk = self.read_at(position, want.min(available)).await?;
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
                Ok(Some(self.read_at(position, size).await?))
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

    async fn read_at(&self, position: u64, length: usize) -> Result<Vec<u8>, StorageError> {
        let result = self
            .log_file
            .read_at(position, length)
            .await
            .map_err(|error| StorageError::io(&self.log_path, error))?;
        Ok(result.to_vec())
    }
}

/// End of the run of whole batches from `start` that fits `max_bytes` (at least one batch).
fn whole_batches_end(chunk: &[u8], start: usize, max_bytes: usize) -> usize {
    let mut end = start;
    while let Ok(Some(header)) = batch::peek_header(chunk, end) {
        if end > start && end - start + header.size > max_bytes {
            break;
        }
        end += header.size;
    }
    end
}

async fn open_read_write(path: &Path) -> Result<BufferedFile, StorageError> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .buffered_open(path)
        .await
        .map_err(|error| StorageError::io(path, error))
}
