#!/bin/sh
# Stop every Flink server on this machine, as Kafka's kafka-server-stop.sh: send SIGTERM (or
# $SIGNAL) to each `flink server` process and return without waiting for them to exit.

SIGNAL=${SIGNAL:-TERM}

# Match the program name followed by the subcommand, so that `flink topics` and this script's
# own shell are left alone.
pids=$(pgrep -f '(^|/)flink server( |$)')

if [ -z "$pids" ]; then
  echo "No flink server to stop"
  exit 1
fi

# $pids is deliberately unquoted: one argument per process id.
kill -s "$SIGNAL" $pids
