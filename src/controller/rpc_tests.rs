use super::*;
use crate::metadata::{MetadataImage, PartitionImage};
use crate::security::acl::{
    AclEntry, Operation, PatternType, Permission, ResourcePattern, ResourceType,
};
use proptest::prelude::*;

fn acl_binding() -> AclBinding {
    AclBinding {
        pattern: ResourcePattern {
            resource_type: ResourceType::Group,
            pattern_type: PatternType::Literal,
            name: "g".into(),
        },
        entry: AclEntry {
            principal: "User:bob".into(),
            host: "10.1.1.1".into(),
            operation: Operation::Read,
            permission: Permission::Allow,
        },
    }
}

proptest! {
    /// Proves any bytes at all decode to a value or an error (never a panic), as calls,
    /// replies and request headers, whatever a peer on the CONTROLLER listener sends.
    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        let _ = decode::<Call>(&bytes);
        let _ = decode::<(u64, Reply)>(&bytes);
        let _ = decode::<MetadataImage>(&bytes);
        let _ = parse_request(&bytes);
    }

    /// Proves a valid call with bytes flipped still decodes or fails cleanly.
    #[test]
    fn corrupted_calls_never_panic(flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..8)) {
        let mut bytes = encode(&Call::RegisterBroker {
            broker_id: 4,
            cluster_id: "abc".into(),
            incarnation: "i".into(),
            endpoints: vec![Listener { name: "PLAINTEXT".into(), host: "h".into(), port: 1 }],
        });
        for (at, value) in flips {
            let at = at % bytes.len();
            bytes[at] ^= value;
        }
        let _ = decode::<Call>(&bytes);
    }
}

/// Proves calls and replies survive their binary form, and every cut or garbled frame is an
/// error rather than a panic or a huge allocation.
#[test]
fn round_trips_and_refuses_garbage() {
    let calls = vec![
        Call::CreateTopics {
            topics: vec![NewTopic {
                name: "t".into(),
                partitions: 3,
                replication_factor: -1,
                configs: BTreeMap::from([("retention.ms".into(), "5".into())]),
                assignments: Some(vec![vec![4, 5]]),
            }],
            validate_only: true,
        },
        Call::AlterConfigs {
            alterations: vec![ConfigAlteration {
                resource: ConfigResource::Broker(String::new()),
                replace: false,
                ops: vec![
                    ConfigOp::Set("a".into(), "b".into()),
                    ConfigOp::Delete("c".into()),
                ],
            }],
            validate_only: false,
        },
        Call::RegisterBroker {
            broker_id: 4,
            cluster_id: "abc".into(),
            incarnation: "i".into(),
            endpoints: vec![Listener {
                name: "PLAINTEXT".into(),
                host: "broker-1".into(),
                port: 19092,
            }],
        },
        Call::FetchMetadata {
            broker_id: 4,
            from_index: 9,
            wait_ms: 500,
        },
        Call::BrokerHeartbeat {
            broker_id: 4,
            epoch: 7,
            metadata_index: 12,
            offline_replicas: vec![(TopicId([3; 16]), 1)],
            want_fence: true,
        },
        Call::CreateAcls {
            bindings: vec![acl_binding()],
        },
        Call::DeleteAcls {
            filters: vec![AclFilter {
                resource_type: ResourceType::Any,
                name: Some("t".into()),
                pattern_type: PatternType::Match,
                principal: None,
                host: Some("*".into()),
                operation: Operation::Any,
                permission: Permission::Deny,
            }],
        },
    ];
    for call in &calls {
        let bytes = encode(call);
        assert_eq!(&decode::<Call>(&bytes).unwrap(), call);
        for cut in 0..bytes.len() {
            assert!(decode::<Call>(&bytes[..cut]).is_err(), "cut at {cut}");
        }
    }
    let reply = Reply::Topics(vec![
        Err(TopicError::NotController(2)),
        Ok(TopicImage {
            name: "t".into(),
            id: TopicId([3; 16]),
            partitions: vec![PartitionImage {
                index: 0,
                leader: 4,
                leader_epoch: 1,
                partition_epoch: 2,
                replicas: vec![4, 5],
                isr: vec![4],
            }],
            configs: BTreeMap::new(),
        }),
    ]);
    assert_eq!(decode::<Reply>(&encode(&reply)).unwrap(), reply);
    let reply = Reply::AclsDeleted(vec![
        Ok(vec![acl_binding()]),
        Err(TopicError::NotController(1)),
    ]);
    assert_eq!(decode::<Reply>(&encode(&reply)).unwrap(), reply);
    // A count of four billion items in five bytes is refused before anything is reserved.
    assert!(decode::<Call>(&[1, 0xff, 0xff, 0xff, 0xff]).is_err());
    let frame = request_frame(CONTROLLER_CALL, 7, "cluster", &[1, 2]);
    let (header, body) = parse_request(&frame[4..]).unwrap();
    assert_eq!(
        (
            header.api_key,
            header.correlation_id,
            header.cluster_id.as_str(),
            body
        ),
        (CONTROLLER_CALL, 7, "cluster", &[1u8, 2][..])
    );
}
