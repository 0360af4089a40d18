"""Helpers for the integration suite: run the real `flink` binary from the dist, drive its scripts,
and check consumed histories.

Every wait here is bounded: a broken broker fails a test in seconds, never hangs the suite.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import time

import pytest
from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DIST = Path(os.environ.get("FLINK_DIST", REPO / "dist" / "flink"))
BIN_DIR = DIST / "bin"
FLINK = BIN_DIR / "flink"
SERVER_PROPERTIES = DIST / "config" / "server.properties"

HOST = "127.0.0.1"
STARTUP_TIMEOUT_S = 30
SHUTDOWN_TIMEOUT_S = 15
SCRIPT_TIMEOUT_S = 60
LOG_TAIL_LINES = 200
STARTED_LINE = "Flink server started"
ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;]*m")

# Brokers started by the running test, so that a failure report can show their logs.
started_brokers: list["Broker"] = []


_handed_out: set[int] = set()


def free_port() -> int:
    """A port that is free right now: bind to port 0 and let the kernel choose. Never the same
    port twice in one test run: the kernel may offer a released port again at once, and two
    listeners of one server on one port would share it (the broker refuses that now)."""
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind((HOST, 0))
            port = sock.getsockname()[1]
        if port not in _handed_out:
            _handed_out.add(port)
            return port


class Broker:
    """One `flink server` process on loopback with its own ports and log directory.

    It runs with the dist's config/server.properties plus `--override`s, so the shipped config is
    exercised too. Its stderr goes to `log_path`, appended across restarts with a marker line.
    """

    def __init__(self, work_dir: Path, overrides: dict[str, str] | None = None):
        self.work_dir = work_dir
        self.port = free_port()
        self.controller_port = free_port()
        self.data_dir = work_dir / "data"
        self.log_path = work_dir / "broker.log"
        self.overrides = {
            "listeners": f"PLAINTEXT://{HOST}:{self.port},CONTROLLER://{HOST}:{self.controller_port}",
            "advertised.listeners": f"PLAINTEXT://{HOST}:{self.port}",
            "controller.quorum.voters": f"1@{HOST}:{self.controller_port}",
            "log.dirs": str(self.data_dir),
        }
        self.overrides.update(overrides or {})
        self.env: dict[str, str] | None = None  # The process environment; None inherits ours.
        self.process: subprocess.Popen | None = None
        self.starts = 0
        self._log_offset_at_start = 0

    @property
    def bootstrap(self) -> str:
        return f"{HOST}:{self.port}"

    def command(self) -> list[str]:
        command = [str(FLINK), "server", str(SERVER_PROPERTIES)]
        for key, value in self.overrides.items():
            command += ["--override", f"{key}={value}"]
        return command

    def start(self) -> "Broker":
        assert self.process is None or self.process.poll() is not None, "broker already running"
        self.starts += 1
        with open(self.log_path, "ab") as log:
            log.write(f"===== test harness: start #{self.starts}: {' '.join(self.command())}\n".encode())
            log.flush()  # Before the child writes to the same file.
            self._log_offset_at_start = log.tell()
            self.process = subprocess.Popen(
                self.command(), stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                env=self.env,
            )
        if self not in started_brokers:
            started_brokers.append(self)
        self.wait_until_ready()
        return self

    def wait_until_ready(self) -> None:
        """Wait for the `Flink server started` line and for the client port to accept a
        connection; fail early if the process exits."""
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while time.monotonic() < deadline:
            code = self.process.poll()
            if code is not None:
                raise AssertionError(
                    f"flink server exited with {code} during startup:\n{self.log_tail()}"
                )
            if STARTED_LINE in self.log_text(since_last_start=True) and self._port_accepts():
                return
            time.sleep(0.05)
        raise AssertionError(
            f"flink server did not start and accept connections on {self.bootstrap} within "
            f"{STARTUP_TIMEOUT_S}s:\n{self.log_tail()}"
        )

    def _port_accepts(self) -> bool:
        try:
            with socket.create_connection((HOST, self.port), timeout=1) as sock:
                # With nothing listening, a connect to a port in the ephemeral range can connect
                # to itself (TCP simultaneous open); that is not the broker.
                return sock.getsockname() != sock.getpeername()
        except OSError:
            return False

    def stop(self, sig: int = signal.SIGTERM, timeout: float = SHUTDOWN_TIMEOUT_S) -> int | None:
        """Send `sig`, wait up to `timeout`, then SIGKILL. Returns the exit code (None if killed)."""
        if self.process is None or self.process.poll() is not None:
            return self.process.returncode if self.process else None
        self.process.send_signal(sig)
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=timeout)
            return None

    def kill(self) -> None:
        self.stop(signal.SIGKILL)

    def restart(self, sig: int = signal.SIGTERM) -> "Broker":
        """Stop with `sig` and start again on the same ports and log directory."""
        self.stop(sig)
        return self.start()

    def is_running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def log_text(self, since_last_start: bool = False) -> str:
        """The broker's log, without terminal colour codes."""
        if not self.log_path.exists():
            return ""
        data = self.log_path.read_bytes()
        if since_last_start:
            data = data[self._log_offset_at_start:]
        return ANSI_ESCAPE.sub("", data.decode("utf-8", errors="replace"))

    def log_tail(self, lines: int = LOG_TAIL_LINES) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])

    def wait_for_log(self, pattern: str, timeout: float = 10, since_last_start: bool = False):
        """Wait until the log matches the regex `pattern`; returns all matches."""
        regex = re.compile(pattern, re.MULTILINE)
        deadline = time.monotonic() + timeout
        while True:
            matches = regex.findall(self.log_text(since_last_start))
            if matches or time.monotonic() >= deadline:
                return matches
            time.sleep(0.1)


def executor_cpus(pid: int) -> dict[str, set[int]]:
    """The CPUs each executor thread of process `pid` may run on, by executor name ("controller",
    "shard-0", ...; glommio adds a number, and its blocking-pool thread has the same name)."""
    cpus: dict[str, set[int]] = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            name = (task / "comm").read_text().strip()
            allowed = os.sched_getaffinity(int(task.name))
        except OSError:
            continue  # The thread has exited.
        if match := re.fullmatch(r"(controller|shard-\d+)-\d+", name):
            cpus.setdefault(match.group(1), set()).update(allowed)
    return cpus


def run_script(name: str, *args: str, input: str | None = None, timeout: float = SCRIPT_TIMEOUT_S,
               check: bool = True) -> subprocess.CompletedProcess:
    """Run one of the dist's bin/*.sh scripts and return its completed process (text mode)."""
    command = [str(BIN_DIR / name), *args]
    result = subprocess.run(
        command, input=input, capture_output=True, text=True, timeout=timeout,
        stdin=None if input is not None else subprocess.DEVNULL,
    )
    if check:
        assert result.returncode == 0, describe_run(result)
    return result


def describe_run(result: subprocess.CompletedProcess) -> str:
    return (
        f"command: {' '.join(map(str, result.args))}\nexit code: {result.returncode}\n"
        f"--- stdout ---\n{result.stdout}\n--- stderr ---\n{result.stderr}"
    )


def succeeded(result: subprocess.CompletedProcess) -> str:
    """The stdout of a run that exited 0 and printed nothing on stderr."""
    assert (result.returncode, result.stderr) == (0, ""), describe_run(result)
    return result.stdout


def failed(result: subprocess.CompletedProcess) -> str:
    """The stderr of a run that exited 1 and printed nothing on stdout."""
    assert (result.returncode, result.stdout) == (1, ""), describe_run(result)
    return result.stderr


def create_topic(broker: Broker, topic: str, partitions: int = 1) -> None:
    result = run_script(
        "flink-topics.sh", "--bootstrap-server", broker.bootstrap, "--create", "--topic", topic,
        "--partitions", str(partitions),
    )
    assert f"Created topic {topic}." in result.stdout, describe_run(result)


def list_topics(broker: Broker) -> list[str]:
    result = run_script("flink-topics.sh", "--bootstrap-server", broker.bootstrap, "--list")
    return result.stdout.split()


def keyed_messages(count: int, keys: int = 200) -> list[tuple[str, str]]:
    """`count` (key, value) pairs; the value carries the key and its per-key sequence number."""
    sequence: dict[str, int] = defaultdict(int)
    messages = []
    for index in range(count):
        key = f"key-{index % keys}"
        messages.append((key, f"{key}.{sequence[key]:06d}.{index}"))
        sequence[key] += 1
    return messages


def check_history(sent: list[tuple[str, str]], consumed: list[tuple[int, int, str, str]],
                  partitions: int) -> dict[int, list[int]]:
    """Check a consumed history (partition, offset, key, value) against what was sent.

    Every message back exactly once; per partition, offsets start at 0 and are consecutive; each
    key on one partition only, and in the order it was sent. Returns offsets by partition.
    """
    values = [value for _, _, _, value in consumed]
    duplicates = len(values) - len(set(values))
    assert duplicates == 0, f"{duplicates} duplicate values consumed"
    missing = {value for _, value in sent} - set(values)
    assert not missing, f"{len(missing)} messages lost, e.g. {sorted(missing)[:5]}"
    assert len(consumed) == len(sent), f"consumed {len(consumed)}, sent {len(sent)}"

    offsets: dict[int, list[int]] = defaultdict(list)
    key_partition: dict[str, int] = {}
    key_sequence: dict[str, int] = {}
    for partition, offset, key, value in consumed:
        assert 0 <= partition < partitions, f"partition {partition} out of range"
        offsets[partition].append(offset)
        assert value.startswith(key + "."), f"key {key!r} does not match value {value!r}"
        assert key_partition.setdefault(key, partition) == partition, (
            f"key {key} on partitions {key_partition[key]} and {partition}"
        )
        sequence = int(value.split(".")[1])
        assert sequence == key_sequence.get(key, -1) + 1, (
            f"key {key}: sequence {sequence} after {key_sequence.get(key)} (order broken)"
        )
        key_sequence[key] = sequence
    for partition, partition_offsets in offsets.items():
        assert partition_offsets == list(range(len(partition_offsets))), (
            f"partition {partition}: offsets not 0..n-1 consecutive: {partition_offsets[:10]}..."
        )
    return offsets


# ---- records on explicit partitions (transactions) --------------------------------------------

def spread(tag: str, count: int, partitions: int = 3) -> list[tuple[int, str]]:
    """`count` (partition, value) records, values `tag`-NNNN, round-robin over the partitions
    (tests/java/JavaClient.java's sendSpread makes the same)."""
    return [(index % partitions, f"{tag}-{index:04d}") for index in range(count)]


def layout(records: list[tuple[int, str]]) -> dict[int, list[str]]:
    """What each partition holds after `records` were written in order: values by partition."""
    values: dict[int, list[str]] = defaultdict(list)
    for partition, value in records:
        values[partition].append(value)
    return dict(values)


def by_partition(consumed: list[tuple[int, int, str]]) -> dict[int, list[str]]:
    """Consumed (partition, offset, value) as values by partition, checking that each
    partition's offsets increase."""
    values: dict[int, list[str]] = defaultdict(list)
    last: dict[int, int] = {}
    for partition, offset, value in consumed:
        assert offset > last.get(partition, -1), (
            f"partition {partition}: offset {offset} after {last[partition]}")
        last[partition] = offset
        values[partition].append(value)
    return dict(values)


def check_acks(acks: list[tuple[int, int]], records: list[tuple[int, str]],
               consumed: list[tuple[int, int, str]]) -> None:
    """Each record was acknowledged on its partition at an offset that holds it."""
    at = {(partition, offset): value for partition, offset, value in consumed}
    for (partition, offset), (sent_partition, value) in zip(acks, records, strict=True):
        assert partition == sent_partition and at.get((partition, offset)) == value, (
            f"{value} sent to partition {sent_partition}, acknowledged at {partition}/{offset}, "
            f"which holds {at.get((partition, offset))!r}")


def shared_broker_fixtures(name: str, overrides: dict[str, str] | None = None):
    """Fixtures for a module whose tests share one broker: `shared_broker` (module scope, data
    under a temp directory called `name`, config `overrides` on top of the suite's) and an
    autouse fixture that puts its log in every failure report of the module (conftest forgets
    brokers between tests) and fails fast once it is gone. Use as
    `shared_broker, _report_shared_broker = shared_broker_fixtures("name")`."""

    @pytest.fixture(scope="module")
    def shared_broker(tmp_path_factory):
        broker = Broker(tmp_path_factory.mktemp(name), overrides).start()
        yield broker
        broker.kill()

    @pytest.fixture(autouse=True)
    def report_shared_broker(shared_broker):
        if shared_broker not in started_brokers:
            started_brokers.append(shared_broker)
        assert shared_broker.is_running(), "the module's broker exited earlier in the module"

    return shared_broker, report_shared_broker


def report_module_broker(request, fixture: str) -> None:
    """Puts the broker of the module fixture `fixture` in the report of a failing test that uses
    it (conftest reports the brokers a test started, not those of module fixtures)."""
    if fixture in request.fixturenames:
        broker = request.getfixturevalue(fixture)
        if broker not in started_brokers:
            started_brokers.append(broker)


def require_tool(name: str) -> str:
    """The path of a command-line tool; in CI a missing tool fails, elsewhere it skips."""
    path = shutil.which(name)
    if path is None:
        if os.environ.get("CI"):
            pytest.fail(f"{name} is not installed (tests/setup.sh installs it; `make test` runs it)")
        pytest.skip(f"{name} is not installed")
    return path
