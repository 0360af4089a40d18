//! A partition replica hosted on this node: its log, its offsets and the fetchers waiting for it.
//!
//! Lives on the one shard that owns it (see `runtime::placement`); nothing here is `Send`.
//! Invariants: appends are serialised by `append_permit`, so offsets are assigned in write order;
//! on a single node the high watermark is the log end offset once a write has completed; waiters
//! are woken after the log end moves.

pub mod producer_state;

use std::cell::{Cell, RefCell};
use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use glommio::sync::Semaphore;

use crate::storage::batch::BatchHeader;
use crate::storage::{now_ms, CleanerConfig, CompactionStats, Log, LogConfig, StorageError};
use producer_state::{ProducerState, SequenceCheck};

/// Waiters kept per partition before disconnected ones are pruned.
const WAITERS_PRUNE_AT: usize = 256;

/// What a produce asked to wait for before it is answered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Acks {
    /// acks=0: no response at all.
    None,
    /// acks=1: written to the log.
    Leader,
    /// acks=all (-1): written and fsynced (and, in a cluster, replicated).
    All,
}

#[derive(Debug, thiserror::Error)]
pub enum PartitionError {
    #[error("partition {0} is not hosted here")]
    NotHosted(String),
    /// Hosted or not, this broker does not lead the partition now.
    #[error("this broker is not the leader of the partition")]
    NotLeader,
    #[error("out of order sequence number: expected {expected}, received {received}")]
    OutOfOrderSequence { expected: i32, received: i32 },
    #[error("producer epoch {received} is older than the current epoch {current}")]
    InvalidProducerEpoch { current: i16, received: i16 },
    #[error(transparent)]
    Storage(#[from] StorageError),
}

/// Where an append landed.
#[derive(Clone, Copy, Debug)]
pub struct AppendOutcome {
    pub base_offset: i64,
    pub log_start_offset: i64,
}

/// What a read returned.
#[derive(Clone, Debug)]
pub struct ReadOutcome {
    pub high_watermark: i64,
    pub log_start_offset: i64,
    pub records: Bytes,
}

pub struct Partition {
    pub topic: Arc<str>,
    pub index: i32,
    log: Log,
    append_permit: Semaphore,
    producers: RefCell<ProducerState>,
    waiters: RefCell<Vec<flume::Sender<()>>>,
    /// Messages appended since the last fsync (for `flush.messages`).
    unflushed_messages: Cell<i64>,
    /// When the first message not yet fsynced was appended (for `flush.ms`).
    unflushed_since_ms: Cell<Option<i64>>,
}

impl Partition {
    pub async fn open(
        topic: Arc<str>,
        index: i32,
        log_dir: &Path,
        config: LogConfig,
        clean: bool,
    ) -> Result<Partition, StorageError> {
        let dir = log_dir.join(format!("{topic}-{index}"));
        let mut producers = ProducerState::default();
        let log = Log::open(&dir, config, clean, &mut producers).await?;
        Ok(Partition {
            topic,
            index,
            log,
            append_permit: Semaphore::new(1),
            producers: RefCell::new(producers),
            waiters: RefCell::new(Vec::new()),
            unflushed_messages: Cell::new(0),
            unflushed_since_ms: Cell::new(None),
        })
    }

    pub fn name(&self) -> String {
        format!("{}-{}", self.topic, self.index)
    }

    pub fn high_watermark(&self) -> i64 {
        self.log.next_offset()
    }

    /// Bytes of the partition's segments (DescribeLogDirs' partition size).
    pub fn size_bytes(&self) -> u64 {
        self.log.size_bytes()
    }

    pub fn log_start_offset(&self) -> i64 {
        self.log.start_offset()
    }

    /// Appends validated batches (offsets are assigned here) and waits as `acks` asks.
    pub async fn append(
        &self,
        batches: Vec<u8>,
        mut headers: Vec<BatchHeader>,
        acks: Acks,
    ) -> Result<AppendOutcome, PartitionError> {
        let permit = self
            .append_permit
            .acquire_permit(1)
            .await
            .expect("the append semaphore is never closed");
        if let Some(base_offset) = self.check_sequences(&headers)? {
            return Ok(AppendOutcome {
                base_offset,
                log_start_offset: self.log.start_offset(),
            });
        }
        let active_before = self.log.active_base_offset();
        let base_offset = self.log.append(batches, &mut headers, 0).await?;
        if self.log.active_base_offset() != active_before {
            // Rolled: the producer state at the new segment's base, before this append.
            let snapshot = self.producers.borrow().snapshot();
            if let Err(error) = self.log.write_snapshot(base_offset, &snapshot) {
                tracing::warn!(
                    "cannot write a producer snapshot of {}: {error}",
                    self.name()
                );
            }
        }
        self.record_producers(&headers);
        drop(permit);
        self.wake_waiters();
        let messages: i64 = headers
            .iter()
            .map(|header| i64::from(header.record_count))
            .sum();
        self.unflushed_messages
            .set(self.unflushed_messages.get().saturating_add(messages));
        if self.unflushed_since_ms.get().is_none() {
            self.unflushed_since_ms.set(Some(now_ms()));
        }
        if acks == Acks::All || self.unflushed_messages.get() >= self.log.config().flush_messages {
            self.flush().await?;
        }
        Ok(AppendOutcome {
            base_offset,
            log_start_offset: self.log.start_offset(),
        })
    }

    /// Fsyncs everything appended so far (one fsync for every batch appended since the last).
    pub async fn flush(&self) -> Result<(), PartitionError> {
        let pending = self.unflushed_messages.replace(0);
        let since = self.unflushed_since_ms.take();
        if let Err(error) = self.log.flush().await {
            self.unflushed_messages
                .set(self.unflushed_messages.get().saturating_add(pending));
            self.unflushed_since_ms
                .set(since.or(self.unflushed_since_ms.get()));
            return Err(error.into());
        }
        Ok(())
    }

    /// Writes what the log holds only in memory to disk (no fsync), bounding what a crash of
    /// the process alone can lose of acks=0/1 writes.
    pub async fn write_pending(&self) -> Result<(), PartitionError> {
        Ok(self.log.write_pending().await?)
    }

    /// Fsyncs if the oldest unflushed message is older than `flush.ms`.
    pub async fn flush_if_due(&self, now_ms: i64) -> Result<(), PartitionError> {
        let due = self
            .unflushed_since_ms
            .get()
            .is_some_and(|since| now_ms.saturating_sub(since) >= self.log.config().flush_ms);
        if due {
            self.flush().await?;
        }
        Ok(())
    }

    /// Deletes what `retention.ms` / `retention.bytes` no longer keep; returns the segments
    /// deleted. Holds the append permit, as compaction's swap does.
    pub async fn apply_retention(&self, now_ms: i64) -> Result<usize, PartitionError> {
        let _permit = self
            .append_permit
            .acquire_permit(1)
            .await
            .expect("the append semaphore is never closed");
        Ok(self.log.apply_retention(now_ms).await?)
    }

    /// DeleteRecords: moves the log start to `offset` (-1 means the high watermark) and
    /// returns the new low watermark.
    pub async fn delete_records(&self, offset: i64) -> Result<i64, PartitionError> {
        let _permit = self
            .append_permit
            .acquire_permit(1)
            .await
            .expect("the append semaphore is never closed");
        let offset = if offset == -1 {
            self.high_watermark()
        } else {
            offset
        };
        Ok(self.log.delete_records_before(offset).await?)
    }

    /// Flushes and closes the log for a clean shutdown, with a producer-state snapshot.
    pub async fn close(&self) -> Result<(), PartitionError> {
        let _permit = self
            .append_permit
            .acquire_permit(1)
            .await
            .expect("the append semaphore is never closed");
        let snapshot = self.producers.borrow().snapshot();
        Ok(self.log.close(&snapshot).await?)
    }

    fn record_producers(&self, headers: &[BatchHeader]) {
        let mut producers = self.producers.borrow_mut();
        headers.iter().for_each(|header| producers.record(header));
    }

    /// Checks idempotent producers' sequences; `Some(offset)` when the batch was already
    /// appended (a retry), to be answered with its first offset.
    fn check_sequences(&self, headers: &[BatchHeader]) -> Result<Option<i64>, PartitionError> {
        let producers = self.producers.borrow();
        for header in headers {
            match producers.check(header) {
                SequenceCheck::Append => {}
                SequenceCheck::Duplicate { base_offset } if headers.len() == 1 => {
                    return Ok(Some(base_offset))
                }
                SequenceCheck::Duplicate { .. } => {
                    return Err(PartitionError::OutOfOrderSequence {
                        expected: -1,
                        received: header.base_sequence,
                    })
                }
                SequenceCheck::OutOfOrder { expected, received } => {
                    return Err(PartitionError::OutOfOrderSequence { expected, received })
                }
                SequenceCheck::StaleEpoch { current, received } => {
                    return Err(PartitionError::InvalidProducerEpoch { current, received })
                }
            }
        }
        Ok(None)
    }

    pub async fn read(&self, offset: i64, max_bytes: usize) -> Result<ReadOutcome, PartitionError> {
        let records = self.log.read(offset, max_bytes).await?;
        Ok(ReadOutcome {
            high_watermark: self.high_watermark(),
            log_start_offset: self.log.start_offset(),
            records,
        })
    }

    /// The first offset whose batch has a timestamp at least `timestamp`, with that timestamp.
    pub async fn offset_for_timestamp(
        &self,
        timestamp: i64,
    ) -> Result<Option<(i64, i64)>, PartitionError> {
        Ok(self.log.offset_for_timestamp(timestamp).await?)
    }

    /// The record with the largest timestamp, as (offset, timestamp).
    pub async fn max_timestamp(&self) -> Result<Option<(i64, i64)>, PartitionError> {
        Ok(self.log.max_timestamp().await?)
    }

    /// Arranges for `waiter` to be signalled once the log end passes `offset` (at once if it has).
    pub fn wait_for_data(&self, offset: i64, waiter: flume::Sender<()>) {
        if self.log.next_offset() > offset {
            let _ = waiter.try_send(());
            return;
        }
        let mut waiters = self.waiters.borrow_mut();
        if waiters.len() >= WAITERS_PRUNE_AT {
            waiters.retain(|waiter| !waiter.is_disconnected());
        }
        waiters.push(waiter);
    }

    /// Takes new log settings after the topic's configs changed.
    pub fn set_log_config(&self, config: LogConfig) {
        self.log.set_config(config);
    }

    /// Compacts the log if `config`'s dirty ratio says it is due; `None` when it was not.
    /// Reading and rewriting run beside appends; only the swap of cleaned segments holds the
    /// append permit.
    pub async fn compact(
        &self,
        config: &CleanerConfig,
        now_ms: i64,
    ) -> Result<Option<CompactionStats>, PartitionError> {
        if !self.log.needs_compaction(config.min_cleanable_dirty_ratio) {
            return Ok(None);
        }
        let plan = self
            .log
            .plan_compaction(config.delete_retention_ms, now_ms)
            .await?;
        let permit = self
            .append_permit
            .acquire_permit(1)
            .await
            .expect("the append semaphore is never closed");
        let stats = self.log.install_compaction(plan).await?;
        drop(permit);
        Ok(Some(stats))
    }

    /// Deletes the log. Waits for the append permit, so no compaction swap is under way.
    pub async fn remove(&self) -> Result<(), PartitionError> {
        let _permit = self
            .append_permit
            .acquire_permit(1)
            .await
            .expect("the append semaphore is never closed");
        Ok(self.log.remove().await?)
    }

    fn wake_waiters(&self) {
        for waiter in self.waiters.borrow_mut().drain(..) {
            let _ = waiter.try_send(());
        }
    }
}
