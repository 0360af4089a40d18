//! Unit tests of `cli::metadata_quorum`: argument checks and the exact text of `--status`,
//! `--replication` and the error reports, kept apart so the command stays readable.

use std::collections::BTreeMap;

use super::*;
use crate::client::admin::VoterEndpoint;
use crate::client::error::KafkaError;

fn parse(arguments: &[&str]) -> Result<Args, clap::Error> {
    let mut all = vec!["metadata-quorum"];
    all.extend_from_slice(arguments);
    crate::cli::parse_tool_args(&all)
}

fn describe(arguments: &[&str]) -> Result<View, String> {
    let mut all = vec!["--bootstrap-server", "h:1", "describe"];
    all.extend_from_slice(arguments);
    match parse(&all).expect("parses").command {
        QuorumCommand::Describe(describe) => check_describe(&describe).map_err(|e| e.to_string()),
        other => panic!("not describe: {other:?}"),
    }
}

fn replica(id: i32, log_end_offset: i64, caught_up: Option<i64>) -> QuorumReplica {
    QuorumReplica {
        replica_id: id,
        directory_id: [0; 16],
        log_end_offset,
        last_fetch_timestamp: caught_up,
        last_caught_up_timestamp: caught_up,
    }
}

fn endpoint(port: u16) -> Vec<VoterEndpoint> {
    vec![VoterEndpoint {
        listener: "CONTROLLER".into(),
        host: "localhost".into(),
        port,
    }]
}

/// One combined node, as Flink runs by default.
fn single_node() -> QuorumInfo {
    QuorumInfo {
        leader_id: 1,
        leader_epoch: 1,
        high_watermark: 7,
        voters: vec![replica(1, 7, Some(1_700_000_000_123))],
        observers: Vec::new(),
        nodes: BTreeMap::from([(1, endpoint(9093))]),
    }
}

/// Three controllers (the leader second, a follower behind) and one broker observing.
fn three_controllers() -> QuorumInfo {
    let mut observer = replica(4, 95, Some(1_700_000_000_050));
    observer.directory_id = [1; 16];
    QuorumInfo {
        leader_id: 2,
        leader_epoch: 5,
        high_watermark: 100,
        voters: vec![
            replica(1, 100, Some(1_700_000_000_100)),
            replica(2, 100, Some(1_700_000_000_100)),
            replica(3, 90, Some(1_700_000_000_000)),
        ],
        observers: vec![observer],
        nodes: BTreeMap::from([(1, endpoint(9093)), (2, endpoint(9094)), (3, Vec::new())]),
    }
}

/// Proves the status lines are Kafka's word for word for a single combined node.
#[test]
fn status_of_a_single_node() {
    let text = status_text("MkU3OEVBNTcwNTJENDM2Qk", &single_node()).expect("a leader");
    assert_eq!(
        text,
        "ClusterId:              MkU3OEVBNTcwNTJENDM2Qk\n\
         LeaderId:               1\n\
         LeaderEpoch:            1\n\
         HighWatermark:          7\n\
         MaxFollowerLag:         0\n\
         MaxFollowerLagTimeMs:   0\n\
         CurrentVoters:          [{\"id\": 1, \"endpoints\": [\"CONTROLLER://localhost:9093\"]}]\n\
         CurrentObservers:       []\n"
    );
}

/// Proves the lag comes from the voter furthest behind, its time from the caught-up times, and
/// that directory ids and endpoints appear only when known.
#[test]
fn status_of_three_controllers() {
    let text = status_text("c", &three_controllers()).expect("a leader");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[4], "MaxFollowerLag:         10");
    assert_eq!(lines[5], "MaxFollowerLagTimeMs:   100");
    assert_eq!(
        lines[6],
        "CurrentVoters:          [{\"id\": 1, \"endpoints\": [\"CONTROLLER://localhost:9093\"]}, \
         {\"id\": 2, \"endpoints\": [\"CONTROLLER://localhost:9094\"]}, {\"id\": 3}]"
    );
    assert_eq!(
        lines[7],
        "CurrentObservers:       [{\"id\": 4, \"directoryId\": \"AQEBAQEBAQEBAQEBAQEBAQ\"}]"
    );
}

/// Proves Kafka's lag time rules: 0 when the first voter furthest behind is the leader itself
/// (even if another voter is level with it), -1 when a caught-up time is unknown.
#[test]
fn lag_time_follows_kafka_ties_and_unknowns() {
    let mut quorum = three_controllers();
    quorum.voters[2].log_end_offset = 100;
    quorum.voters[0].last_caught_up_timestamp = Some(1_700_000_000_000);
    // Voter 1 is level with the leader and comes first: Kafka measures the time against it.
    let text = status_text("c", &quorum).expect("a leader");
    assert!(text.contains("MaxFollowerLag:         0\nMaxFollowerLagTimeMs:   100\n"));
    quorum.voters.swap(0, 1);
    let text = status_text("c", &quorum).expect("a leader");
    assert!(text.contains("MaxFollowerLagTimeMs:   0\n"), "{text}");
    let mut quorum = three_controllers();
    quorum.voters[2].last_caught_up_timestamp = None;
    let text = status_text("c", &quorum).expect("a leader");
    assert!(text.contains("MaxFollowerLagTimeMs:   -1\n"), "{text}");
}

/// Proves the replication table of a single node: Kafka's columns, each cell padded to its
/// column and followed by a tab.
#[test]
fn replication_of_a_single_node() {
    let text = replication_text(&single_node(), None).expect("a leader");
    assert_eq!(
        text,
        "NodeId\tDirectoryId           \tLogEndOffset\tLag\tLastFetchTimestamp\t\
         LastCaughtUpTimestamp\tStatus\t\n\
         1     \tAAAAAAAAAAAAAAAAAAAAAA\t7           \t0  \t1700000000123     \t\
         1700000000123        \tLeader\t\n"
    );
}

/// Proves the rows come leader first, then the other voters, then observers, with lags
/// measured from the leader and unknown times as -1.
#[test]
fn replication_rows_in_kafka_order() {
    let mut quorum = three_controllers();
    quorum.observers[0].last_fetch_timestamp = None;
    let text = replication_text(&quorum, None).expect("a leader");
    let rows: Vec<Vec<&str>> = text
        .lines()
        .skip(1)
        .map(|line| line.split('\t').map(str::trim_end).collect())
        .collect();
    let summary: Vec<(&str, &str, &str, &str)> = rows
        .iter()
        .map(|row| (row[0], row[3], row[4], row[6]))
        .collect();
    assert_eq!(
        summary,
        [
            ("2", "0", "1700000000100", "Leader"),
            ("1", "0", "1700000000100", "Follower"),
            ("3", "10", "1700000000000", "Follower"),
            ("4", "5", "-1", "Observer"),
        ]
    );
}

/// Proves --human-readable shows elapsed times, and refuses a time after now as Kafka does.
#[test]
fn human_readable_times() {
    let now = 1_700_000_000_223;
    let text = replication_text(&single_node(), Some(now)).expect("a leader");
    assert!(
        text.contains("\t100 ms ago        \t100 ms ago           \tLeader\t\n"),
        "{text}"
    );
    let error = replication_text(&single_node(), Some(1_700_000_000_000)).expect_err("drift");
    assert_eq!(
        report(&error),
        "Error while computing relative time, possible drift in system clock.\n\
         Current timestamp is 1700000000000, last fetch timestamp is 1700000000123\n\
         org.apache.kafka.common.KafkaException: Error while computing relative time, possible \
         drift in system clock.\n\
         Current timestamp is 1700000000000, last fetch timestamp is 1700000000123"
    );
}

/// Proves a quorum without a leader among its voters fails as Kafka's Optional.get does.
#[test]
fn no_leader_is_reported() {
    let mut quorum = single_node();
    quorum.leader_id = -1;
    let error = status_text("c", &quorum).expect_err("no leader");
    assert_eq!(
        report(&error),
        "No value present\njava.util.NoSuchElementException: No value present"
    );
    assert!(replication_text(&quorum, None).is_err());
}

/// Proves the describe flags are checked with Kafka's messages.
#[test]
fn describe_flags_are_checked() {
    assert_eq!(describe(&["--status"]), Ok(View::Status));
    assert_eq!(
        describe(&["--replication", "--human-readable"]),
        Ok(View::Replication {
            human_readable: true
        })
    );
    assert_eq!(
        describe(&["--status", "--replication"]),
        Err(
            "Only one of --status or --replication should be specified with describe sub-command"
                .into()
        )
    );
    assert_eq!(
        describe(&[]),
        Err("One of --status or --replication must be specified with describe sub-command".into())
    );
    assert_eq!(
        describe(&["--status", "--human-readable"]),
        Err("The option --human-readable is only supported along with --replication".into())
    );
}

/// Proves exactly one of the connection options is required, and --bootstrap-controller and
/// the membership subcommands are refused with a reason.
#[test]
fn connection_options() {
    assert!(parse(&["describe", "--status"]).is_err());
    assert!(parse(&[
        "--bootstrap-server",
        "h:1",
        "--bootstrap-controller",
        "h:2",
        "describe",
        "--status"
    ])
    .is_err());
    let args = parse(&["--bootstrap-controller", "h:2", "describe", "--status"]).expect("parses");
    let message = execute(&args).expect_err("refused").to_string();
    assert!(
        message.starts_with("--bootstrap-controller is not supported"),
        "{message}"
    );
    let args =
        parse(&["--bootstrap-server", "h:1", "add-controller", "--dry-run"]).expect("parses");
    let message = execute(&args).expect_err("refused").to_string();
    assert!(message.contains("controller.quorum.voters"), "{message}");
    let args = parse(&[
        "--bootstrap-server",
        "h:1",
        "--command-config",
        "/nonexistent/x",
        "describe",
    ])
    .expect("parses");
    assert_eq!(
        execute(&args).expect_err("no file").to_string(),
        "Properties file /nonexistent/x does not exist."
    );
}

/// Proves errors from the cluster print as the admin client's wrapped exception.
#[test]
fn cluster_errors_print_as_execution_exceptions() {
    let error = QuorumError::Client(ClientError::Kafka(KafkaError::new(41)));
    assert_eq!(
        report(&error),
        "org.apache.kafka.common.errors.NotControllerException: This is not the correct \
         controller for this cluster.\n\
         java.util.concurrent.ExecutionException: org.apache.kafka.common.errors.\
         NotControllerException: This is not the correct controller for this cluster."
    );
}
