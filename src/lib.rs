//! The Flink broker as a library: the `flink` binary (src/main.rs) is its command line, and the
//! storage benchmark (`bench/`) and fuzz targets (`fuzz/`) drive its parts directly.

pub mod api;
pub mod cli;
pub mod client;
pub mod config;
pub mod controller;
pub mod group;
pub mod metadata;
pub mod metrics;
pub mod net;
pub mod partition;
pub mod protocol;
pub mod quota;
pub mod replication;
pub mod runtime;
pub mod security;
pub mod server;
pub mod storage;
pub mod txn;
