//! A follower's side of replication as pure decisions: what one partition's fetch answer from
//! its leader means for the local log (append, truncate a diverged suffix, restart the log at
//! the leader's start, or retry later), whether an answer still applies when it arrives, and
//! when a partition that failed may be fetched again. The fetcher (`runtime::fetcher`) does the
//! I/O these decisions ask for; the simulation (`replication::sim`) drives them directly.

use std::collections::HashMap;
use std::hash::Hash;

/// Where a follower's fetch started: its answer applies only if the replica still follows in
/// that leader epoch from that offset (a late answer from a former leader is dropped).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FetchedAt {
    pub leader_epoch: i32,
    pub fetch_offset: i64,
}

impl FetchedAt {
    /// Whether an answer to a fetch that started here may change a replica that now
    /// `is_leader` or follows in `leader_epoch` with its log ending at `log_end`. Checked under
    /// the partition's append permit, so nothing comes between the check and the write.
    pub fn still_applies(self, is_leader: bool, leader_epoch: i32, log_end: i64) -> bool {
        !is_leader && leader_epoch == self.leader_epoch && log_end == self.fetch_offset
    }
}

/// How a leader refused one partition of a fetch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// OFFSET_OUT_OF_RANGE: the fetch offset is outside the leader's log.
    OffsetOutOfRange,
    /// UNKNOWN_TOPIC_OR_PARTITION, UNKNOWN_LEADER_EPOCH: the leader has not yet applied the
    /// metadata naming it (a moment, not a whole backoff).
    Settling,
    /// Anything else (NOT_LEADER_OR_FOLLOWER, FENCED_LEADER_EPOCH, KAFKA_STORAGE_ERROR, ...).
    Other,
}

/// One partition of a leader's fetch answer, as far as the decision needs it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Answer {
    pub refusal: Option<Refusal>,
    pub high_watermark: i64,
    pub log_start_offset: i64,
    /// Fetch v12+'s diverging epoch: the largest epoch both logs may share and where it ends
    /// in the leader's log.
    pub diverging: Option<(i32, i64)>,
}

/// What the follower's log looks like when the answer is applied.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LocalLog {
    pub log_start: i64,
    pub log_end: i64,
    pub high_watermark: i64,
}

/// What to do with one partition's answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// Append the answer's whole batches, then take the leader's high watermark as far as the
    /// log reaches (`follower_high_watermark`) and its log start as far as the follower's high
    /// watermark (`follower_log_start`).
    Append,
    /// Cut the log at this offset (a suffix the leader does not have).
    TruncateTo(i64),
    /// Empty the log and start it at this offset (the leader's log start is past our end).
    RestartAt(i64),
    /// Fetch this partition again after a pause.
    Retry(Pause),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pause {
    /// The leader is catching up with the metadata: a short pause.
    Settling,
    /// `replica.fetch.backoff.ms`.
    Backoff,
}

/// Decides what `answer` means for `local`. `end_for_epoch(epoch)` is the local log's answer
/// to OffsetsForLeaderEpoch (`EpochLedger::end_offset_for`).
pub fn on_answer(
    answer: &Answer,
    local: LocalLog,
    end_for_epoch: impl Fn(i32) -> (i32, i64),
) -> Step {
    match answer.refusal {
        None => {}
        Some(Refusal::OffsetOutOfRange) if answer.log_start_offset > local.log_end => {
            return Step::RestartAt(answer.log_start_offset);
        }
        // The leader's log is shorter than this one and no epoch told where they part: keep
        // only what the leader had committed.
        Some(Refusal::OffsetOutOfRange) => {
            return Step::TruncateTo(answer.high_watermark.max(local.log_start));
        }
        Some(Refusal::Settling) => return Step::Retry(Pause::Settling),
        Some(Refusal::Other) => return Step::Retry(Pause::Backoff),
    }
    if let Some((epoch, leader_end)) = answer.diverging {
        return Step::TruncateTo(divergence_point(epoch, leader_end, local, end_for_epoch));
    }
    Step::Append
}

/// Where a log diverged from its leader's ends: the logs agree below the smaller of the
/// leader's and this log's end of `epoch` (Kafka's `truncationOffset`); an epoch this log does
/// not know keeps only what it had committed.
pub fn divergence_point(
    epoch: i32,
    leader_end: i64,
    local: LocalLog,
    end_for_epoch: impl Fn(i32) -> (i32, i64),
) -> i64 {
    let (local_epoch, local_end) = end_for_epoch(epoch);
    let target = match local_epoch >= 0 {
        true => leader_end.min(local_end),
        false => local.high_watermark,
    };
    target.max(local.log_start)
}

/// The high watermark a follower takes from its leader's: as far as its own log reaches, and
/// never lower than it had.
pub fn follower_high_watermark(current: i64, leader_high_watermark: i64, log_end: i64) -> i64 {
    current.max(leader_high_watermark.min(log_end))
}

/// The log start a follower takes from its leader's (DeleteRecords, retention there): as far
/// as its own high watermark, `None` when it does not move.
pub fn follower_log_start(current: i64, leader_log_start: i64, high_watermark: i64) -> Option<i64> {
    let start = leader_log_start.min(high_watermark);
    (start > current).then_some(start)
}

/// Partitions whose last fetch failed and the time (ms) before which they are not fetched.
#[derive(Debug)]
pub struct Backoffs<K> {
    until: HashMap<K, i64>,
}

impl<K: Eq + Hash> Default for Backoffs<K> {
    fn default() -> Self {
        Backoffs {
            until: HashMap::new(),
        }
    }
}

impl<K: Eq + Hash> Backoffs<K> {
    /// Holds `key` back for `pause_ms` from `now_ms`.
    pub fn delay(&mut self, key: K, now_ms: i64, pause_ms: i64) {
        self.until.insert(key, now_ms.saturating_add(pause_ms));
    }

    /// Forgets the pauses that have ended by `now_ms`.
    pub fn expire(&mut self, now_ms: i64) {
        self.until.retain(|_, until| *until > now_ms);
    }

    /// Whether `key` is held back (after `expire`).
    pub fn is_delayed(&self, key: &K) -> bool {
        self.until.contains_key(key)
    }

    /// When the first pause ends, if any is held.
    pub fn next_end(&self) -> Option<i64> {
        self.until.values().min().copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOCAL: LocalLog = LocalLog {
        log_start: 10,
        log_end: 50,
        high_watermark: 40,
    };

    fn answer(refusal: Option<Refusal>, diverging: Option<(i32, i64)>) -> Answer {
        Answer {
            refusal,
            high_watermark: 45,
            log_start_offset: 5,
            diverging,
        }
    }

    /// Proves Kafka's truncation rules: a diverging epoch cuts at the smaller end of that epoch
    /// in either log, an unknown epoch at the high watermark; an out-of-range fetch restarts a
    /// log behind the leader's start and cuts one ahead of the leader's end.
    #[test]
    fn answers_map_to_kafkas_steps() {
        let ends = |epoch: i32| match epoch {
            3 => (3, 47),
            _ => (-1, -1),
        };
        assert_eq!(on_answer(&answer(None, None), LOCAL, ends), Step::Append);
        assert_eq!(
            on_answer(&answer(None, Some((3, 44))), LOCAL, ends),
            Step::TruncateTo(44)
        );
        assert_eq!(
            on_answer(&answer(None, Some((3, 49))), LOCAL, ends),
            Step::TruncateTo(47)
        );
        assert_eq!(
            on_answer(&answer(None, Some((2, 30))), LOCAL, ends),
            Step::TruncateTo(40),
            "an epoch we do not know: keep what was committed"
        );
        let mut ahead = answer(Some(Refusal::OffsetOutOfRange), None);
        assert_eq!(on_answer(&ahead, LOCAL, ends), Step::TruncateTo(45));
        ahead.log_start_offset = 60;
        assert_eq!(on_answer(&ahead, LOCAL, ends), Step::RestartAt(60));
        assert_eq!(
            on_answer(&answer(Some(Refusal::Settling), None), LOCAL, ends),
            Step::Retry(Pause::Settling)
        );
        assert_eq!(
            on_answer(&answer(Some(Refusal::Other), None), LOCAL, ends),
            Step::Retry(Pause::Backoff)
        );
    }

    /// Proves an answer applies only to the leadership and offset its fetch started from.
    #[test]
    fn late_answers_do_not_apply() {
        let at = FetchedAt {
            leader_epoch: 4,
            fetch_offset: 100,
        };
        assert!(at.still_applies(false, 4, 100));
        assert!(!at.still_applies(true, 4, 100), "now leading");
        assert!(!at.still_applies(false, 5, 100), "a newer leader epoch");
        assert!(!at.still_applies(false, 4, 90), "the log was cut meanwhile");
    }

    /// Proves the follower's high watermark and log start follow the leader's only as far as
    /// its own log and high watermark, and never go back.
    #[test]
    fn follower_takes_leader_marks_as_far_as_it_reaches() {
        assert_eq!(follower_high_watermark(10, 30, 20), 20);
        assert_eq!(follower_high_watermark(10, 15, 20), 15);
        assert_eq!(follower_high_watermark(18, 15, 20), 18);
        assert_eq!(follower_log_start(0, 12, 10), Some(10));
        assert_eq!(follower_log_start(10, 12, 10), None);
    }

    /// Proves pauses hold a key back until they end, and tell when the first ends.
    #[test]
    fn backoffs_end_on_time() {
        let mut backoffs = Backoffs::default();
        backoffs.delay("a", 100, 50);
        backoffs.delay("b", 100, 10);
        assert_eq!(backoffs.next_end(), Some(110));
        backoffs.expire(110);
        assert!(backoffs.is_delayed(&"a") && !backoffs.is_delayed(&"b"));
        backoffs.expire(150);
        assert_eq!(backoffs.next_end(), None);
    }
}
