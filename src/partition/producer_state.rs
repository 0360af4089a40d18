//! Idempotent and transactional producer state of one partition: for each producer id, its
//! epoch and the last five batches' sequence ranges and offsets, as Kafka keeps them, and the
//! first offset of its open transaction; plus the transactions of the partition that ended in
//! an ABORT marker. A retried batch is answered with the offset it got the first time; a gap in
//! sequences is refused. The first offset of the oldest open transaction bounds the last
//! stable offset (what read_committed consumers may read). Pure: no I/O, rebuilt from batch
//! headers when the log is recovered.

use std::collections::{BTreeMap, HashMap, VecDeque};

use crate::storage::batch::{self, AbortedTxn, BatchHeader, ControlType};
use crate::storage::BatchObserver;

/// Batches remembered per producer (Kafka's limit on in-flight requests with idempotence).
const BATCHES_REMEMBERED: usize = 5;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SequenceCheck {
    /// Append it.
    Append,
    /// Already appended, at this base offset.
    Duplicate {
        base_offset: i64,
    },
    OutOfOrder {
        expected: i32,
        received: i32,
    },
    /// The producer's epoch is older than one already seen (it was fenced).
    StaleEpoch {
        current: i16,
        received: i16,
    },
    /// A marker from a transaction coordinator older than one that already wrote a marker for
    /// this producer (Kafka's TRANSACTION_COORDINATOR_FENCED).
    StaleCoordinator {
        current: i32,
        received: i32,
    },
}

#[derive(Clone, Copy, Debug)]
struct BatchSequence {
    first: i32,
    last: i32,
    base_offset: i64,
}

#[derive(Debug)]
struct Producer {
    epoch: i16,
    batches: VecDeque<BatchSequence>,
    /// The max timestamp of its last batch (Kafka's `lastTimestamp`), which
    /// `producer.id.expiration.ms` counts from; -1 when a snapshot written before it was kept
    /// did not say.
    last_timestamp: i64,
    /// The first offset of its open transaction here, if one is open.
    open_txn: Option<i64>,
    /// The epoch of the coordinator that wrote its last marker here (-1: none).
    coordinator_epoch: i32,
}

impl Producer {
    fn new(epoch: i16) -> Producer {
        Producer {
            epoch,
            batches: VecDeque::new(),
            last_timestamp: -1,
            open_txn: None,
            coordinator_epoch: -1,
        }
    }
}

#[derive(Debug, Default)]
pub struct ProducerState {
    producers: HashMap<i64, Producer>,
    /// Open transactions: first offset → producer id.
    open_txns: BTreeMap<i64, i64>,
    /// Aborted transactions a snapshot written before segments had transaction indexes
    /// carried (`a` lines), until the log takes them into its indexes.
    restored_aborted: Vec<AbortedTxn>,
}

impl ProducerState {
    pub fn check(&self, header: &BatchHeader) -> SequenceCheck {
        if header.producer_id < 0 {
            return SequenceCheck::Append;
        }
        let Some(producer) = self.producers.get(&header.producer_id) else {
            return SequenceCheck::Append;
        };
        if header.producer_epoch < producer.epoch {
            return SequenceCheck::StaleEpoch {
                current: producer.epoch,
                received: header.producer_epoch,
            };
        }
        if let Some(control) = header.control {
            let received = control.coordinator_epoch;
            if received < producer.coordinator_epoch {
                return SequenceCheck::StaleCoordinator {
                    current: producer.coordinator_epoch,
                    received,
                };
            }
            return SequenceCheck::Append;
        }
        if header.base_sequence < 0 {
            // A coordinator's own transactional write (offsets of a transaction): no sequence.
            return SequenceCheck::Append;
        }
        if header.producer_epoch > producer.epoch {
            return match header.base_sequence {
                0 => SequenceCheck::Append,
                received => SequenceCheck::OutOfOrder {
                    expected: 0,
                    received,
                },
            };
        }
        let duplicate = producer.batches.iter().find(|batch| {
            batch.first == header.base_sequence && batch.last == header.last_sequence()
        });
        if let Some(batch) = duplicate {
            return SequenceCheck::Duplicate {
                base_offset: batch.base_offset,
            };
        }
        let expected = producer
            .batches
            .back()
            .map_or(header.base_sequence, |last| next_sequence(last.last));
        if header.base_sequence != expected {
            return SequenceCheck::OutOfOrder {
                expected,
                received: header.base_sequence,
            };
        }
        SequenceCheck::Append
    }

    /// Records an appended batch (its `base_offset` already assigned); returns the
    /// transaction an ABORT marker ended, for the segment's transaction index.
    pub fn record(&mut self, header: &BatchHeader) -> Option<AbortedTxn> {
        if header.producer_id < 0 {
            return None;
        }
        let producer = self
            .producers
            .entry(header.producer_id)
            .or_insert_with(|| Producer::new(header.producer_epoch));
        producer.last_timestamp = header.max_timestamp;
        if header.producer_epoch != producer.epoch {
            producer.epoch = header.producer_epoch;
            producer.batches.clear();
        }
        if let Some(control) = header.control {
            // A marker ends the producer's open transaction, if any.
            producer.coordinator_epoch = control.coordinator_epoch;
            let first_offset = producer.open_txn.take()?;
            self.open_txns.remove(&first_offset);
            if control.kind != ControlType::Abort {
                return None;
            }
            let after_marker = header.base_offset + 1;
            return Some(AbortedTxn {
                producer_id: header.producer_id,
                first_offset,
                last_offset: header.base_offset,
                last_stable_offset: self
                    .first_unstable_offset()
                    .map_or(after_marker, |first| first.min(after_marker)),
            });
        }
        if batch::is_transactional(header) && producer.open_txn.is_none() {
            producer.open_txn = Some(header.base_offset);
            self.open_txns
                .insert(header.base_offset, header.producer_id);
        }
        if header.base_sequence < 0 {
            return None;
        }
        if producer.batches.len() == BATCHES_REMEMBERED {
            producer.batches.pop_front();
        }
        producer.batches.push_back(BatchSequence {
            first: header.base_sequence,
            last: header.last_sequence(),
            base_offset: header.base_offset,
        });
        None
    }
}

impl ProducerState {
    /// Forgets producers whose last batch is at least `expiration_ms` older than `now_ms`
    /// (Kafka's `producer.id.expiration.ms`); returns how many. A forgotten producer that
    /// writes again starts afresh: its next batch is appended whatever its sequence, as Kafka
    /// does for a producer id it no longer knows.
    pub fn expire(&mut self, now_ms: i64, expiration_ms: i64) -> usize {
        let before = self.producers.len();
        // A producer with an open transaction is kept whatever its age: the coordinator ends it.
        self.producers.retain(|_, producer| {
            producer.open_txn.is_some()
                || now_ms.saturating_sub(producer.last_timestamp) < expiration_ms
        });
        before - self.producers.len()
    }

    /// The producer (id, epoch) whose transactional data batch among `headers` would open a
    /// transaction here (its producer has none open in that epoch); `None` when none would.
    pub fn starts_transaction(&self, headers: &[BatchHeader]) -> Option<(i64, i16)> {
        headers
            .iter()
            .filter(|header| batch::is_transactional(header) && header.control.is_none())
            .find(|header| {
                self.producers
                    .get(&header.producer_id)
                    .is_none_or(|producer| {
                        producer.open_txn.is_none() || producer.epoch != header.producer_epoch
                    })
            })
            .map(|header| (header.producer_id, header.producer_epoch))
    }

    /// The first offset of the oldest open transaction: the last stable offset cannot pass it.
    pub fn first_unstable_offset(&self) -> Option<i64> {
        self.open_txns.keys().next().copied()
    }

    /// Open transactions as (producer id, epoch, first offset), oldest first.
    pub fn open_transactions(&self) -> Vec<(i64, i16, i64)> {
        self.open_txns
            .iter()
            .map(|(first, id)| (*id, self.producers.get(id).map_or(-1, |p| p.epoch), *first))
            .collect()
    }

    /// Every producer as DescribeProducers shows it: (id, epoch, last sequence, last
    /// timestamp, coordinator epoch, first offset of its open transaction or -1).
    pub fn describe(&self) -> Vec<(i64, i16, i32, i64, i32, i64)> {
        let mut producers: Vec<_> = self
            .producers
            .iter()
            .map(|(id, producer)| {
                (
                    *id,
                    producer.epoch,
                    producer.batches.back().map_or(-1, |batch| batch.last),
                    producer.last_timestamp,
                    producer.coordinator_epoch,
                    producer.open_txn.unwrap_or(-1),
                )
            })
            .collect();
        producers.sort_unstable();
        producers
    }

    pub fn len(&self) -> usize {
        self.producers.len()
    }

    pub fn is_empty(&self) -> bool {
        self.producers.is_empty()
    }

    /// The state as text, one producer per line: `id epoch t=last-timestamp first:last:offset
    /// ...` for its remembered batches, oldest first.
    pub fn snapshot(&self) -> Vec<u8> {
        let mut ids: Vec<&i64> = self.producers.keys().collect();
        ids.sort_unstable();
        let mut text = String::new();
        for id in ids {
            let producer = &self.producers[id];
            text.push_str(&format!(
                "{id} {} t={}",
                producer.epoch, producer.last_timestamp
            ));
            if let Some(first) = producer.open_txn {
                text.push_str(&format!(" x={first}"));
            }
            if producer.coordinator_epoch >= 0 {
                text.push_str(&format!(" c={}", producer.coordinator_epoch));
            }
            for batch in &producer.batches {
                text.push_str(&format!(
                    " {}:{}:{}",
                    batch.first, batch.last, batch.base_offset
                ));
            }
            text.push('\n');
        }
        text.into_bytes()
    }

    fn parse_snapshot(bytes: &[u8]) -> Option<ProducerState> {
        let text = std::str::from_utf8(bytes).ok()?;
        let mut state = ProducerState::default();
        for line in text.lines() {
            let mut fields = line.split(' ');
            let first = fields.next()?;
            if first == "a" {
                let mut number = || fields.next().and_then(|field| field.parse::<i64>().ok());
                let (producer_id, first_offset, last_offset) = (number()?, number()?, number()?);
                state.restored_aborted.push(AbortedTxn {
                    producer_id,
                    first_offset,
                    last_offset,
                    // Unknown: no later search stops early at this entry.
                    last_stable_offset: -1,
                });
                continue;
            }
            let id = first.parse().ok()?;
            let epoch = fields.next()?.parse().ok()?;
            let mut producer = Producer::new(epoch);
            for field in fields {
                if let Some(timestamp) = field.strip_prefix("t=") {
                    producer.last_timestamp = timestamp.parse().ok()?;
                    continue;
                }
                if let Some(first_offset) = field.strip_prefix("x=") {
                    let first_offset = first_offset.parse().ok()?;
                    producer.open_txn = Some(first_offset);
                    state.open_txns.insert(first_offset, id);
                    continue;
                }
                if let Some(coordinator_epoch) = field.strip_prefix("c=") {
                    producer.coordinator_epoch = coordinator_epoch.parse().ok()?;
                    continue;
                }
                let mut parts = field.split(':');
                producer.batches.push_back(BatchSequence {
                    first: parts.next()?.parse().ok()?,
                    last: parts.next()?.parse().ok()?,
                    base_offset: parts.next()?.parse().ok()?,
                });
            }
            state.producers.insert(id, producer);
        }
        Some(state)
    }
}

impl BatchObserver for ProducerState {
    fn restore(&mut self, snapshot: &[u8]) -> bool {
        match ProducerState::parse_snapshot(snapshot) {
            Some(state) => {
                *self = state;
                true
            }
            None => false,
        }
    }

    fn observe(&mut self, header: &BatchHeader) -> Option<AbortedTxn> {
        self.record(header)
    }

    fn take_restored_aborted(&mut self) -> Vec<AbortedTxn> {
        std::mem::take(&mut self.restored_aborted)
    }
}

fn next_sequence(sequence: i32) -> i32 {
    if sequence == i32::MAX {
        0
    } else {
        sequence + 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(
        producer_id: i64,
        epoch: i16,
        base_sequence: i32,
        records: i32,
        base_offset: i64,
    ) -> BatchHeader {
        BatchHeader {
            position: 0,
            base_offset,
            size: 100,
            last_offset_delta: records - 1,
            base_timestamp: 0,
            max_timestamp: 0,
            record_count: records,
            attributes: 0,
            producer_id,
            producer_epoch: epoch,
            base_sequence,
            control: None,
            leader_epoch: 0,
        }
    }

    /// Proves retries are recognised, gaps refused, and older epochs fenced.
    #[test]
    fn deduplicates_and_orders_sequences() {
        let mut state = ProducerState::default();
        let first = header(7, 0, 0, 5, 100);
        assert_eq!(state.check(&first), SequenceCheck::Append);
        state.record(&first);
        assert_eq!(
            state.check(&header(7, 0, 0, 5, -1)),
            SequenceCheck::Duplicate { base_offset: 100 }
        );
        assert_eq!(
            state.check(&header(7, 0, 6, 1, -1)),
            SequenceCheck::OutOfOrder {
                expected: 5,
                received: 6
            }
        );
        let second = header(7, 0, 5, 2, 105);
        assert_eq!(state.check(&second), SequenceCheck::Append);
        state.record(&second);
        assert_eq!(state.check(&header(7, 1, 0, 1, -1)), SequenceCheck::Append);
        state.record(&header(7, 1, 0, 1, 107));
        assert!(matches!(
            state.check(&header(7, 0, 7, 1, -1)),
            SequenceCheck::StaleEpoch { .. }
        ));
        assert_eq!(
            state.check(&header(-1, -1, -1, 3, -1)),
            SequenceCheck::Append
        );
        for round in 0..6 {
            state.record(&header(7, 1, 1 + round, 1, 108 + i64::from(round)));
        }
        assert_eq!(
            state.check(&header(7, 1, 1, 1, -1)),
            SequenceCheck::OutOfOrder {
                expected: 7,
                received: 1
            }
        );
    }

    /// Proves a snapshot restores the same answers, and a damaged one is refused.
    #[test]
    fn snapshot_round_trips() {
        let mut state = ProducerState::default();
        state.record(&header(7, 2, 0, 5, 100));
        state.record(&header(7, 2, 5, 1, 105));
        state.record(&header(9, 0, 0, 1, 106));
        let mut restored = ProducerState::default();
        assert!(restored.restore(&state.snapshot()));
        assert_eq!(restored.snapshot(), state.snapshot());
        assert_eq!(
            restored.check(&header(7, 2, 5, 1, -1)),
            SequenceCheck::Duplicate { base_offset: 105 }
        );
        assert!(!restored.restore(b"7 x 0:1:2\n"));
    }

    /// Proves producers whose last batch is `producer.id.expiration.ms` old are forgotten, and
    /// the last timestamp survives a snapshot (one without it, from before, expires at once).
    #[test]
    fn expires_idle_producers() {
        let mut state = ProducerState::default();
        let mut old = header(7, 0, 0, 1, 100);
        old.max_timestamp = 1_000;
        let mut recent = header(9, 0, 0, 1, 101);
        recent.max_timestamp = 50_000;
        state.record(&old);
        state.record(&recent);
        let mut restored = ProducerState::default();
        assert!(restored.restore(&state.snapshot()));
        assert_eq!(state.expire(60_000, 30_000), 1);
        assert_eq!(state.len(), 1);
        assert_eq!(state.check(&header(7, 0, 5, 1, -1)), SequenceCheck::Append);
        assert!(matches!(
            state.check(&header(9, 0, 5, 1, -1)),
            SequenceCheck::OutOfOrder { .. }
        ));
        assert_eq!(
            restored.expire(60_000, 30_000),
            1,
            "the timestamps were restored"
        );
        let mut legacy = ProducerState::default();
        assert!(legacy.restore(b"7 0 0:0:100\n"));
        assert_eq!(legacy.expire(60_000, 30_000), 1);
    }

    fn transactional(
        producer_id: i64,
        base_sequence: i32,
        records: i32,
        base_offset: i64,
    ) -> BatchHeader {
        BatchHeader {
            attributes: 1 << 4,
            ..header(producer_id, 0, base_sequence, records, base_offset)
        }
    }

    fn marker(
        producer_id: i64,
        kind: ControlType,
        coordinator_epoch: i32,
        offset: i64,
    ) -> BatchHeader {
        BatchHeader {
            attributes: (1 << 4) | (1 << 5),
            control: Some(batch::Control {
                kind,
                coordinator_epoch,
            }),
            ..header(producer_id, 0, -1, 1, offset)
        }
    }

    /// Proves open transactions bound the last stable offset, an ABORT marker yields the
    /// aborted transaction for the transaction index and a COMMIT one does not, open
    /// transactions survive a snapshot, and a marker from an older coordinator is refused.
    /// Proves the `a` lines of a snapshot written before transaction indexes existed are
    /// handed over once (for the log to index), no longer written, and refused when damaged.
    #[test]
    fn takes_aborted_transactions_from_an_older_snapshot() {
        let mut state = ProducerState::default();
        assert!(state.restore(b"7 0 t=5 x=9\na 7 2 7\n"));
        assert_eq!(state.first_unstable_offset(), Some(9));
        let restored = state.take_restored_aborted();
        assert_eq!(
            restored,
            vec![AbortedTxn {
                producer_id: 7,
                first_offset: 2,
                last_offset: 7,
                last_stable_offset: -1,
            }]
        );
        assert!(state.take_restored_aborted().is_empty());
        assert!(!state.snapshot().starts_with(b"a"));
        assert!(!state.restore(b"a 7 x 7\n"));
    }

    #[test]
    fn tracks_transactions() {
        let mut state = ProducerState::default();
        state.record(&header(5, 0, 0, 2, 0));
        assert_eq!(state.first_unstable_offset(), None);
        state.record(&transactional(7, 0, 3, 2));
        state.record(&transactional(9, 0, 1, 5));
        state.record(&transactional(7, 3, 1, 6));
        assert_eq!(state.first_unstable_offset(), Some(2));
        assert_eq!(
            state.record(&marker(7, ControlType::Abort, 3, 7)),
            Some(AbortedTxn {
                producer_id: 7,
                first_offset: 2,
                last_offset: 7,
                last_stable_offset: 5,
            })
        );
        assert_eq!(state.first_unstable_offset(), Some(5));
        assert!(matches!(
            state.check(&marker(7, ControlType::Commit, 2, -1)),
            SequenceCheck::StaleCoordinator {
                current: 3,
                received: 2
            }
        ));
        let mut restored = ProducerState::default();
        assert!(restored.restore(&state.snapshot()));
        assert_eq!(restored.snapshot(), state.snapshot());
        assert_eq!(restored.first_unstable_offset(), Some(5));
        assert_eq!(state.record(&marker(9, ControlType::Commit, 3, 8)), None);
        assert_eq!(state.first_unstable_offset(), None);
        assert_eq!(
            state.check(&transactional(7, 4, 1, -1)),
            SequenceCheck::Append,
            "sequences go on across transactions"
        );
        assert_eq!(
            state.starts_transaction(&[transactional(7, 5, 1, -1)]),
            Some((7, 0))
        );
        state.record(&transactional(7, 5, 1, 9));
        assert_eq!(
            state.starts_transaction(&[transactional(7, 6, 1, -1)]),
            None
        );
        assert_eq!(state.starts_transaction(&[header(7, 0, 6, 1, -1)]), None);
    }
}
