use super::*;

fn binding(
    resource_type: ResourceType,
    pattern_type: PatternType,
    name: &str,
    principal: &str,
    operation: Operation,
    permission: Permission,
) -> AclBinding {
    AclBinding {
        pattern: ResourcePattern {
            resource_type,
            pattern_type,
            name: name.into(),
        },
        entry: AclEntry {
            principal: principal.into(),
            host: WILDCARD.into(),
            operation,
            permission,
        },
    }
}

fn topic(
    pattern: PatternType,
    name: &str,
    operation: Operation,
    permission: Permission,
) -> AclBinding {
    binding(
        ResourceType::Topic,
        pattern,
        name,
        "User:alice",
        operation,
        permission,
    )
}

fn set_of(bindings: &[AclBinding]) -> Acls {
    let mut acls = Acls::default();
    for binding in bindings {
        acls.insert(binding.clone());
    }
    acls
}

const ALICE: Requester = Requester {
    principal: "User:alice",
    host: "127.0.0.1",
};
const BOB: Requester = Requester {
    principal: "User:bob",
    host: "127.0.0.1",
};

fn may(
    authorizer: &Authorizer,
    acls: &Acls,
    who: &Requester,
    operation: Operation,
    name: &str,
) -> bool {
    authorizer.authorize(acls, who, operation, ResourceType::Topic, name)
}

/// Proves literal, wildcard and prefixed patterns apply to the names Kafka applies them to,
/// and only for the principal they name.
#[test]
fn patterns_apply_as_in_kafka() {
    let authorizer = Authorizer::default();
    let acls = set_of(&[
        topic(
            PatternType::Literal,
            "orders",
            Operation::Write,
            Permission::Allow,
        ),
        topic(
            PatternType::Prefixed,
            "logs-",
            Operation::Read,
            Permission::Allow,
        ),
    ]);
    assert!(may(&authorizer, &acls, &ALICE, Operation::Write, "orders"));
    assert!(!may(
        &authorizer,
        &acls,
        &ALICE,
        Operation::Write,
        "orders2"
    ));
    assert!(!may(&authorizer, &acls, &ALICE, Operation::Write, "order"));
    assert!(may(&authorizer, &acls, &ALICE, Operation::Read, "logs-a"));
    assert!(may(&authorizer, &acls, &ALICE, Operation::Read, "logs-"));
    assert!(!may(&authorizer, &acls, &ALICE, Operation::Read, "logs"));
    assert!(!may(&authorizer, &acls, &BOB, Operation::Write, "orders"));

    let everyone = acls_with_wildcard();
    assert!(may(
        &authorizer,
        &everyone,
        &BOB,
        Operation::Read,
        "anything"
    ));
    assert!(!may(
        &authorizer,
        &everyone,
        &BOB,
        Operation::Write,
        "anything"
    ));
}

fn acls_with_wildcard() -> Acls {
    set_of(&[binding(
        ResourceType::Topic,
        PatternType::Literal,
        WILDCARD,
        WILDCARD_PRINCIPAL,
        Operation::Read,
        Permission::Allow,
    )])
}

/// Proves WRITE, READ, DELETE and ALTER imply DESCRIBE and ALTER_CONFIGS implies
/// DESCRIBE_CONFIGS for ALLOW only, ALL covers everything, and a DENY wins over any ALLOW.
#[test]
fn implications_and_deny() {
    let authorizer = Authorizer::default();
    for operation in [
        Operation::Read,
        Operation::Write,
        Operation::Delete,
        Operation::Alter,
    ] {
        let acls = set_of(&[topic(
            PatternType::Literal,
            "t",
            operation,
            Permission::Allow,
        )]);
        assert!(
            may(&authorizer, &acls, &ALICE, Operation::Describe, "t"),
            "{operation}"
        );
        assert!(!may(
            &authorizer,
            &acls,
            &ALICE,
            Operation::DescribeConfigs,
            "t"
        ));
    }
    let acls = set_of(&[topic(
        PatternType::Literal,
        "t",
        Operation::AlterConfigs,
        Permission::Allow,
    )]);
    assert!(may(
        &authorizer,
        &acls,
        &ALICE,
        Operation::DescribeConfigs,
        "t"
    ));
    assert!(!may(&authorizer, &acls, &ALICE, Operation::Describe, "t"));

    let all = set_of(&[topic(
        PatternType::Prefixed,
        "t",
        Operation::All,
        Permission::Allow,
    )]);
    assert!(may(&authorizer, &all, &ALICE, Operation::Delete, "topic"));

    let denied = set_of(&[
        topic(
            PatternType::Prefixed,
            "t",
            Operation::All,
            Permission::Allow,
        ),
        topic(
            PatternType::Literal,
            "topic",
            Operation::Write,
            Permission::Deny,
        ),
    ]);
    assert!(!may(
        &authorizer,
        &denied,
        &ALICE,
        Operation::Write,
        "topic"
    ));
    assert!(may(&authorizer, &denied, &ALICE, Operation::Read, "topic"));
    // A DENY of READ does not deny DESCRIBE.
    let read_denied = set_of(&[
        topic(
            PatternType::Literal,
            "t",
            Operation::Describe,
            Permission::Allow,
        ),
        topic(PatternType::Literal, "t", Operation::Read, Permission::Deny),
    ]);
    assert!(may(
        &authorizer,
        &read_denied,
        &ALICE,
        Operation::Describe,
        "t"
    ));
    // A DENY for everyone, from a wildcard resource, applies to alice too.
    let everyone_denied = set_of(&[
        topic(
            PatternType::Literal,
            "t",
            Operation::Read,
            Permission::Allow,
        ),
        binding(
            ResourceType::Topic,
            PatternType::Literal,
            WILDCARD,
            WILDCARD_PRINCIPAL,
            Operation::Read,
            Permission::Deny,
        ),
    ]);
    assert!(!may(
        &authorizer,
        &everyone_denied,
        &ALICE,
        Operation::Read,
        "t"
    ));
}

/// Proves super users bypass every binding, hosts must match, and a resource without any
/// binding is open only with `allow.everyone.if.no.acl.found`.
#[test]
fn super_users_hosts_and_the_no_acl_rule() {
    let mut authorizer = Authorizer::default();
    let mut from_elsewhere = topic(
        PatternType::Literal,
        "t",
        Operation::Read,
        Permission::Allow,
    );
    from_elsewhere.entry.host = "10.0.0.9".into();
    let acls = set_of(&[from_elsewhere]);
    assert!(!may(&authorizer, &acls, &ALICE, Operation::Read, "t"));
    let remote = Requester {
        principal: "User:alice",
        host: "10.0.0.9",
    };
    assert!(may(&authorizer, &acls, &remote, Operation::Read, "t"));

    assert!(!may(
        &authorizer,
        &acls,
        &ALICE,
        Operation::Read,
        "untouched"
    ));
    authorizer.allow_if_no_acl = true;
    assert!(may(
        &authorizer,
        &acls,
        &ALICE,
        Operation::Read,
        "untouched"
    ));
    // The rule looks at the resource's bindings, anyone's: "t" has one, for another host.
    assert!(!may(&authorizer, &acls, &ALICE, Operation::Read, "t"));

    authorizer.allow_if_no_acl = false;
    authorizer.super_users.insert("User:bob".into());
    assert!(may(&authorizer, &acls, &BOB, Operation::Delete, "t"));
    assert!(authorizer.authorize(
        &acls,
        &BOB,
        Operation::Alter,
        ResourceType::Cluster,
        CLUSTER_NAME
    ));
}

/// Proves the by-type check finds an ALLOW on any topic unless a DENY covers it.
#[test]
fn authorizes_by_resource_type() {
    let authorizer = Authorizer::default();
    let write = topic(
        PatternType::Prefixed,
        "out-",
        Operation::Write,
        Permission::Allow,
    );
    let any = |acls: &Acls, who: &Requester| {
        authorizer.authorize_any(acls, who, Operation::Write, ResourceType::Topic)
    };
    let alone = set_of(std::slice::from_ref(&write));
    assert!(any(&alone, &ALICE));
    assert!(!any(&alone, &BOB));
    let denied = topic(
        PatternType::Prefixed,
        "out",
        Operation::Write,
        Permission::Deny,
    );
    assert!(!any(&set_of(&[write.clone(), denied]), &ALICE));
    let literal_elsewhere = topic(
        PatternType::Literal,
        "other",
        Operation::Write,
        Permission::Deny,
    );
    assert!(any(&set_of(&[write, literal_elsewhere]), &ALICE));
    assert!(!any(&Acls::default(), &ALICE));
}

/// Proves the filters of DescribeAcls and DeleteAcls select what Kafka's select: ANY compares
/// names as given, MATCH every pattern that applies to the name.
#[test]
fn filters_match_as_in_kafka() {
    let literal = topic(
        PatternType::Literal,
        "orders",
        Operation::Write,
        Permission::Allow,
    );
    let prefixed = topic(
        PatternType::Prefixed,
        "ord",
        Operation::Read,
        Permission::Allow,
    );
    let wildcard = topic(
        PatternType::Literal,
        WILDCARD,
        Operation::Read,
        Permission::Deny,
    );
    let group = binding(
        ResourceType::Group,
        PatternType::Literal,
        "orders",
        "User:bob",
        Operation::Read,
        Permission::Allow,
    );
    let all = set_of(&[
        literal.clone(),
        prefixed.clone(),
        wildcard.clone(),
        group.clone(),
    ]);
    let filter = |resource_type, name: Option<&str>, pattern_type| AclFilter {
        resource_type,
        name: name.map(str::to_string),
        pattern_type,
        principal: None,
        host: None,
        operation: Operation::Any,
        permission: Permission::Any,
    };
    let found = |filter: &AclFilter| all.matching(filter).collect::<Vec<_>>();
    assert_eq!(
        found(&filter(ResourceType::Any, None, PatternType::Any)).len(),
        4
    );
    assert_eq!(
        found(&filter(
            ResourceType::Topic,
            Some("orders"),
            PatternType::Any
        )),
        vec![literal.clone()]
    );
    let mut matched = found(&filter(
        ResourceType::Topic,
        Some("orders"),
        PatternType::Match,
    ));
    matched.sort();
    let mut expected = vec![literal.clone(), prefixed.clone(), wildcard.clone()];
    expected.sort();
    assert_eq!(matched, expected);
    assert_eq!(
        found(&filter(ResourceType::Topic, None, PatternType::Prefixed)),
        vec![prefixed]
    );
    let mut bob = filter(ResourceType::Any, None, PatternType::Any);
    bob.principal = Some("User:bob".into());
    assert_eq!(found(&bob), vec![group]);
    let mut denies = filter(ResourceType::Topic, None, PatternType::Any);
    denies.permission = Permission::Deny;
    assert_eq!(found(&denies), vec![wildcard]);
}

/// Proves creation refuses what Kafka refuses, with its messages.
#[test]
fn validates_new_bindings() {
    let good = topic(
        PatternType::Literal,
        "t",
        Operation::Write,
        Permission::Allow,
    );
    assert_eq!(good.validate(), Ok(()));
    let mut bad = good.clone();
    bad.pattern.pattern_type = PatternType::Match;
    assert_eq!(
        bad.validate(),
        Err(AclError::PatternType(PatternType::Match))
    );
    let mut bad = good.clone();
    bad.entry.operation = Operation::Any;
    assert!(bad.validate().is_err());
    let mut bad = good.clone();
    bad.entry.principal = "alice".into();
    assert!(bad.validate().unwrap_err().to_string().contains("no colon"));
    let mut bad = good.clone();
    bad.pattern.name.clear();
    assert_eq!(bad.validate(), Err(AclError::EmptyName));
    let cluster = binding(
        ResourceType::Cluster,
        PatternType::Literal,
        "c",
        "User:a",
        Operation::Alter,
        Permission::Allow,
    );
    assert_eq!(cluster.validate(), Err(AclError::ClusterName));
}

/// Proves codes and names round-trip, unknown codes decode to UNKNOWN, and names parse in
/// Kafka's tool spellings.
#[test]
fn codes_and_names() {
    for code in 0..16 {
        assert_eq!(Operation::from_code(code).code(), code);
    }
    assert_eq!(ResourceType::from_code(99), ResourceType::Unknown);
    assert_eq!(
        Operation::parse("describe-configs"),
        Some(Operation::DescribeConfigs)
    );
    assert_eq!(Operation::parse("IdempotentWrite"), None);
    assert_eq!(PatternType::parse("prefixed"), Some(PatternType::Prefixed));
    assert_eq!(ResourceType::parse("unknown"), None);
    let binding = topic(
        PatternType::Literal,
        "t",
        Operation::Write,
        Permission::Allow,
    );
    assert_eq!(
        format!("{} {}", binding.pattern, binding.entry),
        "ResourcePattern(resourceType=TOPIC, name=t, patternType=LITERAL) \
         (principal=User:alice, host=*, operation=WRITE, permissionType=ALLOW)"
    );
    assert_eq!(
        binding.to_string(),
        "(pattern=ResourcePattern(resourceType=TOPIC, name=t, patternType=LITERAL), \
         entry=(principal=User:alice, host=*, operation=WRITE, permissionType=ALLOW))"
    );
}

/// Proves the filters the tools build match what Kafka's `AclBindingFilter`s match: ANY all,
/// a pattern's filter its bindings (with one entry, only that entry).
#[test]
fn filters_for_patterns() {
    let write = topic(
        PatternType::Literal,
        "t",
        Operation::Write,
        Permission::Allow,
    );
    let mut read = write.clone();
    read.entry.operation = Operation::Read;
    let mut prefixed = read.clone();
    prefixed.pattern.pattern_type = PatternType::Prefixed;
    assert!([&write, &read, &prefixed]
        .iter()
        .all(|binding| AclFilter::any().matches(binding)));
    let of_pattern = AclFilter::for_pattern(&write.pattern, None);
    assert!(of_pattern.matches(&write) && of_pattern.matches(&read));
    assert!(!of_pattern.matches(&prefixed));
    let of_entry = AclFilter::for_pattern(&write.pattern, Some(&write.entry));
    assert!(of_entry.matches(&write) && !of_entry.matches(&read));
    let mut any_type = write.pattern.clone();
    any_type.pattern_type = PatternType::Any;
    let across = AclFilter::for_pattern(&any_type, None);
    assert!(across.matches(&write) && across.matches(&prefixed));
}

/// Proves removal forgets empty patterns and reports what it did.
#[test]
fn insert_and_remove() {
    let mut all = Acls::default();
    let one = topic(
        PatternType::Literal,
        "t",
        Operation::Write,
        Permission::Allow,
    );
    assert!(all.insert(one.clone()));
    assert!(!all.insert(one.clone()));
    assert!(all.contains(&one));
    assert!(all.remove(&one));
    assert!(!all.remove(&one));
    assert!(all.is_empty());
}
