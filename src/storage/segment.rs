//! One segment of a partition log: a `.log` file of record batches, its sparse `.index`, its
//! `.timeindex` and its `.txnindex` (aborted transactions, `txn_index`).
//!
//! The `.log` file is written with direct I/O (glommio `DmaFile`, O_DIRECT on filesystems that
//! support it) in whole aligned blocks. An append copies its batches into the in-memory `Tail`
//! (aligned chunks) and returns; each chunk that fills is written behind it, as it is, by a
//! background write (up to `WRITES_IN_FLIGHT` at once, in file order), and `flush` waits for
//! those, writes the rest (the last block padded with zeros) and fdatasyncs. Reads take what
//! lies below the tail from disk (direct reads, positioned through the offset index) and the
//! rest from the tail.
//!
//! Invariants: `size` is the byte length of whole, validated batches; `written <= submitted`
//! and `written <= size`: bytes below `written` are on disk, and `synced <= written` are durable;
//! background writes cover disjoint block ranges from `submitted` on; the tail holds
//! `[tail.start, size)` with `tail.start <= align_down(written)`. On disk the file may run past
//! `size` with zero padding (a flushed partial block) or a torn write: both are cut off on
//! recovery, and `close` trims the padding. Appends to a segment are serialised by the
//! partition; a flush holds every write slot, so its writes never overlap another.
//!
//! A segment object never shrinks: truncation (`cut_at`) closes it, cuts its files at a batch
//! boundary with indexes that are exact prefixes, and the log opens the segment again in its
//! place. A reader still holding the old object may get errors, or bytes appended since, past
//! the cut; `Log` reads overlapped by a truncation start over, so none returns them.
//! Removing a segment waits for its background writes, so none lands after its files are gone.
//!
//! Reads are in `segment_read.rs`, recovery in `segment_recovery.rs`, truncation in
//! `segment_truncation.rs`, and the zeros written ahead of small writes in `segment_zeroing.rs`.

use std::cell::{Cell, RefCell};
use std::path::{Path, PathBuf};
use std::rc::Rc;

use glommio::io::{DmaFile, OpenOptions};
use glommio::sync::Semaphore;

use super::batch::{self, BatchHeader};
use super::blocking::off_reactor;
use super::index_file::IndexFile;
use super::offset_index::{IndexEntry, OffsetIndex, INDEX_ENTRY_BYTES};
use super::read_ahead::ReadAhead;
use super::tail::{align_down, align_up, Tail, CHUNK_BYTES};
use super::time_index::{TimeIndex, TimeIndexEntry, TIME_INDEX_ENTRY_BYTES};
use super::txn_index::TxnIndex;
use super::{segment_file_name, StorageError};

/// How much of a segment recovery reads at a time.
const RECOVERY_READ_BYTES: usize = 1 << 20;
/// Smallest read a fetch makes, so a small `max_bytes` still finds its batch in one read.
const FETCH_READ_BYTES_MIN: usize = 64 << 10;
/// Largest single direct write made by a flush.
const WRITE_BYTES_MAX: u64 = 4 * CHUNK_BYTES as u64;
/// Background writes a segment keeps in flight at once.
const WRITES_IN_FLIGHT: u64 = 4;
/// Unwritten bytes a segment may hold before an append waits for the disk.
const UNWRITTEN_BYTES_MAX: u64 = 8 * CHUNK_BYTES as u64;

/// A background write: the block range `[start, end)`, and how it ended.
struct InFlight {
    start: u64,
    end: u64,
    outcome: Option<Result<(), String>>,
}

/// A non-empty file opened for direct I/O before any segment (see `prime_direct_io`).
const IO_PROBE_FILE: &str = ".flink-io-probe";
const IO_PROBE_BYTES: usize = 4096;

thread_local! {
    /// fdatasync calls on segments by this thread (shard), for the metrics.
    static FSYNCS: Cell<u64> = const { Cell::new(0) };
    /// Devices whose direct-I/O probe this thread (executor) has primed.
    static PRIMED_DEVICES: RefCell<Vec<u64>> = const { RefCell::new(Vec::new()) };
}

/// Works around glommio 0.9.0's poll probe (io_uring_notes.md): the first file an executor
/// opens for direct I/O on a device is read to decide whether the device supports polled I/O,
/// and an empty file wrongly says yes, after which every direct read there fails with
/// EOPNOTSUPP. So before the first segment on each device, each executor opens a non-empty
/// probe file in `dir`. Failures are logged; the segment open that follows reports real ones.
pub async fn prime_direct_io(dir: &Path) {
    use std::os::unix::fs::MetadataExt;
    let Ok(device) = std::fs::metadata(dir).map(|metadata| metadata.dev()) else {
        return;
    };
    if PRIMED_DEVICES.with(|primed| primed.borrow().contains(&device)) {
        return;
    }
    let path = dir.join(IO_PROBE_FILE);
    let probe = match std::fs::metadata(&path) {
        Ok(metadata) if metadata.len() >= IO_PROBE_BYTES as u64 => Ok(()),
        _ => std::fs::write(&path, vec![0u8; IO_PROBE_BYTES]),
    };
    if let Err(error) = probe {
        tracing::warn!("cannot write the io probe {}: {error}", path.display());
        return;
    }
    match DmaFile::open(&path).await {
        Ok(file) => {
            let _ = file.close().await;
            PRIMED_DEVICES.with(|primed| primed.borrow_mut().push(device));
        }
        Err(error) => tracing::warn!("io probe {} failed: {error}", path.display()),
    }
}

/// fdatasync calls on segments made by this shard so far.
pub fn fsync_count() -> u64 {
    FSYNCS.with(Cell::get)
}

/// A tail position past any segment: reads below it all go to disk.
const NOTHING_CACHED: u64 = 1 << 62;

/// How a segment is opened.
pub enum Recovery<'a> {
    /// Scan every batch, verifying CRCs; `observe` sees every batch kept.
    Scan(&'a mut dyn FnMut(&BatchHeader)),
    /// The segment was flushed before a clean shutdown or lies below the recovery point: load
    /// its indexes and verify only what follows the last index entry.
    Trust,
}

pub struct Segment {
    pub base_offset: i64,
    log_path: PathBuf,
    file: Rc<DmaFile>,
    /// The next sequential fetch's bytes, read from disk ahead of it.
    read_ahead: ReadAhead,
    index_file: IndexFile,
    time_index_file: IndexFile,
    txn_index: TxnIndex,
    tail: RefCell<Tail>,
    size: Cell<u64>,
    next_offset: Cell<i64>,
    written: Cell<u64>,
    /// The offset below which every batch lies wholly below `written`: what a crash of the
    /// process can no longer take back, and so all a consumer may see or an acks=1 answer cover.
    written_offset: Cell<i64>,
    /// (end position, next offset) of each append not yet wholly written, in order.
    unwritten_appends: RefCell<std::collections::VecDeque<(u64, i64)>>,
    synced_bytes: Cell<u64>,
    synced_offset: Cell<i64>,
    index: RefCell<OffsetIndex>,
    index_persisted: Cell<usize>,
    time_index: RefCell<TimeIndex>,
    time_index_persisted: Cell<usize>,
    bytes_since_index_entry: Cell<u64>,
    /// Largest batch max timestamp, -1 when empty.
    max_timestamp: Cell<i64>,
    /// Max timestamp of the first batch (what `segment.ms` counts from), if any.
    first_timestamp: Cell<Option<i64>>,
    index_interval_bytes: u64,
    /// Background writes were issued for every block below this (aligned) position.
    submitted: Cell<u64>,
    /// Background writes in file order; completed ones leave from the front.
    in_flight: RefCell<std::collections::VecDeque<InFlight>>,
    /// One permit per background write in flight; a flush takes them all.
    write_slots: Rc<Semaphore>,
    /// Signalled once per completed background write, for appends waiting on the disk.
    completions: Semaphore,
    /// A background write failed: the next flush (or a waiting append) writes again from
    /// `written`. The message is logged once per distinct failure.
    write_failure: RefCell<Option<String>>,
    sync_lock: Semaphore,
    /// Taken while index entries are written (`persist_indexes`).
    index_lock: Semaphore,
    /// An fdatasync failed: what was written since the last good one may not be on the device,
    /// and no later fdatasync can vouch for it ("fsyncgate"), so every flush fails from then on.
    sync_failure: RefCell<Option<String>>,
    /// Set by `close`: a closed segment takes no more appends.
    closed: Cell<bool>,
    /// The file holds written blocks (data or zeros) at least up to here.
    file_end: Cell<u64>,
    /// The last padded write was small: zeros are written ahead (`segment_zeroing`).
    small_writes: Cell<bool>,
    /// A zeroing write is in flight or waiting for the write slots.
    zeroing: Cell<bool>,
}

impl Segment {
    /// Opens (creating if absent) the segment starting at `base_offset` and recovers it as
    /// `recovery` says: a torn or corrupt tail is cut off and damaged indexes are rebuilt.
    pub async fn open(
        dir: &Path,
        base_offset: i64,
        index_interval_bytes: u64,
        recovery: Recovery<'_>,
    ) -> Result<Rc<Segment>, StorageError> {
        let log_path = dir.join(segment_file_name(base_offset, "log"));
        let index_path = dir.join(segment_file_name(base_offset, "index"));
        let time_index_path = dir.join(segment_file_name(base_offset, "timeindex"));
        prime_direct_io(dir).await;
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .dma_open(&log_path)
            .await
            .map_err(|error| StorageError::io(&log_path, error))?;
        // Nothing is cached until recovery has read the file.
        let nothing_cached = Tail::new(NOTHING_CACHED, &[], &|size| file.alloc_dma_buffer(size));
        let segment = Segment {
            base_offset,
            log_path,
            file: Rc::new(file),
            read_ahead: ReadAhead::default(),
            index_file: IndexFile::new(index_path),
            time_index_file: IndexFile::new(time_index_path),
            txn_index: TxnIndex::new(dir.join(segment_file_name(base_offset, "txnindex"))),
            tail: RefCell::new(nothing_cached),
            size: Cell::new(0),
            next_offset: Cell::new(base_offset),
            written: Cell::new(0),
            written_offset: Cell::new(base_offset),
            unwritten_appends: RefCell::new(std::collections::VecDeque::new()),
            synced_bytes: Cell::new(0),
            synced_offset: Cell::new(base_offset),
            index: RefCell::new(OffsetIndex::default()),
            index_persisted: Cell::new(0),
            time_index: RefCell::new(TimeIndex::default()),
            time_index_persisted: Cell::new(0),
            bytes_since_index_entry: Cell::new(0),
            max_timestamp: Cell::new(-1),
            first_timestamp: Cell::new(None),
            index_interval_bytes,
            submitted: Cell::new(0),
            in_flight: RefCell::new(std::collections::VecDeque::new()),
            write_slots: Rc::new(Semaphore::new(WRITES_IN_FLIGHT)),
            completions: Semaphore::new(0),
            write_failure: RefCell::new(None),
            sync_lock: Semaphore::new(1),
            index_lock: Semaphore::new(1),
            sync_failure: RefCell::new(None),
            closed: Cell::new(false),
            file_end: Cell::new(0),
            small_writes: Cell::new(false),
            zeroing: Cell::new(false),
        };
        match recovery {
            Recovery::Scan(observe) => segment.recover(observe).await?,
            Recovery::Trust => segment.load().await?,
        }
        segment.txn_index.open(segment.next_offset.get()).await?;
        // Everything recovery kept is in the file.
        segment.written_offset.set(segment.next_offset.get());
        segment.note_file_end(segment.size.get());
        Ok(Rc::new(segment))
    }

    pub fn size(&self) -> u64 {
        self.size.get()
    }

    pub fn next_offset(&self) -> i64 {
        self.next_offset.get()
    }

    /// The offset below which every batch of this segment is written to the file.
    pub fn written_offset(&self) -> i64 {
        self.written_offset.get()
    }

    /// The offset below which everything in this segment is durable.
    pub fn synced_offset(&self) -> i64 {
        self.synced_offset.get()
    }

    pub fn max_timestamp(&self) -> i64 {
        self.max_timestamp.get()
    }

    pub fn first_timestamp(&self) -> Option<i64> {
        self.first_timestamp.get()
    }

    /// The transactions aborted by markers in this segment.
    pub fn txn_index(&self) -> &TxnIndex {
        &self.txn_index
    }

    pub fn log_path(&self) -> &Path {
        &self.log_path
    }

    /// Appends validated batches whose offsets are already assigned; `headers` describe them,
    /// and the copy in the tail takes each header's base offset and leader epoch (outside the
    /// CRC; for a follower's batches they are what the bytes hold already). Returns once they
    /// are in the tail (readable); the disk write follows behind. Fails without appending
    /// anything if the disk has fallen too far behind and still fails.
    pub async fn append(
        self: &Rc<Self>,
        batches: &[u8],
        headers: &[BatchHeader],
    ) -> Result<(), StorageError> {
        if self.closed.get() {
            return Err(StorageError::Closed {
                path: self.log_path.clone(),
            });
        }
        while self.size.get() - self.written.get() > UNWRITTEN_BYTES_MAX {
            if self
                .in_flight
                .borrow()
                .iter()
                .any(|write| write.outcome.is_none())
            {
                // Wait for a background write to finish (a signal may be stale: look again).
                self.completions
                    .acquire(1)
                    .await
                    .expect("the completion semaphore is never closed");
            } else {
                // Nothing in flight (writes failed): write in line, or fail without appending.
                self.write_out(false, None).await?;
            }
        }
        let position = self.size.get();
        {
            let mut tail = self.tail.borrow_mut();
            tail.push(batches, &|size| self.file.alloc_dma_buffer(size));
            for header in headers {
                let at = position + header.position as u64;
                tail.patch(at, &header.base_offset.to_be_bytes());
                tail.patch(
                    at + batch::LEADER_EPOCH_OFFSET as u64,
                    &header.leader_epoch.to_be_bytes(),
                );
            }
        }
        for header in headers {
            self.note_batch(header, position + header.position as u64);
        }
        let last = headers.last().expect("append of at least one batch");
        self.next_offset.set(last.next_offset());
        self.size.set(position + batches.len() as u64);
        self.unwritten_appends
            .borrow_mut()
            .push_back((self.size.get(), last.next_offset()));
        self.write_behind();
        self.zero_ahead();
        Ok(())
    }

    /// Makes everything appended so far durable: writes what is left (padding the last block)
    /// and fdatasyncs. Two stages, so that concurrent flushes pipeline: the write is shared
    /// with every other writer (`write_out`) and runs while an earlier flush's fdatasync is in
    /// flight; then one fdatasync at a time covers everything written before it began, and a
    /// caller whose bytes such a sync covered while it waited returns at once (group commit:
    /// the group is whatever was written during the previous sync, so it grows with the load).
    /// Index entries are not written here (see `write_pending`).
    pub async fn flush(&self) -> Result<(), StorageError> {
        let target = self.size.get();
        let target_offset = self.next_offset.get();
        loop {
            self.check_synced()?;
            if self.synced_bytes.get() >= target {
                return Ok(());
            }
            if self.written.get() < target {
                self.write_out(true, Some(target_offset)).await?;
            }
            let _permit = self
                .sync_lock
                .acquire_permit(1)
                .await
                .expect("the sync lock is never closed");
            self.check_synced()?;
            if self.synced_bytes.get() >= target {
                return Ok(());
            }
            let (bytes, offset) = (self.written.get(), self.written_offset.get());
            self.sync().await?;
            self.synced_bytes.set(self.synced_bytes.get().max(bytes));
            self.synced_offset.set(self.synced_offset.get().max(offset));
        }
    }

    /// One fdatasync of the segment file; a failure is final (`sync_failure`).
    async fn sync(&self) -> Result<(), StorageError> {
        FSYNCS.with(|count| count.set(count.get() + 1));
        let started = std::time::Instant::now();
        let synced = self.file.fdatasync().await;
        crate::metrics::latency::record(crate::metrics::latency::Timed::Fsync, started.elapsed());
        if let Err(error) = synced {
            let error = std::io::Error::from(error);
            tracing::error!(
                "fdatasync of {} failed: {error}; nothing written to it since the last good one is acknowledged",
                self.log_path.display()
            );
            *self.sync_failure.borrow_mut() = Some(error.to_string());
            return Err(StorageError::SyncFailed {
                path: self.log_path.clone(),
                reason: error.to_string(),
            });
        }
        Ok(())
    }

    fn check_synced(&self) -> Result<(), StorageError> {
        match self.sync_failure.borrow().as_ref() {
            Some(reason) => Err(StorageError::SyncFailed {
                path: self.log_path.clone(),
                reason: reason.clone(),
            }),
            None => Ok(()),
        }
    }

    /// Writes what is still only in memory (padding the last block) without waiting for an
    /// fsync, so that a crash of the process alone loses nothing, and the index entries added
    /// since the last call (page cache). Done by the shard's background flusher, off every
    /// request's path; index files are synced when the segment closes, and rebuilt from the
    /// log when a crash left them behind it.
    pub async fn write_pending(&self) -> Result<(), StorageError> {
        if self.written.get() < self.size.get() {
            self.write_out(true, None).await?;
        }
        self.persist_indexes().await
    }

    /// Returns once every batch below `offset` is written to the file (not synced): what a
    /// consumer may read and an acks=1 produce may be answered for. Concurrent callers share
    /// writes: one that finds its batches written by another's write while it waited for the
    /// write slots returns at once, and each write covers everything appended before it began.
    pub async fn write_through(&self, offset: i64) -> Result<(), StorageError> {
        if self.written_offset.get() >= offset {
            return Ok(());
        }
        self.write_out(true, Some(offset)).await
    }

    /// Flushes, trims the zero padding past the last batch, syncs the indexes, and lets the
    /// tail go. Done when the segment is rolled and at a clean shutdown; reads still work.
    pub async fn close(&self) -> Result<(), StorageError> {
        self.closed.set(true);
        if let Err(error) = self.flush().await {
            self.closed.set(false);
            return Err(error);
        }
        let size = self.size.get();
        let io_error = |error| StorageError::io(&self.log_path, error);
        self.file.truncate(size).await.map_err(io_error)?;
        self.file.fdatasync().await.map_err(io_error)?;
        self.persist_indexes().await?;
        self.index_file.sync_and_close().await?;
        self.time_index_file.sync_and_close().await?;
        self.txn_index.sync_and_close().await?;
        self.tail.borrow_mut().clear(size);
        Ok(())
    }

    /// Lets the tail go: an inactive segment is read from disk only and never appended to.
    pub fn release_tail(&self) {
        // Only bytes already on disk may go.
        if self.written.get() >= self.size.get() {
            self.tail.borrow_mut().clear(self.size.get());
        }
    }

    /// Removes the segment's files once its background writes are done, so that none lands
    /// after them; the segment must not be appended to afterwards (reads of bytes already
    /// validated still work through the open file). The indexes go first: a crash in between
    /// leaves a `.log` without indexes, which is rebuilt, never indexes without their `.log`,
    /// which a segment created later at the same base offset (after a truncation) could trust.
    pub async fn remove(&self) -> Result<(), StorageError> {
        let _all_slots = self.all_write_slots().await;
        self.closed.set(true);
        self.txn_index.remove().await?;
        self.index_file.remove().await?;
        self.time_index_file.remove().await?;
        self.file
            .remove()
            .await
            .map_err(|error| StorageError::io(&self.log_path, error))
    }

    /// Waits for the background writes and takes no more appends or writes (the files stay as
    /// they are; reads still work).
    pub async fn stop_writes(&self) {
        let _all_slots = self.all_write_slots().await;
        self.closed.set(true);
    }

    /// Every write slot: no background write is in flight while the permit is held.
    async fn all_write_slots(&self) -> glommio::sync::Permit<'_> {
        self.write_slots
            .acquire_permit(WRITES_IN_FLIGHT)
            .await
            .expect("the write slots are never closed")
    }

    /// Deletes the segment as Kafka does with `file.delete.delay.ms`: its files are renamed
    /// with the `.deleted` suffix at once (indexes first, as in `remove`), and unlinked after
    /// `delay`, so that a reader that found the segment just before keeps reading it. A zero
    /// delay removes at once. Leftover `.deleted` files are removed when the log opens.
    pub async fn delete_later(&self, delay: std::time::Duration) -> Result<(), StorageError> {
        if delay.is_zero() {
            return self.remove().await;
        }
        let _all_slots = self.all_write_slots().await;
        self.closed.set(true);
        self.index_file.close();
        self.time_index_file.close();
        self.txn_index.close();
        let paths = [
            self.txn_index.path().to_path_buf(),
            self.index_file.path().to_path_buf(),
            self.time_index_file.path().to_path_buf(),
            self.log_path.clone(),
        ];
        let renamed = off_reactor(move || {
            let mut renamed = Vec::with_capacity(paths.len());
            for path in paths {
                let deleted = deleted_path(&path);
                match std::fs::rename(&path, &deleted) {
                    Ok(()) => renamed.push(deleted),
                    Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
                    Err(error) => return Err(StorageError::io(&path, error)),
                }
            }
            Ok(renamed)
        })
        .await?;
        glommio::spawn_local(async move {
            glommio::timer::sleep(delay).await;
            off_reactor(move || {
                for path in renamed {
                    if let Err(error) = std::fs::remove_file(&path) {
                        if error.kind() != std::io::ErrorKind::NotFound {
                            tracing::warn!("cannot delete {}: {error}", path.display());
                        }
                    }
                }
            })
            .await;
        })
        .detach();
        Ok(())
    }

    fn position_for(&self, offset: i64) -> u64 {
        // Below the base offset (compaction emptied the end of the segment before) reads from
        // the start; past what an index can hold reads from the last entry.
        let relative = u32::try_from((offset - self.base_offset).max(0)).unwrap_or(u32::MAX);
        u64::from(self.index.borrow().lookup(relative))
    }

    /// Issues background writes for the chunks that filled, while write slots are free. A
    /// write of a whole chunk shares the chunk's buffer; the first one after a flush (which
    /// starts inside a chunk) copies its blocks.
    fn write_behind(self: &Rc<Self>) {
        if self.write_failure.borrow().is_some() {
            return;
        }
        loop {
            let start = self.submitted.get();
            if align_down(self.size.get()) - start < CHUNK_BYTES as u64 {
                return;
            }
            let Ok(permit) = self.write_slots.try_acquire_static_permit(1) else {
                return;
            };
            let (buffer, end) = {
                let tail = self.tail.borrow();
                let end = tail.chunk_end(start);
                let buffer = tail.full_chunk_at(start).unwrap_or_else(|| {
                    let mut copy = self.file.alloc_dma_buffer((end - start) as usize);
                    tail.copy_out(start, end, copy.as_bytes_mut());
                    Rc::new(copy)
                });
                (buffer, end)
            };
            self.submitted.set(end);
            self.in_flight.borrow_mut().push_back(InFlight {
                start,
                end,
                outcome: None,
            });
            let segment = self.clone();
            glommio::spawn_local(async move {
                let length = buffer.len();
                let outcome = match segment.file.write_rc_at(buffer, start).await {
                    Ok(done) if done == length => Ok(()),
                    Ok(done) => Err(format!("short write of {done} of {length} bytes")),
                    Err(error) => Err(error.to_string()),
                };
                segment.complete(start, outcome);
                drop(permit);
            })
            .detach();
        }
    }

    /// Records how the background write at `start` ended and moves `written` over the
    /// completed writes at the front.
    fn complete(&self, start: u64, outcome: Result<(), String>) {
        if let Err(message) = &outcome {
            self.note_failure(start, message);
        }
        let mut in_flight = self.in_flight.borrow_mut();
        if let Some(write) = in_flight.iter_mut().find(|write| write.start == start) {
            write.outcome = Some(outcome);
        }
        while let Some(Some(Ok(()))) = in_flight.front().map(|write| write.outcome.clone()) {
            let write = in_flight.pop_front().expect("a front entry");
            self.written.set(self.written.get().max(write.end));
            self.note_file_end(write.end);
            // Whole chunks are being written: zeros ahead would write every byte twice.
            self.small_writes.set(false);
        }
        drop(in_flight);
        self.note_written();
        self.tail.borrow_mut().release_written(self.written.get());
        self.completions.signal(1);
    }

    /// Moves `written_offset` over the appends that now lie wholly below `written`.
    fn note_written(&self) {
        let written = self.written.get();
        let mut appends = self.unwritten_appends.borrow_mut();
        while let Some(&(end, next_offset)) = appends.front() {
            if end > written {
                break;
            }
            self.written_offset.set(next_offset);
            appends.pop_front();
        }
    }

    /// Logs a failed write once until writes succeed again; appends stop writing behind and
    /// the next flush (or an append over `UNWRITTEN_BYTES_MAX`) writes again from `written`.
    fn note_failure(&self, position: u64, message: &str) {
        let mut failure = self.write_failure.borrow_mut();
        if failure.is_none() {
            tracing::warn!(
                "write to {} at byte {position} failed: {message}; produce requests get KAFKA_STORAGE_ERROR until a write succeeds",
                self.log_path.display()
            );
            *failure = Some(message.to_string());
        }
    }

    /// Writes everything not yet on disk, in order: whole blocks only, or (`pad`) up to the
    /// end, the last block padded with zeros. Waits first for every background write (holding
    /// all write slots meanwhile, so nothing overlaps), and starts again from `written` if one
    /// failed. With `until`, returns at once when the batches below that offset were written
    /// while it waited for the slots.
    async fn write_out(&self, pad: bool, until: Option<i64>) -> Result<(), StorageError> {
        let _all_slots = self.all_write_slots().await;
        if until.is_some_and(|offset| self.written_offset.get() >= offset) {
            return Ok(());
        }
        self.in_flight.borrow_mut().clear();
        let size = self.size.get();
        let mut from = align_down(self.written.get());
        let to = if pad {
            align_up(size)
        } else {
            align_down(size)
        };
        if pad {
            self.small_writes.set(to - from <= SMALL_WRITE_BYTES);
        }
        while from < to && self.written.get() < size {
            let length = (to - from).min(WRITE_BYTES_MAX);
            let data_end = (from + length).min(size);
            let mut buffer = self.file.alloc_dma_buffer(length as usize);
            let bytes = buffer.as_bytes_mut();
            let data_length = (data_end - from) as usize;
            self.tail
                .borrow()
                .copy_out(from, data_end, &mut bytes[..data_length]);
            bytes[data_length..].fill(0);
            let error = match self.file.write_at(buffer, from).await {
                Ok(done) if done as u64 == length => None,
                Ok(_) => Some(std::io::Error::new(
                    std::io::ErrorKind::WriteZero,
                    "short write to segment",
                )),
                Err(error) => Some(error.into()),
            };
            if let Some(error) = error {
                self.note_failure(from, &error.to_string());
                return Err(StorageError::io(&self.log_path, error));
            }
            from += length;
            self.note_file_end(from);
            self.written.set(self.written.get().max(from.min(size)));
            self.note_written();
        }
        self.submitted.set(align_down(self.written.get()));
        if let Some(failure) = self.write_failure.borrow_mut().take() {
            tracing::info!(
                "writes to {} succeed again after: {failure}",
                self.log_path.display()
            );
        }
        self.tail.borrow_mut().release_written(self.written.get());
        Ok(())
    }

    /// Writes index entries added since the last call to the index files (page cache; they
    /// are synced when the segment is closed and rebuilt from the log when in doubt).
    async fn persist_indexes(&self) -> Result<(), StorageError> {
        // One at a time: each call writes after what the calls before it wrote (the flusher,
        // a follower's fetch round and a close may all ask at once).
        let _turn = self
            .index_lock
            .acquire_permit(1)
            .await
            .expect("the index lock is never closed");
        let fresh: Vec<u8> = {
            let index = self.index.borrow();
            let entries = index.entries();
            entries[self.index_persisted.get().min(entries.len())..]
                .iter()
                .flat_map(IndexEntry::encode)
                .collect()
        };
        append_entries(
            &self.index_file,
            fresh,
            INDEX_ENTRY_BYTES,
            &self.index_persisted,
        )
        .await?;
        let fresh: Vec<u8> = {
            let index = self.time_index.borrow();
            let entries = index.entries();
            entries[self.time_index_persisted.get().min(entries.len())..]
                .iter()
                .flat_map(TimeIndexEntry::encode)
                .collect()
        };
        let persisted = &self.time_index_persisted;
        append_entries(
            &self.time_index_file,
            fresh,
            TIME_INDEX_ENTRY_BYTES,
            persisted,
        )
        .await?;
        self.txn_index.persist().await
    }
}

/// Writes encoded index entries after the `persisted` ones already in `file`.
async fn append_entries(
    file: &IndexFile,
    fresh: Vec<u8>,
    entry_bytes: usize,
    persisted: &Cell<usize>,
) -> Result<(), StorageError> {
    if fresh.is_empty() {
        return Ok(());
    }
    let count = fresh.len() / entry_bytes;
    file.write_at(fresh, (persisted.get() * entry_bytes) as u64)
        .await?;
    persisted.set(persisted.get() + count);
    Ok(())
}

#[path = "segment_read.rs"]
mod read;
#[path = "segment_recovery.rs"]
mod recovery;
#[path = "segment_truncation.rs"]
mod truncation;
#[path = "segment_zeroing.rs"]
mod zeroing;
use zeroing::SMALL_WRITE_BYTES;

/// `<path>.deleted`: a segment file waiting for `file.delete.delay.ms` to pass.
pub fn deleted_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(DELETED_SUFFIX);
    PathBuf::from(name)
}

/// Kafka's suffix for segment files scheduled for deletion.
pub const DELETED_SUFFIX: &str = ".deleted";
