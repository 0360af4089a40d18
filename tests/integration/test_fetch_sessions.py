"""Fetch sessions (KIP-227) on the wire, as Kafka's Java consumer and replica fetchers use them: a
full fetch at epoch 0 opens a session, an incremental fetch names only the partitions whose fetch
position changed (or that are forgotten) and is answered with only the partitions that have
something new; a wrong epoch or an unknown session is refused with Kafka's errors."""

from __future__ import annotations

from confluent_kafka import Producer
from kafka.protocol.consumer import FetchRequest, FetchResponse

from kafka_wire import WireConnection, decode_records
from support import HOST, create_topic, free_port
from test_metrics import scrape, total

FETCH_SESSION_ID_NOT_FOUND = 70
INVALID_FETCH_SESSION_EPOCH = 71
VERSION = 12  # Topics by name, as Kafka 3.x consumers send until they know topic ids.
TOPIC = "sessions"


def produce(broker, partition: int, values: list[str]) -> None:
    errors = []
    producer = Producer({"bootstrap.servers": broker.bootstrap, "linger.ms": 0})
    for value in values:
        producer.produce(TOPIC, value=value.encode(), partition=partition,
                         on_delivery=lambda error, _: errors.append(error))
    assert producer.flush(30) == 0
    assert errors == [None] * len(values), errors


class Session:
    """A fetching client's side of one session."""

    def __init__(self, connection: WireConnection):
        self.connection = connection
        self.id = 0
        self.epoch = 0

    def fetch(self, changed: dict[int, int], forgotten: list[int] = (), max_wait_ms: int = 0,
              epoch: int | None = None, session_id: int | None = None):
        """One fetch naming `changed` ({partition: fetch offset}) and `forgotten`; returns the
        response and {partition: (high watermark, values)} of what it answered."""
        request = FetchRequest(
            replica_id=-1, max_wait_ms=max_wait_ms, min_bytes=1, max_bytes=1 << 20,
            isolation_level=0,
            session_id=self.id if session_id is None else session_id,
            session_epoch=self.epoch if epoch is None else epoch,
            topics=[FetchRequest.FetchTopic(topic=TOPIC, partitions=[
                FetchRequest.FetchTopic.FetchPartition(
                    partition=index, current_leader_epoch=-1, fetch_offset=offset,
                    last_fetched_epoch=-1, log_start_offset=-1, partition_max_bytes=1 << 20)
                for index, offset in changed.items()])] if changed else [],
            forgotten_topics_data=[FetchRequest.ForgottenTopic(topic=TOPIC,
                                                               partitions=list(forgotten))]
            if forgotten else [],
            rack_id="")
        response = self.connection.call(request, FetchResponse, VERSION)
        answered = {}
        for topic in response.responses:
            assert topic.topic == TOPIC, topic
            for partition in topic.partitions:
                assert partition.error_code == 0, partition
                values = [value.decode() for _, _, value in decode_records(partition.records)]
                answered[partition.partition_index] = (partition.high_watermark, values)
        return response, answered

    def next(self, response) -> None:
        """Moves on after a successful answer, as a client does."""
        assert response.error_code == 0, response
        self.id = response.session_id
        self.epoch += 1


def test_incremental_fetches_answer_only_what_changed(broker):
    create_topic(broker, TOPIC, partitions=3)
    produce(broker, 0, ["a", "b"])
    with WireConnection(HOST, broker.port) as connection:
        session = Session(connection)
        response, answered = session.fetch({0: 0, 1: 0, 2: 0})
        assert response.session_id > 0, "a full fetch at epoch 0 opens a session"
        assert answered == {0: (2, ["a", "b"]), 1: (0, []), 2: (0, [])}
        session.next(response)

        # The client moved on in partition 0 only; nothing is new anywhere.
        response, answered = session.fetch({0: 2})
        assert (response.session_id, answered) == (session.id, {})
        session.next(response)

        # New records in partition 1: only it is answered, from the offset the session holds.
        produce(broker, 1, ["c"])
        response, answered = session.fetch({})
        assert answered == {1: (1, ["c"])}
        session.next(response)

        # Partition 1 forgotten: its next records are not answered, partition 2's are.
        produce(broker, 1, ["d"])
        produce(broker, 2, ["e"])
        response, answered = session.fetch({1: 1}, forgotten=[1])
        assert answered == {2: (1, ["e"])}
        session.next(response)

        # An incremental fetch waits like any other for something new, here partition 0's.
        response, answered = session.fetch({2: 1}, max_wait_ms=200)
        assert answered == {}
        session.next(response)
        produce(broker, 0, ["f"])
        response, answered = session.fetch({}, max_wait_ms=5000)
        assert answered == {0: (3, ["f"])}
        session.next(response)


def test_wrong_epochs_and_unknown_sessions_are_refused(start_broker):
    metrics_port = free_port()
    broker = start_broker({"metrics.port": metrics_port})
    create_topic(broker, TOPIC, partitions=1)
    produce(broker, 0, ["a"])
    with WireConnection(HOST, broker.port) as connection:
        session = Session(connection)
        response, _ = session.fetch({0: 0})
        session.next(response)
        held = scrape(metrics_port)
        assert total(held["flink_fetch_sessions"]) == 1
        assert total(held["flink_fetch_session_partitions"]) == 1
        for epoch, session_id, error in [(session.epoch + 1, None, INVALID_FETCH_SESSION_EPOCH),
                                         (session.epoch, session.id + 1, FETCH_SESSION_ID_NOT_FOUND),
                                         (1, 0, INVALID_FETCH_SESSION_EPOCH)]:
            request_response = session.connection.call(FetchRequest(
                replica_id=-1, max_wait_ms=0, min_bytes=1, max_bytes=1 << 20, isolation_level=0,
                session_id=session.id if session_id is None else session_id, session_epoch=epoch,
                topics=[], forgotten_topics_data=[], rack_id=""), FetchResponse, VERSION)
            assert (request_response.error_code, request_response.session_id,
                    request_response.responses) == (error, 0, []), (epoch, session_id)
        # The refusals did not move the session on: the right epoch still works.
        produce(broker, 0, ["b"])
        response, answered = session.fetch({0: 1})
        assert answered == {0: (2, ["b"])}
        session.next(response)

        # Epoch -1 closes the session (a sessionless, full answer); it is gone afterwards.
        response, answered = session.fetch({0: 2}, epoch=-1)
        assert (response.error_code, response.session_id, answered) == (0, 0, {0: (2, [])})
        response, _ = session.fetch({}, epoch=session.epoch)
        assert response.error_code == FETCH_SESSION_ID_NOT_FOUND
        assert total(scrape(metrics_port)["flink_fetch_sessions"]) == 0
