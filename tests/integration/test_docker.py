"""The container image: the reference README's Docker commands work as written against
`apache/flink:latest`, io_uring problems in a container are reported clearly, and `docker stop`
stops the broker at once.

Skipped, with the reason, when `docker info` fails. The image is rebuilt from the current dist with
`make -o dist image` (no cargo build, nothing pulled). Containers get unique names, publish ports on
loopback only, and are removed in `finally`; every docker command has a timeout.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import shutil
import subprocess
import time
import warnings
from pathlib import Path

import pytest

from support import ANSI_ESCAPE, REPO, STARTED_LINE

IMAGE = "apache/flink:latest"
DEPLOY = REPO / "deploy"
SECCOMP_PROFILE = DEPLOY / "seccomp-io_uring.json"
COMPOSE_FILE = DEPLOY / "docker-compose.yml"
BIN = "/opt/flink/bin/"
BOOTSTRAP = "--bootstrap-server localhost:9092"
IO_URING_SYSCALLS = ("io_uring_setup", "io_uring_enter", "io_uring_register")

DOCKER_TIMEOUT_S = 60
IMAGE_BUILD_TIMEOUT_S = 300
STARTUP_TIMEOUT_S = 30
STOP_DURATION_S_MAX = 5  # docker stop's own grace period is 10 s: slower means SIGTERM was lost.

# The reference README's `docker run` with FLINK_* variables (combined mode, 3 partitions per topic).
SEED_ENVIRONMENT = {
    "FLINK_NODE_ID": "1",
    "FLINK_PROCESS_ROLES": "broker,controller",
    "FLINK_LISTENERS": "PLAINTEXT://:9092,CONTROLLER://:9093",
    "FLINK_ADVERTISED_LISTENERS": "PLAINTEXT://localhost:9092",
    "FLINK_CONTROLLER_LISTENER_NAMES": "CONTROLLER",
    "FLINK_LISTENER_SECURITY_PROTOCOL_MAP": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
    "FLINK_CONTROLLER_QUORUM_VOTERS": "1@localhost:9093",
    "FLINK_OFFSETS_TOPIC_REPLICATION_FACTOR": "1",
    "FLINK_TRANSACTION_STATE_LOG_REPLICATION_FACTOR": "1",
    "FLINK_TRANSACTION_STATE_LOG_MIN_ISR": "1",
    "FLINK_GROUP_INITIAL_REBALANCE_DELAY_MS": "0",
    "FLINK_NUM_PARTITIONS": "3",
}

_names = itertools.count()


def _docker_unavailable_reason() -> str | None:
    if shutil.which("docker") is None:
        return "docker is not installed"
    try:
        result = subprocess.run(["docker", "info"], capture_output=True, text=True, timeout=30)
    except subprocess.TimeoutExpired:
        return "`docker info` timed out"
    if result.returncode != 0:
        return f"`docker info` failed: {(result.stderr or result.stdout).strip()[:300]}"
    return None


_reason = _docker_unavailable_reason()
if _reason is not None:
    print(f"test_docker: skipped: {_reason}")
    pytest.skip(_reason, allow_module_level=True)


def docker(*args: str, input: str | None = None, timeout: float = DOCKER_TIMEOUT_S,
           cwd: Path | None = None, check: bool = True) -> subprocess.CompletedProcess:
    """Run a docker command (text mode); with `check`, fail the test on a non-zero exit."""
    result = subprocess.run(
        ["docker", *args], input=input, capture_output=True, text=True, timeout=timeout, cwd=cwd,
        stdin=None if input is not None else subprocess.DEVNULL,
    )
    if check:
        assert result.returncode == 0, describe(result)
    return result


def describe(result: subprocess.CompletedProcess) -> str:
    return (
        f"command: {' '.join(map(str, result.args))}\nexit code: {result.returncode}\n"
        f"--- stdout ---\n{result.stdout}\n--- stderr ---\n{result.stderr}"
    )


def unique_name(role: str) -> str:
    return f"flink-test-{os.getpid()}-{next(_names)}-{role}"


def container_logs(name: str) -> str:
    result = subprocess.run(["docker", "logs", name], capture_output=True, text=True,
                            timeout=DOCKER_TIMEOUT_S)
    return ANSI_ESCAPE.sub("", result.stdout + result.stderr)


def remove_container(name: str) -> None:
    subprocess.run(["docker", "rm", "-f", name], capture_output=True, timeout=DOCKER_TIMEOUT_S)


def wait_until_started(name: str) -> None:
    """Wait for the broker's `Flink server started` line; fail early if the container exits."""
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        logs = container_logs(name)
        if STARTED_LINE in logs:
            return
        state = docker("inspect", "-f", "{{.State.Status}} {{.State.ExitCode}}", name).stdout
        if not state.startswith("running"):
            raise AssertionError(f"container {name} stopped during startup ({state.strip()}):\n{logs}")
        time.sleep(0.2)
    raise AssertionError(f"no '{STARTED_LINE}' from {name} within {STARTUP_TIMEOUT_S}s:\n"
                         f"{container_logs(name)}")


def in_container(name: str, command: str, input: str | None = None) -> str:
    """`docker exec [-i] --workdir /opt/flink/bin/ NAME sh -c COMMAND`; returns stdout."""
    interactive = ["-i"] if input is not None else []
    result = docker("exec", *interactive, "--workdir", BIN, name, "sh", "-c", command, input=input)
    return result.stdout


def quick_start(name: str, topic: str = "test-topic") -> None:
    """The reference README's quick start, each command as written, run inside the container."""
    created = in_container(name, f"./flink-topics.sh {BOOTSTRAP} --create --topic {topic}")
    assert f"Created topic {topic}." in created, created
    in_container(name, f"./flink-console-producer.sh {BOOTSTRAP} --topic {topic}",
                 input="hello\nworld\n")
    consumed = in_container(
        name, f"./flink-console-consumer.sh {BOOTSTRAP} --topic {topic} --from-beginning "
              "--max-messages 2")
    assert consumed == "hello\nworld\n", consumed


def partition_count(name: str, topic: str) -> int:
    described = in_container(name, f"./flink-topics.sh {BOOTSTRAP} --describe --topic {topic}")
    match = re.search(r"PartitionCount:\s*(\d+)", described)
    assert match, described
    return int(match.group(1))


def run_to_exit(*run_args: str) -> subprocess.CompletedProcess:
    """`docker run` in the foreground for a container expected to exit by itself."""
    name = unique_name("exit")
    try:
        return docker("run", "--name", name, *run_args, IMAGE, check=False)
    finally:
        remove_container(name)


@pytest.fixture(scope="module", autouse=True)
def image():
    """The image, rebuilt from the current dist (Docker's cache makes an unchanged one quick)."""
    result = subprocess.run(["make", "--no-print-directory", "-o", "dist", "image"], cwd=REPO,
                            capture_output=True, text=True, timeout=IMAGE_BUILD_TIMEOUT_S,
                            stdin=subprocess.DEVNULL)
    assert result.returncode == 0, describe(result)
    return IMAGE


@pytest.fixture
def container():
    """Start containers from the image (`docker run -d --name NAME [args] IMAGE`); all are
    removed at teardown."""
    names = []

    def start(*run_args: str, name: str | None = None) -> str:
        name = name or unique_name("broker")
        names.append(name)
        docker("run", "-d", "--name", name, *run_args, IMAGE)
        wait_until_started(name)
        return name

    try:
        yield start
    finally:
        for name in names:
            remove_container(name)


def test_image_layout():
    """The image has the dist under /opt/flink, busybox applets, /tmp 1777, and runs as `flink`."""
    result = docker("run", "--rm", IMAGE, "sh", "-c",
                    "ls /opt/flink/bin /opt/flink/config; stat -c %a /tmp; id -un; "
                    "which sh ls cat ps kill grep sed")
    lines = result.stdout.split()
    for expected in ["flink", "flink-topics.sh", "flink-console-producer.sh",
                     "flink-console-consumer.sh", "flink-storage.sh", "flink-server-start.sh",
                     "flink-server-stop.sh", "flink-docker-entrypoint.sh", "server.properties",
                     "1777", "flink"]:
        assert expected in lines, result.stdout
    for tool in ["sh", "ls", "cat", "ps", "kill", "grep", "sed"]:
        assert f"/bin/{tool}" in lines, result.stdout


def test_quick_start(container):
    """`docker run -d --name N apache/flink:latest`, then the quick start inside the container."""
    name = container()
    assert "Formatting log directory /tmp/flink-combined-logs" in container_logs(name)
    quick_start(name)


def test_seed_commands_verbatim():
    """The README's own commands with the container named `broker`, ending with `docker rm -f
    broker`. Skipped if a container of that name already exists (it is not ours to remove)."""
    existing = docker("ps", "-a", "-q", "--filter", "name=^broker$").stdout.strip()
    if existing:
        pytest.skip("a container named `broker` exists; the other tests cover the same commands")
    try:
        docker(*"run -d --name broker apache/flink:latest".split())
        wait_until_started("broker")
        created = in_container("broker", f"./flink-topics.sh {BOOTSTRAP} --create --topic test-topic")
        assert "Created topic test-topic." in created, created
        docker(*"rm -f broker".split())
        assert not docker("ps", "-a", "-q", "--filter", "name=^broker$").stdout.strip()
    finally:
        remove_container("broker")


def seed_variables() -> list[str]:
    """`docker run`'s `-e` arguments for SEED_ENVIRONMENT."""
    return [argument for key, value in SEED_ENVIRONMENT.items()
            for argument in ("-e", f"{key}={value}")]


def test_environment_configuration(container):
    """The README's `docker run` with FLINK_* variables: only they are used, with the entrypoint's
    data directory, and topics get FLINK_NUM_PARTITIONS=3 partitions."""
    name = container(*seed_variables())
    quick_start(name)
    assert partition_count(name, "test-topic") == 3
    assert in_container(name, "ls /tmp/flink-combined-logs").split().count("meta.properties") == 1


def test_environment_scram_users(container):
    """FLINK_ADD_SCRAM's credentials, one per line, are given to the first format: the users
    are in the metadata log from the start (the glob characters stay as written)."""
    credentials = ("SCRAM-SHA-256=[name=alice,password=alice-secret]\n"
                   "  SCRAM-SHA-512=[name=b*,iterations=8192,password=b-secret]\n")
    name = container(*seed_variables(), "-e", f"FLINK_ADD_SCRAM={credentials}")
    described = in_container(name, f"./flink-configs.sh {BOOTSTRAP} --describe --entity-type users")
    assert sorted(described.splitlines()) == [
        "SCRAM credential configs for user-principal 'alice' are SCRAM-SHA-256=iterations=4096",
        "SCRAM credential configs for user-principal 'b*' are SCRAM-SHA-512=iterations=8192",
    ], described


def test_missing_required_key_names_it():
    """With FLINK_* variables set, the embedded defaults are off: a missing key is named."""
    result = run_to_exit("-e", "FLINK_NODE_ID=1")
    assert result.returncode == 1, describe(result)
    assert "process.roles" in result.stdout + result.stderr, describe(result)


def test_compose_single_node(tmp_path):
    """deploy/docker-compose.yml (the README's compose service plus seccomp profile and memlock)
    starts a broker whose topics get 3 partitions. It runs from a copy with a unique container
    name and the host port on loopback, so it cannot collide with anything else."""
    compose = compose_command()
    shipped = COMPOSE_FILE.read_text()
    for expected in ["container_name: broker\n", "- 9092:9092\n",
                     "- seccomp=./seccomp-io_uring.json\n", "memlock: -1\n"]:
        assert expected in shipped, f"{COMPOSE_FILE} lacks {expected!r}"
    config = subprocess.run([*compose, "config", "-q"], cwd=DEPLOY, capture_output=True,
                            text=True, timeout=DOCKER_TIMEOUT_S)
    assert config.returncode == 0, describe(config)

    name = unique_name("compose")
    text = (shipped.replace("container_name: broker\n", f"container_name: {name}\n")
                   .replace("- 9092:9092\n", "- 127.0.0.1::9092\n"))
    write_compose_copy(tmp_path, text)

    project = ["-p", f"flinktest{os.getpid()}{next(_names)}"]
    try:
        up = subprocess.run([*compose, *project, "up", "-d"], cwd=tmp_path, capture_output=True,
                            text=True, timeout=DOCKER_TIMEOUT_S, stdin=subprocess.DEVNULL)
        assert up.returncode == 0, describe(up)
        wait_until_started(name)
        quick_start(name)
        assert partition_count(name, "test-topic") == 3
    finally:
        subprocess.run([*compose, *project, "down", "-t", "5"], cwd=tmp_path, capture_output=True,
                       timeout=DOCKER_TIMEOUT_S, stdin=subprocess.DEVNULL)
        remove_container(name)


def test_shipped_seccomp_profile_allows_io_uring(container):
    """deploy/seccomp-io_uring.json is Docker's default profile with the io_uring calls allowed."""
    profile = json.loads(SECCOMP_PROFILE.read_text())
    assert profile["defaultAction"] == "SCMP_ACT_ERRNO"
    allowed = {name for rule in profile["syscalls"] if rule["action"] == "SCMP_ACT_ALLOW"
               and "args" not in rule and "includes" not in rule for name in rule["names"]}
    assert set(IO_URING_SYSCALLS) <= allowed
    container("--security-opt", f"seccomp={SECCOMP_PROFILE}")


def test_blocked_io_uring_is_reported(tmp_path):
    """Under a seccomp profile that denies io_uring (as Docker 25+'s default does), the broker
    exits 1 with the preflight message instead of a glommio panic."""
    profile = json.loads(SECCOMP_PROFILE.read_text())
    for rule in profile["syscalls"]:
        rule["names"] = [name for name in rule["names"] if name not in IO_URING_SYSCALLS]
    denying = tmp_path / "seccomp-no-io_uring.json"
    denying.write_text(json.dumps(profile))
    result = run_to_exit("--security-opt", f"seccomp={denying}")
    output = result.stdout + result.stderr
    assert result.returncode == 1, describe(result)
    assert "io_uring is blocked" in output and "seccomp-io_uring.json" in output, describe(result)
    assert "panicked" not in output, describe(result)


def test_low_memlock_is_reported():
    """With 64 KiB of lockable memory the broker exits 1 saying how to raise the limit."""
    result = run_to_exit("--ulimit", "memlock=65536:65536")
    output = result.stdout + result.stderr
    assert result.returncode == 1, describe(result)
    assert "locked-memory limit is 65536 bytes" in output, describe(result)
    assert "memlock" in output.split("locked-memory limit", 1)[1], describe(result)


def test_docker_stop_is_quick(container):
    """The broker is PID 1 and exits cleanly on SIGTERM: `docker stop` takes well under its 10 s
    grace period, and the exit code is 0."""
    name = container()
    pid_one = in_container(name, "cat /proc/1/cmdline | tr '\\0' ' '")
    assert pid_one.startswith("/opt/flink/bin/flink server --from-env"), pid_one
    started = time.monotonic()
    docker("stop", name, timeout=30)
    elapsed = time.monotonic() - started
    assert elapsed < STOP_DURATION_S_MAX, f"docker stop took {elapsed:.1f}s"
    exit_code = docker("inspect", "-f", "{{.State.ExitCode}}", name).stdout.strip()
    assert exit_code == "0", f"exit code {exit_code}:\n{container_logs(name)}"
    assert "shutting down" in container_logs(name)


def write_compose_copy(directory: Path, text: str) -> None:
    """Writes compose file `text` as `directory`/docker-compose.yml beside a copy of the seccomp
    profile, with the memlock limit this host can grant."""
    if not memlock_unlimited_allowed():
        # Seen on hosts where dockerd lacks CAP_SYS_RESOURCE: runc cannot raise the hard limit.
        limit = inherited_memlock_bytes()
        warnings.warn(f"this Docker host cannot set memlock -1; compose test uses {limit} bytes")
        text = text.replace("memlock: -1\n", f"memlock: {limit}\n")
    (directory / "docker-compose.yml").write_text(text)
    shutil.copy(SECCOMP_PROFILE, directory / SECCOMP_PROFILE.name)


def compose_command() -> list[str]:
    """`docker compose` (v2) if present, else `docker-compose` (v1); skip if neither."""
    probe = subprocess.run(["docker", "compose", "version"], capture_output=True,
                           timeout=DOCKER_TIMEOUT_S)
    if probe.returncode == 0:
        return ["docker", "compose"]
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    pytest.skip("neither `docker compose` nor `docker-compose` is installed")


def memlock_unlimited_allowed() -> bool:
    result = docker("run", "--rm", "--ulimit", "memlock=-1:-1", IMAGE, "true", check=False)
    return result.returncode == 0


def inherited_memlock_bytes() -> int:
    """The hard memlock limit containers get by default on this host, in bytes."""
    kibibytes = docker("run", "--rm", IMAGE, "sh", "-c", "ulimit -H -l").stdout.strip()
    return int(kibibytes) * 1024
