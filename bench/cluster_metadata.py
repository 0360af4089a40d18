#!/usr/bin/env python3
"""Metadata path timings of a 3 controllers + 3 brokers cluster on loopback, against a single
combined node started in the same run as the baseline.

- CreateTopics latency (one topic of one partition per request, raw requests on one socket):
  the single node commits to its own Raft log; the cluster's broker forwards to the active
  controller, which commits to a majority of three, and answers once its own shards have it.
- Propagation: from CreateTopics returning on one broker until another broker lists the topic.
- Controller failover: SIGKILL of the active controller until DescribeQuorum names another, and
  until CreateTopics succeeds again (election timeout 1000 ms, as Kafka's default).
- Fencing: SIGKILL of a broker until the others stop listing it, as a ratio of
  broker.session.timeout.ms.

Run: `make dist && python3 bench/cluster_metadata.py [--topics N]`; writes
bench/results/cluster_metadata.md. Machines are noisy: compare ratios, not absolute times.
"""

from __future__ import annotations

import argparse
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests" / "integration"))

from kafka.protocol.admin import CreateTopicsRequest, CreateTopicsResponse  # noqa: E402

import support  # noqa: E402
from cluster import (BROKER_IDS, BROKER_SESSION_TIMEOUT_MS, CPU_PINNING, Cluster,  # noqa: E402
                     describe_quorum_at, metadata_at)
from kafka_wire import WireConnection  # noqa: E402

POLL_S = 0.005


def create_request(name: str) -> CreateTopicsRequest:
    topic = CreateTopicsRequest.CreatableTopic(name=name, num_partitions=1, replication_factor=1,
                                               assignments=[], configs=[])
    return CreateTopicsRequest(topics=[topic], timeout_ms=30_000, validate_only=False)


def create_latencies(port: int, prefix: str, count: int) -> list[float]:
    """Seconds per CreateTopics request, each naming one new topic, on one connection."""
    latencies = []
    with WireConnection(support.HOST, port, timeout=30) as connection:
        version = connection.version_for(CreateTopicsRequest.API_KEY, 1, 7)
        for index in range(count):
            request = create_request(f"{prefix}-{index}")
            started = time.perf_counter()
            response = connection.call(request, CreateTopicsResponse, version)
            latencies.append(time.perf_counter() - started)
            assert response.topics[0].error_code == 0, response
    return latencies


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def until(check, timeout: float = 60) -> float:
    """Seconds until `check()` is true (polled every few milliseconds)."""
    started = time.perf_counter()
    while not check():
        if time.perf_counter() - started > timeout:
            raise TimeoutError("condition not reached")
        time.sleep(POLL_S)
    return time.perf_counter() - started


def safely(check):
    def wrapped():
        try:
            return check()
        except Exception:  # noqa: BLE001 - a node that is down answers nothing
            return False
    return wrapped


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--topics", type=int, default=200)
    parser.add_argument("--output", type=Path,
                        default=REPO / "bench" / "results" / "cluster_metadata.md")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory(prefix="flink-bench-") as root:
        (Path(root) / "single").mkdir()
        single = support.Broker(Path(root) / "single", {"shard.count": "1"}).start()
        try:
            single_lat = create_latencies(single.port, "single", args.topics)
        finally:
            single.kill()
        # Six processes on one machine: placement is set here, not left to the `auto` rule.
        cluster = Cluster(Path(root) / "cluster", properties={"cpu.pinning": CPU_PINNING})
        cluster.format()
        cluster.start_all()
        try:
            port = cluster.nodes[4].listener_ports["host"]
            other = cluster.nodes[6].listener_ports["host"]
            cluster_lat = create_latencies(port, "cluster", args.topics)
            propagation = []
            for index in range(20):
                name = f"visible-{index}"
                create_latencies_named(port, name)
                propagation.append(until(safely(lambda: name in metadata_at(other).topics)))
            leader = describe_quorum_at(port).leader_id
            cluster.kill(leader)
            killed_at = time.perf_counter()
            until(safely(lambda: describe_quorum_at(port).leader_id not in (leader, -1)))
            elected = time.perf_counter() - killed_at
            create_latencies_named(port, "after-failover")
            writable = time.perf_counter() - killed_at
            cluster.start(leader)
            cluster.kill(5, signal.SIGKILL)
            fenced = until(safely(lambda: 5 not in metadata_at(port).brokers))
        finally:
            cluster.stop_all(signal.SIGKILL)
    rows.append(("CreateTopics p50 (ms)", 1000 * statistics.median(single_lat),
                 1000 * statistics.median(cluster_lat)))
    rows.append(("CreateTopics p99 (ms)", 1000 * percentile(single_lat, 0.99),
                 1000 * percentile(cluster_lat, 0.99)))
    lines = [
        "# Cluster metadata path",
        "",
        f"{args.topics} CreateTopics requests each; single combined node vs 3 controllers + "
        f"3 brokers on loopback (cpu.pinning={CPU_PINNING}), same run, {BROKER_IDS} brokers.",
        "",
        "| measure | single node | cluster | cluster / single |",
        "| --- | ---: | ---: | ---: |",
    ]
    for name, base, measured in rows:
        lines.append(f"| {name} | {base:.2f} | {measured:.2f} | {measured / base:.2f} |")
    lines += [
        "",
        "| cluster event | seconds | note |",
        "| --- | ---: | --- |",
        f"| new topic listed by another broker (median of 20) | {statistics.median(propagation):.3f} | long-poll fetch |",
        f"| new active controller after SIGKILL of the leader | {elected:.2f} | election timeout 1.0 s |",
        f"| CreateTopics succeeds again after that SIGKILL | {writable:.2f} | |",
        f"| killed broker dropped from Metadata | {fenced:.2f} | "
        f"{fenced / (BROKER_SESSION_TIMEOUT_MS / 1000):.2f} x broker.session.timeout.ms |",
    ]
    text = "\n".join(lines) + "\n"
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(text)
    print(text)


def create_latencies_named(port: int, name: str) -> None:
    """CreateTopics of `name`, retried until it succeeds (a controller may be electing)."""
    deadline = time.perf_counter() + 30
    while True:
        try:
            with WireConnection(support.HOST, port, timeout=30) as connection:
                version = connection.version_for(CreateTopicsRequest.API_KEY, 1, 7)
                response = connection.call(create_request(name), CreateTopicsResponse, version)
            if response.topics[0].error_code in (0, 36):  # 36: created by an earlier try
                return
        except OSError:
            pass
        assert time.perf_counter() < deadline, f"cannot create {name}"
        time.sleep(0.05)


if __name__ == "__main__":
    main()
