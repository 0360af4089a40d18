//! Read-ahead for a segment's direct reads.
//!
//! Segments are read with O_DIRECT, so there is no page cache and no kernel read-ahead: a
//! consumer behind the tail would wait for the disk on every fetch, and the disk would idle
//! while the response travels and the client works through it. After a fetch read that went to
//! disk, the segment starts reading, in a task of its own, the bytes the *next* sequential
//! fetch will ask for (it starts where that fetch's index lookup will land); the next fetch
//! takes them instead of waiting for its own read.
//!
//! One read-ahead per segment: a read elsewhere replaces it (two consumers far apart in one
//! partition each lose theirs; they read as without it). What a shard holds in read-aheads,
//! started or done, is bounded by `SHARD_BYTES_MAX`; past it none is started. Only bytes below
//! the tail are read ahead: they are on disk and never change (a truncation or compaction puts
//! a new segment object in place, and the old one's read-ahead goes with it).

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use bytes::Bytes;
use glommio::io::DmaFile;
use glommio::task::JoinHandle;

/// The most one read-ahead reads.
pub const READ_AHEAD_BYTES_MAX: usize = 4 << 20;
/// The most a shard holds in read-aheads at once.
const SHARD_BYTES_MAX: usize = 64 << 20;

thread_local! {
    /// Bytes this shard holds in read-aheads started and not yet dropped.
    static HELD: Cell<usize> = const { Cell::new(0) };
    /// Read-aheads a reader took on this shard.
    static TAKEN: Cell<u64> = const { Cell::new(0) };
}

/// Read-aheads a reader took on this thread (shard) so far.
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

/// A read that was started ahead of its reader.
pub struct Pending {
    start: u64,
    length: usize,
    read: JoinHandle<std::io::Result<Bytes>>,
    _held: Held,
}

impl Pending {
    /// Where the read starts, and its bytes (fewer than asked at the end of the file). `None`
    /// when it failed or was cancelled: the reader reads for itself and sees any error then.
    pub async fn finish(self) -> Option<(u64, Bytes)> {
        match self.read.await {
            Some(Ok(bytes)) => Some((self.start, bytes)),
            Some(Err(_)) | None => None,
        }
    }
}

/// A segment's read-ahead slot.
#[derive(Default)]
pub struct ReadAhead {
    pending: RefCell<Option<Pending>>,
}

impl ReadAhead {
    /// The read-ahead, if it holds `position`; it is then no longer the segment's.
    pub fn take(&self, position: u64) -> Option<Pending> {
        let mut pending = self.pending.borrow_mut();
        let covers = pending.as_ref().is_some_and(|ahead| {
            ahead.start <= position && position < ahead.start + ahead.length as u64
        });
        let taken = covers.then(|| pending.take()).flatten();
        if taken.is_some() {
            TAKEN.with(|count| count.set(count.get() + 1));
        }
        taken
    }

    /// Starts reading `[start, start + length)` of `file` in the background, unless a
    /// read-ahead from `start` is already there or the shard holds too much in read-aheads.
    pub fn start(&self, file: &Rc<DmaFile>, start: u64, length: usize) {
        let length = length.min(READ_AHEAD_BYTES_MAX);
        if length == 0
            || self
                .pending
                .borrow()
                .as_ref()
                .is_some_and(|ahead| ahead.start == start)
        {
            return;
        }
        // The one this replaces lets go of its bytes first.
        self.pending.borrow_mut().take();
        let Some(held) = Held::take(length) else {
            return;
        };
        let file = file.clone();
        // The copy out of the DMA buffer (which cannot leave this thread, and a response may
        // go to another shard) is made here too, off the reader's path.
        let read = glommio::spawn_local(async move {
            let read = file.read_at(start, length).await?;
            Ok(Bytes::copy_from_slice(&read))
        })
        .detach();
        *self.pending.borrow_mut() = Some(Pending {
            start,
            length,
            read,
            _held: held,
        });
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
