"""Shard-affine replica fetching (`net::steering`): three combined nodes with two shards each, a
topic with three replicas; every follower's fetcher on shard s reaches shard s of the leader,
which owns the partitions it fetches, so no replica fetch is served through another shard. Other
clients' connections still spread over both shards."""

from __future__ import annotations

import pytest

import support
from cluster import HOST, eventually, metadata_at
from clients import confluent_produce
from kafka_wire import WireConnection
from support import free_port, run_script
from test_combined_cluster import NODE_IDS, Combined
from test_metrics import scrape, total

SHARDS = 2
PARTITIONS = 8
TIMEOUT_S = 60


@pytest.fixture
def cluster(tmp_path, _forget_brokers):
    """Three combined nodes of two shards each, with their metrics ports (`metrics_ports`)."""
    metrics_ports = {node_id: free_port() for node_id in NODE_IDS}
    cluster = Combined(tmp_path, {node_id: {"shard.count": str(SHARDS),
                                            "metrics.port": str(port)}
                                  for node_id, port in metrics_ports.items()})
    cluster.metrics_ports = metrics_ports
    support.started_brokers.extend(cluster.nodes.values())
    try:
        for node in cluster.nodes.values():
            node.start()
        eventually(cluster.all_listed, TIMEOUT_S, "three nodes list each other")
        yield cluster
    finally:
        for node in cluster.nodes.values():
            node.kill()


def test_followers_fetch_from_the_shard_that_owns_their_partitions(cluster):
    topic = "affine"
    run_script("flink-topics.sh", "--bootstrap-server", cluster.bootstrap(), "--create",
               "--topic", topic, "--partitions", str(PARTITIONS), "--replication-factor", "3")

    def in_sync():
        partitions = metadata_at(cluster.nodes[1].port).topics.get(topic, {})
        assert len(partitions) == PARTITIONS, partitions
        assert all(len(partition.isr) == 3 for partition in partitions.values()), partitions

    eventually(in_sync, TIMEOUT_S, "every replica in sync")
    messages = [(f"k{index}", f"v{index}") for index in range(400)]
    reports = confluent_produce(cluster.bootstrap(), topic, messages, acks="all")
    assert len(reports) == len(messages)
    assert {partition for partition, _ in reports} == set(range(PARTITIONS))

    fetched = {}
    for node_id, port in cluster.metrics_ports.items():
        samples = scrape(port)
        fetched[node_id] = total(samples["flink_replica_fetch_partitions"])
        remote = total(samples["flink_replica_fetch_remote_partitions"])
        assert remote == 0, f"node {node_id}: {remote} of {fetched[node_id]} fetched elsewhere"
    assert all(count > 0 for count in fetched.values()), fetched

    # Ordinary clients, from the kernel's ephemeral ports, reach both shards.
    node = cluster.nodes[1]
    connections = [WireConnection(HOST, node.port) for _ in range(24)]
    try:
        for connection in connections:
            connection.api_versions()
        open_by_shard = {sample.labels["shard"]: sample.value
                         for sample in scrape(cluster.metrics_ports[1])["flink_connections"]}
        assert sorted(open_by_shard) == [str(shard) for shard in range(SHARDS)]
        assert all(count >= 3 for count in open_by_shard.values()), open_by_shard
    finally:
        for connection in connections:
            connection.close()
