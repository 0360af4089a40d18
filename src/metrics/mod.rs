//! Per-shard counters worth watching during a benchmark, and their Prometheus text rendering.
//!
//! Each shard counts in thread-locals (a shard is one thread): requests per API, bytes in and
//! out, open connections. Storage keeps its own (fsyncs, tail cache bytes) and glommio its ring
//! statistics. A scrape of `GET /metrics` on `metrics.port` (served by shard 0, see `http`) asks
//! every shard for a `ShardMetrics` snapshot over the mesh and renders them all, one series per
//! shard; nothing is shared between cores.

pub mod http;
pub mod latency;

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::fmt::Write;

use kafka_protocol::messages::ApiKey;

thread_local! {
    static REQUESTS: RefCell<BTreeMap<i16, u64>> = const { RefCell::new(BTreeMap::new()) };
    static BYTES_IN: Cell<u64> = const { Cell::new(0) };
    static BYTES_OUT: Cell<u64> = const { Cell::new(0) };
    static CONNECTIONS: Cell<i64> = const { Cell::new(0) };
    /// Partitions followers fetched through this shard: all, and those another shard owns.
    static REPLICA_FETCH_PARTS: Cell<(u64, u64)> = const { Cell::new((0, 0)) };
    /// glommio hands out ring statistics since the last call; they are summed here.
    static IO_TOTALS: RefCell<IoTotals> = RefCell::new(IoTotals::default());
}

/// Counts one request frame of `bytes` (including its size prefix) for API `key`.
pub fn count_request(key: i16, bytes: usize) {
    REQUESTS.with(|requests| *requests.borrow_mut().entry(key).or_default() += 1);
    BYTES_IN.with(|total| total.set(total.get() + bytes as u64));
}

pub fn count_response(bytes: usize) {
    BYTES_OUT.with(|total| total.set(total.get() + bytes as u64));
}

/// A follower's fetch through this shard named `parts` partitions, `remote` of them owned by
/// other shards (`net::steering` keeps that at 0 between brokers of the same shard count).
pub fn count_replica_fetch(parts: usize, remote: usize) {
    REPLICA_FETCH_PARTS.with(|total| {
        let (all, others) = total.get();
        total.set((all + parts as u64, others + remote as u64));
    });
}

/// A connection opened (+1) or closed (-1) on this shard.
pub fn count_connection(change: i64) {
    CONNECTIONS.with(|open| open.set(open.get() + change));
}

#[derive(Clone, Debug, Default)]
struct IoTotals {
    file_reads: u64,
    file_bytes_read: u64,
    file_writes: u64,
    file_bytes_written: u64,
}

/// One shard's figures at the moment it was asked.
#[derive(Clone, Debug, Default)]
pub struct ShardMetrics {
    pub shard: usize,
    pub requests: Vec<(String, u64)>,
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub connections: i64,
    pub queue_depth: usize,
    pub partitions: usize,
    /// Partitions this shard leads.
    pub leader_partitions: usize,
    /// Partitions led here whose ISR lacks some of their replicas (Kafka's
    /// UnderReplicatedPartitions).
    pub under_replicated_partitions: usize,
    pub file_reads: u64,
    pub file_bytes_read: u64,
    pub file_writes: u64,
    pub file_bytes_written: u64,
    /// Median and 99th percentile of io_uring file operation latency since the last scrape, µs.
    pub io_latency_us: Option<(f64, f64)>,
    pub fsyncs: u64,
    pub tail_cache_bytes: usize,
    /// Fetch sessions (KIP-227) held, and the partitions they hold.
    pub fetch_sessions: usize,
    pub fetch_session_partitions: usize,
    /// Partitions followers fetched through this shard, and those of them other shards own.
    pub replica_fetch_partitions: u64,
    pub replica_fetch_remote_partitions: u64,
    /// Produce, fetch and fsync latency histograms (`latency`).
    pub latencies: Vec<latency::LatencySummary>,
}

impl ShardMetrics {
    /// This shard's figures; must run on the shard's own executor thread.
    /// `partitions` is (hosted, led, led but under-replicated).
    pub fn collect(
        shard: usize,
        queue_depth: usize,
        partitions: (usize, usize, usize),
    ) -> ShardMetrics {
        let stats = glommio::executor().io_stats().all_rings();
        let io_latency_us = {
            let sketch = stats.io_latency_us();
            match (sketch.quantile(0.5), sketch.quantile(0.99)) {
                (Ok(Some(median)), Ok(Some(p99))) => Some((median, p99)),
                _ => None,
            }
        };
        let totals = IO_TOTALS.with(|totals| {
            let mut totals = totals.borrow_mut();
            let (reads, read_bytes) = stats.file_reads();
            let (buffered_reads, buffered_read_bytes) = stats.file_buffered_reads();
            let (writes, written_bytes) = stats.file_writes();
            let (buffered_writes, buffered_written_bytes) = stats.file_buffered_writes();
            totals.file_reads += reads + buffered_reads;
            totals.file_bytes_read += read_bytes + buffered_read_bytes;
            totals.file_writes += writes + buffered_writes;
            totals.file_bytes_written += written_bytes + buffered_written_bytes;
            totals.clone()
        });
        let requests = REQUESTS.with(|requests| {
            requests
                .borrow()
                .iter()
                .map(|(key, count)| (api_name(*key), *count))
                .collect()
        });
        ShardMetrics {
            shard,
            requests,
            bytes_in: BYTES_IN.with(Cell::get),
            bytes_out: BYTES_OUT.with(Cell::get),
            connections: CONNECTIONS.with(Cell::get),
            queue_depth,
            partitions: partitions.0,
            leader_partitions: partitions.1,
            under_replicated_partitions: partitions.2,
            file_reads: totals.file_reads,
            file_bytes_read: totals.file_bytes_read,
            file_writes: totals.file_writes,
            file_bytes_written: totals.file_bytes_written,
            io_latency_us,
            fsyncs: crate::storage::segment::fsync_count(),
            tail_cache_bytes: crate::storage::tail::shard_tail_bytes(),
            latencies: latency::summaries(),
            fetch_sessions: 0,
            fetch_session_partitions: 0,
            replica_fetch_partitions: REPLICA_FETCH_PARTS.with(Cell::get).0,
            replica_fetch_remote_partitions: REPLICA_FETCH_PARTS.with(Cell::get).1,
        }
    }
}

fn api_name(key: i16) -> String {
    ApiKey::try_from(key)
        .map(|key| format!("{key:?}"))
        .unwrap_or_else(|_| format!("Unknown{key}"))
}

/// One per-shard figure, rendered as a sample value.
type Field = fn(&ShardMetrics) -> String;

/// Renders every shard's figures in the Prometheus text exposition format (version 0.0.4).
pub fn render(shards: &[ShardMetrics]) -> String {
    let mut out = String::new();
    let mut family = |name: &str, kind: &str, help: &str, samples: Vec<(String, String)>| {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} {kind}");
        for (labels, value) in samples {
            let _ = writeln!(out, "{name}{{{labels}}} {value}");
        }
    };
    let per_shard = |value: Field| -> Vec<(String, String)> {
        shards
            .iter()
            .map(|shard| (format!("shard=\"{}\"", shard.shard), value(shard)))
            .collect()
    };
    family(
        "flink_requests_total",
        "counter",
        "Kafka requests received, by shard and API.",
        shards
            .iter()
            .flat_map(|shard| {
                shard.requests.iter().map(move |(api, count)| {
                    (
                        format!("shard=\"{}\",api=\"{api}\"", shard.shard),
                        count.to_string(),
                    )
                })
            })
            .collect(),
    );
    let counters: [(&str, &str, &str, Field); 9] = [
        (
            "flink_network_received_bytes_total",
            "counter",
            "Request bytes read from client connections.",
            |s| s.bytes_in.to_string(),
        ),
        (
            "flink_network_sent_bytes_total",
            "counter",
            "Response bytes written to client connections.",
            |s| s.bytes_out.to_string(),
        ),
        (
            "flink_io_file_reads_total",
            "counter",
            "File reads submitted through the shard's io_uring rings.",
            |s| s.file_reads.to_string(),
        ),
        (
            "flink_io_file_read_bytes_total",
            "counter",
            "Bytes read from files through the shard's io_uring rings.",
            |s| s.file_bytes_read.to_string(),
        ),
        (
            "flink_io_file_writes_total",
            "counter",
            "File writes submitted through the shard's io_uring rings.",
            |s| s.file_writes.to_string(),
        ),
        (
            "flink_io_file_written_bytes_total",
            "counter",
            "Bytes written to files through the shard's io_uring rings.",
            |s| s.file_bytes_written.to_string(),
        ),
        (
            "flink_log_fsyncs_total",
            "counter",
            "fdatasync calls on partition segments.",
            |s| s.fsyncs.to_string(),
        ),
        (
            "flink_replica_fetch_partitions_total",
            "counter",
            "Partitions followers fetched through the shard's connections.",
            |s| s.replica_fetch_partitions.to_string(),
        ),
        (
            "flink_replica_fetch_remote_partitions_total",
            "counter",
            "Partitions followers fetched through the shard that another shard owns.",
            |s| s.replica_fetch_remote_partitions.to_string(),
        ),
    ];
    for (name, kind, help, value) in counters {
        family(name, kind, help, per_shard(value));
    }
    let gauges: [(&str, &str, Field); 8] = [
        ("flink_connections", "Open client connections.", |s| {
            s.connections.to_string()
        }),
        (
            "flink_shard_queue_depth",
            "Cross-core requests waiting in the shard's queue.",
            |s| s.queue_depth.to_string(),
        ),
        ("flink_partitions", "Partitions hosted by the shard.", |s| {
            s.partitions.to_string()
        }),
        (
            "flink_leader_partitions",
            "Partitions led by the shard.",
            |s| s.leader_partitions.to_string(),
        ),
        (
            "flink_under_replicated_partitions",
            "Partitions led by the shard whose ISR lacks some of their replicas.",
            |s| s.under_replicated_partitions.to_string(),
        ),
        (
            "flink_log_tail_cache_bytes",
            "Bytes held by the shard's in-memory segment tails.",
            |s| s.tail_cache_bytes.to_string(),
        ),
        (
            "flink_fetch_sessions",
            "Fetch sessions (KIP-227) the shard holds (Kafka's NumIncrementalFetchSessions).",
            |s| s.fetch_sessions.to_string(),
        ),
        (
            "flink_fetch_session_partitions",
            "Partitions held by the shard's fetch sessions.",
            |s| s.fetch_session_partitions.to_string(),
        ),
    ];
    for (name, help, value) in gauges {
        family(name, "gauge", help, per_shard(value));
    }
    family(
        "flink_io_latency_microseconds",
        "gauge",
        "io_uring file operation latency since the previous scrape (quantile 0.5 and 0.99).",
        shards
            .iter()
            .filter_map(|shard| shard.io_latency_us.map(|latency| (shard.shard, latency)))
            .flat_map(|(shard, (median, p99))| {
                [
                    (
                        format!("shard=\"{shard}\",quantile=\"0.5\""),
                        format!("{median:.1}"),
                    ),
                    (
                        format!("shard=\"{shard}\",quantile=\"0.99\""),
                        format!("{p99:.1}"),
                    ),
                ]
            })
            .collect(),
    );
    let latencies: Vec<(usize, Vec<latency::LatencySummary>)> = shards
        .iter()
        .map(|shard| (shard.shard, shard.latencies.clone()))
        .collect();
    latency::render(&mut out, &latencies);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Proves the rendering follows the text format: HELP and TYPE per family, one labelled
    /// sample per shard, request counts per API.
    #[test]
    fn renders_prometheus_text() {
        let shards = [
            ShardMetrics {
                shard: 0,
                requests: vec![("Produce".into(), 3), ("Fetch".into(), 5)],
                bytes_in: 100,
                fsyncs: 2,
                io_latency_us: Some((40.0, 90.5)),
                ..ShardMetrics::default()
            },
            ShardMetrics {
                shard: 1,
                ..ShardMetrics::default()
            },
        ];
        let text = render(&shards);
        assert!(text.contains("# TYPE flink_requests_total counter\n"));
        assert!(text.contains("flink_requests_total{shard=\"0\",api=\"Produce\"} 3\n"));
        assert!(text.contains("flink_network_received_bytes_total{shard=\"0\"} 100\n"));
        assert!(text.contains("flink_log_fsyncs_total{shard=\"1\"} 0\n"));
        assert!(
            text.contains("flink_io_latency_microseconds{shard=\"0\",quantile=\"0.99\"} 90.5\n")
        );
        for line in text.lines().filter(|line| !line.starts_with('#')) {
            let (series, value) = line.rsplit_once(' ').expect("a sample line");
            assert!(
                series.starts_with("flink_") && series.ends_with('}'),
                "{line}"
            );
            assert!(value.parse::<f64>().is_ok(), "{line}");
        }
        assert_eq!(api_name(0), "Produce");
    }
}
