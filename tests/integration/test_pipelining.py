"""Pipelined connections: many requests in flight on one socket are answered in request order,
their appends happen in request order, a client that never reads is held back by the
per-connection bounds (queued.max.requests, queued.max.request.bytes), and the connection
limits (max.connections, max.connections.per.ip) close connections over them."""

from __future__ import annotations

import random
import socket
import struct
import threading
import time
from pathlib import Path

from kafka.protocol.consumer import FetchRequest, FetchResponse
from kafka.protocol.metadata import (ApiVersionsRequest, ApiVersionsResponse, MetadataRequest,
                                     MetadataResponse)
from kafka.protocol.producer import ProduceRequest, ProduceResponse

from clients import confluent_consume, confluent_produce
from kafka_wire import (FETCH_VERSION_MAX, FETCH_VERSION_MIN, PRODUCE_VERSION_MAX,
                        PRODUCE_VERSION_MIN, WireConnection, record_batch)
from support import HOST, create_topic

MIB = 1 << 20
# How long a sender must have made no progress before the broker is taken to have stopped
# reading its socket. Only a point to look at the broker: every assertion after it is a bound.
STALL_S = 3
SEND_TIMEOUT_S = 30


def framed(request, version: int, correlation_id: int) -> bytes:
    request.API_VERSION = version
    request.with_header(correlation_id=correlation_id, client_id="flink-pipelining")
    return bytes(request.encode(header=True, framed=True))


def produce_request(topic: str, batches: dict[int, bytes], acks: int) -> ProduceRequest:
    topic_type = ProduceRequest.TopicProduceData
    partition_type = topic_type.PartitionProduceData
    return ProduceRequest(
        transactional_id=None, acks=acks, timeout_ms=10_000,
        topic_data=[topic_type(name=topic, partition_data=[
            partition_type(index=index, records=records) for index, records in batches.items()
        ])],
    )


def fetch_request(topic: str, partition: int, offset: int, max_wait_ms: int,
                  max_bytes: int = MIB) -> FetchRequest:
    topic_type = FetchRequest.FetchTopic
    partition_type = topic_type.FetchPartition
    return FetchRequest(
        replica_id=-1, max_wait_ms=max_wait_ms, min_bytes=1, max_bytes=max_bytes,
        isolation_level=0, session_id=0, session_epoch=-1,
        topics=[topic_type(topic=topic, partitions=[
            partition_type(partition=partition, fetch_offset=offset, log_start_offset=-1,
                           partition_max_bytes=max_bytes)
        ])],
        forgotten_topics_data=[],
    )


def read_back(connection: WireConnection, topic: str, partition: int) -> list[bytes]:
    """Every record value of the partition, in offset order."""
    values: list[bytes] = []
    while True:
        error, high_watermark, records = connection.fetch(topic, {partition: len(values)})[partition]
        assert error == 0, f"fetch of {topic}-{partition} at {len(values)}: error {error}"
        values += [value for offset, _, value in records if offset >= len(values)]
        if len(values) >= high_watermark:
            return values


def test_pipelined_requests_are_answered_in_order(broker):
    """200 requests written back to back on one socket before any is read (produce acks=1 and
    acks=0 to one or two partitions, Metadata, ApiVersions, fetches that wait 300 ms): every
    response arrives, in request order, none for acks=0; each acks=1 produce got exactly the
    offsets of the records sent before it (appends in request order), and read back every
    partition holds its records once, in order."""
    topic = "pipelined"
    partitions = 4  # 0-2 written; 3 stays empty, so fetches of it wait.
    create_topic(broker, topic, partitions)
    rng = random.Random(7)
    with WireConnection(HOST, broker.port) as connection:
        produce_version = connection.version_for(0, PRODUCE_VERSION_MIN, PRODUCE_VERSION_MAX)
        fetch_version = connection.version_for(1, FETCH_VERSION_MIN, FETCH_VERSION_MAX)
        metadata_version = connection.version_for(3, 1, 12)
        sent: dict[int, list[bytes]] = {p: [] for p in range(partitions)}
        expected = []  # (correlation id, response class, version, produce's expected offsets)
        frames = []
        for index in range(200):
            correlation_id = 1000 + index
            kind = rng.choice(["produce", "produce", "produce-acks0", "metadata", "versions",
                               "fetch-wait", "fetch"])
            if kind.startswith("produce"):
                acks = 0 if kind == "produce-acks0" else 1
                chosen = rng.sample(range(3), rng.choice([1, 2]))
                batches, offsets = {}, {}
                for partition in chosen:
                    values = [f"p{partition}-{len(sent[partition]) + n:05d}".encode()
                              for n in range(rng.randint(1, 3))]
                    offsets[partition] = len(sent[partition])
                    sent[partition] += values
                    batches[partition] = record_batch([(None, value) for value in values])
                frames.append(framed(produce_request(topic, batches, acks), produce_version,
                                     correlation_id))
                if acks:
                    expected.append((correlation_id, ProduceResponse, produce_version, offsets))
            elif kind == "metadata":
                request = MetadataRequest(topics=[MetadataRequest.MetadataRequestTopic(name=topic)],
                                          allow_auto_topic_creation=False)
                frames.append(framed(request, metadata_version, correlation_id))
                expected.append((correlation_id, MetadataResponse, metadata_version, None))
            elif kind == "versions":
                frames.append(framed(ApiVersionsRequest(), 0, correlation_id))
                expected.append((correlation_id, ApiVersionsResponse, 0, None))
            else:
                partition, wait = (3, 300) if kind == "fetch-wait" else (0, 0)
                frames.append(framed(fetch_request(topic, partition, 0, wait), fetch_version,
                                     correlation_id))
                expected.append((correlation_id, FetchResponse, fetch_version, None))
        connection.sock.sendall(b"".join(frames))

        for correlation_id, response_class, version, offsets in expected:
            response = response_class.decode(connection.receive_frame(), version=version,
                                             header=True, framed=True)
            assert response.header.correlation_id == correlation_id, (
                f"response {response.header.correlation_id} came where {correlation_id} was due")
            if offsets is not None:
                answers = {p.index: (p.error_code, p.base_offset)
                           for t in response.responses for p in t.partition_responses}
                assert answers == {p: (0, offset) for p, offset in offsets.items()}, (
                    f"request {correlation_id}: {answers}, expected offsets {offsets}")
        # Nothing more is due (acks=0 has no response): a last request is answered next.
        assert connection.api_versions()

        for partition in range(partitions):
            assert read_back(connection, topic, partition) == sent[partition]


def test_idempotent_producer_with_five_in_flight(broker):
    """An idempotent confluent-kafka producer keeping five requests in flight on its connection
    (linger.ms=0, so thousands of tiny requests) gets no error, and every record is stored once
    and in order."""
    topic = "idempotent-pipelined"
    create_topic(broker, topic)
    messages = [(None, f"{index:06d}") for index in range(4000)]
    reports = confluent_produce(broker.bootstrap, topic, messages, **{
        "enable.idempotence": True, "max.in.flight.requests.per.connection": 5,
        "linger.ms": 0, "acks": "all"})
    assert [offset for _, offset in reports] == list(range(len(messages)))
    consumed = confluent_consume(broker.bootstrap, topic, 1, len(messages))
    assert [value for _, _, _, value in consumed] == [value for _, value in messages]


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmRSS for process {pid}")


class StallingSender(threading.Thread):
    """Writes `data` on `sock` and never reads. `stalled` is set once a send has made no
    progress for STALL_S (the broker stopped reading), or when everything was sent."""

    def __init__(self, sock: socket.socket, data: bytes):
        super().__init__(daemon=True)
        self.sock, self.data = sock, data
        self.sent = 0
        self.stalled = threading.Event()

    def run(self) -> None:
        self.sock.settimeout(STALL_S)
        view = memoryview(self.data)
        try:
            while self.sent < len(self.data):
                try:
                    self.sent += self.sock.send(view[self.sent:self.sent + MIB])
                except socket.timeout:
                    self.stalled.set()
                    self.sock.settimeout(None)
        except OSError:
            pass
        self.stalled.set()


def hostile_client(broker, data: bytes) -> tuple[socket.socket, StallingSender]:
    sock = socket.create_connection((HOST, broker.port), timeout=10)
    sender = StallingSender(sock, data)
    sender.start()
    assert sender.stalled.wait(SEND_TIMEOUT_S), "the sender neither stalled nor finished"
    return sock, sender


def test_client_that_never_reads_is_held_back(start_broker):
    """A client that pipelines without reading is held to queued.max.requests and
    queued.max.request.bytes: large produces behind a long fetch stop being read after the
    count bound (and are not all appended), pipelined 1 MiB fetch responses stop being made
    after the byte bound, the broker's memory stays within base + 2 x the byte bound + 64 MiB,
    and another client is served all along."""
    requests_max, request_bytes_max = 32, 8 * MIB
    broker = start_broker({"queued.max.requests": requests_max,
                           "queued.max.request.bytes": request_bytes_max})
    topic = "held-back"
    create_topic(broker, topic, 2)  # 0: written; 1: empty, its fetches wait.
    payload = random.Random(3).randbytes(MIB - 1024)
    big_batch = record_batch([(None, payload)])
    with WireConnection(HOST, broker.port) as other:
        # Warm up: the storage tail and read path at their steady size before the baseline.
        for _ in range(96):
            assert other.produce({topic: {0: big_batch}}, acks=1)[(topic, 0)][0] == 0
        for offset in range(0, 96, 8):
            assert other.fetch(topic, {0: offset})[0][0] == 0
        produce_version = other.version_for(0, PRODUCE_VERSION_MIN, PRODUCE_VERSION_MAX)
        fetch_version = other.version_for(1, FETCH_VERSION_MIN, FETCH_VERSION_MAX)
        base_rss = rss_bytes(broker.process.pid)
        bound = base_rss + 2 * request_bytes_max + 64 * MIB

        # Produces behind a fetch that waits a minute: no response can be written, so the count
        # bound stops the reading.
        head = framed(fetch_request(topic, 1, 0, 60_000), fetch_version, 1)
        produces = b"".join(framed(produce_request(topic, {0: big_batch}, 1), produce_version, 2 + n)
                            for n in range(200))
        producer_sock, producer = hostile_client(broker, head + produces)
        assert producer.sent < len(head) + len(produces), "the broker read every produce"
        appended = other.fetch(topic, {0: 0}, max_bytes=1024)[0][1] - 96
        assert 0 < appended < requests_max, f"{appended} produces appended"
        rss = rss_bytes(broker.process.pid)
        assert rss <= bound, (
            f"RSS {rss / MIB:.0f} MiB, base {base_rss / MIB:.0f} MiB, bound {bound / MIB:.0f} MiB")

        # 400 fetches of 1 MiB each, small enough to sit in the socket buffers whole: their
        # responses wait for a reader that never comes, and the byte bound stops the broker
        # from reading (and answering) more of them.
        fetches = b"".join(framed(fetch_request(topic, 0, n % 96, 0), fetch_version, n)
                           for n in range(400))
        fetcher_sock, _ = hostile_client(broker, fetches)
        time.sleep(STALL_S)  # Room for the broker to answer as many as it would.
        rss = rss_bytes(broker.process.pid)
        assert rss <= bound, (
            f"RSS {rss / MIB:.0f} MiB, base {base_rss / MIB:.0f} MiB, bound {bound / MIB:.0f} MiB")

        # Meanwhile another client is served.
        assert other.produce({topic: {0: record_batch([(None, b"served")])}}, acks=1)[(topic, 0)][0] == 0
        assert other.fetch(topic, {0: 0}, max_bytes=1024)[0][0] == 0
        assert other.api_versions()
        for sock in (producer_sock, fetcher_sock):
            sock.close()
    assert broker.is_running()


def connection_served(port: int) -> WireConnection | None:
    """A new connection that answers ApiVersions, or None if the broker closed it."""
    connection = WireConnection(HOST, port, timeout=10)
    try:
        connection.api_versions()
        return connection
    except (ConnectionError, OSError):
        connection.close()
        return None


def open_served(port: int) -> WireConnection:
    """A served connection; retried for a few seconds, since the broker frees a closed
    connection's place only once it has seen the close (the harness's start-up probe too)."""
    deadline = time.monotonic() + 10
    while (connection := connection_served(port)) is None:
        assert time.monotonic() < deadline, "no connection was served"
        time.sleep(0.1)
    return connection


def assert_limit_of_five(broker) -> None:
    held = [open_served(broker.port) for _ in range(5)]
    try:
        assert connection_served(broker.port) is None, "a sixth connection was served"
        for connection in held:
            assert connection.api_versions(), "one of the first five stopped working"
        held.pop().close()
        held.append(open_served(broker.port))
    finally:
        for connection in held:
            connection.close()


def test_max_connections_per_ip(start_broker):
    """With max.connections.per.ip=5, a sixth concurrent connection from 127.0.0.1 is closed
    by the broker while the first five keep working; closing one makes room for another."""
    broker = start_broker({"max.connections.per.ip": 5})
    assert_limit_of_five(broker)
    assert broker.wait_for_log(r"127\.0\.0\.1 already has the configured maximum of 5")


def test_max_connections(start_broker):
    """max.connections=5 likewise, for the whole broker."""
    broker = start_broker({"max.connections": 5})
    assert_limit_of_five(broker)
    assert broker.wait_for_log(r"already has max\.connections=5 connections")
