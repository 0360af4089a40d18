//! Unit tests of `client::transactions`: how each answer of ListTransactions,
//! DescribeTransactions, DescribeProducers, WriteTxnMarkers and Metadata becomes a result, a
//! retry or an error with Kafka's admin client message.

use kafka_protocol::messages::describe_producers_response::{PartitionResponse, TopicResponse};
use kafka_protocol::messages::describe_transactions_response::TopicData;
use kafka_protocol::messages::list_transactions_response;
use kafka_protocol::messages::write_txn_markers_response::{
    WritableTxnMarkerPartitionResult, WritableTxnMarkerResult, WritableTxnMarkerTopicResult,
};
use kafka_protocol::messages::TopicName;

use super::*;
use crate::client::cluster::{PartitionMetadata, TopicMetadata};

fn text(value: &str) -> StrBytes {
    StrBytes::from_string(value.to_string())
}

fn done<T: fmt::Debug>(attempt: Attempt<T>) -> Result<T, ClientError> {
    match attempt {
        Attempt::Done(result) => result,
        Attempt::Retry(error) => panic!("retry after {error:?}"),
    }
}

fn message<T: fmt::Debug>(result: Result<T, ClientError>) -> (i16, String) {
    match result {
        Err(ClientError::Kafka(error)) => (error.code, error.message().to_string()),
        other => panic!("not a Kafka error: {other:?}"),
    }
}

fn spec() -> AbortSpec {
    AbortSpec {
        partition: TopicPartition::new("orders", 2),
        producer_id: 1000,
        producer_epoch: 3,
        coordinator_epoch: 0,
    }
}

/// Proves the spec reads as Kafka's `AbortTransactionSpec.toString`, which its messages quote.
#[test]
fn abort_spec_prints_as_kafka() {
    assert_eq!(
        spec().to_string(),
        "AbortTransactionSpec(topicPartition=orders-2, producerId=1000, producerEpoch=3, \
         coordinatorEpoch=0)"
    );
}

/// Proves listings keep the broker's order and Kafka's state names (others read Unknown), a
/// loading coordinator is retried, and other errors carry the admin client's messages.
#[test]
fn list_answers_follow_kafka_admin() {
    let listed = |id: &str, producer_id: i64, state: &str| {
        list_transactions_response::TransactionState::default()
            .with_transactional_id(TransactionalId(text(id)))
            .with_producer_id(ProducerId(producer_id))
            .with_transaction_state(text(state))
    };
    let response = ListTransactionsResponse::default()
        .with_transaction_states(vec![listed("b", 7, "Ongoing"), listed("a", 8, "Dead")]);
    let listings = done(listing_outcome(NodeId(2), response)).expect("listed");
    assert_eq!(
        listings,
        vec![
            TransactionListing {
                transactional_id: "b".into(),
                producer_id: 7,
                state: "Ongoing".into(),
            },
            TransactionListing {
                transactional_id: "a".into(),
                producer_id: 8,
                state: "Unknown".into(),
            },
        ]
    );
    let loading = ListTransactionsResponse::default().with_error_code(14);
    assert!(matches!(
        listing_outcome(NodeId(2), loading),
        Attempt::Retry(_)
    ));
    let closing = ListTransactionsResponse::default().with_error_code(15);
    assert_eq!(
        message(done(listing_outcome(NodeId(2), closing))),
        (
            15,
            "ListTransactions request sent to broker 2 failed because the coordinator is \
             shutting down"
                .to_string()
        )
    );
    let refused = ListTransactionsResponse::default().with_error_code(31);
    assert_eq!(
        message(done(listing_outcome(NodeId(2), refused))).1,
        "ListTransactions request sent to broker 2 failed with an unexpected exception"
    );
}

/// Proves a description names the broker that answered, has no start time without an open
/// transaction, lists partitions in the coordinator's order, and that errors are Kafka's.
#[test]
fn describe_answers_follow_kafka_admin() {
    let state = describe_transactions_response::TransactionState::default()
        .with_transactional_id(TransactionalId(text("payments")))
        .with_transaction_state(text("Ongoing"))
        .with_transaction_timeout_ms(60_000)
        .with_transaction_start_time_ms(1_700_000_000_000)
        .with_producer_id(ProducerId(5))
        .with_producer_epoch(2)
        .with_topics(vec![
            TopicData::default()
                .with_topic(TopicName(text("a")))
                .with_partitions(vec![1, 0]),
            TopicData::default()
                .with_topic(TopicName(text("b")))
                .with_partitions(vec![3]),
        ]);
    let answer =
        |state| DescribeTransactionsResponse::default().with_transaction_states(vec![state]);
    let description = done(description_outcome(
        NodeId(3),
        "payments",
        answer(state.clone()),
    ))
    .expect("described");
    assert_eq!(description.coordinator_id, 3);
    assert_eq!(
        description.transaction_start_time_ms,
        Some(1_700_000_000_000)
    );
    assert_eq!(
        description.topic_partitions,
        vec![
            TopicPartition::new("a", 1),
            TopicPartition::new("a", 0),
            TopicPartition::new("b", 3),
        ]
    );
    let empty = state
        .clone()
        .with_transaction_state(text("Empty"))
        .with_transaction_start_time_ms(-1)
        .with_topics(Vec::new());
    let description =
        done(description_outcome(NodeId(3), "payments", answer(empty))).expect("described");
    assert_eq!(
        (
            description.state.as_str(),
            description.transaction_start_time_ms
        ),
        ("Empty", None)
    );

    let unknown = state.clone().with_error_code(TRANSACTIONAL_ID_NOT_FOUND);
    assert_eq!(
        message(done(description_outcome(
            NodeId(3),
            "payments",
            answer(unknown)
        ))),
        (
            105,
            "DescribeTransactions request for transactionalId `payments` failed because the ID \
             could not be found"
                .to_string()
        )
    );
    let moved = state.clone().with_error_code(NOT_COORDINATOR);
    assert!(matches!(
        description_outcome(NodeId(3), "payments", answer(moved)),
        Attempt::Retry(_)
    ));
    assert!(matches!(
        description_outcome(NodeId(3), "other", answer(state.clone())),
        Attempt::Retry(_)
    ));
    let broken = state.with_error_code(42);
    assert_eq!(
        message(done(description_outcome(NodeId(3), "payments", answer(broken)))).1,
        "DescribeTransactions request for transactionalId `payments` failed due to unexpected error"
    );
}

/// Proves -1 coordinator epochs and start offsets read as absent, and that a lost leadership is
/// retried unless the user named the broker.
#[test]
fn producer_answers_follow_kafka_admin() {
    let producer = describe_producers_response::ProducerState::default()
        .with_producer_id(ProducerId(9))
        .with_producer_epoch(1)
        .with_last_sequence(4)
        .with_last_timestamp(1_700_000_000_500)
        .with_coordinator_epoch(-1)
        .with_current_txn_start_offset(12);
    let response = |partition: PartitionResponse| {
        DescribeProducersResponse::default().with_topics(vec![TopicResponse::default()
            .with_name(TopicName(text("orders")))
            .with_partitions(vec![partition])])
    };
    let answered = PartitionResponse::default()
        .with_partition_index(0)
        .with_active_producers(vec![
            producer.clone(),
            producer
                .with_current_txn_start_offset(-1)
                .with_coordinator_epoch(4),
        ]);
    let [(partition, PartitionOutcome::Done(Ok(states)))] =
        <[_; 1]>::try_from(producers_outcomes(response(answered), None)).expect("one partition")
    else {
        panic!("not described");
    };
    assert_eq!(partition, TopicPartition::new("orders", 0));
    assert_eq!(
        states
            .iter()
            .map(|state| (
                state.coordinator_epoch,
                state.current_transaction_start_offset
            ))
            .collect::<Vec<_>>(),
        vec![(None, Some(12)), (Some(4), None)]
    );

    let not_leader = PartitionResponse::default()
        .with_partition_index(0)
        .with_error_code(NOT_LEADER_OR_FOLLOWER);
    let outcomes = producers_outcomes(response(not_leader.clone()), None);
    assert!(matches!(outcomes[0].1, PartitionOutcome::Retry(_)));
    let outcomes = producers_outcomes(response(not_leader), Some(NodeId(4)));
    let PartitionOutcome::Done(Err(error)) = &outcomes[0].1 else {
        panic!("not failed");
    };
    assert_eq!(
        error.message(),
        "Failed to describe active producers for partition orders-0 on brokerId 4"
    );
}

/// Proves a WriteTxnMarkers answer completes the abort, fails it with Kafka's message, or sends
/// it back to find the leader again.
#[test]
fn abort_answers_follow_kafka_admin() {
    let answer = |producer_id: i64, partition: i32, code: i16| {
        WriteTxnMarkersResponse::default().with_markers(vec![WritableTxnMarkerResult::default()
            .with_producer_id(ProducerId(producer_id))
            .with_topics(vec![WritableTxnMarkerTopicResult::default()
                .with_name(TopicName(text("orders")))
                .with_partitions(vec![WritableTxnMarkerPartitionResult::default()
                    .with_partition_index(partition)
                    .with_error_code(code)])])])
    };
    assert!(matches!(
        abort_outcome(&spec(), &answer(1000, 2, 0)),
        PartitionOutcome::Done(Ok(()))
    ));
    assert!(matches!(
        abort_outcome(&spec(), &answer(1000, 2, NOT_LEADER_OR_FOLLOWER)),
        PartitionOutcome::Retry(_)
    ));
    let failure = |response| match abort_outcome(&spec(), &response) {
        PartitionOutcome::Done(Err(error)) => (error.code, error.message().to_string()),
        _ => panic!("not failed"),
    };
    assert_eq!(
        failure(answer(1000, 2, TRANSACTION_COORDINATOR_FENCED)),
        (
            52,
            format!(
                "WriteTxnMarkers request with {} failed since the provided coordinator epoch 0 \
                 has been fenced by the active coordinator",
                spec()
            )
        )
    );
    assert_eq!(
        failure(answer(1000, 2, INVALID_PRODUCER_EPOCH)).1,
        format!(
            "WriteTxnMarkers request with {} failed due an invalid producer epoch",
            spec()
        )
    );
    assert_eq!(
        failure(answer(1000, 2, 48)).1,
        format!(
            "WriteTxnMarkers request with {} failed due to unexpected error: The producer \
             attempted a transactional operation in an invalid state.",
            spec()
        )
    );
    assert_eq!(failure(answer(1001, 2, 0)).0, UNKNOWN_SERVER_ERROR);
    assert_eq!(failure(answer(1000, 3, 0)).0, UNKNOWN_SERVER_ERROR);
}

/// Proves leaders are found in Metadata, a partition without one is retried, and an unknown
/// topic or partition fails with Kafka's message.
#[test]
fn leaders_come_from_metadata() {
    let metadata = ClusterMetadata {
        topics: vec![
            TopicMetadata {
                name: "orders".into(),
                topic_id: [1; 16],
                is_internal: false,
                error: None,
                partitions: vec![
                    PartitionMetadata {
                        partition: 0,
                        leader: NodeId(2),
                        replicas: vec![NodeId(2)],
                        in_sync_replicas: vec![NodeId(2)],
                    },
                    PartitionMetadata {
                        partition: 1,
                        leader: NodeId::NONE,
                        replicas: vec![NodeId(2)],
                        in_sync_replicas: Vec::new(),
                    },
                ],
            },
            TopicMetadata {
                name: "locked".into(),
                topic_id: [2; 16],
                is_internal: false,
                error: KafkaError::from_code(TOPIC_AUTHORIZATION_FAILED),
                partitions: Vec::new(),
            },
        ],
    };
    let lookup =
        |topic: &str, partition| leader_lookup(&metadata, &TopicPartition::new(topic, partition));
    assert_eq!(lookup("orders", 0), Lookup::Leader(NodeId(2)));
    assert_eq!(
        lookup("orders", 1),
        Lookup::Retry(KafkaError::new(LEADER_NOT_AVAILABLE))
    );
    let failed = |lookup: Lookup| match lookup {
        Lookup::Failed(error) => (error.code, error.message().to_string()),
        other => panic!("not failed: {other:?}"),
    };
    assert_eq!(
        failed(lookup("orders", 5)),
        (
            3,
            "Failed to fetch metadata for partition orders-5 because metadata for topic `orders` \
             could not be found"
                .to_string()
        )
    );
    assert_eq!(failed(lookup("gone", 0)).0, 3);
    assert_eq!(
        failed(lookup("locked", 0)).1,
        "Failed to fetch metadata for partition locked-0 due to topic authorization failure"
    );
}
