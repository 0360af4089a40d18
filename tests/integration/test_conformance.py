"""The client conformance matrix: kcat, confluent-kafka, kafka-python and aiokafka each produce and
consume with every compression codec, keys, headers and idempotence on, read each other's records,
and drive their admin clients through create, describe, alter and delete of topics and configs.

Records are checked one by one (key, value, headers, partition, offset, order within the
partition), and the broker's copy is read back with a raw Fetch: batches stored as the client sent
them, compressed with its codec, under one producer id with gapless sequences. Config values and
sources are checked against what Apache Kafka answers for the same calls.

One broker serves the whole module; every test uses topics of its own.
"""

from __future__ import annotations

import pytest

import support
from conformance_clients import (ADMIN_CLIENTS, CLIENTS, CODECS, HEADERS_PER_RECORD,
                                 MAY_SKIP_COMPRESSION, ConfigValue, Consumed, Record,
                                 assert_contiguous_sequences, consume, produce, stored_batches)
from kafka_wire import WireConnection, record_batch
from support import HOST, check_history, create_topic, keyed_messages

PARTITIONS = 3
RECORDS = 200
# Makes every value compress well, so that librdkafka keeps the codec on every batch but a
# lone record.
PAYLOAD = "conformance-" * 6
BROKER_ID = "1"

# Kafka error codes the admin tests expect.
NONE = 0
UNKNOWN_TOPIC_OR_PARTITION = 3
TOPIC_ALREADY_EXISTS = 36
INVALID_PARTITIONS = 37
INVALID_CONFIG = 40

DYNAMIC_TOPIC_CONFIG = "DYNAMIC_TOPIC_CONFIG"
STATIC_BROKER_CONFIG = "STATIC_BROKER_CONFIG"
DEFAULT_CONFIG = "DEFAULT_CONFIG"

# Each client reads what two others produced, each pair with another codec.
CROSS_READS = [
    ("kcat", "confluent-kafka", "zstd"),
    ("confluent-kafka", "kafka-python", "lz4"),
    ("kafka-python", "aiokafka", "snappy"),
    ("aiokafka", "kcat", "gzip"),
    ("confluent-kafka", "kcat", "snappy"),
    ("kafka-python", "confluent-kafka", "gzip"),
    ("aiokafka", "kafka-python", "zstd"),
    ("kcat", "aiokafka", "lz4"),
]


shared_broker, _report_shared_broker = support.shared_broker_fixtures("conformance")


def conformance_records(client: str, codec: str, count: int = RECORDS) -> list[Record]:
    """`count` records with distinct keys and two headers each (per record where the client can,
    else the same two on every record)."""
    records = []
    for index, (key, value) in enumerate(keyed_messages(count, keys=count)):
        if HEADERS_PER_RECORD[client]:
            headers = (("index", str(index).encode()), ("codec", codec.encode()))
        else:
            headers = (("client", client.encode()), ("codec", codec.encode()))
        records.append(Record(key.encode(), f"{value}.{PAYLOAD}".encode(), headers))
    return records


def check_records(sent: list[Record], consumed: list[Consumed],
                  reports: list[tuple[int, int]] | None) -> None:
    """Each record back once, byte for byte with its headers; per partition, offsets 0..n-1 and
    records in the order they were sent; each acknowledged (partition, offset) holds its record."""
    check_history([(r.key.decode(), r.value.decode()) for r in sent],
                  [(c.partition, c.offset, c.record.key.decode(), c.record.value.decode())
                   for c in consumed], PARTITIONS)
    index_of = {record.key: index for index, record in enumerate(sent)}
    last_index: dict[int, int] = {}
    for c in consumed:
        index = index_of[c.record.key]
        assert c.record == sent[index], (
            f"{c.partition}/{c.offset} holds {c.record}, sent {sent[index]}")
        assert index > last_index.get(c.partition, -1), (
            f"partition {c.partition}: record {index} at offset {c.offset} after record "
            f"{last_index[c.partition]} (send order broken)")
        last_index[c.partition] = index
    if reports is not None:
        at = {(c.partition, c.offset): c.record for c in consumed}
        for (partition, offset), record in zip(reports, sent, strict=True):
            assert at.get((partition, offset)) == record, (
                f"acknowledged at {partition}/{offset}, which holds "
                f"{at.get((partition, offset))}, not {record}")


def check_stored_as_sent(broker: support.Broker, topic: str, client: str, codec: str) -> None:
    """The broker kept the client's batches: its codec in the attributes, one idempotent
    producer, and per partition sequences that start at 0 and run on without a gap."""
    batches = stored_batches(HOST, broker.port, topic, PARTITIONS)
    assert sum(batch.records for batch in batches) == RECORDS, batches
    expected = CODECS[codec]
    allowed = {expected, CODECS["none"]} if MAY_SKIP_COMPRESSION[client] else {expected}
    codecs = {batch.codec for batch in batches}
    assert expected in codecs and codecs <= allowed, (
        f"{client} produced with compression {codec} (codec {expected}); the stored batches "
        f"have codecs {sorted(codecs)}")
    if MAY_SKIP_COMPRESSION[client] and expected:
        uncompressed = [b for b in batches if b.codec == CODECS["none"] and b.records > 1]
        assert not uncompressed, f"batches of several records stored uncompressed: {uncompressed}"

    producers = {(batch.producer_id, batch.producer_epoch) for batch in batches}
    assert len(producers) == 1, f"batches from several producers: {sorted(producers)}"
    [(producer_id, _)] = producers
    assert producer_id >= 0, f"idempotent {client} batches carry producer id {producer_id}"
    assert_contiguous_sequences(batches)


# ---- produce and consume ----------------------------------------------------------------------

def test_api_versions_advertise_produce_from_v0(shared_broker):
    """Produce is advertised from v0, as Kafka 4 does though it serves only v3+ (KAFKA-18659):
    librdkafka before the fix of its issue 4956 (Debian's kcat has 2.0.2) sends gzip, snappy and
    lz4 batches uncompressed to a broker without Produce v0."""
    with WireConnection(HOST, shared_broker.port) as connection:
        versions = connection.api_versions()
    produce_key = 0
    assert versions[produce_key][0] == 0, f"Produce advertised as {versions[produce_key]}"
    assert versions[produce_key][1] >= 9, f"Produce advertised as {versions[produce_key]}"


@pytest.mark.parametrize("codec", list(CODECS))
@pytest.mark.parametrize("client", CLIENTS)
def test_client_round_trip(shared_broker, client, codec):
    """A client's keyed records with headers, idempotent and compressed, come back to the same
    client exactly as sent, and the broker stored its batches as they were sent."""
    topic = f"conformance-{client}-{codec}"
    create_topic(shared_broker, topic, partitions=PARTITIONS)
    sent = conformance_records(client, codec)

    reports = produce(client, shared_broker.bootstrap, topic, sent, codec)
    consumed = consume(client, shared_broker.bootstrap, topic, PARTITIONS, len(sent))

    check_records(sent, consumed, reports)
    check_stored_as_sent(shared_broker, topic, client, codec)


@pytest.mark.parametrize("producer,consumer,codec", CROSS_READS,
                         ids=[f"{p}-to-{c}-{codec}" for p, c, codec in CROSS_READS])
def test_clients_read_each_others_records(shared_broker, producer, consumer, codec):
    """Records one client produced (compressed, with headers) read back identically by another."""
    topic = f"conformance-cross-{producer}-{consumer}-{codec}"
    create_topic(shared_broker, topic, partitions=PARTITIONS)
    sent = conformance_records(producer, codec)

    reports = produce(producer, shared_broker.bootstrap, topic, sent, codec)
    consumed = consume(consumer, shared_broker.bootstrap, topic, PARTITIONS, len(sent))

    check_records(sent, consumed, reports)


# ---- admin ------------------------------------------------------------------------------------

@pytest.fixture(params=list(ADMIN_CLIENTS))
def admin(request, shared_broker):
    client = ADMIN_CLIENTS[request.param](shared_broker.bootstrap)
    yield client
    client.close()


def test_admin_create_topic(admin):
    """validate_only checks a topic (configs included) and creates nothing; the real create
    makes it with its partitions, and a second create is TOPIC_ALREADY_EXISTS."""
    topic = f"admin-create-{admin.name}"
    configs = {"retention.ms": "3600000", "cleanup.policy": "compact"}

    assert admin.create_topic(topic, 2, configs, validate_only=True) == NONE
    assert topic not in admin.list_topics(), "validate_only created the topic"
    assert admin.create_topic(topic, 2, {"cleanup.policy": "forever"},
                              validate_only=True) == INVALID_CONFIG
    assert admin.create_topic(topic, 2, {"no.such.config": "1"},
                              validate_only=True) == INVALID_CONFIG
    assert topic not in admin.list_topics()

    assert admin.create_topic(topic, 2, configs) == NONE
    assert topic in admin.list_topics()
    assert admin.partition_count(topic) == 2
    assert admin.create_topic(topic, 2, configs) == TOPIC_ALREADY_EXISTS


def test_admin_describe_and_alter_topic_configs(admin):
    """Configs set at creation are DYNAMIC_TOPIC_CONFIG, all others the broker's defaults; an
    alter that sets two and removes one leaves exactly the two set, the third back at its
    default."""
    topic = f"admin-configs-{admin.name}"
    assert admin.create_topic(topic, 1, {"retention.ms": "3600000",
                                         "cleanup.policy": "compact"}) == NONE

    before = admin.topic_configs(topic)
    assert before["retention.ms"] == ConfigValue("3600000", DYNAMIC_TOPIC_CONFIG)
    assert before["cleanup.policy"] == ConfigValue("compact", DYNAMIC_TOPIC_CONFIG)
    assert before["segment.bytes"] == ConfigValue("1073741824", DEFAULT_CONFIG)
    assert before["max.message.bytes"] == ConfigValue("1048588", DEFAULT_CONFIG)
    assert before["compression.type"] == ConfigValue("producer", DEFAULT_CONFIG)
    check_only_dynamic(before, {"retention.ms", "cleanup.policy"})

    admin.alter_topic_configs(topic, {"retention.ms": "7200000", "max.message.bytes": "2097152"},
                              delete_configs=["cleanup.policy"])

    after = admin.topic_configs(topic)
    assert after["retention.ms"] == ConfigValue("7200000", DYNAMIC_TOPIC_CONFIG)
    assert after["max.message.bytes"] == ConfigValue("2097152", DYNAMIC_TOPIC_CONFIG)
    assert after["cleanup.policy"] == ConfigValue("delete", DEFAULT_CONFIG)
    check_only_dynamic(after, {"retention.ms", "max.message.bytes"})
    assert set(after) == set(before), "describe lists a different set of topic configs"


def check_only_dynamic(configs: dict[str, ConfigValue], dynamic: set[str]) -> None:
    sources = {name: config.source for name, config in configs.items()}
    assert {name for name, source in sources.items() if source == DYNAMIC_TOPIC_CONFIG} == dynamic
    others = {name: source for name, source in sources.items()
              if source not in (DYNAMIC_TOPIC_CONFIG, DEFAULT_CONFIG, STATIC_BROKER_CONFIG)}
    assert not others, f"configs with unexpected sources: {others}"


def test_admin_create_partitions(admin, shared_broker):
    """A topic grows from 1 to 3 partitions and the new ones take records; shrinking it is
    INVALID_PARTITIONS, growing an unknown topic UNKNOWN_TOPIC_OR_PARTITION."""
    topic = f"admin-partitions-{admin.name}"
    assert admin.create_topic(topic, 1, {}) == NONE

    assert admin.create_partitions(topic, 3) == NONE
    assert admin.partition_count(topic) == 3
    assert admin.create_partitions(topic, 2) == INVALID_PARTITIONS
    assert admin.partition_count(topic) == 3
    assert admin.create_partitions(f"{topic}-missing", 2) == UNKNOWN_TOPIC_OR_PARTITION

    with WireConnection(HOST, shared_broker.port) as connection:
        answers = connection.produce({topic: {2: record_batch([(b"key", b"value")])}})
    assert answers == {(topic, 2): (NONE, 0)}


def test_admin_describe_cluster(admin, shared_broker):
    """The cluster id is the one in meta.properties, and the one broker is also the controller
    clients are told about, at its advertised address."""
    meta = dict(line.split("=", 1) for line in
                (shared_broker.data_dir / "meta.properties").read_text().splitlines()
                if "=" in line and not line.startswith("#"))
    cluster = admin.describe_cluster()
    assert cluster.cluster_id == meta["cluster.id"]
    assert cluster.controller_id == int(BROKER_ID)
    assert cluster.brokers == [(int(BROKER_ID), HOST, shared_broker.port)]


def test_admin_describe_broker_configs(admin, shared_broker):
    """A broker's configs: those from server.properties and --override are
    STATIC_BROKER_CONFIG, one set nowhere is DEFAULT_CONFIG with Kafka's default."""
    configs = admin.broker_configs(BROKER_ID)
    assert configs["num.partitions"] == ConfigValue("1", STATIC_BROKER_CONFIG)
    assert configs["log.dirs"] == ConfigValue(str(shared_broker.data_dir), STATIC_BROKER_CONFIG)
    assert configs["log.segment.bytes"] == ConfigValue("1073741824", DEFAULT_CONFIG)


def test_admin_delete_topic(admin):
    """A deleted topic is gone from the topic list; deleting it again is
    UNKNOWN_TOPIC_OR_PARTITION."""
    topic = f"admin-delete-{admin.name}"
    assert admin.create_topic(topic, 2, {"retention.ms": "3600000"}) == NONE
    assert topic in admin.list_topics()

    assert admin.delete_topic(topic) == NONE
    assert topic not in admin.list_topics()
    assert admin.delete_topic(topic) == UNKNOWN_TOPIC_OR_PARTITION
