//! The shard mesh: bounded channels between executors, carrying `ShardRequest`s.
//!
//! A request names partitions that the receiving shard owns; the answer comes back on the
//! request's own reply channel (capacity one), in the order the parts were sent. This is the only
//! path between cores; everything crossing it is `Send` and owned.

use std::sync::Arc;

use bytes::Bytes;

use super::placement::ShardId;
use crate::metadata::MetadataImage;
use crate::partition::{Acks, AppendOutcome, Marker, PartitionError, ReadOutcome};
use crate::storage::batch::BatchHeader;

/// Requests queued per shard before senders wait: backpressure, never an unbounded queue.
pub const SHARD_QUEUE_CAPACITY: usize = 1024;

pub struct ProducePart {
    pub topic: Arc<str>,
    pub partition: i32,
    pub batches: Bytes,
    pub headers: Vec<BatchHeader>,
    /// The transactional id of a version 1 client whose batches the leader verifies with the
    /// coordinator before they open a transaction here (KIP-890 part 1).
    pub verify_transaction: Option<Arc<str>>,
}

pub struct FetchPart {
    pub topic: Arc<str>,
    pub partition: i32,
    pub offset: i64,
    pub max_bytes: usize,
    /// The fetching follower's broker id; -1 for a consumer.
    pub replica_id: i32,
    /// The leader epoch the fetcher believes current; -1 when it does not say.
    pub current_leader_epoch: i32,
    /// A follower's epoch of its last batch (-1: none).
    pub last_fetched_epoch: i32,
    /// A consumer with isolation.level=read_committed: reads stop at the last stable offset.
    pub read_committed: bool,
}

#[derive(Clone, Copy, Debug)]
pub enum OffsetQuery {
    Earliest,
    Latest,
    /// LATEST for isolation.level=read_committed: the last stable offset.
    LastStable,
    /// The first offset with a timestamp at least this (milliseconds).
    Timestamp(i64),
    /// The record with the largest timestamp (ListOffsets v7+).
    MaxTimestamp,
    /// The last offset in tiered storage (ListOffsets v9+): none here, answered (-1, -1).
    LatestTiered,
    /// OffsetForLeaderEpoch: the largest epoch at most this one in the log and where it ends,
    /// answered as (end offset, epoch).
    EpochEnd(i32),
}

pub struct ListOffsetsPart {
    pub topic: Arc<str>,
    pub partition: i32,
    pub query: OffsetQuery,
}

/// (id, epoch, last sequence, last timestamp, coordinator epoch, first offset of its open
/// transaction or -1), as DescribeProducers shows a producer.
pub type ProducerDescription = (i64, i16, i32, i64, i32, i64);

/// (offset, timestamp) as ListOffsets answers; offset -1 when no record matches.
pub type OffsetAnswer = (i64, i64);

/// (topic, partition, log directory, bytes on disk) of a hosted partition (DescribeLogDirs).
pub type LogSize = (Arc<str>, i32, std::path::PathBuf, u64);

pub enum ShardRequest {
    Produce {
        parts: Vec<ProducePart>,
        acks: Acks,
        /// How long acks=all may wait for the in-sync replicas (the request's timeout).
        timeout: std::time::Duration,
        reply: flume::Sender<Vec<Result<AppendOutcome, PartitionError>>>,
    },
    Fetch {
        parts: Vec<FetchPart>,
        reply: flume::Sender<Vec<Result<ReadOutcome, PartitionError>>>,
    },
    ListOffsets {
        parts: Vec<ListOffsetsPart>,
        reply: flume::Sender<Vec<Result<OffsetAnswer, PartitionError>>>,
    },
    /// Signal `reply` once any of the (topic, partition, offset, follower) partitions'
    /// high watermarks (a follower's: log ends) passes its offset.
    WaitForData {
        parts: Vec<(Arc<str>, i32, i64, bool)>,
        reply: flume::Sender<()>,
    },
    /// A call for the coordinator of the group whose offsets partition this shard owns.
    Group(Box<crate::group::GroupCall>),
    /// A quota recording for a scope this shard owns (`runtime::shard_quotas`).
    Quota(super::shard_quotas::QuotaCall),
    /// A call for the coordinator of the transactional id whose `__transaction_state`
    /// partition this shard owns.
    Txn(Box<crate::txn::TxnCall>),
    /// Write a transaction marker to each (topic, partition), led here.
    WriteMarkers {
        parts: Vec<(Arc<str>, i32, Marker)>,
        reply: flume::Sender<Vec<Result<(), PartitionError>>>,
    },
    /// DescribeProducers: the producers of each (topic, partition), led here.
    DescribeProducers {
        parts: Vec<(Arc<str>, i32)>,
        reply: flume::Sender<Vec<Result<Vec<ProducerDescription>, PartitionError>>>,
    },
    /// Adopt a new metadata image: open newly owned partitions, drop deleted ones.
    ApplyMetadata {
        image: Arc<MetadataImage>,
        reply: flume::Sender<()>,
    },
    /// DeleteRecords: move each (topic, partition)'s log start to the offset (-1: the high
    /// watermark); answered with the new log start offsets.
    DeleteRecords {
        parts: Vec<(Arc<str>, i32, i64)>,
        reply: flume::Sender<Vec<Result<i64, PartitionError>>>,
    },
    /// DescribeLogDirs: every partition the shard hosts, with its log directory and size.
    LogSizes { reply: flume::Sender<Vec<LogSize>> },
    /// A snapshot of the shard's metrics for a scrape of `metrics.port`.
    Metrics {
        reply: flume::Sender<crate::metrics::ShardMetrics>,
    },
    /// Clean shutdown: flush and close every hosted log; `true` when all closed cleanly.
    Shutdown { reply: flume::Sender<bool> },
}

/// Senders to every shard's queue, indexed by shard id. Cheap to clone.
#[derive(Clone)]
pub struct Mesh {
    senders: Arc<Vec<flume::Sender<ShardRequest>>>,
}

impl Mesh {
    /// Creates the channels; returns the mesh and one receiver per shard.
    pub fn new(shard_count: usize) -> (Mesh, Vec<flume::Receiver<ShardRequest>>) {
        let (senders, receivers) = (0..shard_count)
            .map(|_| flume::bounded(SHARD_QUEUE_CAPACITY))
            .unzip();
        (
            Mesh {
                senders: Arc::new(senders),
            },
            receivers,
        )
    }

    pub fn shard_count(&self) -> usize {
        self.senders.len()
    }

    /// Requests waiting in `shard`'s queue.
    pub fn queue_depth(&self, shard: ShardId) -> usize {
        self.senders[shard.0].len()
    }

    /// Queues `request` on `shard` from a thread outside the executors (the main thread).
    pub fn send_blocking(&self, shard: ShardId, request: ShardRequest) {
        if self.senders[shard.0].send(request).is_err() {
            tracing::debug!("shard {shard} has stopped; request dropped");
        }
    }

    /// Queues `request` on `shard`, waiting while its queue is full.
    pub async fn send(&self, shard: ShardId, request: ShardRequest) {
        // A send fails only when the shard has stopped, which happens only at process exit.
        if self.senders[shard.0].send_async(request).await.is_err() {
            tracing::debug!("shard {shard} has stopped; request dropped");
        }
    }
}
