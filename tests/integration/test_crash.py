"""Crash durability with the real binary and a real client: SIGKILL loses no acknowledged record,
and a damaged log tail is cut on restart, never served.

`test_sigkill_cycles_keep_every_acknowledged_record` runs a confluent-kafka producer (acks=all,
idempotent) against a 3-partition topic while the broker is killed with SIGKILL several times at
seeded points mid-stream. Only delivery reports without an error count as acknowledged. After each
restart a reader that assigns every partition from offset 0 up to its high watermark proves: every
acknowledged (partition, offset) holds exactly its value; offsets in a partition run 0, 1, 2, ...
with no gap or repeat; every value served (acknowledged or not) passes its checksum and carries the
key and headers it was produced with; no value is stored twice (idempotence across restarts); the
broker log holds no panic.

`test_damaged_tail_is_truncated` kills the broker, then damages the active segment of one
partition on disk: garbage after the last batch, a torn (half-written) batch, or one flipped byte
inside the last batch. The restarted broker logs the truncation, serves every acknowledged record
before the damaged batch intact, serves nothing corrupt, and carries on appending after the cut.

The seed is printed; FLINK_CRASH_SEED=<n> replays or varies a run.
"""

from __future__ import annotations

import os
import random
import string
import struct
import time
import uuid
import zlib
from collections import defaultdict
from pathlib import Path

import pytest
from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition

from support import Broker, create_topic

SEED = int(os.environ.get("FLINK_CRASH_SEED", "20250214"))
PARTITIONS = 3
CYCLES = 6
# Acknowledgements between the start of a cycle and its SIGKILL, and after the restart.
ACKS_BEFORE_KILL = (200, 1500)
ACKS_AFTER_RESTART = (100, 600)
PRODUCE_DEADLINE_S = 20
FLUSH_TIMEOUT_S = 20
READ_DEADLINE_S = 20
READ_STALL_S = 5  # A reader that gets nothing new for this long below the watermark gives up.
VIOLATIONS_SHOWN = 12

PAD_ALPHABET = string.ascii_letters + string.digits
PAD_LENGTHS = [0, 0, 8, 40, 200, 1000, 4000]

# Kafka v2 record batch framing (see src/storage/batch.rs and the Kafka protocol guide).
LOG_OVERHEAD = 12  # baseOffset (8) + batchLength (4): the part batchLength does not count.
BATCH_HEADER = 61  # Up to and including recordCount; the records follow.
MAGIC_AT = 16
LAST_OFFSET_DELTA_AT = 23


# ------------------------------------------------------------------------------------------------
# Self-checking records: the value carries its cycle, a unique sequence number, padding and a
# CRC-32 of all that; key and headers follow from the sequence number.


def make_value(cycle: int, seq: int, pad_length: int) -> bytes:
    shift = seq % len(PAD_ALPHABET)
    alphabet = PAD_ALPHABET[shift:] + PAD_ALPHABET[:shift]
    pad = (alphabet * (pad_length // len(alphabet) + 1))[:pad_length]
    body = f"{cycle}-{seq}-{pad}"
    return f"{body}|{zlib.crc32(body.encode()):08x}".encode()


def parse_value(value: bytes | None) -> int | None:
    """The sequence number of a well-formed value whose checksum holds; None otherwise."""
    if value is None:
        return None
    try:
        text = value.decode("ascii")
        body, bar, checksum = text.rpartition("|")
        if not bar or checksum != f"{zlib.crc32(body.encode()):08x}":
            return None
        cycle, seq, pad = body.split("-", 2)
        seq = int(seq)
        if value != make_value(int(cycle), seq, len(pad)):
            return None
        return seq
    except (UnicodeDecodeError, ValueError):
        return None


def key_for(seq: int) -> bytes | None:
    return f"key-{seq % 11}".encode() if seq % 3 == 0 else None


def headers_for(seq: int) -> list[tuple[str, bytes]] | None:
    if seq % 4 != 1:
        return None
    return [("seq", str(seq).encode()), ("origin", b"test_crash"), ("empty", b"")]


def record_problem(partition: int, offset: int, key, value, headers) -> str | None:
    """Why the record served at partition/offset is not one this test produced, or None."""
    seq = parse_value(value)
    if seq is None:
        return f"corrupt value at {partition}/{offset}: {value[:80]!r}"
    if key != key_for(seq):
        return f"{partition}/{offset} (seq {seq}): key {key!r}, produced {key_for(seq)!r}"
    expected = headers_for(seq)
    served = [(name, bytes(data) if data is not None else b"") for name, data in headers or []]
    if served != (expected or []):
        return f"{partition}/{offset} (seq {seq}): headers {served!r}, produced {expected!r}"
    return None


# ------------------------------------------------------------------------------------------------
# Producing and reading back.


class AckedProducer:
    """An idempotent acks=all producer that records (partition, offset) per value from delivery
    reports without an error, and nothing from failed ones."""

    def __init__(self, bootstrap: str, rng: random.Random, **config):
        self.rng = rng
        self.acked: dict[bytes, tuple[int, int]] = {}
        self.at: dict[tuple[int, int], bytes] = {}
        self.failed: list[tuple[bytes, str]] = []
        self.ack_conflicts: list[str] = []
        self.fatal: KafkaError | None = None
        self.seq = 0
        self.producer = Producer({
            "bootstrap.servers": bootstrap,
            "acks": "all",
            "enable.idempotence": True,
            "linger.ms": 5,
            "batch.size": 64 * 1024,
            "message.timeout.ms": 45_000,
            "request.timeout.ms": 5_000,
            "retry.backoff.ms": 50,
            "retry.backoff.max.ms": 500,
            "reconnect.backoff.ms": 50,
            "reconnect.backoff.max.ms": 500,
            "topic.metadata.refresh.interval.ms": 1_000,
            **config,
        })

    def on_delivery(self, error, message) -> None:
        value = message.value()
        if error is not None:
            self.failed.append((value, str(error)))
            if error.fatal():
                self.fatal = error
            return
        place = (message.partition(), message.offset())
        if value in self.acked:
            self.ack_conflicts.append(
                f"value seq {parse_value(value)} acknowledged twice: at "
                f"{self.acked[value]} and {place}")
        if place in self.at:
            self.ack_conflicts.append(
                f"{place[0]}/{place[1]} acknowledged for two values: seq "
                f"{parse_value(self.at[place])} and seq {parse_value(value)}")
        self.acked[value] = place
        self.at[place] = value

    def produce(self, topic: str, cycle: int, partition: int | None = None) -> None:
        seq = self.seq
        self.seq += 1
        value = make_value(cycle, seq, self.rng.choice(PAD_LENGTHS))
        extra = {} if partition is None else {"partition": partition}
        deadline = time.monotonic() + PRODUCE_DEADLINE_S
        while True:
            try:
                self.producer.produce(topic, value=value, key=key_for(seq),
                                      headers=headers_for(seq), on_delivery=self.on_delivery,
                                      **extra)
                return
            except BufferError:
                assert time.monotonic() < deadline, "the producer queue stayed full"
                self.producer.poll(0.05)

    def burst(self, topic: str, cycle: int) -> None:
        """A burst of 1-150 records, then a pause of random length: batches of varied size."""
        for _ in range(self.rng.randint(1, 150)):
            self.produce(topic, cycle)
            self.producer.poll(0)
        self.producer.poll(self.rng.choice([0, 0, 0.001, 0.005, 0.02]))
        assert self.fatal is None, f"fatal producer error: {self.fatal}"

    def produce_until_acked(self, topic: str, cycle: int, target: int) -> None:
        deadline = time.monotonic() + PRODUCE_DEADLINE_S
        while len(self.acked) < target:
            assert time.monotonic() < deadline, (
                f"only {len(self.acked)} of {target} acknowledged within {PRODUCE_DEADLINE_S}s; "
                f"failed deliveries: {self.failed[:3]}")
            self.burst(topic, cycle)

    def flush(self) -> None:
        remaining = self.producer.flush(FLUSH_TIMEOUT_S)
        assert remaining == 0, (
            f"{remaining} records without a delivery report after {FLUSH_TIMEOUT_S}s")
        assert self.fatal is None, f"fatal producer error: {self.fatal}"


def read_everything(bootstrap: str, topic: str, partitions: int):
    """Every record of every partition from offset 0 to the high watermark, with a fresh
    assign()-only consumer. Returns ({partition: [(offset, key, value, headers)]}, high
    watermarks, problems); bounded by READ_DEADLINE_S, and by READ_STALL_S without progress."""
    consumer = Consumer({
        "bootstrap.servers": bootstrap,
        "group.id": f"crash-reader-{uuid.uuid4()}",  # Required by the library; never joined.
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "enable.partition.eof": True,
        "auto.offset.reset": "error",
        "check.crcs": True,
    })
    records: dict[int, list] = defaultdict(list)
    problems: list[str] = []
    try:
        highs = {}
        for partition in range(partitions):
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, partition),
                                                       timeout=10, cached=False)
            if low != 0:
                problems.append(f"partition {partition}: log start offset {low}, not 0")
            highs[partition] = high
        consumer.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
        next_offset = {p: 0 for p in range(partitions)}
        at_eof: set[int] = set()
        deadline = time.monotonic() + READ_DEADLINE_S
        progress_at = time.monotonic()
        while any(next_offset[p] < highs[p] and p not in at_eof for p in highs):
            now = time.monotonic()
            if now > deadline or now - progress_at > READ_STALL_S:
                problems.append(
                    f"could not read to the high watermarks {highs}: reached {next_offset} "
                    f"after {now - progress_at:.1f}s without progress")
                break
            for message in consumer.consume(num_messages=1000, timeout=0.5):
                error = message.error()
                partition = message.partition()
                if error is not None:
                    if error.code() == KafkaError._PARTITION_EOF:
                        at_eof.add(partition)
                    else:
                        problems.append(f"consume error on partition {partition}: {error}")
                        if len(problems) > 100:
                            return records, highs, problems
                    continue
                at_eof.discard(partition)
                progress_at = time.monotonic()
                records[partition].append(
                    (message.offset(), message.key(), message.value(), message.headers()))
                next_offset[partition] = message.offset() + 1
    finally:
        consumer.close()
    return records, highs, problems


def check_served(records, highs, expected: dict[tuple[int, int], bytes]) -> list[str]:
    """Violations: gaps or repeats in offsets, corrupt records, values stored twice, records past
    the high watermark, and `expected` (partition, offset) -> value pairs not served as such."""
    violations = []
    served: dict[tuple[int, int], bytes] = {}
    where: dict[bytes, tuple[int, int]] = {}
    for partition in sorted(set(highs) | set(records)):
        partition_records = records.get(partition, [])
        offsets = [offset for offset, _, _, _ in partition_records]
        if offsets != list(range(len(offsets))):
            wrong = next(i for i, offset in enumerate(offsets) if offset != i)
            violations.append(
                f"partition {partition}: offsets not 0, 1, 2, ...: at index {wrong} comes "
                f"{offsets[wrong]} (around: {offsets[max(0, wrong - 2):wrong + 3]})")
        if len(offsets) != highs.get(partition):
            violations.append(f"partition {partition}: {len(offsets)} records served, high "
                              f"watermark {highs.get(partition)}")
        for offset, key, value, headers in partition_records:
            problem = record_problem(partition, offset, key, value, headers)
            if problem:
                violations.append(problem)
            served[(partition, offset)] = value
            if value is not None and value in where:
                violations.append(f"value seq {parse_value(value)} stored twice: at "
                                  f"{where[value]} and {(partition, offset)}")
            where.setdefault(value, (partition, offset))
    for (partition, offset), value in sorted(expected.items()):
        got = served.get((partition, offset))
        if got != value:
            what = "nothing" if got is None else f"seq {parse_value(got)} ({got[:40]!r})"
            violations.append(f"acknowledged {partition}/{offset} = seq {parse_value(value)}, "
                              f"served {what}")
    return violations


def assert_no_violations(violations: list[str], context: str) -> None:
    assert not violations, (
        f"{len(violations)} violations {context} (seed {SEED}); first "
        f"{min(len(violations), VIOLATIONS_SHOWN)}:\n" + "\n".join(violations[:VIOLATIONS_SHOWN]))


def assert_no_panic(broker: Broker) -> None:
    panics = [line for line in broker.log_text().splitlines() if "panicked" in line]
    assert not panics, f"the broker log shows a panic (seed {SEED}):\n" + "\n".join(panics[:5])


# ------------------------------------------------------------------------------------------------
# The SIGKILL cycles.


def test_sigkill_cycles_keep_every_acknowledged_record(broker):
    """CYCLES times: produce to a seeded number of acknowledgements, SIGKILL the broker with
    records in flight, restart, produce more, flush, then read everything back and check it."""
    topic = "crash"
    create_topic(broker, topic, partitions=PARTITIONS)
    rng = random.Random(SEED)
    print(f"\ntest_crash seed {SEED} (FLINK_CRASH_SEED={SEED} replays it)")
    producer = AckedProducer(broker.bootstrap, rng)
    started = time.monotonic()
    for cycle in range(CYCLES):
        kill_at = len(producer.acked) + rng.randint(*ACKS_BEFORE_KILL)
        producer.produce_until_acked(topic, cycle, kill_at)
        acked_at_kill, queued_at_kill = len(producer.acked), len(producer.producer)
        broker.kill()
        # A few more records while the broker is down: the producer queues and retries them.
        for _ in range(rng.randint(0, 3)):
            producer.burst(topic, cycle)
        restart_began = time.monotonic()
        broker.start()
        restart_s = time.monotonic() - restart_began
        producer.produce_until_acked(topic, cycle,
                                     len(producer.acked) + rng.randint(*ACKS_AFTER_RESTART))
        producer.flush()
        records, highs, problems = read_everything(broker.bootstrap, topic, PARTITIONS)
        print(f"cycle {cycle}: kill at {acked_at_kill} acked ({queued_at_kill} unreported), "
              f"restart {restart_s:.2f}s, {len(producer.acked)} acked, "
              f"{len(producer.failed)} failed, high watermarks {highs}")
        violations = problems + producer.ack_conflicts + check_served(records, highs,
                                                                      producer.at)
        assert_no_violations(violations, f"after restart {cycle + 1}")
        assert_no_panic(broker)
    assert len(producer.acked) >= CYCLES * ACKS_BEFORE_KILL[0]
    print(f"{CYCLES} SIGKILLs, {len(producer.acked)} records acknowledged and read back, "
          f"{len(producer.failed)} failed deliveries, {time.monotonic() - started:.1f}s")


# ------------------------------------------------------------------------------------------------
# A damaged tail on disk.


def parse_batches(data: bytes) -> list[tuple[int, int, int, int]]:
    """(position, base offset, size, last offset) of each v2 batch from the start of a segment.
    Stops at a length too small for a batch (zero padding included), a batch running past the
    end, or a magic other than 2: the bytes of a segment file past its data need not be zero."""
    batches = []
    position = 0
    while position + BATCH_HEADER <= len(data):
        base_offset, length = struct.unpack_from(">qi", data, position)
        size = LOG_OVERHEAD + length
        if length < BATCH_HEADER - LOG_OVERHEAD or position + size > len(data):
            break
        if data[position + MAGIC_AT] != 2:
            break
        (last_delta,) = struct.unpack_from(">i", data, position + LAST_OFFSET_DELTA_AT)
        batches.append((position, base_offset, size, base_offset + last_delta))
        position += size
    return batches


def active_segment(broker: Broker, topic: str, partition: int) -> Path:
    segments = sorted((broker.data_dir / f"{topic}-{partition}").glob("*.log"),
                      key=lambda path: int(path.stem))
    assert segments, f"no .log segment in {broker.data_dir / f'{topic}-{partition}'}"
    return segments[-1]


@pytest.mark.parametrize("damage", ["garbage", "torn", "flip"])
def test_damaged_tail_is_truncated(broker, damage):
    """After a SIGKILL, damage the tail of partition 1's active segment; the restarted broker
    logs a truncation, serves every acknowledged record before the damaged batch intact and
    nothing corrupt, and appends new records right after the cut."""
    topic, partitions, damaged = "crash-damage", 2, 1
    create_topic(broker, topic, partitions=partitions)
    rng = random.Random(f"{SEED}-{damage}")
    print(f"\ntest_crash seed {SEED}, damage {damage}")
    producer = AckedProducer(broker.bootstrap, rng)
    # One flush per group: each group becomes (at least) one batch per partition.
    for group in range(8):
        for partition in range(partitions):
            for _ in range(rng.randint(5, 40)):
                producer.produce(topic, group, partition=partition)
        producer.flush()
    assert not producer.failed, f"delivery failed: {producer.failed[:3]}"
    broker.kill()

    segment = active_segment(broker, topic, damaged)
    data = bytearray(segment.read_bytes())
    batches = parse_batches(bytes(data))
    acked_here = sorted(offset for partition, offset in producer.at if partition == damaged)
    assert batches and batches[-1][3] == acked_here[-1], (
        f"{segment}: batches {batches[-3:]} do not end at the last acknowledged offset "
        f"{acked_here[-1]} ({len(data)} bytes)")
    position, base_offset, size, last_offset = batches[-1]
    data_end = position + size
    if damage == "garbage":
        noise = rng.randbytes(1500)
        data[data_end:data_end + len(noise)] = noise
        cut = last_offset + 1
    elif damage == "torn":
        # The first half of a next batch, as if the process died in the middle of its write.
        torn = bytearray(data[position:position + size // 2])
        torn[0:8] = struct.pack(">q", last_offset + 1)
        data[data_end:data_end + len(torn)] = torn
        cut = last_offset + 1
    else:
        records_start = position + BATCH_HEADER
        flip_at = records_start + (data_end - records_start) // 2
        data[flip_at] ^= 0xFF
        cut = base_offset
    segment.write_bytes(bytes(data))
    print(f"{damage}: {segment.name} has {len(batches)} batches, {data_end} data bytes "
          f"({len(data)} in the file); last batch {base_offset}..{last_offset} at byte "
          f"{position}; records from {cut} on may go")

    broker.start()
    truncations = [line for line in broker.log_text(since_last_start=True).splitlines()
                   if "truncat" in line.lower()]
    assert any(f"{topic}-{damaged}" in line for line in truncations), (
        f"no truncation of {topic}-{damaged} logged after the {damage} damage; truncation "
        f"lines: {truncations}")
    print("\n".join(truncations))

    survivors = {place: value for place, value in producer.at.items()
                 if place[0] != damaged or place[1] < cut}
    records, highs, problems = read_everything(broker.bootstrap, topic, partitions)
    violations = problems + check_served(records, highs, survivors)
    if highs[damaged] != cut:
        violations.append(f"partition {damaged}: high watermark {highs[damaged]} after the "
                          f"{damage} damage, expected {cut}")
    assert_no_violations(violations, f"after the {damage} damage")

    # The partition takes new records right after the cut, and they survive another SIGKILL.
    # They come from a new producer: when the damage destroyed acknowledged batches, the old
    # idempotent producer's next sequence no longer follows what the log holds, and the broker
    # rightly refuses it with OUT_OF_ORDER_SEQUENCE_NUMBER, as Kafka does.
    first_new = producer.seq
    newcomer = AckedProducer(broker.bootstrap, rng)
    newcomer.seq = first_new
    for _ in range(20):
        newcomer.produce(topic, 100, partition=damaged)
    newcomer.flush()
    assert not newcomer.failed, f"delivery failed: {newcomer.failed[:3]}"
    fresh = {place: value for value, place in newcomer.acked.items()
             if parse_value(value) >= first_new}
    assert sorted(fresh) == [(damaged, offset) for offset in range(cut, cut + 20)], (
        f"new records on partition {damaged} got {sorted(fresh)}, expected offsets from {cut}")
    broker.kill()
    broker.start()
    survivors.update(fresh)
    records, highs, problems = read_everything(broker.bootstrap, topic, partitions)
    assert_no_violations(problems + check_served(records, highs, survivors),
                         f"after the {damage} damage, new records and another SIGKILL")
    assert_no_panic(broker)
