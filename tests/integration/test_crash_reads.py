"""What a consumer has read survives a SIGKILL of the broker: a record is served only once it is
in the log file, so a crash right after a read cannot take it back.

`test_records_read_before_sigkill_survive_it` runs CYCLES short cycles against one single-node
broker and one 2-partition topic, reusing the log directory throughout. In each cycle a
confluent-kafka producer (acks=1 or acks=0, linger.ms 0 or 5) writes self-checking values
(cycle, sequence number, CRC-32) as fast as it can while a confluent-kafka consumer, assigned to
every partition from where the log ended after the previous restart, records every (partition,
offset, value) it is served. After a seeded delay of 0.3-1.5 s the broker gets SIGKILL; the
consumer still takes what its client had already fetched, then both clients stop and the broker
starts again. A fresh consumer then reads every partition from a little before that cycle's
start (the previous cycle's last OVERLAP verified records) to its high watermark and the test
checks:

- EVERY (partition, offset) the consumer was served before the kill holds the same value;
- with acks=1, every delivery report without an error names the offset that holds its value;
- the previous cycle's last verified records are still there, unchanged, after another kill;
- offsets run contiguously (from 0 on, cycle after cycle), every value passes its checksum,
  and the log starts at offset 0.

All cycles run even after a loss, so the report says what each cycle lost (the next cycle
starts where the log ends after the restart). Reading every partition from offset 0 in every
cycle would check the same thing at a cost that grows with every cycle. The seed is printed;
FLINK_CRASH_READS_SEED=<n> replays or varies a run.
"""

from __future__ import annotations

import os
import random
import threading
import time
import uuid
import zlib
from collections import defaultdict

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition

from support import Broker, create_topic

SEED = int(os.environ.get("FLINK_CRASH_READS_SEED", "20250307"))
PARTITIONS = 2
CYCLES = 20
KILL_AFTER_S = (0.3, 1.5)
THREAD_STOP_TIMEOUT_S = 15
READ_DEADLINE_S = 30
READ_STALL_S = 5  # A reader that gets nothing new for this long below the watermark gives up.
OVERLAP = 2000  # Records per partition verified after one restart and checked after the next.
DRAIN_EMPTY_POLLS = 3  # After the kill: polls that must come back empty before the reader stops.
VIOLATIONS_SHOWN = 12


def make_value(cycle: int, seq: int) -> bytes:
    body = f"{cycle}:{seq}"
    return f"{body}:{zlib.crc32(body.encode()):08x}".encode()


def value_is_sound(value: bytes | None) -> bool:
    """Whether a served value is one make_value could have made (its checksum holds)."""
    try:
        cycle, seq, checksum = (value or b"").decode("ascii").split(":")
        return value == make_value(int(cycle), int(seq))
    except ValueError:
        return False


# ------------------------------------------------------------------------------------------------
# The two clients of a cycle, each on its own thread.


class Writer(threading.Thread):
    """Queues make_value(cycle, 0, 1, ...) round-robin over the partitions until stopped; with
    acks=1 it keeps {(partition, offset): value} from delivery reports without an error. Stopping
    purges what is queued or in flight (the broker is dead by then)."""

    def __init__(self, bootstrap: str, topic: str, cycle: int, acks: int, linger_ms: int):
        super().__init__(name=f"writer-{cycle}", daemon=True)
        self.topic, self.cycle, self.acks = topic, cycle, acks
        self.stop = threading.Event()
        self.queued = 0  # Handed to the client, whether it got them out or not.
        self.acked: dict[tuple[int, int], bytes] = {}
        self.failed = 0
        self.problems: list[str] = []
        self.producer = Producer({
            "bootstrap.servers": bootstrap,
            "acks": acks,
            "linger.ms": linger_ms,
            "enable.idempotence": False,
            "message.timeout.ms": 30_000,
            "reconnect.backoff.ms": 20,
            "log_level": 2,  # The kill makes librdkafka log connection errors: expected here.
        })

    def on_delivery(self, error, message) -> None:
        if error is not None:
            self.failed += 1
        elif self.acks == 1:
            place = (message.partition(), message.offset())
            if place in self.acked:
                self.problems.append(f"cycle {self.cycle}: {place} acknowledged twice")
            self.acked[place] = message.value()

    def run(self) -> None:
        try:
            while not self.stop.is_set():
                value = make_value(self.cycle, self.queued)
                try:
                    self.producer.produce(self.topic, value=value,
                                          partition=self.queued % PARTITIONS,
                                          on_delivery=self.on_delivery)
                except BufferError:
                    self.producer.poll(0.005)
                    continue
                self.queued += 1
                if self.queued % 64 == 0:
                    self.producer.poll(0)
            self.producer.poll(0)  # Reports that arrived before the kill.
            self.producer.purge()
            self.producer.flush(5)  # Delivers the purge's error reports; nothing to wait for.
            # Destroyed now, with the broker down: a producer left alive may still send what it
            # holds to the restarted broker (seen with acks=0), into the next cycle's check.
            self.producer = None
        except Exception as error:  # Reported by the test, not lost on a thread.
            self.problems.append(f"cycle {self.cycle}: writer failed: {error!r}")


class Reader(threading.Thread):
    """Reads every partition from `start` on and records each (partition, offset, value) served.
    Once stopped (after the kill) it drains what its client fetched before, then closes."""

    def __init__(self, bootstrap: str, topic: str, cycle: int, start: dict[int, int]):
        super().__init__(name=f"reader-{cycle}", daemon=True)
        self.cycle = cycle
        self.stop = threading.Event()
        self.read: dict[tuple[int, int], bytes] = {}
        self.problems: list[str] = []
        self.consumer = Consumer({
            "bootstrap.servers": bootstrap,
            "group.id": f"crash-reads-{uuid.uuid4()}",  # Required by the library; never joined.
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "auto.offset.reset": "error",
            "fetch.wait.max.ms": 10,
            "fetch.error.backoff.ms": 10,
            "check.crcs": True,
            "log_level": 2,
        })
        self.consumer.assign([TopicPartition(topic, p, offset) for p, offset in start.items()])

    def take(self, timeout: float) -> int:
        messages = self.consumer.consume(num_messages=10_000, timeout=timeout)
        for message in messages:
            if message.error() is not None:
                continue  # Connection errors once the broker is killed.
            place = (message.partition(), message.offset())
            if place in self.read and self.read[place] != message.value():
                self.problems.append(f"cycle {self.cycle}: {place} served twice, differently")
            self.read[place] = message.value()
        return len(messages)

    def run(self) -> None:
        try:
            while not self.stop.is_set():
                self.take(0.05)
            empty = 0
            while empty < DRAIN_EMPTY_POLLS:
                empty = 0 if self.take(0.1) else empty + 1
            self.consumer.close()
        except Exception as error:
            self.problems.append(f"cycle {self.cycle}: reader failed: {error!r}")


# ------------------------------------------------------------------------------------------------
# Reading back after the restart.


def read_back(bootstrap: str, topic: str, start: dict[int, int]):
    """Every record from `start` to the high watermark of each partition, with a fresh
    assign()-only consumer. Returns ({partition: [(offset, value)]}, {partition: (low, high)},
    problems); bounded by READ_DEADLINE_S, and by READ_STALL_S without progress."""
    consumer = Consumer({
        "bootstrap.servers": bootstrap,
        "group.id": f"crash-reads-check-{uuid.uuid4()}",
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "enable.partition.eof": True,
        "auto.offset.reset": "error",
        "fetch.wait.max.ms": 50,
        "check.crcs": True,
    })
    records: dict[int, list[tuple[int, bytes]]] = defaultdict(list)
    problems: list[str] = []
    try:
        marks = {p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10,
                                                   cached=False)
                 for p in start}
        wanted = {p: start[p] < marks[p][1] for p in start}
        if not any(wanted.values()):
            return records, marks, problems
        consumer.assign([TopicPartition(topic, p, start[p]) for p in start if wanted[p]])
        next_offset = dict(start)
        deadline = time.monotonic() + READ_DEADLINE_S
        progress_at = time.monotonic()
        while any(next_offset[p] < marks[p][1] for p in start):
            now = time.monotonic()
            if now > deadline or now - progress_at > READ_STALL_S:
                problems.append(f"could not read to the high watermarks {marks}: reached "
                                f"{next_offset} after {now - progress_at:.1f}s without progress")
                break
            for message in consumer.consume(num_messages=10_000, timeout=0.2):
                error = message.error()
                if error is not None:
                    if error.code() != KafkaError._PARTITION_EOF:
                        problems.append(f"consume error on partition {message.partition()}: "
                                        f"{error}")
                    continue
                partition, offset = message.partition(), message.offset()
                progress_at = time.monotonic()
                if offset < marks[partition][1]:  # Beyond it came after the restart.
                    records[partition].append((offset, message.value()))
                next_offset[partition] = offset + 1
    except KafkaException as error:
        problems.append(f"reading back failed: {error}")
    finally:
        consumer.close()
    return records, marks, problems


def check_cycle(records, marks, start: dict[int, int], expected: dict[str, dict]) -> tuple:
    """Compares what is served now with each `expected` map of (partition, offset) -> value.
    Returns (served, violations, {name: number verified}, {name: number lost})."""
    violations: list[str] = []
    served: dict[tuple[int, int], bytes] = {}
    for partition in sorted(start):
        low, high = marks[partition]
        if low != 0:
            violations.append(f"partition {partition}: log start offset {low}, not 0")
        offsets = [offset for offset, _ in records.get(partition, [])]
        if offsets != list(range(start[partition], start[partition] + len(offsets))):
            wrong = next(i for i, offset in enumerate(offsets) if offset != start[partition] + i)
            violations.append(
                f"partition {partition}: offsets not contiguous from {start[partition]}: at "
                f"index {wrong} comes {offsets[wrong]} (around "
                f"{offsets[max(0, wrong - 2):wrong + 3]})")
        if start[partition] + len(offsets) != high:
            violations.append(f"partition {partition}: read {start[partition]}.."
                              f"{start[partition] + len(offsets)}, high watermark {high}")
        for offset, value in records.get(partition, []):
            if not value_is_sound(value):
                violations.append(f"corrupt value at {partition}/{offset}: {value[:60]!r}")
            served[(partition, offset)] = value
    verified, lost = {}, {}
    for name, places in expected.items():
        missing = []
        for place, value in sorted(places.items()):
            got = served.get(place)
            if got != value:
                missing.append(f"{name} {place[0]}/{place[1]} = {value!r}, now "
                               f"{'nothing' if got is None else repr(got)}")
        verified[name], lost[name] = len(places) - len(missing), len(missing)
        violations += missing
    return served, violations, verified, lost


# ------------------------------------------------------------------------------------------------


def test_records_read_before_sigkill_survive_it(broker: Broker):
    """CYCLES times: write and read concurrently, SIGKILL the broker at a seeded moment, restart,
    and require every record read (and every acks=1 acknowledgement) to be there afterwards."""
    topic = "crash-reads"
    create_topic(broker, topic, partitions=PARTITIONS)
    rng = random.Random(SEED)
    print(f"\ntest_crash_reads seed {SEED} (FLINK_CRASH_READS_SEED={SEED} replays it)")
    end = {p: 0 for p in range(PARTITIONS)}  # Where the log ended after the last restart.
    # The last OVERLAP records of each partition verified after the last restart: checked again
    # after the next kill, together with the new ones.
    verified_tail: dict[tuple[int, int], bytes] = {}
    violations: list[str] = []
    summary: list[str] = []
    totals = defaultdict(int)
    began = time.monotonic()
    for cycle in range(CYCLES):
        acks = 1 if cycle % 2 == 0 else 0
        linger_ms = rng.choice([0, 5])
        kill_after = rng.uniform(*KILL_AFTER_S)
        reader = Reader(broker.bootstrap, topic, cycle, end)
        writer = Writer(broker.bootstrap, topic, cycle, acks, linger_ms)
        reader.start()
        writer.start()
        time.sleep(kill_after)  # When to kill: a seeded moment mid-stream, not a wait for a result.
        broker.kill()
        writer.stop.set()
        reader.stop.set()
        writer.join(THREAD_STOP_TIMEOUT_S)
        reader.join(THREAD_STOP_TIMEOUT_S)
        stuck = [thread.name for thread in (writer, reader) if thread.is_alive()]
        assert not stuck, f"cycle {cycle}: {stuck} did not stop within {THREAD_STOP_TIMEOUT_S}s"
        broker.start()

        check_from = {p: max(0, offset - OVERLAP) for p, offset in end.items()}
        records, marks, problems = read_back(broker.bootstrap, topic, check_from)
        served, cycle_violations, verified, lost = check_cycle(
            records, marks, check_from,
            {"read": reader.read, "acked": writer.acked, "verified before": verified_tail})
        cycle_violations = problems + writer.problems + reader.problems + cycle_violations
        line = (f"cycle {cycle:2}: acks={acks} linger.ms={linger_ms} SIGKILL after "
                f"{kill_after:.2f}s; queued {writer.queued}; consumer had read "
                f"{len(reader.read)}, {verified['read']} verified, {lost['read']} lost; "
                f"{len(writer.acked)} acked, {verified['acked']} verified, {lost['acked']} lost; "
                f"{lost['verified before']} of {len(verified_tail)} verified before lost; "
                f"log end {[marks[p][1] for p in sorted(marks)]}")
        print(line)
        summary.append(line)
        for name in verified:
            totals[f"{name} verified"] += verified[name]
            totals[f"{name} lost"] += lost[name]
        violations += [f"cycle {cycle}: {violation}" for violation in cycle_violations]
        # The next cycle reads on from where the log ends now (lost records are not re-counted).
        end = {p: marks[p][1] for p in end}
        verified_tail = {place: value for place, value in served.items()
                         if place[1] >= end[place[0]] - OVERLAP}

    print(f"{CYCLES} SIGKILLs in {time.monotonic() - began:.1f}s: {dict(totals)}")
    panics = [line for line in broker.log_text().splitlines() if "panicked" in line]
    assert not panics, f"the broker log shows a panic (seed {SEED}):\n" + "\n".join(panics[:5])
    assert not violations, (
        f"{len(violations)} violations (seed {SEED}): {totals['read lost']} of "
        f"{totals['read lost'] + totals['read verified']} records a consumer had read before a "
        f"SIGKILL and {totals['acked lost']} of {totals['acked lost'] + totals['acked verified']}"
        f" acks=1 acknowledgements were gone after the restart.\nPer cycle:\n"
        + "\n".join(summary) + f"\nFirst {min(len(violations), VIOLATIONS_SHOWN)} violations:\n"
        + "\n".join(violations[:VIOLATIONS_SHOWN]))
