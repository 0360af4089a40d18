//! Tests of what replication needs from `storage::log`: follower appends, the leader epoch
//! cache, truncation (`truncate_to`, `truncate_fully_and_start_at`) and their recovery, each
//! against real files through a glommio executor.

use std::cell::Cell;

use super::*;
use crate::storage::batch::{self, tests::encoded_batch, AbortedTxn};
use crate::storage::cleaner::tests::keyed_batch;
use crate::storage::epoch_cache::EPOCH_CHECKPOINT_FILE;
use crate::storage::test_util::{run, temp_dir};

/// Small segments (a handful of batches each) and a dense index, so that cuts cross both.
fn config() -> LogConfig {
    LogConfig {
        segment_bytes_max: 2048,
        index_interval_bytes: 256,
        segment_ms: i64::MAX,
        ..LogConfig::default()
    }
}

async fn open(dir: &Path, clean: bool) -> Log {
    Log::open(dir, config(), clean, &mut |_: &BatchHeader| {})
        .await
        .unwrap()
}

/// Appends, as the leader in `epoch`, one batch of `count` records; returns its base offset.
async fn append_in_epoch(log: &Log, count: i32, epoch: i32) -> i64 {
    let bytes = encoded_batch(count, 100);
    let mut headers = batch::validate_batches(&bytes, 1 << 20).unwrap();
    log.append(bytes, &mut headers, epoch).await.unwrap()
}

/// Batches as a leader sends them: one per entry of `counts`, from `base_offset` on, in `epoch`.
fn leader_batches(base_offset: i64, epoch: i32, counts: &[i32]) -> (Vec<u8>, Vec<BatchHeader>) {
    let mut bytes = Vec::new();
    let mut next = base_offset;
    for count in counts {
        let mut one = encoded_batch(*count, 100);
        batch::assign_offset(&mut one, 0, next, epoch);
        next += i64::from(*count);
        bytes.extend(one);
    }
    let headers = batch::validate_batches(&bytes, 1 << 20).unwrap();
    (bytes, headers)
}

/// A batch as read back: its header (position zeroed) and its bytes.
type ReadBatch = (BatchHeader, Vec<u8>);

/// Every batch from `from` to the log end, read through `Log::read`, CRCs checked.
async fn read_batches(log: &Log, from: i64) -> Vec<ReadBatch> {
    let mut batches = Vec::new();
    let mut offset = from;
    while offset < log.next_offset() {
        let bytes = log.read(offset, 1 << 20).await.unwrap();
        for header in batch::validate_batches(&bytes, usize::MAX).unwrap() {
            let whole = bytes[header.position..header.position + header.size].to_vec();
            offset = header.next_offset();
            batches.push((
                BatchHeader {
                    position: 0,
                    ..header
                },
                whole,
            ));
        }
    }
    batches
}

fn epochs(log: &Log) -> Vec<(i32, i64)> {
    log.epochs.borrow().entries().to_vec()
}

/// A log of 30 batches of 3 records (offsets 0..90) over many segments, written by leaders
/// of epochs 0, 2, 4 and 6 (eight batches each, the last six in epoch 6).
async fn written_log(dir: &Path) -> (Log, Vec<ReadBatch>) {
    let log = open(dir, false).await;
    for index in 0..30 {
        append_in_epoch(&log, 3, index / 8 * 2).await;
    }
    assert_eq!(epochs(&log), [(0, 0), (2, 24), (4, 48), (6, 72)]);
    assert!(
        log.segments.borrow().len() > 5,
        "the log spans many segments"
    );
    let batches = read_batches(&log, 0).await;
    assert_eq!(batches.len(), 30);
    (log, batches)
}

fn base_offsets(log: &Log) -> Vec<i64> {
    log.segments
        .borrow()
        .iter()
        .map(|segment| segment.base_offset)
        .collect()
}

/// The index files of the segment at `base_offset`, as bytes.
fn index_files(dir: &Path, base_offset: i64) -> (Vec<u8>, Vec<u8>) {
    let read = |extension| std::fs::read(dir.join(segment_file_name(base_offset, extension)));
    (read("index").unwrap(), read("timeindex").unwrap())
}

/// Remembers what it was given: the snapshot restored, and the base offset of each batch.
#[derive(Default)]
struct Recorder {
    restored: Option<Vec<u8>>,
    observed: Vec<i64>,
}

impl BatchObserver for Recorder {
    fn restore(&mut self, snapshot: &[u8]) -> bool {
        self.restored = Some(snapshot.to_vec());
        true
    }

    fn observe(&mut self, header: &BatchHeader) -> Option<AbortedTxn> {
        self.observed.push(header.base_offset);
        None
    }
}

/// Proves a follower copying its leader batch by batch ends with the same bytes, offsets,
/// epochs (and epoch cache) and rolls its own segments; that a batch overlapping the log (before
/// its end, or inside the batches given) is refused with nothing written; and that a gap (a
/// compacted leader's log) is accepted.
#[test]
fn append_replicated_keeps_offsets_and_epochs_and_rejects_gaps() {
    let leader_dir = temp_dir("replicated-leader");
    let follower_dir = temp_dir("replicated-follower");
    run(move || async move {
        let leader = open(&leader_dir, false).await;
        for (index, epoch) in [0, 0, 2, 2, 5, 5, 5, 5, 5, 5, 5, 5].into_iter().enumerate() {
            append_in_epoch(&leader, 1 + index as i32 % 3, epoch).await;
        }
        let follower = open(&follower_dir, false).await;
        while follower.next_offset() < leader.next_offset() {
            // One batch at a time, then the rest in one go.
            let max_bytes = if follower.next_offset() < 6 {
                1
            } else {
                1 << 20
            };
            let bytes = leader
                .read(follower.next_offset(), max_bytes)
                .await
                .unwrap();
            let headers = batch::validate_batches(&bytes, usize::MAX).unwrap();
            follower
                .append_replicated(bytes.to_vec(), &headers)
                .await
                .unwrap();
        }
        assert_eq!(follower.next_offset(), leader.next_offset());
        assert_eq!(
            read_batches(&follower, 0).await,
            read_batches(&leader, 0).await
        );
        assert_eq!(epochs(&follower), epochs(&leader));
        assert_eq!(epochs(&follower), [(0, 0), (2, 3), (5, 7)]);
        assert!(follower.segments.borrow().len() > 1, "the follower rolled");

        let (end, size) = (follower.next_offset(), follower.size_bytes());
        let refused = [leader_batches(end - 1, 5, &[2]), {
            let (mut bytes, _) = leader_batches(end, 5, &[2]);
            bytes.extend(leader_batches(end + 1, 5, &[2]).0);
            let headers = batch::validate_batches(&bytes, usize::MAX).unwrap();
            (bytes, headers)
        }];
        let expected = [(end, end - 1), (end + 2, end + 1)];
        for ((bytes, headers), (expected, received)) in refused.into_iter().zip(expected) {
            match follower.append_replicated(bytes, &headers).await {
                Err(StorageError::NonContiguous {
                    expected: said_expected,
                    received: said_received,
                }) => assert_eq!((said_expected, said_received), (expected, received)),
                other => panic!("expected NonContiguous, got {other:?}"),
            }
            assert_eq!((follower.next_offset(), follower.size_bytes()), (end, size));
        }
        // An older epoch's batch (a leader's history) is kept as it is, the cache unchanged.
        let (bytes, headers) = leader_batches(end, 3, &[2]);
        follower.append_replicated(bytes, &headers).await.unwrap();
        assert_eq!(read_batches(&follower, end).await[0].0.leader_epoch, 3);
        assert_eq!(epochs(&follower), [(0, 0), (2, 3), (5, 7)]);
        let (bytes, headers) = leader_batches(end + 2, 9, &[1, 1]);
        follower.append_replicated(bytes, &headers).await.unwrap();
        assert_eq!(epochs(&follower), [(0, 0), (2, 3), (5, 7), (9, end + 2)]);
        // Offsets a compacted leader no longer has are skipped.
        let (bytes, headers) = leader_batches(end + 10, 9, &[1]);
        follower.append_replicated(bytes, &headers).await.unwrap();
        assert_eq!(follower.next_offset(), end + 11);
        leader.remove().await.unwrap();
        follower.remove().await.unwrap();
    });
}

/// Proves a leader appending in epochs 0, 0, 3, 3, 5 gets the cache [(0, 0), (3, k), (5, m)]
/// and answers OffsetsForLeaderEpoch from it, that `assign_epoch` records a new leader's
/// epoch before any append, that the cache survives a reopen, and that a log written before
/// epochs were recorded opens with epoch 0 from its start.
#[test]
fn leader_epochs_are_cached_and_answered() {
    let dir = temp_dir("epochs-leader");
    run(move || async move {
        let log = open(&dir, false).await;
        assert_eq!(log.latest_epoch(), None);
        assert_eq!(log.end_offset_for_epoch(0), (-1, -1));
        let mut bases = Vec::new();
        for epoch in [0, 0, 3, 3, 5] {
            bases.push(append_in_epoch(&log, 4, epoch).await);
        }
        let (k, m) = (bases[2], bases[4]);
        assert_eq!((k, m), (8, 16));
        assert_eq!(epochs(&log), [(0, 0), (3, k), (5, m)]);
        let headers: Vec<i32> = read_batches(&log, 0)
            .await
            .iter()
            .map(|(header, _)| header.leader_epoch)
            .collect();
        assert_eq!(headers, [0, 0, 3, 3, 5], "the batches carry their epochs");
        assert_eq!(log.latest_epoch(), Some(5));
        let end = log.next_offset();
        assert_eq!(log.end_offset_for_epoch(0), (0, k));
        assert_eq!(log.end_offset_for_epoch(1), (0, k));
        assert_eq!(log.end_offset_for_epoch(3), (3, m));
        assert_eq!(log.end_offset_for_epoch(4), (3, m));
        assert_eq!(log.end_offset_for_epoch(5), (5, end));
        assert_eq!(log.end_offset_for_epoch(6), (-1, -1));
        assert_eq!(log.end_offset_for_epoch(-1), (-1, -1));

        log.assign_epoch(7, end).unwrap();
        log.assign_epoch(6, end).unwrap();
        assert_eq!(log.end_offset_for_epoch(5), (5, end));
        assert_eq!(log.end_offset_for_epoch(7), (7, end));
        append_in_epoch(&log, 2, 7).await;
        assert_eq!(epochs(&log), [(0, 0), (3, k), (5, m), (7, end)]);
        log.flush().await.unwrap();
        drop(log);

        let log = open(&dir, false).await;
        assert_eq!(epochs(&log), [(0, 0), (3, k), (5, m), (7, end)]);
        log.flush().await.unwrap();
        drop(log);
        // A log from before epochs were recorded: no cache file at all.
        std::fs::remove_file(dir.join(EPOCH_CHECKPOINT_FILE)).unwrap();
        let log = open(&dir, false).await;
        assert_eq!(epochs(&log), [(0, 0)]);
        log.remove().await.unwrap();
    });
}

/// Proves a cut in the middle of a batch of the active segment removes that batch and the
/// rest, leaves the earlier bytes, epochs and segments alone, that truncating at or past the
/// end does nothing (not even to the observer), and that appends continue at the new end.
#[test]
fn truncate_to_in_the_active_segment() {
    let dir = temp_dir("truncate-active");
    run(move || async move {
        let (log, before) = written_log(&dir).await;
        let segments = base_offsets(&log);
        let active = log.active_base_offset();
        let kept = before
            .iter()
            .position(|(header, _)| header.base_offset > active)
            .unwrap();
        let cut = before[kept].0.base_offset;

        let mut untouched = Recorder::default();
        log.truncate_to(90, &mut untouched).await.unwrap();
        log.truncate_to(200, &mut untouched).await.unwrap();
        assert!(untouched.restored.is_none() && untouched.observed.is_empty());
        assert_eq!(log.next_offset(), 90);

        let mut observer = Recorder::default();
        log.truncate_to(cut + 1, &mut observer).await.unwrap();
        assert_eq!(log.next_offset(), cut);
        assert_eq!(base_offsets(&log), segments, "no segment removed");
        assert_eq!(read_batches(&log, 0).await, before[..kept]);
        assert_eq!(epochs(&log), [(0, 0), (2, 24), (4, 48), (6, 72)]);
        let expected: Vec<i64> = before[..kept].iter().map(|(h, _)| h.base_offset).collect();
        assert_eq!(
            observer.observed, expected,
            "without snapshots every batch kept"
        );
        assert!(log.read(cut + 1, 100).await.is_err());
        assert!(log.read(cut, 100).await.unwrap().is_empty());

        assert_eq!(append_in_epoch(&log, 2, 9).await, cut);
        assert_eq!(append_in_epoch(&log, 2, 9).await, cut + 2);
        assert_eq!(epochs(&log).last(), Some(&(9, cut)));
        let after = read_batches(&log, 0).await;
        assert_eq!(after[..kept], before[..kept]);
        assert_eq!(after.len(), kept + 2);
        log.remove().await.unwrap();
    });
}

/// Proves a cut inside an inactive segment removes the later segments' files, makes the
/// holding segment active (cut on disk, indexes exactly what a rebuild gives), truncates the
/// epoch cache, and that appends roll on as before.
#[test]
fn truncate_to_in_an_inactive_segment() {
    let dir = temp_dir("truncate-inactive");
    run(move || async move {
        let (log, before) = written_log(&dir).await;
        let segments = base_offsets(&log);
        let holder = segments[3];
        let kept = before
            .iter()
            .position(|(header, _)| header.base_offset > holder)
            .unwrap();
        let cut = before[kept].0.base_offset;
        assert!(cut < segments[4], "the cut is inside segment {holder}");

        log.truncate_to(cut + 2, &mut |_: &BatchHeader| {})
            .await
            .unwrap();
        assert_eq!(log.next_offset(), cut);
        assert_eq!(base_offsets(&log), segments[..4]);
        assert_eq!(segment_base_offsets(&dir).unwrap(), segments[..4]);
        for removed in &segments[4..] {
            for extension in ["log", "index", "timeindex"] {
                let path = dir.join(segment_file_name(*removed, extension));
                assert!(!path.exists(), "{} is gone", path.display());
            }
        }
        assert_eq!(log.active_base_offset(), holder);
        assert_eq!(read_batches(&log, 0).await, before[..kept]);
        let expected_epochs: Vec<(i32, i64)> = [(0, 0), (2, 24), (4, 48), (6, 72)]
            .into_iter()
            .filter(|(_, start)| *start < cut)
            .collect();
        assert_eq!(epochs(&log), expected_epochs);
        let cut_indexes = index_files(&dir, holder);

        for _ in 0..20 {
            append_in_epoch(&log, 3, 8).await;
        }
        assert!(log.segments.borrow().len() > 5, "appends roll again");
        let after = read_batches(&log, 0).await;
        assert_eq!(after[..kept], before[..kept]);
        assert_eq!(after.len(), kept + 20);
        assert!(after[kept..]
            .windows(2)
            .all(|pair| pair[0].0.next_offset() == pair[1].0.base_offset));
        log.flush().await.unwrap();
        drop(log);

        // The indexes the cut left are those a scan of the cut segment rebuilds.
        let log = open(&dir, false).await;
        log.truncate_to(cut, &mut |_: &BatchHeader| {})
            .await
            .unwrap();
        assert_eq!(index_files(&dir, holder), cut_indexes);
        log.flush().await.unwrap();
        drop(log);
        for extension in ["index", "timeindex"] {
            std::fs::remove_file(dir.join(segment_file_name(holder, extension))).unwrap();
        }
        let log = open(&dir, false).await;
        assert_eq!(index_files(&dir, holder), cut_indexes);
        assert_eq!(read_batches(&log, 0).await, before[..kept]);
        log.remove().await.unwrap();
    });
}

/// Proves a cut exactly at a segment's base offset leaves that segment empty and active
/// (Kafka keeps it), removes the later ones, and that appends continue there.
#[test]
fn truncate_to_a_segment_boundary() {
    let dir = temp_dir("truncate-boundary");
    run(move || async move {
        let (log, before) = written_log(&dir).await;
        let segments = base_offsets(&log);
        let boundary = segments[2];
        let kept = before
            .iter()
            .position(|(header, _)| header.base_offset == boundary)
            .unwrap();
        log.truncate_to(boundary, &mut |_: &BatchHeader| {})
            .await
            .unwrap();
        assert_eq!(log.next_offset(), boundary);
        assert_eq!(base_offsets(&log), segments[..3]);
        assert_eq!(log.active_base_offset(), boundary);
        let log_file = dir.join(segment_file_name(boundary, "log"));
        assert_eq!(std::fs::metadata(&log_file).unwrap().len(), 0);
        assert_eq!(read_batches(&log, 0).await, before[..kept]);
        assert_eq!(append_in_epoch(&log, 3, 8).await, boundary);
        assert_eq!(
            log.active_base_offset(),
            boundary,
            "appended to the emptied segment"
        );
        log.remove().await.unwrap();
    });
}

/// Proves a truncated log reopens, after a crash and after a clean shutdown, to the same
/// end, the same bytes and the truncated epoch cache.
#[test]
fn truncated_log_reopens_the_same() {
    let dir = temp_dir("truncate-reopen");
    run(move || async move {
        let (log, before) = written_log(&dir).await;
        let segments = base_offsets(&log);
        // Offset 51 starts batch 17, in epoch 4.
        let (kept, cut) = (17, 51);
        assert_eq!(before[kept].0.base_offset, cut);
        let holding = segments.partition_point(|base| *base <= cut);
        assert!(
            holding < segments.len(),
            "the cut is in an inactive segment"
        );
        log.truncate_to(cut, &mut |_: &BatchHeader| {})
            .await
            .unwrap();
        assert_eq!(epochs(&log), [(0, 0), (2, 24), (4, 48)]);
        drop(log);

        // A crash right after the truncation.
        let log = open(&dir, false).await;
        assert_eq!(log.next_offset(), cut);
        assert_eq!(read_batches(&log, 0).await, before[..kept]);
        assert_eq!(epochs(&log), [(0, 0), (2, 24), (4, 48)]);
        log.close(b"").await.unwrap();
        drop(log);

        let log = open(&dir, true).await;
        assert_eq!(log.next_offset(), cut);
        assert_eq!(base_offsets(&log), segments[..holding]);
        assert_eq!(read_batches(&log, 0).await, before[..kept]);
        assert_eq!(epochs(&log), [(0, 0), (2, 24), (4, 48)]);
        assert_eq!(append_in_epoch(&log, 1, 8).await, cut);
        log.remove().await.unwrap();
    });
}

/// Proves the observer handed to `truncate_to` is rebuilt from the newest producer snapshot
/// at or below the new end and sees only the surviving batches after it; snapshots above the
/// new end are removed, and without a snapshot it sees every surviving batch.
#[test]
fn truncation_rebuilds_the_observer_from_surviving_batches() {
    let dir = temp_dir("truncate-observer");
    run(move || async move {
        let (log, before) = written_log(&dir).await;
        let segments = base_offsets(&log);
        for base in &segments[1..4] {
            log.write_snapshot(*base, format!("at {base}").as_bytes())
                .await
                .unwrap();
        }
        let bases: Vec<i64> = before
            .iter()
            .map(|(header, _)| header.base_offset)
            .collect();
        let inside = |segment: usize| {
            *bases
                .iter()
                .find(|base| **base > segments[segment])
                .unwrap()
        };

        let cut = inside(2);
        let mut observer = Recorder::default();
        log.truncate_to(cut + 1, &mut observer).await.unwrap();
        assert_eq!(log.next_offset(), cut);
        let snapshot = format!("at {}", segments[2]).into_bytes();
        assert_eq!(observer.restored, Some(snapshot));
        let expected: Vec<i64> = bases
            .iter()
            .copied()
            .filter(|base| *base >= segments[2] && *base < cut)
            .collect();
        assert_eq!(observer.observed, expected);
        assert_eq!(
            checkpoint::latest_snapshot(&dir, i64::MAX)
                .unwrap()
                .map(|(at, _)| at),
            Some(segments[2]),
            "the snapshot above the new end is gone"
        );

        let cut = inside(1);
        let mut observer = Recorder::default();
        log.truncate_to(cut, &mut observer).await.unwrap();
        assert_eq!(
            observer.restored, None,
            "the only snapshot left is above the new end"
        );
        let expected: Vec<i64> = bases.iter().copied().filter(|base| *base < cut).collect();
        assert_eq!(observer.observed, expected);
        assert_eq!(checkpoint::latest_snapshot(&dir, i64::MAX).unwrap(), None);
        log.remove().await.unwrap();
    });
}

/// Proves `truncate_fully_and_start_at` leaves one empty segment at the offset (start = end),
/// no snapshot and no epoch, that replicated appends continue there, and that it survives a
/// reopen; and that it may also start the log below where it was.
#[test]
fn truncate_fully_and_start_at_then_append() {
    let dir = temp_dir("truncate-fully");
    run(move || async move {
        let (log, _) = written_log(&dir).await;
        log.write_snapshot(log.active_base_offset(), b"state")
            .await
            .unwrap();
        log.truncate_fully_and_start_at(500).await.unwrap();
        assert_eq!((log.start_offset(), log.next_offset()), (500, 500));
        assert_eq!(base_offsets(&log), [500]);
        assert_eq!(segment_base_offsets(&dir).unwrap(), [500]);
        assert_eq!(checkpoint::latest_snapshot(&dir, i64::MAX).unwrap(), None);
        assert!(epochs(&log).is_empty());
        assert_eq!(log.latest_epoch(), None);
        assert!(log.read(500, 100).await.unwrap().is_empty());
        assert!(log.read(499, 100).await.is_err());

        let (bytes, headers) = leader_batches(500, 7, &[3, 2]);
        log.append_replicated(bytes, &headers).await.unwrap();
        assert_eq!(log.next_offset(), 505);
        assert_eq!(epochs(&log), [(7, 500)]);
        let read = read_batches(&log, 500).await;
        assert_eq!(read.len(), 2);
        assert_eq!(read[1].0.leader_epoch, 7);
        log.flush().await.unwrap();
        drop(log);

        let log = open(&dir, false).await;
        assert_eq!((log.start_offset(), log.next_offset()), (500, 505));
        assert_eq!(read_batches(&log, 500).await, read);
        assert_eq!(epochs(&log), [(7, 500)]);
        log.truncate_fully_and_start_at(3).await.unwrap();
        assert_eq!((log.start_offset(), log.next_offset()), (3, 3));
        assert_eq!(append_in_epoch(&log, 1, 8).await, 3);
        log.flush().await.unwrap();
        drop(log);
        let log = open(&dir, false).await;
        assert_eq!((log.start_offset(), log.next_offset()), (3, 4));
        assert_eq!(segment_base_offsets(&dir).unwrap(), [3]);
        log.remove().await.unwrap();
    });
}

/// Proves truncation below the log start is refused, and that a cut removing the batch the
/// log start lies in (DeleteRecords inside a batch) empties the log at its start.
#[test]
fn truncation_keeps_the_log_start() {
    let dir = temp_dir("truncate-start");
    run(move || async move {
        let (log, _) = written_log(&dir).await;
        // Offset 31 is inside the batch at 30.
        assert_eq!(log.delete_records_before(31).await.unwrap(), 31);
        assert!(matches!(
            log.truncate_to(30, &mut |_: &BatchHeader| {}).await,
            Err(StorageError::OffsetOutOfRange { offset: 30, .. })
        ));
        assert_eq!(log.next_offset(), 90);
        log.truncate_to(31, &mut |_: &BatchHeader| {})
            .await
            .unwrap();
        assert_eq!((log.start_offset(), log.next_offset()), (31, 31));
        assert_eq!(segment_base_offsets(&dir).unwrap(), [31]);
        assert_eq!(append_in_epoch(&log, 2, 8).await, 31);
        log.flush().await.unwrap();
        drop(log);
        let log = open(&dir, false).await;
        assert_eq!((log.start_offset(), log.next_offset()), (31, 33));
        log.remove().await.unwrap();
    });
}

/// Proves reads running while a log is truncated never fail other than out of range, and
/// none that returns after the truncation holds bytes past the new end.
#[test]
fn reads_during_truncation_never_return_removed_bytes() {
    let dir = temp_dir("truncate-reads");
    run(move || async move {
        let (log, before) = written_log(&dir).await;
        let log = Rc::new(log);
        let truncated = Rc::new(Cell::new(false));
        let late_reads = Rc::new(Cell::new(0));
        let mut readers = Vec::new();
        for reader in 0..4 {
            let (log, truncated, late_reads) = (log.clone(), truncated.clone(), late_reads.clone());
            readers.push(glommio::spawn_local(async move {
                let mut offset = reader * 7;
                loop {
                    let done = truncated.get();
                    match log.read(offset % 90, 1 << 20).await {
                        Ok(bytes) if bytes.is_empty() => {}
                        Ok(bytes) => {
                            for header in batch::validate_batches(&bytes, usize::MAX).unwrap() {
                                assert!(header.next_offset() <= log.next_offset());
                            }
                        }
                        Err(StorageError::OffsetOutOfRange { .. }) => {}
                        Err(error) => panic!("a read failed during a truncation: {error}"),
                    }
                    if truncated.get() {
                        late_reads.set(late_reads.get() + 1);
                    }
                    if done {
                        break;
                    }
                    offset += 11;
                    // A read from memory never waits: let the truncation run.
                    futures_lite::future::yield_now().await;
                }
            }));
        }
        futures_lite::future::yield_now().await;
        let cut = before[7].0.base_offset;
        log.truncate_to(cut, &mut |_: &BatchHeader| {})
            .await
            .unwrap();
        truncated.set(true);
        for reader in readers {
            reader.await;
        }
        assert!(
            late_reads.get() >= 4,
            "every reader read after the truncation"
        );
        assert_eq!(read_batches(&log, 0).await, before[..7]);
        log.remove().await.unwrap();
    });
}

/// Proves a compaction planned before a truncation is dropped rather than installed: its key
/// map may count records the truncation removed.
#[test]
fn compaction_planned_before_a_truncation_is_dropped() {
    let dir = temp_dir("truncate-compaction");
    run(move || async move {
        let log = open(&dir, false).await;
        for round in 0..40 {
            let key = format!("key-{}", round % 3);
            let records = [(Some(key.as_str()), Some("value"), 1_700_000_000_000)];
            let bytes = keyed_batch(0, &records, None);
            let mut headers = batch::validate_batches(&bytes, 1 << 20).unwrap();
            log.append(bytes, &mut headers, 0).await.unwrap();
        }
        let plan = log
            .plan_compaction(0, 1_700_000_000_000, i64::MAX)
            .await
            .unwrap();
        log.truncate_to(30, &mut |_: &BatchHeader| {})
            .await
            .unwrap();
        let before = read_batches(&log, 0).await;
        assert_eq!(before.len(), 30);
        let stats = log.install_compaction(plan).await.unwrap();
        assert_eq!(stats.records_read, 0, "nothing installed");
        assert_eq!(read_batches(&log, 0).await, before);
        let leftovers = std::fs::read_dir(&dir)
            .unwrap()
            .filter(|entry| {
                let name = entry.as_ref().unwrap().file_name();
                name.to_string_lossy().ends_with(CLEANED_EXTENSION)
            })
            .count();
        assert_eq!(leftovers, 0, "the cleaned files are removed");
        log.remove().await.unwrap();
    });
}

/// Proves a follower's batches whose offsets jump further than a segment can index (a
/// compacted leader's gap over 2^31) start a new segment between them, in one append and across
/// appends, and read back the same after a crash-style reopen.
#[test]
fn offset_gaps_beyond_a_segment_roll_between_batches() {
    run(|| async {
        let dir = temp_dir("replicated-offset-gap");
        let log = open(&dir, false).await;
        let far = 3_000_000_000i64;
        let (mut bytes, _) = leader_batches(0, 0, &[3]);
        bytes.extend(leader_batches(far, 0, &[2]).0);
        bytes.extend(leader_batches(far + 2, 0, &[4]).0);
        let headers = batch::validate_batches(&bytes, 1 << 20).unwrap();
        log.append_replicated(bytes, &headers).await.unwrap();
        let (more, more_headers) = leader_batches(2 * far, 0, &[1]);
        log.append_replicated(more, &more_headers).await.unwrap();
        assert_eq!(log.next_offset(), 2 * far + 1);
        let bases: Vec<i64> = log
            .segments
            .borrow()
            .iter()
            .map(|s| s.base_offset)
            .collect();
        assert_eq!(bases, vec![0, far, 2 * far]);
        let before = read_batches(&log, 0).await;
        let offsets: Vec<i64> = before
            .iter()
            .map(|(header, _)| header.base_offset)
            .collect();
        assert_eq!(offsets, vec![0, far, far + 2, 2 * far]);
        log.flush().await.unwrap();
        drop(log);
        let reopened = open(&dir, false).await;
        assert_eq!(read_batches(&reopened, 0).await, before);
        assert_eq!(reopened.next_offset(), 2 * far + 1);
    });
}

/// Proves `written_offset` trails the appends until they are written to the file, and
/// `write_through` moves it over them.
#[test]
fn written_offset_follows_writes_to_the_file() {
    run(|| async {
        let dir = temp_dir("written-offset");
        let log = open(&dir, false).await;
        append_in_epoch(&log, 3, 0).await;
        append_in_epoch(&log, 2, 0).await;
        assert_eq!(log.written_offset(), 0, "nothing written yet");
        log.write_through(3).await.unwrap();
        assert_eq!(
            log.written_offset(),
            5,
            "one write covers every append before it"
        );
        // Past a roll (2048-byte segments), earlier segments were written when they closed.
        for _ in 0..8 {
            append_in_epoch(&log, 3, 0).await;
        }
        let end = log.next_offset();
        log.write_through(end).await.unwrap();
        assert_eq!(log.written_offset(), end);
    });
}
