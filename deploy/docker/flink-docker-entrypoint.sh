#!/bin/sh
# Container entrypoint: run the broker as PID 1, configured from FLINK_* environment variables.
#
#   (no arguments)          exec flink server --from-env
#   --override k=v ...      the same, with these arguments added
#   any other command       run it instead (`docker run -it apache/flink:latest sh`)
#
# `flink server --from-env` maps FLINK_NUM_PARTITIONS to num.partitions, and so on. With no FLINK_*
# configuration variable it uses its embedded single-node default; as soon as one is set, only the
# variables count (as in the reference image). log.dirs has no default of its own, so when variables
# are given without FLINK_LOG_DIRS this script supplies the data directory the embedded default uses.
#
# exec, not a child process: the broker must receive `docker stop`'s SIGTERM itself.
set -eu

DATA_DIR_DEFAULT=/tmp/flink-combined-logs
CLUSTER_ID_DEFAULT=5L6g3nShT-eMCtK--X86sw

# True for FLINK_* names the broker reads as configuration; the others configure the launcher
# (the same list as src/config/env.rs).
is_config_variable() {
  case $1 in
    FLINK_HOME | FLINK_VERSION | FLINK_OPTS | FLINK_LOG_LEVEL | FLINK_CLUSTER_ID | \
      FLINK_ADD_SCRAM | FLINK_CONFIG_FILE | FLINK_LOG_DIR) return 1 ;;
    FLINK_?*) return 0 ;;
    *) return 1 ;;
  esac
}

configured_by_environment() {
  for name in $(env | sed -n 's/^\(FLINK_[A-Za-z0-9_]*\)=.*/\1/p'); do
    if is_config_variable "$name"; then
      return 0
    fi
  done
  return 1
}

if [ $# -gt 0 ]; then
  case $1 in
    -*) ;;
    *) exec "$@" ;;
  esac
fi

if configured_by_environment && [ -z "${FLINK_LOG_DIRS:-}" ]; then
  export FLINK_LOG_DIRS="$DATA_DIR_DEFAULT"
fi

# Storage is formatted on first start, as the reference image does, with FLINK_CLUSTER_ID or else
# one fixed default id: the nodes of a compose cluster that sets none then agree on it. Without
# configuration variables the embedded single node formats itself (with a fresh id).
#
# FLINK_ADD_SCRAM holds SCRAM credentials for that first format, one per line, each as
# `flink-storage.sh format --add-scram` takes it: SCRAM-SHA-512=[name=alice,password=alice-secret]
if configured_by_environment; then
  (
    # The credentials are arguments of their own, never globbed ([...] is a glob pattern).
    set -f
    set --
    newline='
'
    IFS=$newline
    for credential in ${FLINK_ADD_SCRAM:-}; do
      set -- "$@" --add-scram "$credential"
    done
    unset IFS
    exec /opt/flink/bin/flink storage format --ignore-formatted --from-env \
      -t "${FLINK_CLUSTER_ID:-$CLUSTER_ID_DEFAULT}" "$@"
  )
elif [ -n "${FLINK_ADD_SCRAM:-}" ]; then
  echo "FLINK_ADD_SCRAM is ignored: the storage is formatted with it only when the broker is" \
    "configured by FLINK_* variables" >&2
fi

exec /opt/flink/bin/flink server --from-env "$@"
