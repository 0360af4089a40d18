//! A shard: one pinned executor's share of the broker. It owns the partitions that
//! `placement::shard_for_partition` gives it, serves requests from its mesh queue, and holds the
//! latest metadata image it was handed. All of it is `Rc`/`RefCell`: it cannot leave its core.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use super::mesh::{
    FetchPart, ListOffsetsPart, Mesh, OffsetAnswer, OffsetQuery, ProducePart, ShardRequest,
};
use super::placement::{shard_for_partition, ShardId};
use crate::config::ServerConfig;
use crate::controller::rpc::IsrChange;
use crate::controller::{ControllerRequest, TopicError};
use crate::group::{
    partition_for_group, Coordinator, ErrorCode as GroupError, GroupCall, GroupListing, GROUP_TICK,
    OFFSETS_TOPIC,
};
use crate::metadata::configs::{self, BrokerLayers};
use crate::metadata::{MetadataImage, TopicId, TopicImage};
use crate::partition::{
    Acks, AppendOutcome, FollowerFetch, Partition, PartitionError, ReadOutcome, WantedIsr,
};
use crate::replication::leader::{IsrChangeAnswer, Transition};
use crate::storage::log_dirs::LogDirs;
use crate::storage::LogConfig;

mod partition_dirs;
mod transactions;
use crate::txn::{TxnCoordinator, TRANSACTION_STATE_TOPIC};

type PartitionKey = (Arc<str>, i32);

/// What a topic's resolved configs mean to this broker; cached per shard until the next image.
pub struct TopicSettings {
    /// Every topic config's value in force (`metadata::configs::resolve_topic`).
    pub configs: BTreeMap<String, String>,
    pub log: LogConfig,
    /// `max.message.bytes`: the largest batch accepted.
    pub max_message_bytes: usize,
    /// `message.timestamp.type=LogAppendTime`: the broker stamps every batch.
    pub log_append_time: bool,
    /// `cleanup.policy` includes `compact`.
    pub compacted: bool,
    /// `min.insync.replicas`: acks=all needs at least this many in-sync replicas.
    pub min_insync_replicas: usize,
    /// `message.timestamp.before.max.ms` / `message.timestamp.after.max.ms`.
    pub timestamp_before_max_ms: i64,
    pub timestamp_after_max_ms: i64,
}

impl TopicSettings {
    fn new(configs: BTreeMap<String, String>) -> TopicSettings {
        let compacted = configs
            .get("cleanup.policy")
            .is_some_and(|policy| policy.split(',').any(|part| part.trim() == "compact"));
        TopicSettings {
            log: crate::storage::log_config(&configs),
            max_message_bytes: configs
                .get("max.message.bytes")
                .and_then(|value| value.trim().parse().ok())
                .unwrap_or(1_048_588),
            log_append_time: configs
                .get("message.timestamp.type")
                .is_some_and(|kind| kind == "LogAppendTime"),
            min_insync_replicas: configs
                .get("min.insync.replicas")
                .and_then(|value| value.trim().parse().ok())
                .unwrap_or(1),
            timestamp_before_max_ms: long(&configs, "message.timestamp.before.max.ms"),
            timestamp_after_max_ms: long(&configs, "message.timestamp.after.max.ms"),
            compacted,
            configs,
        }
    }
}

/// A resolved long config; unbounded when absent (resolved configs always carry a value).
fn long(configs: &BTreeMap<String, String>, key: &str) -> i64 {
    configs
        .get(key)
        .and_then(|value| value.trim().parse().ok())
        .unwrap_or(i64::MAX)
}

/// CPU shares of the background task queue against the default queue's 1000, where requests,
/// replica fetchers and group timers run: under contention maintenance gets about a tenth.
const BACKGROUND_SHARES: usize = 100;
/// The pause before an ISR change whose answer was lost is asked again (Kafka's
/// AlterPartitionManager retries after `retry.backoff.ms`, 100 ms).
const ISR_CHANGE_RETRY: Duration = Duration::from_millis(100);

/// What the controller's refusal of an ISR change says of its fate (Kafka's
/// `Partition.handleAlterPartitionError`).
fn isr_change_answer(error: &TopicError) -> IsrChangeAnswer {
    match error {
        TopicError::IneligibleReplica(_) | TopicError::InvalidRequest(_) => {
            IsrChangeAnswer::NotMade
        }
        TopicError::NotController(_) | TopicError::Timeout(_) | TopicError::Storage(_) => {
            IsrChangeAnswer::Unknown
        }
        _ => IsrChangeAnswer::Stale,
    }
}

/// The shard's task queue for maintenance. Tasks spawned from it (a flusher's writes, say) stay
/// in it: glommio spawns into the queue of the task that spawns.
fn background_queue() -> glommio::TaskQueueHandle {
    glommio::executor().create_task_queue(
        glommio::Shares::Static(BACKGROUND_SHARES),
        glommio::Latency::NotImportant,
        "background",
    )
}

pub struct Shard {
    /// Where maintenance runs (`spawn_background`).
    background: glommio::TaskQueueHandle,
    pub id: ShardId,
    pub config: Arc<ServerConfig>,
    pub mesh: Mesh,
    pub controller: flume::Sender<ControllerRequest>,
    /// The log directories, shared with every shard (`storage::log_dirs`).
    pub log_dirs: Arc<LogDirs>,
    /// The byte rates and mutation buckets of the quota scopes this shard owns
    /// (`runtime::shard_quotas`).
    pub quota_ledger: RefCell<crate::quota::manager::QuotaLedger>,
    /// Whether the previous run shut down cleanly (logs opened at start-up skip the scan).
    clean_start: bool,
    metadata: RefCell<Arc<MetadataImage>>,
    partitions: RefCell<HashMap<PartitionKey, (TopicId, Rc<Partition>)>>,
    /// Producer ids this shard may hand out, a block at a time from the controller.
    producer_ids: RefCell<std::ops::Range<i64>>,
    /// Coordinator of the groups whose offsets partitions this shard owns.
    groups: Coordinator,
    /// Coordinator of the transactional ids whose `__transaction_state` partitions it owns.
    txns: TxnCoordinator,
    /// Connections to other brokers for coordinator traffic (markers, transaction adds).
    pub peers: super::peer::PeerPool,
    /// Resolved topic settings by topic id, emptied whenever a new image arrives.
    settings: RefCell<HashMap<TopicId, Rc<TopicSettings>>>,
    /// Leaders this shard runs a replica fetcher for (`runtime::fetcher`).
    fetchers: RefCell<std::collections::BTreeSet<i32>>,
    /// Replicas no log directory could take (`LogDirs::place`), said once.
    unplaced: RefCell<std::collections::HashSet<PartitionKey>>,
    /// The fetch sessions of connections on this shard (`api::fetch_session`).
    pub fetch_sessions: RefCell<crate::api::fetch_session::FetchSessions>,
}

impl Shard {
    pub fn new(
        id: ShardId,
        config: Arc<ServerConfig>,
        mesh: Mesh,
        controller: flume::Sender<ControllerRequest>,
        log_dirs: Arc<LogDirs>,
        clean_start: bool,
    ) -> Shard {
        // Each shard keeps its share of the fetch session slots.
        let session_slots =
            (config.max_incremental_fetch_session_cache_slots as usize / mesh.shard_count()).max(1);
        Shard {
            background: background_queue(),
            id,
            log_dirs,
            quota_ledger: RefCell::new(crate::quota::manager::QuotaLedger::new(
                config.quota_sampling,
                config.controller_quota_sampling,
            )),
            clean_start,
            mesh,
            controller,
            metadata: RefCell::new(Arc::new(MetadataImage::default())),
            partitions: RefCell::new(HashMap::new()),
            producer_ids: RefCell::new(0..0),
            settings: RefCell::new(HashMap::new()),
            fetchers: RefCell::new(Default::default()),
            unplaced: RefCell::new(Default::default()),
            fetch_sessions: RefCell::new(crate::api::fetch_session::FetchSessions::new(
                session_slots,
                id.0 as u32 + 1,
            )),
            txns: TxnCoordinator::new(),
            peers: super::peer::PeerPool::new("flink-broker", config.links.inter_broker.security()),
            groups: Coordinator::new(
                Duration::from_millis(config.group_initial_rebalance_delay_ms),
                Duration::from_millis(config.group_consumer_session_timeout_ms),
            ),
            config,
        }
    }

    /// Runs maintenance (compaction, retention, the time-based flush, producer expiry) in the
    /// shard's background task queue, so that it takes CPU from requests only by its shares.
    pub fn spawn_background(&self, work: impl std::future::Future<Output = ()> + 'static) {
        match glommio::spawn_local_into(work, self.background) {
            Ok(task) => {
                task.detach();
            }
            Err(error) => {
                tracing::error!("cannot start background work on shard {}: {error}", self.id)
            }
        }
    }

    /// A producer id never handed out before on this cluster.
    pub async fn next_producer_id(&self) -> Result<i64, TopicError> {
        if self.producer_ids.borrow().is_empty() {
            let (reply, answer) = flume::bounded(1);
            let asked = self
                .controller
                .send_async(ControllerRequest::AllocateProducerIds { reply })
                .await;
            let block = match asked {
                Ok(()) => answer
                    .recv_async()
                    .await
                    .map_err(|_| TopicError::Storage("controller stopped".into()))??,
                Err(_) => return Err(TopicError::Storage("controller stopped".into())),
            };
            *self.producer_ids.borrow_mut() = block;
        }
        let next = self
            .producer_ids
            .borrow_mut()
            .next()
            .expect("a fresh block is not empty");
        Ok(next)
    }

    /// The current metadata image (cheap: an `Arc` clone).
    pub fn metadata(&self) -> Arc<MetadataImage> {
        self.metadata.borrow().clone()
    }

    /// The topic's configs as this broker resolves them (topic overrides, then dynamic and
    /// static broker keys, then defaults).
    pub fn topic_settings(&self, topic: &TopicImage) -> Rc<TopicSettings> {
        if let Some(settings) = self.settings.borrow().get(&topic.id) {
            return settings.clone();
        }
        // Resolved from the current image: a handler may still hold an older one, whose
        // configs must not be cached past the image that replaced it.
        let image = self.metadata();
        let overrides = image
            .topic_by_id(topic.id)
            .map_or(&topic.configs, |current| &current.configs);
        let layers = BrokerLayers::new(&self.config, &image.broker_configs);
        let settings = Rc::new(TopicSettings::new(configs::resolve_topic(
            overrides, &layers,
        )));
        self.settings
            .borrow_mut()
            .insert(topic.id, settings.clone());
        settings
    }

    pub fn owner_of(&self, topic: &TopicImage, partition: i32) -> ShardId {
        shard_for_partition(topic.id, partition, self.mesh.shard_count())
    }

    /// Serves the mesh queue until every sender is gone. Each request runs as its own task so a
    /// slow fsync does not hold up fetches.
    pub async fn serve(self: Rc<Self>, queue: flume::Receiver<ShardRequest>) {
        while let Ok(request) = queue.recv_async().await {
            glommio::spawn_local(self.clone().handle(request)).detach();
        }
    }

    /// Sends each part to its owning shard (handling local ones here) and gathers the answers
    /// back in the order of `parts`.
    pub async fn scatter<P, R>(
        self: &Rc<Self>,
        parts: Vec<(ShardId, P)>,
        build: impl Fn(Vec<P>, flume::Sender<Vec<R>>) -> ShardRequest,
    ) -> Vec<R> {
        self.dispatch(parts, build).await.gather().await
    }

    /// Sends each part to its owning shard, local ones started here; returns once every part
    /// is in its owner's queue (or running here), with the answers still to come.
    ///
    /// Order: of two produces dispatched one after the other to the same owner, the first is
    /// appended first. The mesh queue is FIFO (a sender that finds it full waits in line too);
    /// the owner's `serve` spawns each request's `handle` in queue order, as a local group's
    /// `handle` is spawned here in call order; `handle` spawns a task per part, and the part
    /// task asks for its partition's append permit before its first await (`Partition::append`).
    /// All of them run in the default task queue (glommio spawns into the spawner's queue),
    /// whose tasks run in the order they were spawned or woken (0.9 even polls a new task at
    /// once, inside `spawn_local`), so the parts ask for the permit in dispatch order, and it is granted first come, first served (`partition::append_permit`). Hence a
    /// connection that dispatches its produces one after the other (`api::Sequencing::Produce`)
    /// has them appended in request order.
    pub async fn dispatch<P, R>(
        self: &Rc<Self>,
        parts: Vec<(ShardId, P)>,
        build: impl Fn(Vec<P>, flume::Sender<Vec<R>>) -> ShardRequest,
    ) -> Scattered<R> {
        let count = parts.len();
        let mut groups: BTreeMap<ShardId, (Vec<usize>, Vec<P>)> = BTreeMap::new();
        for (position, (shard, part)) in parts.into_iter().enumerate() {
            let group = groups.entry(shard).or_default();
            group.0.push(position);
            group.1.push(part);
        }
        let mut pending = Vec::with_capacity(groups.len());
        for (shard, (positions, parts)) in groups {
            let (reply, answers) = flume::bounded(1);
            let request = build(parts, reply);
            if shard == self.id {
                glommio::spawn_local(self.clone().handle(request)).detach();
            } else {
                self.mesh.send(shard, request).await;
            }
            pending.push((positions, answers));
        }
        Scattered { count, pending }
    }

    async fn handle(self: Rc<Self>, request: ShardRequest) {
        match request {
            ShardRequest::Produce {
                parts,
                acks,
                timeout,
                reply,
            } => {
                let tasks: Vec<_> = parts
                    .into_iter()
                    .map(|part| glommio::spawn_local(self.clone().produce(part, acks, timeout)))
                    .collect();
                let _ = reply.send(join_tasks(tasks).await);
            }
            ShardRequest::Fetch { parts, reply } => {
                let tasks: Vec<_> = parts
                    .into_iter()
                    .map(|part| glommio::spawn_local(self.clone().fetch(part)))
                    .collect();
                let _ = reply.send(join_tasks(tasks).await);
            }
            ShardRequest::ListOffsets { parts, reply } => {
                let mut answers = Vec::with_capacity(parts.len());
                for part in parts {
                    answers.push(self.list_offsets(part).await);
                }
                let _ = reply.send(answers);
            }
            ShardRequest::WaitForData { parts, reply } => {
                for (topic, index, offset, follower) in parts {
                    if let Some(partition) = self.partition(&topic, index) {
                        partition.wait_for_data(offset, follower, reply.clone());
                    }
                }
            }
            ShardRequest::Group(call) => self.serve_group_call(*call).await,
            ShardRequest::Txn(call) => self.serve_txn_call(*call).await,
            ShardRequest::WriteMarkers { parts, reply } => {
                let tasks: Vec<_> = parts
                    .into_iter()
                    .map(|(topic, index, marker)| {
                        glommio::spawn_local(self.clone().write_marker(topic, index, marker))
                    })
                    .collect();
                let _ = reply.send(join_tasks(tasks).await);
            }
            ShardRequest::DescribeProducers { parts, reply } => {
                let answers = parts
                    .into_iter()
                    .map(|(topic, index)| Ok(self.hosted(&topic, index)?.producers()))
                    .collect();
                let _ = reply.send(answers);
            }
            ShardRequest::ApplyMetadata { image, reply } => {
                self.apply_metadata(image).await;
                let _ = reply.send(());
            }
            ShardRequest::DeleteRecords { parts, reply } => {
                let mut answers = Vec::with_capacity(parts.len());
                for (topic, index, offset) in parts {
                    let answer = match self.hosted(&topic, index) {
                        Ok(partition) => partition.delete_records(offset).await,
                        Err(error) => Err(error),
                    };
                    answers.push(answer);
                }
                let _ = reply.send(answers);
            }
            ShardRequest::Quota(call) => self.serve_quota(call),
            ShardRequest::LogSizes { reply } => {
                let sizes = self
                    .partitions
                    .borrow()
                    .iter()
                    .map(|((topic, index), (_, partition))| {
                        (
                            topic.clone(),
                            *index,
                            partition.log_dir().path().to_path_buf(),
                            partition.size_bytes(),
                        )
                    })
                    .collect();
                let _ = reply.send(sizes);
            }
            ShardRequest::Metrics { reply } => {
                let _ = reply.send(self.metrics());
            }
            ShardRequest::Shutdown { reply } => {
                let _ = reply.send(self.close_partitions().await);
            }
        }
    }

    /// This shard's metrics now (see `crate::metrics`).
    pub fn metrics(&self) -> crate::metrics::ShardMetrics {
        let partitions = self.partitions.borrow();
        let led: Vec<&Rc<Partition>> = partitions
            .values()
            .map(|(_, partition)| partition)
            .filter(|partition| partition.is_leader())
            .collect();
        let under_replicated = led
            .iter()
            .filter(|partition| partition.is_under_replicated())
            .count();
        let mut metrics = crate::metrics::ShardMetrics::collect(
            self.id.0,
            self.mesh.queue_depth(self.id),
            (partitions.len(), led.len(), under_replicated),
        );
        let sessions = self.fetch_sessions.borrow();
        (metrics.fetch_sessions, metrics.fetch_session_partitions) =
            (sessions.count(), sessions.partitions());
        metrics
    }

    /// Flushes and closes every hosted log (with its producer snapshot) for a clean shutdown;
    /// `false` if any could not be closed.
    async fn close_partitions(&self) -> bool {
        let closing: Vec<_> = self
            .hosted_partitions()
            .into_iter()
            .map(|(partition, _)| {
                glommio::spawn_local(async move {
                    let closed = partition.close().await;
                    if let Err(error) = &closed {
                        tracing::error!("cannot close {} cleanly: {error}", partition.name());
                    }
                    closed.is_ok()
                })
            })
            .collect();
        join_tasks(closing).await.into_iter().all(|closed| closed)
    }

    /// Sends `call` to the shard coordinating its group (or every shard, for a listing is
    /// answered per shard by the caller). Fails it when the offsets topic does not exist yet.
    pub async fn group_call(self: &Rc<Self>, call: GroupCall) {
        let image = self.metadata();
        let Some(offsets_topic) = image.topic(OFFSETS_TOPIC) else {
            call.fail(GroupError::CoordinatorNotAvailable);
            return;
        };
        let group_id = call.group_id().unwrap_or_default();
        let partition = partition_for_group(group_id, offsets_topic.partitions.len() as i32);
        let owner = self.owner_of(offsets_topic, partition);
        if owner == self.id {
            self.serve_group_call(call).await;
        } else {
            self.mesh
                .send(owner, ShardRequest::Group(Box::new(call)))
                .await;
        }
    }

    /// Sends one part per (topic, partition), in order, to the shard owning it, and returns
    /// the answers in that order. A partition of an unknown topic, or past the topic's
    /// partition count, is answered `NotHosted`, and one another broker leads `NotLeader`,
    /// without leaving this shard.
    pub async fn scatter_led<P, R>(
        self: &Rc<Self>,
        requested: Vec<(Arc<str>, i32, P)>,
        build: impl Fn(Vec<P>, flume::Sender<Vec<Result<R, PartitionError>>>) -> ShardRequest,
    ) -> Vec<Result<R, PartitionError>> {
        let node_id = self.config.node_id;
        self.scatter_where(requested, build, |partition| partition.leader == node_id)
            .await
    }

    /// `scatter_led` for every partition this broker hosts a replica of, leader or follower
    /// (DescribeProducers, which Kafka answers from any replica).
    pub async fn scatter_hosted<P, R>(
        self: &Rc<Self>,
        requested: Vec<(Arc<str>, i32, P)>,
        build: impl Fn(Vec<P>, flume::Sender<Vec<Result<R, PartitionError>>>) -> ShardRequest,
    ) -> Vec<Result<R, PartitionError>> {
        let node_id = self.config.node_id;
        self.scatter_where(requested, build, |partition| {
            partition.replicas.contains(&node_id)
        })
        .await
    }

    async fn scatter_where<P, R>(
        self: &Rc<Self>,
        requested: Vec<(Arc<str>, i32, P)>,
        build: impl Fn(Vec<P>, flume::Sender<Vec<Result<R, PartitionError>>>) -> ShardRequest,
        served_here: impl Fn(&crate::metadata::PartitionImage) -> bool,
    ) -> Vec<Result<R, PartitionError>> {
        let image = self.metadata();
        let mut parts = Vec::new();
        let mut here = Vec::with_capacity(requested.len());
        for (topic, partition, part) in requested {
            let known = image
                .topic(&topic)
                .filter(|known| (0..known.partitions.len() as i32).contains(&partition));
            let served = known.map(|known| served_here(&known.partitions[partition as usize]));
            here.push(served);
            if let (Some(known), Some(true)) = (known, served) {
                parts.push((self.owner_of(known, partition), part));
            }
        }
        let mut answers = self.scatter(parts, build).await.into_iter();
        here.into_iter()
            .map(|served| match served {
                Some(true) => answers.next().expect("an answer per part served here"),
                Some(false) => Err(PartitionError::NotLeader),
                None => Err(PartitionError::NotHosted(String::new())),
            })
            .collect()
    }

    /// Sends `build(reply)` to every shard (this one included, through its own queue) and
    /// gathers the answers in shard order.
    pub async fn ask_every_shard<T>(
        &self,
        build: impl Fn(flume::Sender<T>) -> ShardRequest,
    ) -> Vec<T> {
        let mut answers = Vec::with_capacity(self.mesh.shard_count());
        for shard in 0..self.mesh.shard_count() {
            let (reply, answer) = flume::bounded(1);
            self.mesh.send(ShardId(shard), build(reply)).await;
            if let Ok(answer) = answer.recv_async().await {
                answers.push(answer);
            }
        }
        answers
    }

    /// Asks every shard's coordinator to list its groups.
    pub async fn list_groups(self: &Rc<Self>) -> Vec<GroupListing> {
        let mut listings = Vec::new();
        for shard in 0..self.mesh.shard_count() {
            let (reply, answer) = flume::bounded(1);
            let call = GroupCall::List { reply };
            match ShardId(shard) == self.id {
                true => self.serve_group_call(call).await,
                false => {
                    self.mesh
                        .send(ShardId(shard), ShardRequest::Group(Box::new(call)))
                        .await
                }
            }
            listings.extend(answer.recv_async().await.unwrap_or_default());
        }
        listings
    }

    async fn serve_group_call(&self, call: GroupCall) {
        let Some(group_id) = call.group_id().map(str::to_string) else {
            return self.groups.handle(call, None).await;
        };
        let image = self.metadata();
        let Some(offsets_topic) = image.topic(OFFSETS_TOPIC) else {
            return call.fail(GroupError::CoordinatorNotAvailable);
        };
        let partition = partition_for_group(&group_id, offsets_topic.partitions.len() as i32);
        if offsets_topic.partitions[partition as usize].leader != self.config.node_id {
            return call.fail(GroupError::NotCoordinator);
        }
        if !self.groups.is_loaded(partition) {
            return call.fail(GroupError::CoordinatorLoadInProgress);
        }
        let offsets_partition = self.partition(&Arc::from(OFFSETS_TOPIC), partition);
        self.groups.handle(call, offsets_partition).await;
    }

    /// Runs group timeouts (sessions, rebalance deadlines) until the process ends, and every
    /// `offsets.retention.check.interval.ms` expires old offsets of groups without members.
    pub async fn tick_groups(self: Rc<Self>) {
        let check_interval = Duration::from_millis(self.config.offsets_retention_check_interval_ms);
        let mut next_expiry = std::time::Instant::now() + check_interval;
        loop {
            glommio::timer::sleep(GROUP_TICK).await;
            let now = std::time::Instant::now();
            self.groups.tick(now, &self.partition_counts());
            self.groups
                .persist_changed_groups(|group_id| self.offsets_partition_for(group_id))
                .await;
            if now >= next_expiry {
                next_expiry = now + check_interval;
                let retention_ms = self.config.offsets_retention_minutes.saturating_mul(60_000);
                self.groups
                    .expire_offsets(retention_ms, |group_id| {
                        self.offsets_partition_for(group_id)
                    })
                    .await;
            }
        }
    }

    /// The `__consumer_offsets` partition of `group_id`, if this shard hosts it.
    fn offsets_partition_for(&self, group_id: &str) -> Option<Rc<Partition>> {
        let image = self.metadata();
        let offsets_topic = image.topic(OFFSETS_TOPIC)?;
        let partition = partition_for_group(group_id, offsets_topic.partitions.len() as i32);
        // Only the partition's leader coordinates the group; a follower replica is no coordinator.
        if offsets_topic.partitions[partition as usize].leader != self.config.node_id {
            return None;
        }
        self.partition(&Arc::from(OFFSETS_TOPIC), partition)
    }

    /// Every partition this shard hosts, with its topic's image (configs), for background work
    /// such as the log cleaner.
    pub fn hosted_partitions(&self) -> Vec<(Rc<Partition>, Arc<TopicImage>)> {
        let image = self.metadata();
        self.partitions
            .borrow()
            .iter()
            .filter_map(|((topic, _), (_, partition))| {
                Some((partition.clone(), image.topic(topic)?.clone()))
            })
            .collect()
    }

    /// Partitions of every topic, by name, from the current image.
    pub fn partition_counts(&self) -> std::collections::BTreeMap<String, i32> {
        let image = self.metadata();
        image
            .topics
            .values()
            .map(|topic| (topic.name.clone(), topic.partitions.len() as i32))
            .collect()
    }

    fn partition(&self, topic: &Arc<str>, index: i32) -> Option<Rc<Partition>> {
        let key = (topic.clone(), index);
        self.partitions
            .borrow()
            .get(&key)
            .map(|(_, partition)| partition.clone())
    }

    fn hosted(&self, topic: &Arc<str>, index: i32) -> Result<Rc<Partition>, PartitionError> {
        self.partition(topic, index)
            .ok_or_else(|| PartitionError::NotHosted(format!("{topic}-{index}")))
    }

    async fn produce(
        self: Rc<Self>,
        part: ProducePart,
        acks: Acks,
        timeout: Duration,
    ) -> Result<AppendOutcome, PartitionError> {
        let partition = self.hosted(&part.topic, part.partition)?;
        let verifier = part
            .verify_transaction
            .map(|transactional_id| self.verifier(transactional_id, &part.topic, part.partition));
        partition
            .append_verified(part.batches, part.headers, acks, timeout, verifier)
            .await
    }

    /// A consumer's fetch reads below the high watermark of a partition led here; a
    /// follower's reads to the log end and tells the leader how far the follower has come.
    async fn fetch(self: Rc<Self>, part: FetchPart) -> Result<ReadOutcome, PartitionError> {
        let partition = self.hosted(&part.topic, part.partition)?;
        let current = partition.leader_epoch();
        if part.current_leader_epoch >= 0 && part.current_leader_epoch < current {
            return Err(PartitionError::FencedLeaderEpoch {
                current,
                received: part.current_leader_epoch,
            });
        }
        if part.current_leader_epoch > current {
            return Err(PartitionError::UnknownLeaderEpoch {
                current,
                received: part.current_leader_epoch,
            });
        }
        if part.replica_id < 0 {
            if !partition.is_leader() {
                return Err(PartitionError::NotLeader);
            }
            return partition
                .read(part.offset, part.max_bytes, part.read_committed)
                .await;
        }
        let fetch = FollowerFetch {
            replica_id: part.replica_id,
            fetch_offset: part.offset,
            last_fetched_epoch: part.last_fetched_epoch,
            max_bytes: part.max_bytes,
        };
        let (outcome, wanted) = partition.read_for_follower(fetch).await?;
        if let Some(wanted) = wanted {
            self.alter_isr(&partition, wanted);
        }
        Ok(outcome)
    }

    /// Asks the controller for an ISR change of a partition led here, in the background. The
    /// change stays pending (counted for the high watermark) unless the controller says it did
    /// not make it; without an answer it is asked again (`Replicas::isr_change_answered`).
    fn alter_isr(&self, partition: &Rc<Partition>, wanted: WantedIsr) {
        tracing::info!(
            "asking the controller to make the ISR of {} {:?}",
            partition.name(),
            wanted.isr
        );
        let controller = self.controller.clone();
        let partition = partition.clone();
        glommio::spawn_local(async move {
            loop {
                let change = IsrChange {
                    topic: partition.topic.to_string(),
                    partition: partition.index,
                    leader_epoch: wanted.leader_epoch,
                    partition_epoch: wanted.partition_epoch,
                    isr: wanted.isr.clone(),
                };
                let (reply, answer) = flume::bounded(1);
                let request = ControllerRequest::AlterPartition {
                    changes: vec![change],
                    reply,
                };
                let outcome = match controller.send_async(request).await {
                    Ok(()) => answer.recv_async().await.ok(),
                    Err(_) => None,
                };
                let answer = match outcome.and_then(|mut results| results.pop()) {
                    Some(Ok(())) => IsrChangeAnswer::Made,
                    Some(Err(error)) => {
                        tracing::info!("ISR change of {} refused: {error}", partition.name());
                        isr_change_answer(&error)
                    }
                    None => IsrChangeAnswer::Unknown,
                };
                if !partition.isr_change_answered(&wanted, answer) {
                    return;
                }
                glommio::timer::sleep(ISR_CHANGE_RETRY).await;
            }
        })
        .detach();
    }

    /// Every `replica.lag.time.max.ms / 2`, asks for lagging followers to leave the ISRs of
    /// the partitions led here.
    pub async fn tick_replicas(self: Rc<Self>) {
        let lag_max_ms = self.config.replica_lag_time_max_ms;
        let interval = Duration::from_millis((lag_max_ms / 2).max(10));
        let mut last_tick = std::time::Instant::now();
        loop {
            glommio::timer::sleep(interval).await;
            let late = last_tick.elapsed() > interval * 2;
            last_tick = std::time::Instant::now();
            if late {
                // This process was stopped or starved: its followers' fetches wait unread in
                // its sockets, and their silence is its own. Let them be read first.
                tracing::info!("replica lag check skipped: it ran late (the process was paused)");
                continue;
            }
            for (partition, _) in self.hosted_partitions() {
                if let Some(wanted) = partition.isr_shrink(lag_max_ms as i64) {
                    self.alter_isr(&partition, wanted);
                }
            }
        }
    }

    /// `host:port` of broker `node_id`'s inter-broker listener, if it is registered.
    pub fn broker_address(&self, node_id: i32) -> Option<String> {
        let image = self.metadata();
        let broker = image.broker(node_id)?;
        let name = self.config.inter_broker_listener()?;
        let endpoint = broker
            .endpoints
            .iter()
            .find(|endpoint| endpoint.name == name)?;
        Some(format!("{}:{}", endpoint.host, endpoint.port))
    }
}

impl super::fetcher::FetcherHost for Shard {
    fn shard_number(&self) -> usize {
        self.id.0
    }
    fn shard_count(&self) -> usize {
        self.mesh.shard_count()
    }

    fn server_config(&self) -> &ServerConfig {
        &self.config
    }

    fn followed_from(&self, leader: i32) -> Vec<Rc<Partition>> {
        self.partitions
            .borrow()
            .values()
            .filter(|(_, partition)| partition.leader_to_follow() == Some(leader))
            .map(|(_, partition)| partition.clone())
            .collect()
    }

    fn fetcher_stopped(&self, leader: i32) {
        self.fetchers.borrow_mut().remove(&leader);
    }

    fn broker_address(&self, leader: i32) -> Option<String> {
        Shard::broker_address(self, leader)
    }
}

impl Shard {
    /// Starts a fetcher for every leader that partitions here follow and none fetches from.
    fn start_fetchers(self: &Rc<Self>) {
        let leaders: std::collections::BTreeSet<i32> = self
            .partitions
            .borrow()
            .values()
            .filter_map(|(_, partition)| partition.leader_to_follow())
            .filter(|leader| *leader >= 0)
            .collect();
        for leader in leaders {
            if self.fetchers.borrow_mut().insert(leader) {
                glommio::spawn_local(super::fetcher::run(self.clone(), leader)).detach();
            }
        }
    }

    async fn list_offsets(&self, part: ListOffsetsPart) -> Result<OffsetAnswer, PartitionError> {
        let partition = self.hosted(&part.topic, part.partition)?;
        match part.query {
            OffsetQuery::Earliest => Ok((partition.log_start_offset(), -1)),
            OffsetQuery::Latest => Ok((partition.high_watermark(), -1)),
            OffsetQuery::LastStable => Ok((partition.last_stable_offset(), -1)),
            OffsetQuery::EpochEnd(epoch) => {
                let (epoch, end) = partition.end_offset_for_epoch(epoch);
                Ok((end, i64::from(epoch)))
            }
            OffsetQuery::Timestamp(timestamp) => Ok(partition
                .offset_for_timestamp(timestamp)
                .await?
                .unwrap_or((-1, -1))),
            OffsetQuery::MaxTimestamp => Ok(partition.max_timestamp().await?.unwrap_or((-1, -1))),
            OffsetQuery::LatestTiered => Ok((-1, -1)),
        }
    }

    /// Adopts `image`: opens the partitions this shard now owns and removes those whose topic
    /// was deleted (or deleted and created again under the same name).
    pub async fn apply_metadata(self: &Rc<Self>, image: Arc<MetadataImage>) {
        let stale: Vec<(PartitionKey, Rc<Partition>)> = self
            .partitions
            .borrow()
            .iter()
            .filter(|((topic, _), (id, _))| {
                image.topic(topic).is_none_or(|current| current.id != *id)
            })
            .map(|(key, (_, partition))| (key.clone(), partition.clone()))
            .collect();
        for (key, partition) in stale {
            let Some((topic_id, _)) = self.partitions.borrow_mut().remove(&key) else {
                continue;
            };
            partition.log_dir().unhost((topic_id, partition.index));
            match partition.remove().await {
                Ok(()) => tracing::info!(
                    "deleted partition {} on shard {}",
                    partition.name(),
                    self.id
                ),
                Err(error) => {
                    tracing::error!("could not delete partition {}: {error}", partition.name())
                }
            }
        }
        let configs_changed = {
            let previous = self.metadata.borrow();
            previous.broker_configs != image.broker_configs
                || image.topics.values().any(|topic| {
                    previous
                        .topic(&topic.name)
                        .is_some_and(|before| before.configs != topic.configs)
                })
        };
        let previous = self.metadata.replace(image.clone());
        if previous.metadata_index == 0 {
            self.remove_strays(&image).await;
        }
        self.settings.borrow_mut().clear();
        for topic in image.topics.values() {
            // Partitions first seen in this image (not in the first image after start-up) are
            // new: only those may get a log in any directory while one is offline.
            let known = match previous.metadata_index {
                0 => usize::MAX,
                _ => previous
                    .topic(&topic.name)
                    .filter(|before| before.id == topic.id)
                    .map_or(0, |before| before.partitions.len()),
            };
            self.open_owned_partitions(topic, known).await;
        }
        if configs_changed {
            for (partition, topic) in self.hosted_partitions() {
                let settings = self.topic_settings(&topic);
                partition.set_log_config(settings.log);
                partition.set_min_insync_replicas(settings.min_insync_replicas);
            }
        }
        self.adopt_roles().await;
        self.start_fetchers();
    }

    /// Hands every hosted partition its place from `image`. Group and transaction coordination
    /// follow the leadership of `__consumer_offsets` and `__transaction_state` partitions: a
    /// new leader loads the groups or transactional ids from its log, a former one forgets
    /// them.
    async fn adopt_roles(self: &Rc<Self>) {
        for (partition, topic) in self.hosted_partitions() {
            let Some(state) = topic.partitions.get(partition.index as usize) else {
                continue;
            };
            let transition = partition.adopt(state).await;
            if transition == Transition::Unchanged {
                continue;
            }
            let count = topic.partitions.len() as i32;
            let leads = transition == Transition::BecameLeader;
            if topic.name == OFFSETS_TOPIC {
                self.groups.unload(partition.index, count);
                if leads {
                    self.groups.load(&partition).await;
                }
            } else if topic.name == TRANSACTION_STATE_TOPIC {
                self.txns.unload(partition.index, count);
                if leads {
                    let epoch = partition.leader_epoch();
                    self.txns.load(self, &partition, epoch).await;
                }
            }
        }
    }

    fn log_config(&self, topic: &TopicImage) -> LogConfig {
        self.topic_settings(topic).log
    }
}

/// The answers of parts `Shard::dispatch` sent, each group with its parts' positions.
pub struct Scattered<R> {
    count: usize,
    pending: Vec<(Vec<usize>, flume::Receiver<Vec<R>>)>,
}

impl<R> Scattered<R> {
    /// Waits for every owner's answers; returns them in the order of the parts.
    pub async fn gather(self) -> Vec<R> {
        let mut results: Vec<Option<R>> = (0..self.count).map(|_| None).collect();
        for (positions, answers) in self.pending {
            let answers = answers
                .recv_async()
                .await
                .expect("an owning shard always answers");
            for (position, answer) in positions.into_iter().zip(answers) {
                results[position] = Some(answer);
            }
        }
        results
            .into_iter()
            .map(|result| result.expect("every part answered"))
            .collect()
    }
}

/// Awaits spawned tasks in order; they run concurrently meanwhile.
async fn join_tasks<T>(tasks: Vec<glommio::Task<T>>) -> Vec<T> {
    let mut results = Vec::with_capacity(tasks.len());
    for task in tasks {
        results.push(task.await);
    }
    results
}
