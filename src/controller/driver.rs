//! Runs the metadata quorum on the controller's executor: ticks raft's clock, steps messages
//! from the other controllers, persists and sends what `ready` hands out, and applies every
//! committed entry to this node's metadata image (on followers too, so a new leader starts
//! from the whole log). `commit` proposes a change and returns once it is committed and applied.
//! An active controller whose log holds nothing yet first proposes the bootstrap metadata
//! (`bootstrap`: what `flink storage format` was given), before any other change.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use raft::prelude::Message;

use super::image::{apply, log_record};
use super::metadata_log::{decode_entry, encode_entry, node_id, MetadataLog, MetadataRecord};
use super::quorum::{Committed, Output, QuorumError, QuorumNode};
use super::{now_ms, ReplicaStatus, TopicError};
use crate::metadata::MetadataImage;

/// Most entries one FetchMetadata reply carries.
const FETCH_ENTRIES_MAX: usize = 512;
/// How long a proposal may take to commit before the caller is told to retry.
const COMMIT_TIMEOUT: Duration = Duration::from_secs(10);

pub enum Event {
    Tick,
    Message(Box<Message>),
    /// A proposal was made: run `ready`.
    Wake,
}

pub struct Driver {
    node_id: i32,
    quorum: RefCell<QuorumNode>,
    state: RefCell<State>,
    events: flume::Sender<Event>,
    /// Outgoing message queues by raft id (`transport::spawn_peers`).
    peers: BTreeMap<u64, flume::Sender<Message>>,
    /// Told after every batch of applied entries.
    watchers: RefCell<Vec<flume::Sender<()>>>,
    /// When each controller was last heard from, by node id (ms since the epoch).
    heard_from: RefCell<BTreeMap<i32, i64>>,
    /// The leader last logged, to log each change once.
    known_leader: std::cell::Cell<i32>,
    /// Entry bytes applied between snapshots (`metadata.log.max.record.bytes.between.snapshots`).
    snapshot_bytes: u64,
    /// The bootstrap metadata as one entry's data, for a log that holds nothing yet.
    bootstrap: Option<Vec<u8>>,
    /// The bootstrap metadata applied to an empty image: the SCRAM credentials the controller
    /// listener takes before the log holds them.
    bootstrap_image: Option<MetadataImage>,
    /// The last term in which this node, as leader, looked whether the log needs the bootstrap.
    bootstrap_term: std::cell::Cell<u64>,
}

struct State {
    image: MetadataImage,
    /// The latest snapshot (index, data): brokers further behind than it start from it.
    snapshot: Option<(u64, Bytes)>,
    /// Every committed entry since the snapshot, for brokers that fetch the log.
    entries: Vec<(u64, Bytes)>,
    /// Bytes of entries applied since the snapshot.
    bytes_since_snapshot: u64,
    /// Proposals waiting to commit, by index: the term they were proposed in, and whom to tell.
    waiters: BTreeMap<u64, (u64, flume::Sender<bool>)>,
}

impl Driver {
    /// Builds the driver from an opened log and the entries it replayed.
    pub fn new(
        log: MetadataLog,
        replayed: Vec<Committed>,
        mut image: MetadataImage,
        node_id: i32,
        events: flume::Sender<Event>,
        peers: BTreeMap<u64, flume::Sender<Message>>,
        snapshot_bytes: u64,
    ) -> Result<Driver, TopicError> {
        let snapshot = log.quorum.checkpoint();
        let records = log.bootstrap.filter(|records| !records.is_empty());
        let bootstrap = records.as_deref().map(encode_entry);
        let bootstrap_image = records.map(|records| {
            let mut bootstrapped = image.clone();
            for record in &records {
                super::image::apply(&mut bootstrapped, record, node_id);
            }
            bootstrapped
        });
        if let Some((_, data)) = &snapshot {
            image = image_from_snapshot(data, &image)?;
        }
        let mut entries = Vec::with_capacity(replayed.len());
        for entry in replayed {
            apply_entry(&mut image, &entry, node_id, false)?;
            entries.push((entry.index, entry.data));
        }
        Ok(Driver {
            node_id,
            quorum: RefCell::new(log.quorum),
            state: RefCell::new(State {
                image,
                snapshot,
                entries,
                bytes_since_snapshot: 0,
                waiters: BTreeMap::new(),
            }),
            snapshot_bytes,
            events,
            peers,
            watchers: RefCell::new(Vec::new()),
            heard_from: RefCell::new(BTreeMap::new()),
            known_leader: std::cell::Cell::new(-1),
            bootstrap,
            bootstrap_image,
            bootstrap_term: std::cell::Cell::new(0),
        })
    }

    pub fn image(&self) -> MetadataImage {
        self.state.borrow().image.clone()
    }

    /// The bootstrap metadata as an image of its own (`flink-storage.sh format` gave some).
    pub fn bootstrap_image(&self) -> Option<&MetadataImage> {
        self.bootstrap_image.as_ref()
    }

    pub fn is_leader(&self) -> bool {
        self.quorum.borrow().is_leader()
    }

    /// The active controller's node id, -1 when none is known.
    pub fn leader(&self) -> i32 {
        self.quorum.borrow().leader().map_or(-1, node_id)
    }

    pub fn term(&self) -> u64 {
        self.quorum.borrow().term()
    }

    pub fn applied_index(&self) -> u64 {
        self.state.borrow().image.metadata_index
    }

    /// A channel told whenever entries were applied.
    pub fn watch(&self) -> flume::Receiver<()> {
        let (sender, receiver) = flume::bounded(1);
        self.watchers.borrow_mut().push(sender);
        receiver
    }

    /// Committed entries after `from_index`, waiting up to `wait` for one when there is none
    /// yet (a broker's long poll).
    pub async fn fetch(&self, from_index: u64, wait: Duration) -> Fetched {
        let fetched = self.entries_after(from_index);
        if fetched.snapshot.is_some() || !fetched.entries.is_empty() {
            return fetched;
        }
        let applied = self.watch();
        let timeout = async {
            glommio::timer::sleep(wait).await;
            Err(flume::RecvError::Disconnected)
        };
        let _ = futures_lite::future::or(applied.recv_async(), timeout).await;
        self.entries_after(from_index)
    }

    /// Committed entries after `from_index`, a bounded number at a time, after the snapshot
    /// when `from_index` is older than it.
    pub fn entries_after(&self, from_index: u64) -> Fetched {
        let state = self.state.borrow();
        let snapshot = state
            .snapshot
            .clone()
            .filter(|(index, _)| from_index < *index);
        let from_index = snapshot.as_ref().map_or(from_index, |(index, _)| *index);
        let start = state
            .entries
            .partition_point(|(index, _)| *index <= from_index);
        let entries = state.entries[start..]
            .iter()
            .take(FETCH_ENTRIES_MAX)
            .cloned()
            .collect();
        Fetched { snapshot, entries }
    }

    /// The voters as this node sees them: on the leader, each one's replicated index.
    pub fn voters(&self, voter_ids: &[i32]) -> Vec<ReplicaStatus> {
        let quorum = self.quorum.borrow();
        let progress = quorum.progress();
        let committed = quorum.committed_index() as i64;
        let heard_from = self.heard_from.borrow();
        let now = now_ms();
        voter_ids
            .iter()
            .map(|id| {
                let matched = progress
                    .iter()
                    .find(|(raft, _)| node_id(*raft) == *id)
                    .map_or(-1, |(_, matched)| *matched as i64);
                let (end, fetched) = match *id == self.node_id {
                    true => (quorum.last_index() as i64, now),
                    false => (matched, heard_from.get(id).copied().unwrap_or(-1)),
                };
                ReplicaStatus {
                    replica_id: *id,
                    log_end_offset: end,
                    last_fetch_timestamp: fetched,
                    last_caught_up_timestamp: if end >= committed { fetched } else { -1 },
                }
            })
            .collect()
    }

    pub fn committed_index(&self) -> u64 {
        self.quorum.borrow().committed_index()
    }

    /// Proposes `records` as one entry; returns once it is committed and applied here.
    pub async fn commit(&self, records: &[MetadataRecord]) -> Result<(), TopicError> {
        if records.is_empty() {
            return Ok(());
        }
        let (index, term) = {
            let mut quorum = self.quorum.borrow_mut();
            self.propose_bootstrap(&mut quorum);
            quorum
                .propose(encode_entry(records))
                .map_err(|error| match error {
                    QuorumError::NotLeader { leader } => {
                        TopicError::NotController(leader.map_or(-1, node_id))
                    }
                    error => TopicError::Storage(error.to_string()),
                })?;
            (quorum.last_index(), quorum.term())
        };
        let (told, outcome) = flume::bounded(1);
        self.state.borrow_mut().waiters.insert(index, (term, told));
        let _ = self.events.try_send(Event::Wake);
        let timeout = async {
            glommio::timer::sleep(COMMIT_TIMEOUT).await;
            Err(flume::RecvError::Disconnected)
        };
        match futures_lite::future::or(outcome.recv_async(), timeout).await {
            Ok(true) => Ok(()),
            Ok(false) => Err(TopicError::NotController(self.leader())),
            Err(_) => {
                self.state.borrow_mut().waiters.remove(&index);
                Err(TopicError::Timeout(format!(
                    "the metadata quorum did not commit the change within {COMMIT_TIMEOUT:?}"
                )))
            }
        }
    }

    /// Ticks every `tick` until the process ends.
    pub async fn tick(self: Rc<Self>, tick: Duration) {
        loop {
            glommio::timer::sleep(tick).await;
            if self.events.send_async(Event::Tick).await.is_err() {
                return;
            }
        }
    }

    /// Drives the quorum until the process ends.
    pub async fn run(self: Rc<Self>, events: flume::Receiver<Event>) {
        while let Ok(event) = events.recv_async().await {
            self.handle(event);
            while let Ok(event) = events.try_recv() {
                self.handle(event);
            }
            self.propose_bootstrap(&mut self.quorum.borrow_mut());
            let mut output = match self.quorum.borrow_mut().ready() {
                Ok(output) => output,
                Err(error) => {
                    // The log cannot be written: this controller must not go on voting.
                    tracing::error!("metadata quorum stopped: {error}");
                    std::process::exit(1);
                }
            };
            let leader = self.leader();
            if leader != self.known_leader.replace(leader) {
                match leader {
                    -1 => tracing::info!("the metadata quorum has no active controller"),
                    leader => tracing::info!(
                        "controller {leader} is the active controller (leader epoch {})",
                        self.term()
                    ),
                }
            }
            for message in std::mem::take(&mut output.messages) {
                if let Some(peer) = self.peers.get(&message.to) {
                    let _ = peer.try_send(message);
                }
            }
            if !output.committed.is_empty() || output.snapshot.is_some() {
                self.apply_committed(output);
                self.maybe_snapshot();
            }
        }
    }

    /// Proposes the bootstrap metadata once per term in which this node leads, if the log holds
    /// nothing yet (Kafka's controller writes its bootstrap records into an empty log when it
    /// becomes active). A leader's log has every committed entry, so an entry of a former
    /// leader (its bootstrap, committed or not) makes this one skip it. Called before each
    /// proposal and after each step of raft, on this executor, so it comes before any other
    /// change of the term.
    fn propose_bootstrap(&self, quorum: &mut QuorumNode) {
        let Some(bootstrap) = &self.bootstrap else {
            return;
        };
        if !quorum.is_leader() || self.bootstrap_term.replace(quorum.term()) == quorum.term() {
            return;
        }
        match quorum.holds_data() {
            Ok(true) => {}
            Ok(false) => match quorum.propose(bootstrap.clone()) {
                Ok(()) => tracing::info!(
                    "the metadata log is empty: proposing the bootstrap metadata of {}",
                    super::bootstrap::BOOTSTRAP_FILE
                ),
                Err(error) => {
                    tracing::warn!("cannot propose the bootstrap metadata: {error}")
                }
            },
            Err(error) => tracing::error!("cannot read the metadata log: {error}"),
        }
    }

    /// Snapshots the image once enough entry bytes were applied since the last snapshot.
    fn maybe_snapshot(&self) {
        let (index, data) = {
            let state = self.state.borrow();
            if state.bytes_since_snapshot < self.snapshot_bytes {
                return;
            }
            let index = state.image.metadata_index;
            (index, Bytes::from(super::rpc::encode(&state.image)))
        };
        if let Err(error) = self
            .quorum
            .borrow_mut()
            .create_snapshot(index, data.clone())
        {
            tracing::error!("cannot snapshot the metadata log at index {index}: {error}");
            return;
        }
        let mut state = self.state.borrow_mut();
        state.entries.retain(|(entry, _)| *entry > index);
        state.bytes_since_snapshot = 0;
        state.snapshot = Some((index, data));
        tracing::info!("snapshot of the metadata log at index {index}");
    }

    fn handle(&self, event: Event) {
        let mut quorum = self.quorum.borrow_mut();
        match event {
            Event::Tick => quorum.tick(),
            Event::Wake => {}
            Event::Message(message) => {
                self.heard_from
                    .borrow_mut()
                    .insert(node_id(message.from), now_ms());
                if let Err(error) = quorum.step(*message) {
                    tracing::warn!("metadata quorum refused a message: {error}");
                }
            }
        }
    }

    fn apply_committed(&self, output: Output) {
        let leader = self.leader();
        let mut state = self.state.borrow_mut();
        if let Some((index, data)) = output.snapshot {
            match image_from_snapshot(&data, &state.image) {
                Ok(image) => {
                    tracing::info!(
                        "adopted the active controller's metadata snapshot at index {index}"
                    );
                    state.image = image;
                    state.entries.clear();
                    state.snapshot = Some((index, data));
                }
                Err(error) => {
                    tracing::error!("metadata snapshot at index {index} unreadable: {error}")
                }
            }
        }
        for entry in output.committed {
            state.bytes_since_snapshot += entry.data.len() as u64;
            if let Err(error) = apply_entry(&mut state.image, &entry, self.node_id, true) {
                tracing::error!("metadata log entry {} skipped: {error}", entry.index);
            }
            let stale: Vec<u64> = state
                .waiters
                .range(..=entry.index)
                .map(|(i, _)| *i)
                .collect();
            for index in stale {
                let (term, told) = state.waiters.remove(&index).expect("listed");
                let _ = told.send(index == entry.index && term == entry.term);
            }
            state.entries.push((entry.index, entry.data));
        }
        state.image.controller_id = leader;
        drop(state);
        self.watchers
            .borrow_mut()
            .retain(|watcher| !watcher.is_disconnected());
        for watcher in self.watchers.borrow().iter() {
            let _ = watcher.try_send(());
        }
    }
}

/// What a metadata fetch returns.
pub struct Fetched {
    pub snapshot: Option<(u64, Bytes)>,
    pub entries: Vec<(u64, Bytes)>,
}

/// The image a snapshot holds, with the fields a node sets itself taken from `current`.
pub fn image_from_snapshot(
    data: &[u8],
    current: &MetadataImage,
) -> Result<MetadataImage, TopicError> {
    let mut image: MetadataImage = super::rpc::decode(data)
        .map_err(|error| TopicError::Storage(format!("bad metadata snapshot: {error}")))?;
    image.cluster_id = current.cluster_id.clone();
    image.controller_id = current.controller_id;
    Ok(image)
}

/// Applies one committed entry's records to `image`.
pub fn apply_entry(
    image: &mut MetadataImage,
    entry: &Committed,
    node_id: i32,
    log: bool,
) -> Result<(), TopicError> {
    let records =
        decode_entry(&entry.data, 0).map_err(|error| TopicError::Storage(error.to_string()))?;
    for record in &records {
        apply(image, record, node_id);
        if log {
            log_record(record);
        }
    }
    image.metadata_index = entry.index;
    image.epoch += 1;
    Ok(())
}

/// Applies fetched entries to a copy of `image` (a broker following the log).
pub fn apply_fetched(
    image: &Arc<MetadataImage>,
    snapshot: Option<&(u64, Bytes)>,
    entries: &[(u64, Bytes)],
    node_id: i32,
) -> Result<MetadataImage, TopicError> {
    let mut next = match snapshot {
        Some((index, data)) if *index > image.metadata_index => image_from_snapshot(data, image)?,
        _ => (**image).clone(),
    };
    for (index, data) in entries {
        if *index <= next.metadata_index {
            continue;
        }
        let entry = Committed {
            index: *index,
            term: 0,
            data: data.clone(),
        };
        apply_entry(&mut next, &entry, node_id, false)?;
    }
    Ok(next)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::path::{Path, PathBuf};

    use super::*;
    use crate::controller::bootstrap;

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("flink-driver-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn open_driver(dir: &Path) -> Driver {
        let (log, replayed) = MetadataLog::open(dir, 1, &[1]).unwrap();
        let (events, _) = flume::bounded(16);
        let image = MetadataImage::default();
        Driver::new(log, replayed, image, 1, events, BTreeMap::new(), u64::MAX).unwrap()
    }

    /// Runs the quorum of one until it has nothing to do, applying what it commits.
    fn settle(driver: &Driver) {
        for _ in 0..8 {
            let output = driver.quorum.borrow_mut().ready().unwrap();
            if !output.committed.is_empty() {
                driver.apply_committed(output);
            }
        }
    }

    /// The active controller of an empty log proposes the bootstrap metadata once, and it is
    /// applied like any change; after a restart the log holds it, so it is not proposed again.
    #[test]
    fn bootstraps_only_an_empty_log() {
        let dir = scratch("bootstrap");
        let alice = MetadataRecord::UserConfigs {
            user: "alice".to_string(),
            configs: BTreeMap::from([(
                "SCRAM-SHA-512".to_string(),
                "salt=c2FsdA==,stored_key=a2V5,server_key=a2V5,iterations=8192".to_string(),
            )]),
        };
        bootstrap::write(&dir, std::slice::from_ref(&alice)).unwrap();
        let driver = open_driver(&dir);
        for _ in 0..2 {
            driver.propose_bootstrap(&mut driver.quorum.borrow_mut());
        }
        settle(&driver);
        assert!(driver.image().user_configs.contains_key("alice"));
        let entries = driver.entries_after(0).entries;
        assert_eq!(entries.len(), 1, "the bootstrap entry, once");
        assert_eq!(decode_entry(&entries[0].1, 0).unwrap(), vec![alice]);
        drop(driver);

        let driver = open_driver(&dir);
        assert!(driver.image().user_configs.contains_key("alice"));
        let last = driver.quorum.borrow().last_index();
        driver.propose_bootstrap(&mut driver.quorum.borrow_mut());
        settle(&driver);
        assert_eq!(driver.quorum.borrow().last_index(), last);
        assert_eq!(driver.entries_after(0).entries.len(), 1);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
