//! The transaction coordinator (Kafka's exactly-once protocol, transactions version 1).
//!
//! A transactional id lives on the shard that owns its `__transaction_state` partition
//! (`partition_for_txn`, Kafka's `abs(transactionalId.hashCode) % partitions`), on the broker
//! leading that partition; requests for it are routed there over the mesh, as groups' are. Its
//! state (`state`, a pure state machine) is stored in that partition (`log`, Kafka's record
//! layout, fsynced and replicated) before a change takes effect, and read back when a broker
//! becomes the partition's leader. Ending a transaction stores PrepareCommit or PrepareAbort,
//! writes a COMMIT or ABORT marker to every partition of the transaction (locally through the
//! mesh, to other brokers with WriteTxnMarkers), then stores CompleteCommit or CompleteAbort.

pub mod coordinator;
pub mod join;
pub mod log;
pub mod state;

pub use coordinator::TxnCoordinator;
pub use state::{TopicPartition, TxnError, TxnMetadata, TxnState, TxnVersion};

/// The `transaction.version` feature level this broker finalizes and advertises in ApiVersions:
/// 2, so Kafka 4 clients use transactions version 2 (KIP-890 part 2); older clients ignore it.
pub const TRANSACTION_VERSION: i16 = 2;

/// The internal topic holding transaction state.
pub const TRANSACTION_STATE_TOPIC: &str = "__transaction_state";

/// Kafka's choice of `__transaction_state` partition: the same hash as a group's.
pub fn partition_for_txn(transactional_id: &str, partition_count: i32) -> i32 {
    crate::group::partition_for_group(transactional_id, partition_count)
}

/// Per-partition outcome of AddPartitionsToTxn.
pub type PartitionResults = Vec<Result<(), TxnError>>;

/// A request for the coordinator of one transactional id, carried to the owning shard.
pub enum TxnCall {
    InitProducerId {
        transactional_id: String,
        timeout_ms: i32,
        /// The producer id and epoch the client holds (InitProducerId v3+), if any.
        expected: Option<(i64, i16)>,
        reply: flume::Sender<Result<(i64, i16), TxnError>>,
    },
    /// AddPartitionsToTxn and AddOffsetsToTxn; `verify_only` checks without adding (v4+).
    AddPartitions {
        transactional_id: String,
        producer_id: i64,
        producer_epoch: i16,
        partitions: Vec<TopicPartition>,
        verify_only: bool,
        reply: flume::Sender<Result<PartitionResults, TxnError>>,
    },
    /// Answered with the producer id and epoch to use next (a new epoch in version 2).
    EndTxn {
        transactional_id: String,
        producer_id: i64,
        producer_epoch: i16,
        commit: bool,
        version: TxnVersion,
        reply: flume::Sender<Result<(i64, i16), TxnError>>,
    },
    Describe {
        transactional_id: String,
        reply: flume::Sender<Result<TxnMetadata, TxnError>>,
    },
    /// Every transactional id this shard coordinates; the caller asks every shard.
    List {
        reply: flume::Sender<Vec<TxnMetadata>>,
    },
}

impl TxnCall {
    /// The transactional id the call is for; `None` for calls every shard answers.
    pub fn transactional_id(&self) -> Option<&str> {
        match self {
            TxnCall::InitProducerId {
                transactional_id, ..
            }
            | TxnCall::AddPartitions {
                transactional_id, ..
            }
            | TxnCall::EndTxn {
                transactional_id, ..
            }
            | TxnCall::Describe {
                transactional_id, ..
            } => Some(transactional_id),
            TxnCall::List { .. } => None,
        }
    }

    /// Answers the call with `error` without serving it.
    pub fn fail(self, error: TxnError) {
        match self {
            TxnCall::InitProducerId { reply, .. } => drop(reply.send(Err(error))),
            TxnCall::AddPartitions { reply, .. } => drop(reply.send(Err(error))),
            TxnCall::EndTxn { reply, .. } => drop(reply.send(Err(error))),
            TxnCall::Describe { reply, .. } => drop(reply.send(Err(error))),
            TxnCall::List { reply } => drop(reply.send(Vec::new())),
        }
    }
}
