//! The simulation's pieces: replicas with their logs and simulated files, the model
//! controller, the messages between them, and the random source.

use std::collections::{BTreeMap, BTreeSet};

use crate::metadata::PartitionImage;
use crate::replication::epochs::EpochLedger;
use crate::replication::follower::{Answer, FetchedAt};
use crate::replication::leader::Replicas;

/// A gap in a log (records skipped by a misplaced append).
pub(super) const HOLE: u64 = 0;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Entry {
    pub epoch: i32,
    pub value: u64,
}

#[derive(Debug, PartialEq, Eq)]
pub enum Violation {
    AcknowledgedLost {
        tick: u64,
        offset: i64,
        replica: i32,
    },
    CommittedDiffers {
        tick: u64,
        offset: i64,
        replica: i32,
    },
    CommittedMissingFromIsr {
        tick: u64,
        replica: i32,
        has: i64,
        committed: i64,
    },
    HighWatermarkDown {
        tick: u64,
        replica: i32,
        from: i64,
        to: i64,
    },
    LeaderOutsideIsr {
        tick: u64,
        leader: i32,
    },
    TwoLeadersInEpoch {
        tick: u64,
        epoch: i32,
        first: i32,
        second: i32,
    },
    NoConvergence {
        detail: String,
    },
}

/// A small deterministic generator (SplitMix64).
pub(super) struct Rng(pub(super) u64);

impl Rng {
    pub(super) fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    pub(super) fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    pub(super) fn per_mille(&mut self, chance: u64) -> bool {
        self.below(1000) < chance
    }
}

/// The controller's side of an AlterPartition refusal (the codes the real controller sends).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum IsrRefusal {
    StaleBrokerEpoch,
    NotLeader,
    FencedLeaderEpoch,
    InvalidUpdateVersion,
    IneligibleReplica,
}

#[derive(Clone, Debug)]
pub(super) enum Message {
    Fetch {
        from: i32,
        id: u64,
        current_leader_epoch: i32,
        fetch_offset: i64,
        last_fetched_epoch: i32,
    },
    FetchAnswer {
        from: i32,
        id: u64,
        answer: Answer,
        records: Vec<Entry>,
    },
    Produce {
        value: u64,
    },
    AlterIsr {
        from: i32,
        incarnation: u64,
        id: u64,
        leader_epoch: i32,
        partition_epoch: i32,
        isr: Vec<i32>,
    },
    AlterIsrAnswer {
        id: u64,
        refusal: Option<IsrRefusal>,
    },
}

/// The controller is node 0 on the simulated network.
pub(super) const CONTROLLER: i32 = 0;

pub(super) struct InFlight {
    pub(super) id: u64,
    pub(super) sent: u64,
    pub(super) at: FetchedAt,
}

/// An ISR change on its way to the controller.
#[derive(Clone, Debug)]
pub(super) struct Altering {
    pub(super) id: u64,
    pub(super) sent: u64,
    pub(super) isr: Vec<i32>,
    pub(super) leader_epoch: i32,
    pub(super) partition_epoch: i32,
}

pub(super) struct Replica {
    pub(super) id: i32,
    pub(super) up: bool,
    pub(super) incarnation: u64,
    /// The log as the process sees it; the first `written` records are in the file.
    pub(super) log: Vec<Entry>,
    pub(super) written: usize,
    /// When the records past `written` reach the file.
    pub(super) write_done: Option<u64>,
    pub(super) ledger: EpochLedger,
    pub(super) high_watermark: i64,
    pub(super) replicas: Replicas,
    /// The metadata version applied.
    pub(super) image_version: u64,
    /// One fetch at a time to each leader (a fetcher per leader broker).
    pub(super) in_flight: BTreeMap<i32, InFlight>,
    pub(super) next_fetch: u64,
    /// Produces waiting for the high watermark: (offset, value, leader epoch).
    pub(super) waiting: Vec<(i64, u64, i32)>,
    /// The AlterPartition awaiting its answer: (id, sent).
    pub(super) altering: Option<Altering>,
    pub(super) next_shrink_check: u64,
}

impl Replica {
    pub(super) fn log_end(&self) -> i64 {
        self.log.len() as i64
    }

    pub(super) fn written_end(&self) -> i64 {
        self.written as i64
    }

    pub(super) fn latest_epoch(&self) -> i32 {
        self.ledger.latest_epoch().unwrap_or(-1)
    }

    pub(super) fn end_for_epoch(&self, epoch: i32) -> (i32, i64) {
        self.ledger.end_offset_for(epoch, self.log_end())
    }

    pub(super) fn truncate(&mut self, offset: i64) {
        let offset = offset.max(0);
        if offset < self.log_end() {
            self.log.truncate(offset as usize);
            self.written = self.written.min(self.log.len());
        }
        if let Some(entries) = self.ledger.truncated_from_end(offset) {
            self.ledger.replace(entries);
        }
        self.high_watermark = self.high_watermark.min(self.log_end());
    }

    /// Appends records at `base` (a fetch answer's first offset), as `Log::append_replicated`
    /// does: offsets kept, a gap left if `base` is past the end; `false` if `base` is below it.
    pub(super) fn append_at(&mut self, base: i64, records: &[Entry]) -> bool {
        if base < self.log_end() {
            return false;
        }
        let Some(first) = records.first() else {
            return true;
        };
        while self.log_end() < base {
            self.log.push(Entry {
                epoch: first.epoch,
                value: HOLE,
            });
        }
        for entry in records {
            if let Some(entries) = self.ledger.assigned(entry.epoch, self.log_end()) {
                self.ledger.replace(entries);
            }
            self.log.push(*entry);
        }
        true
    }
}

pub(super) struct Controller {
    pub(super) leader: i32,
    pub(super) leader_epoch: i32,
    pub(super) partition_epoch: i32,
    pub(super) isr: Vec<i32>,
    pub(super) replicas: Vec<i32>,
    pub(super) fenced: BTreeSet<i32>,
    pub(super) incarnations: BTreeMap<i32, u64>,
    pub(super) last_heartbeat: BTreeMap<i32, u64>,
    pub(super) version: u64,
}

impl Controller {
    pub(super) fn image(&self) -> PartitionImage {
        PartitionImage {
            index: 0,
            leader: self.leader,
            leader_epoch: self.leader_epoch,
            partition_epoch: self.partition_epoch,
            replicas: self.replicas.clone(),
            isr: self.isr.clone(),
        }
    }

    pub(super) fn changed(&mut self) {
        self.partition_epoch += 1;
        self.version += 1;
    }

    /// A new leader from the live ISR members, first in replica order; -1 if none is live.
    pub(super) fn elect(&mut self) {
        let live = |id: &i32| !self.fenced.contains(id);
        let next = self
            .replicas
            .iter()
            .copied()
            .find(|id| self.isr.contains(id) && live(id));
        self.leader = next.unwrap_or(-1);
        self.leader_epoch += 1;
    }

    pub(super) fn fence(&mut self, id: i32) {
        if !self.fenced.insert(id) {
            return;
        }
        let before = (self.leader, self.isr.clone());
        if self.isr.len() > 1 {
            self.isr.retain(|member| *member != id);
        }
        if self.leader == id {
            self.elect();
        }
        if (self.leader, &self.isr) != (before.0, &before.1) {
            self.changed();
        }
    }

    pub(super) fn unfence(&mut self, id: i32) {
        if !self.fenced.remove(&id) {
            return;
        }
        if self.leader < 0 && self.isr.contains(&id) {
            self.elect();
            self.changed();
        }
    }

    pub(super) fn alter_isr(
        &mut self,
        from: i32,
        incarnation: u64,
        leader_epoch: i32,
        partition_epoch: i32,
        isr: &[i32],
    ) -> Option<IsrRefusal> {
        if self.incarnations.get(&from) != Some(&incarnation) || self.fenced.contains(&from) {
            return Some(IsrRefusal::StaleBrokerEpoch);
        }
        if self.leader != from {
            return Some(IsrRefusal::NotLeader);
        }
        if leader_epoch < self.leader_epoch {
            return Some(IsrRefusal::FencedLeaderEpoch);
        }
        if partition_epoch != self.partition_epoch {
            return Some(IsrRefusal::InvalidUpdateVersion);
        }
        let ineligible = isr.iter().any(|id| {
            !self.isr.contains(id) && (self.fenced.contains(id) || !self.replicas.contains(id))
        });
        if ineligible || !isr.contains(&from) {
            return Some(IsrRefusal::IneligibleReplica);
        }
        self.isr = isr.to_vec();
        self.changed();
        None
    }
}
