"""The perf tools (flink-producer-perf-test.sh, flink-consumer-perf-test.sh, flink-e2e-latency.sh)
against a real broker: Kafka's output lines, records really written, the throttle, usage errors.

Nothing here asserts speed: the only timing check is a loose lower bound proving the throttle
holds the producer back.
"""

from __future__ import annotations

import re
import time

from confluent_kafka import Consumer, TopicPartition

from support import create_topic, describe_run, run_script

PRODUCER = "flink-producer-perf-test.sh"
CONSUMER = "flink-consumer-perf-test.sh"
E2E = "flink-e2e-latency.sh"

# Kafka's ProducerPerformance formats (Stats.printWindow and Stats.printTotal).
WINDOW_LINE = re.compile(
    r"^\d+ records sent, \d+\.\d records/sec \(\d+\.\d{2} MB/sec\), \d+\.\d ms avg latency, "
    r"\d+\.\d ms max latency\.$", re.MULTILINE)
TOTAL_LINE = re.compile(
    r"^(\d+)( steady state)? records sent, (\d+\.\d{6}) records/sec \((\d+\.\d{2}) MB/sec\), "
    r"(\d+\.\d{2}) ms avg latency, (\d+\.\d{2}) ms max latency, (\d+) ms 50th, (\d+) ms 95th, "
    r"(\d+) ms 99th, (\d+) ms 99\.9th\.$", re.MULTILINE)
# Kafka's ConsumerPerformance header and summary (default date format yyyy-MM-dd HH:mm:ss:SSS).
CONSUMER_HEADER = ("start.time, end.time, data.consumed.in.MB, MB.sec, data.consumed.in.nMsg, "
                   "nMsg.sec, rebalance.time.ms, fetch.time.ms, fetch.MB.sec, fetch.nMsg.sec")
DATE = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d:\d{3}"
NUMBER = r"(?:\d+\.\d{4}|Infinity|NaN)"
CONSUMER_LINE = re.compile(
    rf"^({DATE}), ({DATE}), ({NUMBER}), ({NUMBER}), (\d+), ({NUMBER}), (\d+), (-?\d+), "
    rf"({NUMBER}), ({NUMBER})$", re.MULTILINE)
# Kafka's EndToEndLatency lines, and flink's microsecond line.
AVERAGE_LINE = re.compile(r"^Avg latency: \d+\.\d{4} ms$", re.MULTILINE)
PERCENTILES_LINE = re.compile(r"^Percentiles: 50th = \d+, 99th = \d+, 99\.9th = \d+$",
                              re.MULTILINE)
MICROS_LINE = re.compile(
    r"^Percentiles \(us\): 50th = (\d+), 99th = (\d+), 99\.9th = (\d+), 99\.99th = (\d+)$",
    re.MULTILINE)


def producer_perf(broker, topic: str, *args: str, check: bool = True):
    return run_script(PRODUCER, "--topic", topic, *args, "--producer-props",
                      f"bootstrap.servers={broker.bootstrap}", check=check, timeout=30)


def record_values(broker, topic: str, partitions: int) -> list[bytes]:
    """Every value in the topic, read with confluent-kafka from the start of each partition."""
    consumer = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "perf-check-unused",
                         "enable.auto.commit": False})
    try:
        ends = {p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
                for p in range(partitions)}
        consumer.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
        values: list[bytes] = []
        positions = {p: 0 for p in range(partitions)}
        deadline = time.monotonic() + 30
        while any(positions[p] < ends[p] for p in positions):
            assert time.monotonic() < deadline, f"read up to {positions} of {ends}"
            for message in consumer.consume(num_messages=1000, timeout=0.5):
                assert message.error() is None, message.error()
                values.append(message.value())
                positions[message.partition()] = message.offset() + 1
        return values
    finally:
        consumer.close()


def test_producer_perf_writes_every_record_and_prints_kafka_summary(broker):
    """5,000 records of 100 bytes: Kafka's summary line, and all 5,000 are in the topic."""
    create_topic(broker, "perf-produce", partitions=3)
    result = producer_perf(broker, "perf-produce", "--num-records", "5000", "--record-size", "100",
                           "--throughput", "-1")
    totals = TOTAL_LINE.findall(result.stdout)
    assert len(totals) == 1, describe_run(result)
    count, steady, _, _, average, maximum, p50, p95, p99, p999 = totals[0]
    assert int(count) == 5000 and steady == "", describe_run(result)
    assert float(average) <= float(maximum), describe_run(result)
    assert int(p50) <= int(p95) <= int(p99) <= int(p999) <= float(maximum), describe_run(result)

    values = record_values(broker, "perf-produce", 3)
    assert len(values) == 5000
    assert all(len(value) == 100 and value.isalpha() and value.isupper() for value in values)


def test_producer_perf_throttles_and_prints_windows(broker):
    """--throughput 1000 holds 6,000 records to about 6 s, long enough for a 5 s window line."""
    create_topic(broker, "perf-throttled")
    started = time.monotonic()
    result = producer_perf(broker, "perf-throttled", "--num-records", "6000", "--record-size",
                           "50", "--throughput", "1000")
    elapsed = time.monotonic() - started
    assert elapsed >= 4.5, f"6000 records at 1000/s took only {elapsed:.2f} s"
    assert WINDOW_LINE.search(result.stdout), describe_run(result)
    assert len(TOTAL_LINE.findall(result.stdout)) == 1, describe_run(result)


def test_producer_perf_warmup_adds_a_steady_state_summary(broker):
    """--warmup-records: Kafka's announcement, the overall summary, then the steady-state one."""
    create_topic(broker, "perf-warmup")
    result = producer_perf(broker, "perf-warmup", "--num-records", "2000", "--record-size", "10",
                           "--throughput", "-1", "--warmup-records", "500")
    assert result.stdout.startswith(
        "Warmup first 500 records. Steady state results will print after the complete test "
        "summary.\n"), describe_run(result)
    totals = TOTAL_LINE.findall(result.stdout)
    assert [(count, steady) for count, steady, *_ in totals] == [
        ("2000", ""), ("1500", " steady state")], describe_run(result)


def test_producer_perf_payload_file_and_properties_file(broker, tmp_path):
    """Payloads come from --payload-file; --producer.config carries bootstrap.servers."""
    create_topic(broker, "perf-payloads")
    payloads = tmp_path / "payloads.txt"
    payloads.write_text("alpha\nbeta\ngamma\n")
    config = tmp_path / "producer.properties"
    config.write_text(f"bootstrap.servers={broker.bootstrap}\nacks=1\nlinger.ms=0\n"
                      "compression.type=lz4\nsome.unknown.setting=1\n")
    result = run_script(PRODUCER, "--topic", "perf-payloads", "--num-records", "300",
                        "--payload-file", str(payloads), "--throughput", "-1",
                        "--producer.config", str(config), timeout=30)
    assert f"Reading payloads from: {payloads}" in result.stdout, describe_run(result)
    assert "Number of messages read: 3" in result.stdout, describe_run(result)
    assert "some.unknown.setting" in result.stderr, describe_run(result)
    values = record_values(broker, "perf-payloads", 1)
    assert len(values) == 300 and set(values) <= {b"alpha", b"beta", b"gamma"}


def test_producer_perf_usage_errors_exit_1():
    """Bad or missing flags print a clear message and exit 1, as Kafka's tool does."""
    base = ["--topic", "t", "--num-records", "10", "--record-size", "10"]
    props = ["--producer-props", "bootstrap.servers=127.0.0.1:1"]
    cases = [
        (base + props, "--throughput"),  # --throughput is required
        (["--topic", "t", "--num-records", "0", "--record-size", "1", "--throughput", "1"]
         + props, "--num-records should be greater than zero"),
        (base + ["--throughput", "1"], "Either --producer-props or --producer.config"),
        (base + ["--throughput", "1", "--producer-props", "acks=1"],
         'Missing required configuration "bootstrap.servers"'),
        (base + ["--throughput", "1", "--transactional-id", "x"] + props, "not supported"),
        (base + ["--throughput", "1", "--no-such-flag"] + props, "--no-such-flag"),
    ]
    for args, message in cases:
        result = run_script(PRODUCER, *args, check=False, timeout=10)
        assert result.returncode == 1, describe_run(result)
        assert message in result.stderr, describe_run(result)


def test_consumer_perf_reads_what_was_produced(broker):
    """Kafka's header and summary; every produced message and byte is counted."""
    create_topic(broker, "perf-consume", partitions=2)
    producer_perf(broker, "perf-consume", "--num-records", "3000", "--record-size", "200",
                  "--throughput", "-1")
    result = run_script(CONSUMER, "--bootstrap-server", broker.bootstrap, "--topic",
                        "perf-consume", "--messages", "3000", "--timeout", "5000", timeout=30)
    lines = result.stdout.splitlines()
    assert lines[0] == CONSUMER_HEADER, describe_run(result)
    match = CONSUMER_LINE.fullmatch(lines[1])
    assert match, describe_run(result)
    megabytes, messages = float(match.group(3)), int(match.group(5))
    assert messages == 3000, describe_run(result)
    assert abs(megabytes - 3000 * 200 / (1024 * 1024)) < 0.0001, describe_run(result)
    assert "WARNING" not in result.stdout, describe_run(result)


def test_consumer_perf_times_out_with_kafka_warning(broker):
    """--from-latest on an idle topic: Kafka's timeout warning, no header with --hide-header."""
    create_topic(broker, "perf-idle")
    result = run_script(CONSUMER, "--bootstrap-server", broker.bootstrap, "--topic", "perf-idle",
                        "--messages", "10", "--timeout", "1000", "--from-latest",
                        "--hide-header", "--group", "perf-idle-group", timeout=30)
    lines = result.stdout.splitlines()
    assert lines[0] == (
        "WARNING: Exiting before consuming the expected number of messages: timeout (1000 ms) "
        "exceeded. You can use the --timeout option to increase the timeout."), describe_run(result)
    match = CONSUMER_LINE.fullmatch(lines[1])
    assert match and int(match.group(5)) == 0, describe_run(result)


def test_consumer_perf_usage_errors_exit_1():
    """Missing --messages, a bad interval or date format: a message and exit status 1."""
    base = ["--bootstrap-server", "127.0.0.1:1", "--topic", "t"]
    cases = [
        (base, "--messages"),
        (base + ["--messages", "1", "--reporting-interval", "0"],
         "Reporting interval must be greater than 0."),
        (base + ["--messages", "1", "--date-format", "yyyy-qq"], "Illegal pattern character 'q'"),
    ]
    for args, message in cases:
        result = run_script(CONSUMER, *args, check=False, timeout=10)
        assert result.returncode == 1, describe_run(result)
        assert message in result.stderr, describe_run(result)


def check_latency_output(result) -> list[int]:
    assert AVERAGE_LINE.search(result.stdout), describe_run(result)
    assert PERCENTILES_LINE.search(result.stdout), describe_run(result)
    micros = MICROS_LINE.findall(result.stdout)
    assert len(micros) == 1, describe_run(result)
    values = [int(value) for value in micros[0]]
    assert 0 < values[0] <= values[1] <= values[2] <= values[3], describe_run(result)
    return values


def test_e2e_latency_prints_kafka_lines_and_microseconds(broker):
    """Kafka's positional interface creates the missing topic and prints all three lines."""
    result = run_script(E2E, broker.bootstrap, "e2e-latency", "300", "all", "100", timeout=30)
    assert ('Topic "e2e-latency" does not exist. Will create topic with 1 partition(s) and '
            "replication factor = 1") in result.stdout, describe_run(result)
    assert re.search(r"^0\t\d+\.\d+$", result.stdout, re.MULTILINE), describe_run(result)
    check_latency_output(result)


def test_e2e_latency_at_a_fixed_rate(broker):
    """--rate 500: 1,000 stamped messages in about 2 s, every one measured."""
    create_topic(broker, "e2e-rate", partitions=2)
    started = time.monotonic()
    result = run_script(E2E, broker.bootstrap, "e2e-rate", "1000", "1", "64", "--rate", "500",
                        timeout=30)
    assert time.monotonic() - started >= 1.5, describe_run(result)
    check_latency_output(result)


def test_e2e_latency_usage_errors_exit_1():
    """Too few arguments print Kafka's USAGE; acks 0 gets Kafka's refusal; both exit 1."""
    bootstrap = "127.0.0.1:1"
    short = run_script(E2E, bootstrap, "t", "10", "1", check=False, timeout=10)
    assert short.returncode == 1 and short.stderr.startswith("USAGE: "), describe_run(short)
    no_acks = run_script(E2E, bootstrap, "t", "10", "0", "20", check=False, timeout=10)
    assert no_acks.returncode == 1, describe_run(no_acks)
    assert "Latency testing requires synchronous acknowledgement. Please use 1 or all" in (
        no_acks.stderr), describe_run(no_acks)
    small = run_script(E2E, bootstrap, "t", "10", "1", "8", "--rate", "100", check=False,
                       timeout=10)
    assert small.returncode == 1 and "at least 16" in small.stderr, describe_run(small)
