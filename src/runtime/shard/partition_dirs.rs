//! Partition directories as a shard opens them: each records its topic's id
//! (`storage::partition_metadata`), so a directory of a topic that was deleted while the broker
//! was down, and perhaps created again under the same name, is removed rather than served as the
//! current topic's; and at start-up one shard removes the directories of partitions this broker
//! no longer hosts (Kafka's stray logs).

use std::path::PathBuf;
use std::rc::Rc;
use std::sync::Arc;

use super::Shard;
use crate::metadata::{MetadataImage, TopicId, TopicImage};
use crate::partition::Partition;
use crate::storage::blocking::off_reactor;
use crate::storage::partition_metadata;

impl Shard {
    /// Opens the replicas of `topic` this shard owns and does not host yet; those with an index
    /// of `known` or more are new.
    pub(super) async fn open_owned_partitions(&self, topic: &TopicImage, known: usize) {
        let name: Arc<str> = Arc::from(topic.name.as_str());
        for partition in &topic.partitions {
            let key = (name.clone(), partition.index);
            if self.owner_of(topic, partition.index) != self.id
                || !partition.replicas.contains(&self.config.node_id)
                || self.partitions.borrow().contains_key(&key)
            {
                continue;
            }
            let dir_name = format!("{}-{}", topic.name, partition.index);
            let new = partition.index as usize >= known;
            let placed = self
                .log_dirs
                .place(&dir_name, (topic.id, partition.index), new)
                .map_err(|error| error.to_string());
            let claimed = match placed {
                Ok(dir) => claim(dir.path().join(&dir_name), topic.id)
                    .await
                    .map(|recorded| (dir, recorded)),
                Err(error) => Err(error),
            };
            let (dir, recorded) = match claimed {
                Ok(claimed) => claimed,
                Err(error) => {
                    // Said once; every later image tries again quietly.
                    match self.unplaced.borrow_mut().insert(key) {
                        true => tracing::error!("cannot open partition {dir_name}: {error}"),
                        false => tracing::debug!("cannot open partition {dir_name}: {error}"),
                    }
                    continue;
                }
            };
            let path = dir.path().join(&dir_name);
            match Partition::open(
                name.clone(),
                partition.index,
                self.config.node_id,
                dir,
                self.log_config(topic),
                self.clean_start,
            )
            .await
            {
                Ok(opened) => {
                    if !recorded {
                        let id = topic.id;
                        let written =
                            off_reactor(move || partition_metadata::write(&path, id)).await;
                        if let Err(error) = written {
                            tracing::error!("cannot record the topic id of {dir_name}: {error}");
                        }
                    }
                    tracing::info!(
                        "partition {} is on shard {} (log end offset {})",
                        opened.name(),
                        self.id,
                        opened.log_end_offset()
                    );
                    opened.set_min_insync_replicas(self.topic_settings(topic).min_insync_replicas);
                    self.partitions
                        .borrow_mut()
                        .insert(key, (topic.id, Rc::new(opened)));
                }
                Err(error) => tracing::error!(
                    "cannot open partition {}-{}: {error}",
                    topic.name,
                    partition.index
                ),
            }
        }
    }

    /// Removes, once after start-up (on shard 0, before the image's next change reaches any
    /// shard), the partition directories of every online log directory that `image` does not
    /// place on this broker: topics deleted, or replicas moved elsewhere, while it was down.
    /// An image that knows nothing (index 0) removes nothing.
    pub(super) async fn remove_strays(&self, image: &Arc<MetadataImage>) {
        if self.id.0 != 0 || image.metadata_index == 0 {
            return;
        }
        let node_id = self.config.node_id;
        for index in 0..self.log_dirs.len() {
            if self.log_dirs.failure(index).is_some() {
                continue;
            }
            let log_dir = self.log_dirs.path(index).to_path_buf();
            let hosted = image.clone();
            let strays = off_reactor(move || {
                partition_metadata::strays(&log_dir, |topic, partition| {
                    hosted.topic(topic).is_some_and(|topic| {
                        usize::try_from(partition)
                            .ok()
                            .and_then(|partition| topic.partitions.get(partition))
                            .is_some_and(|partition| partition.replicas.contains(&node_id))
                    })
                })
            })
            .await;
            for stray in strays {
                tracing::warn!(
                    "removing {}: the metadata places no such partition on broker {node_id} \
                     (its topic was deleted, or the replica moved, while the broker was down)",
                    stray.display()
                );
                let path = stray.clone();
                if let Err(error) = off_reactor(move || partition_metadata::retire(&path)).await {
                    tracing::error!("cannot remove {}: {error}", stray.display());
                }
            }
        }
    }
}

/// Checks that partition directory `path`, if it exists, belongs to topic `id`; one that
/// records another topic's id is removed (the topic of that name was deleted while this broker
/// was down). Whether the directory already records `id`.
async fn claim(path: PathBuf, id: TopicId) -> Result<bool, String> {
    let at = path.clone();
    let recorded = off_reactor(move || partition_metadata::read(&at))
        .await
        .map_err(|error| error.to_string())?;
    match recorded {
        Some(recorded) if recorded == id => Ok(true),
        None => Ok(false),
        Some(other) => {
            tracing::warn!(
                "removing {}: it holds topic id {} of a deleted topic, not {}",
                path.display(),
                other.to_hex(),
                id.to_hex()
            );
            let at = path.clone();
            off_reactor(move || partition_metadata::retire(&at))
                .await
                .map_err(|error| error.to_string())?;
            Ok(false)
        }
    }
}
