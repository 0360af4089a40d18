//! The authorized-operations bitfields (KIP-430) that Metadata, DescribeCluster, DescribeGroups
//! and ConsumerGroupDescribe return when asked: bit `n` set for Kafka's `AclOperation` code `n`.
//! With no authorizer configured, Kafka answers every operation the resource type supports; with
//! one, the operations the principal may do on the resource.

use crate::security::acl::{Operation, ResourceType};

/// What the field holds when the request did not ask for it (Kafka's schema default).
pub const NOT_REQUESTED: i32 = i32::MIN;

/// The resource types these APIs describe.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Resource {
    Topic,
    Group,
    Cluster,
}

impl Resource {
    /// Kafka's `AclEntry.supportedOperations`: READ 3, WRITE 4, CREATE 5, DELETE 6, ALTER 7,
    /// DESCRIBE 8, CLUSTER_ACTION 9, DESCRIBE_CONFIGS 10, ALTER_CONFIGS 11, IDEMPOTENT_WRITE 12.
    fn supported_operations(self) -> &'static [u32] {
        match self {
            Resource::Topic => &[3, 4, 5, 6, 7, 8, 10, 11],
            Resource::Group => &[3, 6, 8],
            Resource::Cluster => &[5, 7, 8, 9, 10, 11, 12],
        }
    }
}

/// The bitfield for the resource `name` of type `resource` as this request's principal may use
/// it, or `NOT_REQUESTED` when the request did not ask.
pub fn bitfield_for(
    context: &super::RequestContext,
    resource: Resource,
    name: &str,
    requested: bool,
) -> i32 {
    if !requested || !context.authorizes() {
        return bitfield(resource, requested);
    }
    let resource_type = match resource {
        Resource::Topic => ResourceType::Topic,
        Resource::Group => ResourceType::Group,
        Resource::Cluster => ResourceType::Cluster,
    };
    resource
        .supported_operations()
        .iter()
        .filter(|code| context.authorized(Operation::from_code(**code as i8), resource_type, name))
        .fold(0, |bits, operation| bits | (1 << operation))
}

/// The bitfield for `resource` without an authorizer, or `NOT_REQUESTED` when the request did
/// not ask.
pub fn bitfield(resource: Resource, requested: bool) -> i32 {
    match requested {
        true => resource
            .supported_operations()
            .iter()
            .fold(0, |bits, operation| bits | (1 << operation)),
        false => NOT_REQUESTED,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Proves the bitfields match what a Kafka broker without an authorizer returns.
    #[test]
    fn matches_kafka_without_an_authorizer() {
        assert_eq!(bitfield(Resource::Topic, true), 3576);
        assert_eq!(bitfield(Resource::Group, true), 328);
        assert_eq!(bitfield(Resource::Cluster, true), 8096);
        assert_eq!(bitfield(Resource::Topic, false), i32::MIN);
    }
}
