"""ACLs on the group and transaction APIs with Kafka's standard authorizer, driven by
confluent-kafka over SASL_PLAINTEXT (PLAIN): a member with READ on its group and topic consumes
and commits, and sees only the offsets of topics it may describe; a user without ACLs is refused
the group; a transactional producer commits with WRITE on its id and topic and is refused an id
it has no ACL on; an idempotent producer with only WRITE on a topic gets a producer id (KIP-679)
and one without is refused; ListGroups shows a user only the groups it may describe. Single
requests on the PLAINTEXT listener (principal User:ANONYMOUS) show what a broker's APIs need
(CLUSTER_ACTION) and how AddPartitionsToTxn refuses a topic.

One broker serves the module (admin is its super user); each test uses resources of its own.
"""

from __future__ import annotations

import gc
import time
import uuid

import pytest
from confluent_kafka import (Consumer, ConsumerGroupTopicPartitions, KafkaError, KafkaException,
                             Producer, TopicPartition)
from confluent_kafka.admin import (AclBinding, AclBindingFilter, AclOperation,
                                   AclPermissionType, AdminClient, NewTopic, ResourcePatternType,
                                   ResourceType)
from kafka.protocol.producer import (AddPartitionsToTxnRequest, AddPartitionsToTxnResponse,
                                    InitProducerIdRequest, InitProducerIdResponse,
                                    WriteTxnMarkersRequest, WriteTxnMarkersResponse)

import support
from kafka_wire import WireConnection
from support import HOST, Broker
from test_acls import USERS, acl_overrides
from test_transactions_wire import add_partitions

DEADLINE_S = 30
RECORDS = 20
# The principal of the PLAINTEXT listener's connections.
ANONYMOUS = "ANONYMOUS"
OPERATION_NOT_ATTEMPTED = 55


@pytest.fixture(scope="module")
def secured(tmp_path_factory):
    """The module's broker: the standard authorizer, admin its super user, PLAIN users on a
    SASL_PLAINTEXT listener (PLAINTEXT stays for the broker's own traffic)."""
    broker = Broker(tmp_path_factory.mktemp("acl-coordinators"))
    sasl_port = support.free_port()
    # Unlike test_acls, the PLAINTEXT listener's ANONYMOUS is no super user here.
    broker.overrides.update({**acl_overrides(broker, sasl_port), "super.users": "User:admin"})
    broker.sasl_bootstrap = f"{HOST}:{sasl_port}"
    broker.start()
    yield broker
    broker.kill()


@pytest.fixture(autouse=True)
def _report_broker(secured):
    if secured not in support.started_brokers:
        support.started_brokers.append(secured)
    assert secured.is_running(), "the module's broker exited earlier in the module"
    yield
    # Clients a refusal's traceback still holds are freed now, not once the broker is gone.
    gc.collect()


def config(broker: Broker, user: str, **extra) -> dict:
    """confluent-kafka settings for `user` on the SASL listener."""
    return {"bootstrap.servers": broker.sasl_bootstrap, "security.protocol": "SASL_PLAINTEXT",
            "sasl.mechanisms": "PLAIN", "sasl.username": user, "sasl.password": USERS[user],
            **extra}


def admin(broker: Broker, user: str = "admin") -> AdminClient:
    """An admin client; keep it referenced until its futures are done (a dropped client
    cancels them)."""
    return AdminClient(config(broker, user))


def committed(broker: Broker, user: str, group: str,
              partitions: list[TopicPartition] | None = None) -> list[TopicPartition]:
    """The group's committed offsets as `user` lists them: of `partitions`, or all (None)."""
    client = admin(broker, user)
    wanted = ConsumerGroupTopicPartitions(group, partitions)
    listing = client.list_consumer_group_offsets([wanted])[group].result(timeout=DEADLINE_S)
    return listing.topic_partitions


def unique(name: str) -> str:
    return f"{name}-{uuid.uuid4().hex[:8]}"


def allow(user: str, resource_type: ResourceType, name: str, *operations: AclOperation,
          pattern: ResourcePatternType = ResourcePatternType.LITERAL) -> list[AclBinding]:
    return [AclBinding(resource_type, name, pattern, f"User:{user}", "*", operation,
                       AclPermissionType.ALLOW) for operation in operations]


def grant(broker: Broker, bindings: list[AclBinding]) -> None:
    """Creates `bindings` as admin and waits until DescribeAcls shows every one."""
    client = admin(broker)
    for future in client.create_acls(bindings).values():
        future.result(timeout=DEADLINE_S)
    deadline = time.monotonic() + DEADLINE_S
    while True:
        shown = set()
        for binding in bindings:
            wanted = AclBindingFilter(binding.restype, binding.name, binding.resource_pattern_type,
                                      binding.principal, binding.host, binding.operation,
                                      binding.permission_type)
            shown.update(client.describe_acls(wanted).result(timeout=DEADLINE_S))
        if all(binding in shown for binding in bindings):
            return
        assert time.monotonic() < deadline, f"ACLs not shown: {bindings}"
        time.sleep(0.1)


def create_topics(broker: Broker, *names: str) -> None:
    client = admin(broker)
    for future in client.create_topics([NewTopic(name, 1, 1) for name in names]).values():
        future.result(timeout=DEADLINE_S)


def produce_as_admin(broker: Broker, topic: str, count: int = RECORDS) -> None:
    producer = Producer(config(broker, "admin"))
    for index in range(count):
        producer.produce(topic, f"{topic}-{index}".encode(), partition=0)
    assert producer.flush(DEADLINE_S) == 0, "records left unsent"


def consume(broker: Broker, user: str, group: str, topic: str, count: int,
            **extra) -> list[str]:
    """Reads `count` records of `topic` as `user` in `group` and commits them; fails on an error."""
    consumer = Consumer(config(broker, user, **{
        "group.id": group, "auto.offset.reset": "earliest", "enable.auto.commit": False,
        **extra}))
    consumer.subscribe([topic])
    read: list[str] = []
    deadline = time.monotonic() + DEADLINE_S
    try:
        while len(read) < count:
            assert time.monotonic() < deadline, f"read {len(read)} of {count}"
            message = consumer.poll(0.5)
            if message is None:
                continue
            assert message.error() is None, message.error()
            read.append(message.value().decode())
        consumer.commit(asynchronous=False)
    finally:
        consumer.close()
    return read


def refusals(consumer: Consumer, seconds: float = 10) -> set[int]:
    """The error codes the consumer's polls surface for `seconds`; fails on a record."""
    codes: set[int] = set()
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        message = consumer.poll(0.5)
        if message is None:
            continue
        assert message.error() is not None, f"a refused consumer read {message.value()!r}"
        codes.add(message.error().code())
    return codes


def wire_codes(answer) -> list[int]:
    """Every partition's error code in a WriteTxnMarkers answer."""
    return [partition.error_code for marker in answer.markers for topic in marker.topics
            for partition in topic.partitions]


def consumer_grants(user: str, group: str, topic: str) -> list[AclBinding]:
    """What a member of `group` reading `topic` needs."""
    return (allow(user, ResourceType.GROUP, group, AclOperation.READ)
            + allow(user, ResourceType.TOPIC, topic, AclOperation.READ))


@pytest.mark.parametrize("protocol", ["classic", "consumer"])
def test_member_with_acls_consumes_and_commits(secured, protocol):
    """With READ on its group and topic, alice joins, reads everything and commits; the
    committed offset is what she and the admin read back."""
    topic, group = unique("orders"), unique("orders-app")
    create_topics(secured, topic)
    produce_as_admin(secured, topic)
    grant(secured, consumer_grants("alice", group, topic))

    read = consume(secured, "alice", group, topic, RECORDS, **{"group.protocol": protocol})

    assert read == [f"{topic}-{index}" for index in range(RECORDS)]
    for user in ("alice", "admin"):
        assert [(tp.topic, tp.partition, tp.offset) for tp in committed(secured, user, group)] == [
            (topic, 0, RECORDS)], user


@pytest.mark.parametrize("protocol", ["classic", "consumer"])
def test_user_without_acls_is_refused_the_group(secured, protocol):
    """bob has no ACLs: his member is refused the group's coordinator (GROUP_AUTHORIZATION_FAILED,
    as the client surfaces it) and reads nothing; as an admin client he may neither read the
    group's offsets nor delete it."""
    topic, group = unique("orders"), unique("orders-app")
    create_topics(secured, topic)
    produce_as_admin(secured, topic)
    grant(secured, consumer_grants("alice", group, topic))
    consume(secured, "alice", group, topic, RECORDS)

    consumer = Consumer(config(secured, "bob", **{
        "group.id": group, "auto.offset.reset": "earliest", "group.protocol": protocol}))
    consumer.subscribe([topic])
    try:
        codes = refusals(consumer)
    finally:
        consumer.close()
    assert codes == {KafkaError.GROUP_AUTHORIZATION_FAILED}, codes

    with pytest.raises(KafkaException) as fetched:
        committed(secured, "bob", group)
    assert fetched.value.args[0].code() == KafkaError.GROUP_AUTHORIZATION_FAILED
    bob = admin(secured, "bob")
    with pytest.raises(KafkaException) as deleted:
        bob.delete_consumer_groups([group])[group].result(timeout=DEADLINE_S)
    assert deleted.value.args[0].code() == KafkaError.GROUP_AUTHORIZATION_FAILED


def test_member_sees_and_commits_only_topics_it_may(secured):
    """alice, a member of her group, cannot commit to a topic she may not read, and the group's
    offsets of such a topic (committed by the admin) are left out of what she lists, or refused
    when she names them."""
    topic, secret, group = unique("orders"), unique("secret"), unique("orders-app")
    create_topics(secured, topic, secret)
    produce_as_admin(secured, topic)
    grant(secured, consumer_grants("alice", group, topic))
    consume(secured, "alice", group, topic, RECORDS)

    consumer = Consumer(config(secured, "alice", **{"group.id": group,
                                                    "enable.auto.commit": False}))
    try:
        with pytest.raises(KafkaException) as refused:
            consumer.commit(offsets=[TopicPartition(secret, 0, 3)], asynchronous=False)
    finally:
        consumer.close()
    error = refused.value.args[0]
    assert error.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED, error

    client = admin(secured)
    altered = client.alter_consumer_group_offsets(
        [ConsumerGroupTopicPartitions(group, [TopicPartition(secret, 0, 7)])])
    altered[group].result(timeout=DEADLINE_S)
    assert sorted((tp.topic, tp.offset) for tp in committed(secured, "admin", group)) == sorted(
        [(topic, RECORDS), (secret, 7)])

    every = committed(secured, "alice", group)
    assert [(tp.topic, tp.offset) for tp in every] == [(topic, RECORDS)]
    named = committed(secured, "alice", group,
                      [TopicPartition(topic, 0), TopicPartition(secret, 0)])
    by_topic = {tp.topic: tp for tp in named}
    assert by_topic[topic].offset == RECORDS and by_topic[topic].error is None
    assert by_topic[secret].error.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED


def test_kip848_member_is_refused_topics_it_may_not_describe(secured):
    """A KIP-848 member subscribing to a topic it may not describe is refused by its heartbeat
    (TOPIC_AUTHORIZATION_FAILED naming the topic) and reads nothing, its group READ
    notwithstanding."""
    topic, secret, group = unique("orders"), unique("secret"), unique("orders-app")
    create_topics(secured, topic, secret)
    produce_as_admin(secured, topic)
    grant(secured, consumer_grants("alice", group, topic))

    consumer = Consumer(config(secured, "alice", **{
        "group.id": group, "auto.offset.reset": "earliest", "group.protocol": "consumer"}))
    consumer.subscribe([topic, secret])
    messages: list[str] = []
    deadline = time.monotonic() + 10
    try:
        while time.monotonic() < deadline:
            message = consumer.poll(0.5)
            if message is None:
                continue
            assert message.error() is not None, f"read {message.value()!r}"
            messages.append(message.error().str())
    finally:
        consumer.close()
    assert messages and all("Topic authorization failed" in text and f"[{secret}]" in text
                            for text in messages), messages


def test_broker_apis_need_cluster_action(secured):
    """Without CLUSTER_ACTION (or ALTER) on the cluster, WriteTxnMarkers is refused partition by
    partition and the brokers' AddPartitionsToTxn (v4) as a whole; a client's AddPartitionsToTxn
    (v3) with a topic it may not write fails that topic (TOPIC_AUTHORIZATION_FAILED) and leaves
    the rest unattempted; InitProducerId of an id it may not write is refused."""
    topic, hidden, transactional_id = unique("ledger"), unique("hidden"), unique("wire-txn")
    create_topics(secured, topic, hidden)
    marker_type = WriteTxnMarkersRequest.WritableTxnMarker
    markers = WriteTxnMarkersRequest(markers=[marker_type(
        producer_id=4242, producer_epoch=0, transaction_result=True, coordinator_epoch=0,
        topics=[marker_type.WritableTxnMarkerTopic(name=topic, partition_indexes=[0])])])
    with WireConnection(HOST, secured.port) as connection:
        refused = connection.call(markers, WriteTxnMarkersResponse, 1)
        assert wire_codes(refused) == [KafkaError.CLUSTER_AUTHORIZATION_FAILED]
        transaction_type = AddPartitionsToTxnRequest.AddPartitionsToTxnTransaction
        verify = connection.call(AddPartitionsToTxnRequest(transactions=[transaction_type(
            transactional_id=transactional_id, producer_id=4242, producer_epoch=0,
            verify_only=True, topics=[transaction_type.AddPartitionsToTxnTopic(
                name=topic, partitions=[0])])]), AddPartitionsToTxnResponse, 4)
        assert verify.error_code == KafkaError.CLUSTER_AUTHORIZATION_FAILED, verify
        assert not verify.results_by_transaction, verify
        producer_id = connection.call(
            InitProducerIdRequest(transactional_id=transactional_id,
                                  transaction_timeout_ms=60_000, producer_id=-1,
                                  producer_epoch=-1), InitProducerIdResponse, 4)
        assert producer_id.error_code == KafkaError.TRANSACTIONAL_ID_AUTHORIZATION_FAILED
        assert add_partitions(connection, transactional_id, (4242, 0), {topic: [0]}) == {
            (topic, 0): KafkaError.TRANSACTIONAL_ID_AUTHORIZATION_FAILED}

        grant(secured, allow(ANONYMOUS, ResourceType.TRANSACTIONAL_ID, transactional_id,
                             AclOperation.WRITE)
              + allow(ANONYMOUS, ResourceType.TOPIC, topic, AclOperation.WRITE))
        assert add_partitions(connection, transactional_id, (4242, 0),
                              {topic: [0], hidden: [0]}) == {
            (topic, 0): OPERATION_NOT_ATTEMPTED,
            (hidden, 0): KafkaError.TOPIC_AUTHORIZATION_FAILED}

        # BROKER is confluent-kafka's name for the CLUSTER resource type.
        grant(secured, allow(ANONYMOUS, ResourceType.BROKER, "kafka-cluster",
                             AclOperation.CLUSTER_ACTION))
        allowed = connection.call(markers, WriteTxnMarkersResponse, 1)
        assert KafkaError.CLUSTER_AUTHORIZATION_FAILED not in wire_codes(allowed), allowed


def test_transactional_producer_needs_write_on_its_id(secured):
    """alice, with WRITE on her transactional id and output topic and READ on her group and
    input topic, commits a transaction with the group's offsets that a read_committed reader
    and the group show; a producer of an id she has no ACL on is refused
    TRANSACTIONAL_ID_AUTHORIZATION_FAILED."""
    source, topic = unique("orders"), unique("payments")
    group, transactional_id = unique("payments-app"), unique("alice-txn")
    create_topics(secured, source, topic)
    grant(secured, allow("alice", ResourceType.TRANSACTIONAL_ID, transactional_id,
                         AclOperation.WRITE)
          + allow("alice", ResourceType.TOPIC, topic, AclOperation.WRITE)
          + consumer_grants("alice", group, source))

    producer = Producer(config(secured, "alice", **{"transactional.id": transactional_id}))
    producer.init_transactions(DEADLINE_S)
    producer.begin_transaction()
    for index in range(RECORDS):
        producer.produce(topic, f"paid-{index}".encode(), partition=0)
    reader = Consumer(config(secured, "alice", **{"group.id": group}))
    try:
        producer.send_offsets_to_transaction([TopicPartition(source, 0, 5)],
                                             reader.consumer_group_metadata(), DEADLINE_S)
    finally:
        reader.close()
    producer.commit_transaction(DEADLINE_S)

    consumer = Consumer(config(secured, "admin", **{
        "group.id": unique("auditor"), "auto.offset.reset": "earliest",
        "isolation.level": "read_committed"}))
    consumer.assign([TopicPartition(topic, 0)])
    read: list[str] = []
    deadline = time.monotonic() + DEADLINE_S
    while len(read) < RECORDS and time.monotonic() < deadline:
        message = consumer.poll(0.5)
        if message is not None and message.error() is None:
            read.append(message.value().decode())
    consumer.close()
    assert read == [f"paid-{index}" for index in range(RECORDS)]
    assert [(tp.topic, tp.offset) for tp in committed(secured, "alice", group)] == [(source, 5)]

    foreign = Producer(config(secured, "alice", **{"transactional.id": unique("mallory-txn")}))
    with pytest.raises(KafkaException) as refused:
        foreign.init_transactions(DEADLINE_S)
    assert refused.value.args[0].code() == KafkaError.TRANSACTIONAL_ID_AUTHORIZATION_FAILED


def test_idempotent_producer_needs_write_on_some_topic(secured):
    """carol, with only WRITE on one topic, gets a producer id (KIP-679: no IDEMPOTENT_WRITE on
    the cluster needed) and produces idempotently; bob, who may only describe the topic, is
    refused the producer id: a fatal CLUSTER_AUTHORIZATION_FAILED."""
    topic = unique("metrics")
    create_topics(secured, topic)
    grant(secured, allow("carol", ResourceType.TOPIC, topic, AclOperation.WRITE))

    delivered: list[tuple[int, int]] = []

    def report(error, message):
        assert error is None, error
        delivered.append((message.partition(), message.offset()))

    producer = Producer(config(secured, "carol", **{"enable.idempotence": True}))
    for index in range(RECORDS):
        producer.produce(topic, f"sample-{index}".encode(), partition=0, on_delivery=report)
    assert producer.flush(DEADLINE_S) == 0, "records left unsent"
    assert delivered == [(0, offset) for offset in range(RECORDS)]

    # DESCRIBE lets bob see the topic, so what refuses him is the producer id.
    grant(secured, allow("bob", ResourceType.TOPIC, topic, AclOperation.DESCRIBE))
    refused = Producer(config(secured, "bob", **{"enable.idempotence": True}))
    with pytest.raises(KafkaException) as fatal:
        refused.produce(topic, b"refused", partition=0)
        refused.flush(DEADLINE_S)
    error = fatal.value.args[0]
    assert error.fatal() and error.code() == KafkaError.CLUSTER_AUTHORIZATION_FAILED, error


def test_list_groups_shows_only_describable_groups(secured):
    """ListGroups: the admin (a super user) and alice (READ on her group) see alice's group; bob,
    with no DESCRIBE on it or the cluster, does not."""
    topic, group = unique("orders"), unique("orders-app")
    create_topics(secured, topic)
    produce_as_admin(secured, topic)
    grant(secured, consumer_grants("alice", group, topic))
    consume(secured, "alice", group, topic, RECORDS)

    def listed(user: str) -> set[str]:
        client = admin(secured, user)
        result = client.list_consumer_groups().result(timeout=DEADLINE_S)
        assert not result.errors, result.errors
        return {listing.group_id for listing in result.valid}

    assert group in listed("admin")
    assert group in listed("alice")
    assert group not in listed("bob")
