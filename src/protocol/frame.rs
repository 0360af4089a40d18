//! An encoded response in parts, so that a fetch's records go to the socket from the buffers
//! they were read into instead of being copied into the response first.
//!
//! `kafka-protocol` encodes into any `ByteBufMut` and writes a record set with one `put_slice`
//! of its `Bytes`. `PartsBuf` is such a buffer that knows the large record sets of the message
//! being encoded: a `put_slice` of exactly one of them (same address, same length) ends the
//! current part and adds the record set as a part of its own, sharing its memory; everything
//! else is copied into the current part as `BytesMut` would.

use std::ops::Range;

use bytes::buf::UninitSlice;
use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::protocol::buf::ByteBufMut;

/// Record sets smaller than this are copied with the rest: a part of their own would cost a
/// write of its own for little saved.
pub const SHARED_BYTES_MIN: usize = 16 << 10;

/// A response frame (size prefix included): its bytes are the parts' bytes in order.
#[derive(Debug, Default)]
pub struct Frame {
    parts: Vec<Bytes>,
    len: usize,
}

impl Frame {
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn parts(&self) -> &[Bytes] {
        &self.parts
    }

    /// The frame as one contiguous buffer (copies when there are several parts).
    pub fn to_bytes(&self) -> Bytes {
        match self.parts.as_slice() {
            [only] => only.clone(),
            parts => Bytes::from(parts.concat()),
        }
    }
}

impl From<BytesMut> for Frame {
    fn from(bytes: BytesMut) -> Frame {
        let len = bytes.len();
        Frame {
            parts: vec![bytes.freeze()],
            len,
        }
    }
}

/// The buffer a message is encoded into when some of its record sets are to be shared.
pub struct PartsBuf {
    done: Vec<Bytes>,
    done_len: usize,
    current: BytesMut,
    shared: Vec<Bytes>,
}

impl PartsBuf {
    /// `shared`: the record sets to be sent from their own memory; `copied_len`: about how many
    /// bytes the rest of the frame takes (the first part's capacity).
    pub fn new(shared: Vec<Bytes>, copied_len: usize) -> PartsBuf {
        PartsBuf {
            done: Vec::with_capacity(2 * shared.len() + 1),
            done_len: 0,
            current: BytesMut::with_capacity(copied_len),
            shared,
        }
    }

    pub fn finish(mut self) -> Frame {
        self.end_part();
        Frame {
            parts: self.done,
            len: self.done_len,
        }
    }

    fn end_part(&mut self) {
        if !self.current.is_empty() {
            let part = self.current.split().freeze();
            self.push(part);
        }
    }

    fn push(&mut self, part: Bytes) {
        self.done_len += part.len();
        self.done.push(part);
    }

    fn shared_as(&self, src: &[u8]) -> Option<Bytes> {
        self.shared
            .iter()
            .find(|bytes| bytes.as_ptr() == src.as_ptr() && bytes.len() == src.len())
            .cloned()
    }

    /// Folds every finished part back into the current one: needed only if the encoder went
    /// back into bytes already handed over, which no message encoding does (gaps are used by
    /// record batch encoding only).
    fn flatten(&mut self) {
        if self.done.is_empty() {
            return;
        }
        let mut all = BytesMut::with_capacity(self.done_len + self.current.len());
        for part in self.done.drain(..) {
            all.extend_from_slice(&part);
        }
        all.extend_from_slice(&self.current);
        self.done_len = 0;
        self.current = all;
    }
}

// SAFETY: every method delegates to `BytesMut`'s own implementation for the current part;
// `put_slice` only chooses between that and handing over whole parts.
unsafe impl BufMut for PartsBuf {
    fn remaining_mut(&self) -> usize {
        self.current.remaining_mut()
    }

    unsafe fn advance_mut(&mut self, count: usize) {
        // SAFETY: the caller's promise about `chunk_mut` holds for the current part's.
        unsafe { self.current.advance_mut(count) }
    }

    fn chunk_mut(&mut self) -> &mut UninitSlice {
        self.current.chunk_mut()
    }

    fn put_slice(&mut self, src: &[u8]) {
        match (src.len() >= SHARED_BYTES_MIN)
            .then(|| self.shared_as(src))
            .flatten()
        {
            Some(shared) => {
                self.end_part();
                self.push(shared);
            }
            None => self.current.extend_from_slice(src),
        }
    }
}

impl ByteBufMut for PartsBuf {
    fn offset(&self) -> usize {
        self.done_len + self.current.len()
    }

    fn seek(&mut self, offset: usize) {
        if offset < self.done_len {
            self.flatten();
        }
        self.current.resize(offset - self.done_len, 0);
    }

    fn range(&mut self, range: Range<usize>) -> &mut [u8] {
        if range.start < self.done_len {
            self.flatten();
        }
        let base = self.done_len;
        &mut self.current[range.start - base..range.end - base]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shared_record_sets_become_parts_of_their_own_and_the_bytes_are_unchanged() {
        let records = Bytes::from(vec![7u8; SHARED_BYTES_MIN]);
        let small = Bytes::from(vec![9u8; 10]);
        let mut buf = PartsBuf::new(vec![records.clone()], 64);
        buf.put_i32(1);
        buf.put_slice(&records);
        buf.put_slice(&small);
        buf.put_slice(&records.clone().slice(1..));
        let frame = buf.finish();
        let parts = frame.parts();
        assert_eq!(parts.len(), 3);
        assert_eq!(parts[1].as_ptr(), records.as_ptr(), "shared, not copied");
        let mut expected = vec![0, 0, 0, 1];
        expected.extend_from_slice(&records);
        expected.extend_from_slice(&small);
        expected.extend_from_slice(&records[1..]);
        assert_eq!(frame.len(), expected.len());
        assert_eq!(frame.to_bytes(), expected);
    }

    #[test]
    fn going_back_into_a_handed_over_part_folds_the_parts_together() {
        let records = Bytes::from(vec![1u8; SHARED_BYTES_MIN]);
        let mut buf = PartsBuf::new(vec![records.clone()], 16);
        buf.put_u8(5);
        buf.put_slice(&records);
        buf.put_u8(6);
        assert_eq!(buf.offset(), SHARED_BYTES_MIN + 2);
        buf.range(0..1)[0] = 4;
        buf.seek(SHARED_BYTES_MIN + 4);
        let frame = buf.finish();
        let mut expected = vec![4];
        expected.extend_from_slice(&records);
        expected.extend_from_slice(&[6, 0, 0]);
        assert_eq!(frame.to_bytes(), expected);
    }
}
