"""Thread-per-core: partitions of one topic live on different shards, and one request that
spans them all is answered per partition."""

from __future__ import annotations

import os
import time

from clients import confluent_consume
from kafka_wire import WireConnection, record_batch
from support import HOST, check_history, create_topic, executor_cpus

PARTITIONS = 6
RECORDS_PER_PARTITION = 50


def test_default_placement_pins_shards_from_node_id(start_broker):
    """cpu.pinning=auto: shard i is pinned to CPU (node.id + i) mod n of the process's CPU set, and
    the controller shares shard 0's CPU; the log says so."""
    broker = start_broker({"shard.count": 2})
    allowed = sorted(os.sched_getaffinity(broker.process.pid))
    start = 1 % len(allowed)  # node.id 1, as config/server.properties has it.
    expected = {f"shard-{index}": {allowed[(start + index) % len(allowed)]} for index in range(2)}
    expected["controller"] = expected["shard-0"]
    assert executor_cpus(broker.process.pid) == expected
    assert broker.wait_for_log(r"CPU placement spread \(cpu.pinning=auto"), broker.log_tail()
    # idle.poll.time.us=auto: no shard polls before sleeping.
    assert broker.wait_for_log(r"Idle polling \(idle.poll.time.us=auto\): \[0ns, 0ns\]"), \
        broker.log_tail()


def test_unpinned_executors_may_use_the_whole_cpu_set(start_broker):
    """cpu.pinning=none: no executor thread is pinned; each may run on any CPU of the set."""
    broker = start_broker({"shard.count": 2, "cpu.pinning": "none", "idle.poll.time.us": 50})
    allowed = os.sched_getaffinity(broker.process.pid)
    cpus = executor_cpus(broker.process.pid)
    assert sorted(cpus) == ["controller", "shard-0", "shard-1"], cpus
    assert all(threads == allowed for threads in cpus.values()), (allowed, cpus)
    assert broker.wait_for_log(r"CPU placement none"), broker.log_tail()
    # Unpinned shards share CPUs: none polls while idle, even when asked to.
    assert broker.wait_for_log(r"Idle polling \(idle.poll.time.us=50\): \[0ns, 0ns\]"), \
        broker.log_tail()


def test_one_produce_request_spanning_shards(start_broker):
    """One ProduceRequest over 6 partitions on 2 shards: every partition answers and is readable."""
    broker = start_broker({"shard.count": 2})
    topic = "cross-shard"
    create_topic(broker, topic, partitions=PARTITIONS)

    pattern = rf"partition {topic}-(\d+) is on shard (\d+)"
    deadline = time.monotonic() + 10
    while len(placement := dict(broker.wait_for_log(pattern))) < PARTITIONS:
        assert time.monotonic() < deadline, f"log names placements for only {placement}"
        time.sleep(0.1)
    assert sorted(map(int, placement)) == list(range(PARTITIONS)), placement
    shards = set(placement.values())
    assert len(shards) >= 2, f"all partitions on shard(s) {shards}: {placement}"

    sent = []
    batches = {}
    for partition in range(PARTITIONS):
        records = [(f"p{partition}".encode(), f"p{partition}.{n:06d}.{partition}-{n}".encode())
                   for n in range(RECORDS_PER_PARTITION)]
        sent += [(key.decode(), value.decode()) for key, value in records]
        batches[partition] = record_batch(records)

    with WireConnection(HOST, broker.port) as connection:
        for attempt in range(2):  # The second request proves offsets advance per partition.
            answers = connection.produce({topic: batches}, acks=-1)
            assert sorted(answers) == [(topic, p) for p in range(PARTITIONS)], answers
            for (_, partition), (error_code, base_offset) in answers.items():
                assert error_code == 0, f"partition {partition}: error_code {error_code}"
                assert base_offset == attempt * RECORDS_PER_PARTITION, (
                    f"partition {partition}: base_offset {base_offset} on request {attempt}")

        fetched = connection.fetch(topic, {p: 0 for p in range(PARTITIONS)})
        for partition in range(PARTITIONS):
            error_code, high_watermark, records = fetched[partition]
            assert error_code == 0, f"fetch partition {partition}: error_code {error_code}"
            assert high_watermark == 2 * RECORDS_PER_PARTITION
            assert records, f"fetch partition {partition} returned no records"
            assert records[0][0] == 0

    consumed = confluent_consume(broker.bootstrap, topic, PARTITIONS, 2 * len(sent))
    assert len(consumed) == 2 * len(sent)
    # Each request's copy of the records, checked as one history per copy.
    for copy in range(2):
        rows = [row for row in consumed
                if copy * RECORDS_PER_PARTITION <= row[1] < (copy + 1) * RECORDS_PER_PARTITION]
        rebased = [(p, o - copy * RECORDS_PER_PARTITION, k, v) for p, o, k, v in rows]
        check_history(sent, rebased, PARTITIONS)
