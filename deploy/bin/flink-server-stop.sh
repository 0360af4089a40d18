#!/bin/sh
# Stop every Flink server on this machine, as Kafka's kafka-server-stop.sh: send SIGTERM (or
# $SIGNAL) to each `flink server` process and return without waiting for them to exit.

SIGNAL=${SIGNAL:-TERM}

# Match the program name followed by the subcommand, so that `flink topics` and this script's
# own shell are left alone.
if command -v pgrep >/dev/null 2>&1; then
  pids=$(pgrep -f '(^|/)flink server( |$)')
else
  # No pgrep (busybox in the container image): read each process's command line from /proc.
  pids=
  for cmdline in /proc/[0-9]*/cmdline; do
    command=$(tr '\0' ' ' <"$cmdline" 2>/dev/null) || continue
    case " $command" in
      *[/\ ]flink\ server\ *) pid=${cmdline#/proc/}; pids="$pids ${pid%/cmdline}" ;;
    esac
  done
fi

if [ -z "$pids" ]; then
  echo "No flink server to stop"
  exit 1
fi

# $pids is deliberately unquoted: one argument per process id.
kill -s "$SIGNAL" $pids
