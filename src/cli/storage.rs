//! `flink storage` (flink-storage.sh): `random-uuid` and `format`, as Kafka's kafka-storage.sh.

use std::path::PathBuf;
use std::process::ExitCode;

use crate::config::{properties, ServerConfig};
use crate::controller::random_uuid;
use crate::metadata::uuid::uuid_to_base64;
use crate::server::format::format_dir;

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(subcommand)]
    command: StorageCommand,
}

#[derive(clap::Subcommand, Debug)]
enum StorageCommand {
    /// Print a new random cluster id.
    RandomUuid,
    /// Write meta.properties into every log directory of the configuration.
    Format {
        /// The cluster id (from random-uuid).
        #[arg(short = 't', long = "cluster-id", allow_hyphen_values = true)]
        cluster_id: String,
        /// The server.properties of the node.
        #[arg(short = 'c', long = "config", required_unless_present = "from_env")]
        config: Option<PathBuf>,
        /// Take the configuration from FLINK_* environment variables instead, as
        /// `flink server --from-env` does (the container image formats its storage this way).
        #[arg(long, conflicts_with = "config")]
        from_env: bool,
        /// Skip directories that are already formatted instead of failing.
        #[arg(short = 'g', long)]
        ignore_formatted: bool,
        /// Accepted for compatibility: a single-voter quorum needs nothing more.
        #[arg(short = 's', long)]
        standalone: bool,
    },
}

pub fn run(args: Args) -> ExitCode {
    match args.command {
        StorageCommand::RandomUuid => {
            println!("{}", uuid_to_base64(random_uuid()));
            ExitCode::SUCCESS
        }
        StorageCommand::Format {
            cluster_id,
            config,
            from_env,
            ignore_formatted,
            ..
        } => match format(&cluster_id, config.as_ref(), from_env, ignore_formatted) {
            Ok(()) => ExitCode::SUCCESS,
            Err(message) => {
                eprintln!("{message}");
                ExitCode::FAILURE
            }
        },
    }
}

fn format(
    cluster_id: &str,
    config_path: Option<&PathBuf>,
    from_env: bool,
    ignore_formatted: bool,
) -> Result<(), String> {
    let given = match (config_path, from_env) {
        (Some(path), _) => {
            let text = std::fs::read_to_string(path)
                .map_err(|error| format!("cannot read {}: {error}", path.display()))?;
            properties::parse(&text)
        }
        (None, _) => crate::config::env::config_from_environment(std::env::vars())
            .into_iter()
            .collect(),
    };
    let (config, _) = ServerConfig::from_properties(&given).map_err(|error| error.to_string())?;
    for dir in &config.log_dirs {
        if format_dir(dir, cluster_id, config.node_id, ignore_formatted)
            .map_err(|error| error.to_string())?
        {
            println!(
                "Formatting log directory {} with cluster.id {cluster_id}.",
                dir.display()
            );
        } else {
            println!("All of the log directories are already formatted.");
        }
    }
    Ok(())
}
