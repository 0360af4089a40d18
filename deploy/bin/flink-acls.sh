#!/bin/sh
# Add, remove and list ACLs.
# A thin wrapper: the flags are those of Kafka's kafka-acls.sh; see `flink acls --help`.
# readlink -f follows symlinks (a link in /usr/local/bin still finds the binary); busybox has it too.
exec "$(dirname "$(readlink -f "$0")")/flink" acls "$@"
