#!/bin/sh
# Measure consumer throughput, printing Kafka's kafka-consumer-perf-test.sh lines.
# A thin wrapper: all flags are those of Kafka's tool; see `flink consumer-perf-test --help`.
# readlink -f follows symlinks (a link in /usr/local/bin still finds the binary); busybox has it too.
exec "$(dirname "$(readlink -f "$0")")/flink" consumer-perf-test "$@"
