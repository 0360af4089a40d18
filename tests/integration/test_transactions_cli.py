"""flink-transactions.sh against a real single-node broker, with the tables, messages and exit
codes of Kafka 4's kafka-transactions.sh. Transactions are opened with confluent-kafka
(librdkafka) and, for a hanging one, on the wire with kafka-python's encoder; what the tool shows
is checked against ListTransactions answered on the wire and against what read_committed
consumers get.

Tables are Kafka's `ToolsUtils.prettyPrintTable`: every cell padded to its column's widest and
followed by a tab, the last one too. Every failure prints one line on stderr and exits 1.
"""

from __future__ import annotations

import time

from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition
from kafka.protocol.admin import ListTransactionsRequest, ListTransactionsResponse
from kafka.protocol.metadata import FindCoordinatorRequest, FindCoordinatorResponse
from kafka.protocol.producer import InitProducerIdRequest, InitProducerIdResponse

from kafka_wire import WireConnection, record_batch
from support import HOST, create_topic, describe_run, run_script

LIST_HEADERS = ["TransactionalId", "Coordinator", "ProducerId", "TransactionState"]
DESCRIBE_HEADERS = ["CoordinatorId", "TransactionalId", "ProducerId", "ProducerEpoch",
                    "TransactionState", "TransactionTimeoutMs", "CurrentTransactionStartTimeMs",
                    "TransactionDurationMs", "TopicPartitions"]
PRODUCERS_HEADERS = ["ProducerId", "ProducerEpoch", "LatestCoordinatorEpoch", "LastSequence",
                     "LastTimestamp", "CurrentTransactionStartOffset"]
HANGING_HEADERS = ["Topic", "Partition", "ProducerId", "ProducerEpoch", "CoordinatorEpoch",
                   "StartOffset", "LastTimestamp", "Duration(min)"]
NODE_ID = "1"
# librdkafka's transaction.timeout.ms, which the coordinator reports back.
TRANSACTION_TIMEOUT_MS = "60000"
DEADLINE_S = 30
ENABLE_DEBUG = ". Enable debug logging for additional detail.\n"
TRANSACTION_KEY = 1


def tool(broker, *args, check=True):
    return run_script("flink-transactions.sh", "--bootstrap-server", broker.bootstrap, *args,
                      check=check)


def kafka_table(headers: list[str], rows: list[list[str]]) -> str:
    """The text Kafka's prettyPrintTable prints for `rows`."""
    widths = [max(len(cell) for cell in column) for column in zip(headers, *rows)]
    return "".join(
        "".join(cell.ljust(width) + "\t" for cell, width in zip(line, widths)) + "\n"
        for line in [headers, *rows])


def table_rows(result, headers: list[str]) -> list[list[str]]:
    """The data rows of a table the tool printed, after checking its layout: the headers, and
    every cell padded to its column's widest and followed by a tab."""
    assert result.returncode == 0 and result.stderr == "", describe_run(result)
    lines = result.stdout.splitlines()
    cells = [line.split("\t") for line in lines]
    assert cells and all(line[-1] == "" for line in cells), describe_run(result)
    rows = [[cell.rstrip() for cell in line[:-1]] for line in cells]
    assert rows[0] == headers, describe_run(result)
    assert result.stdout == kafka_table(headers, rows[1:]), describe_run(result)
    return rows[1:]


def failure(result) -> str:
    """The one line a failing command printed; it printed nothing else and exited 1."""
    assert (result.returncode, result.stdout) == (1, ""), describe_run(result)
    return result.stderr


def now_ms() -> int:
    return int(time.time() * 1000)


def transactional_producer(broker, transactional_id: str) -> Producer:
    producer = Producer({"bootstrap.servers": broker.bootstrap,
                         "transactional.id": transactional_id, "linger.ms": 5})
    producer.init_transactions(DEADLINE_S)
    return producer


def send(producer: Producer, topic: str, records: list[tuple[int, str]]) -> list[int]:
    """Produce (partition, value) records and wait for every acknowledgement: their offsets,
    in send order."""
    offsets: list[int | None] = [None] * len(records)
    errors: list[str] = []

    def delivered(index):
        def callback(error, message):
            if error is not None:
                errors.append(f"{records[index]}: {error}")
            else:
                offsets[index] = message.offset()
        return callback

    for index, (partition, value) in enumerate(records):
        producer.produce(topic, value=value.encode(), partition=partition,
                         on_delivery=delivered(index))
    assert producer.flush(DEADLINE_S) == 0 and not errors, errors
    return offsets


def send_plain(broker, topic: str, records: list[tuple[int, str]]) -> list[int]:
    """Records outside any transaction, from a producer the partition keeps no state for."""
    return send(Producer({"bootstrap.servers": broker.bootstrap}), topic, records)


def listed_on_the_wire(broker) -> dict[str, tuple[int, str]]:
    """ListTransactions v1 on a plain socket: {transactional id: (producer id, state)}."""
    with WireConnection(HOST, broker.port) as connection:
        response = connection.call(
            ListTransactionsRequest(state_filters=[], producer_id_filters=[], duration_filter=-1),
            ListTransactionsResponse, 1)
    assert response.error_code == 0, response
    return {state.transactional_id: (state.producer_id, state.transaction_state)
            for state in response.transaction_states}


class CommittedReader:
    """A read_committed confluent-kafka consumer of one partition from offset 0 (no group)."""

    def __init__(self, broker, topic: str, partition: int):
        self.partition = TopicPartition(topic, partition, 0)
        self.consumer = Consumer({
            "bootstrap.servers": broker.bootstrap, "group.id": "cli-unused",
            "isolation.level": "read_committed", "enable.auto.commit": False,
            "enable.partition.eof": True, "auto.offset.reset": "error"})
        self.consumer.assign([self.partition])

    def __enter__(self) -> "CommittedReader":
        return self

    def __exit__(self, *exc) -> None:
        self.consumer.close()

    def last_stable_offset(self) -> int:
        """The high offset ListOffsets gives at read_committed: the last stable offset."""
        return self.consumer.get_watermark_offsets(self.partition, timeout=DEADLINE_S)[1]

    def read_to_end(self, end: int) -> list[str]:
        """The values before `end`, the last stable offset read_committed consumers see. An end of
        partition reported at an earlier offset (queued before the last stable offset moved) is
        not the end."""
        values = []
        deadline = time.monotonic() + DEADLINE_S
        while time.monotonic() < deadline:
            for message in self.consumer.consume(num_messages=100, timeout=0.5):
                if message.error() is None:
                    values.append(message.value().decode())
                elif message.error().code() == KafkaError._PARTITION_EOF:
                    if message.offset() >= end:
                        return values
                else:
                    raise AssertionError(f"consume error: {message.error()}")
        raise AssertionError(f"no end of partition in {DEADLINE_S}s; read {values}")


def test_open_transaction_is_listed_described_and_aborted(broker):
    """An open confluent-kafka transaction over two partitions: `list` shows it Ongoing with the
    producer id ListTransactions gives, `describe` its two partitions and times, and
    `describe-producers` the offset it starts at, which holds read_committed consumers back.
    `abort --start-offset` writes the ABORT marker: the last stable offset moves past it, the
    consumers get the records around it and not its own, and the producer's transaction is
    closed on that partition; a second abort finds nothing to abort."""
    topic, transactional_id = "cli-orders", "cli-open"
    create_topic(broker, topic, partitions=2)
    assert send_plain(broker, topic, [(0, "before")]) == [0]
    producer = transactional_producer(broker, transactional_id)
    started_ms = now_ms()
    producer.begin_transaction()
    assert send(producer, topic, [(0, "t0"), (0, "t1"), (0, "t2"), (1, "u0")]) == [1, 2, 3, 0]
    sent_ms = now_ms()
    assert send_plain(broker, topic, [(0, "after")]) == [4]

    listed = listed_on_the_wire(broker)
    producer_id, state = listed[transactional_id]
    assert (listed.keys(), state) == ({transactional_id}, "Ongoing")
    assert tool(broker, "list").stdout == kafka_table(
        LIST_HEADERS, [[transactional_id, NODE_ID, str(producer_id), "Ongoing"]])

    before_ms = now_ms()
    [row] = table_rows(tool(broker, "describe", "--transactional-id", transactional_id),
                       DESCRIBE_HEADERS)
    after_ms = now_ms()
    *fixed, start_ms, duration_ms, partitions = row
    assert fixed == [NODE_ID, transactional_id, str(producer_id), "0", "Ongoing",
                     TRANSACTION_TIMEOUT_MS], row
    assert started_ms <= int(start_ms) <= sent_ms, row
    assert before_ms - int(start_ms) <= int(duration_ms) <= after_ms - int(start_ms), row
    assert sorted(partitions.split(",")) == [f"{topic}-0", f"{topic}-1"], row

    [row] = table_rows(tool(broker, "describe-producers", "--topic", topic, "--partition", "0"),
                       PRODUCERS_HEADERS)
    *fixed, last_timestamp, start_offset = row
    assert (fixed, start_offset) == ([str(producer_id), "0", "-1", "2"], "1"), row
    assert started_ms <= int(last_timestamp) <= sent_ms, row
    by_broker = tool(broker, "describe-producers", "--topic", topic, "--partition", "0",
                     "--broker-id", NODE_ID)
    assert by_broker.stdout == tool(broker, "describe-producers", "--topic", topic,
                                    "--partition", "0").stdout

    with CommittedReader(broker, topic, 0) as reader:
        assert reader.last_stable_offset() == 1
        result = tool(broker, "abort", "--topic", topic, "--partition", "0", "--start-offset", "1")
        assert (result.stdout, result.stderr) == ("", ""), describe_run(result)
        # before, t0-t2, after, and the ABORT marker at offset 5.
        assert reader.last_stable_offset() == 6
        assert reader.read_to_end(6) == ["before", "after"]

    [row] = table_rows(tool(broker, "describe-producers", "--topic", topic, "--partition", "0"),
                       PRODUCERS_HEADERS)
    assert (row[:4], row[5]) == ([str(producer_id), "0", "0", "2"], "None"), row
    again = tool(broker, "abort", "--topic", topic, "--partition", "0", "--start-offset", "1",
                 check=False)
    assert failure(again) == (
        f"Could not find any open transactions starting at offset 1 on partition {topic}-0\n")


def test_committed_transaction_is_complete(broker):
    """A committed transaction is listed CompleteCommit next to an open one, each at this
    coordinator with ListTransactions' producer id, sorted by id; a duration filter longer than
    either has been open lists none; `describe` shows the finished one without partitions; an
    unknown id and an unknown topic fail with Kafka's messages."""
    topic = "cli-done"
    create_topic(broker, topic)
    ongoing = transactional_producer(broker, "cli-a-open")
    ongoing.begin_transaction()
    send(ongoing, topic, [(0, "open")])
    done = transactional_producer(broker, "cli-b-done")
    done.begin_transaction()
    send(done, topic, [(0, "done")])
    done.commit_transaction(DEADLINE_S)

    listed = listed_on_the_wire(broker)
    (open_id, _), (done_id, _) = listed["cli-a-open"], listed["cli-b-done"]
    expected = kafka_table(LIST_HEADERS, [["cli-a-open", NODE_ID, str(open_id), "Ongoing"],
                                          ["cli-b-done", NODE_ID, str(done_id), "CompleteCommit"]])
    assert tool(broker, "list").stdout == expected
    assert tool(broker, "list", "--duration-filter", "-1").stdout == expected
    assert tool(broker, "list", "--duration-filter", "600000").stdout == kafka_table(
        LIST_HEADERS, [])

    [row] = table_rows(tool(broker, "describe", "--transactional-id", "cli-b-done"),
                       DESCRIBE_HEADERS)
    *fixed, start_ms, duration_ms, partitions = row
    assert fixed == [NODE_ID, "cli-b-done", str(done_id), "0", "CompleteCommit",
                     TRANSACTION_TIMEOUT_MS], row
    assert partitions == "" and (start_ms == "None") == (duration_ms == "None"), row

    unknown = tool(broker, "describe", "--transactional-id", "cli-unknown", check=False)
    assert failure(unknown) == (
        "Failed to describe transaction state of transactional-id `cli-unknown`: "
        "DescribeTransactions request for transactionalId `cli-unknown` failed because the ID "
        "could not be found" + ENABLE_DEBUG)
    no_topic = tool(broker, "describe-producers", "--topic", "cli-none", "--partition", "0",
                    check=False)
    assert failure(no_topic) == (
        "Failed to describe producers for partition cli-none-0 on leader: Failed to fetch "
        "metadata for partition cli-none-0 because metadata for topic `cli-none` could not be "
        "found" + ENABLE_DEBUG)


def init_transactional_producer(connection: WireConnection, transactional_id: str) -> int:
    """FindCoordinator and InitProducerId for the id, retried while the coordinator loads: the
    producer id (its epoch is 0)."""
    deadline = time.monotonic() + DEADLINE_S
    while True:
        [found] = connection.call(
            FindCoordinatorRequest(key="", key_type=TRANSACTION_KEY,
                                   coordinator_keys=[transactional_id]),
            FindCoordinatorResponse, 4).coordinators
        if found.error_code == 0:
            answer = connection.call(
                InitProducerIdRequest(transactional_id=transactional_id,
                                      transaction_timeout_ms=60_000, producer_id=-1,
                                      producer_epoch=-1),
                InitProducerIdResponse, 4)
            if answer.error_code == 0:
                assert answer.producer_epoch == 0, answer
                return answer.producer_id
        assert time.monotonic() < deadline, f"no producer id for {transactional_id}"
        time.sleep(0.1)


def test_find_hanging_transaction_and_abort_it_by_producer(broker):
    """A transactional batch written without AddPartitionsToTxn is open on its partition while
    its coordinator knows of no transaction: `find-hanging` lists it (by broker, and by topic
    and partition) once it is older than --max-transaction-timeout, and not the ordinary open
    transaction beside it, which its coordinator counts. The default 15 minutes lists nothing.
    `abort` with --producer-id, --producer-epoch and a -1 coordinator epoch ends it."""
    topic = "cli-hanging"
    create_topic(broker, topic, partitions=2)
    ordinary = transactional_producer(broker, "cli-ordinary")
    ordinary.begin_transaction()
    assert send(ordinary, topic, [(0, "ordinary")]) == [0]
    written_ms = now_ms()
    with WireConnection(HOST, broker.port) as connection:
        producer_id = init_transactional_producer(connection, "cli-stray")
        batch = record_batch([(None, b"stray")], (producer_id, 0, 0))
        assert connection.produce({topic: {0: batch}}) == {(topic, 0): (0, 1)}
    time.sleep(0.01)  # Older than a zero timeout.

    by_broker = tool(broker, "find-hanging", "--broker-id", NODE_ID,
                     "--max-transaction-timeout", "0")
    [row] = table_rows(by_broker, HANGING_HEADERS)
    *fixed, last_timestamp, minutes = row
    assert fixed == [topic, "0", str(producer_id), "0", "-1", "1"], row
    assert written_ms <= int(last_timestamp) <= now_ms() and minutes == "0", row
    by_partition = tool(broker, "find-hanging", "--topic", topic, "--partition", "0",
                        "--max-transaction-timeout", "0")
    assert table_rows(by_partition, HANGING_HEADERS) == [row]
    by_topic = tool(broker, "find-hanging", "--topic", topic, "--max-transaction-timeout", "0")
    assert table_rows(by_topic, HANGING_HEADERS) == [row]
    assert tool(broker, "find-hanging", "--broker-id", NODE_ID).stdout == kafka_table(
        HANGING_HEADERS, [])

    aborted = tool(broker, "abort", "--topic", topic, "--partition", "0", "--producer-id",
                   str(producer_id), "--producer-epoch", "0", "--coordinator-epoch", "-1")
    assert (aborted.stdout, aborted.stderr) == ("", ""), describe_run(aborted)
    after = tool(broker, "find-hanging", "--broker-id", NODE_ID, "--max-transaction-timeout", "0")
    assert after.stdout == kafka_table(HANGING_HEADERS, [])
    [stray] = [row for row in table_rows(
        tool(broker, "describe-producers", "--topic", topic, "--partition", "0"),
        PRODUCERS_HEADERS) if row[0] == str(producer_id)]
    assert stray[5] == "None", stray


def test_command_line_errors():
    """Kafka's messages for an abort that names no transaction or only part of one, for
    find-hanging without a scope or with a partition but no topic, and for a missing
    --command-config file, all without contacting a broker; a usage error and an unreachable
    broker fail too, all with exit status 1."""
    bootstrap = ("--bootstrap-server", "127.0.0.1:1")
    abort = ("abort", "--topic", "t", "--partition", "0")
    cases = {
        abort: "The transaction to abort must be identified either with --start-offset (for "
               "brokers on 3.0 or above) or with --producer-id, --producer-epoch, and "
               "--coordinator-epoch (for older brokers)\n",
        (*abort, "--producer-id", "5"): "Missing required argument --producer-epoch\n",
        (*abort, "--producer-id", "5", "--producer-epoch", "0"):
            "Missing required argument --coordinator-epoch\n",
        ("find-hanging",): "The `find-hanging` command requires either --topic or --broker-id "
                           "to limit the scope of the search\n",
        ("find-hanging", "--broker-id", "1", "--partition", "0"):
            "The --partition argument requires --topic to be provided\n",
    }
    for args, message in cases.items():
        result = run_script("flink-transactions.sh", *bootstrap, *args, check=False)
        assert failure(result) == message, describe_run(result)

    missing = run_script("flink-transactions.sh", "--command-config", "/no/such.properties",
                         *bootstrap, "list", check=False)
    assert failure(missing) == ("Failed to load admin client properties: /no/such.properties (No "
                                "such file or directory)" + ENABLE_DEBUG)
    usage = run_script("flink-transactions.sh", *bootstrap, "describe", check=False)
    assert "--transactional-id" in failure(usage)
    unreachable = run_script("flink-transactions.sh", *bootstrap, "list", check=False)
    message = failure(unreachable)
    assert message.startswith("Failed to list transactions: ") and message.endswith(
        ENABLE_DEBUG), describe_run(unreachable)
