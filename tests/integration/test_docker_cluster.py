"""The reference README's three controllers and three brokers under Docker Compose
(deploy/docker-compose.cluster.yml): the in-network and host-side commands as written, every broker
listed at its host port, and a broker stopped and started again while consumers read every
acknowledged record of a replicated topic.

Skipped, with the reason printed, where Docker is not available (test_docker's check). The
compose file keeps the README's container names and host ports (29092, 39092, 49092), which its
commands use; a unique project name keeps its network apart.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import time
import warnings

from test_docker import (DEPLOY, DOCKER_TIMEOUT_S, SECCOMP_PROFILE, compose_command,  # noqa: F401
                         container_logs, describe, docker, image, in_container,
                         inherited_memlock_bytes, memlock_unlimited_allowed, wait_until_started)
from clients import OFFSET_BEGINNING, check_reports, confluent_consume, confluent_produce
from support import keyed_messages, run_script

CLUSTER_FILE = DEPLOY / "docker-compose.cluster.yml"
CONTROLLERS = ["controller-1", "controller-2", "controller-3"]
BROKERS = ["broker-1", "broker-2", "broker-3"]
IN_NETWORK = "--bootstrap-server broker-1:19092,broker-2:19092,broker-3:19092"
FROM_HOST = "localhost:29092,localhost:39092,localhost:49092"
HOST_PORTS = {"broker-1": 29092, "broker-2": 39092, "broker-3": 49092}
CLUSTER_TIMEOUT_S = 90  # Six containers and an election on two cores.
FENCING_TIMEOUT_S = 30
UP_ATTEMPTS = 3  # broker.session.timeout.ms (9 s) and the client's metadata refresh.


def listed_brokers(bootstrap: str) -> dict[int, str]:
    """Broker id -> host:port as Metadata from `bootstrap` lists them (kcat -L)."""
    result = subprocess.run(["kcat", "-b", bootstrap, "-L", "-m", "10"], capture_output=True,
                            text=True, timeout=DOCKER_TIMEOUT_S, stdin=subprocess.DEVNULL)
    assert result.returncode == 0, describe(result)
    return {int(node): address for node, address
            in re.findall(r"broker (\d+) at (\S+)", result.stdout)}


def wait_for_host_ports(timeout: float = 60) -> None:
    """Waits until the README's host ports can be bound (as Docker's port proxy binds them)."""
    deadline = time.monotonic() + timeout
    for port in HOST_PORTS.values():
        while True:
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
                probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                try:
                    probe.bind(("0.0.0.0", port))
                    break
                except OSError:
                    assert time.monotonic() < deadline, f"host port {port} stays in use"
                    time.sleep(0.5)


def eventually(check, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while True:
        try:
            return check()
        except AssertionError as error:
            if time.monotonic() >= deadline:
                raise AssertionError(f"{what} within {timeout}s: {error}") from error
            time.sleep(0.5)


def test_compose_cluster_runs_the_readme_commands(tmp_path):
    """The 3+3 compose file starts (storage formatted with the image's default cluster id);
    the README's commands create, produce and consume inside the network and from the host; every
    broker is listed at its host port; with one broker stopped, every record acknowledged to a
    replication-factor-3 topic (min.insync.replicas=2) is read, before and during the outage,
    and acks=all writes go on; the stopped broker drops out of Metadata and, started again, is
    listed and serves what it held."""
    compose = compose_command()
    shipped = CLUSTER_FILE.read_text()
    for expected in ["- 29092:9092\n", "- 39092:9092\n", "- 49092:9092\n",
                     "FLINK_CONTROLLER_QUORUM_VOTERS: "
                     "1@controller-1:9093,2@controller-2:9093,3@controller-3:9093\n",
                     "- seccomp=./seccomp-io_uring.json\n", "memlock: -1\n",
                     "FLINK_CPU_PINNING: none\n"]:
        assert expected in shipped, f"{CLUSTER_FILE} lacks {expected!r}"
    text = shipped
    if not memlock_unlimited_allowed():
        # io_uring charges locked memory to the user, and all six containers run as `flink`: on
        # a host whose dockerd cannot lift the limit, one shard per broker keeps them within it.
        limit = inherited_memlock_bytes()
        warnings.warn(f"this Docker host cannot set memlock -1; the cluster runs with {limit} "
                      "bytes and one shard per broker")
        text = text.replace("memlock: -1\n", f"memlock: {limit}\n").replace(
            "      FLINK_NODE_ID:", "      FLINK_SHARD_COUNT: 1\n      FLINK_NODE_ID:")
    (tmp_path / "docker-compose.yml").write_text(text)
    shutil.copy(SECCOMP_PROFILE, tmp_path / SECCOMP_PROFILE.name)
    project = ["-p", f"flinkcluster{os.getpid()}"]

    def run_compose(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([*compose, *project, *args], cwd=tmp_path, capture_output=True,
                              text=True, timeout=CLUSTER_TIMEOUT_S, stdin=subprocess.DEVNULL)

    try:
        # 39092 and 49092 lie in Linux's ephemeral port range, so a client socket of another
        # test can hold one for a moment; wait for the ports, and try `up` again if one was
        # taken in between.
        for attempt in range(UP_ATTEMPTS):
            wait_for_host_ports()
            up = run_compose("up", "-d")
            if up.returncode == 0 or "address already in use" not in up.stderr:
                break
            run_compose("down", "-t", "5")
        assert up.returncode == 0, describe(up)
        for broker in BROKERS:
            wait_until_started(broker)
        assert "Formatting log directory" in container_logs("controller-1")
        for name in CONTROLLERS + BROKERS:
            # Six nodes on one host: none pins its executors (FLINK_CPU_PINNING reached it).
            assert "CPU placement none" in container_logs(name), name

        # Inside the network, as the README has it.
        created = in_container("broker-1", f"./flink-topics.sh {IN_NETWORK} --create "
                                           "--topic test-topic")
        assert "Created topic test-topic." in created, created
        in_container("broker-1", f"./flink-console-producer.sh {IN_NETWORK} --topic test-topic",
                     input="hello\nworld\n")
        consumed = in_container("broker-2", f"./flink-console-consumer.sh {IN_NETWORK} "
                                            "--topic test-topic --from-beginning --max-messages 2")
        assert consumed == "hello\nworld\n", consumed

        # From the host, through the mapped ports.
        listed = listed_brokers(FROM_HOST)
        assert listed == {4: "localhost:29092", 5: "localhost:39092", 6: "localhost:49092"}, listed
        created = run_script("flink-topics.sh", "--bootstrap-server", FROM_HOST, "--create",
                             "--topic", "test-topic2", "--partitions", "3").stdout
        assert "Created topic test-topic2." in created, created
        run_script("flink-console-producer.sh", "--bootstrap-server", FROM_HOST,
                   "--topic", "test-topic2", input="".join(f"m{n}\n" for n in range(30)))
        consumed = run_script("flink-console-consumer.sh", "--bootstrap-server", FROM_HOST,
                              "--topic", "test-topic2", "--from-beginning",
                              "--max-messages", "30").stdout
        assert sorted(consumed.split()) == sorted(f"m{n}" for n in range(30)), consumed

        # A replicated topic keeps serving with a broker stopped.
        created = run_script("flink-topics.sh", "--bootstrap-server", FROM_HOST, "--create",
                             "--topic", "replicated", "--partitions", "3",
                             "--replication-factor", "3",
                             "--config", "min.insync.replicas=2").stdout
        assert "Created topic replicated." in created, created
        before = keyed_messages(300, keys=30)
        reports = confluent_produce(FROM_HOST, "replicated", before, acks="all")

        # A broker stopped: the others stop listing it; started again, it rejoins.
        stopped = docker("stop", "broker-3", timeout=CLUSTER_TIMEOUT_S)
        assert stopped.returncode == 0

        def without_broker_3():
            assert sorted(listed_brokers("localhost:29092")) == [4, 5]
        eventually(without_broker_3, FENCING_TIMEOUT_S, "broker 6 is fenced")
        during = [(f"d{key}", value) for key, value in keyed_messages(300, keys=30)]
        reports += confluent_produce("localhost:29092,localhost:39092", "replicated", during,
                                     acks="all")
        consumed = confluent_consume("localhost:29092,localhost:39092", "replicated", 3,
                                     len(before) + len(during), start=OFFSET_BEGINNING)
        check_reports(reports, consumed, before + during)
        docker("start", "broker-3")

        def with_broker_3():
            assert sorted(listed_brokers("localhost:29092")) == [4, 5, 6]
        eventually(with_broker_3, CLUSTER_TIMEOUT_S, "broker 6 rejoins")
        consumed = run_script("flink-console-consumer.sh", "--bootstrap-server", FROM_HOST,
                              "--topic", "test-topic2", "--from-beginning",
                              "--max-messages", "30").stdout
        assert sorted(consumed.split()) == sorted(f"m{n}" for n in range(30)), consumed
    except AssertionError:
        for name in CONTROLLERS + BROKERS:
            print(f"===== docker logs {name} =====\n{container_logs(name)[-3000:]}")
        raise
    finally:
        run_compose("down", "-t", "5")
