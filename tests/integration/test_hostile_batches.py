"""A hostile client's record batches are refused one partition at a time, as Kafka's LogValidator
refuses them, and leave nothing behind.

Every case sends ONE Produce request (v8 unless said otherwise) holding one hand-built v2 record
batch to a fresh 1-partition topic. The batch's CRC-32C is valid (computed after the damage), so
only a broker that looks inside the batch can tell it is wrong: a lastOffsetDelta or recordCount
that disagrees with the records, offsets out of order, a record whose varints or lengths lie,
trailing bytes, a compressed payload cut in half, a decompression bomb, timestamps outside the
topic's limits, a control batch from a client, an idempotent batch without a sequence, a batch
over max.message.bytes. For each the test proves:

- the partition's answer carries the expected Kafka error code and a non-empty error message;
- the same connection stays open and answers ApiVersions, ListOffsets and an honest Produce;
- nothing was written: the log end offset is unchanged, and the honest record lands at that
  offset (a consumer reading the partition from offset 0 gets only the honest records);
- a real client (confluent-kafka Producer and Consumer) then produces and consumes there;
- the broker is alive and its log shows no panic; a decompression bomb does not raise the
  broker's peak resident memory by more than 100 MiB.

One broker serves the whole module; a case that kills it fails, and the next case starts it again.
"""

from __future__ import annotations

import functools
import os
import socket
import struct
import subprocess
import time
import zlib
from dataclasses import dataclass, field
from typing import Callable

import kafka.errors
import pytest
import zstandard
from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition
from kafka.record.util import calc_crc32c

import support
from kafka_wire import WireConnection, record_batch
from support import HOST, Broker, describe_run, run_script

# Kafka error codes.
NONE = 0
CORRUPT_MESSAGE = 2
MESSAGE_TOO_LARGE = 10
INVALID_TIMESTAMP = 32
INVALID_RECORD = 87

PRODUCE_VERSION = 8  # The first whose partition answer carries an error message.
CLIENT_TIMEOUT_S = 15
MIB = 1024 * 1024
BOMB_BYTES = 200 * MIB  # What the decompression bombs inflate to.
RSS_GROWTH_MAX = 100 * MIB
MINUTE_MS = 60_000
HOUR_MS = 60 * MINUTE_MS
DAY_MS = 24 * HOUR_MS


# ------------------------------------------------------------------------------------------------
# A v2 record batch builder whose every field can be set, or broken.


def varint(value: int) -> bytes:
    """Kafka's zigzag varint (and varlong): small magnitudes, negative or not, take few bytes."""
    zigzag = ((value << 1) ^ (value >> 63)) & (2**64 - 1)
    out = bytearray()
    while zigzag > 0x7F:
        out.append(zigzag & 0x7F | 0x80)
        zigzag >>= 7
    out.append(zigzag)
    return bytes(out)


def now_ms() -> int:
    return int(time.time() * 1000)


@dataclass
class Record:
    """One record. The fields after `headers` break its encoding when set."""

    value: bytes | None = b"value"
    key: bytes | None = None
    timestamp_delta: int = 0
    offset_delta: int | None = None  # None: the record's index in its batch.
    headers: list[tuple[bytes, bytes | None]] = field(default_factory=list)
    length: int | None = None  # The length varint; None: the body's true length.
    length_bytes: bytes | None = None  # Raw bytes sent in place of the length varint.
    key_length: int | None = None  # None: len(key), or -1 for a null key.
    header_count: int | None = None  # None: len(headers).

    def encode(self, index: int) -> bytes:
        body = bytearray(b"\x00")  # Record attributes (unused).
        body += varint(self.timestamp_delta)
        body += varint(index if self.offset_delta is None else self.offset_delta)
        key_length = len(self.key) if self.key is not None else -1
        body += varint(key_length if self.key_length is None else self.key_length)
        body += self.key or b""
        body += varint(len(self.value) if self.value is not None else -1) + (self.value or b"")
        body += varint(len(self.headers) if self.header_count is None else self.header_count)
        for name, data in self.headers:
            body += varint(len(name)) + name
            body += varint(len(data) if data is not None else -1) + (data or b"")
        if self.length_bytes is not None:
            return self.length_bytes + bytes(body)
        return varint(len(body) if self.length is None else self.length) + bytes(body)


GZIP, ZSTD = 1, 4  # Compression codecs (attributes bits 0-2).
CONTROL_ATTRIBUTE = 0x20


def compress(codec: int, data: bytes) -> bytes:
    if codec == GZIP:
        compressor = zlib.compressobj(9, zlib.DEFLATED, 31)  # wbits 31: the gzip format.
        return compressor.compress(data) + compressor.flush()
    if codec == ZSTD:
        return zstandard.ZstdCompressor().compress(data)
    assert codec == 0, f"codec {codec}"
    return data


@dataclass
class Batch:
    """One magic-2 record batch. Unset header fields follow from the records, as an honest
    client would write them; set ones are sent as they are. The CRC-32C is always right."""

    records: list[Record] = field(default_factory=lambda: [Record()])
    codec: int = 0
    control: bool = False
    last_offset_delta: int | None = None  # None: len(records) - 1.
    record_count: int | None = None  # None: len(records).
    base_timestamp: int | None = None  # None: now.
    producer_id: int = -1
    producer_epoch: int = -1
    base_sequence: int = -1
    trailing: bytes = b""  # After the last record (compressed with the records, if they are).
    cut_payload_in_half: bool = False  # The (compressed) records, cut after half their bytes.
    payload: bytes | None = None  # The bytes after recordCount, as sent; overrides the above.

    def encode(self) -> bytes:
        base_timestamp = now_ms() if self.base_timestamp is None else self.base_timestamp
        max_timestamp = base_timestamp + max([r.timestamp_delta for r in self.records] or [0])
        payload = self.payload
        if payload is None:
            raw = b"".join(r.encode(i) for i, r in enumerate(self.records)) + self.trailing
            payload = compress(self.codec, raw)
            if self.cut_payload_in_half:
                payload = payload[:len(payload) // 2]
        attributes = self.codec | (CONTROL_ATTRIBUTE if self.control else 0)
        last_offset_delta = (len(self.records) - 1 if self.last_offset_delta is None
                             else self.last_offset_delta)
        record_count = len(self.records) if self.record_count is None else self.record_count
        # From attributes on: the part the CRC-32C covers.
        checked = struct.pack(
            ">hiqqqhii", attributes, last_offset_delta, base_timestamp, max_timestamp,
            self.producer_id, self.producer_epoch, self.base_sequence, record_count,
        ) + payload
        partition_leader_epoch, magic = -1, 2
        after_length = struct.pack(">ibI", partition_leader_epoch, magic,
                                   calc_crc32c(checked)) + checked
        base_offset = 0
        return struct.pack(">qi", base_offset, len(after_length)) + after_length


def two_records(**batch_fields) -> Batch:
    return Batch(records=[Record(b"first"), Record(b"second")], **batch_fields)


@functools.cache
def bomb_payload(codec: int) -> bytes:
    """One record whose value is BOMB_BYTES zeros, compressed as a stream (never held whole):
    about 200 KiB with gzip, a few KiB with zstd (whose frame header states the full size)."""
    value_start = b"\x00" + varint(0) + varint(0) + varint(-1) + varint(BOMB_BYTES)
    record_end = varint(0)  # No headers.
    # attributes, timestampDelta 0, offsetDelta 0, null key, the value's length; then the value.
    record_start = varint(len(value_start) + BOMB_BYTES + len(record_end)) + value_start
    chunk = bytes(MIB)
    if codec == GZIP:
        compressor = zlib.compressobj(9, zlib.DEFLATED, 31)
    else:
        size = len(record_start) + BOMB_BYTES + len(record_end)
        compressor = zstandard.ZstdCompressor().compressobj(size=size)
    parts = [compressor.compress(record_start)]
    parts += [compressor.compress(chunk) for _ in range(BOMB_BYTES // MIB)]
    parts += [compressor.compress(record_end), compressor.flush()]
    return b"".join(parts)


# ------------------------------------------------------------------------------------------------
# The matrix.


@dataclass
class Case:
    id: str
    build: Callable[[], Batch]
    expected: set[int]
    topic_configs: dict[str, str] = field(default_factory=dict)
    sends: int = 1  # How often the same batch goes to the same partition.
    watch_memory: bool = False
    # The record Kafka names in record_errors (its index in the batch), for record-level faults.
    record_at_fault: int | None = None


CASES = [
    # The known crash: offsets reserved up to 2^31 for one record; the second append overflows.
    Case("last_offset_delta_0x7ffffff0", lambda: Batch(last_offset_delta=0x7FFFFFF0),
         {INVALID_RECORD}, sends=2),
    Case("last_offset_delta_negative", lambda: Batch(last_offset_delta=-3),
         {INVALID_RECORD}),
    Case("record_count_2_pow_30", lambda: two_records(record_count=2**30),
         {INVALID_RECORD}),
    Case("record_count_2_pow_30_offsets_agree",
         lambda: two_records(record_count=2**30, last_offset_delta=2**30 - 1), {INVALID_RECORD}),
    Case("record_count_3_of_2", lambda: two_records(record_count=3, last_offset_delta=2),
         {INVALID_RECORD}),
    Case("record_count_1_of_2", lambda: two_records(record_count=1, last_offset_delta=0),
         {INVALID_RECORD}),
    Case("record_count_0_of_1", lambda: Batch(record_count=0, last_offset_delta=0),
         {INVALID_RECORD}),
    Case("record_count_0_no_records", lambda: Batch(records=[], record_count=0,
                                                    last_offset_delta=0), {INVALID_RECORD}),
    Case("offset_deltas_0_5", lambda: Batch(records=[Record(b"a", offset_delta=0),
                                                     Record(b"b", offset_delta=5)]),
         {INVALID_RECORD}, record_at_fault=1),
    Case("offset_deltas_1_0", lambda: Batch(records=[Record(b"a", offset_delta=1),
                                                     Record(b"b", offset_delta=0)]),
         {INVALID_RECORD}),
    Case("record_length_varint_11_bytes",
         lambda: Batch(records=[Record(length_bytes=b"\xff" * 10 + b"\x01")]), {INVALID_RECORD}),
    Case("record_length_past_batch_end",
         lambda: Batch(records=[Record(length=len(Record().encode(0)) + 100)]),
         {INVALID_RECORD}),
    Case("key_length_minus_2", lambda: Batch(records=[Record(key_length=-2)]), {INVALID_RECORD}),
    Case("key_length_minus_1000", lambda: Batch(records=[Record(key_length=-1000)]),
         {INVALID_RECORD}),
    Case("header_count_negative", lambda: Batch(records=[Record(header_count=-1)]),
         {INVALID_RECORD}),
    Case("trailing_bytes_after_last_record", lambda: two_records(trailing=b"\x00\x01garbage"),
         {INVALID_RECORD}),
    Case("gzip_cut_in_half",
         lambda: Batch(records=[Record(os.urandom(2000))], codec=GZIP, cut_payload_in_half=True),
         {INVALID_RECORD}),
    Case("zstd_cut_in_half",
         lambda: Batch(records=[Record(os.urandom(2000))], codec=ZSTD, cut_payload_in_half=True),
         {INVALID_RECORD}),
    Case("gzip_bomb_200_mib", lambda: Batch(codec=GZIP, payload=bomb_payload(GZIP)),
         {INVALID_RECORD, MESSAGE_TOO_LARGE}, watch_memory=True),
    Case("zstd_bomb_200_mib", lambda: Batch(codec=ZSTD, payload=bomb_payload(ZSTD)),
         {INVALID_RECORD, MESSAGE_TOO_LARGE}, watch_memory=True),
    Case("timestamp_hour_ahead_over_after_max",
         lambda: Batch(base_timestamp=now_ms() + HOUR_MS), {INVALID_TIMESTAMP},
         topic_configs={"message.timestamp.after.max.ms": str(MINUTE_MS)}, record_at_fault=0),
    Case("timestamp_day_old_over_before_max",
         lambda: Batch(base_timestamp=now_ms() - DAY_MS), {INVALID_TIMESTAMP},
         topic_configs={"message.timestamp.before.max.ms": str(MINUTE_MS)}),
    Case("control_batch_from_client", lambda: Batch(control=True), {INVALID_RECORD}),
    Case("idempotent_without_sequence",
         lambda: Batch(producer_id=1000, producer_epoch=0, base_sequence=-1), {INVALID_RECORD}),
    Case("batch_over_max_message_bytes",
         lambda: Batch(records=[Record(bytes(MIB + 1000))]), {MESSAGE_TOO_LARGE}),
]


# ------------------------------------------------------------------------------------------------
# One broker for the module, honest clients on it, and the checks every case shares.


@pytest.fixture(scope="module")
def module_broker(tmp_path_factory):
    broker = Broker(tmp_path_factory.mktemp("hostile-batches"))
    broker.start()
    yield broker
    broker.kill()


@pytest.fixture
def hostile_broker(module_broker) -> Broker:
    """The module's broker, started again if an earlier case killed it (that case failed)."""
    if not module_broker.is_running():
        module_broker.start()
    if module_broker not in support.started_brokers:
        support.started_brokers.append(module_broker)  # Its log tail goes into failure reports.
    return module_broker


class HonestClients:
    """A long-lived confluent-kafka producer and consumer: what real clients see afterwards."""

    def __init__(self, bootstrap: str):
        self.producer = Producer({"bootstrap.servers": bootstrap, "acks": "all",
                                  "linger.ms": 0, "message.timeout.ms": CLIENT_TIMEOUT_S * 1000})
        self.consumer = Consumer({
            "bootstrap.servers": bootstrap,
            "group.id": "hostile-batches-unused",  # Required by the library; never joined.
            "fetch.wait.max.ms": 50,
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "enable.partition.eof": True,
            "auto.offset.reset": "error",
            "check.crcs": True,
        })

    def produce(self, topic: str, value: bytes) -> int:
        """Produce one record to partition 0 and return its offset from the delivery report."""
        outcome = []
        self.producer.produce(topic, value=value, partition=0,
                              on_delivery=lambda error, message: outcome.append((error, message)))
        assert self.producer.flush(CLIENT_TIMEOUT_S) == 0, f"{value!r} not delivered in time"
        [(error, message)] = outcome
        assert error is None, f"the honest producer's {value!r} failed: {error}"
        return message.offset()

    def read(self, topic: str, count: int) -> list[tuple[int, bytes]]:
        """(offset, value) of partition 0 from offset 0 on, until `count` records and the end."""
        self.consumer.assign([TopicPartition(topic, 0, 0)])
        read: list[tuple[int, bytes]] = []
        at_end = False
        deadline = time.monotonic() + CLIENT_TIMEOUT_S
        while len(read) < count or not at_end:
            assert time.monotonic() < deadline, (
                f"the honest consumer read {read} of {count} records from {topic}")
            for message in self.consumer.consume(num_messages=100, timeout=0.2):
                error = message.error()
                if error is not None:
                    assert error.code() == KafkaError._PARTITION_EOF, (
                        f"the honest consumer got an error on {topic}: {error}")
                    at_end = True
                    continue
                at_end = False
                read.append((message.offset(), message.value()))
        return read

    def close(self) -> None:
        self.producer.flush(5)
        self.consumer.close()


@pytest.fixture(scope="module")
def honest(module_broker):
    clients = HonestClients(module_broker.bootstrap)
    yield clients
    clients.close()


def new_topic(broker: Broker, name: str, configs: dict[str, str] | None = None) -> str:
    """A fresh 1-partition topic, with `configs` set at creation (flink-topics.sh --config)."""
    name = f"{name}-{time.monotonic_ns()}"
    args = ["--bootstrap-server", broker.bootstrap, "--create", "--topic", name,
            "--partitions", "1"]
    for key, value in (configs or {}).items():
        args += ["--config", f"{key}={value}"]
    result = run_script("flink-topics.sh", *args)
    assert f"Created topic {name}." in result.stdout, describe_run(result)
    return name


def error_name(code: int) -> str:
    return f"{code} ({kafka.errors.for_code(code).__name__})"


def log_end_offset(connection: WireConnection, topic: str) -> int:
    [(error_code, offset)] = connection.list_offsets(topic, [0]).values()
    assert error_code == NONE, f"ListOffsets on {topic}: error {error_name(error_code)}"
    return offset


def produce_answer(broker: Broker, connection: WireConnection, topic: str, batch: bytes,
                   version: int):
    """The partition's answer to one Produce of `batch`; fails (not raises) if the broker closes
    the connection or dies instead of answering."""
    try:
        return connection.produce_answers({topic: {0: batch}}, version=version)[(topic, 0)]
    except (ConnectionError, socket.timeout, OSError) as error:
        try:  # A dying broker may still be on its way out: say which it was.
            broker.process.wait(timeout=1)
        except subprocess.TimeoutExpired:
            pass
        if not broker.is_running():
            pytest.fail(f"the broker died (exit code {broker.process.returncode}) on this "
                        f"batch: {error!r}")
        pytest.fail(f"the broker did not answer the batch on this connection: {error!r}")


def memory_kib(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM (peak resident size) of a process, in KiB."""
    status = open(f"/proc/{pid}/status").read().splitlines()
    return {line.split(":")[0]: int(line.split()[1]) for line in status
            if line.startswith(("VmRSS:", "VmHWM:"))}


def reset_peak_memory(pid: int) -> None:
    """Set VmHWM back to the current VmRSS (clear_refs 5, Linux 4.0+), so that the peak after
    one request is that request's own."""
    with open(f"/proc/{pid}/clear_refs", "w") as clear_refs:
        clear_refs.write("5")


def assert_alive_without_panic(broker: Broker, log_from: int) -> None:
    assert broker.is_running(), f"the broker exited with {broker.process.returncode}"
    panics = [line for line in broker.log_text()[log_from:].splitlines() if "panicked" in line]
    assert not panics, "the broker log shows a panic:\n" + "\n".join(panics[:5])


def assert_partition_holds_only_honest_records(broker: Broker, honest: HonestClients,
                                               connection: WireConnection, topic: str,
                                               end_before: int) -> None:
    """An honest Produce on the same connection lands at `end_before`; then the confluent-kafka
    producer's record right after it; the consumer reads exactly those from offset 0."""
    wire = produce_answer(broker, connection, topic, record_batch([(None, b"honest-wire")]),
                          PRODUCE_VERSION)
    assert (wire.error_code, wire.base_offset) == (NONE, end_before), (
        f"an honest batch on the same connection got error {error_name(wire.error_code)} at "
        f"offset {wire.base_offset}, expected offset {end_before}: {wire.error_message!r}")
    assert honest.produce(topic, b"honest-client") == end_before + 1
    assert honest.read(topic, 2) == [(0, b"honest-wire"), (1, b"honest-client")]


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.id)
def test_hostile_batch_is_refused(hostile_broker, honest, case):
    """The crafted batch gets the expected error code with a message, the connection stays
    usable, nothing is written, and honest clients carry on."""
    broker = hostile_broker
    topic = new_topic(broker, case.id, case.topic_configs)
    log_from = len(broker.log_text())
    batch = case.build().encode()
    with WireConnection(HOST, broker.port) as connection:
        end_before = log_end_offset(connection, topic)
        answers = []
        for send in range(case.sends):  # Every send, even after a wrong answer: the second
            if case.watch_memory:       # of a pair is the one that used to kill the broker.
                reset_peak_memory(broker.process.pid)
                before = memory_kib(broker.process.pid)
            answers.append(produce_answer(broker, connection, topic, batch, PRODUCE_VERSION))
            if case.watch_memory:
                after = memory_kib(broker.process.pid)
                grown = after["VmHWM"] - before["VmRSS"]
                assert grown * 1024 <= RSS_GROWTH_MAX, (
                    f"a {len(batch)}-byte batch that inflates to {BOMB_BYTES // MIB} MiB raised "
                    f"the broker's peak resident memory by {grown // 1024} MiB "
                    f"({before} -> {after} KiB)")
        for send, answer in enumerate(answers, 1):
            assert answer.error_code in case.expected, (
                f"send {send} of {case.sends}: error {error_name(answer.error_code)} (base "
                f"offset {answer.base_offset}, message {answer.error_message!r}), expected "
                f"{' or '.join(map(error_name, sorted(case.expected)))}")
            assert answer.error_message, (
                f"send {send}: error {error_name(answer.error_code)} without an error message")
            if case.record_at_fault is not None:
                named = [(error.batch_index, error.batch_index_error_message)
                         for error in answer.record_errors]
                assert [index for index, _ in named] == [case.record_at_fault], named
                assert named[0][1], named
        assert connection.api_versions(), "ApiVersions on the same connection returned nothing"
        assert log_end_offset(connection, topic) == end_before, "the refused batch was written"
        assert_partition_holds_only_honest_records(broker, honest, connection, topic, end_before)
    assert_alive_without_panic(broker, log_from)


TIMESTAMP_CASES = {
    "day_old_default_limits": ({}, -DAY_MS),
    "now_with_after_max": ({"message.timestamp.after.max.ms": str(MINUTE_MS)}, 0),
    "now_with_before_max": ({"message.timestamp.before.max.ms": str(MINUTE_MS)}, 0),
}


@pytest.mark.parametrize("name", TIMESTAMP_CASES)
def test_timestamp_within_limits_is_accepted(hostile_broker, honest, name):
    """The other side of the timestamp cases: with default limits a day-old timestamp is
    accepted, and a timestamp of now passes a topic's 60 s limits; the consumer
    reads the record back with its timestamp."""
    broker = hostile_broker
    configs, shift = TIMESTAMP_CASES[name]
    topic = new_topic(broker, name, configs)
    log_from = len(broker.log_text())
    timestamp = now_ms() + shift
    with WireConnection(HOST, broker.port) as connection:
        answer = produce_answer(broker, connection, topic,
                                Batch(base_timestamp=timestamp).encode(), PRODUCE_VERSION)
        assert (answer.error_code, answer.base_offset) == (NONE, 0), (
            f"error {error_name(answer.error_code)} at {answer.base_offset}: "
            f"{answer.error_message!r}")
        assert log_end_offset(connection, topic) == 1
    honest.consumer.assign([TopicPartition(topic, 0, 0)])
    deadline = time.monotonic() + CLIENT_TIMEOUT_S
    while True:
        assert time.monotonic() < deadline, "the record was not read back"
        message = honest.consumer.poll(0.2)
        if message is None:
            continue
        if message.error() is None:
            break
        assert message.error().code() == KafkaError._PARTITION_EOF, message.error()
    assert (message.offset(), message.value(), message.timestamp()[1]) == (0, b"value", timestamp)
    assert_alive_without_panic(broker, log_from)


OLD_VERSION_CASES = [case for case in CASES
                     if case.id in ("last_offset_delta_0x7ffffff0", "record_length_past_batch_end")]


@pytest.mark.parametrize("version", [3, 5, 7])
@pytest.mark.parametrize("case", OLD_VERSION_CASES, ids=lambda case: case.id)
def test_older_produce_versions_get_the_code(hostile_broker, honest, case, version):
    """Produce v3..v7 have no error message field; the error code alone must say it, and
    nothing is written."""
    broker = hostile_broker
    topic = new_topic(broker, f"{case.id}-v{version}", case.topic_configs)
    log_from = len(broker.log_text())
    with WireConnection(HOST, broker.port) as connection:
        batch = case.build().encode()
        answers = [produce_answer(broker, connection, topic, batch, version)
                   for _ in range(case.sends)]
        for send, answer in enumerate(answers, 1):
            assert answer.error_code in case.expected, (
                f"Produce v{version}, send {send}: error {error_name(answer.error_code)} (base "
                f"offset {answer.base_offset}), expected "
                f"{' or '.join(map(error_name, sorted(case.expected)))}")
        assert log_end_offset(connection, topic) == 0, "the refused batch was written"
        assert_partition_holds_only_honest_records(broker, honest, connection, topic, 0)
    assert_alive_without_panic(broker, log_from)
