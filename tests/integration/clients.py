"""Produce and consume keyed histories with confluent-kafka and kafka-python, bounded in time.

Consumers `assign` partitions and start at explicit offsets: no group membership, no commits.
"""

from __future__ import annotations

import time

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, Producer, TopicPartition
from kafka import KafkaConsumer, KafkaProducer
from kafka import TopicPartition as KafkaPythonTopicPartition

DEADLINE_S = 90


def confluent_produce(bootstrap: str, topic: str, messages: list[tuple],
                      acks: str = "all", **config) -> list[tuple[int, int]]:
    """Produce (key, value) or (key, value, headers) messages with confluent-kafka; returns
    (partition, offset) per message, in send order. `config` adds or overrides producer settings.

    With acks=0 the broker sends no answer, so offsets are unknown (-1).
    """
    reports: list[tuple[int, int] | None] = [None] * len(messages)
    errors: list[str] = []

    def delivered(index):
        def callback(error, message):
            if error is not None:
                errors.append(f"message {index}: {error}")
            else:
                reports[index] = (message.partition(), message.offset())
        return callback

    producer = Producer({"bootstrap.servers": bootstrap, "acks": acks, "linger.ms": 5,
                         "message.timeout.ms": 60_000, **config})
    deadline = time.monotonic() + DEADLINE_S
    for index, (key, value, *headers) in enumerate(messages):
        while True:
            try:
                producer.produce(topic, key=key, value=value, headers=headers[0] if headers else None,
                                 on_delivery=delivered(index))
                break
            except BufferError:
                assert time.monotonic() < deadline, "producer queue stayed full"
                producer.poll(0.1)
        producer.poll(0)
    remaining = producer.flush(max(1.0, deadline - time.monotonic()))
    assert remaining == 0, f"{remaining} messages not delivered in time; errors: {errors[:5]}"
    assert not errors, f"{len(errors)} delivery errors, e.g. {errors[:5]}"
    assert all(report is not None for report in reports)
    return reports


def confluent_consume(bootstrap: str, topic: str, partitions: int, expected: int,
                      start=0, convert=None) -> list:
    """Consume `expected` messages from all partitions; returns (partition, offset, key, value),
    or what `convert` makes of each message.

    Stops once every partition reached its end and `expected` messages arrived, or at a deadline.
    """
    convert = convert or _as_text_tuple
    consumer = Consumer({
        "bootstrap.servers": bootstrap,
        "group.id": "flink-integration-unused",  # Required by the library; never joined.
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "enable.partition.eof": True,
        "auto.offset.reset": "error",
    })
    consumed = []
    at_end: set[int] = set()
    try:
        consumer.assign([TopicPartition(topic, p, start) for p in range(partitions)])
        deadline = time.monotonic() + DEADLINE_S
        while len(consumed) < expected or len(at_end) < partitions:
            assert time.monotonic() < deadline, (
                f"consumed {len(consumed)} of {expected}; partitions at end: {sorted(at_end)}")
            for message in consumer.consume(num_messages=1000, timeout=0.5):
                error = message.error()
                if error is not None:
                    assert error.code() == KafkaError._PARTITION_EOF, f"consume error: {error}"
                    at_end.add(message.partition())
                    continue
                at_end.discard(message.partition())
                consumed.append(convert(message))
    finally:
        consumer.close()
    return consumed


def _as_text_tuple(message) -> tuple[int, int, str | None, str]:
    key = message.key()
    return (message.partition(), message.offset(), key.decode() if key is not None else None,
            message.value().decode())


def kafka_python_produce(bootstrap: str, topic: str, messages: list[tuple[str, str]],
                         acks="all", idempotent: bool = False) -> list[tuple[int, int]]:
    """Produce with kafka-python; idempotence (its default since 3.0) needs InitProducerId."""
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks=acks, linger_ms=5,
                             enable_idempotence=idempotent,
                             request_timeout_ms=30_000)
    try:
        futures = [producer.send(topic, key=key.encode(), value=value.encode())
                   for key, value in messages]
        producer.flush(timeout=DEADLINE_S)
        return [(f.get(timeout=10).partition, f.get(timeout=10).offset) for f in futures]
    finally:
        producer.close(timeout=10)


def kafka_python_consume(bootstrap: str, topic: str, partitions: int,
                         expected: int) -> list[tuple[int, int, str, str]]:
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None,
                             enable_auto_commit=False, auto_offset_reset="earliest")
    consumed = []
    try:
        assigned = [KafkaPythonTopicPartition(topic, p) for p in range(partitions)]
        consumer.assign(assigned)
        consumer.seek_to_beginning(*assigned)
        deadline = time.monotonic() + DEADLINE_S
        while len(consumed) < expected:
            assert time.monotonic() < deadline, f"consumed {len(consumed)} of {expected}"
            batches = consumer.poll(timeout_ms=500, max_records=2000)
            for partition, records in sorted(batches.items(), key=lambda item: item[0].partition):
                for record in records:
                    consumed.append((partition.partition, record.offset, record.key.decode(),
                                     record.value.decode()))
        # Anything beyond what was sent would be a duplicate: give it a moment to show up.
        for partition, records in consumer.poll(timeout_ms=500).items():
            for record in records:
                consumed.append((partition.partition, record.offset, record.key.decode(),
                                 record.value.decode()))
    finally:
        consumer.close()
    return consumed


def check_reports(reports: list[tuple[int, int]], consumed: list[tuple[int, int, str, str]],
                  messages: list[tuple[str, str]]) -> None:
    """Each acknowledged (partition, offset) holds exactly the message that was sent."""
    at = {(partition, offset): value for partition, offset, _, value in consumed}
    for (partition, offset), (_, value) in zip(reports, messages):
        assert at.get((partition, offset)) == value, (
            f"acknowledged at {partition}/{offset} but that holds {at.get((partition, offset))!r},"
            f" not {value!r}")


__all__ = ["OFFSET_BEGINNING", "confluent_produce", "confluent_consume", "kafka_python_produce",
           "kafka_python_consume", "check_reports"]
