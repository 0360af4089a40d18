//! The log of one partition replica: an ordered list of segments, the last one active.
//!
//! Invariants: segments are contiguous and ordered by base offset; only the active (last) segment
//! is appended to; `next_offset` (the log end offset) is the active segment's next offset. The
//! caller (the partition) serialises appends; reads may run at any time.

use std::cell::RefCell;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use bytes::Bytes;

use super::batch::{self, BatchHeader};
use super::segment::Segment;
use super::StorageError;

/// Per-log settings taken from broker and topic configuration.
#[derive(Clone, Copy, Debug)]
pub struct LogConfig {
    pub segment_bytes_max: u64,
    pub index_interval_bytes: u64,
}

pub struct Log {
    dir: PathBuf,
    config: LogConfig,
    segments: RefCell<Vec<Rc<Segment>>>,
}

impl Log {
    /// Opens the log in `dir`, creating the directory and a first segment when empty, and
    /// recovering every segment found there; `observe` sees every batch header kept.
    pub async fn open(
        dir: &Path,
        config: LogConfig,
        observe: &mut dyn FnMut(&BatchHeader),
    ) -> Result<Log, StorageError> {
        std::fs::create_dir_all(dir).map_err(|error| StorageError::io(dir, error))?;
        let mut base_offsets = segment_base_offsets(dir)?;
        if base_offsets.is_empty() {
            base_offsets.push(0);
        }
        let mut segments = Vec::with_capacity(base_offsets.len());
        for base_offset in base_offsets {
            let segment =
                Segment::open(dir, base_offset, config.index_interval_bytes, observe).await?;
            segments.push(Rc::new(segment));
        }
        Ok(Log {
            dir: dir.to_path_buf(),
            config,
            segments: RefCell::new(segments),
        })
    }

    /// The log end offset: the offset the next record will get.
    pub fn next_offset(&self) -> i64 {
        self.active().next_offset()
    }

    /// The first offset still in the log.
    pub fn start_offset(&self) -> i64 {
        self.segments.borrow()[0].base_offset
    }

    /// Assigns offsets from the log end to the validated `batches`, then writes them. Returns
    /// the base offset given to the first batch.
    pub async fn append(
        &self,
        mut batches: Vec<u8>,
        headers: &mut [BatchHeader],
        leader_epoch: i32,
    ) -> Result<i64, StorageError> {
        let base_offset = self.next_offset();
        let mut next = base_offset;
        for header in headers.iter_mut() {
            batch::assign_offset(&mut batches, header.position, next, leader_epoch);
            header.base_offset = next;
            next = header.next_offset();
        }
        let active = self.active();
        if active.size() > 0 && active.size() + batches.len() as u64 > self.config.segment_bytes_max
        {
            self.roll(base_offset).await?;
        }
        self.active().append(batches, headers).await?;
        Ok(base_offset)
    }

    /// Reads whole batches from `offset`, about `max_bytes` of them. Reading at the log end
    /// returns no bytes; outside `[start, end]` is an error.
    pub async fn read(&self, offset: i64, max_bytes: usize) -> Result<Bytes, StorageError> {
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

    /// The offset of the first batch whose max timestamp is at least `timestamp`, if any.
    pub async fn offset_for_timestamp(
        &self,
        timestamp: i64,
    ) -> Result<Option<(i64, i64)>, StorageError> {
        let segments: Vec<Rc<Segment>> = self.segments.borrow().clone();
        for segment in segments {
            for header in segment.batch_headers().await? {
                if header.max_timestamp >= timestamp {
                    return Ok(Some((header.base_offset, header.max_timestamp)));
                }
            }
        }
        Ok(None)
    }

    /// Makes everything appended so far durable.
    pub async fn flush(&self) -> Result<(), StorageError> {
        self.active().flush().await
    }

    /// Deletes every file of the log and its directory.
    pub async fn remove(&self) -> Result<(), StorageError> {
        let segments: Vec<Rc<Segment>> = self.segments.borrow_mut().drain(..).collect();
        for segment in segments {
            segment.remove().await?;
        }
        std::fs::remove_dir_all(&self.dir).map_err(|error| StorageError::io(&self.dir, error))
    }

    fn active(&self) -> Rc<Segment> {
        self.segments
            .borrow()
            .last()
            .expect("a log has at least one segment")
            .clone()
    }

    async fn roll(&self, base_offset: i64) -> Result<(), StorageError> {
        self.active().flush().await?;
        let segment = Segment::open(
            &self.dir,
            base_offset,
            self.config.index_interval_bytes,
            &mut |_| {},
        )
        .await?;
        tracing::debug!(
            "rolled {} to a new segment at offset {base_offset}",
            self.dir.display()
        );
        self.segments.borrow_mut().push(Rc::new(segment));
        Ok(())
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::batch::tests::encoded_batch;

    fn run<G, F>(make: G)
    where
        G: FnOnce() -> F + Send + 'static,
        F: std::future::Future<Output = ()> + 'static,
    {
        glommio::LocalExecutorBuilder::default()
            .io_memory(512 << 10)
            .spawn(make)
            .expect("executor")
            .join()
            .expect("join");
    }

    fn temp_dir(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("flink-log-test-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    async fn append_batch(log: &Log, count: i32) -> i64 {
        let bytes = encoded_batch(count, 100);
        let mut headers = batch::validate_batches(&bytes, 1 << 20).unwrap();
        log.append(bytes, &mut headers, 0).await.unwrap()
    }

    /// Proves appends get consecutive offsets, roll segments, read back, and survive reopening.
    #[test]
    fn appends_rolls_reads_and_recovers() {
        let dir = temp_dir("roll");
        run(move || async move {
            let config = LogConfig {
                segment_bytes_max: 4096,
                index_interval_bytes: 1024,
            };
            let log = Log::open(&dir, config, &mut |_| {}).await.unwrap();
            for round in 0..40 {
                assert_eq!(append_batch(&log, 5).await, round * 5);
            }
            assert_eq!(log.next_offset(), 200);
            assert!(segment_base_offsets(&dir).unwrap().len() > 1);
            for offset in [0, 3, 57, 199] {
                let bytes = log.read(offset, 1).await.unwrap();
                let header = batch::peek_header(&bytes, 0).unwrap().unwrap();
                assert!(header.base_offset <= offset && offset < header.next_offset());
                assert_eq!(
                    header.size,
                    bytes.len(),
                    "max_bytes 1 still returns one whole batch"
                );
            }
            assert!(log.read(200, 1000).await.unwrap().is_empty());
            assert!(log.read(201, 1000).await.is_err());
            drop(log);
            let reopened = Log::open(&dir, config, &mut |_| {}).await.unwrap();
            assert_eq!(reopened.next_offset(), 200);
            let bytes = reopened.read(100, 1 << 20).await.unwrap();
            assert_eq!(
                batch::validate_batches(&bytes, 1 << 20).unwrap()[0].base_offset,
                100
            );
            reopened.remove().await.unwrap();
        });
    }

    /// Proves a torn tail is cut on recovery and appends continue from the last whole batch.
    #[test]
    fn truncates_torn_tail() {
        let dir = temp_dir("torn");
        run(move || async move {
            let config = LogConfig {
                segment_bytes_max: 1 << 20,
                index_interval_bytes: 4096,
            };
            let log = Log::open(&dir, config, &mut |_| {}).await.unwrap();
            append_batch(&log, 3).await;
            append_batch(&log, 3).await;
            drop(log);
            let path = dir.join(crate::storage::segment_file_name(0, "log"));
            let length = std::fs::metadata(&path).unwrap().len();
            let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
            file.set_len(length - 7).unwrap();
            let log = Log::open(&dir, config, &mut |_| {}).await.unwrap();
            assert_eq!(log.next_offset(), 3);
            assert_eq!(append_batch(&log, 2).await, 3);
            log.remove().await.unwrap();
        });
    }
}
