//! The leader epochs of one replica's log as pure data (Kafka's `LeaderEpochFileCache` without
//! its file): for every leader epoch that appended to the log, the offset of its first batch.
//! `storage::EpochCache` keeps a ledger on disk; the replication simulation keeps one in
//! memory, so both answer "where did epoch E end" with this code.
//!
//! Invariants: entries ascend strictly by epoch and by start offset, and no epoch is negative.
//! Every change is computed as the entries it would leave (`None`: nothing changes), so that a
//! caller persisting them can adopt them only once they are on disk.

/// Kafka's `UNDEFINED_EPOCH`: no epoch is known.
pub const UNDEFINED_EPOCH: i32 = -1;
/// Kafka's `UNDEFINED_EPOCH_OFFSET`: no end offset is known.
pub const UNDEFINED_EPOCH_OFFSET: i64 = -1;

/// `(epoch, start offset)` pairs, ascending in both.
pub type EpochEntries = Vec<(i32, i64)>;

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EpochLedger {
    entries: EpochEntries,
}

impl EpochLedger {
    /// A ledger holding `entries` (already checked to ascend).
    pub fn new(entries: EpochEntries) -> EpochLedger {
        EpochLedger { entries }
    }

    /// `(epoch, start offset)` of every epoch held, oldest first.
    pub fn entries(&self) -> &[(i32, i64)] {
        &self.entries
    }

    /// Takes `entries` as the ledger (what one of the methods below computed).
    pub fn replace(&mut self, entries: EpochEntries) {
        self.entries = entries;
    }

    /// The newest epoch held, if any.
    pub fn latest_epoch(&self) -> Option<i32> {
        self.entries.last().map(|(epoch, _)| *epoch)
    }

    /// The entries after recording that `epoch` starts at `start_offset`; `None` unless
    /// `epoch` is newer than the latest held (a negative epoch, a batch stamped by no leader,
    /// is never recorded). Entries starting at or after `start_offset` go: no batch of theirs
    /// follows, since the new epoch's first batch is there.
    pub fn assigned(&self, epoch: i32, start_offset: i64) -> Option<EpochEntries> {
        let newer = self.latest_epoch().is_none_or(|latest| epoch > latest);
        if epoch < 0 || start_offset < 0 || !newer {
            return None;
        }
        let kept = self.count_starting_below(start_offset);
        let mut entries = self.entries[..kept].to_vec();
        entries.push((epoch, start_offset));
        Some(entries)
    }

    /// Kafka's `endOffsetFor`: the epoch and end offset to answer an OffsetsForLeaderEpoch
    /// request for `requested_epoch` with, given the log end `log_end`. The latest epoch ends
    /// at the log end; an older one ends where the next newer epoch starts, answered with the
    /// newest epoch at or below the one requested (or the requested one if none is held). An
    /// epoch newer than all held, `UNDEFINED_EPOCH` and an empty ledger get `(-1, -1)`.
    pub fn end_offset_for(&self, requested_epoch: i32, log_end: i64) -> (i32, i64) {
        let undefined = (UNDEFINED_EPOCH, UNDEFINED_EPOCH_OFFSET);
        if requested_epoch == UNDEFINED_EPOCH {
            return undefined;
        }
        if self.latest_epoch() == Some(requested_epoch) {
            return (requested_epoch, log_end);
        }
        let higher = self
            .entries
            .partition_point(|(epoch, _)| *epoch <= requested_epoch);
        let Some(&(_, higher_start)) = self.entries.get(higher) else {
            return undefined;
        };
        match higher.checked_sub(1).map(|floor| self.entries[floor]) {
            None => (requested_epoch, higher_start),
            Some((floor_epoch, _)) => (floor_epoch, higher_start),
        }
    }

    /// The entries without those starting at or after `end_offset` (the log was cut there);
    /// `None` if none does or `end_offset` is negative (as in Kafka).
    pub fn truncated_from_end(&self, end_offset: i64) -> Option<EpochEntries> {
        let kept = self.count_starting_below(end_offset);
        if end_offset < 0 || kept == self.entries.len() {
            return None;
        }
        Some(self.entries[..kept].to_vec())
    }

    /// The entries once the log starts at `start_offset`: of those starting at or below it
    /// only the latest stays, now starting at `start_offset` (its epoch still covers the first
    /// batches kept), as Kafka's `truncateFromStart` does.
    pub fn truncated_from_start(&self, start_offset: i64) -> Option<EpochEntries> {
        let covering = self
            .entries
            .partition_point(|(_, start)| *start <= start_offset);
        let latest = covering.checked_sub(1)?;
        let (epoch, start) = self.entries[latest];
        if latest == 0 && start == start_offset {
            return None;
        }
        let mut entries = Vec::with_capacity(self.entries.len() - latest);
        entries.push((epoch, start_offset));
        entries.extend_from_slice(&self.entries[covering..]);
        Some(entries)
    }

    /// How many entries start below `offset` (they form a prefix).
    fn count_starting_below(&self, offset: i64) -> usize {
        self.entries.partition_point(|(_, start)| *start < offset)
    }
}
