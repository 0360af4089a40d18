#!/usr/bin/env bash
# librdkafka's own test suite (its tests/ directory and test-runner) against Flink. By default
# tests 0103 (transactions) and 0129 (fetch aborted messages); see tests/librdkafka/README.md.
#
#   1. librdkafka $librdkafka_version's sources, as the rdkafka-sys crate on crates.io vendors
#      them (with tests/), checked against the crate's pinned SHA-256, are built once into
#      $FLINK_TEST_CACHE/librdkafka-<version> (~/.cache/flink-tests by default): the library
#      and tests/test-runner, niced, at most LIBRDKAFKA_JOBS (2) jobs.
#   2. A fresh cluster of LIBRDKAFKA_NODES (3) combined nodes (process.roles=broker,controller)
#      on free loopback ports, each `flink server <dist>/config/server.properties --override ...`
#      with its own log directory under the work directory. Three, because librdkafka's suite
#      expects its usual three-broker cluster: 0103 creates its topics with replication factor 3.
#   3. test-runner -p1 with TESTS=<the tests>, TEST_KAFKA_VERSION and a test.conf naming the
#      cluster; then the nodes are stopped, and a summary of sub-tests is printed.
#
# Usage: tests/librdkafka/run.sh [TEST...]      e.g. run.sh 0103 0129 (the default)
# Environment:
#   FLINK_DIST            the distribution to run (dist/flink)
#   FLINK_TEST_CACHE      where librdkafka is built (~/.cache/flink-tests)
#   LIBRDKAFKA_NODES      cluster size (3); 1 runs a single node
#   LIBRDKAFKA_JOBS       make jobs for the one-time build (2)
#   TEST_KAFKA_VERSION    the broker version the runner assumes (4.0.0); unset in the runner it
#                         would be 2.4.0, which changes what some sub-tests expect
#   LIBRDKAFKA_ARGS       more test-runner options: -L (skip the broker-less tests), -l (only
#                         those), -Q (quick mode), ...
#   SUBTESTS              only sub-tests whose name contains this (the runner's own variable)
#   LIBRDKAFKA_DEBUG      librdkafka debug contexts for every client, e.g.
#                         eos,protocol,broker,topic,msg (written to test.conf)
#   LIBRDKAFKA_TIMEOUT    seconds for the whole runner (900)
#   LIBRDKAFKA_WORK_DIR   where the nodes' data and logs, test.conf and runner.log go (a new
#                         directory under ${TMPDIR:-/tmp}); kept when a test fails or
#                         LIBRDKAFKA_KEEP=1, removed otherwise
#   LIBRDKAFKA_CRATE      a local copy of the .crate file, instead of downloading it
# Exit status: the runner's (0 when every test passed), 1 when the harness itself failed.
set -euo pipefail
shopt -s inherit_errexit

root=$(cd "$(dirname "$0")/../.." && pwd)
here=$root/tests/librdkafka
dist=$(cd "${FLINK_DIST:-$root/dist/flink}" && pwd)
flink=$dist/bin/flink
properties=$dist/config/server.properties

librdkafka_version=2.12.1
rdkafka_sys_version=4.10.0+$librdkafka_version
# SHA-256 of rdkafka-sys-$rdkafka_sys_version.crate, as crates.io's index lists it ("cksum").
crate_sha256=e234cf318915c1059d4921ef7f75616b5219b10b46e9f3a511a15eb4b56a3f77
cache=${FLINK_TEST_CACHE:-$HOME/.cache/flink-tests}
librdkafka=$cache/librdkafka-$librdkafka_version
runner=$librdkafka/tests/test-runner
built_stamp=$librdkafka/.flink-built

nodes=${LIBRDKAFKA_NODES:-3}
jobs=${LIBRDKAFKA_JOBS:-2}
kafka_version=${TEST_KAFKA_VERSION:-4.0.0}
timeout_s=${LIBRDKAFKA_TIMEOUT:-900}
python=${PYTHON:-python3}
tests=("$@")
[ ${#tests[@]} -gt 0 ] || tests=(0103 0129)
tests_list=$(IFS=,; echo "${tests[*]}")

say() { printf '\n==> %s\n' "$*"; }
die() { echo "tests/librdkafka/run.sh: $*" >&2; exit 1; }

[ -x "$flink" ] || die "no $flink: run \`make dist\` first (or set FLINK_DIST)"

# --- 1. librdkafka and its test runner, built once -----------------------------------------------

fetch_crate() {
    local into=$1 url
    if [ -n "${LIBRDKAFKA_CRATE:-}" ]; then
        cp "$LIBRDKAFKA_CRATE" "$into"
    else
        # static.crates.io is where cargo itself downloads crates from; the API's download URL
        # redirects there.
        for url in "https://static.crates.io/crates/rdkafka-sys/rdkafka-sys-${rdkafka_sys_version/+/%2B}.crate" \
                   "https://crates.io/api/v1/crates/rdkafka-sys/${rdkafka_sys_version/+/%2B}/download"; do
            if curl -fsSL --retry 3 -m 300 -o "$into" "$url"; then
                break
            fi
            rm -f "$into"
        done
        [ -f "$into" ] || die "could not download rdkafka-sys $rdkafka_sys_version from crates.io"
    fi
    echo "$crate_sha256  $into" | sha256sum -c --quiet - ||
        die "rdkafka-sys-$rdkafka_sys_version.crate does not have the pinned SHA-256"
}

build_librdkafka() {
    local partial=$librdkafka.partial download start
    start=$(date +%s)
    say "building librdkafka $librdkafka_version and its test runner into $librdkafka (once; niced, -j$jobs)"
    download=$(mktemp -d)
    fetch_crate "$download/rdkafka-sys.crate"
    rm -rf "$librdkafka" "$partial"
    mkdir -p "$partial"
    tar -xzf "$download/rdkafka-sys.crate" -C "$partial" --strip-components=2 \
        "rdkafka-sys-$rdkafka_sys_version/librdkafka"
    rm -rf "$download"
    [ -f "$partial/tests/0103-transactions.c" ] || die "the crate has no librdkafka/tests/"
    # Built where it will stay: the test runner links ../src and ../src-cpp relatively, but
    # mklove's generated files name the directory. Optional dependencies off: none of them is
    # needed by these tests, and the build is the same on every machine. lz4 is built in.
    mv "$partial" "$librdkafka"
    if ! (cd "$librdkafka" &&
        ./configure --disable-ssl --disable-gssapi --disable-curl --disable-zstd --disable-zlib \
            --disable-lz4-ext --disable-syslog &&
        nice -n 10 make -j"$jobs" libs &&
        cd tests && nice -n 10 make -j"$jobs" test-runner) >"$cache/librdkafka-$librdkafka_version-build.log" 2>&1; then
        die "building librdkafka failed; see $cache/librdkafka-$librdkafka_version-build.log"
    fi
    echo "rdkafka-sys $rdkafka_sys_version sha256 $crate_sha256" >"$built_stamp"
    echo "built in $(($(date +%s) - start)) s"
}

mkdir -p "$cache"
# One build at a time; a second run waits for it.
exec 9>"$cache/librdkafka-$librdkafka_version.lock"
flock 9
if [ ! -f "$built_stamp" ] || [ ! -x "$runner" ]; then
    build_librdkafka
fi
flock -u 9
exec 9>&-

# --- 2. a fresh Flink cluster ----------------------------------------------------------------------

if [ -n "${LIBRDKAFKA_WORK_DIR:-}" ]; then
    work=$LIBRDKAFKA_WORK_DIR
    mkdir -p "$work"
else
    work=$(mktemp -d "${TMPDIR:-/tmp}/flink-librdkafka.XXXXXX")
fi
work=$(cd "$work" && pwd)
pids=()
status=1

stop_nodes() {
    local pid i
    for pid in "${pids[@]}"; do
        kill -TERM "$pid" 2>/dev/null || true
    done
    for pid in "${pids[@]}"; do
        for ((i = 0; i < 150; i++)); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        if kill -0 "$pid" 2>/dev/null; then
            echo "node $pid did not stop within 15 s of SIGTERM: SIGKILL" >&2
            kill -KILL "$pid" 2>/dev/null || true
        fi
        wait "$pid" 2>/dev/null || true
    done
    pids=()
}

finish() {
    stop_nodes
    if [ "$status" -eq 0 ] && [ "${LIBRDKAFKA_KEEP:-0}" != 1 ] && [ -z "${LIBRDKAFKA_WORK_DIR:-}" ]; then
        rm -rf "$work"
    else
        echo "work directory kept: $work (node*/server.log, test.conf, runner.log)"
    fi
}
trap finish EXIT
trap 'exit 130' INT TERM

mapfile -t ports < <("$python" "$here/harness.py" ports $((2 * nodes)))
voters=""
bootstrap=""
for ((n = 1; n <= nodes; n++)); do
    client_port=${ports[$((2 * n - 2))]}
    controller_port=${ports[$((2 * n - 1))]}
    voters+="${voters:+,}$n@127.0.0.1:$controller_port"
    bootstrap+="${bootstrap:+,}127.0.0.1:$client_port"
done

# The same keys as tests/integration (support.Broker, cluster.py): the listeners on free ports, a
# log directory of its own; the internal topics with one replica. With several nodes on two
# cores, one shard each and no pinning, as tests/integration/cluster.py runs its clusters.
node_overrides() {
    local n=$1 client_port=${ports[$((2 * $1 - 2))]} controller_port=${ports[$((2 * $1 - 1))]}
    printf '%s\n' \
        "node.id=$n" \
        "process.roles=broker,controller" \
        "listeners=PLAINTEXT://127.0.0.1:$client_port,CONTROLLER://127.0.0.1:$controller_port" \
        "advertised.listeners=PLAINTEXT://127.0.0.1:$client_port" \
        "controller.quorum.voters=$voters" \
        "log.dirs=$work/node$n/data" \
        "offsets.topic.replication.factor=1" \
        "transaction.state.log.replication.factor=1" \
        "transaction.state.log.min.isr=1" \
        "group.initial.rebalance.delay.ms=0"
    if [ "$nodes" -gt 1 ]; then
        printf '%s\n' "shard.count=1" "cpu.pinning=none"
    fi
}

say "starting $nodes Flink node(s) from $dist in $work"
cluster_id=$("$flink" storage random-uuid)
for ((n = 1; n <= nodes; n++)); do
    mkdir -p "$work/node$n"
    mapfile -t overrides < <(node_overrides "$n")
    # `storage format` reads a properties file: the dist's, with the overridden keys replaced.
    {
        grep -v -E "^($(printf '%s\n' "${overrides[@]}" | cut -d= -f1 | sed 's/\./\\./g' | paste -sd'|'))=" "$properties" || true
        printf '%s\n' "${overrides[@]}"
    } >"$work/node$n/server.properties"
    "$flink" storage format -t "$cluster_id" -c "$work/node$n/server.properties" >"$work/node$n/format.log" 2>&1 ||
        { cat "$work/node$n/format.log" >&2; die "formatting node $n failed"; }
    command=("$flink" server "$properties")
    for override in "${overrides[@]}"; do
        command+=(--override "$override")
    done
    echo "===== run.sh: ${command[*]}" >"$work/node$n/server.log"
    "${command[@]}" </dev/null >>"$work/node$n/server.log" 2>&1 &
    pids+=($!)
done
for ((n = 1; n <= nodes; n++)); do
    for ((i = 0; ; i++)); do
        grep -q "Flink server started" "$work/node$n/server.log" && break
        if ! kill -0 "${pids[$((n - 1))]}" 2>/dev/null || [ "$i" -ge 600 ]; then
            tail -n 40 "$work/node$n/server.log" >&2
            die "node $n did not start (log: $work/node$n/server.log)"
        fi
        sleep 0.1
    done
done
# Every node lists every broker (registered and unfenced) before a test creates topics on them.
IFS=, read -r -a addresses <<<"$bootstrap"
"$python" "$here/harness.py" wait-brokers "$nodes" 60 "${addresses[@]}"
echo "cluster up: $bootstrap"

# --- 3. the tests ----------------------------------------------------------------------------------

{
    echo "bootstrap.servers=$bootstrap"
    # Fresh topic names on every run.
    echo "test.topic.random=true"
    [ -z "${LIBRDKAFKA_DEBUG:-}" ] || echo "debug=$LIBRDKAFKA_DEBUG"
} >"$work/test.conf"

# shellcheck disable=SC2206 # LIBRDKAFKA_ARGS is a list of options.
args=(-p1 ${LIBRDKAFKA_ARGS:-})
say "TESTS=$tests_list TEST_KAFKA_VERSION=$kafka_version test-runner ${args[*]} (librdkafka $librdkafka_version; log: $work/runner.log)"
start=$(date +%s)
set +e
(cd "$librdkafka/tests" &&
    TESTS=$tests_list TEST_KAFKA_VERSION=$kafka_version RDKAFKA_TEST_CONF=$work/test.conf \
    RDKAFKA_GITVER="librdkafka $librdkafka_version (rdkafka-sys $rdkafka_sys_version)" \
    LD_LIBRARY_PATH=$librdkafka/src:$librdkafka/src-cpp${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH} \
    timeout -k 10 "$timeout_s" ./test-runner "${args[@]}") >"$work/runner.log" 2>&1
status=$?
set -e
# The runner's closing summary table, then each sub-test.
sed -n '/SUMMARY$/,$p' "$work/runner.log" | head -n 40
say "sub-tests (runner exited $status after $(($(date +%s) - start)) s)"
"$python" "$here/harness.py" summary "$work/runner.log"
if [ "$status" -ne 0 ]; then
    echo "failures (from $work/runner.log):"
    sed 's/\x1b\[[0-9;]*m//g' "$work/runner.log" | grep -A2 '^### Test .* failed' | head -n 60 || true
fi
exit "$status"
