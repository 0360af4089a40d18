//! Small blocking Kafka client used by the command-line tools. It runs on ordinary threads with
//! `std::net::TcpStream`, one request in flight per connection, and routes partition requests to
//! each partition's leader so the tools work against a multi-broker cluster. Every connection
//! follows Kafka's client security keys (`security`): TLS (`stream`) and SASL (`sasl`).
//!
//! `connection` frames requests and negotiates versions, `cluster` holds metadata and connections,
//! `producer` and `consumer` are the record paths, `group`, `membership` and `group_consumer` are
//! the classic consumer group protocol, `admin` the cluster-wide look-ups of the group tool,
//! `transactions` the admin calls of the transactions tool, `acls` those of the acls tool,
//! `user_credentials` those of users' SCRAM credentials, `quotas` those of client quotas, and
//! the rest (`consumer_protocol`, `range_assignor`, `records`, ...) are pure helpers.
//! `pipelined_producer` (with `accumulator` and `pipelined_connection`) is the exception to one
//! request at a time: the performance tools' producer keeps several Produce requests in flight.

pub mod accumulator;
pub mod acls;
pub mod admin;
pub mod cluster;
pub mod connection;
pub mod consumer;
pub mod consumer_protocol;
pub mod error;
pub mod fetch_session;
pub mod group;
pub mod group_consumer;
pub mod membership;
pub mod partitioner;
pub mod pipelined_connection;
pub mod pipelined_producer;
pub mod producer;
pub mod properties;
pub mod quotas;
pub mod range_assignor;
pub mod records;
pub mod sasl;
pub mod security;
pub mod stream;
pub mod transactions;
pub mod user_credentials;
