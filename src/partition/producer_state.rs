//! Idempotent-producer state of one partition: for each producer id, its epoch and the last
//! five batches' sequence ranges and offsets, as Kafka keeps them. A retried batch is answered
//! with the offset it got the first time; a gap in sequences is refused. Pure: no I/O, rebuilt
//! from batch headers when the log is recovered.

use std::collections::{HashMap, VecDeque};

use crate::storage::batch::BatchHeader;
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
}

#[derive(Debug, Default)]
pub struct ProducerState {
    producers: HashMap<i64, Producer>,
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

    /// Records an appended batch (its `base_offset` already assigned).
    pub fn record(&mut self, header: &BatchHeader) {
        if header.producer_id < 0 {
            return;
        }
        let producer = self
            .producers
            .entry(header.producer_id)
            .or_insert(Producer {
                epoch: header.producer_epoch,
                batches: VecDeque::new(),
                last_timestamp: -1,
            });
        producer.last_timestamp = header.max_timestamp;
        if header.producer_epoch != producer.epoch {
            producer.epoch = header.producer_epoch;
            producer.batches.clear();
        }
        if producer.batches.len() == BATCHES_REMEMBERED {
            producer.batches.pop_front();
        }
        producer.batches.push_back(BatchSequence {
            first: header.base_sequence,
            last: header.last_sequence(),
            base_offset: header.base_offset,
        });
    }
}

impl ProducerState {
    /// Forgets producers whose last batch is at least `expiration_ms` older than `now_ms`
    /// (Kafka's `producer.id.expiration.ms`); returns how many. A forgotten producer that
    /// writes again starts afresh: its next batch is appended whatever its sequence, as Kafka
    /// does for a producer id it no longer knows.
    pub fn expire(&mut self, now_ms: i64, expiration_ms: i64) -> usize {
        let before = self.producers.len();
        self.producers
            .retain(|_, producer| now_ms.saturating_sub(producer.last_timestamp) < expiration_ms);
        before - self.producers.len()
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

    fn parse_snapshot(bytes: &[u8]) -> Option<HashMap<i64, Producer>> {
        let text = std::str::from_utf8(bytes).ok()?;
        let mut producers = HashMap::new();
        for line in text.lines() {
            let mut fields = line.split(' ');
            let id = fields.next()?.parse().ok()?;
            let epoch = fields.next()?.parse().ok()?;
            let mut batches = VecDeque::new();
            let mut last_timestamp = -1;
            for field in fields {
                if let Some(timestamp) = field.strip_prefix("t=") {
                    last_timestamp = timestamp.parse().ok()?;
                    continue;
                }
                let mut parts = field.split(':');
                batches.push_back(BatchSequence {
                    first: parts.next()?.parse().ok()?,
                    last: parts.next()?.parse().ok()?,
                    base_offset: parts.next()?.parse().ok()?,
                });
            }
            producers.insert(
                id,
                Producer {
                    epoch,
                    batches,
                    last_timestamp,
                },
            );
        }
        Some(producers)
    }
}

impl BatchObserver for ProducerState {
    fn restore(&mut self, snapshot: &[u8]) -> bool {
        match ProducerState::parse_snapshot(snapshot) {
            Some(producers) => {
                self.producers = producers;
                true
            }
            None => false,
        }
    }

    fn observe(&mut self, header: &BatchHeader) {
        self.record(header);
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
}
