//! The metadata quorum's Raft driver: one raft-rs `RawNode` over the on-disk log (`disk`),
//! driven by its owner through `tick`, `step`, `propose` and `ready`. It does no I/O besides the
//! log and owns no clock or network: whoever holds it decides when a tick passes and carries the
//! messages `ready` returns. That is what lets `sim_tests` run whole clusters on a fake clock
//! and a simulated network that drops, delays and partitions messages.
//!
//! `ready` follows raft-rs's contract: entries and hard state are made durable before the
//! messages that depend on them are handed out, and committed entries are returned in log
//! order, each exactly once per process (after a restart the whole committed log is returned
//! again, from which the state machine is rebuilt).
//!
//! `driver::Driver` runs it on the controller's executor: a clock, messages carried between
//! controller processes by `transport`, and committed entries applied to the metadata image.

pub mod disk;
#[cfg(test)]
mod sim_tests;

use std::path::Path;

use raft::prelude::{Entry, EntryType, Message};
use raft::{Config, GetEntriesContext, RawNode, StateRole};

pub use disk::{DiskLogError, DiskStorage};

/// Ticks without a heartbeat before a follower stands for election (raft-rs randomises it
/// between this and twice this).
pub const ELECTION_TICKS: usize = 10;
/// Ticks between a leader's heartbeats.
pub const HEARTBEAT_TICKS: usize = 2;
/// Bytes of entries `holds_data` reads at a time.
const SCAN_BYTES: u64 = 64 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum QuorumError {
    #[error(transparent)]
    Log(#[from] DiskLogError),
    #[error("not the active controller (leader: {leader:?})")]
    NotLeader { leader: Option<u64> },
    #[error("raft: {0}")]
    Raft(#[from] raft::Error),
}

/// What one `ready` produced: messages to send, and newly committed entries.
#[derive(Debug, Default)]
pub struct Output {
    pub messages: Vec<Message>,
    pub committed: Vec<Committed>,
    /// A snapshot from the leader that replaced this node's log: its index and data (the
    /// state to adopt before applying `committed`).
    pub snapshot: Option<(u64, bytes::Bytes)>,
}

/// A committed entry that carries data (a change to the metadata).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Committed {
    pub index: u64,
    pub term: u64,
    pub data: bytes::Bytes,
}

pub struct QuorumNode {
    node: RawNode<DiskStorage>,
}

/// How a node is run; the defaults are production's.
#[derive(Clone, Copy, Debug)]
pub struct QuorumOptions {
    /// fdatasync the log (off only where crashes are simulated in-process).
    pub sync: bool,
    /// Pins the election timeout at this many ticks instead of raft's random pick between
    /// `ELECTION_TICKS` and twice that: raft draws from an unseeded RNG, and a simulation must
    /// replay exactly from its seed.
    pub election_ticks: Option<usize>,
}

impl Default for QuorumOptions {
    fn default() -> QuorumOptions {
        QuorumOptions {
            sync: true,
            election_ticks: None,
        }
    }
}

impl QuorumNode {
    /// Opens node `id`'s log in `dir` (created with `voters` the first time). A quorum of one
    /// elects itself at once.
    pub fn open(
        dir: &Path,
        id: u64,
        voters: &[u64],
        options: QuorumOptions,
    ) -> Result<QuorumNode, QuorumError> {
        let storage = DiskStorage::open(dir, voters, options.sync)?;
        let (min_election_tick, max_election_tick) = match options.election_ticks {
            Some(ticks) => (ticks, ticks + 1),
            None => (0, 0),
        };
        let config = Config {
            min_election_tick,
            max_election_tick,
            id,
            election_tick: ELECTION_TICKS,
            heartbeat_tick: HEARTBEAT_TICKS,
            // A partitioned node does not disturb the leader when it returns.
            pre_vote: true,
            check_quorum: true,
            ..Default::default()
        };
        config.validate()?;
        let logger = slog::Logger::root(TracingDrain, slog::o!("raft_id" => id));
        let mut node = RawNode::new(&config, storage, &logger)?;
        if voters == [id] {
            node.campaign()?;
        }
        Ok(QuorumNode { node })
    }

    pub fn id(&self) -> u64 {
        self.node.raft.id
    }

    /// The leader this node knows of.
    pub fn leader(&self) -> Option<u64> {
        Some(self.node.raft.leader_id).filter(|leader| *leader != raft::INVALID_ID)
    }

    pub fn is_leader(&self) -> bool {
        self.node.raft.state == StateRole::Leader
    }

    pub fn term(&self) -> u64 {
        self.node.raft.term
    }

    /// The highest index known to be committed.
    pub fn committed_index(&self) -> u64 {
        self.node.raft.raft_log.committed
    }

    /// The latest snapshot's index and data, if there is one.
    pub fn checkpoint(&self) -> Option<(u64, bytes::Bytes)> {
        self.node.store().checkpoint()
    }

    /// Snapshots the log at `index` (applied here) with `data`, the state at that index.
    pub fn create_snapshot(&mut self, index: u64, data: bytes::Bytes) -> Result<(), QuorumError> {
        self.node.mut_store().create_snapshot(index, data)?;
        Ok(())
    }

    /// One unit of the logical clock.
    pub fn tick(&mut self) {
        self.node.tick();
    }

    /// A message from a peer. Messages from old terms or unknown peers are dropped by raft.
    pub fn step(&mut self, message: Message) -> Result<(), QuorumError> {
        match self.node.step(message) {
            Ok(()) | Err(raft::Error::StepPeerNotFound) | Err(raft::Error::StepLocalMsg) => Ok(()),
            Err(error) => Err(error.into()),
        }
    }

    /// The index of the last entry in this node's log.
    pub fn last_index(&self) -> u64 {
        self.node.raft.raft_log.last_index()
    }

    /// Each voter's raft id with the highest index known to be on it (the leader's view; empty
    /// on followers).
    pub fn progress(&self) -> Vec<(u64, u64)> {
        match self.is_leader() {
            true => self
                .node
                .raft
                .prs()
                .iter()
                .map(|(id, progress)| (*id, progress.matched))
                .collect(),
            false => Vec::new(),
        }
    }

    /// Whether the log holds any metadata: a snapshot, or an entry with data, committed or not
    /// (the empty entry each new leader appends carries none). Reads up to the first such
    /// entry, which in a log that has any comes within its first few.
    pub fn holds_data(&self) -> Result<bool, QuorumError> {
        if self.checkpoint().is_some() {
            return Ok(true);
        }
        let log = &self.node.raft.raft_log;
        let mut index = log.first_index();
        while index <= log.last_index() {
            let entries = log.entries(index, SCAN_BYTES, GetEntriesContext::empty(false))?;
            if entries.iter().any(carries_data) {
                return Ok(true);
            }
            match entries.len() {
                0 => break,
                read => index += read as u64,
            }
        }
        Ok(false)
    }

    /// Appends `data` to the log if this node leads; it is committed once a majority has it.
    pub fn propose(&mut self, data: Vec<u8>) -> Result<(), QuorumError> {
        if !self.is_leader() {
            return Err(QuorumError::NotLeader {
                leader: self.leader(),
            });
        }
        match self.node.propose(Vec::new(), data) {
            Ok(()) => Ok(()),
            Err(raft::Error::ProposalDropped) => Err(QuorumError::NotLeader {
                leader: self.leader(),
            }),
            Err(error) => Err(error.into()),
        }
    }

    /// Persists what raft asks for and returns the messages to send and the entries committed.
    pub fn ready(&mut self) -> Result<Output, QuorumError> {
        let mut output = Output::default();
        if !self.node.has_ready() {
            return Ok(output);
        }
        let mut ready = self.node.ready();
        // A leader's messages may go before its own entries are durable (raft's rule).
        output.messages.extend(ready.take_messages());
        if !ready.snapshot().is_empty() {
            let snapshot = ready.snapshot().clone();
            output.snapshot = Some((snapshot.get_metadata().index, snapshot.data.clone()));
            self.node.mut_store().apply_snapshot(snapshot)?;
        }
        collect_committed(&mut output, ready.take_committed_entries());
        let store = self.node.mut_store();
        store.append(ready.entries())?;
        if let Some(state) = ready.hs() {
            store.set_hard_state(state)?;
        }
        if !ready.entries().is_empty() || ready.hs().is_some() {
            store.sync()?;
        }
        output.messages.extend(ready.take_persisted_messages());
        let mut light = self.node.advance(ready);
        if let Some(commit) = light.commit_index() {
            self.node.mut_store().set_commit(commit)?;
        }
        output.messages.extend(light.take_messages());
        collect_committed(&mut output, light.take_committed_entries());
        self.node.advance_apply();
        Ok(output)
    }
}

/// Whether an entry is a change to the metadata: a normal entry with data (the empty entry a
/// new leader appends carries none).
fn carries_data(entry: &Entry) -> bool {
    entry.get_entry_type() == EntryType::EntryNormal && !entry.data.is_empty()
}

/// Keeps the data of normal entries.
fn collect_committed(output: &mut Output, entries: Vec<Entry>) {
    output.committed.extend(
        entries
            .into_iter()
            .filter(carries_data)
            .map(|entry| Committed {
                index: entry.index,
                term: entry.term,
                data: entry.data,
            }),
    );
}

/// Forwards raft-rs's slog records to `tracing`, at debug level except warnings and errors.
struct TracingDrain;

impl slog::Drain for TracingDrain {
    type Ok = ();
    type Err = slog::Never;

    fn log(&self, record: &slog::Record, _: &slog::OwnedKVList) -> Result<(), slog::Never> {
        match record.level() {
            slog::Level::Critical | slog::Level::Error => {
                tracing::error!(target: "raft", "{}", record.msg())
            }
            slog::Level::Warning => tracing::warn!(target: "raft", "{}", record.msg()),
            _ => tracing::debug!(target: "raft", "{}", record.msg()),
        }
        Ok(())
    }
}
