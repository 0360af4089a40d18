//! The ACL calls of the acls tool: CreateAcls, DescribeAcls and DeleteAcls, sent to any broker
//! as Kafka's admin client sends them (the broker has the active controller commit changes).
//! Bindings and filters are `security::acl`'s. A refusal becomes the client's `KafkaError` with
//! the broker's message, or Kafka's text for the code when it sent none; a broker without an
//! authorizer answers SECURITY_DISABLED, which reads "No Authorizer is configured." as Kafka's
//! brokers word it.

use kafka_protocol::messages::create_acls_request::AclCreation;
use kafka_protocol::messages::delete_acls_request::DeleteAclsFilter;
use kafka_protocol::messages::{ApiKey, CreateAclsRequest, DeleteAclsRequest, DescribeAclsRequest};
use kafka_protocol::protocol::StrBytes;

use super::cluster::Client;
use super::error::{ClientError, KafkaError};
use crate::security::acl::{
    AclBinding, AclEntry, AclFilter, Operation, PatternType, Permission, ResourcePattern,
    ResourceType,
};

/// SECURITY_DISABLED, and what Kafka's brokers say with it for the ACL APIs.
const SECURITY_DISABLED: i16 = 54;
const NO_AUTHORIZER: &str = "No Authorizer is configured.";

/// Sets the filter fields DescribeAcls and DeleteAcls share (two wire types of one shape).
macro_rules! with_filter {
    ($wire:expr, $filter:expr) => {
        $wire
            .with_resource_type_filter($filter.resource_type.code())
            .with_resource_name_filter($filter.name.as_deref().map(text))
            .with_pattern_type_filter($filter.pattern_type.code())
            .with_principal_filter($filter.principal.as_deref().map(text))
            .with_host_filter($filter.host.as_deref().map(text))
            .with_operation($filter.operation.code())
            .with_permission_type($filter.permission.code())
    };
}

/// Creates `bindings` (an existing one is created again without error). Fails with the first
/// binding the broker refused, as Kafka's `CreateAclsResult.all()` does.
pub fn create_acls(client: &mut Client, bindings: &[AclBinding]) -> Result<(), ClientError> {
    let creations = bindings
        .iter()
        .map(|binding| {
            AclCreation::default()
                .with_resource_type(binding.pattern.resource_type.code())
                .with_resource_name(text(&binding.pattern.name))
                .with_resource_pattern_type(binding.pattern.pattern_type.code())
                .with_principal(text(&binding.entry.principal))
                .with_host(text(&binding.entry.host))
                .with_operation(binding.entry.operation.code())
                .with_permission_type(binding.entry.permission.code())
        })
        .collect();
    let request = CreateAclsRequest::default().with_creations(creations);
    let response = client.send_any(ApiKey::CreateAcls, &request)?;
    for result in response.results {
        if let Some(error) = acl_error(result.error_code, result.error_message.as_ref()) {
            return Err(error.into());
        }
    }
    Ok(())
}

/// The bindings `filter` matches, grouped by resource pattern as the broker sends them.
pub fn describe_acls(
    client: &mut Client,
    filter: &AclFilter,
) -> Result<Vec<AclBinding>, ClientError> {
    let request = with_filter!(DescribeAclsRequest::default(), filter);
    let response = client.send_any(ApiKey::DescribeAcls, &request)?;
    if let Some(error) = acl_error(response.error_code, response.error_message.as_ref()) {
        return Err(error.into());
    }
    let mut bindings = Vec::new();
    for resource in response.resources {
        let pattern = ResourcePattern {
            resource_type: ResourceType::from_code(resource.resource_type),
            pattern_type: PatternType::from_code(resource.pattern_type),
            name: resource.resource_name.to_string(),
        };
        bindings.extend(resource.acls.into_iter().map(|acl| AclBinding {
            pattern: pattern.clone(),
            entry: AclEntry {
                principal: acl.principal.to_string(),
                host: acl.host.to_string(),
                operation: Operation::from_code(acl.operation),
                permission: Permission::from_code(acl.permission_type),
            },
        }));
    }
    Ok(bindings)
}

/// Deletes what each of `filters` matches and returns the deleted bindings. Fails with the first
/// filter, or deleted binding, the broker reports an error for, as Kafka's
/// `DeleteAclsResult.all()` does.
pub fn delete_acls(
    client: &mut Client,
    filters: &[AclFilter],
) -> Result<Vec<AclBinding>, ClientError> {
    let wire_filters = filters
        .iter()
        .map(|filter| with_filter!(DeleteAclsFilter::default(), filter))
        .collect();
    let request = DeleteAclsRequest::default().with_filters(wire_filters);
    let response = client.send_any(ApiKey::DeleteAcls, &request)?;
    let mut deleted = Vec::new();
    for result in response.filter_results {
        if let Some(error) = acl_error(result.error_code, result.error_message.as_ref()) {
            return Err(error.into());
        }
        for matching in result.matching_acls {
            if let Some(error) = acl_error(matching.error_code, matching.error_message.as_ref()) {
                return Err(error.into());
            }
            deleted.push(AclBinding {
                pattern: ResourcePattern {
                    resource_type: ResourceType::from_code(matching.resource_type),
                    pattern_type: PatternType::from_code(matching.pattern_type),
                    name: matching.resource_name.to_string(),
                },
                entry: AclEntry {
                    principal: matching.principal.to_string(),
                    host: matching.host.to_string(),
                    operation: Operation::from_code(matching.operation),
                    permission: Permission::from_code(matching.permission_type),
                },
            });
        }
    }
    Ok(deleted)
}

/// The error for a result's code and message; a SECURITY_DISABLED without a message gets the
/// sentence Kafka's brokers send with it.
fn acl_error(code: i16, message: Option<&StrBytes>) -> Option<KafkaError> {
    let message = message
        .map(StrBytes::as_str)
        .filter(|text| !text.is_empty());
    match (code, message) {
        (SECURITY_DISABLED, None) => KafkaError::with_message(code, Some(NO_AUTHORIZER)),
        _ => KafkaError::with_message(code, message),
    }
}

fn text(value: &str) -> StrBytes {
    StrBytes::from_string(value.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn security_disabled_reads_as_kafka_brokers_word_it() {
        // With or without the broker's message, the tool prints Kafka's sentence.
        let bare = acl_error(SECURITY_DISABLED, None).expect("an error");
        assert_eq!(bare.message(), NO_AUTHORIZER);
        let sent = StrBytes::from_static_str("No Authorizer is configured.");
        let worded = acl_error(SECURITY_DISABLED, Some(&sent)).expect("an error");
        assert_eq!(worded.message(), NO_AUTHORIZER);
        let denied = acl_error(31, None).expect("an error");
        assert_eq!(denied.message(), "Cluster authorization failed.");
        assert!(acl_error(0, None).is_none());
    }
}
