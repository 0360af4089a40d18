//! Cross-shard round trips: what a request to another shard pays on the mesh, and what the
//! alternatives would pay, measured in one run (bench/README.md, "Mesh: cross-shard round
//! trips"). Two glommio executors, the client on one CPU and the server on another; the client
//! sends a small message and waits for the answer, as a shard does when a request names a
//! partition another shard owns.
//!
//! Transports:
//! - `flume-reply-per-request`: what `runtime::mesh` does: a bounded flume queue per shard,
//!   and a fresh `flume::bounded(1)` reply channel carried in each request.
//! - `flume-reply-fixed`: the same queue, answers on one long-lived flume channel back.
//! - `channel-mesh`: glommio's `channel_mesh` (a full mesh of bounded shared-memory rings).
//!
//! Each transport runs with both executors parking at once when idle (Flink's setting) and
//! with `spin_before_park(50 µs)`. Per case: sequential round trips (one outstanding; latency
//! percentiles) and bursts of 16 outstanding (round trips per second).
//!
//! Usage: mesh-<hash> [--round-trips N (50000)] [--cpus A,B (0,1)]
//! Prints one line per case: `mesh transport=... spin_us=... p50_us=... p99_us=...
//! p999_us=... mean_us=... burst_round_trips_per_s=...`.

use std::time::{Duration, Instant};

use glommio::channels::channel_mesh::MeshBuilder;
use glommio::{LocalExecutorBuilder, Placement};

const BURST: usize = 16;

#[derive(Clone, Copy, Debug)]
enum Transport {
    FlumeReplyPerRequest,
    FlumeReplyFixed,
    ChannelMesh,
}

impl Transport {
    fn name(self) -> &'static str {
        match self {
            Transport::FlumeReplyPerRequest => "flume-reply-per-request",
            Transport::FlumeReplyFixed => "flume-reply-fixed",
            Transport::ChannelMesh => "channel-mesh",
        }
    }
}

struct Case {
    transport: Transport,
    spin: Option<Duration>,
    round_trips: usize,
    cpus: (usize, usize),
}

/// Sequential round-trip times, and the rate of bursts of `BURST` outstanding.
struct Outcome {
    times: Vec<Duration>,
    burst_rate: f64,
}

impl Outcome {
    /// `times`, and the burst rate of the bursts run since `started`.
    fn new(times: Vec<Duration>, round_trips: usize, started: Instant) -> Outcome {
        let burst_rate = (round_trips / BURST * BURST) as f64 / started.elapsed().as_secs_f64();
        Outcome { times, burst_rate }
    }
}

/// Waits for both executors; the client's outcome.
fn finish(
    client: glommio::ExecutorJoinHandle<Outcome>,
    server: glommio::ExecutorJoinHandle<()>,
) -> Outcome {
    let outcome = client.join().expect("client");
    server.join().expect("server");
    outcome
}

fn builder(name: &str, cpu: usize, spin: Option<Duration>) -> LocalExecutorBuilder {
    let builder = LocalExecutorBuilder::new(Placement::Fixed(cpu)).name(name);
    match spin {
        Some(spin) => builder.spin_before_park(spin),
        None => builder,
    }
}

/// A request on a flume queue: the value, and where to answer when each request brings its own.
type FlumeRequest = (u64, Option<flume::Sender<u64>>);

fn run_flume(case: &Case) -> Outcome {
    let (requests, serve) = flume::bounded::<FlumeRequest>(1024);
    let (fixed_reply, replies) = flume::bounded::<u64>(1024);
    let per_request = matches!(case.transport, Transport::FlumeReplyPerRequest);
    let total = case.round_trips + BURST * (case.round_trips / BURST);
    let server = builder("mesh-server", case.cpus.1, case.spin)
        .spawn(move || async move {
            for _ in 0..total {
                let Ok((value, reply)) = serve.recv_async().await else {
                    return;
                };
                let reply = reply.unwrap_or_else(|| fixed_reply.clone());
                let _ = reply.send_async(value + 1).await;
            }
        })
        .expect("server executor");
    let round_trips = case.round_trips;
    let client = builder("mesh-client", case.cpus.0, case.spin)
        .spawn(move || async move {
            let ask = |value: u64| {
                let (reply, answer) = match per_request {
                    true => {
                        let (reply, answer) = flume::bounded(1);
                        (Some(reply), Some(answer))
                    }
                    false => (None, None),
                };
                let requests = requests.clone();
                async move {
                    requests
                        .send_async((value, reply))
                        .await
                        .expect("server up");
                    answer
                }
            };
            let mut times = Vec::with_capacity(round_trips);
            for value in 0..round_trips as u64 {
                let started = Instant::now();
                let answer = ask(value).await;
                let got = match answer {
                    Some(answer) => answer.recv_async().await,
                    None => replies.recv_async().await,
                };
                assert_eq!(got.expect("an answer"), value + 1);
                times.push(started.elapsed());
            }
            let started = Instant::now();
            for burst in 0..round_trips / BURST {
                let mut answers = Vec::with_capacity(BURST);
                for value in 0..BURST as u64 {
                    answers.push(ask(burst as u64 * 100 + value).await);
                }
                for answer in answers {
                    match answer {
                        Some(answer) => answer.recv_async().await.expect("an answer"),
                        None => replies.recv_async().await.expect("an answer"),
                    };
                }
            }
            Outcome::new(times, round_trips, started)
        })
        .expect("client executor");
    finish(client, server)
}

fn run_channel_mesh(case: &Case) -> Outcome {
    let mesh = MeshBuilder::<u64, _>::full(2, 1024);
    let total = case.round_trips + BURST * (case.round_trips / BURST);
    let server_mesh = mesh.clone();
    let server = builder("mesh-server", case.cpus.1, case.spin)
        .spawn(move || async move {
            let (senders, receivers) = server_mesh.join().await.expect("joined");
            let peer = 1 - senders.peer_id();
            for _ in 0..total {
                let Ok(Some(value)) = receivers.recv_from(peer).await else {
                    return;
                };
                let _ = senders.send_to(peer, value + 1).await;
            }
        })
        .expect("server executor");
    let round_trips = case.round_trips;
    let client = builder("mesh-client", case.cpus.0, case.spin)
        .spawn(move || async move {
            let (senders, receivers) = mesh.join().await.expect("joined");
            let peer = 1 - senders.peer_id();
            let mut times = Vec::with_capacity(round_trips);
            for value in 0..round_trips as u64 {
                let started = Instant::now();
                senders.send_to(peer, value).await.expect("server up");
                let got = receivers.recv_from(peer).await.expect("open");
                assert_eq!(got.expect("an answer"), value + 1);
                times.push(started.elapsed());
            }
            let started = Instant::now();
            for burst in 0..round_trips / BURST {
                for value in 0..BURST as u64 {
                    senders
                        .send_to(peer, burst as u64 * 100 + value)
                        .await
                        .expect("server up");
                }
                for _ in 0..BURST {
                    receivers
                        .recv_from(peer)
                        .await
                        .expect("open")
                        .expect("an answer");
                }
            }
            Outcome::new(times, round_trips, started)
        })
        .expect("client executor");
    finish(client, server)
}

fn percentile(sorted: &[Duration], fraction: f64) -> f64 {
    let index = ((sorted.len() as f64 * fraction) as usize).min(sorted.len() - 1);
    sorted[index].as_secs_f64() * 1e6
}

fn main() {
    let mut round_trips = 50_000;
    let mut cpus = (0, 1);
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let value = args.next().unwrap_or_default();
        match arg.as_str() {
            "--round-trips" => round_trips = value.parse().expect("--round-trips N"),
            "--cpus" => {
                let (a, b) = value.split_once(',').expect("--cpus A,B");
                cpus = (a.parse().expect("a CPU"), b.parse().expect("a CPU"));
            }
            // `cargo bench` passes --bench.
            "--bench" => {}
            other => panic!("unknown argument {other}"),
        }
    }
    for spin in [None, Some(Duration::from_micros(50))] {
        for transport in [
            Transport::FlumeReplyPerRequest,
            Transport::FlumeReplyFixed,
            Transport::ChannelMesh,
        ] {
            let case = Case {
                transport,
                spin,
                round_trips,
                cpus,
            };
            let mut outcome = match transport {
                Transport::ChannelMesh => run_channel_mesh(&case),
                _ => run_flume(&case),
            };
            // The first tenth warms caches and the allocator up; it is not counted.
            let mut times = outcome.times.split_off(round_trips / 10);
            times.sort();
            let mean = times.iter().sum::<Duration>().as_secs_f64() * 1e6 / times.len() as f64;
            println!(
                "mesh transport={} spin_us={} p50_us={:.1} p99_us={:.1} p999_us={:.1} mean_us={:.1} burst_round_trips_per_s={:.0}",
                transport.name(),
                spin.map_or(0, |spin| spin.as_micros()),
                percentile(&times, 0.5),
                percentile(&times, 0.99),
                percentile(&times, 0.999),
                mean,
                outcome.burst_rate,
            );
        }
    }
}
