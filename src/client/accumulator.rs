//! The pipelined producer's record accumulator, Kafka's `RecordAccumulator` in small: one open
//! batch per partition that records join until the next record would take it past batch.size,
//! then it is sealed (encoded once, so a retry resends the same bytes) and queued behind the
//! partition's earlier sealed batches. `drain` hands out at most one batch per partition per
//! request, as a v2 Produce request may carry only one batch per partition, sealing open batches
//! whose linger.ms has passed (or all of them while flushing).
//!
//! It is a pure state machine: time comes in as an argument, nothing here touches a socket or a
//! clock, and every byte accepted is counted in `buffered_bytes` until the producer releases it,
//! which is what bounds the producer's memory (buffer.memory).

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_protocol::records::Compression;

use super::records::{encode_batch, OutgoingRecord};

/// The accumulator's share of the producer settings.
#[derive(Debug, Clone)]
pub struct AccumulatorSettings {
    /// batch.size: a batch is sealed when the next record would take it past this.
    pub batch_bytes_max: usize,
    /// linger.ms: how long an open batch waits for more records once it could be sent.
    pub linger: Duration,
    pub compression: Compression,
}

/// A batch that is encoded and waits to be sent, is in flight, or waits to be retried.
#[derive(Debug)]
pub struct SealedBatch<T> {
    pub partition: i32,
    /// The encoded v2 record batch.
    pub records: Bytes,
    /// One token per record, in record order, handed back on delivery.
    pub tokens: Vec<T>,
    /// When the first record joined the batch (for delivery.timeout.ms).
    pub created: Instant,
    /// Sends so far that failed with a retriable error.
    pub attempts: u32,
    /// The bytes this batch holds in `buffered_bytes`.
    pub accounted_bytes: usize,
}

/// A batch that could not be encoded, with why.
#[derive(Debug)]
pub struct UnencodableBatch<T> {
    pub partition: i32,
    pub tokens: Vec<T>,
    pub accounted_bytes: usize,
    pub reason: String,
}

struct OpenBatch<T> {
    records: Vec<OutgoingRecord>,
    tokens: Vec<T>,
    size_bytes: usize,
    created: Instant,
}

struct PartitionQueue<T> {
    open: Option<OpenBatch<T>>,
    sealed: VecDeque<SealedBatch<T>>,
}

impl<T> Default for PartitionQueue<T> {
    fn default() -> Self {
        PartitionQueue {
            open: None,
            sealed: VecDeque::new(),
        }
    }
}

pub struct Accumulator<T> {
    topic: String,
    settings: AccumulatorSettings,
    /// Indexed by partition number.
    queues: Vec<PartitionQueue<T>>,
    buffered_bytes: usize,
    sealed_count: usize,
    open_count: usize,
    unencodable: Vec<UnencodableBatch<T>>,
}

impl<T> Accumulator<T> {
    pub fn new(topic: &str, settings: AccumulatorSettings) -> Accumulator<T> {
        Accumulator {
            topic: topic.to_string(),
            settings,
            queues: Vec::new(),
            buffered_bytes: 0,
            sealed_count: 0,
            open_count: 0,
            unencodable: Vec::new(),
        }
    }

    /// Makes room for partitions `0..partition_count` (a topic only ever grows).
    pub fn ensure_partitions(&mut self, partition_count: usize) {
        if self.queues.len() < partition_count {
            self.queues
                .resize_with(partition_count, PartitionQueue::default);
        }
    }

    /// Adds `record` to `partition`'s open batch, sealing that batch first when the record does
    /// not fit, and after when the batch reached batch.size.
    pub fn append(&mut self, partition: i32, record: OutgoingRecord, token: T, now: Instant) {
        let index = self.queue_index(partition);
        let size_bytes = record.size_estimate_bytes();
        let fits = self.queues[index].open.as_ref().is_none_or(|open| {
            open.records.is_empty() || open.size_bytes + size_bytes <= self.settings.batch_bytes_max
        });
        if !fits {
            self.seal(index);
        }
        let queue = &mut self.queues[index];
        let open = queue.open.get_or_insert_with(|| {
            self.open_count += 1;
            OpenBatch {
                records: Vec::new(),
                tokens: Vec::new(),
                size_bytes: 0,
                created: now,
            }
        });
        open.records.push(record);
        open.tokens.push(token);
        open.size_bytes += size_bytes;
        self.buffered_bytes += size_bytes;
        if open.size_bytes >= self.settings.batch_bytes_max {
            self.seal(index);
        }
    }

    /// Takes at most one batch from each of `partitions` for one request of at most
    /// `request_bytes_max` (always at least one batch): sealed batches first, then open batches
    /// whose linger has passed at `now`, or any open batch when `flushing`.
    pub fn drain(
        &mut self,
        partitions: &[i32],
        now: Instant,
        flushing: bool,
        request_bytes_max: usize,
    ) -> Vec<SealedBatch<T>> {
        let mut drained: Vec<SealedBatch<T>> = Vec::new();
        let mut request_bytes = 0usize;
        for &partition in partitions {
            let Some(index) = self.existing_queue_index(partition) else {
                continue;
            };
            let queue = &self.queues[index];
            let lingered = queue.open.as_ref().is_some_and(|open| {
                flushing || now.saturating_duration_since(open.created) >= self.settings.linger
            });
            if queue.sealed.is_empty() && lingered {
                self.seal(index);
            }
            let queue = &mut self.queues[index];
            let Some(front) = queue.sealed.front() else {
                continue;
            };
            if !drained.is_empty() && request_bytes + front.records.len() > request_bytes_max {
                break;
            }
            request_bytes += front.records.len();
            if let Some(batch) = queue.sealed.pop_front() {
                self.sealed_count -= 1;
                drained.push(batch);
            }
        }
        drained
    }

    /// Whether `drain` over `partitions` at `now` would hand out anything.
    pub fn has_sendable(&self, partitions: &[i32], now: Instant, flushing: bool) -> bool {
        partitions.iter().any(|&partition| {
            self.existing_queue_index(partition)
                .map(|index| &self.queues[index])
                .is_some_and(|queue| {
                    !queue.sealed.is_empty()
                        || queue.open.as_ref().is_some_and(|open| {
                            flushing
                                || now.saturating_duration_since(open.created)
                                    >= self.settings.linger
                        })
                })
        })
    }

    /// When the earliest open batch among `partitions` finishes lingering.
    pub fn next_linger_deadline(&self, partitions: &[i32]) -> Option<Instant> {
        partitions
            .iter()
            .filter_map(|&partition| self.existing_queue_index(partition))
            .filter_map(|index| self.queues[index].open.as_ref())
            .map(|open| open.created + self.settings.linger)
            .min()
    }

    /// Puts a batch that failed with a retriable error back at the front of its partition.
    pub fn requeue(&mut self, batch: SealedBatch<T>) {
        let index = self.queue_index(batch.partition);
        self.queues[index].sealed.push_front(batch);
        self.sealed_count += 1;
    }

    /// Removes every waiting batch (sealed, or open and then sealed) created at or before
    /// `created_by`, for delivery.timeout.ms: they fail without being sent.
    pub fn expire(&mut self, created_by: Instant) -> Vec<SealedBatch<T>> {
        let mut expired = Vec::new();
        for index in 0..self.queues.len() {
            if self.queues[index]
                .open
                .as_ref()
                .is_some_and(|open| open.created <= created_by)
            {
                self.seal(index);
            }
            let queue = &mut self.queues[index];
            while queue
                .sealed
                .front()
                .is_some_and(|batch| batch.created <= created_by)
            {
                if let Some(batch) = queue.sealed.pop_front() {
                    self.sealed_count -= 1;
                    expired.push(batch);
                }
            }
        }
        expired
    }

    /// The creation time of the oldest batch still waiting here. Each partition's sealed queue
    /// is in creation order (a requeued batch is older than those queued after it), so only
    /// its front and the open batch count.
    pub fn oldest_created(&self) -> Option<Instant> {
        self.queues
            .iter()
            .flat_map(|queue| {
                let open = queue.open.as_ref().map(|open| open.created);
                open.into_iter()
                    .chain(queue.sealed.front().map(|batch| batch.created))
            })
            .min()
    }

    /// Gives back the bytes of a batch that was delivered or failed.
    pub fn release(&mut self, accounted_bytes: usize) {
        assert!(
            accounted_bytes <= self.buffered_bytes,
            "releasing {accounted_bytes} bytes with only {} buffered",
            self.buffered_bytes
        );
        self.buffered_bytes -= accounted_bytes;
    }

    /// Bytes accepted and not yet released: waiting, in flight or awaiting retry.
    pub fn buffered_bytes(&self) -> usize {
        self.buffered_bytes
    }

    /// Whether no batch waits here (batches in flight are the producer's to count).
    pub fn is_idle(&self) -> bool {
        self.sealed_count == 0 && self.open_count == 0
    }

    /// Batches that failed to encode since the last call.
    pub fn take_unencodable(&mut self) -> Vec<UnencodableBatch<T>> {
        std::mem::take(&mut self.unencodable)
    }

    fn seal(&mut self, index: usize) {
        let Some(open) = self.queues[index].open.take() else {
            return;
        };
        self.open_count -= 1;
        let partition = index as i32;
        match encode_batch(
            &open.records,
            self.settings.compression,
            &self.topic,
            partition,
        ) {
            Ok(records) => {
                self.queues[index].sealed.push_back(SealedBatch {
                    partition,
                    records,
                    tokens: open.tokens,
                    created: open.created,
                    attempts: 0,
                    accounted_bytes: open.size_bytes,
                });
                self.sealed_count += 1;
            }
            Err(error) => self.unencodable.push(UnencodableBatch {
                partition,
                tokens: open.tokens,
                accounted_bytes: open.size_bytes,
                reason: error.to_string(),
            }),
        }
    }

    fn queue_index(&mut self, partition: i32) -> usize {
        assert!(
            partition >= 0,
            "partition {partition} of {} is negative",
            self.topic
        );
        let index = partition as usize;
        self.ensure_partitions(index + 1);
        index
    }

    fn existing_queue_index(&self, partition: i32) -> Option<usize> {
        usize::try_from(partition)
            .ok()
            .filter(|index| *index < self.queues.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(value_bytes: usize) -> OutgoingRecord {
        OutgoingRecord {
            key: None,
            value: Some(Bytes::from(vec![b'a'; value_bytes])),
            timestamp_ms: 0,
        }
    }

    fn accumulator(batch_bytes_max: usize, linger_ms: u64) -> Accumulator<u32> {
        Accumulator::new(
            "t",
            AccumulatorSettings {
                batch_bytes_max,
                linger: Duration::from_millis(linger_ms),
                compression: Compression::None,
            },
        )
    }

    #[test]
    fn batches_seal_at_batch_size_and_drain_one_per_partition() {
        // Records of 84 bytes (+16 estimated overhead) fill a 300-byte batch after three; the
        // fourth record starts a new batch, and a drain takes only the first sealed one.
        let start = Instant::now();
        let mut accumulator = accumulator(300, 1_000);
        for token in 0..7 {
            accumulator.append(0, record(84), token, start);
        }
        assert_eq!(accumulator.buffered_bytes(), 700);
        let first = accumulator.drain(&[0], start, false, 1 << 20);
        assert_eq!(first.len(), 1);
        assert_eq!(first[0].tokens, vec![0, 1, 2]);
        let second = accumulator.drain(&[0], start, false, 1 << 20);
        assert_eq!(second[0].tokens, vec![3, 4, 5]);
        // The seventh record lingers: nothing until its linger passed, or a flush.
        assert!(accumulator.drain(&[0], start, false, 1 << 20).is_empty());
        assert!(!accumulator.has_sendable(&[0], start, false));
        assert_eq!(
            accumulator.next_linger_deadline(&[0]),
            Some(start + Duration::from_secs(1))
        );
        let later = start + Duration::from_secs(1);
        assert_eq!(
            accumulator.drain(&[0], later, false, 1 << 20)[0].tokens,
            vec![6]
        );
        assert!(accumulator.is_idle());
        accumulator.release(700);
        assert_eq!(accumulator.buffered_bytes(), 0);
    }

    #[test]
    fn a_request_takes_one_batch_from_each_partition_within_its_size() {
        // Three partitions with a sealed batch each; a small request limit takes only the first,
        // a large one all three.
        let now = Instant::now();
        let mut accumulator = accumulator(100, 0);
        for partition in 0..3 {
            accumulator.append(partition, record(90), partition as u32, now);
        }
        let small = accumulator.drain(&[0, 1, 2], now, false, 10);
        assert_eq!(small.len(), 1);
        let rest = accumulator.drain(&[0, 1, 2], now, false, 1 << 20);
        let partitions: Vec<i32> = rest.iter().map(|batch| batch.partition).collect();
        assert_eq!(partitions, vec![1, 2]);
    }

    #[test]
    fn retried_batches_go_first_and_old_batches_expire() {
        // A requeued batch is drained before newer ones; expire takes batches by creation time.
        let start = Instant::now();
        let later = start + Duration::from_secs(5);
        let mut accumulator = accumulator(100, 0);
        accumulator.append(0, record(90), 1, start);
        let mut batch = accumulator.drain(&[0], start, false, 1 << 20).remove(0);
        batch.attempts += 1;
        accumulator.append(0, record(90), 2, later);
        accumulator.requeue(batch);
        let first = accumulator.drain(&[0], later, false, 1 << 20).remove(0);
        assert_eq!((first.tokens.clone(), first.attempts), (vec![1], 1));
        accumulator.requeue(first);
        assert_eq!(accumulator.oldest_created(), Some(start));
        let expired = accumulator.expire(start);
        assert_eq!(expired.len(), 1);
        assert_eq!(expired[0].tokens, vec![1]);
        assert_eq!(accumulator.oldest_created(), Some(later));
    }

    #[test]
    fn a_record_larger_than_the_batch_size_gets_a_batch_of_its_own() {
        // An empty batch always takes the record; the oversized batch is sealed at once.
        let now = Instant::now();
        let mut accumulator = accumulator(50, 1_000);
        accumulator.append(0, record(10), 0, now);
        accumulator.append(0, record(500), 1, now);
        let drained = accumulator.drain(&[0], now, false, 1 << 20);
        assert_eq!(drained[0].tokens, vec![0]);
        let drained = accumulator.drain(&[0], now, false, 1 << 20);
        assert_eq!(drained[0].tokens, vec![1]);
    }
}
