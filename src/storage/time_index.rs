//! Sparse time index of one segment, Kafka's `.timeindex`: 12-byte entries, an 8-byte timestamp
//! then a 4-byte offset relative to the segment's base, both big-endian. An entry `(t, o)` says
//! that every batch up to and including the one at offset `o` has a max timestamp of at most
//! `t`; entries are added beside offset-index entries, only when the segment's max timestamp grew.
//! ListOffsets by timestamp starts its scan from the last entry below the wanted time.

/// Bytes of one entry in the `.timeindex` file.
pub const TIME_INDEX_ENTRY_BYTES: usize = 12;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TimeIndexEntry {
    pub timestamp: i64,
    pub relative_offset: u32,
}

impl TimeIndexEntry {
    pub fn encode(&self) -> [u8; TIME_INDEX_ENTRY_BYTES] {
        let mut bytes = [0; TIME_INDEX_ENTRY_BYTES];
        bytes[..8].copy_from_slice(&self.timestamp.to_be_bytes());
        bytes[8..].copy_from_slice(&self.relative_offset.to_be_bytes());
        bytes
    }

    fn decode(bytes: &[u8]) -> TimeIndexEntry {
        TimeIndexEntry {
            timestamp: i64::from_be_bytes(bytes[..8].try_into().expect("eight bytes")),
            relative_offset: u32::from_be_bytes(bytes[8..12].try_into().expect("four bytes")),
        }
    }
}

/// Entries in increasing timestamp and offset order.
#[derive(Debug, Default)]
pub struct TimeIndex {
    entries: Vec<TimeIndexEntry>,
}

impl TimeIndex {
    /// Adds an entry if it moves the max timestamp forward; returns whether it did.
    pub fn maybe_push(&mut self, entry: TimeIndexEntry) -> bool {
        let grows = self.entries.last().is_none_or(|last| {
            entry.timestamp > last.timestamp && entry.relative_offset > last.relative_offset
        });
        if grows {
            self.entries.push(entry);
        }
        grows
    }

    /// The offset (relative) of the last entry whose timestamp is below `timestamp`: no batch
    /// at or before it can hold that timestamp, so a search may start there. 0 if none.
    pub fn scan_start(&self, timestamp: i64) -> u32 {
        let below = self
            .entries
            .partition_point(|entry| entry.timestamp < timestamp);
        match below {
            0 => 0,
            index => self.entries[index - 1].relative_offset,
        }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn last(&self) -> Option<TimeIndexEntry> {
        self.entries.last().copied()
    }

    pub fn entries(&self) -> &[TimeIndexEntry] {
        &self.entries
    }

    /// Parses a `.timeindex` file; `None` if it is not a well-formed, increasing index (then
    /// it is rebuilt from the log). Trailing zero entries (a preallocated file) are ignored.
    pub fn decode_all(bytes: &[u8]) -> Option<TimeIndex> {
        let mut index = TimeIndex::default();
        for raw in bytes.chunks(TIME_INDEX_ENTRY_BYTES) {
            if raw.len() < TIME_INDEX_ENTRY_BYTES {
                return None;
            }
            let entry = TimeIndexEntry::decode(raw);
            if entry
                == (TimeIndexEntry {
                    timestamp: 0,
                    relative_offset: 0,
                })
                && !index.is_empty()
            {
                break;
            }
            if !index.maybe_push(entry) {
                return None;
            }
        }
        Some(index)
    }

    pub fn encode_all(&self) -> Vec<u8> {
        self.entries
            .iter()
            .flat_map(TimeIndexEntry::encode)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(timestamp: i64, relative_offset: u32) -> TimeIndexEntry {
        TimeIndexEntry {
            timestamp,
            relative_offset,
        }
    }

    /// Proves entries are kept only when time moves forward, the search start, and that the
    /// file layout round-trips while a disordered file is refused.
    #[test]
    fn keeps_growing_entries_and_finds_scan_start() {
        let mut index = TimeIndex::default();
        assert_eq!(index.scan_start(5), 0);
        assert!(index.maybe_push(entry(100, 3)));
        assert!(!index.maybe_push(entry(90, 7)));
        assert!(index.maybe_push(entry(200, 9)));
        assert_eq!(index.scan_start(100), 0);
        assert_eq!(index.scan_start(101), 3);
        assert_eq!(index.scan_start(1000), 9);
        let bytes = index.encode_all();
        assert_eq!(&bytes[..12], &[0, 0, 0, 0, 0, 0, 0, 100, 0, 0, 0, 3]);
        let decoded = TimeIndex::decode_all(&bytes).expect("well formed");
        assert_eq!(decoded.entries(), index.entries());
        let mut disordered = entry(300, 2).encode().to_vec();
        disordered.extend(entry(250, 5).encode());
        assert!(TimeIndex::decode_all(&disordered).is_none());
        assert!(TimeIndex::decode_all(&bytes[..13]).is_none());
    }
}
