//! DescribeClientQuotas and AlterClientQuotas (KIP-546): the quotas of user, client-id and ip
//! entities, kept in the metadata log by the active controller (`controller::quotas`) and read
//! from this broker's image. Describing needs DESCRIBE_CONFIGS on the cluster, altering
//! ALTER_CONFIGS, as in Kafka.

use kafka_protocol::messages::{
    alter_client_quotas_response, describe_client_quotas_response, AlterClientQuotasRequest,
    AlterClientQuotasResponse, DescribeClientQuotasRequest, DescribeClientQuotasResponse,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

use super::{ask_controller, str_bytes, topic_error_code, RequestContext};
use crate::controller::{ControllerRequest, QuotaAlteration, TopicError};
use crate::quota::{Match, QuotaEntity, QuotaError};
use crate::security::acl::Operation;

pub fn describe(
    context: &RequestContext,
    request: DescribeClientQuotasRequest,
) -> DescribeClientQuotasResponse {
    let refuse = |code: i16, message: String| {
        DescribeClientQuotasResponse::default()
            .with_error_code(code)
            .with_error_message(Some(str_bytes(&message)))
            .with_entries(None)
    };
    if !context.cluster_authorized(Operation::DescribeConfigs) {
        let code = ResponseError::ClusterAuthorizationFailed.code();
        return refuse(code, "Cluster authorization failed.".into());
    }
    let components: Result<Vec<(String, Match)>, QuotaError> = request
        .components
        .iter()
        .map(|component| {
            let name = component._match.as_ref().map(|name| name.as_str());
            Ok((
                component.entity_type.to_string(),
                Match::from_wire(component.match_type, name)?,
            ))
        })
        .collect();
    let components = match components {
        Ok(components) => components,
        Err(error) => return refuse(ResponseError::InvalidRequest.code(), error.to_string()),
    };
    for (index, (kind, _)) in components.iter().enumerate() {
        if components[..index].iter().any(|(other, _)| other == kind) {
            let message = QuotaError::DuplicateType(kind.clone()).to_string();
            return refuse(ResponseError::InvalidRequest.code(), message);
        }
    }
    let image = context.shard.metadata();
    let entries = image
        .client_quotas
        .matching(&components, request.strict)
        .map(|(entity, values)| {
            describe_client_quotas_response::EntryData::default()
                .with_entity(
                    entity
                        .parts()
                        .iter()
                        .map(|(kind, name)| {
                            describe_client_quotas_response::EntityData::default()
                                .with_entity_type(str_bytes(kind))
                                .with_entity_name(name.as_deref().map(str_bytes))
                        })
                        .collect(),
                )
                .with_values(
                    values
                        .iter()
                        .map(|(key, value)| {
                            describe_client_quotas_response::ValueData::default()
                                .with_key(str_bytes(key))
                                .with_value(*value)
                        })
                        .collect(),
                )
        })
        .collect();
    DescribeClientQuotasResponse::default().with_entries(Some(entries))
}

pub async fn alter(
    context: &RequestContext<'_>,
    request: AlterClientQuotasRequest,
) -> AlterClientQuotasResponse {
    let authorized = context.cluster_authorized(Operation::AlterConfigs);
    // Each entry's alteration, or why it is refused here.
    let checked: Vec<Result<QuotaAlteration, TopicError>> = request
        .entries
        .iter()
        .map(|entry| {
            if !authorized {
                return Err(TopicError::ClusterAuthorizationFailed);
            }
            let parts = entry
                .entity
                .iter()
                .map(|part| {
                    let name = part.entity_name.as_ref().map(|name| name.to_string());
                    (part.entity_type.to_string(), name)
                })
                .collect();
            let entity = QuotaEntity::new(parts)
                .map_err(|error| TopicError::InvalidRequest(error.to_string()))?;
            let ops = entry
                .ops
                .iter()
                .map(|op| (op.key.to_string(), (!op.remove).then_some(op.value)))
                .collect();
            Ok(QuotaAlteration { entity, ops })
        })
        .collect();
    let valid: Vec<QuotaAlteration> = checked.iter().filter_map(|c| c.clone().ok()).collect();
    let count = valid.len();
    let mut answers = match count {
        0 => Vec::new(),
        _ => {
            let validate_only = request.validate_only;
            ask_controller(context, |reply| ControllerRequest::AlterClientQuotas {
                alterations: valid,
                validate_only,
                reply,
            })
            .await
            .unwrap_or_else(|| {
                vec![Err(TopicError::Timeout("the controller stopped".into())); count]
            })
        }
    }
    .into_iter();
    let entries = request
        .entries
        .iter()
        .zip(checked)
        .map(|(entry, checked)| {
            let outcome = checked.and_then(|_| answers.next().unwrap_or(Ok(())));
            let (code, message): (i16, Option<StrBytes>) = match outcome {
                Ok(()) => (0, None),
                Err(error) => (
                    topic_error_code(&error),
                    Some(str_bytes(&error.to_string())),
                ),
            };
            alter_client_quotas_response::EntryData::default()
                .with_error_code(code)
                .with_error_message(message)
                .with_entity(
                    entry
                        .entity
                        .iter()
                        .map(|part| {
                            alter_client_quotas_response::EntityData::default()
                                .with_entity_type(part.entity_type.clone())
                                .with_entity_name(part.entity_name.clone())
                        })
                        .collect(),
                )
        })
        .collect();
    AlterClientQuotasResponse::default().with_entries(entries)
}
