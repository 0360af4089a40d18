"""The storage engine seen from real clients: a full disk, clean and unclean restarts, acks=1
data after a process crash, retention, DeleteRecords and ListOffsets by timestamp.

Each test starts the real broker; the full-disk test gives it a small filesystem of its own (a
loop-mounted ext4 image, or a size-limited tmpfs where loop devices are unavailable), which
needs root.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest
from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic, OffsetSpec

from kafka_wire import WireConnection, record_batch
from support import HOST, Broker, create_topic, list_topics

KAFKA_STORAGE_ERROR = 56
OFFSET_OUT_OF_RANGE = 1
READ_TIMEOUT_S = 20
SMALL_FS_MIB = 48


def read_partition(bootstrap: str, topic: str, partition: int = 0,
                   start: int = 0) -> list[tuple[int, bytes]]:
    """(offset, value) of every record from `start` to the high watermark."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "storage-reader",
                         "enable.auto.commit": False, "auto.offset.reset": "earliest"})
    try:
        low, high = consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=10)
        consumer.assign([TopicPartition(topic, partition, max(start, low))])
        records = []
        deadline = time.monotonic() + READ_TIMEOUT_S
        while (not records or records[-1][0] < high - 1) and high > max(start, low):
            assert time.monotonic() < deadline, f"read {len(records)} records of {topic} by deadline"
            message = consumer.poll(0.5)
            if message is None:
                continue
            if message.error():
                raise KafkaException(message.error())
            records.append((message.offset(), message.value()))
        return records
    finally:
        consumer.close()


def watermarks(bootstrap: str, topic: str, partition: int = 0) -> tuple[int, int]:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "storage-watermarks"})
    try:
        return consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=10)
    finally:
        consumer.close()


class SmallFilesystem:
    """A filesystem of `SMALL_FS_MIB` MiB mounted at `mount_point`: ext4 on a loop device if the
    machine allows, else tmpfs."""

    def __init__(self, work_dir: Path, mount_point: Path):
        self.mount_point = mount_point
        self.image = work_dir / "small-fs.img"
        self.kind = None

    def mount(self) -> str:
        if os.geteuid() != 0:
            pytest.skip("mounting a small filesystem needs root")
        self.mount_point.mkdir(parents=True, exist_ok=True)
        with open(self.image, "wb") as image:
            image.truncate(SMALL_FS_MIB << 20)
        attempts = [
            ("ext4 on a loop device", [["mkfs.ext4", "-q", "-F", str(self.image)],
                                       ["mount", "-o", "loop", str(self.image), str(self.mount_point)]]),
            ("tmpfs", [["mount", "-t", "tmpfs", "-o", f"size={SMALL_FS_MIB}m", "tmpfs",
                        str(self.mount_point)]]),
        ]
        reasons = []
        for kind, commands in attempts:
            for command in commands:
                result = subprocess.run(command, capture_output=True, text=True)
                if result.returncode != 0:
                    reasons.append(f"{kind}: {' '.join(command)}: {result.stderr.strip()}")
                    break
            else:
                self.kind = kind
                return kind
        pytest.skip("cannot mount a small filesystem: " + "; ".join(reasons))

    def fill(self, leave_bytes: int) -> Path:
        """Takes all free space but `leave_bytes` with a filler file."""
        filler = self.mount_point / "filler"
        free = shutil.disk_usage(self.mount_point).free
        with open(filler, "wb") as file:
            chunk = b"\0" * (1 << 20)
            remaining = max(free - leave_bytes, 0)
            while remaining > 0:
                written = file.write(chunk[:min(len(chunk), remaining)])
                remaining -= written
            file.flush()
            os.fsync(file.fileno())
        return filler

    def unmount(self) -> None:
        if self.kind:
            subprocess.run(["umount", "-l", str(self.mount_point)], capture_output=True)
            self.kind = None


def test_full_disk_refuses_writes_keeps_acknowledged_data_and_recovers(tmp_path):
    """With its log directory full, produce gets KAFKA_STORAGE_ERROR (56) while the broker keeps
    serving: every record acknowledged before reads back intact, and once space returns the
    same partition takes writes again. A restart then finds everything acknowledged."""
    broker = Broker(tmp_path / "broker")
    (tmp_path / "broker").mkdir()
    filesystem = SmallFilesystem(tmp_path, broker.data_dir)
    kind = filesystem.mount()
    print(f"log directory on {kind}")
    try:
        broker.start()
        topic = "full-disk"
        create_topic(broker, topic)
        # The reader below is a group's consumer: its coordinator's topic exists before the
        # disk fills, as on any broker in service (creating its 50 partitions on a full disk
        # would fail the directory, as it does in Kafka).
        assert read_partition(broker.bootstrap, topic) == []
        deadline = time.monotonic() + 30
        while "__consumer_offsets" not in list_topics(broker):
            assert time.monotonic() < deadline, "no __consumer_offsets after a group's consumer"
            time.sleep(0.2)
        acknowledged: dict[int, bytes] = {}
        batch_values = [bytes([65 + n % 26]) * (256 << 10) for n in range(64)]
        filler = filesystem.fill(leave_bytes=3 << 20)
        codes = []
        with WireConnection(HOST, broker.port) as connection:
            for value in batch_values:
                code, offset = connection.produce({topic: {0: record_batch([(None, value)])}},
                                                  acks=-1)[(topic, 0)]
                codes.append(code)
                if code == 0:
                    acknowledged[offset] = value
                elif code == KAFKA_STORAGE_ERROR:
                    if codes.count(KAFKA_STORAGE_ERROR) >= 3:
                        break
                else:
                    pytest.fail(f"unexpected error code {code} (codes so far {codes})")
        assert KAFKA_STORAGE_ERROR in codes, f"the disk never filled: codes {codes}"
        assert acknowledged, "nothing was acknowledged before the disk filled"
        assert broker.is_running()

        # Everything acknowledged reads back; the broker still answers metadata and fetches.
        served = dict(read_partition(broker.bootstrap, topic))
        for offset, value in acknowledged.items():
            assert served.get(offset) == value, f"acknowledged offset {offset} not served intact"

        # Space returns: writes succeed again on the same partition.
        filler.unlink()
        with WireConnection(HOST, broker.port) as connection:
            deadline = time.monotonic() + 10
            while True:
                code, offset = connection.produce(
                    {topic: {0: record_batch([(None, b"after")])}}, acks=-1)[(topic, 0)]
                if code == 0 or time.monotonic() > deadline:
                    break
                time.sleep(0.2)
        assert code == 0, f"produce still fails with {code} after space returned"
        acknowledged[offset] = b"after"

        broker.restart()
        served = dict(read_partition(broker.bootstrap, topic))
        missing = [o for o, v in acknowledged.items() if served.get(o) != v]
        assert not missing, f"acknowledged offsets lost or changed after restart: {missing[:5]}"
    finally:
        broker.kill()
        filesystem.unmount()


def test_clean_shutdown_skips_recovery_and_sigkill_does_not(start_broker):
    """SIGTERM closes every log and leaves the clean-shutdown marker, so the next start logs no
    recovery; after SIGKILL the next start recovers, and both keep every record."""
    broker = start_broker()
    topic = "shutdowns"
    create_topic(broker, topic)
    producer = Producer({"bootstrap.servers": broker.bootstrap, "acks": "all"})
    for index in range(500):
        producer.produce(topic, value=f"v{index}".encode())
    assert producer.flush(20) == 0

    broker.restart()
    assert "stopped cleanly" in broker.log_text()
    assert "no clean-shutdown marker" not in broker.log_text(since_last_start=True)
    assert len(read_partition(broker.bootstrap, topic)) == 500

    broker.restart(sig=9)
    assert "no clean-shutdown marker" in broker.log_text(since_last_start=True)
    assert [value for _, value in read_partition(broker.bootstrap, topic)] == [
        f"v{index}".encode() for index in range(500)]


def test_acks_one_data_reaches_the_disk_before_a_process_crash(start_broker):
    """acks=1 records are written (not fsynced) behind the appends within about 100 ms, so a
    SIGKILL of the broker half a second later loses none of them."""
    broker = start_broker()
    topic = "acks-one"
    create_topic(broker, topic)
    producer = Producer({"bootstrap.servers": broker.bootstrap, "acks": 1, "linger.ms": 0})
    for index in range(300):
        producer.produce(topic, value=f"one-{index}".encode())
    assert producer.flush(20) == 0
    time.sleep(0.5)
    broker.restart(sig=9)
    assert [value for _, value in read_partition(broker.bootstrap, topic)] == [
        f"one-{index}".encode() for index in range(300)]


def test_retention_deletes_old_segments(start_broker):
    """A topic with small segments and retention.ms loses its old segments at the next
    retention check: the low watermark moves up and consumers from the beginning start there."""
    broker = start_broker({"log.retention.check.interval.ms": 300})
    topic = "short-retention"
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    futures = admin.create_topics([NewTopic(topic, 1, 1, config={
        "segment.bytes": "16384", "retention.ms": "2000"})])
    futures[topic].result(10)
    old = int(time.time() * 1000) - 60_000
    producer = Producer({"bootstrap.servers": broker.bootstrap, "acks": "all", "linger.ms": 0})
    for index in range(200):
        producer.produce(topic, value=b"x" * 500, timestamp=old)
        if index % 20 == 19:
            producer.flush(10)
    for index in range(20):
        producer.produce(topic, value=f"young-{index}".encode())
    assert producer.flush(20) == 0

    deadline = time.monotonic() + 15
    while watermarks(broker.bootstrap, topic)[0] == 0 and time.monotonic() < deadline:
        time.sleep(0.2)
    low, high = watermarks(broker.bootstrap, topic)
    assert 0 < low <= 200, f"low watermark {low}"
    assert high == 220
    records = read_partition(broker.bootstrap, topic)
    assert records[0][0] == low
    assert records[-20:] == [(200 + i, f"young-{i}".encode()) for i in range(20)]
    assert "retention deleted" in broker.log_text()


def test_delete_records_moves_the_low_watermark_and_survives_restart(start_broker):
    """AdminClient.delete_records (DeleteRecords) moves the log start; reads begin there, it is
    still there after a restart, and an offset past the end is refused."""
    broker = start_broker({"log.segment.bytes": 8192})
    topic = "delete-records"
    create_topic(broker, topic)
    producer = Producer({"bootstrap.servers": broker.bootstrap, "acks": "all", "linger.ms": 0})
    for index in range(300):
        producer.produce(topic, value=f"r{index:03}".encode() * 20)
        if index % 50 == 49:
            producer.flush(10)
    assert producer.flush(20) == 0
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    result = admin.delete_records([TopicPartition(topic, 0, 120)])
    deleted = list(result.values())[0].result(10)
    assert deleted.low_watermark == 120
    assert watermarks(broker.bootstrap, topic) == (120, 300)
    assert read_partition(broker.bootstrap, topic)[0][0] == 120

    too_far = admin.delete_records([TopicPartition(topic, 0, 301)])
    with pytest.raises(KafkaException) as refused:
        list(too_far.values())[0].result(10)
    assert refused.value.args[0].code() == OFFSET_OUT_OF_RANGE

    broker.restart(sig=9)
    assert watermarks(broker.bootstrap, topic) == (120, 300)
    records = read_partition(broker.bootstrap, topic)
    assert [offset for offset, _ in records] == list(range(120, 300))


def test_offsets_for_times_uses_the_time_index(start_broker):
    """ListOffsets by timestamp (consumer.offsets_for_times) finds the first record at or after a
    time across many segments, before and after a restart; a time past the end gives -1; and
    AdminClient.list_offsets with OffsetSpec.max_timestamp() (ListOffsets v7) finds the record
    with the largest timestamp."""
    broker = start_broker({"log.segment.bytes": 8192, "log.index.interval.bytes": 512})
    topic = "by-time"
    create_topic(broker, topic)
    base = int(time.time() * 1000) - 3_600_000
    producer = Producer({"bootstrap.servers": broker.bootstrap, "acks": "all", "linger.ms": 0})
    for index in range(400):
        producer.produce(topic, value=b"t" * 200, timestamp=base + index * 1000)
        if index % 40 == 39:
            producer.flush(10)
    assert producer.flush(20) == 0

    def lookup(timestamp: int) -> int:
        consumer = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "by-time"})
        try:
            found = consumer.offsets_for_times([TopicPartition(topic, 0, timestamp)], timeout=10)
            return found[0].offset
        finally:
            consumer.close()

    def max_timestamp() -> tuple[int, int]:
        admin = AdminClient({"bootstrap.servers": broker.bootstrap})
        futures = admin.list_offsets({TopicPartition(topic, 0): OffsetSpec.max_timestamp()})
        info = list(futures.values())[0].result(10)
        return info.offset, info.timestamp

    expected = {base - 5: 0, base: 0, base + 1: 1, base + 123_456: 124, base + 399_000: 399,
                base + 399_001: -1}
    assert {t: lookup(t) for t in expected} == expected
    assert max_timestamp() == (399, base + 399_000)
    broker.restart()
    assert {t: lookup(t) for t in expected} == expected
    assert max_timestamp() == (399, base + 399_000)
