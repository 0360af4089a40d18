//! The command line of `flink configs`: its flags, Kafka's checks of them in Kafka's order (so
//! the first problem reported is the one kafka-configs.sh reports), and the configs an
//! `--alter` adds and deletes. `--entity-type` values pair with `--entity-name` and
//! `--entity-default` by position, as in Kafka, so the names are kept in command-line order.

use std::collections::BTreeSet;
use std::net::{IpAddr, ToSocketAddrs};
use std::path::PathBuf;

use clap::{ArgMatches, FromArgMatches};

use super::ConfigsError;
use crate::cli::jvm_text::properties_order;
use crate::client::properties::Properties;

/// The entity types this tool handles, in the words and order of Kafka's `--entity-type`.
const ENTITY_TYPES: &str = "topics, clients, users, brokers, ips";
/// Kafka's message for an `--add-config` entry that is not `key=value` (two blanks and all).
pub(super) const ADD_CONFIG_FORMAT: &str = "Invalid entity config: all configs to be added must \
    be in the format \"key=val\" or  \"key=[val1,val2]\" to group values which contain commas.";

/// The flags of `flink configs`; `Args` adds the order of the entity names.
#[derive(clap::Args, Debug)]
pub struct Flags {
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
    /// Type of entity (topics/clients/users/brokers/ips); users and clients together name the
    /// quotas of one user's client.
    #[arg(long, value_name = "TYPE")]
    pub entity_type: Vec<String>,
    /// Name of entity (topic name/client id/user principal name/broker id/ip).
    #[arg(long, value_name = "NAME")]
    pub entity_name: Vec<String>,
    /// The default entity of the type at the same position: the defaults of all clients, users,
    /// brokers or ips.
    #[arg(long)]
    pub entity_default: bool,
    /// Configs to add: 'k1=v1,k2=[v1,v2,v2],k3=v3' (square brackets group values with commas).
    /// Users and clients take the quotas producer_byte_rate, consumer_byte_rate,
    /// request_percentage and controller_mutation_rate, ips connection_creation_rate.
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
    /// The client's id (same as --entity-type clients --entity-name ID).
    #[arg(long, value_name = "CLIENT")]
    pub client: Option<String>,
    /// The config defaults for all clients (same as --entity-type clients --entity-default).
    #[arg(long)]
    pub client_defaults: bool,
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
    /// The IP address (same as --entity-type ips --entity-name IP).
    #[arg(long, value_name = "IP")]
    pub ip: Option<String>,
    /// The config defaults for all IPs (same as --entity-type ips --entity-default).
    #[arg(long)]
    pub ip_defaults: bool,
}

/// The flags, and `--entity-name` values with "" for `--entity-default` in the order given.
#[derive(Debug)]
pub struct Args {
    pub flags: Flags,
    pub named: Vec<String>,
}

impl FromArgMatches for Args {
    fn from_arg_matches(matches: &ArgMatches) -> Result<Args, clap::Error> {
        Ok(Args {
            flags: Flags::from_arg_matches(matches)?,
            named: named_in_order(matches),
        })
    }

    fn update_from_arg_matches(&mut self, matches: &ArgMatches) -> Result<(), clap::Error> {
        self.flags.update_from_arg_matches(matches)?;
        self.named = named_in_order(matches);
        Ok(())
    }
}

impl clap::Args for Args {
    fn augment_args(command: clap::Command) -> clap::Command {
        Flags::augment_args(command)
    }

    fn augment_args_for_update(command: clap::Command) -> clap::Command {
        Flags::augment_args_for_update(command)
    }
}

/// `--entity-name` values and "" for `--entity-default`, by their place on the command line.
fn named_in_order(matches: &ArgMatches) -> Vec<String> {
    let mut named: Vec<(usize, String)> = Vec::new();
    if let (Some(indices), Some(values)) = (
        matches.indices_of("entity_name"),
        matches.get_many::<String>("entity_name"),
    ) {
        named.extend(indices.zip(values.cloned()));
    }
    if matches.get_flag("entity_default") {
        let index = matches.index_of("entity_default").unwrap_or(usize::MAX);
        named.push((index, String::new()));
    }
    named.sort_by_key(|(index, _)| *index);
    named.into_iter().map(|(_, name)| name).collect()
}

/// The entity types this tool handles.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum EntityType {
    Topics,
    Brokers,
    /// Users' quotas and SCRAM credentials (`users`), not config resources.
    Users,
    /// Client ids' quotas.
    Clients,
    /// IP addresses' connection quotas.
    Ips,
}

impl EntityType {
    fn parse(text: &str) -> Option<EntityType> {
        match text {
            "topics" => Some(EntityType::Topics),
            "brokers" => Some(EntityType::Brokers),
            "users" => Some(EntityType::Users),
            "clients" => Some(EntityType::Clients),
            "ips" => Some(EntityType::Ips),
            _ => None,
        }
    }

    pub(super) fn plural(self) -> &'static str {
        match self {
            EntityType::Topics => "topics",
            EntityType::Brokers => "brokers",
            EntityType::Users => "users",
            EntityType::Clients => "clients",
            EntityType::Ips => "ips",
        }
    }

    pub(super) fn singular(self) -> &'static str {
        let plural = self.plural();
        &plural[..plural.len() - 1]
    }
}

/// A command line that passed Kafka's checks.
#[derive(Debug)]
pub(super) struct Command {
    pub(super) bootstrap_server: String,
    pub(super) alter: bool,
    pub(super) all: bool,
    /// The first type given, which decides what the command does.
    pub(super) entity_type: EntityType,
    /// Every type given: one, or users and clients.
    pub(super) entity_types: Vec<EntityType>,
    /// The names given, "" for the default entity, paired with the types by position; none
    /// means every entity (describe only).
    pub(super) entity_names: Vec<String>,
}

/// kafka-configs.sh's `checkArgs`, in its order, so the first problem reported is Kafka's.
pub(super) fn check_args(args: &Args) -> Result<Command, ConfigsError> {
    let flags = &args.flags;
    if flags.alter == flags.describe {
        return Err(argument(
            "Command must include exactly one action: --describe, --alter",
        ));
    }
    if flags.describe {
        if flags.add_config.is_some() {
            return Err(argument(
                "Option \"[describe]\" can't be used with option \"[add-config]\"",
            ));
        }
        if !flags.delete_config.is_empty() {
            return Err(argument(
                "Option \"[describe]\" can't be used with option \"[delete-config]\"",
            ));
        }
    }
    let entity_types = check_entity_types(flags)?;
    let entity_type = entity_types[0];
    let entity_names = entity_names(args);
    check_names(flags, entity_type, &entity_types, &entity_names)?;
    match flags.alter {
        true => check_alter(flags, entity_type, &entity_names)?,
        false => check_describe(flags, entity_type)?,
    }
    if flags.alter && entity_types.len() != entity_names.len() {
        return Err(argument(
            "An entity name must be specified for every entity type",
        ));
    }
    Ok(Command {
        bootstrap_server: flags.bootstrap_server.clone().unwrap_or_default(),
        alter: flags.alter,
        all: flags.all,
        entity_type,
        entity_types,
        entity_names,
    })
}

/// The entity types named by `--entity-type` or shorthand flags: one, or users and clients.
fn check_entity_types(flags: &Flags) -> Result<Vec<EntityType>, ConfigsError> {
    let types = entity_types(flags);
    let mut seen = BTreeSet::new();
    // Scala's `types.diff(types.distinct)`: every repetition after the first.
    let duplicates: Vec<&str> = types
        .iter()
        .filter(|name| !seen.insert(name.as_str()))
        .map(String::as_str)
        .collect();
    if !duplicates.is_empty() {
        return Err(ConfigsError::Argument(format!(
            "Duplicate entity type(s) specified: {}",
            duplicates.join(",")
        )));
    }
    if flags.bootstrap_server.is_none() {
        return Err(argument(
            "Either --bootstrap-server or --bootstrap-controller must be specified.",
        ));
    }
    let mut parsed = Vec::new();
    for name in &types {
        match EntityType::parse(name) {
            Some(entity_type) => parsed.push(entity_type),
            None => {
                return Err(ConfigsError::Argument(format!(
                    "Invalid entity type {name}, the entity type must be one of {ENTITY_TYPES} with a --bootstrap-server or --bootstrap-controller argument"
                )))
            }
        }
    }
    if parsed.is_empty() {
        return Err(argument("At least one entity type must be specified"));
    }
    let user_and_client = parsed.len() == 2
        && parsed.contains(&EntityType::Users)
        && parsed.contains(&EntityType::Clients);
    if parsed.len() > 1 && !user_and_client {
        return Err(argument(
            "Only 'users' and 'clients' entity types may be specified together",
        ));
    }
    let specific_flags = shorthand_types(flags).next().is_some();
    let generic_flags =
        !flags.entity_type.is_empty() || !flags.entity_name.is_empty() || flags.entity_default;
    if specific_flags && generic_flags {
        return Err(argument(
            "--entity-{type,name,default} should not be used in conjunction with specific entity flags",
        ));
    }
    Ok(parsed)
}

/// `--entity-type` values, then the types the shorthand flags stand for.
fn entity_types(flags: &Flags) -> Vec<String> {
    let mut types = flags.entity_type.clone();
    types.extend(shorthand_types(flags).map(str::to_string));
    types
}

/// The types of the shorthand flags given, as Kafka lists them: the named entities' flags
/// (topic, client, user, broker, ip), then the defaults' flags (clients, users, brokers, ips).
fn shorthand_types(flags: &Flags) -> impl Iterator<Item = &'static str> {
    let given = [
        (flags.topic.is_some(), "topics"),
        (flags.client.is_some(), "clients"),
        (flags.user.is_some(), "users"),
        (flags.broker.is_some(), "brokers"),
        (flags.ip.is_some(), "ips"),
        (flags.client_defaults, "clients"),
        (flags.user_defaults, "users"),
        (flags.broker_defaults, "brokers"),
        (flags.ip_defaults, "ips"),
    ];
    given
        .into_iter()
        .filter(|(given, _)| *given)
        .map(|(_, entity_type)| entity_type)
}

/// `--entity-name` values and "" for `--entity-default` in command-line order, then the
/// shorthand flags' names, then "" for each defaults flag, in the order of `shorthand_types`.
fn entity_names(args: &Args) -> Vec<String> {
    let flags = &args.flags;
    let mut names = args.named.clone();
    for name in [
        &flags.topic,
        &flags.client,
        &flags.user,
        &flags.broker,
        &flags.ip,
    ] {
        names.extend(name.iter().cloned());
    }
    let defaults = [
        flags.client_defaults,
        flags.user_defaults,
        flags.broker_defaults,
        flags.ip_defaults,
    ];
    names.extend(
        defaults
            .iter()
            .filter(|given| **given)
            .map(|_| String::new()),
    );
    names
}

/// Kafka's checks of the names before connecting: broker ids are integers, IP entities are IP
/// addresses or resolvable host names. Only the first `--entity-name` is checked, as in Kafka.
fn check_names(
    flags: &Flags,
    entity_type: EntityType,
    entity_types: &[EntityType],
    names: &[String],
) -> Result<(), ConfigsError> {
    if !names.iter().any(|name| !name.is_empty()) {
        return Ok(());
    }
    let first = flags.entity_name.first();
    if entity_types.contains(&EntityType::Brokers) {
        for id in first.into_iter().chain(&flags.broker) {
            if id.parse::<i32>().is_err() {
                return Err(ConfigsError::Argument(format!(
                    "The entity name for {} must be a valid integer broker id, but it is: {id}",
                    entity_type.plural()
                )));
            }
        }
    }
    if entity_types.contains(&EntityType::Ips) {
        for ip in first.into_iter().chain(&flags.ip) {
            if !is_valid_ip_entity(ip) {
                return Err(ConfigsError::Argument(format!(
                    "The entity name for {} must be a valid IP or resolvable host, but it is: {ip}",
                    entity_type.plural()
                )));
            }
        }
    }
    Ok(())
}

/// Java's `InetAddress.getByName` succeeds: an IP address (IPv6 also in brackets) or a name the
/// system resolves.
fn is_valid_ip_entity(text: &str) -> bool {
    let bare = text
        .strip_prefix('[')
        .and_then(|rest| rest.strip_suffix(']'))
        .unwrap_or(text);
    if bare.parse::<IpAddr>().is_ok() {
        return true;
    }
    (text, 0)
        .to_socket_addrs()
        .is_ok_and(|mut addresses| addresses.next().is_some())
}

fn check_describe(flags: &Flags, entity_type: EntityType) -> Result<(), ConfigsError> {
    if entity_type == EntityType::Topics && flags.entity_default {
        return Err(argument(
            "--entity-default must not be specified with --describe of topics",
        ));
    }
    Ok(())
}

fn check_alter(
    flags: &Flags,
    entity_type: EntityType,
    names: &[String],
) -> Result<(), ConfigsError> {
    let has_name = names.iter().any(|name| !name.is_empty());
    let has_default = names.iter().any(String::is_empty);
    match entity_type {
        EntityType::Topics if !has_name => {
            return Err(argument(
                "An entity name must be specified with --alter of topics",
            ))
        }
        EntityType::Topics => {}
        _ if !has_name && !has_default => {
            return Err(argument(
                "An entity-name or default entity must be specified with --alter of users, clients, brokers or ips",
            ))
        }
        _ => {}
    }
    if flags.add_config.is_some() && flags.add_config_file.is_some() {
        return Err(argument(
            "Only one of --add-config or --add-config-file must be specified",
        ));
    }
    if flags.add_config.is_none()
        && flags.add_config_file.is_none()
        && flags.delete_config.is_empty()
    {
        return Err(argument(
            "At least one of --add-config, --add-config-file, or --delete-config must be specified with --alter",
        ));
    }
    Ok(())
}

pub(super) fn argument(message: &str) -> ConfigsError {
    ConfigsError::Argument(message.to_string())
}

/// The configs an `--alter` sets and deletes.
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct Changes {
    /// Keys and values in the order Kafka first put them into its `Properties`: the file's,
    /// then `--add-config`'s; a key given again keeps its place and takes the last value.
    pub(super) additions: Vec<(String, String)>,
    pub(super) deletions: Vec<String>,
}

impl Changes {
    fn add(&mut self, key: String, value: String) {
        match self.additions.iter_mut().find(|(known, _)| *known == key) {
            Some(entry) => entry.1 = value,
            None => self.additions.push((key, value)),
        }
    }

    pub(super) fn keys(&self) -> impl Iterator<Item = &str> {
        self.additions.iter().map(|(key, _)| key.as_str())
    }

    pub(super) fn value(&self, key: &str) -> Option<&str> {
        let found = self.additions.iter().find(|(known, _)| known == key);
        found.map(|(_, value)| value.as_str())
    }
}

/// `--add-config-file` entries, then `--add-config` ones, then `--delete-config` keys, checked
/// as Kafka checks them.
pub(super) fn changes(flags: &Flags) -> Result<Changes, ConfigsError> {
    let mut changes = Changes::default();
    if let Some(path) = &flags.add_config_file {
        let file = Properties::from_file(path)?;
        for key in file.keys() {
            let value = file.get(key).unwrap_or_default();
            changes.add(key.to_string(), value.to_string());
        }
    }
    if let Some(text) = &flags.add_config {
        for (key, value) in parse_add_config(text)? {
            changes.add(key, value);
        }
    }
    let keys = properties_order(changes.keys().map(str::to_string).collect());
    if let Some(key) = keys.iter().find(|key| !is_valid_config_key(key)) {
        return Err(ConfigsError::Argument(format!(
            "Invalid character found for config key: {key}"
        )));
    }
    changes.deletions = flags
        .delete_config
        .iter()
        .map(|key| key.trim().to_string())
        .collect();
    Ok(changes)
}

/// Splits `k1=v1,k2=[a,b]` into pairs as Kafka does: commas and equals signs inside square
/// brackets belong to the value, the brackets themselves are dropped, blanks around keys and
/// values are trimmed, and every entry needs exactly one `=` outside brackets.
pub(super) fn parse_add_config(text: &str) -> Result<Vec<(String, String)>, ConfigsError> {
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
