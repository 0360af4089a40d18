"""Several log directories (JBOD) and the failure of one of them (KIP-112), with a real I/O error.

The failing directory is on ext4 on a loop device whose backing file lives on a tmpfs.
`FailingDisk.fail()` cuts the loop device's capacity to 1 MiB under the mounted filesystem
(LOOP_SET_STATUS64 with a size limit): from then on every read and write of the disk past that
fails in the block layer with EIO, as a dying disk's would, and ext4 aborts its journal (later
writes get EROFS). `heal()` unmounts it, gives the device its size back, repairs the filesystem
with e2fsck and mounts it again: the disk replaced by one holding the same data. Needs root, loop
devices and mkfs.ext4; skipped without them.
"""

from __future__ import annotations

import fcntl
import signal
import os
import shutil
import struct
import subprocess
import time
from pathlib import Path

import pytest
from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic
from kafka.admin import KafkaAdminClient

from cluster import Cluster, eventually
from kafka_wire import WireConnection, record_batch
from support import HOST, Broker, create_topic

KAFKA_STORAGE_ERROR = 56
NOT_LEADER_OR_FOLLOWER = 6
LEADER_NOT_AVAILABLE = 5
# Codes a partition of the failed directory may answer with: its own storage error, then, once the
# controller moved its leadership away, that this broker does not lead it.
OFFLINE_CODES = {KAFKA_STORAGE_ERROR, NOT_LEADER_OR_FOLLOWER, LEADER_NOT_AVAILABLE}
TOPIC = "jbod"
PARTITIONS = 8
LOOP_GET_STATUS64 = 0x4C05
LOOP_SET_STATUS64 = 0x4C04
LOOP_INFO64_BYTES = 232
LOOP_SIZELIMIT_AT = 32  # lo_device, lo_inode, lo_rdevice, lo_offset come first, 8 bytes each.
DISK_MIB = 256
SURVIVING_BYTES = 1 << 20
READ_TIMEOUT_S = 20


def run(command: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run(command, capture_output=True, text=True)


class FailingDisk:
    """A filesystem of its own at `mount_point` that fails on demand with real EIO."""

    def __init__(self, root: Path):
        self.backing = root / "backing"
        self.image = self.backing / "disk.img"
        self.mount_point = root / "disk"
        self.device: str | None = None
        self.mounted = False

    def create(self) -> None:
        if os.geteuid() != 0:
            pytest.skip("a loop device needs root")
        for tool in ("losetup", "mkfs.ext4", "e2fsck", "mount"):
            if shutil.which(tool) is None:
                pytest.skip(f"{tool} is not installed")
        self.backing.mkdir(parents=True, exist_ok=True)
        self.mount_point.mkdir(parents=True, exist_ok=True)
        # On a tmpfs of its own, so that the image is not on the disk the test measures.
        result = run(["mount", "-t", "tmpfs", "-o", f"size={DISK_MIB + 16}m", "tmpfs",
                      str(self.backing)])
        if result.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs: {result.stderr.strip()}")
        with open(self.image, "wb") as image:
            image.truncate(DISK_MIB << 20)
        result = run(["losetup", "--find", "--show", str(self.image)])
        if result.returncode != 0:
            run(["umount", str(self.backing)])
            pytest.skip(f"no loop device: {result.stderr.strip()}")
        self.device = result.stdout.strip()
        result = run(["mkfs.ext4", "-q", "-F", self.device])
        assert result.returncode == 0, result.stderr
        self.mount()

    def mount(self) -> None:
        result = run(["mount", self.device, str(self.mount_point)])
        assert result.returncode == 0, result.stderr
        self.mounted = True

    def _set_size_limit(self, limit: int) -> None:
        fd = os.open(self.device, os.O_RDWR)
        try:
            info = bytearray(LOOP_INFO64_BYTES)
            fcntl.ioctl(fd, LOOP_GET_STATUS64, info)
            struct.pack_into("<Q", info, LOOP_SIZELIMIT_AT, limit)
            fcntl.ioctl(fd, LOOP_SET_STATUS64, bytes(info))
        finally:
            os.close(fd)

    def fail(self) -> None:
        """Every I/O past the first MiB of the disk fails with EIO from now on."""
        self._set_size_limit(SURVIVING_BYTES)

    def heal(self) -> None:
        """The disk back whole, its filesystem repaired and mounted again (nothing may use it)."""
        result = run(["umount", str(self.mount_point)])
        assert result.returncode == 0, result.stderr
        self.mounted = False
        self._set_size_limit(0)
        result = run(["e2fsck", "-fy", self.device])
        assert result.returncode in (0, 1, 2), f"e2fsck: {result.stdout}{result.stderr}"
        self.mount()

    def destroy(self) -> None:
        if self.mounted:
            run(["umount", "-l", str(self.mount_point)])
        if self.device:
            run(["losetup", "-d", self.device])
        run(["umount", "-l", str(self.backing)])


@pytest.fixture
def failing_disk(tmp_path):
    disk = FailingDisk(tmp_path / "failing")
    disk.create()
    yield disk
    disk.destroy()


def partitions_in(directory: Path) -> set[int]:
    return {p for p in range(PARTITIONS) if (directory / f"{TOPIC}-{p}").is_dir()}


def produce_round(connection: WireConnection, round_number: int, acks: int,
                  partitions=range(PARTITIONS)) -> dict[int, tuple[int, int, bytes]]:
    """One batch to each partition in one request: {partition: (code, offset, value)}."""
    values = {p: f"p{p}-r{round_number}".encode() * 64 for p in partitions}
    answers = connection.produce({TOPIC: {p: record_batch([(None, values[p])])
                                          for p in partitions}}, acks=acks)
    return {p: (*answers[(TOPIC, p)], values[p]) for p in partitions}


def produce_before_the_fault(connection: WireConnection, rounds: int,
                             acknowledged: dict[tuple[int, int], bytes]) -> None:
    """`rounds` acks=all rounds, each written and noted in `acknowledged`."""
    for round_number in range(rounds):
        for p, (code, offset, value) in produce_round(connection, round_number, -1).items():
            assert code == 0, f"partition {p} refused a write before the fault: {code}"
            acknowledged[(p, offset)] = value


def read_partition(bootstrap: str, partition: int) -> dict[int, bytes]:
    """{offset: value} of every record of the partition below its high watermark."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "log-dirs-reader",
                         "enable.auto.commit": False, "auto.offset.reset": "earliest"})
    try:
        low, high = consumer.get_watermark_offsets(TopicPartition(TOPIC, partition), timeout=10)
        consumer.assign([TopicPartition(TOPIC, partition, low)])
        records: dict[int, bytes] = {}
        deadline = time.monotonic() + READ_TIMEOUT_S
        while high > low and max(records, default=low - 1) < high - 1:
            assert time.monotonic() < deadline, f"read {len(records)} records of partition {partition}"
            message = consumer.poll(0.5)
            if message is None:
                continue
            if message.error():
                raise KafkaException(message.error())
            records[message.offset()] = message.value()
        return records
    finally:
        consumer.close()


def assert_acknowledged_intact(bootstrap: str, acknowledged: dict[tuple[int, int], bytes],
                               partitions) -> None:
    for partition in partitions:
        served = read_partition(bootstrap, partition)
        for (p, offset), value in acknowledged.items():
            if p == partition:
                assert served.get(offset) == value, \
                    f"acknowledged record {partition}@{offset} lost or changed"


def test_a_failed_log_dir_goes_offline_while_the_others_keep_serving(tmp_path, failing_disk):
    """Partitions spread over two log directories; an EIO on one takes that directory offline:
    its partitions answer KAFKA_STORAGE_ERROR (then NOT_LEADER_OR_FOLLOWER once the controller
    has taken their leadership away), DescribeLogDirs reports it with KAFKA_STORAGE_ERROR, the
    broker logs why, and the partitions of the other directory take writes and serve reads as
    before. After a restart on the repaired disk every acknowledged record is there."""
    good = tmp_path / "good"
    bad = failing_disk.mount_point / "data"
    broker = Broker(tmp_path / "broker", {"log.dirs": f"{good},{bad}"})
    (tmp_path / "broker").mkdir()
    broker.start()
    create_topic(broker, TOPIC, partitions=PARTITIONS)
    on_good, on_bad = partitions_in(good), partitions_in(bad)
    assert on_good and on_bad, f"partitions not spread over both directories: {on_good} {on_bad}"
    assert on_good | on_bad == set(range(PARTITIONS)) and not on_good & on_bad

    acknowledged: dict[tuple[int, int], bytes] = {}
    with WireConnection(HOST, broker.port) as connection:
        produce_before_the_fault(connection, 5, acknowledged)
        failing_disk.fail()
        answers_by_round = []
        deadline = time.monotonic() + 30
        round_number = 5
        while time.monotonic() < deadline:
            answers = produce_round(connection, round_number, 1)
            round_number += 1
            answers_by_round.append({p: code for p, (code, _, _) in answers.items()})
            for p, (code, offset, value) in answers.items():
                if code == 0:
                    acknowledged[(p, offset)] = value
                elif p in on_good:
                    pytest.fail(f"partition {p} of the healthy directory refused a write: {code}")
                else:
                    assert code in OFFLINE_CODES, f"partition {p} answered {code}"
            recent = answers_by_round[-3:]
            if len(recent) == 3 and all(r[p] in OFFLINE_CODES for r in recent for p in on_bad):
                break
            time.sleep(0.2)
        else:
            pytest.fail(f"the failed directory's partitions kept answering: {answers_by_round[-3:]}")
        assert broker.is_running(), "one failed directory of two must not stop the broker"

    assert broker.wait_for_log(rf"Log directory {bad} is offline until the broker restarts: .*"), \
        "the broker did not say which directory failed and why"

    # DescribeLogDirs (kafka-python's admin client) shows the failed directory with its error.
    admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap)
    try:
        results = {entry["log_dir"]: entry for entry in admin.describe_log_dirs()[0]["log_dirs"]}
    finally:
        admin.close()
    assert results[str(bad)]["error_code"] == KAFKA_STORAGE_ERROR
    assert results[str(good)]["error_code"] == 0
    described = {p["partition_index"] for t in results[str(good)]["topics"] if t["name"] == TOPIC
                 for p in t["partitions"]}
    assert described == on_good

    # The controller took the failed replicas' leadership away (no other replica: no leader).
    metadata = AdminClient({"bootstrap.servers": broker.bootstrap}).list_topics(TOPIC, timeout=10)
    leaders = {p: partition.leader for p, partition in metadata.topics[TOPIC].partitions.items()}
    assert all(leaders[p] == -1 for p in on_bad), leaders
    assert all(leaders[p] == 1 for p in on_good), leaders

    assert_acknowledged_intact(broker.bootstrap, acknowledged, on_good)

    # A restart with the disk still dead: the directory is offline again, its partitions are
    # not created afresh in the healthy directory (that would fork their logs), they get no
    # leader, and the healthy directory's partitions serve as before.
    broker.stop()
    broker.start()
    assert broker.wait_for_log(rf"Log directory {bad} is offline", since_last_start=True)
    deadline = time.monotonic() + 15
    while True:
        metadata = AdminClient({"bootstrap.servers": broker.bootstrap}).list_topics(TOPIC,
                                                                                    timeout=10)
        leaders = {p: part.leader for p, part in metadata.topics[TOPIC].partitions.items()}
        if all(leaders[p] == -1 for p in on_bad) or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert all(leaders[p] == -1 for p in on_bad), leaders
    assert partitions_in(good) == on_good, "a failed directory's partition was created elsewhere"
    assert_acknowledged_intact(broker.bootstrap, acknowledged, on_good)

    broker.stop()
    failing_disk.heal()
    broker.start()
    assert_acknowledged_intact(broker.bootstrap, acknowledged, range(PARTITIONS))
    with WireConnection(HOST, broker.port) as connection:
        deadline = time.monotonic() + 15
        while True:
            answers = produce_round(connection, 1000, -1)
            if all(code == 0 for code, _, _ in answers.values()) or time.monotonic() > deadline:
                break
            time.sleep(0.3)
    assert all(code == 0 for code, _, _ in answers.values()), answers
    broker.kill()


def test_the_failure_of_the_only_log_dir_stops_the_broker(tmp_path, failing_disk):
    """With every log directory failed (here the only one, which also holds the metadata log)
    the broker stops, as Kafka's does, saying why; nothing it acknowledged is lost once the disk
    is back."""
    data = failing_disk.mount_point / "data"
    broker = Broker(tmp_path / "broker", {"log.dirs": str(data)})
    (tmp_path / "broker").mkdir()
    broker.start()
    create_topic(broker, TOPIC, partitions=PARTITIONS)
    acknowledged: dict[tuple[int, int], bytes] = {}
    with WireConnection(HOST, broker.port) as connection:
        produce_before_the_fault(connection, 3, acknowledged)
        failing_disk.fail()
        deadline = time.monotonic() + 30
        round_number = 3
        try:
            while broker.is_running() and time.monotonic() < deadline:
                for p, (code, offset, value) in produce_round(connection, round_number, 1).items():
                    if code == 0:
                        acknowledged[(p, offset)] = value
                round_number += 1
                time.sleep(0.1)
        except OSError:
            pass  # The broker went away mid-request.
    try:
        code = broker.process.wait(timeout=max(deadline - time.monotonic(), 1))
    except subprocess.TimeoutExpired:
        pytest.fail("the broker kept running with its only log directory failed")
    assert code == 1, f"exit code {code}"
    assert broker.wait_for_log(r"Shutting down broker 1: every log directory has failed")

    failing_disk.heal()
    broker.start()
    assert_acknowledged_intact(broker.bootstrap, acknowledged, range(PARTITIONS))
    broker.kill()


def test_in_a_cluster_the_failed_replicas_leadership_moves_and_writes_go_on(tmp_path, failing_disk):
    """3 controllers and 3 brokers, a topic of replication factor 3; broker 4 keeps its
    replicas in two log directories. When one fails, broker 4 tells the controller at once
    (its next heartbeat): every partition whose replica on 4 was there gets another leader and
    loses 4 from its ISR, the partitions of 4's healthy directory keep 4 as leader and in sync,
    and an acks=all producer writes on to every partition. Nothing acknowledged is lost."""
    cluster = Cluster(tmp_path / "cluster")
    broker = cluster.nodes[4]
    good, bad = broker.data_dir, failing_disk.mount_point / "data"
    broker.properties["log.dirs"] = f"{good},{bad}"
    broker.properties_path.write_text(
        "".join(f"{key}={value}\n" for key, value in broker.properties.items()))
    try:
        cluster.format()
        cluster.start_all()
        bootstrap = cluster.bootstrap()
        admin = AdminClient({"bootstrap.servers": bootstrap})
        futures = admin.create_topics([NewTopic(TOPIC, num_partitions=PARTITIONS,
                                                replication_factor=3,
                                                config={"min.insync.replicas": "2"})])
        assert futures[TOPIC].result(timeout=20) is None

        def spread():
            on_good, on_bad = partitions_in(good), partitions_in(bad)
            assert on_good | on_bad == set(range(PARTITIONS)), (on_good, on_bad)
            return on_good, on_bad
        on_good, on_bad = eventually(spread, 20, "broker 4 to open every replica")
        assert on_good and on_bad

        acknowledged: dict[tuple[int, int], bytes] = {}
        errors = []

        def delivered(error, message):
            if error is not None:
                errors.append(error)
            else:
                acknowledged[(message.partition(), message.offset())] = message.value()

        producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 5,
                             "message.timeout.ms": 60000})

        def produce(label: str) -> None:
            for n in range(50):
                for p in range(PARTITIONS):
                    producer.produce(TOPIC, f"{label}-{p}-{n}".encode(), partition=p,
                                     on_delivery=delivered)
            assert producer.flush(60) == 0, "records still undelivered"

        produce("before")
        assert not errors, errors
        failing_disk.fail()
        produce("during")

        def moved():
            partitions = cluster.metadata(5).partitions(TOPIC)
            for p in on_bad:
                assert partitions[p].leader not in (-1, 4), (p, partitions[p])
                assert 4 not in partitions[p].isr, (p, partitions[p])
            for p in on_good:
                assert 4 in partitions[p].isr, (p, partitions[p])
        eventually(moved, 30, "the failed replicas' leadership to move")
        produce("after")
        assert not errors, f"acks=all writes failed: {errors[:3]}"
        assert broker.is_running(), "one failed directory of two must not stop broker 4"
        assert broker.wait_for_log(rf"Log directory {bad} is offline until the broker restarts")

        for partition in range(PARTITIONS):
            served = read_partition(bootstrap, partition)
            for (p, offset), value in acknowledged.items():
                if p == partition:
                    assert served.get(offset) == value, f"acknowledged {p}@{offset} lost"
    finally:
        cluster.stop_all(signal.SIGKILL)
