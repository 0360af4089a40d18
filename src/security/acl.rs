//! Access control lists with the semantics of Kafka's standard authorizer: the bindings
//! (a resource pattern and an entry), the filters CreateAcls, DescribeAcls and DeleteAcls use,
//! and the decision for one action. Pure: the bindings come from the metadata image, the
//! principal and host from the connection.
//!
//! A decision, as Kafka makes it: a super user may do everything; otherwise every binding whose
//! pattern matches the resource (the literal name, the literal wildcard `*`, or a prefix of the
//! name) and whose principal (or `User:*`) and host (or `*`) match is looked at. One DENY for
//! the operation (or ALL) refuses; otherwise one ALLOW for the operation, ALL, or an operation
//! that implies it (READ, WRITE, DELETE and ALTER imply DESCRIBE; ALTER_CONFIGS implies
//! DESCRIBE_CONFIGS) permits; a resource no binding matches at all is permitted only with
//! `allow.everyone.if.no.acl.found=true`.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

/// The name of the one CLUSTER resource.
pub const CLUSTER_NAME: &str = "kafka-cluster";
/// The resource name, principal and host that match every other.
pub const WILDCARD: &str = "*";
/// The principal that matches every principal.
pub const WILDCARD_PRINCIPAL: &str = "User:*";
/// The value of `authorizer.class.name` that turns ACLs on.
pub const STANDARD_AUTHORIZER: &str = "org.apache.kafka.metadata.authorizer.StandardAuthorizer";

/// Defines a Kafka enum with its wire codes and names; `Unknown` (code 0) is what an
/// unrecognised code decodes to.
macro_rules! kafka_enum {
    ($(#[$meta:meta])* $name:ident { $($variant:ident = $code:literal, $text:literal;)* }) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum $name {
            $($variant,)*
        }

        impl $name {
            pub fn code(self) -> i8 {
                match self {
                    $($name::$variant => $code,)*
                }
            }

            /// The value for `code`; `Unknown` for a code Kafka does not define.
            pub fn from_code(code: i8) -> $name {
                match code {
                    $($code => $name::$variant,)*
                    _ => $name::Unknown,
                }
            }

            /// Kafka's name (`TOPIC`, `PREFIXED`, `DESCRIBE_CONFIGS`, `ALLOW`).
            pub fn name(self) -> &'static str {
                match self {
                    $($name::$variant => $text,)*
                }
            }

            /// The value named `text`, in any case, as Kafka's tools accept it; `Unknown`
            /// names nothing.
            pub fn parse(text: &str) -> Option<$name> {
                let text = text.trim().to_ascii_uppercase().replace('-', "_");
                [$($name::$variant,)*]
                    .into_iter()
                    .filter(|value| *value != $name::Unknown)
                    .find(|value| value.name() == text)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
                formatter.write_str(self.name())
            }
        }
    };
}

kafka_enum!(
    /// Kafka's `ResourceType`.
    ResourceType {
        Unknown = 0, "UNKNOWN";
        Any = 1, "ANY";
        Topic = 2, "TOPIC";
        Group = 3, "GROUP";
        Cluster = 4, "CLUSTER";
        TransactionalId = 5, "TRANSACTIONAL_ID";
        DelegationToken = 6, "DELEGATION_TOKEN";
        User = 7, "USER";
    }
);

kafka_enum!(
    /// Kafka's `PatternType`: LITERAL and PREFIXED in bindings; ANY and MATCH in filters too.
    PatternType {
        Unknown = 0, "UNKNOWN";
        Any = 1, "ANY";
        Match = 2, "MATCH";
        Literal = 3, "LITERAL";
        Prefixed = 4, "PREFIXED";
    }
);

kafka_enum!(
    /// Kafka's `AclOperation`.
    Operation {
        Unknown = 0, "UNKNOWN";
        Any = 1, "ANY";
        All = 2, "ALL";
        Read = 3, "READ";
        Write = 4, "WRITE";
        Create = 5, "CREATE";
        Delete = 6, "DELETE";
        Alter = 7, "ALTER";
        Describe = 8, "DESCRIBE";
        ClusterAction = 9, "CLUSTER_ACTION";
        DescribeConfigs = 10, "DESCRIBE_CONFIGS";
        AlterConfigs = 11, "ALTER_CONFIGS";
        IdempotentWrite = 12, "IDEMPOTENT_WRITE";
        CreateTokens = 13, "CREATE_TOKENS";
        DescribeTokens = 14, "DESCRIBE_TOKENS";
        TwoPhaseCommit = 15, "TWO_PHASE_COMMIT";
    }
);

kafka_enum!(
    /// Kafka's `AclPermissionType`.
    Permission {
        Unknown = 0, "UNKNOWN";
        Any = 1, "ANY";
        Deny = 2, "DENY";
        Allow = 3, "ALLOW";
    }
);

impl Operation {
    /// Whether an ALLOW binding for `self` permits `wanted`.
    fn allows(self, wanted: Operation) -> bool {
        self == Operation::All
            || self == wanted
            || match wanted {
                Operation::Describe => matches!(
                    self,
                    Operation::Read | Operation::Write | Operation::Delete | Operation::Alter
                ),
                Operation::DescribeConfigs => self == Operation::AlterConfigs,
                _ => false,
            }
    }

    /// Whether a DENY binding for `self` refuses `wanted` (no implications for DENY).
    fn denies(self, wanted: Operation) -> bool {
        self == Operation::All || self == wanted
    }
}

impl ResourceType {
    /// The operations a binding on this resource type may name, as Kafka's `AclEntry` lists
    /// them (ALL included).
    pub fn supported_operations(self) -> &'static [Operation] {
        use Operation::*;
        match self {
            ResourceType::Topic => &[
                Read,
                Write,
                Create,
                Describe,
                Delete,
                Alter,
                DescribeConfigs,
                AlterConfigs,
                All,
            ],
            ResourceType::Group => &[Read, Describe, Delete, All],
            ResourceType::Cluster => &[
                Create,
                ClusterAction,
                DescribeConfigs,
                AlterConfigs,
                IdempotentWrite,
                Alter,
                Describe,
                All,
            ],
            ResourceType::TransactionalId => &[Describe, Write, TwoPhaseCommit, All],
            ResourceType::DelegationToken => &[Describe, All],
            ResourceType::User => &[CreateTokens, DescribeTokens, All],
            ResourceType::Any | ResourceType::Unknown => &[],
        }
    }
}

/// A resource pattern: what a binding applies to.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ResourcePattern {
    pub resource_type: ResourceType,
    pub pattern_type: PatternType,
    pub name: String,
}

impl fmt::Display for ResourcePattern {
    /// As Kafka's `ResourcePattern.toString`.
    fn fmt(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        write!(
            formatter,
            "ResourcePattern(resourceType={}, name={}, patternType={})",
            self.resource_type, self.name, self.pattern_type
        )
    }
}

/// Who may (or may not) do what from where.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct AclEntry {
    /// `Type:name`, e.g. `User:alice`; `User:*` for everyone.
    pub principal: String,
    /// A client address, or `*`.
    pub host: String,
    pub operation: Operation,
    pub permission: Permission,
}

impl fmt::Display for AclEntry {
    /// As Kafka's `AccessControlEntry.toString`.
    fn fmt(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        write!(
            formatter,
            "(principal={}, host={}, operation={}, permissionType={})",
            self.principal, self.host, self.operation, self.permission
        )
    }
}

/// One ACL.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct AclBinding {
    pub pattern: ResourcePattern,
    pub entry: AclEntry,
}

impl fmt::Display for AclBinding {
    /// As Kafka's `AclBinding.toString`.
    fn fmt(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        write!(
            formatter,
            "(pattern={}, entry={})",
            self.pattern, self.entry
        )
    }
}

/// Why a binding cannot be created (Kafka answers INVALID_REQUEST with the message).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AclError {
    #[error("Invalid resourceType {0}")]
    ResourceType(ResourceType),
    #[error("Invalid patternType {0}")]
    PatternType(PatternType),
    #[error("Invalid operation {0}")]
    Operation(Operation),
    #[error("Invalid permissionType {0}")]
    Permission(Permission),
    #[error("Invalid empty resource name")]
    EmptyName,
    #[error("The only valid name for the CLUSTER resource is {CLUSTER_NAME}")]
    ClusterName,
    #[error("Could not parse principal from `{0}` (no colon is present separating the principal type from the principal name)")]
    Principal(String),
    #[error("Invalid host: the host must not be empty")]
    EmptyHost,
}

impl AclBinding {
    /// Kafka's checks of a binding to create.
    pub fn validate(&self) -> Result<(), AclError> {
        let pattern = &self.pattern;
        if matches!(
            pattern.resource_type,
            ResourceType::Any | ResourceType::Unknown
        ) {
            return Err(AclError::ResourceType(pattern.resource_type));
        }
        if !matches!(
            pattern.pattern_type,
            PatternType::Literal | PatternType::Prefixed
        ) {
            return Err(AclError::PatternType(pattern.pattern_type));
        }
        if matches!(self.entry.operation, Operation::Any | Operation::Unknown) {
            return Err(AclError::Operation(self.entry.operation));
        }
        if !matches!(self.entry.permission, Permission::Allow | Permission::Deny) {
            return Err(AclError::Permission(self.entry.permission));
        }
        if pattern.name.is_empty() {
            return Err(AclError::EmptyName);
        }
        if pattern.resource_type == ResourceType::Cluster && pattern.name != CLUSTER_NAME {
            return Err(AclError::ClusterName);
        }
        match self.entry.principal.split_once(':') {
            Some((kind, name)) if !kind.is_empty() && !name.is_empty() => {}
            _ => return Err(AclError::Principal(self.entry.principal.clone())),
        }
        if self.entry.host.is_empty() {
            return Err(AclError::EmptyHost);
        }
        Ok(())
    }
}

/// Which bindings DescribeAcls and DeleteAcls mean: `None` and the ANY values match anything.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AclFilter {
    pub resource_type: ResourceType,
    pub name: Option<String>,
    /// ANY: every pattern type, the name compared as is; MATCH: every pattern that would
    /// apply to a resource called `name` (the literal name, the wildcard, its prefixes).
    pub pattern_type: PatternType,
    pub principal: Option<String>,
    pub host: Option<String>,
    pub operation: Operation,
    pub permission: Permission,
}

impl AclFilter {
    /// Kafka's `AclBindingFilter.ANY`: every binding.
    pub fn any() -> AclFilter {
        AclFilter {
            resource_type: ResourceType::Any,
            name: None,
            pattern_type: PatternType::Any,
            principal: None,
            host: None,
            operation: Operation::Any,
            permission: Permission::Any,
        }
    }

    /// The bindings of `pattern`, taken as a pattern filter (its pattern type may be ANY or
    /// MATCH), with exactly `entry` or, without one, any entry: Kafka's
    /// `new AclBindingFilter(pattern.toFilter(), entry.toFilter())`.
    pub fn for_pattern(pattern: &ResourcePattern, entry: Option<&AclEntry>) -> AclFilter {
        AclFilter {
            resource_type: pattern.resource_type,
            name: Some(pattern.name.clone()),
            pattern_type: pattern.pattern_type,
            principal: entry.map(|entry| entry.principal.clone()),
            host: entry.map(|entry| entry.host.clone()),
            operation: entry.map_or(Operation::Any, |entry| entry.operation),
            permission: entry.map_or(Permission::Any, |entry| entry.permission),
        }
    }

    /// Whether the filter can be served: no UNKNOWN value (Kafka answers INVALID_REQUEST).
    pub fn validate(&self) -> Result<(), AclError> {
        if self.resource_type == ResourceType::Unknown {
            return Err(AclError::ResourceType(self.resource_type));
        }
        if self.pattern_type == PatternType::Unknown {
            return Err(AclError::PatternType(self.pattern_type));
        }
        if self.operation == Operation::Unknown {
            return Err(AclError::Operation(self.operation));
        }
        if self.permission == Permission::Unknown {
            return Err(AclError::Permission(self.permission));
        }
        Ok(())
    }

    /// Kafka's `AclBindingFilter.matches`.
    pub fn matches(&self, binding: &AclBinding) -> bool {
        self.matches_pattern(&binding.pattern) && self.matches_entry(&binding.entry)
    }

    fn matches_pattern(&self, pattern: &ResourcePattern) -> bool {
        if self.resource_type != ResourceType::Any && self.resource_type != pattern.resource_type {
            return false;
        }
        let any_type = matches!(self.pattern_type, PatternType::Any | PatternType::Match);
        if !any_type && self.pattern_type != pattern.pattern_type {
            return false;
        }
        let Some(name) = &self.name else {
            return true;
        };
        if self.pattern_type == PatternType::Any || self.pattern_type == pattern.pattern_type {
            return *name == pattern.name;
        }
        match pattern.pattern_type {
            PatternType::Literal => *name == pattern.name || pattern.name == WILDCARD,
            PatternType::Prefixed => name.starts_with(&pattern.name),
            _ => false,
        }
    }

    fn matches_entry(&self, entry: &AclEntry) -> bool {
        self.principal
            .as_ref()
            .is_none_or(|principal| *principal == entry.principal)
            && self.host.as_ref().is_none_or(|host| *host == entry.host)
            && (self.operation == Operation::Any || self.operation == entry.operation)
            && (self.permission == Permission::Any || self.permission == entry.permission)
    }
}

/// Every ACL of the cluster, by resource pattern (the metadata image holds it).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Acls {
    by_pattern: BTreeMap<ResourcePattern, BTreeSet<AclEntry>>,
}

impl Acls {
    /// Adds `binding`; false if it was there already.
    pub fn insert(&mut self, binding: AclBinding) -> bool {
        self.by_pattern
            .entry(binding.pattern)
            .or_default()
            .insert(binding.entry)
    }

    /// Removes `binding`; false if it was not there.
    pub fn remove(&mut self, binding: &AclBinding) -> bool {
        let Some(entries) = self.by_pattern.get_mut(&binding.pattern) else {
            return false;
        };
        let removed = entries.remove(&binding.entry);
        if entries.is_empty() {
            self.by_pattern.remove(&binding.pattern);
        }
        removed
    }

    pub fn contains(&self, binding: &AclBinding) -> bool {
        self.by_pattern
            .get(&binding.pattern)
            .is_some_and(|entries| entries.contains(&binding.entry))
    }

    pub fn is_empty(&self) -> bool {
        self.by_pattern.is_empty()
    }

    /// Every binding, grouped by pattern in pattern order.
    pub fn iter(&self) -> impl Iterator<Item = AclBinding> + '_ {
        self.by_pattern.iter().flat_map(|(pattern, entries)| {
            entries.iter().map(|entry| AclBinding {
                pattern: pattern.clone(),
                entry: entry.clone(),
            })
        })
    }

    /// The bindings `filter` matches.
    pub fn matching<'a>(&'a self, filter: &'a AclFilter) -> impl Iterator<Item = AclBinding> + 'a {
        self.iter().filter(move |binding| filter.matches(binding))
    }

    /// The entries of every pattern that applies to the resource `name` of `resource_type`:
    /// its literal name, the literal wildcard, and every prefix pattern it starts with.
    fn applying<'a>(
        &'a self,
        resource_type: ResourceType,
        name: &'a str,
    ) -> impl Iterator<Item = &'a BTreeSet<AclEntry>> + 'a {
        let literal = |name: &str| ResourcePattern {
            resource_type,
            pattern_type: PatternType::Literal,
            name: name.to_string(),
        };
        let exact = self.by_pattern.get(&literal(name));
        let wildcard = match name == WILDCARD {
            true => None,
            false => self.by_pattern.get(&literal(WILDCARD)),
        };
        let first_prefixed = ResourcePattern {
            resource_type,
            pattern_type: PatternType::Prefixed,
            name: String::new(),
        };
        let prefixed = self
            .by_pattern
            .range(first_prefixed..)
            .take_while(move |(pattern, _)| {
                pattern.resource_type == resource_type
                    && pattern.pattern_type == PatternType::Prefixed
            })
            .filter(move |(pattern, _)| name.starts_with(&pattern.name))
            .map(|(_, entries)| entries);
        exact.into_iter().chain(wildcard).chain(prefixed)
    }

    /// Every entry of every pattern of `resource_type`.
    fn of_type(
        &self,
        resource_type: ResourceType,
    ) -> impl Iterator<Item = (&ResourcePattern, &AclEntry)> + '_ {
        let first = ResourcePattern {
            resource_type,
            pattern_type: PatternType::Unknown,
            name: String::new(),
        };
        self.by_pattern
            .range(first..)
            .take_while(move |(pattern, _)| pattern.resource_type == resource_type)
            .flat_map(|(pattern, entries)| entries.iter().map(move |entry| (pattern, entry)))
    }
}

/// Who asks: the connection's principal and the client's address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Requester<'a> {
    pub principal: &'a str,
    pub host: &'a str,
}

impl Requester<'_> {
    fn matches(&self, entry: &AclEntry) -> bool {
        (entry.principal == self.principal || entry.principal == WILDCARD_PRINCIPAL)
            && (entry.host == WILDCARD || entry.host == self.host)
    }
}

/// The standard authorizer's settings (`super.users`, `allow.everyone.if.no.acl.found`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Authorizer {
    pub super_users: BTreeSet<String>,
    pub allow_if_no_acl: bool,
}

impl Authorizer {
    /// Whether `requester` may do `operation` on the resource `name` of `resource_type`.
    pub fn authorize(
        &self,
        acls: &Acls,
        requester: &Requester,
        operation: Operation,
        resource_type: ResourceType,
        name: &str,
    ) -> bool {
        if self.super_users.contains(requester.principal) {
            return true;
        }
        let mut found = false;
        let mut allowed = false;
        for entries in acls.applying(resource_type, name) {
            found |= !entries.is_empty();
            for entry in entries.iter().filter(|entry| requester.matches(entry)) {
                match entry.permission {
                    Permission::Deny if entry.operation.denies(operation) => return false,
                    Permission::Allow if entry.operation.allows(operation) => allowed = true,
                    _ => {}
                }
            }
        }
        allowed || (!found && self.allow_if_no_acl)
    }

    /// Whether `requester` may do `operation` on some resource of `resource_type` (Kafka's
    /// `authorizeByResourceType`, which lets an idempotent producer with WRITE on any topic
    /// have a producer id): an ALLOW binding for it that no DENY binding covers.
    pub fn authorize_any(
        &self,
        acls: &Acls,
        requester: &Requester,
        operation: Operation,
        resource_type: ResourceType,
    ) -> bool {
        if self.super_users.contains(requester.principal) {
            return true;
        }
        let relevant = |permission: Permission| {
            acls.of_type(resource_type)
                .filter(move |(_, entry)| {
                    entry.permission == permission
                        && requester.matches(entry)
                        && entry.operation.denies(operation)
                })
                .map(|(pattern, _)| pattern)
        };
        let denied: Vec<&ResourcePattern> = relevant(Permission::Deny).collect();
        let covered = |allowed: &ResourcePattern| {
            denied.iter().any(|deny| match deny.pattern_type {
                PatternType::Literal => {
                    deny.name == WILDCARD
                        || (allowed.pattern_type == PatternType::Literal
                            && deny.name == allowed.name)
                }
                PatternType::Prefixed => allowed.name.starts_with(&deny.name),
                _ => false,
            })
        };
        if relevant(Permission::Allow).any(|allowed| !covered(allowed)) {
            return true;
        }
        self.allow_if_no_acl && acls.of_type(resource_type).next().is_none()
    }
}

#[cfg(test)]
#[path = "acl_tests.rs"]
mod tests;
