"""A broker restart in the middle of a workload loses nothing and keeps offsets going."""

from __future__ import annotations

import signal
import subprocess

import pytest

from clients import OFFSET_BEGINNING, check_reports, confluent_consume, confluent_produce
from support import check_history, create_topic, keyed_messages, list_topics, run_script

PARTITIONS = 6
MESSAGES = 10_000


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["sigterm", "sigkill"])
def test_restart_mid_stream_loses_nothing(broker, sig):
    """5,000 acks=all messages, restart (SIGTERM or SIGKILL), 5,000 more: all 10,000 remain."""
    topic = "restart"
    create_topic(broker, topic, partitions=PARTITIONS)
    create_topic(broker, "restart-other")
    sent = keyed_messages(MESSAGES)
    first, second = sent[:MESSAGES // 2], sent[MESSAGES // 2:]
    reports = confluent_produce(broker.bootstrap, topic, first)

    broker.restart(sig)
    assert {topic, "restart-other"} <= set(list_topics(broker)), "topics lost in the restart"
    loaded = broker.wait_for_log(rf"partition {topic}-(\d+) is on shard \d+",
                                 since_last_start=True)
    assert sorted(set(map(int, loaded))) == list(range(PARTITIONS)), (
        f"after restart the log names partitions {loaded}")
    described = run_script("flink-topics.sh", "--bootstrap-server", broker.bootstrap,
                           "--describe", "--topic", topic)
    assert f"PartitionCount: {PARTITIONS}\t" in described.stdout, described.stdout

    # Offsets continue where the first half stopped, in every partition.
    end_before = {}
    for partition, offset in reports:
        end_before[partition] = max(end_before.get(partition, -1), offset)
    reports += confluent_produce(broker.bootstrap, topic, second)
    first_after = {}
    for partition, offset in reports[len(first):]:
        first_after.setdefault(partition, offset)
    for partition, offset in first_after.items():
        assert offset == end_before.get(partition, -1) + 1, (
            f"partition {partition}: first offset after restart {offset}, "
            f"before restart the last was {end_before.get(partition)}")

    consumed = confluent_consume(broker.bootstrap, topic, PARTITIONS, MESSAGES,
                                 start=OFFSET_BEGINNING)
    check_history(sent, consumed, PARTITIONS)
    check_reports(reports, consumed, sent)


def test_graceful_shutdown_exits_zero(broker):
    """SIGTERM makes the broker shut down by itself (exit 0, or 143 as the JVM's Kafka) in time."""
    create_topic(broker, "shutdown")
    code = broker.stop(signal.SIGTERM)
    assert code in (0, 128 + signal.SIGTERM), (
        f"exit code {code} after SIGTERM (None = had to SIGKILL, negative = killed by a signal)")


def test_second_server_on_the_same_directory_or_ports_is_refused(broker, tmp_path):
    """A second `flink server` on a running broker's log directory stops at once with Kafka's
    lock message; one with its own directory but the same ports stops naming the port (shards
    bind with SO_REUSEPORT, which would otherwise share the port with the running broker). The
    running broker is unaffected."""
    same_dir = subprocess.run(broker.command(), capture_output=True, text=True, timeout=30,
                              stdin=subprocess.DEVNULL)
    assert same_dir.returncode == 1, same_dir
    assert (f"Failed to acquire lock on file .lock in {broker.data_dir}. A Flink instance in "
            "another process or thread is using this directory.") in same_dir.stderr, same_dir.stderr

    other_dir = [*broker.command(), "--override", f"log.dirs={tmp_path / 'other'}"]
    same_ports = subprocess.run(other_dir, capture_output=True, text=True, timeout=30,
                                stdin=subprocess.DEVNULL)
    assert same_ports.returncode == 1, same_ports
    assert (f"cannot listen on PLAINTEXT://{broker.overrides['listeners'].split('//')[1].split(',')[0]}"
            ": another process is listening there") in same_ports.stderr, same_ports.stderr
    assert broker.is_running()
    create_topic(broker, "still-serving")
    assert "still-serving" in list_topics(broker)


@pytest.mark.parametrize("listener", ["PLAINTEXT", "CONTROLLER"])
def test_a_listener_host_that_does_not_resolve_is_refused(broker, tmp_path, listener):
    """A listener whose host name does not resolve stops the server with exit code 1 and a
    message naming the listener (a controller listener used to abort the process)."""
    plaintext, controller = broker.overrides["listeners"].split(",")
    bad = {"PLAINTEXT": plaintext, "CONTROLLER": controller}[listener]
    scheme, port = bad.split("://")[0], bad.rsplit(":", 1)[1]
    wrong = f"{scheme}://no-such-host.invalid:{port}"
    listeners = broker.overrides["listeners"].replace(bad, wrong)
    command = [*broker.command(), "--override", f"listeners={listeners}",
               "--override", f"log.dirs={tmp_path / 'other'}"]
    broker.stop(signal.SIGTERM)
    refused = subprocess.run(command, capture_output=True, text=True, timeout=60,
                             stdin=subprocess.DEVNULL)
    assert refused.returncode == 1, refused
    assert f"cannot listen on {wrong}: " in refused.stderr, refused.stderr[-2000:]
    assert "panicked" not in refused.stderr, refused.stderr[-2000:]
