//! What an acls command line asks for, worked out as Kafka's AclCommand works it out before
//! it sends a request: the checks of its option combinations, the entries `--add` creates and
//! `--remove` deletes for each resource pattern (a pattern filter for `--remove`, whose pattern
//! type may be ANY or MATCH), and the filters and principals of `--list`. Pure: options in,
//! bindings or Kafka's refusal out.

use std::collections::{BTreeMap, BTreeSet};

use super::{AclsError, Options};
use crate::security::acl::{
    AclEntry, Operation, PatternType, Permission, ResourcePattern, ResourceType, CLUSTER_NAME,
    WILDCARD,
};

/// The entries of each resource pattern (or pattern filter), ordered for printing.
pub type AclsByPattern = BTreeMap<ResourcePattern, BTreeSet<AclEntry>>;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    Add,
    Remove,
    List,
}

const NO_RESOURCE: &str = "You must provide at least one resource: --topic <topic> or --cluster \
    or --group <group> or --delegation-token <Delegation Token ID>";
const NO_PRINCIPAL: &str =
    "You must specify one of: --allow-principal, --deny-principal when trying to add ACLs.";
const CONSUMER_RESOURCES: &str = "With --consumer you must specify a --topic and a --group and \
    no --cluster or --transactional-id option should be specified.";

/// Kafka's checks of the option combinations, in its order; the one action asked for.
pub fn check_args(options: &Options) -> Result<Action, AclsError> {
    let usage = |message: &str| Err(AclsError::Usage(message.to_string()));
    match (&options.bootstrap_server, &options.bootstrap_controller) {
        (Some(_), Some(_)) => {
            return usage(
                "Only one of --bootstrap-server or --bootstrap-controller must be specified",
            )
        }
        (None, None) => {
            return usage("One of --bootstrap-server or --bootstrap-controller must be specified")
        }
        _ => {}
    }
    let actions = [
        (options.list, Action::List),
        (options.add, Action::Add),
        (options.remove, Action::Remove),
    ];
    let chosen: Vec<Action> = actions
        .into_iter()
        .filter_map(|(given, action)| given.then_some(action))
        .collect();
    let [action] = chosen[..] else {
        return usage("Command must include exactly one action: --list, --add, --remove. ");
    };
    let denials = [
        ("deny-principal", !options.deny_principal.is_empty()),
        ("deny-host", !options.deny_host.is_empty()),
    ];
    let with_list = [
        ("producer", options.producer),
        ("consumer", options.consumer),
        ("allow-host", !options.allow_host.is_empty()),
        ("allow-principal", !options.allow_principal.is_empty()),
        ("deny-host", !options.deny_host.is_empty()),
        ("deny-principal", !options.deny_principal.is_empty()),
    ];
    let with_role = [
        ("operation", !options.operation.is_empty()),
        denials[0],
        denials[1],
    ];
    refuse_with("list", options.list, &with_list)?;
    refuse_with("producer", options.producer, &with_role)?;
    refuse_with("consumer", options.consumer, &with_role)?;
    if !options.principal.is_empty() && !options.list {
        return usage("The --principal option is only available if --list is set");
    }
    if options.producer && options.topic.is_empty() {
        return usage("With --producer you must specify a --topic");
    }
    if options.idempotent && !options.producer {
        return usage("The --idempotent option is only available if --producer is set");
    }
    let other_resources = options.cluster || !options.transactional_id.is_empty();
    if options.consumer
        && (options.topic.is_empty()
            || options.group.is_empty()
            || (!options.producer && other_resources))
    {
        return usage(CONSUMER_RESOURCES);
    }
    Ok(action)
}

/// Kafka's `checkInvalidArgs`: `used` refuses every option of `invalid` that was given.
fn refuse_with(used: &str, given: bool, invalid: &[(&str, bool)]) -> Result<(), AclsError> {
    match invalid
        .iter()
        .find(|(_, other_given)| given && *other_given)
    {
        Some((other, _)) => Err(AclsError::Usage(format!(
            "Option \"[{used}]\" can't be used with option \"[{other}]\""
        ))),
        None => Ok(()),
    }
}

/// `--add`: the bindings to create, by resource pattern.
pub fn acls_to_add(options: &Options) -> Result<AclsByPattern, AclsError> {
    let pattern_type = pattern_type(options)?;
    if !matches!(pattern_type, PatternType::Literal | PatternType::Prefixed) {
        return Err(AclsError::Usage(format!(
            "A '--resource-pattern-type' value of '{pattern_type}' is not valid when adding acls."
        )));
    }
    let acls = acls_by_filter(options)?;
    if acls.values().any(BTreeSet::is_empty) {
        return Err(AclsError::Usage(NO_PRINCIPAL.to_string()));
    }
    Ok(acls)
}

/// `--remove`: the entries to delete by pattern filter; an empty set deletes every binding of
/// its filter.
pub fn acls_to_remove(options: &Options) -> Result<AclsByPattern, AclsError> {
    acls_by_filter(options)
}

/// `--list`: the pattern filters to describe (none: every binding) and the principals to show
/// (none: all).
pub fn list_request(
    options: &Options,
) -> Result<(BTreeSet<ResourcePattern>, BTreeSet<String>), AclsError> {
    let filters = resource_filters(options, pattern_type(options)?);
    Ok((filters, principals(&options.principal)?))
}

/// Kafka's `getResourceFilterToAcls`: the options' own entries, or the roles' (a consumer's
/// added to a producer's), then the operations checked against each resource type.
fn acls_by_filter(options: &Options) -> Result<AclsByPattern, AclsError> {
    let pattern_type = pattern_type(options)?;
    let mut acls = AclsByPattern::new();
    if !options.producer && !options.consumer {
        let operations: Vec<Operation> = match options.operation.is_empty() {
            true => vec![Operation::All],
            false => options
                .operation
                .iter()
                .map(|name| operation(name))
                .collect(),
        };
        let entries = entries(options, &operations)?;
        for filter in required_resources(options, pattern_type)? {
            acls.insert(filter, entries.clone());
        }
    }
    if options.producer {
        acls.extend(producer_acls(options, pattern_type)?);
    }
    if options.consumer {
        for (filter, entries) in consumer_acls(options, pattern_type)? {
            acls.entry(filter).or_default().extend(entries);
        }
    }
    validate_operations(&acls)?;
    Ok(acls)
}

/// `--producer`: WRITE, DESCRIBE and CREATE on the topics, WRITE and DESCRIBE on the
/// transactional ids, and with `--idempotent` IDEMPOTENT_WRITE on the cluster.
fn producer_acls(options: &Options, pattern_type: PatternType) -> Result<AclsByPattern, AclsError> {
    use Operation::{Create, Describe, IdempotentWrite, Write};
    let filters = required_resources(options, pattern_type)?;
    let topic = entries(options, &[Write, Describe, Create])?;
    let transactional = entries(options, &[Write, Describe])?;
    let roles = [
        (ResourceType::Topic, &topic),
        (ResourceType::TransactionalId, &transactional),
    ];
    let mut acls = role_acls(filters, &roles);
    if options.idempotent {
        acls.insert(cluster(), entries(options, &[IdempotentWrite])?);
    }
    Ok(acls)
}

/// `--consumer`: READ and DESCRIBE on the topics, READ on the groups.
fn consumer_acls(options: &Options, pattern_type: PatternType) -> Result<AclsByPattern, AclsError> {
    let filters = required_resources(options, pattern_type)?;
    let topic = entries(options, &[Operation::Read, Operation::Describe])?;
    let group = entries(options, &[Operation::Read])?;
    let roles = [(ResourceType::Topic, &topic), (ResourceType::Group, &group)];
    Ok(role_acls(filters, &roles))
}

/// A role's entries for each filter of a resource type the role has entries for; the other
/// resources named are left out.
fn role_acls(
    filters: BTreeSet<ResourcePattern>,
    roles: &[(ResourceType, &BTreeSet<AclEntry>)],
) -> AclsByPattern {
    filters
        .into_iter()
        .filter_map(|filter| {
            let (_, entries) = roles
                .iter()
                .find(|(resource_type, _)| *resource_type == filter.resource_type)?;
            Some((filter, (*entries).clone()))
        })
        .collect()
}

/// Kafka's `validateOperation`: every entry's operation must be one its resource type has.
fn validate_operations(acls: &AclsByPattern) -> Result<(), AclsError> {
    for (filter, entries) in acls {
        let supported = filter.resource_type.supported_operations();
        if entries
            .iter()
            .any(|entry| !supported.contains(&entry.operation))
        {
            let names: Vec<&str> = supported.iter().map(|operation| operation.name()).collect();
            return Err(AclsError::Usage(format!(
                "ResourceType {} only supports operations [{}]",
                filter.resource_type,
                names.join(", ")
            )));
        }
    }
    Ok(())
}

/// Kafka's `getAcl`: an ALLOW entry for every allowed principal, operation and allowed host,
/// and a DENY entry likewise. Without hosts a principal's kind gets every host.
fn entries(options: &Options, operations: &[Operation]) -> Result<BTreeSet<AclEntry>, AclsError> {
    let kinds = [
        (
            Permission::Allow,
            &options.allow_principal,
            &options.allow_host,
        ),
        (
            Permission::Deny,
            &options.deny_principal,
            &options.deny_host,
        ),
    ];
    let mut entries = BTreeSet::new();
    for (permission, principal_values, host_values) in kinds {
        let hosts = hosts(host_values, !principal_values.is_empty());
        for principal in principals(principal_values)? {
            for operation in operations {
                for host in &hosts {
                    entries.insert(AclEntry {
                        principal: principal.clone(),
                        host: host.clone(),
                        operation: *operation,
                        permission,
                    });
                }
            }
        }
    }
    Ok(entries)
}

/// The hosts given, trimmed; `*` when none is but principals of their kind are.
fn hosts(values: &[String], principals_given: bool) -> BTreeSet<String> {
    match (values.is_empty(), principals_given) {
        (false, _) => values.iter().map(|host| host.trim().to_string()).collect(),
        (true, true) => BTreeSet::from([WILDCARD.to_string()]),
        (true, false) => BTreeSet::new(),
    }
}

/// Principals as Kafka's `parseKafkaPrincipal` takes them: `principalType:name`, trimmed.
fn principals(values: &[String]) -> Result<BTreeSet<String>, AclsError> {
    values
        .iter()
        .map(|value| {
            let principal = value.trim();
            match principal.contains(':') {
                true => Ok(principal.to_string()),
                false => Err(AclsError::Failed(format!(
                    "expected a string in format principalType:principalName but got {principal}"
                ))),
            }
        })
        .collect()
}

/// An operation as Kafka's `SecurityUtils.operation` reads it: its PascalCase name
/// (`IdempotentWrite`) or that name in capitals (`IDEMPOTENTWRITE`, `read`); anything else is
/// UNKNOWN, which no resource type supports.
fn operation(text: &str) -> Operation {
    let wanted = text.trim().to_uppercase();
    (0..=i8::MAX)
        .map(Operation::from_code)
        .find(|operation| operation.name().replace('_', "") == wanted)
        .unwrap_or(Operation::Unknown)
}

/// `--resource-pattern-type`, LITERAL when not given; a value Kafka's converter refuses is a
/// failure of the command, as in Kafka.
fn pattern_type(options: &Options) -> Result<PatternType, AclsError> {
    let Some(text) = &options.resource_pattern_type else {
        return Ok(PatternType::Literal);
    };
    PatternType::parse(text).ok_or_else(|| {
        AclsError::Failed(format!(
            "Cannot parse argument '{text}' of option resource-pattern-type"
        ))
    })
}

/// `resource_filters`, refusing a command line that names no resource.
fn required_resources(
    options: &Options,
    pattern_type: PatternType,
) -> Result<BTreeSet<ResourcePattern>, AclsError> {
    let filters = resource_filters(options, pattern_type);
    match filters.is_empty() {
        true => Err(AclsError::Usage(NO_RESOURCE.to_string())),
        false => Ok(filters),
    }
}

/// Kafka's `getResourceFilter`: a pattern filter of `pattern_type` for every resource named;
/// the cluster (`--cluster`, `--idempotent`) only with LITERAL, its one pattern type. Names are
/// trimmed, transactional ids excepted, as Kafka does.
fn resource_filters(options: &Options, pattern_type: PatternType) -> BTreeSet<ResourcePattern> {
    let named = |resource_type: ResourceType, names: &[String], trim: bool| {
        names
            .iter()
            .map(move |name| ResourcePattern {
                resource_type,
                pattern_type,
                name: match trim {
                    true => name.trim().to_string(),
                    false => name.clone(),
                },
            })
            .collect::<Vec<_>>()
    };
    let mut filters = BTreeSet::new();
    filters.extend(named(ResourceType::Topic, &options.topic, true));
    if pattern_type == PatternType::Literal && (options.cluster || options.idempotent) {
        filters.insert(cluster());
    }
    filters.extend(named(ResourceType::Group, &options.group, true));
    let transactional_ids = &options.transactional_id;
    filters.extend(named(
        ResourceType::TransactionalId,
        transactional_ids,
        false,
    ));
    filters.extend(named(
        ResourceType::DelegationToken,
        &options.delegation_token,
        true,
    ));
    filters.extend(named(ResourceType::User, &options.user_principal, true));
    filters
}

/// The one CLUSTER resource.
fn cluster() -> ResourcePattern {
    ResourcePattern {
        resource_type: ResourceType::Cluster,
        pattern_type: PatternType::Literal,
        name: CLUSTER_NAME.to_string(),
    }
}
