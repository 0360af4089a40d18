#!/bin/sh
# List, describe and delete consumer groups and reset their offsets.
# A thin wrapper: all flags are those of Kafka's kafka-consumer-groups.sh; see `flink consumer-groups --help`.
# readlink -f follows symlinks (a link in /usr/local/bin still finds the binary); busybox has it too.
exec "$(dirname "$(readlink -f "$0")")/flink" consumer-groups "$@"
