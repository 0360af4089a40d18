"""flink-configs.sh for client quotas against a real broker, with the lines, messages and exit
codes of Kafka 4's kafka-configs.sh: quotas of users, clients, a user's client and ips (named and
default) are set, described and deleted; what the tool sets is checked with DescribeClientQuotas
from kafka-python's encoders (test_quotas.py's helpers and broker), and a producer whose client id
the tool gave a `producer_byte_rate` is throttled.
"""

from __future__ import annotations

import time

from support import create_topic, failed, run_script, succeeded
from test_quotas import RECORD, describe  # noqa: F401 - shared_broker below is a fixture
from test_quotas import _report_shared_broker, shared_broker  # noqa: F401

# Long enough for confluent-kafka to be told it is throttled, far from a rate measurement.
THROTTLE_WAIT_S = 8


def configs(broker, *args):
    return run_script("flink-configs.sh", "--bootstrap-server", broker.bootstrap, *args,
                      check=False)


def test_user_and_client_quotas_are_set_described_and_deleted(shared_broker):
    """A user's, the default user's and a user's client's quotas are set (the values parsed as
    Kafka parses them), described one by one and all together with Kafka's lines, then deleted;
    the user's SCRAM credential shows beside its quotas."""
    alice = ("--entity-type", "users", "--entity-name", "alice")
    alice_app = (*alice, "--entity-type", "clients", "--entity-name", "app")
    assert succeeded(configs(shared_broker, "--alter", *alice, "--add-config",
                             "producer_byte_rate=1048576,consumer_byte_rate=2097152")) == (
        "Completed updating config for user alice.\n")
    assert succeeded(configs(shared_broker, "--alter", "--user-defaults", "--add-config",
                             "request_percentage=12.5")) == (
        "Completed updating default config for users in the cluster.\n")
    assert succeeded(configs(shared_broker, "--alter", *alice_app, "--add-config",
                             "producer_byte_rate=1e4")) == (
        "Completed updating config for user alice.\n")
    assert describe(shared_broker, [("user", 2, None)]) == {
        (("user", "alice"),): {"producer_byte_rate": 1048576.0, "consumer_byte_rate": 2097152.0},
        (("user", None),): {"request_percentage": 12.5},
        (("client-id", "app"), ("user", "alice")): {"producer_byte_rate": 10000.0}}

    assert succeeded(configs(shared_broker, "--describe", "--user", "alice")) == (
        "Quota configs for user-principal 'alice' are consumer_byte_rate=2097152.0, "
        "producer_byte_rate=1048576.0\n")
    assert succeeded(configs(shared_broker, "--describe", "--user-defaults")) == (
        "Quota configs for the default user-principal are request_percentage=12.5\n")
    assert succeeded(configs(shared_broker, "--describe", "--user", "alice", "--client", "app")) == (
        "Quota configs for user-principal 'alice', client-id 'app' are producer_byte_rate=10000.0\n")
    every_user = succeeded(configs(shared_broker, "--describe", "--entity-type", "users"))
    assert sorted(every_user.splitlines()) == [
        "Quota configs for the default user-principal are request_percentage=12.5",
        "Quota configs for user-principal 'alice' are consumer_byte_rate=2097152.0, "
        "producer_byte_rate=1048576.0"], every_user
    assert succeeded(configs(shared_broker, "--describe", "--entity-type", "users",
                             "--entity-type", "clients")) == (
        "Quota configs for user-principal 'alice', client-id 'app' are producer_byte_rate=10000.0\n")
    assert succeeded(configs(shared_broker, "--describe", "--entity-type", "clients")) == ""

    assert succeeded(configs(shared_broker, "--alter", *alice, "--add-config",
                             "SCRAM-SHA-256=[password=alice-secret]")) == (
        "Completed updating config for user alice.\n")
    assert succeeded(configs(shared_broker, "--describe", *alice)) == (
        "Quota configs for user-principal 'alice' are consumer_byte_rate=2097152.0, "
        "producer_byte_rate=1048576.0\n"
        "SCRAM credential configs for user-principal 'alice' are SCRAM-SHA-256=iterations=4096\n")

    assert succeeded(configs(shared_broker, "--alter", *alice, "--delete-config",
                             "consumer_byte_rate")) == (
        "Completed updating config for user alice.\n")
    assert failed(configs(shared_broker, "--alter", *alice, "--delete-config",
                           "consumer_byte_rate")) == "Invalid config(s): consumer_byte_rate\n"
    assert succeeded(configs(shared_broker, "--alter", *alice, "--delete-config",
                             "SCRAM-SHA-256")) == "Completed updating config for user alice.\n"
    for entity, key in [(alice, "producer_byte_rate"), (("--user-defaults",), "request_percentage"),
                        (alice_app, "producer_byte_rate")]:
        succeeded(configs(shared_broker, "--alter", *entity, "--delete-config", key))
    assert describe(shared_broker, []) == {}
    assert succeeded(configs(shared_broker, "--describe", "--entity-type", "users")) == ""


def test_ip_quotas_are_set_described_and_deleted(shared_broker):
    """An address's and the default connection_creation_rate are set, described and deleted."""
    assert succeeded(configs(shared_broker, "--alter", "--ip", "127.0.0.1", "--add-config",
                             "connection_creation_rate=5")) == (
        "Completed updating config for ip 127.0.0.1.\n")
    assert succeeded(configs(shared_broker, "--alter", "--entity-type", "ips", "--entity-default",
                             "--add-config", "connection_creation_rate=10")) == (
        "Completed updating default config for ips in the cluster.\n")
    assert describe(shared_broker, [("ip", 2, None)]) == {
        (("ip", "127.0.0.1"),): {"connection_creation_rate": 5.0},
        (("ip", None),): {"connection_creation_rate": 10.0}}
    assert succeeded(configs(shared_broker, "--describe", "--ip", "127.0.0.1")) == (
        "Quota configs for ip '127.0.0.1' are connection_creation_rate=5.0\n")
    every_ip = succeeded(configs(shared_broker, "--describe", "--entity-type", "ips"))
    assert sorted(every_ip.splitlines()) == [
        "Quota configs for ip '127.0.0.1' are connection_creation_rate=5.0",
        "Quota configs for the default ip are connection_creation_rate=10.0"], every_ip
    for entity in [("--ip", "127.0.0.1"), ("--ip-defaults",)]:
        succeeded(configs(shared_broker, "--alter", *entity, "--delete-config",
                          "connection_creation_rate"))
    assert describe(shared_broker, [("ip", 2, None)]) == {}


def test_refusals_carry_kafkas_messages(shared_broker):
    """Unknown keys, unreadable values, entity combinations Kafka refuses and the broker's
    INVALID_REQUEST each end the tool with exit code 1 and Kafka's message; nothing is set."""
    cases = [
        (("--alter", "--user", "alice", "--add-config", "foo=1"),
         "Only quota and SCRAM credential configs can be added for 'users' using "
         "--bootstrap-server. Unexpected config names: Set(foo)\n"),
        (("--alter", "--client", "app", "--add-config", "SCRAM-SHA-256=[password=x]"),
         "Only quota configs can be added for 'clients' using --bootstrap-server. "
         "Unexpected config names: Set(SCRAM-SHA-256)\n"),
        (("--alter", "--user", "alice", "--add-config",
          "producer_byte_rate=1024,SCRAM-SHA-256=[password=x]"),
         "Cannot alter both quota and SCRAM credential configs simultaneously for 'users' "
         "using --bootstrap-server.\n"),
        (("--alter", "--client", "app", "--add-config", "producer_byte_rate=fast"),
         "Cannot parse quota configuration value for producer_byte_rate: fast\n"),
        (("--alter", "--ip", "127.0.0.1", "--add-config", "producer_byte_rate=1024"),
         "Only connection quota configs can be added for 'ips' using --bootstrap-server. "
         "Unexpected config names: producer_byte_rate\n"),
        (("--describe", "--entity-type", "users", "--entity-type", "ips"),
         "Only 'users' and 'clients' entity types may be specified together\n"),
        (("--alter", "--user", "alice", "--ip", "127.0.0.1", "--add-config", "a=1"),
         "Only 'users' and 'clients' entity types may be specified together\n"),
    ]
    for args, message in cases:
        assert failed(configs(shared_broker, *args)) == message, args
    fraction = ("--alter", "--client", "app", "--add-config", "producer_byte_rate=1.5")
    assert failed(configs(shared_broker, *fraction)) == (
        f"Error while executing config command with args '--bootstrap-server "
        f"{shared_broker.bootstrap} {' '.join(fraction)}'\n"
        "java.util.concurrent.ExecutionException: org.apache.kafka.common.errors."
        "InvalidRequestException: Configuration producer_byte_rate must be a Long value\n")
    assert describe(shared_broker, []) == {}


def test_a_quota_set_with_the_tool_throttles_the_client(shared_broker):
    """A confluent-kafka producer whose client id the tool gave a small `producer_byte_rate`,
    producing flat out, is told it is throttled (`throttle_time_ms` > 0)."""
    from confluent_kafka import Producer

    create_topic(shared_broker, "quota-cli")
    client = ("--entity-type", "clients", "--entity-name", "cli-throttled")
    succeeded(configs(shared_broker, "--alter", *client, "--add-config",
                      "producer_byte_rate=65536"))
    try:
        throttles = []
        producer = Producer({"bootstrap.servers": shared_broker.bootstrap,
                             "client.id": "cli-throttled", "linger.ms": 5,
                             "queue.buffering.max.kbytes": 4096,
                             "throttle_cb": lambda event: throttles.append(event.throttle_time)})
        started = time.monotonic()
        while time.monotonic() - started < THROTTLE_WAIT_S and not any(throttles):
            try:
                producer.produce("quota-cli", RECORD)
            except BufferError:
                producer.poll(0.05)
            producer.poll(0)
        producer.purge()
        producer.flush(10)
        assert throttles and max(throttles) > 0, throttles
    finally:
        succeeded(configs(shared_broker, "--alter", *client, "--delete-config",
                          "producer_byte_rate"))
