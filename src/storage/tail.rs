//! The in-memory tail of the active segment: every byte appended but not yet written to disk,
//! plus the most recently written chunks, so that direct-I/O writes can be issued in whole
//! aligned blocks behind the appends (write-behind) and consumers at the head read from memory.
//!
//! Invariants: `start` is a multiple of `BLOCK_BYTES`; the tail holds the segment's bytes
//! `[start, end)` contiguously in `chunks`, each `CHUNK_BYTES` long except the last; bytes below
//! `start` are on disk. The bytes held by all tails of a shard are counted in a thread-local (a
//! shard is one thread), and chunks already on disk are let go once that count passes
//! `SHARD_TAIL_CACHE_BYTES`, so the cache is bounded per shard, not per partition.
//!
//! A chunk starts small and doubles as it fills, so an idle partition holds kilobytes, not a
//! megabyte; but a chunk that follows a full one starts full-sized, taken from a per-shard pool
//! of chunks let go earlier. A busy partition thus neither copies while growing nor touches
//! fresh pages (each first touch of freshly mapped memory is a page fault and a zeroed page:
//! measured at a sixth of the shard's time under small produces before the pool).

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::rc::Rc;

use glommio::io::DmaBuffer;

/// Direct-I/O block: writes start and end on multiples of it. 4 KiB covers both 512-byte and
/// 4 KiB logical block sizes.
pub const BLOCK_BYTES: u64 = 4096;
/// Bytes per chunk of the tail; a full chunk is written to disk as it is, with no copy.
pub const CHUNK_BYTES: usize = 1 << 20;
/// Smallest buffer a chunk starts with; it doubles as it fills, up to `CHUNK_BYTES`.
const CHUNK_BYTES_MIN: usize = 4096;
/// Written chunks a segment keeps for readers while the shard is under its budget.
const RETAINED_CHUNKS: usize = 4;
/// Bytes of tail (written and unwritten) a shard keeps before letting written chunks go.
pub const SHARD_TAIL_CACHE_BYTES: usize = 64 << 20;

/// Full-sized chunks a shard keeps for reuse once its tails let them go.
const POOLED_CHUNKS_MAX: usize = 8;

thread_local! {
    /// Capacity of every tail chunk on this shard's thread.
    static SHARD_TAIL_BYTES: Cell<usize> = const { Cell::new(0) };
    /// Full-sized chunk buffers let go by this shard's tails, for the next chunk to reuse.
    static POOL: RefCell<Vec<DmaBuffer>> = const { RefCell::new(Vec::new()) };
}

/// Bytes the tails of this thread's segments hold now.
pub fn shard_tail_bytes() -> usize {
    SHARD_TAIL_BYTES.with(Cell::get)
}

fn account(grown: isize) {
    SHARD_TAIL_BYTES.with(|total| total.set(total.get().saturating_add_signed(grown)));
}

pub fn align_down(position: u64) -> u64 {
    position / BLOCK_BYTES * BLOCK_BYTES
}

pub fn align_up(position: u64) -> u64 {
    position.div_ceil(BLOCK_BYTES) * BLOCK_BYTES
}

/// Allocates aligned buffers for direct I/O (the segment file's `alloc_dma_buffer`).
pub type Allocate<'a> = &'a dyn Fn(usize) -> DmaBuffer;

/// A chunk's buffer and how much of it holds data. A chunk is shared (`Rc`) with a disk write
/// only once full, and never changes after that.
struct Chunk {
    buffer: Rc<DmaBuffer>,
    len: usize,
}

pub struct Tail {
    start: u64,
    chunks: VecDeque<Chunk>,
}

impl Tail {
    /// A tail at the aligned `start`, holding `partial`: the segment's bytes from `start` to its
    /// end (less than a block, read back from disk when a segment is reopened).
    pub fn new(start: u64, partial: &[u8], allocate: Allocate<'_>) -> Tail {
        assert_eq!(
            start % BLOCK_BYTES,
            0,
            "tail start {start} is not block aligned"
        );
        let mut tail = Tail {
            start,
            chunks: VecDeque::new(),
        };
        tail.push(partial, allocate);
        tail
    }

    pub fn start(&self) -> u64 {
        self.start
    }

    pub fn end(&self) -> u64 {
        self.start
            + self
                .chunks
                .iter()
                .map(|chunk| chunk.len as u64)
                .sum::<u64>()
    }

    /// Appends `bytes` at the end.
    pub fn push(&mut self, mut bytes: &[u8], allocate: Allocate<'_>) {
        while !bytes.is_empty() {
            if let Some(previous) = self.chunks.back().map(|last| last.len) {
                if previous == CHUNK_BYTES {
                    // A partition that filled a chunk is likely to fill the next one.
                    self.chunks.push_back(Chunk {
                        buffer: Rc::new(full_chunk(allocate)),
                        len: 0,
                    });
                }
            } else {
                self.chunks.push_back(Chunk {
                    buffer: Rc::new(allocate_accounted(0, allocate)),
                    len: 0,
                });
            }
            let last = self.chunks.back_mut().expect("a chunk was just ensured");
            let take = bytes.len().min(CHUNK_BYTES - last.len);
            if last.buffer.len() - last.len < take {
                let wanted = (last.len + take)
                    .max(last.buffer.len() * 2)
                    .clamp(CHUNK_BYTES_MIN, CHUNK_BYTES);
                let mut grown = allocate_accounted(wanted, allocate);
                grown.as_bytes_mut()[..last.len]
                    .copy_from_slice(&last.buffer.as_bytes()[..last.len]);
                account(-(last.buffer.len() as isize));
                last.buffer = Rc::new(grown);
            }
            let buffer = Rc::get_mut(&mut last.buffer).expect("a chunk being filled is not shared");
            buffer.as_bytes_mut()[last.len..last.len + take].copy_from_slice(&bytes[..take]);
            last.len += take;
            bytes = &bytes[take..];
        }
    }

    /// Overwrites the bytes at `position` (which must lie within the tail, and not in a chunk
    /// shared with a disk write) with `bytes`.
    pub fn patch(&mut self, position: u64, mut bytes: &[u8]) {
        let mut at = position;
        while !bytes.is_empty() {
            let relative = (at - self.start) as usize;
            let chunk = &mut self.chunks[relative / CHUNK_BYTES];
            let within = relative % CHUNK_BYTES;
            let take = bytes.len().min(chunk.len - within);
            let buffer = Rc::get_mut(&mut chunk.buffer).expect("a patched chunk is not shared");
            buffer.as_bytes_mut()[within..within + take].copy_from_slice(&bytes[..take]);
            bytes = &bytes[take..];
            at += take as u64;
        }
    }

    /// Copies the bytes `[from, to)`, which must lie within the tail, into `out`.
    pub fn copy_out(&self, from: u64, to: u64, out: &mut [u8]) {
        let mut written = 0;
        for slice in self.slices(from, to) {
            out[written..written + slice.len()].copy_from_slice(slice);
            written += slice.len();
        }
    }

    /// Appends the bytes `[from, to)`, which must lie within the tail, to `out`.
    pub fn extend_into(&self, from: u64, to: u64, out: &mut Vec<u8>) {
        for slice in self.slices(from, to) {
            out.extend_from_slice(slice);
        }
    }

    /// The bytes `[from, to)`, which must lie within the tail, chunk by chunk.
    fn slices(&self, from: u64, to: u64) -> impl Iterator<Item = &[u8]> {
        assert!(
            self.start <= from && from <= to && to <= self.end(),
            "[{from}, {to}) is outside the tail [{}, {})",
            self.start,
            self.end()
        );
        let mut position = from;
        std::iter::from_fn(move || {
            if position >= to {
                return None;
            }
            let relative = (position - self.start) as usize;
            let chunk = &self.chunks[relative / CHUNK_BYTES];
            let within = relative % CHUNK_BYTES;
            let take = ((to - position) as usize).min(chunk.len - within);
            position += take as u64;
            Some(&chunk.buffer.as_bytes()[within..within + take])
        })
    }

    /// The end of the chunk holding `position` (which must lie within the tail).
    pub fn chunk_end(&self, position: u64) -> u64 {
        let index = (position - self.start) / CHUNK_BYTES as u64;
        self.start + (index + 1) * CHUNK_BYTES as u64
    }

    /// The full chunk starting exactly at `position`, shared for a write without a copy.
    pub fn full_chunk_at(&self, position: u64) -> Option<Rc<DmaBuffer>> {
        let relative = position.checked_sub(self.start)?;
        if relative % CHUNK_BYTES as u64 != 0 {
            return None;
        }
        let chunk = self.chunks.get((relative / CHUNK_BYTES as u64) as usize)?;
        (chunk.len == CHUNK_BYTES && chunk.buffer.len() == CHUNK_BYTES)
            .then(|| chunk.buffer.clone())
    }

    /// Lets go of whole chunks that end at or below `written` (they are on disk), keeping the
    /// last chunk, and keeping up to `RETAINED_CHUNKS` for readers while the shard's tails are
    /// under budget.
    pub fn release_written(&mut self, written: u64) {
        while self.chunks.len() > 1 {
            let first_end = self.start + self.chunks[0].len as u64;
            let over_budget = shard_tail_bytes() > SHARD_TAIL_CACHE_BYTES;
            if first_end > written || (!over_budget && self.chunks.len() <= RETAINED_CHUNKS) {
                break;
            }
            let chunk = self.chunks.pop_front().expect("more than one chunk");
            recycle(chunk);
            self.start = first_end;
        }
    }

    /// Lets go of everything; the tail then starts (empty) at `end`, which must be aligned
    /// unless nothing will be appended again (a closed segment).
    pub fn clear(&mut self, end: u64) {
        for chunk in self.chunks.drain(..) {
            recycle(chunk);
        }
        self.start = end;
    }
}

fn allocate_accounted(size: usize, allocate: Allocate<'_>) -> DmaBuffer {
    let size = size.max(CHUNK_BYTES_MIN);
    account(size as isize);
    let mut buffer = allocate(size);
    buffer.trim_to_size(size);
    buffer
}

/// A full-sized chunk buffer, from the pool when it has one. Its bytes are whatever the last
/// user left: only `[0, len)` of a chunk is ever read or written out.
fn full_chunk(allocate: Allocate<'_>) -> DmaBuffer {
    match POOL.with(|pool| pool.borrow_mut().pop()) {
        Some(buffer) => {
            account(buffer.len() as isize);
            buffer
        }
        None => allocate_accounted(CHUNK_BYTES, allocate),
    }
}

/// Lets a chunk go: into the pool when it is full-sized, no disk write holds it any more,
/// and the pool has room.
fn recycle(chunk: Chunk) {
    account(-(chunk.buffer.len() as isize));
    if chunk.buffer.len() != CHUNK_BYTES {
        return;
    }
    if let Ok(buffer) = Rc::try_unwrap(chunk.buffer) {
        POOL.with(|pool| {
            let mut pool = pool.borrow_mut();
            if pool.len() < POOLED_CHUNKS_MAX {
                pool.push(buffer);
            }
        });
    }
}

/// Chunk buffers waiting in this shard's pool.
#[cfg(test)]
fn pooled() -> usize {
    POOL.with(|pool| pool.borrow().len())
}

impl Drop for Tail {
    fn drop(&mut self) {
        let end = self.end();
        self.clear(end);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Proves bytes come back from any range across chunk boundaries, that full chunks are
    /// shared for writing, that written chunks are released but never the last, and that the
    /// shard's count follows allocations.
    #[test]
    fn holds_copies_and_releases() {
        glommio::LocalExecutorBuilder::default()
            .io_memory(512 << 10)
            .spawn(|| async {
                let path = std::env::temp_dir().join(format!("flink-tail-{}", std::process::id()));
                let file = glommio::io::OpenOptions::new()
                    .read(true)
                    .write(true)
                    .create(true)
                    .dma_open(&path)
                    .await
                    .unwrap();
                let allocate = |size| file.alloc_dma_buffer(size);
                let before = shard_tail_bytes();
                let mut tail = Tail::new(8192, b"abc", &allocate);
                let data: Vec<u8> = (0..3 * CHUNK_BYTES + 10).map(|i| (i % 251) as u8).collect();
                tail.push(&data, &allocate);
                assert_eq!(tail.end(), 8192 + 3 + data.len() as u64);
                let mut out = vec![0; 5];
                tail.copy_out(8192, 8197, &mut out);
                assert_eq!(&out, &[b'a', b'b', b'c', 0, 1]);
                let from = 8192 + CHUNK_BYTES as u64 - 2;
                let mut out = vec![0; 4];
                tail.copy_out(from, from + 4, &mut out);
                let expected: Vec<u8> = (0..4)
                    .map(|i| ((CHUNK_BYTES - 5 + i) % 251) as u8)
                    .collect();
                assert_eq!(out, expected);
                assert!(shard_tail_bytes() >= before + data.len());
                let full = tail.full_chunk_at(8192).expect("the first chunk is full");
                assert_eq!(&full.as_bytes()[..3], b"abc");
                assert!(tail.full_chunk_at(8192 + 4096).is_none());
                assert_eq!(tail.chunk_end(8192 + 5), 8192 + CHUNK_BYTES as u64);
                drop(full);
                // Under budget, up to RETAINED_CHUNKS chunks stay: nothing goes.
                tail.release_written(tail.end());
                assert_eq!(tail.start(), 8192);
                tail.push(&data, &allocate);
                tail.release_written(8192 + CHUNK_BYTES as u64 * 2);
                assert_eq!(tail.start(), 8192 + CHUNK_BYTES as u64 * 2);
                tail.release_written(u64::MAX);
                assert_eq!(tail.chunks.len(), RETAINED_CHUNKS);
                drop(tail);
                assert_eq!(shard_tail_bytes(), before);
                // The full chunks let go wait in the pool; the next busy tail takes them.
                let pooled_before = pooled();
                assert!(pooled_before >= 3, "{pooled_before} chunks pooled");
                let mut tail = Tail::new(0, &[], &allocate);
                tail.push(&data, &allocate);
                assert_eq!(
                    pooled(),
                    pooled_before - 3,
                    "chunks after a full one are reused"
                );
                let mut out = vec![0; data.len()];
                tail.copy_out(0, data.len() as u64, &mut out);
                assert_eq!(out, data, "reused chunks hold exactly what was pushed");
                drop(tail);
                assert_eq!(shard_tail_bytes(), before);
                file.remove().await.unwrap();
            })
            .unwrap()
            .join()
            .unwrap();
    }

    #[test]
    fn aligns_to_blocks() {
        assert_eq!(align_down(4095), 0);
        assert_eq!(align_down(4096), 4096);
        assert_eq!(align_up(1), 4096);
        assert_eq!(align_up(8192), 8192);
        assert_eq!(align_up(0), 0);
    }
}
