//! CreateAcls, DescribeAcls and DeleteAcls: the standard authorizer's bindings, kept in the
//! metadata log by the active controller (`controller::acls`) and read from this broker's
//! image. Without `authorizer.class.name` each answers SECURITY_DISABLED, as Kafka does; the
//! caller needs ALTER (create, delete) or DESCRIBE (describe) on the cluster.

use kafka_protocol::messages::create_acls_response::AclCreationResult;
use kafka_protocol::messages::delete_acls_response::{
    DeleteAclsFilterResult, DeleteAclsMatchingAcl,
};
use kafka_protocol::messages::describe_acls_response::{AclDescription, DescribeAclsResource};
use kafka_protocol::messages::{
    CreateAclsRequest, CreateAclsResponse, DeleteAclsRequest, DeleteAclsResponse,
    DescribeAclsRequest, DescribeAclsResponse,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

use super::{ask_controller, str_bytes, topic_error_code, RequestContext};
use crate::controller::{ControllerRequest, TopicError};
use crate::security::acl::{
    AclBinding, AclEntry, AclFilter, Operation, PatternType, Permission, ResourcePattern,
    ResourceType,
};

const NO_AUTHORIZER: &str = "No Authorizer is configured.";

/// Why the whole request is refused before any binding is looked at.
fn refusal(context: &RequestContext, operation: Operation) -> Option<(i16, Option<StrBytes>)> {
    if !context.authorizes() {
        return Some((
            ResponseError::SecurityDisabled.code(),
            Some(str_bytes(NO_AUTHORIZER)),
        ));
    }
    match context.cluster_authorized(operation) {
        true => None,
        false => Some((ResponseError::ClusterAuthorizationFailed.code(), None)),
    }
}

fn error_fields(error: &TopicError) -> (i16, Option<StrBytes>) {
    (topic_error_code(error), Some(str_bytes(&error.to_string())))
}

/// A filter from its wire fields; version 0 knew only literal patterns.
#[allow(clippy::too_many_arguments)]
fn filter(
    resource_type: i8,
    name: &Option<StrBytes>,
    pattern_type: i8,
    principal: &Option<StrBytes>,
    host: &Option<StrBytes>,
    operation: i8,
    permission: i8,
) -> AclFilter {
    AclFilter {
        resource_type: ResourceType::from_code(resource_type),
        name: name.as_ref().map(|name| name.to_string()),
        pattern_type: PatternType::from_code(pattern_type),
        principal: principal.as_ref().map(|principal| principal.to_string()),
        host: host.as_ref().map(|host| host.to_string()),
        operation: Operation::from_code(operation),
        permission: Permission::from_code(permission),
    }
}

pub async fn create(
    context: &RequestContext<'_>,
    request: CreateAclsRequest,
) -> CreateAclsResponse {
    let result = |(code, message): (i16, Option<StrBytes>)| {
        AclCreationResult::default()
            .with_error_code(code)
            .with_error_message(message)
    };
    if let Some(refused) = refusal(context, Operation::Alter) {
        let results = request.creations.iter().map(|_| result(refused.clone()));
        return CreateAclsResponse::default().with_results(results.collect());
    }
    let bindings: Vec<AclBinding> = request
        .creations
        .iter()
        .map(|creation| AclBinding {
            pattern: ResourcePattern {
                resource_type: ResourceType::from_code(creation.resource_type),
                pattern_type: PatternType::from_code(creation.resource_pattern_type),
                name: creation.resource_name.to_string(),
            },
            entry: AclEntry {
                principal: creation.principal.to_string(),
                host: creation.host.to_string(),
                operation: Operation::from_code(creation.operation),
                permission: Permission::from_code(creation.permission_type),
            },
        })
        .collect();
    // Invalid bindings are answered here; the controller sees only the valid ones.
    let checked: Vec<Result<AclBinding, TopicError>> = bindings
        .into_iter()
        .map(|binding| {
            binding
                .validate()
                .map(|()| binding)
                .map_err(|error| TopicError::InvalidRequest(error.to_string()))
        })
        .collect();
    let valid: Vec<AclBinding> = checked.iter().filter_map(|b| b.clone().ok()).collect();
    let mut committed = match valid.is_empty() {
        true => Vec::new(),
        false => {
            let count = valid.len();
            ask_controller(context, |reply| ControllerRequest::CreateAcls {
                bindings: valid,
                reply,
            })
            .await
            .unwrap_or_else(|| {
                vec![Err(TopicError::Timeout("the controller stopped".into())); count]
            })
        }
    }
    .into_iter();
    let results = checked.into_iter().map(|checked| {
        let outcome = checked.and_then(|_| committed.next().unwrap_or(Ok(())));
        match outcome {
            Ok(()) => result((0, None)),
            Err(error) => result(error_fields(&error)),
        }
    });
    CreateAclsResponse::default().with_results(results.collect())
}

pub fn describe(context: &RequestContext, request: DescribeAclsRequest) -> DescribeAclsResponse {
    if let Some((code, message)) = refusal(context, Operation::Describe) {
        return DescribeAclsResponse::default()
            .with_error_code(code)
            .with_error_message(message);
    }
    let filter = filter(
        request.resource_type_filter,
        &request.resource_name_filter,
        request.pattern_type_filter,
        &request.principal_filter,
        &request.host_filter,
        request.operation,
        request.permission_type,
    );
    if let Err(error) = filter.validate() {
        return DescribeAclsResponse::default()
            .with_error_code(ResponseError::InvalidRequest.code())
            .with_error_message(Some(str_bytes(&error.to_string())));
    }
    let image = context.shard.metadata();
    let mut resources: Vec<DescribeAclsResource> = Vec::new();
    for binding in image.acls.matching(&filter) {
        let pattern = &binding.pattern;
        let description = AclDescription::default()
            .with_principal(str_bytes(&binding.entry.principal))
            .with_host(str_bytes(&binding.entry.host))
            .with_operation(binding.entry.operation.code())
            .with_permission_type(binding.entry.permission.code());
        // Bindings come grouped by pattern.
        let same = resources.last().is_some_and(|last| {
            last.resource_type == pattern.resource_type.code()
                && last.pattern_type == pattern.pattern_type.code()
                && last.resource_name.as_str() == pattern.name
        });
        if !same {
            resources.push(
                DescribeAclsResource::default()
                    .with_resource_type(pattern.resource_type.code())
                    .with_resource_name(str_bytes(&pattern.name))
                    .with_pattern_type(pattern.pattern_type.code()),
            );
        }
        if let Some(last) = resources.last_mut() {
            last.acls.push(description);
        }
    }
    DescribeAclsResponse::default().with_resources(resources)
}

pub async fn delete(
    context: &RequestContext<'_>,
    request: DeleteAclsRequest,
) -> DeleteAclsResponse {
    let result = |(code, message): (i16, Option<StrBytes>)| {
        DeleteAclsFilterResult::default()
            .with_error_code(code)
            .with_error_message(message)
    };
    if let Some(refused) = refusal(context, Operation::Alter) {
        let results = request.filters.iter().map(|_| result(refused.clone()));
        return DeleteAclsResponse::default().with_filter_results(results.collect());
    }
    let filters: Vec<AclFilter> = request
        .filters
        .iter()
        .map(|wire| {
            filter(
                wire.resource_type_filter,
                &wire.resource_name_filter,
                wire.pattern_type_filter,
                &wire.principal_filter,
                &wire.host_filter,
                wire.operation,
                wire.permission_type,
            )
        })
        .collect();
    let count = filters.len();
    let outcomes = ask_controller(context, |reply| ControllerRequest::DeleteAcls {
        filters,
        reply,
    })
    .await
    .unwrap_or_else(|| vec![Err(TopicError::Timeout("the controller stopped".into())); count]);
    let results = outcomes.into_iter().map(|outcome| match outcome {
        Ok(deleted) => result((0, None)).with_matching_acls(
            deleted
                .into_iter()
                .map(|binding| {
                    DeleteAclsMatchingAcl::default()
                        .with_resource_type(binding.pattern.resource_type.code())
                        .with_resource_name(str_bytes(&binding.pattern.name))
                        .with_pattern_type(binding.pattern.pattern_type.code())
                        .with_principal(str_bytes(&binding.entry.principal))
                        .with_host(str_bytes(&binding.entry.host))
                        .with_operation(binding.entry.operation.code())
                        .with_permission_type(binding.entry.permission.code())
                })
                .collect(),
        ),
        Err(error) => result(error_fields(&error)),
    });
    DeleteAclsResponse::default().with_filter_results(results.collect())
}
