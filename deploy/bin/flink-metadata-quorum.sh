#!/bin/sh
# Describe the metadata quorum: its leader, epoch, high watermark and replication.
# A thin wrapper: the flags are those of Kafka's kafka-metadata-quorum.sh; see `flink metadata-quorum --help`.
# readlink -f follows symlinks (a link in /usr/local/bin still finds the binary); busybox has it too.
exec "$(dirname "$(readlink -f "$0")")/flink" metadata-quorum "$@"
