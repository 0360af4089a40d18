"""Kafka transactions with the official Apache Kafka Java client, kafka-clients 3.9.0 and 4.3.0:
commits and aborts read at both isolation levels, consume-transform-produce with
sendOffsetsToTransaction and the consumer's group metadata (KIP-447), and a zombie producer fenced
by a newer one with the same transactional.id, each checked against what Apache Kafka answers.

tests/java/JavaClient.java's txn, txn-ctp and txn-fence scenarios run one per JVM
(java_clients.py) and report what the producers and consumers saw, errors as exception classes;
the checks are here. Records go to explicit partitions (JavaClient's sendSpread, support.spread
here), so the expected content of each partition is known exactly.

One broker serves the whole module; every test uses topics, groups and transactional ids of its
own.
"""

from __future__ import annotations

import support
from java_clients import topic_name, versions
from support import by_partition, check_acks, create_topic, layout, spread

PARTITIONS = 3
# What a fenced transactional producer throws: ProducerFencedException when the coordinator
# answered PRODUCER_FENCED, InvalidProducerEpochException when a partition leader refused its
# records with INVALID_PRODUCER_EPOCH (KIP-588).
FENCED = {"ProducerFencedException", "InvalidProducerEpochException"}

shared_broker, _report_shared_broker = support.shared_broker_fixtures("java-transactions")


def consumed(rows: list[list]) -> list[tuple[int, int, str]]:
    """JavaClient's consumeAll records ([partition, offset, key, value, headers, timestamp]) as
    (partition, offset, value)."""
    return [(partition, offset, value) for partition, offset, _, value, _, _ in rows]


def inputs(rows: list[list]) -> list[tuple[int, str]]:
    """What a consume-transform-produce round consumed ([partition, offset, value] each) as the
    (partition, value) records `layout` takes."""
    return [(partition, value) for partition, _, value in rows]


def transformed(records: list[tuple[int, str]]) -> list[tuple[int, str]]:
    """What JavaClient's consume-transform-produce sends for `records`: out:<value>, same
    partition number."""
    return [(partition, f"out:{value}") for partition, value in records]


def by_partition_number(offsets: dict[str, int]) -> dict[int, int]:
    return {int(partition): offset for partition, offset in offsets.items()}


@versions()
def test_commit_abort_commit(java, shared_broker):
    """A transactional producer commits 30 records, aborts 15 (each acknowledged first, so in the
    log) and commits 30 more: a read_committed consumer gets exactly the 60 committed, in order
    on each partition; a read_uncommitted one gets all 75 at their acknowledged offsets; the end
    offsets at both isolation levels count the three control records (25 records and 3 markers
    on each partition)."""
    topic = topic_name(java, "txn")
    create_topic(shared_broker, topic, partitions=PARTITIONS)
    output = java.run("txn", {"bootstrap": shared_broker.bootstrap, "topic": topic,
                              "transactional.id": f"{topic}-txn", "partitions": PARTITIONS,
                              "commit": 30, "abort": 15})
    first, aborted, second = spread("c1", 30), spread("a", 15), spread("c2", 30)

    assert by_partition(consumed(output["read_committed"])) == layout(first + second)
    uncommitted = consumed(output["read_uncommitted"])
    assert by_partition(uncommitted) == layout(first + aborted + second)
    acks = output["acks"]
    check_acks([tuple(ack) for ack in acks["c1"] + acks["a"] + acks["c2"]],
               first + aborted + second, uncommitted)
    ends = {p: 28 for p in range(PARTITIONS)}
    assert by_partition_number(output["end_read_committed"]) == ends, output["end_read_committed"]
    assert by_partition_number(output["end_read_uncommitted"]) == ends, (
        output["end_read_uncommitted"])


@versions()
def test_consume_transform_produce(java, shared_broker):
    """A read_committed group member's records go, transformed, to another topic in one
    transaction per poll with sendOffsetsToTransaction(positions, groupMetadata()): after the
    commits the group's offsets are the input's end; an aborted round leaves them where they
    were; re-consumed from there and committed, every input is in the output exactly once, in
    order on each partition, and the aborted round's output is only in the log."""
    source, sink = topic_name(java, "ctp-in"), topic_name(java, "ctp-out")
    create_topic(shared_broker, source, partitions=PARTITIONS)
    create_topic(shared_broker, sink, partitions=PARTITIONS)
    output = java.run("txn-ctp", {
        "bootstrap": shared_broker.bootstrap, "input": source, "output": sink,
        "group": f"{source}-group", "transactional.id": f"{source}-txn",
        "partitions": PARTITIONS, "count": 90, "extra": 30})
    first, more = spread("in", 90), spread("more", 30)

    assert layout(inputs(output["consumed"])) == layout(first)
    assert output["transactions"] >= 1
    assert by_partition_number(output["committed"]) == {p: 30 for p in range(PARTITIONS)}
    assert layout(inputs(output["aborted"])) == layout(more)
    assert by_partition_number(output["committed_after_abort"]) == (
        {p: 30 for p in range(PARTITIONS)}), "an aborted transaction moved the group's offsets"
    assert layout(inputs(output["again"])) == layout(more)
    assert by_partition_number(output["committed_final"]) == {p: 40 for p in range(PARTITIONS)}
    assert output["committed_final"] == output["input_end"]

    assert by_partition(consumed(output["read_committed"])) == layout(transformed(first + more))
    assert by_partition(consumed(output["read_uncommitted"])) == layout(
        transformed(first) + transformed(more) + transformed(more))


@versions()
def test_zombie_fenced(java, shared_broker):
    """A second producer with the same transactional.id fences the first: the zombie's late
    record is refused, its commitTransaction and then abortTransaction throw
    ProducerFencedException or InvalidProducerEpochException, and its open transaction is
    aborted. The survivor's transaction commits: read_committed consumers get its records only,
    read_uncommitted ones the zombie's acknowledged records too, never the late one."""
    topic = topic_name(java, "fence")
    create_topic(shared_broker, topic, partitions=PARTITIONS)
    output = java.run("txn-fence", {"bootstrap": shared_broker.bootstrap, "topic": topic,
                                    "transactional.id": f"{topic}-txn",
                                    "partitions": PARTITIONS, "count": 6})
    zombie, survivor = spread("zombie", 6), spread("survivor", 6)

    assert "errors" in output["late_send"], (
        f"the fenced zombie's record was acknowledged: {output['late_send']}")
    commit = output["zombie_commit"]
    assert FENCED & set(commit.get("errors", [])), f"the zombie's commit: {commit}"
    abort = output["zombie_abort"]
    assert FENCED & set(abort.get("errors", [])), f"the zombie's abort: {abort}"

    assert by_partition(consumed(output["read_committed"])) == layout(survivor)
    uncommitted = consumed(output["read_uncommitted"])
    assert by_partition(uncommitted) == layout(zombie + survivor), (
        "the zombie's late record reached the log, or its acknowledged ones did not")
    check_acks([tuple(ack) for ack in output["zombie_acks"] + output["survivor_acks"]],
               zombie + survivor, uncommitted)


@versions()
def test_transaction_protocol_version(java, start_broker):
    """The broker finalizes `transaction.version` 2: kafka-clients 4.3 runs transactions
    version 2 (KIP-890 part 2: no AddPartitionsToTxn or AddOffsetsToTxn, the partitions join
    through Produce v12 and TxnOffsetCommit v5, every EndTxn bumps the epoch), 3.9 version 1,
    and both commit and abort the same records correctly (the checks of the other tests)."""
    from test_metrics import scrape, total

    port = support.free_port()
    broker = start_broker({"metrics.port": port})
    topic = topic_name(java, "protocol")
    create_topic(broker, topic, partitions=PARTITIONS)
    before = scrape(port)["flink_requests"]
    output = java.run("txn", {"bootstrap": broker.bootstrap, "topic": topic,
                              "transactional.id": f"{topic}-txn", "partitions": PARTITIONS,
                              "commit": 30, "abort": 15})
    after = scrape(port)["flink_requests"]

    def sent(api: str) -> float:
        return total(after, api=api) - total(before, api=api)

    assert by_partition(consumed(output["read_committed"])) == layout(
        spread("c1", 30) + spread("c2", 30))
    assert sent("EndTxn") >= 3 and sent("Produce") > 0
    if java.version.startswith("3."):
        assert sent("AddPartitionsToTxn") >= 3, "version 1 adds partitions explicitly"
    else:
        assert sent("AddPartitionsToTxn") == 0, "version 2 adds partitions through Produce"



@versions()
def test_timed_out_transaction(java, start_broker):
    """A transaction left open past its transaction.timeout.ms is aborted by the coordinator
    under a bumped epoch, as Kafka does: the producer's late record is refused
    (InvalidProducerEpochException, which the client takes as abortable) and so is its commit.
    With transactions version 2 (kafka-clients 4.3) the producer then aborts and goes on: its
    next transaction commits. With version 1 (3.9) the bumped epoch fences it, as in Kafka
    (ProducerFencedException on abort). read_committed consumers never see the timed-out
    records."""
    broker = start_broker({"transaction.abort.timed.out.transaction.cleanup.interval.ms": "200"})
    topic = topic_name(java, "timeout")
    create_topic(broker, topic, partitions=PARTITIONS)
    output = java.run("txn-timeout", {"bootstrap": broker.bootstrap, "topic": topic,
                                      "transactional.id": f"{topic}-txn",
                                      "partitions": PARTITIONS, "count": 6,
                                      "timeout_ms": 2000, "wait_ms": 4000})
    timed_out, following = spread("timed-out", 6), spread("next", 6)

    assert "InvalidProducerEpochException" in output["late_send"].get("errors", []), output
    assert "InvalidProducerEpochException" in output["commit"].get("errors", []), output
    committed = consumed(output["read_committed"])
    if java.version.startswith("4."):
        assert output["abort"] == {"result": "aborted"}, output
        assert "result" in output["next"], output
        assert by_partition(committed) == layout(following)
        # Each partition: the timed-out records, the coordinator's ABORT marker, then these.
        assert all(offset >= 3 for _, offset in output["next"]["result"])
    else:
        assert "ProducerFencedException" in output["abort"].get("errors", []), output
        assert committed == []
    assert not any(value in {v for _, v in timed_out} for _, _, value in committed)
