//! Tests of the log's write-behind, recovery modes, time index, time roll, retention and
//! DeleteRecords, each against real files through a glommio executor.

use super::batch::{self, AbortedTxn, BatchHeader};
use super::cleaner::tests::keyed_batch;
use super::log::{now_ms, BatchObserver, Log, LogConfig};
use super::test_util::{run, temp_dir};
use super::StorageError;
use crate::partition::producer_state::{ProducerState, SequenceCheck};

fn config(segment_bytes_max: u64) -> LogConfig {
    LogConfig {
        segment_bytes_max,
        index_interval_bytes: 256,
        segment_ms: i64::MAX,
        ..LogConfig::default()
    }
}

/// Appends one batch of `count` records of `value_bytes` each, all stamped `timestamp`, from
/// the idempotent `producer` (id, base sequence) if any. Returns its base offset.
async fn append(
    log: &Log,
    count: usize,
    value_bytes: usize,
    timestamp: i64,
    producer: Option<(i64, i32)>,
) -> i64 {
    let value = "v".repeat(value_bytes);
    let records: Vec<_> = (0..count)
        .map(|_| (Some("k"), Some(value.as_str()), timestamp))
        .collect();
    let bytes = keyed_batch(0, &records, producer);
    let mut headers = batch::validate_batches(&bytes, usize::MAX).unwrap();
    log.append(bytes, &mut headers, 0).await.unwrap()
}

/// Every batch from `offset` to the log end, read back through `Log::read`.
async fn read_all(log: &Log, mut offset: i64) -> Vec<BatchHeader> {
    let mut headers = Vec::new();
    while offset < log.next_offset() {
        let bytes = log.read(offset, 1 << 20).await.unwrap();
        let batches = batch::validate_batches(&bytes, usize::MAX).unwrap();
        for header in &batches {
            batch::verify_crc(&bytes, header).expect("crc of a read batch");
        }
        offset = batches.last().unwrap().next_offset();
        headers.extend(batches);
    }
    headers
}

/// Counts the batches it observes; accepts any snapshot.
#[derive(Default)]
struct Counter {
    restored: bool,
    observed: usize,
}

impl BatchObserver for Counter {
    fn restore(&mut self, _snapshot: &[u8]) -> bool {
        self.restored = true;
        true
    }

    fn observe(&mut self, _header: &BatchHeader) -> Option<AbortedTxn> {
        self.observed += 1;
        None
    }
}

/// Proves several megabytes appended through the write-behind path read back intact from
/// memory and, after a restart, from disk; and that what was never flushed is lost cleanly on a
/// crash (the log ends at the last flushed batch, nothing torn is served).
#[test]
fn write_behind_reads_back_and_loses_only_unflushed() {
    let dir = temp_dir("behind");
    run(move || async move {
        let log = Log::open(&dir, config(64 << 20), false, &mut |_: &BatchHeader| {})
            .await
            .unwrap();
        for _ in 0..400 {
            append(&log, 10, 1000, 1, None).await;
        }
        assert_eq!(read_all(&log, 0).await.len(), 400);
        log.flush().await.unwrap();
        for _ in 0..3 {
            append(&log, 10, 1000, 1, None).await;
        }
        // A crash: the three unflushed batches never reach the disk.
        drop(log);
        let log = Log::open(&dir, config(64 << 20), false, &mut |_: &BatchHeader| {})
            .await
            .unwrap();
        assert_eq!(log.next_offset(), 4000);
        let headers = read_all(&log, 0).await;
        assert_eq!(headers.len(), 400);
        assert!(headers
            .windows(2)
            .all(|pair| pair[0].next_offset() == pair[1].base_offset));
        assert_eq!(append(&log, 1, 10, 1, None).await, 4000);
        log.remove().await.unwrap();
    });
}

/// Proves reads of what lies on disk, made one after the other, are served by the read-ahead
/// and return exactly the log: every batch once, in order, its CRC intact, also after a read
/// elsewhere took the read-ahead's place.
#[test]
fn sequential_disk_reads_are_read_ahead_and_exact() {
    let dir = temp_dir("read-ahead");
    run(move || async move {
        let log = Log::open(&dir, config(64 << 20), false, &mut |_: &BatchHeader| {})
            .await
            .unwrap();
        for _ in 0..600 {
            append(&log, 10, 1000, 1, None).await;
        }
        log.flush().await.unwrap();
        drop(log);
        // Reopened, the log holds only its last block in memory: reads go to disk.
        let log = Log::open(&dir, config(64 << 20), false, &mut |_: &BatchHeader| {})
            .await
            .unwrap();
        let taken = super::read_ahead::taken();
        let mut offset = 0;
        let mut batches = 0;
        while offset < log.next_offset() {
            if (3000..3100).contains(&offset) {
                // A read elsewhere replaces the read-ahead; the sequence goes on exactly.
                let elsewhere = log.read(500, 64 << 10).await.unwrap();
                assert_eq!(
                    batch::peek_header(&elsewhere, 0)
                        .unwrap()
                        .unwrap()
                        .base_offset,
                    500
                );
            }
            let bytes = log.read(offset, 128 << 10).await.unwrap();
            let headers = batch::validate_batches(&bytes, usize::MAX).unwrap();
            assert_eq!(headers[0].base_offset, offset);
            for header in &headers {
                batch::verify_crc(&bytes, header).expect("crc of a read batch");
            }
            batches += headers.len();
            offset = headers.last().unwrap().next_offset();
        }
        assert_eq!(batches, 600);
        let used = super::read_ahead::taken() - taken;
        assert!(
            used >= 40,
            "only {used} of about 50 reads used the read-ahead"
        );
        log.remove().await.unwrap();
    });
}

/// Proves a log written in small flushed pieces gets zeros written ahead of its end (so its
/// writes overwrite instead of extending the file), that those never cover data: every batch
/// reads back after a crash and after a clean close, and that a close cuts them off.
#[test]
fn small_flushed_writes_get_zeros_ahead_that_never_cover_data() {
    let dir = temp_dir("zeros");
    run(move || async move {
        let log = Log::open(&dir, config(64 << 20), false, &mut |_: &BatchHeader| {})
            .await
            .unwrap();
        let file = dir.join("00000000000000000000.log");
        for round in 0..300 {
            append(&log, 1, 700 + round, 1, None).await;
            log.flush().await.unwrap();
        }
        // Let the last zeroing write land.
        glommio::timer::sleep(std::time::Duration::from_millis(50)).await;
        let on_disk = std::fs::metadata(&file).unwrap().len();
        assert!(
            on_disk > log.size_bytes(),
            "zeros ahead: file {on_disk} bytes, data {}",
            log.size_bytes()
        );
        assert_eq!(read_all(&log, 0).await.len(), 300);
        // A crash: recovery takes the zeros for padding and keeps every batch.
        drop(log);
        let log = Log::open(&dir, config(64 << 20), false, &mut |_: &BatchHeader| {})
            .await
            .unwrap();
        assert_eq!(log.next_offset(), 300);
        assert_eq!(read_all(&log, 0).await.len(), 300);
        for _ in 0..20 {
            append(&log, 1, 900, 1, None).await;
            log.flush().await.unwrap();
        }
        log.close(&[]).await.unwrap();
        assert_eq!(std::fs::metadata(&file).unwrap().len(), log.size_bytes());
        drop(log);
        let log = Log::open(&dir, config(64 << 20), true, &mut |_: &BatchHeader| {})
            .await
            .unwrap();
        assert_eq!(read_all(&log, 0).await.len(), 320);
        log.remove().await.unwrap();
    });
}

/// Proves index entries written by concurrent background writes (the flusher and a follower's
/// fetch round at once) land once each, in order: later writes go on after them, and a log
/// reopened trusting its indexes reads back every batch.
#[test]
fn concurrent_index_writes_land_once_each() {
    let dir = temp_dir("index-writes");
    run(move || async move {
        let log = Log::open(&dir, config(64 << 20), false, &mut |_: &BatchHeader| {})
            .await
            .unwrap();
        for round in 0..3 {
            for _ in 0..40 {
                append(&log, 2, 300, 1, None).await;
            }
            let (first, second) =
                futures_lite::future::zip(log.write_pending(), log.write_pending()).await;
            first.unwrap();
            second.unwrap();
            assert_eq!(read_all(&log, 0).await.len(), 40 * (round + 1));
        }
        log.close(&[]).await.unwrap();
        drop(log);
        let index = std::fs::metadata(dir.join("00000000000000000000.index")).unwrap();
        assert_eq!(index.len() % 8, 0);
        let log = Log::open(&dir, config(64 << 20), true, &mut |_: &BatchHeader| {})
            .await
            .unwrap();
        assert_eq!(read_all(&log, 0).await.len(), 120);
        for offset in [0, 77, 151, 239] {
            let bytes = log.read(offset, 1000).await.unwrap();
            let header = batch::peek_header(&bytes, 0).unwrap().unwrap();
            assert!(header.base_offset <= offset && offset < header.next_offset());
        }
        log.remove().await.unwrap();
    });
}

/// Proves a clean close lets the next open trust every segment (the observer is restored from
/// the snapshot and sees no batch), and a producer snapshot still answers a retry as a
/// duplicate; after a crash only the active segment is scanned.
#[test]
fn recovery_scans_only_past_the_recovery_point() {
    let dir = temp_dir("recovery");
    run(move || async move {
        let mut producers = ProducerState::default();
        let log = Log::open(&dir, config(16 << 10), false, &mut producers)
            .await
            .unwrap();
        let value = "v".repeat(500);
        for sequence in 0..60 {
            let records = [(Some("k"), Some(value.as_str()), 1); 2];
            let bytes = keyed_batch(0, &records, Some((7, sequence * 2)));
            let mut headers = batch::validate_batches(&bytes, usize::MAX).unwrap();
            log.append(bytes, &mut headers, 0).await.unwrap();
            producers.record(&headers[0]);
        }
        assert!(log.active_base_offset() > 0, "several segments were rolled");
        log.close(&producers.snapshot()).await.unwrap();
        drop(log);

        let mut restored = ProducerState::default();
        let log = Log::open(&dir, config(16 << 10), true, &mut restored)
            .await
            .unwrap();
        assert_eq!(log.next_offset(), 120);
        let retry = keyed_batch(0, &[(Some("k"), Some("x"), 1); 2], Some((7, 118)));
        let header = batch::validate_batches(&retry, usize::MAX).unwrap()[0];
        assert_eq!(
            restored.check(&header),
            SequenceCheck::Duplicate { base_offset: 118 }
        );
        let mut counter = Counter::default();
        drop(log);
        let log = Log::open(&dir, config(16 << 10), true, &mut counter)
            .await
            .unwrap();
        assert!(counter.restored);
        assert_eq!(counter.observed, 0, "a clean open replays nothing");
        // Crash with a snapshot at the active segment's base: only that segment is replayed.
        append(&log, 1, 10, 1, None).await;
        let active = log.active_base_offset();
        assert!(
            log.next_offset() - active > 10,
            "the active segment holds many batches"
        );
        log.write_snapshot(active, b"state").await.unwrap();
        log.flush().await.unwrap();
        drop(log);
        let mut counter = Counter::default();
        let log = Log::open(&dir, config(16 << 10), false, &mut counter)
            .await
            .unwrap();
        assert_eq!(log.next_offset(), 121);
        assert_eq!(
            counter.observed,
            read_all(&log, active).await.len(),
            "only the batches of the active segment are observed"
        );
        assert_eq!(read_all(&log, 0).await.len(), 61);
        log.remove().await.unwrap();
    });
}

/// Proves ListOffsets by timestamp finds the first batch at or after a time, across segments
/// and after reopening (from the `.timeindex`), and that `segment.ms` rolls an old segment.
#[test]
fn finds_offsets_by_time_and_rolls_by_age() {
    let dir = temp_dir("time");
    run(move || async move {
        let log = Log::open(&dir, config(8 << 10), false, &mut |_: &BatchHeader| {})
            .await
            .unwrap();
        for index in 0..100 {
            append(&log, 1, 300, 1_000_000 + index * 10, None).await;
        }
        let expect = |timestamp: i64| match timestamp {
            t if t <= 1_000_000 => Some((0, 1_000_000)),
            t if t > 1_000_990 => None,
            t => {
                let index = (t - 1_000_000 + 9) / 10;
                Some((index, 1_000_000 + index * 10))
            }
        };
        for timestamp in [0, 1_000_000, 1_000_001, 1_000_455, 1_000_990, 1_000_991] {
            assert_eq!(
                log.offset_for_timestamp(timestamp).await.unwrap(),
                expect(timestamp),
                "timestamp {timestamp}"
            );
        }
        assert_eq!(log.max_timestamp().await.unwrap(), Some((99, 1_000_990)));
        log.close(b"").await.unwrap();
        drop(log);
        let aged = LogConfig {
            segment_ms: 60_000,
            ..config(8 << 10)
        };
        let log = Log::open(&dir, aged, true, &mut |_: &BatchHeader| {})
            .await
            .unwrap();
        for timestamp in [1_000_001, 1_000_455, 1_000_990] {
            assert_eq!(
                log.offset_for_timestamp(timestamp).await.unwrap(),
                expect(timestamp)
            );
        }
        // The active segment's first batch is from 1970: the next append rolls it.
        let before = log.active_base_offset();
        append(&log, 1, 10, now_ms(), None).await;
        assert_eq!(log.active_base_offset(), 100);
        assert!(before < 100);
        append(&log, 1, 10, now_ms(), None).await;
        assert_eq!(
            log.active_base_offset(),
            100,
            "a young segment is not rolled"
        );
        log.remove().await.unwrap();
    });
}

/// Proves retention by time and by size deletes whole inactive segments from the front and
/// moves the log start; DeleteRecords moves it to any offset, refuses one past the end, and
/// the start survives a restart.
#[test]
fn retention_and_delete_records_move_the_log_start() {
    let dir = temp_dir("retention");
    run(move || async move {
        let now = now_ms();
        let retained = LogConfig {
            retention_ms: 3_600_000,
            ..config(4 << 10)
        };
        let log = Log::open(&dir, retained, false, &mut |_: &BatchHeader| {})
            .await
            .unwrap();
        for index in 0..60 {
            let timestamp = if index < 30 { now - 7_200_000 } else { now };
            append(&log, 1, 400, timestamp, None).await;
        }
        let deleted = log.apply_retention(now).await.unwrap();
        assert!(deleted > 0);
        let start = log.start_offset();
        assert!((20..=30).contains(&start), "start {start}");
        assert!(matches!(
            log.read(start - 1, 100).await,
            Err(StorageError::OffsetOutOfRange { .. })
        ));
        assert_eq!(read_all(&log, start).await[0].base_offset, start);

        assert_eq!(log.delete_records_before(45).await.unwrap(), 45);
        assert_eq!(read_all(&log, 45).await.len(), 15);
        assert!(log.delete_records_before(61).await.is_err());
        assert_eq!(
            log.delete_records_before(40).await.unwrap(),
            45,
            "never moves back"
        );
        log.flush().await.unwrap();
        drop(log);

        let sized = LogConfig {
            retention_bytes: 6 << 10,
            ..config(4 << 10)
        };
        let log = Log::open(&dir, sized, false, &mut |_: &BatchHeader| {})
            .await
            .unwrap();
        assert_eq!(log.start_offset(), 45);
        for _ in 0..30 {
            append(&log, 1, 400, now, None).await;
        }
        log.apply_retention(now).await.unwrap();
        let start = log.start_offset();
        let kept: usize = read_all(&log, start)
            .await
            .iter()
            .map(|header| header.size)
            .sum();
        assert!(start > 45 && kept < (6 << 10) + (4 << 10), "kept {kept}");
        log.remove().await.unwrap();
    });
}

/// Files of `dir` whose names end with `suffix`.
fn files_ending(dir: &std::path::Path, suffix: &str) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(suffix))
        .collect();
    names.sort();
    names
}

/// Proves `file.delete.delay.ms` as Kafka has it: segments deleted by retention are renamed
/// `.deleted` at once and go after the delay, leftovers go when the log opens, and a deleted
/// log's directory is renamed `-delete` at once and removed after the delay (or at start-up).
#[test]
fn deleted_files_wait_for_the_file_delete_delay() {
    let parent = temp_dir("file-delete-delay");
    let dir = parent.join("topic-0");
    run(move || async move {
        let delayed = LogConfig {
            retention_ms: 3_600_000,
            file_delete_delay_ms: 200,
            ..config(4 << 10)
        };
        let now = now_ms();
        let log = Log::open(&dir, delayed, false, &mut |_: &BatchHeader| {})
            .await
            .unwrap();
        for index in 0..40 {
            let timestamp = if index < 20 { now - 7_200_000 } else { now };
            append(&log, 1, 400, timestamp, None).await;
        }
        assert!(log.apply_retention(now).await.unwrap() > 0);
        let deleted = files_ending(&dir, ".log.deleted");
        assert!(!deleted.is_empty(), "retention renamed segments");
        assert!(!files_ending(&dir, ".index.deleted").is_empty());
        glommio::timer::sleep(std::time::Duration::from_millis(600)).await;
        assert!(
            files_ending(&dir, ".deleted").is_empty(),
            "gone after the delay"
        );

        // A leftover from a stop before the delay passed goes when the log opens.
        let start = log.start_offset();
        log.flush().await.unwrap();
        drop(log);
        std::fs::write(dir.join("00000000000000000001.log.deleted"), b"old").unwrap();
        let log = Log::open(&dir, delayed, false, &mut |_: &BatchHeader| {})
            .await
            .unwrap();
        assert!(files_ending(&dir, ".deleted").is_empty());
        assert_eq!(log.start_offset(), start);

        log.delete_later().await.unwrap();
        assert!(!dir.exists(), "the name is free at once");
        let renamed = files_ending(&parent, "-delete");
        assert_eq!(renamed.len(), 1, "{renamed:?}");
        assert!(renamed[0].starts_with("topic-0."));
        glommio::timer::sleep(std::time::Duration::from_millis(600)).await;
        assert!(
            files_ending(&parent, "-delete").is_empty(),
            "removed after the delay"
        );

        std::fs::create_dir_all(parent.join("topic-1.0123abcd-delete")).unwrap();
        std::fs::create_dir_all(parent.join("topic-2")).unwrap();
        super::remove_deleted_dirs(&parent);
        assert!(files_ending(&parent, "-delete").is_empty());
        assert!(parent.join("topic-2").exists());
    });
}
