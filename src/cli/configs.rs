//! `flink configs`: Kafka's kafka-configs.sh for topics, brokers, users, clients and ips.
//! `--describe` shows a resource's dynamic configs (or `--all` of them) with where each value
//! comes from, using DescribeConfigs with synonyms; `--alter` adds and deletes configs with one
//! IncrementalAlterConfigs request. Users, clients and ips have client quotas instead
//! (`quotas`, configs_quotas.rs), and users SCRAM credentials too (`users`, configs_users.rs);
//! the command line is `command_line` (configs_args.rs). Flags, output lines, messages and exit
//! codes follow Kafka 4.1 and later: a bad command line prints its message alone, a failure
//! reported by the cluster prints `Error while executing config command with args '...'` and
//! the exception line, and both exit 1. Runs on the calling thread with the blocking client.

use std::collections::BTreeSet;
use std::process::ExitCode;

use kafka_protocol::messages::ApiKey;

use crate::client::admin::{
    admin_settings, describe_configs, incremental_alter_configs, AlterConfigOp, ConfigEntry,
    ConfigResource, ConfigSource,
};
use crate::client::cluster::Client;
use crate::client::error::{error_name, ClientError, KafkaError};
use crate::client::properties::{Properties, PropertiesError};
use crate::controller::topics::validate_name;

#[path = "configs_args.rs"]
mod command_line;
#[path = "configs_quotas.rs"]
mod quotas;
#[path = "configs_users.rs"]
mod users;

use command_line::{argument, changes, check_args, Changes, Command, EntityType};
pub use command_line::{Args, Flags};

/// Kafka's message when the cluster does not know IncrementalAlterConfigs.
const ALTER_UNSUPPORTED: &str = "The INCREMENTAL_ALTER_CONFIGS API is not supported by the \
    cluster. The API is supported starting from version 2.3.0. You may want to use an older \
    version of this tool to interact with your cluster, or upgrade your brokers to version 2.3.0 \
    or newer to avoid this error.";

/// Failures of a configs command. `report` prints each as Kafka's tool does.
#[derive(Debug, thiserror::Error)]
pub enum ConfigsError {
    /// A command line Kafka refuses (its IllegalArgumentException).
    #[error("{0}")]
    Argument(String),
    /// Configs to delete that the entity does not have set (Kafka's
    /// InvalidConfigurationException).
    #[error("Invalid config(s): {}", .0.join(","))]
    InvalidConfigs(Vec<String>),
    #[error("{ALTER_UNSUPPORTED}")]
    AlterUnsupported,
    /// A topic name Kafka's `Topic.validate` refuses.
    #[error("{0}")]
    InvalidTopic(String),
    #[error("{0}")]
    Properties(#[from] PropertiesError),
    #[error("{0}")]
    Client(#[from] ClientError),
}

pub fn run(args: Args) -> ExitCode {
    match execute(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            // Kafka quotes the tool's own arguments, those after `flink configs`.
            let arguments: Vec<String> = std::env::args_os()
                .skip(2)
                .map(|argument| argument.to_string_lossy().into_owned())
                .collect();
            eprintln!("{}", report(&error, &arguments));
            ExitCode::FAILURE
        }
    }
}

fn execute(args: &Args) -> Result<(), ConfigsError> {
    let command = check_args(args)?;
    let properties = match &args.flags.command_config {
        Some(path) => Properties::from_file(path)?,
        None => Properties::default(),
    };
    // The changes are checked before connecting, so a typo fails without a cluster.
    let changes = match command.alter {
        true => Some(changes(&args.flags)?),
        false => None,
    };
    let plan = match &changes {
        Some(changes) => Some(plan(&command, changes)?),
        None => None,
    };
    let mut client = Client::connect(&command.bootstrap_server, admin_settings(&properties)?)?;
    match (changes, plan) {
        (Some(changes), Some(plan)) => {
            match plan {
                Plan::Resource => alter(&mut client, &command, &changes)?,
                Plan::Quotas => quotas::alter(&mut client, &command, &changes)?,
                Plan::Scram(alteration) => users::alter(&mut client, &alteration)?,
            }
            println!("{}", completed(&command));
            Ok(())
        }
        _ => match command.entity_type {
            EntityType::Topics | EntityType::Brokers => describe(&mut client, &command),
            EntityType::Users | EntityType::Clients | EntityType::Ips => {
                quotas::describe(&mut client, &command)?;
                // SCRAM credentials belong to users, never to a user's client or the default.
                let only_users = command.entity_types == [EntityType::Users];
                match only_users && !command.entity_names.iter().any(String::is_empty) {
                    true => users::describe(&mut client, &command),
                    false => Ok(()),
                }
            }
        },
    }
}

/// What an `--alter` does, decided before connecting.
enum Plan {
    /// IncrementalAlterConfigs of a topic or broker.
    Resource,
    /// AlterClientQuotas of a user, client, user's client or ip.
    Quotas,
    /// AlterUserScramCredentials of a user.
    Scram(users::ScramAlteration),
}

/// Kafka's checks of the keys of an `--alter`, by entity type.
fn plan(command: &Command, changes: &Changes) -> Result<Plan, ConfigsError> {
    match command.entity_type {
        EntityType::Topics | EntityType::Brokers => Ok(Plan::Resource),
        EntityType::Ips => {
            quotas::check_ip_keys(changes)?;
            Ok(Plan::Quotas)
        }
        EntityType::Users | EntityType::Clients => match users::plan(command, changes)? {
            Some(alteration) => Ok(Plan::Scram(alteration)),
            None => Ok(Plan::Quotas),
        },
    }
}

/// Kafka's line after an alteration, naming the first entity type and name given.
fn completed(command: &Command) -> String {
    match command.entity_names.first().map(String::as_str) {
        Some(name) if !name.is_empty() => format!(
            "Completed updating config for {} {name}.",
            command.entity_type.singular()
        ),
        _ => format!(
            "Completed updating default config for {} in the cluster.",
            command.entity_type.plural()
        ),
    }
}

/// What stderr shows for `error`: Kafka prints argument and config errors alone, and anything
/// else after a line quoting the arguments, followed by the exception.
fn report(error: &ConfigsError, arguments: &[String]) -> String {
    match error {
        ConfigsError::Argument(_)
        | ConfigsError::InvalidConfigs(_)
        | ConfigsError::AlterUnsupported
        | ConfigsError::Client(ClientError::UnsupportedVersion { .. }) => error.to_string(),
        _ => format!(
            "Error while executing config command with args '{}'\n{}",
            arguments.join(" "),
            exception_line(error)
        ),
    }
}

/// The first line of the stack trace Kafka prints: errors from the cluster arrive wrapped in the
/// admin client's ExecutionException, a bad topic name is thrown directly.
fn exception_line(error: &ConfigsError) -> String {
    match error {
        ConfigsError::InvalidTopic(message) => {
            format!("org.apache.kafka.common.errors.InvalidTopicException: {message}")
        }
        ConfigsError::Client(ClientError::Kafka(kafka)) => format!(
            "java.util.concurrent.ExecutionException: org.apache.kafka.common.errors.{}: {}",
            exception_class(kafka),
            kafka.message()
        ),
        other => other.to_string(),
    }
}

/// The class of `org.apache.kafka.common.errors` that Kafka's clients raise for an error code:
/// the code's name in CamelCase ending in `Exception`, with Kafka's few irregular names.
pub(crate) fn exception_class(error: &KafkaError) -> String {
    let name = error_name(error.code);
    match name.as_str() {
        "INVALID_CONFIG" => return "InvalidConfigurationException".to_string(),
        "REQUEST_TIMED_OUT" => return "TimeoutException".to_string(),
        "CORRUPT_MESSAGE" => return "CorruptRecordException".to_string(),
        _ if name.starts_with("UNKNOWN_ERROR_CODE") => return "UnknownServerException".to_string(),
        _ => {}
    }
    let stem = name
        .strip_suffix("_EXCEPTION")
        .or_else(|| name.strip_suffix("_FAILED"))
        .or_else(|| name.strip_suffix("_ERROR"))
        .unwrap_or(&name);
    let mut class: String = stem
        .split('_')
        .map(|word| {
            let lower = word.to_ascii_lowercase();
            let mut characters = lower.chars();
            match characters.next() {
                Some(first) => first.to_ascii_uppercase().to_string() + characters.as_str(),
                None => String::new(),
            }
        })
        .collect();
    class.push_str("Exception");
    class
}

/// One topic, one broker, or (with the empty name) the defaults of all brokers.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Entity {
    entity_type: EntityType,
    name: String,
}

impl Entity {
    /// The config resource of a topic or broker; the quota entities have none (`quotas`
    /// serves them before this is asked).
    fn resource(&self) -> Result<ConfigResource, ConfigsError> {
        match self.entity_type {
            EntityType::Topics => Ok(ConfigResource::topic(&self.name)),
            EntityType::Brokers => Ok(ConfigResource::broker(&self.name)),
            other => Err(ConfigsError::Argument(format!(
                "Invalid entity type: {}",
                other.plural()
            ))),
        }
    }

    /// The source of the values set on this very entity, the ones `--describe` shows without
    /// `--all` and `--delete-config` may remove.
    fn dynamic_source(&self) -> Option<ConfigSource> {
        match (self.entity_type, self.name.is_empty()) {
            (EntityType::Topics, _) => Some(ConfigSource::DynamicTopicConfig),
            (EntityType::Brokers, true) => Some(ConfigSource::DynamicDefaultBrokerConfig),
            (EntityType::Brokers, false) => Some(ConfigSource::DynamicBrokerConfig),
            _ => None,
        }
    }

    /// Kafka's checks before asking the cluster: a legal topic name, an integer broker id.
    fn check(&self) -> Result<(), ConfigsError> {
        if self.name.is_empty() {
            return Ok(());
        }
        match self.entity_type {
            EntityType::Topics => validate_name(&self.name)
                .map_err(|error| ConfigsError::InvalidTopic(error.to_string())),
            EntityType::Brokers => match self.name.parse::<i32>() {
                Ok(_) => Ok(()),
                Err(_) => Err(ConfigsError::Argument(format!(
                    "The entity name for brokers must be a valid integer broker id, found: {}",
                    self.name
                ))),
            },
            _ => Ok(()),
        }
    }

    fn header(&self, all: bool) -> String {
        if self.name.is_empty() {
            return format!(
                "Default configs for {} in the cluster are:",
                self.entity_type.plural()
            );
        }
        let which = if all { "All" } else { "Dynamic" };
        format!(
            "{which} configs for {} {} are:",
            self.entity_type.singular(),
            self.name
        )
    }
}

/// `--describe`: for each entity a header line, then its configs sorted by name, each with its
/// synonyms. A named entity that does not exist has no dynamic configs, which Kafka says in a
/// line of its own (exit 0); with `--all` the cluster's error is reported instead.
fn describe(client: &mut Client, command: &Command) -> Result<(), ConfigsError> {
    let entities = match command.entity_names.first() {
        Some(name) => {
            let entity = Entity {
                entity_type: command.entity_type,
                name: name.clone(),
            };
            if !command.all && !exists(client, &entity)? {
                println!(
                    "The {} '{}' doesn't exist and doesn't have dynamic config.",
                    entity.entity_type.singular(),
                    entity.name
                );
                return Ok(());
            }
            vec![entity]
        }
        None => every_entity(client, command.entity_type)?,
    };
    for entity in &entities {
        entity.check()?;
    }
    let resources = entities
        .iter()
        .map(Entity::resource)
        .collect::<Result<Vec<ConfigResource>, ConfigsError>>()?;
    let mut described = describe_configs(client, &resources, true)?;
    for (entity, resource) in entities.iter().zip(&resources) {
        println!("{}", entity.header(command.all));
        let entries = match described.remove(resource) {
            Some(result) => result.map_err(ClientError::Kafka)?,
            None => continue,
        };
        for entry in selected(entries, entity, command.all) {
            println!("{}", entry_line(&entry));
        }
    }
    Ok(())
}

/// Whether a named entity exists: a topic in the metadata, a broker among the cluster's nodes
/// (the default entity always does). A bad topic name is refused first, as Kafka does.
fn exists(client: &mut Client, entity: &Entity) -> Result<bool, ConfigsError> {
    match entity.entity_type {
        EntityType::Topics => {
            entity.check()?;
            let metadata = client.metadata(None, false)?;
            Ok(metadata.topic(&entity.name).is_some())
        }
        EntityType::Brokers if entity.name.is_empty() => Ok(true),
        EntityType::Brokers => {
            client.metadata(Some(&[]), false)?;
            let id = entity.name.as_str();
            Ok(client
                .nodes()
                .iter()
                .any(|(node, _)| node.0.to_string() == id))
        }
        _ => Ok(true),
    }
}

/// Every topic (internal ones too) sorted by name, or every broker by id then the defaults.
fn every_entity(client: &mut Client, entity_type: EntityType) -> Result<Vec<Entity>, ClientError> {
    let names: Vec<String> = match entity_type {
        EntityType::Users | EntityType::Clients | EntityType::Ips => Vec::new(),
        EntityType::Topics => {
            let metadata = client.metadata(None, false)?;
            let mut names: Vec<String> = metadata
                .topics
                .into_iter()
                .filter(|topic| topic.error.is_none())
                .map(|topic| topic.name)
                .collect();
            names.sort();
            names
        }
        EntityType::Brokers => {
            client.metadata(Some(&[]), false)?;
            let mut names: Vec<String> = client
                .nodes()
                .into_iter()
                .map(|(node, _)| node.0.to_string())
                .collect();
            names.push(String::new());
            names
        }
    };
    Ok(names
        .into_iter()
        .map(|name| Entity { entity_type, name })
        .collect())
}

/// The entries `--describe` prints: all with `--all`, else those set on the entity itself;
/// sorted by name.
fn selected(mut entries: Vec<ConfigEntry>, entity: &Entity, all: bool) -> Vec<ConfigEntry> {
    let dynamic = entity.dynamic_source();
    entries.retain(|entry| all || Some(entry.source) == dynamic);
    entries.sort_by(|left, right| left.name.cmp(&right.name));
    entries
}

/// `  name=value sensitive=false synonyms={SOURCE:name=value, ...}`; a hidden value is `null`.
fn entry_line(entry: &ConfigEntry) -> String {
    let synonyms: Vec<String> = entry
        .synonyms
        .iter()
        .map(|synonym| {
            format!(
                "{}:{}={}",
                synonym.source,
                synonym.name,
                synonym.value.as_deref().unwrap_or("null")
            )
        })
        .collect();
    format!(
        "  {}={} sensitive={} synonyms={{{}}}",
        entry.name,
        entry.value.as_deref().unwrap_or("null"),
        entry.is_sensitive,
        synonyms.join(", ")
    )
}

/// `--alter`: deletions must name configs set on the entity (Kafka looks first and refuses
/// the whole change otherwise); then deletions and additions go in one request, which the
/// broker applies all or none.
fn alter(client: &mut Client, command: &Command, changes: &Changes) -> Result<(), ConfigsError> {
    let Some(name) = command.entity_names.first() else {
        return Err(argument(
            "An entity name must be specified for every entity type",
        ));
    };
    let entity = Entity {
        entity_type: command.entity_type,
        name: name.clone(),
    };
    let existing = dynamic_config_names(client, &entity)?;
    let invalid: Vec<String> = changes
        .deletions
        .iter()
        .filter(|key| !existing.contains(*key))
        .cloned()
        .collect();
    if !invalid.is_empty() {
        return Err(ConfigsError::InvalidConfigs(invalid));
    }
    let operations: Vec<AlterConfigOp> = changes
        .deletions
        .iter()
        .map(|key| AlterConfigOp::delete(key))
        .chain(
            changes
                .additions
                .iter()
                .map(|(key, value)| AlterConfigOp::set(key, value)),
        )
        .collect();
    incremental_alter_configs(client, &entity.resource()?, &operations).map_err(
        |error| match error {
            ClientError::UnsupportedVersion {
                api: ApiKey::IncrementalAlterConfigs,
                ..
            } => ConfigsError::AlterUnsupported,
            other => other.into(),
        },
    )?;
    Ok(())
}

/// The names of the configs set on the entity itself, from DescribeConfigs without synonyms.
fn dynamic_config_names(
    client: &mut Client,
    entity: &Entity,
) -> Result<BTreeSet<String>, ConfigsError> {
    entity.check()?;
    let resource = entity.resource()?;
    let mut described = describe_configs(client, std::slice::from_ref(&resource), false)?;
    let entries = match described.remove(&resource) {
        Some(result) => result.map_err(ClientError::Kafka)?,
        None => Vec::new(),
    };
    Ok(selected(entries, entity, false)
        .into_iter()
        .map(|entry| entry.name)
        .collect())
}

#[cfg(test)]
#[path = "configs_tests.rs"]
mod tests;
