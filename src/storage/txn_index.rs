//! A segment's `.txnindex`: the transactions that an ABORT marker in the segment ended, in
//! Kafka's layout (34-byte big-endian entries: version 0, producer id, first offset, last
//! offset (the marker's), last stable offset once the marker was written), in marker order.
//!
//! A read_committed fetch asks which aborted transactions its records overlap; the answer comes
//! from the indexes of the segments from the fetch offset on. The entries are held in memory (as
//! the offset index is) and written to the file beside the other indexes: in the page cache by
//! the background flusher, synced when the segment closes. A crash can leave the file behind the
//! log (the replay of the producer state after the last snapshot adds the missing entries) or
//! ahead of it (entries whose marker recovery cut off are dropped on open). Entries go with
//! their segment: retention, truncation and compaction's swaps carry or cut them.

use std::cell::{Cell, RefCell};
use std::path::{Path, PathBuf};

use super::batch::AbortedTxn;
use super::blocking::off_reactor;
use super::index_file::IndexFile;
use super::StorageError;

/// Bytes of one entry (Kafka's `AbortedTxn.TOTAL_SIZE`).
pub const TXN_INDEX_ENTRY_BYTES: usize = 34;
/// The only entry version Kafka writes.
const ENTRY_VERSION: i16 = 0;

/// Encodes an entry as Kafka does.
pub fn encode(txn: &AbortedTxn) -> [u8; TXN_INDEX_ENTRY_BYTES] {
    let mut bytes = [0u8; TXN_INDEX_ENTRY_BYTES];
    bytes[0..2].copy_from_slice(&ENTRY_VERSION.to_be_bytes());
    bytes[2..10].copy_from_slice(&txn.producer_id.to_be_bytes());
    bytes[10..18].copy_from_slice(&txn.first_offset.to_be_bytes());
    bytes[18..26].copy_from_slice(&txn.last_offset.to_be_bytes());
    bytes[26..34].copy_from_slice(&txn.last_stable_offset.to_be_bytes());
    bytes
}

/// Decodes the whole entries of `bytes`, stopping at a partial entry or one of an unknown
/// version (what a torn write leaves).
pub fn decode_all(bytes: &[u8]) -> Vec<AbortedTxn> {
    let word = |entry: &[u8], at: usize| {
        let mut field = [0u8; 8];
        field.copy_from_slice(&entry[at..at + 8]);
        i64::from_be_bytes(field)
    };
    bytes
        .chunks_exact(TXN_INDEX_ENTRY_BYTES)
        .take_while(|entry| i16::from_be_bytes([entry[0], entry[1]]) == ENTRY_VERSION)
        .map(|entry| AbortedTxn {
            producer_id: word(entry, 2),
            first_offset: word(entry, 10),
            last_offset: word(entry, 18),
            last_stable_offset: word(entry, 26),
        })
        .collect()
}

pub struct TxnIndex {
    file: IndexFile,
    /// Ordered by last offset; one entry per marker.
    entries: RefCell<Vec<AbortedTxn>>,
    /// Entries already in the file (a prefix of `entries`).
    persisted: Cell<usize>,
}

impl TxnIndex {
    pub fn new(path: PathBuf) -> TxnIndex {
        TxnIndex {
            file: IndexFile::new(path),
            entries: RefCell::new(Vec::new()),
            persisted: Cell::new(0),
        }
    }

    pub fn path(&self) -> &Path {
        self.file.path()
    }

    /// Loads the file, keeping the entries whose marker lies below `end` (the segment's next
    /// offset after recovery); the file is rewritten when it held anything else.
    pub async fn open(&self, end: i64) -> Result<(), StorageError> {
        let bytes = self.file.read_all()?;
        let mut entries = decode_all(&bytes);
        entries.retain(|txn| txn.last_offset < end);
        let ordered = entries
            .windows(2)
            .all(|pair| pair[0].last_offset < pair[1].last_offset);
        let exact = ordered && entries.len() * TXN_INDEX_ENTRY_BYTES == bytes.len();
        if !ordered {
            entries.sort_by_key(|txn| txn.last_offset);
            entries.dedup_by_key(|txn| txn.last_offset);
        }
        let count = entries.len();
        *self.entries.borrow_mut() = entries;
        if exact {
            self.persisted.set(count);
            return Ok(());
        }
        tracing::warn!(
            "rewriting {}: it held entries past the segment's end or a torn one",
            self.file.path().display()
        );
        self.persisted.set(0);
        self.file.rewrite(Vec::new()).await?;
        self.persist().await?;
        self.file.sync_and_close().await
    }

    /// Adds the transaction its ABORT marker ended (in memory; `persist` writes it). A
    /// transaction already here (the replay after a restart or a truncation meets markers
    /// again) is not added twice.
    pub fn add(&self, txn: AbortedTxn) {
        let mut entries = self.entries.borrow_mut();
        let at = entries.partition_point(|held| held.last_offset < txn.last_offset);
        if entries
            .get(at)
            .is_some_and(|held| held.last_offset == txn.last_offset)
        {
            return;
        }
        entries.insert(at, txn);
        // An entry inserted before others already written: they are written again after it.
        self.persisted.set(self.persisted.get().min(at));
    }

    /// Whether entries are waiting to be written.
    pub fn has_unpersisted(&self) -> bool {
        self.persisted.get() < self.entries.borrow().len()
    }

    /// Adds to `found` the transactions that ended at or after `from` and began before `to`;
    /// true when no later segment can hold more (an entry's last stable offset reached `to`:
    /// every transaction aborted after it began at or after that offset).
    pub fn collect(&self, from: i64, to: i64, found: &mut Vec<AbortedTxn>) -> bool {
        let mut complete = false;
        for txn in self.entries.borrow().iter() {
            if txn.last_offset >= from && txn.first_offset < to {
                found.push(*txn);
            }
            complete |= txn.last_stable_offset >= to;
        }
        complete
    }

    /// Every entry.
    pub fn entries(&self) -> Vec<AbortedTxn> {
        self.entries.borrow().clone()
    }

    /// Writes the entries added since the last call to the file (page cache).
    pub async fn persist(&self) -> Result<(), StorageError> {
        let (from, fresh) = {
            let entries = self.entries.borrow();
            let from = self.persisted.get().min(entries.len());
            let fresh: Vec<u8> = entries[from..].iter().flat_map(encode).collect();
            (from, fresh)
        };
        if fresh.is_empty() {
            return Ok(());
        }
        let count = fresh.len() / TXN_INDEX_ENTRY_BYTES;
        self.file
            .write_at(fresh, (from * TXN_INDEX_ENTRY_BYTES) as u64)
            .await?;
        self.persisted.set(from + count);
        Ok(())
    }

    /// Keeps only the transactions whose marker lies below `end` (a truncation's cut), durably.
    pub async fn cut(&self, end: i64) -> Result<(), StorageError> {
        let kept: Vec<AbortedTxn> = {
            let mut entries = self.entries.borrow_mut();
            entries.retain(|txn| txn.last_offset < end);
            entries.clone()
        };
        self.file
            .rewrite(kept.iter().flat_map(encode).collect())
            .await?;
        self.persisted.set(kept.len());
        self.file.sync_and_close().await
    }

    /// Writes what is unwritten, fsyncs if anything was written since the file was opened, and
    /// closes it.
    pub async fn sync_and_close(&self) -> Result<(), StorageError> {
        self.persist().await?;
        self.file.sync_and_close().await
    }

    pub fn close(&self) {
        self.file.close();
    }

    pub async fn remove(&self) -> Result<(), StorageError> {
        self.file.remove().await
    }
}

/// Writes `entries` as the whole `.txnindex` at `path`, durably (off the reactor): the index of
/// a segment that compaction is about to rename into place.
pub async fn write_file(path: PathBuf, entries: Vec<AbortedTxn>) -> Result<(), StorageError> {
    off_reactor(move || {
        use std::io::Write;
        let bytes: Vec<u8> = entries.iter().flat_map(encode).collect();
        let written = std::fs::File::create(&path)
            .and_then(|mut file| file.write_all(&bytes).and_then(|()| file.sync_data()));
        written.map_err(|error| StorageError::io(&path, error))
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn txn(producer_id: i64, first_offset: i64, last_offset: i64) -> AbortedTxn {
        AbortedTxn {
            producer_id,
            first_offset,
            last_offset,
            last_stable_offset: last_offset + 1,
        }
    }

    /// Proves entries encode to Kafka's 34-byte layout and back, and a torn tail or an entry
    /// of another version ends the decoding.
    #[test]
    fn entries_round_trip_in_kafkas_layout() {
        let entries = [txn(7, 3, 9), txn(8, 10, 12)];
        let mut bytes: Vec<u8> = entries.iter().flat_map(encode).collect();
        assert_eq!(bytes.len(), 68);
        assert_eq!(&bytes[0..2], &[0, 0]);
        assert_eq!(&bytes[2..10], &7i64.to_be_bytes());
        assert_eq!(decode_all(&bytes), entries);
        bytes.extend_from_slice(&[0; 20]);
        assert_eq!(decode_all(&bytes), entries);
        bytes[34] = 1;
        assert_eq!(decode_all(&bytes), &entries[..1]);
    }

    /// Proves `collect` returns the transactions overlapping a read, and stops the search at
    /// an entry whose last stable offset reaches the read's end.
    #[test]
    fn collect_finds_the_overlapping_transactions() {
        let index = TxnIndex::new(PathBuf::from("/nonexistent.txnindex"));
        index.add(txn(1, 0, 5));
        index.add(txn(2, 3, 20));
        index.add(txn(1, 6, 8));
        // Inserted in marker order, and once only.
        index.add(txn(1, 6, 8));
        let ends: Vec<i64> = index.entries().iter().map(|t| t.last_offset).collect();
        assert_eq!(ends, vec![5, 8, 20]);
        let mut found = Vec::new();
        let complete = index.collect(6, 7, &mut found);
        assert_eq!(found, vec![txn(1, 6, 8), txn(2, 3, 20)]);
        assert!(complete);
        let mut found = Vec::new();
        assert!(!index.collect(0, 100, &mut found));
        assert_eq!(found.len(), 3);
    }
}
