//! Fetch: reads each partition on its owning shard; when fewer than `min_bytes` came back, waits
//! (up to `max_wait_ms`) for any of the partitions to grow, woken by the append itself rather
//! than by polling. A consumer reads below the high watermark of partitions led here; a
//! follower (a `replica_id` of 0 or more: another broker's replica fetcher) reads to the log
//! end, and its fetch offset is how the leader learns its progress (`replication::leader`).
//! A request in a fetch session (KIP-227, `api::fetch_session`) reads every partition of its
//! session and is answered with those that have something new. From v13 topics are named by id.

use std::sync::Arc;
use std::time::{Duration, Instant};

use kafka_protocol::messages::fetch_response::{
    AbortedTransaction, EpochEndOffset, FetchableTopicResponse, PartitionData,
};
use kafka_protocol::messages::{FetchRequest, FetchResponse, ProducerId};
use kafka_protocol::ResponseError;

use super::fetch_session::Plan;
use super::RequestContext;
use crate::metadata::TopicId;
use crate::partition::{PartitionError, ReadOutcome};
use crate::quota::manager::QuotaKind;
use crate::runtime::mesh::{FetchPart, ShardRequest};
use crate::runtime::placement::ShardId;
use crate::security::acl::Operation;

/// One requested partition that exists: where it lives and what was asked of it.
struct FetchSlot {
    shard: ShardId,
    topic: Arc<str>,
    partition: i32,
    offset: i64,
    max_bytes: usize,
    current_leader_epoch: i32,
    last_fetched_epoch: i32,
}

/// Longest a fetch may wait, whatever the client asks.
const FETCH_WAIT_MAX: Duration = Duration::from_secs(30);

/// Fetch v13+ names topics by id only.
const TOPIC_IDS_VERSION: i16 = 13;
/// Fetch v15+ carries the fetching replica in `replica_state`.
const REPLICA_STATE_VERSION: i16 = 15;

/// Whether the fetch comes from another broker's replica fetcher (`replica_id` 0 or more).
pub fn is_follower(request: &FetchRequest, version: i16) -> bool {
    replica_id(request, version) >= 0
}

fn replica_id(request: &FetchRequest, version: i16) -> i32 {
    match version >= REPLICA_STATE_VERSION {
        true => request.replica_state.replica_id.0,
        false => request.replica_id.0,
    }
}

/// The most record bytes a response to `request` carries (but for a first batch larger than
/// the limits, which is returned whole): what its connection holds of its byte bound
/// (`queued.max.request.bytes`) while the fetch is served, so that a client pipelining fetches
/// it does not read cannot make the broker build more responses than the bound.
pub fn response_bytes_max(request: &FetchRequest) -> usize {
    if request.session_epoch > 0 {
        // Answered for its whole session, which an incremental fetch does not list.
        return request.max_bytes.max(0) as usize;
    }
    let partitions = request
        .topics
        .iter()
        .flat_map(|topic| &topic.partitions)
        .map(|partition| partition.partition_max_bytes.max(0) as usize)
        .fold(0, usize::saturating_add);
    partitions.min(request.max_bytes.max(0) as usize)
}

/// The response's record sets of at least `min_bytes`: sent from the memory they were read
/// into rather than copied into the response (`protocol::encode_response_sharing`).
pub fn record_sets(response: &FetchResponse, min_bytes: usize) -> Vec<bytes::Bytes> {
    response
        .responses
        .iter()
        .flat_map(|topic| &topic.partitions)
        .filter_map(|partition| partition.records.clone())
        .filter(|records| records.len() >= min_bytes)
        .collect()
}

/// Serves `request`; the answer is whole, and `throttle_requests` makes it the session's.
pub async fn handle(context: &RequestContext<'_>, request: FetchRequest) -> (FetchResponse, Plan) {
    let follower = is_follower(&request, context.version);
    let now_ms = crate::storage::now_ms().max(0) as u64;
    let resolved = context
        .shard
        .fetch_sessions
        .borrow_mut()
        .resolve(&request, follower, now_ms);
    match resolved {
        Ok((plan, topics)) => (serve(context, request.with_topics(topics)).await, plan),
        Err(error) => {
            tracing::debug!("fetch from {} refused: {error}", context.connection.peer);
            let response = FetchResponse::default().with_error_code(error.code());
            (response, Plan::Sessionless)
        }
    }
}

/// Reads every partition `request` names, waiting as it asks for enough to arrive.
async fn serve(context: &RequestContext<'_>, request: FetchRequest) -> FetchResponse {
    let image = context.shard.metadata();
    let by_id = context.version >= TOPIC_IDS_VERSION;
    let replica_id = replica_id(&request, context.version);
    // One slot per requested partition: its owner and place in `parts`, or None if unknown.
    let mut owners: Vec<Option<FetchSlot>> = Vec::new();
    // The error for a partition that has no slot, per requested topic.
    let mut unknown: Vec<ResponseError> = Vec::with_capacity(request.topics.len());
    // Kafka's checks: CLUSTER_ACTION for a follower, READ on each topic for a consumer.
    let follower_allowed = replica_id < 0 || context.cluster_authorized(Operation::ClusterAction);
    for topic in &request.topics {
        let mut known = match by_id {
            true => image.topic_by_id(TopicId(*topic.topic_id.as_bytes())),
            false => image.topic(topic.topic.as_str()),
        };
        let name: Arc<str> = match known {
            Some(known) => Arc::from(known.name.as_str()),
            None => Arc::from(topic.topic.as_str()),
        };
        let allowed = match replica_id >= 0 {
            true => follower_allowed,
            false => context.topic_authorized(Operation::Read, &name),
        };
        unknown.push(match (by_id, known, allowed) {
            (true, None, _) => ResponseError::UnknownTopicId,
            (_, _, false) => ResponseError::TopicAuthorizationFailed,
            _ => ResponseError::UnknownTopicOrPartition,
        });
        if !allowed {
            known = None;
        }
        for partition in &topic.partitions {
            let owner = known
                .filter(|known| (0..known.partitions.len() as i32).contains(&partition.partition))
                .map(|known| context.shard.owner_of(known, partition.partition));
            owners.push(owner.map(|shard| FetchSlot {
                shard,
                topic: name.clone(),
                partition: partition.partition,
                offset: partition.fetch_offset,
                max_bytes: partition.partition_max_bytes.max(0) as usize,
                current_leader_epoch: partition.current_leader_epoch,
                last_fetched_epoch: partition.last_fetched_epoch,
            }));
        }
    }
    if replica_id >= 0 {
        let parts = owners.iter().flatten();
        let remote = parts.clone().filter(|slot| slot.shard != context.shard.id);
        crate::metrics::count_replica_fetch(parts.count(), remote.count());
    }
    let wait = Duration::from_millis(request.max_wait_ms.max(0) as u64).min(FETCH_WAIT_MAX);
    // Kafka's bound: the request's max_bytes, at most the broker's fetch.max.bytes. No partition
    // reads more than the whole response may carry (the first batch still comes whole).
    let response_max_bytes =
        (request.max_bytes.max(0) as usize).min(context.shard.config.fetch_max_bytes as usize);
    for slot in owners.iter_mut().flatten() {
        slot.max_bytes = slot.max_bytes.min(response_max_bytes);
    }
    let deadline = Instant::now() + wait;
    // READ_COMMITTED (1): consumers read below the last stable offset, told which aborted
    // transactions to skip. Followers always read everything.
    let read_committed = replica_id < 0 && request.isolation_level == 1;
    let outcomes = loop {
        let outcomes = read_all(context, &owners, replica_id, read_committed).await;
        let bytes: usize = outcomes
            .iter()
            .flatten()
            .filter_map(|outcome| outcome.as_ref().ok())
            .map(|read| read.records.len())
            .sum();
        let failed = outcomes.iter().flatten().any(Result::is_err);
        let now = Instant::now();
        if bytes >= request.min_bytes.max(1) as usize
            || failed
            || now >= deadline
            || owners.iter().all(Option::is_none)
        {
            break outcomes;
        }
        wait_for_data(context, &owners, &outcomes, replica_id >= 0, deadline - now).await;
    };
    let response = response(&request, outcomes, response_max_bytes, &unknown);
    if replica_id >= 0 {
        return response;
    }
    // A consumer's records count against `consumer_byte_rate`; over it, Kafka answers without
    // them (and takes them back from the rate).
    let bytes = record_sets(&response, 0)
        .iter()
        .map(bytes::Bytes::len)
        .sum();
    match context.throttle(QuotaKind::Fetch, bytes).await {
        0 => response,
        throttle_ms => {
            context.unthrottle(QuotaKind::Fetch, bytes).await;
            FetchResponse::default().with_throttle_time_ms(throttle_ms)
        }
    }
}

/// Applies the request quota (`api::request_quota`) to a fetch's response: a consumer over it
/// is answered without records, which go back to its byte rate, with the larger of the two
/// throttles, as Kafka answers a fetch over either quota. Followers are exempt (throttle 0).
/// Then the answer becomes its session's (`plan`): a throttled one carries no partitions and
/// tells the session nothing.
pub async fn throttle_requests(
    context: &RequestContext<'_>,
    response: FetchResponse,
    plan: Plan,
) -> FetchResponse {
    let throttle_ms = context.request_throttle().await;
    // A fetch the byte rate throttled is already answered without records.
    let mut response = match (throttle_ms, response.throttle_time_ms) {
        (0, _) | (_, 1..) => {
            let throttle_ms = response.throttle_time_ms.max(throttle_ms);
            response.with_throttle_time_ms(throttle_ms)
        }
        _ => {
            let bytes = record_sets(&response, 0)
                .iter()
                .map(bytes::Bytes::len)
                .sum();
            context.unthrottle(QuotaKind::Fetch, bytes).await;
            FetchResponse::default().with_throttle_time_ms(throttle_ms)
        }
    };
    match response.throttle_time_ms {
        0 => context
            .shard
            .fetch_sessions
            .borrow_mut()
            .answered(plan, &mut response),
        _ => response.session_id = plan.session_id(),
    }
    response
}

async fn read_all(
    context: &RequestContext<'_>,
    owners: &[Option<FetchSlot>],
    replica_id: i32,
    read_committed: bool,
) -> Vec<Option<Result<ReadOutcome, PartitionError>>> {
    let parts: Vec<(ShardId, FetchPart)> = owners
        .iter()
        .flatten()
        .map(|slot| {
            let part = FetchPart {
                topic: slot.topic.clone(),
                partition: slot.partition,
                offset: slot.offset,
                max_bytes: slot.max_bytes,
                replica_id,
                current_leader_epoch: slot.current_leader_epoch,
                last_fetched_epoch: slot.last_fetched_epoch,
                read_committed,
            };
            (slot.shard, part)
        })
        .collect();
    let mut answers = context
        .shard
        .scatter(parts, |parts, reply| ShardRequest::Fetch { parts, reply })
        .await
        .into_iter();
    owners
        .iter()
        .map(|owner| {
            owner
                .as_ref()
                .map(|_| answers.next().expect("an answer per part"))
        })
        .collect()
}

/// Waits until a partition's high watermark (a follower's: log end) passes what was just
/// read, or `timeout` passes.
async fn wait_for_data(
    context: &RequestContext<'_>,
    owners: &[Option<FetchSlot>],
    outcomes: &[Option<Result<ReadOutcome, PartitionError>>],
    follower: bool,
    timeout: Duration,
) {
    let (signal, woken) = flume::bounded(owners.len().max(1));
    type Waits = Vec<(Arc<str>, i32, i64, bool)>;
    let mut by_shard: std::collections::BTreeMap<ShardId, Waits> = Default::default();
    for (owner, outcome) in owners.iter().zip(outcomes) {
        if let (Some(slot), Some(Ok(read))) = (owner, outcome) {
            // A consumer has seen up to the high watermark; a follower up to its fetch offset
            // (it asks again from its new log end).
            let seen_end = match follower {
                true => slot.offset,
                false => read.high_watermark.max(slot.offset),
            };
            by_shard.entry(slot.shard).or_default().push((
                slot.topic.clone(),
                slot.partition,
                seen_end,
                follower,
            ));
        }
    }
    for (shard, parts) in by_shard {
        context
            .shard
            .mesh
            .send(
                shard,
                ShardRequest::WaitForData {
                    parts,
                    reply: signal.clone(),
                },
            )
            .await;
    }
    drop(signal);
    futures_lite::future::or(
        async {
            let _ = woken.recv_async().await;
        },
        glommio::timer::sleep(timeout),
    )
    .await;
}

fn response(
    request: &FetchRequest,
    outcomes: Vec<Option<Result<ReadOutcome, PartitionError>>>,
    response_bytes_max: usize,
    unknown: &[ResponseError],
) -> FetchResponse {
    let mut outcomes = outcomes.into_iter();
    let mut bytes_so_far = 0usize;
    let responses = request
        .topics
        .iter()
        .zip(unknown)
        .map(|(topic, unknown_topic)| {
            let partitions = topic
                .partitions
                .iter()
                .map(|partition| {
                    let data = PartitionData::default().with_partition_index(partition.partition);
                    match outcomes.next().expect("an outcome per partition") {
                        None => unknown_partition(data, *unknown_topic),
                        Some(Err(error)) => data
                            .with_error_code(super::produce::partition_error_code(&error))
                            .with_high_watermark(-1)
                            .with_last_stable_offset(-1)
                            .with_log_start_offset(-1)
                            .with_records(Some(bytes::Bytes::new())),
                        Some(Ok(read)) => {
                            // Past the response limit, later partitions return no records (the
                            // first non-empty one is always whole, as in Kafka).
                            let fits = bytes_so_far == 0
                                || bytes_so_far + read.records.len() <= response_bytes_max;
                            let records = if fits {
                                read.records
                            } else {
                                bytes::Bytes::new()
                            };
                            bytes_so_far += records.len();
                            let data = match read.diverging {
                                Some((epoch, end_offset)) => data.with_diverging_epoch(
                                    EpochEndOffset::default()
                                        .with_epoch(epoch)
                                        .with_end_offset(end_offset),
                                ),
                                None => data,
                            };
                            let aborted = read.aborted.map(|aborted| {
                                aborted
                                    .into_iter()
                                    .map(|(producer_id, first_offset)| {
                                        AbortedTransaction::default()
                                            .with_producer_id(ProducerId(producer_id))
                                            .with_first_offset(first_offset)
                                    })
                                    .collect()
                            });
                            data.with_high_watermark(read.high_watermark)
                                .with_last_stable_offset(read.last_stable_offset)
                                .with_log_start_offset(read.log_start_offset)
                                .with_aborted_transactions(aborted)
                                .with_records(Some(records))
                        }
                    }
                })
                .collect();
            FetchableTopicResponse::default()
                .with_topic(topic.topic.clone())
                .with_topic_id(topic.topic_id)
                .with_partitions(partitions)
        })
        .collect();
    FetchResponse::default().with_responses(responses)
}

fn unknown_partition(data: PartitionData, error: ResponseError) -> PartitionData {
    data.with_error_code(error.code())
        .with_high_watermark(-1)
        .with_last_stable_offset(-1)
        .with_log_start_offset(-1)
        .with_records(Some(bytes::Bytes::new()))
}
