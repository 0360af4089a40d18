//! Unit tests of `cli::transactions`: the command line, the exact text of every table, the abort
//! specs, and hanging-transaction detection, kept apart so the command stays readable.

use clap::Parser;

use super::*;
use crate::client::cluster::{PartitionMetadata, TopicMetadata};

fn parse(arguments: &[&str]) -> Result<Options, clap::Error> {
    let mut all = vec![NAME, "--bootstrap-server", "h:1"];
    all.extend_from_slice(arguments);
    Options::try_parse_from(all)
}

fn producer(id: i64, last_timestamp: i64, start_offset: Option<i64>) -> ProducerState {
    ProducerState {
        producer_id: id,
        producer_epoch: 0,
        last_sequence: 9,
        last_timestamp,
        coordinator_epoch: None,
        current_transaction_start_offset: start_offset,
    }
}

fn open(topic: &str, partition: i32, state: ProducerState) -> OpenTransaction {
    OpenTransaction {
        partition: TopicPartition::new(topic, partition),
        producer: state,
    }
}

fn abort_args(arguments: &[&str]) -> AbortArgs {
    let mut all = vec!["abort", "--topic", "t", "--partition", "0"];
    all.extend_from_slice(arguments);
    match parse(&all).expect("parses").command {
        Command::Abort(args) => args,
        other => panic!("not abort: {other:?}"),
    }
}

fn find_hanging_args(arguments: &[&str]) -> FindHangingArgs {
    let mut all = vec!["find-hanging"];
    all.extend_from_slice(arguments);
    match parse(&all).expect("parses").command {
        Command::FindHanging(args) => args,
        other => panic!("not find-hanging: {other:?}"),
    }
}

/// Proves the subcommands take Kafka's flags: required ones are required, negative numbers
/// pass where Kafka allows them, and find-hanging's timeout defaults to 15 minutes.
#[test]
fn command_lines_follow_kafka() {
    assert!(
        Options::try_parse_from([NAME, "list"]).is_err(),
        "--bootstrap-server"
    );
    assert!(parse(&[]).is_err(), "a command is required");
    let version = Options::try_parse_from([NAME, "-v"]).expect_err("prints the version");
    assert_eq!(version.kind(), clap::error::ErrorKind::DisplayVersion);
    let Command::List(list) = parse(&["list", "--duration-filter", "-1"])
        .expect("parses")
        .command
    else {
        panic!("not list");
    };
    assert_eq!(list.duration_filter, Some(-1));
    assert!(
        parse(&["describe"]).is_err(),
        "--transactional-id is required"
    );
    assert!(parse(&["describe-producers", "--topic", "t"]).is_err());
    let Command::DescribeProducers(producers) = parse(&[
        "describe-producers",
        "--topic",
        "t",
        "--partition",
        "3",
        "--broker-id",
        "2",
    ])
    .expect("parses")
    .command
    else {
        panic!("not describe-producers");
    };
    assert_eq!(
        (
            producers.topic.as_str(),
            producers.partition,
            producers.broker_id
        ),
        ("t", 3, Some(2))
    );
    assert!(
        parse(&["abort", "--partition", "0"]).is_err(),
        "--topic is required"
    );
    let abort = abort_args(&[
        "--producer-id",
        "5",
        "--producer-epoch",
        "1",
        "--coordinator-epoch",
        "-1",
    ]);
    assert_eq!(abort.coordinator_epoch, Some(-1));
    assert!(parse(&[
        "abort",
        "--topic",
        "t",
        "--partition",
        "0",
        "--producer-epoch",
        "40000"
    ])
    .is_err());
    assert_eq!(
        find_hanging_args(&["--broker-id", "1"]).max_transaction_timeout,
        15
    );
}

/// Proves the abort specs: Kafka's messages for missing flags, a negative coordinator epoch
/// raised to 0, and the producer whose open transaction starts at the offset.
#[test]
fn abort_specs_follow_kafka() {
    let partition = TopicPartition::new("t", 0);
    let refused =
        |result: Result<AbortSpec, TransactionsError>| result.expect_err("refused").to_string();
    assert_eq!(
        refused(spec_from_arguments(
            partition.clone(),
            5,
            &abort_args(&["--producer-id", "5"])
        )),
        "Missing required argument --producer-epoch"
    );
    assert_eq!(
        refused(spec_from_arguments(
            partition.clone(),
            5,
            &abort_args(&["--producer-id", "5", "--producer-epoch", "1"])
        )),
        "Missing required argument --coordinator-epoch"
    );
    let args = abort_args(&[
        "--producer-id",
        "5",
        "--producer-epoch",
        "1",
        "--coordinator-epoch",
        "-1",
    ]);
    let spec = spec_from_arguments(partition.clone(), 5, &args).expect("complete");
    assert_eq!(
        (
            spec.producer_id,
            spec.producer_epoch,
            spec.coordinator_epoch
        ),
        (5, 1, 0)
    );

    let mut committed_before = producer(8, 0, Some(40));
    committed_before.producer_epoch = 2;
    committed_before.coordinator_epoch = Some(3);
    let producers = [
        producer(7, 0, None),
        producer(6, 0, Some(12)),
        committed_before,
    ];
    let spec = spec_for_start_offset(partition.clone(), &producers, 40).expect("found");
    assert_eq!(
        (
            spec.producer_id,
            spec.producer_epoch,
            spec.coordinator_epoch
        ),
        (8, 2, 3)
    );
    let spec = spec_for_start_offset(partition.clone(), &producers, 12).expect("found");
    assert_eq!((spec.producer_id, spec.coordinator_epoch), (6, 0));
    assert_eq!(
        refused(spec_for_start_offset(partition, &producers, 13)),
        "Could not find any open transactions starting at offset 13 on partition t-0"
    );
}

/// Proves find-hanging's checks come in Kafka's order with Kafka's messages.
#[test]
fn find_hanging_needs_a_scope() {
    let check = |arguments: &[&str]| {
        check_find_hanging(&find_hanging_args(arguments)).map_err(|e| e.to_string())
    };
    assert_eq!(
        check(&[]),
        Err(
            "The `find-hanging` command requires either --topic or --broker-id to limit the \
             scope of the search"
                .to_string()
        )
    );
    assert_eq!(
        check(&["--broker-id", "1", "--partition", "0"]),
        Err("The --partition argument requires --topic to be provided".to_string())
    );
    assert_eq!(check(&["--topic", "t"]), Ok(()));
    assert_eq!(check(&["--broker-id", "1"]), Ok(()));
}

/// Proves the list table is Kafka's: every cell padded to its column and followed by a tab,
/// rows by coordinator.
#[test]
fn list_table_is_kafkas() {
    let listing = |id: &str, producer_id: i64, state: &str| TransactionListing {
        transactional_id: id.to_string(),
        producer_id,
        state: state.to_string(),
    };
    let listings = BTreeMap::from([
        (
            NodeId(2),
            vec![listing("payments-processor", 1000, "CompleteCommit")],
        ),
        (NodeId(1), vec![listing("a", 7, "Ongoing")]),
    ]);
    assert_eq!(
        list_table(&listings),
        "TransactionalId   \tCoordinator\tProducerId\tTransactionState\t\n\
         a                 \t1          \t7         \tOngoing         \t\n\
         payments-processor\t2          \t1000      \tCompleteCommit  \t\n"
    );
    assert_eq!(
        list_table(&BTreeMap::new()),
        "TransactionalId\tCoordinator\tProducerId\tTransactionState\t\n"
    );
}

/// Proves the describe table: the duration counts to now, "None" without an open transaction,
/// partitions joined with commas.
#[test]
fn describe_table_is_kafkas() {
    let description = TransactionDescription {
        coordinator_id: 1,
        state: "Ongoing".to_string(),
        producer_id: 1000,
        producer_epoch: 0,
        transaction_timeout_ms: 60_000,
        transaction_start_time_ms: Some(1_700_000_000_000),
        topic_partitions: vec![TopicPartition::new("t", 0), TopicPartition::new("t", 2)],
    };
    let text = describe_table("tx", &description, 1_700_000_001_500);
    let lines: Vec<Vec<&str>> = text
        .lines()
        .map(|line| line.split('\t').map(str::trim_end).collect())
        .collect();
    assert_eq!(
        lines[0],
        [
            "CoordinatorId",
            "TransactionalId",
            "ProducerId",
            "ProducerEpoch",
            "TransactionState",
            "TransactionTimeoutMs",
            "CurrentTransactionStartTimeMs",
            "TransactionDurationMs",
            "TopicPartitions",
            ""
        ]
    );
    assert_eq!(
        lines[1],
        [
            "1",
            "tx",
            "1000",
            "0",
            "Ongoing",
            "60000",
            "1700000000000",
            "1500",
            "t-0,t-2",
            ""
        ]
    );
    let idle = TransactionDescription {
        state: "Empty".to_string(),
        transaction_start_time_ms: None,
        topic_partitions: Vec::new(),
        ..description
    };
    let text = describe_table("tx", &idle, 0);
    let row: Vec<&str> = text
        .lines()
        .nth(1)
        .expect("a row")
        .split('\t')
        .map(str::trim_end)
        .collect();
    assert_eq!(
        row,
        ["1", "tx", "1000", "0", "Empty", "60000", "None", "None", "", ""]
    );
}

/// Proves the describe-producers table: -1 for an unknown coordinator epoch, "None" without an
/// open transaction.
#[test]
fn producers_table_is_kafkas() {
    let mut marked = producer(1001, 1_700_000_000_123, None);
    marked.coordinator_epoch = Some(0);
    let text = producers_table(&[producer(1000, 1_700_000_000_456, Some(3)), marked]);
    assert_eq!(
        text,
        "ProducerId\tProducerEpoch\tLatestCoordinatorEpoch\tLastSequence\tLastTimestamp\t\
         CurrentTransactionStartOffset\t\n\
         1000      \t0            \t-1                    \t9           \t1700000000456\t\
         3                            \t\n\
         1001      \t0            \t0                     \t9           \t1700000000123\t\
         None                         \t\n"
    );
}

/// Proves candidates are the open transactions whose last write is older than the timeout,
/// strictly, as Kafka compares.
#[test]
fn candidates_are_old_open_transactions() {
    let producers = BTreeMap::from([
        (
            TopicPartition::new("t", 0),
            vec![
                producer(1, 999, Some(5)),
                producer(2, 0, None),
                producer(3, 1_000, Some(7)),
            ],
        ),
        (TopicPartition::new("u", 1), vec![producer(4, 0, Some(0))]),
    ]);
    let candidates = open_transactions_older_than(&producers, 1_000, 2_000);
    let found: Vec<(String, i64)> = candidates
        .iter()
        .map(|open| (open.partition.to_string(), open.producer.producer_id))
        .collect();
    assert_eq!(found, [("t-0".to_string(), 1), ("u-1".to_string(), 4)]);
}

/// Proves Kafka's rule: an open transaction hangs when its producer has no transactional id,
/// the id is unknown to its coordinator, or the coordinator's transaction lacks the partition.
#[test]
fn hanging_transactions_are_those_the_coordinator_forgot() {
    let candidates = vec![
        open("t", 0, producer(10, 0, Some(1))),
        open("t", 0, producer(11, 0, Some(2))),
        open("t", 1, producer(11, 0, Some(3))),
        open("t", 0, producer(12, 0, Some(4))),
        open("t", 0, producer(13, 0, Some(5))),
    ];
    let ids = BTreeMap::from([
        (11, "listed".to_string()),
        (12, "unknown".to_string()),
        (13, "elsewhere".to_string()),
    ]);
    let descriptions = BTreeMap::from([
        (
            "listed".to_string(),
            Some(BTreeSet::from([TopicPartition::new("t", 0)])),
        ),
        ("unknown".to_string(), None),
        (
            "elsewhere".to_string(),
            Some(BTreeSet::from([TopicPartition::new("v", 0)])),
        ),
    ]);
    let hanging = hanging_transactions(candidates, &ids, &descriptions);
    let found: Vec<(String, i64)> = hanging
        .iter()
        .map(|open| (open.partition.to_string(), open.producer.producer_id))
        .collect();
    assert_eq!(
        found,
        [
            ("t-0".to_string(), 10),
            ("t-1".to_string(), 11),
            ("t-0".to_string(), 12),
            ("t-0".to_string(), 13),
        ]
    );
}

/// Proves the find-hanging table: -1 for unknown epochs and offsets, whole minutes of age.
#[test]
fn hanging_table_is_kafkas() {
    let now = 1_700_000_000_000;
    let mut state = producer(1000, now - 20 * 60_000 - 59_999, Some(42));
    state.producer_epoch = 3;
    let text = hanging_table(&[open("orders", 2, state)], now);
    assert_eq!(
        text,
        "Topic \tPartition\tProducerId\tProducerEpoch\tCoordinatorEpoch\tStartOffset\t\
         LastTimestamp\tDuration(min)\t\n\
         orders\t2        \t1000      \t3            \t-1              \t42         \t\
         1699998740001\t20           \t\n"
    );
    assert_eq!(
        hanging_table(&[], now),
        "Topic\tPartition\tProducerId\tProducerEpoch\tCoordinatorEpoch\tStartOffset\t\
         LastTimestamp\tDuration(min)\t\n"
    );
}

/// Proves find-hanging searches the partitions with a replica on the broker, all of them
/// without one.
#[test]
fn partitions_are_kept_by_replica() {
    let partition = |index: i32, replicas: &[i32]| PartitionMetadata {
        partition: index,
        leader: NodeId(replicas[0]),
        replicas: replicas.iter().copied().map(NodeId).collect(),
        in_sync_replicas: Vec::new(),
    };
    let metadata = ClusterMetadata {
        topics: vec![TopicMetadata {
            name: "t".to_string(),
            topic_id: [0; 16],
            is_internal: false,
            error: None,
            partitions: vec![partition(0, &[1, 2]), partition(1, &[2, 3])],
        }],
    };
    assert_eq!(
        partitions_on_broker(&metadata, Some(1)),
        [TopicPartition::new("t", 0)]
    );
    assert_eq!(partitions_on_broker(&metadata, None).len(), 2);
}

/// Proves failures print as Kafka's `printErrorAndExit(message, cause)`, and I/O errors without
/// Rust's "(os error N)".
#[test]
fn failures_print_as_kafka() {
    let error = failed("Failed to list transactions")(KafkaError::new(15).into());
    assert_eq!(
        error.to_string(),
        "Failed to list transactions: The coordinator is not available.. Enable debug logging \
         for additional detail."
    );
    let missing = std::io::Error::from_raw_os_error(2);
    assert_eq!(io_error_text(&missing), "No such file or directory");
}
