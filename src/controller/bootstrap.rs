//! The bootstrap metadata (Kafka's `bootstrap.checkpoint`): records `flink storage format` writes
//! into each log directory it formats (the `--add-scram` credentials, KIP-900), which the first
//! active controller commits as the metadata log's first entry (`driver::Driver`), so that they
//! exist from the cluster's first moment.
//!
//! As in Kafka, every formatted directory gets the file and only a controller's metadata
//! directory (`log.dirs`'s first) is read; a broker never reads it. Once the metadata log holds
//! anything the file is never used again. It holds one entry of the metadata log's lines (each
//! with its CRC-32C), written to a temporary file, synced and renamed, so a directory that has
//! `meta.properties` has its whole bootstrap file.

use std::path::Path;

use super::metadata_log::{decode_entry, encode_entry, MetadataLogError, MetadataRecord};

pub const BOOTSTRAP_FILE: &str = "bootstrap.checkpoint";

/// Writes `records` as `dir`'s bootstrap file, durably.
pub fn write(dir: &Path, records: &[MetadataRecord]) -> Result<(), MetadataLogError> {
    let path = dir.join(BOOTSTRAP_FILE);
    let io = |source| MetadataLogError::Io {
        path: path.clone(),
        source,
    };
    let temporary = dir.join(format!("{BOOTSTRAP_FILE}.tmp"));
    std::fs::write(&temporary, encode_entry(records)).map_err(io)?;
    std::fs::File::open(&temporary)
        .and_then(|file| file.sync_all())
        .map_err(io)?;
    std::fs::rename(&temporary, &path).map_err(io)?;
    std::fs::File::open(dir)
        .and_then(|directory| directory.sync_all())
        .map_err(io)
}

/// The records of `dir`'s bootstrap file, `None` when there is none. A damaged file is an error:
/// a controller must not start a cluster without the metadata it was formatted with.
pub fn read(dir: &Path) -> Result<Option<Vec<MetadataRecord>>, MetadataLogError> {
    let path = dir.join(BOOTSTRAP_FILE);
    let data = match std::fs::read(&path) {
        Ok(data) => data,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(MetadataLogError::Io { path, source }),
    };
    match decode_entry(&data, 0) {
        Ok(records) => Ok(Some(records)),
        Err(MetadataLogError::BadEntry { index, reason }) => Err(MetadataLogError::Corrupt {
            path,
            line: index + 1,
            reason,
        }),
        Err(error) => Err(error),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::path::PathBuf;

    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("flink-bootstrap-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    /// What `write` wrote, `read` returns; no file is `None`; a damaged one is refused with its
    /// path and line.
    #[test]
    fn round_trips_and_refuses_damage() {
        let dir = scratch("round-trip");
        assert!(read(&dir).unwrap().is_none());
        let records = vec![MetadataRecord::UserConfigs {
            user: "alice".to_string(),
            configs: BTreeMap::from([(
                "SCRAM-SHA-256".to_string(),
                "salt=c2FsdA==,stored_key=a2V5,server_key=a2V5,iterations=4096".to_string(),
            )]),
        }];
        write(&dir, &records).unwrap();
        assert_eq!(read(&dir).unwrap(), Some(records));
        assert!(!dir.join(format!("{BOOTSTRAP_FILE}.tmp")).exists());

        let path = dir.join(BOOTSTRAP_FILE);
        let mut data = std::fs::read(&path).unwrap();
        let middle = data.len() / 2;
        data[middle] ^= 0x20;
        std::fs::write(&path, data).unwrap();
        match read(&dir) {
            Err(MetadataLogError::Corrupt {
                path: found, line, ..
            }) => {
                assert_eq!((found, line), (path, 1))
            }
            other => panic!("a damaged file was read: {other:?}"),
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
