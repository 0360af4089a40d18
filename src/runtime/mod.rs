//! Starts the broker's executors: one pinned glommio executor per shard, plus the controller's
//! (on its own core when there are at least four, else sharing the first shard's core), all
//! inside the process's CPU set, after the io_uring preflight has passed.

pub mod cleaner;
pub mod cpu;
pub mod mesh;
pub mod placement;
pub mod preflight;
pub mod shard;

use std::path::Path;
use std::rc::Rc;
use std::sync::Arc;

use glommio::{LocalExecutorBuilder, Placement};

use crate::config::ServerConfig;
use crate::controller::{Controller, CONTROLLER_QUEUE_CAPACITY};
use mesh::Mesh;
use placement::ShardId;
use shard::Shard;

/// io_uring buffer memory registered per executor; it counts against RLIMIT_MEMLOCK.
const EXECUTOR_IO_MEMORY_BYTES: usize = 512 << 10;
/// A non-empty file every executor opens first, so glommio's per-device poll probe reads real
/// data (see io_uring_notes.md).
const IO_PROBE_FILE: &str = ".flink-io-probe";
const IO_PROBE_BYTES: usize = 4096;

#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error(transparent)]
    Preflight(#[from] preflight::PreflightError),
    #[error("cannot read the process CPU set: {0}")]
    CpuSet(std::io::Error),
    #[error(transparent)]
    MetadataLog(#[from] crate::controller::metadata_log::MetadataLogError),
    #[error("cannot start executor {name}: {reason}")]
    Executor { name: String, reason: String },
    #[error("shard {shard} failed to start: {reason}")]
    ShardStart { shard: ShardId, reason: String },
    #[error("cannot prepare {path}: {source}")]
    Probe {
        path: String,
        source: std::io::Error,
    },
}

/// Runs the broker until the process is stopped. Returns only on a start-up failure.
pub fn run(config: Arc<ServerConfig>, cluster_id: String) -> Result<(), RuntimeError> {
    let cpus = cpu::allowed_cpus().map_err(RuntimeError::CpuSet)?;
    let plan = placement::plan_cpus(&cpus, config.shard_count, config.controller_dedicated_core);
    preflight::check(plan.shard_cpus.len() + 1)?;
    write_io_probe(&config.log_dirs[0])?;
    let (mesh, queues) = Mesh::new(plan.shard_cpus.len());
    let (controller_sender, controller_queue) = flume::bounded(CONTROLLER_QUEUE_CAPACITY);
    let controller = Controller::open(config.clone(), cluster_id, mesh.clone())?;
    let image = controller.image();
    tracing::info!(
        "starting {} shard(s) on CPUs {:?}; controller on CPU {}{} (process CPU set {:?})",
        plan.shard_cpus.len(),
        plan.shard_cpus,
        plan.controller_cpu,
        if plan.controller_dedicated {
            ", dedicated"
        } else {
            ", shared with shard 0"
        },
        cpus
    );
    let probe = config.log_dirs[0].join(IO_PROBE_FILE);
    let controller_probe = probe.clone();
    let controller_handle = executor("controller", plan.controller_cpu)
        .spawn(move || async move {
            prime_poll_probe(&controller_probe).await;
            controller.run(controller_queue).await
        })
        .map_err(|error| RuntimeError::Executor {
            name: "controller".into(),
            reason: error.to_string(),
        })?;
    let (started, start_results) = std::sync::mpsc::channel();
    let mut handles = Vec::new();
    for (index, (cpu, queue)) in plan.shard_cpus.iter().zip(queues).enumerate() {
        let (config, mesh, controller_sender) =
            (config.clone(), mesh.clone(), controller_sender.clone());
        let (image, started, probe) = (image.clone(), started.clone(), probe.clone());
        let name = format!("shard-{index}");
        let handle = executor(&name, *cpu)
            .spawn(move || async move {
                prime_poll_probe(&probe).await;
                let shard = Rc::new(Shard::new(ShardId(index), config, mesh, controller_sender));
                shard.apply_metadata(image).await;
                match crate::net::bind_client_listeners(&shard) {
                    Err(error) => {
                        let _ = started.send(Err(RuntimeError::ShardStart {
                            shard: shard.id,
                            reason: error.to_string(),
                        }));
                    }
                    Ok(listeners) => {
                        let _ = started.send(Ok(()));
                        for listener in listeners {
                            glommio::spawn_local(crate::net::accept_loop(shard.clone(), listener))
                                .detach();
                        }
                        glommio::spawn_local(shard.clone().tick_groups()).detach();
                        glommio::spawn_local(cleaner::run(shard.clone())).detach();
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
    drop(started);
    for result in start_results.iter().take(plan.shard_cpus.len()) {
        result?;
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
    tracing::info!(
        "Flink server shutting down: every acknowledged write is already in the log files"
    );
    drop((controller_handle, handles));
    Ok(())
}

fn executor(name: &str, cpu: usize) -> LocalExecutorBuilder {
    LocalExecutorBuilder::new(Placement::Fixed(cpu))
        .name(name)
        .io_memory(EXECUTOR_IO_MEMORY_BYTES)
}

fn write_io_probe(log_dir: &Path) -> Result<(), RuntimeError> {
    let path = log_dir.join(IO_PROBE_FILE);
    std::fs::create_dir_all(log_dir)
        .and_then(|()| std::fs::write(&path, vec![0u8; IO_PROBE_BYTES]))
        .map_err(|source| RuntimeError::Probe {
            path: path.display().to_string(),
            source,
        })
}

/// glommio probes each device for polled I/O once per executor, reading the first file opened
/// for Direct I/O. An empty file reads as success and wrongly marks the device pollable; so each
/// executor opens this non-empty file first.
async fn prime_poll_probe(path: &Path) {
    match glommio::io::DmaFile::open(path).await {
        Ok(file) => {
            let _ = file.close().await;
        }
        Err(error) => tracing::warn!("io probe {} failed: {error}", path.display()),
    }
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
