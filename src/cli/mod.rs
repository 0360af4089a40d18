//! Command-line tools with Kafka's names, flags and output formats. They run on ordinary threads
//! with the blocking client in `client/`; none of them touches io_uring.

pub mod console_consumer;
pub mod console_producer;
pub mod consumer_groups;
pub mod storage;
pub mod topics;
