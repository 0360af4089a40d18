"""Transactions under faults: chaos.py's cluster and nemesis with transactional clients.

3 controllers and 3 brokers (cluster.py), `__transaction_state` and the `chaos` topic replicated
three times with min.insync.replicas=2. A confluent-kafka transactional producer runs one
transaction after another, each writing a few records to every partition, and commits or aborts
it (a seeded choice); now and then a second producer takes over its transactional id while a
transaction is open (a zombie: the old producer must be fenced and its open transaction
aborted). Two read_committed readers (confluent-kafka and kafka-python, every partition from the
beginning) record what they see, while chaos.Nemesis kills, pauses and cuts off leaders,
followers, coordinators (the brokers leading `__transaction_state` partitions are leaders too)
and controllers.

The checker, on the final read_committed log and each reader's reads:
- every record of a committed transaction is read exactly once (none lost, none duplicated);
- no record of an aborted, fenced or unfinished transaction is ever read (Jepsen's "aborted
  read"); a transaction whose commit outcome the client could not learn is all or nothing;
- offsets only increase in every reader, and every read agrees with the final log;
- a fenced producer's commit fails.

Run it as `python3 tests/integration/txn_chaos.py --duration 600 --seed 7` (make chaos), or call
`run` (test_txn_chaos.py).
"""

from __future__ import annotations

import argparse
import random
import shutil
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaException, Producer, TopicPartition
from kafka import KafkaConsumer
from kafka import TopicPartition as KafkaPythonTopicPartition

import chaos
import support
from chaos import (CLIENT_LOGGER, EXAMPLES_MAX, PARTITIONS, READER_BATCH_MAX, READER_POLL_S,
                   REQUEST_TIMEOUT_MS, TOPIC, Clock, Nemesis, Settings)
from cluster import Cluster

PROPERTIES = {
    "transaction.state.log.replication.factor": "3",
    "transaction.state.log.min.isr": "2",
    # A producer lost with a transaction open has it aborted soon.
    "transaction.abort.timed.out.transaction.cleanup.interval.ms": "1000",
}
RECORDS_PER_PARTITION = 3  # Per transaction.
ABORT_SHARE = 0.3
ZOMBIE_EVERY = 15  # Transactions between two takeovers of the transactional id.
TRANSACTIONS_PER_S = 10
TRANSACTION_TIMEOUT_MS = 20_000
CALL_TIMEOUT_S = 30  # commit_transaction, abort_transaction, init_transactions.
CALL_ATTEMPTS = 4
CATCH_UP_TIMEOUT_S = 60
FINAL_READ_TIMEOUT_S = 60

COMMITTED, ABORTED, FENCED, UNKNOWN = "committed", "aborted", "fenced", "unknown"


@dataclass
class TxnHistory:
    """Each transaction's records and what became of it."""

    values: dict[str, list[str]] = field(default_factory=dict)  # transaction -> its values
    outcome: dict[str, str] = field(default_factory=dict)
    committed_during_faults: int = 0

    def transaction_of(self, value: str) -> str:
        return value.rsplit("-", 1)[0]


@dataclass
class TxnReport(chaos.Report):
    txn_history: TxnHistory | None = field(default=None, repr=False)
    reads: dict[str, int] = field(default_factory=dict)
    zombie_commits: int = 0

    def render(self) -> str:
        lines = [f"transactions under chaos: seed {self.settings.seed}, faults enabled "
                 f"{','.join(self.faults_enabled)}"]
        if self.network_note:
            lines.append(f"  (partition-leader unavailable: {self.network_note})")
        if self.txn_history is not None:
            outcomes = Counter(self.txn_history.outcome.values())
            lines.append(f"transactions: {dict(outcomes)}; committed during faults: "
                         f"{self.txn_history.committed_during_faults}; zombie commits refused: "
                         f"{self.zombie_commits}")
        for name, count in self.reads.items():
            lines.append(f"{name}: {count} records read at read_committed")
        lines.extend(chaos.render_faults_and_verdict(self))
        return "\n".join(lines)


def run(work_dir: Path, settings: Settings, check: bool = True, out=print) -> TxnReport:
    """One run under `work_dir`; returns the report (raises chaos.ChaosViolation on violations
    when `check`)."""
    return chaos.run(work_dir, settings, check, out, workload=run_workload,
                     properties=PROPERTIES, report_class=TxnReport)


def run_workload(cluster: Cluster, network: chaos.Network, settings: Settings,
                 faults: list[str], clock: Clock, report: TxnReport, out) -> None:
    bootstrap = cluster.bootstrap()
    history = TxnHistory()
    faulty = threading.Event()
    producer = TransactionalWorker(bootstrap, f"txn-s{settings.seed}", settings, clock, history,
                                   report, faulty)
    readers = [ConfluentCommittedReader("confluent-kafka", bootstrap, clock),
               KafkaPythonCommittedReader("kafka-python", bootstrap, clock)]
    nemesis = Nemesis(cluster, network, settings, clock, report, out)
    producer.start()
    for reader in readers:
        reader.start()
    try:
        chaos.inject_faults(nemesis, settings, faults, report, during=faulty)
        out(f"{clock.now():7.1f}s  healed; finishing the last transaction")
        producer.stop_and_join()
        end_offsets = chaos.watermarks(bootstrap)
        out(f"{clock.now():7.1f}s  end offsets {end_offsets}; waiting for the readers")
        stalled = wait_for(readers, end_offsets, CATCH_UP_TIMEOUT_S)
    finally:
        for worker in [producer, *readers]:
            worker.stopping.set()
        for reader in readers:
            reader.join(chaos.ADMIN_TIMEOUT_S)
    final = ConfluentCommittedReader("final", bootstrap, clock)
    final.start()
    stalled += wait_for([final], end_offsets, FINAL_READ_TIMEOUT_S)
    final.stopping.set()
    final.join(chaos.ADMIN_TIMEOUT_S)
    report.final_states = chaos.partition_states(cluster, set(), required=False)
    report.txn_history = history
    report.reads = {reader.name: sum(len(reads) for reads in reader.reads.values())
                    for reader in [*readers, final]}
    report.violations.extend(check(history, readers, final))
    report.violations.extend(f"stalled: {line}" for line in stalled)
    for reader in [*readers, final]:
        if reader.errors:
            report.incidents.append(f"{reader.name} client errors: {dict(reader.errors)}")


# ---- the producer -------------------------------------------------------------------------------

class TransactionalWorker(threading.Thread):
    """One transaction after another under one transactional id, committed or aborted as a
    seeded coin says; every ZOMBIE_EVERY transactions a new producer takes the id over while the
    old one has a transaction open."""

    def __init__(self, bootstrap: str, transactional_id: str, settings: Settings, clock: Clock,
                 history: TxnHistory, report: TxnReport, faulty: threading.Event):
        super().__init__(name="txn-producer", daemon=True)
        self.bootstrap = bootstrap
        self.transactional_id = transactional_id
        self.settings = settings
        self.clock = clock
        self.history = history
        self.report = report
        self.faulty = faulty
        self.random = random.Random(settings.seed)
        self.stopping = threading.Event()
        self.sequence = 0

    def stop_and_join(self) -> None:
        self.stopping.set()
        self.join(CALL_TIMEOUT_S * (CALL_ATTEMPTS + 2))
        assert not self.is_alive(), "the transactional producer did not finish"

    def new_producer(self) -> Producer:
        """A producer of the transactional id, initialised (which fences every older one and
        aborts a transaction it left open)."""
        for attempt in range(CALL_ATTEMPTS * 3):
            producer = Producer({
                "bootstrap.servers": self.bootstrap, "transactional.id": self.transactional_id,
                "transaction.timeout.ms": TRANSACTION_TIMEOUT_MS,
                "request.timeout.ms": REQUEST_TIMEOUT_MS, "linger.ms": 5,
                "logger": CLIENT_LOGGER,
            })
            try:
                producer.init_transactions(CALL_TIMEOUT_S)
                return producer
            except KafkaException as error:
                self.report.incidents.append(
                    f"init_transactions failed at {self.clock.now():.1f}s: {error}")
        raise AssertionError("init_transactions kept failing")

    def next_transaction(self) -> tuple[str, list[tuple[int, str]]]:
        name = f"{self.transactional_id}-t{self.sequence:06d}"
        self.sequence += 1
        records = [(index % PARTITIONS, f"{name}-{index}")
                   for index in range(RECORDS_PER_PARTITION * PARTITIONS)]
        self.history.values[name] = [value for _, value in records]
        return name, records

    def run(self) -> None:
        producer = self.new_producer()
        interval_s = 1 / TRANSACTIONS_PER_S
        while not self.stopping.is_set():
            started = time.monotonic()
            if self.sequence and self.sequence % ZOMBIE_EVERY == 0:
                producer = self.take_over(producer)
                continue
            name, records = self.next_transaction()
            commit = self.random.random() >= ABORT_SHARE
            outcome, usable = self.transact(producer, records, commit)
            self.history.outcome[name] = outcome
            if outcome == COMMITTED and self.faulty.is_set():
                self.history.committed_during_faults += 1
            if not usable:
                producer = self.new_producer()
            time.sleep(max(0.0, interval_s - (time.monotonic() - started)))

    def transact(self, producer: Producer, records: list[tuple[int, str]],
                 commit: bool) -> tuple[str, bool]:
        """One transaction; returns its outcome as far as the client knows, and whether the
        producer can go on."""
        try:
            producer.begin_transaction()
            for partition, value in records:
                producer.produce(TOPIC, value=value.encode(), partition=partition)
        except KafkaException as error:
            return self.recover(producer, error, "begin/produce")
        for attempt in range(CALL_ATTEMPTS):
            try:
                if commit:
                    producer.commit_transaction(CALL_TIMEOUT_S)
                    return COMMITTED, True
                producer.abort_transaction(CALL_TIMEOUT_S)
                return ABORTED, True
            except KafkaException as error:
                kafka_error = error.args[0]
                if kafka_error.retriable() and not kafka_error.fatal():
                    continue  # librdkafka: the same call may be retried.
                return self.recover(producer, error, "commit" if commit else "abort")
        return UNKNOWN, False

    def recover(self, producer: Producer, error: KafkaException, what: str) -> tuple[str, bool]:
        kafka_error = error.args[0]
        self.report.incidents.append(f"{what} failed at {self.clock.now():.1f}s: {kafka_error}")
        if kafka_error.txn_requires_abort() and not kafka_error.fatal():
            try:
                producer.abort_transaction(CALL_TIMEOUT_S)
                return ABORTED, True
            except KafkaException as abort_error:
                self.report.incidents.append(f"abort after {what} failed: {abort_error}")
        # Fatal or unresolved: a new producer aborts whatever is still open.
        return UNKNOWN, False

    def take_over(self, zombie: Producer) -> Producer:
        """The zombie opens a transaction and writes it; a new producer initialises the id; the
        zombie's commit must fail and its records must never be read."""
        name, records = self.next_transaction()
        try:
            zombie.begin_transaction()
            for partition, value in records:
                zombie.produce(TOPIC, value=value.encode(), partition=partition)
            zombie.flush(CALL_TIMEOUT_S)
        except KafkaException as error:
            self.report.incidents.append(f"zombie transaction failed early: {error}")
        successor = self.new_producer()
        try:
            zombie.commit_transaction(CALL_TIMEOUT_S)
            self.report.violations.append(
                f"fencing: the commit of {name} by a fenced producer succeeded")
            self.history.outcome[name] = COMMITTED
        except KafkaException:
            self.report.zombie_commits += 1
            self.history.outcome[name] = FENCED
        return successor


# ---- the readers --------------------------------------------------------------------------------

class CommittedReader(chaos.Reader):
    """A chaos.Reader at read_committed, which also keeps the client's own position per
    partition (it passes transaction markers, which are never read as records)."""

    def __init__(self, name: str, bootstrap: str, clock: Clock):
        super().__init__(name, bootstrap, clock)
        self.positions: dict[int, int] = defaultdict(int)


class ConfluentCommittedReader(CommittedReader):
    def read(self) -> None:
        consumer = Consumer({
            "bootstrap.servers": self.bootstrap, "group.id": "txn-chaos-unused",
            "isolation.level": "read_committed", "enable.auto.commit": False,
            "enable.auto.offset.store": False, "auto.offset.reset": "earliest",
            "error_cb": lambda error: self.errors.update([error.name()]),
            "logger": CLIENT_LOGGER,
        })
        assigned = [TopicPartition(TOPIC, p, OFFSET_BEGINNING) for p in range(PARTITIONS)]
        try:
            consumer.assign(assigned)
            while not self.stopping.is_set():
                for message in consumer.consume(READER_BATCH_MAX, READER_POLL_S):
                    if message.error() is not None:
                        self.errors[message.error().name()] += 1
                    else:
                        self.record(message.partition(), message.offset(), message.value())
                for tp in consumer.position([TopicPartition(TOPIC, p) for p in range(PARTITIONS)]):
                    if tp.offset >= 0:
                        self.positions[tp.partition] = tp.offset
        finally:
            consumer.close()


class KafkaPythonCommittedReader(CommittedReader):
    def read(self) -> None:
        consumer = KafkaConsumer(bootstrap_servers=self.bootstrap.split(","), group_id=None,
                                 enable_auto_commit=False, auto_offset_reset="earliest",
                                 isolation_level="read_committed",
                                 client_id="txn-chaos-kafka-python")
        try:
            assigned = [KafkaPythonTopicPartition(TOPIC, p) for p in range(PARTITIONS)]
            consumer.assign(assigned)
            consumer.seek_to_beginning(*assigned)
            while not self.stopping.is_set():
                try:
                    batches = consumer.poll(timeout_ms=int(READER_POLL_S * 1000),
                                            max_records=READER_BATCH_MAX)
                    for partition, records in batches.items():
                        for record in records:
                            self.record(partition.partition, record.offset, record.value)
                    for tp in assigned:
                        self.positions[tp.partition] = consumer.position(tp)
                except Exception as error:  # kafka-python raises what it cannot retry.
                    self.errors[type(error).__name__] += 1
                    time.sleep(READER_POLL_S)
        finally:
            consumer.close()


def wait_for(readers: list[CommittedReader], end_offsets: dict[int, tuple[int, int]],
             timeout: float) -> list[str]:
    """Until every reader's position reached every partition's end offset (the last stable
    offset equals the high watermark once no transaction is open); returns what stayed behind."""
    deadline = time.monotonic() + timeout

    def behind():
        return [f"{reader.name} stopped at {TOPIC}-{p} position {reader.positions[p]} of {high}"
                for reader in readers for p, (_, high) in end_offsets.items()
                if reader.positions[p] < high]
    while behind() and time.monotonic() < deadline:
        time.sleep(READER_POLL_S)
    return behind()


# ---- the checker --------------------------------------------------------------------------------

def check(history: TxnHistory, readers: list[CommittedReader],
          final: CommittedReader) -> list[str]:
    """The checks of the module docstring; returns the violations (a few examples per kind)."""
    violations: list[str] = []
    examples: Counter = Counter()

    def violation(kind: str, text: str) -> None:
        examples[kind] += 1
        if examples[kind] <= EXAMPLES_MAX:
            violations.append(f"{kind}: {text}")

    final_log: dict[tuple[int, int], str] = {}
    final_count: Counter = Counter()
    for partition, reads in final.reads.items():
        for read in reads:
            final_log[(partition, read.offset)] = read.value
            final_count[read.value] += 1
    for reader in [*readers, final]:
        for partition, reads in reader.reads.items():
            offsets = [read.offset for read in reads]
            for before, after in zip(offsets, offsets[1:]):
                if after <= before:
                    violation("reordered", f"{reader.name} read {TOPIC}-{partition} offset "
                                           f"{after} after {before}")
            for read in reads:
                transaction = history.transaction_of(read.value)
                outcome = history.outcome.get(transaction)
                if outcome is None and transaction not in history.values:
                    violation("unknown record", f"{reader.name} read {read.value!r}")
                elif outcome in (ABORTED, FENCED, None):
                    violation("aborted read", f"{reader.name} read {read.value!r} of a "
                                              f"transaction {outcome or 'never ended'}")
                if reader is not final and final_log.get((partition, read.offset)) != read.value:
                    violation("divergent", f"{reader.name} read {read.value!r} at {TOPIC}-"
                                           f"{partition}@{read.offset}; the final log has "
                                           f"{final_log.get((partition, read.offset))!r}")
        counts = Counter(read.value for reads in reader.reads.values() for read in reads)
        for value, count in counts.items():
            if count > 1:
                violation("duplicate", f"{reader.name} read {value!r} {count} times")
    for transaction, values in history.values.items():
        outcome = history.outcome.get(transaction)
        present = [value for value in values if final_count[value]]
        if outcome == COMMITTED and len(present) != len(values):
            missing = sorted(set(values) - set(present))
            violation("lost", f"committed {transaction} lacks {missing[:3]} in the final log")
        if outcome == UNKNOWN and present and len(present) != len(values):
            violation("partial", f"{transaction} (outcome unknown to the client) has "
                                 f"{len(present)} of {len(values)} records")
    for reader in readers:
        committed_values = {value for transaction, values in history.values.items()
                            if history.outcome.get(transaction) == COMMITTED for value in values}
        read = {read.value for reads in reader.reads.values() for read in reads}
        missed = committed_values - read
        if missed:
            violation("missed", f"{reader.name} never read {len(missed)} committed records, "
                                f"e.g. {sorted(missed)[:3]}")
    return violations


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=600.0)
    parser.add_argument("--seed", type=int, default=None, help="default: a random one, printed")
    parser.add_argument("--faults", default=",".join(chaos.FAULTS),
                        help=f"comma-separated, from: {','.join(chaos.FAULTS)}")
    parser.add_argument("--work-dir", type=Path, default=None)
    parser.add_argument("--keep", action="store_true", help="keep the work directory on success")
    args = parser.parse_args(argv)
    if not support.FLINK.exists():
        print(f"missing {support.FLINK}: run `make dist` first (or set FLINK_DIST)")
        return 2
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(1 << 31)
    settings = Settings(duration_s=args.duration, seed=seed,
                        faults=tuple(name for name in args.faults.split(",") if name))
    work_dir = args.work_dir or Path(tempfile.mkdtemp(prefix="flink-txn-chaos-"))
    print(f"seed {seed} (replay with --seed {seed}); work directory {work_dir}")
    report = run(work_dir, settings, check=False)
    if report.violations:
        print(f"FAILED: {len(report.violations)} violations; logs kept under {work_dir}")
        return 1
    if not args.keep and args.work_dir is None:
        shutil.rmtree(work_dir, ignore_errors=True)
    print("passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
