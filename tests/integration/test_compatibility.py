"""docs/compatibility.md checked against the broker: the APIs and versions ApiVersions advertises,
and for each API the clients that really send it.

Each client (kcat, confluent-kafka, kafka-python, aiokafka) takes a turn alone: idempotent
compressed produce, consume from the beginning, a consumer group with commits (and for
confluent-kafka a KIP-848 group too), and the admin calls it offers that this broker serves. The
broker's request counters (`flink_requests_total` on metrics.port, summed over shards) are scraped
before and after: a client exercised an API when its counter grew during that client's turn.
Every call's answer is checked as well, so a client that sent an API and got a wrong answer fails
here instead of being listed as compatible.

The table must list exactly the advertised APIs and versions, name exactly the clients measured
for each API, and give every API a client or a wire test (a test of this directory whose requests
are encoded by kafka-python's protocol classes) that exists.
"""

from __future__ import annotations

import ast
import asyncio
import gc
import importlib
import inspect
import re
import subprocess
import threading
import time
import warnings
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from aiokafka import AIOKafkaConsumer
from aiokafka import TopicPartition as AiokafkaTopicPartition
from aiokafka.admin.records_to_delete import RecordsToDelete
from confluent_kafka import (Consumer, ConsumerGroupTopicPartitions, ConsumerGroupType,
                             TopicCollection, TopicPartition)
from confluent_kafka.admin import ConfigResource, OffsetSpec, ResourceType
from kafka import KafkaConsumer
from kafka import TopicPartition as KafkaPythonTopicPartition
from kafka.admin import ConfigResource as KafkaPythonConfigResource
from kafka.admin import ConfigResourceType
from kafka.admin import OffsetSpec as KafkaPythonOffsetSpec
from kafka.structs import OffsetAndMetadata

import support
from clients import DEADLINE_S
from conformance_clients import (CLIENTS, AiokafkaAdmin, ConfigValue, ConfluentAdmin,
                                 KafkaPythonAdmin, Record, consume, produce)
from kafka_wire import WireConnection
from support import HOST, create_topic, free_port, require_tool
from test_kcat import kcat
from test_metrics import scrape

DOC = support.REPO / "docs" / "compatibility.md"
TESTS_DIR = Path(__file__).resolve().parent
TABLE_HEADER = "| API key | API name | Versions advertised | Exercised by | Notes |"
WIRE_TEST = re.compile(r"`(test_\w+\.py)::(test_\w+)`")
# kafka-python's protocol modules; their request classes carry Kafka's API names and keys.
KAFKA_PYTHON_PROTOCOL = ("kafka.protocol.admin", "kafka.protocol.consumer",
                         "kafka.protocol.metadata", "kafka.protocol.producer",
                         "kafka.protocol.sasl")

PARTITIONS = 3
RECORDS = 60
PAYLOAD = "compatibility-" * 6  # Compresses well, so every codec keeps its batches compressed.
BROKER_ID = "1"
# Each client produces with a codec of its own.
CODECS = {"kcat": "snappy", "confluent-kafka": "zstd", "kafka-python": "lz4", "aiokafka": "gzip"}
# Short classic-protocol heartbeats, so that a member's turn sees one without waiting long.
HEARTBEAT_INTERVAL_MS = 500
SESSION_TIMEOUT_MS = 6000
DYNAMIC_TOPIC_CONFIG = "DYNAMIC_TOPIC_CONFIG"


# ---- the table --------------------------------------------------------------------------------

@dataclass(frozen=True)
class Row:
    key: int
    name: str
    versions: tuple[int, int]
    clients: frozenset[str]
    wire_tests: tuple[tuple[str, str], ...]  # (file, test function)


def table_rows() -> dict[int, Row]:
    """The rows of docs/compatibility.md's API table, by API key.

    "Exercised by" holds client names separated by commas, then optionally `;` and
    "wire test (kafka-python encoder):" with `file::test` references.
    """
    lines = DOC.read_text().splitlines()
    start = lines.index(TABLE_HEADER) + 2  # After the header and its separator line.
    rows: dict[int, Row] = {}
    for line in lines[start:]:
        if not line.startswith("|"):
            break
        key, name, versions, exercised, _notes = [cell.strip()
                                                  for cell in line.strip("|").split("|")]
        versions_match = re.fullmatch(r"(\d+)–(\d+)", versions)
        assert versions_match, f"API key {key}: versions {versions!r} are not min–max"
        low, high = versions_match.groups()
        clients_part, _, wire_part = exercised.partition(";")
        if clients_part.strip().startswith("wire test"):
            clients_part, wire_part = "", clients_part
        clients = frozenset(client.strip() for client in clients_part.split(",")
                            if client.strip())
        row = Row(int(key), name, (int(low), int(high)), clients,
                  tuple(WIRE_TEST.findall(wire_part)))
        assert row.key not in rows, f"API key {row.key} is listed twice"
        rows[row.key] = row
    assert rows, f"no rows under {TABLE_HEADER!r} in {DOC}"
    return rows


def kafka_python_api_names() -> dict[int, str]:
    """API key -> name, from kafka-python's request classes (`<Name>Request`)."""
    names = {}
    for module_name in KAFKA_PYTHON_PROTOCOL:
        for class_name, cls in inspect.getmembers(importlib.import_module(module_name),
                                                  inspect.isclass):
            if class_name.endswith("Request") and isinstance(getattr(cls, "API_KEY", None), int):
                names[cls.API_KEY] = class_name.removesuffix("Request")
    return names


def wire_test_requests(file: str, test: str) -> str | None:
    """The source of test function `test` in `file`, of the module's functions it calls (its
    helpers) and of the `WireConnection` methods either calls; None when there is no such test."""
    path = TESTS_DIR / file
    if not path.exists():
        return None
    source = path.read_text()
    functions = {node.name: node for node in ast.parse(source).body
                 if isinstance(node, ast.FunctionDef)}
    if test not in functions:
        return None

    def calls(function: ast.FunctionDef, kind) -> set[str]:
        return {getattr(node.func, "id", None) or node.func.attr for node in ast.walk(function)
                if isinstance(node, ast.Call) and isinstance(node.func, kind)}

    helpers = [functions[name] for name in sorted(calls(functions[test], ast.Name))
               if name in functions]
    sources = [ast.get_source_segment(source, function)
               for function in [functions[test], *helpers]]
    methods = set().union(*(calls(function, ast.Attribute)
                            for function in [functions[test], *helpers]))
    sources += [inspect.getsource(getattr(WireConnection, name))
                for name in sorted(methods) if callable(getattr(WireConnection, name, None))]
    return "\n".join(sources)


# ---- measuring --------------------------------------------------------------------------------

def requests_by_api(port: int) -> Counter[str]:
    """Requests received so far per API name, summed over shards."""
    counts: Counter[str] = Counter()
    for sample in scrape(port)["flink_requests"]:
        counts[sample.labels["api"]] += int(sample.value)
    return counts


def apis_sent(port: int, call):
    """Runs `call`; returns its result and the APIs the broker received meanwhile."""
    before = requests_by_api(port)
    result = call()
    after = requests_by_api(port)
    return result, {api for api in after if after[api] > before[api]}


def wait_for_request(port: int, api: str, before: Counter[str], what: str) -> None:
    """Waits (bounded) until the broker has counted an `api` request since `before`."""
    deadline = time.monotonic() + DEADLINE_S
    while requests_by_api(port)[api] <= before[api]:
        assert time.monotonic() < deadline, f"no {api} request from {what} in {DEADLINE_S}s"
        time.sleep(0.1)


@dataclass(frozen=True)
class Turn:
    """One client's workload against the broker: its topic and group names."""
    broker: support.Broker
    metrics_port: int
    client: str

    @property
    def bootstrap(self) -> str:
        return self.broker.bootstrap

    @property
    def topic(self) -> str:
        return f"compat-{self.client}"

    def group(self, kind: str = "classic") -> str:
        return f"compat-{self.client}-{kind}"


def records(client: str) -> list[Record]:
    """Keyed records with the same two headers on each (kcat's -H sets them per run)."""
    headers = (("client", client.encode()), ("codec", CODECS[client].encode()))
    return [Record(f"key-{index:03d}".encode(), f"{index:03d}.{PAYLOAD}".encode(), headers)
            for index in range(RECORDS)]


def produce_and_consume(turn: Turn) -> dict[int, int]:
    """Idempotent compressed produce, then a consume from the beginning of every partition that
    gets each record back once; returns the log end offset of each partition."""
    sent = records(turn.client)
    reports = produce(turn.client, turn.bootstrap, turn.topic, sent, CODECS[turn.client])
    consumed = consume(turn.client, turn.bootstrap, turn.topic, PARTITIONS, RECORDS)
    assert Counter(c.record for c in consumed) == Counter(sent), (
        f"{turn.client} consumed {len(consumed)} records, not the {RECORDS} it produced")
    if reports is not None:
        assert sorted(reports) == sorted((c.partition, c.offset) for c in consumed)
    ends = {partition: 0 for partition in range(PARTITIONS)}
    for c in consumed:
        ends[c.partition] = max(ends[c.partition], c.offset + 1)
    assert sum(ends.values()) == RECORDS and all(ends.values()), ends
    return ends


# ---- kcat -------------------------------------------------------------------------------------

def kcat_turn(turn: Turn) -> None:
    """kcat has no admin commands: metadata, produce, consume, a group, offsets by time. Its
    topic is created before its turn."""
    metadata = kcat("-b", turn.bootstrap, "-L", "-t", turn.topic)
    assert f'topic "{turn.topic}" with {PARTITIONS} partitions:' in metadata, metadata
    ends = produce_and_consume(turn)
    consumed = kcat_group_consume(turn, stay_for_heartbeat=True)
    assert sorted(consumed) == [(p, o) for p in range(PARTITIONS) for o in range(ends[p])]
    assert kcat_group_consume(turn, stay_for_heartbeat=False) == [], "commits were not kept"
    # -Q looks offsets up by timestamp: time 0 is before every record.
    answer = kcat("-b", turn.bootstrap, "-Q", "-t", f"{turn.topic}:0:0")
    assert re.search(rf"^{re.escape(turn.topic)} \[0\] offset 0$", answer, re.MULTILINE), answer


def kcat_group_consume(turn: Turn, stay_for_heartbeat: bool) -> list[tuple[int, int]]:
    """`kcat -G` reads the group's partitions to their ends, committing as it goes (librdkafka's
    auto-commit) and leaving on exit; returns (partition, offset) of what it read.

    Staying for a heartbeat, it runs until it has read all records and a Heartbeat was counted,
    then stops on SIGTERM; otherwise it stops by itself at the partitions' ends (-e).
    """
    command = [require_tool("kcat"), "-b", turn.bootstrap, "-G", turn.group(),
               "-X", "auto.offset.reset=earliest",
               "-X", f"heartbeat.interval.ms={HEARTBEAT_INTERVAL_MS}",
               "-X", f"session.timeout.ms={SESSION_TIMEOUT_MS}",
               "-q", "-u", "-f", "%p %o\n", turn.topic]
    if not stay_for_heartbeat:
        command.insert(-1, "-e")
    before = requests_by_api(turn.metrics_port)
    process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(process.stdout), daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + DEADLINE_S
        while stay_for_heartbeat and len(lines) < RECORDS:
            assert process.poll() is None, f"kcat -G exited {process.returncode}"
            assert time.monotonic() < deadline, f"kcat -G consumed {len(lines)} of {RECORDS}"
            time.sleep(0.05)
        if stay_for_heartbeat:
            wait_for_request(turn.metrics_port, "Heartbeat", before, "kcat -G")
            process.terminate()
        _, errors = process.communicate(timeout=DEADLINE_S)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)
        reader.join(10)
    assert process.returncode == 0, f"kcat -G exited {process.returncode}: {errors}"
    return [tuple(map(int, line.split())) for line in lines]


# ---- confluent-kafka --------------------------------------------------------------------------

def confluent_turn(turn: Turn) -> None:
    admin = ConfluentAdmin(turn.bootstrap)
    try:
        assert admin.create_topic(turn.topic, PARTITIONS, {"retention.ms": "3600000"}) == 0
        ends = produce_and_consume(turn)
        confluent_group_consume(turn, turn.group("classic"), ends)
        confluent_group_consume(turn, turn.group("consumer"), ends,
                                **{"group.protocol": "consumer"})
        confluent_consumer_lookups(turn, ends)
        confluent_group_admin(admin, turn, ends)
        confluent_topic_admin(admin, turn, ends)
    finally:
        admin.close()
        del admin
        gc.collect()  # AdminClient lets go of its connections only when it is collected.


def confluent_group_consume(turn: Turn, group: str, ends: dict[int, int], **config) -> None:
    """Subscribes, reads every record, stays until the member's heartbeat was counted (Heartbeat,
    or ConsumerGroupHeartbeat for KIP-848), commits synchronously and closes (leaving)."""
    classic = config.get("group.protocol") != "consumer"
    # The classic protocol's timeouts are the client's to choose; KIP-848's are the broker's.
    timeouts = {"session.timeout.ms": SESSION_TIMEOUT_MS,
                "heartbeat.interval.ms": HEARTBEAT_INTERVAL_MS} if classic else {}
    consumer = Consumer({"bootstrap.servers": turn.bootstrap, "group.id": group,
                         "auto.offset.reset": "earliest", "enable.auto.commit": False,
                         **timeouts, **config})
    before = requests_by_api(turn.metrics_port)
    try:
        consumer.subscribe([turn.topic])
        seen = set()
        deadline = time.monotonic() + DEADLINE_S
        while len(seen) < RECORDS:
            assert time.monotonic() < deadline, f"group {group} consumed {len(seen)} of {RECORDS}"
            message = consumer.poll(0.2)
            if message is None:
                continue
            assert message.error() is None, f"group {group}: {message.error()}"
            seen.add((message.partition(), message.offset()))
        heartbeat = "Heartbeat" if classic else "ConsumerGroupHeartbeat"
        wait_for_request(turn.metrics_port, heartbeat, before, f"group {group}")
        committed = consumer.commit(asynchronous=False)
        assert {tp.partition: tp.offset for tp in committed} == ends
        stored = consumer.committed([TopicPartition(turn.topic, p) for p in range(PARTITIONS)],
                                    timeout=DEADLINE_S)
        assert {tp.partition: tp.offset for tp in stored} == ends
    finally:
        consumer.close()


def confluent_consumer_lookups(turn: Turn, ends: dict[int, int]) -> None:
    """Watermarks and offsets by time, from a consumer that joins no group."""
    consumer = Consumer({"bootstrap.servers": turn.bootstrap, "group.id": turn.group("lookups"),
                         "enable.auto.commit": False})
    try:
        for partition, end in ends.items():
            assert consumer.get_watermark_offsets(TopicPartition(turn.topic, partition),
                                                  timeout=DEADLINE_S, cached=False) == (0, end)
        found = consumer.offsets_for_times(
            [TopicPartition(turn.topic, p, 0) for p in range(PARTITIONS)], timeout=DEADLINE_S)
        assert [(tp.partition, tp.offset) for tp in found] == [(p, 0) for p in range(PARTITIONS)]
    finally:
        consumer.close()


def confluent_group_admin(admin: ConfluentAdmin, turn: Turn, ends: dict[int, int]) -> None:
    """List, describe (ConsumerGroupDescribe first, DescribeGroups for classic groups), read and
    alter committed offsets, delete."""
    client, port = admin.admin, turn.metrics_port
    classic, consumer = turn.group("classic"), turn.group("consumer")
    listed = client.list_consumer_groups(request_timeout=DEADLINE_S).result()
    assert {classic, consumer} <= {g.group_id for g in listed.valid}, listed.valid
    for group, kind, other_api in ((classic, ConsumerGroupType.CLASSIC, "DescribeGroups"),
                                   (consumer, ConsumerGroupType.CONSUMER, None)):
        [description], sent = apis_sent(port, lambda: [
            future.result() for future in client.describe_consumer_groups(
                [group], request_timeout=DEADLINE_S).values()])
        assert (description.group_id, description.type, description.members) == (
            group, kind, []), description
        assert sent & {"ConsumerGroupDescribe", "DescribeGroups"} == {
            "ConsumerGroupDescribe", other_api} - {None}, f"describe {group} sent {sent}"
    [future] = client.list_consumer_group_offsets(
        [ConsumerGroupTopicPartitions(classic)], request_timeout=DEADLINE_S).values()
    assert {tp.partition: tp.offset for tp in future.result().topic_partitions} == ends
    [future] = client.alter_consumer_group_offsets([ConsumerGroupTopicPartitions(
        classic, [TopicPartition(turn.topic, 0, 1)])], request_timeout=DEADLINE_S).values()
    assert [(tp.partition, tp.offset) for tp in future.result().topic_partitions] == [(0, 1)]
    for group, future in client.delete_consumer_groups([classic, consumer],
                                                       request_timeout=DEADLINE_S).items():
        assert future.result() is None, group
    remaining = client.list_consumer_groups(request_timeout=DEADLINE_S).result()
    assert not {classic, consumer} & {g.group_id for g in remaining.valid}, remaining.valid


def confluent_topic_admin(admin: ConfluentAdmin, turn: Turn, ends: dict[int, int]) -> None:
    client, port, topic = admin.admin, turn.metrics_port, turn.topic
    # librdkafka answers describe_topics and describe_cluster from Metadata.
    [description], sent = apis_sent(port, lambda: [
        future.result() for future in client.describe_topics(
            TopicCollection([topic]), request_timeout=DEADLINE_S).values()])
    assert [p.id for p in description.partitions] == list(range(PARTITIONS))
    assert sent == {"Metadata"}, f"describe_topics sent {sent}"
    cluster, sent = apis_sent(port, admin.describe_cluster)
    assert cluster.brokers == [(1, HOST, turn.broker.port)], cluster
    assert sent == {"Metadata"}, f"describe_cluster sent {sent}"
    assert admin.topic_configs(topic)["retention.ms"] == ConfigValue("3600000",
                                                                     DYNAMIC_TOPIC_CONFIG)
    assert admin.broker_configs(BROKER_ID)["log.retention.hours"].value == "168"
    admin.alter_topic_configs(topic, {"retention.ms": "7200000"}, [])  # Incremental.
    assert admin.topic_configs(topic)["retention.ms"].value == "7200000"
    # AlterConfigs (replacing all of a resource's overrides) is deprecated in the client but
    # still served and advertised by Kafka 4.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        [future] = client.alter_configs([ConfigResource(
            ResourceType.TOPIC, topic, set_config={"retention.ms": "1800000"})]).values()
    future.result(timeout=DEADLINE_S)
    assert admin.topic_configs(topic)["retention.ms"].value == "1800000"
    assert admin.create_partitions(topic, PARTITIONS + 1) == 0
    assert admin.partition_count(topic) == PARTITIONS + 1

    [future] = client.delete_records([TopicPartition(topic, 0, 1)],
                                     request_timeout=DEADLINE_S).values()
    assert future.result().low_watermark == 1
    specs = {TopicPartition(topic, 0): OffsetSpec.earliest(),
             TopicPartition(topic, 1): OffsetSpec.latest(),
             TopicPartition(topic, 2): OffsetSpec.max_timestamp()}
    offsets = {tp.partition: future.result().offset
               for tp, future in client.list_offsets(specs, request_timeout=DEADLINE_S).items()}
    assert offsets[0] == 1 and offsets[1] == ends[1] and 0 <= offsets[2] < ends[2], offsets
    assert admin.delete_topic(topic) == 0
    assert topic not in admin.list_topics()


# ---- kafka-python -----------------------------------------------------------------------------

def kafka_python_turn(turn: Turn) -> None:
    admin = KafkaPythonAdmin(turn.bootstrap)
    try:
        assert admin.create_topic(turn.topic, PARTITIONS, {"retention.ms": "3600000"}) == 0
        ends = produce_and_consume(turn)
        kafka_python_group_consume(turn, ends)
        kafka_python_group_admin(admin, turn, ends)
        kafka_python_topic_admin(admin, turn, ends)
    finally:
        admin.close()


def kafka_python_group_consume(turn: Turn, ends: dict[int, int]) -> None:
    """Subscribes, reads every record, stays for a heartbeat, commits; then the consumer's own
    offset lookups (committed, beginning, end, by time) and close (leaving)."""
    group, topic = turn.group(), turn.topic
    consumer = KafkaConsumer(topic, bootstrap_servers=turn.bootstrap, group_id=group,
                             auto_offset_reset="earliest", enable_auto_commit=False,
                             heartbeat_interval_ms=HEARTBEAT_INTERVAL_MS,
                             session_timeout_ms=SESSION_TIMEOUT_MS)
    before = requests_by_api(turn.metrics_port)
    try:
        seen = set()
        deadline = time.monotonic() + DEADLINE_S
        while len(seen) < RECORDS:
            assert time.monotonic() < deadline, f"group {group} consumed {len(seen)} of {RECORDS}"
            for partition, batch in consumer.poll(timeout_ms=200).items():
                seen.update((partition.partition, record.offset) for record in batch)
        wait_for_request(turn.metrics_port, "Heartbeat", before, f"group {group}")
        consumer.commit()
        partitions = [KafkaPythonTopicPartition(topic, p) for p in range(PARTITIONS)]
        assert {p.partition: consumer.committed(p) for p in partitions} == ends
        assert consumer.beginning_offsets(partitions) == {p: 0 for p in partitions}
        assert consumer.end_offsets(partitions) == {p: ends[p.partition] for p in partitions}
        found = consumer.offsets_for_times({p: 0 for p in partitions})
        assert {p.partition: answer.offset for p, answer in found.items()} == {
            p: 0 for p in range(PARTITIONS)}
    finally:
        consumer.close()


def kafka_python_group_admin(admin: KafkaPythonAdmin, turn: Turn, ends: dict[int, int]) -> None:
    """List, describe, read, alter and delete (OffsetDelete) committed offsets, delete."""
    client, group = admin.admin, turn.group()
    assert group in {g["group_id"] for g in client.list_groups()}
    description = client.describe_groups([group])[group]
    assert (description["error"], description["group_state"], description["members"]) == (
        None, "Empty", []), description
    first, second = (KafkaPythonTopicPartition(turn.topic, p) for p in (0, 1))
    offsets = client.list_group_offsets({group: None})[group]
    assert {tp.partition: o.offset for tp, o in offsets.items()} == ends
    altered = client.alter_group_offsets(group, {first: OffsetAndMetadata(1, "", -1)})
    assert [error.errno for error in altered.values()] == [0], altered
    removed = client.delete_group_offsets(group, [second])
    assert [error.errno for error in removed.values()] == [0], removed
    offsets = client.list_group_offsets({group: None})[group]
    assert {tp.partition: o.offset for tp, o in offsets.items()} == {0: 1, 2: ends[2]}
    assert client.delete_groups([group]) == {group: "OK"}
    assert group not in {g["group_id"] for g in client.list_groups()}


def kafka_python_topic_admin(admin: KafkaPythonAdmin, turn: Turn, ends: dict[int, int]) -> None:
    client, port, topic = admin.admin, turn.metrics_port, turn.topic
    [described] = client.describe_topics([topic])
    assert len(described["partitions"]) == PARTITIONS, described
    paged, sent = apis_sent(port, lambda: client.describe_topic_partitions([topic]))
    [listed] = paged["topics"]
    assert [p["partition_index"] for p in listed["partitions"]] == list(range(PARTITIONS))
    assert paged["next_cursor"] is None, paged
    assert sent == {"DescribeTopicPartitions"}, f"describe_topic_partitions sent {sent}"
    cluster, sent = apis_sent(port, admin.describe_cluster)
    assert cluster.brokers == [(1, HOST, turn.broker.port)], cluster
    assert sent == {"DescribeCluster"}, f"describe_cluster sent {sent}"
    quorum, sent = apis_sent(port, client.describe_metadata_quorum)
    assert sent == {"DescribeQuorum"}, f"describe_metadata_quorum sent {sent}"
    [metadata_log] = quorum["topics"]
    [partition] = metadata_log["partitions"]
    assert (metadata_log["topic_name"], partition["error"], partition["leader_id"]) == (
        "__cluster_metadata", None, 1), quorum
    assert [voter["replica_id"] for voter in partition["current_voters"]] == [1], quorum
    assert admin.topic_configs(topic)["retention.ms"] == ConfigValue("3600000",
                                                                     DYNAMIC_TOPIC_CONFIG)
    assert admin.broker_configs(BROKER_ID)["log.retention.hours"].value == "168"
    admin.alter_topic_configs(topic, {"retention.ms": "7200000"}, [])  # Incremental.
    assert admin.topic_configs(topic)["retention.ms"].value == "7200000"
    result = client.alter_configs([KafkaPythonConfigResource(
        ConfigResourceType.TOPIC, topic, {"retention.ms": "1800000"})], incremental=False)
    assert result == {"topic": {topic: "OK"}}, result
    assert admin.topic_configs(topic)["retention.ms"].value == "1800000"
    assert admin.create_partitions(topic, PARTITIONS + 1) == 0
    assert admin.partition_count(topic) == PARTITIONS + 1

    first = KafkaPythonTopicPartition(topic, 0)
    deleted = client.delete_records({first: 1})
    assert deleted[first]["low_watermark"] == 1, deleted
    answers = client.list_partition_offsets({
        first: KafkaPythonOffsetSpec.EARLIEST,
        KafkaPythonTopicPartition(topic, 1): KafkaPythonOffsetSpec.LATEST,
        KafkaPythonTopicPartition(topic, 2): KafkaPythonOffsetSpec.MAX_TIMESTAMP})
    offsets = {tp.partition: answer.offset for tp, answer in answers.items()}
    assert offsets[0] == 1 and offsets[1] == ends[1] and 0 <= offsets[2] < ends[2], offsets
    [broker_dirs] = client.describe_log_dirs([topic])
    [log_dir] = broker_dirs["log_dirs"]
    assert (log_dir["error_code"], log_dir["log_dir"]) == (0, str(turn.broker.data_dir))
    [topic_dirs] = log_dir["topics"]
    assert sorted(p["partition_index"] for p in topic_dirs["partitions"]) == list(
        range(PARTITIONS + 1)), topic_dirs
    assert admin.delete_topic(topic) == 0
    assert topic not in admin.list_topics()


# ---- aiokafka ---------------------------------------------------------------------------------

def aiokafka_turn(turn: Turn) -> None:
    admin = AiokafkaAdmin(turn.bootstrap)
    try:
        assert admin.create_topic(turn.topic, PARTITIONS, {"retention.ms": "3600000"}) == 0
        ends = produce_and_consume(turn)
        asyncio.run(aiokafka_group_consume(turn, ends))
        aiokafka_group_admin(admin, turn, ends)
        aiokafka_topic_admin(admin, turn)
    finally:
        admin.close()


async def aiokafka_group_consume(turn: Turn, ends: dict[int, int]) -> None:
    """Subscribes, reads every record, stays for a heartbeat, commits; then the consumer's own
    offset lookups (committed, beginning, end, by time) and stop (leaving)."""
    group, topic = turn.group(), turn.topic
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=turn.bootstrap, group_id=group,
                                auto_offset_reset="earliest", enable_auto_commit=False,
                                heartbeat_interval_ms=HEARTBEAT_INTERVAL_MS,
                                session_timeout_ms=SESSION_TIMEOUT_MS)
    before = requests_by_api(turn.metrics_port)
    await consumer.start()
    try:
        seen = set()
        deadline = time.monotonic() + DEADLINE_S
        while len(seen) < RECORDS:
            assert time.monotonic() < deadline, f"group {group} consumed {len(seen)} of {RECORDS}"
            for partition, batch in (await consumer.getmany(timeout_ms=200)).items():
                seen.update((partition.partition, record.offset) for record in batch)
        while requests_by_api(turn.metrics_port)["Heartbeat"] <= before["Heartbeat"]:
            assert time.monotonic() < deadline, f"no Heartbeat from group {group}"
            await asyncio.sleep(0.1)  # The heartbeat task runs on this loop.
        await consumer.commit()
        partitions = [AiokafkaTopicPartition(topic, p) for p in range(PARTITIONS)]
        assert {p.partition: await consumer.committed(p) for p in partitions} == ends
        assert await consumer.beginning_offsets(partitions) == {p: 0 for p in partitions}
        assert await consumer.end_offsets(partitions) == {
            p: ends[p.partition] for p in partitions}
        found = await consumer.offsets_for_times({p: 0 for p in partitions})
        assert {p.partition: answer.offset for p, answer in found.items()} == {
            p: 0 for p in range(PARTITIONS)}
    finally:
        await consumer.stop()


def aiokafka_group_admin(admin: AiokafkaAdmin, turn: Turn, ends: dict[int, int]) -> None:
    """aiokafka's admin client can list and describe groups and read their offsets; it has no
    call to alter or delete them."""
    client, group = admin.admin, turn.group()
    assert group in {listed[0] for listed in admin._run(client.list_consumer_groups())}
    assert admin._run(client.find_coordinator(group)) == 1
    [response] = admin._run(client.describe_consumer_groups([group]))
    [(error_code, group_id, state, *_)] = response.groups
    assert (error_code, group_id, state) == (0, group, "Empty"), response
    offsets = admin._run(client.list_consumer_group_offsets(group))
    assert {tp.partition: o.offset for tp, o in offsets.items()} == ends


def aiokafka_topic_admin(admin: AiokafkaAdmin, turn: Turn) -> None:
    client, port, topic = admin.admin, turn.metrics_port, turn.topic
    [described] = admin._run(client.describe_topics([topic]))
    assert len(described["partitions"]) == PARTITIONS, described
    cluster, sent = apis_sent(port, admin.describe_cluster)
    assert cluster.brokers == [(1, HOST, turn.broker.port)], cluster
    assert sent == {"Metadata"}, f"describe_cluster sent {sent}"
    assert admin.topic_configs(topic)["retention.ms"] == ConfigValue("3600000",
                                                                     DYNAMIC_TOPIC_CONFIG)
    assert admin.broker_configs(BROKER_ID)["log.retention.hours"].value == "168"
    admin.alter_topic_configs(topic, {"retention.ms": "7200000"}, [])  # AlterConfigs.
    assert admin.topic_configs(topic)["retention.ms"].value == "7200000"
    assert admin.create_partitions(topic, PARTITIONS + 1) == 0
    assert admin.partition_count(topic) == PARTITIONS + 1
    first = AiokafkaTopicPartition(topic, 0)
    assert admin._run(client.delete_records({first: RecordsToDelete(1)})) == {first: 1}
    assert admin.delete_topic(topic) == 0
    assert topic not in admin.list_topics()


TURNS = {"kcat": kcat_turn, "confluent-kafka": confluent_turn,
         "kafka-python": kafka_python_turn, "aiokafka": aiokafka_turn}


# ---- the tests --------------------------------------------------------------------------------

def test_table_lists_exactly_the_advertised_apis_and_versions(broker):
    """The table has one row per API in the broker's ApiVersions (v0) answer, with the versions
    advertised, and nothing else; its names are Kafka's (as kafka-python names its request
    classes, for the keys kafka-python knows)."""
    with WireConnection(HOST, broker.port) as connection:
        advertised = connection.api_versions()
    rows = table_rows()
    table = {key: row.versions for key, row in rows.items()}
    missing = {key: versions for key, versions in advertised.items() if key not in table}
    extra = {rows[key].name: versions for key, versions in table.items() if key not in advertised}
    assert not missing, f"advertised but not in the table (key: versions): {missing}"
    assert not extra, f"in the table but not advertised: {extra}"
    wrong = {rows[key].name: {"table": table[key], "advertised": advertised[key]}
             for key in advertised if table[key] != advertised[key]}
    assert not wrong, f"versions differ: {wrong}"
    kafka_names = kafka_python_api_names()
    misnamed = {key: (row.name, kafka_names[key]) for key, row in rows.items()
                if key in kafka_names and row.name != kafka_names[key]}
    assert not misnamed, f"key: (table name, Kafka's name): {misnamed}"


def test_every_api_names_a_client_or_an_existing_wire_test():
    """Every row names a known client or a wire test; each wire test exists, and it builds that
    API's request with kafka-python's classes, itself or through a helper of its module or a
    `WireConnection` method."""
    for row in table_rows().values():
        assert row.clients or row.wire_tests, f"{row.name}: exercised by nothing"
        unknown = row.clients - set(CLIENTS)
        assert not unknown, f"{row.name}: unknown clients {sorted(unknown)}"
        for file, test in row.wire_tests:
            source = wire_test_requests(file, test)
            assert source is not None, f"{row.name}: no test {test} in {file}"
            assert f"{row.name}Request" in source, (
                f"{row.name}: {file}::{test} does not build a {row.name}Request")


def test_each_client_sends_exactly_the_apis_the_table_names(start_broker):
    """Each client's turn, alone on the broker, sends exactly the APIs whose rows name that
    client: no row claims a client that did not send its API, and nothing a client sent is
    missing from its rows."""
    metrics_port = free_port()
    broker = start_broker({"metrics.port": metrics_port})
    rows = table_rows()
    for client in CLIENTS:
        turn = Turn(broker, metrics_port, client)
        if client == "kcat":  # kcat cannot create topics; this happens outside its turn.
            create_topic(broker, turn.topic, partitions=PARTITIONS)
        _, sent = apis_sent(metrics_port, lambda: TURNS[client](turn))
        named = {row.name for row in rows.values() if client in row.clients}
        assert named - sent == set(), f"the table names {client} for APIs it did not send"
        assert sent - named == set(), f"{client} sent APIs the table does not name it for"
