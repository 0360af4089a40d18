#!/usr/bin/env python3
"""What replication costs and how it recovers, on a 3 controllers + 3 brokers cluster on loopback,
all in one run: a replication-factor-1 topic is the baseline for a replication-factor-3 one.

- Produce with acks=all to a topic of 3 partitions led one per broker, RF1 against RF3 with
  min.insync.replicas=2, the same load on both: a fixed rate of small records for latency, from
  `flink-producer-perf-test.sh` (Kafka's flags and summary line, whole-millisecond percentiles)
  and from confluent-kafka (librdkafka's per-record latency, to the microsecond), then the perf
  tool unthrottled for throughput. Rounds alternate the order (RF1 first, then RF3 first, ...);
  the table gives the medians and the median of the per-round RF3 / RF1 ratios.
- Failover: a confluent-kafka producer (acks=all, idempotent) writes continuously to another RF3
  topic; SIGKILL of the leader of partition 0, then the time until a write to partition 0 is
  acknowledged again and until Metadata names the new leader, also as a ratio of
  broker.session.timeout.ms. Every acknowledged record is read back at the end and compared.
- Catch-up: with the broker down, more records go to the RF3 topics; the broker is restarted and
  timed until it is back in the ISR of every partition it replicates.

Run: `make dist && python3 bench/replication.py`; writes bench/results/replication.md.
Machines are noisy: compare ratios, not absolute times.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import re
import shlex
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests" / "integration"))

import confluent_kafka  # noqa: E402
from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition  # noqa: E402
from confluent_kafka.admin import AdminClient, NewTopic  # noqa: E402

import support  # noqa: E402
from cluster import BROKER_IDS, BROKER_SESSION_TIMEOUT_MS, CPU_PINNING, Cluster  # noqa: E402

PARTITIONS = 3
# Replica lists by partition: partition i led by the i-th broker, followers in ring order.
RF1_ASSIGNMENT = [[BROKER_IDS[i]] for i in range(PARTITIONS)]
RF3_ASSIGNMENT = [[BROKER_IDS[(i + j) % 3] for j in range(3)] for i in range(PARTITIONS)]
RF3_CONFIG = {"min.insync.replicas": "2"}
TOPIC_RF1, TOPIC_RF3, TOPIC_FAILOVER = "bench-rf1", "bench-rf3", "bench-failover"

PERF_TOOL = support.BIN_DIR / "flink-producer-perf-test.sh"
PERF_TIMEOUT_S = 120
# Kafka's ProducerPerformance summary (Stats.printTotal), as tests/integration/test_perf_tools.py.
TOTAL_LINE = re.compile(
    r"^(\d+)( steady state)? records sent, (\d+\.\d+) records/sec \((\d+\.\d+) MB/sec\), "
    r"(\d+\.\d+) ms avg latency, (\d+\.\d+) ms max latency, (\d+) ms 50th, (\d+) ms 95th, "
    r"(\d+) ms 99th, (\d+) ms 99\.9th\.$", re.MULTILINE)

FAILOVER_RATE = 1000  # Records/s over the three partitions, 100 bytes each.
FAILOVER_RECORD_BYTES = 100
FAILOVER_STEADY_S = 3.0  # Writing before the kill.
FAILOVER_AFTER_S = 2.0  # Writing after partition 0 is acknowledged again.
CATCH_UP_RECORD_BYTES = 1024
POLL_S = 0.005
WAIT_TIMEOUT_S = 60
READ_BACK_TIMEOUT_S = 60


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="measured rounds (after a warm-up)")
    parser.add_argument("--rate", type=int, default=2000, help="records/s of the latency load")
    parser.add_argument("--latency-seconds", type=float, default=10.0)
    parser.add_argument("--latency-record-bytes", type=int, default=100)
    parser.add_argument("--throughput-records", type=int, default=150_000)
    parser.add_argument("--throughput-record-bytes", type=int, default=1024)
    parser.add_argument("--catch-up-records", type=int, default=150_000,
                        help="1 KiB records written to the RF3 topic while a broker is down")
    parser.add_argument("--keep", action="store_true",
                        help="keep the cluster's directory (node logs) and print where it is")
    parser.add_argument("--output", type=Path,
                        default=REPO / "bench" / "results" / "replication.md")
    args = parser.parse_args()
    command = " ".join(shlex.quote(part) for part in ["python3", *sys.argv])
    others = other_servers()
    if others:
        print(f"warning: {others} other `flink server` processes are running; they share the "
              f"cores and the figures will say so", file=sys.stderr)
    started = time.monotonic()
    root = Path(tempfile.mkdtemp(prefix="flink-bench-replication-"))
    # Six processes on one machine: placement is set here, not left to the `auto` rule.
    cluster = Cluster(root / "cluster", properties={"cpu.pinning": CPU_PINNING})
    try:
        cluster.format()
        cluster.start_all()
        report = Report(args=args, command=command, others_at_start=others,
                        session_timeout_s=BROKER_SESSION_TIMEOUT_MS / 1000)
        create_topic(cluster, TOPIC_RF1, RF1_ASSIGNMENT, {})
        create_topic(cluster, TOPIC_RF3, RF3_ASSIGNMENT, RF3_CONFIG)
        create_topic(cluster, TOPIC_FAILOVER, RF3_ASSIGNMENT, RF3_CONFIG)
        measure_produce(cluster, args, report)
        measure_failover_and_catch_up(cluster, args, report)
    finally:
        cluster.stop_all(signal.SIGKILL)
        if args.keep:
            print(f"cluster directory kept: {root} (node<id>/server.log)", file=sys.stderr)
        else:
            subprocess.run(["rm", "-rf", str(root)], check=False)
    report.wall_s = time.monotonic() - started
    text = report.markdown()
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(text)
    print(text)
    if report.lost or report.duplicates:
        print(f"!!! DATA LOSS OR DUPLICATES: {report.lost} acknowledged records not read back, "
              f"{report.duplicates} read twice", file=sys.stderr)
        sys.exit(1)


# ---- the produce loads ------------------------------------------------------------------------

@dataclass
class PerfResult:
    """One summary line of flink-producer-perf-test.sh (the steady-state one when warm-up is
    excluded): records/s, MB/s, latencies in ms."""

    records: int
    records_per_s: float
    mb_per_s: float
    avg_ms: float
    max_ms: float
    p50_ms: int
    p95_ms: int
    p99_ms: int
    p999_ms: int


def producer_perf(bootstrap: str, topic: str, records: int, record_bytes: int, throughput: int,
                  linger_ms: int, warmup: int) -> PerfResult:
    command = [str(PERF_TOOL), "--topic", topic, "--num-records", str(records),
               "--record-size", str(record_bytes), "--throughput", str(throughput),
               "--warmup-records", str(warmup), "--producer-props",
               f"bootstrap.servers={bootstrap}", "acks=all", f"linger.ms={linger_ms}"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=PERF_TIMEOUT_S,
                            stdin=subprocess.DEVNULL)
    lines = TOTAL_LINE.findall(result.stdout)
    if result.returncode != 0 or "ERROR" in result.stderr or not lines:
        raise RuntimeError(f"producer perf test failed:\n{support.describe_run(result)}")
    count, _, rate, mb, average, maximum, p50, p95, p99, p999 = lines[-1]
    return PerfResult(int(count), float(rate), float(mb), float(average), float(maximum),
                      int(p50), int(p95), int(p99), int(p999))


def measure_produce(cluster: Cluster, args, report: "Report") -> None:
    """A warm-up round, then `args.rounds` rounds alternating which topic goes first; in each
    round both topics get the fixed-rate load from the perf tool, then from confluent-kafka,
    then the unthrottled load."""
    bootstrap = cluster.bootstrap()
    latency_records = int(args.rate * (args.latency_seconds + 1))
    latency_warmup = args.rate  # One second of records, excluded (connections, metadata).
    throughput_warmup = args.throughput_records // 10
    loads = {
        "latency": lambda topic: producer_perf(
            bootstrap, topic, latency_records, args.latency_record_bytes, args.rate, 0,
            latency_warmup),
        "client": lambda topic: client_latency(
            bootstrap, topic, args.rate, args.latency_record_bytes,
            args.latency_seconds, 1.0),
        "throughput": lambda topic: producer_perf(
            bootstrap, topic, args.throughput_records, args.throughput_record_bytes, -1, 5,
            throughput_warmup),
    }
    for topic in (TOPIC_RF1, TOPIC_RF3):  # Warm-up: not counted.
        producer_perf(bootstrap, topic, args.rate * 2, args.latency_record_bytes, args.rate, 0, 0)
        client_latency(bootstrap, topic, args.rate, args.latency_record_bytes, 1.0, 0.5)
        producer_perf(bootstrap, topic, args.throughput_records // 3,
                      args.throughput_record_bytes, -1, 5, 0)
    # The unthrottled runs leave hundreds of MiB in the page cache, which the kernel writes back
    # some 30 s later, in the middle of the next latency runs: write them back now.
    os.sync()
    sides = {TOPIC_RF1: "rf1", TOPIC_RF3: "rf3"}
    for round_index in range(args.rounds):
        order = (TOPIC_RF1, TOPIC_RF3) if round_index % 2 == 0 else (TOPIC_RF3, TOPIC_RF1)
        result = RoundResult(order)
        for load, run in loads.items():
            for topic in order:
                result.figures[(sides[topic], load)] = run(topic)
        os.sync()
        report.rounds.append(result)
        print(f"round {round_index + 1}: {report.round_line(result)}", flush=True)


# ---- the confluent-kafka producer (fixed-rate latency and failover) --------------------------

@dataclass
class Ack:
    partition: int
    offset: int
    value: bytes
    sent_at: float  # time.monotonic() just before produce().
    latency: float  # produce() to the delivery report, in seconds (librdkafka's clock).

    @property
    def at(self) -> float:
        """When the delivery report was taken (promptly: see ContinuousProducer)."""
        return self.sent_at + self.latency


@dataclass
class ContinuousProducer:
    """A confluent-kafka producer (acks=all, idempotent, linger.ms=0) writing `rate` records/s,
    open loop: a record late for its slot goes at once. `round_robin` sends record n to
    partition n mod 3; otherwise librdkafka's partitioner picks, which for records without a key
    sticks to one random partition for 10 ms (sticky.partitioning.linger.ms), as the perf tool's
    sticky partitioner does per batch. Values are the record's number, padded to
    `record_bytes`.

    One thread sends and sleeps between records; another blocks in poll(), which returns as soon
    as a delivery report arrives, so that the report is taken when it comes: librdkafka's
    Message.latency() is "now minus produce()" at the time the report is taken, not at the
    time the answer arrived."""

    bootstrap: str
    topic: str
    rate: int
    record_bytes: int
    round_robin: bool = True
    acks: list[Ack] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    sent: int = 0

    def __post_init__(self):
        self._stop = threading.Event()
        self._sender = threading.Thread(target=self._send, daemon=True)
        self._poller = threading.Thread(target=self._poll, daemon=True)
        self._producer = Producer({
            "bootstrap.servers": self.bootstrap, "acks": "all", "enable.idempotence": True,
            "linger.ms": 0, "message.timeout.ms": 120_000,
            "socket.nagle.disable": True,  # TCP_NODELAY, as the Java client and the broker.
        })

    def start(self) -> "ContinuousProducer":
        self._sender.start()
        self._poller.start()
        return self

    def stop(self) -> None:
        """Stop sending, wait for every outstanding acknowledgement."""
        self._stop.set()
        self._sender.join()
        self._poller.join()
        remaining = len(self._producer)
        if remaining:
            self.errors.append(f"{remaining} records still unacknowledged {WAIT_TIMEOUT_S} s "
                               f"after the last was sent")

    def run_for(self, seconds: float) -> "ContinuousProducer":
        self.start()
        time.sleep(seconds)
        self.stop()
        return self

    def _send(self) -> None:
        started = time.monotonic()
        while not self._stop.is_set():
            due = started + self.sent / self.rate
            now = time.monotonic()
            if now < due:
                time.sleep(min(due - now, 0.01))
                continue
            value = f"{self.sent:09d}".encode().ljust(self.record_bytes, b".")
            where = {"partition": self.sent % PARTITIONS} if self.round_robin else {}
            sent_at = time.monotonic()
            self._producer.produce(self.topic, value=value, on_delivery=self._delivered(sent_at),
                                   **where)
            self.sent += 1

    def _poll(self) -> None:
        """Takes delivery reports until stopped and none is outstanding (or WAIT_TIMEOUT_S after
        the stop)."""
        deadline = None
        while True:
            self._producer.poll(0.05)
            if self._stop.is_set() and not self._sender.is_alive():
                deadline = deadline or time.monotonic() + WAIT_TIMEOUT_S
                if len(self._producer) == 0 or time.monotonic() > deadline:
                    return

    def _delivered(self, sent_at: float):
        def callback(error, message):
            if error is not None:
                self.errors.append(f"partition {message.partition()}: {error}")
                return
            self.acks.append(Ack(message.partition(), message.offset(), message.value(),
                                 sent_at, message.latency()))
        return callback


@dataclass
class ClientLatency:
    """The fixed-rate load through confluent-kafka: records/s held and latencies in ms."""

    records_per_s: float
    avg_ms: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    p999_ms: float
    max_ms: float


def client_latency(bootstrap: str, topic: str, rate: int, record_bytes: int, seconds: float,
                   warmup_s: float) -> ClientLatency:
    """Runs the fixed-rate load for warm-up plus `seconds`; records sent in the warm-up are
    not counted."""
    producer = ContinuousProducer(bootstrap, topic, rate, record_bytes, round_robin=False)
    producer.run_for(warmup_s + seconds)
    if producer.errors:
        raise RuntimeError(f"confluent-kafka producer to {topic}: {producer.errors[:5]}")
    first = min(ack.sent_at for ack in producer.acks) + warmup_s
    measured = [ack for ack in producer.acks if ack.sent_at >= first]
    span = max(ack.sent_at for ack in measured) - first
    latencies = sorted(1000 * ack.latency for ack in measured)
    return ClientLatency(len(measured) / span, statistics.fmean(latencies),
                         percentile(latencies, 0.50), percentile(latencies, 0.95),
                         percentile(latencies, 0.99), percentile(latencies, 0.999),
                         latencies[-1])


def percentile(ordered: list[float], fraction: float) -> float:
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


# ---- failover and catch-up -------------------------------------------------------------------

def measure_failover_and_catch_up(cluster: Cluster, args, report: "Report") -> None:
    victim = leaders(cluster, TOPIC_FAILOVER)[0]
    observer = next(broker for broker in BROKER_IDS if broker != victim)
    producer = ContinuousProducer(cluster.bootstrap(), TOPIC_FAILOVER, FAILOVER_RATE,
                                  FAILOVER_RECORD_BYTES).start()
    time.sleep(FAILOVER_STEADY_S)
    ends_before = end_offsets(cluster, TOPIC_RF3)  # Nothing writes to it now.
    killed_at = time.monotonic()
    cluster.kill(victim, signal.SIGKILL)
    reaped_at = time.monotonic()

    def new_leader():
        partition = cluster.metadata(observer).partitions(TOPIC_FAILOVER)[0]
        return partition.leader not in (victim, -1)
    report.metadata_leader_s = poll_until(safely(new_leader)) - killed_at
    poll_until(lambda: any(ack.partition == 0 and ack.at > reaped_at
                           for ack in list(producer.acks)))
    time.sleep(FAILOVER_AFTER_S)
    producer.stop()
    acks = sorted(producer.acks, key=lambda ack: ack.at)
    first_after = min(ack.at for ack in acks if ack.partition == 0 and ack.at > reaped_at)
    report.first_ack_s = first_after - killed_at
    for index in range(1, PARTITIONS):
        times = [killed_at] + [ack.at for ack in acks if ack.partition == index]
        report.other_gaps_s[index] = max(b - a for a, b in zip(times, times[1:]))
    report.victim, report.observer = victim, observer
    report.acked, report.producer_errors = len(acks), list(producer.errors)
    acked_end = {index: 1 + max((ack.offset for ack in acks
                                 if ack.partition == index and ack.at <= killed_at), default=-1)
                 for index in range(PARTITIONS)}

    # Catch-up: more records while the broker is down, then restart it.
    producer_perf(cluster.bootstrap(brokers=cluster.running_brokers()), TOPIC_RF3,
                  args.catch_up_records, CATCH_UP_RECORD_BYTES, -1, 5, 0)
    ends_failover = end_offsets(cluster, TOPIC_FAILOVER, cluster.running_brokers())
    ends_rf3 = end_offsets(cluster, TOPIC_RF3, cluster.running_brokers())
    report.copy_records = (sum(ends_rf3[i] - ends_before[i] for i in range(PARTITIONS))
                           + sum(ends_failover[i] - acked_end[i] for i in range(PARTITIONS)))
    report.copy_bytes = (sum(ends_rf3[i] - ends_before[i] for i in range(PARTITIONS))
                         * CATCH_UP_RECORD_BYTES
                         + sum(ends_failover[i] - acked_end[i] for i in range(PARTITIONS))
                         * FAILOVER_RECORD_BYTES)
    report.down_s = time.monotonic() - killed_at
    restarted_at = time.monotonic()
    cluster.start(victim)

    def in_every_isr():
        metadata = cluster.metadata(observer)
        for topic in (TOPIC_RF3, TOPIC_FAILOVER):
            for partition in metadata.partitions(topic).values():
                if sorted(partition.isr) != sorted(partition.replicas):
                    return False
        return True
    seen = first_times({
        "listed": safely(lambda: victim in cluster.metadata(observer).brokers),
        "accepting": cluster.nodes[victim]._port_accepts,
        "in_isr": safely(in_every_isr),
    }, timeout=WAIT_TIMEOUT_S * 2)
    report.listed_s = seen["listed"] - restarted_at
    report.accepting_s = seen["accepting"] - restarted_at
    report.in_isr_s = seen["in_isr"] - restarted_at
    cluster.wait_until_ready()
    read_back(cluster, acks, report)


def read_back(cluster: Cluster, acks: list[Ack], report: "Report") -> None:
    """Every partition of the failover topic from offset 0 to its end, against the acks."""
    consumer = Consumer({"bootstrap.servers": cluster.bootstrap(), "group.id": "bench-unused",
                         "enable.auto.commit": False, "auto.offset.reset": "error"})
    try:
        ends = end_offsets(cluster, TOPIC_FAILOVER)
        consumer.assign([TopicPartition(TOPIC_FAILOVER, p, 0) for p in range(PARTITIONS)])
        positions = {p: 0 for p in range(PARTITIONS)}
        read: dict[tuple[int, int], bytes] = {}
        deadline = time.monotonic() + READ_BACK_TIMEOUT_S
        while any(positions[p] < ends[p] for p in positions):
            if time.monotonic() > deadline:
                report.read_errors.append(f"read up to {positions} of {ends} in time")
                break
            for message in consumer.consume(num_messages=1000, timeout=0.5):
                if message.error() is not None:
                    if message.error().code() != KafkaError._PARTITION_EOF:
                        report.read_errors.append(str(message.error()))
                    continue
                read[(message.partition(), message.offset())] = message.value()
                positions[message.partition()] = message.offset() + 1
    finally:
        consumer.close()
    values = list(read.values())
    report.read = len(values)
    report.duplicates = len(values) - len(set(values))
    report.lost = sum(1 for ack in acks if read.get((ack.partition, ack.offset)) != ack.value)
    report.unacknowledged_read = len(set(values) - {ack.value for ack in acks})


# ---- cluster helpers -------------------------------------------------------------------------

def create_topic(cluster: Cluster, topic: str, assignment: list[list[int]],
                 config: dict[str, str]) -> None:
    """Creates `topic` with explicit replicas and waits until every broker shows every
    partition led by its first replica with every replica in sync."""
    admin = AdminClient({"bootstrap.servers": cluster.bootstrap()})
    futures = admin.create_topics([NewTopic(topic, num_partitions=len(assignment),
                                            replica_assignment=assignment, config=config)],
                                  request_timeout=30)
    futures[topic].result(timeout=30)

    def ready():
        for broker in BROKER_IDS:
            partitions = cluster.metadata(broker).partitions(topic)
            for index, replicas in enumerate(assignment):
                partition = partitions[index]
                if partition.leader != replicas[0] or sorted(partition.isr) != sorted(replicas):
                    return False
        return True
    poll_until(safely(ready))


def leaders(cluster: Cluster, topic: str) -> dict[int, int]:
    return cluster.metadata(cluster.running_brokers()[0]).leaders(topic)


def end_offsets(cluster: Cluster, topic: str, brokers=BROKER_IDS) -> dict[int, int]:
    """High watermarks by partition (ListOffsets latest, through the partitions' leaders)."""
    consumer = Consumer({"bootstrap.servers": cluster.bootstrap(brokers=brokers),
                         "group.id": "bench-unused"})
    try:
        return {p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
                for p in range(PARTITIONS)}
    finally:
        consumer.close()


def poll_until(check, timeout: float = WAIT_TIMEOUT_S) -> float:
    """time.monotonic() when `check()` was first seen true (polled every few milliseconds)."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{getattr(check, '__name__', check)} not true in {timeout} s")
        time.sleep(POLL_S)
    return time.monotonic()


def first_times(checks: dict, timeout: float) -> dict:
    """time.monotonic() when each check was first seen true, all polled in turn (each check
    stops being asked once it has been true)."""
    seen: dict = {}
    deadline = time.monotonic() + timeout
    while len(seen) < len(checks):
        for name, check in checks.items():
            if name not in seen and check():
                seen[name] = time.monotonic()
        if time.monotonic() > deadline:
            missing = sorted(set(checks) - set(seen))
            raise TimeoutError(f"{missing} not true in {timeout} s")
        time.sleep(POLL_S)
    return seen


def safely(check):
    def wrapped():
        try:
            return check()
        except (AssertionError, OSError):  # A node that is down or electing answers nothing.
            return False
    wrapped.__name__ = check.__name__
    return wrapped


def other_servers() -> int:
    """`flink server` processes already running (not this run's): they share the cores."""
    result = subprocess.run(["pgrep", "-fc", "flink server"], capture_output=True, text=True)
    return int(result.stdout.strip() or 0)


# ---- the report ------------------------------------------------------------------------------

@dataclass
class RoundResult:
    order: tuple[str, str]
    # (side, load) -> PerfResult or ClientLatency; side "rf1" or "rf3", load as in ROWS.
    figures: dict = field(default_factory=dict)


# (label, load, attribute, format): the rows of the table, from the perf tool's summary.
ROWS = [
    ("latency (fixed rate, flink-producer-perf-test.sh, whole ms)", None, None, None),
    ("records/s held (target {rate})", "latency", "records_per_s", "{:,.0f}"),
    ("avg latency (ms)", "latency", "avg_ms", "{:.2f}"),
    ("p99 latency (ms)", "latency", "p99_ms", "{:.0f}"),
    ("p99.9 latency (ms)", "latency", "p999_ms", "{:.0f}"),
    ("max latency (ms)", "latency", "max_ms", "{:.1f}"),
    ("latency (fixed rate, confluent-kafka, librdkafka's per-record latency)", None, None, None),
    ("records/s held (target {rate})", "client", "records_per_s", "{:,.0f}"),
    ("avg latency (ms)", "client", "avg_ms", "{:.2f}"),
    ("p50 latency (ms)", "client", "p50_ms", "{:.2f}"),
    ("p95 latency (ms)", "client", "p95_ms", "{:.2f}"),
    ("p99 latency (ms)", "client", "p99_ms", "{:.2f}"),
    ("p99.9 latency (ms)", "client", "p999_ms", "{:.2f}"),
    ("max latency (ms)", "client", "max_ms", "{:.2f}"),
    ("throughput (unthrottled, flink-producer-perf-test.sh)", None, None, None),
    ("records/s", "throughput", "records_per_s", "{:,.0f}"),
    ("MB/s", "throughput", "mb_per_s", "{:.2f}"),
    ("avg latency (ms)", "throughput", "avg_ms", "{:.1f}"),
    ("p99 latency (ms)", "throughput", "p99_ms", "{:.0f}"),
]


@dataclass
class Report:
    args: argparse.Namespace
    command: str
    others_at_start: int
    session_timeout_s: float
    rounds: list[RoundResult] = field(default_factory=list)
    victim: int = 0
    observer: int = 0
    metadata_leader_s: float = 0.0
    first_ack_s: float = 0.0
    other_gaps_s: dict[int, float] = field(default_factory=dict)
    acked: int = 0
    producer_errors: list[str] = field(default_factory=list)
    read: int = 0
    lost: int = 0
    duplicates: int = 0
    unacknowledged_read: int = 0
    read_errors: list[str] = field(default_factory=list)
    copy_records: int = 0
    copy_bytes: int = 0
    down_s: float = 0.0
    listed_s: float = 0.0
    accepting_s: float = 0.0
    in_isr_s: float = 0.0
    wall_s: float = 0.0

    @staticmethod
    def round_line(r: RoundResult) -> str:
        """One round's main figures, RF1 / RF3."""
        def pair(load, attribute, form):
            return "/".join(form.format(getattr(r.figures[(side, load)], attribute))
                            for side in ("rf1", "rf3"))
        return (f"perf tool avg {pair('latency', 'avg_ms', '{:.2f}')} ms, "
                f"p99 {pair('latency', 'p99_ms', '{}')} ms; "
                f"confluent-kafka p50 {pair('client', 'p50_ms', '{:.2f}')} ms, "
                f"p99 {pair('client', 'p99_ms', '{:.2f}')} ms; "
                f"unthrottled {pair('throughput', 'mb_per_s', '{:.2f}')} MB/s "
                f"(RF1/RF3, {r.order[0]} first)")

    def catch_up_ratio(self) -> float:
        """How much faster the restarted follower copied than producers append to RF3 unthrottled
        (the perf tool's MB/s are MiB/s, as Kafka's)."""
        appended = [r.figures[("rf3", "throughput")].mb_per_s for r in self.rounds
                    if ("rf3", "throughput") in r.figures]
        copied = self.copy_bytes / 2**20 / max(self.in_isr_s, 1e-9)
        return copied / statistics.median(appended) if appended else 0.0

    def markdown(self) -> str:
        a = self.args
        session = self.session_timeout_s
        lines = [
            "# Replication: RF3 against RF1",
            "",
            f"Measured {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC on "
            f"{os.cpu_count()} CPUs, kernel {platform.release()}, commit {commit()}; "
            f"3 controllers + 3 brokers on loopback (`tests/integration/cluster.py`, one shard "
            f"each, cpu.pinning={CPU_PINNING}, broker.session.timeout.ms "
            f"{session * 1000:.0f}). Other `flink server` "
            f"processes at the start: {self.others_at_start}. Whole run {self.wall_s:.0f} s.",
            "",
            f"Command: `{self.command}`",
            "",
            f"Topics of {PARTITIONS} partitions led by brokers {', '.join(map(str, BROKER_IDS))} "
            f"(one each): RF1 `{RF1_ASSIGNMENT}`, RF3 `{RF3_ASSIGNMENT}` with "
            f"min.insync.replicas=2. Every load uses acks=all. Latency: {a.rate} records/s of "
            f"{a.latency_record_bytes} bytes for {a.latency_seconds:.0f} s after 1 s not "
            f"counted, linger.ms=0, first from `flink-producer-perf-test.sh --throughput "
            f"{a.rate}` (Flink's own client, sticky partitioner; it prints percentiles in whole "
            f"milliseconds, so its p50, 0 or 1 ms, is left out), then "
            f"the same from confluent-kafka {confluent_kafka.version()} / librdkafka "
            f"{confluent_kafka.libversion()[0]} in this Python process (enable.idempotence=true, "
            f"TCP_NODELAY, librdkafka's sticky partitioner; each record from produce() to its "
            f"delivery report, to the microsecond). Unthrottled: "
            f"`flink-producer-perf-test.sh --throughput -1`, {a.throughput_records:,} records of "
            f"{a.throughput_record_bytes} bytes, linger.ms=5, batch.size 16384 (first 10% not "
            f"counted; `sync` after them, so that their writeback does not fall in the next "
            f"latency runs). {a.rounds} rounds after a warm-up round, alternating which topic "
            f"goes first; the table gives the median over rounds of each side, and RF3 / RF1 is "
            f"the median of the per-round ratios.",
            "",
            "| measure | RF1 | RF3 | RF3 / RF1 |",
            "| --- | ---: | ---: | ---: |",
        ]
        for label, load, attribute, form in ROWS:
            if load is None:
                lines.append(f"| *{label}* | | | |")
                continue
            rf1 = [getattr(r.figures[("rf1", load)], attribute) for r in self.rounds]
            rf3 = [getattr(r.figures[("rf3", load)], attribute) for r in self.rounds]
            ratios = [b / a for a, b in zip(rf1, rf3) if a > 0]
            ratio = f"**{statistics.median(ratios):.2f}**" if ratios else "n/a"
            lines.append(f"| {label.format(rate=a.rate)} | "
                         f"{form.format(statistics.median(rf1))} | "
                         f"{form.format(statistics.median(rf3))} | {ratio} |")
        lines += ["", "Every round (RF1 / RF3):", ""]
        lines += [f"- round {i + 1}: {self.round_line(r)}" for i, r in enumerate(self.rounds)]
        gaps = ", ".join(f"p{index} {gap:.2f} s ({gap / session:.2f} x)"
                         for index, gap in sorted(self.other_gaps_s.items()))
        loss = ("none" if not (self.lost or self.duplicates or self.read_errors)
                else "**DATA LOSS OR DUPLICATES — see below**")
        lines += [
            "",
            "## Failover and catch-up",
            "",
            f"A confluent-kafka producer (acks=all, enable.idempotence=true, linger.ms=0) writes "
            f"{FAILOVER_RATE} records/s of {FAILOVER_RECORD_BYTES} bytes round-robin to "
            f"`{TOPIC_FAILOVER}` (RF3, min.insync.replicas=2); after {FAILOVER_STEADY_S:.0f} s "
            f"broker {self.victim}, leader of partition 0, gets SIGKILL. An acknowledgement is "
            f"timed when its delivery report arrives; Metadata is asked of broker "
            f"{self.observer} every {POLL_S * 1000:.0f} ms.",
            "",
            "| event after SIGKILL of the leader | seconds | x broker.session.timeout.ms |",
            "| --- | ---: | ---: |",
            f"| Metadata names a new leader of partition 0 | {self.metadata_leader_s:.2f} | "
            f"{self.metadata_leader_s / session:.2f} |",
            f"| next write to partition 0 acknowledged | {self.first_ack_s:.2f} | "
            f"{self.first_ack_s / session:.2f} |",
            f"| longest pause in acknowledgements of the partitions it followed | "
            f"{max(self.other_gaps_s.values(), default=0):.2f} | "
            f"{max(self.other_gaps_s.values(), default=0) / session:.2f} |",
            "",
            f"Pauses by partition it followed: {gaps}. "
            f"Acknowledged {self.acked:,} records; read back from offset 0 after the catch-up: "
            f"{self.read:,}; acknowledged but not read back (lost): **{self.lost}**; read twice: "
            f"**{self.duplicates}**; read but never acknowledged: {self.unacknowledged_read}; "
            f"producer errors: {len(self.producer_errors)}. Data loss: {loss}.",
            "",
            "| catch-up of the restarted broker | value |",
            "| --- | ---: |",
            f"| down for (s) | {self.down_s:.1f} |",
            f"| records written meanwhile to the partitions it replicates | "
            f"{self.copy_records:,} ({self.copy_bytes / 2**20:.1f} MiB of values) |",
            f"| restart to listed in Metadata, unfenced (s) | {self.listed_s:.2f} |",
            f"| restart to accepting connections (s) | {self.accepting_s:.2f} |",
            f"| restart to in the ISR of every partition (s) | {self.in_isr_s:.2f} |",
            f"| copy rate over that time (MiB/s of values) | "
            f"{self.copy_bytes / 2**20 / max(self.in_isr_s, 1e-9):.1f} |",
            f"| copy rate / RF3's unthrottled append rate (the table above) | "
            f"{self.catch_up_ratio():.2f} |",
            "",
            f"While it was down, {a.catch_up_records:,} records of {CATCH_UP_RECORD_BYTES} bytes "
            f"went to `{TOPIC_RF3}` (perf tool, unthrottled) besides the failover producer's.",
        ]
        problems = self.producer_errors[:5] + self.read_errors[:5]
        if problems:
            lines += ["", "Errors seen:", ""] + [f"- `{problem}`" for problem in problems]
        return "\n".join(lines) + "\n"


def commit() -> str:
    result = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
                            capture_output=True, text=True)
    dirty = subprocess.run(["git", "-C", str(REPO), "diff", "--quiet", "HEAD", "--", "src",
                            "Cargo.toml"]).returncode
    return f"`{result.stdout.strip()}`" + (" + uncommitted changes" if dirty else "")


if __name__ == "__main__":
    main()
