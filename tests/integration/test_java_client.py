"""The official Apache Kafka Java client, kafka-clients 3.9.0 and 4.3.0, against the broker: every
compression codec, the idempotent producer, the admin client, classic and KIP-848 consumer groups
and the consumer's offset calls, each checked against what Apache Kafka answers.

tests/java/JavaClient.java runs one scenario per JVM and prints what the client saw as one JSON
object (records, acknowledgements, admin answers and errors by exception class); the checks are
here. java_clients.py compiles and runs it (with javac, once per client version and session). The
client logs to stderr (tests/java/log4j2.properties), which the group tests search for members
fenced or removed.

One broker serves the whole module; every test uses topics and groups of its own.
"""

from __future__ import annotations

import re
import time
from collections import defaultdict

import pytest

import support
from conformance_clients import CODECS, assert_contiguous_sequences, stored_batches
from java_clients import topic_name, versions
from support import HOST, check_history, create_topic, keyed_messages

# KIP-848's consumer group protocol is generally available from Kafka 4.0.
KIP848_VERSIONS = ["4.3.0"]

BROKER_ID = "1"
PARTITIONS = 3
RECORDS = 300
PAYLOAD = "java-client-" * 6  # Compresses well.
GROUP_PARTITIONS = 6

# What the client's log says when the coordinator removed or fenced a member, or refused its
# commit: none of it may happen while members join and leave in an orderly way.
FENCING = re.compile(r"UNKNOWN_MEMBER_ID|FENCED_MEMBER_EPOCH|STALE_MEMBER_EPOCH|"
                     r"FencedInstanceId|UnknownMemberId|StaleMemberEpoch|CommitFailedException|"
                     r"epoch \S+ is fenced|got fenced|member \S+ is unknown|fenced instance id|"
                     r"transitioned to FENCED")


# KIP-848 members heartbeat every second instead of Kafka's 5 s, within bounds lowered as Kafka
# requires, so that the group tests see their rebalances in seconds.
shared_broker, _report_shared_broker = support.shared_broker_fixtures("java-client", {
    "group.consumer.min.heartbeat.interval.ms": "1000",
    "group.consumer.heartbeat.interval.ms": "1000",
})


# ---- produce and consume ----------------------------------------------------------------------

def java_records(count: int, codec: str) -> list[tuple[str, str, tuple[tuple[str, str], ...]]]:
    """`count` (key, value, headers) records over 20 keys; two headers each, one the index."""
    return [(key, f"{value}.{PAYLOAD}", (("index", str(index)), ("codec", codec)))
            for index, (key, value) in enumerate(keyed_messages(count, keys=20))]


def stdin_lines(records) -> str:
    """The records as JavaClient reads them: key TAB value TAB name=value..."""
    lines = []
    for key, value, headers in records:
        fields = [key, value, *(f"{name}={header}" for name, header in headers)]
        assert not any(c in field for field in fields for c in "\t\n"), fields
        lines.append("\t".join(fields) + "\n")
    return "".join(lines)


def check_round_trip(records, output: dict) -> None:
    """Each record back once with its headers; per partition, offsets 0..n-1 and send order;
    each acknowledged (partition, offset) holds its record."""
    consumed = [tuple(row) for row in output["records"]]
    check_history([(key, value) for key, value, _ in records],
                  [(partition, offset, key, value)
                   for partition, offset, key, value, _, _ in consumed], PARTITIONS)
    index_of = {value: index for index, (_, value, _) in enumerate(records)}
    last_index: dict[int, int] = {}
    at = {}
    for partition, offset, key, value, headers, _ in consumed:
        index = index_of[value]
        assert (key, value, tuple(map(tuple, headers))) == records[index], (
            f"{partition}/{offset} holds {key}, {value}, {headers}; sent {records[index]}")
        assert index > last_index.get(partition, -1), (
            f"partition {partition}: record {index} at offset {offset} after record "
            f"{last_index[partition]} (send order broken)")
        last_index[partition] = index
        at[(partition, offset)] = index
    for index, (partition, offset) in enumerate(output["acks"]):
        assert at.get((partition, offset)) == index, (
            f"record {index} acknowledged at {partition}/{offset}, which holds record "
            f"{at.get((partition, offset))}")


def check_batches(broker: support.Broker, topic: str, count: int, codec: str,
                  idempotent: bool) -> list:
    """The broker kept the Java producer's batches: all with its codec (it compresses every
    batch), and either no producer id (-1, not idempotent) or one producer whose sequences start
    at 0 on each partition and run on without a gap."""
    batches = stored_batches(HOST, broker.port, topic, PARTITIONS)
    assert sum(batch.records for batch in batches) == count, batches
    codecs = {batch.codec for batch in batches}
    assert codecs == {CODECS[codec]}, (
        f"produced with {codec} (codec {CODECS[codec]}); stored batches have codecs {codecs}")
    producers = {(batch.producer_id, batch.producer_epoch) for batch in batches}
    if not idempotent:
        assert producers == {(-1, -1)}, f"a non-idempotent producer's batches: {producers}"
        assert {batch.base_sequence for batch in batches} == {-1}, batches
        return batches
    assert len(producers) == 1, f"batches from several producers: {sorted(producers)}"
    [(producer_id, epoch)] = producers
    assert producer_id >= 0 and epoch >= 0, producers
    assert_contiguous_sequences(batches)
    return batches


def check_fetch_sessions(log: str) -> None:
    """The consumer fetched in a session (KIP-227): a full fetch opened it, the next ones were
    incremental, and the broker never refused one (the client logs a refusal and starts over)."""
    assert re.search(r"Node \d+ sent a full fetch response that created a new incremental fetch "
                     r"session [1-9]\d* with \d+ response partition", log), log[-3000:]
    assert re.search(r"Built incremental fetch \(sessionId=[1-9]\d*, epoch=[1-9]", log), log[-3000:]
    assert "was unable to process the fetch request" not in log, log[-3000:]


@versions()
@pytest.mark.parametrize("codec", list(CODECS))
def test_codec_round_trip(java, shared_broker, codec):
    """Keyed records with headers, compressed with each codec by the Java producer (acks=all,
    not idempotent), come back to the Java consumer from the beginning exactly as sent, in
    order per partition, and the broker stored them in batches of that codec."""
    topic = topic_name(java, f"codec-{codec}")
    create_topic(shared_broker, topic, partitions=PARTITIONS)
    records = java_records(RECORDS, codec)
    output = java.run("round-trip", {"bootstrap": shared_broker.bootstrap, "topic": topic,
                                     "codec": codec, "idempotence": "false", "acks": "all"},
                      input=stdin_lines(records))
    check_round_trip(records, output)
    check_batches(shared_broker, topic, RECORDS, codec, idempotent=False)
    check_fetch_sessions(output["stderr"])


@versions()
def test_idempotent_producer(java, shared_broker):
    """An idempotent producer (acks=all, five requests in flight, small batches) writes 5,000
    records once each: one producer id, gapless sequences from 0 on every partition, offsets
    0..n-1, nothing duplicated or lost, every acknowledgement where its record is."""
    topic = topic_name(java, "idempotent")
    create_topic(shared_broker, topic, partitions=PARTITIONS)
    count = 5000
    records = [(key, value, ()) for key, value in keyed_messages(count, keys=50)]
    output = java.run("round-trip", {
        "bootstrap": shared_broker.bootstrap, "topic": topic, "codec": "lz4",
        "idempotence": "true", "acks": "all", "linger.ms": 0, "batch.size": 2048,
        "max.in.flight": 5}, input=stdin_lines(records))
    check_round_trip(records, output)
    batches = check_batches(shared_broker, topic, count, "lz4", idempotent=True)
    assert len(batches) >= 3 * PARTITIONS, f"only {len(batches)} batches: nothing pipelined"


# ---- admin ------------------------------------------------------------------------------------

def config(entry: dict) -> tuple[str | None, str]:
    return entry["value"], entry["source"]


def check_topic_configs(configs: dict[str, dict], dynamic: set[str]) -> None:
    """Exactly `dynamic` are DYNAMIC_TOPIC_CONFIG, the others the broker's (static or default);
    isDefault is true for DEFAULT_CONFIG only."""
    sources = {name: entry["source"] for name, entry in configs.items()}
    assert {name for name, source in sources.items() if source == "DYNAMIC_TOPIC_CONFIG"} == dynamic
    others = {name: source for name, source in sources.items()
              if source not in ("DYNAMIC_TOPIC_CONFIG", "DEFAULT_CONFIG", "STATIC_BROKER_CONFIG")}
    assert not others, f"configs with unexpected sources: {others}"
    wrong_default = [name for name, entry in configs.items()
                     if entry["default"] != (entry["source"] == "DEFAULT_CONFIG")]
    assert not wrong_default, f"isDefault disagrees with the source for {wrong_default}"


def error_of(step: dict) -> str | None:
    return step.get("error")


@versions()
def test_admin(java, shared_broker):
    """createTopics (validate-only, invalid config, existing), listTopics, describeTopics,
    describeConfigs, incrementalAlterConfigs (SET and DELETE, invalid values and names),
    createPartitions, deleteRecords, describeCluster and deleteTopics answer as Kafka does,
    failures as the exception Kafka's error code maps to."""
    topic = topic_name(java, "admin")
    other, missing = f"{topic}-other", f"{topic}-missing"
    output = java.run("admin", {"bootstrap": shared_broker.bootstrap, "topic": topic,
                                "broker.id": BROKER_ID})
    steps = output["steps"]
    errors = {name: step["error"] for name, step in steps.items() if "error" in step}
    result = {name: step.get("result") for name, step in steps.items()}

    # createTopics
    assert result["create_validate_only"] is False, "validate_only created the topic"
    assert errors.get("create_invalid_config") == "InvalidConfigurationException", steps[
        "create_invalid_config"]
    assert "create" not in errors, steps["create"]
    created = result["create"]
    assert created["partitions"] == 3 and created["replication_factor"] == 1, created
    assert created["topic_id"] not in ("AAAAAAAAAAAAAAAAAAAAAA", "None"), created
    assert config(created["configs"]["retention.ms"]) == ("3600000", "DYNAMIC_TOPIC_CONFIG")
    assert config(created["configs"]["cleanup.policy"]) == ("compact", "DYNAMIC_TOPIC_CONFIG")
    assert "create_default_partitions" not in errors, steps["create_default_partitions"]
    assert errors.get("create_again") == "TopicExistsException", steps["create_again"]

    # listTopics: the new topics, no internal topic unless asked for.
    listed = set(result["list"])
    assert {topic, other} <= listed and missing not in listed, listed
    assert not {name for name in listed if name.startswith("__")}, listed
    assert listed <= set(result["list_internal"]), result["list_internal"]

    # describeTopics
    described = result["describe"]
    assert described["name"] == topic and described["internal"] is False, described
    assert described["topic_id"] == created["topic_id"], (described, created)
    assert described["partitions"] == [
        {"partition": p, "leader": 1, "replicas": [1], "isr": [1]} for p in range(3)], described
    assert [p["partition"] for p in result["describe_other"]["partitions"]] == [0], (
        "num.partitions=1 is the default for a topic created without a count")
    assert errors.get("describe_missing") == "UnknownTopicOrPartitionException", steps[
        "describe_missing"]

    # describeConfigs: what createTopics answered, sources as Kafka has them.
    before = result["describe_configs"]
    assert config(before["retention.ms"]) == ("3600000", "DYNAMIC_TOPIC_CONFIG")
    assert config(before["cleanup.policy"]) == ("compact", "DYNAMIC_TOPIC_CONFIG")
    assert config(before["segment.bytes"]) == ("1073741824", "DEFAULT_CONFIG")
    assert config(before["max.message.bytes"]) == ("1048588", "DEFAULT_CONFIG")
    assert config(before["compression.type"]) == ("producer", "DEFAULT_CONFIG")
    check_topic_configs(before, {"retention.ms", "cleanup.policy"})
    assert {name: config(entry) for name, entry in created["configs"].items()} == {
        name: config(entry) for name, entry in before.items()}, (
        "createTopics and describeConfigs disagree on the topic's configs")
    broker_configs = result["describe_broker_configs"]
    assert config(broker_configs["num.partitions"]) == ("1", "STATIC_BROKER_CONFIG")
    assert config(broker_configs["log.dirs"]) == (str(shared_broker.data_dir),
                                                  "STATIC_BROKER_CONFIG")
    assert config(broker_configs["log.segment.bytes"]) == ("1073741824", "DEFAULT_CONFIG")

    # incrementalAlterConfigs: SET twice and DELETE in one call; the deleted back at default.
    assert "alter_configs" not in errors, steps["alter_configs"]
    after = result["describe_configs_altered"]
    assert config(after["retention.ms"]) == ("7200000", "DYNAMIC_TOPIC_CONFIG")
    assert config(after["max.message.bytes"]) == ("2097152", "DYNAMIC_TOPIC_CONFIG")
    assert config(after["cleanup.policy"]) == ("delete", "DEFAULT_CONFIG")
    check_topic_configs(after, {"retention.ms", "max.message.bytes"})
    assert set(after) == set(before), "describe lists a different set of topic configs"
    # Refused alters change nothing.
    assert errors.get("alter_invalid_value") == "InvalidConfigurationException", steps[
        "alter_invalid_value"]
    assert errors.get("alter_unknown_config") == "InvalidConfigurationException", steps[
        "alter_unknown_config"]
    assert errors.get("alter_missing_topic") == "UnknownTopicOrPartitionException", steps[
        "alter_missing_topic"]
    assert result["describe_configs_after_invalid"] == after

    # createPartitions
    assert "create_partitions" not in errors, steps["create_partitions"]
    assert [p["partition"] for p in result["create_partitions"]["partitions"]] == list(range(5))
    assert {p["leader"] for p in result["create_partitions"]["partitions"]} == {1}
    assert errors.get("create_partitions_shrink") == "InvalidPartitionsException", steps[
        "create_partitions_shrink"]
    assert errors.get("create_partitions_missing") == "UnknownTopicOrPartitionException", steps[
        "create_partitions_missing"]

    # deleteRecords: the low watermark moves; past the high watermark is out of range.
    assert result["delete_records"] == {"0": 4, "4": 10}, steps["delete_records"]
    assert errors.get("delete_records_beyond_end") == "OffsetOutOfRangeException", steps[
        "delete_records_beyond_end"]
    assert result["offsets_after_delete_records"] == {
        "0.earliest": 4, "0.latest": 10, "4.earliest": 10, "4.latest": 10}

    # describeCluster: the id of meta.properties; the one broker, also the controller.
    meta = dict(line.split("=", 1) for line in
                (shared_broker.data_dir / "meta.properties").read_text().splitlines()
                if "=" in line and not line.startswith("#"))
    assert result["describe_cluster"] == {
        "cluster_id": meta["cluster.id"], "controller": int(BROKER_ID),
        "nodes": [[int(BROKER_ID), HOST, shared_broker.port]]}, steps["describe_cluster"]

    # deleteTopics
    assert "delete" not in errors, steps["delete"]
    assert not {topic, other} & set(result["delete"]), result["delete"]
    assert errors.get("delete_again") == "UnknownTopicOrPartitionException", steps["delete_again"]
    assert errors.get("describe_deleted") == "UnknownTopicOrPartitionException", steps[
        "describe_deleted"]


@versions()
def test_admin_append_to_default(java, shared_broker):
    """incrementalAlterConfigs APPEND to a list config without an override appends to its default
    (Kafka's controller starts from ConfigDef's default: cleanup.policy delete -> delete,compact),
    and SUBTRACT then takes an item away (-> compact); both DYNAMIC_TOPIC_CONFIG."""
    topic = topic_name(java, "append")
    output = java.run("alter-list", {"bootstrap": shared_broker.bootstrap, "topic": topic})
    steps = output["steps"]
    errors = {name: step["error"] for name, step in steps.items() if "error" in step}
    assert not errors, steps
    assert config(steps["describe_appended"]["result"]["cleanup.policy"]) == (
        "delete,compact", "DYNAMIC_TOPIC_CONFIG")
    assert config(steps["describe_subtracted"]["result"]["cleanup.policy"]) == (
        "compact", "DYNAMIC_TOPIC_CONFIG")


# ---- consumer groups --------------------------------------------------------------------------

def check_group(output: dict, partitions: int) -> list[dict]:
    """Every acknowledged record consumed exactly once across the members, with consecutive
    offsets per partition; no member lost its partitions or failed a poll, commit or close; the
    group's committed offsets (Admin listConsumerGroupOffsets) are the partitions' end offsets."""
    members = output["members"]
    assert not output["producer_errors"], output["producer_errors"]
    sent = output["sent"]
    assert all(partition is not None for _, _, partition, _ in sent), "unacknowledged records"
    consumed = sorted(tuple(row) for member in members for row in member["consumed"])
    check_history([(key, value) for key, value, _, _ in sent], consumed, partitions)
    acked = {(partition, offset): value for _, value, partition, offset in sent}
    wrong = [(p, o, v) for p, o, _, v in consumed if acked.get((p, o)) != v]
    assert not wrong, f"records not where their acknowledgements said: {wrong[:5]}"
    for member in members:
        assert not member["errors"], f"{member['name']}: {member['errors']}"
        assert member["lost"] == 0, f"{member['name']} lost its partitions: {member['events']}"
    ends = defaultdict(int)
    for _, _, partition, offset in sent:
        ends[partition] = max(ends[partition], offset + 1)
    assert output["end_offsets"] == {str(p): ends[p] for p in range(partitions)}, (
        output["end_offsets"])
    assert output["committed"] == output["end_offsets"], (
        f"committed {output['committed']}, end offsets {output['end_offsets']}")
    return members


def group_failure(output: dict) -> str:
    return "\n".join(output["timeline"] + [
        f"{m['name']} {m['member_id']}: {len(m['consumed'])} records, {m['commits']} commits, "
        f"events {m['events']}" for m in output["members"]])


@versions()
@pytest.mark.parametrize("members", [1, 2, 3])
def test_classic_group(java, shared_broker, members):
    """`members` classic-protocol members (group.protocol=classic) split six partitions, then
    3,000 records come: each consumed exactly once across the members, every member's commits
    succeed, and Admin listConsumerGroupOffsets shows the group at the end of every partition."""
    topic = topic_name(java, f"classic-{members}")
    create_topic(shared_broker, topic, partitions=GROUP_PARTITIONS)
    plan = " ".join(f"+{n}" for n in range(members)) + " = p"
    output = java.run("group", {
        "bootstrap": shared_broker.bootstrap, "topic": topic, "group": f"{topic}-group",
        "protocol": "classic", "partitions": GROUP_PARTITIONS, "plan": plan, "count": 3000})
    check_group(output, GROUP_PARTITIONS)
    assert len(output["sent"]) == 3000
    for member in output["members"]:
        assert member["consumed"] and member["commits"] > 0, group_failure(output)


# Members join one by one, then leave, while a producer sends 200 records a second: `=` waits
# until the live members split the partitions, `~` is a second (see JavaClient.group).
KIP848_PLANS = {2: "p +0 = +1 = -0 =", 3: "p +0 ~ +1 ~ +2 = -0 ="}


@versions(*KIP848_VERSIONS)
@pytest.mark.parametrize("members", sorted(KIP848_PLANS))
def test_kip848_group(java, shared_broker, members):
    """KIP-848 members (group.protocol=consumer) join and leave while records flow: each join
    and leave ends with the partitions split among the live members, no member is fenced or
    removed (nothing lost, no UNKNOWN_MEMBER_ID or FENCED_MEMBER_EPOCH in the client's log, no
    commit failing for good), every record is delivered exactly once, and the commits reach the
    end. A commit that crossed the heartbeat moving its member to a new epoch is refused as
    stale, by Kafka's coordinator as by Flink's, and the member sends it again."""
    topic = topic_name(java, f"kip848-{members}")
    create_topic(shared_broker, topic, partitions=GROUP_PARTITIONS)
    output = java.run("group", {
        "bootstrap": shared_broker.bootstrap, "topic": topic, "group": f"{topic}-group",
        "protocol": "consumer", "partitions": GROUP_PARTITIONS, "plan": KIP848_PLANS[members],
        "rate": 200})
    fencing = [line for line in output["stderr"].splitlines() if FENCING.search(line)]
    assert not fencing, "members fenced or removed:\n" + "\n".join(fencing[:20])
    check_group(output, GROUP_PARTITIONS)
    for member in output["members"]:
        assert member["consumed"], f"{member['name']} consumed nothing\n{group_failure(output)}"
    assert len(output["sent"]) >= 200, "records did not flow during the joins and leaves"


# ---- offsets ----------------------------------------------------------------------------------

@versions()
def test_offsets(java, shared_broker):
    """beginningOffsets/endOffsets, offsetsForTimes (hits, before the first, after the last),
    commitSync of explicit offsets with metadata and committed(), a new member resuming at the
    commits, seek/seekToEnd/seekToBeginning, a seek below the log start after deleteRecords
    resetting to the earliest offset, and the admin's view of the group's offsets."""
    topic = topic_name(java, "offsets")
    # Record i at base + i seconds, in the past, on whole seconds.
    base = (int(time.time()) - 600) * 1000
    o = java.run("offsets", {"bootstrap": shared_broker.bootstrap, "topic": topic,
                             "group": f"{topic}-group", "base.timestamp": base})

    def record(partition: int, offset: int) -> list:
        return [offset, f"p{partition}-k{offset}", f"p{partition}-v{offset}", base + offset * 1000]

    assert o["beginning"] == {"0": 0, "1": 0}
    assert o["end"] == {"0": 10, "1": 5}
    assert o["committed_before"] == {"0": None, "1": None}
    assert o["for_times"] == {"0": [4, base + 4000], "1": [4, base + 4000]}
    assert o["for_times_first"] == {"0": [0, base], "1": [0, base]}
    assert o["for_times_after_last"] == {"0": None, "1": None}
    assert o["committed"] == {"0": [7, "seven"], "1": [2, ""]}
    assert o["resumed_position"] == {"0": 7, "1": 2}
    assert o["resumed_first"] == {"0": record(0, 7), "1": record(1, 2)}
    assert o["seek_position"] == {"0": 3, "1": 0}
    assert o["seek_first"] == {"0": record(0, 3), "1": record(1, 0)}
    assert o["seek_to_end_position"] == {"0": 10, "1": 5}
    assert o["seek_to_beginning_position"] == {"0": 0, "1": 0}
    assert o["beginning_after_delete"] == {"0": 5, "1": 0}
    assert o["below_start_first"] == {"0": record(0, 5)}
    assert o["committed_again"] == {"0": [7, "seven"], "1": [4, "four"]}
    assert o["admin_committed"] == o["committed_again"]
