//! The Raft log of the metadata quorum on disk: `raft.log` under `__cluster_metadata-0`, an
//! append-only file of records (an entry, the hard state, or the voter set), each framed as
//! `[length u32][crc32c u32][kind u8][protobuf body]`, and the latest snapshot beside it as
//! `<index, 20 digits>-<term, 10 digits>.checkpoint` (one such record holding a raft
//! `Snapshot` whose data is the metadata image at that index). Taking or receiving a snapshot
//! writes the checkpoint durably first, then rewrites `raft.log` without the entries it covers;
//! a crash between the two leaves entries that replay skips. Opening replays it into raft-rs's
//! `MemStorage`, which then serves the node's reads; a torn or damaged last record (a crash in
//! the middle of a write) is cut off. Entries are written in the order raft hands them over, so
//! replaying them through `MemStorage::append` rebuilds the same log, conflicting suffixes
//! replaced as they were.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use protobuf::Message as _;
use raft::prelude::{ConfState, Entry, HardState, Snapshot};
use raft::storage::MemStorage;
use raft::{GetEntriesContext, RaftState, Storage};

pub const RAFT_LOG_FILE: &str = "raft.log";

const KIND_ENTRY: u8 = 1;
const KIND_HARD_STATE: u8 = 2;
const KIND_CONF_STATE: u8 = 3;
const KIND_SNAPSHOT: u8 = 4;
const CHECKPOINT_SUFFIX: &str = ".checkpoint";
/// Length + CRC.
const FRAME_HEADER_BYTES: usize = 8;

#[derive(Debug, thiserror::Error)]
pub enum DiskLogError {
    #[error("I/O error on raft log {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("raft log {path} is damaged at byte {position}: {reason}")]
    Corrupt {
        path: PathBuf,
        position: usize,
        reason: String,
    },
}

/// raft-rs storage whose writes are first made durable in `raft.log`.
pub struct DiskStorage {
    memory: MemStorage,
    dir: PathBuf,
    path: PathBuf,
    file: File,
    /// The latest snapshot, data included (what a lagging follower is sent).
    checkpoint: Option<Snapshot>,
    /// fdatasync after each batch of writes; off only where a crash is simulated in-process.
    sync: bool,
}

impl DiskStorage {
    /// Opens (or creates with `voters`) the log in `dir`. The voter set of an existing log is
    /// the one it was created with.
    pub fn open(dir: &Path, voters: &[u64], sync: bool) -> Result<DiskStorage, DiskLogError> {
        let path = dir.join(RAFT_LOG_FILE);
        let io = |source| DiskLogError::Io {
            path: path.clone(),
            source,
        };
        std::fs::create_dir_all(dir).map_err(io)?;
        let bytes = match std::fs::read(&path) {
            Ok(bytes) => bytes,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(error) => return Err(io(error)),
        };
        let memory = MemStorage::new();
        let checkpoint = read_latest_checkpoint(dir)?;
        if let Some(snapshot) = &checkpoint {
            memory
                .wl()
                .apply_snapshot(snapshot.clone())
                .expect("an empty log takes any snapshot");
        }
        let valid = replay(&path, &bytes, &memory)?;
        if let Some(snapshot) = &checkpoint {
            // Hard states written before the snapshot may name an older commit.
            let mut core = memory.wl();
            let index = snapshot.get_metadata().index;
            if core.hard_state().commit < index {
                core.mut_hard_state().commit = index;
            }
        }
        if valid < bytes.len() {
            tracing::warn!(
                "raft log {}: dropping a torn last record of {} bytes",
                path.display(),
                bytes.len() - valid
            );
        }
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(io)?;
        file.set_len(valid as u64).map_err(io)?;
        let mut storage = DiskStorage {
            memory,
            dir: dir.to_path_buf(),
            path,
            file,
            checkpoint,
            sync,
        };
        if valid == 0 && storage.checkpoint.is_none() {
            let conf_state = ConfState::from((voters.to_vec(), Vec::new()));
            storage.write(&[frame(KIND_CONF_STATE, &conf_state)])?;
            storage.sync()?;
            storage.memory.wl().set_conf_state(conf_state);
        }
        Ok(storage)
    }

    /// Writes `entries` and adds them to the log (replacing any conflicting suffix); durable at
    /// the next `sync`.
    pub fn append(&mut self, entries: &[Entry]) -> Result<(), DiskLogError> {
        if entries.is_empty() {
            return Ok(());
        }
        let frames: Vec<Vec<u8>> = entries
            .iter()
            .map(|entry| frame(KIND_ENTRY, entry))
            .collect();
        self.write(&frames)?;
        self.memory
            .wl()
            .append(entries)
            .expect("raft hands over entries that follow the log");
        Ok(())
    }

    /// Writes the hard state (term, vote, commit); durable at the next `sync`.
    pub fn set_hard_state(&mut self, state: &HardState) -> Result<(), DiskLogError> {
        self.write(&[frame(KIND_HARD_STATE, state)])?;
        self.memory.wl().set_hardstate(state.clone());
        Ok(())
    }

    /// Moves the commit index (raft's `LightReady`). Raft does not need it durable: a restarted
    /// node learns it again from the log and its peers.
    pub fn set_commit(&mut self, commit: u64) -> Result<(), DiskLogError> {
        let mut state = self.memory.rl().hard_state().clone();
        state.commit = commit;
        self.set_hard_state(&state)
    }

    /// Makes everything written so far durable (one fdatasync per `ready`).
    pub fn sync(&mut self) -> Result<(), DiskLogError> {
        if !self.sync {
            return Ok(());
        }
        self.file.sync_data().map_err(|source| DiskLogError::Io {
            path: self.path.clone(),
            source,
        })
    }

    /// The latest snapshot's index and data, if there is one.
    pub fn checkpoint(&self) -> Option<(u64, bytes::Bytes)> {
        self.checkpoint
            .as_ref()
            .map(|snapshot| (snapshot.get_metadata().index, snapshot.data.clone()))
    }

    /// Snapshots the log at `index` (applied, so committed) with `data`, the state there, and
    /// drops the entries before it (the entry at `index` stays, so its term is known).
    pub fn create_snapshot(&mut self, index: u64, data: bytes::Bytes) -> Result<(), DiskLogError> {
        let term = self
            .memory
            .term(index)
            .map_err(|error| DiskLogError::Corrupt {
                path: self.path.clone(),
                position: 0,
                reason: format!("no term for snapshot index {index}: {error}"),
            })?;
        let mut snapshot = Snapshot {
            data,
            ..Default::default()
        };
        let metadata = snapshot.mut_metadata();
        metadata.index = index;
        metadata.term = term;
        let state = self.memory.initial_state().expect("memory storage");
        metadata.set_conf_state(state.conf_state);
        self.write_checkpoint(&snapshot)?;
        self.memory
            .wl()
            .compact(index)
            .expect("an applied index is in the log");
        self.checkpoint = Some(snapshot);
        self.rewrite()
    }

    /// Takes a leader's snapshot in place of the whole log (a follower too far behind).
    pub fn apply_snapshot(&mut self, snapshot: Snapshot) -> Result<(), DiskLogError> {
        self.write_checkpoint(&snapshot)?;
        if let Err(error) = self.memory.wl().apply_snapshot(snapshot.clone()) {
            tracing::warn!("metadata snapshot not applied: {error}");
            return Ok(());
        }
        self.checkpoint = Some(snapshot);
        self.rewrite()
    }

    /// Writes `<index>-<term>.checkpoint` durably and removes older checkpoints.
    fn write_checkpoint(&self, snapshot: &Snapshot) -> Result<(), DiskLogError> {
        let metadata = snapshot.get_metadata();
        let name = format!(
            "{:020}-{:010}{CHECKPOINT_SUFFIX}",
            metadata.index, metadata.term
        );
        let path = self.dir.join(&name);
        let io = |source| DiskLogError::Io {
            path: path.clone(),
            source,
        };
        let temporary = self.dir.join(format!("{name}.tmp"));
        std::fs::write(&temporary, frame(KIND_SNAPSHOT, snapshot)).map_err(io)?;
        File::open(&temporary)
            .and_then(|file| file.sync_all())
            .map_err(io)?;
        std::fs::rename(&temporary, &path).map_err(io)?;
        File::open(&self.dir)
            .and_then(|dir| dir.sync_all())
            .map_err(io)?;
        for older in checkpoint_names(&self.dir).map_err(io)? {
            if older < name {
                let _ = std::fs::remove_file(self.dir.join(older));
            }
        }
        Ok(())
    }

    /// Replaces `raft.log` by the voters, the hard state and the entries still held.
    fn rewrite(&mut self) -> Result<(), DiskLogError> {
        let io = |source| DiskLogError::Io {
            path: self.path.clone(),
            source,
        };
        let state = self.memory.initial_state().expect("memory storage");
        let mut frames = vec![
            frame(KIND_CONF_STATE, &state.conf_state),
            frame(KIND_HARD_STATE, &state.hard_state),
        ];
        let first = self.memory.first_index().expect("memory storage");
        let last = self.memory.last_index().expect("memory storage");
        if first <= last {
            let entries = self
                .memory
                .entries(first, last + 1, None, GetEntriesContext::empty(false))
                .expect("held entries");
            frames.extend(entries.iter().map(|entry| frame(KIND_ENTRY, entry)));
        }
        let temporary = self.path.with_extension("log.tmp");
        std::fs::write(&temporary, frames.concat()).map_err(io)?;
        File::open(&temporary)
            .and_then(|file| file.sync_all())
            .map_err(io)?;
        std::fs::rename(&temporary, &self.path).map_err(io)?;
        File::open(&self.dir)
            .and_then(|dir| dir.sync_all())
            .map_err(io)?;
        self.file = OpenOptions::new()
            .append(true)
            .open(&self.path)
            .map_err(io)?;
        Ok(())
    }

    fn write(&mut self, frames: &[Vec<u8>]) -> Result<(), DiskLogError> {
        let bytes: Vec<u8> = frames.concat();
        self.file
            .write_all(&bytes)
            .map_err(|source| DiskLogError::Io {
                path: self.path.clone(),
                source,
            })
    }
}

fn frame(kind: u8, message: &dyn protobuf::Message) -> Vec<u8> {
    let body = message
        .write_to_bytes()
        .expect("raft's messages always encode");
    let mut out = Vec::with_capacity(FRAME_HEADER_BYTES + 1 + body.len());
    let mut checked = Vec::with_capacity(1 + body.len());
    checked.push(kind);
    checked.extend_from_slice(&body);
    out.extend_from_slice(&(checked.len() as u32).to_be_bytes());
    out.extend_from_slice(&crc32c::crc32c(&checked).to_be_bytes());
    out.extend_from_slice(&checked);
    out
}

/// Replays `bytes` into `memory`; returns how many bytes hold whole, valid records. Damage
/// before the last record is an error, a damaged last record is a torn write.
fn replay(path: &Path, bytes: &[u8], memory: &MemStorage) -> Result<usize, DiskLogError> {
    let mut position = 0;
    while position < bytes.len() {
        let corrupt = |reason: String| DiskLogError::Corrupt {
            path: path.to_path_buf(),
            position,
            reason,
        };
        let Some(header) = bytes.get(position..position + FRAME_HEADER_BYTES) else {
            break;
        };
        let length = u32::from_be_bytes(header[..4].try_into().expect("four bytes")) as usize;
        let crc = u32::from_be_bytes(header[4..].try_into().expect("four bytes"));
        let end = position + FRAME_HEADER_BYTES + length;
        let Some(checked) = bytes.get(position + FRAME_HEADER_BYTES..end) else {
            break;
        };
        let last = end == bytes.len();
        if length == 0 || crc32c::crc32c(checked) != crc {
            // Zeros to the end are blocks the file system allocated but whose write never
            // landed (a crash, or a failed write-back): as torn as a cut last record.
            if last || bytes[position..].iter().all(|byte| *byte == 0) {
                break;
            }
            return Err(corrupt("checksum mismatch".into()));
        }
        let (kind, body) = (checked[0], &checked[1..]);
        let applied = match kind {
            KIND_ENTRY => Entry::parse_from_bytes(body)
                .map_err(|error| error.to_string())
                .and_then(|entry| {
                    // Entries a snapshot already covers (kept by a crash before the rewrite).
                    if entry.index < memory.first_index().expect("memory storage") {
                        return Ok(());
                    }
                    memory
                        .wl()
                        .append(&[entry])
                        .map_err(|error| error.to_string())
                }),
            KIND_HARD_STATE => HardState::parse_from_bytes(body)
                .map(|state| memory.wl().set_hardstate(state))
                .map_err(|error| error.to_string()),
            KIND_CONF_STATE => ConfState::parse_from_bytes(body)
                .map(|state| memory.wl().set_conf_state(state))
                .map_err(|error| error.to_string()),
            other => Err(format!("unknown record kind {other}")),
        };
        applied.map_err(corrupt)?;
        position = end;
    }
    Ok(position)
}

impl Storage for DiskStorage {
    fn initial_state(&self) -> raft::Result<RaftState> {
        self.memory.initial_state()
    }

    fn entries(
        &self,
        low: u64,
        high: u64,
        max_size: impl Into<Option<u64>>,
        context: GetEntriesContext,
    ) -> raft::Result<Vec<Entry>> {
        self.memory.entries(low, high, max_size, context)
    }

    fn term(&self, index: u64) -> raft::Result<u64> {
        self.memory.term(index)
    }

    fn first_index(&self) -> raft::Result<u64> {
        self.memory.first_index()
    }

    fn last_index(&self) -> raft::Result<u64> {
        self.memory.last_index()
    }

    fn snapshot(&self, request_index: u64, _to: u64) -> raft::Result<Snapshot> {
        match &self.checkpoint {
            Some(snapshot) if snapshot.get_metadata().index >= request_index => {
                Ok(snapshot.clone())
            }
            _ => Err(raft::Error::Store(
                raft::StorageError::SnapshotTemporarilyUnavailable,
            )),
        }
    }
}

/// Checkpoint file names in `dir`, oldest first (the names sort by index).
fn checkpoint_names(dir: &Path) -> std::io::Result<Vec<String>> {
    let mut names: Vec<String> = std::fs::read_dir(dir)?
        .filter_map(|entry| entry.ok()?.file_name().into_string().ok())
        .filter(|name| name.ends_with(CHECKPOINT_SUFFIX))
        .collect();
    names.sort();
    Ok(names)
}

/// The newest checkpoint in `dir` whose record is whole and valid.
fn read_latest_checkpoint(dir: &Path) -> Result<Option<Snapshot>, DiskLogError> {
    let names = checkpoint_names(dir).map_err(|source| DiskLogError::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    for name in names.iter().rev() {
        let path = dir.join(name);
        let bytes = std::fs::read(&path).map_err(|source| DiskLogError::Io {
            path: path.clone(),
            source,
        })?;
        let parsed = (bytes.len() > FRAME_HEADER_BYTES + 1)
            .then(|| {
                let crc = u32::from_be_bytes(bytes[4..8].try_into().expect("four bytes"));
                let checked = &bytes[FRAME_HEADER_BYTES..];
                (crc32c::crc32c(checked) == crc && checked[0] == KIND_SNAPSHOT)
                    .then(|| Snapshot::parse_from_bytes(&checked[1..]).ok())
                    .flatten()
            })
            .flatten();
        match parsed {
            Some(snapshot) => return Ok(Some(snapshot)),
            None => tracing::warn!(
                "metadata checkpoint {} is damaged; ignoring it",
                path.display()
            ),
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(index: u64, term: u64, data: &[u8]) -> Entry {
        Entry {
            index,
            term,
            data: bytes::Bytes::copy_from_slice(data),
            ..Default::default()
        }
    }

    /// Proves the log survives a reopen with its voters, entries (a conflicting suffix
    /// replaced) and hard state, and that a torn last record is cut off, not fatal.
    #[test]
    fn replays_entries_hard_state_and_drops_torn_tail() {
        let dir = std::env::temp_dir().join(format!("flink-raft-disk-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        {
            let mut storage = DiskStorage::open(&dir, &[1, 2, 3], false).unwrap();
            storage
                .append(&[entry(1, 1, b"a"), entry(2, 1, b"b"), entry(3, 1, b"c")])
                .unwrap();
            storage.append(&[entry(3, 2, b"C")]).unwrap();
            let state = HardState {
                term: 2,
                vote: 3,
                ..Default::default()
            };
            storage.set_hard_state(&state).unwrap();
            storage.set_commit(2).unwrap();
        }
        let mut file = OpenOptions::new()
            .append(true)
            .open(dir.join(RAFT_LOG_FILE))
            .unwrap();
        file.write_all(&[0, 0, 0, 40, 1, 2]).unwrap();
        let storage = DiskStorage::open(&dir, &[9], false).unwrap();
        let state = storage.initial_state().unwrap();
        assert_eq!(state.conf_state.voters, vec![1, 2, 3]);
        assert_eq!(
            (
                state.hard_state.term,
                state.hard_state.vote,
                state.hard_state.commit
            ),
            (2, 3, 2)
        );
        assert_eq!(storage.last_index().unwrap(), 3);
        let entries = storage
            .entries(1, 4, None, GetEntriesContext::empty(false))
            .unwrap();
        let data: Vec<(u64, &[u8])> = entries.iter().map(|e| (e.term, &e.data[..])).collect();
        assert_eq!(data, [(1, &b"a"[..]), (1, b"b"), (2, b"C")]);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// Proves zeros to the end of the file (allocated blocks whose write never landed) are cut
    /// off like a torn record, while damage followed by anything else stays an error.
    #[test]
    fn a_zero_filled_tail_is_torn_but_damage_inside_is_not() {
        let dir = std::env::temp_dir().join(format!("flink-raft-zeros-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        {
            let mut storage = DiskStorage::open(&dir, &[1], false).unwrap();
            storage
                .append(&[entry(1, 1, b"a"), entry(2, 1, b"b")])
                .unwrap();
        }
        let path = dir.join(RAFT_LOG_FILE);
        let valid = std::fs::read(&path).unwrap();
        let mut file = OpenOptions::new().append(true).open(&path).unwrap();
        file.write_all(&[0u8; 8192]).unwrap();
        drop(file);
        let storage = DiskStorage::open(&dir, &[1], false).unwrap();
        assert_eq!(storage.last_index().unwrap(), 2);
        drop(storage);
        assert_eq!(
            std::fs::read(&path).unwrap(),
            valid,
            "the zeros are cut off"
        );

        let mut damaged = valid.clone();
        damaged.extend_from_slice(&[0u8; 64]);
        damaged.extend_from_slice(&valid[valid.len() - 20..]);
        std::fs::write(&path, &damaged).unwrap();
        assert!(matches!(
            DiskStorage::open(&dir, &[1], false),
            Err(DiskLogError::Corrupt { .. })
        ));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// Proves a snapshot is kept as the newest checkpoint, compacts `raft.log` (the entry at its
    /// index stays), survives a reopen with the entries after it, and is what a follower gets;
    /// a follower's log is replaced by a received snapshot.
    #[test]
    fn snapshots_compact_the_log_and_survive_reopen() {
        let dir = std::env::temp_dir().join(format!("flink-raft-snap-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let entries: Vec<Entry> = (1..=6).map(|i| entry(i, 1, &[i as u8; 64])).collect();
        {
            let mut storage = DiskStorage::open(&dir, &[1, 2, 3], false).unwrap();
            storage.append(&entries).unwrap();
            storage.set_commit(5).unwrap();
            let before = std::fs::metadata(dir.join(RAFT_LOG_FILE)).unwrap().len();
            storage
                .create_snapshot(2, bytes::Bytes::from_static(b"image@2"))
                .unwrap();
            storage
                .create_snapshot(4, bytes::Bytes::from_static(b"image@4"))
                .unwrap();
            let after = std::fs::metadata(dir.join(RAFT_LOG_FILE)).unwrap().len();
            assert!(after < before, "raft.log {before} -> {after} bytes");
            assert_eq!(storage.first_index().unwrap(), 4);
            let sent = storage.snapshot(0, 2).unwrap();
            assert_eq!(
                (sent.get_metadata().index, &sent.data[..]),
                (4, &b"image@4"[..])
            );
        }
        assert_eq!(
            checkpoint_names(&dir).unwrap(),
            vec![format!("{:020}-{:010}.checkpoint", 4, 1)]
        );
        let storage = DiskStorage::open(&dir, &[9], false).unwrap();
        assert_eq!(storage.checkpoint().unwrap().0, 4);
        let state = storage.initial_state().unwrap();
        assert_eq!(state.conf_state.voters, vec![1, 2, 3]);
        assert_eq!(state.hard_state.commit, 5);
        assert_eq!(
            (
                storage.first_index().unwrap(),
                storage.last_index().unwrap()
            ),
            (5, 6)
        );
        assert_eq!(storage.term(4).unwrap(), 1);

        let follower_dir = dir.join("follower");
        let mut follower = DiskStorage::open(&follower_dir, &[1, 2, 3], false).unwrap();
        follower.append(&entries[..1]).unwrap();
        follower
            .apply_snapshot(storage.snapshot(0, 2).unwrap())
            .unwrap();
        drop(follower);
        let follower = DiskStorage::open(&follower_dir, &[1, 2, 3], false).unwrap();
        assert_eq!(
            follower.checkpoint().unwrap().1,
            bytes::Bytes::from_static(b"image@4")
        );
        assert_eq!(follower.last_index().unwrap(), 4);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
