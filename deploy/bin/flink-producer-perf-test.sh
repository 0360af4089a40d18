#!/bin/sh
# Measure producer throughput and latency, printing Kafka's kafka-producer-perf-test.sh lines.
# A thin wrapper: all flags are those of Kafka's tool; see `flink producer-perf-test --help`.
# readlink -f follows symlinks (a link in /usr/local/bin still finds the binary); busybox has it too.
exec "$(dirname "$(readlink -f "$0")")/flink" producer-perf-test "$@"
