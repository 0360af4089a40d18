#!/bin/sh
# Consume records from a topic and print them to standard output.
# A thin wrapper: all flags are those of Kafka's kafka-console-consumer.sh; see `flink console-consumer --help`.
# readlink -f follows symlinks (a link in /usr/local/bin still finds the binary); busybox has it too.
exec "$(dirname "$(readlink -f "$0")")/flink" console-consumer "$@"
