"""The Prometheus endpoint on `metrics.port`: per-shard request, byte, I/O and fsync counters and
produce, fetch and fsync latency summaries, scraped over HTTP and parsed by prometheus_client's
own text parser."""

from __future__ import annotations

import socket
import urllib.error
import urllib.request

import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic
from prometheus_client.parser import text_string_to_metric_families

from support import HOST, create_topic, free_port

SHARDS = 2


def scrape(port: int) -> dict[str, list]:
    with urllib.request.urlopen(f"http://{HOST}:{port}/metrics", timeout=10) as response:
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        text = response.read().decode()
    return {family.name: family.samples for family in text_string_to_metric_families(text)}


def total(samples, **labels) -> float:
    return sum(sample.value for sample in samples
               if all(sample.labels.get(key) == value for key, value in labels.items()))


def test_metrics_count_requests_bytes_io_and_fsyncs_per_shard(start_broker):
    """After an acks=all produce the scrape shows Produce requests, received bytes, file writes
    and fsyncs, with one series per shard for every gauge."""
    port = free_port()
    broker = start_broker({"metrics.port": port, "shard.count": SHARDS})
    topic = "metered"
    create_topic(broker, topic, partitions=SHARDS)
    before = scrape(port)
    producer = Producer({"bootstrap.servers": broker.bootstrap, "acks": "all"})
    for index in range(200):
        producer.produce(topic, value=b"m" * 1000, partition=index % SHARDS)
    assert producer.flush(20) == 0

    after = scrape(port)
    # prometheus_client reports counters without their _total suffix as the family name.
    assert total(after["flink_requests"], api="Produce") >= 1
    assert total(after["flink_requests"], api="Metadata") >= 1
    received = total(after["flink_network_received_bytes"]) - total(
        before["flink_network_received_bytes"])
    assert received >= 200 * 1000
    assert total(after["flink_log_fsyncs"]) > total(before["flink_log_fsyncs"])
    assert total(after["flink_io_file_written_bytes"]) > total(before["flink_io_file_written_bytes"])
    for gauge in ("flink_connections", "flink_shard_queue_depth", "flink_partitions",
                  "flink_leader_partitions", "flink_under_replicated_partitions",
                  "flink_log_tail_cache_bytes"):
        shards = sorted(sample.labels["shard"] for sample in after[gauge])
        assert shards == [str(shard) for shard in range(SHARDS)], (gauge, shards)
    assert total(after["flink_partitions"]) >= SHARDS
    # A single node leads every partition it hosts, each in sync with itself.
    assert total(after["flink_leader_partitions"]) == total(after["flink_partitions"])
    assert total(after["flink_under_replicated_partitions"]) == 0
    # Broker-side latency summaries: every produce was timed, on the shards that received them,
    # and so was every fsync; quantiles rise with the quantile.
    produce = after["flink_produce_latency_microseconds"]
    produce_count = sum(sample.value for sample in produce
                        if sample.name.endswith("_count"))
    assert produce_count == total(after["flink_requests"], api="Produce")
    fsync = after["flink_log_fsync_latency_microseconds"]
    assert sum(sample.value for sample in fsync if sample.name.endswith("_count")) == total(
        after["flink_log_fsyncs"])
    for shard in {sample.labels["shard"] for sample in produce}:
        quantiles = sorted((float(sample.labels["quantile"]), sample.value) for sample in produce
                           if sample.labels.get("shard") == shard and "quantile" in sample.labels)
        assert [quantile for quantile, _ in quantiles] == [0.5, 0.99, 0.999, 1.0]
        values = [value for _, value in quantiles]
        assert values == sorted(values) and values[0] > 0, quantiles


def test_metrics_answers_404_elsewhere_and_reports_a_taken_port(start_broker, tmp_path):
    """Paths other than /metrics get 404; a metrics.port already in use stops start-up with a
    message naming metrics.port."""
    port = free_port()
    start_broker({"metrics.port": port})
    with pytest.raises(urllib.error.HTTPError) as missing:
        urllib.request.urlopen(f"http://{HOST}:{port}/", timeout=10)
    assert missing.value.code == 404

    with socket.socket() as taken:
        taken.bind(("0.0.0.0", 0))
        taken.listen()
        with pytest.raises(AssertionError) as refused:
            start_broker({"metrics.port": taken.getsockname()[1]})
    assert "metrics.port" in str(refused.value)


def test_flush_messages_fsyncs_acks_one_produce(start_broker):
    """A topic with flush.messages=1 fsyncs after every acks=1 produce; a topic with Kafka's
    default (never by count) does not: the fsync counter tells them apart."""
    port = free_port()
    broker = start_broker({"metrics.port": port})
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    futures = admin.create_topics([NewTopic("every-message", 1, 1, config={"flush.messages": "1"}),
                                   NewTopic("page-cache-like", 1, 1)])
    for future in futures.values():
        future.result(10)

    def fsyncs_for(topic: str) -> float:
        before = total(scrape(port)["flink_log_fsyncs"])
        producer = Producer({"bootstrap.servers": broker.bootstrap, "acks": 1, "linger.ms": 0})
        for index in range(20):
            producer.produce(topic, value=f"{index}".encode())
            producer.flush(10)
        return total(scrape(port)["flink_log_fsyncs"]) - before

    assert fsyncs_for("every-message") >= 20
    assert fsyncs_for("page-cache-like") == 0
