"""The newer and admin APIs one request at a time, as Kafka 4 answers them.

Requests are encoded by kafka-python's generated protocol classes (`kafka_wire.WireConnection`);
configs are changed through confluent-kafka's AdminClient. Each test checks the values in the
answer, not only its error code.
"""

from __future__ import annotations

import signal
import time
import uuid

import pytest
from confluent_kafka import (TIMESTAMP_CREATE_TIME, TIMESTAMP_LOG_APPEND_TIME, Consumer, KafkaError,
                             Producer)
from confluent_kafka.admin import (AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource,
                                   ConfigSource, NewPartitions, NewTopic)
from kafka.protocol.admin import (DescribeLogDirsRequest, DescribeLogDirsResponse,
                                  DescribeTopicPartitionsRequest, DescribeTopicPartitionsResponse,
                                  IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse)
from kafka.protocol.consumer import (FetchRequest, FetchResponse, ListOffsetsRequest,
                                     ListOffsetsResponse, OffsetForLeaderEpochRequest,
                                     OffsetForLeaderEpochResponse)
from kafka.protocol.metadata import MetadataRequest, MetadataResponse
from kafka.protocol.producer import InitProducerIdRequest, InitProducerIdResponse, ProduceRequest
from kafka.record import MemoryRecordsBuilder

from kafka_wire import WireConnection, decode_records, record_batch
from support import HOST, create_topic

UNKNOWN_TOPIC_OR_PARTITION = 3
MESSAGE_TOO_LARGE = 10
INVALID_REPLICA_ASSIGNMENT = 39
INVALID_REQUEST = 42
OUT_OF_ORDER_SEQUENCE_NUMBER = 45
UNKNOWN_LEADER_EPOCH = 75
UNKNOWN_TOPIC_ID = 100
ADMIN_TIMEOUT_S = 15
BROKER_RESOURCE = 4


def admin(broker) -> AdminClient:
    return AdminClient({"bootstrap.servers": broker.bootstrap})


def produce(broker, topic: str, values: list[bytes], partition: int = 0,
            timestamp: int | None = None) -> None:
    producer = Producer({"bootstrap.servers": broker.bootstrap, "acks": "all"})
    errors = []
    for value in values:
        extra = {"timestamp": timestamp} if timestamp is not None else {}
        producer.produce(topic, value=value, partition=partition,
                         on_delivery=lambda error, _message: errors.append(error), **extra)
    assert producer.flush(20) == 0
    assert errors == [None] * len(values), errors


def consume(broker, topic: str, count: int) -> list:
    consumer = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": f"g-{uuid.uuid4()}",
                         "auto.offset.reset": "earliest", "enable.auto.commit": False})
    consumer.subscribe([topic])
    messages = []
    deadline = time.monotonic() + 30
    while len(messages) < count and time.monotonic() < deadline:
        message = consumer.poll(0.5)
        if message is not None and message.error() is None:
            messages.append(message)
    consumer.close()
    assert len(messages) == count, f"read {len(messages)} of {count}"
    return messages


def incremental_alter(broker, resource: ConfigResource) -> None:
    client = admin(broker)
    futures = client.incremental_alter_configs([resource])
    for future in futures.values():
        future.result(ADMIN_TIMEOUT_S)


def alter_broker_config(broker, name: str, key: str, value: str) -> tuple[int, str | None]:
    """IncrementalAlterConfigs SET on broker resource `name` ("" for every broker's default,
    which confluent-kafka's ConfigResource cannot name); returns (error code, message)."""
    resource = IncrementalAlterConfigsRequest.AlterConfigsResource
    request = IncrementalAlterConfigsRequest(validate_only=False, resources=[
        resource(resource_type=BROKER_RESOURCE, resource_name=name, configs=[
            resource.AlterableConfig(name=key, config_operation=0, value=value)])])
    with WireConnection(HOST, broker.port) as connection:
        response = connection.call(request, IncrementalAlterConfigsResponse, 1)
    (answer,) = response.responses
    return answer.error_code, answer.error_message


def topic_id(connection: WireConnection, topic: str) -> uuid.UUID:
    request = MetadataRequest(topics=[MetadataRequest.MetadataRequestTopic(name=topic)],
                              allow_auto_topic_creation=False)
    response = connection.call(request, MetadataResponse, 12)
    (found,) = response.topics
    assert found.error_code == 0, found
    return found.topic_id


def test_fetch_by_topic_id(broker):
    """Fetch v17 names the topic by id: the records come back under that id; an unknown id gets
    UNKNOWN_TOPIC_ID (100)."""
    create_topic(broker, "by-id")
    produce(broker, "by-id", [b"a", b"b", b"c"])
    with WireConnection(HOST, broker.port) as connection:
        known = topic_id(connection, "by-id")

        def fetch(wanted: uuid.UUID):
            request = FetchRequest(
                replica_id=-1, max_wait_ms=0, min_bytes=1, max_bytes=1 << 20, isolation_level=0,
                session_id=0, session_epoch=-1,
                topics=[FetchRequest.FetchTopic(topic_id=wanted, partitions=[
                    FetchRequest.FetchTopic.FetchPartition(
                        partition=0, fetch_offset=0, log_start_offset=-1,
                        partition_max_bytes=1 << 20)])],
                forgotten_topics_data=[], rack_id="")
            response = connection.call(request, FetchResponse, 17)
            assert response.error_code == 0
            assert response.session_id == 0, "no fetch session is created"
            (topic,) = response.responses
            return topic

        topic = fetch(known)
        assert topic.topic_id == known
        (partition,) = topic.partitions
        assert partition.error_code == 0
        assert partition.high_watermark == 3
        assert [value for _, _, value in decode_records(partition.records)] == [b"a", b"b", b"c"]

        missing = fetch(uuid.uuid4())
        assert missing.partitions[0].error_code == UNKNOWN_TOPIC_ID


def test_describe_topic_partitions_pages_with_a_cursor(broker):
    """DescribeTopicPartitions returns at most response_partition_limit partitions and a cursor
    to go on from; every partition is seen exactly once, in name order; unknown topics get 3."""
    create_topic(broker, "pages-a", partitions=5)
    create_topic(broker, "pages-b", partitions=2)
    seen = []
    cursor = None
    with WireConnection(HOST, broker.port) as connection:
        for _ in range(10):
            request = DescribeTopicPartitionsRequest(
                topics=[DescribeTopicPartitionsRequest.TopicRequest(name=name)
                        for name in ("pages-b", "pages-a", "pages-missing")],
                response_partition_limit=3, cursor=cursor)
            response = connection.call(request, DescribeTopicPartitionsResponse, 0)
            for topic in response.topics:
                if topic.name == "pages-missing":
                    assert topic.error_code == UNKNOWN_TOPIC_OR_PARTITION
                    continue
                assert topic.error_code == 0
                assert topic.topic_id != uuid.UUID(int=0)
                for partition in topic.partitions:
                    assert partition.leader_id == 1 and partition.replica_nodes == [1]
                    seen.append((topic.name, partition.partition_index))
            if response.next_cursor is None:
                break
            cursor = DescribeTopicPartitionsRequest.Cursor(
                topic_name=response.next_cursor.topic_name,
                partition_index=response.next_cursor.partition_index)
    assert seen == [("pages-a", index) for index in range(5)] + [("pages-b", 0), ("pages-b", 1)]


def test_offset_for_leader_epoch(broker):
    """Leader epoch 0 ends at the log end; an empty log's current epoch (started when its
    leader took over, as in Kafka) ends at 0; a later epoch is undefined; a
    current_leader_epoch ahead of the broker's gets UNKNOWN_LEADER_EPOCH."""
    create_topic(broker, "epochs", partitions=2)
    produce(broker, "epochs", [b"x"] * 5, partition=0)

    def ask(partition: int, leader_epoch: int, current_leader_epoch: int = -1):
        request = OffsetForLeaderEpochRequest(replica_id=-1, topics=[
            OffsetForLeaderEpochRequest.OffsetForLeaderTopic(topic="epochs", partitions=[
                OffsetForLeaderEpochRequest.OffsetForLeaderTopic.OffsetForLeaderPartition(
                    partition=partition, current_leader_epoch=current_leader_epoch,
                    leader_epoch=leader_epoch)])])
        with WireConnection(HOST, broker.port) as connection:
            response = connection.call(request, OffsetForLeaderEpochResponse, 4)
        (answer,) = response.topics[0].partitions
        return answer.error_code, answer.leader_epoch, answer.end_offset

    assert ask(0, 0) == (0, 0, 5)
    assert ask(1, 0) == (0, 0, 0)
    assert ask(0, 3) == (0, -1, -1)
    assert ask(0, 0, current_leader_epoch=9)[0] == UNKNOWN_LEADER_EPOCH


def test_describe_log_dirs_reports_sizes(broker):
    """DescribeLogDirs v4: the broker's log dir, each partition's bytes, and the file system's
    total and usable bytes."""
    create_topic(broker, "sizes", partitions=2)
    produce(broker, "sizes", [b"v" * 1000] * 10, partition=1)
    with WireConnection(HOST, broker.port) as connection:
        request = DescribeLogDirsRequest(topics=[
            DescribeLogDirsRequest.DescribableLogDirTopic(topic="sizes", partitions=[0, 1])])
        response = connection.call(request, DescribeLogDirsResponse, 4)
    assert response.error_code == 0
    (result,) = response.results
    assert result.error_code == 0
    assert result.log_dir == str(broker.data_dir)
    assert result.total_bytes >= result.usable_bytes > 0
    (topic,) = result.topics
    sizes = {partition.partition_index: partition.partition_size for partition in topic.partitions}
    assert sizes[0] == 0
    assert 10_000 < sizes[1] < 20_000, sizes


def test_list_offsets_earliest_local_and_latest_tiered(broker):
    """ListOffsets v9: EARLIEST_LOCAL (-4) is the log start (no tiered storage), LATEST_TIERED
    (-5) is -1, as Kafka answers with remote storage off."""
    create_topic(broker, "tiers")
    produce(broker, "tiers", [b"x"] * 4)
    topic_type = ListOffsetsRequest.ListOffsetsTopic
    partition_type = topic_type.ListOffsetsPartition

    def ask(timestamp: int):
        request = ListOffsetsRequest(replica_id=-1, isolation_level=0, timeout_ms=1000, topics=[
            topic_type(name="tiers", partitions=[
                partition_type(partition_index=0, current_leader_epoch=-1, timestamp=timestamp)])])
        with WireConnection(HOST, broker.port) as connection:
            response = connection.call(request, ListOffsetsResponse, 9)
        (answer,) = response.topics[0].partitions
        assert answer.error_code == 0
        return answer.offset

    assert ask(-2) == 0
    assert ask(-4) == 0
    assert ask(-1) == 4
    assert ask(-5) == -1


def test_log_append_time_and_live_config_change(broker):
    """message.timestamp.type=LogAppendTime: consumers see the broker's time, not the producer's;
    switching the topic back to CreateTime applies to the next batch without a restart."""
    client = admin(broker)
    client.create_topics([NewTopic("stamped", 1, 1, config={
        "message.timestamp.type": "LogAppendTime"})])["stamped"].result(ADMIN_TIMEOUT_S)
    before = int(time.time() * 1000)
    produce(broker, "stamped", [b"old-clock"], timestamp=1000)
    (message,) = consume(broker, "stamped", 1)
    kind, stamp = message.timestamp()
    assert kind == TIMESTAMP_LOG_APPEND_TIME
    assert before - 1000 <= stamp <= int(time.time() * 1000) + 1000

    incremental_alter(broker, ConfigResource(ConfigResource.Type.TOPIC, "stamped", incremental_configs=[
        ConfigEntry("message.timestamp.type", "CreateTime",
                    incremental_operation=AlterConfigOpType.SET)]))
    produce(broker, "stamped", [b"own-clock"], timestamp=1000)
    first, second = consume(broker, "stamped", 2)
    assert first.timestamp()[0] == TIMESTAMP_LOG_APPEND_TIME
    assert second.timestamp() == (TIMESTAMP_CREATE_TIME, 1000)


def test_max_message_bytes_altered_live(broker):
    """Lowering the topic's max.message.bytes refuses larger batches at once with
    MESSAGE_TOO_LARGE (10); deleting the override restores the broker default."""
    create_topic(broker, "limits")
    resource = lambda op, value=None: ConfigResource(  # noqa: E731
        ConfigResource.Type.TOPIC, "limits", incremental_configs=[
            ConfigEntry("max.message.bytes", value, incremental_operation=op)])
    big = record_batch([(None, b"z" * 5000)])
    incremental_alter(broker, resource(AlterConfigOpType.SET, "2000"))
    with WireConnection(HOST, broker.port) as connection:
        assert connection.produce({"limits": {0: big}})[("limits", 0)][0] == MESSAGE_TOO_LARGE
    incremental_alter(broker, resource(AlterConfigOpType.DELETE))
    with WireConnection(HOST, broker.port) as connection:
        assert connection.produce({"limits": {0: big}})[("limits", 0)] == (0, 0)


def test_dynamic_broker_default_reaches_topics(broker):
    """A cluster-wide default (`--entity-default`) set while running is what a topic without an
    override uses, shown as DYNAMIC_DEFAULT_BROKER_CONFIG; keys Kafka cannot change at run time
    are refused with INVALID_REQUEST (42)."""
    create_topic(broker, "inherits")
    assert alter_broker_config(broker, "", "log.message.timestamp.type", "LogAppendTime")[0] == 0
    client = admin(broker)
    described = client.describe_configs(
        [ConfigResource(ConfigResource.Type.TOPIC, "inherits")])
    (configs,) = [future.result(ADMIN_TIMEOUT_S) for future in described.values()]
    entry = configs["message.timestamp.type"]
    assert entry.value == "LogAppendTime"
    assert entry.source == ConfigSource.DYNAMIC_DEFAULT_BROKER_CONFIG.value
    produce(broker, "inherits", [b"x"], timestamp=1000)
    (message,) = consume(broker, "inherits", 1)
    assert message.timestamp()[0] == TIMESTAMP_LOG_APPEND_TIME

    code, message = alter_broker_config(broker, "1", "num.io.threads", "4")
    assert (code, message) == (INVALID_REQUEST,
                               "Cannot update these configs dynamically: Set(num.io.threads)")


def test_configs_and_partitions_survive_restart(broker):
    """Topic overrides, broker defaults and added partitions are in the metadata log: a restart
    keeps them."""
    create_topic(broker, "durable")
    client = admin(broker)
    incremental_alter(broker, ConfigResource(ConfigResource.Type.TOPIC, "durable", incremental_configs=[
        ConfigEntry("retention.ms", "3600000", incremental_operation=AlterConfigOpType.SET)]))
    assert alter_broker_config(broker, "", "log.retention.bytes", "1048576")[0] == 0
    client.create_partitions([NewPartitions("durable", 4)])["durable"].result(ADMIN_TIMEOUT_S)

    broker.restart()
    client = admin(broker)
    described = client.describe_configs([ConfigResource(ConfigResource.Type.TOPIC, "durable")])
    (configs,) = [future.result(ADMIN_TIMEOUT_S) for future in described.values()]
    assert configs["retention.ms"].value == "3600000"
    assert configs["retention.ms"].source == ConfigSource.DYNAMIC_TOPIC_CONFIG.value
    assert configs["retention.bytes"].value == "1048576"
    assert configs["retention.bytes"].source == ConfigSource.DYNAMIC_DEFAULT_BROKER_CONFIG.value
    assert len(client.list_topics(timeout=10).topics["durable"].partitions) == 4
    produce(broker, "durable", [b"p3"], partition=3)


def test_create_topics_with_replica_assignment(broker):
    """A manual assignment on the registered broker is taken; an unknown broker or a broker
    listed twice gets INVALID_REPLICA_ASSIGNMENT (39)."""
    client = admin(broker)
    futures = client.create_topics([
        NewTopic("assigned", num_partitions=3, replica_assignment=[[1], [1], [1]]),
        NewTopic("assigned-elsewhere", num_partitions=1, replica_assignment=[[2]]),
        NewTopic("assigned-twice", num_partitions=1, replica_assignment=[[1, 1]]),
    ])
    futures["assigned"].result(ADMIN_TIMEOUT_S)
    for name in ("assigned-elsewhere", "assigned-twice"):
        with pytest.raises(Exception) as refused:
            futures[name].result(ADMIN_TIMEOUT_S)
        assert refused.value.args[0].code() == KafkaError.INVALID_REPLICA_ASSIGNMENT, name
    topics = client.list_topics(timeout=10).topics
    assert len(topics["assigned"].partitions) == 3
    assert "assigned-elsewhere" not in topics and "assigned-twice" not in topics


def test_produce_v2_is_refused_though_v0_is_advertised(broker):
    """Like Kafka 4 (KAFKA-18659) ApiVersions lists Produce from v0, yet a v0-v2 request closes
    the connection; the broker keeps serving other connections."""
    create_topic(broker, "old-produce")
    with WireConnection(HOST, broker.port) as connection:
        assert connection.api_versions()[0][0] == 0
        connection.send_request(ProduceRequest(acks=1, timeout_ms=1000, topic_data=[]), 2)
        with pytest.raises((ConnectionError, OSError)):
            connection.receive_frame()
    with WireConnection(HOST, broker.port) as connection:
        answers = connection.produce({"old-produce": {0: record_batch([(b"k", b"v")])}})
    assert answers[("old-produce", 0)] == (0, 0)


def idempotent_batch(producer_id: int, epoch: int, sequence: int, values: list[bytes]) -> bytes:
    builder = MemoryRecordsBuilder(magic=2, compression_type=0, batch_size=1 << 20,
                                   producer_id=producer_id, producer_epoch=epoch,
                                   base_sequence=sequence)
    for value in values:
        builder.append(timestamp=None, key=None, value=value, headers=[])
    builder.close()
    return bytes(builder.buffer())


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGKILL], ids=["clean", "killed"])
def test_idempotent_sequences_on_the_wire(broker, stop):
    """Idempotent producer state: a retried batch is answered with the offset it got the first
    time and not stored twice; a sequence gap gets OUT_OF_ORDER_SEQUENCE_NUMBER (45); after a
    restart, clean (from the snapshot) or killed (replayed from the log), the same retry is
    still recognised and the next sequence is still expected."""
    create_topic(broker, "sequences")
    with WireConnection(HOST, broker.port) as connection:
        response = connection.call(InitProducerIdRequest(
            transactional_id=None, transaction_timeout_ms=60_000, producer_id=-1,
            producer_epoch=-1), InitProducerIdResponse, 4)
        assert response.error_code == 0
        producer_id, epoch = response.producer_id, response.producer_epoch
        assert producer_id >= 0

        def send(sequence: int, values: list[bytes]):
            batch = idempotent_batch(producer_id, epoch, sequence, values)
            return connection.produce({"sequences": {0: batch}})[("sequences", 0)]

        assert send(0, [b"a", b"b"]) == (0, 0)
        assert send(2, [b"c"]) == (0, 2)
        assert send(0, [b"a", b"b"]) == (0, 0), "a retry gets its first offset"
        assert send(5, [b"gap"])[0] == OUT_OF_ORDER_SEQUENCE_NUMBER

    broker.restart(stop)
    with WireConnection(HOST, broker.port) as connection:
        batch = idempotent_batch(producer_id, epoch, 2, [b"c"])
        assert connection.produce({"sequences": {0: batch}})[("sequences", 0)] == (0, 2)
        batch = idempotent_batch(producer_id, epoch, 3, [b"d"])
        assert connection.produce({"sequences": {0: batch}})[("sequences", 0)] == (0, 3)
        _, high_watermark, records = connection.fetch("sequences", {0: 0})[0]
    assert high_watermark == 4
    assert [value for _, _, value in records] == [b"a", b"b", b"c", b"d"]


def test_authorized_operations_without_an_authorizer(broker):
    """Metadata v10 asked for topic and cluster authorized operations, and DescribeGroups v5 for
    a group's, answer every operation the resource supports (KIP-430), as a Kafka broker without
    an authorizer does: topic READ, WRITE, CREATE, DELETE, ALTER, DESCRIBE, DESCRIBE_CONFIGS,
    ALTER_CONFIGS (codes 3-8, 10, 11: 3576); cluster CREATE, ALTER, DESCRIBE, CLUSTER_ACTION,
    DESCRIBE_CONFIGS, ALTER_CONFIGS, IDEMPOTENT_WRITE (5, 7-12: 8096); group READ, DELETE,
    DESCRIBE (3, 6, 8: 328). Not asked, the fields hold Kafka's -2147483648. kafka-python decodes
    the bitfields into sets of operation codes."""
    from kafka.protocol.admin import DescribeGroupsRequest, DescribeGroupsResponse

    topic = "authorized-operations"
    create_topic(broker, topic)
    topic_operations, cluster_operations = {3, 4, 5, 6, 7, 8, 10, 11}, {5, 7, 8, 9, 10, 11, 12}
    not_requested = None  # kafka-python's reading of -2147483648 (bit 31 alone)
    with WireConnection(HOST, broker.port) as connection:
        for asked, (topic_bits, cluster_bits) in {
                True: (topic_operations, cluster_operations),
                False: (not_requested, not_requested)}.items():
            response = connection.call(MetadataRequest(
                topics=[MetadataRequest.MetadataRequestTopic(name=topic)],
                allow_auto_topic_creation=False, include_cluster_authorized_operations=asked,
                include_topic_authorized_operations=asked), MetadataResponse, 10)
            (found,) = response.topics
            assert (found.error_code, found.authorized_operations) == (0, topic_bits)
            assert response.authorized_operations == cluster_bits
        described = connection.call(DescribeGroupsRequest(groups=["operations-group"],
                                                          include_authorized_operations=True),
                                    DescribeGroupsResponse, 5)
        (group,) = described.groups
        assert group.authorized_operations == {3, 6, 8}, group
