//! Log directory formatting: `meta.properties` with the cluster id, node id and directory id,
//! written by `flink storage format` (with the bootstrap metadata it was given,
//! `controller::bootstrap`) or, for a single combined node, on its first start.

use std::path::{Path, PathBuf};

use crate::config::ServerConfig;
use crate::controller::metadata_log::{MetadataLogError, MetadataRecord};
use crate::controller::{bootstrap, random_uuid};
use crate::metadata::uuid::{uuid_from_base64, uuid_to_base64};

const META_PROPERTIES: &str = "meta.properties";

#[derive(Debug, thiserror::Error)]
pub enum FormatError {
    #[error("I/O error on {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "no meta.properties in log directory {0}; format it first: \
         flink-storage.sh format -t $(flink-storage.sh random-uuid) -c server.properties"
    )]
    NotFormatted(PathBuf),
    #[error("{path} belongs to node.id {found} but this broker is node.id {expected}")]
    WrongNode {
        path: PathBuf,
        found: String,
        expected: i32,
    },
    #[error(
        "{path} belongs to cluster {found}, but the other log directories to cluster {expected}"
    )]
    OtherCluster {
        path: PathBuf,
        found: String,
        expected: String,
    },
    #[error("{path} has no cluster.id")]
    NoClusterId { path: PathBuf },
    #[error("Log directory {0} is already formatted. Use --ignore-formatted to ignore this directory and format the others.")]
    AlreadyFormatted(PathBuf),
    #[error("Cluster ID string {0} does not appear to be a valid UUID: it must be 22 characters of URL-safe base64")]
    InvalidClusterId(String),
    #[error("cannot write the bootstrap metadata: {0}")]
    Bootstrap(#[from] MetadataLogError),
}

/// Returns the cluster id of the configured log directories, formatting them first when they
/// are the empty directories of a single combined node (a quorum of one needs no agreed cluster
/// id). A directory added to `log.dirs` later (no `meta.properties`, empty) is formatted with
/// the cluster id of the others; directories of different clusters or nodes are refused.
pub fn ensure_formatted(config: &ServerConfig) -> Result<String, FormatError> {
    let mut cluster_id: Option<String> = None;
    let mut unformatted = Vec::new();
    for (index, dir) in config.log_dirs.iter().enumerate() {
        let found = match read_cluster_id(dir, config.node_id) {
            // A directory but the first that cannot be read starts offline.
            Err(FormatError::Io { path, source }) if index > 0 => {
                tracing::error!("cannot read {}: {source}", path.display());
                continue;
            }
            found => found?,
        };
        match found {
            Some(found) => match &cluster_id {
                Some(known) if *known != found => {
                    return Err(FormatError::OtherCluster {
                        path: dir.clone(),
                        found,
                        expected: known.clone(),
                    })
                }
                _ => cluster_id = Some(found),
            },
            None => unformatted.push(dir),
        }
    }
    let added = cluster_id.is_some();
    let cluster_id = match cluster_id {
        Some(cluster_id) => cluster_id,
        None => {
            let single_node = config.is_controller() && config.controller_quorum_voters.len() == 1;
            if !single_node {
                return Err(FormatError::NotFormatted(config.log_dirs[0].clone()));
            }
            let cluster_id = uuid_to_base64(random_uuid());
            tracing::info!(
                "Formatting log directories with cluster.id {cluster_id} (first start of a single combined node)"
            );
            cluster_id
        }
    };
    for dir in unformatted {
        // A directory added beside formatted ones must hold nothing yet (but a file system's
        // lost+found and hidden files such as `.lock`).
        let empty = std::fs::read_dir(dir).map_or(true, |mut entries| {
            entries.all(|entry| {
                entry.is_ok_and(|entry| {
                    let name = entry.file_name();
                    let name = name.to_string_lossy();
                    name.starts_with('.') || name == "lost+found"
                })
            })
        });
        if added && !empty {
            return Err(FormatError::NotFormatted(dir.clone()));
        }
        tracing::info!(
            "Formatting log directory {} with cluster.id {cluster_id}",
            dir.display()
        );
        match write_meta_properties(dir, &cluster_id, config.node_id) {
            Err(FormatError::Io { path, source }) if *dir != config.log_dirs[0] => {
                tracing::error!("cannot format {}: {source}", path.display())
            }
            written => written?,
        }
    }
    Ok(cluster_id)
}

/// The cluster id of `dir`'s `meta.properties`, `None` when it has none; an error when it
/// belongs to another node.
fn read_cluster_id(dir: &Path, node_id: i32) -> Result<Option<String>, FormatError> {
    let path = dir.join(META_PROPERTIES);
    if !path.exists() {
        return Ok(None);
    }
    let text = std::fs::read_to_string(&path).map_err(|source| FormatError::Io {
        path: path.clone(),
        source,
    })?;
    let properties = crate::config::properties::parse(&text);
    if let Some(found) = properties.get("node.id") {
        if *found != node_id.to_string() {
            return Err(FormatError::WrongNode {
                path,
                found: found.clone(),
                expected: node_id,
            });
        }
    }
    properties
        .get("cluster.id")
        .cloned()
        .map(Some)
        .ok_or(FormatError::NoClusterId { path })
}

/// Writes `meta.properties` into `dir`, refusing a formatted one unless `ignore_formatted`
/// (which skips it). The `bootstrap` records, if any, are written first, as Kafka writes its
/// bootstrap file before `meta.properties`.
pub fn format_dir(
    dir: &Path,
    cluster_id: &str,
    node_id: i32,
    ignore_formatted: bool,
    bootstrap: &[MetadataRecord],
) -> Result<bool, FormatError> {
    if uuid_from_base64(cluster_id).is_none() {
        return Err(FormatError::InvalidClusterId(cluster_id.to_string()));
    }
    if dir.join(META_PROPERTIES).exists() {
        return match ignore_formatted {
            true => Ok(false),
            false => Err(FormatError::AlreadyFormatted(dir.to_path_buf())),
        };
    }
    if !bootstrap.is_empty() {
        std::fs::create_dir_all(dir).map_err(|source| FormatError::Io {
            path: dir.to_path_buf(),
            source,
        })?;
        bootstrap::write(dir, bootstrap)?;
    }
    write_meta_properties(dir, cluster_id, node_id)?;
    Ok(true)
}

fn write_meta_properties(dir: &Path, cluster_id: &str, node_id: i32) -> Result<(), FormatError> {
    let io = |source| FormatError::Io {
        path: dir.to_path_buf(),
        source,
    };
    std::fs::create_dir_all(dir).map_err(io)?;
    let text = format!(
        "#\n#Written by flink storage format\ncluster.id={cluster_id}\ndirectory.id={}\nnode.id={node_id}\nversion=1\n",
        uuid_to_base64(random_uuid())
    );
    let temporary = dir.join(format!("{META_PROPERTIES}.tmp"));
    std::fs::write(&temporary, text).map_err(io)?;
    std::fs::File::open(&temporary)
        .and_then(|file| file.sync_all())
        .map_err(io)?;
    std::fs::rename(&temporary, dir.join(META_PROPERTIES)).map_err(io)
}
