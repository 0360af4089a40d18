"""flink-metadata-quorum.sh against a real single-node broker, with the lines, padding, table layout,
messages and exit codes of Kafka 4's kafka-metadata-quorum.sh, and DescribeQuorum on the wire as
Kafka's KafkaRaftClient answers it. What the tool shows is checked against kafka-python's admin
client, a client that is not ours."""

from __future__ import annotations

import re
import time

from kafka.admin import KafkaAdminClient
from kafka.protocol.admin import DescribeQuorumRequest, DescribeQuorumResponse

from kafka_wire import WireConnection
from support import HOST, create_topic, describe_run, run_script

METADATA_TOPIC = "__cluster_metadata"
UNKNOWN_TOPIC_OR_PARTITION = 3
NODE_ID = 1
# Kafka's Uuid.ZERO_UUID as text: a replica without a directory id.
ZERO_UUID = "AAAAAAAAAAAAAAAAAAAAAA"
STATUS_LABELS = ["ClusterId", "LeaderId", "LeaderEpoch", "HighWatermark", "MaxFollowerLag",
                 "MaxFollowerLagTimeMs", "CurrentVoters", "CurrentObservers"]
REPLICATION_HEADERS = ["NodeId", "DirectoryId", "LogEndOffset", "Lag", "LastFetchTimestamp",
                       "LastCaughtUpTimestamp", "Status"]


def quorum_tool(broker, *args, check=True):
    return run_script("flink-metadata-quorum.sh", "--bootstrap-server", broker.bootstrap, *args,
                      check=check)


def status(broker) -> dict[str, str]:
    """`describe --status` as label -> value, checking Kafka's layout: the eight labels in
    order, each with its colon padded to 24 characters."""
    result = quorum_tool(broker, "describe", "--status")
    lines = result.stdout.splitlines()
    assert result.stdout.endswith("\n") and len(lines) == len(STATUS_LABELS), describe_run(result)
    values = {}
    for label, line in zip(STATUS_LABELS, lines):
        prefix = f"{label}:".ljust(24)
        assert line.startswith(prefix) and line[24] != " ", f"{line!r} is not {prefix!r}+value"
        values[label] = line[24:]
    return values


def metadata_request(topic: str, partitions: list[int]) -> DescribeQuorumRequest:
    topic_type = DescribeQuorumRequest.TopicData
    return DescribeQuorumRequest(topics=[topic_type(
        topic_name=topic,
        partitions=[topic_type.PartitionData(partition_index=index) for index in partitions])])


def test_status_of_a_single_node(broker):
    """--status names this node as the leader and only voter, with its CONTROLLER endpoint,
    no lag and no observers; the cluster id is kafka-python's; the high watermark grows when a
    topic is created, and the epoch stays."""
    admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap)
    try:
        cluster_id = admin.describe_cluster()["cluster_id"]
    finally:
        admin.close()
    before = status(broker)
    assert before["ClusterId"] == cluster_id
    assert before["LeaderId"] == str(NODE_ID)
    assert int(before["LeaderEpoch"]) >= 1
    assert int(before["HighWatermark"]) >= 1
    assert (before["MaxFollowerLag"], before["MaxFollowerLagTimeMs"]) == ("0", "0")
    assert before["CurrentVoters"] == (
        f'[{{"id": {NODE_ID}, "endpoints": ["CONTROLLER://{HOST}:{broker.controller_port}"]}}]')
    assert before["CurrentObservers"] == "[]"

    create_topic(broker, "quorum-grows")
    after = status(broker)
    assert int(after["HighWatermark"]) > int(before["HighWatermark"]), (before, after)
    assert after["LeaderEpoch"] == before["LeaderEpoch"]
    assert {k: v for k, v in after.items() if k != "HighWatermark"} == {
        k: v for k, v in before.items() if k != "HighWatermark"}


def test_replication_table(broker):
    """--replication prints Kafka's table (cells padded to their column, each followed by a tab)
    with one Leader row for this node: no directory id, no lag, the log end offset at the high
    watermark, and fetch times from the broker's clock; --human-readable shows them as ages."""
    started_ms = int(time.time() * 1000)
    result = quorum_tool(broker, "describe", "--replication")
    finished_ms = int(time.time() * 1000)
    header, row, *rest = result.stdout.split("\n")
    assert rest == [""], describe_run(result)
    cells = row.split("\t")
    assert header.split("\t") == [name.ljust(len(cell))
                                  for name, cell in zip(REPLICATION_HEADERS, cells)] + [""]
    node_id, directory_id, log_end_offset, lag, fetched, caught_up, role, last = (
        cell.rstrip() for cell in cells)
    assert (node_id, directory_id, lag, role, last) == (str(NODE_ID), ZERO_UUID, "0", "Leader", "")
    assert 1 <= int(log_end_offset) <= int(status(broker)["HighWatermark"])
    for timestamp in (fetched, caught_up):
        assert started_ms <= int(timestamp) <= finished_ms, describe_run(result)

    result = quorum_tool(broker, "describe", "--replication", "--human-readable")
    header, row, _ = result.stdout.split("\n")
    cells = [cell.rstrip() for cell in row.split("\t")]
    assert cells[6] == "Leader", describe_run(result)
    for age in cells[4:6]:
        assert re.fullmatch(r"\d+ ms ago", age), describe_run(result)


def test_command_line_errors():
    """Kafka's messages for describe without a view or with both, and Flink's refusal of
    --bootstrap-controller (its controllers are not reachable with Kafka's protocol); all exit
    1 without contacting a broker."""
    cases = {
        ("--bootstrap-server", "127.0.0.1:1", "describe"):
            "One of --status or --replication must be specified with describe sub-command\n",
        ("--bootstrap-server", "127.0.0.1:1", "describe", "--status", "--replication"):
            "Only one of --status or --replication should be specified with describe "
            "sub-command\n",
        ("--bootstrap-server", "127.0.0.1:1", "describe", "--status", "--human-readable"):
            "The option --human-readable is only supported along with --replication\n",
    }
    for args, message in cases.items():
        result = run_script("flink-metadata-quorum.sh", *args, check=False)
        assert (result.returncode, result.stdout, result.stderr) == (1, "", message), (
            describe_run(result))
    result = run_script("flink-metadata-quorum.sh", "--bootstrap-controller", "127.0.0.1:1",
                        "describe", "--status", check=False)
    assert result.returncode == 1 and result.stdout == "", describe_run(result)
    assert result.stderr.startswith("--bootstrap-controller is not supported"), describe_run(result)


def test_describe_quorum_on_the_wire(broker):
    """DescribeQuorum as KafkaRaftClient answers it: v0-v2 describe `__cluster_metadata`
    partition 0 (v1 adds the times, v2 the voter's CONTROLLER endpoint and a null message); a
    request naming another topic, another partition or more than the one partition gets
    UNKNOWN_TOPIC_OR_PARTITION on every partition it named and no top-level error."""
    with WireConnection(HOST, broker.port) as connection:
        for version in range(3):
            response = connection.call(metadata_request(METADATA_TOPIC, [0]),
                                       DescribeQuorumResponse, version)
            assert response.error_code == 0
            (topic,) = response.topics
            (partition,) = topic.partitions
            assert (topic.topic_name, partition.partition_index, partition.error_code) == (
                METADATA_TOPIC, 0, 0)
            assert (partition.leader_id, partition.observers) == (NODE_ID, [])
            assert partition.leader_epoch >= 1 and partition.high_watermark >= 1
            (voter,) = partition.current_voters
            assert (voter.replica_id, voter.log_end_offset) == (NODE_ID, partition.high_watermark)
            if version >= 1:
                assert voter.last_fetch_timestamp > 0 and voter.last_caught_up_timestamp > 0
            if version >= 2:
                assert response.error_message is None and partition.error_message is None
                (node,) = response.nodes
                (listener,) = node.listeners
                assert (node.node_id, listener.name, listener.host, listener.port) == (
                    NODE_ID, "CONTROLLER", HOST, broker.controller_port)

        for request, named in [
            (metadata_request("orders", [0]), [("orders", [0])]),
            (metadata_request(METADATA_TOPIC, [1]), [(METADATA_TOPIC, [1])]),
            (metadata_request(METADATA_TOPIC, [0, 2]), [(METADATA_TOPIC, [0, 2])]),
        ]:
            response = connection.call(request, DescribeQuorumResponse, 2)
            assert response.error_code == 0 and response.nodes == []
            answered = [(topic.topic_name, [p.partition_index for p in topic.partitions])
                        for topic in response.topics]
            assert answered == named
            codes = {p.error_code for topic in response.topics for p in topic.partitions}
            assert codes == {UNKNOWN_TOPIC_OR_PARTITION}, response
