//! `flink storage` (flink-storage.sh): `random-uuid` and `format`, as Kafka's kafka-storage.sh.
//! `format --add-scram` puts SCRAM credentials into the bootstrap metadata of every directory it
//! formats (`storage_scram`, `controller::bootstrap`).

use std::path::PathBuf;
use std::process::ExitCode;

use crate::config::{properties, ServerConfig};
use crate::controller::random_uuid;
use crate::metadata::uuid::uuid_to_base64;
use crate::server::format::format_dir;

use super::storage_scram;

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
        /// A SCRAM credential to add to the metadata log from its start (repeatable), e.g.
        /// 'SCRAM-SHA-256=[name=alice,password=alice-secret]' or
        /// 'SCRAM-SHA-512=[name=alice,iterations=8192,salt="<base64>",saltedpassword="<base64>"]'.
        #[arg(short = 'S', long = "add-scram", value_name = "SCRAM_CREDENTIAL")]
        add_scram: Vec<String>,
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
            add_scram,
            ..
        } => match format(
            &cluster_id,
            config.as_ref(),
            from_env,
            ignore_formatted,
            &add_scram,
        ) {
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
    add_scram: &[String],
) -> Result<(), String> {
    let bootstrap = storage_scram::records(add_scram).map_err(|error| error.to_string())?;
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
        if format_dir(
            dir,
            cluster_id,
            config.node_id,
            ignore_formatted,
            &bootstrap,
        )
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::parse_tool_args;

    /// `--add-scram` and `-S` repeat, keeping their order, beside the other format flags.
    #[test]
    fn add_scram_repeats() {
        let args: Args = parse_tool_args(&[
            "flink-storage",
            "format",
            "-t",
            "5L6g3nShT-eMCtK--X86sw",
            "-c",
            "server.properties",
            "--add-scram",
            "SCRAM-SHA-256=[name=alice,password=alice-secret]",
            "-g",
            "-S",
            r#"SCRAM-SHA-512=[name=bob,iterations=8192,salt="N3E=",saltedpassword="YCE="]"#,
        ])
        .unwrap();
        let StorageCommand::Format {
            add_scram,
            ignore_formatted,
            ..
        } = args.command
        else {
            panic!("not format: {:?}", args.command);
        };
        assert!(ignore_formatted);
        assert_eq!(
            add_scram,
            [
                "SCRAM-SHA-256=[name=alice,password=alice-secret]",
                r#"SCRAM-SHA-512=[name=bob,iterations=8192,salt="N3E=",saltedpassword="YCE="]"#
            ]
        );
        let args: Args =
            parse_tool_args(&["flink-storage", "format", "-t", "x", "--from-env"]).unwrap();
        assert!(
            matches!(args.command, StorageCommand::Format { add_scram, .. } if add_scram.is_empty())
        );
    }
}
