//! The client quota calls of the configs tool: DescribeClientQuotas and AlterClientQuotas
//! (KIP-546), sent to any broker as Kafka's admin client sends them (the broker has the active
//! controller commit alterations). An entity is its (type, name) parts, a `None` name being the
//! type's default entity; filters are `quota::Match`es. A refusal becomes the client's
//! `KafkaError` with the broker's message.

use kafka_protocol::messages::alter_client_quotas_request::{EntityData, EntryData, OpData};
use kafka_protocol::messages::describe_client_quotas_request::ComponentData;
use kafka_protocol::messages::{AlterClientQuotasRequest, ApiKey, DescribeClientQuotasRequest};
use kafka_protocol::protocol::StrBytes;

use super::cluster::Client;
use super::error::{ClientError, KafkaError};
use crate::quota::Match;

/// An entity's (type, name) parts; a `None` name is the type's default entity.
pub type EntityParts = Vec<(String, Option<String>)>;

/// One entity's quotas as DescribeClientQuotas lists them, in the broker's order.
#[derive(Debug, Clone, PartialEq)]
pub struct EntityQuotas {
    pub entity: EntityParts,
    pub values: Vec<(String, f64)>,
}

/// The wire's match types.
const MATCH_EXACT: i8 = 0;
const MATCH_DEFAULT: i8 = 1;
const MATCH_ANY: i8 = 2;

/// The entities `components` select, with their quotas; `strict` leaves out entities that
/// have types the filter does not name (Kafka's `ClientQuotaFilter.containsOnly`).
pub fn describe_client_quotas(
    client: &mut Client,
    components: &[(String, Match)],
    strict: bool,
) -> Result<Vec<EntityQuotas>, ClientError> {
    let wire = components
        .iter()
        .map(|(entity_type, wanted)| {
            let (match_type, name) = match wanted {
                Match::Exact(name) => (MATCH_EXACT, Some(text(name))),
                Match::Default => (MATCH_DEFAULT, None),
                Match::Any => (MATCH_ANY, None),
            };
            ComponentData::default()
                .with_entity_type(text(entity_type))
                .with_match_type(match_type)
                .with_match(name)
        })
        .collect();
    let request = DescribeClientQuotasRequest::default()
        .with_components(wire)
        .with_strict(strict);
    let response = client.send_any(ApiKey::DescribeClientQuotas, &request)?;
    let message = response.error_message.as_ref().map(StrBytes::as_str);
    if let Some(error) = KafkaError::with_message(response.error_code, message) {
        return Err(error.into());
    }
    let entries = response.entries.unwrap_or_default();
    Ok(entries
        .into_iter()
        .map(|entry| EntityQuotas {
            entity: entry
                .entity
                .iter()
                .map(|part| {
                    let name = part.entity_name.as_ref().map(|name| name.to_string());
                    (part.entity_type.to_string(), name)
                })
                .collect(),
            values: entry
                .values
                .iter()
                .map(|value| (value.key.to_string(), value.value))
                .collect(),
        })
        .collect())
}

/// Sets (`Some`) and removes (`None`) quotas of one entity in one request, which the broker
/// applies all or none.
pub fn alter_client_quotas(
    client: &mut Client,
    entity: &[(String, Option<String>)],
    ops: &[(String, Option<f64>)],
) -> Result<(), ClientError> {
    let entry = EntryData::default()
        .with_entity(
            entity
                .iter()
                .map(|(entity_type, name)| {
                    EntityData::default()
                        .with_entity_type(text(entity_type))
                        .with_entity_name(name.as_deref().map(text))
                })
                .collect(),
        )
        .with_ops(
            ops.iter()
                .map(|(key, value)| {
                    OpData::default()
                        .with_key(text(key))
                        .with_value(value.unwrap_or(0.0))
                        .with_remove(value.is_none())
                })
                .collect(),
        );
    let request = AlterClientQuotasRequest::default().with_entries(vec![entry]);
    let response = client.send_any(ApiKey::AlterClientQuotas, &request)?;
    for entry in response.entries {
        let message = entry.error_message.as_ref().map(StrBytes::as_str);
        if let Some(error) = KafkaError::with_message(entry.error_code, message) {
            return Err(error.into());
        }
    }
    Ok(())
}

fn text(value: &str) -> StrBytes {
    StrBytes::from_string(value.to_string())
}
