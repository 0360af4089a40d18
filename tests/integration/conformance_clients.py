"""The four clients of the conformance matrix behind one shape, so that one check covers them all.

Data path: each client produces `Record`s (key, value, headers; all bytes but header names) with a
compression codec, acks=all and idempotence on, and consumes `Consumed` records (partition, offset,
record) from the beginning of every partition: `assign`, no group membership, no commits. Producers
that report deliveries return (partition, offset) per record in send order; kcat returns None.
`stored_batches` reads the record batches back with a raw Fetch to see what the broker kept.

Admin: `ADMIN_CLIENTS` maps a name to an adapter over confluent-kafka's AdminClient, kafka-python's
KafkaAdminClient or aiokafka's AIOKafkaAdminClient. Adapters answer Kafka error codes (0 = none) for
the calls a test expects to fail, and fail with the client's own answer for those that must not.

Every wait is bounded by DEADLINE_S: a broken broker fails a test, never hangs the suite.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka import TopicPartition as AiokafkaTopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin import NewPartitions as AiokafkaNewPartitions
from aiokafka.admin import NewTopic as AiokafkaNewTopic
from aiokafka.admin.config_resource import ConfigResource as AiokafkaConfigResource
from aiokafka.admin.config_resource import ConfigResourceType as AiokafkaConfigResourceType
from aiokafka.errors import KafkaError as AiokafkaError
from confluent_kafka import KafkaException
from confluent_kafka.admin import (AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource,
                                   NewPartitions, NewTopic, ResourceType)
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer
from kafka import TopicPartition as KafkaPythonTopicPartition
from kafka.admin import AlterConfigOp, ConfigResourceType
from kafka.admin import ConfigResource as KafkaPythonConfigResource
from kafka.protocol.consumer import FetchRequest, FetchResponse
from kafka.record import MemoryRecords

import clients
from clients import DEADLINE_S
from kafka_wire import FETCH_VERSION_MAX, FETCH_VERSION_MIN, WireConnection
from test_kcat import kcat

# Kafka's record batch attribute bits 0-2.
CODECS = {"none": 0, "gzip": 1, "snappy": 2, "lz4": 3, "zstd": 4}
CLIENTS = ("kcat", "confluent-kafka", "kafka-python", "aiokafka")
# kcat's -H adds the same headers to every record of a run; the libraries set them per record.
HEADERS_PER_RECORD = {"kcat": False, "confluent-kafka": True, "kafka-python": True,
                      "aiokafka": True}
# librdkafka (kcat, confluent-kafka) sends a batch uncompressed when compressing does not make it
# smaller; the Python clients always compress.
MAY_SKIP_COMPRESSION = {"kcat": True, "confluent-kafka": True, "kafka-python": False,
                        "aiokafka": False}
# After the last expected record, how long a consumer keeps polling for anything extra.
TRAILING_POLL_S = 0.5

# Kafka's ConfigSource enum (DescribeConfigs v1+), by wire value.
CONFIG_SOURCES = {0: "UNKNOWN", 1: "DYNAMIC_TOPIC_CONFIG", 2: "DYNAMIC_BROKER_CONFIG",
                  3: "DYNAMIC_DEFAULT_BROKER_CONFIG", 4: "STATIC_BROKER_CONFIG",
                  5: "DEFAULT_CONFIG", 6: "DYNAMIC_BROKER_LOGGER_CONFIG"}


def source_name(value: int) -> str:
    return CONFIG_SOURCES.get(value, f"unknown source {value}")


@dataclass(frozen=True)
class Record:
    key: bytes
    value: bytes
    headers: tuple[tuple[str, bytes], ...]


@dataclass(frozen=True)
class Consumed:
    partition: int
    offset: int
    record: Record


@dataclass(frozen=True)
class Batch:
    """What one stored record batch says about itself (Kafka's v2 batch header)."""
    partition: int
    base_offset: int
    records: int
    codec: int
    producer_id: int
    producer_epoch: int
    base_sequence: int


@dataclass(frozen=True)
class ConfigValue:
    value: str | None
    source: str  # A CONFIG_SOURCES name.


@dataclass(frozen=True)
class Cluster:
    cluster_id: str
    controller_id: int
    brokers: list[tuple[int, str, int]]  # (node id, host, port), sorted


def headers_of(pairs) -> tuple[tuple[str, bytes], ...]:
    """A client's headers (None, a list of pairs, or kcat's JSON) as a tuple of (str, bytes)."""
    if not pairs:
        return ()
    if isinstance(pairs[0], str):  # kcat -J: a flat [name, value, name, value, ...]
        pairs = list(zip(pairs[0::2], pairs[1::2]))
    return tuple((name, value.encode() if isinstance(value, str) else bytes(value))
                 for name, value in pairs)


# ---- produce ----------------------------------------------------------------------------------

def produce(client: str, bootstrap: str, topic: str, records: list[Record],
            codec: str) -> list[tuple[int, int]] | None:
    """Produce `records` in order with `client`: acks=all, idempotent, compressed with `codec`."""
    return PRODUCERS[client](bootstrap, topic, records, codec)


def kcat_produce(bootstrap: str, topic: str, records: list[Record], codec: str) -> None:
    headers = records[0].headers
    assert all(record.headers == headers for record in records), "kcat headers are per run"
    header_args = [arg for name, value in headers for arg in ("-H", f"{name}={value.decode()}")]
    lines = []
    for record in records:
        key, value = record.key.decode(), record.value.decode()
        assert "|" not in key and "\n" not in key + value, f"unframeable record {record}"
        lines.append(f"{key}|{value}\n")
    kcat("-b", bootstrap, "-P", "-t", topic, "-K", "|", *header_args,
         "-X", "enable.idempotence=true", "-X", "acks=all", "-X", "linger.ms=5",
         "-X", f"compression.codec={codec}", input="".join(lines))
    return None


def confluent_produce(bootstrap: str, topic: str, records: list[Record],
                      codec: str) -> list[tuple[int, int]]:
    return clients.confluent_produce(
        bootstrap, topic, [(record.key, record.value, list(record.headers)) for record in records],
        acks="all", **{"enable.idempotence": True, "compression.type": codec,
                       "message.timeout.ms": DEADLINE_S * 1000})


def kafka_python_produce(bootstrap: str, topic: str, records: list[Record],
                         codec: str) -> list[tuple[int, int]]:
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True,
                             compression_type=None if codec == "none" else codec, linger_ms=5,
                             request_timeout_ms=30_000)
    try:
        futures = [producer.send(topic, key=record.key, value=record.value,
                                 headers=list(record.headers))
                   for record in records]
        producer.flush(timeout=DEADLINE_S)
        metadata = [future.get(timeout=10) for future in futures]
        return [(m.partition, m.offset) for m in metadata]
    finally:
        producer.close(timeout=10)


def aiokafka_produce(bootstrap: str, topic: str, records: list[Record],
                     codec: str) -> list[tuple[int, int]]:
    async def run():
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all",
                                    enable_idempotence=True,
                                    compression_type=None if codec == "none" else codec,
                                    linger_ms=5, request_timeout_ms=30_000)
        await producer.start()
        try:
            futures = [await producer.send(topic, key=record.key, value=record.value,
                                           headers=list(record.headers))
                       for record in records]
            metadata = await asyncio.wait_for(asyncio.gather(*futures), DEADLINE_S)
            return [(m.partition, m.offset) for m in metadata]
        finally:
            await producer.stop()
    return asyncio.run(run())


PRODUCERS = {"kcat": kcat_produce, "confluent-kafka": confluent_produce,
             "kafka-python": kafka_python_produce, "aiokafka": aiokafka_produce}


# ---- consume ----------------------------------------------------------------------------------

def consume(client: str, bootstrap: str, topic: str, partitions: int,
            expected: int) -> list[Consumed]:
    """Every record of `topic` from offset 0 of each partition, in the order `client` returns
    them; waits for `expected` records and a moment more for any extra."""
    return CONSUMERS[client](bootstrap, topic, partitions, expected)


def kcat_consume(bootstrap: str, topic: str, partitions: int, expected: int) -> list[Consumed]:
    output = kcat("-b", bootstrap, "-C", "-t", topic, "-o", "beginning", "-e", "-J")
    consumed = []
    for line in output.splitlines():
        message = json.loads(line)
        record = Record(message["key"].encode(), message["payload"].encode(),
                        headers_of(message.get("headers")))
        consumed.append(Consumed(message["partition"], message["offset"], record))
    return consumed


def confluent_consume(bootstrap: str, topic: str, partitions: int,
                      expected: int) -> list[Consumed]:
    return clients.confluent_consume(
        bootstrap, topic, partitions, expected,
        convert=lambda message: Consumed(
            message.partition(), message.offset(),
            Record(message.key(), message.value(), headers_of(message.headers()))))


def kafka_python_consume(bootstrap: str, topic: str, partitions: int, expected: int,
                         isolation_level: str = "read_uncommitted") -> list[Consumed]:
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None,
                             enable_auto_commit=False, auto_offset_reset="earliest",
                             isolation_level=isolation_level)
    consumed: list[Consumed] = []

    def take(batches):
        for partition, messages in sorted(batches.items(), key=lambda item: item[0].partition):
            for message in messages:
                record = Record(message.key, message.value, headers_of(message.headers))
                consumed.append(Consumed(partition.partition, message.offset, record))

    try:
        assigned = [KafkaPythonTopicPartition(topic, p) for p in range(partitions)]
        consumer.assign(assigned)
        consumer.seek_to_beginning(*assigned)
        deadline = _deadline()
        while len(consumed) < expected:
            assert time.monotonic() < deadline, f"consumed {len(consumed)} of {expected}"
            take(consumer.poll(timeout_ms=500, max_records=2000))
        take(consumer.poll(timeout_ms=int(TRAILING_POLL_S * 1000)))
    finally:
        consumer.close()
    return consumed


def aiokafka_consume(bootstrap: str, topic: str, partitions: int, expected: int,
                     isolation_level: str = "read_uncommitted") -> list[Consumed]:
    async def run():
        consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None,
                                    enable_auto_commit=False, auto_offset_reset="earliest",
                                    isolation_level=isolation_level)
        await consumer.start()
        consumed: list[Consumed] = []

        def take(batches):
            for partition, messages in sorted(batches.items(),
                                              key=lambda item: item[0].partition):
                for message in messages:
                    record = Record(message.key, message.value, headers_of(message.headers))
                    consumed.append(Consumed(partition.partition, message.offset, record))

        try:
            assigned = [AiokafkaTopicPartition(topic, p) for p in range(partitions)]
            consumer.assign(assigned)
            await consumer.seek_to_beginning(*assigned)
            deadline = _deadline()
            while len(consumed) < expected:
                assert time.monotonic() < deadline, f"consumed {len(consumed)} of {expected}"
                take(await consumer.getmany(timeout_ms=500, max_records=2000))
            take(await consumer.getmany(timeout_ms=int(TRAILING_POLL_S * 1000)))
        finally:
            await consumer.stop()
        return consumed
    return asyncio.run(run())


CONSUMERS = {"kcat": kcat_consume, "confluent-kafka": confluent_consume,
             "kafka-python": kafka_python_consume, "aiokafka": aiokafka_consume}


def _deadline() -> float:
    return time.monotonic() + DEADLINE_S


# ---- the broker's copy ------------------------------------------------------------------------

def assert_contiguous_sequences(batches) -> None:
    """Each partition's batches (from `stored_batches`) carry producer sequences from 0 on, each
    batch's first sequence right after the previous batch's last."""
    next_sequence: dict[int, int] = {}
    for batch in batches:
        assert batch.base_sequence == next_sequence.get(batch.partition, 0), (
            f"partition {batch.partition}: batch at offset {batch.base_offset} has sequence "
            f"{batch.base_sequence}, expected {next_sequence.get(batch.partition, 0)}")
        next_sequence[batch.partition] = batch.base_sequence + batch.records


def stored_batches(host: str, port: int, topic: str, partitions: int) -> list[Batch]:
    """Every record batch of `topic`, read with raw Fetch requests from offset 0 to the high
    watermark of each partition, in partition then offset order."""
    batches: list[Batch] = []
    with WireConnection(host, port) as connection:
        version = connection.version_for(FetchRequest.API_KEY, FETCH_VERSION_MIN,
                                         FETCH_VERSION_MAX)
        for partition in range(partitions):
            offset, high_watermark = 0, None
            while high_watermark is None or offset < high_watermark:
                error_code, high_watermark, data = _fetch_raw(connection, version, topic,
                                                              partition, offset)
                assert error_code == 0, f"{topic}/{partition} at {offset}: error {error_code}"
                records = MemoryRecords(bytes(data or b""))
                fetched = 0
                while records.has_next():
                    batch = records.next_batch()
                    if batch is None:
                        break
                    batches.append(Batch(partition, batch.base_offset, batch.records_count,
                                         batch.compression_type, batch.producer_id,
                                         batch.producer_epoch, batch.base_sequence))
                    offset = batch.next_offset
                    fetched += 1
                assert fetched or offset >= high_watermark, (
                    f"{topic}/{partition}: no batch at {offset} below high watermark "
                    f"{high_watermark}")
    return batches


def _fetch_raw(connection: WireConnection, version: int, topic: str, partition: int,
               offset: int, max_bytes: int = 1 << 20):
    topic_type = FetchRequest.FetchTopic
    request = FetchRequest(
        replica_id=-1, max_wait_ms=0, min_bytes=1, max_bytes=max_bytes, isolation_level=0,
        session_id=0, session_epoch=-1,
        topics=[topic_type(topic=topic, partitions=[topic_type.FetchPartition(
            partition=partition, fetch_offset=offset, log_start_offset=-1,
            partition_max_bytes=max_bytes)])],
        forgotten_topics_data=[],
    )
    response = connection.call(request, FetchResponse, version)
    [topic_response] = response.responses
    [answer] = topic_response.partitions
    return answer.error_code, answer.high_watermark, answer.records


# ---- admin ------------------------------------------------------------------------------------

class ConfluentAdmin:
    """confluent-kafka's AdminClient (librdkafka): IncrementalAlterConfigs, DescribeCluster."""

    name = "confluent-kafka"

    def __init__(self, bootstrap: str):
        self.admin = AdminClient({"bootstrap.servers": bootstrap})

    def close(self) -> None:
        pass  # AdminClient has no close; it goes with the object.

    @staticmethod
    def _error_code(future) -> int:
        try:
            future.result(timeout=DEADLINE_S)
            return 0
        except KafkaException as exception:
            return exception.args[0].code()

    def create_topic(self, topic: str, partitions: int, configs: dict[str, str],
                     validate_only: bool = False) -> int:
        futures = self.admin.create_topics(
            [NewTopic(topic, num_partitions=partitions, replication_factor=1, config=configs)],
            validate_only=validate_only, operation_timeout=30)
        return self._error_code(futures[topic])

    def delete_topic(self, topic: str) -> int:
        return self._error_code(self.admin.delete_topics([topic], operation_timeout=30)[topic])

    def create_partitions(self, topic: str, total: int) -> int:
        futures = self.admin.create_partitions([NewPartitions(topic, total)],
                                               operation_timeout=30)
        return self._error_code(futures[topic])

    def list_topics(self) -> set[str]:
        return set(self.admin.list_topics(timeout=DEADLINE_S).topics)

    def partition_count(self, topic: str) -> int:
        metadata = self.admin.list_topics(topic=topic, timeout=DEADLINE_S).topics[topic]
        assert metadata.error is None, f"metadata of {topic}: {metadata.error}"
        return len(metadata.partitions)

    def _describe(self, resource: ConfigResource) -> dict[str, ConfigValue]:
        [future] = self.admin.describe_configs([resource]).values()
        entries = future.result(timeout=DEADLINE_S)
        # librdkafka hands the source over as its wire value.
        return {name: ConfigValue(entry.value, source_name(getattr(entry.source, "value",
                                                                   entry.source)))
                for name, entry in entries.items()}

    def topic_configs(self, topic: str) -> dict[str, ConfigValue]:
        return self._describe(ConfigResource(ResourceType.TOPIC, topic))

    def broker_configs(self, broker_id: str) -> dict[str, ConfigValue]:
        return self._describe(ConfigResource(ResourceType.BROKER, broker_id))

    def alter_topic_configs(self, topic: str, set_configs: dict[str, str],
                            delete_configs: list[str]) -> None:
        entries = [ConfigEntry(name, value, incremental_operation=AlterConfigOpType.SET)
                   for name, value in set_configs.items()]
        entries += [ConfigEntry(name, None, incremental_operation=AlterConfigOpType.DELETE)
                    for name in delete_configs]
        resource = ConfigResource(ResourceType.TOPIC, topic, incremental_configs=entries)
        [future] = self.admin.incremental_alter_configs([resource]).values()
        future.result(timeout=DEADLINE_S)

    def describe_cluster(self) -> Cluster:
        result = self.admin.describe_cluster(request_timeout=DEADLINE_S).result()
        return Cluster(result.cluster_id, result.controller.id,
                       sorted((node.id, node.host, node.port) for node in result.nodes))


class KafkaPythonAdmin:
    """kafka-python's KafkaAdminClient: alter_configs picks IncrementalAlterConfigs when the
    broker advertises it; describe_cluster uses DescribeCluster."""

    name = "kafka-python"

    def __init__(self, bootstrap: str):
        self.admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=30_000)

    def close(self) -> None:
        self.admin.close()

    def create_topic(self, topic: str, partitions: int, configs: dict[str, str],
                     validate_only: bool = False) -> int:
        result = self.admin.create_topics(
            {topic: {"num_partitions": partitions, "replication_factor": 1, "configs": configs}},
            validate_only=validate_only, raise_errors=False)
        [answer] = result["topics"]
        assert answer["name"] == topic, result
        return answer["error_code"]

    def delete_topic(self, topic: str) -> int:
        result = self.admin.delete_topics([topic], raise_errors=False)
        [answer] = result["topics"]
        return answer["error_code"]

    def create_partitions(self, topic: str, total: int) -> int:
        response = self.admin.create_partitions({topic: total}, raise_errors=False)
        [answer] = response.results
        return answer.error_code

    def list_topics(self) -> set[str]:
        return set(self.admin.list_topics())

    def partition_count(self, topic: str) -> int:
        [description] = self.admin.describe_topics([topic])
        assert description["error_code"] == 0, description
        return len(description["partitions"])

    def _describe(self, resource: KafkaPythonConfigResource) -> dict[str, ConfigValue]:
        result = self.admin.describe_configs([resource], config_filter="all")
        configs = result[resource.resource_type.name.lower()][resource.name]
        return {name: ConfigValue(config["value"], config["config_source"])
                for name, config in configs.items()}

    def topic_configs(self, topic: str) -> dict[str, ConfigValue]:
        return self._describe(KafkaPythonConfigResource(ConfigResourceType.TOPIC, topic))

    def broker_configs(self, broker_id: str) -> dict[str, ConfigValue]:
        return self._describe(KafkaPythonConfigResource(ConfigResourceType.BROKER, broker_id))

    def alter_topic_configs(self, topic: str, set_configs: dict[str, str],
                            delete_configs: list[str]) -> None:
        configs = dict(set_configs)
        configs.update({name: (AlterConfigOp.DELETE, None) for name in delete_configs})
        resource = KafkaPythonConfigResource(ConfigResourceType.TOPIC, topic, configs)
        result = self.admin.alter_configs([resource])
        assert result == {"topic": {topic: "OK"}}, f"alter_configs {configs}: {result}"

    def describe_cluster(self) -> Cluster:
        result = self.admin.describe_cluster()
        return Cluster(result["cluster_id"], result["controller_id"],
                       sorted((b["broker_id"], b["host"], b["port"]) for b in result["brokers"]))


class AiokafkaAdmin:
    """aiokafka's AIOKafkaAdminClient, on an event loop of its own. It has only the original
    AlterConfigs, which replaces a resource's whole set of dynamic configs; its describe_cluster
    is a Metadata request."""

    name = "aiokafka"

    def __init__(self, bootstrap: str):
        self.loop = asyncio.new_event_loop()

        async def start():
            admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=30_000)
            await admin.start()
            return admin
        self.admin = self._run(start())

    def _run(self, coroutine):
        return self.loop.run_until_complete(asyncio.wait_for(coroutine, DEADLINE_S))

    def close(self) -> None:
        try:
            self._run(self.admin.close())
        finally:
            self.loop.close()

    def create_topic(self, topic: str, partitions: int, configs: dict[str, str],
                     validate_only: bool = False) -> int:
        response = self._run(self.admin.create_topics(
            [AiokafkaNewTopic(topic, partitions, 1, topic_configs=configs)],
            validate_only=validate_only))
        [(name, error_code, *_)] = response.topic_errors
        assert name == topic, response
        return error_code

    def delete_topic(self, topic: str) -> int:
        response = self._run(self.admin.delete_topics([topic]))
        [(name, error_code)] = response.topic_error_codes
        assert name == topic, response
        return error_code

    def create_partitions(self, topic: str, total: int) -> int:
        try:
            self._run(self.admin.create_partitions({topic: AiokafkaNewPartitions(total)}))
            return 0
        except AiokafkaError as error:  # The error class of the code the broker answered.
            return error.errno

    def list_topics(self) -> set[str]:
        return set(self._run(self.admin.list_topics()))

    def partition_count(self, topic: str) -> int:
        [description] = self._run(self.admin.describe_topics([topic]))
        assert description["error_code"] == 0, description
        return len(description["partitions"])

    def _describe(self, resource: AiokafkaConfigResource) -> dict[str, ConfigValue]:
        [response] = self._run(self.admin.describe_configs([resource]))
        [(error_code, error_message, _, name, entries)] = response.resources
        assert error_code == 0, (
            f"describe_configs {resource.resource_type.name} {resource.name}: "
            f"error {error_code} {error_message}")
        assert name == resource.name, response
        assert response.API_VERSION >= 1, "config sources need DescribeConfigs v1+"
        return {entry[0]: ConfigValue(entry[1], source_name(entry[3])) for entry in entries}

    def topic_configs(self, topic: str) -> dict[str, ConfigValue]:
        return self._describe(AiokafkaConfigResource(AiokafkaConfigResourceType.TOPIC, topic))

    def broker_configs(self, broker_id: str) -> dict[str, ConfigValue]:
        return self._describe(
            AiokafkaConfigResource(AiokafkaConfigResourceType.BROKER, broker_id))

    def alter_topic_configs(self, topic: str, set_configs: dict[str, str],
                            delete_configs: list[str]) -> None:
        # AlterConfigs resets every dynamic config it does not name: naming only what is set
        # deletes the rest, `delete_configs` included.
        current = {name for name, config in self.topic_configs(topic).items()
                   if config.source == "DYNAMIC_TOPIC_CONFIG"}
        unexpected = current - set(set_configs) - set(delete_configs)
        assert not unexpected, f"AlterConfigs would also reset {sorted(unexpected)}"
        resource = AiokafkaConfigResource(AiokafkaConfigResourceType.TOPIC, topic, set_configs)
        responses = self._run(self.admin.alter_configs([resource]))
        answers = [answer for response in responses for answer in response.resources]
        assert [(code, name) for code, _, _, name in answers] == [(0, topic)], (
            f"alter_configs {set_configs}: {answers}")

    def describe_cluster(self) -> Cluster:
        result = self._run(self.admin.describe_cluster())
        return Cluster(result["cluster_id"], result["controller_id"],
                       sorted((b["node_id"], b["host"], b["port"]) for b in result["brokers"]))


ADMIN_CLIENTS = {admin.name: admin for admin in (ConfluentAdmin, KafkaPythonAdmin, AiokafkaAdmin)}
