//! `partition.metadata`, Kafka's record in each partition directory of the topic it belongs to
//! (`version: 0`, then `topic_id: ` and the id as Kafka prints it). With it a broker tells a
//! directory left by a topic that was deleted while it was down, perhaps created again under the
//! same name since, from the current topic's, and never serves the old records as the new
//! topic's. At start-up the directories of partitions this broker no longer hosts (Kafka's stray
//! logs) are removed: renamed `<name>.<unique id>-delete` first, so that a crash in the middle
//! leaves what `remove_deleted_dirs` finishes at the next start.

use std::io::Write;
use std::path::{Path, PathBuf};

use base64::Engine;

use crate::metadata::TopicId;

/// The file's name in a partition directory.
pub const FILE: &str = "partition.metadata";
const VERSION: &str = "0";

#[derive(Debug, thiserror::Error)]
pub enum PartitionMetadataError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is malformed: {reason}")]
    Malformed { path: PathBuf, reason: String },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> PartitionMetadataError + '_ {
    move |source| PartitionMetadataError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// The file's text for `id`.
pub fn encode(id: TopicId) -> String {
    let id = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(id.0);
    format!("version: {VERSION}\ntopic_id: {id}\n")
}

/// The topic id in the file's `text`.
pub fn parse(text: &str) -> Result<TopicId, String> {
    let mut version = None;
    let mut topic_id = None;
    for line in text.lines().filter(|line| !line.trim().is_empty()) {
        let (key, value) = line
            .split_once(':')
            .ok_or_else(|| format!("line {line:?} is not `key: value`"))?;
        match key.trim() {
            "version" => version = Some(value.trim().to_string()),
            "topic_id" => topic_id = Some(value.trim().to_string()),
            other => return Err(format!("unknown key {other:?}")),
        }
    }
    match version.as_deref() {
        Some(VERSION) => {}
        Some(other) => return Err(format!("version {other} is not {VERSION}")),
        None => return Err("no version".into()),
    }
    let topic_id = topic_id.ok_or("no topic_id")?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(&topic_id)
        .map_err(|error| format!("topic_id {topic_id:?}: {error}"))?;
    let bytes: [u8; 16] = bytes
        .try_into()
        .map_err(|_| format!("topic_id {topic_id:?} is not 16 bytes"))?;
    Ok(TopicId(bytes))
}

/// The topic id `dir` records; `None` when it records none (a directory of an older version,
/// or one not yet written to).
pub fn read(dir: &Path) -> Result<Option<TopicId>, PartitionMetadataError> {
    let path = dir.join(FILE);
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(error) => return Err(io(&path)(error)),
    };
    parse(&text)
        .map(Some)
        .map_err(|reason| PartitionMetadataError::Malformed { path, reason })
}

/// Records `id` in `dir`, durably: a temporary file, fsynced, renamed over the file, and the
/// directory fsynced.
pub fn write(dir: &Path, id: TopicId) -> Result<(), PartitionMetadataError> {
    let path = dir.join(FILE);
    let temporary = dir.join(format!("{FILE}.tmp"));
    let mut file = std::fs::File::create(&temporary).map_err(io(&temporary))?;
    file.write_all(encode(id).as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(io(&temporary))?;
    std::fs::rename(&temporary, &path).map_err(io(&path))?;
    std::fs::File::open(dir)
        .and_then(|directory| directory.sync_all())
        .map_err(io(dir))
}

/// The topic and partition a partition directory's name gives (`orders-3`); `None` for any
/// other name, the metadata log's (`__cluster_metadata-0`) included.
pub fn partition_of(name: &str) -> Option<(&str, i32)> {
    if name == crate::controller::metadata_log::METADATA_DIR {
        return None;
    }
    let (topic, index) = name.rsplit_once('-')?;
    if topic.is_empty() || index.is_empty() || !index.bytes().all(|byte| byte.is_ascii_digit()) {
        return None;
    }
    let index: i32 = index.parse().ok()?;
    Some((topic, index))
}

/// The partition directories in `log_dir` that `hosts(topic, partition)` disowns.
pub fn strays(log_dir: &Path, hosts: impl Fn(&str, i32) -> bool) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(log_dir) else {
        return Vec::new();
    };
    let mut found: Vec<PathBuf> = entries
        .flatten()
        .filter(|entry| entry.path().is_dir())
        .filter(|entry| {
            let name = entry.file_name().to_string_lossy().into_owned();
            partition_of(&name).is_some_and(|(topic, index)| !hosts(topic, index))
        })
        .map(|entry| entry.path())
        .collect();
    found.sort();
    found
}

/// Removes partition directory `dir`: renamed `<name>.<unique id>-delete` (durably), then
/// deleted.
pub fn retire(dir: &Path) -> Result<(), PartitionMetadataError> {
    let target = super::log::deletion_target(dir);
    std::fs::rename(dir, &target).map_err(io(dir))?;
    if let Some(parent) = dir.parent() {
        std::fs::File::open(parent)
            .and_then(|directory| directory.sync_all())
            .map_err(io(parent))?;
    }
    std::fs::remove_dir_all(&target).map_err(io(&target))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temporary_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "flink-partition-metadata-{name}-{}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    /// Proves the file reads back what was written, in Kafka's text (the id as Kafka's
    /// `Uuid.toString` prints it), and that absent and malformed files are told apart.
    #[test]
    fn writes_and_reads_kafkas_file() {
        let dir = temporary_dir("round-trip");
        let id = TopicId([
            0x4a, 0x3b, 0x10, 0x02, 0x55, 0x66, 0x77, 0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd, 0xee,
            0xff, 0x01,
        ]);
        assert_eq!(read(&dir).unwrap(), None);
        write(&dir, id).unwrap();
        assert_eq!(read(&dir).unwrap(), Some(id));
        assert_eq!(
            std::fs::read_to_string(dir.join(FILE)).unwrap(),
            "version: 0\ntopic_id: SjsQAlVmd4iZqrvM3e7_AQ\n"
        );
        assert!(!dir.join(format!("{FILE}.tmp")).exists());
        for bad in [
            "version: 1\ntopic_id: SjsQAlVmd4iZqrvM3e7_AQ\n",
            "topic_id: SjsQAlVmd4iZqrvM3e7_AQ\n",
            "version: 0\n",
            "version: 0\ntopic_id: short\n",
            "version 0\n",
        ] {
            std::fs::write(dir.join(FILE), bad).unwrap();
            assert!(
                matches!(read(&dir), Err(PartitionMetadataError::Malformed { .. })),
                "{bad:?}"
            );
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// Proves only partition directories a broker disowns are strays: not the metadata log's,
    /// not deleted ones, not other names, not files.
    #[test]
    fn finds_strays_by_name() {
        assert_eq!(partition_of("orders-3"), Some(("orders", 3)));
        assert_eq!(partition_of("my-topic-12"), Some(("my-topic", 12)));
        assert_eq!(partition_of("__cluster_metadata-0"), None);
        assert_eq!(partition_of("orders-3.0123abcd-delete"), None);
        assert_eq!(partition_of("orders"), None);
        assert_eq!(partition_of("-3"), None);
        assert_eq!(partition_of("orders-+3"), None);
        let dir = temporary_dir("strays");
        for name in [
            "kept-0",
            "gone-0",
            "gone-1",
            "__cluster_metadata-0",
            "kept-0.0123-delete",
        ] {
            std::fs::create_dir_all(dir.join(name)).unwrap();
        }
        std::fs::write(dir.join("meta.properties"), "").unwrap();
        std::fs::write(dir.join("file-0"), "").unwrap();
        let found = strays(&dir, |topic, _| topic == "kept");
        assert_eq!(found, vec![dir.join("gone-0"), dir.join("gone-1")]);
        retire(&found[0]).unwrap();
        assert!(!dir.join("gone-0").exists());
        let left: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .flatten()
            .map(|entry| entry.file_name().to_string_lossy().into_owned())
            .filter(|name| name.starts_with("gone-0"))
            .collect();
        assert!(left.is_empty(), "{left:?}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
