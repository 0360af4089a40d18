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
//! What each answer means is decided by `replication::follower`; this module does the I/O.
//! The partitions of one answer are applied concurrently (each under its own append permit),
//! and the next fetch goes out as soon as all are written.
//! The partitions fetched are looked up afresh before every request, so a fetcher follows the
//! metadata image by itself, and ends when no partition here follows its leader any more.
//! Fetches go in a fetch session (KIP-227, `client::fetch_session`): after the first, a fetch
//! names only the partitions whose position changed, and the leader answers only those with
//! something new; a new connection starts a new session.

use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_protocol::messages::fetch_request::FetchPartition;
use kafka_protocol::messages::fetch_response::PartitionData;
use kafka_protocol::messages::{ApiKey, BrokerId, FetchRequest, FetchResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

use super::peer::PeerConnection;
use crate::client::fetch_session::FetchSession;
use crate::config::ServerConfig;
use crate::partition::{FetchedAt, Partition};
use crate::replication::follower::{self, Answer, Backoffs, LocalLog, Pause, Refusal, Step};
use crate::storage::batch;

/// What a fetcher needs of the shard it runs on (the shard implements it; the fetcher does
/// not know the shard).
pub trait FetcherHost {
    /// The shard's number: its fetchers reach the same shard of the leader (`net::steering`).
    fn shard_number(&self) -> usize;
    /// How many shards this broker runs.
    fn shard_count(&self) -> usize;
    fn server_config(&self) -> &ServerConfig;
    /// The partitions here that follow `leader` now.
    fn followed_from(&self, leader: i32) -> Vec<Rc<Partition>>;
    /// The fetcher from `leader` found nothing left to fetch and ends.
    fn fetcher_stopped(&self, leader: i32);
    /// `host:port` of `leader`'s inter-broker listener, if it is registered.
    fn broker_address(&self, leader: i32) -> Option<String>;
}

const FETCHER_CLIENT_ID: &str = "flink-replica-fetcher";
/// Fetch v12: topics by name, `last_fetched_epoch` and diverging epochs.
const FETCH_VERSION: i16 = 12;
/// The pause after an answer that only says the leader has not caught up with the metadata.
const SETTLING_BACKOFF: Duration = Duration::from_millis(100);
/// How much longer than its wait a fetch may take before the connection is given up
/// (Kafka's `replica.socket.timeout.ms` is 30 s; a leader that stops answering is found
/// sooner this way).
const RESPONSE_GRACE: Duration = Duration::from_secs(10);

/// Copies the partitions this shard follows from broker `leader` until there are none.
pub async fn run<H: FetcherHost + 'static>(host: Rc<H>, leader: i32) {
    let config = host.server_config();
    let backoff = Duration::from_millis(config.replica_fetch_backoff_ms);
    let wait = Duration::from_millis(config.replica_fetch_wait_max_ms);
    let started = Instant::now();
    let clock = move || i64::try_from(started.elapsed().as_millis()).unwrap_or(i64::MAX);
    let mut connection: Option<PeerConnection> = None;
    let mut session = FetchSession::default();
    // Partitions whose last fetch failed, and when they may be fetched again.
    let mut delayed: Backoffs<(Rc<str>, i32)> = Backoffs::default();
    // A refused login or TLS handshake is logged once until a connection succeeds again.
    let mut refusal_logged = false;
    let shard = host.shard_number();
    tracing::info!("shard {shard} starts fetching from broker {leader}");
    loop {
        let followed = host.followed_from(leader);
        if followed.is_empty() {
            host.fetcher_stopped(leader);
            tracing::info!("shard {shard} stops fetching from broker {leader}");
            return;
        }
        let now = clock();
        delayed.expire(now);
        let fetched: Vec<Rc<Partition>> = followed
            .into_iter()
            .filter(|partition| !delayed.is_delayed(&key(partition)))
            .collect();
        if fetched.is_empty() {
            let next = delayed.next_end().unwrap_or(now).saturating_sub(now);
            glommio::timer::sleep(Duration::from_millis(next.max(1).unsigned_abs())).await;
            continue;
        }
        let Some(address) = host.broker_address(leader) else {
            glommio::timer::sleep(backoff).await;
            continue;
        };
        let open = match connection.take() {
            Some(open) if open.address == address => open,
            _ => {
                // The leader keeps sessions per shard, and a new connection may land on another.
                session.start_over();
                let security = config.links.inter_broker.security();
                let affinity = (shard, host.shard_count());
                let opened =
                    PeerConnection::open_to_shard(&address, FETCHER_CLIENT_ID, &security, affinity)
                        .await;
                match opened {
                    Ok(opened) => {
                        refusal_logged = false;
                        opened
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
                }
            }
        };
        let open = connection.insert(open);
        let (request, positions) = fetch_request(config, &fetched, &mut session);
        let fetched_response = open
            .request(
                ApiKey::Fetch,
                FETCH_VERSION,
                &request,
                wait + RESPONSE_GRACE,
                response_bytes_max(config),
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
        session.answered(response.error_code, response.session_id);
        let session_refused = [
            ResponseError::FetchSessionIdNotFound.code(),
            ResponseError::InvalidFetchSessionEpoch.code(),
        ];
        if session_refused.contains(&response.error_code) {
            // The leader lost the session (restarted, evicted it): a full fetch at once.
            tracing::debug!(
                "leader {leader} refused the fetch session: {:?}",
                ResponseError::try_from_code(response.error_code)
            );
            continue;
        }
        if response.error_code != 0 {
            tracing::warn!(
                "leader {leader} refused the fetch: {:?}",
                ResponseError::try_from_code(response.error_code)
            );
            glommio::timer::sleep(backoff).await;
            continue;
        }
        let mut applying = Vec::new();
        for topic in response.responses {
            for data in topic.partitions {
                let found = fetched.iter().zip(&positions).find(|(partition, _)| {
                    *partition.topic == *topic.topic.0 && partition.index == data.partition_index
                });
                if let Some((partition, at)) = found {
                    let (partition, at) = (partition.clone(), *at);
                    applying.push(glommio::spawn_local(async move {
                        let outcome = apply(&partition, at, data).await;
                        (partition, outcome)
                    }));
                }
            }
        }
        for task in applying {
            let (partition, outcome) = task.await;
            if let Err((reason, pause)) = outcome {
                let pause = match pause {
                    Pause::Settling => backoff.min(SETTLING_BACKOFF),
                    Pause::Backoff => backoff,
                };
                tracing::warn!(
                    "fetching {} from leader {leader}: {reason}; retrying in {pause:?}",
                    partition.name()
                );
                let pause_ms = i64::try_from(pause.as_millis()).unwrap_or(i64::MAX);
                delayed.delay(key(&partition), clock(), pause_ms);
            }
        }
    }
}

fn key(partition: &Partition) -> (Rc<str>, i32) {
    (Rc::from(&*partition.topic), partition.index)
}

/// The fetch for `partitions` in `session`, and where each one's fetch starts.
fn fetch_request(
    config: &ServerConfig,
    partitions: &[Rc<Partition>],
    session: &mut FetchSession,
) -> (FetchRequest, Vec<FetchedAt>) {
    let mut wanted = Vec::with_capacity(partitions.len());
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
        let topic = TopicName(StrBytes::from_string(partition.topic.to_string()));
        wanted.push((topic, fetched));
    }
    let request = FetchRequest::default()
        .with_replica_id(BrokerId(config.node_id))
        .with_max_wait_ms(config.replica_fetch_wait_max_ms as i32)
        .with_min_bytes(1)
        .with_max_bytes(config.replica_fetch_response_max_bytes as i32);
    (session.next_fetch(wanted).apply_to(request), positions)
}

/// Applies one partition's answer as `replication::follower` decides: appends its records,
/// truncates a diverged suffix, or restarts a log that ends before the leader's starts; dropped
/// unless the replica is still where the fetch started (`at`). An error comes with the pause
/// before the partition is fetched again.
async fn apply(
    partition: &Partition,
    at: FetchedAt,
    data: PartitionData,
) -> Result<(), (String, Pause)> {
    if partition.is_removed() {
        // Deleted here while the fetch was on its way: nothing to apply it to.
        return Ok(());
    }
    let refusal = ResponseError::try_from_code(data.error_code).map(|error| match error {
        ResponseError::OffsetOutOfRange => Refusal::OffsetOutOfRange,
        ResponseError::UnknownTopicOrPartition | ResponseError::UnknownLeaderEpoch => {
            Refusal::Settling
        }
        _ => Refusal::Other,
    });
    let diverging = data.diverging_epoch.epoch >= 0 || data.diverging_epoch.end_offset >= 0;
    let answer = Answer {
        refusal,
        high_watermark: data.high_watermark,
        log_start_offset: data.log_start_offset,
        diverging: diverging
            .then_some((data.diverging_epoch.epoch, data.diverging_epoch.end_offset)),
    };
    let (log_end, _) = partition.fetch_position();
    let local = LocalLog {
        log_start: partition.log_start_offset(),
        log_end,
        high_watermark: partition.high_watermark(),
    };
    let failed = |error: crate::partition::PartitionError| (error.to_string(), Pause::Backoff);
    match follower::on_answer(&answer, local, |epoch| {
        partition.end_offset_for_epoch(epoch)
    }) {
        Step::Retry(pause) => {
            let error = ResponseError::try_from_code(data.error_code);
            Err((format!("the leader answered {error:?}"), pause))
        }
        Step::RestartAt(offset) => partition
            .truncate_fully_and_start_at(at, offset)
            .await
            .map_err(failed),
        Step::TruncateTo(offset) => {
            if let Some((epoch, leader_end)) = answer.diverging {
                tracing::info!(
                    "{} diverged from its leader at epoch {epoch} (leader's end {leader_end}, ours {log_end}); truncating to {offset}",
                    partition.name()
                );
            }
            partition.truncate_to(at, offset).await.map_err(failed)
        }
        Step::Append => {
            let records = data.records.unwrap_or_default();
            let whole = whole_batches(&records);
            let headers = match whole.is_empty() {
                true => Vec::new(),
                false => batch::validate_batches(&whole, usize::MAX).map_err(|error| {
                    (
                        format!("the leader sent a bad batch: {error}"),
                        Pause::Backoff,
                    )
                })?,
            };
            partition
                .append_replicated(at, whole.to_vec(), headers, data.high_watermark)
                .await
                .map_err(failed)?;
            // Records the leader deleted (DeleteRecords, retention) go here too, as far as
            // this replica has committed them.
            let start = follower::follower_log_start(
                partition.log_start_offset(),
                data.log_start_offset,
                partition.high_watermark(),
            );
            if let Some(start) = start {
                partition.delete_records(start).await.map_err(failed)?;
            }
            Ok(())
        }
    }
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
fn response_bytes_max(config: &ServerConfig) -> usize {
    (config.replica_fetch_response_max_bytes as usize)
        .saturating_add(config.socket_request_max_bytes as usize)
        .saturating_add(1 << 20)
}
