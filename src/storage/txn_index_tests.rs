//! Tests of the segments' transaction indexes through a whole log: written on ABORT markers,
//! rebuilt after a crash, cut by truncation, carried through compaction and deleted with their
//! segments, each against real files through a glommio executor.

use std::path::Path;

use bytes::Bytes;

use super::batch::{self, ControlType, Writer};
use super::log::{now_ms, Log, LogConfig};
use super::test_util::{run, temp_dir};
use super::txn_index;
use crate::partition::producer_state::ProducerState;

fn config() -> LogConfig {
    LogConfig {
        segment_bytes_max: 2 << 10,
        index_interval_bytes: 256,
        segment_ms: i64::MAX,
        ..LogConfig::default()
    }
}

/// Appends `bytes` as the partition does: the log, then the producer state, then the
/// transactions its markers aborted into the indexes. Returns the base offset.
async fn append(log: &Log, producers: &mut ProducerState, bytes: Vec<u8>) -> i64 {
    let mut headers = batch::validate_batches(&bytes, usize::MAX).unwrap();
    let base = log.append(bytes, &mut headers, 0).await.unwrap();
    let aborted = headers
        .iter()
        .filter_map(|header| producers.record(header))
        .collect();
    log.add_aborted(aborted).await.unwrap();
    base
}

/// A transactional batch of one record under `key` from `producer_id`.
fn data(producer_id: i64, key: &str) -> Vec<u8> {
    let record = (
        Bytes::from(key.to_string()),
        Some(Bytes::from(vec![b'v'; 300])),
    );
    let writer = Writer::Transaction {
        producer_id,
        producer_epoch: 0,
    };
    batch::encode_records(vec![record], now_ms(), writer)
}

fn marker(producer_id: i64, kind: ControlType) -> Vec<u8> {
    batch::encode_marker(producer_id, 0, 0, kind, now_ms())
}

/// (producer id, first offset, marker offset) of an index entry.
type Entry = (i64, i64, i64);

/// The entries of every non-empty `.txnindex` file in `dir`, by file name.
fn index_files(dir: &Path) -> Vec<(String, Vec<Entry>)> {
    let mut files: Vec<(String, Vec<Entry>)> = std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap())
        .filter(|entry| entry.file_name().to_string_lossy().ends_with(".txnindex"))
        .map(|entry| {
            let entries = txn_index::decode_all(&std::fs::read(entry.path()).unwrap())
                .iter()
                .map(|txn| (txn.producer_id, txn.first_offset, txn.last_offset))
                .collect();
            (entry.file_name().to_string_lossy().into_owned(), entries)
        })
        .filter(|(_, entries): &(String, Vec<Entry>)| !entries.is_empty())
        .collect();
    files.sort();
    files
}

/// Writes producer 7's aborted transaction spanning segments, producer 8's committed one and
/// producer 9's aborted one; returns the log and producer state.
async fn write_transactions(dir: &Path) -> (Log, ProducerState) {
    let mut producers = ProducerState::default();
    let log = Log::open(dir, config(), false, &mut producers)
        .await
        .unwrap();
    for round in 0..6 {
        append(&log, &mut producers, data(7, &format!("a{round}"))).await;
        append(&log, &mut producers, data(8, &format!("b{round}"))).await;
    }
    append(&log, &mut producers, marker(7, ControlType::Abort)).await;
    append(&log, &mut producers, marker(8, ControlType::Commit)).await;
    append(&log, &mut producers, data(9, "c")).await;
    append(&log, &mut producers, marker(9, ControlType::Abort)).await;
    (log, producers)
}

/// Proves an ABORT marker indexes its transaction in the marker's segment (a COMMIT none),
/// read_committed reads learn the transactions they overlap, the file is written beside the
/// segment in Kafka's layout, and a crash that loses the file, or leaves it ahead of the log,
/// is repaired from the log on open.
#[test]
fn aborted_transactions_are_indexed_and_rebuilt_after_a_crash() {
    let dir = temp_dir("txn-index-crash");
    run(move || async move {
        let (log, _) = write_transactions(&dir).await;
        // Offsets: 7 at 0, 2, ... 10; 8 at 1, 3, ... 11; markers at 12 (7) and 13 (8);
        // 9 at 14, its marker at 15.
        assert_eq!(log.next_offset(), 16);
        assert_eq!(log.aborted_between(0, 16), vec![(7, 0), (9, 14)]);
        assert_eq!(log.aborted_between(13, 16), vec![(9, 14)]);
        assert_eq!(log.aborted_between(0, 1), vec![(7, 0)]);
        assert!(log.aborted_between(16, 20).is_empty());
        log.write_pending().await.unwrap();
        let files = index_files(&dir);
        let all: Vec<_> = files
            .iter()
            .flat_map(|(_, entries)| entries.clone())
            .collect();
        assert_eq!(all, vec![(7, 0, 12), (9, 14, 15)]);

        // A crash that loses every index file: the replay rebuilds them.
        log.flush().await.unwrap();
        drop(log);
        for (name, _) in &files {
            std::fs::remove_file(dir.join(name)).unwrap();
        }
        let mut producers = ProducerState::default();
        let log = Log::open(&dir, config(), false, &mut producers)
            .await
            .unwrap();
        assert_eq!(log.aborted_between(0, 16), vec![(7, 0), (9, 14)]);
        assert_eq!(index_files(&dir), files, "rewritten on open");

        // An entry whose marker the crash took back is dropped.
        let (last, _) = files.last().unwrap().clone();
        let mut bytes = std::fs::read(dir.join(&last)).unwrap();
        bytes.extend(txn_index::encode(&batch::AbortedTxn {
            producer_id: 9,
            first_offset: 14,
            last_offset: 40,
            last_stable_offset: 41,
        }));
        log.flush().await.unwrap();
        drop(log);
        std::fs::write(dir.join(&last), bytes).unwrap();
        let log = Log::open(&dir, config(), true, &mut ProducerState::default())
            .await
            .unwrap();
        assert_eq!(log.aborted_between(0, 100), vec![(7, 0), (9, 14)]);
        assert_eq!(index_files(&dir), files);
        log.remove().await.unwrap();
    });
}

/// Proves a truncation below a marker removes its transaction from the index (file and
/// memory) and the same marker written again is indexed once; compaction keeps the entries
/// with the markers it keeps, also when it merges segments and across a reopen; retention deletes them with their segment.
#[test]
fn truncation_compaction_and_retention_carry_the_index() {
    let dir = temp_dir("txn-index-cut");
    run(move || async move {
        let (log, _) = write_transactions(&dir).await;
        let mut producers = ProducerState::default();
        log.truncate_to(15, &mut producers).await.unwrap();
        assert_eq!(log.aborted_between(0, 16), vec![(7, 0)]);
        log.write_pending().await.unwrap();
        let entries: Vec<_> = index_files(&dir)
            .into_iter()
            .flat_map(|(_, entries)| entries)
            .collect();
        assert_eq!(entries, vec![(7, 0, 12)]);
        append(&log, &mut producers, marker(9, ControlType::Abort)).await;
        assert_eq!(log.aborted_between(0, 16), vec![(7, 0), (9, 14)]);

        // Compaction: the aborted records (7's six, 9's one) go; markers and entries stay.
        for round in 0..8 {
            append(&log, &mut producers, data(8, &format!("d{round}"))).await;
        }
        append(&log, &mut producers, marker(8, ControlType::Commit)).await;
        let stats = log.compact(0, now_ms()).await.unwrap();
        assert_eq!(stats.records_read - stats.records_kept, 7, "{stats:?}");
        assert_eq!(log.aborted_between(0, 16), vec![(7, 0), (9, 14)]);
        // Merged into one segment, which takes the entries of all it replaces.
        log.set_config(LogConfig {
            segment_bytes_max: 64 << 10,
            ..config()
        });
        let stats = log.compact(0, now_ms()).await.unwrap();
        assert_eq!(stats.segments_after, 1, "{stats:?}");
        assert_eq!(log.aborted_between(0, 16), vec![(7, 0), (9, 14)]);
        log.flush().await.unwrap();
        drop(log);
        let log = Log::open(&dir, config(), false, &mut ProducerState::default())
            .await
            .unwrap();
        assert_eq!(log.aborted_between(0, 16), vec![(7, 0), (9, 14)]);
        let entries: Vec<_> = index_files(&dir)
            .into_iter()
            .flat_map(|(_, entries)| entries)
            .collect();
        assert_eq!(entries, vec![(7, 0, 12), (9, 14, 15)]);

        // Retention: the segments go with their indexes.
        log.set_config(LogConfig {
            retention_ms: 0,
            file_delete_delay_ms: 0,
            ..config()
        });
        assert!(log.apply_retention(now_ms() + 1_000).await.unwrap() > 0);
        assert!(log.aborted_between(0, 16).is_empty());
        assert!(index_files(&dir).is_empty());
        log.remove().await.unwrap();
    });
}
