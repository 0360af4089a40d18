"""Log compaction (cleanup.policy=compact) on the real broker: the latest value of every key stays
at its original offset, older values before the active segment go, tombstones stay until
delete.retention.ms has passed, and compacted __consumer_offsets still loads the latest commits."""

from __future__ import annotations

import re
import time

from confluent_kafka import Consumer, KafkaError, TopicPartition

from clients import confluent_produce
from support import Broker, describe_run, run_script

DEADLINE_S = 45
KEYS = 8
UPDATES = 1200
COMPACTED_LINE = r"compacted {}-0: (\d+) segments, kept (\d+) of (\d+) records"


def create_compacted_topic(broker: Broker, topic: str, partitions: int = 1,
                           delete_retention_ms: int = 600_000) -> None:
    result = run_script(
        "flink-topics.sh", "--bootstrap-server", broker.bootstrap, "--create", "--topic", topic,
        "--partitions", str(partitions), "--config", "cleanup.policy=compact",
        "--config", "segment.bytes=1024", "--config", f"delete.retention.ms={delete_retention_ms}",
    )
    assert f"Created topic {topic}." in result.stdout, describe_run(result)


def consume_partition(bootstrap: str, topic: str,
                      start: int = 0) -> list[tuple[int, str, str | None]]:
    """Every record of partition 0 from `start` to its end: (offset, key, value or None)."""
    consumer = Consumer({
        "bootstrap.servers": bootstrap, "group.id": "compaction-reader-unused",
        "enable.auto.commit": False, "enable.partition.eof": True, "auto.offset.reset": "error",
    })
    records = []
    try:
        consumer.assign([TopicPartition(topic, 0, start)])
        deadline = time.monotonic() + DEADLINE_S
        while True:
            assert time.monotonic() < deadline, f"no end of {topic} after {len(records)} records"
            messages = consumer.consume(num_messages=1000, timeout=0.5)
            errors = [m.error() for m in messages if m.error() is not None]
            assert all(e.code() == KafkaError._PARTITION_EOF for e in errors), errors
            for message in messages:
                if message.error() is None:
                    value = message.value()
                    records.append((message.offset(), message.key().decode(),
                                    value.decode() if value is not None else None))
            if errors:
                return records
    finally:
        consumer.close()


def segment_bases(broker: Broker, partition: str) -> list[int]:
    return sorted(int(path.stem) for path in (broker.data_dir / partition).glob("*.log"))


def produce_history(broker: Broker, topic: str) -> dict[int, tuple[str, str | None]]:
    """Updates to KEYS keys in small batches (many 1 KiB segments), a tombstone for key
    `gone` early on; returns what each offset holds."""
    messages = [("gone", "first"), ("gone", None)]
    messages += [(f"key-{index % KEYS}", f"key-{index % KEYS}.{index}") for index in range(UPDATES)]
    reports = confluent_produce(broker.bootstrap, topic, messages,
                                **{"linger.ms": 0, "batch.num.messages": 4})
    return {offset: message for (_, offset), message in zip(reports, messages)}


def wait_until_compacted(broker: Broker, topic: str, written: dict) -> list:
    """Consumes the topic until compaction has removed the older values; returns the records."""
    deadline = time.monotonic() + DEADLINE_S
    while True:
        records = consume_partition(broker.bootstrap, topic)
        active_base = segment_bases(broker, f"{topic}-0")[-1]
        active_records = sum(1 for offset in written if offset >= active_base)
        if len(records) <= KEYS + 1 + active_records:
            assert broker.wait_for_log(COMPACTED_LINE.format(re.escape(topic)))
            return records
        assert time.monotonic() < deadline, (
            f"{topic}: still {len(records)} of {len(written)} records after {DEADLINE_S}s")
        time.sleep(0.5)


def check_compacted(records: list, written: dict, active_base: int) -> None:
    """Every record is the one written at its offset; the latest value of every key is there;
    below the active segment no key appears twice, nor a key that has a newer record."""
    offsets = [offset for offset, _, _ in records]
    assert offsets == sorted(set(offsets)), "offsets not strictly increasing"
    for offset, key, value in records:
        assert written[offset] == (key, value), f"offset {offset} holds {key}={value}"
    latest = {key: offset for offset, (key, _) in sorted(written.items())}
    present = {offset for offset, _, _ in records}
    for key, offset in latest.items():
        if written[offset][1] is not None:
            assert offset in present, f"latest value of {key} (offset {offset}) is gone"
    below = [(offset, key) for offset, key, _ in records if offset < active_base]
    for offset, key in below:
        assert latest[key] == offset, f"{key} at {offset} is not its latest ({latest[key]})"


def test_compaction_keeps_latest_value_per_key(broker):
    """1,200 updates to 8 keys across ~1 KiB segments compact down to the latest value of each
    key at its original offset; a young tombstone stays, the log end does not move, and a
    fetch at a compacted-away offset starts at the next survivor."""
    topic = "compacted"
    create_compacted_topic(broker, topic)
    written = produce_history(broker, topic)
    log_end = max(written) + 1
    assert len(segment_bases(broker, f"{topic}-0")) > 20, "the history spans many segments"

    records = wait_until_compacted(broker, topic, written)
    active_base = segment_bases(broker, f"{topic}-0")[-1]
    check_compacted(records, written, active_base)
    assert (1, "gone", None) in records, "tombstone younger than delete.retention.ms kept"
    assert segment_bases(broker, f"{topic}-0")[0] == 0, "log start offset kept"

    # The log end is unchanged: the next record gets the next offset.
    reports = confluent_produce(broker.bootstrap, topic, [("key-0", "after")])
    assert reports == [(0, log_end)]
    # A fetch from an offset that compaction removed starts at the next surviving record.
    removed = next(offset for offset in range(2, log_end) if offset not in {r[0] for r in records})
    survivor = next(r for r in records if r[0] > removed)
    assert consume_partition(broker.bootstrap, topic, start=removed)[0] == survivor

    matches = broker.wait_for_log(COMPACTED_LINE.format(re.escape(topic)))
    segments, kept, read = map(int, matches[0])
    assert segments > 1 and kept < read, matches[0]


def test_compaction_drops_expired_tombstones(broker):
    """With delete.retention.ms=0 a tombstone, and the value it deleted, are gone once compacted."""
    topic = "tombstones"
    create_compacted_topic(broker, topic, delete_retention_ms=0)
    written = produce_history(broker, topic)
    records = wait_until_compacted(broker, topic, written)
    check_compacted(records, written, segment_bases(broker, f"{topic}-0")[-1])
    assert not [r for r in records if r[1] == "gone"], "expired tombstone still there"


def test_compacted_consumer_offsets_load_latest_commits(start_broker):
    """Hundreds of commits to a compacted __consumer_offsets with 1 KiB segments, compacted, then
    a restart: the group reads back the latest offset of every partition, and a deleted offset
    stays deleted."""
    broker = start_broker()
    create_compacted_topic(broker, "__consumer_offsets")
    run_script("flink-topics.sh", "--bootstrap-server", broker.bootstrap, "--create",
               "--topic", "data", "--partitions", "3")
    group = "compaction-group"
    consumer = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": group,
                         "enable.auto.commit": False})
    try:
        for round_number in range(1, 301):
            offsets = [TopicPartition("data", p, round_number * 10 + p) for p in range(3)]
            consumer.commit(offsets=offsets, asynchronous=False)
    finally:
        consumer.close()
    deleted = run_script("flink-consumer-groups.sh", "--bootstrap-server", broker.bootstrap,
                         "--delete-offsets", "--group", group, "--topic", "data:2")
    assert "Successful" in deleted.stdout, describe_run(deleted)
    segments = len(segment_bases(broker, "__consumer_offsets-0"))
    # A compaction may already have run while the commits were still arriving: wait for one
    # that started after the deletion. Compaction reads the whole log, so the deletion in the
    # active segment already counts.
    compacted_before = len(broker.wait_for_log(COMPACTED_LINE.format("__consumer_offsets"),
                                               timeout=0))
    # The 900 commits filled many 1 KiB segments, unless a compaction has already merged them.
    assert segments > 20 or compacted_before, (segments, compacted_before)
    deadline = time.monotonic() + DEADLINE_S
    while True:
        matches = broker.wait_for_log(COMPACTED_LINE.format("__consumer_offsets"), timeout=1)
        if len(matches) > compacted_before and int(matches[-1][1]) <= 10:
            break
        assert time.monotonic() < deadline, f"__consumer_offsets not compacted: {matches}"

    broker.restart()
    loaded = broker.wait_for_log(
        r"loaded (\d+) (?:group and )?offset record\(s\) from __consumer_offsets-0",
        since_last_start=True)
    assert loaded and int(loaded[0]) < 100, f"the compacted log still loads {loaded} records"
    consumer = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": group,
                         "enable.auto.commit": False})
    try:
        committed = consumer.committed([TopicPartition("data", p) for p in range(3)], timeout=15)
    finally:
        consumer.close()
    assert [(tp.partition, tp.offset) for tp in committed] == [(0, 3000), (1, 3001), (2, -1001)]


def test_compacted_topic_refuses_records_without_key(broker):
    """A record without a key sent to a compacted topic gets INVALID_RECORD, as in Kafka."""
    from confluent_kafka import Producer

    run_script("flink-topics.sh", "--bootstrap-server", broker.bootstrap, "--create",
               "--topic", "keys-required", "--config", "cleanup.policy=compact")
    errors = []
    producer = Producer({"bootstrap.servers": broker.bootstrap, "retries": 0})
    producer.produce("keys-required", value=b"no key", on_delivery=lambda error, _: errors.append(error))
    assert producer.flush(30) == 0  # Separately: Kafka refuses the whole batch holding it.
    producer.produce("keys-required", key=b"k", value=b"keyed", on_delivery=lambda error, _: errors.append(error))
    assert producer.flush(30) == 0
    assert errors[0] is not None and errors[0].code() == KafkaError.INVALID_RECORD, errors
    assert errors[1] is None, errors
