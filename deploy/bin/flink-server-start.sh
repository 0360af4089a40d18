#!/bin/sh
# Start a Flink server, as Kafka's kafka-server-start.sh:
#   flink-server-start.sh [-daemon] server.properties [--override property=value]*
# With -daemon the server runs in the background under nohup, with its output in
# $LOG_DIR/server.out (LOG_DIR defaults to the logs/ folder next to bin/).

usage() {
  echo "USAGE: $0 [-daemon] server.properties [--override property=value]*"
  exit 1
}

if [ $# -lt 1 ]; then
  usage
fi

bin_dir=$(dirname "$(readlink -f "$0")")
base_dir=$(dirname "$bin_dir")

daemon=false
if [ "$1" = "-daemon" ]; then
  daemon=true
  shift
  if [ $# -lt 1 ]; then
    usage
  fi
fi

if [ "$daemon" = true ]; then
  LOG_DIR=${LOG_DIR:-$base_dir/logs}
  mkdir -p "$LOG_DIR" || exit 1
  nohup "$bin_dir/flink" server "$@" >"$LOG_DIR/server.out" 2>&1 </dev/null &
  exit 0
fi

exec "$bin_dir/flink" server "$@"
