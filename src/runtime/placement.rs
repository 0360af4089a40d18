//! Which shard owns which partition, and which CPU each executor runs on.
//!
//! `shard_for_partition` is the one function that places partitions: pure, stable for a topic's
//! lifetime (it hashes the topic id, not the name), and spreading a topic's partitions evenly.
//! Every shard computes it independently and gets the same answer.
//!
//! `plan_cpus` places executors on the CPUs of the process's CPU set as `cpu.pinning` asks:
//! pinned from the set's first CPU, pinned from CPU `node.id mod n` of the set (`spread`, what
//! `auto` chooses), or not pinned at all. It is pure; the runtime reads the set and applies it.

use crate::metadata::TopicId;

/// Index of a shard (one pinned executor) within this process.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ShardId(pub usize);

impl std::fmt::Display for ShardId {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(formatter, "{}", self.0)
    }
}

/// The shard that owns partition `partition` of topic `topic_id`, among `shard_count` shards.
///
/// Consecutive partitions of a topic go to consecutive shards from a start chosen by the topic
/// id's jump-consistent hash, so one topic's partitions spread over all shards and different
/// topics start on different shards.
pub fn shard_for_partition(topic_id: TopicId, partition: i32, shard_count: usize) -> ShardId {
    assert!(shard_count > 0, "at least one shard");
    let start = jump_consistent_hash(topic_id.digest(), shard_count);
    ShardId((start + partition.unsigned_abs() as usize) % shard_count)
}

/// Lamping and Veach's jump consistent hash: a bucket in `0..buckets` for `key`.
fn jump_consistent_hash(mut key: u64, buckets: usize) -> usize {
    let mut bucket: i64 = -1;
    let mut next: i64 = 0;
    while next < buckets as i64 {
        bucket = next;
        key = key.wrapping_mul(2_862_933_555_777_941_757).wrapping_add(1);
        next = (((bucket + 1) as f64) * ((1u64 << 31) as f64 / ((key >> 33) + 1) as f64)) as i64;
    }
    bucket as usize
}

/// `cpu.pinning`: how executor threads are placed on the CPUs of the process's CPU set.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CpuPinning {
    /// Chosen at start-up: `Spread` (see `plan_cpus` for why).
    Auto,
    /// One executor per CPU, from the first CPU of the set.
    Pinned,
    /// As `Pinned`, but from CPU `node.id mod n` of the set, so that nodes sharing a machine
    /// start on different CPUs.
    Spread,
    /// Not pinned (Redpanda's `--overprovisioned`): the kernel places the threads within the set.
    Unpinned,
}

impl CpuPinning {
    /// The values `parse` accepts, for error messages.
    pub const VALUES: &'static str = "auto, pinned (or true), spread, none (or false)";

    /// Parses a `cpu.pinning` value, ignoring case.
    pub fn parse(value: &str) -> Option<CpuPinning> {
        match value.to_ascii_lowercase().as_str() {
            "auto" => Some(CpuPinning::Auto),
            "pinned" | "true" => Some(CpuPinning::Pinned),
            "spread" => Some(CpuPinning::Spread),
            "none" | "false" => Some(CpuPinning::Unpinned),
            _ => None,
        }
    }

    /// The value's canonical name, as the start-up log writes it.
    pub fn name(self) -> &'static str {
        match self {
            CpuPinning::Auto => "auto",
            CpuPinning::Pinned => "pinned",
            CpuPinning::Spread => "spread",
            CpuPinning::Unpinned => "none",
        }
    }
}

/// Where one executor thread runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExecutorCpu {
    Pinned(usize),
    /// Anywhere in the process's CPU set (the thread inherits the process's affinity mask).
    Unpinned,
}

/// Where the executors run: one entry per shard, and the controller's.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CpuPlan {
    /// The placement applied: `Pinned`, `Spread` or `Unpinned`, never `Auto`.
    pub pinning: CpuPinning,
    /// Why, in words, for the start-up log.
    pub reason: String,
    pub shard_cpus: Vec<ExecutorCpu>,
    pub controller_cpu: ExecutorCpu,
    /// The controller is not counted against the shards' CPUs (when pinned: it has a CPU of its
    /// own).
    pub controller_dedicated: bool,
}

/// Plans executor placement over `cpus`, the CPUs the process may run on.
///
/// The number of shards and the controller's share do not depend on `pinning`: with `dedicated`
/// unset, the controller gets a CPU of its own when there are at least four, otherwise it shares
/// shard 0's; `shard_count` 0 means one shard per remaining CPU; more shards than CPUs wrap.
///
/// `Auto` resolves to `Spread`. A process cannot see the other nodes on its machine (in a
/// container it cannot even see their processes), so the rule must serve both cases blind:
/// rotating the CPU list by `node.id` gives a lone node exactly the CPUs and the one-executor-
/// per-CPU layout that pinning from the first CPU would, and gives co-located nodes (a compose
/// cluster, a test cluster) different first CPUs instead of all of them on the set's first CPU.
/// A CPU set from `taskset` or `--cpuset-cpus` is respected in every mode.
pub fn plan_cpus(
    cpus: &[usize],
    shard_count: usize,
    dedicated: Option<bool>,
    pinning: CpuPinning,
    node_id: i32,
) -> CpuPlan {
    assert!(!cpus.is_empty(), "the process may run on at least one CPU");
    let start = match pinning {
        CpuPinning::Auto | CpuPinning::Spread => node_id.rem_euclid(cpus.len() as i32) as usize,
        CpuPinning::Pinned | CpuPinning::Unpinned => 0,
    };
    let (applied, reason) = resolve(pinning, cpus, start, node_id);
    let rotated: Vec<usize> = cpus[start..]
        .iter()
        .chain(&cpus[..start])
        .copied()
        .collect();
    let controller_dedicated = dedicated.unwrap_or(cpus.len() >= 4) && cpus.len() >= 2;
    let (controller_cpu, shard_pool) = if controller_dedicated {
        (rotated[rotated.len() - 1], &rotated[..rotated.len() - 1])
    } else {
        (rotated[0], &rotated[..])
    };
    let count = if shard_count == 0 {
        shard_pool.len()
    } else {
        shard_count
    };
    let place = |cpu: usize| match applied {
        CpuPinning::Unpinned => ExecutorCpu::Unpinned,
        _ => ExecutorCpu::Pinned(cpu),
    };
    CpuPlan {
        pinning: applied,
        reason,
        shard_cpus: (0..count)
            .map(|index| place(shard_pool[index % shard_pool.len()]))
            .collect(),
        controller_cpu: place(controller_cpu),
        controller_dedicated,
    }
}

/// The placement `pinning` applies (`Auto` is `Spread`, see `plan_cpus`) and why, in words for
/// the start-up log; `start` is the index in `cpus` that spreading starts from.
fn resolve(
    pinning: CpuPinning,
    cpus: &[usize],
    start: usize,
    node_id: i32,
) -> (CpuPinning, String) {
    let from = format!(
        "from CPU {}, the set's CPU at index node.id {node_id} mod {} = {start}",
        cpus[start],
        cpus.len()
    );
    match pinning {
        CpuPinning::Pinned => (
            CpuPinning::Pinned,
            "cpu.pinning=pinned: one executor per CPU from the first CPU of the set".to_string(),
        ),
        CpuPinning::Spread => (CpuPinning::Spread, format!("cpu.pinning=spread: {from}")),
        CpuPinning::Auto => (
            CpuPinning::Spread,
            format!(
                "cpu.pinning=auto spreads by node id, as other nodes on this machine cannot be \
                 seen: co-located nodes start on different CPUs, a lone node gets every CPU \
                 either way; {from}"
            ),
        ),
        CpuPinning::Unpinned => (
            CpuPinning::Unpinned,
            "cpu.pinning=none: no executor is pinned or busy-polls; the kernel places the \
             threads within the set and moves them off busy CPUs"
                .to_string(),
        ),
    }
}

/// How long each shard executor keeps polling its ring once idle before it sleeps in the kernel
/// (glommio's `spin_before_park`), for `idle.poll.time.us` (`None`: auto). A sleeping
/// executor takes tens of microseconds to wake (bench/mesh.rs: a cross-shard round trip p50 of
/// 76 µs parked against 6-8 µs polling), but with polling on, a kafka-python group member
/// stopped being answered in 2 of 12 runs of its test (0 of 12 without), so auto never polls
/// until that is understood: a set value polls on pinned shards only (an unpinned executor
/// shares CPUs, and glommio clears it for unbound executors anyway). The controller executor
/// never polls.
pub fn idle_poll_times(
    shard_cpus: &[ExecutorCpu],
    configured: Option<std::time::Duration>,
) -> Vec<std::time::Duration> {
    shard_cpus
        .iter()
        .map(|cpu| match (cpu, configured) {
            (ExecutorCpu::Pinned(_), Some(time)) => time,
            _ => std::time::Duration::ZERO,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Proves auto never polls, and a set value applies to every pinned shard and to no
    /// unpinned one.
    #[test]
    fn idle_polling_only_when_set_and_pinned() {
        use std::time::Duration;
        let zero = Duration::ZERO;
        let pinned = [ExecutorCpu::Pinned(1), ExecutorCpu::Pinned(0)];
        assert_eq!(idle_poll_times(&pinned, None), [zero; 2]);
        let time = Duration::from_micros(50);
        assert_eq!(idle_poll_times(&pinned, Some(time)), [time; 2]);
        let unpinned = [ExecutorCpu::Unpinned, ExecutorCpu::Unpinned];
        assert_eq!(idle_poll_times(&unpinned, None), [zero, zero]);
        assert_eq!(idle_poll_times(&unpinned, Some(time)), [zero, zero]);
    }

    /// Proves placement is stable, in range, and spreads one topic's partitions over all shards.
    #[test]
    fn spreads_partitions_over_shards() {
        let topic = TopicId([7; 16]);
        for shards in 1..=8 {
            let owners: Vec<ShardId> = (0..16)
                .map(|partition| shard_for_partition(topic, partition, shards))
                .collect();
            assert!(owners.iter().all(|shard| shard.0 < shards));
            let distinct: std::collections::BTreeSet<_> = owners.iter().collect();
            assert_eq!(distinct.len(), shards.min(16));
            assert_eq!(
                owners,
                (0..16)
                    .map(|partition| shard_for_partition(topic, partition, shards))
                    .collect::<Vec<_>>()
            );
        }
    }

    /// Proves jump hashing moves few keys when a bucket is added.
    #[test]
    fn jump_hash_is_consistent() {
        let moved = (0..10_000u64)
            .filter(|key| {
                jump_consistent_hash(key.wrapping_mul(0x9e37_79b9_7f4a_7c15), 10)
                    != jump_consistent_hash(key.wrapping_mul(0x9e37_79b9_7f4a_7c15), 11)
            })
            .count();
        assert!(moved < 1_500, "{moved} of 10000 keys moved");
    }

    fn pinned(cpus: &[usize]) -> Vec<ExecutorCpu> {
        cpus.iter().copied().map(ExecutorCpu::Pinned).collect()
    }

    /// Proves the controller shares a CPU on small machines and gets its own on larger ones.
    #[test]
    fn plans_cpus() {
        let small = plan_cpus(&[0, 1], 0, None, CpuPinning::Pinned, 1);
        assert_eq!(small.pinning, CpuPinning::Pinned);
        assert_eq!(small.shard_cpus, pinned(&[0, 1]));
        assert_eq!(small.controller_cpu, ExecutorCpu::Pinned(0));
        assert!(!small.controller_dedicated);
        let large = plan_cpus(&[2, 3, 4, 5], 0, None, CpuPinning::Pinned, 1);
        assert_eq!(large.shard_cpus, pinned(&[2, 3, 4]));
        assert_eq!(large.controller_cpu, ExecutorCpu::Pinned(5));
        assert!(large.controller_dedicated);
        let wrapped = plan_cpus(&[0], 3, Some(true), CpuPinning::Pinned, 1);
        assert_eq!(wrapped.shard_cpus, pinned(&[0, 0, 0]));
        assert!(!wrapped.controller_dedicated, "one CPU cannot be dedicated");
    }

    /// Proves `pinned` ignores node.id: every node starts on the set's first CPU (the old layout).
    #[test]
    fn pinned_starts_on_the_first_cpu() {
        for node_id in [1, 2, 5, 1000] {
            let plan = plan_cpus(&[2, 3, 5], 1, None, CpuPinning::Pinned, node_id);
            assert_eq!(plan.shard_cpus, pinned(&[2]));
            assert_eq!(plan.controller_cpu, ExecutorCpu::Pinned(2));
        }
        let plan = plan_cpus(&[1], 0, None, CpuPinning::Pinned, 4);
        assert_eq!(plan.shard_cpus, pinned(&[1]));
        assert_eq!(plan.controller_cpu, ExecutorCpu::Pinned(1));
    }

    /// Proves `spread` starts at CPU node.id mod n of the set, wrapping, and stays in the set.
    #[test]
    fn spread_starts_at_node_id_mod_cpus() {
        let starts: Vec<ExecutorCpu> = (1..=6)
            .map(|node_id| plan_cpus(&[0, 1], 1, None, CpuPinning::Spread, node_id).shard_cpus[0])
            .collect();
        assert_eq!(starts, pinned(&[1, 0, 1, 0, 1, 0]));
        let starts: Vec<ExecutorCpu> = (0..7)
            .map(|node_id| {
                plan_cpus(&[2, 3, 5], 1, None, CpuPinning::Spread, node_id).shard_cpus[0]
            })
            .collect();
        assert_eq!(starts, pinned(&[2, 3, 5, 2, 3, 5, 2]));
        let plan = plan_cpus(&[2, 3, 5], 0, None, CpuPinning::Spread, 4);
        assert_eq!(plan.shard_cpus, pinned(&[3, 5, 2]), "all CPUs, rotated");
        assert_eq!(plan.controller_cpu, ExecutorCpu::Pinned(3), "with shard 0");
        let plan = plan_cpus(&[2, 3, 5], 4, None, CpuPinning::Spread, 2);
        assert_eq!(plan.shard_cpus, pinned(&[5, 2, 3, 5]));
        let plan = plan_cpus(&[1], 2, None, CpuPinning::Spread, 7);
        assert_eq!(plan.shard_cpus, pinned(&[1, 1]));
        assert_eq!(plan.controller_cpu, ExecutorCpu::Pinned(1));
        let negative = plan_cpus(&[0, 1, 2], 1, None, CpuPinning::Spread, -1);
        assert_eq!(negative.shard_cpus, pinned(&[2]));
    }

    /// Proves a dedicated controller under `spread` takes the CPU before the node's first, so
    /// co-located nodes' controllers land on different CPUs too.
    #[test]
    fn spread_moves_the_dedicated_controller() {
        let cpus = [0, 1, 2, 3];
        let plan = plan_cpus(&cpus, 0, None, CpuPinning::Spread, 1);
        assert_eq!(plan.shard_cpus, pinned(&[1, 2, 3]));
        assert_eq!(plan.controller_cpu, ExecutorCpu::Pinned(0));
        let controllers: Vec<ExecutorCpu> = (1..=4)
            .map(|node_id| plan_cpus(&cpus, 1, None, CpuPinning::Spread, node_id).controller_cpu)
            .collect();
        assert_eq!(controllers, pinned(&[0, 1, 2, 3]));
    }

    /// Proves `auto` applies `spread` and says so.
    #[test]
    fn auto_spreads_by_node_id() {
        for cpus in [&[1][..], &[0, 1], &[2, 3, 5]] {
            for node_id in 1..=6 {
                let auto = plan_cpus(cpus, 1, None, CpuPinning::Auto, node_id);
                let spread = plan_cpus(cpus, 1, None, CpuPinning::Spread, node_id);
                assert_eq!(auto.pinning, CpuPinning::Spread);
                assert_eq!(
                    (auto.shard_cpus, auto.controller_cpu),
                    (spread.shard_cpus, spread.controller_cpu)
                );
                assert!(auto.reason.contains("cpu.pinning=auto"), "{}", auto.reason);
            }
        }
        let lone = plan_cpus(&[0, 1], 0, None, CpuPinning::Auto, 1);
        assert_eq!(
            lone.shard_cpus,
            pinned(&[1, 0]),
            "a lone node still gets every CPU"
        );
    }

    /// Proves `none` pins nothing but keeps the shard count and the controller's share.
    #[test]
    fn unpinned_pins_nothing() {
        for (cpus, shard_count, shards) in [(&[1][..], 0, 1), (&[0, 1], 0, 2), (&[2, 3, 5], 2, 2)] {
            let plan = plan_cpus(cpus, shard_count, None, CpuPinning::Unpinned, 5);
            assert_eq!(plan.pinning, CpuPinning::Unpinned);
            assert_eq!(plan.shard_cpus, vec![ExecutorCpu::Unpinned; shards]);
            assert_eq!(plan.controller_cpu, ExecutorCpu::Unpinned);
        }
        let large = plan_cpus(&[0, 1, 2, 3], 0, None, CpuPinning::Unpinned, 5);
        assert_eq!(large.shard_cpus.len(), 3, "same count as pinned");
        assert!(large.controller_dedicated);
    }

    /// Proves every documented value parses, ignoring case, and nothing else does.
    #[test]
    fn parses_pinning_values() {
        for (value, pinning) in [
            ("auto", CpuPinning::Auto),
            ("pinned", CpuPinning::Pinned),
            ("TRUE", CpuPinning::Pinned),
            ("spread", CpuPinning::Spread),
            ("none", CpuPinning::Unpinned),
            ("False", CpuPinning::Unpinned),
        ] {
            assert_eq!(CpuPinning::parse(value), Some(pinning), "{value}");
        }
        for value in ["", "yes", "0", "overprovisioned"] {
            assert_eq!(CpuPinning::parse(value), None, "{value}");
        }
        assert_eq!(
            CpuPinning::parse(CpuPinning::Unpinned.name()),
            Some(CpuPinning::Unpinned)
        );
    }
}
