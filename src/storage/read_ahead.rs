//! Read-ahead for a segment's direct reads.
//!
//! Segments are read with O_DIRECT, so there is no page cache and no kernel read-ahead: a
//! consumer behind the tail would wait for the disk on every fetch, and the disk would idle
//! while the response travels and the client works through it. After a fetch read that went to
//! disk, the segment keeps a window of reads running ahead of the reader: from where the *next*
//! sequential fetch will start (where its index lookup will land), `DEPTH` reads of the fetch's
//! size, each in a task of its own. The next fetch takes its bytes from the window instead of
//! waiting for its own read, and the window moves on by one read, so the disk always has the
//! read after next to work on while a response is on its way.
//!
//! One window per segment: a read elsewhere replaces it (two consumers far apart in one
//! partition each lose theirs; they read as without it). What a shard holds in read-aheads,
//! started or done, is bounded by `SHARD_BYTES_MAX`; past it no read is started. Only bytes
//! below the tail are read ahead: they are on disk and never change (a truncation or compaction
//! puts a new segment object in place, and the old one's window goes with it).

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::rc::Rc;

use bytes::Bytes;
use glommio::io::DmaFile;
use glommio::task::JoinHandle;

/// The most one read-ahead read reads.
pub const READ_AHEAD_BYTES_MAX: usize = 4 << 20;
/// Reads of a fetch's size kept running ahead of the reader.
const DEPTH: usize = 2;
/// The most a shard holds in read-aheads at once.
const SHARD_BYTES_MAX: usize = 64 << 20;

thread_local! {
    /// Bytes this shard holds in read-aheads started and not yet dropped.
    static HELD: Cell<usize> = const { Cell::new(0) };
    /// Reads served from a read-ahead on this shard.
    static TAKEN: Cell<u64> = const { Cell::new(0) };
}

/// Reads served from a read-ahead on this thread (shard) so far.
#[cfg(test)]
pub fn taken() -> u64 {
    TAKEN.with(Cell::get)
}

/// Bytes counted against the shard's bound until dropped.
struct Held(usize);

impl Held {
    fn take(bytes: usize) -> Option<Held> {
        HELD.with(|held| {
            let total = held.get() + bytes;
            (total <= SHARD_BYTES_MAX).then(|| {
                held.set(total);
                Held(bytes)
            })
        })
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        HELD.with(|held| held.set(held.get() - self.0));
    }
}

/// Where a read of the window is.
enum State {
    Reading(JoinHandle<std::io::Result<Bytes>>),
    /// A reader is waiting for it; others read for themselves meanwhile.
    Awaited,
    /// Its bytes (fewer than asked at the end of the file).
    Ready(Bytes),
    /// It failed: a reader reads for itself and sees the error then.
    Failed,
}

/// One read of the window: `[start, start + length)` of the file.
struct Piece {
    start: u64,
    length: usize,
    state: State,
    _held: Held,
}

impl Piece {
    fn end(&self) -> u64 {
        self.start + self.length as u64
    }
}

/// A segment's read-ahead window: contiguous reads, in file order.
#[derive(Default)]
pub struct ReadAhead {
    window: RefCell<VecDeque<Piece>>,
}

impl ReadAhead {
    /// The bytes from `position` on that the window holds, at most `length` of them, waiting
    /// for reads still running; `None` when the window does not hold `position`. Fewer than
    /// `length` when the window ends before (the caller reads the rest). Without a copy when
    /// one read holds them all.
    pub async fn read(&self, position: u64, length: usize) -> Option<Bytes> {
        let mut parts: Vec<Bytes> = Vec::new();
        let mut at = position;
        let end = position + length as u64;
        while at < end {
            let Some((start, data)) = self.piece_at(at).await else {
                break;
            };
            // A read cut short by the end of the file ends the window there.
            let skip = (at - start) as usize;
            if skip >= data.len() {
                break;
            }
            let take = data.len().min(skip + (end - at) as usize);
            parts.push(data.slice(skip..take));
            at += (take - skip) as u64;
        }
        if parts.is_empty() {
            return None;
        }
        TAKEN.with(|count| count.set(count.get() + 1));
        Some(match parts.len() {
            1 => parts.pop().expect("one part"),
            _ => Bytes::from(parts.concat()),
        })
    }

    /// The start and bytes of the piece holding `position`, waiting for its read if it is
    /// running; `None` when no piece holds it, its read failed, or another reader waits for it.
    async fn piece_at(&self, position: u64) -> Option<(u64, Bytes)> {
        let (start, read) = {
            let mut window = self.window.borrow_mut();
            let piece = window
                .iter_mut()
                .find(|piece| piece.start <= position && position < piece.end())?;
            match std::mem::replace(&mut piece.state, State::Awaited) {
                State::Ready(bytes) => {
                    piece.state = State::Ready(bytes.clone());
                    return Some((piece.start, bytes));
                }
                State::Reading(read) => (piece.start, read),
                other => {
                    piece.state = other;
                    return None;
                }
            }
        };
        let outcome = read.await;
        // The window may have moved meanwhile; the piece is marked if it is still there.
        let bytes = match outcome {
            Some(Ok(bytes)) => Some(bytes),
            Some(Err(_)) | None => None,
        };
        if let Some(piece) = self
            .window
            .borrow_mut()
            .iter_mut()
            .find(|piece| piece.start == start)
        {
            piece.state = match &bytes {
                Some(bytes) => State::Ready(bytes.clone()),
                None => State::Failed,
            };
        }
        bytes.map(|bytes| (start, bytes))
    }

    /// Moves the window to a reader that will next read from `next`, `length` bytes at a time:
    /// drops what lies wholly before `next`, starts over at `next` when the window does not
    /// hold it, and starts reads until the window reaches `DEPTH` reads past `next` or
    /// `on_disk` (where the tail begins), or the shard's bound is reached.
    pub fn advance(&self, file: &Rc<DmaFile>, next: u64, length: usize, on_disk: u64) {
        let length = length.clamp(1, READ_AHEAD_BYTES_MAX);
        let mut window = self.window.borrow_mut();
        while window.front().is_some_and(|piece| piece.end() <= next) {
            window.pop_front();
        }
        if window.front().is_some_and(|piece| piece.start > next) {
            window.clear();
        }
        let mut start = window.back().map_or(next, Piece::end);
        let target = on_disk.min(next + (DEPTH * length) as u64);
        while start < target {
            let piece_length = length.min((target - start) as usize);
            let Some(held) = Held::take(piece_length) else {
                return;
            };
            let file = file.clone();
            // The copy out of the DMA buffer (which cannot leave this thread, and a response
            // may go to another shard) is made here too, off the reader's path.
            let read = glommio::spawn_local(async move {
                let read = file.read_at(start, piece_length).await?;
                Ok(Bytes::copy_from_slice(&read))
            })
            .detach();
            window.push_back(Piece {
                start,
                length: piece_length,
                state: State::Reading(read),
                _held: held,
            });
            start += piece_length as u64;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shard_bound_holds_and_is_given_back() {
        let first = Held::take(SHARD_BYTES_MAX - 1).expect("under the bound");
        assert!(Held::take(2).is_none());
        let second = Held::take(1).expect("exactly at the bound");
        drop(first);
        drop(second);
        assert_eq!(HELD.with(Cell::get), 0);
    }
}
