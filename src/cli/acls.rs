//! `flink acls`: Kafka's kafka-acls.sh (AclCommand). `--add` creates the bindings the options
//! name, saying which already exist; `--remove` deletes them, or every binding of a resource
//! filter when no principal is given, after asking on stdin unless `--force`; `--list` prints the
//! bindings of the resources named (of all resources without one), or of `--principal`s only.
//! `--producer` and `--consumer` stand for the operations those clients need.
//!
//! Flags, checks, messages and output are Kafka 4's: a refused command line prints Kafka's
//! message and the help, a failure `Error while executing ACL command: ` and the exception, both
//! on stderr, and both exit 1. Output is ordered by resource pattern and entry, where Kafka
//! prints hash-set order. The command line is worked out whole (`plan`) before any request, so a
//! mistake costs no connection; then it runs on the calling thread with the blocking client.

use std::collections::BTreeSet;
use std::io::{BufRead, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::CommandFactory;

use crate::client::acls::{create_acls, delete_acls, describe_acls};
use crate::client::admin::admin_settings;
use crate::client::cluster::Client;
use crate::client::error::ClientError;
use crate::client::properties::{Properties, PropertiesError};
use crate::security::acl::{AclBinding, AclEntry, AclFilter, ResourcePattern};

use super::configs::exception_class;
use super::metadata_quorum::BOOTSTRAP_CONTROLLER_REFUSED;
use super::producer_perf::{parse_tool_command, RawArgs};

#[path = "acls_plan.rs"]
mod plan;

use plan::{AclsByPattern, Action};

/// The name usage messages give the tool.
const NAME: &str = "flink-acls.sh";

#[derive(clap::Parser, Debug, Default)]
#[command(
    name = NAME,
    version,
    disable_version_flag = true,
    about = "This tool helps to manage acls on kafka."
)]
pub struct Options {
    /// Show the version of this Flink distribution and exit.
    #[arg(long, action = clap::ArgAction::Version)]
    pub version: (),
    /// The brokers to connect to, host1:port1,host2:port2,...
    #[arg(long, value_name = "server to connect to")]
    pub bootstrap_server: Option<String>,
    /// Not supported: Flink controllers are reached through the brokers.
    #[arg(long, value_name = "controller to connect to")]
    pub bootstrap_controller: Option<String>,
    /// A property file with configs for the admin client (client.id, request.timeout.ms,
    /// security.protocol, ssl.*, sasl.*).
    #[arg(long, value_name = "command-config")]
    pub command_config: Option<PathBuf>,
    /// Add ACLs.
    #[arg(long)]
    pub add: bool,
    /// Remove ACLs.
    #[arg(long)]
    pub remove: bool,
    /// List the ACLs of the resources given (--topic, --group, --cluster, ...), or all ACLs.
    #[arg(long)]
    pub list: bool,
    /// A topic the ACLs apply to; '*' stands for all topics. Repeatable.
    #[arg(long, value_name = "topic")]
    pub topic: Vec<String>,
    /// The ACLs apply to the cluster.
    #[arg(long)]
    pub cluster: bool,
    /// A consumer group the ACLs apply to; '*' stands for all groups. Repeatable.
    #[arg(long, value_name = "group")]
    pub group: Vec<String>,
    /// A transactional id the ACLs apply to; '*' stands for all of them. Repeatable.
    #[arg(long, value_name = "transactional-id")]
    pub transactional_id: Vec<String>,
    /// With --producer: also IDEMPOTENT_WRITE on the cluster, for an idempotent producer without
    /// a transactional id.
    #[arg(long)]
    pub idempotent: bool,
    /// A delegation token the ACLs apply to; '*' stands for all tokens. Repeatable.
    #[arg(long, value_name = "delegation-token")]
    pub delegation_token: Vec<String>,
    /// A user principal the ACLs apply to as a resource (for CreateTokens and DescribeTokens).
    /// Repeatable.
    #[arg(long, value_name = "user-principal")]
    pub user_principal: Vec<String>,
    /// The pattern type of the resources: LITERAL or PREFIXED to add; to list or remove also ANY
    /// (every pattern type, the exact name) or MATCH (every pattern that applies to the name:
    /// take care with --remove). LITERAL when not given.
    #[arg(long, value_name = "ANY|MATCH|LITERAL|PREFIXED")]
    pub resource_pattern_type: Option<String>,
    /// An operation allowed or denied (All when not given): Read, Write, Create, Delete, Alter,
    /// Describe, ClusterAction, DescribeConfigs, AlterConfigs, IdempotentWrite, CreateTokens,
    /// DescribeTokens, TwoPhaseCommit, All. Repeatable.
    #[arg(long, value_name = "operation")]
    pub operation: Vec<String>,
    /// A principal to allow, principalType:name (User:'*' is every user). Repeatable.
    #[arg(long, value_name = "allow-principal")]
    pub allow_principal: Vec<String>,
    /// A principal to deny, principalType:name. Denials win over allowances. Repeatable.
    #[arg(long, value_name = "deny-principal")]
    pub deny_principal: Vec<String>,
    /// With --list: only the ACLs of this principal, principalType:name. Repeatable.
    #[arg(long, value_name = "principal")]
    pub principal: Vec<String>,
    /// A host the allowed principals may connect from ('*', every host, when not given).
    #[arg(long, value_name = "allow-host")]
    pub allow_host: Vec<String>,
    /// A host the denied principals are refused from ('*', every host, when not given).
    #[arg(long, value_name = "deny-host")]
    pub deny_host: Vec<String>,
    /// The ACLs of a producer: WRITE, DESCRIBE and CREATE on the topics, WRITE and DESCRIBE on
    /// the transactional ids.
    #[arg(long)]
    pub producer: bool,
    /// The ACLs of a consumer: READ and DESCRIBE on the topics, READ on the group.
    #[arg(long)]
    pub consumer: bool,
    /// Answer yes to every question instead of asking.
    #[arg(long)]
    pub force: bool,
}

/// Why a command fails; `report` prints each as Kafka's tool does.
#[derive(Debug, thiserror::Error)]
pub enum AclsError {
    /// A command line Kafka refuses with its usage (`CommandLineUtils.printUsageAndExit`).
    #[error("{0}")]
    Usage(String),
    /// A failure of the command itself (an option value Kafka cannot convert, an unanswered
    /// question).
    #[error("{0}")]
    Failed(String),
    #[error("{0}")]
    Properties(#[from] PropertiesError),
    #[error("{0}")]
    Client(#[from] ClientError),
    #[error("writing the output failed: {0}")]
    Output(#[from] std::io::Error),
}

pub fn run(args: RawArgs) -> ExitCode {
    let options = match parse_tool_command::<Options>(NAME, &args.arguments) {
        Ok(options) => options,
        Err(code) => return code,
    };
    let stdin = std::io::stdin();
    let stdout = std::io::stdout();
    match execute(&options, &mut stdin.lock(), &mut stdout.lock()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprint!("{}", report(&error));
            ExitCode::FAILURE
        }
    }
}

/// Runs the command, asking its questions on `input` and printing to `output`.
fn execute(
    options: &Options,
    input: &mut dyn BufRead,
    output: &mut dyn Write,
) -> Result<(), AclsError> {
    let action = plan::check_args(options)?;
    let Some(bootstrap_servers) = options.bootstrap_server.as_deref() else {
        return Err(AclsError::Usage(BOOTSTRAP_CONTROLLER_REFUSED.to_string()));
    };
    let properties = match &options.command_config {
        Some(path) => Properties::from_file(path)?,
        None => Properties::default(),
    };
    let settings = admin_settings(&properties)?;
    let connect = || Client::connect(bootstrap_servers, settings.clone());
    match action {
        Action::Add => add(&plan::acls_to_add(options)?, connect()?, output),
        Action::Remove => remove(
            &plan::acls_to_remove(options)?,
            options,
            &connect,
            input,
            output,
        ),
        Action::List => {
            let (filters, principals) = plan::list_request(options)?;
            let listed = list(&filters, connect()?)?;
            write_listing(&listed, &principals, output)
        }
    }
}

/// `--add`: per resource, the entries it lacks are announced and created; the others are named
/// as existing.
fn add(acls: &AclsByPattern, mut client: Client, output: &mut dyn Write) -> Result<(), AclsError> {
    for (pattern, entries) in acls {
        let existing = describe_acls(&mut client, &AclFilter::for_pattern(pattern, None))?;
        let mut missing = Vec::new();
        for entry in entries {
            let binding = AclBinding {
                pattern: pattern.clone(),
                entry: entry.clone(),
            };
            match existing.contains(&binding) {
                true => output.write_all(exists_text(&binding).as_bytes())?,
                false => missing.push(binding),
            }
        }
        if !missing.is_empty() {
            let text = adding_text(pattern, missing.iter().map(|binding| &binding.entry));
            output.write_all(text.as_bytes())?;
            create_acls(&mut client, &missing)?;
        }
    }
    Ok(())
}

/// `--remove`: per resource filter, once confirmed, its entries are deleted, or all its
/// bindings when no principal was given. Connects only once the first deletion is confirmed.
fn remove(
    acls: &AclsByPattern,
    options: &Options,
    connect: &dyn Fn() -> Result<Client, ClientError>,
    input: &mut dyn BufRead,
    output: &mut dyn Write,
) -> Result<(), AclsError> {
    let mut client: Option<Client> = None;
    for (filter, entries) in acls {
        let question = match entries.is_empty() {
            true => delete_all_question(filter),
            false => remove_question(filter, entries),
        };
        if !options.force && !confirm(&question, input, output)? {
            continue;
        }
        let filters: Vec<AclFilter> = match entries.is_empty() {
            true => vec![AclFilter::for_pattern(filter, None)],
            false => entries
                .iter()
                .map(|entry| AclFilter::for_pattern(filter, Some(entry)))
                .collect(),
        };
        if client.is_none() {
            client = Some(connect()?);
        }
        if let Some(client) = client.as_mut() {
            delete_acls(client, &filters)?;
        }
    }
    Ok(())
}

/// Asks `question` and reads the answer: `y` (in any case) confirms. No answer at all is a
/// failure, so that a script without --force does not delete by default.
fn confirm(
    question: &str,
    input: &mut dyn BufRead,
    output: &mut dyn Write,
) -> Result<bool, AclsError> {
    output.write_all(question.as_bytes())?;
    output.flush()?;
    let mut answer = String::new();
    if input.read_line(&mut answer)? == 0 {
        return Err(AclsError::Failed(
            "no answer to the question on standard input (use --force to answer yes)".to_string(),
        ));
    }
    Ok(answer
        .trim_end_matches(['\n', '\r'])
        .eq_ignore_ascii_case("y"))
}

/// `--list`: the bindings of every filter (of the whole cluster without one), by pattern.
fn list(
    filters: &BTreeSet<ResourcePattern>,
    mut client: Client,
) -> Result<AclsByPattern, AclsError> {
    let bindings = match filters.is_empty() {
        true => describe_acls(&mut client, &AclFilter::any())?,
        false => {
            let mut bindings = Vec::new();
            for filter in filters {
                bindings.extend(describe_acls(
                    &mut client,
                    &AclFilter::for_pattern(filter, None),
                )?);
            }
            bindings
        }
    };
    let mut by_pattern = AclsByPattern::new();
    for binding in bindings {
        by_pattern
            .entry(binding.pattern)
            .or_default()
            .insert(binding.entry);
    }
    Ok(by_pattern)
}

/// Prints the listing, or for each of `principals` the part of it that names the principal.
fn write_listing(
    listed: &AclsByPattern,
    principals: &BTreeSet<String>,
    output: &mut dyn Write,
) -> Result<(), AclsError> {
    if principals.is_empty() {
        output.write_all(current_text(listed).as_bytes())?;
        return Ok(());
    }
    for principal in principals {
        let mine: AclsByPattern = listed
            .iter()
            .filter_map(|(pattern, entries)| {
                let entries: BTreeSet<AclEntry> = entries
                    .iter()
                    .filter(|entry| entry.principal == *principal)
                    .cloned()
                    .collect();
                (!entries.is_empty()).then(|| (pattern.clone(), entries))
            })
            .collect();
        output.write_all(format!("ACLs for principal `{principal}`\n").as_bytes())?;
        output.write_all(current_text(&mine).as_bytes())?;
    }
    Ok(())
}

/// What stderr shows for `error`: Kafka's message and the usage for a refused command line;
/// otherwise its error line, and for an error from the cluster the admin client's exception.
fn report(error: &AclsError) -> String {
    match error {
        AclsError::Usage(message) => {
            format!("{message}\n{}", Options::command().render_help())
        }
        AclsError::Client(ClientError::Kafka(kafka)) => {
            let exception = format!(
                "org.apache.kafka.common.errors.{}: {}",
                exception_class(kafka),
                kafka.message()
            );
            format!(
                "Error while executing ACL command: {exception}\n\
                 java.util.concurrent.ExecutionException: {exception}\n"
            )
        }
        other => format!("Error while executing ACL command: {other}\n"),
    }
}

/// Entries one to a line, each after a tab, as Kafka joins them.
fn tabbed<'a>(entries: impl IntoIterator<Item = &'a AclEntry>) -> String {
    let lines: Vec<String> = entries
        .into_iter()
        .map(|entry| format!("\t{entry}"))
        .collect();
    lines.join("\n")
}

fn adding_text<'a>(
    pattern: &ResourcePattern,
    entries: impl Iterator<Item = &'a AclEntry>,
) -> String {
    format!(
        "Adding ACLs for resource `{pattern}`: \n {}\n\n",
        tabbed(entries)
    )
}

fn exists_text(binding: &AclBinding) -> String {
    format!("Acl {binding} already exists.\n")
}

/// `--list`'s blocks, one per resource pattern.
fn current_text(listed: &AclsByPattern) -> String {
    listed
        .iter()
        .map(|(pattern, entries)| {
            format!(
                "Current ACLs for resource `{pattern}`:\n{}\n\n",
                tabbed(entries)
            )
        })
        .collect()
}

fn delete_all_question(filter: &ResourcePattern) -> String {
    format!("Are you sure you want to delete all ACLs for resource filter `{filter}`? (y/n)\n")
}

fn remove_question(filter: &ResourcePattern, entries: &BTreeSet<AclEntry>) -> String {
    format!(
        "Are you sure you want to remove ACLs: \n {}\n from resource filter `{filter}`? (y/n)\n",
        tabbed(entries)
    )
}

#[cfg(test)]
#[path = "acls_tests.rs"]
mod tests;
