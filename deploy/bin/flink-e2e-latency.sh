#!/bin/sh
# Measure end-to-end latency through a topic, as Kafka's kafka-e2e-latency.sh, plus --rate N.
# Usage: broker_list topic num_messages producer_acks message_size_bytes [properties_file] [--rate N]
# A thin wrapper; see `flink e2e-latency --help`.
# readlink -f follows symlinks (a link in /usr/local/bin still finds the binary); busybox has it too.
exec "$(dirname "$(readlink -f "$0")")/flink" e2e-latency "$@"
