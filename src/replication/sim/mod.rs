//! Deterministic simulation of one replicated partition: 3-5 replicas running the real
//! `replication` state machines (`leader::Replicas`, `leader::check_position`,
//! `follower::on_answer`, `FetchedAt::still_applies`, `epochs::EpochLedger`) over a simulated
//! network that drops, delays, duplicates and cuts messages (the controller's links, being
//! request-response connections, keep their order and never duplicate), with a model
//! controller (Kafka's
//! KRaft rules for fencing, elections from the ISR and AlterPartition, as `controller::image`
//! applies them) and a simulated disk: a crash loses what a replica appended but had not yet
//! written to its file (a process crash keeps what reached the page cache, as for Kafka).
//! Everything comes from one seed; time is a counter of 1 ms ticks.
//!
//! Checked after every tick (`Violation` names the one broken):
//! - no acknowledged write is lost: every replica the controller may elect (the ISR) holds, in
//!   its written log, every record below any high watermark any replica has reported, and a
//!   replica taking leadership holds every acknowledged record;
//! - the records below a high watermark are the same on every replica (one committed log);
//! - a leader's high watermark never goes down while it leads in one epoch;
//! - the controller's leader is a member of the ISR;
//! - no two replicas append as leader in the same leader epoch.
//!
//! After the faults stop and the network heals, every replica must hold the leader's log and
//! every acknowledged record within a bounded number of ticks.

mod model;

use std::collections::{BTreeMap, BTreeSet};

use super::epochs::EpochLedger;
use super::follower::{self, Answer, FetchedAt, LocalLog, Refusal, Step};
use super::leader::{self, IsrChangeAnswer, Position, Replicas, Transition};
use model::{Altering, Controller, InFlight, IsrRefusal, Message, Replica, Rng, CONTROLLER};
pub use model::{Entry, Violation};

/// Known bugs the simulation can put back, to show it finds them.
#[derive(Clone, Copy, Debug, Default)]
pub struct Bugs {
    /// Report appended records in the next fetch before they are written to the file.
    pub report_unwritten: bool,
    /// Forget a pending ISR change on any refusal or a lost answer, though the controller
    /// may have made it (an earlier try's answer lost, the retry refused as stale).
    pub forget_pending_isr_on_failure: bool,
}

#[derive(Clone, Copy, Debug)]
pub struct SimConfig {
    pub replicas: usize,
    pub min_insync_replicas: usize,
    /// Ticks with faults and produces, then ticks for the healed cluster to converge.
    pub fault_ticks: u64,
    pub heal_ticks: u64,
    /// Per mille of messages dropped and duplicated.
    pub drop_per_mille: u64,
    pub duplicate_per_mille: u64,
    pub max_delay: u64,
    /// Per mille of messages delayed by up to `SLOW_DELAY` more.
    pub slow_per_mille: u64,
    /// Per mille per tick of a replica crashing, and of one being cut off from the others.
    pub crash_per_mille: u64,
    pub isolate_per_mille: u64,
    pub produce_per_mille: u64,
    pub bugs: Bugs,
    /// Keep a log of events (`Sim::events`), to explain a violation.
    pub trace: bool,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            replicas: 3,
            min_insync_replicas: 2,
            fault_ticks: 3_000,
            heal_ticks: 3_000,
            drop_per_mille: 50,
            duplicate_per_mille: 20,
            max_delay: 6,
            slow_per_mille: 20,
            crash_per_mille: 4,
            isolate_per_mille: 4,
            produce_per_mille: 400,
            bugs: Bugs::default(),
            trace: false,
        }
    }
}

/// `replica.lag.time.max.ms`, broker session timeout, `replica.fetch.backoff.ms`, how long a
/// fetch waits for its answer, and how long an AlterPartition waits, in ticks.
const LAG_MAX: i64 = 40;
const SESSION_TIMEOUT: u64 = 30;
const FETCH_BACKOFF: u64 = 10;
const FETCH_TIMEOUT: u64 = 25;
const ALTER_TIMEOUT: u64 = 10;
/// The extra delay of a slow message, at most (below `FETCH_TIMEOUT`, so a slow answer can
/// still be taken).
const SLOW_DELAY: u64 = 16;
/// Records per fetch answer at most.
const FETCH_MAX: usize = 8;

pub struct Sim {
    config: SimConfig,
    rng: Rng,
    now: u64,
    nodes: Vec<Replica>,
    controller: Controller,
    /// (deliver at, sequence, from, to, message).
    network: Vec<(u64, u64, i32, i32, Message)>,
    sequence: u64,
    /// Replicas cut off from everyone, and until when.
    isolated: BTreeMap<i32, u64>,
    /// Links cut (lower id first; the controller is 0), and until when.
    cut: BTreeMap<(i32, i32), u64>,
    /// The latest delivery time of a message on each direction of a controller link.
    controller_link_last: BTreeMap<(i32, i32), u64>,
    restart_at: BTreeMap<i32, u64>,
    next_value: u64,
    acknowledged: BTreeMap<i64, Entry>,
    /// The records below the highest high watermark seen: what every replica must agree on.
    committed: Vec<Entry>,
    epoch_leaders: BTreeMap<i32, i32>,
    /// Each replica's high watermark when it last led, and in which epoch.
    leader_marks: BTreeMap<i32, (i32, i64)>,
    pub stats: SimStats,
    /// With `trace`: what happened, tick by tick.
    pub events: Vec<String>,
    traced_version: u64,
}

#[derive(Debug, Default, Clone, Copy)]
pub struct SimStats {
    pub acknowledged: usize,
    pub crashes: usize,
    pub elections: usize,
    pub truncations: usize,
    pub late_answers_dropped: usize,
}

impl Sim {
    pub fn new(seed: u64, config: SimConfig) -> Sim {
        let ids: Vec<i32> = (1..=config.replicas as i32).collect();
        let nodes = ids
            .iter()
            .map(|id| Replica {
                id: *id,
                up: true,
                incarnation: 1,
                log: Vec::new(),
                written: 0,
                write_done: None,
                ledger: EpochLedger::default(),
                high_watermark: 0,
                replicas: Replicas::new(*id),
                image_version: 0,
                in_flight: BTreeMap::new(),
                next_fetch: 0,
                waiting: Vec::new(),
                altering: None,
                next_shrink_check: 0,
            })
            .collect();
        let controller = Controller {
            leader: ids[0],
            leader_epoch: 0,
            partition_epoch: 0,
            isr: ids.clone(),
            replicas: ids.clone(),
            fenced: BTreeSet::new(),
            incarnations: ids.iter().map(|id| (*id, 1)).collect(),
            last_heartbeat: ids.iter().map(|id| (*id, 0)).collect(),
            version: 1,
        };
        Sim {
            config,
            rng: Rng(seed),
            now: 0,
            nodes,
            controller,
            network: Vec::new(),
            sequence: 0,
            isolated: BTreeMap::new(),
            cut: BTreeMap::new(),
            controller_link_last: BTreeMap::new(),
            restart_at: BTreeMap::new(),
            next_value: 1,
            acknowledged: BTreeMap::new(),
            committed: Vec::new(),
            epoch_leaders: BTreeMap::new(),
            leader_marks: BTreeMap::new(),
            stats: SimStats::default(),
            events: Vec::new(),
            traced_version: 0,
        }
    }

    /// Runs the faults, heals, and checks convergence.
    pub fn run(mut self) -> Result<SimStats, Violation> {
        self.run_traced()
    }

    /// `run`, keeping the simulation (and its `events`) for a look afterwards.
    pub fn run_traced(&mut self) -> Result<SimStats, Violation> {
        for _ in 0..self.config.fault_ticks {
            self.faults();
            if self.rng.per_mille(self.config.produce_per_mille) {
                self.produce();
            }
            self.tick()?;
        }
        self.isolated.clear();
        self.cut.clear();
        let down: Vec<i32> = self.restart_at.keys().copied().collect();
        for id in down {
            self.restart(id);
        }
        let healthy = |sim: &Sim| sim.converged().is_ok();
        for _ in 0..self.config.heal_ticks {
            self.tick()?;
            if healthy(self) {
                return Ok(self.stats);
            }
        }
        self.converged().map(|()| self.stats)
    }

    fn note(&mut self, event: impl FnOnce(&Sim) -> String) {
        if self.config.trace {
            let text = event(self);
            self.events.push(format!("{:>6} {text}", self.now));
        }
    }

    fn node(&mut self, id: i32) -> &mut Replica {
        &mut self.nodes[(id - 1) as usize]
    }

    fn reachable(&self, a: i32, b: i32) -> bool {
        !self.isolated.contains_key(&a)
            && !self.isolated.contains_key(&b)
            && !self.cut.contains_key(&(a.min(b), a.max(b)))
    }

    /// Puts `message` on the network, maybe dropped, late or twice. The controller's link is
    /// a request-response connection (TCP, retried by the sender after a timeout): its
    /// messages may be dropped or late but arrive in the order sent and once.
    fn send(&mut self, from: i32, to: i32, message: Message) {
        if self.rng.per_mille(self.config.drop_per_mille) {
            return;
        }
        let controller_link = from == CONTROLLER || to == CONTROLLER;
        let twice = !controller_link && self.rng.per_mille(self.config.duplicate_per_mille);
        for _ in 0..1 + u64::from(twice) {
            let mut at = self.now + 1 + self.rng.below(self.config.max_delay);
            if self.rng.per_mille(self.config.slow_per_mille) {
                at += SLOW_DELAY / 4 + self.rng.below(SLOW_DELAY);
            }
            if controller_link {
                let last = self.controller_link_last.entry((from, to)).or_insert(0);
                at = at.max(*last);
                *last = at;
            }
            self.sequence += 1;
            self.network
                .push((at, self.sequence, from, to, message.clone()));
        }
    }

    fn faults(&mut self) {
        let now = self.now;
        self.isolated.retain(|_, until| *until > now);
        self.cut.retain(|_, until| *until > now);
        let due: Vec<i32> = self
            .restart_at
            .iter()
            .filter(|(_, at)| **at <= now)
            .map(|(id, _)| *id)
            .collect();
        for id in due {
            self.restart(id);
        }
        let count = self.nodes.len() as u64;
        if self.rng.per_mille(self.config.crash_per_mille) {
            let id = 1 + self.rng.below(count) as i32;
            if self.node(id).up {
                self.crash(id);
                let back = now + 20 + self.rng.below(200);
                self.restart_at.insert(id, back);
            }
        }
        if self.rng.per_mille(self.config.isolate_per_mille) {
            let id = 1 + self.rng.below(count) as i32;
            let until = now + 20 + self.rng.below(150);
            match self.rng.below(2) {
                0 => {
                    self.isolated.insert(id, until);
                    self.note(|_| format!("isolate {id} until {until}"));
                }
                _ => {
                    let other = self.rng.below(count + 1) as i32;
                    if other != id {
                        self.cut.insert((id.min(other), id.max(other)), until);
                        self.note(|_| format!("cut {id}-{other} until {until}"));
                    }
                }
            }
        }
    }

    fn crash(&mut self, id: i32) {
        self.stats.crashes += 1;
        self.note(|sim| {
            let node = &sim.nodes[(id - 1) as usize];
            format!(
                "crash {id}: log {} written {}",
                node.log.len(),
                node.written
            )
        });
        let node = self.node(id);
        node.up = false;
        node.log.truncate(node.written);
        node.write_done = None;
        node.in_flight.clear();
        node.waiting.clear();
        node.altering = None;
    }

    /// A restart: the log is what was written, the ledger is cut to it (as `Log::open`
    /// does), the replica knows no role until it reads the metadata, and it registers again.
    fn restart(&mut self, id: i32) {
        self.restart_at.remove(&id);
        let node = self.node(id);
        node.up = true;
        node.incarnation += 1;
        let end = node.log_end();
        if let Some(entries) = node.ledger.truncated_from_end(end) {
            node.ledger.replace(entries);
        }
        node.high_watermark = node.high_watermark.min(end);
        node.replicas = Replicas::new(id);
        node.image_version = 0;
        let incarnation = node.incarnation;
        self.controller.incarnations.insert(id, incarnation);
        self.controller.fence(id);
        self.controller.last_heartbeat.insert(id, self.now);
        self.note(|sim| {
            let node = &sim.nodes[(id - 1) as usize];
            format!(
                "restart {id}: log {} ledger {:?}",
                node.log.len(),
                node.ledger.entries()
            )
        });
    }

    fn produce(&mut self) {
        let leader = self.controller.leader;
        if leader < 0 {
            return;
        }
        let value = self.next_value;
        self.next_value += 1;
        self.send(-1, leader, Message::Produce { value });
    }

    fn tick(&mut self) -> Result<(), Violation> {
        self.now += 1;
        self.heartbeats();
        if self.config.trace && self.traced_version != self.controller.version {
            self.traced_version = self.controller.version;
            let image = self.controller.image();
            self.note(|_| format!("controller: {image:?}"));
        }
        self.deliver()?;
        let ids: Vec<i32> = self.nodes.iter().map(|node| node.id).collect();
        for id in ids {
            if !self.node(id).up {
                continue;
            }
            self.apply_metadata(id)?;
            self.finish_writes(id);
            self.lead(id)?;
            self.follow(id);
        }
        self.check()
    }

    /// Live, reachable replicas heartbeat; the controller fences a silent one and unfences a
    /// registered one that heartbeats.
    fn heartbeats(&mut self) {
        let ids: Vec<i32> = self.nodes.iter().map(|node| node.id).collect();
        for id in ids {
            let up = self.node(id).up;
            if up
                && self.reachable(id, CONTROLLER)
                && !self.rng.per_mille(self.config.drop_per_mille)
            {
                self.controller.last_heartbeat.insert(id, self.now);
                self.controller.unfence(id);
            }
            let last = self
                .controller
                .last_heartbeat
                .get(&id)
                .copied()
                .unwrap_or(0);
            if self.now.saturating_sub(last) > SESSION_TIMEOUT {
                self.controller.fence(id);
            }
        }
        if !self.controller.isr.contains(&self.controller.leader) && self.controller.leader >= 0 {
            self.controller.elect();
            self.controller.changed();
        }
    }

    /// A reachable replica catches up with the metadata now and then (it fetches the log).
    fn apply_metadata(&mut self, id: i32) -> Result<(), Violation> {
        let version = self.controller.version;
        if self.node(id).image_version == version
            || !self.reachable(id, CONTROLLER)
            || self.rng.per_mille(300)
        {
            return Ok(());
        }
        let image = self.controller.image();
        let now = self.now as i64;
        let node = self.node(id);
        node.image_version = version;
        let transition = node.replicas.adopt(&image, now);
        let (log_end, hw) = (node.log_end(), node.high_watermark);
        self.note(|_| format!("{id} adopts {image:?}: {transition:?}, log {log_end} hw {hw}"));
        let node = self.node(id);
        if transition == Transition::BecameLeader {
            let end = node.log_end();
            if let Some(entries) = node.ledger.assigned(image.leader_epoch, end) {
                node.ledger.replace(entries);
            }
            self.stats.elections += 1;
            let node = &self.nodes[(id - 1) as usize];
            for (offset, entry) in &self.acknowledged {
                if node.log.get(*offset as usize) != Some(entry) {
                    return Err(Violation::AcknowledgedLost {
                        tick: self.now,
                        offset: *offset,
                        replica: id,
                    });
                }
            }
        }
        if transition != Transition::Unchanged {
            self.node(id).waiting.clear();
        }
        self.advance_high_watermark(id);
        Ok(())
    }

    fn finish_writes(&mut self, id: i32) {
        let now = self.now;
        let node = self.node(id);
        if node.write_done.is_some_and(|at| at <= now) {
            node.write_done = None;
            node.written = node.log.len();
        }
        if node.written < node.log.len() && node.write_done.is_none() {
            let delay = 1 + self.rng.below(3);
            self.node(id).write_done = Some(now + delay);
        }
        self.advance_high_watermark(id);
    }

    fn advance_high_watermark(&mut self, id: i32) {
        let node = self.node(id);
        if !node.replicas.is_leader() {
            return;
        }
        if let Some(candidate) = node.replicas.high_watermark(node.written_end()) {
            node.high_watermark = node.high_watermark.max(candidate);
        }
    }

    /// A leader answers waiting produces and asks for lagging followers to leave the ISR.
    fn lead(&mut self, id: i32) -> Result<(), Violation> {
        let now = self.now;
        let min_insync = self.config.min_insync_replicas;
        let node = self.node(id);
        if !node.replicas.is_leader() {
            return Ok(());
        }
        let (epoch, hw) = (node.replicas.leader_epoch, node.high_watermark);
        let isr_len = node.replicas.isr.len();
        let mut acked = Vec::new();
        node.waiting.retain(|(offset, value, leader_epoch)| {
            if *leader_epoch != epoch {
                return false;
            }
            if hw > *offset {
                if isr_len >= min_insync {
                    acked.push((
                        *offset,
                        Entry {
                            epoch,
                            value: *value,
                        },
                    ));
                }
                return false;
            }
            true
        });
        let shrink = match node.next_shrink_check <= now && node.altering.is_none() {
            true => {
                node.next_shrink_check = now + (LAG_MAX / 2) as u64;
                let isr = node.replicas.shrink(node.log_end(), LAG_MAX, now as i64);
                if let Some(isr) = &isr {
                    node.replicas.set_pending(isr.clone());
                }
                isr
            }
            false => None,
        };
        for (offset, entry) in acked {
            self.stats.acknowledged += 1;
            self.acknowledged.insert(offset, entry);
        }
        if let Some(isr) = shrink {
            self.alter_isr(id, isr);
        }
        let timed_out = self
            .node(id)
            .altering
            .as_ref()
            .is_some_and(|altering| altering.sent + ALTER_TIMEOUT <= now);
        if timed_out {
            self.isr_change_answered(id, IsrChangeAnswer::Unknown);
        }
        Ok(())
    }

    /// `Shard::alter_isr` with the controller's answer to the change on its way: asks again
    /// when told to.
    fn isr_change_answered(&mut self, id: i32, answer: IsrChangeAnswer) {
        let forget = self.config.bugs.forget_pending_isr_on_failure;
        let node = self.node(id);
        let Some(altering) = node.altering.take() else {
            return;
        };
        if forget && answer != IsrChangeAnswer::Made {
            node.replicas.clear_pending();
            return;
        }
        let again = node.replicas.isr_change_answered(
            &altering.isr,
            altering.leader_epoch,
            altering.partition_epoch,
            answer,
        );
        if again {
            self.send_isr_change(
                id,
                altering.isr,
                altering.leader_epoch,
                altering.partition_epoch,
            );
        }
    }

    fn alter_isr(&mut self, id: i32, isr: Vec<i32>) {
        let node = self.node(id);
        let (leader_epoch, partition_epoch) =
            (node.replicas.leader_epoch, node.replicas.partition_epoch);
        self.send_isr_change(id, isr, leader_epoch, partition_epoch);
    }

    fn send_isr_change(&mut self, id: i32, isr: Vec<i32>, leader_epoch: i32, partition_epoch: i32) {
        self.sequence += 1;
        let request_id = self.sequence;
        let now = self.now;
        let node = self.node(id);
        node.altering = Some(Altering {
            id: request_id,
            sent: now,
            isr: isr.clone(),
            leader_epoch,
            partition_epoch,
        });
        let message = Message::AlterIsr {
            from: id,
            incarnation: node.incarnation,
            id: request_id,
            leader_epoch,
            partition_epoch,
            isr,
        };
        self.send(id, CONTROLLER, message);
    }

    /// A follower sends a fetch to its leader unless one is on its way, or it is backing off,
    /// or (unless the bug says otherwise) it is still writing what the last answer brought.
    fn follow(&mut self, id: i32) {
        let now = self.now;
        let report_unwritten = self.config.bugs.report_unwritten;
        let node = self.node(id);
        node.in_flight
            .retain(|_, flight| flight.sent + FETCH_TIMEOUT > now);
        let leader = match node.replicas.role() {
            leader::Role::Follower { leader } if leader > 0 => leader,
            _ => return,
        };
        let writing = node.written < node.log.len() && !report_unwritten;
        if node.in_flight.contains_key(&leader) || node.next_fetch > now || writing {
            return;
        }
        let at = FetchedAt {
            leader_epoch: node.replicas.leader_epoch,
            fetch_offset: node.log_end(),
        };
        let last_fetched_epoch = node.latest_epoch();
        self.sequence += 1;
        let fetch_id = self.sequence;
        let flight = InFlight {
            id: fetch_id,
            sent: now,
            at,
        };
        self.node(id).in_flight.insert(leader, flight);
        let message = Message::Fetch {
            from: id,
            id: fetch_id,
            current_leader_epoch: at.leader_epoch,
            fetch_offset: at.fetch_offset,
            last_fetched_epoch,
        };
        self.send(id, leader, message);
    }

    fn deliver(&mut self) -> Result<(), Violation> {
        let now = self.now;
        let mut due: Vec<(u64, u64, i32, i32, Message)> = Vec::new();
        let mut kept = Vec::with_capacity(self.network.len());
        for message in self.network.drain(..) {
            match message.0 <= now {
                true => due.push(message),
                false => kept.push(message),
            }
        }
        self.network = kept;
        due.sort_by_key(|(at, sequence, ..)| (*at, *sequence));
        for (_, _, from, to, message) in due {
            if !self.reachable(from, to) {
                continue;
            }
            if to == CONTROLLER {
                self.controller_receives(message);
                continue;
            }
            if !self.node(to).up {
                continue;
            }
            match message {
                Message::Produce { value } => self.leader_appends(to, value)?,
                Message::Fetch {
                    from,
                    id,
                    current_leader_epoch,
                    fetch_offset,
                    last_fetched_epoch,
                } => self.leader_answers(
                    to,
                    from,
                    id,
                    current_leader_epoch,
                    fetch_offset,
                    last_fetched_epoch,
                ),
                Message::FetchAnswer {
                    from,
                    id,
                    answer,
                    records,
                } => self.follower_applies(to, from, id, answer, records),
                Message::AlterIsrAnswer { id, refusal } => {
                    let current = self.node(to).altering.as_ref().map(|altering| altering.id);
                    if current == Some(id) {
                        let answer = match refusal {
                            None => IsrChangeAnswer::Made,
                            Some(IsrRefusal::IneligibleReplica) => IsrChangeAnswer::NotMade,
                            Some(_) => IsrChangeAnswer::Stale,
                        };
                        self.isr_change_answered(to, answer);
                    }
                }
                Message::AlterIsr { .. } => {}
            }
        }
        Ok(())
    }

    fn controller_receives(&mut self, message: Message) {
        if let Message::AlterIsr {
            from,
            incarnation,
            id,
            leader_epoch,
            partition_epoch,
            isr,
        } = message
        {
            let refusal =
                self.controller
                    .alter_isr(from, incarnation, leader_epoch, partition_epoch, &isr);
            self.send(CONTROLLER, from, Message::AlterIsrAnswer { id, refusal });
        }
    }

    fn leader_appends(&mut self, id: i32, value: u64) -> Result<(), Violation> {
        let min_insync = self.config.min_insync_replicas;
        let node = self.node(id);
        if !node.replicas.is_leader() || node.replicas.isr.len() < min_insync {
            return Ok(());
        }
        let epoch = node.replicas.leader_epoch;
        let offset = node.log_end();
        node.log.push(Entry { epoch, value });
        node.waiting.push((offset, value, epoch));
        match self.epoch_leaders.get(&epoch) {
            Some(first) if *first != id => Err(Violation::TwoLeadersInEpoch {
                tick: self.now,
                epoch,
                first: *first,
                second: id,
            }),
            _ => {
                self.epoch_leaders.insert(epoch, id);
                Ok(())
            }
        }
    }

    /// `Shard::fetch` and `Partition::read_for_follower` on the leader.
    fn leader_answers(
        &mut self,
        id: i32,
        follower: i32,
        fetch_id: u64,
        current_leader_epoch: i32,
        fetch_offset: i64,
        last_fetched_epoch: i32,
    ) {
        let now = self.now as i64;
        let node = self.node(id);
        let current = node.replicas.leader_epoch;
        let mut answer = Answer {
            refusal: None,
            high_watermark: node.high_watermark,
            log_start_offset: 0,
            diverging: None,
        };
        let refusal = if current_leader_epoch < current {
            Some(Refusal::Other)
        } else if current_leader_epoch > current {
            Some(Refusal::Settling)
        } else if !node.replicas.is_leader() {
            Some(Refusal::Other)
        } else {
            None
        };
        let mut records = Vec::new();
        let mut wanted = None;
        if refusal.is_none() {
            let log_end = node.log_end();
            match leader::check_position(fetch_offset, last_fetched_epoch, 0, log_end, |epoch| {
                node.end_for_epoch(epoch)
            }) {
                Position::Diverging { epoch, end_offset } => {
                    answer.diverging = Some((epoch, end_offset));
                }
                Position::OutOfRange => answer.refusal = Some(Refusal::OffsetOutOfRange),
                Position::Read => {
                    node.replicas
                        .record_fetch(follower, fetch_offset, log_end, now);
                    self.advance_high_watermark(id);
                    let node = self.node(id);
                    let epoch_start = node.end_for_epoch(node.replicas.leader_epoch - 1).1.max(0);
                    let hw = node.high_watermark;
                    wanted = node.replicas.expand_if_due(follower, hw, epoch_start);
                    self.advance_high_watermark(id);
                    let node = self.node(id);
                    let end = (fetch_offset as usize + FETCH_MAX).min(node.log.len());
                    records = node.log[fetch_offset as usize..end].to_vec();
                    answer.high_watermark = node.high_watermark;
                }
            }
        } else {
            answer.refusal = refusal;
        }
        if let Some(isr) = wanted {
            self.alter_isr(id, isr);
        }
        let message = Message::FetchAnswer {
            from: id,
            id: fetch_id,
            answer,
            records,
        };
        self.send(id, follower, message);
    }

    /// `runtime::fetcher::apply` and the `Partition` calls it makes.
    fn follower_applies(
        &mut self,
        id: i32,
        leader: i32,
        fetch_id: u64,
        answer: Answer,
        records: Vec<Entry>,
    ) {
        let now = self.now;
        let stats = &mut self.stats;
        let node = &mut self.nodes[(id - 1) as usize];
        let Some(flight) = node
            .in_flight
            .get(&leader)
            .filter(|flight| flight.id == fetch_id)
        else {
            return;
        };
        let at = flight.at;
        node.in_flight.remove(&leader);
        let local = LocalLog {
            log_start: 0,
            log_end: node.log_end(),
            high_watermark: node.high_watermark,
        };
        let step = follower::on_answer(&answer, local, |epoch| node.end_for_epoch(epoch));
        let current = at.still_applies(
            node.replicas.is_leader(),
            node.replicas.leader_epoch,
            node.log_end(),
        );
        if !current {
            if step != Step::Retry(follower::Pause::Backoff) {
                stats.late_answers_dropped += 1;
            }
            return;
        }
        let before = (node.log_end(), node.high_watermark);
        match step {
            Step::Retry(_) => node.next_fetch = now + FETCH_BACKOFF,
            Step::RestartAt(offset) | Step::TruncateTo(offset) => {
                stats.truncations += 1;
                node.truncate(offset);
            }
            Step::Append => {
                if node.append_at(at.fetch_offset, &records) {
                    node.high_watermark = follower::follower_high_watermark(
                        node.high_watermark,
                        answer.high_watermark,
                        node.log_end(),
                    );
                }
            }
        }
        let after = (node.log_end(), node.high_watermark);
        let count = records.len();
        self.note(|_| {
            format!("{id} from {leader} at {at:?}: {answer:?} {count} records, {step:?}: (end, hw) {before:?} -> {after:?}")
        });
    }

    fn check(&mut self) -> Result<(), Violation> {
        let tick = self.now;
        let controller = &self.controller;
        if controller.leader >= 0 && !controller.isr.contains(&controller.leader) {
            return Err(Violation::LeaderOutsideIsr {
                tick,
                leader: controller.leader,
            });
        }
        for node in &self.nodes {
            let hw = node.high_watermark.min(node.log_end()) as usize;
            for offset in 0..hw {
                let entry = node.log[offset];
                match self.committed.get(offset) {
                    Some(committed) if *committed != entry => {
                        return Err(Violation::CommittedDiffers {
                            tick,
                            offset: offset as i64,
                            replica: node.id,
                        })
                    }
                    Some(_) => {}
                    None => self.committed.push(entry),
                }
            }
            if node.up && node.replicas.is_leader() {
                let epoch = node.replicas.leader_epoch;
                if let Some((led, mark)) = self.leader_marks.get(&node.id) {
                    if *led == epoch && *mark > node.high_watermark {
                        return Err(Violation::HighWatermarkDown {
                            tick,
                            replica: node.id,
                            from: *mark,
                            to: node.high_watermark,
                        });
                    }
                }
                self.leader_marks
                    .insert(node.id, (epoch, node.high_watermark));
            }
        }
        for member in &self.controller.isr {
            let node = &self.nodes[(member - 1) as usize];
            let written = &node.log[..node.written];
            let agrees = written.len() >= self.committed.len()
                && written[..self.committed.len()] == self.committed[..];
            if !agrees {
                return Err(Violation::CommittedMissingFromIsr {
                    tick,
                    replica: *member,
                    has: written.len() as i64,
                    committed: self.committed.len() as i64,
                });
            }
        }
        Ok(())
    }

    /// Every replica holds the leader's whole log, with every acknowledged record, and the
    /// high watermark covers it.
    fn converged(&self) -> Result<(), Violation> {
        let leader = self.controller.leader;
        let fail = |detail: String| Err(Violation::NoConvergence { detail });
        if leader < 0 {
            return fail("no leader".into());
        }
        let reference = &self.nodes[(leader - 1) as usize];
        for node in &self.nodes {
            if node.log != reference.log || node.written != node.log.len() {
                return fail(format!(
                    "replica {} has {} records ({} written), leader {leader} {}",
                    node.id,
                    node.log.len(),
                    node.written,
                    reference.log.len()
                ));
            }
        }
        if reference.high_watermark != reference.log_end() {
            return fail(format!(
                "high watermark {} of {}",
                reference.high_watermark,
                reference.log_end()
            ));
        }
        for (offset, entry) in &self.acknowledged {
            if reference.log.get(*offset as usize) != Some(entry) {
                return Err(Violation::AcknowledgedLost {
                    tick: self.now,
                    offset: *offset,
                    replica: leader,
                });
            }
        }
        Ok(())
    }
}
