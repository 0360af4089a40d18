"""`controller_mutation_rate` (KIP-599): the partitions a client creates (CreateTopics,
CreatePartitions) and deletes (DeleteTopics) are counted against its quota in Kafka's token bucket
(11 windows of 1 s: a bucket of 11 s of quota, refilled at the quota). New versions are strict: a
topic is refused with THROTTLING_QUOTA_EXCEEDED once the bucket is below zero, the rest of the
request goes on, and `throttle_time_ms` is the time to refill to zero. Old versions are
permissive: everything is done and the client is throttled. A client without a quota is never
held back.
"""

from __future__ import annotations

import time

import support
from kafka_wire import WireConnection
from support import HOST
from test_quotas import alter

THROTTLING_QUOTA_EXCEEDED = 89
REFUSED_MESSAGE = "The throttling quota has been exceeded."
# Partitions per second: a bucket of 22, so 10 topics of 3 partitions go over by 8.
RATE = 2.0
TOPICS, PARTITIONS = 10, 3

shared_broker, _report_shared_broker = support.shared_broker_fixtures("mutation-quotas")


def limit(broker, client_id: str, rate: float | None = RATE) -> None:
    assert alter(broker, [((("client-id", client_id),),
                           [("controller_mutation_rate", rate)])]) == [(0, None)]


def create_topics(connection: WireConnection, names: list[str], version: int,
                  partitions: int = PARTITIONS):
    from kafka.protocol.admin import CreateTopicsRequest, CreateTopicsResponse
    topic = CreateTopicsRequest.CreatableTopic
    request = CreateTopicsRequest(topics=[
        topic(name=name, num_partitions=partitions, replication_factor=1, assignments=[],
              configs=[]) for name in names], timeout_ms=30_000, validate_only=False)
    return connection.call(request, CreateTopicsResponse, version)


def test_admin_clients_under_a_mutation_rate(shared_broker):
    """Admin clients creating 10 topics of 3 partitions in one request under a rate of 2
    partitions a second. kafka-python's KafkaAdminClient sends CreateTopics v7 (strict): the
    bucket (22) takes 8 topics (the 8th while it holds 1) and the last 2 are refused with
    THROTTLING_QUOTA_EXCEEDED. confluent-kafka's AdminClient (librdkafka 2.16) sends v4, older
    than KIP-599's strict versions: all 10 are created, as Kafka creates them, and the client is
    told to wait (its throttle callback). A client id without a quota is neither refused nor
    throttled."""
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import AdminClient, NewTopic
    from kafka.admin import KafkaAdminClient
    from kafka.admin import NewTopic as KafkaPythonTopic

    limit(shared_broker, "limited-kafka-python")
    admin = KafkaAdminClient(bootstrap_servers=shared_broker.bootstrap,
                             client_id="limited-kafka-python")
    try:
        answer = admin.create_topics([KafkaPythonTopic(f"kafka-python-{index}", PARTITIONS, 1)
                                      for index in range(TOPICS)], raise_errors=False)
    finally:
        admin.close()
    # The client keeps the topics' answers (not `throttle_time_ms`: the wire test below looks
    # at that).
    codes = [topic["error_code"] for topic in answer["topics"]]
    print(f"kafka-python (CreateTopics v7): {codes}")
    assert codes == [0] * 8 + [THROTTLING_QUOTA_EXCEEDED] * 2
    assert [topic["error_message"] for topic in answer["topics"][8:]] == [REFUSED_MESSAGE] * 2

    limit(shared_broker, "limited-librdkafka")
    throttles: dict[str, list[float]] = {}
    for client_id in ("limited-librdkafka", "free-librdkafka"):
        throttles[client_id] = []
        admin = AdminClient({"bootstrap.servers": shared_broker.bootstrap, "client.id": client_id,
                             "throttle_cb": lambda event, seen=throttles[client_id]:
                             seen.append(event.throttle_time)})
        names = [f"{client_id}-{index}" for index in range(TOPICS)]
        futures = admin.create_topics([NewTopic(name, num_partitions=PARTITIONS,
                                                replication_factor=1) for name in names],
                                      operation_timeout=30, request_timeout=60)
        failures = {}
        for name in names:
            try:
                futures[name].result(60)
            except KafkaException as error:
                failures[name] = error.args[0]
        assert failures == {}, f"{client_id}: {failures}"
        admin.poll(1)  # Serves the throttle callback.
    print(f"librdkafka (CreateTopics v4) throttled for {throttles} s")
    assert throttles["limited-librdkafka"] and max(throttles["limited-librdkafka"]) > 2
    assert max(throttles["free-librdkafka"], default=0) == 0
    created = set(support.list_topics(shared_broker))
    assert {f"kafka-python-{index}" for index in range(8)} <= created
    assert not {"kafka-python-8", "kafka-python-9"} & created


def test_strict_versions_refuse_each_api_on_the_wire(shared_broker):
    """CreateTopics v7, CreatePartitions v3 and DeleteTopics v6 (kafka-python's encoders), each
    from its own limited client id: topics are taken while the bucket is not below zero, the
    later ones refused with Kafka's message, and `throttle_time_ms` is the time the bucket takes
    to refill to zero (at most 1 s here)."""
    from kafka.protocol.admin import (CreatePartitionsRequest, CreatePartitionsResponse,
                                      DeleteTopicsRequest, DeleteTopicsResponse)
    for client_id in ("strict-create", "strict-grow", "strict-delete"):
        limit(shared_broker, client_id)
    names = [f"strict-{index}" for index in range(TOPICS)]
    with WireConnection(HOST, shared_broker.port, client_id="strict-create") as connection:
        created = create_topics(connection, names, 7)
    codes = [topic.error_code for topic in created.topics]
    print(f"CreateTopics v7: {codes}, throttle_time_ms {created.throttle_time_ms}")
    assert codes == [0] * 8 + [THROTTLING_QUOTA_EXCEEDED] * 2
    assert [topic.error_message for topic in created.topics[8:]] == [REFUSED_MESSAGE] * 2
    assert 0 < created.throttle_time_ms <= 1000

    # Each of the 8 topics from 3 to 6 partitions: 3 each, the 8th taken at 1 token.
    grow = CreatePartitionsRequest.CreatePartitionsTopic
    with WireConnection(HOST, shared_broker.port, client_id="strict-grow") as connection:
        grown = connection.call(CreatePartitionsRequest(
            topics=[grow(name=name, count=6, assignments=None) for name in names[:8]],
            timeout_ms=30_000, validate_only=False), CreatePartitionsResponse, 3)
    codes = [result.error_code for result in grown.results]
    print(f"CreatePartitions v3: {codes}, throttle_time_ms {grown.throttle_time_ms}")
    assert codes == [0] * 8
    assert grown.throttle_time_ms == 0, "strict: only a refusal throttles"

    # 6 partitions each: 22 -> 16 -> 10 -> 4 -> -2, then refused.
    with WireConnection(HOST, shared_broker.port, client_id="strict-delete") as connection:
        deleted = connection.call(DeleteTopicsRequest(
            topics=[DeleteTopicsRequest.DeleteTopicState(name=name) for name in names[:8]],
            timeout_ms=30_000), DeleteTopicsResponse, 6)
    codes = [result.error_code for result in deleted.responses]
    print(f"DeleteTopics v6: {codes}, throttle_time_ms {deleted.throttle_time_ms}")
    assert codes == [0] * 4 + [THROTTLING_QUOTA_EXCEEDED] * 4
    assert 0 < deleted.throttle_time_ms <= 1000
    left = set(support.list_topics(shared_broker))
    assert not set(names[:4]) & left and set(names[4:8]) <= left


def test_old_versions_are_done_and_throttled(shared_broker):
    """CreateTopics v5 (permissive, KIP-219) creates every topic over the rate and answers at
    once with `throttle_time_ms` (the bucket at -8: 4 s), then holds the connection's next
    request for that time; CreateTopics v2 (before KIP-219) is answered only once its throttle
    time is over."""
    from kafka.protocol.metadata import ApiVersionsRequest, ApiVersionsResponse
    limit(shared_broker, "old-create")
    names = [f"old-{index}" for index in range(TOPICS)]
    with WireConnection(HOST, shared_broker.port, client_id="old-create") as connection:
        started = time.monotonic()
        created = create_topics(connection, names, 5)
        answered_s = time.monotonic() - started
        assert [topic.error_code for topic in created.topics] == [0] * TOPICS
        started = time.monotonic()
        connection.call(ApiVersionsRequest(), ApiVersionsResponse, 0)
        muted_s = time.monotonic() - started
    print(f"CreateTopics v5: throttle_time_ms {created.throttle_time_ms}, answered in "
          f"{answered_s:.2f} s, next request held {muted_s:.2f} s")
    assert 2000 <= created.throttle_time_ms <= 4000
    assert answered_s < 3, "answered before the throttle time"
    assert muted_s >= 2, "the connection is muted for the throttle time"

    limit(shared_broker, "oldest-create")
    with WireConnection(HOST, shared_broker.port, client_id="oldest-create") as connection:
        started = time.monotonic()
        created = create_topics(connection, [f"oldest-{index}" for index in range(TOPICS)], 2)
        answered_s = time.monotonic() - started
    print(f"CreateTopics v2: throttle_time_ms {created.throttle_time_ms}, answered in "
          f"{answered_s:.2f} s")
    assert [topic.error_code for topic in created.topics] == [0] * TOPICS
    assert 2000 <= created.throttle_time_ms <= 4000
    assert answered_s >= 2, "answered after the throttle time"
