"""Hostile bytes on one connection close that connection only: the broker logs it and every
other client carries on."""

from __future__ import annotations

import re
import socket
import struct
import time

import pytest
from confluent_kafka import Producer

from clients import confluent_consume
from kafka_wire import WireConnection
from support import HOST, create_topic

REQUEST_BYTES_MAX = 1_048_576
CLOSE_TIMEOUT_S = 10


def garbage(sock):
    # A negative frame size, then noise.
    sock.sendall(b"\xde\xad\xbe\xef" * 64)


def unknown_api_key(sock):
    # A well-framed request for api key 32767 version 32767, which no broker knows.
    body = struct.pack(">hhi", 32767, 32767, 1) + b"\x00\x00" + bytes(range(40))
    sock.sendall(struct.pack(">i", len(body)) + body)


def truncated_half_close(sock):
    # Size says 100, 10 bytes arrive, then the client shuts down its sending side.
    sock.sendall(struct.pack(">i", 100) + b"\x00\x12\x00\x00\x00\x00\x00\x07\x00\x00")
    sock.shutdown(socket.SHUT_WR)


def oversized(sock):
    # One byte more than socket.request.max.bytes: refused from the size alone.
    sock.sendall(struct.pack(">i", REQUEST_BYTES_MAX + 1) + b"\x00" * 1024)


def http_request(sock):
    # A confused HTTP client: the first four bytes read as a ~1.2 GB frame size.
    sock.sendall(b"GET / HTTP/1.1\r\nHost: flink\r\n\r\n")


def huge_array_count(sock):
    # Metadata v0 whose topic array claims 2^31-1 entries in an 18-byte frame: decoding must
    # fail at the end of the bytes, not reserve memory for the claimed count (an abort).
    body = struct.pack(">hhih", 3, 0, 1, -1) + struct.pack(">i", 0x7FFFFFFF)
    sock.sendall(struct.pack(">i", len(body)) + body)


def huge_compact_array_count(sock):
    # The same in Metadata v12's compact array (an unsigned varint count of 2^32-2).
    body = struct.pack(">hhih", 3, 12, 1, -1) + b"\x00" + b"\xff\xff\xff\xff\x0f"
    sock.sendall(struct.pack(">i", len(body)) + body)


ATTACKS = [garbage, unknown_api_key, truncated_half_close, oversized, http_request,
           huge_array_count, huge_compact_array_count]


def wait_closed_by_server(sock) -> None:
    """Drain the socket until the server closes it (EOF or reset); fail after a timeout."""
    sock.settimeout(1)
    deadline = time.monotonic() + CLOSE_TIMEOUT_S
    while time.monotonic() < deadline:
        try:
            if not sock.recv(65536):
                return
        except socket.timeout:
            continue
        except (ConnectionResetError, BrokenPipeError):
            return
    pytest.fail(f"server kept the connection open {CLOSE_TIMEOUT_S}s after hostile input")


def produce_one(producer: Producer, topic: str, value: str) -> None:
    """Produce one message with the long-lived client and require a successful delivery."""
    outcome = []
    producer.produce(topic, value=value, on_delivery=lambda error, message: outcome.append(error))
    assert producer.flush(15) == 0, f"{value!r} not delivered within 15s"
    assert outcome == [None], f"{value!r} delivery failed: {outcome}"


def new_log_lines(broker, since: int) -> list[str]:
    return broker.log_text()[since:].splitlines()


@pytest.mark.parametrize("attack", ATTACKS, ids=lambda attack: attack.__name__)
def test_hostile_connection_is_closed_alone(start_broker, attack):
    """The hostile connection is closed and logged; a concurrent client works before and after."""
    broker = start_broker({"socket.request.max.bytes": REQUEST_BYTES_MAX})
    topic = "hostile"
    create_topic(broker, topic)
    producer = Producer({"bootstrap.servers": broker.bootstrap, "acks": "all"})
    produce_one(producer, topic, "before")

    # A connection parked mid-frame must not hold up anyone else while the attack runs.
    parked = socket.create_connection((HOST, broker.port), timeout=5)
    parked.sendall(struct.pack(">i", 100) + b"\x00\x12")

    log_size = len(broker.log_text())
    hostile = socket.create_connection((HOST, broker.port), timeout=5)
    client_port = hostile.getsockname()[1]
    try:
        attack(hostile)
        wait_closed_by_server(hostile)
    finally:
        hostile.close()

    deadline = time.monotonic() + 5
    # The line must name the hostile connection (by its port) and say why it was closed.
    names_it = re.compile(rf"{re.escape(HOST)}:{client_port}\b")
    says_why = re.compile(r"(clos|invalid|error|malformed|large|exceed|unknown|unsupported|"
                          r"reset|eof|truncat|drop|reject|negative|bad|size)", re.IGNORECASE)

    def about_it(line: str) -> bool:
        return bool(names_it.search(line) and says_why.search(line))

    while not any(about_it(line) for line in new_log_lines(broker, log_size)):
        assert time.monotonic() < deadline, (
            f"no log line about the closed connection; new lines: {new_log_lines(broker, log_size)}")
        time.sleep(0.1)

    produce_one(producer, topic, "after")
    with WireConnection(HOST, broker.port) as fresh:
        assert fresh.api_versions(), "ApiVersions on a fresh connection returned nothing"
    parked.close()

    assert broker.is_running(), "the broker exited"
    consumed = confluent_consume(broker.bootstrap, topic, 1, 2)
    assert [value for _, _, _, value in consumed] == ["before", "after"]
    producer.flush(5)


def test_truncated_frame_then_close_is_harmless(start_broker):
    """A client that sends 10 of 100 promised bytes and closes leaves the broker serving."""
    broker = start_broker()
    create_topic(broker, "truncated")
    for _ in range(20):
        with socket.create_connection((HOST, broker.port), timeout=5) as sock:
            sock.sendall(struct.pack(">i", 100) + b"\x00" * 6)
    with WireConnection(HOST, broker.port) as fresh:
        versions = fresh.api_versions()
    assert 0 in versions and 1 in versions, f"Produce/Fetch not advertised: {sorted(versions)}"
    assert broker.is_running()


RAFT_MESSAGE = 10_000
CONTROLLER_CALL = 10_001


def private_request(api_key: int, cluster_id: bytes, body: bytes) -> bytes:
    """A frame of the CONTROLLER listener: size, header v1 (cluster id as client id), body."""
    header = struct.pack(">hhih", api_key, 0, 7, len(cluster_id)) + cluster_id
    return struct.pack(">i", len(header) + len(body)) + header + body


def controller_garbage(sock, cluster_id):
    sock.sendall(b"\xde\xad\xbe\xef" * 64)


def controller_http(sock, cluster_id):
    sock.sendall(b"GET / HTTP/1.1\r\nHost: flink\r\n\r\n")


def controller_call_garbage(sock, cluster_id):
    # A call whose list claims four billion items in a few bytes.
    sock.sendall(private_request(CONTROLLER_CALL, cluster_id, b"\x01\xff\xff\xff\xff\x00"))


def controller_bad_raft_message(sock, cluster_id):
    sock.sendall(private_request(RAFT_MESSAGE, cluster_id, b"\xff" * 40))


def controller_kafka_request(sock, cluster_id):
    # A Kafka ApiVersions request: the CONTROLLER listener serves only its private keys.
    sock.sendall(private_request(18, cluster_id, b""))


CONTROLLER_ATTACKS = [controller_garbage, controller_http, controller_call_garbage,
                      controller_bad_raft_message, controller_kafka_request]


@pytest.mark.parametrize("attack", CONTROLLER_ATTACKS, ids=lambda attack: attack.__name__)
def test_hostile_controller_connection_is_closed_alone(start_broker, attack):
    """Hostile bytes on the CONTROLLER listener close that connection with a log line naming
    it; the controller keeps working (a topic is created and written afterwards)."""
    broker = start_broker()
    cluster_id = re.search(r"cluster\.id=(\S+)",
                           (broker.data_dir / "meta.properties").read_text()).group(1).encode()
    log_size = len(broker.log_text())
    hostile = socket.create_connection((HOST, broker.controller_port), timeout=5)
    client_port = hostile.getsockname()[1]
    try:
        attack(hostile, cluster_id)
        wait_closed_by_server(hostile)
    finally:
        hostile.close()
    names_it = re.compile(rf"closing controller connection from {re.escape(HOST)}:{client_port}\b")
    deadline = time.monotonic() + 5
    while not any(names_it.search(line) for line in new_log_lines(broker, log_size)):
        assert time.monotonic() < deadline, (
            f"no log line about the closed connection; new lines: {new_log_lines(broker, log_size)}")
        time.sleep(0.1)
    create_topic(broker, "after-controller-attack")
    producer = Producer({"bootstrap.servers": broker.bootstrap, "acks": "all"})
    produce_one(producer, "after-controller-attack", "after")
    assert broker.is_running(), "the broker exited"


def test_controller_call_of_another_cluster_is_refused(start_broker):
    """A call with another cluster's id gets a reply (INCONSISTENT_CLUSTER_ID inside) and the
    connection stays usable; the broker logs the foreign cluster."""
    broker = start_broker()
    log_size = len(broker.log_text())
    with socket.create_connection((HOST, broker.controller_port), timeout=5) as sock:
        sock.settimeout(5)
        # DescribeQuorum (call tag 5) from cluster "elsewhere".
        sock.sendall(private_request(CONTROLLER_CALL, b"elsewhere", b"\x05"))
        size = struct.unpack(">i", sock.recv(4, socket.MSG_WAITALL))[0]
        response = sock.recv(size, socket.MSG_WAITALL)
        correlation_id, = struct.unpack(">i", response[:4])
        assert correlation_id == 7
        assert b"does not match this cluster's id" in response, response
    assert any("belongs to cluster elsewhere" in line
               for line in new_log_lines(broker, log_size)), new_log_lines(broker, log_size)
    assert broker.is_running()
