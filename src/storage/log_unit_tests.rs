//! Unit tests of `storage::log` that need its private parts (the model test and
//! `log_tests` drive it from outside).

use super::*;
use crate::storage::batch::{self, tests::encoded_batch};
use crate::storage::test_util::{run, temp_dir};

async fn append_batch(log: &Log, count: i32) -> i64 {
    let bytes = encoded_batch(count, 100);
    let mut headers = batch::validate_batches(&bytes, 1 << 20).unwrap();
    log.append(bytes, &mut headers, 0).await.unwrap()
}

/// Proves appends get consecutive offsets, roll segments, read back, and survive reopening.
#[test]
fn appends_rolls_reads_and_recovers() {
    let dir = temp_dir("roll");
    run(move || async move {
        let config = LogConfig {
            segment_bytes_max: 4096,
            index_interval_bytes: 1024,
            segment_ms: i64::MAX,
            ..LogConfig::default()
        };
        let log = Log::open(&dir, config, false, &mut |_: &BatchHeader| {})
            .await
            .unwrap();
        for round in 0..40 {
            assert_eq!(append_batch(&log, 5).await, round * 5);
        }
        assert_eq!(log.next_offset(), 200);
        assert!(segment_base_offsets(&dir).unwrap().len() > 1);
        for offset in [0, 3, 57, 199] {
            let bytes = log.read(offset, 1).await.unwrap();
            let header = batch::peek_header(&bytes, 0).unwrap().unwrap();
            assert!(header.base_offset <= offset && offset < header.next_offset());
            assert_eq!(
                header.size,
                bytes.len(),
                "max_bytes 1 still returns one whole batch"
            );
        }
        assert!(log.read(200, 1000).await.unwrap().is_empty());
        assert!(log.read(201, 1000).await.is_err());
        log.flush().await.unwrap();
        drop(log);
        let reopened = Log::open(&dir, config, false, &mut |_: &BatchHeader| {})
            .await
            .unwrap();
        assert_eq!(reopened.next_offset(), 200);
        let bytes = reopened.read(100, 1 << 20).await.unwrap();
        assert_eq!(
            batch::validate_batches(&bytes, 1 << 20).unwrap()[0].base_offset,
            100
        );
        reopened.remove().await.unwrap();
    });
}

/// Proves a torn tail is cut on recovery and appends continue from the last whole batch.
#[test]
fn truncates_torn_tail() {
    let dir = temp_dir("torn");
    run(move || async move {
        let config = LogConfig {
            segment_bytes_max: 1 << 20,
            index_interval_bytes: 4096,
            segment_ms: i64::MAX,
            ..LogConfig::default()
        };
        let log = Log::open(&dir, config, false, &mut |_: &BatchHeader| {})
            .await
            .unwrap();
        append_batch(&log, 3).await;
        append_batch(&log, 3).await;
        log.flush().await.unwrap();
        // On disk the file runs on with zero padding to the block; tear the batch itself.
        let length = log.active().size();
        drop(log);
        let path = dir.join(crate::storage::segment_file_name(0, "log"));
        let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        file.set_len(length - 7).unwrap();
        let log = Log::open(&dir, config, false, &mut |_: &BatchHeader| {})
            .await
            .unwrap();
        assert_eq!(log.next_offset(), 3);
        assert_eq!(append_batch(&log, 2).await, 3);
        log.remove().await.unwrap();
    });
}

use crate::storage::cleaner::tests::{keyed_batch, TestRecord};
use kafka_protocol::records::RecordBatchDecoder;
use std::collections::BTreeMap;

const NOW_MS: i64 = 1_700_000_000_000;
const DELETE_RETENTION_MS: i64 = 60_000;

/// A record as read back: offset, key, value.
type Read = (i64, Option<String>, Option<String>);

async fn append_records(log: &Log, records: &[TestRecord<'_>]) -> i64 {
    let bytes = keyed_batch(0, records, None);
    let mut headers = batch::validate_batches(&bytes, 1 << 20).unwrap();
    log.append(bytes, &mut headers, 0).await.unwrap()
}

/// Every record from `from` to the log end, read the way a consumer does.
async fn read_all(log: &Log, from: i64) -> Vec<Read> {
    let mut records = Vec::new();
    let mut offset = from;
    while offset < log.next_offset() {
        let mut bytes = log.read(offset, 1 << 20).await.unwrap();
        if bytes.is_empty() {
            break;
        }
        for set in RecordBatchDecoder::decode_all(&mut bytes).unwrap() {
            for record in set.records {
                if record.offset >= offset {
                    offset = record.offset + 1;
                    let text = |bytes: Option<Bytes>| {
                        bytes.map(|bytes| String::from_utf8(bytes.to_vec()).unwrap())
                    };
                    records.push((record.offset, text(record.key), text(record.value)));
                }
            }
        }
    }
    records
}

/// A small deterministic generator, so the test needs no dependency.
fn next_random(state: &mut u64) -> u64 {
    *state = state
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    *state >> 33
}

/// Appends a keyed history with updates and tombstones (old and young) across many
/// segments; returns the model of what was written.
async fn write_history(log: &Log, rounds: usize, seed: u64) -> Vec<(i64, TestRecordOwned)> {
    let mut state = seed;
    let mut written = Vec::new();
    for _ in 0..rounds {
        let count = 1 + next_random(&mut state) % 4;
        let owned: Vec<TestRecordOwned> = (0..count)
            .map(|_| {
                let key = format!("key-{}", next_random(&mut state) % 12);
                let kind = next_random(&mut state) % 10;
                let value = (kind >= 2).then(|| format!("value-{}", next_random(&mut state)));
                // Half the tombstones are past delete.retention.ms, half are not.
                let timestamp = match kind {
                    0 => NOW_MS - 2 * DELETE_RETENTION_MS,
                    _ => NOW_MS - 1000,
                };
                (Some(key), value, timestamp)
            })
            .collect();
        let borrowed: Vec<TestRecord<'_>> = owned
            .iter()
            .map(|(key, value, timestamp)| (key.as_deref(), value.as_deref(), *timestamp))
            .collect();
        let base = append_records(log, &borrowed).await;
        for (index, record) in owned.into_iter().enumerate() {
            written.push((base + index as i64, record));
        }
    }
    written
}

type TestRecordOwned = (Option<String>, Option<String>, i64);

/// What compaction must leave: below `clean_below`, the latest record of each key unless it
/// is an expired tombstone; from it on, everything.
fn expected_after_compaction(written: &[(i64, TestRecordOwned)], clean_below: i64) -> Vec<Read> {
    let mut latest: BTreeMap<&str, i64> = BTreeMap::new();
    for (offset, (key, _, _)) in written {
        latest.insert(key.as_deref().unwrap(), *offset);
    }
    written
        .iter()
        .filter(|(offset, (key, value, timestamp))| {
            *offset >= clean_below
                || (latest[key.as_deref().unwrap()] == *offset
                    && (value.is_some() || *timestamp >= NOW_MS - DELETE_RETENTION_MS))
        })
        .map(|(offset, (key, value, _))| (*offset, key.clone(), value.clone()))
        .collect()
}

/// Proves compaction against a model: the log reads back exactly the latest value of each
/// key at its original offset (young tombstones kept, old ones gone), start and end offsets
/// stay, a fetch at any removed offset gets the next survivor, and all of it survives a
/// reopen and a second compaction.
#[test]
fn compaction_keeps_latest_per_key() {
    let dir = temp_dir("compact");
    run(move || async move {
        let config = LogConfig {
            segment_bytes_max: 1024,
            index_interval_bytes: 200,
            segment_ms: i64::MAX,
            ..LogConfig::default()
        };
        let log = Log::open(&dir, config, false, &mut |_: &BatchHeader| {})
            .await
            .unwrap();
        let written = write_history(&log, 150, 7).await;
        let (start, end) = (log.start_offset(), log.next_offset());
        let segments_before = log.segments.borrow().len();
        assert!(segments_before > 5, "the history spans many segments");
        let active_base = log.active().base_offset;
        assert!(log.needs_compaction(0.5));

        let stats = log.compact(DELETE_RETENTION_MS, NOW_MS).await.unwrap();
        let expected = expected_after_compaction(&written, active_base);
        assert_eq!((log.start_offset(), log.next_offset()), (start, end));
        assert_eq!(read_all(&log, 0).await, expected);
        let active_records = written.iter().filter(|(o, _)| *o >= active_base).count();
        assert_eq!(stats.records_kept as usize, expected.len() - active_records);
        assert!(
            log.segments.borrow().len() < segments_before,
            "segments merged"
        );
        assert!(!log.needs_compaction(0.5), "nothing rolled since");
        for offset in 0..end {
            let next_survivor = expected.iter().find(|(kept, _, _)| *kept >= offset);
            let read = read_all(&log, offset).await;
            assert_eq!(read.first(), next_survivor, "fetch at offset {offset}");
        }
        log.flush().await.unwrap();
        drop(log);

        let log = Log::open(&dir, config, false, &mut |_: &BatchHeader| {})
            .await
            .unwrap();
        assert_eq!((log.start_offset(), log.next_offset()), (start, end));
        assert_eq!(read_all(&log, 0).await, expected);
        let mut written = written;
        written.extend(write_history(&log, 60, 11).await);
        let active_base = log.active().base_offset;
        log.compact(DELETE_RETENTION_MS, NOW_MS).await.unwrap();
        let expected = expected_after_compaction(&written, active_base);
        assert_eq!(read_all(&log, 0).await, expected);
        assert_eq!(log.start_offset(), start);
        log.remove().await.unwrap();
    });
}

/// Proves a crash during compaction leaves a valid log: a leftover `.cleaned` file is
/// deleted on open, and segments a merged segment already covers (renamed in, but the
/// merged-away files not yet deleted) are removed.
#[test]
fn recovers_from_interrupted_compaction() {
    let dir = temp_dir("interrupted");
    run(move || async move {
        let config = LogConfig {
            segment_bytes_max: 1024,
            index_interval_bytes: 200,
            segment_ms: i64::MAX,
            ..LogConfig::default()
        };
        let log = Log::open(&dir, config, false, &mut |_: &BatchHeader| {})
            .await
            .unwrap();
        let written = write_history(&log, 80, 3).await;
        let active_base = log.active().base_offset;
        let before: Vec<i64> = segment_base_offsets(&dir).unwrap();
        let saved: Vec<(PathBuf, Vec<u8>)> = before
            .iter()
            .flat_map(|base| ["log", "index"].map(|ext| segment_file_name(*base, ext)))
            .map(|name| (dir.join(&name), std::fs::read(dir.join(&name)).unwrap()))
            .collect();
        log.compact(DELETE_RETENTION_MS, NOW_MS).await.unwrap();
        let expected = expected_after_compaction(&written, active_base);
        let after = segment_base_offsets(&dir).unwrap();
        assert!(after.len() < before.len());
        log.flush().await.unwrap();
        drop(log);

        // Put back the segments the merge deleted, as if the crash came before that.
        for (path, bytes) in &saved {
            if !path.exists() {
                std::fs::write(path, bytes).unwrap();
            }
        }
        let cleaned = dir.join(format!("{}.cleaned", segment_file_name(0, "log")));
        std::fs::write(&cleaned, b"half-written").unwrap();
        let log = Log::open(&dir, config, false, &mut |_: &BatchHeader| {})
            .await
            .unwrap();
        assert!(!cleaned.exists(), "leftover .cleaned file removed");
        assert_eq!(segment_base_offsets(&dir).unwrap(), after);
        assert_eq!(read_all(&log, 0).await, expected);
        log.remove().await.unwrap();
    });
}
