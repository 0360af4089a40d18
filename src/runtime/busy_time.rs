//! How long a request's task has run: the sum of the durations of its polls, not the time
//! between its start and its answer, which also holds fsyncs, replicas, long polls and other
//! tasks' turns. The request quota counts this time (`quota::request`). A clock is started
//! only for a request that counts against a quota; until then each poll costs a check of a
//! `Cell`, and no `Instant::now`. Lives on the connection's shard, in the request's own task.

use std::cell::Cell;
use std::future::Future;
use std::pin::pin;
use std::task::Poll;
use std::time::{Duration, Instant};

/// One request's running time.
#[derive(Debug, Default)]
pub struct BusyClock {
    /// Whether polls are timed (`start`).
    running: Cell<bool>,
    /// The time of the polls that have ended.
    busy: Cell<Duration>,
    /// When the poll under way started, while one is timed.
    poll_started: Cell<Option<Instant>>,
}

impl BusyClock {
    /// Times the polls from now on, the rest of the poll under way included.
    pub fn start(&self) {
        self.running.set(true);
        self.poll_started.set(Some(Instant::now()));
    }

    /// The time the request has run since `start`, up to now.
    pub fn busy(&self) -> Duration {
        let current = self.poll_started.get().map(|started| started.elapsed());
        self.busy.get() + current.unwrap_or_default()
    }

    /// Runs `future`, adding the duration of each of its polls once the clock is started.
    pub async fn measure<F: Future>(&self, future: F) -> F::Output {
        let mut future = pin!(future);
        std::future::poll_fn(|context| {
            if self.running.get() {
                self.poll_started.set(Some(Instant::now()));
            }
            let polled = future.as_mut().poll(context);
            if let Some(started) = self.poll_started.take() {
                self.busy.set(self.busy.get() + started.elapsed());
            }
            match polled {
                Poll::Ready(output) => Poll::Ready(output),
                Poll::Pending => Poll::Pending,
            }
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Proves only the polls count: a task that works 20 ms, waits 100 ms on a timer and works
    /// 20 ms again is measured at about 40 ms, well under the 140 ms it took, and nothing is
    /// counted before `start`.
    #[test]
    fn counts_polls_not_waits() {
        let spin = |duration: Duration| {
            let until = Instant::now() + duration;
            while Instant::now() < until {
                std::hint::spin_loop();
            }
        };
        crate::storage::test_util::run(move || async move {
            let clock = BusyClock::default();
            clock
                .measure(async {
                    spin(Duration::from_millis(30));
                    clock.start();
                    spin(Duration::from_millis(20));
                    glommio::timer::sleep(Duration::from_millis(100)).await;
                    spin(Duration::from_millis(20));
                })
                .await;
            let measured = clock.busy();
            assert!(
                measured >= Duration::from_millis(40) && measured < Duration::from_millis(130),
                "{measured:?}"
            );
        });
    }
}
