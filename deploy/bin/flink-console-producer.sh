#!/bin/sh
# Read lines from standard input and produce each one as a record.
# A thin wrapper: all flags are those of Kafka's kafka-console-producer.sh; see `flink console-producer --help`.
# readlink -f follows symlinks (a link in /usr/local/bin still finds the binary); busybox has it too.
exec "$(dirname "$(readlink -f "$0")")/flink" console-producer "$@"
