"""The cluster's own links secured as Kafka secures them: three controllers and three brokers whose
controller listener speaks SSL with client certificates required (registration, heartbeats,
metadata and raft messages all go through it) and whose inter-broker listener speaks SASL_SSL
with PLAIN (`sasl.mechanism.inter.broker.protocol`, the listener's JAAS `username`/`password`),
while clients use a PLAINTEXT listener. A replicated topic is written with acks=all and read
back, which needs every follower's fetches to log in; a broker restarted with a wrong password is
refused by the others and says so, and once more records arrive the partitions it follows shrink
to the two others.
"""

from __future__ import annotations

import pytest

from clients import OFFSET_BEGINNING, confluent_consume, confluent_produce
from cluster import Cluster, eventually
from security_support import make_certs
from support import check_history, keyed_messages, run_script

PARTITIONS = 3
JAAS = ('org.apache.kafka.common.security.plain.PlainLoginModule required '
        'username="broker" password="{password}" user_broker="broker-secret";')


def link_properties(certs) -> dict[str, str]:
    # The harness names its inter-broker listener PLAINTEXT and its client listener
    # PLAINTEXT_HOST; what a name speaks is the map's business, as in Kafka.
    return {
        "listener.security.protocol.map":
            "CONTROLLER:SSL,PLAINTEXT:SASL_SSL,PLAINTEXT_HOST:PLAINTEXT",
        "ssl.keystore.type": "PEM",
        "ssl.keystore.location": str(certs / "broker.pem"),
        "ssl.truststore.type": "PEM",
        "ssl.truststore.location": str(certs / "ca.pem"),
        "listener.name.controller.ssl.client.auth": "required",
        "listener.name.plaintext.sasl.enabled.mechanisms": "PLAIN",
        "sasl.mechanism.inter.broker.protocol": "PLAIN",
        "listener.name.plaintext.plain.sasl.jaas.config": JAAS.format(password="broker-secret"),
        "replica.lag.time.max.ms": "3000",  # A follower that cannot fetch leaves the ISR soon.
    }


@pytest.fixture
def secured_cluster(tmp_path):
    certs = make_certs(tmp_path / "certs")
    cluster = Cluster(tmp_path / "cluster", properties=link_properties(certs))
    cluster.format()
    cluster.start_all()
    try:
        cluster.wait_until_ready()
        yield cluster
    finally:
        cluster.stop_all()


def isr_sizes(cluster: Cluster) -> list[int]:
    return [len(p.isr) for p in cluster.metadata(4).partitions("linked").values()]


def test_replication_over_secured_links(secured_cluster):
    cluster = secured_cluster
    bootstrap = cluster.bootstrap()
    run_script("flink-topics.sh", "--bootstrap-server", bootstrap, "--create", "--topic", "linked",
               "--partitions", str(PARTITIONS), "--replication-factor", "3",
               "--config", "min.insync.replicas=3")

    def all_in_sync():
        assert isr_sizes(cluster) == [3] * PARTITIONS

    eventually(all_in_sync, 30, "every partition's three replicas in sync")
    sent = keyed_messages(600)
    # min.insync.replicas=3 with acks=all: each acknowledgement needed both followers' fetches.
    confluent_produce(bootstrap, "linked", sent, acks="all")
    check_history(sent, confluent_consume(bootstrap, "linked", PARTITIONS, len(sent),
                                          start=OFFSET_BEGINNING), PARTITIONS)

    # Broker 6 comes back logging in with the wrong password: the leaders refuse its fetches,
    # it says why, and it drops out of every ISR.
    node = cluster.nodes[6]
    node.stop()
    jaas = "listener.name.plaintext.plain.sasl.jaas.config"
    node.properties[jaas] = JAAS.format(password="wrong")
    node.properties_path.write_text(
        "".join(f"{key}={value}\n" for key, value in node.properties.items()))
    node.start()
    assert node.wait_for_log("refused this node's SASL login as broker", timeout=30), (
        node.log_tail(25))
    # A follower leaves the ISR once the leader's log moves on without it (Kafka's rule).
    confluent_produce(bootstrap, "linked", keyed_messages(30), acks="1")

    def six_out_of_sync():
        isrs = [p.isr for p in cluster.metadata(4).partitions("linked").values()]
        assert all(6 not in isr and len(isr) == 2 for isr in isrs), isrs

    eventually(six_out_of_sync, 30, "broker 6 out of every ISR")
