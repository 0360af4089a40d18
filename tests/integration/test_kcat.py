"""kcat (librdkafka) against the broker: metadata, and 10,000 keyed messages over 6 partitions."""

from __future__ import annotations

import re
import subprocess

from support import check_history, create_topic, keyed_messages, require_tool

PARTITIONS = 6
MESSAGES = 10_000


def kcat(*args: str, input: str | None = None, timeout: float = 120) -> str:
    result = subprocess.run([require_tool("kcat"), *args], input=input, capture_output=True,
                            text=True, timeout=timeout,
                            stdin=None if input is not None else subprocess.DEVNULL)
    assert result.returncode == 0, (
        f"kcat {' '.join(args)} exited {result.returncode}\n{result.stdout}\n{result.stderr}")
    assert "Delivery failed" not in result.stderr, result.stderr
    return result.stdout


def test_kcat_metadata_lists_broker_and_topic(broker):
    """`kcat -L` shows the one broker at its advertised address and the topic's partitions."""
    create_topic(broker, "kcat-meta", partitions=PARTITIONS)
    metadata = kcat("-b", broker.bootstrap, "-L", "-m", "15")
    assert re.search(r"^ 1 brokers:$", metadata, re.MULTILINE), metadata
    assert re.search(rf"^  broker 1 at {re.escape(broker.bootstrap)}\b", metadata, re.MULTILINE), (
        metadata)
    assert f'topic "kcat-meta" with {PARTITIONS} partitions:' in metadata, metadata
    leaders = re.findall(r"^    partition (\d+), leader 1, replicas: 1, isrs: 1$", metadata,
                         re.MULTILINE)
    assert sorted(map(int, leaders)) == list(range(PARTITIONS)), metadata


def test_kcat_keyed_round_trip(broker):
    """10,000 keyed messages come back exactly once, offsets consecutive, per-key order kept."""
    topic = "kcat-keyed"
    create_topic(broker, topic, partitions=PARTITIONS)
    sent = keyed_messages(MESSAGES)
    kcat("-b", broker.bootstrap, "-P", "-t", topic, "-K:", "-X", "acks=all",
         input="".join(f"{key}:{value}\n" for key, value in sent))

    output = kcat("-b", broker.bootstrap, "-C", "-t", topic, "-o", "beginning", "-e",
                  "-f", "%p %o %k %s\n")
    consumed = []
    for line in output.splitlines():
        partition, offset, key, value = line.split(" ")
        consumed.append((int(partition), int(offset), key, value))
    offsets = check_history(sent, consumed, PARTITIONS)
    assert len(offsets) == PARTITIONS, f"only partitions {sorted(offsets)} were used"
