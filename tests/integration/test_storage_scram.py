"""`flink-storage.sh format --add-scram` (Kafka's KIP-900): SCRAM users given when the storage is
formatted exist from the cluster's first start, as the records AlterUserScramCredentials makes.

One combined node with a SASL_PLAINTEXT listener is formatted with a SCRAM-SHA-256 user given by
password and a SCRAM-SHA-512 user given by salt and salted password (computed here), then started:
both log in with confluent-kafka, produce and read back, a wrong password is refused, and
`flink-configs.sh --describe --entity-type users` lists them. A credential changed after the first
start survives a restart (the bootstrap applies only to an empty metadata log). Bad arguments are
refused with Kafka's messages before anything is written, and three controllers with three
brokers, all formatted alike, commit the bootstrap once and replicate over SASL as a SCRAM user
that only the bootstrap provides (KIP-900's use).
"""

from __future__ import annotations

import base64
import hashlib
import signal
from pathlib import Path

import pytest

import support
from cluster import CONTROLLER_IDS, READY_TIMEOUT_S, Cluster, eventually, random_cluster_id
from security_support import librdkafka_attempt, listener_overrides
from clients import OFFSET_BEGINNING, confluent_consume, confluent_produce
from support import (HOST, SERVER_PROPERTIES, Broker, check_history, create_topic, describe_run,
                     keyed_messages, run_script)
from test_security import confluent_round_trip, values

BOOTSTRAP_FILE = "bootstrap.checkpoint"
ALICE = ("alice", "alice-secret")  # SCRAM-SHA-256, by password (default iterations)
BOB = ("bob", "bob-secret")  # SCRAM-SHA-512, by salt and salted password
BOB_SALT = b"a salt of bob's choosing"
BOB_ITERATIONS = 8192
PROPOSED_LINE = "proposing the bootstrap metadata"
# What `flink-configs.sh --describe --entity-type users` prints for them.
DESCRIBED = [
    "SCRAM credential configs for user-principal 'alice' are SCRAM-SHA-256=iterations=4096",
    "SCRAM credential configs for user-principal 'bob' are SCRAM-SHA-512=iterations=8192",
]


def salted_password(hash_name: str, password: str, salt: bytes, iterations: int) -> bytes:
    """SCRAM's Hi(password, salt, iterations): PBKDF2 with HMAC of the mechanism's hash."""
    return hashlib.pbkdf2_hmac(hash_name, password.encode(), salt, iterations)


def scram_arguments() -> list[str]:
    user, password = BOB
    salted = salted_password("sha512", password, BOB_SALT, BOB_ITERATIONS)
    return [
        "--add-scram", f"SCRAM-SHA-256=[name={ALICE[0]},password={ALICE[1]}]",
        "-S", (f"SCRAM-SHA-512=[name={user},iterations={BOB_ITERATIONS},"
               f'salt="{base64.b64encode(BOB_SALT).decode()}",'
               f'saltedpassword="{base64.b64encode(salted).decode()}"]'),
    ]


def write_properties(broker: Broker) -> Path:
    """The dist's server.properties with the broker's overrides: the file `format -c` reads."""
    path = broker.work_dir / "server.properties"
    overrides = "".join(f"{key}={value}\n" for key, value in broker.overrides.items())
    path.write_text(SERVER_PROPERTIES.read_text() + "\n" + overrides)
    return path


def format_storage(properties: Path, *arguments: str, cluster_id: str | None = None,
                   check: bool = True):
    return run_script("flink-storage.sh", "format", "-t", cluster_id or random_cluster_id(),
                      "-c", str(properties), *arguments, check=check)


def sasl_config(mechanism: str, user: str, password: str) -> dict[str, str]:
    return {"security.protocol": "SASL_PLAINTEXT", "sasl.mechanisms": mechanism,
            "sasl.username": user, "sasl.password": password}


def describe_users(bootstrap: str) -> list[str]:
    result = run_script("flink-configs.sh", "--bootstrap-server", bootstrap, "--describe",
                        "--entity-type", "users")
    return sorted(result.stdout.splitlines())


@pytest.fixture(scope="module")
def formatted(tmp_path_factory):
    """A combined node with a SASL_PLAINTEXT listener (SCRAM only), formatted with alice and bob
    and started; `broker.format_output` is what format printed."""
    broker = Broker(tmp_path_factory.mktemp("storage-scram"))
    broker.overrides.update(listener_overrides(broker, {"SASL_PLAINTEXT": "SASL_PLAINTEXT"}))
    broker.overrides["sasl.enabled.mechanisms"] = "SCRAM-SHA-256,SCRAM-SHA-512"
    result = format_storage(write_properties(broker), *scram_arguments())
    broker.format_output = result.stdout
    broker.start()
    yield broker
    broker.kill()


@pytest.fixture(autouse=True)
def _report_broker(request):
    support.report_module_broker(request, "formatted")


def sasl_bootstrap(broker: Broker) -> str:
    return f"{HOST}:{broker.ports['SASL_PLAINTEXT']}"


def test_format_writes_the_bootstrap_metadata(formatted):
    """format says it formatted the directory and leaves the bootstrap file beside
    meta.properties, holding the derived keys and never a password."""
    assert f"Formatting log directory {formatted.data_dir} with cluster.id" in (
        formatted.format_output)
    text = (formatted.data_dir / BOOTSTRAP_FILE).read_text()
    assert text.count("user_configs ") == 2, text
    assert "stored_key" in text and "iterations%3D8192" in text, text  # Escaped '='.
    assert ALICE[1] not in text and BOB[1] not in text
    assert len(formatted.wait_for_log(PROPOSED_LINE)) == 1, formatted.log_tail()


@pytest.mark.parametrize("mechanism, user", [("SCRAM-SHA-256", ALICE), ("SCRAM-SHA-512", BOB)])
def test_users_log_in_from_the_first_start(formatted, mechanism, user):
    """Each formatted user produces and consumes over SASL_PLAINTEXT with confluent-kafka."""
    topic = f"bootstrap-{mechanism.lower()}"
    create_topic(formatted, topic)
    read = confluent_round_trip(sasl_bootstrap(formatted), topic, sasl_config(mechanism, *user))
    assert read == values("confluent")


def test_wrong_password_is_refused(formatted):
    """A wrong password (and a user's other mechanism) gets Kafka's refusal."""
    for mechanism, user, password in [("SCRAM-SHA-256", ALICE[0], "not-alice-secret"),
                                      ("SCRAM-SHA-512", ALICE[0], ALICE[1])]:
        cluster_id, errors = librdkafka_attempt(sasl_bootstrap(formatted),
                                                sasl_config(mechanism, user, password))
        assert cluster_id is None, (mechanism, errors)
        assert any("Authentication failed during authentication due to invalid credentials "
                   f"with SASL mechanism {mechanism}" in error for error in errors), errors


def test_configs_describe_lists_them(formatted):
    """`flink-configs.sh --describe --entity-type users` lists both users with their iterations."""
    assert describe_users(formatted.bootstrap) == DESCRIBED


def test_later_changes_survive_a_restart(formatted):
    """A password changed after the first start is kept across a restart: the bootstrap file
    is not applied again to a log that holds metadata."""
    user, _ = ALICE
    run_script("flink-configs.sh", "--bootstrap-server", formatted.bootstrap, "--alter",
               "--entity-type", "users", "--entity-name", user,
               "--add-config", "SCRAM-SHA-256=[iterations=5000,password=changed-secret]")
    formatted.restart()
    assert not formatted.wait_for_log(PROPOSED_LINE, timeout=0, since_last_start=True)
    assert (describe_users(formatted.bootstrap)[0] ==
            "SCRAM credential configs for user-principal 'alice' are SCRAM-SHA-256=iterations=5000")
    config = sasl_config("SCRAM-SHA-256", user, "changed-secret")
    assert librdkafka_attempt(sasl_bootstrap(formatted), config)[0] is not None
    config = sasl_config("SCRAM-SHA-256", user, ALICE[1])
    assert librdkafka_attempt(sasl_bootstrap(formatted), config)[0] is None


@pytest.mark.parametrize("argument, message", [
    ("SCRAM-SHA-256=[password=x]", "You must supply 'name' to add-scram"),
    ("SCRAM-SHA-1=[name=a,password=x]", "The add-scram mechanism SCRAM-SHA-1 is not supported."),
    ("SCRAM-SHA-512=[name=a,iterations=100,password=x]",
     "The 'iterations' value must be >= 4096 for add-scram using SCRAM_SHA_512"),
    ("SCRAM-SHA-256=[name=a,saltedpassword=YCE=]",
     "You must supply 'salt' with 'saltedpassword' to add-scram"),
])
def test_bad_arguments_are_refused(tmp_path, argument, message):
    """A bad credential stops format with Kafka's message before any directory is written."""
    broker = Broker(tmp_path)
    result = format_storage(write_properties(broker), "--add-scram", argument, check=False)
    assert result.returncode == 1 and message in result.stderr, describe_run(result)
    assert not broker.data_dir.exists() or not any(broker.data_dir.iterdir())


def test_a_brokers_directories_get_the_file_too(tmp_path):
    """As Kafka does, a broker's directories get the bootstrap file too (only a controller
    reads it), and an already formatted directory is skipped with --ignore-formatted."""
    broker = Broker(tmp_path)
    broker.overrides.update({"process.roles": "broker", "node.id": "4",
                             "listeners": f"PLAINTEXT://{HOST}:{broker.port}"})
    properties = write_properties(broker)
    cluster_id = random_cluster_id()
    format_storage(properties, *scram_arguments(), cluster_id=cluster_id)
    written = (broker.data_dir / BOOTSTRAP_FILE).read_bytes()
    result = format_storage(properties, "-g", "-S", "SCRAM-SHA-256=[name=carol,password=c]",
                            cluster_id=cluster_id)
    assert "All of the log directories are already formatted." in result.stdout
    assert (broker.data_dir / BOOTSTRAP_FILE).read_bytes() == written


# Brokers reach each other on the harness's inter-broker listener (named PLAINTEXT), and every
# node reaches the controllers, over SASL_PLAINTEXT, logging in with SCRAM-SHA-512 as a user that
# only the bootstrap provides: the controllers elect a leader before anything is committed.
LINK_USER = ("broker", "broker-secret")
LINK_JAAS = ("org.apache.kafka.common.security.scram.ScramLoginModule required "
             'username="{user}" password="{password}";')
LINK_PROPERTIES = {
    "listener.security.protocol.map":
        "CONTROLLER:SASL_PLAINTEXT,PLAINTEXT:SASL_PLAINTEXT,PLAINTEXT_HOST:PLAINTEXT",
    "listener.name.plaintext.sasl.enabled.mechanisms": "SCRAM-SHA-512",
    "sasl.mechanism.inter.broker.protocol": "SCRAM-SHA-512",
    "listener.name.plaintext.scram-sha-512.sasl.jaas.config":
        LINK_JAAS.format(user=LINK_USER[0], password=LINK_USER[1]),
    "listener.name.controller.sasl.enabled.mechanisms": "SCRAM-SHA-512",
    "sasl.mechanism.controller.protocol": "SCRAM-SHA-512",
    "listener.name.controller.scram-sha-512.sasl.jaas.config":
        LINK_JAAS.format(user=LINK_USER[0], password=LINK_USER[1]),
}
PARTITIONS = 3


def test_three_controllers_commit_it_once(tmp_path):
    """KIP-900's use: three controllers and three brokers, each formatted with the same
    --add-scram, whose brokers replicate over SCRAM-SHA-512 as a user that exists only through
    the bootstrap. Whichever controller is elected first commits it, once; every broker serves
    the users; acks=all with min.insync.replicas=3 needs every follower's fetches to log in; a
    new active controller does not commit the bootstrap again. The controller listener takes
    the same SCRAM logins (before the first commit, from the bootstrap), and a broker that comes
    back with a wrong password is refused by it and says so."""
    cluster = Cluster(tmp_path, properties=LINK_PROPERTIES)
    cluster.track_logs()
    cluster.cluster_id = random_cluster_id()
    link_user = f"SCRAM-SHA-512=[name={LINK_USER[0]},password={LINK_USER[1]}]"
    for node in cluster.nodes.values():
        format_storage(node.properties_path, *scram_arguments(), "-S", link_user,
                       cluster_id=cluster.cluster_id)
    described = DESCRIBED + [
        "SCRAM credential configs for user-principal 'broker' are SCRAM-SHA-512=iterations=4096"]
    try:
        cluster.start_all()
        for broker_id in cluster.running_brokers():
            assert describe_users(cluster.address(broker_id)) == described

        bootstrap = cluster.bootstrap()
        run_script("flink-topics.sh", "--bootstrap-server", bootstrap, "--create", "--topic",
                   "linked", "--partitions", str(PARTITIONS), "--replication-factor", "3",
                   "--config", "min.insync.replicas=3")
        sent = keyed_messages(300)
        confluent_produce(bootstrap, "linked", sent, acks="all")
        check_history(sent, confluent_consume(bootstrap, "linked", PARTITIONS, len(sent),
                                              start=OFFSET_BEGINNING), PARTITIONS)

        def proposals() -> int:
            return sum(len(cluster.nodes[node_id].wait_for_log(PROPOSED_LINE, timeout=0))
                       for node_id in CONTROLLER_IDS)
        assert proposals() == 1, cluster.log_tails()
        first = cluster.active_controller()
        cluster.kill(first, sig=signal.SIGTERM)

        def another_leads():
            assert cluster.active_controller() != first
        eventually(another_leads, READY_TIMEOUT_S, "another controller is elected")
        cluster.wait_until_ready()
        assert describe_users(cluster.bootstrap()) == described
        assert proposals() == 1, cluster.log_tails()

        node = cluster.nodes[6]
        node.stop()
        node.properties["listener.name.controller.scram-sha-512.sasl.jaas.config"] = (
            LINK_JAAS.format(user=LINK_USER[0], password="wrong"))
        node.properties_path.write_text(
            "".join(f"{key}={value}\n" for key, value in node.properties.items()))
        node.start()
        assert node.wait_for_log(r"controller \d+ at \S+ refused this node", timeout=30,
                                 since_last_start=True), node.log_tail(25)
        refusals = sum(len(cluster.nodes[node_id].wait_for_log(
            "Failed authentication with", timeout=0)) for node_id in CONTROLLER_IDS)
        assert refusals > 0, cluster.log_tails()
    finally:
        cluster.stop_all(sig=signal.SIGKILL)
