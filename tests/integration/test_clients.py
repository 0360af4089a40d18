"""confluent-kafka and kafka-python: 10,000 keyed messages over 6 partitions, back exactly once."""

from __future__ import annotations

import pytest

from clients import (check_reports, confluent_consume, confluent_produce, kafka_python_consume,
                     kafka_python_produce)
from support import check_history, create_topic, keyed_messages

PARTITIONS = 6
MESSAGES = 10_000


@pytest.mark.parametrize("acks,idempotent", [("all", False), ("1", False), ("0", False),
                                              ("all", True)],
                         ids=["acks-all", "acks-1", "acks-0", "idempotent"])
def test_confluent_kafka_round_trip(broker, acks, idempotent):
    """acks=all/1/0 and idempotent: each message stored once, in order, where the broker said."""
    topic = f"confluent-acks-{acks}"
    create_topic(broker, topic, partitions=PARTITIONS)
    sent = keyed_messages(MESSAGES)
    reports = confluent_produce(broker.bootstrap, topic, sent, acks=acks,
                                **{"enable.idempotence": idempotent})

    consumed = confluent_consume(broker.bootstrap, topic, PARTITIONS, MESSAGES)
    offsets = check_history(sent, consumed, PARTITIONS)
    assert len(offsets) == PARTITIONS, f"only partitions {sorted(offsets)} were used"
    if acks != "0":
        check_reports(reports, consumed, sent)


@pytest.mark.parametrize("idempotent", [False, True], ids=["plain", "idempotent"])
def test_kafka_python_round_trip(broker, idempotent):
    """kafka-python (acks=all, plain or idempotent, assign + seek) keeps the same guarantees."""
    topic = "kafka-python"
    create_topic(broker, topic, partitions=PARTITIONS)
    sent = keyed_messages(MESSAGES)
    reports = kafka_python_produce(broker.bootstrap, topic, sent, idempotent=idempotent)

    consumed = kafka_python_consume(broker.bootstrap, topic, PARTITIONS, MESSAGES)
    offsets = check_history(sent, consumed, PARTITIONS)
    assert len(offsets) == PARTITIONS, f"only partitions {sorted(offsets)} were used"
    check_reports(reports, consumed, sent)


def test_clients_read_each_others_records(broker):
    """Records produced by kafka-python read back identically through confluent-kafka."""
    topic = "cross-client"
    create_topic(broker, topic, partitions=PARTITIONS)
    sent = keyed_messages(1_000, keys=50)
    kafka_python_produce(broker.bootstrap, topic, sent)
    consumed = confluent_consume(broker.bootstrap, topic, PARTITIONS, len(sent))
    check_history(sent, consumed, PARTITIONS)
