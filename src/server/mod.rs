//! `flink server`: loads and checks the configuration, formats the log directory of a single
//! combined node on first start, and runs the broker.

pub mod format;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use indexmap::IndexMap;

use crate::config::{self, ServerConfig};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// server.properties to read; without it the embedded single-node default is used.
    config: Option<PathBuf>,
    /// Set a configuration key, overriding the file (repeatable): --override log.dirs=/data
    #[arg(long = "override", value_name = "KEY=VALUE")]
    overrides: Vec<String>,
    /// Take configuration from FLINK_* environment variables (FLINK_NUM_PARTITIONS is
    /// num.partitions). When any is set, the embedded defaults are not used.
    #[arg(long)]
    from_env: bool,
}

pub fn run(args: Args) -> ExitCode {
    init_logging();
    match start(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            tracing::error!("{message}");
            eprintln!("ERROR {message}");
            ExitCode::FAILURE
        }
    }
}

fn start(args: Args) -> Result<(), String> {
    let properties = gather_properties(&args)?;
    let (mut config, warnings) =
        ServerConfig::from_properties(&properties).map_err(|error| error.to_string())?;
    for warning in warnings {
        tracing::warn!("{warning}");
    }
    config.links.load()?;
    let config = Arc::new(config);
    // Every directory is locked; one that cannot even be created is left to start offline
    // (`storage::log_dirs`), but the first, which holds the metadata log, must lock.
    let mut _locks = vec![lock_log_dir(&config.log_dirs[0])?];
    for dir in &config.log_dirs[1..] {
        match lock_log_dir(dir) {
            Ok(lock) => _locks.push(lock),
            Err(error) if error.starts_with("Failed to acquire lock") => return Err(error),
            Err(error) => tracing::error!("{error}"),
        }
    }
    check_ports_free(&config)?;
    let cluster_id = format::ensure_formatted(&config).map_err(|error| error.to_string())?;
    crate::runtime::block_stop_signals();
    crate::runtime::run(config, cluster_id).map_err(|error| error.to_string())
}

/// Takes `log_dir/.lock` (flock, held until the process ends), as Kafka does: a second server
/// on the same directory would corrupt the metadata log and the partitions' logs.
fn lock_log_dir(dir: &std::path::Path) -> Result<std::fs::File, String> {
    use std::os::fd::AsRawFd;
    let path = dir.join(".lock");
    let file = std::fs::create_dir_all(dir)
        .and_then(|()| {
            std::fs::OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .open(&path)
        })
        .map_err(|error| format!("cannot open {}: {error}", path.display()))?;
    // SAFETY: flock on a descriptor this File owns.
    if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
        return Err(format!(
            "Failed to acquire lock on file .lock in {}. A Flink instance in another process or \
             thread is using this directory.",
            dir.display()
        ));
    }
    Ok(file)
}

/// How long a port may keep a listener of a process that just exited (see `check_ports_free`).
const PORT_RELEASE_WAIT: std::time::Duration = std::time::Duration::from_secs(3);

/// Fails when a listener's port already has a listener. The shards bind with SO_REUSEPORT (to
/// share a port among themselves), which would also let them join another process's listener
/// silently; a connection attempt finds one (a bind probe would also trip over client sockets
/// that merely use the port). The listeners of a server that just exited outlive it for a few
/// milliseconds (io_uring tears its files down after the process is gone), so a taken port is
/// tried again for `PORT_RELEASE_WAIT` before it is an error.
fn check_ports_free(config: &ServerConfig) -> Result<(), String> {
    let deadline = std::time::Instant::now() + PORT_RELEASE_WAIT;
    loop {
        match listener_in_the_way(config) {
            None => return Ok(()),
            Some(taken) if std::time::Instant::now() >= deadline => {
                return Err(format!(
                    "cannot listen on {taken}: another process is listening there"
                ))
            }
            Some(_) => std::thread::sleep(std::time::Duration::from_millis(50)),
        }
    }
}

/// The first listener of `config` whose port answers a connection.
fn listener_in_the_way(config: &ServerConfig) -> Option<String> {
    for listener in &config.listeners {
        if listener.port == 0 {
            continue;
        }
        let host = match listener.host.as_str() {
            "" | "0.0.0.0" => "127.0.0.1",
            "::" => "::1",
            host => host,
        };
        let Ok(addresses) = std::net::ToSocketAddrs::to_socket_addrs(&(host, listener.port)) else {
            continue;
        };
        for address in addresses {
            let timeout = std::time::Duration::from_millis(200);
            let connected = std::net::TcpStream::connect_timeout(&address, timeout);
            // With nothing listening, a connection to a port in the ephemeral range can meet
            // itself (TCP simultaneous open); that is no listener.
            let listening =
                connected.is_ok_and(|stream| stream.local_addr().ok() != stream.peer_addr().ok());
            if listening {
                return Some(format!(
                    "{}://{}:{}",
                    listener.name, listener.host, listener.port
                ));
            }
        }
    }
    None
}

/// Embedded default or file, then FLINK_* variables, then --override pairs.
fn gather_properties(args: &Args) -> Result<IndexMap<String, String>, String> {
    let environment = match args.from_env {
        true => config::env::config_from_environment(std::env::vars()),
        false => Vec::new(),
    };
    let mut properties = match &args.config {
        Some(path) => {
            let text = std::fs::read_to_string(path).map_err(|source| {
                config::ConfigError::Read {
                    path: path.clone(),
                    source,
                }
                .to_string()
            })?;
            config::properties::parse(&text)
        }
        None if !environment.is_empty() => IndexMap::new(),
        None => config::properties::parse(config::EMBEDDED_DEFAULT),
    };
    properties.extend(environment);
    for pair in &args.overrides {
        let (key, value) = pair
            .split_once('=')
            .ok_or_else(|| format!("--override '{pair}' is not of the form key=value"))?;
        properties.insert(key.trim().to_string(), value.trim().to_string());
    }
    Ok(properties)
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("FLINK_LOG_LEVEL")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false)
        .with_thread_names(true)
        .try_init();
}
