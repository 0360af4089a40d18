"""The dist's wrapper scripts behave like Kafka's: usage errors, -daemon, stop, storage, and
running through a symlink or under busybox sh."""

from __future__ import annotations

import re
import subprocess

import pytest

from support import (BIN_DIR, FLINK, HOST, SERVER_PROPERTIES, create_topic, describe_run,
                     free_port, require_tool, run_script)

USAGE = "[-daemon] server.properties [--override property=value]*"


@pytest.mark.parametrize("args", [[], ["-daemon"]], ids=["no-args", "daemon-only"])
def test_server_start_without_config_prints_usage(args):
    """flink-server-start.sh without a config file prints Kafka's USAGE line and exits 1."""
    result = run_script("flink-server-start.sh", *args, check=False, timeout=10)
    assert result.returncode == 1, describe_run(result)
    assert result.stdout.startswith("USAGE: ") and USAGE in result.stdout, describe_run(result)


def test_wrappers_follow_symlinks(broker, tmp_path):
    """A symlink to flink-topics.sh in another directory still finds the binary."""
    create_topic(broker, "linked")
    link = tmp_path / "topics"
    link.symlink_to(BIN_DIR / "flink-topics.sh")
    result = subprocess.run([str(link), "--bootstrap-server", broker.bootstrap, "--list"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, describe_run(result)
    assert "linked" in result.stdout.split()


def test_wrappers_run_under_busybox_sh(broker):
    """The wrappers are plain POSIX sh: busybox sh runs the quick start through them."""
    busybox = require_tool("busybox")

    def run(script, *args, input=None):
        result = subprocess.run([busybox, "sh", str(BIN_DIR / script), *args], input=input,
                                capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, describe_run(result)
        return result.stdout

    bootstrap = ["--bootstrap-server", broker.bootstrap]
    assert "Created topic busybox." in run("flink-topics.sh", *bootstrap, "--create",
                                           "--topic", "busybox")
    run("flink-console-producer.sh", *bootstrap, "--topic", "busybox", input="hello\nworld\n")
    assert run("flink-console-consumer.sh", *bootstrap, "--topic", "busybox",
               "--from-beginning", "--max-messages", "2") == "hello\nworld\n"


def test_storage_random_uuid_and_format(tmp_path):
    """flink-storage.sh makes a cluster id and formats a log dir with it, as kafka-storage.sh."""
    uuid = run_script("flink-storage.sh", "random-uuid", timeout=10).stdout.strip()
    assert re.fullmatch(r"[A-Za-z0-9_-]{22}", uuid), f"not a base64url UUID: {uuid!r}"
    other = run_script("flink-storage.sh", "random-uuid", timeout=10).stdout.strip()
    assert other != uuid

    data_dir = tmp_path / "data"
    config = tmp_path / "server.properties"
    config.write_text(re.sub(r"(?m)^log\.dirs=.*$", f"log.dirs={data_dir}",
                             SERVER_PROPERTIES.read_text()))
    run_script("flink-storage.sh", "format", "-t", uuid, "-c", str(config), timeout=10)
    meta = (data_dir / "meta.properties").read_text()
    assert f"cluster.id={uuid}" in meta and "node.id=1" in meta, meta

    again = run_script("flink-storage.sh", "format", "-t", uuid, "-c", str(config),
                       check=False, timeout=10)
    assert again.returncode != 0, describe_run(again)
    run_script("flink-storage.sh", "format", "-t", uuid, "-c", str(config),
               "--ignore-formatted", timeout=10)
    assert (data_dir / "meta.properties").read_text() == meta


def test_server_rejects_bad_config(tmp_path):
    """A bad override makes `flink server` exit non-zero with a message naming the key."""
    port, controller_port = free_port(), free_port()
    result = subprocess.run(
        [str(FLINK), "server", str(SERVER_PROPERTIES), "--override", "num.partitions=zero",
         "--override", f"listeners=PLAINTEXT://{HOST}:{port},CONTROLLER://{HOST}:{controller_port}",
         "--override", f"controller.quorum.voters=1@{HOST}:{controller_port}",
         "--override", f"log.dirs={tmp_path}"],
        capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL)
    assert result.returncode != 0, describe_run(result)
    assert "num.partitions" in result.stdout + result.stderr, describe_run(result)


DAEMON_SCRIPT = r"""
set -u
bin=$1 config=$2 logs=$3 port=$4 controller_port=$5 data=$6
"$bin/flink-server-stop.sh"
echo "stop-without-server-exit=$?"
LOG_DIR=$logs "$bin/flink-server-start.sh" -daemon "$config" \
  --override "listeners=PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$controller_port" \
  --override "advertised.listeners=PLAINTEXT://127.0.0.1:$port" \
  --override "controller.quorum.voters=1@127.0.0.1:$controller_port" \
  --override "log.dirs=$data"
echo "start-exit=$?"
i=0
until grep -q 'Flink server started' "$logs/server.out" 2>/dev/null; do
  i=$((i + 1)); [ $i -le 300 ] || { echo "never started"; exit 2; }
  sleep 0.1
done
"$bin/flink-topics.sh" --bootstrap-server "127.0.0.1:$port" --create --topic daemon-topic
"$bin/flink-server-stop.sh"
echo "stop-exit=$?"
i=0
while pgrep -f '(^|/)flink server( |$)' >/dev/null; do
  i=$((i + 1)); [ $i -le 300 ] || { echo "still running"; exit 3; }
  sleep 0.1
done
echo "stopped"
"""


def test_server_start_daemon_and_stop(tmp_path):
    """-daemon backgrounds the server with output in $LOG_DIR/server.out; stop sends SIGTERM."""
    # A PID namespace of its own: flink-server-stop.sh, like Kafka's, stops every server on the
    # machine, and must not touch anything outside this test.
    unshare = require_tool("unshare")
    probe = subprocess.run([unshare, "--pid", "--fork", "--mount-proc", "true"],
                           capture_output=True, timeout=10)
    if probe.returncode != 0:
        pytest.skip(f"no PID namespaces here: {probe.stderr.decode().strip()}")
    script = tmp_path / "daemon.sh"
    script.write_text(DAEMON_SCRIPT)
    logs = tmp_path / "logs"
    result = subprocess.run(
        [unshare, "--pid", "--fork", "--mount-proc", "sh", str(script), str(BIN_DIR),
         str(SERVER_PROPERTIES), str(logs), str(free_port()), str(free_port()),
         str(tmp_path / "data")],
        capture_output=True, text=True, timeout=90, stdin=subprocess.DEVNULL)
    server_out = (logs / "server.out").read_text() if (logs / "server.out").exists() else ""
    details = describe_run(result) + f"\n--- server.out ---\n{server_out}"
    assert "No flink server to stop" in result.stdout, details
    assert "stop-without-server-exit=1" in result.stdout, details
    assert "start-exit=0" in result.stdout, details
    assert "Created topic daemon-topic." in result.stdout, details
    assert "stop-exit=0" in result.stdout, details
    assert result.stdout.rstrip().endswith("stopped"), details
    assert "Flink server started" in server_out
