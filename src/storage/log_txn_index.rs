//! The log's side of the transaction indexes (`txn_index`): placing each aborted transaction
//! in its marker's segment, the replay that rebuilds them when the log opens or is truncated,
//! and the search a read_committed fetch makes. Part of `Log` (see `log.rs`).

use super::*;

impl Log {
    /// Indexes the transactions that ABORT markers just appended ended, each in its marker's
    /// segment. The active segment's index is written by the next `write_pending` or `close`;
    /// an older segment's (the append rolled after the marker) at once, durably.
    pub async fn add_aborted(&self, aborted: Vec<AbortedTxn>) -> Result<(), StorageError> {
        for txn in aborted {
            let (segment, active) = {
                let segments = self.segments.borrow();
                let Some(segment) = segment_holding(&segments, txn.last_offset) else {
                    continue;
                };
                let active = segments
                    .last()
                    .is_some_and(|last| Rc::ptr_eq(last, segment));
                (segment.clone(), active)
            };
            segment.txn_index().add(txn);
            if !active {
                segment.txn_index().sync_and_close().await?;
            }
        }
        Ok(())
    }

    /// The aborted transactions a read of `[from, to)` must tell: those ending at or after
    /// `from` that began before `to`, as (producer id, first offset). Searched in the
    /// transaction indexes from the segment holding `from` on, until one says later segments
    /// cannot add any.
    pub fn aborted_between(&self, from: i64, to: i64) -> Vec<(i64, i64)> {
        // Synchronous: the list is borrowed, not copied (a fetch makes this search).
        let segments = self.segments.borrow();
        let first = segments
            .partition_point(|segment| segment.base_offset <= from)
            .saturating_sub(1);
        let mut found = Vec::new();
        for segment in &segments[first..] {
            if segment.txn_index().collect(from, to, &mut found) {
                break;
            }
        }
        found
            .into_iter()
            .map(|txn| (txn.producer_id, txn.first_offset))
            .collect()
    }
}

/// Hands `observer` every batch of `segment` from `from` on, and indexes the transactions its
/// markers aborted (those already indexed are not added twice).
pub(super) async fn replay(
    segment: &Segment,
    from: i64,
    observer: &mut dyn BatchObserver,
) -> Result<(), StorageError> {
    if segment.next_offset() <= from {
        return Ok(());
    }
    for header in segment.headers_from(from.max(segment.base_offset)).await? {
        if header.base_offset >= from {
            if let Some(txn) = observer.observe(&header) {
                segment.txn_index().add(txn);
            }
        }
    }
    Ok(())
}

/// Indexes the aborted transactions an older snapshot carried, then writes every entry the
/// replay added, durably (those of a trusted segment would otherwise never be).
pub(super) async fn settle_txn_indexes(
    segments: &[Rc<Segment>],
    observer: &mut dyn BatchObserver,
) -> Result<(), StorageError> {
    for txn in observer.take_restored_aborted() {
        if let Some(segment) = segment_holding(segments, txn.last_offset) {
            segment.txn_index().add(txn);
        }
    }
    for segment in segments {
        if segment.txn_index().has_unpersisted() {
            segment.txn_index().sync_and_close().await?;
        }
    }
    Ok(())
}

/// The segment holding `offset`, if any.
pub(super) fn segment_holding(segments: &[Rc<Segment>], offset: i64) -> Option<&Rc<Segment>> {
    let after = segments.partition_point(|segment| segment.base_offset <= offset);
    let segment = segments.get(after.checked_sub(1)?)?;
    (offset < segment.next_offset()).then_some(segment)
}
