//! Small blocking Kafka client used by the command-line tools. It runs on ordinary threads with
//! `std::net::TcpStream`, one request in flight per connection, and routes partition requests to
//! each partition's leader so the tools work against a multi-broker cluster.
//!
//! `connection` frames requests and negotiates versions, `cluster` holds metadata and connections,
//! `producer` and `consumer` are the record paths, and the rest are pure helpers.

pub mod cluster;
pub mod connection;
pub mod consumer;
pub mod error;
pub mod partitioner;
pub mod producer;
pub mod properties;
pub mod records;
