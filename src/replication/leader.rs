//! A partition's leader side of replication: its place in the cluster (leader, epochs, ISR,
//! from the metadata image), each follower's log end as its fetches report it, and the ISR
//! change it has asked the controller for. From these it derives the high watermark, which ISR
//! changes are due, and whether a follower's fetch position is on the leader's log at all
//! (`check_position`). Pure bookkeeping: no I/O, no clock of its own (callers pass `now_ms`).
//!
//! Invariants (Kafka's): the high watermark is the smallest log end among the in-sync replicas,
//! counting a pending change's replicas too (the "maximal ISR"): while an expansion waits for
//! the controller, the joining replica already holds back the high watermark, because the
//! controller may commit it into the ISR, and then elect it, before this leader hears of it.
//! A follower whose log end the leader has not heard since it became leader holds the high
//! watermark back until it fetches.

use std::collections::BTreeMap;

use crate::metadata::PartitionImage;

/// Where a follower's fetch stands against the leader's log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Position {
    /// On the leader's log: read from the fetch offset.
    Read,
    /// The follower's last epoch ends earlier in the leader's log (or is not there): answer
    /// with the largest epoch both may share and where it ends here, and no records.
    Diverging { epoch: i32, end_offset: i64 },
    /// Below the leader's log start or past its end (OFFSET_OUT_OF_RANGE).
    OutOfRange,
}

/// Kafka's check of a follower's fetch (`fetch_offset`, `last_fetched_epoch`: -1 when it does
/// not say) against a leader log from `log_start` to `log_end`; `end_for_epoch` answers
/// OffsetsForLeaderEpoch from the leader's epoch ledger.
pub fn check_position(
    fetch_offset: i64,
    last_fetched_epoch: i32,
    log_start: i64,
    log_end: i64,
    end_for_epoch: impl Fn(i32) -> (i32, i64),
) -> Position {
    if last_fetched_epoch >= 0 {
        let (epoch, end) = end_for_epoch(last_fetched_epoch);
        if epoch != last_fetched_epoch || end < fetch_offset {
            return Position::Diverging {
                epoch,
                end_offset: end,
            };
        }
    }
    if fetch_offset > log_end || fetch_offset < log_start {
        return Position::OutOfRange;
    }
    Position::Read
}

/// The controller's answer to a leader's ISR change (AlterPartition), as far as the pending
/// change goes (Kafka's `Partition.handleAlterPartitionError`). A change whose fate is not
/// known must keep counting towards the high watermark: the controller may have made it, and
/// may elect the new member.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IsrChangeAnswer {
    /// Made: the image bringing it ends the pending change.
    Made,
    /// Refused against the current partition epoch, so not made (INELIGIBLE_REPLICA,
    /// INVALID_REQUEST): forgotten, to be worked out again.
    NotMade,
    /// The leader's view is behind the controller's (FENCED_LEADER_EPOCH,
    /// INVALID_UPDATE_VERSION, NOT_LEADER_OR_FOLLOWER, STALE_BROKER_EPOCH, unknown
    /// partition): an earlier try may have made it; it stays pending until a newer image.
    Stale,
    /// No answer (timeout, lost connection, no controller): it stays pending and is asked
    /// again.
    Unknown,
}

/// What one follower's fetches have told the leader.
#[derive(Clone, Copy, Debug)]
struct Follower {
    /// The offset of its last fetch: everything below is in its log. `None` until it fetches.
    log_end: Option<i64>,
    /// When it last had every record the leader had (Kafka's lastCaughtUpTimeMs).
    last_caught_up_ms: i64,
    last_fetch_ms: i64,
    /// The leader's log end when that fetch came.
    leader_end_at_last_fetch: i64,
}

/// A replica's role as the last image said.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    Leader,
    /// Following `leader` (-1: the partition has no leader now).
    Follower {
        leader: i32,
    },
}

/// How adopting an image changed this replica's role.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transition {
    /// Same role, same leader epoch (the ISR or partition epoch may have changed).
    Unchanged,
    BecameLeader,
    BecameFollower,
}

#[derive(Debug)]
pub struct Replicas {
    node_id: i32,
    pub leader: i32,
    pub leader_epoch: i32,
    pub partition_epoch: i32,
    pub replicas: Vec<i32>,
    pub isr: Vec<i32>,
    /// The ISR asked of the controller and not yet seen in an image.
    pending_isr: Option<Vec<i32>>,
    followers: BTreeMap<i32, Follower>,
}

impl Replicas {
    /// A replica that knows nothing yet: it leads nothing until an image says so.
    pub fn new(node_id: i32) -> Replicas {
        Replicas {
            node_id,
            leader: -1,
            leader_epoch: -1,
            partition_epoch: -1,
            replicas: Vec::new(),
            isr: Vec::new(),
            pending_isr: None,
            followers: BTreeMap::new(),
        }
    }

    pub fn role(&self) -> Role {
        match self.leader == self.node_id {
            true => Role::Leader,
            false => Role::Follower {
                leader: self.leader,
            },
        }
    }

    pub fn is_leader(&self) -> bool {
        self.role() == Role::Leader
    }

    /// Adopts the partition's state from an image. A new leadership forgets what followers
    /// said before and gives each a whole `replica.lag.time.max.ms` from `now_ms`.
    pub fn adopt(&mut self, image: &PartitionImage, now_ms: i64) -> Transition {
        let was_leader = self.is_leader();
        let new_epoch = image.leader_epoch != self.leader_epoch;
        if image.partition_epoch != self.partition_epoch {
            self.pending_isr = None;
        }
        self.leader = image.leader;
        self.leader_epoch = image.leader_epoch;
        self.partition_epoch = image.partition_epoch;
        self.replicas = image.replicas.clone();
        self.isr = image.isr.clone();
        let is_leader = self.is_leader();
        if is_leader && (new_epoch || !was_leader) {
            self.followers = self
                .replicas
                .iter()
                .filter(|replica| **replica != self.node_id)
                .map(|replica| {
                    let follower = Follower {
                        log_end: None,
                        last_caught_up_ms: now_ms,
                        last_fetch_ms: now_ms,
                        leader_end_at_last_fetch: -1,
                    };
                    (*replica, follower)
                })
                .collect();
            self.pending_isr = None;
            return Transition::BecameLeader;
        }
        if !is_leader && (was_leader || new_epoch) {
            self.followers.clear();
            self.pending_isr = None;
            return Transition::BecameFollower;
        }
        Transition::Unchanged
    }

    /// Records a follower's fetch from `fetch_offset` when the leader's log ends at
    /// `leader_end` (Kafka's rule for when a follower counts as caught up).
    pub fn record_fetch(&mut self, replica: i32, fetch_offset: i64, leader_end: i64, now_ms: i64) {
        let Some(follower) = self.followers.get_mut(&replica) else {
            return;
        };
        if fetch_offset >= leader_end {
            follower.last_caught_up_ms = follower.last_caught_up_ms.max(now_ms);
        } else if fetch_offset >= follower.leader_end_at_last_fetch {
            follower.last_caught_up_ms = follower.last_caught_up_ms.max(follower.last_fetch_ms);
        }
        follower.log_end = Some(fetch_offset);
        follower.leader_end_at_last_fetch = leader_end;
        follower.last_fetch_ms = now_ms;
    }

    /// The replicas that count for the high watermark: the ISR and a pending change's.
    fn maximal_isr(&self) -> impl Iterator<Item = i32> + '_ {
        let pending = self.pending_isr.iter().flatten();
        self.isr
            .iter()
            .chain(pending.filter(|replica| !self.isr.contains(replica)))
            .copied()
    }

    /// The smallest log end among the maximal ISR, the leader's being `leader_end`; `None`
    /// while a member has not fetched since this leadership began.
    pub fn high_watermark(&self, leader_end: i64) -> Option<i64> {
        let mut lowest = leader_end;
        for replica in self.maximal_isr() {
            if replica == self.node_id {
                continue;
            }
            let end = self
                .followers
                .get(&replica)
                .and_then(|follower| follower.log_end)?;
            lowest = lowest.min(end);
        }
        Some(lowest)
    }

    /// The ISR with `replica` added, when it has caught up enough to join (Kafka: its log end
    /// reaches the high watermark and the start of the current leader epoch) and no change is
    /// pending.
    pub fn expansion(
        &self,
        replica: i32,
        high_watermark: i64,
        epoch_start: i64,
    ) -> Option<Vec<i32>> {
        if !self.is_leader() || self.pending_isr.is_some() || self.isr.contains(&replica) {
            return None;
        }
        let end = self.followers.get(&replica)?.log_end?;
        if end < high_watermark || end < epoch_start {
            return None;
        }
        let mut isr = self.isr.clone();
        isr.push(replica);
        Some(isr)
    }

    /// The ISR without the followers that have not caught up for `lag_max_ms`, when there are
    /// any and no change is pending.
    pub fn shrink(&self, leader_end: i64, lag_max_ms: i64, now_ms: i64) -> Option<Vec<i32>> {
        if !self.is_leader() || self.pending_isr.is_some() {
            return None;
        }
        let lagging = |replica: &i32| {
            *replica != self.node_id
                && self.followers.get(replica).is_some_and(|follower| {
                    follower.log_end != Some(leader_end)
                        && now_ms.saturating_sub(follower.last_caught_up_ms) > lag_max_ms
                })
        };
        if !self.isr.iter().any(lagging) {
            return None;
        }
        Some(
            self.isr
                .iter()
                .copied()
                .filter(|replica| !lagging(replica))
                .collect(),
        )
    }

    /// The expansion due for `replica` once the high watermark is `high_watermark` and the
    /// leader epoch started at `epoch_start`, made pending (so the high watermark counts it).
    pub fn expand_if_due(
        &mut self,
        replica: i32,
        high_watermark: i64,
        epoch_start: i64,
    ) -> Option<Vec<i32>> {
        let isr = self.expansion(replica, high_watermark, epoch_start)?;
        self.set_pending(isr.clone());
        Some(isr)
    }

    pub fn set_pending(&mut self, isr: Vec<i32>) {
        self.pending_isr = Some(isr);
    }

    /// The controller refused or lost the pending change: it may be worked out again.
    pub fn clear_pending(&mut self) {
        self.pending_isr = None;
    }

    /// The ISR change asked of the controller and not yet seen in an image.
    pub fn pending(&self) -> Option<&[i32]> {
        self.pending_isr.as_deref()
    }

    /// Takes the controller's answer to the pending change `isr` (asked at `leader_epoch` and
    /// `partition_epoch`); returns whether to ask again (an unknown outcome of a change still
    /// pending as asked).
    pub fn isr_change_answered(
        &mut self,
        isr: &[i32],
        leader_epoch: i32,
        partition_epoch: i32,
        answer: IsrChangeAnswer,
    ) -> bool {
        let still_pending = self.pending() == Some(isr)
            && self.leader_epoch == leader_epoch
            && self.partition_epoch == partition_epoch
            && self.is_leader();
        match answer {
            IsrChangeAnswer::NotMade if still_pending => {
                self.clear_pending();
                false
            }
            IsrChangeAnswer::Unknown => still_pending,
            _ => false,
        }
    }

    /// (replica, log end or -1, last caught up ms) of each follower, for DescribeQuorum-like
    /// reports and logs.
    pub fn follower_ends(&self) -> Vec<(i32, i64)> {
        self.followers
            .iter()
            .map(|(replica, follower)| (*replica, follower.log_end.unwrap_or(-1)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(leader: i32, leader_epoch: i32, partition_epoch: i32, isr: &[i32]) -> PartitionImage {
        PartitionImage {
            index: 0,
            leader,
            leader_epoch,
            partition_epoch,
            replicas: vec![1, 2, 3],
            isr: isr.to_vec(),
        }
    }

    /// Proves the high watermark waits for every in-sync follower to fetch, follows the
    /// slowest, and counts a replica whose expansion is pending.
    #[test]
    fn high_watermark_is_the_slowest_in_sync_end() {
        let mut replicas = Replicas::new(1);
        assert_eq!(
            replicas.adopt(&image(1, 0, 0, &[1, 2]), 0),
            Transition::BecameLeader
        );
        assert_eq!(replicas.high_watermark(10), None, "2 has not fetched yet");
        replicas.record_fetch(2, 7, 10, 5);
        assert_eq!(replicas.high_watermark(10), Some(7));
        replicas.record_fetch(3, 4, 10, 5);
        assert_eq!(replicas.high_watermark(10), Some(7), "3 is not in the ISR");
        replicas.set_pending(vec![1, 2, 3]);
        assert_eq!(replicas.high_watermark(10), Some(4), "pending 3 counts");
        replicas.adopt(&image(1, 0, 1, &[1, 2, 3]), 6);
        assert_eq!(replicas.high_watermark(10), Some(4));
        replicas.record_fetch(2, 10, 10, 7);
        replicas.record_fetch(3, 10, 10, 7);
        assert_eq!(replicas.high_watermark(10), Some(10));
    }

    /// Proves Kafka's ISR rules: a follower joins once it reaches the high watermark and the
    /// leader epoch's start; one that has not caught up for the lag limit leaves; nothing is
    /// proposed while a change is pending.
    #[test]
    fn isr_expands_on_catch_up_and_shrinks_on_lag() {
        let mut replicas = Replicas::new(1);
        replicas.adopt(&image(1, 3, 0, &[1, 2]), 0);
        replicas.record_fetch(3, 5, 20, 10);
        assert_eq!(
            replicas.expansion(3, 8, 0),
            None,
            "below the high watermark"
        );
        replicas.record_fetch(3, 8, 20, 20);
        assert_eq!(replicas.expansion(3, 8, 9), None, "below the epoch start");
        assert_eq!(replicas.expansion(3, 8, 8), Some(vec![1, 2, 3]));
        replicas.set_pending(vec![1, 2, 3]);
        assert_eq!(replicas.expansion(3, 8, 8), None, "pending");
        replicas.adopt(&image(1, 3, 1, &[1, 2, 3]), 30);
        // 2 fetched at the leader's end at 100 and then stopped; 3 keeps up.
        replicas.record_fetch(2, 20, 20, 100);
        replicas.record_fetch(3, 20, 20, 100);
        assert_eq!(replicas.shrink(25, 1000, 1000), None, "within the limit");
        replicas.record_fetch(3, 25, 25, 1150);
        assert_eq!(replicas.shrink(25, 1000, 1200), Some(vec![1, 3]));
        assert_eq!(
            replicas.shrink(20, 1000, 1200),
            None,
            "2 has the leader's end"
        );
    }

    /// Proves Kafka's handling of AlterPartition answers: only a refusal against the current
    /// version forgets the pending change; a stale one keeps it for the next image; an unknown
    /// outcome keeps it and asks again; an answer to an older change changes nothing.
    #[test]
    fn pending_isr_change_is_forgotten_only_when_surely_not_made() {
        let mut replicas = Replicas::new(1);
        replicas.adopt(&image(1, 2, 5, &[1, 2]), 0);
        replicas.set_pending(vec![1, 2, 3]);
        let asked = [1, 2, 3];
        assert!(replicas.isr_change_answered(&asked, 2, 5, IsrChangeAnswer::Unknown));
        assert!(!replicas.isr_change_answered(&asked, 2, 5, IsrChangeAnswer::Stale));
        assert!(!replicas.isr_change_answered(&asked, 2, 5, IsrChangeAnswer::Made));
        assert_eq!(replicas.pending(), Some(&asked[..]));
        assert!(!replicas.isr_change_answered(&asked, 2, 4, IsrChangeAnswer::NotMade));
        assert_eq!(
            replicas.pending(),
            Some(&asked[..]),
            "an older change's answer"
        );
        assert!(!replicas.isr_change_answered(&asked, 2, 5, IsrChangeAnswer::NotMade));
        assert_eq!(replicas.pending(), None);
        assert!(!replicas.isr_change_answered(&asked, 2, 5, IsrChangeAnswer::Unknown));
    }

    /// Proves role transitions: a new leader epoch is a new leadership (followers forgotten),
    /// losing it makes a follower, and an ISR-only change is no transition.
    #[test]
    fn transitions_follow_the_image() {
        let mut replicas = Replicas::new(2);
        assert_eq!(
            replicas.adopt(&image(1, 0, 0, &[1, 2]), 0),
            Transition::BecameFollower
        );
        assert_eq!(replicas.role(), Role::Follower { leader: 1 });
        assert_eq!(
            replicas.adopt(&image(1, 0, 1, &[1]), 0),
            Transition::Unchanged
        );
        assert_eq!(
            replicas.adopt(&image(2, 1, 2, &[2]), 0),
            Transition::BecameLeader
        );
        assert_eq!(replicas.high_watermark(3), Some(3), "alone in the ISR");
        assert_eq!(
            replicas.adopt(&image(-1, 2, 3, &[2]), 0),
            Transition::BecameFollower
        );
        assert_eq!(replicas.role(), Role::Follower { leader: -1 });
    }
}
