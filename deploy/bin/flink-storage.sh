#!/bin/sh
# Generate a cluster id (random-uuid) and format log directories (format).
# A thin wrapper: all flags are those of Kafka's kafka-storage.sh; see `flink storage --help`.
# readlink -f follows symlinks (a link in /usr/local/bin still finds the binary); busybox has it too.
exec "$(dirname "$(readlink -f "$0")")/flink" storage "$@"
