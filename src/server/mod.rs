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
    let (config, warnings) =
        ServerConfig::from_properties(&properties).map_err(|error| error.to_string())?;
    for warning in warnings {
        tracing::warn!("{warning}");
    }
    let config = Arc::new(config);
    let cluster_id = format::ensure_formatted(&config).map_err(|error| error.to_string())?;
    crate::runtime::block_stop_signals();
    crate::runtime::run(config, cluster_id).map_err(|error| error.to_string())
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
