"""flink-acls.sh against a real broker with Kafka's standard authorizer, with the output,
questions, messages and exit codes of Kafka 4's kafka-acls.sh. What the tool creates and deletes
is checked with DescribeAcls through confluent-kafka's admin client, and what the bindings allow
with confluent-kafka clients authenticating as the principals they name.

The broker is test_acls.py's (its helpers and fixture are imported from there): the tool talks
to the PLAINTEXT listener, whose ANONYMOUS principal is a super user, or authenticates on the
SASL listener with `--command-config`, as do the clients under test. Each test uses principals and topics of its own and leaves no
binding behind.
"""

from __future__ import annotations

from confluent_kafka import KafkaError

from support import HOST, describe_run, failed, run_script, succeeded
from test_acls import (USERS, _report_broker, acl_broker, binding,  # noqa: F401 - fixtures
                       consume, create_acls, create_topics, delete_acls, describe_acls, produce)
from test_cli_security import client_properties, write_properties


def acls(broker, *args, input=None):
    """Runs flink-acls.sh against `broker`'s PLAINTEXT listener."""
    return run_script("flink-acls.sh", "--bootstrap-server", broker.bootstrap, *args,
                      input=input, check=False)


def pattern(resource_type: str, name: str, pattern_type: str = "LITERAL") -> str:
    return f"ResourcePattern(resourceType={resource_type}, name={name}, patternType={pattern_type})"


def entry(principal: str, operation: str, permission: str = "ALLOW", host: str = "*") -> str:
    return (f"(principal={principal}, host={host}, operation={operation}, "
            f"permissionType={permission})")


def tabbed(entries: list[str]) -> str:
    return "\n".join("\t" + text for text in entries)


def adding(resource: str, entries: list[str]) -> str:
    """Kafka's announcement of the ACLs --add creates for one resource."""
    return f"Adding ACLs for resource `{resource}`: \n {tabbed(entries)}\n\n"


def current(resource: str, entries: list[str]) -> str:
    """Kafka's block of --list for one resource."""
    return f"Current ACLs for resource `{resource}`:\n{tabbed(entries)}\n\n"


def strings(bindings) -> set[str]:
    return {str(acl) for acl in bindings}


def test_add_list_and_remove(acl_broker):
    """Literal and prefixed bindings are added (an existing one is named, not added again),
    listed by resource (MATCH shows every pattern that applies to a name), removed entry by
    entry with --force, and a whole resource after the question is answered: `n` keeps it."""
    frank = "User:frank"
    orders, prefix = pattern("TOPIC", "cli-orders"), pattern("TOPIC", "cli-", "PREFIXED")
    read, write = entry(frank, "READ"), entry(frank, "WRITE")
    deny = entry(frank, "DESCRIBE", "DENY", "10.0.0.9")

    out = succeeded(acls(acl_broker, "--add", "--topic", "cli-orders", "--allow-principal", frank,
                         "--operation", "Read", "--operation", "Write"))
    assert out == adding(orders, [read, write])
    out = succeeded(acls(acl_broker, "--add", "--topic", "cli-", "--resource-pattern-type",
                         "PREFIXED", "--deny-principal", frank, "--deny-host", "10.0.0.9",
                         "--operation", "Describe"))
    assert out == adding(prefix, [deny])
    assert describe_acls(acl_broker, frank) == strings([
        binding("TOPIC", "cli-orders", "LITERAL", frank, "READ"),
        binding("TOPIC", "cli-orders", "LITERAL", frank, "WRITE"),
        binding("TOPIC", "cli-", "PREFIXED", frank, "DESCRIBE", "DENY", host="10.0.0.9")])

    out = succeeded(acls(acl_broker, "--add", "--topic", "cli-orders", "--allow-principal", frank,
                         "--operation", "READ"))
    assert out == f"Acl (pattern={orders}, entry={read}) already exists.\n"

    assert succeeded(acls(acl_broker, "--list", "--topic", "cli-orders")) == current(
        orders, [read, write])
    matching = succeeded(acls(acl_broker, "--list", "--topic", "cli-orders",
                              "--resource-pattern-type", "match"))
    assert matching == current(orders, [read, write]) + current(prefix, [deny])

    succeeded(acls(acl_broker, "--remove", "--topic", "cli-orders", "--allow-principal", frank,
                   "--operation", "Read", "--force"))
    assert describe_acls(acl_broker, frank) == strings([
        binding("TOPIC", "cli-orders", "LITERAL", frank, "WRITE"),
        binding("TOPIC", "cli-", "PREFIXED", frank, "DESCRIBE", "DENY", host="10.0.0.9")])

    question = f"Are you sure you want to delete all ACLs for resource filter `{prefix}`? (y/n)\n"
    remove_prefix = ["--remove", "--topic", "cli-", "--resource-pattern-type", "prefixed"]
    assert succeeded(acls(acl_broker, *remove_prefix, input="n\n")) == question
    assert len(describe_acls(acl_broker, frank)) == 2
    assert succeeded(acls(acl_broker, *remove_prefix, input="y\n")) == question
    assert describe_acls(acl_broker, frank) == strings([
        binding("TOPIC", "cli-orders", "LITERAL", frank, "WRITE")])

    assert succeeded(acls(acl_broker, "--remove", "--topic", "cli-orders", "--force")) == ""
    assert describe_acls(acl_broker, frank) == set()


def test_producer_and_consumer_sets(acl_broker):
    """--producer and --consumer create exactly Kafka's bindings, which let bob produce and then
    consume where he could not before; --remove with the same options deletes exactly them."""
    bob = "User:bob"
    assert create_topics(acl_broker, ["cli-p"]) == {"cli-p": None}
    errors = produce(acl_broker, "bob", "cli-p", count=1)
    assert [error.code() for error in errors] == [KafkaError.TOPIC_AUTHORIZATION_FAILED]

    out = succeeded(acls(acl_broker, "--add", "--producer", "--topic", "cli-p",
                         "--transactional-id", "cli-tx", "--idempotent", "--allow-principal", bob))
    assert out == (adding(pattern("TOPIC", "cli-p"),
                          [entry(bob, "WRITE"), entry(bob, "CREATE"), entry(bob, "DESCRIBE")])
                   + adding(pattern("CLUSTER", "kafka-cluster"), [entry(bob, "IDEMPOTENT_WRITE")])
                   + adding(pattern("TRANSACTIONAL_ID", "cli-tx"),
                            [entry(bob, "WRITE"), entry(bob, "DESCRIBE")]))
    producer_set = [binding("TOPIC", "cli-p", "LITERAL", bob, operation)
                    for operation in ("WRITE", "DESCRIBE", "CREATE")]
    producer_set += [binding("TRANSACTIONAL_ID", "cli-tx", "LITERAL", bob, operation)
                     for operation in ("WRITE", "DESCRIBE")]
    # confluent-kafka names Kafka's CLUSTER resource type BROKER (code 4).
    producer_set.append(binding("BROKER", "kafka-cluster", "LITERAL", bob, "IDEMPOTENT_WRITE"))
    assert describe_acls(acl_broker, bob) == strings(producer_set)
    assert produce(acl_broker, "bob", "cli-p") == [None] * 5

    # The consume helper reads without a coordinator, under the group `unused-bob`.
    succeeded(acls(acl_broker, "--add", "--consumer", "--topic", "cli-p", "--group", "unused-bob",
                   "--allow-principal", bob))
    consumer_set = [binding("TOPIC", "cli-p", "LITERAL", bob, "READ"),
                    binding("GROUP", "unused-bob", "LITERAL", bob, "READ")]
    assert describe_acls(acl_broker, bob) == strings(producer_set + consumer_set)
    values, errors = consume(acl_broker, "bob", "cli-p", 5)
    assert (values, errors) == ([f"bob-{index}" for index in range(5)], [])

    succeeded(acls(acl_broker, "--remove", "--producer", "--consumer", "--idempotent", "--topic",
                   "cli-p", "--group", "unused-bob", "--transactional-id", "cli-tx",
                   "--allow-principal", bob, "--force"))
    assert describe_acls(acl_broker, bob) == set()


def test_list_by_principal(acl_broker):
    """--list --principal shows, per principal asked for, only the entries naming it."""
    henry, ivy = "User:henry", "User:ivy"
    create_acls(acl_broker, [binding("TOPIC", "cli-shared", "LITERAL", henry, "READ"),
                             binding("TOPIC", "cli-shared", "LITERAL", ivy, "WRITE"),
                             binding("GROUP", "cli-group", "LITERAL", ivy, "READ")])
    try:
        out = succeeded(acls(acl_broker, "--list", "--principal", ivy))
        assert out == (f"ACLs for principal `{ivy}`\n"
                       + current(pattern("TOPIC", "cli-shared"), [entry(ivy, "WRITE")])
                       + current(pattern("GROUP", "cli-group"), [entry(ivy, "READ")]))
        out = succeeded(acls(acl_broker, "--list", "--topic", "cli-shared", "--principal", ivy,
                             "--principal", henry))
        assert out == (f"ACLs for principal `{henry}`\n"
                       + current(pattern("TOPIC", "cli-shared"), [entry(henry, "READ")])
                       + f"ACLs for principal `{ivy}`\n"
                       + current(pattern("TOPIC", "cli-shared"), [entry(ivy, "WRITE")]))
    finally:
        delete_acls(acl_broker, henry)
        delete_acls(acl_broker, ivy)


def test_refused_command_lines(acl_broker):
    """Command lines Kafka refuses print its message (then the usage) on stderr, exit 1 and
    create nothing; so does a --remove whose question gets no answer."""
    jack = "User:jack"
    refusals = [
        (["--add", "--cluster", "--operation", "Read", "--allow-principal", jack],
         "ResourceType CLUSTER only supports operations [CREATE, CLUSTER_ACTION, "
         "DESCRIBE_CONFIGS, ALTER_CONFIGS, IDEMPOTENT_WRITE, ALTER, DESCRIBE, ALL]\n"),
        (["--add", "--consumer", "--topic", "t", "--allow-principal", jack],
         "With --consumer you must specify a --topic and a --group and no --cluster or "
         "--transactional-id option should be specified.\n"),
        (["--add", "--remove", "--topic", "t"],
         "Command must include exactly one action: --list, --add, --remove. \n"),
        (["--add", "--topic", "t"],
         "You must specify one of: --allow-principal, --deny-principal when trying to add "
         "ACLs.\n"),
    ]
    for args, message in refusals:
        stderr = failed(acls(acl_broker, *args))
        assert stderr.startswith(message) and "Usage: flink-acls.sh" in stderr, stderr
    stderr = failed(acls(acl_broker, "--add", "--topic", "t", "--allow-principal", "jack"))
    assert stderr == ("Error while executing ACL command: expected a string in format "
                      "principalType:principalName but got jack\n")
    assert describe_acls(acl_broker, jack) == set()

    create_acls(acl_broker, [binding("TOPIC", "cli-kept", "LITERAL", jack, "READ")])
    result = acls(acl_broker, "--remove", "--topic", "cli-kept", input="")
    assert result.returncode == 1 and "(y/n)" in result.stdout, describe_run(result)
    assert result.stderr.startswith("Error while executing ACL command: no answer"), result.stderr
    assert describe_acls(acl_broker, jack) == strings([
        binding("TOPIC", "cli-kept", "LITERAL", jack, "READ")])
    delete_acls(acl_broker, jack)


def test_over_sasl(acl_broker, tmp_path):
    """With --command-config the tool authenticates on the SASL listener: as the super user
    `admin` it adds and lists; as `alice`, who may not describe the cluster's ACLs, it fails
    with Kafka's CLUSTER_AUTHORIZATION_FAILED and exit code 1."""
    def as_user(user: str) -> list[str]:
        properties = client_properties("SASL_PLAINTEXT", tmp_path, user, USERS[user], "PLAIN")
        config = write_properties(tmp_path / f"{user}.properties", properties)
        return ["--bootstrap-server", f"{HOST}:{acl_broker.sasl_port}",
                "--command-config", str(config)]

    kate = "User:kate"
    resource, read = pattern("TOPIC", "cli-sasl"), entry(kate, "READ")
    try:
        out = succeeded(run_script("flink-acls.sh", *as_user("admin"), "--add", "--topic",
                                   "cli-sasl", "--allow-principal", kate, "--operation", "Read",
                                   check=False))
        assert out == adding(resource, [read])
        out = succeeded(run_script("flink-acls.sh", *as_user("admin"), "--list", "--topic",
                                   "cli-sasl", check=False))
        assert out == current(resource, [read])
        stderr = failed(run_script("flink-acls.sh", *as_user("alice"), "--list", check=False))
        assert stderr.startswith(
            "Error while executing ACL command: "
            "org.apache.kafka.common.errors.ClusterAuthorizationException: "), stderr
        assert describe_acls(acl_broker, kate) == strings([
            binding("TOPIC", "cli-sasl", "LITERAL", kate, "READ")])
    finally:
        delete_acls(acl_broker, kate)


def test_without_an_authorizer(broker):
    """Against a broker without `authorizer.class.name` every action fails with Kafka's
    SECURITY_DISABLED error, as kafka-acls.sh prints it, and exit code 1."""
    exception = ("org.apache.kafka.common.errors.SecurityDisabledException: "
                 "No Authorizer is configured.")
    expected = (f"Error while executing ACL command: {exception}\n"
                f"java.util.concurrent.ExecutionException: {exception}\n")
    assert failed(acls(broker, "--list")) == expected
    assert failed(acls(broker, "--add", "--topic", "t", "--allow-principal", "User:a")) == expected
    assert failed(acls(broker, "--remove", "--topic", "t", "--force")) == expected
