//! The binary form of the metadata image (`Wire`): what FetchMetadata answers carry and what
//! snapshots of the metadata log hold.

use std::collections::BTreeMap;

use super::rpc::{Reader, Wire};
use crate::metadata::{BrokerImage, MetadataImage, PartitionImage, TopicId, TopicImage};

impl Wire for PartitionImage {
    fn put(&self, out: &mut Vec<u8>) {
        self.index.put(out);
        self.leader.put(out);
        self.leader_epoch.put(out);
        self.partition_epoch.put(out);
        self.replicas.put(out);
        self.isr.put(out);
    }
    fn get(reader: &mut Reader) -> Result<Self, String> {
        Ok(PartitionImage {
            index: i32::get(reader)?,
            leader: i32::get(reader)?,
            leader_epoch: i32::get(reader)?,
            partition_epoch: i32::get(reader)?,
            replicas: Vec::get(reader)?,
            isr: Vec::get(reader)?,
        })
    }
}

impl Wire for TopicImage {
    fn put(&self, out: &mut Vec<u8>) {
        self.name.put(out);
        self.id.put(out);
        self.configs.put(out);
        self.partitions.put(out);
    }
    fn get(reader: &mut Reader) -> Result<Self, String> {
        Ok(TopicImage {
            name: String::get(reader)?,
            id: TopicId::get(reader)?,
            configs: <BTreeMap<String, String> as Wire>::get(reader)?,
            partitions: Vec::get(reader)?,
        })
    }
}

impl Wire for BrokerImage {
    fn put(&self, out: &mut Vec<u8>) {
        self.node_id.put(out);
        self.endpoints.put(out);
        self.epoch.put(out);
        self.fenced.put(out);
    }
    fn get(reader: &mut Reader) -> Result<Self, String> {
        Ok(BrokerImage {
            node_id: i32::get(reader)?,
            endpoints: Vec::get(reader)?,
            epoch: i64::get(reader)?,
            fenced: bool::get(reader)?,
        })
    }
}

/// A snapshot's data: the whole image but the fields each node sets itself (cluster id,
/// controller id).
impl Wire for MetadataImage {
    fn put(&self, out: &mut Vec<u8>) {
        self.epoch.put(out);
        self.metadata_index.put(out);
        self.next_producer_id.put(out);
        self.brokers.put(out);
        let topics: Vec<TopicImage> = self
            .topics
            .values()
            .map(|topic| (**topic).clone())
            .collect();
        topics.put(out);
        let broker_configs: Vec<(String, BTreeMap<String, String>)> = self
            .broker_configs
            .iter()
            .map(|(broker, configs)| (broker.clone(), configs.clone()))
            .collect();
        broker_configs.put(out);
        // Last, so that snapshots written before it existed still read.
        let offline: Vec<(i32, Vec<(TopicId, i32)>)> = self
            .offline_replicas
            .iter()
            .map(|(broker, replicas)| (*broker, replicas.iter().copied().collect()))
            .collect();
        offline.put(out);
        // After the offline replicas, for the same reason.
        let users: Vec<(String, BTreeMap<String, String>)> = self
            .user_configs
            .iter()
            .map(|(user, configs)| (user.clone(), configs.clone()))
            .collect();
        users.put(out);
        // After the users, for the same reason.
        let acls: Vec<crate::security::acl::AclBinding> = self.acls.iter().collect();
        acls.put(out);
        // After the ACLs, for the same reason.
        let quotas: Vec<(crate::quota::QuotaEntity, Vec<(String, f64)>)> = self
            .client_quotas
            .iter()
            .map(|(entity, values)| {
                let values = values.iter().map(|(k, v)| (k.clone(), *v)).collect();
                (entity.clone(), values)
            })
            .collect();
        quotas.put(out);
    }
    fn get(reader: &mut Reader) -> Result<Self, String> {
        let mut image = MetadataImage {
            epoch: u64::get(reader)?,
            metadata_index: u64::get(reader)?,
            next_producer_id: i64::get(reader)?,
            brokers: Vec::get(reader)?,
            ..MetadataImage::default()
        };
        for topic in Vec::<TopicImage>::get(reader)? {
            image.topic_names.insert(topic.id, topic.name.clone());
            image
                .topics
                .insert(topic.name.clone(), std::sync::Arc::new(topic));
        }
        image.broker_configs = Vec::<(String, BTreeMap<String, String>)>::get(reader)?
            .into_iter()
            .collect();
        if !reader.is_empty() {
            image.offline_replicas = Vec::<(i32, Vec<(TopicId, i32)>)>::get(reader)?
                .into_iter()
                .map(|(broker, replicas)| (broker, replicas.into_iter().collect()))
                .collect();
        }
        if !reader.is_empty() {
            image.user_configs = Vec::<(String, BTreeMap<String, String>)>::get(reader)?
                .into_iter()
                .collect();
        }
        if !reader.is_empty() {
            for binding in Vec::<crate::security::acl::AclBinding>::get(reader)? {
                image.acls.insert(binding);
            }
        }
        if !reader.is_empty() {
            type Quotas = Vec<(crate::quota::QuotaEntity, Vec<(String, f64)>)>;
            for (entity, values) in Quotas::get(reader)? {
                for (key, value) in values {
                    image.client_quotas.set(&entity, &key, Some(value));
                }
            }
        }
        Ok(image)
    }
}

#[cfg(test)]
mod tests {
    use super::super::rpc::{decode, encode};
    use super::*;

    /// Proves the offline replicas, the user configs and the ACLs survive the binary form, and
    /// that an image written before they were part of it (nothing after the broker configs, the
    /// offline replicas or the users) still reads, with none.
    #[test]
    fn offline_replicas_round_trip_and_older_images_read() {
        let mut image = MetadataImage {
            metadata_index: 7,
            ..MetadataImage::default()
        };
        image
            .offline_replicas
            .insert(4, [(TopicId([2; 16]), 3)].into_iter().collect());
        image.user_configs.insert(
            "alice".into(),
            BTreeMap::from([("SCRAM-SHA-256".into(), "salt=AA==,iterations=4096".into())]),
        );
        use crate::security::acl::*;
        image.acls.insert(AclBinding {
            pattern: ResourcePattern {
                resource_type: ResourceType::Topic,
                pattern_type: PatternType::Prefixed,
                name: "orders-".into(),
            },
            entry: AclEntry {
                principal: "User:alice".into(),
                host: WILDCARD.into(),
                operation: Operation::Write,
                permission: Permission::Allow,
            },
        });
        let bytes = encode(&image);
        let read: MetadataImage = decode(&bytes).expect("decodes");
        assert_eq!(read.offline_replicas, image.offline_replicas);
        assert_eq!(read.user_configs, image.user_configs);
        assert_eq!(read.acls, image.acls);

        let empty = encode(&Vec::<(i32, Vec<(TopicId, i32)>)>::new());
        let without = encode(&MetadataImage {
            metadata_index: 7,
            ..MetadataImage::default()
        });
        for trailing in [1, 2, 3, 4] {
            let older = &without[..without.len() - trailing * empty.len()];
            let read: MetadataImage = decode(older).expect("an older image decodes");
            assert_eq!(read.metadata_index, 7);
            assert!(read.offline_replicas.is_empty() && read.user_configs.is_empty());
            assert!(read.acls.is_empty());
        }
    }
}
