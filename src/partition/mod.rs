//! A partition replica hosted on this node: its log, its offsets, its place among the
//! partition's replicas, and the fetches and produces waiting for it.
//!
//! Lives on the one shard that owns it (see `runtime::placement`); nothing here is `Send`.
//! Invariants: appends (a leader's, a follower's copy, truncation) are serialised by
//! `append_permit`, so offsets are assigned in write order; a leader appends only in its own
//! leader epoch, and a follower only copies its leader's batches, offsets and epochs kept.
//! The high watermark never passes the log end; on the leader it is the smallest log end of
//! the (maximal) ISR (`replicas`), and it never moves back while this replica leads; on a
//! follower it is the leader's, as far as the follower's log reaches. Consumers read only
//! below it; followers read up to the log end. Waiters are woken whenever the log end, the
//! high watermark or the replica's role changes.

pub mod append_permit;
mod following;
mod loading;
use loading::{below, last_offset};
pub mod producer_state;
mod transactions;

pub use transactions::{Marker, TxnVerifier};

use std::cell::{Cell, RefCell};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::metadata::PartitionImage;
pub use crate::replication::follower::FetchedAt;
use crate::replication::leader::{self, IsrChangeAnswer, Position, Replicas, Role, Transition};
use crate::storage::batch::BatchHeader;
use crate::storage::log_dirs::{self, LogDirHandle};
use crate::storage::{now_ms, CleanerConfig, CompactionStats, Log, LogConfig, StorageError};
use append_permit::{AppendPermit, AppendPermitGuard};
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
    /// acks=all (-1): written, fsynced, and in the log of every in-sync replica.
    All,
}

#[derive(Debug, thiserror::Error)]
pub enum PartitionError {
    #[error("partition {0} is not hosted here")]
    NotHosted(String),
    /// The request's principal may not do this to the partition's topic (never sent to the
    /// partition's shard: the APIs check before they scatter).
    #[error("Topic authorization failed.")]
    TopicAuthorizationFailed,
    /// Hosted or not, this broker does not lead the partition now.
    #[error("this broker is not the leader of the partition")]
    NotLeader,
    #[error("out of order sequence number: expected {expected}, received {received}")]
    OutOfOrderSequence { expected: i32, received: i32 },
    #[error("producer epoch {received} is older than the current epoch {current}")]
    InvalidProducerEpoch { current: i16, received: i16 },
    #[error("producer epoch {received} is fenced: the transaction coordinator holds a newer one for its transactional id (a newer producer, or its transaction timed out and was aborted)")]
    FencedByCoordinator { received: i16 },
    #[error(
        "a marker from coordinator epoch {received}, older than the {current} of the last one"
    )]
    CoordinatorFenced { current: i32, received: i32 },
    /// A transactional batch whose partition is not in an open transaction of its producer,
    /// as the coordinator says (KIP-890's verification).
    #[error("the batch's transaction is not open on this partition at its coordinator")]
    NotInTransaction,
    /// The coordinator could not verify the batch's transaction (it is moving or loading).
    #[error("the transaction coordinator could not verify the batch: {0}")]
    VerificationUnavailable(String),
    #[error("the in-sync replicas of {partition} are {isr:?}, fewer than min.insync.replicas={required}")]
    NotEnoughReplicas {
        partition: String,
        isr: Vec<i32>,
        required: usize,
    },
    #[error("written to {partition}, but its in-sync replicas {isr:?} are now fewer than min.insync.replicas={required}")]
    NotEnoughReplicasAfterAppend {
        partition: String,
        isr: Vec<i32>,
        required: usize,
    },
    #[error("the in-sync replicas of {0} did not all have the records within the request timeout")]
    ReplicationTimedOut(String),
    /// The request's leader epoch is older than this replica's.
    #[error("leader epoch {received} is older than the current {current}")]
    FencedLeaderEpoch { current: i32, received: i32 },
    /// The request's leader epoch is newer than this replica knows.
    #[error("leader epoch {received} is newer than the current {current}")]
    UnknownLeaderEpoch { current: i32, received: i32 },
    /// A storage failure left the replica in a state it cannot vouch for (an fdatasync, an epoch
    /// or a truncation failed): it serves nothing until the broker restarts and recovers it.
    #[error("partition {partition} is offline after a storage failure: {reason}")]
    Offline { partition: String, reason: String },
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
    /// Below the first open transaction and the high watermark: what read_committed
    /// consumers may read.
    pub last_stable_offset: i64,
    /// For a read_committed read: the aborted transactions its records overlap, as (producer
    /// id, first offset); `None` for other reads.
    pub aborted: Option<Vec<(i64, i64)>>,
    pub log_start_offset: i64,
    pub records: Bytes,
    /// For a follower whose log diverged from the leader's: the largest epoch both logs may
    /// share and where it ends in the leader's log (Fetch v12+'s diverging epoch).
    pub diverging: Option<(i32, i64)>,
}

/// A follower's fetch, as the leader sees it.
#[derive(Clone, Copy, Debug)]
pub struct FollowerFetch {
    pub replica_id: i32,
    pub fetch_offset: i64,
    /// The epoch of the follower's last batch (-1: none, or the follower does not say).
    pub last_fetched_epoch: i32,
    pub max_bytes: usize,
}

/// An ISR change this partition's leader wants the controller to make.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WantedIsr {
    pub leader_epoch: i32,
    pub partition_epoch: i32,
    pub isr: Vec<i32>,
}

pub struct Partition {
    pub topic: Arc<str>,
    pub index: i32,
    log: Log,
    /// Set when the partition is deleted here: its log has no segments any more, and whoever
    /// still holds the partition (a fetcher with an answer on its way, a waiting request) must
    /// not touch it (`check_online`).
    removed: Cell<bool>,
    replicas: RefCell<Replicas>,
    high_watermark: Cell<i64>,
    /// `min.insync.replicas` of the topic.
    min_insync_replicas: Cell<usize>,
    append_permit: AppendPermit,
    producers: RefCell<ProducerState>,
    waiters: RefCell<Vec<flume::Sender<()>>>,
    /// Messages appended since the last fsync (for `flush.messages`).
    unflushed_messages: Cell<i64>,
    /// When the first message not yet fsynced was appended (for `flush.ms`).
    unflushed_since_ms: Cell<Option<i64>>,
    /// The log directory holding the log: offline (see `PartitionError::Offline`) once a
    /// storage failure of any of its partitions left it in doubt.
    dir: LogDirHandle,
}

impl Partition {
    /// Opens the replica on node `node_id`. It leads nothing until `adopt` hands it its place
    /// in the partition; its high watermark is the one its last checkpoint recorded (else its
    /// log start).
    pub async fn open(
        topic: Arc<str>,
        index: i32,
        node_id: i32,
        dir: LogDirHandle,
        config: LogConfig,
        clean: bool,
    ) -> Result<Partition, StorageError> {
        let path = dir.path().join(format!("{topic}-{index}"));
        let mut producers = ProducerState::default();
        let log = match Log::open(&path, config, clean, &mut producers).await {
            Ok(log) => log,
            Err(error) => {
                if log_dirs::fails_directory(&error) {
                    dir.fail(&format!("opening {topic}-{index} failed: {error}"));
                }
                return Err(error);
            }
        };
        Ok(Partition {
            topic,
            index,
            high_watermark: Cell::new(log.checkpointed_high_watermark()),
            log,
            removed: Cell::new(false),
            replicas: RefCell::new(Replicas::new(node_id)),
            min_insync_replicas: Cell::new(1),
            append_permit: AppendPermit::new(),
            producers: RefCell::new(producers),
            waiters: RefCell::new(Vec::new()),
            unflushed_messages: Cell::new(0),
            unflushed_since_ms: Cell::new(None),
            dir,
        })
    }

    /// Waits for the append permit: appends, truncations, role changes, retention and
    /// compaction swaps hold it, one at a time, in the order they asked for it (so appends
    /// started in request order are written in request order).
    async fn lock_appends(&self) -> AppendPermitGuard<'_> {
        self.append_permit.acquire().await
    }

    /// Takes the replica's log directory offline after a storage failure that left it in
    /// doubt (KIP-112): produce, fetch and replication of every partition in it answer
    /// KAFKA_STORAGE_ERROR until the broker restarts, when recovery rebuilds the logs from what
    /// is on disk, and the controller hears of it to move their leadership. Waiters wake to see
    /// it. Returns the error that says so.
    fn take_offline(&self, reason: String) -> PartitionError {
        self.dir.fail(&format!("{}: {reason}", self.name()));
        self.wake_waiters();
        PartitionError::Offline {
            partition: self.name(),
            reason,
        }
    }

    /// Whether the replica's log directory still serves.
    fn check_online(&self) -> Result<(), PartitionError> {
        if self.removed.get() {
            return Err(PartitionError::NotHosted(self.name()));
        }
        match self.dir.failure() {
            Some(reason) => Err(PartitionError::Offline {
                partition: self.name(),
                reason: reason.to_string(),
            }),
            None => Ok(()),
        }
    }

    /// The log directory of the replica.
    pub fn log_dir(&self) -> &LogDirHandle {
        &self.dir
    }

    /// Passes a storage result on, taking the directory offline first when its error leaves
    /// the directory in doubt (`log_dirs::fails_directory`: an fdatasync, or a write that
    /// failed for another reason than a full disk).
    fn storage<T>(&self, result: Result<T, StorageError>) -> Result<T, PartitionError> {
        match result {
            Err(error) if log_dirs::fails_directory(&error) => {
                Err(self.take_offline(error.to_string()))
            }
            other => Ok(other?),
        }
    }

    /// Takes the replica offline when `result` failed in a way that leaves it in doubt.
    fn offline_on_error<T>(
        &self,
        result: Result<T, StorageError>,
        what: &str,
    ) -> Result<T, PartitionError> {
        result.map_err(|error| self.take_offline(format!("{what} failed: {error}")))
    }

    pub fn name(&self) -> String {
        format!("{}-{}", self.topic, self.index)
    }

    /// The offset below which every in-sync replica has every record: what consumers see.
    pub fn high_watermark(&self) -> i64 {
        self.high_watermark.get()
    }

    /// Moves the high watermark (and what the log's next checkpoint records of it).
    fn set_high_watermark(&self, offset: i64) {
        self.high_watermark.set(offset);
        self.log.set_high_watermark(offset);
    }

    /// The offset the next record appended here will get.
    pub fn log_end_offset(&self) -> i64 {
        self.log.next_offset()
    }

    pub fn is_leader(&self) -> bool {
        self.replicas.borrow().is_leader()
    }

    /// Whether some replica of the partition is missing from its ISR.
    pub fn is_under_replicated(&self) -> bool {
        let replicas = self.replicas.borrow();
        replicas.isr.len() < replicas.replicas.len()
    }

    /// The leader this replica follows (-1: none now), or `None` when it leads or its log
    /// directory is offline or it was deleted here (it copies nothing more).
    pub fn leader_to_follow(&self) -> Option<i32> {
        if self.dir.failure().is_some() || self.removed.get() {
            return None;
        }
        match self.replicas.borrow().role() {
            Role::Leader => None,
            Role::Follower { leader } => Some(leader),
        }
    }

    pub fn leader_epoch(&self) -> i32 {
        self.replicas.borrow().leader_epoch
    }

    pub fn set_min_insync_replicas(&self, required: usize) {
        self.min_insync_replicas.set(required.max(1));
    }

    /// Takes the partition's place from a metadata image. Becoming leader starts a leader
    /// epoch at the log end (under the append permit, so no append of the old epoch lands
    /// after it); waiters see every change.
    pub async fn adopt(&self, image: &PartitionImage) -> Transition {
        let _permit = self.lock_appends().await;
        let transition = self.replicas.borrow_mut().adopt(image, now_ms());
        match transition {
            Transition::BecameLeader => {
                let end = self.log.next_offset();
                // A leader whose epoch start is not recorded would answer followers' epoch
                // queries wrongly: it must not lead.
                let recorded = self.log.assign_epoch(image.leader_epoch, end);
                let _ = self.offline_on_error(recorded, "recording the leader epoch");
                tracing::info!(
                    "{} is led here from offset {end} in leader epoch {}, ISR {:?}",
                    self.name(),
                    image.leader_epoch,
                    image.isr
                );
            }
            Transition::BecameFollower if image.leader < 0 => tracing::info!(
                "{} has no live in-sync leader in leader epoch {}",
                self.name(),
                image.leader_epoch
            ),
            Transition::BecameFollower => tracing::info!(
                "{} follows broker {} in leader epoch {} (log end {})",
                self.name(),
                image.leader,
                image.leader_epoch,
                self.log.next_offset()
            ),
            Transition::Unchanged => {}
        }
        self.advance_high_watermark();
        self.wake_waiters();
        transition
    }

    /// Moves the leader's high watermark up to what the ISR holds (never down).
    fn advance_high_watermark(&self) {
        let replicas = self.replicas.borrow();
        if !replicas.is_leader() {
            return;
        }
        // The leader counts only what is written to its file: a consumer must never read a
        // record that a crash of this process could take back.
        let Some(candidate) = replicas.high_watermark(self.log.written_offset()) else {
            return;
        };
        drop(replicas);
        if candidate > self.high_watermark.get() {
            self.set_high_watermark(candidate);
            self.wake_waiters();
        }
    }

    /// Bytes of the partition's segments (DescribeLogDirs' partition size).
    pub fn size_bytes(&self) -> u64 {
        self.log.size_bytes()
    }

    pub fn log_start_offset(&self) -> i64 {
        self.log.start_offset()
    }

    /// Appends validated batches as the leader (offsets and the leader epoch are assigned
    /// here) and waits as `acks` asks: for acks=all, until every in-sync replica has them or
    /// `timeout` passes. acks=all is refused before writing when the ISR is smaller than
    /// `min.insync.replicas`.
    pub async fn append(
        &self,
        batches: impl AsRef<[u8]>,
        headers: Vec<BatchHeader>,
        acks: Acks,
        timeout: Duration,
    ) -> Result<AppendOutcome, PartitionError> {
        self.append_verified(batches, headers, acks, timeout, None)
            .await
    }

    /// `append`, first asking `verifier` about a transactional batch that would start its
    /// producer's transaction on this partition. The permit is held meanwhile, so appends stay
    /// in request order; a verification costs one question to the coordinator per partition
    /// and transaction.
    pub async fn append_verified(
        &self,
        batches: impl AsRef<[u8]>,
        mut headers: Vec<BatchHeader>,
        acks: Acks,
        timeout: Duration,
        verifier: Option<TxnVerifier>,
    ) -> Result<AppendOutcome, PartitionError> {
        let deadline = Instant::now() + timeout;
        let permit = self.lock_appends().await;
        self.check_online()?;
        let leader_epoch = {
            let replicas = self.replicas.borrow();
            if !replicas.is_leader() {
                return Err(PartitionError::NotLeader);
            }
            if acks == Acks::All && replicas.isr.len() < self.min_insync_replicas.get() {
                return Err(PartitionError::NotEnoughReplicas {
                    partition: self.name(),
                    isr: replicas.isr.clone(),
                    required: self.min_insync_replicas.get(),
                });
            }
            replicas.leader_epoch
        };
        if let Some(verifier) = verifier {
            let starting = self.producers.borrow().starts_transaction(&headers);
            if let Some((producer_id, epoch)) = starting {
                verifier(producer_id, epoch).await?;
                if !self.is_leader() {
                    return Err(PartitionError::NotLeader);
                }
            }
        }
        if let Some(base_offset) = self.check_sequences(&headers)? {
            drop(permit);
            // A retried batch is answered once its first append is as safe as acks asks.
            let end = base_offset + i64::from(headers[0].last_offset_delta) + 1;
            if acks == Acks::All {
                self.flush().await?;
                self.await_replication(end, leader_epoch, deadline).await?;
            } else {
                self.storage(self.log.write_through(end).await)?;
            }
            return Ok(AppendOutcome {
                base_offset,
                log_start_offset: self.log.start_offset(),
            });
        }
        let active_before = self.log.active_base_offset();
        let base_offset =
            self.storage(self.log.append(batches, &mut headers, leader_epoch).await)?;
        if self.log.active_base_offset() != active_before {
            // Rolled: the producer state at the new segment's base, before this append.
            let snapshot = self.producers.borrow().snapshot();
            if let Err(error) = self.log.write_snapshot(base_offset, &snapshot).await {
                tracing::warn!(
                    "cannot write a producer snapshot of {}: {error}",
                    self.name()
                );
            }
        }
        self.record_producers(&headers).await?;
        drop(permit);
        let end = headers.last().map_or(base_offset, BatchHeader::next_offset);
        // Followers may fetch it now; consumers once it is written (`advance_high_watermark`).
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
        } else {
            // Every acks level waits for the write to the file (acks=0 too, though nobody
            // hears the answer): only then may consumers read it, and an acks=1 answer says a
            // crash of this process cannot lose it.
            self.storage(self.log.write_through(end).await)?;
        }
        self.advance_high_watermark();
        if acks == Acks::All {
            self.await_replication(end, leader_epoch, deadline).await?;
        }
        Ok(AppendOutcome {
            base_offset,
            log_start_offset: self.log.start_offset(),
        })
    }

    /// Waits until the high watermark reaches `end` while this replica leads in
    /// `leader_epoch`, then checks the ISR is still at least `min.insync.replicas`.
    async fn await_replication(
        &self,
        end: i64,
        leader_epoch: i32,
        deadline: Instant,
    ) -> Result<(), PartitionError> {
        loop {
            {
                let replicas = self.replicas.borrow();
                if !replicas.is_leader() || replicas.leader_epoch != leader_epoch {
                    return Err(PartitionError::NotLeader);
                }
                if self.high_watermark.get() >= end {
                    let required = self.min_insync_replicas.get();
                    if replicas.isr.len() < required {
                        return Err(PartitionError::NotEnoughReplicasAfterAppend {
                            partition: self.name(),
                            isr: replicas.isr.clone(),
                            required,
                        });
                    }
                    return Ok(());
                }
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(PartitionError::ReplicationTimedOut(self.name()));
            }
            let (waiter, woken) = flume::bounded(1);
            self.waiters.borrow_mut().push(waiter);
            futures_lite::future::or(
                async {
                    let _ = woken.recv_async().await;
                },
                glommio::timer::sleep(deadline - now),
            )
            .await;
        }
    }

    /// A follower's fetch reaching the leader: checks the follower's log has not diverged,
    /// records its progress, moves the high watermark, and reads from its fetch offset up to
    /// the log end. Returns the ISR expansion now due, if any.
    pub async fn read_for_follower(
        &self,
        fetch: FollowerFetch,
    ) -> Result<(ReadOutcome, Option<WantedIsr>), PartitionError> {
        self.check_online()?;
        if !self.is_leader() {
            return Err(PartitionError::NotLeader);
        }
        let log_end = self.log.next_offset();
        let position = leader::check_position(
            fetch.fetch_offset,
            fetch.last_fetched_epoch,
            self.log.start_offset(),
            log_end,
            |epoch| self.log.end_offset_for_epoch(epoch),
        );
        match position {
            Position::Read => {}
            Position::Diverging { epoch, end_offset } => {
                let outcome = ReadOutcome {
                    high_watermark: self.high_watermark(),
                    last_stable_offset: self.last_stable_offset(),
                    aborted: None,
                    log_start_offset: self.log.start_offset(),
                    records: Bytes::new(),
                    diverging: Some((epoch, end_offset)),
                };
                return Ok((outcome, None));
            }
            Position::OutOfRange => {
                return Err(StorageError::OffsetOutOfRange {
                    offset: fetch.fetch_offset,
                    start: self.log.start_offset(),
                    end: log_end,
                }
                .into());
            }
        }
        self.replicas.borrow_mut().record_fetch(
            fetch.replica_id,
            fetch.fetch_offset,
            log_end,
            now_ms(),
        );
        self.advance_high_watermark();
        let wanted = {
            let epoch_start = {
                let leader_epoch = self.replicas.borrow().leader_epoch;
                self.log.end_offset_for_epoch(leader_epoch - 1).1.max(0)
            };
            let high_watermark = self.high_watermark();
            let mut replicas = self.replicas.borrow_mut();
            replicas
                .expand_if_due(fetch.replica_id, high_watermark, epoch_start)
                .map(|isr| WantedIsr {
                    leader_epoch: replicas.leader_epoch,
                    partition_epoch: replicas.partition_epoch,
                    isr,
                })
        };
        if wanted.is_some() {
            self.advance_high_watermark();
        }
        let records = self.storage(self.log.read(fetch.fetch_offset, fetch.max_bytes).await)?;
        let outcome = ReadOutcome {
            high_watermark: self.high_watermark(),
            last_stable_offset: self.last_stable_offset(),
            aborted: None,
            log_start_offset: self.log.start_offset(),
            records,
            diverging: None,
        };
        Ok((outcome, wanted))
    }

    /// The ISR without followers that have not caught up for `lag_max_ms`, when that is due;
    /// it is then pending until an image shows the outcome or `isr_change_answered` forgets it.
    pub fn isr_shrink(&self, lag_max_ms: i64) -> Option<WantedIsr> {
        let mut replicas = self.replicas.borrow_mut();
        let isr = replicas.shrink(self.log.next_offset(), lag_max_ms, now_ms())?;
        tracing::warn!(
            "{}: followers {:?} fell behind for more than {lag_max_ms} ms; shrinking the ISR {:?} to {isr:?}",
            self.name(),
            replicas
                .isr
                .iter()
                .filter(|replica| !isr.contains(replica))
                .collect::<Vec<_>>(),
            replicas.isr
        );
        replicas.set_pending(isr.clone());
        Some(WantedIsr {
            leader_epoch: replicas.leader_epoch,
            partition_epoch: replicas.partition_epoch,
            isr,
        })
    }

    /// Takes the controller's answer to `wanted` (`Replicas::isr_change_answered`): returns
    /// whether to ask again.
    pub fn isr_change_answered(&self, wanted: &WantedIsr, answer: IsrChangeAnswer) -> bool {
        self.replicas.borrow_mut().isr_change_answered(
            &wanted.isr,
            wanted.leader_epoch,
            wanted.partition_epoch,
            answer,
        )
    }

    /// Fsyncs everything appended so far (one fsync for every batch appended since the last).
    pub async fn flush(&self) -> Result<(), PartitionError> {
        let pending = self.unflushed_messages.replace(0);
        let since = self.unflushed_since_ms.take();
        let flushed = self.storage(self.log.flush().await);
        if flushed.is_err() {
            self.unflushed_messages
                .set(self.unflushed_messages.get().saturating_add(pending));
            self.unflushed_since_ms
                .set(since.or(self.unflushed_since_ms.get()));
        }
        flushed
    }

    /// Writes what the log holds only in memory to disk (no fsync), bounding what a crash of
    /// the process alone can lose of acks=0/1 writes.
    pub async fn write_pending(&self) -> Result<(), PartitionError> {
        self.check_online()?;
        self.storage(self.log.write_pending().await)
    }

    /// Fsyncs if the oldest unflushed message is older than `flush.ms`.
    pub async fn flush_if_due(&self, now_ms: i64) -> Result<(), PartitionError> {
        self.check_online()?;
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
        let _permit = self.lock_appends().await;
        self.check_online()?;
        self.storage(self.log.apply_retention(now_ms).await)
    }

    /// DeleteRecords: moves the log start to `offset` (-1 means the high watermark) and
    /// returns the new low watermark.
    pub async fn delete_records(&self, offset: i64) -> Result<i64, PartitionError> {
        let _permit = self.lock_appends().await;
        self.check_online()?;
        let offset = if offset == -1 {
            self.high_watermark()
        } else {
            offset
        };
        if offset > self.high_watermark() {
            return Err(StorageError::OffsetOutOfRange {
                offset,
                start: self.log.start_offset(),
                end: self.high_watermark(),
            }
            .into());
        }
        self.storage(self.log.delete_records_before(offset).await)
    }

    /// Flushes and closes the log for a clean shutdown, with a producer-state snapshot. A log
    /// in an offline directory is left as it is (the next start recovers it, unclean).
    pub async fn close(&self) -> Result<(), PartitionError> {
        let _permit = self.lock_appends().await;
        self.check_online()?;
        let snapshot = self.producers.borrow().snapshot();
        Ok(self.log.close(&snapshot).await?)
    }

    /// Forgets idempotent producers idle for `producer.id.expiration.ms`; returns how many.
    pub fn expire_producers(&self, now_ms: i64, expiration_ms: i64) -> usize {
        self.producers.borrow_mut().expire(now_ms, expiration_ms)
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
                SequenceCheck::StaleCoordinator { current, received } => {
                    return Err(PartitionError::CoordinatorFenced { current, received })
                }
            }
        }
        Ok(None)
    }

    /// A consumer's read: whole batches from `offset`, none at or past the high watermark
    /// (`read_committed`: the last stable offset), with the aborted transactions a
    /// read_committed consumer must skip.
    pub async fn read(
        &self,
        offset: i64,
        max_bytes: usize,
        read_committed: bool,
    ) -> Result<ReadOutcome, PartitionError> {
        self.check_online()?;
        let high_watermark = self.high_watermark();
        let last_stable_offset = self.last_stable_offset();
        let limit = match read_committed {
            true => last_stable_offset,
            false => high_watermark,
        };
        let (start, end) = (self.log.start_offset(), self.log.next_offset());
        let records = match offset >= limit {
            true if offset < start || offset > end => {
                return Err(StorageError::OffsetOutOfRange { offset, start, end }.into())
            }
            true => Bytes::new(),
            false => {
                let records = self.storage(self.log.read(offset, max_bytes).await)?;
                below(records, limit)
            }
        };
        let aborted = read_committed.then(|| {
            let upper = last_offset(&records).map_or(offset, |last| last + 1);
            self.log.aborted_between(offset, upper)
        });
        Ok(ReadOutcome {
            high_watermark,
            last_stable_offset,
            aborted,
            log_start_offset: self.log.start_offset(),
            records,
            diverging: None,
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

    /// Arranges for `waiter` to be signalled once the high watermark (a follower's fetch: the
    /// log end) passes `offset` (at once if it has), or when this replica's role changes.
    pub fn wait_for_data(&self, offset: i64, follower: bool, waiter: flume::Sender<()>) {
        let end = match follower {
            true => self.log.next_offset(),
            false => self.high_watermark(),
        };
        if end > offset {
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
        self.check_online()?;
        if !self.log.needs_compaction(config.min_cleanable_dirty_ratio) {
            return Ok(None);
        }
        let plan = self
            .log
            .plan_compaction(
                config.delete_retention_ms,
                now_ms,
                self.last_stable_offset(),
            )
            .await?;
        let permit = self.lock_appends().await;
        let stats = self.log.install_compaction(plan).await?;
        drop(permit);
        Ok(Some(stats))
    }

    /// Deletes the log (its directory goes after `file.delete.delay.ms`). Waits for the append
    /// permit, so no compaction swap is under way.
    pub async fn remove(&self) -> Result<(), PartitionError> {
        let _permit = self.lock_appends().await;
        self.removed.set(true);
        Ok(self.log.delete_later().await?)
    }

    /// Whether the partition was deleted here (its log must not be read any more).
    pub fn is_removed(&self) -> bool {
        self.removed.get()
    }

    fn wake_waiters(&self) {
        for waiter in self.waiters.borrow_mut().drain(..) {
            let _ = waiter.try_send(());
        }
    }
}
