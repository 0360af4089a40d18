//! Command-line tools with Kafka's names, flags and output formats. They run on ordinary threads
//! with the blocking client in `client/`; none of them touches io_uring.

pub mod acls;
pub mod configs;
pub mod console_consumer;
pub mod console_producer;
pub mod consumer_groups;
pub mod consumer_perf;
pub mod e2e_latency;
pub mod jvm_text;
pub mod leader_election;
pub mod metadata_quorum;
pub mod producer_perf;
pub mod storage;
pub mod storage_scram;
pub mod topics;
pub mod transactions;

/// Parses a tool's arguments as `flink <tool> ...` would, for the tools' own tests.
#[cfg(test)]
pub fn parse_tool_args<A: clap::Args>(arguments: &[&str]) -> Result<A, clap::Error> {
    use clap::Parser;

    #[derive(Parser)]
    struct Harness<A: clap::Args> {
        #[command(flatten)]
        args: A,
    }
    Harness::<A>::try_parse_from(arguments).map(|harness| harness.args)
}
