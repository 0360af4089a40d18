//! IncrementalAlterConfigs' operations on a resource's overrides (`Controller::config_record`).

use std::collections::BTreeMap;

use super::{ConfigOp, TopicError};
use crate::metadata::configs;

/// Applies one IncrementalAlterConfigs operation to a resource's overrides. APPEND and SUBTRACT
/// work on list values only, and start from the config's default when it has no override, as
/// in Kafka (APPEND `compact` to an unset `cleanup.policy` gives `delete,compact`).
pub(super) fn apply_config_op(
    configs: &mut BTreeMap<String, String>,
    op: &ConfigOp,
) -> Result<(), TopicError> {
    let list_only = |key: &str, verb: &str| match configs::is_list(key) {
        true => Ok(()),
        false => Err(TopicError::InvalidRequest(format!(
            "Config value {verb} is not allowed for config key: {key}"
        ))),
    };
    match op {
        ConfigOp::Set(key, value) => {
            configs.insert(key.clone(), value.clone());
        }
        ConfigOp::Delete(key) => {
            configs.remove(key);
        }
        ConfigOp::Append(key, value) => {
            list_only(key, "append")?;
            let entry = configs
                .entry(key.clone())
                .or_insert_with(|| configs::list_default(key).to_string());
            let mut items: Vec<String> = split_items(entry);
            for item in split_items(value) {
                if !items.contains(&item) {
                    items.push(item);
                }
            }
            *entry = items.join(",");
        }
        ConfigOp::Subtract(key, value) => {
            list_only(key, "subtract")?;
            let removed = split_items(value);
            let entry = configs
                .entry(key.clone())
                .or_insert_with(|| configs::list_default(key).to_string());
            let items: Vec<String> = split_items(entry)
                .into_iter()
                .filter(|item| !removed.contains(item))
                .collect();
            *entry = items.join(",");
        }
    }
    Ok(())
}

fn split_items(list: &str) -> Vec<String> {
    list.split(',')
        .map(str::trim)
        .filter(|item| !item.is_empty())
        .map(str::to_string)
        .collect()
}
