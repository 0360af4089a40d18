//! The per-shard transaction coordinator: the transactional ids whose `__transaction_state`
//! partitions this shard leads, and the I/O around the pure state machine (`txn::state`):
//! storing each new state (fsynced, every in-sync replica), loading the partition when its
//! leadership arrives, and writing the markers that end a transaction.
//!
//! One change at a time per transactional id: an id with a state being stored or markers being
//! written is `busy`, and a request for it meanwhile is answered CONCURRENT_TRANSACTIONS (the
//! client retries), as Kafka's pending state does.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::rc::Rc;
use std::time::Duration;

use kafka_protocol::messages::write_txn_markers_request::{
    WritableTxnMarker, WritableTxnMarkerTopic,
};
use kafka_protocol::messages::{
    ApiKey, ProducerId, TopicName, WriteTxnMarkersRequest, WriteTxnMarkersResponse,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

use super::state::{
    self, EndOutcome, InitOutcome, TopicPartition, TxnError, TxnMetadata, TxnVersion,
};
use super::{log, partition_for_txn, PartitionResults, TxnCall};
use crate::partition::{Acks, Marker, Partition, PartitionError};
use crate::runtime::shard::Shard;
use crate::storage::batch::{self, ControlType};
use crate::storage::now_ms;

/// How long a state change waits for the in-sync replicas of `__transaction_state`.
const STORE_TIMEOUT: Duration = Duration::from_secs(5);
/// How long EndTxn waits for its markers before answering anyway: the outcome is stored, and
/// the markers are written whatever happens to the client.
const END_TXN_WAIT: Duration = Duration::from_secs(5);
/// The pause before markers that could not be written are tried again.
const MARKER_RETRY_BACKOFF: Duration = Duration::from_millis(100);
/// How long a WriteTxnMarkers request to another broker may take.
const MARKER_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// WriteTxnMarkers, the only version Kafka 4 serves.
const WRITE_TXN_MARKERS_VERSION: i16 = 1;

pub struct TxnCoordinator {
    txns: RefCell<HashMap<String, TxnMetadata>>,
    /// `__transaction_state` partitions loaded here, with the coordinator epoch (the
    /// partition's leader epoch) markers carry.
    loaded: RefCell<HashMap<i32, i32>>,
    busy: RefCell<HashSet<String>>,
    /// Who waits for an id's markers to be written (EndTxn).
    completions: RefCell<HashMap<String, Vec<flume::Sender<()>>>>,
}

/// Marks an id busy until dropped.
struct Busy<'a> {
    coordinator: &'a TxnCoordinator,
    id: String,
}

impl Drop for Busy<'_> {
    fn drop(&mut self) {
        self.coordinator.busy.borrow_mut().remove(&self.id);
    }
}

impl Default for TxnCoordinator {
    fn default() -> Self {
        TxnCoordinator::new()
    }
}

impl TxnCoordinator {
    pub fn new() -> TxnCoordinator {
        TxnCoordinator {
            txns: RefCell::new(HashMap::new()),
            loaded: RefCell::new(HashMap::new()),
            busy: RefCell::new(HashSet::new()),
            completions: RefCell::new(HashMap::new()),
        }
    }

    /// Every transactional id coordinated here.
    pub fn list(&self) -> Vec<TxnMetadata> {
        self.txns.borrow().values().cloned().collect()
    }

    /// The coordinator epoch of a loaded partition; `None` while it is not loaded here.
    pub fn coordinator_epoch(&self, partition: i32) -> Option<i32> {
        self.loaded.borrow().get(&partition).copied()
    }

    /// The id's state; a producer naming an id this coordinator does not know has no mapping.
    fn current(&self, id: &str) -> Result<TxnMetadata, TxnError> {
        self.txns
            .borrow()
            .get(id)
            .cloned()
            .ok_or(TxnError::InvalidProducerIdMapping)
    }

    fn mark_busy(&self, id: &str) -> Result<Busy<'_>, TxnError> {
        if !self.busy.borrow_mut().insert(id.to_string()) {
            return Err(TxnError::ConcurrentTransactions);
        }
        Ok(Busy {
            coordinator: self,
            id: id.to_string(),
        })
    }

    /// Reads every transactional id stored in `partition`, then finishes the transactions
    /// whose outcome was decided but whose markers may not all be written.
    pub async fn load(&self, shard: &Rc<Shard>, partition: &Rc<Partition>, coordinator_epoch: i32) {
        let mut loaded: HashMap<String, Option<TxnMetadata>> = HashMap::new();
        let visited = partition
            .for_each_record(|record| {
                let decoded = record
                    .key
                    .as_ref()
                    .and_then(|key| log::decode_record(key, record.value.as_ref()));
                if let Some((id, metadata)) = decoded {
                    loaded.insert(id, metadata);
                }
            })
            .await;
        if let Err(error) = visited {
            tracing::error!("cannot load {}: {error}", partition.name());
            return;
        }
        let count = loaded.len();
        let mut unfinished = Vec::new();
        {
            let mut txns = self.txns.borrow_mut();
            for (id, metadata) in loaded {
                match metadata {
                    Some(metadata) => {
                        if metadata.state.is_preparing() {
                            unfinished.push(metadata.clone());
                        }
                        txns.insert(id, metadata);
                    }
                    None => {
                        txns.remove(&id);
                    }
                }
            }
        }
        self.loaded
            .borrow_mut()
            .insert(partition.index, coordinator_epoch);
        tracing::info!(
            "loaded {count} transactional id(s) from {} (coordinator epoch {coordinator_epoch})",
            partition.name()
        );
        for prepared in unfinished {
            if let Ok(busy) = self.mark_busy(&prepared.transactional_id) {
                std::mem::forget(busy);
                let index = partition.index;
                glommio::spawn_local(finish(shard.clone(), index, prepared)).detach();
            }
        }
    }

    /// Forgets the ids of `partition` (of `partition_count`): another broker leads it now.
    pub fn unload(&self, partition: i32, partition_count: i32) {
        if self.loaded.borrow_mut().remove(&partition).is_none() {
            return;
        }
        self.txns
            .borrow_mut()
            .retain(|id, _| partition_for_txn(id, partition_count) != partition);
    }

    /// Serves one call for an id of `partition`, loaded here.
    pub async fn handle(&self, shard: &Rc<Shard>, call: TxnCall, partition: Rc<Partition>) {
        match call {
            TxnCall::InitProducerId {
                transactional_id,
                timeout_ms,
                expected,
                reply,
            } => {
                let answer = self
                    .init_producer_id(shard, &partition, &transactional_id, timeout_ms, expected)
                    .await;
                let _ = reply.send(answer);
            }
            TxnCall::AddPartitions {
                transactional_id,
                producer_id,
                producer_epoch,
                partitions,
                verify_only,
                reply,
            } => {
                let answer = self
                    .add_partitions(
                        &partition,
                        &transactional_id,
                        producer_id,
                        producer_epoch,
                        partitions,
                        verify_only,
                    )
                    .await;
                let _ = reply.send(answer);
            }
            TxnCall::EndTxn {
                transactional_id,
                producer_id,
                producer_epoch,
                commit,
                version,
                reply,
            } => {
                let answer = self
                    .end_txn(
                        shard,
                        &partition,
                        &transactional_id,
                        (producer_id, producer_epoch),
                        commit,
                        version,
                    )
                    .await;
                let _ = reply.send(answer);
            }
            TxnCall::Describe {
                transactional_id,
                reply,
            } => {
                let found = self.txns.borrow().get(&transactional_id).cloned();
                let _ = reply.send(found.ok_or(TxnError::TransactionalIdNotFound));
            }
            TxnCall::List { reply } => {
                let _ = reply.send(self.list());
            }
        }
    }

    async fn init_producer_id(
        &self,
        shard: &Rc<Shard>,
        partition: &Rc<Partition>,
        id: &str,
        timeout_ms: i32,
        expected: Option<(i64, i16)>,
    ) -> Result<(i64, i16), TxnError> {
        let busy = self.mark_busy(id)?;
        let current = self.txns.borrow().get(id).cloned();
        let fresh_id = match state::needs_fresh_producer_id(current.as_ref()) {
            true => Some(shard.next_producer_id().await.map_err(|error| {
                tracing::error!("cannot allocate a producer id: {error}");
                TxnError::CoordinatorNotAvailable
            })?),
            false => None,
        };
        let outcome = state::init_producer_id(
            current.as_ref(),
            id,
            timeout_ms,
            expected,
            fresh_id,
            now_ms(),
        )?;
        match outcome {
            InitOutcome::Ready(next) => {
                self.store(partition, &next).await?;
                Ok((next.producer_id, next.producer_epoch))
            }
            InitOutcome::AbortOpen(fenced) => {
                tracing::info!(
                    "transactional id {id}: a new producer fences epoch {} and aborts its open transaction",
                    fenced.last_producer_epoch
                );
                self.store(partition, &fenced).await?;
                std::mem::forget(busy);
                glommio::spawn_local(finish(shard.clone(), partition.index, fenced)).detach();
                Err(TxnError::ConcurrentTransactions)
            }
        }
    }

    async fn add_partitions(
        &self,
        partition: &Rc<Partition>,
        id: &str,
        producer_id: i64,
        epoch: i16,
        partitions: Vec<TopicPartition>,
        verify_only: bool,
    ) -> Result<PartitionResults, TxnError> {
        // A verification only reads: it never waits for a change in progress (a leader asks
        // it holding its partition's append permit, which that change's markers may need).
        if verify_only {
            let current = self.current(id)?;
            return state::verify_partitions(&current, producer_id, epoch, &partitions);
        }
        let _busy = self.mark_busy(id)?;
        let current = self.current(id)?;
        if let Some(next) =
            state::add_partitions(&current, producer_id, epoch, &partitions, now_ms())?
        {
            self.store(partition, &next).await?;
        }
        Ok(vec![Ok(()); partitions.len()])
    }

    async fn end_txn(
        &self,
        shard: &Rc<Shard>,
        partition: &Rc<Partition>,
        id: &str,
        (producer_id, epoch): (i64, i16),
        commit: bool,
        version: TxnVersion,
    ) -> Result<(i64, i16), TxnError> {
        let busy = self.mark_busy(id)?;
        let current = self.current(id)?;
        let fresh_id = match state::end_needs_fresh_producer_id(&current, version) {
            true => Some(shard.next_producer_id().await.map_err(|error| {
                tracing::error!("cannot allocate a producer id: {error}");
                TxnError::CoordinatorNotAvailable
            })?),
            false => None,
        };
        let outcome = state::end_txn(
            &current,
            producer_id,
            epoch,
            commit,
            version,
            fresh_id,
            now_ms(),
        )?;
        let prepared = match outcome {
            EndOutcome::AlreadyDone => return Ok((current.producer_id, current.producer_epoch)),
            EndOutcome::Complete(done) => {
                self.store(partition, &done).await?;
                return Ok((done.producer_id, done.producer_epoch));
            }
            EndOutcome::Prepare(prepared) => prepared,
        };
        self.store(partition, &prepared).await?;
        let next = match prepared.next_producer_id {
            Some(producer_id) => (producer_id, 0),
            None => (prepared.producer_id, prepared.producer_epoch),
        };
        let (done, finished) = flume::bounded(1);
        self.completions
            .borrow_mut()
            .entry(id.to_string())
            .or_default()
            .push(done);
        std::mem::forget(busy);
        glommio::spawn_local(finish(shard.clone(), partition.index, prepared)).detach();
        futures_lite::future::or(
            async {
                let _ = finished.recv_async().await;
            },
            glommio::timer::sleep(END_TXN_WAIT),
        )
        .await;
        Ok(next)
    }

    /// Stores `metadata` in `partition` (fsynced, every in-sync replica) and, once stored,
    /// makes it the id's state, if this shard still coordinates the partition.
    async fn store(&self, partition: &Partition, metadata: &TxnMetadata) -> Result<(), TxnError> {
        let id = metadata.transactional_id.clone();
        let epoch = self.coordinator_epoch(partition.index);
        self.append(partition, vec![(id.clone(), Some(metadata.clone()))])
            .await?;
        if epoch.is_none() || self.coordinator_epoch(partition.index) != epoch {
            return Err(TxnError::NotCoordinator);
        }
        self.txns.borrow_mut().insert(id, metadata.clone());
        Ok(())
    }

    async fn append(
        &self,
        partition: &Partition,
        records: Vec<(String, Option<TxnMetadata>)>,
    ) -> Result<(), TxnError> {
        let bytes = log::encode_batch(&records, now_ms());
        let headers =
            batch::validate_batches(&bytes, usize::MAX).expect("a batch we encoded is valid");
        match partition
            .append(bytes, headers, Acks::All, STORE_TIMEOUT)
            .await
        {
            Ok(_) => Ok(()),
            Err(PartitionError::NotLeader) => Err(TxnError::NotCoordinator),
            Err(error) => {
                tracing::warn!(
                    "cannot store transaction state in {}: {error}",
                    partition.name()
                );
                Err(TxnError::CoordinatorNotAvailable)
            }
        }
    }

    /// Aborts transactions open longer than their timeout, and, when `expire_ids`, forgets ids
    /// idle for `transactional.id.expiration.ms`.
    pub async fn tick(&self, shard: &Rc<Shard>, expire_ids: bool) {
        let now = now_ms();
        let timed_out: Vec<TxnMetadata> = self
            .txns
            .borrow()
            .values()
            .filter(|txn| !self.busy.borrow().contains(&txn.transactional_id))
            .filter_map(|txn| state::time_out(txn, now))
            .collect();
        for fenced in timed_out {
            let Some(partition) = shard.transaction_state_partition(&fenced.transactional_id)
            else {
                continue;
            };
            let Ok(busy) = self.mark_busy(&fenced.transactional_id) else {
                continue;
            };
            tracing::info!(
                "transactional id {}: aborting its transaction, open for more than transaction.timeout.ms={}",
                fenced.transactional_id,
                fenced.timeout_ms
            );
            if self.store(&partition, &fenced).await.is_ok() {
                std::mem::forget(busy);
                glommio::spawn_local(finish(shard.clone(), partition.index, fenced)).detach();
            }
        }
        if !expire_ids {
            return;
        }
        let expiration_ms = shard.config.transactional_id_expiration_ms;
        let expired: Vec<String> = self
            .txns
            .borrow()
            .values()
            .filter(|txn| !self.busy.borrow().contains(&txn.transactional_id))
            .filter(|txn| state::is_expired(txn, now, expiration_ms))
            .map(|txn| txn.transactional_id.clone())
            .collect();
        for id in expired {
            let Some(partition) = shard.transaction_state_partition(&id) else {
                continue;
            };
            let Ok(_busy) = self.mark_busy(&id) else {
                continue;
            };
            if self
                .append(&partition, vec![(id.clone(), None)])
                .await
                .is_ok()
            {
                tracing::info!(
                    "transactional id {id} expired after transactional.id.expiration.ms={expiration_ms}"
                );
                self.txns.borrow_mut().remove(&id);
            }
        }
    }
}

/// Writes the markers of a prepared transaction until every partition has its own, then stores
/// the completed state; runs as a task of its own. Stops when the shard no longer coordinates
/// the id's partition (the next coordinator finishes it from the stored state).
async fn finish(shard: Rc<Shard>, index: i32, prepared: TxnMetadata) {
    let coordinator = shard.txns();
    let id = prepared.transactional_id.clone();
    let Some(coordinator_epoch) = coordinator.coordinator_epoch(index) else {
        coordinator.busy.borrow_mut().remove(&id);
        return;
    };
    let kind = match prepared.state {
        state::TxnState::PrepareCommit => ControlType::Commit,
        _ => ControlType::Abort,
    };
    let marker = Marker {
        producer_id: prepared.producer_id,
        producer_epoch: prepared.producer_epoch,
        coordinator_epoch,
        kind,
    };
    let mut pending: Vec<TopicPartition> = prepared.partitions.iter().cloned().collect();
    let still_coordinator = || coordinator.coordinator_epoch(index) == Some(coordinator_epoch);
    while !pending.is_empty() {
        if !still_coordinator() {
            coordinator.busy.borrow_mut().remove(&id);
            return;
        }
        pending = write_markers(&shard, marker, pending).await;
        if !pending.is_empty() {
            glommio::timer::sleep(MARKER_RETRY_BACKOFF).await;
        }
    }
    let done = state::complete(&prepared, now_ms());
    loop {
        if !still_coordinator() {
            break;
        }
        let Some(partition) = shard.transaction_state_partition(&id) else {
            break;
        };
        match coordinator.store(&partition, &done).await {
            Ok(()) => break,
            Err(TxnError::NotCoordinator) => break,
            Err(_) => glommio::timer::sleep(MARKER_RETRY_BACKOFF).await,
        }
    }
    coordinator.busy.borrow_mut().remove(&id);
    for waiter in coordinator
        .completions
        .borrow_mut()
        .remove(&id)
        .unwrap_or_default()
    {
        let _ = waiter.send(());
    }
}

/// Writes `marker` to each partition once, on its leader; returns those to try again.
async fn write_markers(
    shard: &Rc<Shard>,
    marker: Marker,
    partitions: Vec<TopicPartition>,
) -> Vec<TopicPartition> {
    let image = shard.metadata();
    let mut retry = Vec::new();
    let mut local = Vec::new();
    let mut remote: BTreeMap<i32, Vec<TopicPartition>> = BTreeMap::new();
    for (topic, index) in partitions {
        let Some(known) = image.topic(&topic) else {
            // Deleted with the transaction open: nothing left to mark.
            continue;
        };
        let Some(state) = known.partitions.get(index as usize) else {
            continue;
        };
        match state.leader {
            leader if leader < 0 => retry.push((topic, index)),
            leader if leader == shard.config.node_id => local.push((topic, index)),
            leader => remote.entry(leader).or_default().push((topic, index)),
        }
    }
    if !local.is_empty() {
        let parts = local
            .iter()
            .map(|(topic, index)| (std::sync::Arc::from(topic.as_str()), *index, marker))
            .collect();
        let outcomes = shard.write_markers(parts).await;
        for ((topic, index), outcome) in local.into_iter().zip(outcomes) {
            match outcome {
                Ok(()) => {}
                // A newer producer epoch or coordinator already wrote past this marker.
                Err(PartitionError::InvalidProducerEpoch { .. })
                | Err(PartitionError::CoordinatorFenced { .. }) => tracing::warn!(
                    "{topic}-{index}: marker of producer {} refused: {}",
                    marker.producer_id,
                    outcome.unwrap_err()
                ),
                Err(error) => {
                    tracing::debug!("{topic}-{index}: marker not written yet: {error}");
                    retry.push((topic, index));
                }
            }
        }
    }
    for (leader, partitions) in remote {
        retry.extend(send_markers(shard, leader, marker, partitions).await);
    }
    retry
}

/// Sends WriteTxnMarkers to broker `leader`; returns the partitions to try again.
async fn send_markers(
    shard: &Rc<Shard>,
    leader: i32,
    marker: Marker,
    partitions: Vec<TopicPartition>,
) -> Vec<TopicPartition> {
    let Some(address) = shard.broker_address(leader) else {
        return partitions;
    };
    let mut by_topic: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
    for (topic, index) in &partitions {
        by_topic.entry(topic).or_default().push(*index);
    }
    let topics = by_topic
        .into_iter()
        .map(|(topic, indexes)| {
            WritableTxnMarkerTopic::default()
                .with_name(TopicName(StrBytes::from_string(topic.to_string())))
                .with_partition_indexes(indexes)
        })
        .collect();
    let request =
        WriteTxnMarkersRequest::default().with_markers(vec![WritableTxnMarker::default()
            .with_producer_id(ProducerId(marker.producer_id))
            .with_producer_epoch(marker.producer_epoch)
            .with_transaction_result(marker.kind == ControlType::Commit)
            .with_coordinator_epoch(marker.coordinator_epoch)
            .with_topics(topics)]);
    let response: Result<WriteTxnMarkersResponse, _> = shard
        .peers
        .request(
            leader,
            &address,
            ApiKey::WriteTxnMarkers,
            WRITE_TXN_MARKERS_VERSION,
            &request,
            MARKER_REQUEST_TIMEOUT,
        )
        .await;
    let response = match response {
        Ok(response) => response,
        Err(error) => {
            tracing::debug!("WriteTxnMarkers to broker {leader} failed: {error}");
            return partitions;
        }
    };
    let mut retry = Vec::new();
    let answered: HashMap<(String, i32), i16> = response
        .markers
        .iter()
        .flat_map(|result| &result.topics)
        .flat_map(|topic| {
            topic.partitions.iter().map(move |partition| {
                (
                    (topic.name.0.to_string(), partition.partition_index),
                    partition.error_code,
                )
            })
        })
        .collect();
    for tp in partitions {
        let code = answered.get(&tp).copied().unwrap_or(-1);
        match ResponseError::try_from_code(code) {
            None if code == 0 => {}
            Some(ResponseError::InvalidProducerEpoch)
            | Some(ResponseError::ProducerFenced)
            | Some(ResponseError::TransactionCoordinatorFenced) => tracing::warn!(
                "{}-{}: broker {leader} refused the marker of producer {}: error {code}",
                tp.0,
                tp.1,
                marker.producer_id
            ),
            _ => retry.push(tp),
        }
    }
    retry
}
