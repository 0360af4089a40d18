//! Replication as pure state machines, with the I/O at the edge (as `controller::quorum` is
//! around raft-rs):
//! - `leader`: the leader's view of its followers (ISR, high watermark, ISR changes due) and
//!   the check of a follower's fetch position against the leader's log;
//! - `follower`: what a fetch answer means for the follower's log, whether a late answer still
//!   applies, and fetch backoffs;
//! - `epochs`: the leader epoch ledger both sides consult to find where two logs diverge.
//!
//! No clock is read here: every call takes the time. `partition::Partition` holds a replica's
//! log and calls `leader` under its append permit; `runtime::fetcher` sends fetches, applies
//! answers with `follower`, and writes what it decides. `sim` (tests only) drives the same
//! code through a simulated cluster, network and disk and checks Kafka's invariants.

pub mod epochs;
pub mod follower;
pub mod leader;

#[cfg(test)]
mod sim;
#[cfg(test)]
mod sim_tests;
