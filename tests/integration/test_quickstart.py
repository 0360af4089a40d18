"""The README's quick start, run through the dist's bin/*.sh scripts, plus the other
flink-topics.sh commands a user meets first (--list, --describe, --delete, errors)."""

from __future__ import annotations

import os
import re
import select
import signal
import subprocess
import time

from support import (BIN_DIR, FLINK, HOST, Broker, create_topic, describe_run, list_topics,
                     run_script)

TOPIC = "test-topic"


def produce_lines(broker, topic: str, text: str) -> None:
    run_script("flink-console-producer.sh", "--bootstrap-server", broker.bootstrap,
               "--topic", topic, input=text)


def test_quick_start_transcript(broker):
    """Create, produce `hello`/`world`, and consume them back exactly as the README shows."""
    created = run_script("flink-topics.sh", "--bootstrap-server", broker.bootstrap,
                         "--create", "--topic", TOPIC)
    assert created.stdout.strip() == f"Created topic {TOPIC}.", describe_run(created)

    produce_lines(broker, TOPIC, "hello\nworld\n")

    consumed = run_script("flink-console-consumer.sh", "--bootstrap-server", broker.bootstrap,
                          "--topic", TOPIC, "--from-beginning", "--max-messages", "2")
    assert consumed.stdout == "hello\nworld\n", describe_run(consumed)


def test_console_consumer_timeout_ms_stops_after_idle(broker):
    """--timeout-ms ends the consumer once no more records come, after printing all of them."""
    create_topic(broker, TOPIC)
    produce_lines(broker, TOPIC, "hello\nworld\n")

    started = time.monotonic()
    consumed = run_script("flink-console-consumer.sh", "--bootstrap-server", broker.bootstrap,
                          "--topic", TOPIC, "--from-beginning", "--timeout-ms", "3000",
                          timeout=30)
    assert consumed.stdout == "hello\nworld\n", describe_run(consumed)
    assert time.monotonic() - started < 25


def test_console_consumer_runs_until_ctrl_c(broker):
    """Without --max-messages the consumer keeps running after the two events until SIGINT."""
    create_topic(broker, TOPIC)
    produce_lines(broker, TOPIC, "hello\nworld\n")

    consumer = subprocess.Popen(
        [str(BIN_DIR / "flink-console-consumer.sh"), "--bootstrap-server", broker.bootstrap,
         "--topic", TOPIC, "--from-beginning"],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    try:
        output = bytearray()
        read_until(consumer.stdout.fileno(), b"hello\nworld\n", output)
        assert output == b"hello\nworld\n"
        time.sleep(1)
        assert consumer.poll() is None, "consumer exited on its own"
        consumer.send_signal(signal.SIGINT)
        consumer.wait(timeout=15)
    finally:
        if consumer.poll() is None:
            consumer.kill()
            consumer.wait()


def read_until(fd: int, needle: bytes, screen: bytearray, start: int = 0,
               timeout: float = 15) -> int:
    """Read a pty master into `screen` until `needle` shows at or after `start`; return its end."""
    deadline = time.monotonic() + timeout
    while (found := screen.find(needle, start)) < 0:
        remaining = deadline - time.monotonic()
        assert remaining > 0, f"{needle!r} not seen on the terminal; got {bytes(screen)!r}"
        ready, _, _ = select.select([fd], [], [], remaining)
        if ready:
            try:
                chunk = os.read(fd, 4096)
            except OSError:  # EIO: the child closed the terminal.
                chunk = b""
            assert chunk, f"terminal closed before {needle!r}; got {bytes(screen)!r}"
            screen += chunk
    return found + len(needle)


def test_console_producer_prompts_on_a_terminal(broker):
    """On a terminal the producer shows `>` before each line, and typed lines are produced."""
    create_topic(broker, TOPIC)
    master, slave = os.openpty()
    producer = subprocess.Popen(
        [str(BIN_DIR / "flink-console-producer.sh"), "--bootstrap-server", broker.bootstrap,
         "--topic", TOPIC],
        stdin=slave, stdout=slave, stderr=slave, close_fds=True)
    os.close(slave)
    try:
        screen = bytearray()
        position = read_until(master, b">", screen)
        for line in (b"hello", b"world"):
            os.write(master, line + b"\n")
            # The terminal echoes the typed line; the producer then prompts again.
            position = read_until(master, line, screen, position)
            position = read_until(master, b">", screen, position)
        producer.send_signal(signal.SIGINT)  # What Ctrl+C on the terminal does.
        producer.wait(timeout=15)
    finally:
        if producer.poll() is None:
            producer.kill()
            producer.wait()
        os.close(master)

    consumed = run_script("flink-console-consumer.sh", "--bootstrap-server", broker.bootstrap,
                          "--topic", TOPIC, "--from-beginning", "--max-messages", "2")
    assert consumed.stdout == "hello\nworld\n", describe_run(consumed)


def test_list_describe_delete(broker):
    """--list shows created topics, --describe uses Kafka's layout, --delete removes the topic."""
    create_topic(broker, TOPIC)
    create_topic(broker, "three-partitions", partitions=3)
    assert {TOPIC, "three-partitions"} <= set(list_topics(broker))

    described = run_script("flink-topics.sh", "--bootstrap-server", broker.bootstrap,
                           "--describe", "--topic", TOPIC)
    lines = described.stdout.rstrip("\n").split("\n")
    assert len(lines) == 2, describe_run(described)
    header = re.fullmatch(
        rf"Topic: {TOPIC}\tTopicId: ([A-Za-z0-9_-]{{22}})\tPartitionCount: 1\t"
        r"ReplicationFactor: 1\tConfigs: ?.*", lines[0])
    assert header, f"unexpected describe header: {lines[0]!r}"
    assert re.fullmatch(rf"\tTopic: {TOPIC}\tPartition: 0\tLeader: 1\tReplicas: 1\tIsr: 1(\t.*)?",
                        lines[1]), f"unexpected partition line: {lines[1]!r}"

    described = run_script("flink-topics.sh", "--bootstrap-server", broker.bootstrap,
                           "--describe", "--topic", "three-partitions")
    partitions = re.findall(r"^\tTopic: three-partitions\tPartition: (\d+)\tLeader: 1\t",
                            described.stdout, re.MULTILINE)
    assert partitions == ["0", "1", "2"], describe_run(described)
    assert "PartitionCount: 3\t" in described.stdout

    run_script("flink-topics.sh", "--bootstrap-server", broker.bootstrap, "--delete",
               "--topic", TOPIC)
    deadline = time.monotonic() + 10
    while TOPIC in list_topics(broker):
        assert time.monotonic() < deadline, f"{TOPIC} still listed 10s after --delete"
        time.sleep(0.2)
    assert "three-partitions" in list_topics(broker)


def test_create_existing_topic_fails(broker):
    """Creating a topic twice exits 1 with Kafka's `already exists` message."""
    create_topic(broker, TOPIC)
    again = run_script("flink-topics.sh", "--bootstrap-server", broker.bootstrap,
                       "--create", "--topic", TOPIC, check=False)
    assert again.returncode == 1, describe_run(again)
    assert f"Topic '{TOPIC}' already exists." in again.stdout + again.stderr, describe_run(again)


def test_describe_unknown_topic_fails(broker):
    """Describing a topic that does not exist exits non-zero and says so."""
    result = run_script("flink-topics.sh", "--bootstrap-server", broker.bootstrap,
                        "--describe", "--topic", "no-such-topic", check=False)
    assert result.returncode != 0, describe_run(result)
    assert "does not exist" in result.stdout + result.stderr, describe_run(result)


def test_console_tools_with_keys(broker):
    """parse.key/key.separator on the producer and print.key on the consumer round-trip keys."""
    create_topic(broker, "keyed", partitions=3)
    run_script("flink-console-producer.sh", "--bootstrap-server", broker.bootstrap,
               "--topic", "keyed", "--property", "parse.key=true", "--property", "key.separator=:",
               input="a:1\nb:2\na:3\n")
    consumed = run_script("flink-console-consumer.sh", "--bootstrap-server", broker.bootstrap,
                          "--topic", "keyed", "--from-beginning", "--max-messages", "3",
                          "--property", "print.key=true", "--property", "key.separator=:")
    lines = consumed.stdout.splitlines()
    assert sorted(lines) == ["a:1", "a:3", "b:2"], describe_run(consumed)
    assert lines.index("a:1") < lines.index("a:3"), "one key's records out of order"


def test_num_partitions_is_the_create_default(start_broker):
    """--create without --partitions uses the broker's num.partitions (here overridden to 3)."""
    broker = start_broker({"num.partitions": 3})
    create_topic_output = run_script("flink-topics.sh", "--bootstrap-server", broker.bootstrap,
                                     "--create", "--topic", "defaulted")
    assert "Created topic defaulted." in create_topic_output.stdout
    described = run_script("flink-topics.sh", "--bootstrap-server", broker.bootstrap,
                           "--describe", "--topic", "defaulted")
    assert "PartitionCount: 3\t" in described.stdout, describe_run(described)


class EnvironmentBroker(Broker):
    """A broker configured only by FLINK_* variables, as the README's docker examples are."""

    def command(self) -> list[str]:
        return [str(FLINK), "server", "--from-env"]


def test_readme_environment_configuration(tmp_path):
    """The README's FLINK_* variables (FLINK_NUM_PARTITIONS=3 and the rest) configure a broker."""
    broker = EnvironmentBroker(tmp_path)
    broker.env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("FLINK_")},
        "FLINK_NODE_ID": "1",
        "FLINK_PROCESS_ROLES": "broker,controller",
        "FLINK_LISTENERS": f"PLAINTEXT://{HOST}:{broker.port},CONTROLLER://{HOST}:{broker.controller_port}",
        "FLINK_ADVERTISED_LISTENERS": f"PLAINTEXT://{HOST}:{broker.port}",
        "FLINK_CONTROLLER_LISTENER_NAMES": "CONTROLLER",
        "FLINK_LISTENER_SECURITY_PROTOCOL_MAP": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
        "FLINK_CONTROLLER_QUORUM_VOTERS": f"1@{HOST}:{broker.controller_port}",
        "FLINK_OFFSETS_TOPIC_REPLICATION_FACTOR": "1",
        "FLINK_TRANSACTION_STATE_LOG_REPLICATION_FACTOR": "1",
        "FLINK_TRANSACTION_STATE_LOG_MIN_ISR": "1",
        "FLINK_GROUP_INITIAL_REBALANCE_DELAY_MS": "0",
        "FLINK_NUM_PARTITIONS": "3",
        "FLINK_LOG_DIRS": str(broker.data_dir),
    }
    try:
        broker.start()
        create_topic_output = run_script("flink-topics.sh", "--bootstrap-server",
                                         broker.bootstrap, "--create", "--topic", TOPIC)
        assert f"Created topic {TOPIC}." in create_topic_output.stdout
        described = run_script("flink-topics.sh", "--bootstrap-server", broker.bootstrap,
                               "--describe", "--topic", TOPIC)
        assert "PartitionCount: 3\t" in described.stdout, describe_run(described)
        assert broker.data_dir.is_dir(), "FLINK_LOG_DIRS was not used"
    finally:
        broker.kill()
