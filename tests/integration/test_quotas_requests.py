"""The request quota (`request_percentage`, Kafka's ClientRequestQuotaManager): a client whose
requests take more of the broker's time than its share is told so in `throttle_time_ms` and held
to a much lower request rate, while a client with another id goes on at full speed; removing the
quota lifts it; and a real client under the quota keeps working, only slower.

Rates are compared between clients of the same run, with wide margins: the machine is shared.
"""

from __future__ import annotations

import threading
import time

from confluent_kafka import Consumer, Producer, TopicPartition
from kafka.protocol.metadata import MetadataRequest, MetadataResponse

import support
from kafka_wire import WireConnection
from support import HOST
from test_quotas import alter

TOPICS = [f"requests-{n:02d}" for n in range(24)]

# Three windows of one second: the first two seconds of quota pass at once (Kafka counts at
# least all but one window), after which a client over its share waits up to one window.
shared_broker, _report_shared_broker = support.shared_broker_fixtures(
    "quotas_requests", {"quota.window.num": "3", "quota.window.size.seconds": "1"})


def metadata_flat_out(broker, client_id: str, seconds: float, measured_from: float) -> dict:
    """Sends Metadata for every test topic, one request after the other on one connection, for
    `seconds`; returns the request rate after `measured_from` seconds and every throttle time
    the responses carried."""
    answered, throttles = 0, []
    with WireConnection(HOST, broker.port, client_id=client_id) as connection:
        version = connection.version_for(MetadataRequest.API_KEY, 4, 12)
        request = MetadataRequest(
            topics=[MetadataRequest.MetadataRequestTopic(name=topic) for topic in TOPICS],
            allow_auto_topic_creation=False)
        started = time.monotonic()
        while (elapsed := time.monotonic() - started) < seconds:
            response = connection.call(request, MetadataResponse, version)
            assert len(response.topics) == len(TOPICS)
            assert all(topic.error_code == 0 for topic in response.topics)
            throttles.append(response.throttle_time_ms)
            if elapsed >= measured_from:
                answered += 1
    return {"rate": answered / (seconds - measured_from), "throttles": throttles}


def side_by_side(broker, client_ids: list[str], seconds: float, measured_from: float) -> dict:
    """`metadata_flat_out` for each client id at once, each on its own connection."""
    results = {}
    threads = [threading.Thread(target=lambda client_id=client_id: results.__setitem__(
        client_id, metadata_flat_out(broker, client_id, seconds, measured_from)))
        for client_id in client_ids]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert set(results) == set(client_ids), "a client thread failed"
    return results


def test_requests_over_the_share_are_throttled(shared_broker):
    """A client id with `request_percentage` 0.2 (2 ms of broker time a second), sending
    Metadata as fast as it can, gets `throttle_time_ms` > 0 and is held to a small fraction of
    the rate of a client with another id beside it, which is never throttled; once the quota is
    removed both run alike again."""
    for topic in TOPICS:
        support.create_topic(shared_broker, topic, partitions=4)
    support.run_script("flink-configs.sh", "--bootstrap-server", shared_broker.bootstrap,
                       "--alter", "--add-config", "request_percentage=0.2",
                       "--entity-type", "clients", "--entity-name", "greedy")
    try:
        held = side_by_side(shared_broker, ["greedy", "free"], seconds=8, measured_from=3)
        greedy, free = held["greedy"], held["free"]
        ratio = free["rate"] / max(greedy["rate"], 0.01)
        print(f"throttled: greedy {greedy['rate']:.1f}/s, free {free['rate']:.1f}/s "
              f"(ratio {ratio:.1f}), greedy's largest throttle {max(greedy['throttles'])} ms")
        assert max(greedy["throttles"]) > 0
        assert max(greedy["throttles"]) <= 1000, "at most one window"
        assert max(free["throttles"]) == 0
        assert ratio > 4, (greedy["rate"], free["rate"])
    finally:
        support.run_script("flink-configs.sh", "--bootstrap-server", shared_broker.bootstrap,
                           "--alter", "--delete-config", "request_percentage",
                           "--entity-type", "clients", "--entity-name", "greedy")
    time.sleep(1.5)  # A throttle set just before the removal is at most one window.
    lifted = side_by_side(shared_broker, ["greedy", "free"], seconds=3, measured_from=0.5)
    greedy, free = lifted["greedy"], lifted["free"]
    print(f"lifted: greedy {greedy['rate']:.1f}/s, free {free['rate']:.1f}/s")
    assert max(greedy["throttles"]) == 0
    assert greedy["rate"] > free["rate"] / 3, (greedy["rate"], free["rate"])


def test_a_real_client_under_the_quota_keeps_working(shared_broker):
    """A confluent-kafka producer and consumer whose client id has a tiny `request_percentage`
    are throttled (librdkafka reports `throttle_time_ms`) yet deliver and read back every record:
    their requests succeed, only slower. A throttled fetch is answered without records, which
    the consumer fetches again once the throttle is over."""
    topic = "requests-real-client"
    support.create_topic(shared_broker, topic, partitions=1)
    assert alter(shared_broker, [((("client-id", "slow-app"),),
                                  [("request_percentage", 0.05)])]) == [(0, None)]
    try:
        throttles, delivered, count = [], [], 60
        started = time.monotonic()
        producer = Producer({
            "bootstrap.servers": shared_broker.bootstrap, "client.id": "slow-app",
            "acks": "all", "linger.ms": 0,
            "throttle_cb": lambda event: throttles.append(event.throttle_time)})
        for n in range(count):
            producer.produce(topic, f"record-{n}".encode(),
                             on_delivery=lambda error, message: delivered.append(error))
            producer.flush(30)  # One produce request per record.
        assert producer.flush(30) == 0
        assert delivered == [None] * count
        consumer = Consumer({
            "bootstrap.servers": shared_broker.bootstrap, "client.id": "slow-app",
            "group.id": "slow-app", "enable.auto.commit": False,
            "fetch.wait.max.ms": 10, "message.max.bytes": 1000, "fetch.max.bytes": 1024,
            "max.partition.fetch.bytes": 64,
            "throttle_cb": lambda event: throttles.append(event.throttle_time)})
        consumer.assign([TopicPartition(topic, 0, 0)])
        values, deadline = [], time.monotonic() + 60
        while len(values) < count and time.monotonic() < deadline:
            message = consumer.poll(0.2)
            if message is not None and message.error() is None:
                values.append(message.value())
        consumer.close()
        # librdkafka reports throttle times in seconds.
        print(f"{count} records produced and consumed in {time.monotonic() - started:.1f} s; "
              f"largest throttle {max(throttles, default=0)} s, {len(throttles)} reported")
        assert values == [f"record-{n}".encode() for n in range(count)]
        assert throttles and max(throttles) > 0
    finally:
        alter(shared_broker, [((("client-id", "slow-app"),), [("request_percentage", None)])])
