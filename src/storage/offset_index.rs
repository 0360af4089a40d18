//! Sparse offset index of one segment: an entry every `log.index.interval.bytes` of log, mapping a
//! batch's offset (relative to the segment's base offset) to its byte position. On disk it is
//! Kafka's `.index` layout: 8-byte entries, a 4-byte relative offset then a 4-byte position, both
//! big-endian. The in-memory copy is authoritative; the file is rebuilt from the log on recovery.

/// Bytes of one entry in the `.index` file.
pub const INDEX_ENTRY_BYTES: usize = 8;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IndexEntry {
    pub relative_offset: u32,
    pub position: u32,
}

impl IndexEntry {
    pub fn encode(&self) -> [u8; INDEX_ENTRY_BYTES] {
        let mut bytes = [0; INDEX_ENTRY_BYTES];
        bytes[..4].copy_from_slice(&self.relative_offset.to_be_bytes());
        bytes[4..].copy_from_slice(&self.position.to_be_bytes());
        bytes
    }
}

/// Entries in increasing offset and position order.
#[derive(Debug, Default)]
pub struct OffsetIndex {
    entries: Vec<IndexEntry>,
}

impl OffsetIndex {
    /// Adds an entry; entries must come in increasing order.
    pub fn push(&mut self, entry: IndexEntry) {
        if let Some(last) = self.entries.last() {
            assert!(
                entry.relative_offset > last.relative_offset && entry.position > last.position,
                "offset index entries out of order: {last:?} then {entry:?}"
            );
        }
        self.entries.push(entry);
    }

    /// The position of the last indexed batch whose offset is at most `relative_offset`, or 0.
    pub fn lookup(&self, relative_offset: u32) -> u32 {
        let after = self
            .entries
            .partition_point(|entry| entry.relative_offset <= relative_offset);
        match after {
            0 => 0,
            index => self.entries[index - 1].position,
        }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn last(&self) -> Option<IndexEntry> {
        self.entries.last().copied()
    }

    pub fn entries(&self) -> &[IndexEntry] {
        &self.entries
    }

    /// Parses an `.index` file of a segment `segment_bytes` long; `None` if it is not a
    /// well-formed increasing index within the segment (then it is rebuilt from the log).
    pub fn decode_all(bytes: &[u8], segment_bytes: u64) -> Option<OffsetIndex> {
        let mut index = OffsetIndex::default();
        for raw in bytes.chunks(INDEX_ENTRY_BYTES) {
            if raw.len() < INDEX_ENTRY_BYTES {
                return None;
            }
            let entry = IndexEntry {
                relative_offset: u32::from_be_bytes(raw[..4].try_into().expect("four bytes")),
                position: u32::from_be_bytes(raw[4..].try_into().expect("four bytes")),
            };
            let increasing = index.entries.last().is_none_or(|last| {
                entry.relative_offset > last.relative_offset && entry.position > last.position
            });
            if !increasing || u64::from(entry.position) >= segment_bytes {
                return None;
            }
            index.entries.push(entry);
        }
        Some(index)
    }

    pub fn encode_all(&self) -> Vec<u8> {
        self.entries.iter().flat_map(IndexEntry::encode).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Proves lookup finds the greatest entry at or below the target, and the file layout.
    #[test]
    fn looks_up_floor_entry() {
        let mut index = OffsetIndex::default();
        assert_eq!(index.lookup(10), 0);
        index.push(IndexEntry {
            relative_offset: 5,
            position: 4100,
        });
        index.push(IndexEntry {
            relative_offset: 9,
            position: 8300,
        });
        assert_eq!(index.lookup(4), 0);
        assert_eq!(index.lookup(5), 4100);
        assert_eq!(index.lookup(8), 4100);
        assert_eq!(index.lookup(100), 8300);
        assert_eq!(&index.encode_all()[..8], &[0, 0, 0, 5, 0, 0, 0x10, 0x04]);
        let decoded = OffsetIndex::decode_all(&index.encode_all(), 9000).expect("well formed");
        assert_eq!(decoded.entries(), index.entries());
        assert!(OffsetIndex::decode_all(&index.encode_all(), 8300).is_none());
        assert!(OffsetIndex::decode_all(&[0; 7], 9000).is_none());
    }
}
