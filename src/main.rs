//! `flink`: one multi-call binary for the broker and its tools.
//!
//! `flink server` runs the broker; `topics`, `configs`, `acls`, `console-producer`,
//! `console-consumer`, `consumer-groups`, `metadata-quorum`, `leader-election`, `transactions`,
//! `storage`, `producer-perf-test`, `consumer-perf-test` and `e2e-latency` are the command-line
//! tools that the `bin/flink-*.sh` wrappers call, with Kafka's flags and output.

use flink::{cli, server};

use std::process::ExitCode;

use clap::Parser;

#[derive(Parser)]
#[command(
    name = "flink",
    version,
    about = "Flink event streaming broker and tools"
)]
enum Command {
    /// Run the broker (and the controller when process.roles includes it).
    Server(server::Args),
    /// Create, list, describe and delete topics (flink-topics.sh).
    Topics(cli::topics::Args),
    /// Describe and alter topic and broker configs (flink-configs.sh).
    Configs(cli::configs::Args),
    /// Add, remove and list ACLs (flink-acls.sh).
    Acls(cli::producer_perf::RawArgs),
    /// Read lines from standard input and produce them (flink-console-producer.sh).
    ConsoleProducer(cli::console_producer::Args),
    /// Consume records and print them (flink-console-consumer.sh).
    ConsoleConsumer(cli::console_consumer::Args),
    /// Format log directories and make cluster ids (flink-storage.sh).
    Storage(cli::storage::Args),
    /// List, describe, delete consumer groups and reset their offsets (flink-consumer-groups.sh).
    ConsumerGroups(cli::consumer_groups::Args),
    /// Describe the metadata quorum: leader, epoch, replication (flink-metadata-quorum.sh).
    MetadataQuorum(cli::metadata_quorum::Args),
    /// Elect preferred or unclean partition leaders (flink-leader-election.sh).
    LeaderElection(cli::leader_election::Args),
    /// List, describe and abort transactions, find hanging ones (flink-transactions.sh).
    Transactions(cli::producer_perf::RawArgs),
    /// Measure producer throughput and latency (flink-producer-perf-test.sh).
    ProducerPerfTest(cli::producer_perf::RawArgs),
    /// Measure consumer throughput (flink-consumer-perf-test.sh).
    ConsumerPerfTest(cli::producer_perf::RawArgs),
    /// Measure end-to-end latency through a topic (flink-e2e-latency.sh).
    E2eLatency(cli::producer_perf::RawArgs),
}

fn main() -> ExitCode {
    let command = Command::parse();
    match command {
        Command::Server(args) => server::run(args),
        Command::Topics(args) => cli::topics::run(args),
        Command::Configs(args) => cli::configs::run(args),
        Command::Acls(args) => cli::acls::run(args),
        Command::ConsoleProducer(args) => cli::console_producer::run(args),
        Command::ConsoleConsumer(args) => cli::console_consumer::run(args),
        Command::Storage(args) => cli::storage::run(args),
        Command::ConsumerGroups(args) => cli::consumer_groups::run(args),
        Command::MetadataQuorum(args) => cli::metadata_quorum::run(args),
        Command::LeaderElection(args) => cli::leader_election::run(args),
        Command::Transactions(args) => cli::transactions::run(args),
        Command::ProducerPerfTest(args) => cli::producer_perf::run(args),
        Command::ConsumerPerfTest(args) => cli::consumer_perf::run(args),
        Command::E2eLatency(args) => cli::e2e_latency::run(args),
    }
}
