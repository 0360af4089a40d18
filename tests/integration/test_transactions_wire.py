"""The transaction APIs on the wire, one request at a time (kafka-python's protocol classes through
`kafka_wire.WireConnection`), where clients hide the broker's answers behind their own state
machines: what each request gets back, with Kafka's error codes, and what a partition shows
while a transaction is open, committed and aborted (last stable offset, aborted transactions,
READ_COMMITTED offsets, the producers the leader knows).
"""

from __future__ import annotations

import signal
import struct
import time

import pytest
from kafka.protocol.admin import (
    DescribeProducersRequest, DescribeProducersResponse, DescribeTransactionsRequest,
    DescribeTransactionsResponse, ListTransactionsRequest, ListTransactionsResponse,
)
from kafka.protocol.consumer import OffsetFetchRequest, OffsetFetchResponse
from kafka.protocol.metadata import FindCoordinatorRequest, FindCoordinatorResponse
from kafka.protocol.producer import (
    AddOffsetsToTxnRequest, AddOffsetsToTxnResponse, AddPartitionsToTxnRequest,
    AddPartitionsToTxnResponse, EndTxnRequest, EndTxnResponse, InitProducerIdRequest,
    InitProducerIdResponse, TxnOffsetCommitRequest, TxnOffsetCommitResponse,
    WriteTxnMarkersRequest, WriteTxnMarkersResponse,
)

from kafka_wire import WireConnection, decode_records, record_batch
from support import HOST, create_topic

TRANSACTION_KEY = 1
READ_COMMITTED = 1
UNKNOWN_TOPIC_OR_PARTITION = 3
CONCURRENT_TRANSACTIONS = 51
INVALID_PRODUCER_EPOCH = 47
INVALID_TXN_STATE = 48
OPERATION_NOT_ATTEMPTED = 55
PRODUCER_FENCED = 90
UNSTABLE_OFFSET_COMMIT = 88
TRANSACTION_ABORTABLE = 120
TIMEOUT_MS = 60_000


def find_transaction_coordinator(connection: WireConnection, transactional_id: str) -> None:
    """FindCoordinator(TRANSACTION), as clients send it first (its first call creates
    `__transaction_state`), retried until the coordinator has loaded."""
    deadline = time.monotonic() + 30
    while True:
        found = connection.call(
            FindCoordinatorRequest(key="", key_type=TRANSACTION_KEY,
                                   coordinator_keys=[transactional_id]),
            FindCoordinatorResponse, 4).coordinators[0]
        if found.error_code == 0:
            assert found.node_id == 1
            return
        assert time.monotonic() < deadline, f"no transaction coordinator: {found}"
        time.sleep(0.2)


def init_producer_id(connection: WireConnection, transactional_id: str) -> tuple[int, int]:
    """InitProducerId v5 for the id, retried while the coordinator loads or aborts."""
    deadline = time.monotonic() + 30
    while True:
        answer = connection.call(
            InitProducerIdRequest(transactional_id=transactional_id,
                                  transaction_timeout_ms=TIMEOUT_MS, producer_id=-1,
                                  producer_epoch=-1),
            InitProducerIdResponse, 5)
        if answer.error_code == 0:
            return answer.producer_id, answer.producer_epoch
        assert answer.error_code in (14, 15, CONCURRENT_TRANSACTIONS), answer
        assert time.monotonic() < deadline, answer
        time.sleep(0.1)


def add_partitions(connection: WireConnection, transactional_id: str, producer: tuple[int, int],
                   partitions: dict[str, list[int]]) -> dict[tuple[str, int], int]:
    """AddPartitionsToTxn v3 (what clients send); {(topic, partition): error code}."""
    topic_type = AddPartitionsToTxnRequest.AddPartitionsToTxnTopic
    answer = connection.call(
        AddPartitionsToTxnRequest(
            v3_and_below_transactional_id=transactional_id,
            v3_and_below_producer_id=producer[0], v3_and_below_producer_epoch=producer[1],
            v3_and_below_topics=[topic_type(name=name, partitions=indexes)
                                 for name, indexes in partitions.items()]),
        AddPartitionsToTxnResponse, 3)
    return {(topic.name, result.partition_index): result.partition_error_code
            for topic in answer.results_by_topic_v3_and_below
            for result in topic.results_by_partition}


def verify_partitions(connection: WireConnection, transactional_id: str,
                      producer: tuple[int, int], topic: str,
                      partitions: list[int]) -> dict[int, int]:
    """AddPartitionsToTxn v4 with verify_only (what a Kafka 4 partition leader sends);
    {partition: error code}."""
    transaction_type = AddPartitionsToTxnRequest.AddPartitionsToTxnTransaction
    answer = connection.call(
        AddPartitionsToTxnRequest(
            transactions=[transaction_type(
                transactional_id=transactional_id, producer_id=producer[0],
                producer_epoch=producer[1], verify_only=True,
                topics=[transaction_type.AddPartitionsToTxnTopic(name=topic,
                                                                 partitions=partitions)])]),
        AddPartitionsToTxnResponse, 4)
    assert answer.error_code == 0, answer
    [result] = answer.results_by_transaction
    return {partition.partition_index: partition.partition_error_code
            for topic_result in result.topic_results
            for partition in topic_result.results_by_partition}


def end_txn(connection: WireConnection, transactional_id: str, producer: tuple[int, int],
            commit: bool) -> int:
    answer = connection.call(
        EndTxnRequest(transactional_id=transactional_id, producer_id=producer[0],
                      producer_epoch=producer[1], committed=commit),
        EndTxnResponse, 4)
    return answer.error_code


def transactional_produce(connection: WireConnection, topic: str, producer: tuple[int, int],
                          sequence: int, values: list[bytes]) -> int:
    """One transactional batch to partition 0; returns its base offset."""
    batch = record_batch([(None, value) for value in values], (*producer, sequence))
    [(code, base_offset)] = connection.produce({topic: {0: batch}}).values()
    assert code == 0, code
    return base_offset


def committed_view(connection: WireConnection, topic: str, offset: int = 0):
    """A READ_COMMITTED fetch of partition 0: (values, last stable offset, high watermark,
    aborted transactions as (producer id, first offset))."""
    answer = connection.fetch_answers(topic, {0: offset}, isolation_level=READ_COMMITTED)[0]
    assert answer.error_code == 0, answer
    aborted = [(txn.producer_id, txn.first_offset) for txn in answer.aborted_transactions or []]
    values = [value for _, _, value in decode_records(answer.records)]
    return values, answer.last_stable_offset, answer.high_watermark, aborted


def test_transaction_lifecycle_on_the_wire(broker):
    """A transaction from InitProducerId to commit and abort: AddPartitionsToTxn starts it
    (an unknown topic fails the whole request as in Kafka), its records stay below the last
    stable offset for READ_COMMITTED reads and ListOffsets until EndTxn commits them,
    DescribeProducers, ListTransactions and DescribeTransactions show it open, a verify-only
    AddPartitionsToTxn v4 names the partitions that are in it, and an aborted transaction is
    listed among the aborted transactions of a READ_COMMITTED fetch."""
    topic, transactional_id = "txn-wire", "txn-wire-id"
    create_topic(broker, topic, partitions=2)
    with WireConnection(HOST, broker.port) as connection:
        find_transaction_coordinator(connection, transactional_id)
        producer = init_producer_id(connection, transactional_id)
        assert producer[1] == 0

        assert add_partitions(connection, transactional_id, producer,
                              {topic: [0], "no-such-topic": [0]}) == {
            (topic, 0): OPERATION_NOT_ATTEMPTED, ("no-such-topic", 0): UNKNOWN_TOPIC_OR_PARTITION}
        assert add_partitions(connection, transactional_id, producer, {topic: [0]}) == {
            (topic, 0): 0}
        [(code, before)] = connection.produce(
            {topic: {0: record_batch([(None, b"plain")])}}).values()
        assert code == 0 and before == 0
        first = transactional_produce(connection, topic, producer, 0, [b"t1", b"t2"])
        assert first == 1

        values, lso, high_watermark, aborted = committed_view(connection, topic)
        assert (values, lso, high_watermark, aborted) == ([b"plain"], 1, 3, [])
        assert connection.list_offsets(topic, [0], isolation_level=READ_COMMITTED) == {0: (0, 1)}
        assert connection.list_offsets(topic, [0]) == {0: (0, 3)}
        assert verify_partitions(connection, transactional_id, producer, topic, [0, 1]) == {
            0: 0, 1: INVALID_TXN_STATE}

        producers = connection.call(
            DescribeProducersRequest(topics=[DescribeProducersRequest.TopicRequest(
                name=topic, partition_indexes=[0])]),
            DescribeProducersResponse, 0)
        [partition] = producers.topics[0].partitions
        assert partition.error_code == 0
        assert [(p.producer_id, p.producer_epoch, p.last_sequence, p.current_txn_start_offset)
                for p in partition.active_producers] == [(producer[0], producer[1], 1, 1)]
        listed = connection.call(ListTransactionsRequest(state_filters=["Ongoing"],
                                                         producer_id_filters=[],
                                                         duration_filter=-1),
                                 ListTransactionsResponse, 1)
        assert [(t.transactional_id, t.producer_id, t.transaction_state)
                for t in listed.transaction_states] == [
            (transactional_id, producer[0], "Ongoing")]

        def listed_ids(pattern: str):
            """ListTransactions v2 with an id pattern (KIP-1152): (error, ids)."""
            answer = connection.call(
                ListTransactionsRequest(state_filters=[], producer_id_filters=[],
                                        duration_filter=-1, transactional_id_pattern=pattern),
                ListTransactionsResponse, 2)
            return answer.error_code, [t.transactional_id for t in answer.transaction_states]

        assert listed_ids(transactional_id[:3] + ".*") == (0, [transactional_id])
        # The whole id must match, as Kafka's Matcher.matches() does.
        assert listed_ids(transactional_id[:3]) == (0, [])
        assert listed_ids("(unclosed") == (INVALID_REGULAR_EXPRESSION, [])
        [described] = connection.call(
            DescribeTransactionsRequest(transactional_ids=[transactional_id]),
            DescribeTransactionsResponse, 0).transaction_states
        assert (described.error_code, described.transaction_state, described.producer_id,
                described.transaction_timeout_ms) == (0, "Ongoing", producer[0], TIMEOUT_MS)
        assert [(t.topic, list(t.partitions)) for t in described.topics] == [(topic, [0])]

        assert end_txn(connection, transactional_id, producer, commit=True) == 0
        values, lso, high_watermark, aborted = committed_view(connection, topic)
        # The COMMIT marker takes offset 3; consumers never see it as a record.
        assert (values, lso, high_watermark, aborted) == ([b"plain", b"t1", b"t2"], 4, 4, [])
        assert end_txn(connection, transactional_id, producer, commit=True) == 0, (
            "a retried EndTxn of a finished commit is answered")

        assert add_partitions(connection, transactional_id, producer, {topic: [0]}) == {
            (topic, 0): 0}
        aborted_first = transactional_produce(connection, topic, producer, 2, [b"a1"])
        assert end_txn(connection, transactional_id, producer, commit=False) == 0
        values, lso, high_watermark, aborted = committed_view(connection, topic, aborted_first)
        # The records come back; the consumer drops them by the aborted transactions listed.
        assert values == [b"a1"]
        assert aborted == [(producer[0], aborted_first)]
        assert (lso, high_watermark) == (aborted_first + 2, aborted_first + 2)
        [(_, _, uncommitted)] = connection.fetch(topic, {0: aborted_first}).values()
        assert [value for _, _, value in uncommitted] == [b"a1"]


def test_transactional_offsets_and_fencing_on_the_wire(broker):
    """AddOffsetsToTxn and TxnOffsetCommit: offsets committed in a transaction count only once
    it commits (an aborted one leaves the group's offset as it was); meanwhile a reader asking
    for stable offsets gets UNSTABLE_OFFSET_COMMIT. A second InitProducerId
    for the same id bumps the epoch and fences the first producer: its EndTxn gets
    PRODUCER_FENCED (INVALID_PRODUCER_EPOCH before v2), its batches INVALID_PRODUCER_EPOCH. A
    WriteTxnMarkers of an older epoch is refused by the partition."""
    topic, group, transactional_id = "txn-offsets", "txn-offsets-group", "txn-offsets-id"
    create_topic(broker, topic)
    with WireConnection(HOST, broker.port) as connection:
        find_transaction_coordinator(connection, transactional_id)
        producer = init_producer_id(connection, transactional_id)

        def add_offsets() -> int:
            return connection.call(
                AddOffsetsToTxnRequest(transactional_id=transactional_id,
                                       producer_id=producer[0], producer_epoch=producer[1],
                                       group_id=group),
                AddOffsetsToTxnResponse, 3).error_code

        def commit_offset(offset: int) -> int:
            topic_type = TxnOffsetCommitRequest.TxnOffsetCommitRequestTopic
            answer = connection.call(
                TxnOffsetCommitRequest(
                    transactional_id=transactional_id, group_id=group,
                    producer_id=producer[0], producer_epoch=producer[1], generation_id=-1,
                    member_id="", group_instance_id=None,
                    topics=[topic_type(name=topic, partitions=[
                        topic_type.TxnOffsetCommitRequestPartition(
                            partition_index=0, committed_offset=offset,
                            committed_leader_epoch=-1, committed_metadata="")])]),
                TxnOffsetCommitResponse, 3)
            [code] = [p.error_code for t in answer.topics for p in t.partitions]
            return code

        def group_offset(require_stable: bool = False) -> int:
            """The group's offset of partition 0, or the partition's error code if any."""
            fetch_group = OffsetFetchRequest.OffsetFetchRequestGroup
            answer = connection.call(OffsetFetchRequest(
                require_stable=require_stable, groups=[fetch_group(
                    group_id=group, member_id=None, member_epoch=-1,
                    topics=[fetch_group.OffsetFetchRequestTopics(name=topic,
                                                                 partition_indexes=[0])])]),
                OffsetFetchResponse, 9)
            [(offset, error)] = [(p.committed_offset, p.error_code) for g in answer.groups
                                 for t in g.topics for p in t.partitions]
            return error or offset

        assert add_offsets() == 0
        assert commit_offset(5) == 0
        assert group_offset() == -1, "not before the transaction commits"
        assert group_offset(require_stable=True) == UNSTABLE_OFFSET_COMMIT
        assert end_txn(connection, transactional_id, producer, commit=True) == 0
        assert group_offset() == group_offset(require_stable=True) == 5
        assert add_offsets() == 0
        assert commit_offset(9) == 0
        assert end_txn(connection, transactional_id, producer, commit=False) == 0
        assert group_offset() == 5, "an aborted transaction's offsets never count"

        assert add_partitions(connection, transactional_id, producer, {topic: [0]}) == {
            (topic, 0): 0}
        transactional_produce(connection, topic, producer, 0, [b"zombie"])
        with WireConnection(HOST, broker.port) as second:
            newer = init_producer_id(second, transactional_id)
        assert newer == (producer[0], producer[1] + 2), (
            "the open transaction is aborted under one new epoch, then the next one is handed out")
        assert end_txn(connection, transactional_id, producer, commit=True) == PRODUCER_FENCED
        old = connection.call(
            EndTxnRequest(transactional_id=transactional_id, producer_id=producer[0],
                          producer_epoch=producer[1], committed=True), EndTxnResponse, 1)
        assert old.error_code == INVALID_PRODUCER_EPOCH
        batch = record_batch([(None, b"late")], (*producer, 1))
        assert connection.produce({topic: {0: batch}}) == {(topic, 0): (INVALID_PRODUCER_EPOCH, -1)}
        values, lso, high_watermark, aborted = committed_view(connection, topic)
        assert values == [b"zombie"] and lso == high_watermark
        assert aborted == [(producer[0], 0)]

        marker_type = WriteTxnMarkersRequest.WritableTxnMarker
        stale = connection.call(WriteTxnMarkersRequest(markers=[marker_type(
            producer_id=producer[0], producer_epoch=producer[1], transaction_result=True,
            coordinator_epoch=0,
            topics=[marker_type.WritableTxnMarkerTopic(name=topic, partition_indexes=[0])])]),
            WriteTxnMarkersResponse, 1)
        assert [p.error_code for m in stale.markers for t in m.topics for p in t.partitions] == [
            INVALID_PRODUCER_EPOCH]


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM], ids=["crash", "clean"])
def test_transactions_survive_a_restart(broker, sig):
    """After a SIGKILL, recovery rebuilds a partition's transactions from its log (after a
    SIGTERM, from the producer snapshot written at shutdown): the aborted
    transaction is still listed for READ_COMMITTED reads, the open one still holds the last
    stable offset, and the coordinator, reloaded from `__transaction_state`, still knows the
    open transaction, which its producer then commits. The segment's `.txnindex` holds the
    aborted transaction as Kafka writes it."""
    topic, transactional_id = "txn-crash", "txn-crash-id"
    create_topic(broker, topic)
    with WireConnection(HOST, broker.port) as connection:
        find_transaction_coordinator(connection, transactional_id)
        producer = init_producer_id(connection, transactional_id)
        for sequence, (values, commit) in enumerate([([b"c1", b"c2"], True), ([b"a1"], False)]):
            assert add_partitions(connection, transactional_id, producer, {topic: [0]}) == {
                (topic, 0): 0}
            transactional_produce(connection, topic, producer, 2 * sequence, values)
            assert end_txn(connection, transactional_id, producer, commit=commit) == 0
        assert add_partitions(connection, transactional_id, producer, {topic: [0]}) == {
            (topic, 0): 0}
        open_first = transactional_produce(connection, topic, producer, 3, [b"o1"])
        before = committed_view(connection, topic)
    assert before == ([b"c1", b"c2", b"a1"], open_first, open_first + 1, [(producer[0], 3)])

    broker.restart(sig)
    with WireConnection(HOST, broker.port) as connection:
        find_transaction_coordinator(connection, transactional_id)
        assert committed_view(connection, topic) == before
        assert end_txn(connection, transactional_id, producer, commit=True) == 0
        values, lso, high_watermark, aborted = committed_view(connection, topic)
        assert values == [b"c1", b"c2", b"a1", b"o1"]
        assert lso == high_watermark == open_first + 2
        assert aborted == [(producer[0], 3)]
    # The aborted transaction is in the segment's .txnindex, in Kafka's layout (version 0,
    # producer id, first offset, marker offset, last stable offset): written at shutdown, or
    # rebuilt by recovery after the SIGKILL.
    [index] = list((broker.data_dir / f"{topic}-0").glob("*.txnindex"))
    assert index.read_bytes() == struct.pack(">hqqqq", 0, producer[0], 3, 4, 5)


INVALID_TRANSACTION_TIMEOUT = 50
INVALID_REGULAR_EXPRESSION = 128
TRANSACTIONAL_ID_NOT_FOUND = 105


def test_transaction_timeouts_and_expiry(start_broker):
    """InitProducerId with a `transaction.timeout.ms` above the broker's
    `transaction.max.timeout.ms` gets INVALID_TRANSACTION_TIMEOUT; a transactional id idle for
    `transactional.id.expiration.ms` is forgotten (DescribeTransactions: TRANSACTIONAL_ID_NOT_FOUND),
    one with a transaction open is not."""
    broker = start_broker({"transaction.max.timeout.ms": "120000",
                           "transactional.id.expiration.ms": "1000",
                           "transaction.remove.expired.transaction.cleanup.interval.ms": "200",
                           "transaction.abort.timed.out.transaction.cleanup.interval.ms": "200"})
    topic = "txn-expiry"
    create_topic(broker, topic)
    with WireConnection(HOST, broker.port) as connection:
        find_transaction_coordinator(connection, "idle-id")
        too_long = connection.call(
            InitProducerIdRequest(transactional_id="idle-id", transaction_timeout_ms=120_001,
                                  producer_id=-1, producer_epoch=-1),
            InitProducerIdResponse, 5)
        assert too_long.error_code == INVALID_TRANSACTION_TIMEOUT
        init_producer_id(connection, "idle-id")
        busy = init_producer_id(connection, "busy-id")
        assert add_partitions(connection, "busy-id", busy, {topic: [0]}) == {(topic, 0): 0}

        def state(transactional_id: str):
            [described] = connection.call(
                DescribeTransactionsRequest(transactional_ids=[transactional_id]),
                DescribeTransactionsResponse, 0).transaction_states
            return described.error_code, described.transaction_state

        assert state("idle-id") == (0, "Empty")
        deadline = time.monotonic() + 20
        while state("idle-id")[0] != TRANSACTIONAL_ID_NOT_FOUND:
            assert time.monotonic() < deadline, "the idle transactional id was never forgotten"
            time.sleep(0.2)
        assert state("busy-id") == (0, "Ongoing")


def test_leader_verifies_transactional_batches(broker):
    """KIP-890 part 1: a version 1 client's transactional batch (Produce before v12, naming its
    transactional id) for a partition its coordinator has not added to the open transaction is
    refused with INVALID_TXN_STATE (TRANSACTION_ABORTABLE from Produce v11) and not written; once AddPartitionsToTxn added it, the batch
    is appended; after the commit, a late batch of the ended transaction is refused again, so
    it cannot open a transaction no coordinator would ever end."""
    topic, transactional_id = "txn-verified", "txn-verified-id"
    create_topic(broker, topic)
    with WireConnection(HOST, broker.port) as connection:
        find_transaction_coordinator(connection, transactional_id)
        producer = init_producer_id(connection, transactional_id)

        def produce(sequence: int, value: bytes):
            batch = record_batch([(None, value)], (*producer, sequence))
            [(code, _)] = connection.produce({topic: {0: batch}},
                                             transactional_id=transactional_id).values()
            return code

        assert produce(0, b"unadded") == INVALID_TXN_STATE
        # From Produce v11 (KIP-890) the client is told it may abort and go on.
        [answer] = connection.produce_answers(
            {topic: {0: record_batch([(None, b"unadded")], (*producer, 0))}}, version=11,
            transactional_id=transactional_id).values()
        assert answer.error_code == TRANSACTION_ABORTABLE
        assert add_partitions(connection, transactional_id, producer, {topic: [0]}) == {
            (topic, 0): 0}
        assert produce(0, b"added") == 0
        assert end_txn(connection, transactional_id, producer, commit=True) == 0
        assert produce(1, b"late") == INVALID_TXN_STATE
        values, lso, high_watermark, aborted = committed_view(connection, topic)
        assert (values, lso, high_watermark, aborted) == ([b"added"], 2, 2, [])
