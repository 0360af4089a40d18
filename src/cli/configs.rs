//! `flink configs`: Kafka's kafka-configs.sh for topics, brokers and users. `--describe` shows a
//! resource's dynamic configs (or `--all` of them) with where each value comes from, using
//! DescribeConfigs with synonyms; `--alter` adds and deletes configs with one
//! IncrementalAlterConfigs request. Users have SCRAM credentials instead (`users`,
//! configs_users.rs). Flags, output lines, messages and exit codes follow Kafka 4.1
//! and later: a bad command line prints its message alone, a failure reported by the cluster
//! prints `Error while executing config command with args '...'` and the exception line, and
//! both exit 1. Runs on the calling thread with the blocking client.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
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

#[path = "configs_users.rs"]
mod users;

/// The entity types this tool handles, in the words of Kafka's `--entity-type`.
const ENTITY_TYPES: &str = "topics, brokers, users";
/// Kafka's message for an `--add-config` entry that is not `key=value` (two blanks and all).
const ADD_CONFIG_FORMAT: &str = "Invalid entity config: all configs to be added must be in the \
    format \"key=val\" or  \"key=[val1,val2]\" to group values which contain commas.";
/// Kafka's message when the cluster does not know IncrementalAlterConfigs.
const ALTER_UNSUPPORTED: &str = "The INCREMENTAL_ALTER_CONFIGS API is not supported by the \
    cluster. The API is supported starting from version 2.3.0. You may want to use an older \
    version of this tool to interact with your cluster, or upgrade your brokers to version 2.3.0 \
    or newer to avoid this error.";

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The Kafka servers to connect to (host:port[,host:port...]).
    #[arg(long, value_name = "SERVER")]
    pub bootstrap_server: Option<String>,
    /// Property file with admin client configs (client.id, request.timeout.ms,
    /// security.protocol, ssl.*, sasl.*).
    #[arg(long, value_name = "FILE")]
    pub command_config: Option<PathBuf>,
    /// Alter the configuration for the entity.
    #[arg(long)]
    pub alter: bool,
    /// List configs for the given entity.
    #[arg(long)]
    pub describe: bool,
    /// With --describe: list all configs, not only the dynamic ones.
    #[arg(long)]
    pub all: bool,
    /// Type of entity (topics/brokers/users).
    #[arg(long, value_name = "TYPE")]
    pub entity_type: Vec<String>,
    /// Name of entity (topic name/broker id/user principal name).
    #[arg(long, value_name = "NAME")]
    pub entity_name: Vec<String>,
    /// The default entity: the cluster-wide defaults of all brokers (or users).
    #[arg(long)]
    pub entity_default: bool,
    /// Configs to add: 'k1=v1,k2=[v1,v2,v2],k3=v3' (square brackets group values with commas).
    #[arg(long, value_name = "CONFIGS", allow_hyphen_values = true)]
    pub add_config: Option<String>,
    /// Path to a properties file with configs to add.
    #[arg(long, value_name = "FILE")]
    pub add_config_file: Option<PathBuf>,
    /// Config keys to remove: 'k1,k2'.
    #[arg(long, value_name = "KEYS", value_delimiter = ',')]
    pub delete_config: Vec<String>,
    /// The topic's name (same as --entity-type topics --entity-name NAME).
    #[arg(long, value_name = "TOPIC")]
    pub topic: Option<String>,
    /// The user's principal name (same as --entity-type users --entity-name USER).
    #[arg(long, value_name = "USER")]
    pub user: Option<String>,
    /// The config defaults for all users (same as --entity-type users --entity-default).
    #[arg(long)]
    pub user_defaults: bool,
    /// The broker's id (same as --entity-type brokers --entity-name ID).
    #[arg(long, value_name = "ID")]
    pub broker: Option<String>,
    /// The config defaults for all brokers (same as --entity-type brokers --entity-default).
    #[arg(long)]
    pub broker_defaults: bool,
}

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
    let properties = match &args.command_config {
        Some(path) => Properties::from_file(path)?,
        None => Properties::default(),
    };
    // The changes are parsed before connecting, so a typo fails without a cluster.
    let changes = match command.alter {
        true => Some(changes(args)?),
        false => None,
    };
    let user_alteration = match (&changes, command.entity_type) {
        (Some(changes), EntityType::Users) => Some(users::plan(&command, changes)?),
        _ => None,
    };
    let mut client = Client::connect(&command.bootstrap_server, admin_settings(&properties)?)?;
    match (changes, user_alteration) {
        (_, Some(alteration)) => users::alter(&mut client, &alteration),
        (Some(changes), None) => alter(&mut client, &command, &changes),
        (None, None) if command.entity_type == EntityType::Users => {
            users::describe(&mut client, &command)
        }
        (None, None) => describe(&mut client, &command),
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

/// The entity types this tool handles.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum EntityType {
    Topics,
    Brokers,
    /// Users' SCRAM credentials (`users`), not config resources.
    Users,
}

impl EntityType {
    fn parse(text: &str) -> Option<EntityType> {
        match text {
            "topics" => Some(EntityType::Topics),
            "brokers" => Some(EntityType::Brokers),
            "users" => Some(EntityType::Users),
            _ => None,
        }
    }

    fn plural(self) -> &'static str {
        match self {
            EntityType::Topics => "topics",
            EntityType::Brokers => "brokers",
            EntityType::Users => "users",
        }
    }

    fn singular(self) -> &'static str {
        match self {
            EntityType::Topics => "topic",
            EntityType::Brokers => "broker",
            EntityType::Users => "user",
        }
    }
}

/// One topic, one broker, or (with the empty name) the defaults of all brokers.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Entity {
    entity_type: EntityType,
    name: String,
}

impl Entity {
    /// The config resource of a topic or broker; users have none (`users` serves
    /// them before this is asked).
    fn resource(&self) -> Result<ConfigResource, ConfigsError> {
        match self.entity_type {
            EntityType::Topics => Ok(ConfigResource::topic(&self.name)),
            EntityType::Brokers => Ok(ConfigResource::broker(&self.name)),
            EntityType::Users => Err(argument("Invalid entity type: users")),
        }
    }

    /// The source of the values set on this very entity, the ones `--describe` shows without
    /// `--all` and `--delete-config` may remove.
    fn dynamic_source(&self) -> Option<ConfigSource> {
        match (self.entity_type, self.name.is_empty()) {
            (EntityType::Topics, _) => Some(ConfigSource::DynamicTopicConfig),
            (EntityType::Brokers, true) => Some(ConfigSource::DynamicDefaultBrokerConfig),
            (EntityType::Brokers, false) => Some(ConfigSource::DynamicBrokerConfig),
            (EntityType::Users, _) => None,
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
            EntityType::Users => Ok(()),
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

    fn completed(&self) -> String {
        if self.name.is_empty() {
            return format!(
                "Completed updating default config for {} in the cluster.",
                self.entity_type.plural()
            );
        }
        format!(
            "Completed updating config for {} {}.",
            self.entity_type.singular(),
            self.name
        )
    }
}

/// A command line that passed Kafka's checks.
#[derive(Debug)]
struct Command {
    bootstrap_server: String,
    alter: bool,
    all: bool,
    entity_type: EntityType,
    /// The names given, "" for the default entity; none means every entity (describe only).
    entity_names: Vec<String>,
}

/// kafka-configs.sh's `checkArgs`, in its order, so the first problem reported is Kafka's.
fn check_args(args: &Args) -> Result<Command, ConfigsError> {
    if args.alter == args.describe {
        return Err(argument(
            "Command must include exactly one action: --describe, --alter",
        ));
    }
    if args.describe {
        if args.add_config.is_some() {
            return Err(argument(
                "Option \"[describe]\" can't be used with option \"[add-config]\"",
            ));
        }
        if !args.delete_config.is_empty() {
            return Err(argument(
                "Option \"[describe]\" can't be used with option \"[delete-config]\"",
            ));
        }
    }
    let (entity_type, type_count) = check_entity_type(args)?;
    let entity_names = entity_names(args);
    check_broker_ids(args, entity_type, &entity_names)?;
    match args.alter {
        true => check_alter(args, entity_type, &entity_names)?,
        false => check_describe(args, entity_type)?,
    }
    if args.alter && type_count != entity_names.len() {
        return Err(argument(
            "An entity name must be specified for every entity type",
        ));
    }
    Ok(Command {
        bootstrap_server: args.bootstrap_server.clone().unwrap_or_default(),
        alter: args.alter,
        all: args.all,
        entity_type,
        entity_names,
    })
}

/// The one entity type named by `--entity-type` or a shorthand flag, and how many were given.
fn check_entity_type(args: &Args) -> Result<(EntityType, usize), ConfigsError> {
    let types = entity_types(args);
    let mut seen = BTreeSet::new();
    let duplicates: Vec<&str> = types
        .iter()
        .filter(|name| !seen.insert(name.as_str()))
        .map(String::as_str)
        .collect();
    if !duplicates.is_empty() {
        let mut distinct: Vec<&str> = Vec::new();
        for name in duplicates {
            if !distinct.contains(&name) {
                distinct.push(name);
            }
        }
        return Err(ConfigsError::Argument(format!(
            "Duplicate entity type(s) specified: {}",
            distinct.join(",")
        )));
    }
    if args.bootstrap_server.is_none() {
        return Err(argument(
            "Either --bootstrap-server or --bootstrap-controller must be specified.",
        ));
    }
    if let Some(unknown) = types.iter().find(|name| EntityType::parse(name).is_none()) {
        return Err(ConfigsError::Argument(format!(
            "Invalid entity type {unknown}, the entity type must be one of {ENTITY_TYPES} with a --bootstrap-server argument"
        )));
    }
    let entity_type = match types.first().and_then(|name| EntityType::parse(name)) {
        Some(entity_type) => entity_type,
        None => return Err(argument("At least one entity type must be specified")),
    };
    if types.len() > 1 {
        return Err(argument(
            "Only 'users' and 'clients' entity types may be specified together",
        ));
    }
    let specific_flags = args.topic.is_some()
        || args.user.is_some()
        || args.broker.is_some()
        || args.user_defaults
        || args.broker_defaults;
    let generic_flags =
        !args.entity_type.is_empty() || !args.entity_name.is_empty() || args.entity_default;
    if specific_flags && generic_flags {
        return Err(argument(
            "--entity-{type,name,default} should not be used in conjunction with specific entity flags",
        ));
    }
    Ok((entity_type, types.len()))
}

/// `--entity-type` values, then the types the shorthand flags stand for, as Kafka lists them:
/// the named entities' flags first, then the defaults' flags.
fn entity_types(args: &Args) -> Vec<String> {
    let mut types = args.entity_type.clone();
    let flags = [
        (args.topic.is_some(), "topics"),
        (args.user.is_some(), "users"),
        (args.broker.is_some(), "brokers"),
        (args.user_defaults, "users"),
        (args.broker_defaults, "brokers"),
    ];
    types.extend(
        flags
            .iter()
            .filter(|(given, _)| *given)
            .map(|(_, entity_type)| entity_type.to_string()),
    );
    types
}

/// `--entity-name` values and "" for `--entity-default`, then the shorthand flags' names, then
/// "" for each defaults flag.
fn entity_names(args: &Args) -> Vec<String> {
    let mut names = args.entity_name.clone();
    if args.entity_default {
        names.push(String::new());
    }
    names.extend(args.topic.iter().cloned());
    names.extend(args.user.iter().cloned());
    names.extend(args.broker.iter().cloned());
    for given in [args.user_defaults, args.broker_defaults] {
        if given {
            names.push(String::new());
        }
    }
    names
}

fn check_broker_ids(
    args: &Args,
    entity_type: EntityType,
    names: &[String],
) -> Result<(), ConfigsError> {
    let has_name = names.iter().any(|name| !name.is_empty());
    if entity_type != EntityType::Brokers || !has_name {
        return Ok(());
    }
    let given = args.entity_name.first().into_iter().chain(&args.broker);
    for id in given {
        if id.parse::<i32>().is_err() {
            return Err(ConfigsError::Argument(format!(
                "The entity name for brokers must be a valid integer broker id, but it is: {id}"
            )));
        }
    }
    Ok(())
}

fn check_describe(args: &Args, entity_type: EntityType) -> Result<(), ConfigsError> {
    if entity_type == EntityType::Topics && args.entity_default {
        return Err(argument(
            "--entity-default must not be specified with --describe of topics",
        ));
    }
    Ok(())
}

fn check_alter(args: &Args, entity_type: EntityType, names: &[String]) -> Result<(), ConfigsError> {
    let has_name = names.iter().any(|name| !name.is_empty());
    let has_default = names.iter().any(String::is_empty);
    match entity_type {
        EntityType::Brokers | EntityType::Users if !has_name && !has_default => {
            return Err(argument(
                "An entity-name or default entity must be specified with --alter of users, clients, brokers or ips",
            ))
        }
        EntityType::Topics if !has_name => {
            return Err(argument(
                "An entity name must be specified with --alter of topics",
            ))
        }
        _ => {}
    }
    if args.add_config.is_some() && args.add_config_file.is_some() {
        return Err(argument(
            "Only one of --add-config or --add-config-file must be specified",
        ));
    }
    if args.add_config.is_none() && args.add_config_file.is_none() && args.delete_config.is_empty()
    {
        return Err(argument(
            "At least one of --add-config, --add-config-file, or --delete-config must be specified with --alter",
        ));
    }
    Ok(())
}

fn argument(message: &str) -> ConfigsError {
    ConfigsError::Argument(message.to_string())
}

/// The configs an `--alter` sets and deletes.
#[derive(Debug, Default, PartialEq, Eq)]
struct Changes {
    /// Key to value; a key given twice keeps its last value.
    additions: BTreeMap<String, String>,
    deletions: Vec<String>,
}

/// `--add-config-file` entries, then `--add-config` ones, then `--delete-config` keys, checked
/// as Kafka checks them.
fn changes(args: &Args) -> Result<Changes, ConfigsError> {
    let mut additions = BTreeMap::new();
    if let Some(path) = &args.add_config_file {
        let file = Properties::from_file(path)?;
        for key in file.keys() {
            let value = file.get(key).unwrap_or_default();
            additions.insert(key.to_string(), value.to_string());
        }
    }
    if let Some(text) = &args.add_config {
        additions.extend(parse_add_config(text)?);
    }
    if let Some(key) = additions.keys().find(|key| !is_valid_config_key(key)) {
        return Err(ConfigsError::Argument(format!(
            "Invalid character found for config key: {key}"
        )));
    }
    let deletions = args
        .delete_config
        .iter()
        .map(|key| key.trim().to_string())
        .collect();
    Ok(Changes {
        additions,
        deletions,
    })
}

/// Splits `k1=v1,k2=[a,b]` into pairs as Kafka does: commas and equals signs inside square
/// brackets belong to the value, the brackets themselves are dropped, blanks around keys and
/// values are trimmed, and every entry needs exactly one `=` outside brackets.
fn parse_add_config(text: &str) -> Result<Vec<(String, String)>, ConfigsError> {
    let mut pairs = Vec::new();
    for entry in split_outside_brackets(text, ',', false) {
        let parts = split_outside_brackets(&entry, '=', true);
        let [key, value] = parts.as_slice() else {
            return Err(argument(ADD_CONFIG_FORMAT));
        };
        let value: String = value.chars().filter(|c| !matches!(c, '[' | ']')).collect();
        pairs.push((key.trim().to_string(), value.trim().to_string()));
    }
    Ok(pairs)
}

/// Java's `String.split` on `separator` where the next bracket after it, if any, opens rather
/// than closes (Kafka's `(?=[^\]]*(?:\[|$))`). Like Java, trailing empty pieces are dropped
/// unless `keep_trailing_empty`, and a text without a separator is one piece.
fn split_outside_brackets(text: &str, separator: char, keep_trailing_empty: bool) -> Vec<String> {
    let mut pieces = Vec::new();
    let mut start = 0;
    for (index, character) in text.char_indices() {
        if character != separator {
            continue;
        }
        let rest = &text[index + 1..];
        let outside = match rest.find(']') {
            None => true,
            Some(close) => rest[..close].contains('['),
        };
        if outside {
            pieces.push(text[start..index].to_string());
            start = index + 1;
        }
    }
    let found = !pieces.is_empty();
    pieces.push(text[start..].to_string());
    if found && !keep_trailing_empty {
        while pieces.last().is_some_and(String::is_empty) {
            pieces.pop();
        }
    }
    pieces
}

/// Kafka accepts config keys of `[$a-zA-Z0-9._-]*` only.
fn is_valid_config_key(key: &str) -> bool {
    key.chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '$' | '.' | '_' | '-'))
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
        EntityType::Users => Ok(true),
    }
}

/// Every topic (internal ones too) sorted by name, or every broker by id then the defaults.
fn every_entity(client: &mut Client, entity_type: EntityType) -> Result<Vec<Entity>, ClientError> {
    let names: Vec<String> = match entity_type {
        EntityType::Users => Vec::new(),
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
    println!("{}", entity.completed());
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
