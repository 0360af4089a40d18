#!/bin/sh
# Elect partition leaders: the preferred replica, or (unclean) any live replica of a leaderless one.
# A thin wrapper: the flags are those of Kafka's kafka-leader-election.sh; see `flink leader-election --help`.
# readlink -f follows symlinks (a link in /usr/local/bin still finds the binary); busybox has it too.
exec "$(dirname "$(readlink -f "$0")")/flink" leader-election "$@"
