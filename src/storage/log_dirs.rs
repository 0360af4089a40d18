//! The broker's log directories (`log.dirs`, Kafka's JBOD and KIP-112): which directory holds
//! each partition's log, and whether each directory still serves.
//!
//! One `LogDirs` is shared by every shard of the process (an `Arc`): a directory that fails on
//! one shard is offline for all of them at once. Its state is a few atomics and a mutex taken
//! when a partition is placed, deleted or reported, never on the data path. A directory goes
//! offline when a storage failure leaves what it holds in doubt (`fails_directory`): an
//! fdatasync that failed, a write that failed for another reason than a full disk, a failed
//! truncation or epoch write. It stays offline until the broker restarts; its partitions answer
//! KAFKA_STORAGE_ERROR, and the broker's side of the controller reports them so their
//! leadership moves to other replicas.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use super::StorageError;
use crate::metadata::TopicId;

/// A partition replica: its topic's id and its index.
pub type ReplicaKey = (TopicId, i32);

pub struct LogDirs {
    dirs: Vec<LogDir>,
    /// Signalled whenever a directory goes offline.
    failed_tx: flume::Sender<()>,
    failed_rx: flume::Receiver<()>,
}

struct LogDir {
    path: PathBuf,
    /// Why the directory went offline, once it has.
    failure: OnceLock<String>,
    /// The replicas whose logs live here.
    hosted: Mutex<BTreeSet<ReplicaKey>>,
}

/// Why no directory could take a partition's log.
#[derive(Debug, thiserror::Error)]
pub enum PlacementError {
    #[error("its log is in {path}, which is offline: {reason}")]
    DirOffline { path: PathBuf, reason: String },
    #[error("every log directory is offline")]
    AllOffline,
    /// An existing replica found in no online directory while some are offline: its log may
    /// be in one of them, and a new empty log elsewhere would fork it (Kafka refuses too).
    #[error("its log is in none of the online log directories, and {0} is offline")]
    MaybeOffline(PathBuf),
}

/// One directory of a `LogDirs`, as a partition keeps it.
#[derive(Clone)]
pub struct LogDirHandle {
    dirs: Arc<LogDirs>,
    index: usize,
}

/// What a directory looks like from outside (DescribeLogDirs, the heartbeat).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogDirState {
    pub path: PathBuf,
    pub failure: Option<String>,
    pub hosted: BTreeSet<ReplicaKey>,
}

impl LogDirs {
    /// The directories of `log.dirs`, each created if missing. One that cannot be created or
    /// read starts offline (Kafka does the same with a directory it cannot validate).
    pub fn open(paths: &[PathBuf]) -> Arc<LogDirs> {
        let (failed_tx, failed_rx) = flume::bounded(1);
        let dirs = LogDirs {
            dirs: paths
                .iter()
                .map(|path| LogDir {
                    path: path.clone(),
                    failure: OnceLock::new(),
                    hosted: Mutex::new(BTreeSet::new()),
                })
                .collect(),
            failed_tx,
            failed_rx,
        };
        for (index, dir) in dirs.dirs.iter().enumerate() {
            let meta = dir.path.join("meta.properties");
            let usable = std::fs::create_dir_all(&dir.path)
                .and_then(|()| std::fs::read_dir(&dir.path).map(|_| ()))
                .and_then(|()| match meta.exists() {
                    true => std::fs::read(&meta).map(|_| ()),
                    false => Ok(()),
                });
            if let Err(error) = usable {
                dirs.fail(index, &format!("cannot open it at start-up: {error}"));
            }
        }
        Arc::new(dirs)
    }

    pub fn len(&self) -> usize {
        self.dirs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.dirs.is_empty()
    }

    pub fn path(&self, index: usize) -> &Path {
        &self.dirs[index].path
    }

    /// Why directory `index` is offline, if it is.
    pub fn failure(&self, index: usize) -> Option<&str> {
        self.dirs[index].failure.get().map(String::as_str)
    }

    pub fn all_offline(&self) -> bool {
        self.dirs.iter().all(|dir| dir.failure.get().is_some())
    }

    /// Signalled (at most one pending signal) whenever a directory goes offline.
    pub fn failures(&self) -> flume::Receiver<()> {
        self.failed_rx.clone()
    }

    /// Takes directory `index` offline (the first reason stays).
    fn fail(&self, index: usize, reason: &str) {
        let dir = &self.dirs[index];
        if dir.failure.set(reason.to_string()).is_ok() {
            let hosted = dir.hosted.lock().map(|hosted| hosted.len()).unwrap_or(0);
            tracing::error!(
                "Log directory {} is offline until the broker restarts: {reason}. Its {hosted} \
                 partition(s) answer KAFKA_STORAGE_ERROR and their leadership moves to other replicas",
                dir.path.display()
            );
            let _ = self.failed_tx.try_send(());
        }
    }

    /// The directory for the log of partition directory `name` (`<topic>-<index>`) of replica
    /// `key`: the one that holds it already, else the online one hosting the fewest replicas
    /// (Kafka's choice), the first of equals. The replica is counted there from now on. A
    /// replica that is not `new` (it existed before this broker started or before the image
    /// that placed it here) is not created afresh while a directory is offline: it is counted
    /// in that directory, so that the heartbeat reports it.
    pub fn place(
        self: &Arc<Self>,
        name: &str,
        key: ReplicaKey,
        new: bool,
    ) -> Result<LogDirHandle, PlacementError> {
        let existing: Vec<usize> = (0..self.dirs.len())
            .filter(|index| self.dirs[*index].path.join(name).is_dir())
            .collect();
        if existing.len() > 1 {
            tracing::warn!(
                "partition directory {name} exists in several log directories ({}); using the first",
                existing
                    .iter()
                    .map(|index| self.dirs[*index].path.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
        let index = match existing.first() {
            Some(index) => {
                if let Some(reason) = self.failure(*index) {
                    self.count_offline(*index, key);
                    return Err(PlacementError::DirOffline {
                        path: self.dirs[*index].path.clone(),
                        reason: reason.to_string(),
                    });
                }
                *index
            }
            None => {
                let offline = (0..self.dirs.len()).find(|index| self.failure(*index).is_some());
                if let (Some(offline), false) = (offline, new) {
                    self.count_offline(offline, key);
                    return Err(PlacementError::MaybeOffline(
                        self.dirs[offline].path.clone(),
                    ));
                }
                (0..self.dirs.len())
                    .filter(|index| self.failure(*index).is_none())
                    .min_by_key(|index| self.hosted_count(*index))
                    .ok_or(PlacementError::AllOffline)?
            }
        };
        if let Ok(mut hosted) = self.dirs[index].hosted.lock() {
            hosted.insert(key);
        }
        Ok(LogDirHandle {
            dirs: self.clone(),
            index,
        })
    }

    /// Counts `key` in offline directory `index`, so that the heartbeat, sent at once,
    /// reports it.
    fn count_offline(&self, index: usize, key: ReplicaKey) {
        let added = self.dirs[index]
            .hosted
            .lock()
            .is_ok_and(|mut hosted| hosted.insert(key));
        if added {
            let _ = self.failed_tx.try_send(());
        }
    }

    fn hosted_count(&self, index: usize) -> usize {
        self.dirs[index]
            .hosted
            .lock()
            .map(|hosted| hosted.len())
            .unwrap_or(usize::MAX)
    }

    /// Every directory's path, state and replicas.
    pub fn states(&self) -> Vec<LogDirState> {
        self.dirs
            .iter()
            .map(|dir| LogDirState {
                path: dir.path.clone(),
                failure: dir.failure.get().cloned(),
                hosted: dir
                    .hosted
                    .lock()
                    .map(|hosted| hosted.clone())
                    .unwrap_or_default(),
            })
            .collect()
    }

    /// The replicas whose directory is offline: what the heartbeat reports.
    pub fn offline_replicas(&self) -> Vec<ReplicaKey> {
        self.states()
            .into_iter()
            .filter(|state| state.failure.is_some())
            .flat_map(|state| state.hosted)
            .collect()
    }
}

impl LogDirHandle {
    /// A directory of its own (tests and tools that open one log).
    pub fn standalone(path: &Path) -> LogDirHandle {
        let dirs = LogDirs::open(&[path.to_path_buf()]);
        LogDirHandle { dirs, index: 0 }
    }

    pub fn path(&self) -> &Path {
        self.dirs.path(self.index)
    }

    /// Why the directory is offline, if it is.
    pub fn failure(&self) -> Option<&str> {
        self.dirs.failure(self.index)
    }

    /// Takes the whole directory offline.
    pub fn fail(&self, reason: &str) {
        self.dirs.fail(self.index, reason);
    }

    /// The replica's log is gone from here.
    pub fn unhost(&self, key: ReplicaKey) {
        if let Ok(mut hosted) = self.dirs.dirs[self.index].hosted.lock() {
            hosted.remove(&key);
        }
    }
}

/// Whether `error` leaves a directory's contents in doubt, so that it must go offline: a failed
/// fdatasync (after one, the kernel may have dropped the dirty pages it could not write, so a
/// later successful one proves nothing), and any failed I/O but a full disk or quota, which
/// the tail survives in memory and retries (see `Segment`).
pub fn fails_directory(error: &StorageError) -> bool {
    match error {
        StorageError::SyncFailed { .. } => true,
        // glommio keeps the error's kind but not always its errno.
        StorageError::Io { source, .. } => !matches!(
            source.kind(),
            std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded
        ),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(index: i32) -> ReplicaKey {
        (TopicId([7; 16]), index)
    }

    /// Proves new logs go to the online directory hosting the fewest replicas, an existing log
    /// stays where it is, and a log in an offline directory is not placed anywhere else.
    #[test]
    fn places_by_count_keeps_existing_and_refuses_offline() {
        let root = crate::storage::test_util::temp_dir("log-dirs-place");
        let paths: Vec<PathBuf> = (0..3).map(|n| root.join(format!("d{n}"))).collect();
        let dirs = LogDirs::open(&paths);
        let handles: Vec<LogDirHandle> = (0..6)
            .map(|n| dirs.place(&format!("t-{n}"), key(n), true).expect("placed"))
            .collect();
        let placed: Vec<usize> = handles.iter().map(|handle| handle.index).collect();
        assert_eq!(placed, vec![0, 1, 2, 0, 1, 2]);

        std::fs::create_dir_all(paths[2].join("old-0")).expect("mkdir");
        assert_eq!(
            dirs.place("old-0", key(10), false).expect("placed").index,
            2
        );

        let handle = &handles[1];
        handle.fail("fdatasync failed: EIO");
        handle.fail("a second reason is not kept");
        assert_eq!(dirs.failure(1), Some("fdatasync failed: EIO"));
        assert!(dirs.failures().try_recv().is_ok());

        std::fs::create_dir_all(paths[1].join("t-1")).expect("mkdir");
        assert!(matches!(
            dirs.place("t-1", key(1), false),
            Err(PlacementError::DirOffline { .. })
        ));
        let fresh = dirs.place("new-0", key(20), true).expect("placed");
        assert_ne!(fresh.index, 1, "nothing new goes to an offline directory");
        assert!(matches!(
            dirs.place("elsewhere-0", key(30), false),
            Err(PlacementError::MaybeOffline(_))
        ));
        assert_eq!(dirs.offline_replicas(), vec![key(1), key(4), key(30)]);
        assert!(!dirs.all_offline());

        dirs.fail(0, "EIO");
        dirs.fail(2, "EIO");
        assert!(dirs.all_offline());
        assert!(matches!(
            dirs.place("new-1", key(21), true),
            Err(PlacementError::AllOffline)
        ));
    }

    /// Proves a directory that cannot be created starts offline.
    #[test]
    fn an_unusable_directory_starts_offline() {
        let root = crate::storage::test_util::temp_dir("log-dirs-unusable");
        std::fs::create_dir_all(&root).expect("mkdir");
        let file = root.join("a-file");
        std::fs::write(&file, b"x").expect("write");
        let dirs = LogDirs::open(&[root.join("ok"), file.join("below-a-file")]);
        assert!(dirs.failure(0).is_none());
        assert!(dirs.failure(1).is_some());
    }

    /// Proves which storage errors take a directory offline.
    #[test]
    fn a_full_disk_does_not_fail_the_directory_but_eio_does() {
        let io = |errno| StorageError::io("/x", std::io::Error::from_raw_os_error(errno));
        let kind = |kind: std::io::ErrorKind| {
            StorageError::io("/x", std::io::Error::new(kind, "enhanced"))
        };
        assert!(!fails_directory(&kind(std::io::ErrorKind::StorageFull)));
        assert!(fails_directory(&kind(std::io::ErrorKind::Other)));
        assert!(!fails_directory(&io(libc::ENOSPC)));
        assert!(!fails_directory(&io(libc::EDQUOT)));
        assert!(fails_directory(&io(libc::EIO)));
        assert!(fails_directory(&io(libc::EROFS)));
        assert!(fails_directory(&StorageError::SyncFailed {
            path: "/x".into(),
            reason: "EIO".into()
        }));
    }
}
