"""flink-configs.sh and flink-topics.sh --alter against a real broker, with the lines, messages and
exit codes of Kafka's kafka-configs.sh and kafka-topics.sh: topic configs are added, shown with
where each value comes from, and deleted; broker defaults reach topics; partitions only grow. What
the tools show is checked against confluent-kafka's AdminClient, a client that is not ours."""

from __future__ import annotations

from confluent_kafka.admin import (AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource,
                                   ConfigSource, ResourceType)

from support import create_topic, describe_run, run_script

ADMIN_TIMEOUT_S = 30
# Kafka's built-in defaults, which the dist's server.properties leaves alone.
SEGMENT_BYTES_DEFAULT = "1073741824"
RETENTION_HOURS_DEFAULT = "168"
MESSAGE_MAX_BYTES_DEFAULT = "1048588"


def configs_tool(broker, *args, check=True):
    return run_script("flink-configs.sh", "--bootstrap-server", broker.bootstrap, *args,
                      check=check)


def topics_tool(broker, *args, check=True):
    return run_script("flink-topics.sh", "--bootstrap-server", broker.bootstrap, *args,
                      check=check)


def described(result):
    """The header line and the entry lines (name -> line) of a --describe of one entity."""
    lines = result.stdout.splitlines()
    assert lines, describe_run(result)
    entries = {}
    for line in lines[1:]:
        assert line.startswith("  ") and "=" in line, describe_run(result)
        entries[line[2:].split("=", 1)[0]] = line
    assert list(entries) == sorted(entries), "entries come sorted by name:\n" + result.stdout
    return lines[0], entries


def admin_configs(broker, resource_type, name):
    """The configs confluent-kafka's AdminClient sees for one resource, by name."""
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    futures = admin.describe_configs([ConfigResource(resource_type, name)],
                                     request_timeout=ADMIN_TIMEOUT_S)
    (future,) = futures.values()
    return future.result(timeout=ADMIN_TIMEOUT_S)


def source(entry):
    """An entry's source as the enum (confluent-kafka hands some out as plain integers)."""
    return ConfigSource(entry.source)


def test_topic_configs_are_added_described_and_deleted(broker):
    """A new topic has no dynamic configs; --add-config sets two (one a bracketed list), which
    --describe shows with DYNAMIC_TOPIC_CONFIG first among their synonyms, --all adds every
    default, and --delete-config removes them again. confluent-kafka sees the same values, and
    a change it makes shows in our --describe."""
    create_topic(broker, "orders")
    result = configs_tool(broker, "--describe", "--entity-type", "topics", "--entity-name",
                          "orders")
    assert result.stdout == "Dynamic configs for topic orders are:\n", describe_run(result)

    result = configs_tool(broker, "--alter", "--entity-type", "topics", "--entity-name", "orders",
                          "--add-config", "retention.ms=86400000,cleanup.policy=[compact,delete]")
    assert result.stdout == "Completed updating config for topic orders.\n", describe_run(result)

    header, entries = described(configs_tool(broker, "--describe", "--topic", "orders"))
    assert header == "Dynamic configs for topic orders are:"
    assert entries == {
        "cleanup.policy": "  cleanup.policy=compact,delete sensitive=false synonyms="
                          "{DYNAMIC_TOPIC_CONFIG:cleanup.policy=compact,delete, "
                          "DEFAULT_CONFIG:log.cleanup.policy=delete}",
        "retention.ms": "  retention.ms=86400000 sensitive=false synonyms="
                        "{DYNAMIC_TOPIC_CONFIG:retention.ms=86400000, "
                        f"DEFAULT_CONFIG:log.retention.hours={RETENTION_HOURS_DEFAULT}}}",
    }

    result = configs_tool(broker, "--describe", "--entity-type", "topics", "--entity-name",
                          "orders", "--all")
    header, all_entries = described(result)
    assert header == "All configs for topic orders are:"
    assert all_entries["segment.bytes"] == (
        f"  segment.bytes={SEGMENT_BYTES_DEFAULT} sensitive=false "
        f"synonyms={{DEFAULT_CONFIG:log.segment.bytes={SEGMENT_BYTES_DEFAULT}}}"
    ), describe_run(result)
    assert all_entries["retention.ms"] == entries["retention.ms"]

    theirs = admin_configs(broker, ResourceType.TOPIC, "orders")
    assert set(theirs) == set(all_entries), "both clients see the same config names"
    for name, entry in theirs.items():
        value = "null" if entry.value is None else entry.value
        assert all_entries[name].startswith(f"  {name}={value} sensitive="), name
    assert theirs["retention.ms"].value == "86400000"
    assert source(theirs["retention.ms"]) == ConfigSource.DYNAMIC_TOPIC_CONFIG
    assert theirs["cleanup.policy"].value == "compact,delete"
    assert source(theirs["segment.bytes"]) == ConfigSource.DEFAULT_CONFIG

    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    change = ConfigResource(ResourceType.TOPIC, "orders", incremental_configs=[
        ConfigEntry("max.message.bytes", "2000000",
                    incremental_operation=AlterConfigOpType.SET)])
    for future in admin.incremental_alter_configs([change]).values():
        future.result(timeout=ADMIN_TIMEOUT_S)
    _, entries = described(configs_tool(broker, "--describe", "--topic", "orders"))
    assert entries["max.message.bytes"] == (
        "  max.message.bytes=2000000 sensitive=false synonyms="
        "{DYNAMIC_TOPIC_CONFIG:max.message.bytes=2000000, "
        f"DEFAULT_CONFIG:message.max.bytes={MESSAGE_MAX_BYTES_DEFAULT}}}"
    )

    result = configs_tool(broker, "--alter", "--topic", "orders", "--delete-config",
                          "retention.ms,max.message.bytes")
    assert result.stdout == "Completed updating config for topic orders.\n", describe_run(result)
    _, entries = described(configs_tool(broker, "--describe", "--topic", "orders"))
    assert list(entries) == ["cleanup.policy"]
    theirs = admin_configs(broker, ResourceType.TOPIC, "orders")
    assert source(theirs["retention.ms"]) == ConfigSource.DEFAULT_CONFIG
    assert theirs["retention.ms"].value == str(int(RETENTION_HOURS_DEFAULT) * 3_600_000)

    refused = configs_tool(broker, "--alter", "--topic", "orders", "--delete-config",
                           "segment.ms", check=False)
    assert refused.returncode == 1, describe_run(refused)
    assert refused.stderr == "Invalid config(s): segment.ms\n", describe_run(refused)
    assert refused.stdout == ""


def test_describe_without_a_name_covers_every_topic(broker):
    """Without --entity-name every topic is described, each under its own header."""
    create_topic(broker, "alpha")
    create_topic(broker, "beta")
    configs_tool(broker, "--alter", "--topic", "beta", "--add-config", "retention.ms=60000")
    result = configs_tool(broker, "--describe", "--entity-type", "topics")
    lines = result.stdout.splitlines()
    assert "Dynamic configs for topic alpha are:" in lines, describe_run(result)
    beta = lines.index("Dynamic configs for topic beta are:")
    assert lines[beta + 1].startswith(
        "  retention.ms=60000 sensitive=false synonyms={DYNAMIC_TOPIC_CONFIG:retention.ms=60000"
    ), describe_run(result)


def test_unknown_topics_and_bad_command_lines_fail_as_in_kafka(broker):
    """A missing topic has no dynamic config (exit 0); --all and --alter of it report the
    cluster's UNKNOWN_TOPIC_OR_PARTITION after quoting the arguments (exit 1); command-line
    mistakes print Kafka's message alone (exit 1)."""
    result = configs_tool(broker, "--describe", "--entity-type", "topics", "--entity-name", "nope")
    assert result.stdout == "The topic 'nope' doesn't exist and doesn't have dynamic config.\n"

    for action in (["--describe", "--all"], ["--alter", "--add-config", "retention.ms=1"]):
        args = [*action, "--entity-type", "topics", "--entity-name", "nope"]
        failed = configs_tool(broker, *args, check=False)
        assert failed.returncode == 1, describe_run(failed)
        lines = failed.stderr.splitlines()
        quoted = " ".join(["--bootstrap-server", broker.bootstrap, *args])
        assert lines[0] == f"Error while executing config command with args '{quoted}'", \
            describe_run(failed)
        assert lines[1].startswith(
            "java.util.concurrent.ExecutionException: "
            "org.apache.kafka.common.errors.UnknownTopicOrPartitionException: "), \
            describe_run(failed)

    mistakes = {
        ("--alter", "--entity-type", "topics", "--add-config", "a=1"):
            "An entity name must be specified with --alter of topics",
        ("--describe", "--alter", "--topic", "t"):
            "Command must include exactly one action: --describe, --alter",
        ("--alter", "--topic", "t", "--add-config", "a=b=c"):
            'Invalid entity config: all configs to be added must be in the format "key=val" or  '
            '"key=[val1,val2]" to group values which contain commas.',
        ("--describe", "--entity-type", "brokers", "--entity-name", "one"):
            "The entity name for brokers must be a valid integer broker id, but it is: one",
    }
    for args, message in mistakes.items():
        failed = configs_tool(broker, *args, check=False)
        assert (failed.returncode, failed.stderr) == (1, message + "\n"), describe_run(failed)


def test_broker_configs_and_cluster_defaults(broker):
    """Broker 1 has no dynamic configs but --all shows its static ones; a cluster-wide default
    set with --entity-default is shown under the defaults and flows into topics without an
    override; a config that cannot change at runtime is refused by the broker."""
    result = configs_tool(broker, "--describe", "--entity-type", "brokers", "--entity-name", "1")
    assert result.stdout == "Dynamic configs for broker 1 are:\n", describe_run(result)
    header, entries = described(configs_tool(broker, "--describe", "--broker", "1", "--all"))
    assert header == "All configs for broker 1 are:"
    assert entries["num.partitions"] == (
        "  num.partitions=1 sensitive=false "
        "synonyms={STATIC_BROKER_CONFIG:num.partitions=1, DEFAULT_CONFIG:num.partitions=1}")
    theirs = admin_configs(broker, ResourceType.BROKER, "1")
    assert theirs["num.partitions"].value == "1"
    assert source(theirs["num.partitions"]) == ConfigSource.STATIC_BROKER_CONFIG

    result = configs_tool(broker, "--alter", "--entity-type", "brokers", "--entity-default",
                          "--add-config", "log.retention.ms=3600000")
    assert result.stdout == "Completed updating default config for brokers in the cluster.\n", \
        describe_run(result)
    header, entries = described(configs_tool(broker, "--describe", "--entity-type", "brokers",
                                             "--entity-default"))
    assert header == "Default configs for brokers in the cluster are:"
    assert list(entries) == ["log.retention.ms"]
    assert entries["log.retention.ms"].startswith(
        "  log.retention.ms=3600000 sensitive=false "
        "synonyms={DYNAMIC_DEFAULT_BROKER_CONFIG:log.retention.ms=3600000")
    theirs = admin_configs(broker, ResourceType.BROKER, "1")
    assert theirs["log.retention.ms"].value == "3600000"
    assert source(theirs["log.retention.ms"]) == ConfigSource.DYNAMIC_DEFAULT_BROKER_CONFIG

    create_topic(broker, "inherits")
    _, entries = described(configs_tool(broker, "--describe", "--topic", "inherits", "--all"))
    assert entries["retention.ms"] == (
        "  retention.ms=3600000 sensitive=false "
        "synonyms={DYNAMIC_DEFAULT_BROKER_CONFIG:log.retention.ms=3600000, "
        f"DEFAULT_CONFIG:log.retention.hours={RETENTION_HOURS_DEFAULT}}}")
    theirs = admin_configs(broker, ResourceType.TOPIC, "inherits")
    assert theirs["retention.ms"].value == "3600000"
    assert source(theirs["retention.ms"]) == ConfigSource.DYNAMIC_DEFAULT_BROKER_CONFIG

    refused = configs_tool(broker, "--alter", "--broker", "1", "--add-config", "node.id=5",
                           check=False)
    assert refused.returncode == 1, describe_run(refused)
    lines = refused.stderr.splitlines()
    assert lines[0].startswith("Error while executing config command with args '"), \
        describe_run(refused)
    assert lines[1].startswith("java.util.concurrent.ExecutionException: "
                               "org.apache.kafka.common.errors.InvalidRequestException: "), \
        describe_run(refused)
    result = configs_tool(broker, "--describe", "--broker", "1")
    assert result.stdout == "Dynamic configs for broker 1 are:\n", describe_run(result)

    result = configs_tool(broker, "--alter", "--broker-defaults", "--delete-config",
                          "log.retention.ms")
    assert result.stdout == "Completed updating default config for brokers in the cluster.\n"
    result = configs_tool(broker, "--describe", "--broker-defaults")
    assert result.stdout == "Default configs for brokers in the cluster are:\n", \
        describe_run(result)


def test_alter_partitions_only_grows_topics(broker):
    """flink-topics.sh --alter --partitions adds partitions silently, as kafka-topics.sh does;
    a smaller or equal count comes back as the broker's INVALID_PARTITIONS message, exit 1."""
    create_topic(broker, "grow", partitions=2)
    result = topics_tool(broker, "--alter", "--topic", "grow", "--partitions", "3")
    assert result.stdout == "", describe_run(result)

    result = topics_tool(broker, "--describe", "--topic", "grow")
    lines = result.stdout.splitlines()
    assert "\tPartitionCount: 3\t" in lines[0], describe_run(result)
    assert [line.split("\t")[2] for line in lines[1:]] == \
        ["Partition: 0", "Partition: 1", "Partition: 2"], describe_run(result)
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    metadata = admin.list_topics(topic="grow", timeout=ADMIN_TIMEOUT_S)
    assert sorted(metadata.topics["grow"].partitions) == [0, 1, 2]

    for count, message in (
        ("2", "The topic grow currently has 3 partition(s); 2 would not be an increase."),
        ("3", "Topic already has 3 partition(s)."),
    ):
        refused = topics_tool(broker, "--alter", "--topic", "grow", "--partitions", count,
                              check=False)
        assert refused.returncode == 1, describe_run(refused)
        output = refused.stdout + refused.stderr
        assert output == f"Error while executing topic command : {message}\n", \
            describe_run(refused)

    missing = topics_tool(broker, "--alter", "--topic", "absent", "--partitions", "4",
                          check=False)
    assert missing.returncode == 1, describe_run(missing)
    assert "Topic 'absent' does not exist as expected" in missing.stdout + missing.stderr
    result = topics_tool(broker, "--describe", "--topic", "grow")
    assert "\tPartitionCount: 3\t" in result.stdout, describe_run(result)
