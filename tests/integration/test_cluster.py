"""Three controllers and three brokers as separate processes: metadata, topic creation through any
broker, clients across leaders, controller failover, broker fencing, a full restart, and a node of
another cluster refused.

One cluster serves the whole module (six processes take a while to start on two cores); a test that
stops nodes restarts them itself, and `_healthy_cluster` restarts anything a failed test left down.
Topic names are per test. Replication is not implemented yet: every topic has replication factor
1, so a partition is served by its one broker only.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from kafka.protocol.admin import DescribeClusterRequest, DescribeClusterResponse
from confluent_kafka.admin import (AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource,
                                   ConfigSource, NewTopic, ResourceType)

import support
from clients import OFFSET_BEGINNING, check_reports, confluent_consume, confluent_produce
from cluster import (BROKER_IDS, BROKER_SESSION_TIMEOUT_MS, CONTROLLER_IDS, Cluster, NodeExited,
                     eventually, format_node, random_cluster_id)
from kafka_wire import WireConnection
from support import (HOST, check_history, describe_run, executor_cpus, keyed_messages, layout,
                     run_script, spread)
from test_kcat import kcat
from java_clients import topic_name, versions
from test_transactions import Reader, send, transaction

PARTITIONS = 6
ADMIN_TIMEOUT_S = 30
PROPAGATION_TIMEOUT_S = 10  # A change on the active controller reaching every broker.
FAILOVER_TIMEOUT_S = 15
# A broker whose heartbeats stop is fenced after the session timeout; "a few seconds" on top.
FENCING_TIMEOUT_S = BROKER_SESSION_TIMEOUT_MS / 1000 + 7.5
REJOIN_TIMEOUT_S = 30
REFUSAL_TIMEOUT_S = 30
LEADER_NOT_AVAILABLE = 5
NO_LEADER = -1


@pytest.fixture(scope="module")
def cluster(tmp_path_factory) -> Cluster:
    cluster = Cluster(tmp_path_factory.mktemp("cluster"))
    try:
        cluster.format()
        cluster.start_all()
        yield cluster
    finally:
        cluster.stop_all(signal.SIGKILL)


@pytest.fixture(autouse=True)
def _healthy_cluster(_forget_brokers, cluster):
    """Every node's log in a failing test's report, and every node up before each test."""
    cluster.track_logs()
    cluster.ensure_running()


def create_topic(bootstrap: str, topic: str, partitions: int = PARTITIONS) -> None:
    """CreateTopics through confluent-kafka's AdminClient, replication factor 1."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    new_topic = NewTopic(topic, num_partitions=partitions, replication_factor=1)
    futures = admin.create_topics([new_topic], request_timeout=ADMIN_TIMEOUT_S)
    assert futures[topic].result(timeout=ADMIN_TIMEOUT_S) is None


def wait_for_topic(cluster: Cluster, topic: str, partitions: int = PARTITIONS) -> dict[int, int]:
    """Until every broker, on both listeners, shows `topic` with `partitions` partitions, each
    led by its only replica and all brokers agreeing; returns the leaders by partition."""
    def agreed():
        seen = {}
        for broker_id in BROKER_IDS:
            for listener in ("host", "internal"):
                metadata = cluster.metadata(broker_id, listener)
                found = metadata.partitions(topic)
                assert sorted(found) == list(range(partitions)), (
                    f"broker {broker_id} ({listener}): {topic} has partitions {sorted(found)}")
                for index, partition in found.items():
                    assert partition.error_code == 0 and partition.leader in BROKER_IDS, (
                        f"broker {broker_id}: {topic}-{index} is {partition}")
                    assert partition.replicas == [partition.leader], (
                        f"{topic}-{index}: replication factor 1, yet {partition}")
                    assert partition.isr == [partition.leader], f"{topic}-{index}: {partition}"
                seen[(broker_id, listener)] = metadata.leaders(topic)
        first = next(iter(seen.values()))
        assert all(found == first for found in seen.values()), (
            f"brokers disagree on the leaders of {topic}: {seen}")
        return first
    return eventually(agreed, PROPAGATION_TIMEOUT_S, f"every broker shows {topic}")


def test_every_broker_lists_the_same_three_brokers_per_listener(cluster):
    """Each broker, asked on either listener, lists brokers 4, 5 and 6 at that listener's ports,
    with the formatted cluster id and, as Kafka's KRaft brokers (KIP-590), a live broker as
    controller id; the quorum's leader is one of the voters 1..3."""
    for listener in ("host", "internal"):
        expected = cluster.advertised(BROKER_IDS, listener)
        for broker_id in BROKER_IDS:
            metadata = cluster.metadata(broker_id, listener)
            assert metadata.brokers == expected, (
                f"broker {broker_id} on its {listener} listener lists {metadata.brokers}")
            assert metadata.cluster_id == cluster.cluster_id, metadata
            assert metadata.controller_id in BROKER_IDS, (
                f"broker {broker_id} names {metadata.controller_id} as controller: clients send "
                "CreateTopics there, so it must be a broker they can reach")
    quorum = cluster.describe_quorum()
    assert quorum.leader_id in CONTROLLER_IDS, quorum
    assert sorted(quorum.voters) == list(CONTROLLER_IDS), quorum
    assert cluster.active_controller() == quorum.leader_id


def test_nodes_sharing_the_machine_run_unpinned(cluster):
    """The harness's cpu.pinning=none reaches every node: no executor thread is pinned, so the
    six processes are not stacked on one CPU."""
    for node_id, node in cluster.nodes.items():
        allowed = os.sched_getaffinity(node.process.pid)
        cpus = executor_cpus(node.process.pid)
        assert "controller" in cpus and (not node.is_broker or "shard-0" in cpus), (node_id, cpus)
        assert all(threads == allowed for threads in cpus.values()), (node_id, allowed, cpus)
        assert "CPU placement none" in node.log_text(), node_id


def test_metadata_quorum_tool_describes_the_quorum(cluster):
    """`flink-metadata-quorum.sh describe --status` through one broker prints Kafka's fields: the
    cluster id, the active controller as LeaderId, voters 1..3 and the brokers as observers."""
    if not (support.BIN_DIR / "flink-metadata-quorum.sh").exists():
        pytest.skip("flink-metadata-quorum.sh is not in the dist yet")
    result = run_script("flink-metadata-quorum.sh", "--bootstrap-server", cluster.address(4),
                        "describe", "--status")
    fields = dict(re.findall(r"^(\w+):\s+(.*?)\s*$", result.stdout, re.MULTILINE))
    for name in ("ClusterId", "LeaderId", "LeaderEpoch", "HighWatermark", "CurrentVoters",
                 "CurrentObservers"):
        assert name in fields, f"no {name}:\n{describe_run(result)}"
    quorum = cluster.describe_quorum()
    assert fields["ClusterId"] == cluster.cluster_id, describe_run(result)
    assert int(fields["LeaderId"]) == quorum.leader_id, describe_run(result)
    assert int(fields["LeaderEpoch"]) == quorum.leader_epoch, describe_run(result)
    assert int(fields["HighWatermark"]) > 0, describe_run(result)
    assert node_ids(fields["CurrentVoters"]) == set(CONTROLLER_IDS), describe_run(result)
    assert node_ids(fields["CurrentObservers"]) == set(BROKER_IDS), describe_run(result)


def node_ids(listed: str) -> set[int]:
    """Ids from `[1,2,3]` (Kafka 3.x) or `[{"id": 1, ...}, ...]` (Kafka 3.9+)."""
    if "{" in listed:
        return set(map(int, re.findall(r'"id":\s*(\d+)', listed)))
    return set(map(int, re.findall(r"\d+", listed)))


def test_topics_created_through_any_broker_are_visible_everywhere(cluster):
    """CreateTopics sent to broker 4 (confluent-kafka), 5 (flink-topics.sh) and 6 (confluent-kafka
    on the internal listener) is forwarded to the active controller: every broker then shows all
    three topics, and each 6-partition topic has its leaders on all three brokers."""
    create_topic(cluster.address(4), "via-broker-4")
    result = run_script("flink-topics.sh", "--bootstrap-server", cluster.address(5), "--create",
                        "--topic", "via-broker-5", "--partitions", str(PARTITIONS),
                        "--replication-factor", "1")
    assert "Created topic via-broker-5." in result.stdout, describe_run(result)
    create_topic(cluster.address(6, "internal"), "via-broker-6")

    for topic in ("via-broker-4", "via-broker-5", "via-broker-6"):
        leaders = wait_for_topic(cluster, topic)
        assert set(leaders.values()) == set(BROKER_IDS), f"{topic} leaders: {leaders}"
    listed = run_script("flink-topics.sh", "--bootstrap-server", cluster.address(6), "--list")
    assert {"via-broker-4", "via-broker-5", "via-broker-6"} <= set(listed.stdout.split()), (
        describe_run(listed))


def test_clients_produce_and_consume_across_all_leaders(cluster):
    """kcat (bootstrapped from broker 4 only) and confluent-kafka (from broker 5 only) produce
    keyed records into partitions led by all three brokers; kcat from broker 6 and confluent-kafka
    from broker 4 each read every record back exactly once, in per-key order."""
    topic = "across-leaders"
    create_topic(cluster.address(4), topic)
    leaders = wait_for_topic(cluster, topic)

    by_kcat = keyed_messages(3000, keys=100)
    by_confluent = [(f"c{key}", f"c{value}") for key, value in keyed_messages(3000, keys=100)]
    kcat("-b", cluster.address(4), "-P", "-t", topic, "-K:", "-X", "acks=all",
         input="".join(f"{key}:{value}\n" for key, value in by_kcat))
    reports = confluent_produce(cluster.address(5), topic, by_confluent)
    sent = by_kcat + by_confluent

    output = kcat("-b", cluster.address(6), "-C", "-t", topic, "-o", "beginning", "-e",
                  "-f", "%p %o %k %s\n")
    read_by_kcat = []
    for line in output.splitlines():
        partition, offset, key, value = line.split(" ")
        read_by_kcat.append((int(partition), int(offset), key, value))
    offsets = check_history(sent, read_by_kcat, PARTITIONS)
    assert {leaders[partition] for partition in offsets} == set(BROKER_IDS), (
        f"records went to partitions {sorted(offsets)} only; leaders {leaders}")

    read_by_confluent = confluent_consume(cluster.address(4), topic, PARTITIONS, len(sent),
                                          start=OFFSET_BEGINNING)
    check_history(sent, read_by_confluent, PARTITIONS)
    check_reports(reports, read_by_confluent, by_confluent)
    assert sorted(read_by_confluent) == sorted(read_by_kcat)


def test_killing_the_active_controller_elects_another(cluster):
    """SIGKILL of the active controller: within 15 s another voter leads with a higher epoch,
    topics can still be created, and the killed controller, restarted, catches up on the
    metadata log as a voter again."""
    before = cluster.describe_quorum()
    killed = before.leader_id
    assert killed in CONTROLLER_IDS, before
    cluster.kill(killed)

    def new_leader():
        quorum = cluster.describe_quorum()
        assert quorum.leader_id in CONTROLLER_IDS and quorum.leader_id != killed, quorum
        assert quorum.leader_epoch > before.leader_epoch, quorum
        return quorum
    after = eventually(new_leader, FAILOVER_TIMEOUT_S, f"a controller other than {killed} leads")
    assert cluster.active_controller() == after.leader_id

    create_topic(cluster.bootstrap(), "after-failover")
    wait_for_topic(cluster, "after-failover")
    written = cluster.describe_quorum().high_watermark
    assert written > before.high_watermark, "the topic was not written to the metadata log"

    cluster.start(killed)

    def caught_up():
        quorum = cluster.describe_quorum()
        assert sorted(quorum.voters) == list(CONTROLLER_IDS), quorum
        assert quorum.voters[killed] >= written, (
            f"controller {killed} has log end offset {quorum.voters[killed]}, "
            f"the log had {written} before it restarted: {quorum}")
        return quorum
    eventually(caught_up, REJOIN_TIMEOUT_S, f"controller {killed} catches up after its restart")


def test_killed_broker_is_fenced_and_rejoins(cluster):
    """SIGKILL of a broker: within the session timeout plus a few seconds the others stop listing
    it and report its partitions without leader (LEADER_NOT_AVAILABLE, leader -1), the others'
    partitions keep theirs; restarted, it is listed again, leads its partitions again and every
    record written before the kill is read back."""
    topic = "fencing"
    create_topic(cluster.bootstrap(), topic)
    leaders = wait_for_topic(cluster, topic)
    sent = keyed_messages(3000, keys=100)
    reports = confluent_produce(cluster.bootstrap(), topic, sent)

    victim = 5
    survivors = [broker_id for broker_id in BROKER_IDS if broker_id != victim]
    orphaned = sorted(index for index, leader in leaders.items() if leader == victim)
    assert orphaned, f"broker {victim} leads no partition of {topic}: {leaders}"
    cluster.kill(victim)

    def fenced():
        for broker_id in survivors:
            metadata = cluster.metadata(broker_id)
            assert sorted(metadata.brokers) == survivors, (
                f"broker {broker_id} lists {sorted(metadata.brokers)}")
            for index, partition in metadata.partitions(topic).items():
                if index in orphaned:
                    assert (partition.error_code, partition.leader) == (
                        LEADER_NOT_AVAILABLE, NO_LEADER), (
                        f"broker {broker_id}: {topic}-{index} (on {victim}): {partition}")
                else:
                    assert (partition.error_code, partition.leader) == (0, leaders[index]), (
                        f"broker {broker_id}: {topic}-{index} (not on {victim}): {partition}")
    eventually(fenced, FENCING_TIMEOUT_S, f"broker {victim} is fenced")
    # DescribeCluster v2 lists fenced brokers only when asked, marked as fenced (KIP-1073).
    assert fenced_flags(cluster, survivors[0], include_fenced=False) == {
        broker_id: False for broker_id in survivors}
    assert fenced_flags(cluster, survivors[0], include_fenced=True) == {
        **{broker_id: False for broker_id in survivors}, victim: True}

    cluster.start(victim)
    cluster.wait_until_ready(REJOIN_TIMEOUT_S)
    assert wait_for_topic(cluster, topic) == leaders, "partitions moved although RF is 1"

    consumed = confluent_consume(cluster.bootstrap(), topic, PARTITIONS, len(sent),
                                 start=OFFSET_BEGINNING)
    check_history(sent, consumed, PARTITIONS)
    check_reports(reports, consumed, sent)


def fenced_flags(cluster: Cluster, broker_id: int, include_fenced: bool) -> dict[int, bool]:
    """DescribeCluster v2 from one broker: {listed broker id: is_fenced}."""
    port = cluster.nodes[broker_id].listener_ports["host"]
    with WireConnection(HOST, port) as connection:
        request = DescribeClusterRequest(include_cluster_authorized_operations=False,
                                         endpoint_type=1, include_fenced_brokers=include_fenced)
        response = connection.call(request, DescribeClusterResponse, 2)
    assert response.error_code == 0, response
    return {broker.broker_id: broker.is_fenced for broker in response.brokers}


def test_full_restart_keeps_topics_configs_and_records(cluster):
    """SIGTERM to every node (each exits cleanly), then start all again: the topics, their
    partition counts, a config set with IncrementalAlterConfigs and every record are still there."""
    create_topic(cluster.address(4), "durable", partitions=PARTITIONS)
    create_topic(cluster.address(5), "durable-small", partitions=2)
    wait_for_topic(cluster, "durable")
    wait_for_topic(cluster, "durable-small", partitions=2)
    admin = AdminClient({"bootstrap.servers": cluster.address(6)})
    change = ConfigResource(ResourceType.TOPIC, "durable", incremental_configs=[
        ConfigEntry("retention.ms", "4321000", incremental_operation=AlterConfigOpType.SET)])
    for future in admin.incremental_alter_configs([change]).values():
        future.result(timeout=ADMIN_TIMEOUT_S)
    eventually(lambda: check_retention(cluster, 4), PROPAGATION_TIMEOUT_S,
               "broker 4 sees the new retention.ms")
    sent = keyed_messages(3000, keys=100)
    reports = confluent_produce(cluster.bootstrap(), "durable", sent)

    codes = cluster.stop_all(signal.SIGTERM)
    unclean = {node_id: code for node_id, code in codes.items()
               if code not in (0, 128 + signal.SIGTERM)}
    assert not unclean, f"exit codes after SIGTERM (None = had to SIGKILL): {unclean}"
    cluster.start_all()

    wait_for_topic(cluster, "durable", partitions=PARTITIONS)
    wait_for_topic(cluster, "durable-small", partitions=2)
    for broker_id in BROKER_IDS:
        eventually(lambda: check_retention(cluster, broker_id), PROPAGATION_TIMEOUT_S,
                   f"broker {broker_id} sees retention.ms after the restart")
    consumed = confluent_consume(cluster.bootstrap(), "durable", PARTITIONS, len(sent),
                                 start=OFFSET_BEGINNING)
    check_history(sent, consumed, PARTITIONS)
    check_reports(reports, consumed, sent)


def check_retention(cluster: Cluster, broker_id: int) -> None:
    """Broker `broker_id` describes topic `durable` with retention.ms=4321000, set dynamically."""
    admin = AdminClient({"bootstrap.servers": cluster.address(broker_id)})
    futures = admin.describe_configs([ConfigResource(ResourceType.TOPIC, "durable")],
                                     request_timeout=ADMIN_TIMEOUT_S)
    (future,) = futures.values()
    entry = future.result(timeout=ADMIN_TIMEOUT_S)["retention.ms"]
    assert (entry.value, ConfigSource(entry.source)) == (
        "4321000", ConfigSource.DYNAMIC_TOPIC_CONFIG), f"broker {broker_id}: {entry}"


def test_broker_of_another_cluster_is_refused(cluster):
    """A broker formatted with another cluster id, pointed at this quorum, exits non-zero naming
    both cluster ids, and never appears in the cluster's metadata."""
    stranger = cluster.make_broker(7)
    other_id = random_cluster_id()
    assert other_id != cluster.cluster_id
    format_node(stranger, other_id)
    try:
        try:
            stranger.start()
        except NodeExited:
            pass  # Refused at once: the exit code and log are checked below.
        try:
            code = stranger.process.wait(timeout=REFUSAL_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            pytest.fail(f"a broker of cluster {other_id} still runs after {REFUSAL_TIMEOUT_S}s "
                        f"against cluster {cluster.cluster_id}:\n{stranger.log_tail(40)}")
        log = stranger.log_text(since_last_start=True)
        assert code not in (0, None), f"exit code {code}:\n{log}"
        assert other_id in log and cluster.cluster_id in log, (
            f"the refusal names not both cluster ids ({other_id}, its own, and "
            f"{cluster.cluster_id}, the quorum's):\n{log}")
        for broker_id in BROKER_IDS:
            assert sorted(cluster.metadata(broker_id).brokers) == list(BROKER_IDS)
    finally:
        stranger.kill()


def group_consume(bootstrap: str, topic: str, group: str, count: int) -> list[tuple[int, int]]:
    """Subscribes as a member of `group`, reads `count` records and commits their offsets
    synchronously; returns (partition, offset) of each."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group,
                         "auto.offset.reset": "earliest", "enable.auto.commit": False})
    read: list[tuple[int, int]] = []
    try:
        consumer.subscribe([topic])
        deadline = time.monotonic() + ADMIN_TIMEOUT_S
        while len(read) < count:
            assert time.monotonic() < deadline, f"read {len(read)} of {count}"
            for message in consumer.consume(num_messages=count - len(read), timeout=0.5):
                assert message.error() is None, message.error()
                read.append((message.partition(), message.offset()))
        consumer.commit(asynchronous=False)
    finally:
        consumer.close()
    return read


def test_consumer_group_coordinated_by_the_offsets_partition_leader(cluster):
    """A confluent-kafka group member finds its coordinator (the broker leading the group's
    `__consumer_offsets` partition, whichever broker it bootstrapped from), reads records from
    partitions led by all three brokers and commits; a second member of the group, bootstrapped
    from another broker, starts from the committed offsets and reads only what came after."""
    topic = "group-across-leaders"
    create_topic(cluster.address(4), topic)
    wait_for_topic(cluster, topic)
    first = keyed_messages(60, keys=30)
    confluent_produce(cluster.address(5), topic, first)
    read = group_consume(cluster.address(6), topic, "cluster-group", len(first))
    assert len(set(read)) == len(first), read
    second = [(f"later{key}", value) for key, value in keyed_messages(30, keys=30)]
    confluent_produce(cluster.address(4), topic, second)
    resumed = group_consume(cluster.address(5), topic, "cluster-group", len(second))
    assert not set(resumed) & set(read), "the second member re-read committed records"
    assert len(set(resumed)) == len(second)


def test_lagging_nodes_catch_up_from_snapshots(cluster):
    """With a snapshot every few kilobytes of metadata: a follower controller stopped while
    dozens of topics are created comes back behind the leader's snapshot, installs it (its log
    says so) and catches up; a restarted broker (brokers keep no metadata on disk) fetches the
    snapshot and lists every topic; every controller keeps one checkpoint and a compacted raft.log."""
    leader = cluster.active_controller()
    follower = next(node for node in CONTROLLER_IDS if node != leader)
    cluster.kill(follower)
    cluster.kill(6)
    names = [f"snap-{index}" for index in range(40)]
    admin = AdminClient({"bootstrap.servers": cluster.address(4)})
    for batch in range(0, len(names), 5):  # One metadata log entry per request.
        new_topics = [NewTopic(name, num_partitions=1, replication_factor=1)
                      for name in names[batch:batch + 5]]
        for future in admin.create_topics(new_topics, request_timeout=ADMIN_TIMEOUT_S).values():
            future.result(timeout=ADMIN_TIMEOUT_S)
    written = cluster.describe_quorum().high_watermark

    cluster.start(follower)
    cluster.start(6)

    def caught_up():
        quorum = cluster.describe_quorum()
        assert quorum.voters.get(follower, -1) >= written, quorum
    eventually(caught_up, REJOIN_TIMEOUT_S, f"controller {follower} catches up")
    follower_log = cluster.nodes[follower].log_path.read_text()
    assert "adopted the active controller's metadata snapshot" in follower_log

    def listed_by_restarted_broker():
        listed = cluster.metadata(6).topics
        missing = [name for name in names if name not in listed]
        assert not missing, f"broker 6 does not list {missing[:5]}..."
    eventually(listed_by_restarted_broker, REJOIN_TIMEOUT_S, "broker 6 lists every topic")

    for node in CONTROLLER_IDS:
        metadata_dir = cluster.nodes[node].data_dir / "__cluster_metadata-0"
        checkpoints = sorted(metadata_dir.glob("*.checkpoint"))
        assert len(checkpoints) == 1, (node, checkpoints)
        index = int(checkpoints[0].name.split("-")[0])
        assert index > 0


def test_sigterm_is_a_controlled_shutdown(cluster):
    """SIGTERM of a broker: before its logs close it has the active controller fence it (no
    waiting for the session to expire), so the others stop listing it and its partitions lose
    their leader; started again, it is listed and leads again."""
    topic = "controlled-shutdown"
    create_topic(cluster.bootstrap(), topic)
    leaders = wait_for_topic(cluster, topic)
    led_by_6 = [partition for partition, leader in leaders.items() if leader == 6]
    assert cluster.kill(6, signal.SIGTERM) == 0
    broker_log = cluster.nodes[6].log_path.read_text()
    assert "controlled shutdown: broker 6 is fenced" in broker_log, broker_log[-2000:]
    controller_log = cluster.nodes[cluster.active_controller()].log_path.read_text()
    assert "broker 6 is shutting down: fencing it" in controller_log

    def gone():
        metadata = cluster.metadata(4)
        assert 6 not in metadata.brokers, metadata.brokers
        for partition in led_by_6:
            assert metadata.topics[topic][partition].leader == NO_LEADER
    eventually(gone, PROPAGATION_TIMEOUT_S, "broker 6 fenced and its partitions leaderless")
    cluster.start(6)
    eventually(lambda: wait_for_topic(cluster, topic) == leaders, REJOIN_TIMEOUT_S,
               "broker 6 leads its partitions again")


def test_second_broker_with_a_taken_id_is_refused(cluster):
    """A second process started as broker 6 (its own directory and ports) while broker 6 runs
    is refused with DUPLICATE_BROKER_REGISTRATION and keeps retrying without taking the id over:
    every broker still lists broker 6 at the original's ports."""
    twin = cluster.make_broker(6, directory="node6-twin")
    format_node(twin, cluster.cluster_id)
    original = cluster.advertised([6], "host")
    try:
        twin.start()
        eventually(lambda: "DUPLICATE_BROKER_REGISTRATION" in twin.log_text(),
                   REFUSAL_TIMEOUT_S, "the twin is refused")
        assert twin.is_running(), "the twin should keep retrying, as a Kafka broker does"
        for broker_id in BROKER_IDS:
            listed = cluster.metadata(broker_id).brokers
            assert listed[6] == original[6], (broker_id, listed)
    finally:
        twin.kill()


def test_transactions_span_brokers(cluster):
    """A confluent-kafka transaction writing partitions led by all three brokers, coordinated by
    whichever broker leads its `__transaction_state` partition: the coordinator marks the other
    brokers' partitions with WriteTxnMarkers. Read at read_committed through any broker, the
    committed records arrive exactly once in order and the aborted ones never; offsets sent to a
    committed transaction reach the group, those of an aborted one do not; a broker restart
    keeps all of it."""
    topic, group = "txn-across-brokers", "txn-across-brokers-group"
    create_topic(cluster.address(4), topic)
    leaders = wait_for_topic(cluster, topic)
    assert set(leaders.values()) == set(BROKER_IDS), leaders
    producer = Producer({"bootstrap.servers": cluster.bootstrap(),
                         "transactional.id": "txn-across-brokers", "linger.ms": 5})
    producer.init_transactions(ADMIN_TIMEOUT_S)
    first, aborted, second = (spread(tag, 5 * PARTITIONS, PARTITIONS)
                              for tag in ("first", "aborted", "second"))
    transaction(producer, topic, first, commit=True)
    transaction(producer, topic, aborted, commit=False)
    producer.begin_transaction()
    send(producer, topic, second)
    metadata = Consumer({"bootstrap.servers": cluster.bootstrap(), "group.id": group})
    try:
        offsets = [TopicPartition(topic, partition, 7) for partition in range(PARTITIONS)]
        producer.send_offsets_to_transaction(offsets, metadata.consumer_group_metadata(),
                                             ADMIN_TIMEOUT_S)
        producer.commit_transaction(ADMIN_TIMEOUT_S)
        producer.begin_transaction()
        later = [TopicPartition(topic, partition, 9) for partition in range(PARTITIONS)]
        producer.send_offsets_to_transaction(later, metadata.consumer_group_metadata(),
                                             ADMIN_TIMEOUT_S)
        producer.abort_transaction(ADMIN_TIMEOUT_S)
        committed = metadata.committed([TopicPartition(topic, p) for p in range(PARTITIONS)],
                                       timeout=ADMIN_TIMEOUT_S)
        assert {tp.partition: tp.offset for tp in committed} == {
            p: 7 for p in range(PARTITIONS)}
    finally:
        metadata.close()

    expected = layout(first + second)

    def read_committed(bootstrap_node) -> dict[int, list[str]]:
        with Reader(bootstrap_node, topic, "read_committed", PARTITIONS) as reader:
            values: dict[int, list[str]] = {}
            for partition, _, value in reader.read(len(first) + len(second)):
                values.setdefault(partition, []).append(value)
            return values

    for broker_id in BROKER_IDS:
        assert read_committed(cluster.nodes[broker_id]) == expected
    # Every marker is in every partition's log: a restart (recovery from the log) keeps the
    # aborted records out and the committed ones in.
    cluster.kill(5)
    cluster.start(5)
    cluster.wait_until_ready()
    wait_for_topic(cluster, topic)
    assert read_committed(cluster.nodes[4]) == expected


@versions()
def test_java_transactions_span_brokers(cluster, java):
    """kafka-clients 4.3 (transactions version 2: each partition joins the transaction through
    Produce v12, whichever broker leads it, with AddPartitionsToTxn v5 to the coordinator's
    broker) and 3.9 (version 1): a consume-transform-produce loop over topics whose partitions
    all three brokers lead commits every input once, an aborted round moves nothing, and
    read_committed consumers see exactly the committed output."""
    source, sink = topic_name(java, "cluster-ctp-in"), topic_name(java, "cluster-ctp-out")
    for topic in (source, sink):
        create_topic(cluster.address(4), topic)
        assert set(wait_for_topic(cluster, topic).values()) == set(BROKER_IDS)
    output = java.run("txn-ctp", {
        "bootstrap": cluster.bootstrap(), "input": source, "output": sink,
        "group": f"{source}-group", "transactional.id": f"{source}-txn",
        "partitions": PARTITIONS, "count": 6 * PARTITIONS, "extra": 2 * PARTITIONS})
    first = spread("in", 6 * PARTITIONS, PARTITIONS)
    more = spread("more", 2 * PARTITIONS, PARTITIONS)
    committed = {int(p): offset for p, offset in output["committed_final"].items()}
    assert committed == {p: 8 for p in range(PARTITIONS)}, output["committed_final"]
    read = {}
    for partition, _, _, value, _, _ in output["read_committed"]:
        read.setdefault(partition, []).append(value)
    assert read == layout([(p, f"out:{v}") for p, v in first + more])


def test_topics_deleted_while_a_broker_is_down_leave_nothing_behind(cluster):
    """A broker that was down while its topics were deleted, one of them then created again
    under the same name, removes their old directories when it comes back (Kafka's stray logs,
    told apart by each directory's `partition.metadata`): the new topic's replica holds only the
    new records, with the new topic's id, and the deleted topic leaves no directory."""
    victim = 6
    node = cluster.nodes[victim]
    bootstrap = cluster.bootstrap(brokers=[4, 5])

    def create(topic: str, partitions: int, min_isr: int) -> None:
        run_script("flink-topics.sh", "--bootstrap-server", bootstrap, "--create", "--topic",
                   topic, "--partitions", str(partitions), "--replication-factor", "3",
                   "--config", f"min.insync.replicas={min_isr}")

    def listed(topic: str) -> bool:
        return topic in cluster.metadata(4).topics

    def shown(*topics: str):
        def check():
            assert all(listed(topic) for topic in topics), topics
        eventually(check, PROPAGATION_TIMEOUT_S, f"{topics} listed")

    # min.insync.replicas=3: each acknowledged record is in the victim's log too.
    create("reborn", 2, 3)
    create("gone", 1, 3)
    shown("reborn", "gone")
    old = [(f"k{index}", f"old-record-{index:04d}") for index in range(200)]
    for topic in ("reborn", "gone"):
        confluent_produce(cluster.bootstrap(), topic, old, acks="all", **{"compression.type": "none"})
    assert (node.data_dir / "reborn-0").is_dir() and (node.data_dir / "gone-0").is_dir()

    node.stop()
    run_script("flink-topics.sh", "--bootstrap-server", bootstrap, "--delete", "--topic", "reborn")
    run_script("flink-topics.sh", "--bootstrap-server", bootstrap, "--delete", "--topic", "gone")

    def deleted():
        assert not listed("reborn") and not listed("gone")
    eventually(deleted, PROPAGATION_TIMEOUT_S, "both topics deleted")
    # Broker 6 is still registered, though fenced: a manual assignment may name it.
    admin = AdminClient({"bootstrap.servers": bootstrap})
    recreated = NewTopic("reborn", num_partitions=2, replica_assignment=[[4, 5, 6], [5, 4, 6]],
                         config={"min.insync.replicas": "2"})
    futures = admin.create_topics([recreated], request_timeout=ADMIN_TIMEOUT_S)
    assert futures["reborn"].result(timeout=ADMIN_TIMEOUT_S) is None
    shown("reborn")
    new = [(f"k{index}", f"new-record-{index:04d}") for index in range(100)]
    confluent_produce(bootstrap, "reborn", new, acks="all", **{"compression.type": "none"})

    node.start()
    cluster.wait_until_ready(REJOIN_TIMEOUT_S)
    assert node.wait_for_log(r"removing \S+reborn-\d: it holds topic id \w+ of a deleted topic",
                             since_last_start=True), node.log_tail(30)
    assert node.wait_for_log(r"removing \S+gone-0: the metadata places no such partition",
                             since_last_start=True), node.log_tail(30)
    assert not (node.data_dir / "gone-0").exists()

    def caught_up():
        for partition in cluster.metadata(4).partitions("reborn").values():
            assert victim in partition.isr, partition
    eventually(caught_up, REJOIN_TIMEOUT_S, f"broker {victim} back in every ISR of reborn")
    for index in range(2):
        replica = node.data_dir / f"reborn-{index}"
        assert (replica / "partition.metadata").read_text() == (
            cluster.nodes[4].data_dir / f"reborn-{index}" / "partition.metadata").read_text()
        held = b"".join(path.read_bytes() for path in replica.glob("*.log"))
        assert b"old-record-" not in held, f"{replica} still holds the deleted topic's records"
    assert b"new-record-" in b"".join(
        path.read_bytes() for index in range(2)
        for path in (node.data_dir / f"reborn-{index}").glob("*.log"))
    consumed = confluent_consume(cluster.bootstrap(), "reborn", 2, len(new),
                                 start=OFFSET_BEGINNING)
    assert sorted(item[3] for item in consumed) == sorted(value for _, value in new)


def test_topics_tool_places_replicas_by_hand(cluster):
    """kafka-topics.sh's --replica-assignment: --create places each partition's replicas on the
    brokers given, --alter --partitions places the new ones (the existing partitions' entries
    come first and are left as they are), and Kafka's refusals come with Kafka's messages."""
    bootstrap = cluster.bootstrap()

    def topics(*arguments: str, check: bool = True):
        return run_script("flink-topics.sh", "--bootstrap-server", bootstrap, *arguments,
                          check=check)

    created = topics("--create", "--topic", "placed", "--replica-assignment", "5:6, 6:4")
    assert created.stdout.strip() == "Created topic placed.", describe_run(created)
    topics("--alter", "--topic", "placed", "--partitions", "3",
           "--replica-assignment", "4:5,4:5,4:5")

    def placed():
        described = topics("--describe", "--topic", "placed").stdout
        replicas = re.findall(r"\tPartition: (\d+)\tLeader: \d+\tReplicas: ([\d,]+)\t",
                              described)
        assert replicas == [("0", "5,6"), ("1", "6,4"), ("2", "4,5")], described
        assert "PartitionCount: 3\tReplicationFactor: 2\t" in described, described
    eventually(placed, PROPAGATION_TIMEOUT_S, "placed's replicas where they were put")

    for arguments, message in [
        (["--replica-assignment", "4:4"],
         "Partition replica lists may not contain duplicate entries: 4"),
        (["--replica-assignment", "4,5:6"], "Partition 1 has different replication factor: [5, 6]"),
        (["--replica-assignment", "4", "--partitions", "1"],
         "Option \"[replica-assignment]\" can't be used with option \"[partitions]\""),
        (["--replica-assignment", "4:9"], "9"),
    ]:
        refused = topics("--create", "--topic", "misplaced", *arguments, check=False)
        assert refused.returncode == 1, describe_run(refused)
        assert "Error while executing topic command : " in refused.stderr, describe_run(refused)
        assert message in refused.stderr, describe_run(refused)
    assert "misplaced" not in topics("--list").stdout.split()


def test_a_restarted_broker_is_unfenced_once_its_logs_are_recovered(cluster):
    """Kafka's order at start-up: a broker recovers its logs while it asks to stay fenced
    (`want_fence`), is unfenced only then, and opens its listeners after that."""
    topic = "recovered-first"
    create_topic(cluster.bootstrap(), topic)
    wait_for_topic(cluster, topic)
    confluent_produce(cluster.bootstrap(), topic, keyed_messages(300))
    victim = 6
    node = cluster.nodes[victim]
    cluster.kill(victim)  # No clean-shutdown marker: the logs are scanned at the next start.
    cluster.start(victim)
    cluster.wait_until_ready(REJOIN_TIMEOUT_S)

    def stamp(line: str) -> str:
        return line.split(" ", 1)[0]

    own = node.log_text(since_last_start=True).splitlines()
    opened = [line for line in own if re.search(r"partition \S+ is on shard", line)]
    recovered = [line for line in own if "logs recovered; waiting to be unfenced" in line]
    started = [line for line in own if "Flink server started" in line]
    assert opened and recovered and started, "\n".join(own[-30:])
    controller = cluster.nodes[cluster.active_controller()]
    unfenced = controller.wait_for_log(
        rf"^(\S+) .*broker {victim} \(epoch \d+\) is unfenced$", timeout=0)
    assert unfenced, controller.log_tail(30)
    unfenced_at = unfenced[-1]
    assert stamp(opened[-1]) <= stamp(recovered[0]) <= unfenced_at <= stamp(started[0]), (
        opened[-1], recovered[0], unfenced_at, started[0])
