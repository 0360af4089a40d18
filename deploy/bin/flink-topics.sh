#!/bin/sh
# Create, list, describe and delete topics.
# A thin wrapper: all flags are those of Kafka's kafka-topics.sh; see `flink topics --help`.
# readlink -f follows symlinks (a link in /usr/local/bin still finds the binary); busybox has it too.
exec "$(dirname "$(readlink -f "$0")")/flink" topics "$@"
