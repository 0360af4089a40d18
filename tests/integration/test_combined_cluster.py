"""Three combined nodes (process.roles=broker,controller, three voters), the other common KRaft
layout: every node is a voter and a broker, so a node's own controller is sometimes the active
one and sometimes not, and its shards' requests go local or over the CONTROLLER listener
accordingly. One cluster serves the module.
"""

from __future__ import annotations

import signal

import pytest

import support
from cluster import (COMMON_PROPERTIES, HOST, Node, describe_quorum_at, eventually, format_node,
                     metadata_at, random_cluster_id)
from clients import OFFSET_BEGINNING, confluent_consume, confluent_produce
from support import check_history, free_port, keyed_messages, run_script

NODE_IDS = (1, 2, 3)
PARTITIONS = 6
TIMEOUT_S = 30


class Combined:
    """`node_properties` adds properties by node id (after the common ones, so they win)."""

    def __init__(self, root, node_properties: dict[int, dict[str, str]] | None = None):
        controller_ports = {node_id: free_port() for node_id in NODE_IDS}
        voters = ",".join(f"{node_id}@{HOST}:{port}" for node_id, port in controller_ports.items())
        self.nodes: dict[int, Node] = {}
        for node_id in NODE_IDS:
            port = free_port()
            self.nodes[node_id] = Node(root / f"node{node_id}", node_id, {
                "process.roles": "broker,controller",
                "listeners": f"PLAINTEXT://{HOST}:{port},CONTROLLER://{HOST}:"
                             f"{controller_ports[node_id]}",
                "advertised.listeners": f"PLAINTEXT://{HOST}:{port}",
                "controller.quorum.voters": voters,
                "offsets.topic.replication.factor": "1",
                "group.initial.rebalance.delay.ms": "0",
                **COMMON_PROPERTIES,
                **(node_properties or {}).get(node_id, {}),
            }, port, {"host": port})
        cluster_id = random_cluster_id()
        for node in self.nodes.values():
            format_node(node, cluster_id)

    def port(self, node_id: int) -> int:
        return self.nodes[node_id].port

    def bootstrap(self, node_ids=NODE_IDS) -> str:
        return ",".join(f"{HOST}:{self.port(node_id)}" for node_id in node_ids)

    def all_listed(self, node_ids=NODE_IDS):
        for node_id in node_ids:
            assert sorted(metadata_at(self.port(node_id)).brokers) == sorted(node_ids)


@pytest.fixture(scope="module")
def combined(tmp_path_factory):
    cluster = Combined(tmp_path_factory.mktemp("combined"))
    try:
        for node in cluster.nodes.values():
            node.start()
        eventually(cluster.all_listed, 60, "three combined nodes list each other")
        yield cluster
    finally:
        for node in cluster.nodes.values():
            node.kill()


@pytest.fixture(autouse=True)
def _logs_in_reports(_forget_brokers, combined):
    support.started_brokers.extend(combined.nodes.values())


def leaders_of(port: int, topic: str) -> dict[int, int]:
    partitions = metadata_at(port).topics.get(topic, {})
    assert len(partitions) == PARTITIONS, partitions
    return {index: partition.leader for index, partition in partitions.items()}


def test_topics_and_records_across_three_combined_nodes(combined):
    """A topic created through node 2 is listed by all three with leaders on all three; records
    produced through node 3 are read back in full through node 1."""
    run_script("flink-topics.sh", "--bootstrap-server", combined.bootstrap([2]), "--create",
               "--topic", "combined", "--partitions", str(PARTITIONS))
    eventually(lambda: [leaders_of(combined.port(n), "combined") for n in NODE_IDS],
               TIMEOUT_S, "every node lists the topic")
    assert set(leaders_of(combined.port(1), "combined").values()) == set(NODE_IDS)
    sent = keyed_messages(600, keys=60)
    confluent_produce(combined.bootstrap([3]), "combined", sent)
    read = confluent_consume(combined.bootstrap([1]), "combined", PARTITIONS, len(sent),
                             start=OFFSET_BEGINNING)
    check_history(sent, read, PARTITIONS)


def test_losing_the_node_of_the_active_controller(combined):
    """SIGKILL of the node whose controller is active: another node's controller takes over,
    the dead node's partitions lose their leader, topics can still be created through a
    survivor; restarted, the node rejoins and leads its partitions again."""
    run_script("flink-topics.sh", "--bootstrap-server", combined.bootstrap([1]), "--create",
               "--topic", "combined-failover", "--partitions", str(PARTITIONS))
    before = eventually(lambda: leaders_of(combined.port(1), "combined-failover"), TIMEOUT_S,
                        "the topic is listed")
    leader = describe_quorum_at(combined.port(1)).leader_id
    assert leader in NODE_IDS
    combined.nodes[leader].stop(signal.SIGKILL)
    survivors = [node_id for node_id in NODE_IDS if node_id != leader]

    def taken_over():
        quorum = describe_quorum_at(combined.port(survivors[0]))
        assert quorum.leader_id in survivors, quorum
        leaders = leaders_of(combined.port(survivors[0]), "combined-failover")
        for index, was in before.items():
            assert leaders[index] == (-1 if was == leader else was), leaders
    eventually(taken_over, TIMEOUT_S, f"node {leader}'s controller and partitions taken over")
    created = run_script("flink-topics.sh", "--bootstrap-server",
                         combined.bootstrap(survivors), "--create", "--topic", "after-loss")
    assert "Created topic after-loss." in created.stdout

    combined.nodes[leader].start()
    eventually(lambda: leaders_of(combined.port(leader), "combined-failover") == before,
               TIMEOUT_S, f"node {leader} leads its partitions again")
    eventually(combined.all_listed, TIMEOUT_S, "all three listed again")
