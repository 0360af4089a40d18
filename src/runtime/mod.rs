//! Starts the server's executors: one glommio executor per shard, plus the controller's (on its
//! own core when there are at least four, else sharing the first shard's core), all inside the
//! process's CPU set and pinned or not as `cpu.pinning` asks (`placement::plan_cpus`), after the
//! io_uring preflight has passed. A controller-only node runs no shards; a broker starts its
//! shards only once it has joined the cluster (`controller_node`).

pub mod busy_time;
pub mod cleaner;
mod controller_node;
pub mod cpu;
pub mod fetcher;
pub mod mesh;
pub mod peer;
pub mod placement;
pub mod preflight;
pub mod shard;
mod shard_quotas;

use std::path::Path;
use std::rc::Rc;
use std::sync::Arc;

use glommio::{LocalExecutorBuilder, Placement};

use crate::config::ServerConfig;
use crate::controller::metadata_log::MetadataLog;
use crate::controller::{ControllerRequest, CONTROLLER_QUEUE_CAPACITY};
use crate::net::connection_quotas::{ConnectionQuotas, Limits};
use crate::storage::log_dirs::LogDirs;
use mesh::Mesh;
use placement::{CpuPlan, ExecutorCpu, ShardId};
use shard::Shard;

/// io_uring buffer memory registered per executor; it counts against RLIMIT_MEMLOCK.
const EXECUTOR_IO_MEMORY_BYTES: usize = 512 << 10;
/// Written to the log directory after every log was closed cleanly; its presence at start-up
/// lets the logs skip recovery (Kafka's `.kafka_cleanshutdown`).
const CLEAN_SHUTDOWN_FILE: &str = ".flink_cleanshutdown";
/// How long a stopping broker waits for the controller to fence it.
const CONTROLLED_SHUTDOWN_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);
/// How long a clean shutdown waits for the shards to close their logs.
const SHUTDOWN_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error(transparent)]
    Preflight(#[from] preflight::PreflightError),
    #[error("cannot read the process CPU set: {0}")]
    CpuSet(std::io::Error),
    #[error(transparent)]
    MetadataLog(#[from] crate::controller::metadata_log::MetadataLogError),
    #[error("{0}")]
    Join(String),
    #[error("cannot start executor {name}: {reason}")]
    Executor { name: String, reason: String },
    #[error("shard {shard} failed to start: {reason}")]
    ShardStart { shard: ShardId, reason: String },
    #[error("cannot create the log directory {path}: {source}")]
    LogDir {
        path: String,
        source: std::io::Error,
    },
}

/// Runs the broker until the process is stopped. Returns only on a start-up failure.
pub fn run(config: Arc<ServerConfig>, cluster_id: String) -> Result<(), RuntimeError> {
    let cpus = cpu::allowed_cpus().map_err(RuntimeError::CpuSet)?;
    let plan = placement::plan_cpus(
        &cpus,
        config.shard_count,
        config.controller_dedicated_core,
        config.cpu_pinning,
        config.node_id,
    );
    preflight::check(plan.shard_cpus.len() + 1)?;
    let cluster_id: String = cluster_id;
    std::fs::create_dir_all(&config.log_dirs[0]).map_err(|source| RuntimeError::LogDir {
        path: config.log_dirs[0].display().to_string(),
        source,
    })?;
    let log_dirs = LogDirs::open(&config.log_dirs);
    if log_dirs.all_offline() {
        return Err(RuntimeError::LogDir {
            path: config.log_dirs[0].display().to_string(),
            source: std::io::Error::other("no log directory can be used"),
        });
    }
    let clean_start = take_clean_shutdown_marker(&config.log_dirs[0]);
    for index in 0..log_dirs.len() {
        if log_dirs.failure(index).is_none() {
            crate::storage::remove_deleted_dirs(log_dirs.path(index));
        }
    }
    if !clean_start {
        tracing::info!("no clean-shutdown marker: logs are recovered from their recovery points");
    }
    let shard_count = match config.is_broker() {
        true => plan.shard_cpus.len(),
        false => 0,
    };
    let (mesh, queues) = Mesh::new(shard_count);
    let (controller_sender, controller_queue) = flume::bounded(CONTROLLER_QUEUE_CAPACITY);
    let quorum = match config.is_controller() {
        true => {
            let voters: Vec<i32> = config
                .controller_quorum_voters
                .iter()
                .map(|voter| voter.node_id)
                .collect();
            Some(MetadataLog::open(
                &config.log_dirs[0],
                config.node_id,
                &voters,
            )?)
        }
        false => None,
    };
    tracing::info!("{}", describe_placement(&plan, shard_count, &cpus));
    let idle_polls =
        placement::idle_poll_times(&plan.shard_cpus[..shard_count], config.idle_poll_time);
    tracing::info!(
        "Idle polling (idle.poll.time.us={}): {:?} per shard before sleeping",
        config
            .idle_poll_time
            .map_or("auto".to_string(), |time| time.as_micros().to_string()),
        idle_polls
    );
    let probe = config.log_dirs[0].clone();
    let controller_probe = probe.clone();
    let (joined, join_result) = std::sync::mpsc::channel();
    let (recovered_tx, recovered) = flume::bounded(1);
    let (unfenced, unfence_result) = std::sync::mpsc::channel();
    let controller_config = config.clone();
    let controller_mesh = mesh.clone();
    let controller_cluster_id = cluster_id.clone();
    let controller_log_dirs = log_dirs.clone();
    let controller_handle = executor("controller", plan.controller_cpu)
        .spawn(move || async move {
            crate::storage::prime_direct_io(&controller_probe).await;
            controller_node::run(
                controller_config,
                controller_cluster_id,
                controller_mesh,
                quorum,
                controller_queue,
                controller_log_dirs,
                controller_node::Startup {
                    joined,
                    recovered,
                    unfenced,
                },
            )
            .await
        })
        .map_err(|error| RuntimeError::Executor {
            name: "controller".into(),
            reason: error.to_string(),
        })?;
    let image = match join_result.recv() {
        Ok(Ok(image)) => image,
        Ok(Err(reason)) => return Err(RuntimeError::Join(reason)),
        Err(_) => {
            return Err(RuntimeError::Join(
                "the controller executor did not start: io_uring could not set up its rings, \
                 most often because the locked-memory limit (RLIMIT_MEMLOCK, shared by every \
                 process of the same user) is used up"
                    .into(),
            ))
        }
    };
    if !config.is_broker() {
        tracing::info!(
            "Flink controller started (node.id={}, cluster {cluster_id}, quorum {})",
            config.node_id,
            config
                .controller_quorum_voters
                .iter()
                .map(|voter| format!("{}@{}:{}", voter.node_id, voter.host, voter.port))
                .collect::<Vec<_>>()
                .join(",")
        );
        wait_for_stop_signal();
        tracing::info!("Flink controller stopped");
        drop(controller_handle);
        return Ok(());
    }
    let (started, start_results) = std::sync::mpsc::channel::<Result<(), RuntimeError>>();
    // Dropped once the broker is unfenced: each shard then opens its listeners.
    let (serve_tx, serve) = flume::bounded::<()>(0);
    let (opened, open_results) = std::sync::mpsc::channel();
    let quotas = ConnectionQuotas::new(Limits::from_config(&config), std::time::Instant::now());
    let mut handles = Vec::new();
    // Shard i binds its listeners once shard i - 1 has (`net::steering` needs them in order):
    // each shard drops the sender the next one waits on.
    let mut bound_before: Option<flume::Receiver<()>> = None;
    for (index, ((cpu, queue), idle_poll)) in plan.shard_cpus[..shard_count]
        .iter()
        .zip(queues)
        .zip(idle_polls)
        .enumerate()
    {
        let (config, mesh, controller_sender) =
            (config.clone(), mesh.clone(), controller_sender.clone());
        let (image, started, probe) = (image.clone(), started.clone(), probe.clone());
        let (serve, opened) = (serve.clone(), opened.clone());
        let (bound_here, next_waits) = flume::bounded::<()>(0);
        let my_turn = bound_before.replace(next_waits);
        let quotas = quotas.clone();
        let log_dirs = log_dirs.clone();
        let name = format!("shard-{index}");
        let builder = executor(&name, *cpu);
        let builder = match idle_poll.is_zero() {
            true => builder,
            false => builder.spin_before_park(idle_poll),
        };
        let handle = builder
            .spawn(move || async move {
                crate::storage::prime_direct_io(&probe).await;
                let shard = Rc::new(Shard::new(
                    ShardId(index),
                    config,
                    mesh,
                    controller_sender,
                    log_dirs,
                    clean_start,
                ));
                shard.apply_metadata(image).await;
                // The logs are recovered; the listeners wait until the broker is unfenced.
                let _ = started.send(Ok(()));
                let _ = serve.recv_async().await;
                if let Some(my_turn) = my_turn {
                    let _ = my_turn.recv_async().await;
                }
                let bound = crate::net::bind_client_listeners(&shard);
                drop(bound_here);
                let bound = bound.and_then(|listeners| {
                    let metrics = match (index, shard.config.metrics_port) {
                        (0, port) if port != 0 => Some(crate::metrics::http::bind(port)?),
                        _ => None,
                    };
                    Ok((listeners, metrics))
                });
                match bound {
                    Err(error) => {
                        let _ = opened.send(Err(RuntimeError::ShardStart {
                            shard: shard.id,
                            reason: error.to_string(),
                        }));
                    }
                    Ok((listeners, metrics)) => {
                        let _ = opened.send(Ok(()));
                        if let Some(metrics) = metrics {
                            glommio::spawn_local(crate::metrics::http::serve(
                                shard.clone(),
                                metrics,
                            ))
                            .detach();
                        }
                        for listener in listeners {
                            glommio::spawn_local(crate::net::accept_loop(
                                shard.clone(),
                                listener,
                                quotas.clone(),
                            ))
                            .detach();
                        }
                        glommio::spawn_local(shard.clone().tick_groups()).detach();
                        glommio::spawn_local(shard.clone().tick_replicas()).detach();
                        glommio::spawn_local(shard.clone().tick_transactions()).detach();
                        // Maintenance in the background queue; requests, replica fetchers
                        // (acks=all waits on them) and group timers stay in the default one.
                        shard.spawn_background(cleaner::run(shard.clone()));
                        shard.spawn_background(cleaner::run_retention(shard.clone()));
                        shard.spawn_background(cleaner::run_producer_expiration(shard.clone()));
                        shard.spawn_background(cleaner::run_flusher(shard.clone()));
                        shard.serve(queue).await;
                    }
                }
            })
            .map_err(|error| RuntimeError::Executor {
                name,
                reason: error.to_string(),
            })?;
        handles.push(handle);
    }
    drop((started, opened));
    let mut running = 0;
    for result in start_results.iter().take(shard_count) {
        result?;
        running += 1;
    }
    if running == shard_count {
        let _ = recovered_tx.send(());
        tracing::info!(
            "broker {}: logs recovered; waiting to be unfenced",
            config.node_id
        );
        match unfence_result.recv() {
            Ok(Ok(())) => {}
            Ok(Err(reason)) => return Err(RuntimeError::Join(reason)),
            Err(_) => return Err(RuntimeError::Join("the controller executor stopped".into())),
        }
        drop(serve_tx);
        running = 0;
        for result in open_results.iter().take(shard_count) {
            result?;
            running += 1;
        }
    }
    if running < shard_count {
        // A shard whose executor could not be built never reports (its closure never ran).
        return Err(RuntimeError::ShardStart {
            shard: ShardId(running),
            reason: format!(
                "only {running} of {shard_count} shard executors started; an executor cannot be \
                 built when io_uring cannot set up its rings, most often because the locked-memory \
                 limit (RLIMIT_MEMLOCK, shared by every process of the same user) is used up: raise \
                 it (ulimit -l unlimited, or `ulimits: memlock: -1` in compose) or lower shard.count"
            ),
        });
    }
    let listeners: Vec<String> = config
        .client_listeners()
        .map(|listener| format!("{}://{}:{}", listener.name, listener.host, listener.port))
        .collect();
    tracing::info!(
        "Flink server started (node.id={}, cluster {}, listening on {})",
        config.node_id,
        image.cluster_id,
        listeners.join(",")
    );
    wait_for_stop_signal();
    controlled_shutdown(&controller_sender);
    tracing::info!("Flink server shutting down: flushing and closing the logs");
    if close_logs(&mesh) {
        mark_clean_shutdown(&config.log_dirs[0]);
        tracing::info!("Flink server stopped cleanly");
    }
    drop((controller_handle, handles));
    Ok(())
}

/// Has the active controller fence this broker before its logs close (Kafka's controlled
/// shutdown), waiting at most `CONTROLLED_SHUTDOWN_TIMEOUT`.
fn controlled_shutdown(controller: &flume::Sender<ControllerRequest>) {
    let (reply, done) = flume::bounded(1);
    if controller
        .send(ControllerRequest::ControlledShutdown { reply })
        .is_ok()
        && done.recv_timeout(CONTROLLED_SHUTDOWN_TIMEOUT).is_err()
    {
        tracing::warn!(
            "controlled shutdown not confirmed within {CONTROLLED_SHUTDOWN_TIMEOUT:?}; stopping anyway"
        );
    }
}

/// Asks every shard to flush and close its logs; true when all did within the timeout.
fn close_logs(mesh: &Mesh) -> bool {
    let (reply, replies) = flume::bounded(mesh.shard_count());
    for shard in 0..mesh.shard_count() {
        mesh.send_blocking(
            ShardId(shard),
            mesh::ShardRequest::Shutdown {
                reply: reply.clone(),
            },
        );
    }
    let deadline = std::time::Instant::now() + SHUTDOWN_TIMEOUT;
    let mut clean = true;
    for _ in 0..mesh.shard_count() {
        match replies.recv_deadline(deadline) {
            Ok(closed) => clean &= closed,
            Err(_) => {
                tracing::error!("shards did not close their logs within {SHUTDOWN_TIMEOUT:?}");
                return false;
            }
        }
    }
    clean
}

/// Removes the clean-shutdown marker, returning whether it was there.
fn take_clean_shutdown_marker(log_dir: &Path) -> bool {
    let path = log_dir.join(CLEAN_SHUTDOWN_FILE);
    match std::fs::remove_file(&path) {
        Ok(()) => {
            // The removal must be durable before any log changes, or a crash would leave a
            // marker for logs that are no longer clean.
            if let Err(error) = std::fs::File::open(log_dir).and_then(|dir| dir.sync_all()) {
                tracing::warn!("cannot sync {}: {error}", log_dir.display());
                return false;
            }
            true
        }
        Err(_) => false,
    }
}

fn mark_clean_shutdown(log_dir: &Path) {
    let path = log_dir.join(CLEAN_SHUTDOWN_FILE);
    let written = std::fs::File::create(&path)
        .and_then(|file| file.sync_all())
        .and_then(|()| std::fs::File::open(log_dir))
        .and_then(|dir| dir.sync_all());
    if let Err(error) = written {
        tracing::warn!("cannot write {}: {error}", path.display());
    }
}

/// The start-up log line: the placement applied, why, and where each executor runs.
fn describe_placement(plan: &CpuPlan, shard_count: usize, cpus: &[usize]) -> String {
    let pinned: Vec<String> = plan.shard_cpus[..shard_count]
        .iter()
        .filter_map(|cpu| match cpu {
            ExecutorCpu::Pinned(cpu) => Some(cpu.to_string()),
            ExecutorCpu::Unpinned => None,
        })
        .collect();
    let shard_text = match (shard_count, pinned.is_empty()) {
        (0, _) => "no shards".to_string(),
        (_, true) => format!("starting {shard_count} shard(s) unpinned"),
        (_, false) => format!(
            "starting {shard_count} shard(s) on CPUs {}",
            pinned.join(",")
        ),
    };
    let share = match (plan.controller_cpu, plan.controller_dedicated, shard_count) {
        (ExecutorCpu::Unpinned, _, _) | (_, _, 0) => "",
        (ExecutorCpu::Pinned(_), true, _) => ", dedicated",
        (ExecutorCpu::Pinned(_), false, _) => ", shared with shard 0",
    };
    format!(
        "CPU placement {} ({}): {shard_text}; controller {}{share} (process CPU set {cpus:?})",
        plan.pinning.name(),
        plan.reason,
        match plan.controller_cpu {
            ExecutorCpu::Pinned(cpu) => format!("on CPU {cpu}"),
            ExecutorCpu::Unpinned => "unpinned".to_string(),
        },
    )
}

/// An executor pinned to `cpu`, or unbound (it inherits the process's affinity mask, so it stays
/// inside the CPU set). Idle, it parks in the kernel at once, unless the caller sets
/// `spin_before_park` (shards, by `idle.poll.time.us`; glommio clears it for unbound
/// executors). The preemption timer only bounds how long a task queue runs while busy; it wakes
/// nothing while idle.
fn executor(name: &str, cpu: ExecutorCpu) -> LocalExecutorBuilder {
    let placement = match cpu {
        ExecutorCpu::Pinned(cpu) => Placement::Fixed(cpu),
        ExecutorCpu::Unpinned => Placement::Unbound,
    };
    LocalExecutorBuilder::new(placement)
        .name(name)
        .io_memory(EXECUTOR_IO_MEMORY_BYTES)
}

/// Blocks SIGINT/SIGTERM (the executors inherit the mask, so the signal comes here) and waits.
pub fn block_stop_signals() {
    // SAFETY: plain signal-mask calls on a zeroed sigset_t.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGINT);
        libc::sigaddset(&mut set, libc::SIGTERM);
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
    }
}

fn wait_for_stop_signal() {
    // SAFETY: as above; sigwait stores the signal number.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGINT);
        libc::sigaddset(&mut set, libc::SIGTERM);
        let mut signal = 0;
        libc::sigwait(&set, &mut signal);
    }
}
