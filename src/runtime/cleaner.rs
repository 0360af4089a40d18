//! The log cleaner of one shard: every `CLEANER_BACKOFF` it looks at the partitions the shard
//! hosts and compacts those whose topic has `cleanup.policy=compact` and whose log has enough
//! newly rolled segments (`min.cleanable.dirty.ratio`, see `Log::needs_compaction`). Partitions
//! are compacted one at a time, so one shard never rewrites two logs at once.
//!
//! The same file runs the shard's other log maintenance: retention (`run_retention`), idle
//! producer ids (`run_producer_expiration`) and the time-based flush (`run_flusher`). All run on the shard's own executor.

use std::rc::Rc;
use std::time::Duration;

use super::shard::Shard;
use crate::storage::{now_ms, CleanerConfig};

/// Pause between rounds. Kafka's `log.cleaner.backoff.ms` defaults to 15 s; a round that finds
/// nothing due only sums a few segment sizes per partition, so checking every second is cheap
/// and lets compaction follow segment rolls closely.
pub const CLEANER_BACKOFF: Duration = Duration::from_secs(1);
/// How often the flusher looks for partitions due by `flush.ms`.
const FLUSH_CHECK: Duration = Duration::from_millis(100);

/// Compacts the shard's compacted topics' partitions until the process ends.
pub async fn run(shard: Rc<Shard>) {
    loop {
        glommio::timer::sleep(CLEANER_BACKOFF).await;
        clean_round(&shard).await;
    }
}

async fn clean_round(shard: &Shard) {
    for (partition, topic) in shard.hosted_partitions() {
        let Some(config) = CleanerConfig::from_topic_configs(&shard.topic_settings(&topic).configs)
        else {
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

/// Deletes segments past retention on every hosted partition, every
/// `log.retention.check.interval.ms`, until the process ends.
pub async fn run_retention(shard: Rc<Shard>) {
    let interval = Duration::from_millis(shard.config.log_retention_check_interval_ms.max(1));
    loop {
        glommio::timer::sleep(interval).await;
        for (partition, _) in shard.hosted_partitions() {
            match partition.apply_retention(now_ms()).await {
                Ok(0) => {}
                Ok(deleted) => tracing::info!(
                    "retention deleted {deleted} segment(s) of {}; log start offset now {}",
                    partition.name(),
                    partition.log_start_offset()
                ),
                Err(error) => tracing::warn!("retention of {} failed: {error}", partition.name()),
            }
        }
    }
}

/// Forgets idle idempotent producers on every hosted partition, every
/// `producer.id.expiration.check.interval.ms`, until the process ends.
pub async fn run_producer_expiration(shard: Rc<Shard>) {
    let interval = Duration::from_millis(shard.config.producer_id_expiration_check_interval_ms);
    let expiration_ms = shard.config.producer_id_expiration_ms;
    loop {
        glommio::timer::sleep(interval).await;
        let now = now_ms();
        for (partition, _) in shard.hosted_partitions() {
            let expired = partition.expire_producers(now, expiration_ms);
            if expired > 0 {
                tracing::debug!(
                    "{}: forgot {expired} producer id(s) idle for producer.id.expiration.ms",
                    partition.name()
                );
            }
        }
    }
}

/// Every `FLUSH_CHECK` until the process ends: fsyncs partitions whose oldest unflushed
/// message is older than their `flush.ms`, and writes (without fsync) what the others hold
/// only in memory, so acks=0/1 data reaches the disk within about `FLUSH_CHECK` and a crash
/// of the process alone (not of the machine) loses no more than that.
pub async fn run_flusher(shard: Rc<Shard>) {
    loop {
        glommio::timer::sleep(FLUSH_CHECK).await;
        let now = now_ms();
        for (partition, _) in shard.hosted_partitions() {
            let flushed = match partition.flush_if_due(now).await {
                Ok(()) => partition.write_pending().await,
                Err(error) => Err(error),
            };
            if let Err(error) = flushed {
                tracing::debug!("cannot write {} to disk yet: {error}", partition.name());
            }
        }
    }
}
