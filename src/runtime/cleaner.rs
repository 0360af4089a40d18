//! The log cleaner of one shard: every `CLEANER_BACKOFF` it looks at the partitions the shard
//! hosts and compacts those whose topic has `cleanup.policy=compact` and whose log has enough
//! newly rolled segments (`min.cleanable.dirty.ratio`, see `Log::needs_compaction`). Partitions
//! are compacted one at a time, so one shard never rewrites two logs at once.
//!
//! Runs on the shard's own executor; the compaction itself is `Partition::compact`.

use std::rc::Rc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::shard::Shard;
use crate::storage::CleanerConfig;

/// Pause between rounds. Kafka's `log.cleaner.backoff.ms` defaults to 15 s; a round that finds
/// nothing due only sums a few segment sizes per partition, so checking every second is cheap
/// and lets compaction follow segment rolls closely.
pub const CLEANER_BACKOFF: Duration = Duration::from_secs(1);

/// Compacts the shard's compacted topics' partitions until the process ends.
pub async fn run(shard: Rc<Shard>) {
    loop {
        glommio::timer::sleep(CLEANER_BACKOFF).await;
        clean_round(&shard).await;
    }
}

async fn clean_round(shard: &Shard) {
    for (partition, topic) in shard.hosted_partitions() {
        let Some(config) = CleanerConfig::from_topic_configs(&topic.configs) else {
            continue;
        };
        match partition.compact(&config, now_ms()).await {
            Ok(None) => {}
            Ok(Some(stats)) => tracing::info!(
                "compacted {}: {} segments, kept {} of {} records ({} segment(s) now, {} -> {} bytes)",
                partition.name(),
                stats.segments_before,
                stats.records_kept,
                stats.records_read,
                stats.segments_after,
                stats.bytes_before,
                stats.bytes_after
            ),
            Err(error) => tracing::warn!("cannot compact {}: {error}", partition.name()),
        }
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_millis() as i64)
}
