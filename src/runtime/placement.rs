//! Which shard owns which partition, and which CPU each executor runs on.
//!
//! `shard_for_partition` is the one function that places partitions: pure, stable for a topic's
//! lifetime (it hashes the topic id, not the name), and spreading a topic's partitions evenly.
//! Every shard computes it independently and gets the same answer.

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

/// Where the executors run: one CPU per shard, and the controller's CPU.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CpuPlan {
    pub shard_cpus: Vec<usize>,
    pub controller_cpu: usize,
    pub controller_dedicated: bool,
}

/// Plans executor placement over the CPUs the process may run on. With `dedicated` unset, the
/// controller gets its own CPU when there are at least four; otherwise it shares the first
/// shard's CPU. `shard_count` 0 means one shard per remaining CPU; more shards than CPUs wrap.
pub fn plan_cpus(cpus: &[usize], shard_count: usize, dedicated: Option<bool>) -> CpuPlan {
    assert!(!cpus.is_empty(), "the process may run on at least one CPU");
    let controller_dedicated = dedicated.unwrap_or(cpus.len() >= 4) && cpus.len() >= 2;
    let (controller_cpu, shard_pool) = if controller_dedicated {
        (cpus[cpus.len() - 1], &cpus[..cpus.len() - 1])
    } else {
        (cpus[0], cpus)
    };
    let count = if shard_count == 0 {
        shard_pool.len()
    } else {
        shard_count
    };
    CpuPlan {
        shard_cpus: (0..count)
            .map(|index| shard_pool[index % shard_pool.len()])
            .collect(),
        controller_cpu,
        controller_dedicated,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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

    /// Proves the controller shares a CPU on small machines and gets its own on larger ones.
    #[test]
    fn plans_cpus() {
        let small = plan_cpus(&[0, 1], 0, None);
        assert_eq!(
            small,
            CpuPlan {
                shard_cpus: vec![0, 1],
                controller_cpu: 0,
                controller_dedicated: false
            }
        );
        let large = plan_cpus(&[2, 3, 4, 5], 0, None);
        assert_eq!(large.shard_cpus, vec![2, 3, 4]);
        assert_eq!(large.controller_cpu, 5);
        assert_eq!(plan_cpus(&[0], 3, Some(true)).shard_cpus, vec![0, 0, 0]);
    }
}
