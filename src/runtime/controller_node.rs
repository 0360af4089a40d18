//! What runs on the controller's executor: on a controller node the metadata quorum (raft
//! driver, clock, CONTROLLER listener, peer connections) and the controller; on a broker node
//! the broker's side of the controller (`controller::broker`). A combined node runs both.

use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use crate::config::ServerConfig;
use crate::controller::broker::BrokerSide;
use crate::controller::driver::Driver;
use crate::controller::metadata_log::MetadataLog;
use crate::controller::quorum::Committed;
use crate::controller::transport::{self, Inbound};
use crate::controller::{Controller, ControllerRequest, Job, CONTROLLER_QUEUE_CAPACITY};
use crate::metadata::MetadataImage;
use crate::runtime::mesh::Mesh;
use crate::storage::log_dirs::LogDirs;

/// Raft messages from other controllers queued before new ones are dropped.
const EVENT_QUEUE: usize = 4096;

/// How the controller executor and the process's start-up tell each other where a broker's
/// start has got to.
pub struct Startup {
    /// Told the image the shards start from, once the broker is in the cluster, or why it
    /// cannot be.
    pub joined: std::sync::mpsc::Sender<Result<Arc<MetadataImage>, String>>,
    /// Holds a message once every shard has recovered its logs.
    pub recovered: flume::Receiver<()>,
    /// Told once the broker is unfenced, or why it cannot be.
    pub unfenced: std::sync::mpsc::Sender<Result<(), String>>,
}

/// Starts this node's roles, tells `joined` the image the shards start from (once a broker has
/// joined the cluster) or why it cannot, then serves until the process ends.
pub async fn run(
    config: Arc<ServerConfig>,
    cluster_id: String,
    mesh: Mesh,
    quorum: Option<(MetadataLog, Vec<Committed>)>,
    requests: flume::Receiver<ControllerRequest>,
    log_dirs: Arc<LogDirs>,
    startup: Startup,
) {
    let Startup {
        joined,
        recovered,
        unfenced,
    } = startup;
    let cluster: Rc<str> = Rc::from(cluster_id.as_str());
    let local = match quorum {
        Some((log, replayed)) => match start_quorum(&config, &cluster, log, replayed) {
            Ok(local) => Some(local),
            Err(reason) => {
                let _ = joined.send(Err(reason));
                return;
            }
        },
        None => None,
    };
    if !config.is_broker() {
        let image = local
            .as_ref()
            .map(|(driver, _)| driver.image())
            .unwrap_or_default();
        let _ = joined.send(Ok(Arc::new(image)));
        futures_lite::future::pending::<()>().await;
        return;
    }
    let side = BrokerSide::new(config.clone(), cluster.clone(), mesh, local, log_dirs);
    let mut link = side.link();
    tracing::info!(
        "broker {} is joining the cluster through the controller quorum",
        config.node_id
    );
    // Kafka's order: the shards recover their logs from the image the broker entered with,
    // while it asks to stay fenced; once they have, it is unfenced, and only then do the
    // shards open their listeners and take the images that came meanwhile.
    let epoch = match side.enter(&mut link).await {
        Ok((epoch, image)) => {
            let _ = joined.send(Ok(image));
            epoch
        }
        Err(error) => {
            let _ = joined.send(Err(error.to_string()));
            return;
        }
    };
    glommio::spawn_local(side.clone().follow()).detach();
    glommio::spawn_local(side.clone().serve_shards(requests)).detach();
    let ready = || !recovered.is_empty() || recovered.is_disconnected();
    let outcome = side.until_unfenced(&mut link, epoch, &ready).await;
    let failed = outcome.is_err();
    let _ = unfenced.send(outcome.map_err(|error| error.to_string()));
    if failed {
        return;
    }
    side.start_publishing().await;
    side.keep_alive(link).await;
}

/// Binds the CONTROLLER listener and starts the raft driver, its clock, the controller and its
/// session clock.
fn start_quorum(
    config: &Arc<ServerConfig>,
    cluster: &Rc<str>,
    log: MetadataLog,
    replayed: Vec<Committed>,
) -> Result<(Rc<Driver>, flume::Sender<Job>), String> {
    let listener = config
        .listeners
        .iter()
        .find(|listener| config.controller_listener_names.contains(&listener.name))
        .ok_or("no controller listener")?;
    let host = match listener.host.as_str() {
        "" => "0.0.0.0",
        host => host,
    };
    // Not glommio's `TcpListener::bind`, which panics on a host name that does not resolve.
    let socket =
        crate::net::steering::bind_listener(host, listener.port, None).map_err(|error| {
            format!(
                "cannot listen on {}://{host}:{}: {error}",
                listener.name, listener.port
            )
        })?;
    let (events, event_queue) = flume::bounded(EVENT_QUEUE);
    let security = config.listener_security(&listener.name);
    let tls = match security.and_then(|security| security.tls.as_ref()) {
        Some(settings) => Some(
            crate::net::tls::server_config(&listener.name, settings)
                .map_err(|error| error.to_string())?,
        ),
        None => None,
    };
    let peers = transport::spawn_peers(
        &config.controller_quorum_voters,
        config.node_id,
        cluster,
        &config.links.controller.security(),
    );
    let image = MetadataImage {
        cluster_id: cluster.to_string(),
        controller_id: -1,
        ..MetadataImage::default()
    };
    let driver = Driver::new(
        log,
        replayed,
        image,
        config.node_id,
        events.clone(),
        peers,
        config.metadata_log_max_record_bytes_between_snapshots,
    )
    .map_err(|error| format!("cannot replay the metadata log: {error}"))?;
    let driver = Rc::new(driver);
    let (jobs, job_queue) = flume::bounded(CONTROLLER_QUEUE_CAPACITY);
    let tick = Duration::from_millis(config.controller_quorum_election_timeout_ms / 10);
    let session_check = Duration::from_millis((config.broker_heartbeat_interval_ms / 2).max(50));
    glommio::spawn_local(driver.clone().run(event_queue)).detach();
    glommio::spawn_local(driver.clone().tick(tick)).detach();
    glommio::spawn_local(
        Controller::new(config.clone(), cluster.to_string(), driver.clone()).run(job_queue),
    )
    .detach();
    glommio::spawn_local(Controller::session_clock(jobs.clone(), session_check)).detach();
    let inbound = Inbound {
        cluster_id: cluster.clone(),
        driver: driver.clone(),
        events,
        calls: jobs.clone(),
    };
    let guard = transport::ListenerGuard {
        tls,
        sasl: security
            .and_then(|security| security.sasl.clone())
            .map(Rc::new),
        name: Rc::from(listener.name.as_str()),
    };
    glommio::spawn_local(transport::accept_loop(socket, inbound, guard)).detach();
    tracing::info!(
        "controller {} listening on {}://{host}:{} (metadata log at index {})",
        config.node_id,
        listener.name,
        listener.port,
        driver.applied_index()
    );
    Ok((driver, jobs))
}
