//! Kafka's sampled rate (`org.apache.kafka.common.metrics.stats.Rate` over `SampledStat`):
//! `samples` windows of `window_ms` each; the rate is the total of the live samples over the
//! time they cover, counted as at least `samples - 1` whole windows, so a new client is not
//! judged on its first instant. When a recording puts the rate over a quota, the client is
//! throttled for as long as it takes the rate to come back to it: (rate - quota) / quota of the
//! measured window, as Kafka's `QuotaUtils.throttleTime` computes it.

use std::collections::VecDeque;

/// The sampling of a rate (`quota.window.num`, `quota.window.size.seconds`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sampling {
    pub samples: u32,
    pub window_ms: u64,
}

impl Default for Sampling {
    /// Kafka's defaults: 11 windows of one second.
    fn default() -> Sampling {
        Sampling {
            samples: 11,
            window_ms: 1000,
        }
    }
}

#[derive(Clone, Debug, Default)]
pub struct Rate {
    /// (window start in ms, total recorded in it), oldest first.
    samples: VecDeque<(u64, f64)>,
}

impl Rate {
    /// Adds `value` at `now_ms`.
    pub fn record(&mut self, sampling: Sampling, value: f64, now_ms: u64) {
        self.expire(sampling, now_ms);
        match self.samples.back_mut() {
            Some((start, total)) if now_ms < *start + sampling.window_ms => *total += value,
            _ => {
                self.samples.push_back((now_ms, value));
                while self.samples.len() > sampling.samples as usize {
                    self.samples.pop_front();
                }
            }
        }
    }

    /// The rate per second at `now_ms`, with the window it was measured over (ms).
    pub fn measure(&mut self, sampling: Sampling, now_ms: u64) -> (f64, u64) {
        self.expire(sampling, now_ms);
        let total: f64 = self.samples.iter().map(|(_, total)| total).sum();
        let oldest = self.samples.front().map_or(now_ms, |(start, _)| *start);
        let mut window = now_ms.saturating_sub(oldest);
        let full_windows = window / sampling.window_ms;
        let fewest = u64::from(sampling.samples.saturating_sub(1));
        if full_windows < fewest {
            window += (fewest - full_windows) * sampling.window_ms;
        }
        let window = window.max(1);
        (total * 1000.0 / window as f64, window)
    }

    /// Drops samples that are older than the whole sampling.
    fn expire(&mut self, sampling: Sampling, now_ms: u64) {
        let age = u64::from(sampling.samples) * sampling.window_ms;
        while let Some((start, _)) = self.samples.front() {
            match now_ms.saturating_sub(*start) >= age {
                true => self.samples.pop_front(),
                false => break,
            };
        }
    }

    /// Whether nothing is recorded any more (the rate may be forgotten).
    pub fn is_idle(&self) -> bool {
        self.samples.is_empty()
    }
}

/// How long a client over `quota` must wait: (rate - quota) / quota of the measured window,
/// zero when within it.
pub fn throttle_ms(rate: f64, window_ms: u64, quota: f64) -> u64 {
    if rate <= quota || quota <= 0.0 {
        return 0;
    }
    ((rate - quota) / quota * window_ms as f64).round() as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Proves the rate counts at least `samples - 1` windows, slides as samples expire, and the
    /// throttle is the excess over the quota in proportion to the window.
    #[test]
    fn rates_and_throttles_as_kafka() {
        let sampling = Sampling::default();
        let mut rate = Rate::default();
        rate.record(sampling, 5_000.0, 0);
        assert_eq!(rate.measure(sampling, 0), (500.0, 10_000));
        let (later, window) = rate.measure(sampling, 10_500);
        assert_eq!(window, 10_500);
        assert!((later - 5_000.0 / 10.5).abs() < 1e-9);
        // After 11 s the first sample is gone.
        assert_eq!(rate.measure(sampling, 11_000).0, 0.0);
        assert!(rate.is_idle());

        let mut rate = Rate::default();
        rate.record(sampling, 20_000.0, 0);
        let (measured, window) = rate.measure(sampling, 0);
        let wait = throttle_ms(measured, window, 1_000.0);
        assert_eq!(wait, 10_000);
        assert_eq!(throttle_ms(900.0, 10_000, 1_000.0), 0);
    }

    /// Proves a client producing flat out, honouring each throttle, averages its quota.
    #[test]
    fn a_throttled_client_keeps_to_its_quota() {
        let sampling = Sampling::default();
        let mut rate = Rate::default();
        let (quota, request) = (100_000.0, 16_384.0);
        let (mut now, mut sent) = (0u64, 0.0);
        while now < 60_000 {
            rate.record(sampling, request, now);
            sent += request;
            let (measured, window) = rate.measure(sampling, now);
            now += throttle_ms(measured, window, quota).max(1);
        }
        let average = sent * 1000.0 / now as f64;
        assert!(
            (average - quota).abs() / quota < 0.2,
            "average {average} against {quota}"
        );
    }
}
