"""Kafka transactions (KIP-98) with the Python clients: confluent-kafka (librdkafka), kafka-python
and aiokafka write transactions, consumers read them at both isolation levels.

What is proven, each with exact records, per partition and in offset order:
- a committed transaction is read whole by read_committed consumers, its commit marker taking one
  offset per partition; an aborted one is never returned to read_committed consumers, although
  its records are in the log (read_uncommitted consumers get them); commits and aborts of one
  producer interleave without leaking;
- an open transaction holds read_committed consumers at the last stable offset, records written
  after it by others included, and ListOffsets at read_committed answers that offset; its commit
  releases them;
- consume-transform-produce: the group's offsets committed through send_offsets_to_transaction
  move with the output's commit and not at all with an abort, so every input is in the output
  once;
- a second producer with the same transactional.id fences the first: the zombie's commit fails
  with a fatal fencing error and its open transaction is aborted;
- the broker aborts a transaction that outlives its transaction.timeout.ms by itself.

Records are sent to explicit partitions, so the expected content of each partition is known.
Consumers `assign` every partition from offset 0; confluent-kafka's `Reader` reads to the end of
each partition, which for read_committed is the last stable offset. One broker serves the whole
module; every test uses topics, groups and transactional ids of its own.
"""

from __future__ import annotations

import asyncio
import threading
import time

import pytest
from aiokafka import AIOKafkaProducer
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from kafka import KafkaProducer

import support
from clients import DEADLINE_S
from conformance_clients import aiokafka_consume, kafka_python_consume
from support import by_partition, check_acks, create_topic, layout, spread

PARTITIONS = 3
READ_COMMITTED = "read_committed"
READ_UNCOMMITTED = "read_uncommitted"
# init_transactions finds the transaction coordinator and gets a producer id: seconds at most on
# loopback, so a broker that cannot do either fails the test in half a minute.
INIT_TIMEOUT_S = 30
# Commit, abort and send_offsets_to_transaction.
TRANSACTION_TIMEOUT_S = 30
# A transaction this old (transaction.timeout.ms) is the broker's to abort; the broker looks for
# such every TIMEOUT_CHECK_MS, and the test allows TIMED_OUT_ABORT_S for it.
STALLED_TRANSACTION_MS = 2000
TIMEOUT_CHECK_MS = 1000
TIMED_OUT_ABORT_S = 30
# librdkafka folds Kafka's PRODUCER_FENCED and INVALID_PRODUCER_EPOCH into its own _FENCED.
FENCED_CODES = {KafkaError._FENCED, KafkaError.PRODUCER_FENCED, KafkaError.INVALID_PRODUCER_EPOCH}

# The shipped server.properties already has the transaction log's replication factor and
# min.insync.replicas at 1, as one broker needs.
shared_broker, _report_shared_broker = support.shared_broker_fixtures("transactions", {
    "transaction.abort.timed.out.transaction.cleanup.interval.ms": str(TIMEOUT_CHECK_MS),
})


def new_topic(broker: support.Broker, what: str, partitions: int = PARTITIONS) -> str:
    topic = f"txn-{what}"
    create_topic(broker, topic, partitions=partitions)
    return topic


# ---- confluent-kafka --------------------------------------------------------------------------

def transactional_producer(broker: support.Broker, transactional_id: str, **config) -> Producer:
    """A confluent-kafka producer with `transactional_id`, its transactions initialised."""
    producer = Producer({"bootstrap.servers": broker.bootstrap,
                         "transactional.id": transactional_id, "linger.ms": 5, **config})
    producer.init_transactions(INIT_TIMEOUT_S)
    return producer


def plain_producer(broker: support.Broker) -> Producer:
    """An idempotent producer outside any transaction."""
    return Producer({"bootstrap.servers": broker.bootstrap, "enable.idempotence": True,
                     "linger.ms": 5})


def send(producer: Producer, topic: str, records: list[tuple[int, str]]) -> list[tuple[int, int]]:
    """Produce (partition, value) records (the value is the key too) and wait until every one is
    acknowledged: (partition, offset) of each, in send order."""
    acks: list[tuple[int, int] | None] = [None] * len(records)
    errors: list[str] = []

    def delivered(index):
        def callback(error, message):
            if error is not None:
                errors.append(f"{records[index][1]}: {error}")
            else:
                acks[index] = (message.partition(), message.offset())
        return callback

    for index, (partition, value) in enumerate(records):
        producer.produce(topic, key=value.encode(), value=value.encode(), partition=partition,
                         on_delivery=delivered(index))
    remaining = producer.flush(DEADLINE_S)
    assert remaining == 0 and not errors, (
        f"{remaining} records not delivered in time; delivery errors: {errors[:5]}")
    return acks


def transaction(producer: Producer, topic: str, records: list[tuple[int, str]],
                commit: bool) -> list[tuple[int, int]]:
    """One transaction of `records`, every one acknowledged (so in the log) before it is
    committed or aborted. Returns the acknowledgements."""
    producer.begin_transaction()
    acks = send(producer, topic, records)
    if commit:
        producer.commit_transaction(TRANSACTION_TIMEOUT_S)
    else:
        producer.abort_transaction(TRANSACTION_TIMEOUT_S)
    return acks


class Reader:
    """A confluent-kafka consumer of every partition of `topic` from offset 0 at one isolation
    level: `assign`, no group membership, no commits. It keeps its position between reads."""

    def __init__(self, broker: support.Broker, topic: str, isolation: str,
                 partitions: int = PARTITIONS):
        self.topic = topic
        self.partitions = partitions
        self.consumer = Consumer({
            "bootstrap.servers": broker.bootstrap,
            "group.id": "flink-transactions-unused",  # Required by the library; never joined.
            "isolation.level": isolation,
            "enable.auto.commit": False,
            "enable.partition.eof": True,
            "auto.offset.reset": "error",
        })
        self.consumer.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
        self.at_end: set[int] = set()

    def __enter__(self) -> "Reader":
        return self

    def __exit__(self, *exc) -> None:
        self.consumer.close()

    def read(self, expected: int, timeout: float = DEADLINE_S) -> list[tuple[int, int, str]]:
        """The next records, (partition, offset, value) in the order polled, once at least
        `expected` came and every partition is at its end (librdkafka's partition EOF: the high
        watermark, or the last stable offset at read_committed)."""
        consumed: list[tuple[int, int, str]] = []
        deadline = time.monotonic() + timeout
        while len(consumed) < expected or len(self.at_end) < self.partitions:
            assert time.monotonic() < deadline, (
                f"read {len(consumed)} of {expected} records of {self.topic} in {timeout}s; "
                f"partitions at their end: {sorted(self.at_end)}; read: {consumed[:10]}")
            for message in self.consumer.consume(num_messages=1000, timeout=0.5):
                error = message.error()
                if error is not None:
                    assert error.code() == KafkaError._PARTITION_EOF, f"consume error: {error}"
                    self.at_end.add(message.partition())
                    continue
                self.at_end.discard(message.partition())
                consumed.append((message.partition(), message.offset(), message.value().decode()))
        return consumed

    def watermarks(self, partition: int) -> tuple[int, int]:
        """(low, high) offsets by ListOffsets at this consumer's isolation level: at
        read_committed the high one is the last stable offset."""
        return self.consumer.get_watermark_offsets(TopicPartition(self.topic, partition),
                                                   timeout=DEADLINE_S)


def read(broker: support.Broker, topic: str, isolation: str, expected: int,
         partitions: int = PARTITIONS, timeout: float = DEADLINE_S) -> list[tuple[int, int, str]]:
    """Every record of `topic` a fresh `Reader` gets at `isolation`."""
    with Reader(broker, topic, isolation, partitions) as reader:
        return reader.read(expected, timeout)


def test_committed_transaction(shared_broker):
    """300 records in one committed transaction over three partitions come back whole to a
    read_committed consumer, in send order on each partition, at the acknowledged offsets; the
    commit marker takes the offset after them (high watermark and last stable offset 101)."""
    topic = new_topic(shared_broker, "committed")
    producer = transactional_producer(shared_broker, f"{topic}-txn")
    records = spread("committed", 300)
    acks = transaction(producer, topic, records, commit=True)

    with Reader(shared_broker, topic, READ_COMMITTED) as reader:
        consumed = reader.read(len(records))
        assert by_partition(consumed) == layout(records)
        check_acks(acks, records, consumed)
        assert [reader.watermarks(p) for p in range(PARTITIONS)] == [(0, 101)] * PARTITIONS
    with Reader(shared_broker, topic, READ_UNCOMMITTED) as reader:
        assert by_partition(reader.read(len(records))) == layout(records)
        assert [reader.watermarks(p) for p in range(PARTITIONS)] == [(0, 101)] * PARTITIONS


def test_aborted_transaction(shared_broker):
    """An aborted transaction's records are in the log, where read_uncommitted consumers get
    them, but read_committed consumers skip them and get only what was written after the abort."""
    topic = new_topic(shared_broker, "aborted")
    producer = transactional_producer(shared_broker, f"{topic}-txn")
    aborted, after = spread("aborted", 30), spread("after", 30)
    aborted_acks = transaction(producer, topic, aborted, commit=False)
    send(plain_producer(shared_broker), topic, after)

    committed = read(shared_broker, topic, READ_COMMITTED, len(after))
    assert by_partition(committed) == layout(after)
    uncommitted = read(shared_broker, topic, READ_UNCOMMITTED, len(aborted) + len(after))
    assert by_partition(uncommitted) == layout(aborted + after)
    check_acks(aborted_acks, aborted, uncommitted)


def test_interleaved_commits_and_aborts(shared_broker):
    """One producer commits, aborts, commits, aborts and commits transactions of different sizes
    (some leave a partition out): read_committed consumers get exactly the committed ones, in
    order on each partition; read_uncommitted consumers get all of them."""
    topic = new_topic(shared_broker, "interleaved")
    producer = transactional_producer(shared_broker, f"{topic}-txn")
    plan = [("c1", 12, True), ("a1", 20, False), ("c2", 31, True), ("a2", 7, False),
            ("c3", 15, True)]
    written, committed = [], []
    for tag, count, commit in plan:
        records = spread(tag, count)
        transaction(producer, topic, records, commit)
        written += records
        committed += records if commit else []

    assert by_partition(read(shared_broker, topic, READ_COMMITTED, len(committed))) == (
        layout(committed))
    assert by_partition(read(shared_broker, topic, READ_UNCOMMITTED, len(written))) == (
        layout(written))


def test_open_transaction_holds_last_stable_offset(shared_broker):
    """While a transaction is open, read_committed consumers stop at its first offset (the last
    stable offset, which ListOffsets answers at read_committed) and do not get the records others
    wrote after it; read_uncommitted consumers get everything. Its commit releases the rest."""
    topic = new_topic(shared_broker, "open", partitions=1)
    plain = plain_producer(shared_broker)
    before, pending, after = spread("before", 5, 1), spread("open", 5, 1), spread("after", 5, 1)
    send(plain, topic, before)
    producer = transactional_producer(shared_broker, f"{topic}-txn")
    producer.begin_transaction()
    assert send(producer, topic, pending) == [(0, offset) for offset in range(5, 10)]
    send(plain, topic, after)

    with Reader(shared_broker, topic, READ_COMMITTED, partitions=1) as committed:
        assert committed.watermarks(0) == (0, 5), "the last stable offset is the open one's first"
        assert committed.read(len(before)) == [(0, o, v) for o, (_, v) in enumerate(before)]
        with Reader(shared_broker, topic, READ_UNCOMMITTED, partitions=1) as uncommitted:
            assert uncommitted.watermarks(0) == (0, 15)
            assert uncommitted.read(15) == [(0, o, v) for o, (_, v)
                                            in enumerate(before + pending + after)]

        producer.commit_transaction(TRANSACTION_TIMEOUT_S)
        assert committed.read(len(pending) + len(after)) == [
            (0, o, v) for o, (_, v) in enumerate(pending + after, start=5)]
        # The commit marker went in after the records written while the transaction was open.
        assert committed.watermarks(0) == (0, 16)


def consumer_group_member(broker: support.Broker, group: str, topic: str) -> Consumer:
    """A read_committed member of `group` subscribed to `topic`, committing nothing itself."""
    consumer = Consumer({
        "bootstrap.servers": broker.bootstrap,
        "group.id": group,
        "isolation.level": READ_COMMITTED,
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
    })
    consumer.subscribe([topic])
    return consumer


def transformed(value: str) -> str:
    return f"out:{value}"


def transform_transaction(producer: Producer, consumer: Consumer, sink: str, minimum: int,
                          commit: bool) -> list[tuple[int, str]]:
    """One consume-transform-produce transaction: polls until at least `minimum` records came,
    sends each transformed to `sink` on its own partition number, adds the consumer's positions
    to the transaction (send_offsets_to_transaction) and commits or aborts. Returns the
    (partition, value) records consumed."""
    producer.begin_transaction()
    inputs: list[tuple[int, str]] = []
    deadline = time.monotonic() + DEADLINE_S
    while len(inputs) < minimum:
        assert time.monotonic() < deadline, f"consumed {len(inputs)} of {minimum}: {inputs[:5]}"
        for message in consumer.consume(num_messages=100, timeout=0.5):
            assert message.error() is None, f"consume error: {message.error()}"
            inputs.append((message.partition(), message.value().decode()))
    send(producer, sink, [(partition, transformed(value)) for partition, value in inputs])
    positions = [tp for tp in consumer.position(consumer.assignment()) if tp.offset >= 0]
    producer.send_offsets_to_transaction(positions, consumer.consumer_group_metadata(),
                                         TRANSACTION_TIMEOUT_S)
    if commit:
        producer.commit_transaction(TRANSACTION_TIMEOUT_S)
    else:
        producer.abort_transaction(TRANSACTION_TIMEOUT_S)
    return inputs


def committed_offsets(consumer: Consumer, topic: str) -> dict[int, int]:
    """The group's committed offsets of `topic` by partition (OffsetFetch, waiting out offsets
    still pending in a transaction, as librdkafka's read_committed consumer asks)."""
    partitions = consumer.committed([TopicPartition(topic, p) for p in range(PARTITIONS)],
                                    timeout=TRANSACTION_TIMEOUT_S)
    return {tp.partition: tp.offset for tp in partitions}


def test_consume_transform_produce(shared_broker):
    """A read_committed group member's records are transformed into another topic, one
    transaction per poll with the consumer's positions sent to the transaction: after the
    commits the group's offsets are the input's end. A round that aborts leaves the offsets
    where they were and its output unseen; re-consumed from the committed offsets and committed,
    every input is in the output exactly once, in order on each partition."""
    source, sink = new_topic(shared_broker, "ctp-in"), new_topic(shared_broker, "ctp-out")
    first, more = spread("in", 90), spread("more", 30)
    plain = plain_producer(shared_broker)
    send(plain, source, first)
    producer = transactional_producer(shared_broker, f"{source}-txn")
    consumer = consumer_group_member(shared_broker, f"{source}-group", source)
    try:
        consumed: list[tuple[int, str]] = []
        while len(consumed) < len(first):
            consumed += transform_transaction(producer, consumer, sink, 1, commit=True)
        assert layout(consumed) == layout(first)
        assert committed_offsets(consumer, source) == {p: 30 for p in range(PARTITIONS)}

        send(plain, source, more)
        aborted = transform_transaction(producer, consumer, sink, len(more), commit=False)
        assert layout(aborted) == layout(more)
        assert committed_offsets(consumer, source) == {p: 30 for p in range(PARTITIONS)}, (
            "an aborted transaction moved the group's offsets")

        for partition in range(PARTITIONS):
            consumer.seek(TopicPartition(source, partition, 30))
        again = transform_transaction(producer, consumer, sink, len(more), commit=True)
        assert layout(again) == layout(more)
        assert committed_offsets(consumer, source) == {p: 40 for p in range(PARTITIONS)}
    finally:
        consumer.close()

    outputs = [(partition, transformed(value)) for partition, value in first + more]
    assert by_partition(read(shared_broker, sink, READ_COMMITTED, len(outputs))) == (
        layout(outputs))
    aborted_outputs = [(partition, transformed(value)) for partition, value in more]
    assert by_partition(read(shared_broker, sink, READ_UNCOMMITTED, 150)) == layout(
        [(p, transformed(v)) for p, v in first] + aborted_outputs + aborted_outputs)


def test_zombie_producer_fenced(shared_broker):
    """A second producer with the same transactional.id fences the first: the zombie's open
    transaction is aborted, its next record is refused and its commit fails with a fatal fencing
    error; the new producer's transaction commits. read_committed consumers get the new
    producer's records only; the zombie's acknowledged records stay in the log, aborted."""
    topic = new_topic(shared_broker, "zombie")
    transactional_id = f"{topic}-txn"
    zombie = transactional_producer(shared_broker, transactional_id)
    zombie.begin_transaction()
    zombie_records = spread("zombie", 6)
    send(zombie, topic, zombie_records)

    survivor = transactional_producer(shared_broker, transactional_id)
    try:
        zombie.produce(topic, key=b"zombie-late", value=b"zombie-late", partition=0)
    except KafkaException:
        pass  # The zombie may already know that it is fenced; the commit must fail either way.
    with pytest.raises(KafkaException) as raised:
        zombie.commit_transaction(TRANSACTION_TIMEOUT_S)
    error = raised.value.args[0]
    assert error.code() in FENCED_CODES and error.fatal(), (
        f"the zombie's commit failed with {error} (fatal: {error.fatal()})")

    survivor_records = spread("survivor", 6)
    transaction(survivor, topic, survivor_records, commit=True)
    assert by_partition(read(shared_broker, topic, READ_COMMITTED, len(survivor_records))) == (
        layout(survivor_records))
    assert by_partition(read(shared_broker, topic, READ_UNCOMMITTED, 12)) == layout(
        zombie_records + survivor_records), "the fenced zombie's late record reached the log"


def test_timed_out_transaction_aborted(shared_broker):
    """A producer that begins a transaction (transaction.timeout.ms 2 s), writes to it and then
    stalls has it aborted by the broker: read_committed consumers get past it to the records
    written after it without getting its own, and the stalled producer can no longer commit it."""
    topic = new_topic(shared_broker, "timed-out", partitions=1)
    stalled = transactional_producer(shared_broker, f"{topic}-txn",
                                     **{"transaction.timeout.ms": STALLED_TRANSACTION_MS})
    stalled.begin_transaction()
    pending, after = spread("stalled", 5, 1), spread("after", 5, 1)
    send(stalled, topic, pending)
    send(plain_producer(shared_broker), topic, after)

    committed = read(shared_broker, topic, READ_COMMITTED, len(after), partitions=1,
                     timeout=TIMED_OUT_ABORT_S)
    assert [value for _, _, value in committed] == [value for _, value in after]
    with pytest.raises(KafkaException):
        stalled.commit_transaction(TRANSACTION_TIMEOUT_S)
    uncommitted = read(shared_broker, topic, READ_UNCOMMITTED, 10, partitions=1)
    assert [value for _, _, value in uncommitted] == [value for _, value in pending + after]


# ---- kafka-python and aiokafka ----------------------------------------------------------------

def bounded(what: str, call, timeout: float = TRANSACTION_TIMEOUT_S):
    """`call()`'s result, run in a thread of its own so that a call that waits without a limit
    (kafka-python's commit_transaction and abort_transaction) fails the test after `timeout`."""
    outcome: dict[str, object] = {}

    def run():
        try:
            outcome["result"] = call()
        except BaseException as error:  # Handed to the test's thread.
            outcome["error"] = error

    thread = threading.Thread(target=run, name=what, daemon=True)
    thread.start()
    thread.join(timeout)
    assert not thread.is_alive(), f"{what} did not return within {timeout}s"
    if "error" in outcome:
        raise outcome["error"]
    return outcome.get("result")


# Each client's transactions: commit, abort, commit. The last touches every partition, so a
# consumer that got it got past the aborted one everywhere.
CLIENT_PLAN = [("c1", 30, True), ("a", 15, False), ("c2", 21, True)]


def client_plan_records(client: str) -> tuple[list[tuple[int, str]], list[tuple[int, str]]]:
    """(every record, the committed ones) of CLIENT_PLAN, in write order."""
    written, committed = [], []
    for tag, count, commit in CLIENT_PLAN:
        records = spread(f"{client}-{tag}", count)
        written += records
        committed += records if commit else []
    return written, committed


def consumed_values(consumed) -> list[tuple[int, int, str]]:
    """conformance_clients' Consumed records as (partition, offset, value)."""
    return [(c.partition, c.offset, c.record.value.decode()) for c in consumed]


def check_client_plan(broker: support.Broker, topic: str, client: str,
                      acks: list[tuple[int, int]]) -> None:
    """The topic after CLIENT_PLAN: read_committed consumers (confluent-kafka and `client`'s
    own) get the committed records, read_uncommitted ones all, each at its acknowledged offset."""
    written, committed = client_plan_records(client)
    assert by_partition(read(broker, topic, READ_COMMITTED, len(committed))) == layout(committed)
    uncommitted = read(broker, topic, READ_UNCOMMITTED, len(written))
    assert by_partition(uncommitted) == layout(written)
    check_acks(acks, written, uncommitted)
    own = {"kafka-python": kafka_python_consume, "aiokafka": aiokafka_consume}[client]
    consumed = own(broker.bootstrap, topic, PARTITIONS, len(committed),
                   isolation_level=READ_COMMITTED)
    assert by_partition(consumed_values(consumed)) == layout(committed), (
        f"{client}'s own read_committed consumer")


def test_kafka_python_transactions(shared_broker):
    """kafka-python's transactional producer (init_transactions, begin, commit and abort)
    commits, aborts and commits: read_committed consumers, confluent-kafka's and kafka-python's,
    get exactly the committed records; read_uncommitted ones get all three transactions."""
    topic = new_topic(shared_broker, "kafka-python")
    producer = KafkaProducer(bootstrap_servers=shared_broker.bootstrap,
                             transactional_id=f"{topic}-txn", enable_idempotence=True,
                             linger_ms=5, max_block_ms=INIT_TIMEOUT_S * 1000,
                             request_timeout_ms=30_000)
    acks: list[tuple[int, int]] = []
    try:
        producer.init_transactions()
        for tag, count, commit in CLIENT_PLAN:
            producer.begin_transaction()
            futures = [producer.send(topic, key=value.encode(), value=value.encode(),
                                     partition=partition)
                       for partition, value in spread(f"kafka-python-{tag}", count)]
            producer.flush(timeout=DEADLINE_S)
            acks += [(m.partition, m.offset) for m in (f.get(timeout=10) for f in futures)]
            end = producer.commit_transaction if commit else producer.abort_transaction
            bounded(f"kafka-python {end.__name__}", end)
    finally:
        producer.close(timeout=10)
    check_client_plan(shared_broker, topic, "kafka-python", acks)


def test_aiokafka_transactions(shared_broker):
    """aiokafka's transactional producer commits (`async with producer.transaction()`), aborts
    (an exception leaving the block) and commits again: read_committed consumers, confluent-kafka's
    and aiokafka's, get exactly the committed records; read_uncommitted ones get all three."""
    topic = new_topic(shared_broker, "aiokafka")

    class Abort(Exception):
        """Leaves a transaction block, which aborts the transaction; carries its
        acknowledgements."""

    async def transaction_block(producer, records, commit: bool) -> list[tuple[int, int]]:
        """One transaction of `records`, every one acknowledged before the block ends."""
        async with producer.transaction():
            futures = [await producer.send(topic, key=value.encode(), value=value.encode(),
                                           partition=partition)
                       for partition, value in records]
            metadata = await asyncio.wait_for(asyncio.gather(*futures), DEADLINE_S)
            if not commit:
                raise Abort([(m.partition, m.offset) for m in metadata])
        return [(m.partition, m.offset) for m in metadata]

    async def run() -> list[tuple[int, int]]:
        producer = AIOKafkaProducer(bootstrap_servers=shared_broker.bootstrap,
                                    transactional_id=f"{topic}-txn", enable_idempotence=True,
                                    linger_ms=5, request_timeout_ms=30_000)
        acks: list[tuple[int, int]] = []
        try:
            await asyncio.wait_for(producer.start(), INIT_TIMEOUT_S)
            for tag, count, commit in CLIENT_PLAN:
                records = spread(f"aiokafka-{tag}", count)
                try:
                    acks += await asyncio.wait_for(
                        transaction_block(producer, records, commit), DEADLINE_S)
                except Abort as aborted:
                    acks += aborted.args[0]
        finally:
            await asyncio.wait_for(producer.stop(), DEADLINE_S)
        return acks

    acks = asyncio.run(run())
    check_client_plan(shared_broker, topic, "aiokafka", acks)
