//! Broker-side latency histograms, per shard: produce (request handed to its handler until its
//! response is ready, acknowledgement waits included), consumer and follower fetches (the same,
//! long-poll waits included), and segment fdatasyncs. Each is an HdrHistogram in a thread-local
//! of the shard that measured it, cumulative since start, rendered as a Prometheus summary.

use std::cell::RefCell;
use std::time::Duration;

use hdrhistogram::Histogram;

/// What is timed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Timed {
    Produce,
    ConsumerFetch,
    FollowerFetch,
    Fsync,
}

impl Timed {
    const ALL: [Timed; 4] = [
        Timed::Produce,
        Timed::ConsumerFetch,
        Timed::FollowerFetch,
        Timed::Fsync,
    ];

    /// The Prometheus family and its help text.
    pub fn family(self) -> (&'static str, &'static str) {
        match self {
            Timed::Produce => (
                "flink_produce_latency_microseconds",
                "Produce requests from handed to the handler to response ready (acks waits included).",
            ),
            Timed::ConsumerFetch => (
                "flink_fetch_consumer_latency_microseconds",
                "Consumer fetch requests from handed to the handler to response ready (long-poll waits included).",
            ),
            Timed::FollowerFetch => (
                "flink_fetch_follower_latency_microseconds",
                "Follower fetch requests from handed to the handler to response ready (long-poll waits included).",
            ),
            Timed::Fsync => (
                "flink_log_fsync_latency_microseconds",
                "fdatasync calls on partition segments.",
            ),
        }
    }
}

/// Up to a minute, three significant digits: about 20 KiB per histogram.
const HIGHEST_US: u64 = 60_000_000;

thread_local! {
    static HISTOGRAMS: RefCell<Vec<Histogram<u64>>> = RefCell::new(
        Timed::ALL
            .iter()
            .map(|_| Histogram::new_with_bounds(1, HIGHEST_US, 3).expect("valid histogram bounds"))
            .collect(),
    );
}

/// Records one measurement on this shard.
pub fn record(timed: Timed, elapsed: Duration) {
    let micros = (elapsed.as_micros() as u64).clamp(1, HIGHEST_US);
    HISTOGRAMS.with(|histograms| {
        let _ = histograms.borrow_mut()[timed as usize].record(micros);
    });
}

/// One histogram's summary at a scrape.
#[derive(Clone, Debug, PartialEq)]
pub struct LatencySummary {
    pub timed: Timed,
    pub count: u64,
    pub sum_us: f64,
    /// (quantile, microseconds) for 0.5, 0.99, 0.999 and 1 (the maximum).
    pub quantiles: Vec<(f64, u64)>,
}

/// This shard's histograms (empty ones left out).
pub fn summaries() -> Vec<LatencySummary> {
    HISTOGRAMS.with(|histograms| {
        Timed::ALL
            .iter()
            .zip(histograms.borrow().iter())
            .filter(|(_, histogram)| !histogram.is_empty())
            .map(|(timed, histogram)| LatencySummary {
                timed: *timed,
                count: histogram.len(),
                sum_us: histogram.mean() * histogram.len() as f64,
                quantiles: [0.5, 0.99, 0.999, 1.0]
                    .iter()
                    .map(|quantile| (*quantile, histogram.value_at_quantile(*quantile)))
                    .collect(),
            })
            .collect()
    })
}

/// The Prometheus summary families of every shard's histograms.
pub fn render(out: &mut String, shards: &[(usize, Vec<LatencySummary>)]) {
    use std::fmt::Write;
    for timed in Timed::ALL {
        let (name, help) = timed.family();
        let samples: Vec<(usize, &LatencySummary)> = shards
            .iter()
            .flat_map(|(shard, summaries)| {
                summaries
                    .iter()
                    .filter(move |summary| summary.timed == timed)
                    .map(move |summary| (*shard, summary))
            })
            .collect();
        if samples.is_empty() {
            continue;
        }
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} summary");
        for (shard, summary) in samples {
            for (quantile, micros) in &summary.quantiles {
                let _ = writeln!(
                    out,
                    "{name}{{shard=\"{shard}\",quantile=\"{quantile}\"}} {micros}"
                );
            }
            let _ = writeln!(out, "{name}_sum{{shard=\"{shard}\"}} {:.0}", summary.sum_us);
            let _ = writeln!(out, "{name}_count{{shard=\"{shard}\"}} {}", summary.count);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Proves measurements land in their histogram and render as a Prometheus summary with
    /// quantiles, sum and count per shard; empty histograms are left out.
    #[test]
    fn records_and_renders_summaries() {
        for micros in [100, 200, 300, 400, 10_000] {
            record(Timed::Produce, Duration::from_micros(micros));
        }
        record(Timed::Fsync, Duration::from_millis(2));
        let summaries = summaries();
        let produce = summaries
            .iter()
            .find(|summary| summary.timed == Timed::Produce)
            .expect("produce was recorded");
        assert_eq!(produce.count, 5);
        assert_eq!(produce.quantiles[0].0, 0.5);
        assert!((299..=301).contains(&produce.quantiles[0].1), "{produce:?}");
        assert!(produce.quantiles[3].1 >= 9_990, "{produce:?}");
        assert!(!summaries
            .iter()
            .any(|summary| summary.timed == Timed::ConsumerFetch));
        let mut out = String::new();
        render(&mut out, &[(3, summaries)]);
        assert!(out.contains("# TYPE flink_produce_latency_microseconds summary\n"));
        assert!(out.contains("flink_produce_latency_microseconds_count{shard=\"3\"} 5\n"));
        assert!(out.contains("flink_log_fsync_latency_microseconds{shard=\"3\",quantile=\"0.5\"}"));
        assert!(!out.contains("flink_fetch_consumer"));
    }
}
