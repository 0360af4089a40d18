//! A partition's side of transactions: the last stable offset, the markers a coordinator has
//! its leader write, the producers DescribeProducers lists, the verifier a leader asks before
//! a batch opens a transaction (KIP-890 part 1), and the producer state each append updates
//! (with the aborted transactions it hands the log's indexes).

use std::time::Duration;

use super::{Acks, Partition, PartitionError};
use crate::storage::batch::{self, BatchHeader, ControlType};
use crate::storage::now_ms;

/// Asks the transaction coordinator whether producer (id, epoch) has this partition in an open
/// transaction (KIP-890 part 1); `Partition::append_verified` calls it, holding the append
/// permit, only for a batch that would start a transaction here.
pub type TxnVerifier = Box<
    dyn FnOnce(
        i64,
        i16,
    )
        -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), PartitionError>>>>,
>;

/// A transaction marker the coordinator asks a partition's leader to write.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Marker {
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub coordinator_epoch: i32,
    pub kind: ControlType,
}

impl Partition {
    /// The offset below which no transaction is open and every record is committed (Kafka's
    /// last stable offset): the high watermark, or the first offset of the oldest open
    /// transaction if that is lower.
    pub fn last_stable_offset(&self) -> i64 {
        let high_watermark = self.high_watermark();
        self.producers
            .borrow()
            .first_unstable_offset()
            .map_or(high_watermark, |first| first.min(high_watermark))
    }

    /// Writes a transaction marker (COMMIT or ABORT) for `producer_id` as the leader, and
    /// waits until every in-sync replica has it (or `timeout`). A marker of an older producer
    /// epoch is refused (INVALID_PRODUCER_EPOCH), as is one from an older coordinator.
    pub async fn write_marker(
        &self,
        marker: Marker,
        timeout: Duration,
    ) -> Result<(), PartitionError> {
        let bytes = batch::encode_marker(
            marker.producer_id,
            marker.producer_epoch,
            marker.coordinator_epoch,
            marker.kind,
            now_ms(),
        );
        let headers =
            batch::validate_batches(&bytes, usize::MAX).expect("a marker we encoded is valid");
        self.append(bytes, headers, Acks::All, timeout).await?;
        Ok(())
    }

    /// Idempotent and transactional producers of this partition, as DescribeProducers lists
    /// them: (id, epoch, last sequence, last timestamp, coordinator epoch, first offset of its
    /// open transaction or -1).
    pub fn producers(&self) -> Vec<(i64, i16, i32, i64, i32, i64)> {
        self.producers.borrow().describe()
    }

    /// Takes appended batches into the producer state, and the transactions their ABORT
    /// markers ended into the log's transaction indexes.
    pub(super) async fn record_producers(
        &self,
        headers: &[BatchHeader],
    ) -> Result<(), PartitionError> {
        let aborted: Vec<_> = {
            let mut producers = self.producers.borrow_mut();
            headers
                .iter()
                .filter_map(|header| producers.record(header))
                .collect()
        };
        if aborted.is_empty() {
            return Ok(());
        }
        self.storage(self.log.add_aborted(aborted).await)
    }
}
