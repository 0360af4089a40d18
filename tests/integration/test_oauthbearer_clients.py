"""OAUTHBEARER as a client, as Kafka's Java client logs in: the command-line tools and the
brokers' own inter-broker links.

The tools (flink-topics.sh --command-config, flink-console-producer.sh --producer.config,
flink-console-consumer.sh --consumer.config) log in to the OAUTHBEARER listeners of
test_oauthbearer.py's broker: UNSECURED, Kafka's unsecured validator requiring scope `kafka`,
with Kafka's unsecured login (`unsecuredLogin*` JAAS options); JWKS, Kafka's signed-token
validator, with an RS256 token signed with openssl, read from the file of a `file:` token
endpoint. Tokens the broker
refuses (a missing scope, an expired file token) and an HTTPS token endpoint end the tool with
exit code 1 and the reason, and the broker serves on.

A controller and two brokers replicate over an inter-broker listener that speaks SASL_PLAINTEXT
with OAUTHBEARER (`sasl.mechanism.inter.broker.protocol`, the listener's JAAS line holding both
the unsecured validator's and the unsecured login's options); the login's tokens live five
seconds, so the followers' fetchers log in again (KIP-368) with fresh tokens while a topic with
min.insync.replicas=2 takes acks=all records and gives them back.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from clients import OFFSET_BEGINNING, confluent_consume, confluent_produce
from cluster import (BROKER_PROPERTIES, COMMON_PROPERTIES, Node, eventually, format_node,
                     metadata_at, random_cluster_id)
from support import (HOST, Broker, check_history, describe_run, free_port, keyed_messages,
                     run_script)
from test_oauthbearer import (  # noqa: F401 (fixtures: the module's broker and its keys)
    LOGIN, _report_broker, keys, oauth, signed_claims)

TOKEN_HANDLER = "org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginCallbackHandler"
TOKEN_LIFETIME_S = 5


def address(broker: Broker, listener: str) -> str:
    return f"{HOST}:{broker.ports[listener]}"


def write_properties(path: Path, properties: dict[str, str]) -> Path:
    """A client properties file, the JAAS config continued over lines as it is often written."""
    lines = [f"{key}={value}" for key, value in properties.items()]
    path.write_text("\n".join(line.replace('" ', '" \\\n    ') for line in lines) + "\n")
    return path


def unsecured_login(scope: str = ",kafka,tools") -> dict[str, str]:
    """Kafka's unsecured login: principal alice, the scope a list claim, an extension."""
    return {"security.protocol": "SASL_PLAINTEXT", "sasl.mechanism": "OAUTHBEARER",
            "sasl.jaas.config": f'{LOGIN} required unsecuredLoginStringClaim_sub="alice" '
                                f'unsecuredLoginListClaim_scope="{scope}" '
                                'unsecuredLoginExtension_traceId="cli";'}


def file_login(token_file: Path, url: str | None = None) -> dict[str, str]:
    """Kafka's OAuthBearerLoginCallbackHandler with the token in a file."""
    return {"security.protocol": "SASL_PLAINTEXT", "sasl.mechanism": "OAUTHBEARER",
            "sasl.login.callback.handler.class": TOKEN_HANDLER,
            "sasl.oauthbearer.token.endpoint.url": url or f"file://{token_file}",
            "sasl.jaas.config": f"{LOGIN} required;"}


def round_trip_with_the_tools(bootstrap: str, topic: str, config: Path) -> None:
    """flink-topics.sh creates and lists `topic`, the console producer sends ten lines and the
    console consumer reads them back, each with its settings from `config`."""
    topics = ("flink-topics.sh", "--bootstrap-server", bootstrap, "--command-config", str(config))
    created = run_script(*topics, "--create", "--topic", topic, "--partitions", "2")
    assert created.stdout == f"Created topic {topic}.\n", describe_run(created)
    assert topic in run_script(*topics, "--list").stdout.split()
    sent = [f"{topic}-{index}" for index in range(10)]
    produced = run_script("flink-console-producer.sh", "--bootstrap-server", bootstrap,
                          "--topic", topic, "--producer.config", str(config),
                          input="\n".join(sent) + "\n")
    assert produced.stderr == "", describe_run(produced)
    consumed = run_script("flink-console-consumer.sh", "--bootstrap-server", bootstrap,
                          "--topic", topic, "--from-beginning", "--max-messages", "10",
                          "--timeout-ms", "20000", "--consumer.config", str(config))
    assert sorted(consumed.stdout.split()) == sorted(sent), describe_run(consumed)


def test_tools_with_kafkas_unsecured_login(oauth, tmp_path):
    """The tools log in with unsecured tokens they make (scope kafka, as the listener
    requires) and create, produce and consume."""
    config = write_properties(tmp_path / "unsecured.properties", unsecured_login())
    round_trip_with_the_tools(address(oauth, "UNSECURED"), "oauth-tools-unsecured", config)


def test_tools_with_a_token_file(oauth, keys, tmp_path):
    """The tools send the RS256 token of a file: token endpoint (the file's newline trimmed),
    which the JWKS listener verifies."""
    token = tmp_path / "alice.jwt"
    token.write_text(keys["trusted"].sign(signed_claims()) + "\n")
    config = write_properties(tmp_path / "file.properties", file_login(token))
    round_trip_with_the_tools(address(oauth, "JWKS"), "oauth-tools-file", config)


def test_refused_tokens_end_the_tools(oauth, keys, tmp_path):
    """A token without the required scope, an expired token file and an HTTPS token endpoint
    each end a tool with exit code 1 and the reason (the broker's challenge for the tokens it
    refused); the broker logs why and serves the next client."""
    unsecured, jwks = address(oauth, "UNSECURED"), address(oauth, "JWKS")
    expired = tmp_path / "expired.jwt"
    expired.write_text(keys["trusted"].sign(signed_claims(lifetime_s=-60)))
    refusals = [
        (unsecured, unsecured_login(scope=",other"),
         'failed authentication due to: {"status":"insufficient_scope", "scope":"[kafka]"}'),
        (jwks, file_login(expired), 'failed authentication due to: {"status":"invalid_token"}'),
        (jwks, file_login(expired, "https://idp.example/token"),
         "only file: URLs are supported"),
    ]
    for index, (bootstrap, properties, reason) in enumerate(refusals):
        config = write_properties(tmp_path / f"refused-{index}.properties", properties)
        listed = run_script("flink-topics.sh", "--bootstrap-server", bootstrap,
                            "--command-config", str(config), "--list", check=False)
        assert listed.returncode == 1 and reason in listed.stderr, describe_run(listed)
        produced = run_script("flink-console-producer.sh", "--bootstrap-server", bootstrap,
                              "--topic", "oauth-refused", "--producer.config", str(config),
                              input="x\n", check=False)
        assert produced.returncode == 1 and reason in produced.stderr, describe_run(produced)
    assert oauth.wait_for_log("OAUTHBEARER token from .* refused: .*missing a required scope")
    assert oauth.wait_for_log("OAUTHBEARER token from .* refused: .*Expiration Time")
    good = write_properties(tmp_path / "good.properties", unsecured_login())
    served = run_script("flink-topics.sh", "--bootstrap-server", unsecured, "--command-config",
                        str(good), "--list")
    assert served.stderr == "", describe_run(served)


# ---- brokers replicating over an OAUTHBEARER inter-broker listener ---------------------------

CONTROLLER_ID, BROKER_IDS = 1, (2, 3)
PARTITIONS = 2
# The harness's inter-broker listener is named PLAINTEXT; here it speaks SASL_PLAINTEXT.
LINK_JAAS = (f'{LOGIN} required unsecuredValidatorRequiredScope="replication" '
             'unsecuredLoginStringClaim_sub="broker" unsecuredLoginListClaim_scope=",replication" '
             f'unsecuredLoginLifetimeSeconds="{TOKEN_LIFETIME_S}";')
LINK_PROPERTIES = {
    "listener.security.protocol.map":
        "CONTROLLER:PLAINTEXT,PLAINTEXT:SASL_PLAINTEXT,PLAINTEXT_HOST:PLAINTEXT",
    "listener.name.plaintext.sasl.enabled.mechanisms": "OAUTHBEARER",
    "sasl.mechanism.inter.broker.protocol": "OAUTHBEARER",
    "listener.name.plaintext.oauthbearer.sasl.jaas.config": LINK_JAAS,
}


@pytest.fixture
def linked(tmp_path):
    """A controller and two brokers whose inter-broker listener speaks OAUTHBEARER."""
    controller_port = free_port()
    voters = f"{CONTROLLER_ID}@{HOST}:{controller_port}"
    nodes = {CONTROLLER_ID: Node(tmp_path / "controller", CONTROLLER_ID, {
        "process.roles": "controller", "listeners": f"CONTROLLER://{HOST}:{controller_port}",
        "controller.quorum.voters": voters, **COMMON_PROPERTIES, **LINK_PROPERTIES,
    }, controller_port)}
    for node_id in BROKER_IDS:
        ports = {"internal": free_port(), "host": free_port()}
        listeners = (f"PLAINTEXT://{HOST}:{ports['internal']},"
                     f"PLAINTEXT_HOST://{HOST}:{ports['host']}")
        nodes[node_id] = Node(tmp_path / f"broker{node_id}", node_id, {
            "process.roles": "broker", "listeners": listeners, "advertised.listeners": listeners,
            "controller.quorum.voters": voters, **COMMON_PROPERTIES, **BROKER_PROPERTIES,
            **LINK_PROPERTIES,
        }, ports["host"], ports)
    cluster_id = random_cluster_id()
    for node in nodes.values():
        format_node(node, cluster_id)
    try:
        for node in nodes.values():
            node.start()

        def both_listed():
            for node_id in BROKER_IDS:
                nodes[node_id].check_alive()
                assert sorted(metadata_at(nodes[node_id].port).brokers) == list(BROKER_IDS)

        eventually(both_listed, 60, "both brokers list each other")
        yield nodes
    finally:
        for node in nodes.values():
            node.kill()


def test_replication_over_an_oauthbearer_link(linked):
    """Every acks=all record of a min.insync.replicas=2 topic needed the follower's fetch,
    logged in with an unsecured token; the tokens last five seconds, so the leaders see the
    followers' fetchers log in again (KIP-368) with fresh ones, and replication goes on."""
    bootstrap = ",".join(linked[node_id].bootstrap for node_id in BROKER_IDS)
    run_script("flink-topics.sh", "--bootstrap-server", bootstrap, "--create", "--topic",
               "oauth-linked", "--partitions", str(PARTITIONS), "--replication-factor", "2",
               "--config", "min.insync.replicas=2")

    def in_sync():
        partitions = metadata_at(linked[BROKER_IDS[0]].port).partitions("oauth-linked")
        assert [len(p.isr) for p in partitions.values()] == [2] * PARTITIONS, partitions

    eventually(in_sync, 30, "both replicas of every partition in sync")
    sent = keyed_messages(300)
    confluent_produce(bootstrap, "oauth-linked", sent[:200], acks="all")

    # A token made again for the new login has its whole lifetime ahead of it; the first
    # login's would have less than a second left.
    reauthentication = re.compile(r"re-authenticated as User:broker with OAUTHBEARER on "
                                  r"listener PLAINTEXT \(session lifetime (\d+) ms\)")

    def logged_in_again():
        lifetimes = [int(ms) for node_id in BROKER_IDS
                     for ms in reauthentication.findall(linked[node_id].log_text())]
        assert len(lifetimes) >= 2 and min(lifetimes) > 4000, lifetimes

    eventually(logged_in_again, 4 * TOKEN_LIFETIME_S, "the followers' fetchers log in again")
    confluent_produce(bootstrap, "oauth-linked", sent[200:], acks="all")
    check_history(sent, confluent_consume(bootstrap, "oauth-linked", PARTITIONS, len(sent),
                                          start=OFFSET_BEGINNING), PARTITIONS)
    for node_id in BROKER_IDS:
        assert "refused this node's SASL login" not in linked[node_id].log_text()
