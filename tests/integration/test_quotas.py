"""Client quotas (KIP-13, KIP-55, KIP-219, KIP-546): AlterClientQuotas and DescribeClientQuotas
from kafka-python's encoders on the wire, and the byte rates enforced on confluent-kafka
producers and consumers: a client over its quota is held to it, told so in
`throttle_time_ms`, and other clients go on at full speed.
"""

from __future__ import annotations

import threading
import time

import pytest

import support
from kafka_wire import WireConnection
from support import HOST, Broker

INVALID_REQUEST = 42
QUOTA = 1024 * 1024  # bytes per second
RECORD = b"q" * 8192

shared_broker, _report_shared_broker = support.shared_broker_fixtures("quotas")


def alter(broker, entries, validate_only=False) -> list[tuple[int, str | None]]:
    """AlterClientQuotas v1: `entries` are (entity parts, ops) with ops (key, value or None)."""
    from kafka.protocol.admin import AlterClientQuotasRequest, AlterClientQuotasResponse
    wire_entries = [(list(entity), [(key, value or 0.0, value is None) for key, value in ops])
                    for entity, ops in entries]
    with WireConnection(HOST, broker.port) as connection:
        answer = connection.call(AlterClientQuotasRequest(
            entries=wire_entries, validate_only=validate_only), AlterClientQuotasResponse, 1)
    return [(entry.error_code, entry.error_message) for entry in answer.entries]


def describe(broker, components, strict=False) -> dict:
    """DescribeClientQuotas v1: {entity parts: {key: value}}."""
    from kafka.protocol.admin import DescribeClientQuotasRequest, DescribeClientQuotasResponse
    with WireConnection(HOST, broker.port) as connection:
        answer = connection.call(DescribeClientQuotasRequest(
            components=list(components), strict=strict), DescribeClientQuotasResponse, 1)
    assert answer.error_code == 0, answer.error_message
    return {tuple((e.entity_type, e.entity_name) for e in entry.entity):
            {value.key: value.value for value in entry.values} for entry in answer.entries}


def test_client_quotas_on_the_wire(shared_broker):
    """Quotas are set, described by Kafka's filters (exact, default, any; strict) and removed;
    entities and values Kafka refuses get INVALID_REQUEST with its messages."""
    alice = (("user", "alice"),)
    alice_app = (("user", "alice"), ("client-id", "app"))
    default_client = (("client-id", None),)
    assert alter(shared_broker, [
        (alice, [("producer_byte_rate", 2048.0), ("request_percentage", 12.5)]),
        (alice_app, [("consumer_byte_rate", 4096.0)]),
        (default_client, [("producer_byte_rate", 1024.0)]),
    ]) == [(0, None)] * 3

    exact_alice = [("user", 0, "alice")]
    assert describe(shared_broker, exact_alice) == {
        alice: {"producer_byte_rate": 2048.0, "request_percentage": 12.5},
        (("client-id", "app"), ("user", "alice")): {"consumer_byte_rate": 4096.0}}
    assert describe(shared_broker, exact_alice, strict=True) == {
        alice: {"producer_byte_rate": 2048.0, "request_percentage": 12.5}}
    assert describe(shared_broker, [("client-id", 1, None)]) == {
        default_client: {"producer_byte_rate": 1024.0}}
    assert len(describe(shared_broker, [("client-id", 2, None)])) == 2

    refused = alter(shared_broker, [
        ((("user", "x"), ("ip", "10.0.0.1")), [("producer_byte_rate", 1.0)]),
        ((("user", "x"),), [("producer_byte_rate", 1.5)]),
        ((("user", "x"),), [("connection_creation_rate", 5.0)]),
        ((("topic", "x"),), [("producer_byte_rate", 5.0)]),
    ])
    assert [code for code, _ in refused] == [INVALID_REQUEST] * 4
    assert refused[1][1] == "Configuration producer_byte_rate must be a Long value"
    assert refused[3][1] == "Unhandled client quota entity type: topic"
    assert alter(shared_broker, [(alice, [("producer_byte_rate", 5.0)])],
                 validate_only=True) == [(0, None)]
    assert describe(shared_broker, exact_alice, strict=True)[alice]["producer_byte_rate"] == 2048.0

    assert alter(shared_broker, [
        (alice, [("producer_byte_rate", None), ("request_percentage", None)]),
        (alice_app, [("consumer_byte_rate", None)]),
        (default_client, [("producer_byte_rate", None)]),
    ]) == [(0, None)] * 3
    assert describe(shared_broker, []) == {}


def produce_flat_out(broker, client_id: str, topic: str, seconds: float, throttles: list,
                     measured: tuple[float, float]) -> float:
    """Produces `RECORD`s as fast as the client lets it for `seconds`; returns the rate (bytes
    per second) of the records delivered within the `measured` span (seconds from the start)."""
    from confluent_kafka import Producer
    delivered = [0]
    started = time.monotonic()

    def on_delivery(error, message):
        if error is None and measured[0] <= time.monotonic() - started < measured[1]:
            delivered[0] += len(message.value())

    producer = Producer({"bootstrap.servers": broker.bootstrap, "client.id": client_id,
                         "acks": "all", "linger.ms": 5, "batch.size": 65536,
                         "queue.buffering.max.kbytes": 4096,
                         "throttle_cb": lambda event: throttles.append(event.throttle_time)})
    while time.monotonic() - started < seconds:
        try:
            producer.produce(topic, RECORD, on_delivery=on_delivery)
        except BufferError:
            producer.poll(0.01)
        producer.poll(0)
    producer.flush(30)
    return delivered[0] / (measured[1] - measured[0])


def test_producer_is_held_to_its_byte_rate(shared_broker):
    """A producer whose client id has `producer_byte_rate` 1 MiB/s, producing flat out, keeps
    within 10% of it and sees `throttle_time_ms`; a producer with another client id beside it
    runs unthrottled. Kafka's rate is sampled in 11 windows of one second and the first 10 s of
    quota pass at once, after which the client goes in 11 s cycles (a burst as the oldest sample
    expires, then a trickle): the rate is measured over two whole cycles (22 s) after the start."""
    support.create_topic(shared_broker, "quota-produce", partitions=1)
    assert alter(shared_broker, [((("client-id", "throttled"),),
                                  [("producer_byte_rate", float(QUOTA))])]) == [(0, None)]
    try:
        throttles, free_throttles, rates = [], [], {}
        span = (5.5, 27.5)
        free = threading.Thread(target=lambda: rates.__setitem__(
            "free", produce_flat_out(shared_broker, "free", "quota-produce", span[1],
                                     free_throttles, (0, span[1]))))
        free.start()
        rates["throttled"] = produce_flat_out(shared_broker, "throttled", "quota-produce",
                                              span[1], throttles, span)
        free.join()
        print(f"throttled at {rates['throttled'] / QUOTA:.3f} of the quota, free {rates['free'] / QUOTA:.1f}")
        assert 0.9 * QUOTA <= rates["throttled"] <= 1.1 * QUOTA, (
            f"{rates['throttled'] / QUOTA:.3f} of the quota")
        assert throttles and max(throttles) > 0
        assert rates["free"] > 3 * QUOTA, rates
        assert free_throttles == [] or max(free_throttles) == 0
    finally:
        alter(shared_broker, [((("client-id", "throttled"),), [("producer_byte_rate", None)])])


def test_consumer_is_held_to_its_byte_rate(tmp_path):
    """A consumer whose user (ANONYMOUS here) has `consumer_byte_rate` is answered without
    records while over it, with `throttle_time_ms`, and keeps to the quota on average (with
    `quota.window.num=3`, the allowance at the start is two seconds of quota)."""
    from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition

    broker = Broker(tmp_path, {"quota.window.num": "3", "quota.window.size.seconds": "1"})
    broker.start()
    try:
        support.create_topic(broker, "quota-fetch", partitions=1)
        producer = Producer({"bootstrap.servers": broker.bootstrap, "linger.ms": 5})
        for _ in range(16 * 1024 * 1024 // len(RECORD)):
            producer.produce("quota-fetch", RECORD)
            producer.poll(0)
        assert producer.flush(30) == 0
        assert alter(broker, [((("user", None),),
                               [("consumer_byte_rate", float(QUOTA))])]) == [(0, None)]
        throttles = []
        consumer = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "quota-fetch",
                             "enable.auto.commit": False,
                             "throttle_cb": lambda event: throttles.append(event.throttle_time)})
        consumer.assign([TopicPartition("quota-fetch", 0, OFFSET_BEGINNING)])
        consumed, seconds = 0, 8
        started = time.monotonic()
        while time.monotonic() - started < seconds:
            message = consumer.poll(0.2)
            if message is not None and message.error() is None:
                consumed += len(message.value())
        consumer.close()
        assert throttles and max(throttles) > 0
        # At most the quota over the run plus the two seconds let through at the start.
        assert consumed <= QUOTA * (seconds + 2) * 1.1, consumed / QUOTA
        assert consumed >= QUOTA * seconds * 0.7, consumed / QUOTA
    finally:
        broker.kill()
