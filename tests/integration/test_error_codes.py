"""Kafka error codes where clients depend on them, and fetch long-polling."""

from __future__ import annotations

import threading
import time

from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition
from kafka.protocol.consumer import JoinGroupRequest, JoinGroupResponse
from kafka.protocol.metadata import FindCoordinatorRequest, FindCoordinatorResponse

from kafka_wire import WireConnection, record_batch
from support import HOST, create_topic

UNKNOWN_TOPIC_OR_PARTITION = 3
MESSAGE_TOO_LARGE = 10
MESSAGE_BYTES_MAX = 1000
FETCH_WAIT_MS = 5000


def test_produce_to_unknown_partition_or_topic(broker):
    """Produce to partition 7 of a 1-partition topic, or to a missing topic: error code 3."""
    create_topic(broker, "one-partition")
    batch = record_batch([(b"k", b"v")])
    with WireConnection(HOST, broker.port) as connection:
        answers = connection.produce({"one-partition": {0: batch, 7: batch},
                                      "no-such-topic": {0: batch}})
    assert answers[("one-partition", 7)][0] == UNKNOWN_TOPIC_OR_PARTITION, answers
    assert answers[("no-such-topic", 0)][0] == UNKNOWN_TOPIC_OR_PARTITION, answers
    # The valid partition in the same request is unaffected.
    assert answers[("one-partition", 0)] == (0, 0), answers


def test_record_larger_than_message_max_bytes(start_broker):
    """Over message.max.bytes=1000 a record gets MESSAGE_TOO_LARGE (10); small ones still land."""
    broker = start_broker({"message.max.bytes": MESSAGE_BYTES_MAX})
    topic = "size-limit"
    create_topic(broker, topic)

    with WireConnection(HOST, broker.port) as connection:
        answers = connection.produce({topic: {0: record_batch([(None, b"x" * 5000)])}})
    assert answers[(topic, 0)][0] == MESSAGE_TOO_LARGE, answers

    # The client's own limit is raised so that only the broker can refuse the record.
    producer = Producer({"bootstrap.servers": broker.bootstrap, "acks": "all",
                         "message.max.bytes": 10_000_000, "retries": 0})
    outcomes = {}

    def report(name):
        return lambda error, message: outcomes.__setitem__(name, error)

    producer.produce(topic, value=b"y" * 5000, on_delivery=report("large"))
    assert producer.flush(20) == 0
    producer.produce(topic, value=b"small", on_delivery=report("small"))
    assert producer.flush(20) == 0

    assert outcomes["large"] is not None, "the 5,000-byte record was accepted"
    assert outcomes["large"].code() == KafkaError.MSG_SIZE_TOO_LARGE, outcomes["large"]
    assert outcomes["small"] is None, outcomes["small"]

    with WireConnection(HOST, broker.port) as connection:
        error_code, high_watermark, records = connection.fetch(topic, {0: 0})[0]
    assert error_code == 0 and high_watermark == 1, (error_code, high_watermark)
    assert [value for _, _, value in records] == [b"small"]


def produce_later(bootstrap: str, topic: str, delay: float, sent_at: list[float],
                  partition: int = 0) -> threading.Thread:
    """Produce one record `delay` seconds from now, on a thread; its send time goes to sent_at."""
    def run():
        producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 0})
        producer.list_topics(timeout=10)  # Connect first, so the delay is the only wait.
        time.sleep(delay)
        sent_at.append(time.monotonic())
        producer.produce(topic, value=b"wake up", partition=partition)
        producer.flush(10)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def test_fetch_long_poll_wakes_on_new_data(broker):
    """New data wakes a consumer's 5s long-poll fetch: a record produced 1s later arrives at once."""
    topic = "long-poll"
    create_topic(broker, topic)
    consumer = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "unused",
                         "enable.auto.commit": False, "fetch.wait.max.ms": FETCH_WAIT_MS,
                         "fetch.min.bytes": 1})
    try:
        consumer.assign([TopicPartition(topic, 0, 0)])
        # Let the consumer reach the end and park in a fetch.
        assert consumer.poll(2) is None
        sent_at: list[float] = []
        producer = produce_later(broker.bootstrap, topic, 1.0, sent_at)
        deadline = time.monotonic() + 2 * FETCH_WAIT_MS / 1000 + 5
        message = None
        while message is None and time.monotonic() < deadline:
            message = consumer.poll(0.05)
        received_at = time.monotonic()
        producer.join(15)
    finally:
        consumer.close()
    assert message is not None and message.error() is None, message and message.error()
    assert message.value() == b"wake up"
    latency = received_at - sent_at[0]
    assert latency < 2.0, f"record arrived {latency:.2f}s after it was produced"


def test_raw_fetch_waits_then_wakes(broker):
    """An empty Fetch waits max_wait_ms, and returns as soon as a record is produced meanwhile."""
    topic = "raw-long-poll"
    create_topic(broker, topic)
    with WireConnection(HOST, broker.port, timeout=20) as connection:
        started = time.monotonic()
        error_code, _, records = connection.fetch(topic, {0: 0}, max_wait_ms=1500)[0]
        waited = time.monotonic() - started
        assert error_code == 0 and records == []
        assert 1.2 <= waited < 4.5, f"empty fetch with max_wait_ms=1500 returned after {waited:.2f}s"

        sent_at: list[float] = []
        producer = produce_later(broker.bootstrap, topic, 1.0, sent_at)
        started = time.monotonic()
        error_code, high_watermark, records = connection.fetch(
            topic, {0: 0}, max_wait_ms=FETCH_WAIT_MS)[0]
        returned = time.monotonic()
        producer.join(15)
    assert error_code == 0 and [value for _, _, value in records] == [b"wake up"], records
    assert sent_at, "the producer thread did not send"
    assert returned - sent_at[0] < 2.0, (
        f"fetch returned {returned - sent_at[0]:.2f}s after the record was produced "
        f"({returned - started:.2f}s after it was sent)")


def test_long_poll_wakes_across_shards(start_broker):
    """A fetch parked on one shard wakes for a record appended on either shard."""
    broker = start_broker({"shard.count": 2})
    topic = "long-poll-shards"
    create_topic(broker, topic, partitions=6)
    placement = dict(broker.wait_for_log(rf"partition {topic}-(\d+) is on shard (\d+)"))
    by_shard = {}
    for partition, shard in sorted(placement.items()):
        by_shard.setdefault(shard, int(partition))
    assert len(by_shard) == 2, f"partitions not spread over both shards: {placement}"

    # Whichever shard this connection landed on, one of the two rounds crosses shards.
    next_offsets = {p: 0 for p in range(6)}
    with WireConnection(HOST, broker.port, timeout=20) as connection:
        for shard, partition in sorted(by_shard.items()):
            sent_at: list[float] = []
            producer = produce_later(broker.bootstrap, topic, 1.0, sent_at, partition=partition)
            fetched = connection.fetch(topic, next_offsets, max_wait_ms=FETCH_WAIT_MS)
            returned = time.monotonic()
            producer.join(15)
            records = {p: [v for _, _, v in rows] for p, (_, _, rows) in fetched.items() if rows}
            assert records == {partition: [b"wake up"]}, f"shard {shard}: fetched {records}"
            next_offsets[partition] += 1
            assert returned - sent_at[0] < 2.0, (
                f"shard {shard}: fetch returned {returned - sent_at[0]:.2f}s after the produce")


UNKNOWN_MEMBER_ID = 25
ILLEGAL_GENERATION = 22


def member_with_assignment(broker, group: str, topic: str, protocol: str) -> Consumer:
    """A confluent-kafka consumer of `topic` in `group` (group.protocol `protocol`), returned
    once it has its assignment."""
    consumer = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": group,
                         "group.protocol": protocol, "enable.auto.commit": False})
    assigned = threading.Event()
    consumer.subscribe([topic], on_assign=lambda _consumer, partitions: assigned.set())
    deadline = time.monotonic() + 30
    while not assigned.is_set() and time.monotonic() < deadline:
        consumer.poll(0.2)
    assert assigned.is_set(), "the consumer never got its assignment"
    return consumer


def test_offset_commit_member_checks_follow_kafka(broker):
    """OffsetCommit v8 as clients send it, against a classic group with a member and then empty:
    with a member, an admin-style commit (generation -1, no member id) is UNKNOWN_MEMBER_ID, a
    stranger's is UNKNOWN_MEMBER_ID and the member's with a wrong generation ILLEGAL_GENERATION;
    once the group is empty, generation -1 is taken whatever member id it carries (what a
    KIP-848 consumer using assign() sends)."""
    topic, group = "commit-checks", "commit-checks-group"
    create_topic(broker, topic)
    consumer = member_with_assignment(broker, group, topic, "classic")
    member_id = consumer.memberid()
    assert member_id, "the consumer has no member id"
    place = (topic, 0)
    try:
        with WireConnection(HOST, broker.port) as connection:
            assert connection.offset_commit(group, "", -1, {place: 1}) == {
                place: UNKNOWN_MEMBER_ID}
            assert connection.offset_commit(group, "stranger", 1, {place: 1}) == {
                place: UNKNOWN_MEMBER_ID}
            assert connection.offset_commit(group, member_id, 99, {place: 1}) == {
                place: ILLEGAL_GENERATION}
    finally:
        consumer.close()
    with WireConnection(HOST, broker.port) as connection:
        assert connection.offset_commit(group, "standalone-member", -1, {place: 5}) == {place: 0}
    checker = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": group})
    try:
        committed = checker.committed([TopicPartition(topic, 0)], timeout=10)
    finally:
        checker.close()
    assert committed[0].offset == 5, committed


INVALID_SESSION_TIMEOUT = 26


def test_join_group_session_timeout_bounds(start_broker):
    """JoinGroup v9 asking for a session timeout outside group.min.session.timeout.ms and
    group.max.session.timeout.ms gets INVALID_SESSION_TIMEOUT (26), as in Kafka; inside the
    bounds the join goes on (v4+: the first join is asked to come back with its member id)."""
    broker = start_broker({"group.min.session.timeout.ms": 2000,
                           "group.max.session.timeout.ms": 20000})
    member_id_required = 79

    def join(connection, session_timeout_ms):
        request = JoinGroupRequest(
            group_id="bounded", session_timeout_ms=session_timeout_ms,
            rebalance_timeout_ms=30_000, member_id="", group_instance_id=None,
            protocol_type="consumer", reason=None,
            protocols=[JoinGroupRequest.JoinGroupRequestProtocol(name="range", metadata=b"")])
        return connection.call(request, JoinGroupResponse, 9).error_code

    with WireConnection(HOST, broker.port) as connection:
        # As clients do: FindCoordinator first (its first call creates __consumer_offsets),
        # retried until the coordinator is up.
        deadline = time.monotonic() + 30
        while True:
            found = connection.call(FindCoordinatorRequest(key="", key_type=0,
                                                           coordinator_keys=["bounded"]),
                                    FindCoordinatorResponse, 4)
            if found.coordinators[0].error_code == 0:
                break
            assert time.monotonic() < deadline, f"no coordinator: {found}"
            time.sleep(0.2)
        assert join(connection, 1999) == INVALID_SESSION_TIMEOUT
        assert join(connection, 20001) == INVALID_SESSION_TIMEOUT
        assert join(connection, 2000) == member_id_required
        assert join(connection, 20000) == member_id_required


GROUP_ID_NOT_FOUND = 69
INVALID_REQUEST = 42


def test_group_api_versions_kafka_4_serves(broker):
    """The group API versions Kafka 3.7-4.0 serve, each sent as a client sends it:
    FindCoordinator v6 (a share-group key type is refused with INVALID_REQUEST, a group key
    answered), OffsetCommit v9 and OffsetFetch v9 (the KIP-848 versions), ListGroups v5 with a
    group type filter, DescribeGroups v6 (an unknown group is GROUP_ID_NOT_FOUND, KIP-1043)."""
    from kafka.protocol.admin import (DescribeGroupsRequest, DescribeGroupsResponse,
                                      ListGroupsRequest, ListGroupsResponse)
    from kafka.protocol.consumer import OffsetFetchRequest, OffsetFetchResponse

    topic, group = "versions", "versions-group"
    create_topic(broker, topic)
    with WireConnection(HOST, broker.port) as connection:
        versions = connection.api_versions()
        for api_key, version in {10: 6, 8: 9, 9: 9, 16: 5, 15: 6}.items():
            assert versions[api_key][1] >= version, (api_key, versions[api_key])

        def find(key_type):
            return connection.call(FindCoordinatorRequest(key="", key_type=key_type,
                                                          coordinator_keys=[group]),
                                   FindCoordinatorResponse, 6).coordinators[0]

        deadline = time.monotonic() + 30
        while (found := find(0)).error_code != 0:
            assert time.monotonic() < deadline, f"no coordinator: {found}"
            time.sleep(0.2)
        assert found.node_id == 1
        assert find(2).error_code == INVALID_REQUEST

        assert connection.offset_commit(group, "", -1, {(topic, 0): 7}, version=9) == {
            (topic, 0): 0}
        fetch_group = OffsetFetchRequest.OffsetFetchRequestGroup
        fetched = connection.call(OffsetFetchRequest(require_stable=True, groups=[fetch_group(
            group_id=group, member_id=None, member_epoch=-1,
            topics=[fetch_group.OffsetFetchRequestTopics(name=topic, partition_indexes=[0])])]),
            OffsetFetchResponse, 9)
        [answer] = fetched.groups
        assert answer.error_code == 0
        assert [(t.name, p.partition_index, p.committed_offset)
                for t in answer.topics for p in t.partitions] == [(topic, 0, 7)]

        # A standalone commit leaves a classic group behind, as in Kafka.
        listed = connection.call(ListGroupsRequest(states_filter=[], types_filter=["classic"]),
                                 ListGroupsResponse, 5)
        assert listed.error_code == 0
        assert (group, "classic") in {(g.group_id, g.group_type) for g in listed.groups}
        listed = connection.call(ListGroupsRequest(states_filter=[], types_filter=["consumer"]),
                                 ListGroupsResponse, 5)
        assert group not in {g.group_id for g in listed.groups}

        described = connection.call(DescribeGroupsRequest(
            groups=["no-such-group", group], include_authorized_operations=False),
            DescribeGroupsResponse, 6)
        missing, known = described.groups
        assert (missing.error_code, missing.error_message) == (
            GROUP_ID_NOT_FOUND, "Group no-such-group not found."), missing
        assert (known.error_code, known.group_state) == (0, "Empty"), known


INVALID_RECORD = 87


def test_compacted_topic_names_every_keyless_record(broker):
    """Produce v9 of five records, the second and fourth without a key, to a compacted topic:
    INVALID_RECORD with Kafka's summary message and every keyless record named in record_errors
    (KIP-467) by its index in the batch, so that a client can tell the bad records from the
    good ones; nothing is written."""
    from confluent_kafka.admin import AdminClient, NewTopic

    topic = "compacted-keys"
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    admin.create_topics([NewTopic(topic, 1, config={"cleanup.policy": "compact"})])[
        topic].result(30)
    records = [(b"k0", b"v0"), (None, b"v1"), (b"k2", b"v2"), (None, b"v3"), (b"k4", b"v4")]
    message = f"Compacted topic cannot accept message without key in topic partition {topic}-0."
    with WireConnection(HOST, broker.port) as connection:
        answers = connection.produce_answers({topic: {0: record_batch(records)}}, version=9)
        answer = answers[(topic, 0)]
        assert answer.error_code == INVALID_RECORD, answer
        assert answer.error_message == (
            "One or more records have been rejected due to 2 record errors in total, and only "
            f"showing the first three errors at most: [RecordError(batchIndex=1, message='"
            f"{message}'), RecordError(batchIndex=3, message='{message}')]"), answer
        assert [(error.batch_index, error.batch_index_error_message)
                for error in answer.record_errors] == [(1, message), (3, message)]
        assert connection.list_offsets(topic, [0])[0] == (0, 0)


FENCED_MEMBER_EPOCH = 110


def test_offset_fetch_v9_checks_the_kip848_member(broker):
    """OffsetFetch v9 against a KIP-848 group with one member (confluent-kafka,
    group.protocol=consumer): naming no member (an admin's read) is answered; a member the
    group does not have gets UNKNOWN_MEMBER_ID and an epoch ahead of the member's
    FENCED_MEMBER_EPOCH, as Kafka's validateOffsetFetch answers."""
    from kafka.protocol.consumer import OffsetFetchRequest, OffsetFetchResponse

    topic, group = "fetch-checks", "fetch-checks-group"
    create_topic(broker, topic)
    consumer = member_with_assignment(broker, group, topic, "consumer")
    member_id = consumer.memberid()
    fetch_group = OffsetFetchRequest.OffsetFetchRequestGroup

    def fetch(member, epoch):
        request = OffsetFetchRequest(require_stable=True, groups=[fetch_group(
            group_id=group, member_id=member, member_epoch=epoch,
            topics=[fetch_group.OffsetFetchRequestTopics(name=topic, partition_indexes=[0])])])
        return connection.call(request, OffsetFetchResponse, 9).groups[0].error_code

    try:
        with WireConnection(HOST, broker.port) as connection:
            assert fetch(None, -1) == 0
            assert fetch("stranger", 1) == UNKNOWN_MEMBER_ID
            assert fetch(member_id, 1_000_000) == FENCED_MEMBER_EPOCH
    finally:
        consumer.close()
