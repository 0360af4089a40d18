"""Three controllers and three brokers, each its own `flink server` process on loopback.

Nodes 1..3 are controllers (process.roles=controller), nodes 4..6 brokers with two client listeners
as in the seed's compose file: PLAINTEXT ("internal", the inter-broker listener) and PLAINTEXT_HOST
("host"); on loopback they are simply two ports. Every node gets its own properties file, formatted
log directory and log file (`support.Broker` starts, stops and reads the logs; `Node` only changes
how it is configured and when it counts as up).

What a test observes is asked of the nodes over the wire, one node at a time: Metadata from one
given broker (what that broker believes), DescribeQuorum for the active controller. Every wait is
bounded; `eventually` retries an asserting check until it passes or its deadline expires.
"""

from __future__ import annotations

import signal
import socket
import time
from dataclasses import dataclass
from pathlib import Path

from kafka.protocol.admin import DescribeQuorumRequest, DescribeQuorumResponse
from kafka.protocol.metadata import MetadataRequest, MetadataResponse

import support
from kafka_wire import WireConnection
from support import HOST, free_port, run_script

CONTROLLER_IDS = (1, 2, 3)
BROKER_IDS = (4, 5, 6)
# Listener names by what the tests call them: "host" is what clients outside would use.
LISTENERS = {"internal": "PLAINTEXT", "host": "PLAINTEXT_HOST"}
METADATA_TOPIC = "__cluster_metadata"

# Fast failure detection for tests (Kafka's names; Kafka's defaults are 2000, 9000 and 1000 ms).
BROKER_HEARTBEAT_INTERVAL_MS = 300
BROKER_SESSION_TIMEOUT_MS = 2500
ELECTION_TIMEOUT_MS = 1000
SNAPSHOT_BYTES = 1024

READY_TIMEOUT_S = 60  # Six processes and an election on two cores.
# Six processes share this machine's CPUs, so none pins its executors: the kernel places and moves
# the threads (with `auto`, every node would pin to CPU node.id mod n of the machine).
CPU_PINNING = "none"
REQUEST_TIMEOUT_S = 5
POLL_INTERVAL_S = 0.2
REPORT_TAIL_LINES = 25

COMMON_PROPERTIES = {
    "controller.quorum.election.timeout.ms": str(ELECTION_TIMEOUT_MS),
    "broker.heartbeat.interval.ms": str(BROKER_HEARTBEAT_INTERVAL_MS),
    "broker.session.timeout.ms": str(BROKER_SESSION_TIMEOUT_MS),
    "controller.listener.names": "CONTROLLER",
    "listener.security.protocol.map":
        "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT,PLAINTEXT_HOST:PLAINTEXT",
    # Snapshots every few kilobytes of metadata (Kafka's default is 20 MiB), so that the tests
    # run on compacted logs and lagging nodes catch up from snapshots.
    "metadata.log.max.record.bytes.between.snapshots": str(SNAPSHOT_BYTES),
    "shard.count": "1",  # Two cores for six nodes.
    "cpu.pinning": CPU_PINNING,
    "metrics.port": "0",
}
BROKER_PROPERTIES = {
    "inter.broker.listener.name": "PLAINTEXT",
    "group.initial.rebalance.delay.ms": "0",
    # Replication is not implemented yet: internal topics get one replica.
    "offsets.topic.replication.factor": "1",
    "transaction.state.log.replication.factor": "1",
    "transaction.state.log.min.isr": "1",
}


class NodeExited(AssertionError):
    """A node that should be running has exited: no point waiting any longer."""


def eventually(check, timeout: float, what: str):
    """Call `check` until it returns without an AssertionError or OSError; returns its result.

    At the deadline the last failure is raised with `what` and the time waited. NodeExited is
    raised at once.
    """
    deadline = time.monotonic() + timeout
    while True:
        try:
            return check()
        except NodeExited:
            raise
        except (AssertionError, OSError) as error:
            if time.monotonic() >= deadline:
                raise AssertionError(
                    f"{what}: not so within {timeout}s; last: {type(error).__name__}: {error}"
                ) from error
        time.sleep(POLL_INTERVAL_S)


@dataclass
class Partition:
    error_code: int
    leader: int
    replicas: list[int]
    isr: list[int]


@dataclass
class Metadata:
    """One broker's Metadata answer: brokers by id as (host, port), partitions by topic."""

    cluster_id: str | None
    controller_id: int
    brokers: dict[int, tuple[str, int]]
    topics: dict[str, dict[int, Partition]]

    def partitions(self, topic: str) -> dict[int, Partition]:
        assert topic in self.topics, f"topic {topic} not in metadata: {sorted(self.topics)}"
        return self.topics[topic]

    def leaders(self, topic: str) -> dict[int, int]:
        return {index: partition.leader for index, partition in self.partitions(topic).items()}


@dataclass
class Quorum:
    """DescribeQuorum of `__cluster_metadata-0`: log end offsets of voters and observers by id."""

    leader_id: int
    leader_epoch: int
    high_watermark: int
    voters: dict[int, int]
    observers: dict[int, int]


def metadata_at(port: int, host: str = HOST) -> Metadata:
    """Metadata for all topics from the node listening on `host`:`port`, and from no other."""
    with WireConnection(host, port, timeout=REQUEST_TIMEOUT_S) as connection:
        version = connection.version_for(MetadataRequest.API_KEY, 1, 12)
        request = MetadataRequest(topics=None, allow_auto_topic_creation=False)
        response = connection.call(request, MetadataResponse, version)
    topics = {}
    for topic in response.topics:
        topics[topic.name] = {
            p.partition_index: Partition(p.error_code, p.leader_id, list(p.replica_nodes),
                                         list(p.isr_nodes))
            for p in topic.partitions
        }
    return Metadata(
        cluster_id=response.cluster_id if version >= 2 else None,
        controller_id=response.controller_id,
        brokers={b.node_id: (b.host, b.port) for b in response.brokers},
        topics=topics,
    )


def describe_quorum_at(port: int, host: str = HOST) -> Quorum:
    """DescribeQuorum from the node on `port`: a broker forwards it to the active controller, a
    controller answers only if it is the leader (as kafka-metadata-quorum.sh's
    --bootstrap-server and --bootstrap-controller)."""
    with WireConnection(host, port, timeout=REQUEST_TIMEOUT_S) as connection:
        version = connection.version_for(DescribeQuorumRequest.API_KEY, 0, 2)
        topic = DescribeQuorumRequest.TopicData
        request = DescribeQuorumRequest(topics=[topic(
            topic_name=METADATA_TOPIC,
            partitions=[topic.PartitionData(partition_index=0)],
        )])
        response = connection.call(request, DescribeQuorumResponse, version)
    assert response.error_code == 0, f"DescribeQuorum error_code {response.error_code}"
    (topic_answer,) = response.topics
    (partition,) = topic_answer.partitions
    assert partition.error_code == 0, (
        f"DescribeQuorum on port {port}: partition error_code {partition.error_code}")
    return Quorum(
        leader_id=partition.leader_id,
        leader_epoch=partition.leader_epoch,
        high_watermark=partition.high_watermark,
        voters={r.replica_id: r.log_end_offset for r in partition.current_voters},
        observers={r.replica_id: r.log_end_offset for r in partition.observers},
    )


class Node(support.Broker):
    """One node: `flink server <its properties file>`, stderr appended to its own log.

    `port` is where to ask it: a controller's CONTROLLER listener, a broker's host listener, all
    on `host`. `support.Broker` provides start, stop, kill and the log; start returns once the
    process runs. `command_prefix` runs the server under another command (chaos.py sets a group
    id per node with setpriv, so that iptables can tell the nodes' connections apart).
    """

    def __init__(self, work_dir: Path, node_id: int, properties: dict[str, str], port: int,
                 listener_ports: dict[str, int] | None = None, host: str = HOST):
        work_dir.mkdir(parents=True, exist_ok=True)
        super().__init__(work_dir)
        self.node_id = node_id
        self.host = host
        self.port = port
        self.command_prefix: list[str] = []
        self.listener_ports = listener_ports or {}
        self.log_path = work_dir / "server.log"
        self.properties_path = work_dir / "server.properties"
        self.properties = {"node.id": str(node_id), **properties, "log.dirs": str(self.data_dir)}
        self.properties_path.write_text(
            "".join(f"{key}={value}\n" for key, value in self.properties.items()))
        self.should_run = False  # Started and not since stopped by the harness.

    @property
    def is_broker(self) -> bool:
        return "broker" in self.properties["process.roles"].split(",")

    @property
    def bootstrap(self) -> str:
        return f"{self.host}:{self.port}"

    def address(self, listener: str = "host") -> str:
        return f"{self.host}:{self.listener_ports[listener]}"

    def command(self) -> list[str]:
        return [*self.command_prefix, str(support.FLINK), "server", str(self.properties_path)]

    def _port_accepts(self) -> bool:
        try:
            with socket.create_connection((self.host, self.port), timeout=1) as sock:
                # A connect to a free port in the ephemeral range can connect to itself.
                return sock.getsockname() != sock.getpeername()
        except OSError:
            return False

    def start(self) -> "Node":
        self.should_run = True
        return super().start()

    def stop(self, sig: int = signal.SIGTERM, timeout: float = support.SHUTDOWN_TIMEOUT_S):
        self.should_run = False
        return super().stop(sig, timeout)

    def wait_until_ready(self) -> None:
        """support.Broker.start calls this: here a node only has to be alive. Whether it serves is
        the cluster's question (Cluster.wait_until_ready), as a broker may open its listeners
        only once the quorum has admitted it, which needs the other nodes started too."""
        self.check_alive()

    def check_alive(self) -> None:
        """Raises NodeExited if the node exited although the harness did not stop it."""
        code = self.process.poll() if self.process else None
        if self.should_run and code is not None:
            raise NodeExited(
                f"node {self.node_id} exited with {code}; its log ({self.log_path}) ends:\n"
                f"{self.log_tail(REPORT_TAIL_LINES)}")


class Cluster:
    """Controllers 1..3 and brokers 4..6 under `root`, one directory per node.

    `properties` are added to every node's (after the defaults above, so they win); `hosts` gives
    nodes a loopback address of their own by node id (Linux routes all of 127.0.0.0/8 to lo),
    the others listen on support.HOST.
    """

    def __init__(self, root: Path, properties: dict[str, str] | None = None,
                 hosts: dict[int, str] | None = None):
        self.root = root
        self.cluster_id: str | None = None
        self.properties = dict(properties or {})
        self.hosts = dict(hosts or {})
        controller_ports = {node_id: free_port() for node_id in CONTROLLER_IDS}
        self.voters = ",".join(f"{node_id}@{self.host(node_id)}:{port}"
                               for node_id, port in controller_ports.items())
        self.nodes: dict[int, Node] = {}
        for node_id, port in controller_ports.items():
            self.nodes[node_id] = Node(root / f"node{node_id}", node_id, {
                "process.roles": "controller",
                "listeners": f"CONTROLLER://{self.host(node_id)}:{port}",
                "controller.quorum.voters": self.voters,
                **COMMON_PROPERTIES,
                **self.properties,
            }, port, host=self.host(node_id))
        for node_id in BROKER_IDS:
            self.nodes[node_id] = self.make_broker(node_id)

    def make_broker(self, node_id: int, directory: str | None = None) -> Node:
        """A broker node configured for this cluster's quorum, on ports of its own (in
        `directory` under the root, by default `node<id>`); not started, not formatted, and not a
        member of `nodes` unless the caller adds it."""
        ports = {name: free_port() for name in LISTENERS}
        host = self.host(node_id)
        listeners = ",".join(f"{LISTENERS[name]}://{host}:{port}" for name, port in ports.items())
        return Node(self.root / (directory or f"node{node_id}"), node_id, {
            "process.roles": "broker",
            "listeners": listeners,
            "advertised.listeners": listeners,
            "controller.quorum.voters": self.voters,
            **COMMON_PROPERTIES,
            **BROKER_PROPERTIES,
            **self.properties,
        }, ports["host"], ports, host=host)

    def host(self, node_id: int) -> str:
        """The loopback address node `node_id` listens on."""
        return self.hosts.get(node_id, HOST)

    # ---- lifecycle ----------------------------------------------------------------------------

    def format(self) -> str:
        """Format every node with one new cluster id (`flink storage random-uuid`); returns it."""
        self.cluster_id = random_cluster_id()
        for node in self.nodes.values():
            format_node(node, self.cluster_id)
        return self.cluster_id

    def start_all(self) -> None:
        """Start every node that is not running, then wait until the cluster is ready."""
        for node in self.nodes.values():
            if not node.is_running():
                node.start()
        self.wait_until_ready()

    def ensure_running(self) -> None:
        """Restart whatever an earlier test left stopped, and wait until the cluster is ready."""
        self.start_all()

    def start(self, node_id: int) -> Node:
        """Start one node; it has not necessarily rejoined when this returns."""
        return self.nodes[node_id].start()

    def kill(self, node_id: int, sig: int = signal.SIGKILL) -> int | None:
        """Send `sig` to one node and wait for it to exit; returns its exit code."""
        return self.nodes[node_id].stop(sig)

    def stop_all(self, sig: int = signal.SIGTERM) -> dict[int, int | None]:
        """Stop the brokers, then the controllers (as Kafka's controlled shutdown needs);
        returns exit codes by node id (None: had to be SIGKILLed after the timeout)."""
        codes = {}
        for group in (BROKER_IDS, CONTROLLER_IDS):
            for node_id in group:
                codes[node_id] = self.nodes[node_id].stop(sig)
        return codes

    def wait_until_ready(self, timeout: float = READY_TIMEOUT_S) -> None:
        """Until every running node listens and every running broker's host listener answers
        Metadata listing exactly the running brokers at their host ports. Fails at once if a
        node has exited."""
        def ready():
            for node in self.nodes.values():
                node.check_alive()
                if node.should_run:
                    assert node._port_accepts(), f"node {node.node_id}: nothing on {node.port}"
            expected = self.advertised(self.running_brokers(), "host")
            for node_id in self.running_brokers():
                brokers = self.metadata(node_id).brokers
                assert brokers == expected, f"broker {node_id} lists {brokers}, not {expected}"
        try:
            eventually(ready, timeout, "every broker lists every running broker")
        except NodeExited:
            raise
        except AssertionError as error:
            raise AssertionError(f"{error}\n{self.log_tails()}") from error

    # ---- what the nodes say -------------------------------------------------------------------

    def metadata(self, broker_id: int, listener: str = "host") -> Metadata:
        """Metadata as broker `broker_id` answers it on `listener`."""
        node = self.nodes[broker_id]
        return metadata_at(node.listener_ports[listener], node.host)

    def describe_quorum(self) -> Quorum:
        """DescribeQuorum from the first running broker that answers, else from whichever running
        controller answers (only the active one does)."""
        errors = []
        brokers = [self.nodes[node_id] for node_id in self.running_brokers()]
        controllers = [self.nodes[node_id] for node_id in CONTROLLER_IDS
                       if self.nodes[node_id].should_run]
        for node in brokers + controllers:
            try:
                return describe_quorum_at(node.port, node.host)
            except (AssertionError, OSError) as error:
                errors.append(f"node {node.node_id}: {type(error).__name__}: {error}")
        raise AssertionError("no node answered DescribeQuorum: " + "; ".join(errors))

    def active_controller(self) -> int:
        """The Raft leader of the metadata quorum, by DescribeQuorum (Kafka's Metadata answers a
        random live broker as controller_id in KRaft, KIP-590, so it cannot tell)."""
        quorum = self.describe_quorum()
        assert quorum.leader_id in CONTROLLER_IDS, f"quorum leader is {quorum.leader_id}"
        return quorum.leader_id

    # ---- addresses and logs -------------------------------------------------------------------

    def running_brokers(self) -> list[int]:
        """The brokers started and not stopped since (one that crashed still counts)."""
        return [node_id for node_id in BROKER_IDS if self.nodes[node_id].should_run]

    def address(self, broker_id: int, listener: str = "host") -> str:
        return self.nodes[broker_id].address(listener)

    def bootstrap(self, listener: str = "host", brokers=BROKER_IDS) -> str:
        """bootstrap.servers for `brokers` on `listener` ("host" or "internal")."""
        return ",".join(self.address(node_id, listener) for node_id in brokers)

    def advertised(self, brokers, listener: str) -> dict[int, tuple[str, int]]:
        """What Metadata should list for `brokers` on `listener`: {id: (host, port)}."""
        return {node_id: (self.nodes[node_id].host, self.nodes[node_id].listener_ports[listener])
                for node_id in brokers}

    def track_logs(self) -> None:
        """Put every node in `support.started_brokers`, so a failing test's report carries the
        tail of each node's log (conftest clears that list before each test)."""
        for node in self.nodes.values():
            if node not in support.started_brokers:
                support.started_brokers.append(node)

    def log_tails(self, lines: int = REPORT_TAIL_LINES) -> str:
        return "\n".join(f"----- node {node.node_id} ({node.log_path}) -----\n"
                         f"{node.log_tail(lines)}" for node in self.nodes.values())


def random_cluster_id() -> str:
    result = run_script("flink", "storage", "random-uuid")
    cluster_id = result.stdout.strip()
    assert len(cluster_id) == 22, support.describe_run(result)
    return cluster_id


def format_node(node: Node, cluster_id: str) -> None:
    """`flink storage format -t <cluster id> -c <the node's properties>`."""
    result = run_script("flink", "storage", "format", "-t", cluster_id,
                        "-c", str(node.properties_path))
    assert f"Formatting log directory {node.data_dir} with cluster.id {cluster_id}" in (
        result.stdout), support.describe_run(result)

