//! The access checks of the APIs, as Kafka's request handlers make them: each asks whether
//! the connection's principal, from the client's host, may do an operation on a resource
//! (`security::acl`). Without `authorizer.class.name` every check passes at the cost of one
//! branch.

use std::collections::HashMap;

use crate::partition::PartitionError;
use crate::runtime::mesh::ShardRequest;
use crate::security::acl::{Acls, Authorizer, Operation, Requester, ResourceType, CLUSTER_NAME};

use super::{scatter_partitions, RequestContext};

/// `scatter_partitions` for the partitions of topics the principal may do `operation` on; the
/// others are answered TOPIC_AUTHORIZATION_FAILED without leaving this shard.
pub async fn scatter_authorized<P, R>(
    context: &RequestContext<'_>,
    operation: Operation,
    requested: Vec<(&str, i32, P)>,
    build: impl Fn(Vec<P>, flume::Sender<Vec<Result<R, PartitionError>>>) -> ShardRequest,
) -> Vec<Result<R, PartitionError>> {
    if !context.authorizes() {
        return scatter_partitions(context, requested, build).await;
    }
    let mut allowed: HashMap<&str, bool> = HashMap::new();
    let mut denied = Vec::with_capacity(requested.len());
    let mut kept = Vec::with_capacity(requested.len());
    for (topic, partition, part) in requested {
        let permitted = *allowed
            .entry(topic)
            .or_insert_with(|| context.topic_authorized(operation, topic));
        denied.push(!permitted);
        if permitted {
            kept.push((topic, partition, part));
        }
    }
    let mut answers = scatter_partitions(context, kept, build).await.into_iter();
    denied
        .into_iter()
        .map(|denied| match denied {
            true => Err(PartitionError::TopicAuthorizationFailed),
            false => answers
                .next()
                .unwrap_or_else(|| Err(PartitionError::NotHosted("unanswered".into()))),
        })
        .collect()
}

impl RequestContext<'_> {
    /// Whether the standard authorizer is on.
    pub fn authorizes(&self) -> bool {
        self.shard.config.authorizer.is_some()
    }

    /// Whether this request's principal may do `operation` on `name` of `resource_type`.
    pub fn authorized(
        &self,
        operation: Operation,
        resource_type: ResourceType,
        name: &str,
    ) -> bool {
        self.decide(|authorizer, acls, requester| {
            let allowed = authorizer.authorize(acls, requester, operation, resource_type, name);
            if !allowed {
                tracing::debug!(
                    "principal {} from {} is denied {operation} on {resource_type}:{name}",
                    requester.principal,
                    requester.host
                );
            }
            allowed
        })
    }

    /// Asks `decide` with the authorizer, the ACLs of this shard's image and who is asking;
    /// true without an authorizer.
    fn decide(&self, decide: impl FnOnce(&Authorizer, &Acls, &Requester) -> bool) -> bool {
        let Some(authorizer) = &self.shard.config.authorizer else {
            return true;
        };
        let principal = self.connection.principal();
        let requester = Requester {
            principal: &principal,
            host: self.connection.client_address(),
        };
        decide(authorizer, &self.shard.metadata().acls, &requester)
    }

    /// Whether this request's principal may do `operation` on the cluster.
    pub fn cluster_authorized(&self, operation: Operation) -> bool {
        self.authorized(operation, ResourceType::Cluster, CLUSTER_NAME)
    }

    pub fn topic_authorized(&self, operation: Operation, topic: &str) -> bool {
        self.authorized(operation, ResourceType::Topic, topic)
    }

    pub fn group_authorized(&self, operation: Operation, group: &str) -> bool {
        self.authorized(operation, ResourceType::Group, group)
    }

    pub fn transactional_id_authorized(&self, operation: Operation, id: &str) -> bool {
        self.authorized(operation, ResourceType::TransactionalId, id)
    }

    /// Whether this request's principal may do `operation` on some resource of
    /// `resource_type` (Kafka's `authorizeByResourceType`).
    pub fn authorized_for_any(&self, operation: Operation, resource_type: ResourceType) -> bool {
        self.decide(|authorizer, acls, requester| {
            authorizer.authorize_any(acls, requester, operation, resource_type)
        })
    }
}
