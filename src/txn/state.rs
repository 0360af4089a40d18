//! One transactional id's state at its coordinator, and every change the transaction protocol
//! makes to it, as pure functions of the current state, the request and the time (Kafka's
//! `TransactionMetadata` and the checks of its `TransactionCoordinator`). The coordinator
//! (`txn::coordinator`) stores each new state in `__transaction_state` before it takes effect.

use std::collections::BTreeSet;

/// A (topic, partition) a transaction wrote to.
pub type TopicPartition = (String, i32);

/// Kafka's transaction states, with the codes `__transaction_state` stores.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TxnState {
    Empty,
    Ongoing,
    PrepareCommit,
    PrepareAbort,
    CompleteCommit,
    CompleteAbort,
    Dead,
    PrepareEpochFence,
}

impl TxnState {
    pub fn code(self) -> i8 {
        match self {
            TxnState::Empty => 0,
            TxnState::Ongoing => 1,
            TxnState::PrepareCommit => 2,
            TxnState::PrepareAbort => 3,
            TxnState::CompleteCommit => 4,
            TxnState::CompleteAbort => 5,
            TxnState::Dead => 6,
            TxnState::PrepareEpochFence => 7,
        }
    }

    pub fn from_code(code: i8) -> Option<TxnState> {
        Some(match code {
            0 => TxnState::Empty,
            1 => TxnState::Ongoing,
            2 => TxnState::PrepareCommit,
            3 => TxnState::PrepareAbort,
            4 => TxnState::CompleteCommit,
            5 => TxnState::CompleteAbort,
            6 => TxnState::Dead,
            7 => TxnState::PrepareEpochFence,
            _ => return None,
        })
    }

    /// The name ListTransactions and DescribeTransactions give the state.
    pub fn name(self) -> &'static str {
        match self {
            TxnState::Empty => "Empty",
            TxnState::Ongoing => "Ongoing",
            TxnState::PrepareCommit => "PrepareCommit",
            TxnState::PrepareAbort => "PrepareAbort",
            TxnState::CompleteCommit => "CompleteCommit",
            TxnState::CompleteAbort => "CompleteAbort",
            TxnState::Dead => "Dead",
            TxnState::PrepareEpochFence => "PrepareEpochFence",
        }
    }

    /// Whether markers are being written: the transaction's outcome is decided, not yet done.
    pub fn is_preparing(self) -> bool {
        matches!(
            self,
            TxnState::PrepareCommit | TxnState::PrepareAbort | TxnState::PrepareEpochFence
        )
    }
}

/// Why a request was refused; `api/` maps each to Kafka's error code.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TxnError {
    #[error("the transaction's previous state change is still in progress")]
    ConcurrentTransactions,
    #[error("there is a newer producer with the same transactional id")]
    ProducerFenced,
    #[error("the producer's epoch is not the current one")]
    InvalidProducerEpoch,
    #[error("the producer id is not the one the transactional id maps to")]
    InvalidProducerIdMapping,
    #[error("the request is not valid in the transaction's current state")]
    InvalidTxnState,
    #[error("the transaction timeout is larger than transaction.max.timeout.ms or not positive")]
    InvalidTransactionTimeout,
    #[error("this broker does not coordinate the transactional id")]
    NotCoordinator,
    #[error("the transaction coordinator is loading its state")]
    CoordinatorLoadInProgress,
    #[error("the transaction coordinator is not available")]
    CoordinatorNotAvailable,
    #[error("the transactional id is not known")]
    TransactionalIdNotFound,
    /// A partition a leader verifies is not in the producer's open transaction: the client can
    /// abort the transaction and go on (KIP-890's TRANSACTION_ABORTABLE).
    #[error("the partition is not in the producer's open transaction")]
    TransactionAbortable,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TxnMetadata {
    pub transactional_id: String,
    pub producer_id: i64,
    pub producer_epoch: i16,
    /// The epoch before the last bump (-1: none): a retried InitProducerId that names it gets
    /// the current one again (KIP-360).
    pub last_producer_epoch: i16,
    pub timeout_ms: i32,
    pub state: TxnState,
    pub partitions: BTreeSet<TopicPartition>,
    /// When the open transaction began (-1: none open).
    pub start_ms: i64,
    pub last_update_ms: i64,
    /// Version 2: the producer id the client gets when a transaction ending at the last epoch
    /// completes (its markers carry the last epoch of the old id). Not stored: a coordinator
    /// that takes over such a transaction completes it under the old id, and the client's next
    /// InitProducerId or end renews it.
    pub next_producer_id: Option<i64>,
}

/// What InitProducerId leads to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum InitOutcome {
    /// Store this and answer with its producer id and epoch.
    Ready(TxnMetadata),
    /// A transaction is open: store this (the epoch bumped, which fences the old producer, and
    /// PrepareAbort), abort it, and have the client retry (CONCURRENT_TRANSACTIONS).
    AbortOpen(TxnMetadata),
}

/// What EndTxn leads to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EndOutcome {
    /// Store this (PrepareCommit or PrepareAbort), write the markers, then complete.
    Prepare(TxnMetadata),
    /// Store this, already complete: nothing to mark (transactions version 2 aborting with no
    /// transaction open, which only bumps the epoch).
    Complete(TxnMetadata),
    /// A retry of an end already completed: answer success.
    AlreadyDone,
}

/// The transaction protocol a client speaks: version 1 (Kafka 0.11 to 3.x), or version 2
/// (KIP-890 part 2, Kafka 4: every EndTxn bumps the epoch, and partitions join a transaction
/// when the partition's leader or the group coordinator adds them).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TxnVersion {
    V1,
    V2,
}

/// The largest epoch handed out; past it a producer gets a fresh producer id.
const EPOCH_MAX: i16 = i16::MAX - 1;

/// Whether EndTxn in `version` needs a producer id never used before: a version 2 end that
/// bumps to the last epoch hands the client a fresh id for its next transaction.
pub fn end_needs_fresh_producer_id(current: &TxnMetadata, version: TxnVersion) -> bool {
    version == TxnVersion::V2 && current.producer_epoch.saturating_add(1) >= EPOCH_MAX
}

/// Whether InitProducerId for this state needs a producer id never used before.
pub fn needs_fresh_producer_id(current: Option<&TxnMetadata>) -> bool {
    match current {
        None => true,
        Some(current) => current.state == TxnState::Dead || current.producer_epoch >= EPOCH_MAX,
    }
}

/// InitProducerId with a transactional id. `expected` is the producer id and epoch the client
/// already holds (v3+, KIP-360); `fresh_id` a never-used producer id when
/// `needs_fresh_producer_id` said one is needed.
pub fn init_producer_id(
    current: Option<&TxnMetadata>,
    transactional_id: &str,
    timeout_ms: i32,
    expected: Option<(i64, i16)>,
    fresh_id: Option<i64>,
    now_ms: i64,
) -> Result<InitOutcome, TxnError> {
    let fresh = |producer_id: i64, last_epoch: i16| TxnMetadata {
        transactional_id: transactional_id.to_string(),
        producer_id,
        producer_epoch: 0,
        last_producer_epoch: last_epoch,
        timeout_ms,
        state: TxnState::Empty,
        partitions: BTreeSet::new(),
        start_ms: -1,
        last_update_ms: now_ms,
        next_producer_id: None,
    };
    let current = match current {
        Some(current) if current.state != TxnState::Dead => current,
        _ => {
            let producer_id = fresh_id.ok_or(TxnError::CoordinatorNotAvailable)?;
            return Ok(InitOutcome::Ready(fresh(producer_id, -1)));
        }
    };
    if current.state.is_preparing() {
        return Err(TxnError::ConcurrentTransactions);
    }
    if let Some((producer_id, epoch)) = expected {
        let retried = producer_id == current.producer_id
            && epoch == current.last_producer_epoch
            && current.state != TxnState::Ongoing;
        if retried {
            return Ok(InitOutcome::Ready(current.clone()));
        }
        if producer_id != current.producer_id || epoch != current.producer_epoch {
            return Err(TxnError::ProducerFenced);
        }
    }
    if current.state == TxnState::Ongoing {
        let mut fenced = current.clone();
        fenced.last_producer_epoch = current.producer_epoch;
        fenced.producer_epoch = current.producer_epoch.saturating_add(1).min(EPOCH_MAX);
        fenced.state = TxnState::PrepareAbort;
        fenced.last_update_ms = now_ms;
        return Ok(InitOutcome::AbortOpen(fenced));
    }
    if current.producer_epoch >= EPOCH_MAX {
        let producer_id = fresh_id.ok_or(TxnError::CoordinatorNotAvailable)?;
        return Ok(InitOutcome::Ready(fresh(producer_id, -1)));
    }
    let mut next = current.clone();
    next.last_producer_epoch = current.producer_epoch;
    next.producer_epoch = current.producer_epoch + 1;
    next.timeout_ms = timeout_ms;
    next.state = TxnState::Empty;
    next.partitions.clear();
    next.start_ms = -1;
    next.last_update_ms = now_ms;
    Ok(InitOutcome::Ready(next))
}

/// Checks that the request's producer is the transactional id's current one.
fn check_producer(current: &TxnMetadata, producer_id: i64, epoch: i16) -> Result<(), TxnError> {
    if producer_id != current.producer_id {
        return Err(TxnError::InvalidProducerIdMapping);
    }
    if epoch < current.producer_epoch {
        return Err(TxnError::ProducerFenced);
    }
    if epoch > current.producer_epoch {
        return Err(TxnError::InvalidProducerEpoch);
    }
    Ok(())
}

/// AddPartitionsToTxn (and AddOffsetsToTxn, with the group's offsets partition): starts the
/// transaction if none is open. `None` when nothing changes (every partition is in already).
pub fn add_partitions(
    current: &TxnMetadata,
    producer_id: i64,
    epoch: i16,
    partitions: &[TopicPartition],
    now_ms: i64,
) -> Result<Option<TxnMetadata>, TxnError> {
    check_producer(current, producer_id, epoch)?;
    if current.state.is_preparing() {
        return Err(TxnError::ConcurrentTransactions);
    }
    if current.state == TxnState::Dead {
        return Err(TxnError::InvalidTxnState);
    }
    let ongoing = current.state == TxnState::Ongoing;
    if ongoing && partitions.iter().all(|tp| current.partitions.contains(tp)) {
        return Ok(None);
    }
    let mut next = current.clone();
    next.partitions.extend(partitions.iter().cloned());
    next.state = TxnState::Ongoing;
    if !ongoing {
        next.start_ms = now_ms;
    }
    next.last_update_ms = now_ms;
    Ok(Some(next))
}

/// AddPartitionsToTxn v4+ with `verify_only`: whether each partition is part of the producer's
/// open transaction (KIP-890: a leader asks before it appends a transactional batch).
pub fn verify_partitions(
    current: &TxnMetadata,
    producer_id: i64,
    epoch: i16,
    partitions: &[TopicPartition],
) -> Result<Vec<Result<(), TxnError>>, TxnError> {
    check_producer(current, producer_id, epoch)?;
    Ok(partitions
        .iter()
        .map(
            |tp| match current.state == TxnState::Ongoing && current.partitions.contains(tp) {
                true => Ok(()),
                false => Err(TxnError::TransactionAbortable),
            },
        )
        .collect())
}

/// EndTxn: commit (`commit`) or abort the open transaction. With transactions version 2 the
/// prepared state carries the next epoch (the markers fence the ended transaction's epoch), a
/// retry that names the epoch before that bump is recognised, and an abort with no transaction
/// open only bumps the epoch.
pub fn end_txn(
    current: &TxnMetadata,
    producer_id: i64,
    epoch: i16,
    commit: bool,
    version: TxnVersion,
    fresh_id: Option<i64>,
    now_ms: i64,
) -> Result<EndOutcome, TxnError> {
    let retry_after_bump = version == TxnVersion::V2
        && producer_id == current.producer_id
        && epoch == current.last_producer_epoch
        && epoch + 1 == current.producer_epoch;
    if retry_after_bump {
        return match (current.state, commit) {
            (TxnState::CompleteCommit, true) | (TxnState::CompleteAbort, false) => {
                Ok(EndOutcome::AlreadyDone)
            }
            (TxnState::PrepareCommit, true) | (TxnState::PrepareAbort, false) => {
                Err(TxnError::ConcurrentTransactions)
            }
            _ => Err(TxnError::ProducerFenced),
        };
    }
    check_producer(current, producer_id, epoch)?;
    let bumped = |state: TxnState| {
        let mut next = current.clone();
        next.state = state;
        next.last_update_ms = now_ms;
        if version == TxnVersion::V2 {
            next.last_producer_epoch = current.producer_epoch;
            next.producer_epoch = current.producer_epoch.saturating_add(1).min(EPOCH_MAX);
            if next.producer_epoch >= EPOCH_MAX {
                next.next_producer_id = fresh_id;
            }
        }
        next
    };
    match (current.state, commit) {
        (TxnState::Ongoing, true) => Ok(EndOutcome::Prepare(bumped(TxnState::PrepareCommit))),
        (TxnState::Ongoing, false) => Ok(EndOutcome::Prepare(bumped(TxnState::PrepareAbort))),
        (TxnState::Empty | TxnState::CompleteCommit | TxnState::CompleteAbort, false)
            if version == TxnVersion::V2 =>
        {
            Ok(EndOutcome::Complete(complete(
                &bumped(TxnState::PrepareAbort),
                now_ms,
            )))
        }
        // In version 2 a retry names the epoch before the bump (above): the current epoch
        // ending again is a new transaction that never began.
        (TxnState::CompleteCommit, true) | (TxnState::CompleteAbort, false)
            if version == TxnVersion::V1 =>
        {
            Ok(EndOutcome::AlreadyDone)
        }
        (TxnState::PrepareCommit, true) | (TxnState::PrepareAbort, false) => {
            Err(TxnError::ConcurrentTransactions)
        }
        _ => Err(TxnError::InvalidTxnState),
    }
}

/// The state once every marker of a prepared transaction is written.
pub fn complete(prepared: &TxnMetadata, now_ms: i64) -> TxnMetadata {
    let mut next = prepared.clone();
    next.state = match prepared.state {
        TxnState::PrepareCommit => TxnState::CompleteCommit,
        _ => TxnState::CompleteAbort,
    };
    next.partitions.clear();
    next.start_ms = -1;
    next.last_update_ms = now_ms;
    if let Some(producer_id) = next.next_producer_id.take() {
        next.producer_id = producer_id;
        next.producer_epoch = 0;
        next.last_producer_epoch = -1;
    }
    next
}

/// A transaction open longer than its timeout is aborted by the coordinator, under a bumped
/// epoch that fences its producer (Kafka's `abortTimedOutTransactions`).
pub fn time_out(current: &TxnMetadata, now_ms: i64) -> Option<TxnMetadata> {
    let expired = current.state == TxnState::Ongoing
        && now_ms.saturating_sub(current.start_ms) > i64::from(current.timeout_ms);
    if !expired {
        return None;
    }
    let mut fenced = current.clone();
    fenced.last_producer_epoch = current.producer_epoch;
    fenced.producer_epoch = current.producer_epoch.saturating_add(1).min(EPOCH_MAX);
    fenced.state = TxnState::PrepareAbort;
    fenced.last_update_ms = now_ms;
    Some(fenced)
}

/// Whether the transactional id has been idle (no transaction open or ending) for
/// `transactional.id.expiration.ms`, and is to be forgotten.
pub fn is_expired(current: &TxnMetadata, now_ms: i64, expiration_ms: i64) -> bool {
    matches!(
        current.state,
        TxnState::Empty | TxnState::CompleteCommit | TxnState::CompleteAbort
    ) && now_ms.saturating_sub(current.last_update_ms) >= expiration_ms
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tp(topic: &str, partition: i32) -> TopicPartition {
        (topic.to_string(), partition)
    }

    fn ready(outcome: Result<InitOutcome, TxnError>) -> TxnMetadata {
        match outcome {
            Ok(InitOutcome::Ready(metadata)) => metadata,
            other => panic!("expected Ready, got {other:?}"),
        }
    }

    /// Proves the life of a transactional id: epochs bump on every InitProducerId, a commit
    /// goes Ongoing → PrepareCommit → CompleteCommit, retries of a finished end are answered,
    /// stale producers are fenced, and an open transaction is aborted under a new epoch when a
    /// new producer takes the id.
    #[test]
    fn transaction_lifecycle() {
        let first = ready(init_producer_id(None, "t", 60_000, None, Some(7), 0));
        assert_eq!((first.producer_id, first.producer_epoch), (7, 0));
        let ongoing = add_partitions(&first, 7, 0, &[tp("a", 0), tp("a", 1)], 10)
            .unwrap()
            .unwrap();
        assert_eq!(ongoing.state, TxnState::Ongoing);
        assert_eq!(ongoing.start_ms, 10);
        assert_eq!(add_partitions(&ongoing, 7, 0, &[tp("a", 1)], 11), Ok(None));
        assert_eq!(
            add_partitions(&ongoing, 8, 0, &[tp("a", 1)], 11),
            Err(TxnError::InvalidProducerIdMapping)
        );
        let EndOutcome::Prepare(prepared) =
            end_txn(&ongoing, 7, 0, true, TxnVersion::V1, None, 20).unwrap()
        else {
            panic!("an open transaction is prepared");
        };
        assert_eq!(prepared.state, TxnState::PrepareCommit);
        assert_eq!(
            add_partitions(&prepared, 7, 0, &[tp("a", 0)], 21),
            Err(TxnError::ConcurrentTransactions)
        );
        assert_eq!(
            end_txn(&prepared, 7, 0, true, TxnVersion::V1, None, 21),
            Err(TxnError::ConcurrentTransactions)
        );
        let done = complete(&prepared, 30);
        assert_eq!(done.state, TxnState::CompleteCommit);
        assert!(done.partitions.is_empty());
        assert_eq!(
            end_txn(&done, 7, 0, true, TxnVersion::V1, None, 31),
            Ok(EndOutcome::AlreadyDone)
        );
        assert_eq!(
            end_txn(&done, 7, 0, false, TxnVersion::V1, None, 31),
            Err(TxnError::InvalidTxnState)
        );

        // A second producer takes the id: the epoch moves and the first one is fenced.
        let second = ready(init_producer_id(Some(&done), "t", 60_000, None, None, 40));
        assert_eq!((second.producer_id, second.producer_epoch), (7, 1));
        assert_eq!(
            add_partitions(&second, 7, 0, &[tp("a", 0)], 41),
            Err(TxnError::ProducerFenced)
        );
        let open = add_partitions(&second, 7, 1, &[tp("a", 0)], 42)
            .unwrap()
            .unwrap();
        let InitOutcome::AbortOpen(fenced) =
            init_producer_id(Some(&open), "t", 60_000, None, None, 50).unwrap()
        else {
            panic!("an open transaction is aborted first");
        };
        assert_eq!(
            (fenced.state, fenced.producer_epoch),
            (TxnState::PrepareAbort, 2)
        );
        assert_eq!(
            init_producer_id(Some(&fenced), "t", 60_000, None, None, 51),
            Err(TxnError::ConcurrentTransactions)
        );
        let aborted = complete(&fenced, 60);
        assert_eq!(aborted.state, TxnState::CompleteAbort);
        let third = ready(init_producer_id(
            Some(&aborted),
            "t",
            60_000,
            None,
            None,
            70,
        ));
        assert_eq!(third.producer_epoch, 3);
    }

    /// Proves KIP-360's retry: a client naming the epoch it held before the last bump gets the
    /// current one back, and one naming anything else is fenced.
    #[test]
    fn init_producer_id_retries_and_fences() {
        let first = ready(init_producer_id(None, "t", 1_000, None, Some(3), 0));
        let second = ready(init_producer_id(
            Some(&first),
            "t",
            1_000,
            Some((3, 0)),
            None,
            1,
        ));
        assert_eq!(second.producer_epoch, 1);
        let again = ready(init_producer_id(
            Some(&second),
            "t",
            1_000,
            Some((3, 0)),
            None,
            2,
        ));
        assert_eq!(again, second);
        assert_eq!(
            init_producer_id(Some(&second), "t", 1_000, Some((4, 1)), None, 2),
            Err(TxnError::ProducerFenced)
        );
        let mut exhausted = second.clone();
        exhausted.producer_epoch = EPOCH_MAX;
        assert!(needs_fresh_producer_id(Some(&exhausted)));
        let renewed = ready(init_producer_id(
            Some(&exhausted),
            "t",
            1_000,
            None,
            Some(9),
            3,
        ));
        assert_eq!((renewed.producer_id, renewed.producer_epoch), (9, 0));
    }

    /// Proves a transaction open past its timeout is aborted under a bumped epoch, and only an
    /// idle id expires.
    #[test]
    fn timeouts_and_expiry() {
        let first = ready(init_producer_id(None, "t", 1_000, None, Some(3), 0));
        let open = add_partitions(&first, 3, 0, &[tp("a", 0)], 100)
            .unwrap()
            .unwrap();
        assert_eq!(time_out(&open, 1_100), None);
        let fenced = time_out(&open, 1_101).expect("past its timeout");
        assert_eq!(
            (fenced.state, fenced.producer_epoch),
            (TxnState::PrepareAbort, 1)
        );
        assert!(!is_expired(&open, 10_000_000, 1_000));
        assert!(is_expired(&first, 1_000, 1_000));
        assert!(!is_expired(&first, 999, 1_000));
        assert_eq!(
            verify_partitions(&open, 3, 0, &[tp("a", 0), tp("a", 1)]),
            Ok(vec![Ok(()), Err(TxnError::TransactionAbortable)])
        );
    }

    /// Proves transactions version 2: every end bumps the epoch (the markers carry the new
    /// one), a retry naming the epoch before the bump is answered, the old epoch is fenced
    /// afterwards, and an abort with nothing open only bumps the epoch.
    #[test]
    fn version_2_bumps_the_epoch_per_transaction() {
        let first = ready(init_producer_id(None, "t", 60_000, None, Some(7), 0));
        let open = add_partitions(&first, 7, 0, &[tp("a", 0)], 1)
            .unwrap()
            .unwrap();
        let EndOutcome::Prepare(prepared) =
            end_txn(&open, 7, 0, true, TxnVersion::V2, None, 2).unwrap()
        else {
            panic!("an open transaction is prepared");
        };
        assert_eq!(
            (prepared.producer_epoch, prepared.last_producer_epoch),
            (1, 0)
        );
        assert_eq!(
            end_txn(&prepared, 7, 0, true, TxnVersion::V2, None, 3),
            Err(TxnError::ConcurrentTransactions)
        );
        let done = complete(&prepared, 4);
        assert_eq!(
            end_txn(&done, 7, 0, true, TxnVersion::V2, None, 5),
            Ok(EndOutcome::AlreadyDone)
        );
        assert_eq!(
            add_partitions(&done, 7, 0, &[tp("a", 0)], 6),
            Err(TxnError::ProducerFenced)
        );
        let EndOutcome::Complete(empty_abort) =
            end_txn(&done, 7, 1, false, TxnVersion::V2, None, 7).unwrap()
        else {
            panic!("an abort with nothing open completes at once");
        };
        assert_eq!(
            (empty_abort.state, empty_abort.producer_epoch),
            (TxnState::CompleteAbort, 2)
        );
        assert_eq!(
            end_txn(&done, 7, 1, true, TxnVersion::V2, None, 7),
            Err(TxnError::InvalidTxnState)
        );
    }

    /// Proves a version 2 end that reaches the last epoch hands the client a fresh producer id
    /// at epoch 0 once it completes, the markers keeping the old id's last epoch.
    #[test]
    fn version_2_renews_an_exhausted_producer_id() {
        let mut open = ready(init_producer_id(None, "t", 60_000, None, Some(7), 0));
        open.producer_epoch = EPOCH_MAX - 1;
        let open = add_partitions(&open, 7, EPOCH_MAX - 1, &[tp("a", 0)], 1)
            .unwrap()
            .unwrap();
        assert!(end_needs_fresh_producer_id(&open, TxnVersion::V2));
        assert!(!end_needs_fresh_producer_id(&open, TxnVersion::V1));
        let EndOutcome::Prepare(prepared) =
            end_txn(&open, 7, EPOCH_MAX - 1, true, TxnVersion::V2, Some(9), 2).unwrap()
        else {
            panic!("an open transaction is prepared");
        };
        assert_eq!(
            (prepared.producer_id, prepared.producer_epoch),
            (7, EPOCH_MAX)
        );
        let done = complete(&prepared, 3);
        assert_eq!((done.producer_id, done.producer_epoch), (9, 0));
        assert_eq!(done.next_producer_id, None);
    }
}
