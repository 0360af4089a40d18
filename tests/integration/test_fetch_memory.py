"""What a fetch costs the broker is bounded by what the log holds and by the response limits,
not by what the request asks: 100 connections that each ask for 2 GiB at once get every record
the partition holds, and the broker's peak resident memory grows by no more than the data
they were sent plus a fixed allowance."""

from __future__ import annotations

import threading

from confluent_kafka import Producer

from kafka_wire import WireConnection, decode_records
from kafka.protocol.consumer import FetchRequest, FetchResponse
from support import HOST, create_topic

CONNECTIONS = 100
ASKED_BYTES = 2**31 - 1
RECORDS = 2048
RECORD_BYTES = 1024
# The stated bound: each of the 100 responses carries the whole partition (about 2 MiB), so at
# most their sum can be held at once; allowance for buffers, tasks and allocator slack.
ALLOWANCE_KIB = 96 * 1024


def memory_kib(pid: int) -> dict[str, int]:
    with open(f"/proc/{pid}/status") as status:
        return {line.split(":")[0]: int(line.split()[1]) for line in status
                if line.startswith(("VmRSS:", "VmHWM:"))}


def reset_peak(pid: int) -> None:
    """VmHWM back to the current VmRSS (clear_refs 5), so the peak after is this test's."""
    with open(f"/proc/{pid}/clear_refs", "w") as clear_refs:
        clear_refs.write("5")


def fetch_everything(topic: str) -> FetchRequest:
    topic_type = FetchRequest.FetchTopic
    partition_type = topic_type.FetchPartition
    return FetchRequest(
        replica_id=-1, max_wait_ms=0, min_bytes=1, max_bytes=ASKED_BYTES, isolation_level=0,
        session_id=0, session_epoch=-1,
        topics=[topic_type(topic=topic, partitions=[
            partition_type(partition=0, fetch_offset=0, log_start_offset=-1,
                           partition_max_bytes=ASKED_BYTES)])],
        forgotten_topics_data=[],
    )


def test_hundred_fetches_asking_2_gib_cost_what_the_log_holds(broker):
    topic = "fetch-memory"
    create_topic(broker, topic, 1)
    producer = Producer({"bootstrap.servers": broker.bootstrap, "linger.ms": 5})
    for index in range(RECORDS):
        producer.produce(topic, value=index.to_bytes(4, "big") * (RECORD_BYTES // 4), partition=0)
    assert producer.flush(30) == 0
    data_kib = RECORDS * RECORD_BYTES // 1024

    connections = [WireConnection(HOST, broker.port, timeout=60) for _ in range(CONNECTIONS)]
    try:
        version = connections[0].version_for(FetchRequest.API_KEY, 4, 10)
        pid = broker.process.pid
        reset_peak(pid)
        before = memory_kib(pid)
        # Every request is on the wire before any response is read.
        ids = [connection.send_request(fetch_everything(topic), version)
               for connection in connections]
        answers: list[object] = [None] * CONNECTIONS

        def read(index: int) -> None:
            frame = connections[index].receive_frame()
            answers[index] = FetchResponse.decode(frame, version=version, header=True,
                                                  framed=True)

        readers = [threading.Thread(target=read, args=(index,)) for index in range(CONNECTIONS)]
        for reader in readers:
            reader.start()
        for reader in readers:
            reader.join(120)
        after = memory_kib(pid)
    finally:
        for connection in connections:
            connection.close()

    assert broker.is_running()
    for index, answer in enumerate(answers):
        assert answer is not None, f"connection {index} got no answer"
        assert answer.header.correlation_id == ids[index]
        partition = answer.responses[0].partitions[0]
        assert partition.error_code == 0, partition
        offsets = [offset for offset, _, _ in decode_records(partition.records)]
        # Whole batches: the response may stop at a batch boundary but starts at offset 0.
        assert offsets and offsets[0] == 0 and offsets == list(range(len(offsets))), index
    growth = after["VmHWM"] - before["VmRSS"]
    bound = CONNECTIONS * data_kib + ALLOWANCE_KIB
    print(f"peak RSS growth {growth} KiB for {CONNECTIONS} fetches of 2 GiB over "
          f"{data_kib} KiB of data (bound {bound} KiB)")
    assert growth <= bound, f"peak RSS grew {growth} KiB, bound {bound} KiB"
