//! Reading a partition: whole, as a coordinator does when it takes over the partition's groups
//! or transactional ids, and the record-set bounds of a consumer's read.

use bytes::Bytes;

use super::{Partition, PartitionError};
use crate::storage::batch;

/// Bytes read at a time by `for_each_record`.
const LOAD_READ_BYTES: usize = 1 << 20;

impl Partition {
    /// Whole batches from `offset` up to the log end, committed or not (loading the group
    /// coordinator's state from a log this replica now leads).
    pub async fn read_to_log_end(
        &self,
        offset: i64,
        max_bytes: usize,
    ) -> Result<Bytes, PartitionError> {
        self.check_online()?;
        self.storage(self.log.read(offset, max_bytes).await)
    }

    /// Visits every record from the log start to the log end, committed or not, decoded (a
    /// coordinator loading its state from a partition it now leads); returns how many.
    pub async fn for_each_record(
        &self,
        mut visit: impl FnMut(&kafka_protocol::records::Record),
    ) -> Result<usize, PartitionError> {
        let mut offset = self.log_start_offset();
        let mut visited = 0;
        while offset < self.log_end_offset() {
            let mut records = self.read_to_log_end(offset, LOAD_READ_BYTES).await?;
            if records.is_empty() {
                break;
            }
            while let Ok(set) = kafka_protocol::records::RecordBatchDecoder::decode(&mut records) {
                for record in &set.records {
                    offset = record.offset + 1;
                    visit(record);
                    visited += 1;
                }
                if records.is_empty() {
                    break;
                }
            }
        }
        Ok(visited)
    }
}

/// The last offset of the last whole batch of `records`.
pub(super) fn last_offset(records: &[u8]) -> Option<i64> {
    let mut position = 0;
    let mut last = None;
    while let Ok(Some(header)) = batch::peek_header(records, position) {
        last = Some(header.last_offset());
        position += header.size;
    }
    last
}

/// The whole batches of `records` that end below `limit`.
pub(super) fn below(records: Bytes, limit: i64) -> Bytes {
    let mut position = 0;
    while let Ok(Some(header)) = batch::peek_header(&records, position) {
        if header.last_offset() >= limit {
            break;
        }
        position += header.size;
    }
    records.slice(..position)
}
