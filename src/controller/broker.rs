//! The broker's side of the controller: it registers this broker with the active controller,
//! keeps its session alive with heartbeats, follows the metadata log (from the local quorum
//! member on a controller node, else by fetching it from the controllers), hands every shard
//! each new image, and carries the shards' requests (`ControllerRequest`) to the active
//! controller, here or over the CONTROLLER listener.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use super::driver::{apply_fetched, Driver};
use super::rpc::{Call, Reply};
use super::transport::{ControllerClient, CALL_DEADLINE};
use super::{ControllerRequest, Job, TopicError};
use crate::config::ServerConfig;
use crate::metadata::{MetadataImage, TopicId};
use crate::runtime::mesh::{Mesh, ShardRequest};
use crate::runtime::placement::ShardId;
use crate::storage::log_dirs::LogDirs;

/// Pause between metadata fetches that failed or found nothing (a fetch waits on the
/// controller for new entries, so a follower otherwise sees changes at once).
const FETCH_INTERVAL: Duration = Duration::from_millis(20);
/// How long a metadata fetch waits on the controller for a new entry.
const FETCH_WAIT_MS: u32 = 500;
/// Long polls a broker waits for a change it made to reach it.
const CATCH_UP_POLLS: usize = 20;

/// The way to the active controller: the local one when this node leads the quorum, else over
/// the network. Each task that calls keeps its own (one connection, one call at a time).
pub struct Link {
    local: Option<(Rc<Driver>, flume::Sender<Job>)>,
    remote: ControllerClient,
}

impl Link {
    pub async fn call(&mut self, call: Call) -> Reply {
        if let Some((driver, jobs)) = &self.local {
            if driver.is_leader() {
                let (reply, answer) = flume::bounded(1);
                if jobs
                    .send_async(Job::Call(call.clone(), reply))
                    .await
                    .is_ok()
                {
                    match answer.recv_async().await {
                        Ok(Reply::Refused(TopicError::NotController(_))) => {}
                        Ok(reply) => return reply,
                        Err(_) => {}
                    }
                }
            }
        }
        self.remote.call(&call, CALL_DEADLINE).await
    }

    /// The metadata index the answering controller had applied when it answered last.
    pub fn last_index(&self) -> u64 {
        match &self.local {
            Some((driver, _)) if driver.is_leader() => driver.applied_index(),
            _ => self.remote.last_index,
        }
    }
}

pub struct BrokerSide {
    config: Arc<ServerConfig>,
    cluster_id: Rc<str>,
    mesh: Mesh,
    local: Option<(Rc<Driver>, flume::Sender<Job>)>,
    /// The image the shards have.
    image: RefCell<Arc<MetadataImage>>,
    /// Held while refreshing, so refreshes do not interleave.
    refreshing: glommio::sync::Semaphore,
    /// The link metadata fetches use; taken while a refresh (holding `refreshing`) uses it.
    fetch_link: RefCell<Option<Link>>,
    epoch: Cell<i64>,
    /// This process's registration id (random at start).
    incarnation: String,
    /// Whether the shards run: until they do, a new image is only kept (the shards start from
    /// the image `join` returns).
    publishing: Cell<bool>,
    /// Set by a controlled shutdown: no more heartbeats (one would unfence the broker again).
    shutting_down: Cell<bool>,
    /// The log directories, whose failed partitions every heartbeat reports.
    log_dirs: Arc<LogDirs>,
}

/// Why a broker stopped trying to join the cluster.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct JoinError(pub String);

impl BrokerSide {
    pub fn new(
        config: Arc<ServerConfig>,
        cluster_id: Rc<str>,
        mesh: Mesh,
        local: Option<(Rc<Driver>, flume::Sender<Job>)>,
        log_dirs: Arc<LogDirs>,
    ) -> Rc<BrokerSide> {
        let side = BrokerSide {
            fetch_link: RefCell::new(Some(Link {
                local: local.clone(),
                remote: ControllerClient::new(
                    config.controller_quorum_voters.clone(),
                    cluster_id.clone(),
                    config.links.controller.security(),
                ),
            })),
            image: RefCell::new(Arc::new(MetadataImage {
                cluster_id: cluster_id.to_string(),
                ..MetadataImage::default()
            })),
            refreshing: glommio::sync::Semaphore::new(1),
            epoch: Cell::new(-1),
            incarnation: TopicId(super::random_uuid()).to_hex(),
            publishing: Cell::new(false),
            shutting_down: Cell::new(false),
            log_dirs,
            config,
            cluster_id,
            mesh,
            local,
        };
        Rc::new(side)
    }

    pub fn link(&self) -> Link {
        Link {
            local: self.local.clone(),
            remote: ControllerClient::new(
                self.config.controller_quorum_voters.clone(),
                self.cluster_id.clone(),
                self.config.links.controller.security(),
            ),
        }
    }

    pub fn image(&self) -> Arc<MetadataImage> {
        self.image.borrow().clone()
    }

    /// Registers and catches up with the log: the broker is in the cluster, still fenced, and
    /// its shards may recover their logs from the image returned (with its session's epoch).
    /// A refusal no retry can fix (another cluster's id) is an error.
    pub async fn enter(&self, link: &mut Link) -> Result<(i64, Arc<MetadataImage>), JoinError> {
        let epoch = self.register(link).await?;
        self.catch_up(link.last_index()).await;
        Ok((epoch, self.image()))
    }

    /// Heartbeats until the controller unfences the broker, asking it to wait (Kafka's
    /// `want_fence`) while `ready` says the logs are not recovered yet; registers again if the
    /// session ended meanwhile.
    pub async fn until_unfenced(
        &self,
        link: &mut Link,
        mut epoch: i64,
        ready: &dyn Fn() -> bool,
    ) -> Result<(), JoinError> {
        loop {
            match self.heartbeat(link, epoch, !ready()).await {
                Reply::Heartbeat { fenced: false } => {
                    self.catch_up(link.last_index()).await;
                    return Ok(());
                }
                Reply::Heartbeat { fenced: true } => {}
                Reply::Refused(TopicError::StaleBrokerEpoch(_)) => {
                    epoch = self.enter(link).await?.0;
                    continue;
                }
                other => tracing::debug!("heartbeat while joining: {other:?}"),
            }
            glommio::timer::sleep(Duration::from_millis(100)).await;
            self.refresh(0).await;
        }
    }

    /// From now on every new image goes to the shards, starting with the current one.
    pub async fn start_publishing(&self) {
        let Ok(_permit) = self.refreshing.acquire_permit(1).await else {
            return;
        };
        self.publishing.set(true);
        publish(&self.mesh, self.image()).await;
    }

    /// Joins again after the session ended: registers, catches up and waits to be unfenced
    /// (the logs are open already).
    async fn join(&self, link: &mut Link) -> Result<(), JoinError> {
        let (epoch, _) = self.enter(link).await?;
        self.until_unfenced(link, epoch, &|| true).await
    }

    async fn register(&self, link: &mut Link) -> Result<i64, JoinError> {
        let endpoints = self.config.advertised_listeners.clone();
        loop {
            let call = Call::RegisterBroker {
                broker_id: self.config.node_id,
                cluster_id: self.cluster_id.to_string(),
                incarnation: self.incarnation.clone(),
                endpoints: endpoints.clone(),
            };
            match link.call(call).await {
                Reply::Registered { epoch } => {
                    tracing::info!(
                        "broker {} registered with the controller quorum (broker epoch {epoch})",
                        self.config.node_id
                    );
                    self.epoch.set(epoch);
                    return Ok(epoch);
                }
                Reply::Refused(TopicError::InconsistentClusterId(reason)) => {
                    return Err(JoinError(format!(
                        "the controller quorum refused this broker: {reason}. The log directory \
                         {} was formatted for another cluster (meta.properties cluster.id {}).",
                        self.config.log_dirs[0].display(),
                        self.cluster_id
                    )));
                }
                Reply::Refused(TopicError::DuplicateBrokerRegistration(reason)) => {
                    tracing::error!(
                        "Unable to register broker {} because the controller returned error \
                         DUPLICATE_BROKER_REGISTRATION: {reason} Retrying.",
                        self.config.node_id
                    );
                    glommio::timer::sleep(Duration::from_secs(1)).await;
                }
                other => {
                    tracing::info!(
                        "waiting for the controller quorum to register broker {}: {other:?}",
                        self.config.node_id
                    );
                    glommio::timer::sleep(Duration::from_millis(500)).await;
                }
            }
        }
    }

    async fn heartbeat(&self, link: &mut Link, epoch: i64, want_fence: bool) -> Reply {
        let call = Call::BrokerHeartbeat {
            broker_id: self.config.node_id,
            epoch,
            metadata_index: self.image.borrow().metadata_index,
            offline_replicas: self.log_dirs.offline_replicas(),
            want_fence,
        };
        link.call(call).await
    }

    /// Stops the process when no log directory serves any more, or the one holding the
    /// metadata log (the first) failed: Kafka halts in both cases.
    fn halt_if_storage_gone(&self) {
        let reason = match (self.log_dirs.all_offline(), self.log_dirs.failure(0)) {
            (true, _) => "every log directory has failed",
            (false, Some(_)) => "the log directory holding the metadata log has failed",
            (false, None) => return,
        };
        tracing::error!(
            "Shutting down broker {}: {reason} ({})",
            self.config.node_id,
            (0..self.log_dirs.len())
                .filter_map(|index| self
                    .log_dirs
                    .failure(index)
                    .map(|why| format!("{}: {why}", self.log_dirs.path(index).display())))
                .collect::<Vec<_>>()
                .join("; ")
        );
        std::process::exit(1);
    }

    /// Heartbeats forever, registering again when the controller no longer knows the session.
    pub async fn keep_alive(self: Rc<Self>, mut link: Link) {
        let interval = Duration::from_millis(self.config.broker_heartbeat_interval_ms);
        let failures = self.log_dirs.failures();
        loop {
            // A failed log directory is reported at once, not at the next beat.
            futures_lite::future::or(
                async {
                    glommio::timer::sleep(interval).await;
                },
                async {
                    let _ = failures.recv_async().await;
                },
            )
            .await;
            self.halt_if_storage_gone();
            if self.shutting_down.get() {
                return;
            }
            match self.heartbeat(&mut link, self.epoch.get(), false).await {
                Reply::Refused(TopicError::StaleBrokerEpoch(reason)) => {
                    tracing::warn!("broker session ended ({reason}): registering again");
                    if let Err(error) = self.join(&mut link).await {
                        tracing::error!("{error}");
                        std::process::exit(1);
                    }
                }
                Reply::Heartbeat { .. } => {}
                other => tracing::debug!("heartbeat: {other:?}"),
            }
        }
    }

    /// Follows the log: on a controller node whenever the local quorum member applied entries,
    /// else by long-polling the controllers.
    pub async fn follow(self: Rc<Self>) {
        match &self.local {
            Some((driver, _)) => {
                let applied = driver.watch();
                while applied.recv_async().await.is_ok() {
                    self.refresh(0).await;
                }
            }
            None => loop {
                self.refresh(FETCH_WAIT_MS).await;
                glommio::timer::sleep(FETCH_INTERVAL).await;
            },
        }
    }

    /// Refreshes until the shards have the metadata log up to `index` (a change this broker
    /// just made), or a few long polls have passed.
    async fn catch_up(&self, index: u64) {
        for _ in 0..CATCH_UP_POLLS {
            if self.image.borrow().metadata_index >= index {
                return;
            }
            self.refresh_until(index, FETCH_WAIT_MS).await;
        }
    }

    /// Brings the shards up to the newest metadata this node can get; a fetch that finds
    /// nothing new waits up to `wait_ms` on the controller for it.
    pub async fn refresh(&self, wait_ms: u32) {
        self.refresh_until(0, wait_ms).await
    }

    /// `refresh`, unless the shards have the log up to `index` by the time it is this call's
    /// turn (a refresh under way may have brought it).
    async fn refresh_until(&self, index: u64, wait_ms: u32) {
        let Ok(_permit) = self.refreshing.acquire_permit(1).await else {
            return;
        };
        let current = self.image();
        if index > 0 && current.metadata_index >= index {
            return;
        }
        let next = match &self.local {
            Some((driver, _)) => {
                let mut image = driver.image();
                image.controller_id = self.config.node_id;
                image
            }
            None => {
                let mut next = (*current).clone();
                let mut wait_ms = wait_ms;
                loop {
                    let call = Call::FetchMetadata {
                        broker_id: self.config.node_id,
                        from_index: next.metadata_index,
                        wait_ms,
                    };
                    wait_ms = 0;
                    let mut link = self.fetch_link.take().expect("held by this refresh only");
                    let reply = link.call(call).await;
                    if let Reply::Metadata { leader, .. } = &reply {
                        // Fetch from the active controller: followers learn of a commit later.
                        link.remote.prefer(*leader);
                    }
                    self.fetch_link.replace(Some(link));
                    let Reply::Metadata {
                        snapshot, entries, ..
                    } = reply
                    else {
                        tracing::debug!("metadata fetch: {reply:?}");
                        break;
                    };
                    if snapshot.is_none() && entries.is_empty() {
                        break;
                    }
                    let current = Arc::new(next.clone());
                    match apply_fetched(&current, snapshot.as_ref(), &entries, self.config.node_id)
                    {
                        Ok(applied) => next = applied,
                        Err(error) => {
                            tracing::error!("cannot apply fetched metadata: {error}");
                            break;
                        }
                    }
                }
                next.cluster_id = self.cluster_id.to_string();
                next.controller_id = self.config.node_id;
                next
            }
        };
        if next.metadata_index == current.metadata_index && current.epoch != 0 {
            return;
        }
        let next = Arc::new(next);
        *self.image.borrow_mut() = next.clone();
        if self.publishing.get() {
            publish(&self.mesh, next).await;
        }
    }

    /// Carries the shards' requests to the active controller, one at a time; after a change,
    /// answers only once the shards have it (so a topic can be used as soon as it is created).
    pub async fn serve_shards(self: Rc<Self>, requests: flume::Receiver<ControllerRequest>) {
        let mut link = self.link();
        while let Ok(request) = requests.recv_async().await {
            if let ControllerRequest::ControlledShutdown { reply } = request {
                self.shut_down(&mut link).await;
                let _ = reply.send(());
                continue;
            }
            let request = match request {
                ControllerRequest::AlterPartition { changes, reply } => {
                    let count = changes.len();
                    let call = Call::AlterPartition {
                        broker_id: self.config.node_id,
                        broker_epoch: self.epoch.get(),
                        changes,
                    };
                    (call, done(reply, count))
                }
                request => split(request),
            };
            let (call, answer) = request;
            let write = call.is_write();
            let reply = link.call(call).await;
            if write {
                self.catch_up(link.last_index()).await;
                self.refresh(0).await;
            }
            answer(reply);
        }
    }
}

impl BrokerSide {
    /// Kafka's controlled shutdown: stop heartbeating and have the active controller fence
    /// this broker now, so that clients stop being sent here.
    async fn shut_down(&self, link: &mut Link) {
        self.shutting_down.set(true);
        let call = Call::ControlledShutdown {
            broker_id: self.config.node_id,
            epoch: self.epoch.get(),
        };
        match link.call(call).await {
            Reply::Heartbeat { fenced: true } => tracing::info!(
                "controlled shutdown: broker {} is fenced",
                self.config.node_id
            ),
            other => tracing::warn!("controlled shutdown was not confirmed: {other:?}"),
        }
    }
}

/// Hands `image` to every shard and waits until all have it.
pub async fn publish(mesh: &Mesh, image: Arc<MetadataImage>) {
    let mut acknowledgements = Vec::with_capacity(mesh.shard_count());
    for shard in 0..mesh.shard_count() {
        let (reply, acknowledged) = flume::bounded(1);
        mesh.send(
            ShardId(shard),
            ShardRequest::ApplyMetadata {
                image: image.clone(),
                reply,
            },
        )
        .await;
        acknowledgements.push(acknowledged);
    }
    for acknowledged in acknowledgements {
        let _ = acknowledged.recv_async().await;
    }
}

type Answer = Box<dyn FnOnce(Reply)>;

/// Why the controller refused a whole call.
fn refusal(reply: Reply) -> TopicError {
    match reply {
        Reply::Refused(error) => error,
        other => TopicError::Storage(format!("unexpected controller reply {other:?}")),
    }
}
fn refused<T>(reply: Reply, count: usize) -> Vec<Result<T, TopicError>> {
    let error = refusal(reply);
    (0..count).map(|_| Err(error.clone())).collect()
}

/// The answer of a change answered item by item (`Reply::Done`).
fn done(reply: flume::Sender<Vec<Result<(), TopicError>>>, count: usize) -> Answer {
    Box::new(move |answer: Reply| {
        let _ = reply.send(match answer {
            Reply::Done(results) => results,
            other => refused(other, count),
        });
    })
}

/// A shard's request as a call, and how to answer the shard from the reply.
fn split(request: ControllerRequest) -> (Call, Answer) {
    match request {
        ControllerRequest::CreateTopics {
            topics,
            validate_only,
            reply,
        } => {
            let count = topics.len();
            let call = Call::CreateTopics {
                topics,
                validate_only,
            };
            let answer = move |answer: Reply| {
                let results = match answer {
                    Reply::Topics(results) => results
                        .into_iter()
                        .map(|result| result.map(Arc::new))
                        .collect(),
                    other => refused(other, count),
                };
                let _ = reply.send(results);
            };
            (call, Box::new(answer))
        }
        ControllerRequest::DeleteTopics { names, reply } => {
            let count = names.len();
            let answer = move |answer: Reply| {
                let _ = reply.send(match answer {
                    Reply::Deleted(results) => results,
                    other => refused(other, count),
                });
            };
            (Call::DeleteTopics { names }, Box::new(answer))
        }
        ControllerRequest::AlterConfigs {
            alterations,
            validate_only,
            reply,
        } => {
            let answer = done(reply, alterations.len());
            let call = Call::AlterConfigs {
                alterations,
                validate_only,
            };
            (call, answer)
        }
        ControllerRequest::CreatePartitions {
            increases,
            validate_only,
            reply,
        } => {
            let answer = done(reply, increases.len());
            let call = Call::CreatePartitions {
                increases,
                validate_only,
            };
            (call, answer)
        }
        ControllerRequest::AllocateProducerIds { reply } => {
            let answer = move |answer: Reply| {
                let _ = reply.send(match answer {
                    Reply::ProducerIds(range) => Ok(range),
                    other => Err(refusal(other)),
                });
            };
            (Call::AllocateProducerIds, Box::new(answer))
        }
        ControllerRequest::ControlledShutdown { .. } => {
            unreachable!("serve_shards handles it before splitting")
        }
        ControllerRequest::AlterPartition { .. } => {
            unreachable!("serve_shards handles it before splitting")
        }
        ControllerRequest::ElectLeaders {
            preferred,
            partitions,
            reply,
        } => {
            let answer = done(reply, partitions.len());
            let call = Call::ElectLeaders {
                preferred,
                partitions,
            };
            (call, answer)
        }
        ControllerRequest::AlterClientQuotas {
            alterations,
            validate_only,
            reply,
        } => {
            let answer = done(reply, alterations.len());
            let call = Call::AlterClientQuotas {
                alterations,
                validate_only,
            };
            (call, answer)
        }
        ControllerRequest::CreateAcls { bindings, reply } => {
            let answer = done(reply, bindings.len());
            (Call::CreateAcls { bindings }, answer)
        }
        ControllerRequest::DeleteAcls { filters, reply } => {
            let count = filters.len();
            let answer = move |answer: Reply| {
                let _ = reply.send(match answer {
                    Reply::AclsDeleted(results) => results,
                    other => refused(other, count),
                });
            };
            (Call::DeleteAcls { filters }, Box::new(answer))
        }
        ControllerRequest::DescribeQuorum { reply } => {
            let answer = move |answer: Reply| {
                let _ = reply.send(match answer {
                    Reply::Quorum(status) => Ok(status),
                    other => Err(refusal(other)),
                });
            };
            (Call::DescribeQuorum, Box::new(answer))
        }
    }
}
