"""Helpers for tests/librdkafka/run.sh, standard library only.

    harness.py ports N                      N free loopback ports, one per line
    harness.py wait-brokers N SECS H:P...   until every H:P answers Metadata listing N brokers
    harness.py summary RUNNER_LOG           the runner's tests and sub-tests, one per line, and a
                                            closing "N passed, N failed, N skipped" line
"""

from __future__ import annotations

import re
import socket
import struct
import sys
import time

HOST = "127.0.0.1"
ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;]*m|\x1b\(B")


def ports(count: int) -> None:
    # All bound at once, so that the kernel hands out distinct ports.
    sockets = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind((HOST, 0))
            sockets.append(sock)
        for sock in sockets:
            print(sock.getsockname()[1])
    finally:
        for sock in sockets:
            sock.close()


def metadata_broker_count(address: str) -> int:
    """Broker count of a Metadata v1 answer (no topics asked: an empty array)."""
    host, port = address.rsplit(":", 1)
    client_id = b"flink-librdkafka-harness"
    # Header v1: api_key 3, api_version 1, correlation id 1, client id; body: topics = [] (v1+:
    # an empty array names no topic, null would mean all).
    request = struct.pack(">hhih", 3, 1, 1, len(client_id)) + client_id + struct.pack(">i", 0)
    with socket.create_connection((host, int(port)), timeout=3) as sock:
        if sock.getsockname() == sock.getpeername():
            raise OSError("connected to itself: nothing listens there")
        sock.sendall(struct.pack(">i", len(request)) + request)
        size = struct.unpack(">i", _read(sock, 4))[0]
        body = _read(sock, size)
    # correlation id, then the brokers array's length.
    return struct.unpack(">i", body[4:8])[0]


def _read(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise OSError("connection closed")
        data += chunk
    return data


def wait_brokers(count: int, seconds: float, addresses: list[str]) -> None:
    deadline = time.monotonic() + seconds
    last = ""
    while True:
        pending = []
        for address in addresses:
            try:
                seen = metadata_broker_count(address)
                if seen != count:
                    pending.append(f"{address} lists {seen} broker(s)")
            except (OSError, struct.error) as error:
                pending.append(f"{address}: {type(error).__name__}: {error}")
        if not pending:
            return
        last = "; ".join(pending)
        if time.monotonic() >= deadline:
            sys.exit(f"the cluster did not list {count} broker(s) within {seconds}s: {last}")
        time.sleep(0.2)


# A sub-test is named "<function>:<line>" or "<function>:<line>: <description>" (SUB_TEST()); other
# bracketed lines are a test's own messages.
SUB_NAME = r"(?P<sub>[A-Za-z_]\w*:[0-9]+(?:: .*?)?)"
SUB_START = re.compile(r"\[(?P<test>\S+)\s+/\s*[0-9.]+s\] \[ " + SUB_NAME + r" \]$")
SUB_PASS = re.compile(r"\[(?P<test>\S+)\s+/\s*[0-9.]+s\] \[ " + SUB_NAME + r": PASS \((?P<secs>[0-9.]+)s\) \]$")
SUB_SKIP = re.compile(r"\[(?P<test>\S+)\s+/\s*[0-9.]+s\] \[ " + SUB_NAME + r": SKIP: (?P<why>.*) \]$")
TEST_FAILED = re.compile(r'^### Test "(?P<test>[^" ]+)(?: \((?P<sub>.+)\))?" failed at (?P<where>\S+) ')
SUMMARY_ROW = re.compile(r"^\|\s*(?P<test>\S+)\s*\|\s*(?P<state>[A-Z]+)\s*\|\s*(?P<secs>[0-9.]+)s\s*\|")


def summary(path: str) -> None:
    """One line per sub-test (PASS, SKIP, FAIL; a sub-test that started and neither passed nor
    was skipped failed or was cut short: the runner stops a test at its first failure) and per
    test (the runner's summary table). The closing line counts cases: every sub-test, and every
    test that has none (0129), or that failed outside its sub-tests (<MAIN> included)."""
    with open(path, encoding="utf-8", errors="replace") as log:
        lines = [ANSI_ESCAPE.sub("", line.rstrip("\n")) for line in log]
    subtests: dict[tuple[str, str], str] = {}
    test_failures: dict[str, str] = {}
    tests: dict[str, str] = {}
    for index, line in enumerate(lines):
        if match := SUB_PASS.search(line):
            subtests[(match["test"], match["sub"])] = f"PASS ({match['secs']}s)"
        elif match := SUB_SKIP.search(line):
            subtests[(match["test"], match["sub"])] = f"SKIP: {match['why']}"
        elif match := SUB_START.search(line):
            subtests.setdefault((match["test"], match["sub"]), "FAIL (did not finish)")
        elif match := TEST_FAILED.search(line):
            reason = lines[index + 1].strip() if index + 1 < len(lines) else ""
            failure = f"FAIL at {match['where']}: {reason}"
            if match["sub"]:
                subtests[(match["test"], match["sub"])] = failure
            else:
                test_failures[match["test"]] = failure
        elif match := SUMMARY_ROW.search(line):
            tests[match["test"]] = match["state"]
    counts = {"passed": 0, "failed": 0, "skipped": 0}

    def count(state: str) -> None:
        key = ("passed" if state.startswith("PASS") else
               "skipped" if state.startswith("SKIP") else "failed")
        counts[key] += 1

    print("sub-tests:")
    for (test, sub), state in subtests.items():
        count(state)
        print(f"  {test} / {sub}: {state}")
    print("tests:")
    with_subtests = {test for test, _ in subtests}
    for test in dict.fromkeys([*tests, *test_failures]):
        state = tests.get(test, "FAILED")
        if test in test_failures:
            count("FAIL")
            print(f"  {test}: {state} ({test_failures[test]})")
            continue
        if test != "<MAIN>" and test not in with_subtests:
            count(state)
        print(f"  {test}: {state}")
    if not tests:
        print("  (no summary table: the runner did not finish)")
        counts["failed"] += 0 if test_failures else 1
    print(f"librdkafka: {counts['passed']} passed, {counts['failed']} failed, "
          f"{counts['skipped']} skipped")


def main(argv: list[str]) -> None:
    if len(argv) >= 2 and argv[0] == "ports":
        ports(int(argv[1]))
    elif len(argv) >= 4 and argv[0] == "wait-brokers":
        wait_brokers(int(argv[1]), float(argv[2]), argv[3:])
    elif len(argv) == 2 and argv[0] == "summary":
        summary(argv[1])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv[1:])
