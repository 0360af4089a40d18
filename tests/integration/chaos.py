"""Fault injection against the 3 controllers + 3 brokers of cluster.py, with a history checker.

A producer (confluent-kafka, acks=all, idempotent) writes unique self-describing values to the
`chaos` topic (3 partitions, replication factor 3, min.insync.replicas=2) while two readers
(confluent-kafka and kafka-python, each assigned every partition from the beginning) record what
they see, and a nemesis injects one fault at a time: SIGKILL or SIGSTOP of a partition's leader, of
a follower or of the active controller, a rolling restart, a network partition cutting a leader off
from the other nodes. Afterwards everything is healed, the producer flushes, the readers catch up,
every partition is read once more from the beginning (the final log), and the checker asks, per
partition: no acknowledged write lost, no duplicate, offsets strictly increasing in every reader,
every read matches the final log and was sent, no reader ever skips an offset.

Run it as `python3 tests/integration/chaos.py --duration 600 --seed 7` (make chaos), or import it
and call `run` (test_chaos.py). One run at a time per machine: the nodes' loopback addresses, group
ids and the iptables chains are fixed.

The network partition: every node listens on a loopback address of its own (127.0.0.11..16) and runs
under a group id of its own (setpriv; the process stays root). Outgoing connections on loopback all
leave from 127.0.0.1, so an address alone cannot say which node opened a connection: an iptables
rule on OUTPUT marks each new connection with its opener's node (owner --gid-owner, CONNMARK), and
isolating node L drops, in both directions, every packet of a connection between L and another
node (connmark plus the connection's original destination address). The harness's clients run as
group 0, so they still reach every node, as clients on the far side of a real partition would.
"""

from __future__ import annotations

import argparse
import logging
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, Producer
from confluent_kafka import TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic
from kafka import KafkaConsumer
from kafka import TopicPartition as KafkaPythonTopicPartition

import support
from cluster import (BROKER_IDS, CONTROLLER_IDS, CPU_PINNING, Cluster, NodeExited, Partition,
                     eventually)

TOPIC = "chaos"
PARTITIONS = 3
REPLICATION_FACTOR = 3
MIN_INSYNC_REPLICAS = 2
NO_LEADER = -1

# Added to every node's properties (controllers decide replication factors and elections in KRaft).
CLUSTER_PROPERTIES = {
    # The six nodes share this machine's CPUs: unpinned, as cluster.py has it, so the kernel moves
    # a node's threads off a CPU that another node keeps busy.
    "cpu.pinning": CPU_PINNING,
    "replica.lag.time.max.ms": "3000",  # A follower silent this long leaves the ISR.
    "min.insync.replicas": str(MIN_INSYNC_REPLICAS),
    "default.replication.factor": str(REPLICATION_FACTOR),
    "offsets.topic.replication.factor": str(REPLICATION_FACTOR),
    "unclean.leader.election.enable": "false",
}
# Not 127.0.0.1: that is the source address of every connection on loopback, the clients' too.
NODE_HOSTS = {node_id: f"127.0.0.{10 + node_id}" for node_id in (*CONTROLLER_IDS, *BROKER_IDS)}
NODE_GROUP_ID_BASE = 47_000  # Node n runs with group id NODE_GROUP_ID_BASE + n.
CONNECTION_MARK_BASE = 0x4C00  # Connections node n opens carry connmark CONNECTION_MARK_BASE + n.
MARK_CHAIN = "FLINK-CHAOS-MARK"
DROP_CHAIN = "FLINK-CHAOS-DROP"

FAULTS = ("kill-leader", "stop-leader", "kill-follower", "stop-follower", "kill-controller",
          "stop-controller", "rolling-restart", "partition-leader")

PRODUCE_RATE_PER_S = 200
MESSAGE_TIMEOUT_MS = 45_000  # Faults last seconds: a send fails only if the cluster stays down.
REQUEST_TIMEOUT_MS = 10_000
WARM_UP_S = 3.0  # Writes and reads before the first fault, and after the last one.
ADMIN_TIMEOUT_S = 30
TOPIC_READY_TIMEOUT_S = 30
CATCH_UP_TIMEOUT_S = 30  # Readers run all along: at the end they are seconds behind at most.
FINAL_READ_TIMEOUT_S = 60
WATERMARK_TIMEOUT_S = 30
HEALTHY_AGAIN_AFTER_S = 0.3
FLUSH_MARGIN_S = 15
READER_POLL_S = 0.2
READER_BATCH_MAX = 1000
IPTABLES_TIMEOUT_S = 10
PROBE_CONNECT_TIMEOUT_S = 1
EXAMPLES_MAX = 5  # Examples shown per kind of violation.


@dataclass
class Settings:
    """What a run does; the defaults are the long run's."""

    duration_s: float = 600.0  # Faults keep starting until then; every enabled fault runs once.
    seed: int = 0
    faults: tuple[str, ...] = FAULTS
    rate_per_s: float = PRODUCE_RATE_PER_S
    hold_s: tuple[float, float] = (3.0, 6.0)  # How long a fault lasts, drawn per fault.
    pause_s: tuple[float, float] = (2.0, 5.0)  # Healthy time between faults, drawn per fault.
    recovery_timeout_s: float = 30.0  # Waiting for leaders and full ISRs after each fault.
    settle_timeout_s: float = 60.0  # The same once all faults are over.
    message_timeout_ms: int = MESSAGE_TIMEOUT_MS


class ChaosViolation(AssertionError):
    """The checker found a violation; `report` has the whole story."""

    def __init__(self, report: "Report"):
        super().__init__(report.render())
        self.report = report


# ---- entry points -----------------------------------------------------------------------------

def run(work_dir: Path, settings: Settings, check: bool = True, out=print,
        workload=None, properties: dict[str, str] | None = None,
        report_class: type | None = None) -> "Report":
    """One chaos run under `work_dir` (nodes' data and logs, the clients' log); returns the report.

    With `check`, raises ChaosViolation if the checker found anything. `out` prints progress.
    `workload` (default: `run_workload`, the idempotent producer and its readers), extra cluster
    `properties` and `report_class` (a `Report` subclass) let a sibling harness (txn_chaos.py)
    run its own clients and checks under the same faults."""
    workload = workload or run_workload
    report_class = report_class or Report
    work_dir.mkdir(parents=True, exist_ok=True)
    unknown = sorted(set(settings.faults) - set(FAULTS))
    assert not unknown, f"unknown faults {unknown}; known: {', '.join(FAULTS)}"
    client_log = log_clients_to(work_dir / "clients.log")
    clock = Clock()
    network = Network(out)
    network.install()  # Before any node starts: connections are marked when they open.
    faults = list(settings.faults)
    if "partition-leader" in faults and not network.available:
        out(f"skipping fault partition-leader: {network.reason}")
        faults.remove("partition-leader")
    cluster = Cluster(work_dir / "cluster", properties={**CLUSTER_PROPERTIES, **(properties or {})},
                      hosts=NODE_HOSTS)
    if network.available:
        for node in cluster.nodes.values():
            node.command_prefix = ["setpriv", f"--regid={NODE_GROUP_ID_BASE + node.node_id}",
                                   "--clear-groups", "--"]
    report = report_class(settings=settings, work_dir=work_dir, faults_enabled=faults,
                          network_note=network.reason, client_log=client_log)
    try:
        out(f"starting 3 controllers and 3 brokers under {work_dir}")
        cluster.format()
        cluster.start_all()
        create_chaos_topic(cluster)
        out(f"topic {TOPIC} ready: {describe_partitions(partition_states(cluster, set()))}")
        workload(cluster, network, settings, faults, clock, report, out)
    except BaseException:
        out(f"the run failed; node logs are under {work_dir / 'cluster'}")
        out(cluster.log_tails())
        raise
    finally:
        network.remove()
        for node in cluster.nodes.values():
            if node.process is not None and node.process.poll() is None:
                node.process.send_signal(signal.SIGCONT)
        cluster.stop_all(signal.SIGKILL)
    out(report.render())
    if report.violations:
        out(f"node logs are under {work_dir / 'cluster'} (server.log per node); their tails:")
        out(cluster.log_tails())
        if check:
            raise ChaosViolation(report)
    return report


def run_workload(cluster: Cluster, network: "Network", settings: Settings, faults: list[str],
                 clock: "Clock", report: "Report", out) -> None:
    """Producer and readers running while the nemesis injects faults; then heal, settle, read
    the final log and check. Fills `report`."""
    bootstrap = cluster.bootstrap()
    history = History()
    producer = ProducerWorker(bootstrap, f"chaos-s{settings.seed}-{os.getpid()}", settings,
                              clock, history)
    readers = [ConfluentReader("confluent-kafka", bootstrap, clock),
               KafkaPythonReader("kafka-python", bootstrap, clock)]
    nemesis = Nemesis(cluster, network, settings, clock, report, out)
    producer.start()
    for reader in readers:
        reader.start()
    try:
        inject_faults(nemesis, settings, faults, report)
        out(f"{clock.now():7.1f}s  healed; flushing the producer")
        producer.stop_and_join()
        end_offsets = watermarks(bootstrap)
        out(f"{clock.now():7.1f}s  end offsets (log start, end) {end_offsets}; "
            "waiting for the readers")
        caught_up = wait_for_readers(readers, end_offsets)
    finally:
        # On an error too: no client keeps running into the next test.
        for worker in [producer, *readers]:
            worker.stopping.set()
        for reader in readers:
            reader.join(ADMIN_TIMEOUT_S)
    final = FinalReader("final", bootstrap, clock)
    final_complete = final.read_until(end_offsets, FINAL_READ_TIMEOUT_S)
    report.final_states = partition_states(cluster, set(), required=False)
    report.history = history
    report.readers = {reader.name: reader for reader in readers}
    report.incidents.extend(producer.incidents)
    check_histories(report, history, readers, final, end_offsets)
    # A reader that cannot reach the end of a healthy cluster's log is stuck; without the whole
    # final log the other checks mean little.
    report.violations.extend(f"stalled: {line}" for line in caught_up + final_complete)


def inject_faults(nemesis: "Nemesis", settings: Settings, faults: list[str], report: "Report",
                  during: threading.Event | None = None) -> None:
    """A warm-up, every fault, another warm-up; then everything healed and the cluster given
    time to settle (`report.settled`). `during` is set while the faults are injected."""
    try:
        time.sleep(WARM_UP_S)
        if during is not None:
            during.set()
        nemesis.run(faults)
        if during is not None:
            during.clear()
        time.sleep(WARM_UP_S)
    finally:
        nemesis.heal_everything()
    report.settled = nemesis.recover(settings.settle_timeout_s, "after the last fault")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=600.0,
                        help="seconds during which faults keep starting (each enabled fault "
                             "runs at least once)")
    parser.add_argument("--seed", type=int, default=None, help="default: a random one, printed")
    parser.add_argument("--faults", default=",".join(FAULTS),
                        help=f"comma-separated, from: {','.join(FAULTS)}")
    parser.add_argument("--rate", type=float, default=PRODUCE_RATE_PER_S,
                        help="messages per second")
    parser.add_argument("--recovery-timeout", type=float, default=30.0,
                        help="seconds to wait for leaders and full ISRs after each fault")
    parser.add_argument("--work-dir", type=Path, default=None,
                        help="default: a new directory under the system's temp directory")
    parser.add_argument("--keep", action="store_true", help="keep the work directory on success")
    args = parser.parse_args(argv)
    if not support.FLINK.exists():
        print(f"missing {support.FLINK}: run `make dist` first (or set FLINK_DIST)")
        return 2
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(1 << 31)
    settings = Settings(duration_s=args.duration, seed=seed,
                        faults=tuple(name for name in args.faults.split(",") if name),
                        rate_per_s=args.rate, recovery_timeout_s=args.recovery_timeout)
    work_dir = args.work_dir or Path(tempfile.mkdtemp(prefix="flink-chaos-"))
    print(f"seed {seed} (replay with --seed {seed}); work directory {work_dir}")
    try:
        report = run(work_dir, settings, check=False)
    except KeyboardInterrupt:
        print(f"interrupted; node logs are under {work_dir}")
        return 130
    if report.violations:
        print(f"FAILED: {len(report.violations)} violations; logs kept under {work_dir}")
        return 1
    if not args.keep and args.work_dir is None:
        shutil.rmtree(work_dir, ignore_errors=True)
    print(f"passed; work directory {'kept' if args.keep or args.work_dir else 'removed'}")
    return 0


# ---- the cluster as the harness sees it ---------------------------------------------------------

def create_chaos_topic(cluster: Cluster) -> None:
    """The chaos topic, with its own min.insync.replicas, led everywhere before any write."""
    admin = AdminClient({"bootstrap.servers": cluster.bootstrap(), "logger": CLIENT_LOGGER})
    topic = NewTopic(TOPIC, num_partitions=PARTITIONS, replication_factor=REPLICATION_FACTOR,
                     config={"min.insync.replicas": str(MIN_INSYNC_REPLICAS)})
    futures = admin.create_topics([topic], request_timeout=ADMIN_TIMEOUT_S)
    futures[TOPIC].result(timeout=ADMIN_TIMEOUT_S)

    def led_everywhere():
        for broker_id in BROKER_IDS:
            partitions = cluster.metadata(broker_id).partitions(TOPIC)
            assert sorted(partitions) == list(range(PARTITIONS)), (broker_id, partitions)
            for index, partition in partitions.items():
                assert partition.leader in BROKER_IDS, f"broker {broker_id}: {index} {partition}"
    eventually(led_everywhere, TOPIC_READY_TIMEOUT_S, f"every broker shows {TOPIC} led")


def partition_states(cluster: Cluster, paused: set[int],
                     required: bool = True) -> dict[int, Partition]:
    """The chaos topic's partitions as the first answering broker (running, not paused) sees
    them; {} if none answers and not `required`."""
    errors = []
    for broker_id in cluster.running_brokers():
        if broker_id in paused:
            continue
        try:
            return cluster.metadata(broker_id).partitions(TOPIC)
        except (AssertionError, OSError) as error:
            errors.append(f"broker {broker_id}: {type(error).__name__}: {error}")
    if required:
        raise AssertionError("no broker answered Metadata: " + "; ".join(errors))
    return {}


def describe_partitions(partitions: dict[int, Partition]) -> str:
    if not partitions:
        return "(no broker answered Metadata)"
    return "; ".join(f"{TOPIC}-{index}: leader {p.leader} replicas {p.replicas} isr {p.isr}"
                     for index, p in sorted(partitions.items()))


def healthy(cluster: Cluster) -> None:
    """Asserts that every node that should run is up and listening, every running broker lists
    exactly the running brokers, and every partition has a leader and its full replica set in
    the ISR, as every running broker sees it."""
    for node in cluster.nodes.values():
        node.check_alive()
        if node.should_run:
            assert node._port_accepts(), f"node {node.node_id}: nothing on {node.bootstrap}"
    expected = cluster.advertised(cluster.running_brokers(), "host")
    for broker_id in cluster.running_brokers():
        metadata = cluster.metadata(broker_id)
        assert metadata.brokers == expected, f"broker {broker_id} lists {metadata.brokers}"
        for index, partition in metadata.partitions(TOPIC).items():
            assert partition.leader in BROKER_IDS, (
                f"broker {broker_id}: {TOPIC}-{index} has no leader: {partition}")
            assert len(partition.replicas) == REPLICATION_FACTOR and (
                sorted(partition.isr) == sorted(partition.replicas)), (
                f"broker {broker_id}: {TOPIC}-{index} ISR {partition.isr} of {partition.replicas}")


# ---- the network partition ----------------------------------------------------------------------

class Network:
    """iptables rules that cut one node off from the others (see the module docstring).

    `available` says whether this machine can do it (root, iptables, setpriv, the conntrack,
    connmark and owner matches); `reason` why not."""

    def __init__(self, out):
        self.out = out
        self.reason = self._unavailable_reason()
        self.available = self.reason == ""
        self.installed = False

    @staticmethod
    def _unavailable_reason() -> str:
        if os.geteuid() != 0:
            return "iptables and setpriv --regid need root"
        for tool, package in (("iptables", "iptables"), ("setpriv", "util-linux")):
            if shutil.which(tool) is None:
                return f"{tool} is not installed (Debian package {package})"
        return ""

    def install(self) -> None:
        """The marking rules, before any node starts (connections are marked when opened)."""
        if not self.available:
            return
        self.remove()  # A run killed before its cleanup leaves its chains behind.
        try:
            for chain in (MARK_CHAIN, DROP_CHAIN):
                iptables("-N", chain)
            iptables("-I", "OUTPUT", "1", "-j", DROP_CHAIN)
            iptables("-I", "OUTPUT", "1", "-j", MARK_CHAIN)  # Before the drops.
            for node_id in NODE_HOSTS:
                iptables("-A", MARK_CHAIN, "-m", "conntrack", "--ctstate", "NEW",
                         "-m", "owner", "--gid-owner", str(NODE_GROUP_ID_BASE + node_id),
                         "-j", "CONNMARK", "--set-mark", str(CONNECTION_MARK_BASE + node_id))
            self.installed = True
            self._self_test()
        except (IptablesError, OSError, subprocess.SubprocessError) as error:
            self.remove()
            self.available = False
            self.reason = f"iptables cannot partition nodes here: {error}"
            self.out(f"partition-leader disabled: {self.reason}")

    def _self_test(self) -> None:
        """Cuts node 1's address off and checks that a process with node 2's group id cannot
        connect to it, then heals and checks that it can: rules that load but never match would
        fake every partition."""
        with socket.socket() as listener:
            listener.bind((NODE_HOSTS[1], 0))
            listener.listen()
            port = listener.getsockname()[1]
            self.isolate(1)
            try:
                blocked = not connects_as(2, NODE_HOSTS[1], port)
            finally:
                self.heal()
            healed = connects_as(2, NODE_HOSTS[1], port)
        if not (blocked and healed):
            raise IptablesError(f"self-test: connection blocked while isolated {blocked}, "
                                f"connects once healed {healed}")

    def isolate(self, node_id: int) -> None:
        """Drop every packet between `node_id` and any other node, both directions."""
        for other in NODE_HOSTS:
            if other == node_id:
                continue
            for opener, acceptor in ((node_id, other), (other, node_id)):
                iptables("-A", DROP_CHAIN, "-m", "connmark",
                         "--mark", str(CONNECTION_MARK_BASE + opener),
                         "-m", "conntrack", "--ctorigdst", NODE_HOSTS[acceptor], "-j", "DROP")

    def heal(self) -> None:
        if self.installed:
            iptables("-F", DROP_CHAIN)

    def remove(self) -> None:
        """Every rule and chain of ours, whatever state they are in."""
        if not self.available:
            return
        for chain in (MARK_CHAIN, DROP_CHAIN):
            while iptables("-D", "OUTPUT", "-j", chain, check=False) == 0:
                pass
            iptables("-F", chain, check=False)
            iptables("-X", chain, check=False)
        self.installed = False


class IptablesError(RuntimeError):
    pass


def connects_as(node_id: int, host: str, port: int) -> bool:
    """Whether a process running with node `node_id`'s group id can connect to host:port."""
    code = (f"import socket; socket.create_connection(({host!r}, {port}), "
            f"timeout={PROBE_CONNECT_TIMEOUT_S})")
    result = subprocess.run(["setpriv", f"--regid={NODE_GROUP_ID_BASE + node_id}",
                             "--clear-groups", "--", sys.executable, "-c", code],
                            capture_output=True, timeout=PROBE_CONNECT_TIMEOUT_S + 10)
    return result.returncode == 0


def iptables(*args: str, check: bool = True) -> int:
    """One iptables command (waiting for the xtables lock); raises IptablesError if `check`."""
    result = subprocess.run(["iptables", "-w", *args], capture_output=True, text=True,
                            timeout=IPTABLES_TIMEOUT_S)
    if check and result.returncode != 0:
        raise IptablesError(f"iptables {' '.join(args)}: {result.stderr.strip()}")
    return result.returncode


# ---- the nemesis --------------------------------------------------------------------------------

@dataclass
class FaultRecord:
    name: str
    target: str
    started_s: float
    healed_s: float | None = None
    recovered_s: float | None = None  # Healthy again this long after the heal; None: never.
    notes: list[str] = field(default_factory=list)


class Nemesis:
    """Injects faults one at a time, from a seeded RNG, and heals each before the next."""

    def __init__(self, cluster: Cluster, network: Network, settings: Settings, clock: "Clock",
                 report: "Report", out):
        self.cluster = cluster
        self.network = network
        self.settings = settings
        self.clock = clock
        self.report = report
        self.out = out
        self.rng = random.Random(settings.seed)
        self.paused: set[int] = set()
        self.isolated: int | None = None

    def run(self, faults: list[str]) -> None:
        """Every fault once in a seeded order, then random ones until the duration is over."""
        if not faults:
            return
        deadline = self.clock.now() + self.settings.duration_s
        first_pass = self.rng.sample(faults, len(faults))
        while first_pass or self.clock.now() < deadline:
            name = first_pass.pop(0) if first_pass else self.rng.choice(faults)
            self.inject(name)
            time.sleep(self.rng.uniform(*self.settings.pause_s))

    def inject(self, name: str) -> None:
        record = FaultRecord(name, "", self.clock.now())
        self.report.faults.append(record)
        if name.split("-", 1)[0] in self.TARGETED:
            self._targeted(name, record)
        else:
            getattr(self, "_" + name.replace("-", "_"))(record)
        if record.healed_s is None:
            record.healed_s = self.clock.now()
        self.out(f"{record.healed_s:7.1f}s  {name} {record.target}: healed")
        if record.name != "rolling-restart":  # Recovered brokers one by one already.
            healthy_at = self.recover(self.settings.recovery_timeout_s, f"after {name}", record)
            if healthy_at is not None:
                record.recovered_s = healthy_at - record.healed_s

    def hold(self) -> float:
        return self.rng.uniform(*self.settings.hold_s)

    # -- the faults --

    # kill-leader, stop-follower, ...: (whom to pick, what to do to it).
    TARGETED = {
        "kill": "_kill", "stop": "_pause",
    }

    def _targeted(self, name: str, record: FaultRecord) -> None:
        """`<kill|stop>-<leader|follower|controller>`: pick a target, then kill or pause it."""
        action, role = name.split("-", 1)
        target = getattr(self, f"_pick_{role}")(record)
        if target is not None:
            getattr(self, self.TARGETED[action])(target, record)

    def _partition_leader(self, record: FaultRecord) -> None:
        target = self._pick_leader(record)
        if target is None:
            return
        self.out(f"{self.clock.now():7.1f}s  partition-leader: isolating {record.target}")
        self.isolated = target
        self.network.isolate(target)
        time.sleep(self.hold())
        self.network.heal()
        self.isolated = None

    def _rolling_restart(self, record: FaultRecord) -> None:
        record.target = "brokers " + ", ".join(map(str, BROKER_IDS))
        self.out(f"{self.clock.now():7.1f}s  rolling-restart of {record.target}")
        for broker_id in BROKER_IDS:
            code = self.cluster.kill(broker_id, signal.SIGTERM)
            if code not in (0, 128 + signal.SIGTERM):
                note = f"broker {broker_id} exited with {code} after SIGTERM (None: SIGKILLed)"
                record.notes.append(note)
                self.report.incidents.append(note)
            self.start(broker_id, record)
            self.recover(self.settings.recovery_timeout_s,
                         f"after restarting broker {broker_id}", record)

    # -- targets --

    def _pick_leader(self, record: FaultRecord) -> int | None:
        led = {index: p for index, p in self._partitions(record).items()
               if p.leader in BROKER_IDS}
        if not led:
            return self._skip(record, "no partition has a leader")
        index = self.rng.choice(sorted(led))
        record.target = f"broker {led[index].leader} (leader of {TOPIC}-{index})"
        return led[index].leader

    def _pick_follower(self, record: FaultRecord) -> int | None:
        partitions = self._partitions(record)
        if not partitions:
            return self._skip(record, "no partition metadata")
        index = self.rng.choice(sorted(partitions))
        partition = partitions[index]
        in_sync = sorted(set(partition.isr) - {partition.leader})
        replicas = sorted(set(partition.replicas) - {partition.leader})
        others = sorted(set(BROKER_IDS) - {partition.leader})
        choices, kind = next((c, k) for c, k in ((in_sync, "in-sync follower"),
                                                 (replicas, "out-of-sync follower"),
                                                 (others, "not even a replica")) if c)
        target = self.rng.choice(choices)
        record.target = f"broker {target} ({kind} of {TOPIC}-{index}, leader {partition.leader})"
        return target

    def _pick_controller(self, record: FaultRecord) -> int | None:
        try:
            target = self.cluster.active_controller()
        except (AssertionError, OSError) as error:
            return self._skip(record, f"no active controller: {error}")
        record.target = f"controller {target} (active)"
        return target

    def _partitions(self, record: FaultRecord) -> dict[int, Partition]:
        try:
            return partition_states(self.cluster, self.paused)
        except AssertionError as error:
            record.notes.append(str(error))
            return {}

    def _skip(self, record: FaultRecord, reason: str) -> None:
        record.target = "(none)"
        record.notes.append(f"skipped: {reason}")
        self.out(f"{self.clock.now():7.1f}s  {record.name} skipped: {reason}")
        return None

    # -- actions --

    def _kill(self, node_id: int, record: FaultRecord) -> None:
        self.out(f"{self.clock.now():7.1f}s  {record.name}: SIGKILL {record.target}")
        self.cluster.kill(node_id, signal.SIGKILL)
        time.sleep(self.hold())
        self.start(node_id, record)

    def _pause(self, node_id: int, record: FaultRecord) -> None:
        self.out(f"{self.clock.now():7.1f}s  {record.name}: SIGSTOP {record.target}")
        process = self.cluster.nodes[node_id].process
        self.paused.add(node_id)
        process.send_signal(signal.SIGSTOP)
        time.sleep(self.hold())
        process.send_signal(signal.SIGCONT)
        self.paused.discard(node_id)

    def start(self, node_id: int, record: FaultRecord | None = None) -> None:
        """Start a stopped node; a node that exits during start-up is a crash, noted, and
        started again a few times."""
        for attempt in range(3):
            try:
                self.cluster.start(node_id)
                return
            except NodeExited as error:
                self.crashed(node_id, error, record)
                time.sleep(1)
        raise AssertionError(f"node {node_id} does not stay up; see its log")

    def crashed(self, node_id: int, error: NodeExited, record: FaultRecord | None) -> None:
        note = f"node {node_id} exited unexpectedly at {self.clock.now():.1f}s: {error}"
        self.out(note)
        self.report.crashes.append(note)
        if record is not None:
            record.notes.append(f"node {node_id} crashed")
        self.cluster.nodes[node_id].should_run = False

    def recover(self, timeout: float, when: str, record: FaultRecord | None = None) -> float | None:
        """Waits until the cluster is healthy (see `healthy`) twice in a row, so that one broker's
        stale view does not count; restarts crashed nodes. Returns the clock time it became so,
        or None after `timeout` (noted in `record`)."""
        deadline = time.monotonic() + timeout

        def healthy_twice():
            healthy(self.cluster)
            time.sleep(HEALTHY_AGAIN_AFTER_S)
            healthy(self.cluster)
        while True:
            try:
                eventually(healthy_twice, max(0.0, deadline - time.monotonic()),
                           f"healthy {when}")
                return self.clock.now()
            except NodeExited:
                for node in self.cluster.nodes.values():
                    if node.should_run and not node.is_running():
                        self.crashed(node.node_id, NodeExited(node.log_tail(5)), record)
                        self.start(node.node_id, record)
            except AssertionError as error:
                note = f"not healthy {timeout:.0f}s {when}: {str(error).split('; last: ')[-1]}"
                self.out(f"{self.clock.now():7.1f}s  {note}")
                if record is not None:
                    record.notes.append(note)
                else:
                    self.report.incidents.append(note)
                return None

    def heal_everything(self) -> None:
        """Whatever a fault interrupted by an error left behind: partition, pause, stopped node."""
        self.network.heal()
        for node_id in sorted(self.paused):
            self.cluster.nodes[node_id].process.send_signal(signal.SIGCONT)
        self.paused.clear()
        for node in self.cluster.nodes.values():
            if not node.is_running():
                self.start(node.node_id)


# ---- clients ------------------------------------------------------------------------------------

CLIENT_LOGGER = logging.getLogger("chaos.clients")
CLIENT_LOG_REPEATS_MAX = 20  # Lines kept per kind of client log line; the rest only counted.


class ClientLogCounter(logging.Filter):
    """Counts client log lines by kind (logger, level and text without its numbers) and lets
    only the first few of each kind through: a client that retries in a tight loop logs millions
    of identical lines (librdkafka rejecting a response it cannot parse, for one)."""

    def __init__(self):
        super().__init__()
        self.kinds: Counter = Counter()
        self.first: dict[tuple[str, str, str], str] = {}  # The first line of each kind.

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        key = (record.name, record.levelname,
               "".join("#" if c.isdigit() else c for c in message))
        self.kinds[key] += 1
        self.first.setdefault(key, message)
        return self.kinds[key] <= CLIENT_LOG_REPEATS_MAX

    def errors(self) -> list[tuple[int, str]]:
        """(count, first line) of each kind of error line, most frequent first."""
        return sorted(((count, self.first[key]) for key, count in self.kinds.items()
                       if key[1] in ("ERROR", "CRITICAL")), reverse=True)


def log_clients_to(path: Path) -> ClientLogCounter:
    """librdkafka's and kafka-python's chatter about refused connections goes to a file."""
    handler = logging.FileHandler(path)
    handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s"))
    counter = ClientLogCounter()
    handler.addFilter(counter)
    for logger in (CLIENT_LOGGER, logging.getLogger("kafka")):
        for previous in logger.handlers:  # An earlier run's, in the same process.
            previous.close()
        logger.handlers[:] = [handler]
        logger.setLevel(logging.INFO)
        logger.propagate = False
    return counter


class Clock:
    """Seconds since the run started."""

    def __init__(self):
        self.start = time.monotonic()

    def now(self) -> float:
        return time.monotonic() - self.start


class Ack(NamedTuple):
    partition: int
    offset: int
    value: str
    at_s: float


class Failure(NamedTuple):
    partition: int
    value: str
    error: str
    at_s: float


class Read(NamedTuple):
    offset: int
    value: str
    at_s: float


@dataclass
class History:
    """What the producer sent (value -> partition) and what became of it."""

    sent: dict[str, int] = field(default_factory=dict)
    acked: list[Ack] = field(default_factory=list)
    failed: list[Failure] = field(default_factory=list)


class ProducerWorker(threading.Thread):
    """Produces `<run id>-p<partition>-<sequence>` round-robin over the partitions at a steady
    rate, recording every delivery report; a producer that hits a fatal error is replaced."""

    def __init__(self, bootstrap: str, run_id: str, settings: Settings, clock: Clock,
                 history: History):
        super().__init__(name="chaos-producer", daemon=True)
        self.bootstrap = bootstrap
        self.run_id = run_id
        self.settings = settings
        self.clock = clock
        self.history = history
        self.stopping = threading.Event()
        self.fatal: KafkaError | None = None
        self.incidents: list[str] = []
        self.errors: Counter = Counter()

    def stop_and_join(self) -> None:
        self.stopping.set()
        self.join(self.settings.message_timeout_ms / 1000 + 2 * FLUSH_MARGIN_S)
        assert not self.is_alive(), "the producer thread did not finish"

    def new_producer(self) -> Producer:
        return Producer({
            "bootstrap.servers": self.bootstrap, "acks": "all", "enable.idempotence": True,
            "message.timeout.ms": self.settings.message_timeout_ms,
            "request.timeout.ms": REQUEST_TIMEOUT_MS, "linger.ms": 5,
            "error_cb": self.on_error, "logger": CLIENT_LOGGER,
        })

    def on_error(self, error: KafkaError) -> None:
        self.errors[error.name()] += 1
        if error.fatal():
            self.fatal = error

    def on_delivery(self, error, message) -> None:
        value = message.value().decode()
        if error is None:
            self.history.acked.append(Ack(message.partition(), message.offset(), value,
                                          self.clock.now()))
        else:
            self.history.failed.append(Failure(message.partition(), value, error.name(),
                                               self.clock.now()))

    def run(self) -> None:
        producer = self.new_producer()
        interval_s = 1 / self.settings.rate_per_s
        sequence = 0
        next_at = time.monotonic()
        while not self.stopping.is_set():
            if self.fatal is not None:
                producer = self.replace(producer)
            partition = sequence % PARTITIONS
            value = f"{self.run_id}-p{partition}-{sequence:08d}"
            try:
                producer.produce(TOPIC, value=value.encode(), partition=partition,
                                 on_delivery=self.on_delivery)
            except BufferError:
                producer.poll(0.1)
                continue
            except KafkaException as error:
                self.incidents.append(f"produce raised {error} at {self.clock.now():.1f}s")
                producer.poll(0.1)
                continue
            self.history.sent[value] = partition
            sequence += 1
            next_at = max(next_at + interval_s, time.monotonic() - 1)
            producer.poll(max(0.0, next_at - time.monotonic()))
        flush_timeout_s = self.settings.message_timeout_ms / 1000 + FLUSH_MARGIN_S
        remaining = producer.flush(flush_timeout_s)
        if remaining:
            self.incidents.append(f"{remaining} messages still undelivered after a "
                                  f"{flush_timeout_s:.0f}s flush")

    def replace(self, producer: Producer) -> Producer:
        """A fatal error ends an idempotent producer: its queue fails, a new one takes over."""
        self.incidents.append(f"producer fatal error at {self.clock.now():.1f}s: {self.fatal}")
        self.fatal = None
        producer.flush(FLUSH_MARGIN_S)
        return self.new_producer()


class Reader(threading.Thread):
    """Reads every partition from the beginning until stopped; records per partition what it saw,
    in order. Subclasses bring the client."""

    def __init__(self, name: str, bootstrap: str, clock: Clock):
        super().__init__(name=name, daemon=True)  # Thread.name: the report's name for it.
        self.bootstrap = bootstrap
        self.clock = clock
        self.reads: dict[int, list[Read]] = defaultdict(list)
        self.errors: Counter = Counter()
        self.stopping = threading.Event()

    def position(self, partition: int) -> int:
        """One past the highest offset read (0 before any)."""
        reads = self.reads.get(partition)
        return max(read.offset for read in reads) + 1 if reads else 0

    def record(self, partition: int, offset: int, value: bytes | None) -> None:
        text = value.decode(errors="replace") if value is not None else "<null>"
        self.reads[partition].append(Read(offset, text, self.clock.now()))

    def run(self) -> None:
        try:
            self.read()
        except Exception as error:  # A reader that dies must show up in the report.
            self.errors[f"reader crashed: {type(error).__name__}: {error}"] += 1


def confluent_consumer(reader: Reader) -> Consumer:
    """A confluent-kafka consumer for `reader`, counting client errors into its `errors`.

    auto.offset.reset=earliest: a position the leader calls out of range sends the reader back
    to the start, which the checker reports as reordered reads."""
    return Consumer({
        "bootstrap.servers": reader.bootstrap,
        "group.id": "chaos-unused",  # Required by the library; never joined.
        "enable.auto.commit": False, "enable.auto.offset.store": False,
        "auto.offset.reset": "earliest",
        "error_cb": lambda error: reader.errors.update([error.name()]),
        "logger": CLIENT_LOGGER,
    })


def confluent_read(reader: "Reader", more) -> None:
    """Reads every partition from the beginning with confluent-kafka into `reader` while
    `more()` says so."""
    consumer = confluent_consumer(reader)
    try:
        consumer.assign([TopicPartition(TOPIC, p, OFFSET_BEGINNING) for p in range(PARTITIONS)])
        while more():
            for message in consumer.consume(READER_BATCH_MAX, READER_POLL_S):
                if message.error() is not None:
                    reader.errors[message.error().name()] += 1
                else:
                    reader.record(message.partition(), message.offset(), message.value())
    finally:
        consumer.close()


class ConfluentReader(Reader):
    def read(self) -> None:
        confluent_read(self, lambda: not self.stopping.is_set())


class KafkaPythonReader(Reader):
    def read(self) -> None:
        consumer = KafkaConsumer(bootstrap_servers=self.bootstrap.split(","), group_id=None,
                                 enable_auto_commit=False, auto_offset_reset="earliest",
                                 client_id="chaos-kafka-python")
        try:
            assigned = [KafkaPythonTopicPartition(TOPIC, p) for p in range(PARTITIONS)]
            consumer.assign(assigned)
            consumer.seek_to_beginning(*assigned)
            while not self.stopping.is_set():
                try:
                    batches = consumer.poll(timeout_ms=int(READER_POLL_S * 1000),
                                            max_records=READER_BATCH_MAX)
                except Exception as error:  # kafka-python raises what it cannot retry.
                    self.errors[type(error).__name__] += 1
                    time.sleep(READER_POLL_S)
                    continue
                for partition, records in batches.items():
                    for record in records:
                        self.record(partition.partition, record.offset, record.value)
        finally:
            consumer.close()


class FinalReader(Reader):
    """Reads every partition from the beginning to the given end offsets, once."""

    def read_until(self, end_offsets: dict[int, tuple[int, int]], timeout: float) -> list[str]:
        """Returns incidents: partitions not read to their end within `timeout`."""
        deadline = time.monotonic() + timeout
        confluent_read(self, lambda: time.monotonic() < deadline and any(
            self.position(p) < high for p, (_, high) in end_offsets.items()))
        return [f"final read of {TOPIC}-{p} stopped at {self.position(p)}, end offset {high}"
                for p, (_, high) in end_offsets.items() if self.position(p) < high]


def watermarks(bootstrap: str) -> dict[int, tuple[int, int]]:
    """(log start, end offset) per partition, asked of the leaders (ListOffsets)."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "chaos-unused",
                         "logger": CLIENT_LOGGER})
    try:
        def ask():
            try:
                return {p: consumer.get_watermark_offsets(TopicPartition(TOPIC, p), timeout=5,
                                                          cached=False)
                        for p in range(PARTITIONS)}
            except KafkaException as error:
                raise AssertionError(str(error)) from error
        return eventually(ask, WATERMARK_TIMEOUT_S, f"end offsets of {TOPIC}")
    finally:
        consumer.close()


def wait_for_readers(readers: list[Reader], end_offsets: dict[int, tuple[int, int]]) -> list[str]:
    """Until every reader has read every partition to its end offset; returns incidents."""
    deadline = time.monotonic() + CATCH_UP_TIMEOUT_S
    def behind():
        return [f"{reader.name} stopped at {TOPIC}-{p} offset {reader.position(p)} of {high}"
                for reader in readers for p, (_, high) in end_offsets.items()
                if reader.position(p) < high]
    while behind() and time.monotonic() < deadline:
        time.sleep(READER_POLL_S)
    return behind()


# ---- the checker --------------------------------------------------------------------------------

@dataclass
class PartitionResult:
    acked: int = 0
    failed: int = 0
    unresolved: int = 0
    final_length: int = 0
    lost: int = 0
    duplicates: int = 0
    divergent: int = 0
    skips: int = 0
    reordered: int = 0


@dataclass
class Report:
    settings: Settings
    work_dir: Path
    faults_enabled: list[str]
    network_note: str = ""
    faults: list[FaultRecord] = field(default_factory=list)
    partitions: dict[int, PartitionResult] = field(default_factory=dict)
    violations: list[str] = field(default_factory=list)
    crashes: list[str] = field(default_factory=list)
    incidents: list[str] = field(default_factory=list)
    final_states: dict[int, Partition] = field(default_factory=dict)
    settled: float | None = None
    history: History | None = field(default=None, repr=False)
    readers: dict[str, Reader] = field(default_factory=dict, repr=False)
    reads_total: dict[str, int] = field(default_factory=dict)
    acked_during_faults: int = 0
    reads_during_faults: dict[str, int] = field(default_factory=dict)
    client_log: ClientLogCounter | None = field(default=None, repr=False)

    def render(self) -> str:
        return render_report(self)


def check_histories(report: Report, history: History, readers: list[Reader],
                    final: FinalReader, end_offsets: dict[int, tuple[int, int]]) -> None:
    """The five checks of the module docstring, per partition, into `report`."""
    resolved = {ack.value for ack in history.acked} | {failure.value for failure in history.failed}
    for partition in range(PARTITIONS):
        result = report.partitions.setdefault(partition, PartitionResult())
        log_start = end_offsets[partition][0]
        final_log = {read.offset: read.value for read in final.reads.get(partition, [])}
        result.final_length = len(final_log)
        acked = [ack for ack in history.acked if ack.partition == partition]
        result.acked = len(acked)
        result.failed = sum(1 for failure in history.failed if failure.partition == partition)
        result.unresolved = sum(1 for value, sent_to in history.sent.items()
                                if sent_to == partition and value not in resolved)
        check_acked(report, result, partition, acked, final_log)
        check_duplicates(report, result, partition, final.reads.get(partition, []))
        for reader in [*readers, final]:
            reads = reader.reads.get(partition, [])
            check_order(report, result, partition, reader.name, reads, log_start)
            check_reads(report, result, partition, reader.name, reads, final_log, history.sent)
    report.violations.extend(f"crash: {crash}" for crash in report.crashes)
    windows = [(fault.started_s, fault.healed_s or fault.started_s) for fault in report.faults]
    def during(at_s: float) -> bool:
        return any(start <= at_s <= end for start, end in windows)
    report.acked_during_faults = sum(1 for ack in history.acked if during(ack.at_s))
    for reader in readers:
        reads = [read for partition_reads in reader.reads.values() for read in partition_reads]
        report.reads_total[reader.name] = len(reads)
        report.reads_during_faults[reader.name] = sum(1 for read in reads if during(read.at_s))


def violation(report: Report, kind: str, partition: int, detail: str) -> None:
    """Keeps the first few examples of each kind per partition; the counts are in the table."""
    prefix = f"{TOPIC}-{partition} {kind}:"
    if sum(1 for line in report.violations if line.startswith(prefix)) < EXAMPLES_MAX:
        report.violations.append(f"{prefix} {detail}")


def check_acked(report: Report, result: PartitionResult, partition: int, acked: list[Ack],
                final_log: dict[int, str]) -> None:
    """(1) Every acknowledged (offset, value) is in the final log at that offset."""
    for ack in acked:
        found = final_log.get(ack.offset)
        if found != ack.value:
            result.lost += 1
            where = "missing" if found is None else f"holds {found!r}"
            violation(report, "lost", partition,
                      f"{ack.value!r} acknowledged at offset {ack.offset} ({ack.at_s:.1f}s); "
                      f"the final log's offset {ack.offset} is {where}")


def check_duplicates(report: Report, result: PartitionResult, partition: int,
                     final_reads: list[Read]) -> None:
    """(2) A value appears at most once in the final log."""
    offsets: dict[str, list[int]] = defaultdict(list)
    for read in final_reads:
        offsets[read.value].append(read.offset)
    for value, at in offsets.items():
        if len(at) > 1:
            result.duplicates += len(at) - 1
            violation(report, "duplicate", partition, f"{value!r} at offsets {at}")


def check_order(report: Report, result: PartitionResult, partition: int, reader: str,
                reads: list[Read], log_start: int) -> None:
    """(3) Offsets strictly increase; (5) they start at the log start and never skip."""
    previous = None
    for read in reads:
        if previous is None:
            if read.offset != log_start:
                result.skips += 1
                violation(report, "skip", partition,
                          f"{reader} began at offset {read.offset}, the log starts at {log_start}")
        elif read.offset <= previous.offset:
            result.reordered += 1
            violation(report, "reordered", partition,
                      f"{reader} read offset {read.offset} ({read.at_s:.1f}s) after "
                      f"{previous.offset} ({previous.at_s:.1f}s)")
        elif read.offset != previous.offset + 1:
            result.skips += 1
            violation(report, "skip", partition,
                      f"{reader} read offset {read.offset} ({read.at_s:.1f}s) right after "
                      f"{previous.offset}")
        previous = read


def check_reads(report: Report, result: PartitionResult, partition: int, reader: str,
                reads: list[Read], final_log: dict[int, str], sent: dict[str, int]) -> None:
    """(4) Every read equals the final log at its offset and is a value sent to this partition."""
    for read in reads:
        final = final_log.get(read.offset)
        if final != read.value or sent.get(read.value) != partition:
            result.divergent += 1
            if sent.get(read.value) != partition:
                why = ("never sent" if read.value not in sent
                       else f"sent to partition {sent[read.value]}")
            else:
                why = "the final log has " + ("no such offset" if final is None else repr(final))
            violation(report, "divergent read", partition,
                      f"{reader} read {read.value!r} at offset {read.offset} "
                      f"({read.at_s:.1f}s): {why}")


def render_report(report: Report) -> str:
    settings = report.settings
    lines = [f"chaos run: seed {settings.seed}, faults enabled {','.join(report.faults_enabled)}"]
    if report.network_note:
        lines.append(f"  (partition-leader unavailable: {report.network_note})")
    lines.append("")
    header = ("partition", "acked", "failed", "unresolved", "final log", "lost", "duplicates",
              "divergent reads", "skips", "reordered")
    rows = [[f"{TOPIC}-{index}", r.acked, r.failed, r.unresolved, r.final_length, r.lost,
             r.duplicates, r.divergent, r.skips, r.reordered]
            for index, r in sorted(report.partitions.items())]
    widths = [max(len(str(cell)) for cell in column) for column in zip(header, *rows)]
    for row in [header, *rows]:
        lines.append("  ".join(str(cell).rjust(width) for cell, width in zip(row, widths)))
    lines.append("")
    lines.append(f"acknowledged during faults: {report.acked_during_faults}")
    for name, total in report.reads_total.items():
        errors = report.readers[name].errors if name in report.readers else {}
        lines.append(f"{name}: {total} reads, {report.reads_during_faults.get(name, 0)} during "
                     f"faults; client errors {dict(errors) or 'none'}")
    if report.history is not None:
        kinds = Counter(failure.error for failure in report.history.failed)
        lines.append(f"failed sends by error: {dict(kinds) or 'none'}")
    lines.extend(render_faults_and_verdict(report))
    return "\n".join(lines)


def render_faults_and_verdict(report: Report) -> list[str]:
    """The report's client log errors, faults, final cluster state, incidents and violations."""
    lines = []
    client_errors = report.client_log.errors() if report.client_log else []
    if client_errors:
        lines.append(f"client log errors ({report.work_dir / 'clients.log'}), most frequent:")
        lines.extend(f"  {count:9d}x {text[:200]}" for count, text in client_errors[:8])
    lines.append("")
    lines.append("faults:")
    for fault in report.faults:
        healed = f"{fault.healed_s:7.1f}s" if fault.healed_s is not None else "    ---"
        recovered = (f"healthy {fault.recovered_s:.1f}s later" if fault.recovered_s is not None
                     else "not healthy in time" if fault.name != "rolling-restart" else "")
        lines.append(f"  {fault.started_s:7.1f}s -> {healed}  {fault.name:16} {fault.target}"
                     f"{'; ' + recovered if recovered else ''}")
        lines.extend(f"      {note}" for note in fault.notes)
    lines.append("")
    settled = "healthy" if report.settled is not None else "NOT healthy (leaders/ISR incomplete)"
    lines.append(f"final cluster state ({settled}): {describe_partitions(report.final_states)}")
    if report.incidents:
        lines.append("incidents:")
        lines.extend(f"  {incident}" for incident in report.incidents)
    lines.append("")
    if report.violations:
        lines.append(f"VIOLATIONS (first {EXAMPLES_MAX} of each kind per partition):")
        lines.extend(f"  {line}" for line in report.violations)
    else:
        lines.append("no violations")
    return lines


if __name__ == "__main__":
    sys.exit(main())
