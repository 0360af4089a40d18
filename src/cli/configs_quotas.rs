//! `flink configs` for client quotas, as Kafka's ConfigCommand handles them with
//! `--bootstrap-server`: the quotas of a user, a client id, a user's client id or an IP
//! address (each name may be the default entity). `--alter` checks the keys to delete against
//! what DescribeClientQuotas finds, reads values as Java doubles and sends one AlterClientQuotas
//! entry; `--describe` prints Kafka's `Quota configs for user-principal 'alice' are
//! producer_byte_rate=1048576.0` lines, entities and values in the order Kafka's admin client
//! hands them out. The types given pair with the names by position; a type without a name
//! matches any name, and the filter is strict (Kafka's `ClientQuotaFilter.containsOnly`).

use super::command_line::argument;
use super::{Changes, Command, ConfigsError, EntityType};
use crate::cli::jvm_text::{
    double_to_string, hash_map_order, parse_double, scala_map_order, scala_set_order, string_hash,
};
use crate::client::cluster::Client;
use crate::client::quotas::{
    alter_client_quotas, describe_client_quotas, EntityParts, EntityQuotas,
};
use crate::quota::{Match, CLIENT_ID, CONNECTION_CREATION_RATE, IP, USER};

/// The keys an ip entity takes (Kafka's `DynamicConfig.Ip.names`).
const IP_KEYS: [&str; 1] = [CONNECTION_CREATION_RATE];

/// Kafka's check of the keys added and deleted for ips: connection quotas only. The unexpected
/// names are listed as Kafka's Scala set of them iterates.
pub(super) fn check_ip_keys(changes: &Changes) -> Result<(), ConfigsError> {
    let keys = scala_map_order(changes.keys().map(str::to_string).collect());
    let named = scala_set_order([keys, changes.deletions.clone()].concat());
    let unknown: Vec<String> = named
        .into_iter()
        .filter(|key| !IP_KEYS.contains(&key.as_str()))
        .collect();
    if unknown.is_empty() {
        return Ok(());
    }
    Err(ConfigsError::Argument(format!(
        "Only connection quota configs can be added for 'ips' using --bootstrap-server. Unexpected config names: {}",
        unknown.join(",")
    )))
}

/// `--alter` of quotas: keys to delete must be set on the entity (Kafka looks first and refuses
/// the whole change otherwise), values must read as doubles; then one AlterClientQuotas entry
/// sets the additions and removes the deletions.
pub(super) fn alter(
    client: &mut Client,
    command: &Command,
    changes: &Changes,
) -> Result<(), ConfigsError> {
    let filter = components(command)?;
    let described = describe_client_quotas(client, &filter, true)?;
    let existing: Vec<String> = described
        .into_iter()
        .next()
        .map(|quotas| quotas.values.into_iter().map(|(key, _)| key).collect())
        .unwrap_or_default();
    let invalid: Vec<String> = changes
        .deletions
        .iter()
        .filter(|key| !existing.contains(key))
        .cloned()
        .collect();
    if !invalid.is_empty() {
        return Err(ConfigsError::InvalidConfigs(invalid));
    }
    let mut ops = Vec::new();
    for key in scala_map_order(changes.keys().map(str::to_string).collect()) {
        let value = changes.value(&key).unwrap_or_default();
        let Some(number) = parse_double(value) else {
            return Err(ConfigsError::Argument(format!(
                "Cannot parse quota configuration value for {key}: {value}"
            )));
        };
        ops.push((key, Some(number)));
    }
    ops.extend(changes.deletions.iter().map(|key| (key.clone(), None)));
    alter_client_quotas(client, &entity(command)?, &ops)?;
    Ok(())
}

/// `--describe` of quotas: one line per entity the filter selects.
pub(super) fn describe(client: &mut Client, command: &Command) -> Result<(), ConfigsError> {
    let filter = components(command)?;
    for line in describe_lines(describe_client_quotas(client, &filter, true)?) {
        println!("{line}");
    }
    Ok(())
}

/// The entity an alteration names: each type with the name at its position ("" the default).
fn entity(command: &Command) -> Result<EntityParts, ConfigsError> {
    let mut parts = Vec::new();
    for (entity_type, name) in command.entity_types.iter().zip(&command.entity_names) {
        let name = (!name.is_empty()).then(|| name.clone());
        parts.push((quota_type(*entity_type)?.to_string(), name));
    }
    Ok(parts)
}

/// The filter Kafka builds: each type with the name at its position, the default entity for
/// "", any name where the names ran out.
fn components(command: &Command) -> Result<Vec<(String, Match)>, ConfigsError> {
    if command.entity_names.len() > command.entity_types.len() {
        return Err(argument("More entity names specified than entity types"));
    }
    let mut components = Vec::new();
    for (index, entity_type) in command.entity_types.iter().enumerate() {
        let wanted = match command.entity_names.get(index).map(String::as_str) {
            None => Match::Any,
            Some("") => Match::Default,
            Some(name) => Match::Exact(name.to_string()),
        };
        components.push((quota_type(*entity_type)?.to_string(), wanted));
    }
    Ok(components)
}

/// The quota entity type of a command-line entity type.
fn quota_type(entity_type: EntityType) -> Result<&'static str, ConfigsError> {
    match entity_type {
        EntityType::Users => Ok(USER),
        EntityType::Clients => Ok(CLIENT_ID),
        EntityType::Ips => Ok(IP),
        other => Err(ConfigsError::Argument(format!(
            "Unexpected entity type {}",
            other.plural()
        ))),
    }
}

/// Kafka's lines, entities and values each in the order of the `java.util.HashMap` that Kafka's
/// admin client fills from the response (sized for the entries it holds).
fn describe_lines(described: Vec<EntityQuotas>) -> Vec<String> {
    let count = described.len();
    let hashed = described
        .into_iter()
        .map(|quotas| (entity_hash(&quotas.entity), quotas))
        .collect();
    hash_map_order(hashed, count)
        .iter()
        .map(describe_line)
        .collect()
}

/// `Quota configs for user-principal 'alice', client-id 'app' are producer_byte_rate=1024.0`.
fn describe_line(quotas: &EntityQuotas) -> String {
    let part = |kind: &str, label: &str| -> Option<String> {
        let (_, name) = quotas.entity.iter().find(|(known, _)| known == kind)?;
        Some(match name {
            Some(name) => format!("{label} '{name}'"),
            None => format!("the default {label}"),
        })
    };
    let parts = [
        part(USER, "user-principal"),
        part(CLIENT_ID, "client-id"),
        part(IP, "ip"),
    ];
    let entity: Vec<String> = parts.into_iter().flatten().collect();
    let hashed = quotas
        .values
        .iter()
        .map(|(key, value)| {
            (
                string_hash(key),
                format!("{key}={}", double_to_string(*value)),
            )
        })
        .collect();
    let values = hash_map_order(hashed, quotas.values.len());
    format!(
        "Quota configs for {} are {}",
        entity.join(", "),
        values.join(", ")
    )
}

/// `ClientQuotaEntity.hashCode`: `Objects.hash` of its type-to-name map, whose hash is the sum
/// of `type.hashCode() ^ name.hashCode()` (0 for the default's null name).
fn entity_hash(entity: &EntityParts) -> i32 {
    let map_hash = entity.iter().fold(0i32, |sum, (kind, name)| {
        let name_hash = name.as_deref().map_or(0, string_hash);
        sum.wrapping_add(string_hash(kind) ^ name_hash)
    });
    map_hash.wrapping_add(31)
}

#[cfg(test)]
#[path = "configs_quotas_tests.rs"]
mod tests;
