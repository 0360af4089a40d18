"""`connection_creation_rate` for ip entities (KIP-612): new connections from an address with a
quota are measured in Kafka's sampled rate (11 windows of 1 s, counted as at least 10 s, so ten
seconds' worth pass at once); a connection over it is held unserved for its throttle time (at most
one window) and closed, as Kafka's acceptor does, and is not counted. Other addresses are not held
back, and once the first samples have expired the address connects again.
"""

from __future__ import annotations

import socket
import struct
import time

from kafka_wire import WireConnection
from support import HOST, describe_run, run_script

RATE = 2  # connections per second: a first burst of 20
ATTEMPTS = 40
OTHER_ADDRESS = "127.0.0.2"


def api_versions_answered(sock: socket.socket) -> bool:
    """Sends ApiVersions v0 on `sock`; True if answered, False if the broker closed it first."""
    from kafka.protocol.metadata import ApiVersionsRequest
    request = ApiVersionsRequest()
    request.API_VERSION = 0
    request.with_header(correlation_id=1, client_id="connection-rate")
    try:
        sock.sendall(bytes(request.encode(header=True, framed=True)))
        size = sock.recv(4)
    except (ConnectionResetError, BrokenPipeError):
        return False
    return len(size) == 4 and struct.unpack(">i", size)[0] > 0


def connect_and_ask(port: int, source: str | None = None) -> tuple[bool, float]:
    """Opens a connection, asks ApiVersions; (answered, seconds until answered or closed)."""
    started = time.monotonic()
    source_address = (source, 0) if source else None
    with socket.create_connection((HOST, port), timeout=10,
                                  source_address=source_address) as sock:
        answered = api_versions_answered(sock)
    return answered, time.monotonic() - started


def test_an_address_over_its_connection_rate_is_closed(start_broker):
    """Under `connection_creation_rate=2` on 127.0.0.1 (set with flink-configs.sh), 40 quick
    connections: about the first 20 are served, the others are closed unanswered within about a
    window; 127.0.0.2 connects meanwhile; after the first samples expire (11 s) 127.0.0.1 is
    served again."""
    broker = start_broker()
    result = run_script("flink-configs.sh", "--bootstrap-server", broker.bootstrap, "--alter",
                        "--entity-type", "ips", "--entity-name", "127.0.0.1", "--add-config",
                        f"connection_creation_rate={RATE}")
    assert "Completed updating config for ip 127.0.0.1." in result.stdout, describe_run(result)
    # All at once, so that the whole burst falls in the first sampled window.
    started = time.monotonic()
    sockets = [socket.create_connection((HOST, broker.port), timeout=10)
               for _ in range(ATTEMPTS)]
    outcomes = []
    for sock in sockets:
        with sock:
            outcomes.append((api_versions_answered(sock), time.monotonic() - started))
    served = sum(answered for answered, _ in outcomes)
    closed = [seconds for answered, seconds in outcomes if not answered]
    print(f"{served} of {ATTEMPTS} served; the others closed unanswered "
          f"{min(closed, default=0):.2f}..{max(closed, default=0):.2f} s after the burst began")
    assert 15 <= served <= 25, outcomes
    assert len(closed) >= 10
    assert max(closed) < 5, "held at most about one window"
    assert broker.wait_for_log(r"is over its connection_creation_rate quota of 2 per second",
                               timeout=5)

    with WireConnection(HOST, broker.port, source=OTHER_ADDRESS) as other:
        assert other.api_versions(), "another address is not held back"

    # The burst's sample expires 11 s after it began; until then a new connection may be
    # refused. Retry for a generous while after that.
    time.sleep(max(0.0, 11.5 - (time.monotonic() - started)))
    deadline = time.monotonic() + 20
    while True:
        answered, _ = connect_and_ask(broker.port)
        if answered or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    print(f"served again {time.monotonic() - started:.1f} s after the burst began")
    assert answered, "the address is served again once the window has passed"
