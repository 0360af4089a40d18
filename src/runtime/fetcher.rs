//! Replica fetchers: how a follower replica copies its leader's log. Each shard runs one
//! fetcher per leader broker it follows partitions from (Kafka's `num.replica.fetchers=1`),
//! on the shard's own executor, so fetched batches are written by the shard that owns them.
//!
//! A fetcher speaks the Kafka protocol to the leader's `inter.broker.listener.name` endpoint:
//! Fetch v12 with this broker's id as `replica_id`, each partition's log end as fetch offset and
//! the epoch of its last batch as `last_fetched_epoch`. The leader answers with records (copied
//! as they are, offsets and epochs kept), with its high watermark, or with a diverging epoch:
//! then this log holds a suffix the leader's does not (written under an older leader and never
//! committed), and it is truncated to where the two logs last agree before fetching again.
//! The partitions fetched are looked up afresh before every request, so a fetcher follows the
//! metadata image by itself, and ends when no partition here follows its leader any more.

use std::collections::HashMap;
use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::fetch_response::PartitionData;
use kafka_protocol::messages::{ApiKey, BrokerId, FetchRequest, FetchResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

use super::peer::PeerConnection;
use super::shard::Shard;
use crate::partition::{FetchedAt, Partition};
use crate::storage::batch;

/// Fetch v12: topics by name, `last_fetched_epoch` and diverging epochs.
const FETCH_VERSION: i16 = 12;
/// The pause after an answer that only says the leader has not caught up with the metadata.
const SETTLING_BACKOFF: Duration = Duration::from_millis(100);
/// How much longer than its wait a fetch may take before the connection is given up
/// (Kafka's `replica.socket.timeout.ms` is 30 s; a leader that stops answering is found
/// sooner this way).
const RESPONSE_GRACE: Duration = Duration::from_secs(10);

/// Copies the partitions this shard follows from broker `leader` until there are none.
pub async fn run(shard: Rc<Shard>, leader: i32) {
    let config = shard.config.clone();
    let backoff = Duration::from_millis(config.replica_fetch_backoff_ms);
    let mut connection: Option<PeerConnection> = None;
    // Partitions whose last fetch failed, and when they may be fetched again.
    let mut delayed: HashMap<(Rc<str>, i32), Instant> = HashMap::new();
    // A refused login or TLS handshake is logged once until a connection succeeds again.
    let mut refusal_logged = false;
    tracing::info!("shard {} starts fetching from broker {leader}", shard.id);
    loop {
        let followed = shard.followed_from(leader);
        if followed.is_empty() {
            shard.fetcher_stopped(leader);
            tracing::info!("shard {} stops fetching from broker {leader}", shard.id);
            return;
        }
        let now = Instant::now();
        delayed.retain(|_, until| *until > now);
        let fetched: Vec<Rc<Partition>> = followed
            .into_iter()
            .filter(|partition| !delayed.contains_key(&key(partition)))
            .collect();
        if fetched.is_empty() {
            let next = delayed.values().min().copied().unwrap_or(now + backoff);
            glommio::timer::sleep(next.saturating_duration_since(now)).await;
            continue;
        }
        let Some(address) = shard.broker_address(leader) else {
            glommio::timer::sleep(backoff).await;
            continue;
        };
        if connection
            .as_ref()
            .is_none_or(|open| open.address != address)
        {
            let security = config.links.inter_broker.security();
            connection =
                match PeerConnection::open(&address, "flink-replica-fetcher", &security).await {
                    Ok(opened) => {
                        refusal_logged = false;
                        Some(opened)
                    }
                    Err(error) if error.is_security() => {
                        if !std::mem::replace(&mut refusal_logged, true) {
                            tracing::error!("cannot fetch from leader {leader}: {error}");
                        }
                        glommio::timer::sleep(backoff).await;
                        continue;
                    }
                    Err(error) => {
                        tracing::debug!("cannot reach leader {leader} at {address}: {error}");
                        glommio::timer::sleep(backoff).await;
                        continue;
                    }
                };
        }
        let open = connection.as_mut().expect("connected above");
        let (request, positions) = fetch_request(&shard, &fetched);
        let wait = Duration::from_millis(config.replica_fetch_wait_max_ms);
        let fetched_response = open
            .request(
                ApiKey::Fetch,
                FETCH_VERSION,
                &request,
                wait + RESPONSE_GRACE,
                response_bytes_max(&config),
            )
            .await;
        let response: FetchResponse = match fetched_response {
            Ok(response) => response,
            Err(error) => {
                tracing::debug!("fetch from leader {leader} at {address} failed: {error}");
                connection = None;
                glommio::timer::sleep(backoff).await;
                continue;
            }
        };
        if response.error_code != 0 {
            tracing::warn!(
                "leader {leader} refused the fetch: {:?}",
                ResponseError::try_from_code(response.error_code)
            );
            glommio::timer::sleep(backoff).await;
            continue;
        }
        for topic in response.responses {
            for data in topic.partitions {
                let Some((partition, at)) =
                    fetched.iter().zip(&positions).find(|(partition, _)| {
                        *partition.topic == *topic.topic.0
                            && partition.index == data.partition_index
                    })
                else {
                    continue;
                };
                // A leader that has not yet applied the image naming it answers these until
                // it has: a moment, not a whole backoff.
                let settling = [
                    ResponseError::UnknownTopicOrPartition,
                    ResponseError::UnknownLeaderEpoch,
                ]
                .map(|error| error.code())
                .contains(&data.error_code);
                if let Err(reason) = apply(partition, *at, data).await {
                    let pause = match settling {
                        true => backoff.min(SETTLING_BACKOFF),
                        false => backoff,
                    };
                    tracing::warn!(
                        "fetching {} from leader {leader}: {reason}; retrying in {pause:?}",
                        partition.name()
                    );
                    delayed.insert(key(partition), Instant::now() + pause);
                }
            }
        }
    }
}

fn key(partition: &Partition) -> (Rc<str>, i32) {
    (Rc::from(&*partition.topic), partition.index)
}

/// The fetch for `partitions`, and where each one's fetch starts.
fn fetch_request(shard: &Shard, partitions: &[Rc<Partition>]) -> (FetchRequest, Vec<FetchedAt>) {
    let config = &shard.config;
    let mut topics: Vec<FetchTopic> = Vec::new();
    let mut positions = Vec::with_capacity(partitions.len());
    for partition in partitions {
        let (fetch_offset, last_fetched_epoch) = partition.fetch_position();
        positions.push(FetchedAt {
            leader_epoch: partition.leader_epoch(),
            fetch_offset,
        });
        let fetched = FetchPartition::default()
            .with_partition(partition.index)
            .with_current_leader_epoch(partition.leader_epoch())
            .with_fetch_offset(fetch_offset)
            .with_last_fetched_epoch(last_fetched_epoch)
            .with_log_start_offset(partition.log_start_offset())
            .with_partition_max_bytes(config.replica_fetch_max_bytes as i32);
        match topics
            .iter_mut()
            .find(|topic| *topic.topic.0 == *partition.topic)
        {
            Some(topic) => topic.partitions.push(fetched),
            None => topics.push(
                FetchTopic::default()
                    .with_topic(TopicName(StrBytes::from_string(
                        partition.topic.to_string(),
                    )))
                    .with_partitions(vec![fetched]),
            ),
        }
    }
    let request = FetchRequest::default()
        .with_replica_id(BrokerId(config.node_id))
        .with_max_wait_ms(config.replica_fetch_wait_max_ms as i32)
        .with_min_bytes(1)
        .with_max_bytes(config.replica_fetch_response_max_bytes as i32)
        .with_session_id(0)
        .with_session_epoch(-1)
        .with_topics(topics);
    (request, positions)
}

/// Applies one partition's answer: appends its records, truncates a diverged suffix, or
/// restarts a log that ends before the leader's starts; dropped unless the replica is still
/// where the fetch started (`at`).
async fn apply(partition: &Partition, at: FetchedAt, data: PartitionData) -> Result<(), String> {
    match ResponseError::try_from_code(data.error_code) {
        None => {}
        Some(ResponseError::OffsetOutOfRange) => {
            let (end, _) = partition.fetch_position();
            if data.log_start_offset > end {
                return partition
                    .truncate_fully_and_start_at(at, data.log_start_offset)
                    .await
                    .map_err(|error| error.to_string());
            }
            // The leader's log is shorter than this one and no epoch told where they part:
            // keep only what the leader had committed.
            return partition
                .truncate_to(at, data.high_watermark.max(partition.log_start_offset()))
                .await
                .map_err(|error| error.to_string());
        }
        Some(error) => return Err(format!("the leader answered {error:?}")),
    }
    if data.diverging_epoch.epoch >= 0 || data.diverging_epoch.end_offset >= 0 {
        let (epoch, leader_end) = (data.diverging_epoch.epoch, data.diverging_epoch.end_offset);
        // Where this log's copy of that epoch ends; the logs agree below the smaller end.
        let (local_epoch, local_end) = partition.end_offset_for_epoch(epoch);
        let target = match local_epoch >= 0 {
            true => leader_end.min(local_end),
            false => partition.high_watermark(),
        };
        let target = target.max(partition.log_start_offset());
        tracing::info!(
            "{} diverged from its leader at epoch {epoch} (leader's end {leader_end}, ours {local_end}); truncating to {target}",
            partition.name()
        );
        return partition
            .truncate_to(at, target)
            .await
            .map_err(|error| error.to_string());
    }
    let records = data.records.unwrap_or_default();
    let whole = whole_batches(&records);
    let headers = match whole.is_empty() {
        true => Vec::new(),
        false => batch::validate_batches(&whole, usize::MAX)
            .map_err(|error| format!("the leader sent a bad batch: {error}"))?,
    };
    partition
        .append_replicated(at, whole.to_vec(), headers, data.high_watermark)
        .await
        .map_err(|error| error.to_string())?;
    // Records the leader deleted (DeleteRecords, retention) go here too, as far as this
    // replica has committed them.
    let start = data.log_start_offset.min(partition.high_watermark());
    if start > partition.log_start_offset() {
        partition
            .delete_records(start)
            .await
            .map_err(|error| error.to_string())?;
    }
    Ok(())
}

/// The whole batches at the front of `records` (a response may end with a cut batch).
fn whole_batches(records: &Bytes) -> Bytes {
    let mut position = 0;
    while let Ok(Some(header)) = batch::peek_header(records, position) {
        position += header.size;
    }
    records.slice(..position)
}

/// The largest Fetch response a leader may send: `replica.fetch.response.max.bytes`, plus one
/// batch over it (the first is sent whole, and no batch is larger than a produce request may
/// be), plus room for the framing of every partition.
fn response_bytes_max(config: &crate::config::ServerConfig) -> usize {
    (config.replica_fetch_response_max_bytes as usize)
        .saturating_add(config.socket_request_max_bytes as usize)
        .saturating_add(1 << 20)
}
