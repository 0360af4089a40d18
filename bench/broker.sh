#!/usr/bin/env bash
# Flink against a peer Kafka-compatible broker (tansu), and both against the machine's physical
# ceilings, all measured in one run (see bench/README.md, "Brokers: Flink against a peer"):
#
#   ceilings   dd oflag=direct conv=fdatasync on the data directory's disk (sequential write
#              MiB/s), iperf3 over loopback (one TCP stream), single-threaded memcpy, and the
#              latency of one 4 KiB O_DIRECT|O_DSYNC write (bench/ceilings.c).
#   throughput per round, for each broker in turn, freshly started on an empty data directory:
#              produce acks=1, produce acks=all (each for --seconds, 1 KiB records, as fast as the
#              client goes), then consume everything the acks=all run wrote.
#   latency    per round, for each broker in turn, freshly started: end-to-end latency at a fixed
#              rate, 50% of the peer's median acks=all producer rate (BENCH_E2E_RATE overrides).
#
# Every broker is driven by the same client, bench/rdkafka_bench.c (librdkafka), over a topic of
# 2 partitions. One untimed warm-up round of the throughput phase comes first. The raw lines go
# to <dir>/run/results.txt; bench/broker_report.py turns them into bench/results/broker.md and
# the PNGs beside it. Figures are medians over the rounds; ratios are medians of per-round ratios.
#
# Usage: bench/broker.sh [--seconds N] [--rounds N] [--dir DIR] [--quick]
#   or with the environment: BENCH_SECONDS (10), BENCH_E2E_SECONDS (10), BENCH_ROUNDS (3),
#   BENCH_DIR (target/bench-broker), BENCH_DD_MIB (1024), BENCH_E2E_ACKS ("all 1"),
#   BENCH_E2E_RATE (records/s; default 50% of the peer's max), FLINK_DIST (dist/flink),
#   FLINK_BENCH_CACHE (~/.cache/flink-bench: where tansu and librdkafka are built once),
#   BENCH_COMMIT.
#   --quick: 2 s runs, 1 round, 256 MiB dd: a smoke test of the harness, not a measurement.
set -euo pipefail
shopt -s inherit_errexit
export LC_ALL=C

root=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=bench/common.sh
. "$root/bench/common.sh"
cd "$root"

seconds=${BENCH_SECONDS:-10}
e2e_seconds=${BENCH_E2E_SECONDS:-10}
rounds=${BENCH_ROUNDS:-3}
dir=${BENCH_DIR:-target/bench-broker}
dd_mib=${BENCH_DD_MIB:-1024}
e2e_acks=${BENCH_E2E_ACKS:-all 1}
warmup_seconds=3
while [ $# -gt 0 ]; do
    case $1 in
        --seconds) seconds=$2; shift 2 ;;
        --rounds) rounds=$2; shift 2 ;;
        --dir) dir=$2; shift 2 ;;
        --quick) seconds=2; e2e_seconds=2; rounds=1; dd_mib=256; warmup_seconds=1; shift ;;
        *) echo "usage: $0 [--seconds N] [--rounds N] [--dir DIR] [--quick]" >&2; exit 2 ;;
    esac
done
dist=${FLINK_DIST:-dist/flink}
cache=${FLINK_BENCH_CACHE:-$HOME/.cache/flink-bench}
tansu_version=0.6.0
tansu=$cache/tansu-$tansu_version/bin/tansu
# The client library, the same for both brokers: see build_librdkafka.
librdkafka_version=2.12.1
rdkafka_sys_version=4.10.0+$librdkafka_version
librdkafka=$cache/librdkafka-$librdkafka_version
partitions=2
record_bytes=1024
# Producers run for a time, not a count: a cap far above what a broker here can take.
records_max=1000000000
host=127.0.0.1
run=$dir/run
bin=$dir/bin

say() { echo "== $*" >&2; }

# --- prerequisites -------------------------------------------------------------------------------

apt_install() {
    say "installing $* with apt-get"
    if [ "$(id -u)" -eq 0 ]; then
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >&2
    else
        sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >&2
    fi
}

prerequisites() {
    command -v iperf3 >/dev/null || apt_install iperf3
    command -v gcc >/dev/null || apt_install gcc
    command -v make >/dev/null || apt_install make
    [ -f /usr/include/zlib.h ] || apt_install zlib1g-dev
    python3 -c 'import matplotlib' 2>/dev/null || {
        say "installing matplotlib with pip"
        python3 -m pip install --quiet matplotlib >&2
    }
    if [ ! -x "$dist/bin/flink" ]; then
        echo "no $dist/bin/flink: run \`make dist\` (or \`make bench\`, which does)" >&2
        exit 1
    fi
    if [ ! -x "$tansu" ]; then
        # Built once into the cache outside the repository (about 17 minutes on 2 cores).
        say "building tansu $tansu_version into $cache (once; niced)"
        nice -n 19 env CARGO_BUILD_JOBS="${CARGO_BUILD_JOBS:-1}" "${CARGO:-cargo}" install tansu \
            --version "$tansu_version" --locked --features libsql,dynostore \
            --root "$cache/tansu-$tansu_version" >&2
    fi
    [ -f "$librdkafka/lib/librdkafka.so" ] || build_librdkafka
    mkdir -p "$bin"
    build_c rdkafka_bench -I"$librdkafka/include" -L"$librdkafka/lib" -Wl,-rpath,"$librdkafka/lib" \
        -lrdkafka -lpthread -lm
    build_c ceilings
}

# librdkafka $librdkafka_version, built once into the cache. Not the distribution's: Debian 12
# ships 2.0.2, which skips tagged fields wrongly (fixed in 2.2.0, librdkafka #4278) and so cannot
# read tansu's ApiVersions response. The sources come from crates.io, where rdkafka-sys vendors
# them, fetched with cargo like any crate (about a minute to build).
build_librdkafka() {
    local fetch=$cache/librdkafka-fetch manifest source
    say "building librdkafka $librdkafka_version into $librdkafka (once; niced)"
    mkdir -p "$fetch/src"
    : >"$fetch/src/lib.rs"
    printf '%s\n' '[package]' 'name = "librdkafka-sources"' 'version = "0.0.0"' 'edition = "2021"' \
        'publish = false' '' '[dependencies]' \
        "rdkafka-sys = { version = \"=$rdkafka_sys_version\", default-features = false }" \
        >"$fetch/Cargo.toml"
    manifest=$("${CARGO:-cargo}" metadata --manifest-path "$fetch/Cargo.toml" --format-version 1 |
        python3 -c 'import json, sys
print(next(p["manifest_path"] for p in json.load(sys.stdin)["packages"] if p["name"] == "rdkafka-sys"))')
    source=$cache/librdkafka-$librdkafka_version-src
    rm -rf "$source"
    cp -r "$(dirname "$manifest")/librdkafka" "$source"
    # One && chain: errexit does not apply inside a tested command.
    if ! (cd "$source" &&
        nice -n 19 ./configure --prefix="$librdkafka" --disable-ssl --disable-gssapi \
            --disable-curl --disable-zstd --disable-lz4-ext &&
        nice -n 19 make -j"${CARGO_BUILD_JOBS:-1}" libs &&
        make install-subdirs) >"$cache/librdkafka-build.log" 2>&1; then
        echo "building librdkafka failed; see $cache/librdkafka-build.log" >&2
        exit 1
    fi
    rm -rf "$source"
}

# Compiles bench/$1.c into $bin/$1 when the source is newer; the rest are linker flags.
build_c() {
    local name=$1
    shift
    if [ ! -x "$bin/$name" ] || [ "bench/$name.c" -nt "$bin/$name" ]; then
        say "compiling bench/$name.c"
        gcc -O2 -Wall -o "$bin/$name" "bench/$name.c" "$@"
    fi
}

# --- processes -----------------------------------------------------------------------------------

broker_pid=
broker_name=
iperf_pid=
cleanup() {
    stop_broker
    if [ -n "$iperf_pid" ]; then kill "$iperf_pid" 2>/dev/null || true; fi
    rm -rf "$dir/data" "$dir/dd.bin"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

port_accepts() {
    python3 - "$1" <<'EOF'
import socket, sys
try:
    with socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=1) as sock:
        sys.exit(0 if sock.getsockname() != sock.getpeername() else 1)
except OSError:
    sys.exit(1)
EOF
}

# Starts broker $1 (flink or tansu) on a fresh data directory; sets broker_pid, broker_name and
# bootstrap.
start_broker() {
    local name=$1 port controller_port log=$run/$1.log
    port=$(free_port)
    rm -rf "$dir/data"
    mkdir -p "$dir/data"
    echo "===== start $name on $host:$port" >>"$log"
    case $name in
        flink)
            controller_port=$(free_port)
            "$dist/bin/flink" server "$dist/config/server.properties" \
                --override "listeners=PLAINTEXT://$host:$port,CONTROLLER://$host:$controller_port" \
                --override "advertised.listeners=PLAINTEXT://$host:$port" \
                --override "controller.quorum.voters=1@$host:$controller_port" \
                --override "log.dirs=$(cd "$dir/data" && pwd)" >>"$log" 2>&1 </dev/null &
            ;;
        tansu)
            # The libsql engine keeps everything in one SQLite file, relative to the working
            # directory: here $dir/data/tansu.db.
            (cd "$dir/data" && exec "$tansu" broker \
                --listener-url "tcp://$host:$port" \
                --advertised-listener-url "tcp://$host:$port" \
                --storage-engine "sqlite://tansu.db") >>"$log" 2>&1 </dev/null &
            ;;
    esac
    broker_pid=$!
    broker_name=$name
    bootstrap=$host:$port
    local deadline=$((SECONDS + 30))
    until port_accepts "$port"; do
        if ! kill -0 "$broker_pid" 2>/dev/null; then
            echo "$name exited during startup; its log, $log:" >&2
            tail -n 30 "$log" >&2
            exit 1
        fi
        if [ $SECONDS -ge $deadline ]; then
            echo "$name did not accept connections on $bootstrap within 30 s" >&2
            exit 1
        fi
        sleep 0.1
    done
}

# SIGTERM, then SIGKILL after a grace period (Flink 15 s, to shut down cleanly; tansu 5 s: it
# does not always exit promptly, and its directory is thrown away); only the process started here.
stop_broker() {
    [ -n "$broker_pid" ] || return 0
    kill "$broker_pid" 2>/dev/null || true
    local grace=15
    [ "$broker_name" = tansu ] && grace=5
    local deadline=$((SECONDS + grace))
    while kill -0 "$broker_pid" 2>/dev/null && [ $SECONDS -lt $deadline ]; do sleep 0.1; done
    kill -9 "$broker_pid" 2>/dev/null || true
    wait "$broker_pid" 2>/dev/null || true
    broker_pid=
}

# --- measurements --------------------------------------------------------------------------------

# Runs the client; its result line goes to results.txt, prefixed with $1 (labels).
client() {
    local labels=$1 line
    shift
    line=$(timeout 600 "$bin/rdkafka_bench" "$@" --brokers "$bootstrap" --partitions "$partitions")
    echo "   $labels $line" >&2
    echo "$labels $line" >>"$run/results.txt"
}

# MiB/s of one dd run on the data directory, as bench/storage.sh measures it.
run_dd() {
    local output
    sync
    if ! output=$(dd if=/dev/zero of="$dir/dd.bin" bs=1M count="$dd_mib" oflag=direct conv=fdatasync 2>&1); then
        echo "dd oflag=direct failed in $dir (does its filesystem support O_DIRECT?): $output" >&2
        exit 1
    fi
    rm -f "$dir/dd.bin"
    echo "$output" | awk '/copied/ {
        for (i = 1; i <= NF; i++) if ($i == "s,") seconds = $(i - 1)
        if (seconds > 0) printf "%.1f\n", $1 / 1048576 / seconds }'
}

# MiB/s received over one loopback TCP stream for 5 s (iperf3, server and client here). The
# client retries until the server listens; no probe connection, which the server would count.
run_iperf() {
    local port json attempt
    port=$(free_port)
    iperf3 --server --port "$port" --bind "$host" >/dev/null 2>&1 &
    iperf_pid=$!
    for attempt in $(seq 1 50); do
        if json=$(iperf3 --client "$host" --port "$port" --time 5 --json 2>/dev/null); then break; fi
        json=
        sleep 0.2
    done
    kill "$iperf_pid" 2>/dev/null || true
    wait "$iperf_pid" 2>/dev/null || true
    iperf_pid=
    if [ -z "$json" ]; then
        echo "iperf3 could not measure loopback on $host:$port" >&2
        exit 1
    fi
    echo "$json" | python3 -c 'import json, sys
print("%.1f" % (json.load(sys.stdin)["end"]["sum_received"]["bits_per_second"] / 8 / 1048576))'
}

ceilings() {
    say "ceilings: dd ${dd_mib} MiB oflag=direct conv=fdatasync in $dir, iperf3 loopback 5 s, memcpy, dsync 4 KiB writes"
    run_dd >/dev/null # untimed warm-up, as bench/storage.sh
    for round in $(seq 1 "$rounds"); do
        echo "ceiling=disk round=$round mib_per_s=$(run_dd)" >>"$run/results.txt"
        echo "ceiling=loopback round=$round mib_per_s=$(run_iperf)" >>"$run/results.txt"
    done
    echo "ceiling=memcpy $("$bin/ceilings" memcpy --mib 512 --rounds 5)" >>"$run/results.txt"
    echo "ceiling=dsync $("$bin/ceilings" dsync-write --dir "$dir" --count 2000)" >>"$run/results.txt"
    grep '^ceiling=' "$run/results.txt" | sed 's/^/   /' >&2
}

# One throughput round on broker $1: produce acks=1, produce acks=all, consume the acks=all topic.
throughput_round() {
    local name=$1 round=$2 run_seconds=$3 line records
    start_broker "$name"
    for acks in 1 all; do
        "$bin/rdkafka_bench" create --brokers "$bootstrap" --partitions "$partitions" \
            --topic "produce-$acks" >/dev/null
        client "broker=$name round=$round" produce --topic "produce-$acks" --acks "$acks" \
            --size "$record_bytes" --count "$records_max" --duration "$run_seconds"
    done
    line=$(tail -n 1 "$run/results.txt")
    records=$(value "$line" records)
    client "broker=$name round=$round" consume --topic produce-all --count "$records"
    stop_broker
}

# One end-to-end latency round on broker $1 at $3 records/s with acks $4.
latency_round() {
    local name=$1 round=$2 rate=$3 acks=$4
    start_broker "$name"
    "$bin/rdkafka_bench" create --brokers "$bootstrap" --partitions "$partitions" --topic e2e >/dev/null
    client "broker=$name round=$round" e2e --topic e2e --acks "$acks" --size "$record_bytes" \
        --rate "$rate" --count "$(awk -v r="$rate" -v s="$e2e_seconds" 'BEGIN { printf "%d", r * s }')" \
        --warmup 1 --csv "$run/e2e-$name-acks$acks-$round.csv"
    stop_broker
}

main() {
    prerequisites
    rm -rf "$run"
    mkdir -p "$run" bench/results
    {
        echo "seconds=$seconds e2e_seconds=$e2e_seconds rounds=$rounds dd_mib=$dd_mib partitions=$partitions record_bytes=$record_bytes"
        echo "tansu_version=$tansu_version"
        "$bin/rdkafka_bench" version | sed 's/^rdkafka_bench //'
    } >"$run/settings.txt"
    ceilings

    say "warm-up round, not counted (${warmup_seconds} s runs)"
    for name in tansu flink; do throughput_round "$name" 0 "$warmup_seconds"; done
    sed -i '/ round=0 /d' "$run/results.txt"
    for round in $(seq 1 "$rounds"); do
        for name in tansu flink; do
            say "throughput round $round/$rounds: $name (${seconds} s per producer run)"
            throughput_round "$name" "$round" "$seconds"
        done
    done

    local peer_rates rate
    peer_rates=$(grep '^broker=tansu .*mode=produce .*acks=all ' "$run/results.txt" |
        sed 's/.* records_per_s=\([0-9.]*\).*/\1/')
    # shellcheck disable=SC2086 # one argument per round
    rate=${BENCH_E2E_RATE:-$(awk -v m="$(median $peer_rates)" 'BEGIN { printf "%d", m / 2 }')}
    echo "e2e_rate=$rate" >>"$run/settings.txt"
    for acks in $e2e_acks; do
        for round in $(seq 1 "$rounds"); do
            for name in tansu flink; do
                say "latency round $round/$rounds: $name, acks=$acks at $rate records/s for ${e2e_seconds} s"
                latency_round "$name" "$round" "$rate" "$acks"
            done
        done
    done

    rm -rf "$dir/data"
    local commit
    commit=${BENCH_COMMIT:-$(git rev-parse --short HEAD 2>/dev/null || echo unknown)}
    if [ -z "${BENCH_COMMIT:-}" ] && [ -n "$(git status --porcelain --untracked-files=no -- src Cargo.toml 2>/dev/null)" ]; then
        commit="$commit + uncommitted changes"
    fi
    python3 bench/broker_report.py --run "$run" --out bench/results --commit "$commit" \
        --data-dir "$dir" --tansu "$tansu"
}

main
