#!/bin/sh
# List, describe and abort transactions, and find hanging ones.
# A thin wrapper: the flags are those of Kafka's kafka-transactions.sh; see `flink transactions --help`.
# readlink -f follows symlinks (a link in /usr/local/bin still finds the binary); busybox has it too.
exec "$(dirname "$(readlink -f "$0")")/flink" transactions "$@"
