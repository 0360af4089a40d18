//! DescribeLogDirs: each of the broker's log directories with its partitions' sizes and (v4)
//! its file system's total and usable bytes, or KAFKA_STORAGE_ERROR for a directory that is
//! offline (KIP-112). Each shard reports the partitions it hosts.

use crate::security::acl::Operation;
use std::collections::BTreeMap;
use std::path::PathBuf;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::describe_log_dirs_response::{
    DescribeLogDirsPartition, DescribeLogDirsResult, DescribeLogDirsTopic,
};
use kafka_protocol::messages::{DescribeLogDirsRequest, DescribeLogDirsResponse};

use super::{str_bytes, RequestContext};
use crate::runtime::mesh::ShardRequest;

pub async fn handle(
    context: &RequestContext<'_>,
    request: DescribeLogDirsRequest,
) -> DescribeLogDirsResponse {
    // Kafka's check: DESCRIBE on the cluster.
    if !context.cluster_authorized(Operation::Describe) {
        return DescribeLogDirsResponse::default()
            .with_error_code(ResponseError::ClusterAuthorizationFailed.code());
    }
    let sizes = context
        .shard
        .ask_every_shard(|reply| ShardRequest::LogSizes { reply })
        .await;
    let wanted = |topic: &str, partition: i32| match &request.topics {
        None => true,
        Some(topics) => topics
            .iter()
            .any(|wanted| *wanted.topic == *topic && wanted.partitions.contains(&partition)),
    };
    // Partition sizes by log directory, then topic.
    let mut by_dir: BTreeMap<PathBuf, BTreeMap<String, Vec<(i32, u64)>>> = BTreeMap::new();
    for (topic, partition, dir, bytes) in sizes.into_iter().flatten() {
        if wanted(&topic, partition) {
            by_dir
                .entry(dir)
                .or_default()
                .entry(topic.to_string())
                .or_default()
                .push((partition, bytes));
        }
    }
    let dirs = &context.shard.log_dirs;
    let results = (0..dirs.len())
        .map(|index| {
            let path = dirs.path(index);
            let result = DescribeLogDirsResult::default()
                .with_log_dir(str_bytes(&path.display().to_string()));
            // An offline directory is reported with Kafka's error and nothing else.
            if dirs.failure(index).is_some() {
                return result
                    .with_error_code(ResponseError::KafkaStorageError.code())
                    .with_total_bytes(-1)
                    .with_usable_bytes(-1);
            }
            let (total_bytes, usable_bytes) = file_system_bytes(path).unwrap_or((-1, -1));
            result
                .with_topics(topics(by_dir.remove(path).unwrap_or_default()))
                .with_total_bytes(total_bytes)
                .with_usable_bytes(usable_bytes)
        })
        .collect();
    DescribeLogDirsResponse::default().with_results(results)
}

fn topics(by_topic: BTreeMap<String, Vec<(i32, u64)>>) -> Vec<DescribeLogDirsTopic> {
    by_topic
        .into_iter()
        .map(|(name, mut partitions)| {
            partitions.sort_unstable();
            DescribeLogDirsTopic::default()
                .with_name(str_bytes(&name).into())
                .with_partitions(
                    partitions
                        .into_iter()
                        .map(|(index, bytes)| {
                            DescribeLogDirsPartition::default()
                                .with_partition_index(index)
                                .with_partition_size(bytes as i64)
                                .with_offset_lag(0)
                                .with_is_future_key(false)
                        })
                        .collect(),
                )
        })
        .collect()
}

/// Total and available bytes of the file system holding `path` (statvfs).
fn file_system_bytes(path: &std::path::Path) -> Option<(i64, i64)> {
    use std::os::unix::ffi::OsStrExt;
    let path = std::ffi::CString::new(path.as_os_str().as_bytes()).ok()?;
    let mut stats: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `path` is NUL-terminated and `stats` is a valid statvfs to fill.
    if unsafe { libc::statvfs(path.as_ptr(), &mut stats) } != 0 {
        return None;
    }
    let block = stats.f_frsize as i64;
    Some((
        (stats.f_blocks as i64).saturating_mul(block),
        (stats.f_bavail as i64).saturating_mul(block),
    ))
}
