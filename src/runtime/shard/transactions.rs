//! A shard's side of transactions: routing calls to the coordinator of a transactional id,
//! the periodic timeout and expiry work, markers written to the partitions it owns, and the
//! verifier a leader asks before a version 1 client's batch opens a transaction.

use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use super::{Shard, ShardRequest};
use crate::group::OFFSETS_TOPIC;
use crate::partition::{Marker, Partition, PartitionError};
use crate::txn::{
    partition_for_txn, TxnCall, TxnCoordinator, TxnError, TxnMetadata, TRANSACTION_STATE_TOPIC,
};

/// How long a leader waits for the coordinator to verify a transactional batch, holding the
/// partition's append permit meanwhile.
const VERIFY_TIMEOUT: Duration = Duration::from_secs(2);

/// How long writing a transaction marker may wait for the partition's in-sync replicas
/// (Kafka's `request.timeout.ms` for the markers' requests).
const MARKER_WRITE_TIMEOUT_MS: u64 = 30_000;

impl Shard {
    /// Sends `call` to the shard coordinating its transactional id. Fails it when
    /// `__transaction_state` does not exist yet.
    pub async fn txn_call(self: &Rc<Self>, call: TxnCall) {
        let image = self.metadata();
        let Some(topic) = image.topic(TRANSACTION_STATE_TOPIC) else {
            call.fail(TxnError::CoordinatorNotAvailable);
            return;
        };
        let id = call.transactional_id().unwrap_or_default();
        let partition = partition_for_txn(id, topic.partitions.len() as i32);
        let owner = self.owner_of(topic, partition);
        if owner == self.id {
            self.serve_txn_call(call).await;
        } else {
            self.mesh
                .send(owner, ShardRequest::Txn(Box::new(call)))
                .await;
        }
    }

    /// Every transactional id coordinated on this broker (ListTransactions).
    pub async fn list_transactions(self: &Rc<Self>) -> Vec<TxnMetadata> {
        self.ask_every_shard(|reply| ShardRequest::Txn(Box::new(TxnCall::List { reply })))
            .await
            .into_iter()
            .flatten()
            .collect()
    }

    pub(super) async fn serve_txn_call(self: &Rc<Self>, call: TxnCall) {
        let Some(id) = call.transactional_id().map(str::to_string) else {
            if let TxnCall::List { reply } = call {
                let _ = reply.send(self.txns.list());
            }
            return;
        };
        let image = self.metadata();
        let Some(topic) = image.topic(TRANSACTION_STATE_TOPIC) else {
            return call.fail(TxnError::CoordinatorNotAvailable);
        };
        let index = partition_for_txn(&id, topic.partitions.len() as i32);
        if topic.partitions[index as usize].leader != self.config.node_id {
            return call.fail(TxnError::NotCoordinator);
        }
        if self.txns.coordinator_epoch(index).is_none() {
            return call.fail(TxnError::CoordinatorLoadInProgress);
        }
        let Some(partition) = self.partition(&Arc::from(TRANSACTION_STATE_TOPIC), index) else {
            return call.fail(TxnError::NotCoordinator);
        };
        self.txns.handle(self, call, partition).await;
    }

    /// The transaction coordinator of this shard.
    pub fn txns(&self) -> &TxnCoordinator {
        &self.txns
    }

    /// The `__transaction_state` partition of `transactional_id`, if this shard leads it.
    pub fn transaction_state_partition(&self, transactional_id: &str) -> Option<Rc<Partition>> {
        let image = self.metadata();
        let topic = image.topic(TRANSACTION_STATE_TOPIC)?;
        let index = partition_for_txn(transactional_id, topic.partitions.len() as i32);
        if topic.partitions[index as usize].leader != self.config.node_id {
            return None;
        }
        self.partition(&Arc::from(TRANSACTION_STATE_TOPIC), index)
    }

    /// Every `transaction.abort.timed.out.transaction.cleanup.interval.ms`, aborts transactions
    /// open past their timeout; every
    /// `transaction.remove.expired.transaction.cleanup.interval.ms`, forgets idle ids.
    pub async fn tick_transactions(self: Rc<Self>) {
        let interval = Duration::from_millis(self.config.transaction_abort_interval_ms.max(10));
        let expire_every =
            Duration::from_millis(self.config.transaction_remove_expired_interval_ms.max(10));
        let mut next_expiry = std::time::Instant::now() + expire_every;
        loop {
            glommio::timer::sleep(interval).await;
            let now = std::time::Instant::now();
            let expire = now >= next_expiry;
            if expire {
                next_expiry = now + expire_every;
            }
            self.txns.tick(&self, expire).await;
        }
    }

    /// Writes transaction markers to partitions this broker leads, each on its owning shard;
    /// answers in the order of `parts`.
    pub async fn write_markers(
        self: &Rc<Self>,
        parts: Vec<(Arc<str>, i32, Marker)>,
    ) -> Vec<Result<(), PartitionError>> {
        let requested = parts
            .into_iter()
            .map(|(topic, index, marker)| (topic.clone(), index, (topic, index, marker)))
            .collect();
        self.scatter_led(requested, |parts, reply| ShardRequest::WriteMarkers {
            parts,
            reply,
        })
        .await
    }

    /// Writes one marker on the partition's owner (this shard); a marker on a
    /// `__consumer_offsets` partition also ends the transaction's pending offsets.
    pub(super) async fn write_marker(
        self: Rc<Self>,
        topic: Arc<str>,
        index: i32,
        marker: Marker,
    ) -> Result<(), PartitionError> {
        let partition = self.hosted(&topic, index)?;
        partition
            .write_marker(marker, Duration::from_millis(MARKER_WRITE_TIMEOUT_MS))
            .await?;
        if *topic == *OFFSETS_TOPIC {
            self.groups.complete_txn(
                marker.producer_id,
                marker.kind == crate::storage::batch::ControlType::Commit,
            );
        }
        Ok(())
    }

    /// Asks the coordinator of `transactional_id` whether a producer's batch for the partition
    /// belongs to its open transaction (KIP-890 part 1), for at most `VERIFY_TIMEOUT`.
    pub(super) fn verifier(
        self: &Rc<Self>,
        transactional_id: Arc<str>,
        topic: &Arc<str>,
        index: i32,
    ) -> crate::partition::TxnVerifier {
        let shard = self.clone();
        let partition = (topic.to_string(), index);
        Box::new(move |producer_id, epoch| {
            Box::pin(async move {
                let deadline = std::time::Instant::now() + VERIFY_TIMEOUT;
                let answer = crate::txn::join::add_to_transaction(
                    &shard,
                    &transactional_id,
                    (producer_id, epoch),
                    &[partition],
                    true,
                    deadline,
                )
                .await;
                match answer.map(|results| results.into_iter().next().unwrap_or(Ok(()))) {
                    Ok(Ok(())) => Ok(()),
                    Ok(Err(TxnError::ProducerFenced | TxnError::InvalidProducerEpoch))
                    | Err(TxnError::ProducerFenced | TxnError::InvalidProducerEpoch) => {
                        Err(PartitionError::FencedByCoordinator { received: epoch })
                    }
                    Ok(Err(
                        TxnError::TransactionAbortable
                        | TxnError::InvalidTxnState
                        | TxnError::InvalidProducerIdMapping
                        | TxnError::TransactionalIdNotFound,
                    ))
                    | Err(
                        TxnError::TransactionAbortable
                        | TxnError::InvalidTxnState
                        | TxnError::InvalidProducerIdMapping
                        | TxnError::TransactionalIdNotFound,
                    ) => Err(PartitionError::NotInTransaction),
                    Ok(Err(error)) | Err(error) => {
                        Err(PartitionError::VerificationUnavailable(error.to_string()))
                    }
                }
            })
        })
    }
}
