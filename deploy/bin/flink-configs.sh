#!/bin/sh
# Describe and alter topic and broker configs.
# A thin wrapper: all flags are those of Kafka's kafka-configs.sh; see `flink configs --help`.
# readlink -f follows symlinks (a link in /usr/local/bin still finds the binary); busybox has it too.
exec "$(dirname "$(readlink -f "$0")")/flink" configs "$@"
