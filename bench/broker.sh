#!/usr/bin/env bash
# Flink against the null sink (bench/null-sink: a Kafka server that acknowledges and stores
# nothing, the most any broker can get from this client here) and a peer Kafka-compatible broker
# (tansu), and all against the machine's physical ceilings, measured in one run (see
# bench/README.md, "Brokers: Flink against a peer"):
#
#   ceilings   dd oflag=direct conv=fdatasync on the data directory's disk (sequential write
#              MiB/s), iperf3 over loopback (one TCP stream), single-threaded memcpy, and the
#              latency of one 4 KiB O_DIRECT|O_DSYNC write (bench/ceilings.c).
#   throughput per round, for each target in turn, freshly started on an empty data directory:
#              produce acks=1, produce acks=all (each for --seconds, 1 KiB records, as fast as the
#              client goes), then consume as many records as the acks=all run wrote; the target's
#              CPU time (utime + stime) is taken around each run.
#   latency    per round, for Flink and the peer in turn, freshly started: end-to-end latency at a
#              fixed rate, 50% of the peer's median acks=all producer rate (of Flink's without the
#              peer; BENCH_E2E_RATE overrides). Not the null sink: it returns no record it got.
#
# Every target is driven by the same client, bench/rdkafka_bench.c (librdkafka), over a topic of
# 2 partitions; the client runs on one half of the CPUs and the target on the other (taskset;
# bench/brokers.sh). One untimed warm-up round of the throughput phase comes first. The raw lines
# go to <dir>/run/results.txt; bench/broker_report.py turns them into bench/results/broker.md and
# the PNGs beside it. Figures are medians over the rounds; ratios are medians of per-round ratios.
#
# Usage: bench/broker.sh [--seconds N] [--rounds N] [--dir DIR] [--no-peer] [--quick]
#   or with the environment: BENCH_SECONDS (10), BENCH_E2E_SECONDS (10), BENCH_ROUNDS (3),
#   BENCH_DIR (target/bench-broker), BENCH_DD_MIB (1024), BENCH_E2E_ACKS ("all 1"),
#   BENCH_E2E_RATE (records/s; default 50% of the peer's max), BENCH_PEER (1; 0 = --no-peer),
#   BENCH_CLIENT_CPUS, BENCH_SERVER_CPUS, BENCH_PIN (bench/brokers.sh), FLINK_DIST (dist/flink),
#   FLINK_BENCH_CACHE (~/.cache/flink-bench: where tansu and librdkafka are built once),
#   BENCH_COMMIT.
#   --no-peer: no tansu (building it takes about 17 minutes); the report says it was not measured.
#   --quick: 2 s runs, 1 round, 256 MiB dd: a smoke test of the harness, not a measurement; its
#   report goes to <dir>/results-quick (BENCH_OUT overrides), never over bench/results.
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
        --no-peer) BENCH_PEER=0; shift ;;
        --quick) seconds=2; e2e_seconds=2; rounds=1; dd_mib=256; warmup_seconds=1; quick=1; shift ;;
        *) echo "usage: $0 [--seconds N] [--rounds N] [--dir DIR] [--no-peer] [--quick]" >&2; exit 2 ;;
    esac
done
peer=${BENCH_PEER:-1}
# Producers run for a time, not a count: a cap far above what a broker here can take.
records_max=1000000000
run=$dir/run
# A smoke test's results never replace the measured ones in bench/results.
out=${BENCH_OUT:-bench/results}
[ -z "${quick:-}" ] || out=${BENCH_OUT:-$dir/results-quick}
# shellcheck source=bench/brokers.sh
. "$root/bench/brokers.sh"

# --- measurements --------------------------------------------------------------------------------

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
    (pinned "$server_cpus" iperf3 --server --port "$port" --bind "$host") >/dev/null 2>&1 &
    iperf_pid=$!
    for attempt in $(seq 1 50); do
        if json=$(pinned_client iperf3 --client "$host" --port "$port" --time 5 --json 2>/dev/null); then break; fi
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
    say "ceilings: dd ${dd_mib} MiB oflag=direct conv=fdatasync in $dir, iperf3 loopback 5 s (pinned as the targets and the client), memcpy, dsync 4 KiB writes"
    run_dd >/dev/null # untimed warm-up, as bench/storage.sh
    for round in $(seq 1 "$rounds"); do
        echo "ceiling=disk round=$round mib_per_s=$(run_dd)" >>"$run/results.txt"
        echo "ceiling=loopback round=$round mib_per_s=$(run_iperf)" >>"$run/results.txt"
    done
    echo "ceiling=memcpy $("$bin/ceilings" memcpy --mib 512 --rounds 5)" >>"$run/results.txt"
    echo "ceiling=dsync $("$bin/ceilings" dsync-write --dir "$dir" --count 2000)" >>"$run/results.txt"
    grep '^ceiling=' "$run/results.txt" | sed 's/^/   /' >&2
}

# One throughput round on target $1: produce acks=1, produce acks=all, consume the acks=all topic
# (the null sink serves as many synthetic records as the acks=all run sent it).
throughput_round() {
    local name=$1 round=$2 run_seconds=$3 line records
    start_broker "$name"
    for acks in 1 all; do
        create_topic "produce-$acks"
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
    create_topic e2e
    client "broker=$name round=$round" e2e --topic e2e --acks "$acks" --size "$record_bytes" \
        --rate "$rate" --count "$(awk -v r="$rate" -v s="$e2e_seconds" 'BEGIN { printf "%d", r * s }')" \
        --warmup 1 --csv "$run/e2e-$name-acks$acks-$round.csv"
    stop_broker
}

main() {
    prerequisites
    rm -rf "$run"
    mkdir -p "$run" "$out"
    local targets=(null flink) e2e_targets=(flink) basis=flink
    if [ "$peer" = 1 ]; then targets=(tansu null flink) e2e_targets=(tansu flink) basis=tansu; fi
    {
        echo "seconds=$seconds e2e_seconds=$e2e_seconds rounds=$rounds dd_mib=$dd_mib partitions=$partitions record_bytes=$record_bytes"
        echo "peer=$peer tansu_version=$tansu_version"
        pinning_note
        "$bin/rdkafka_bench" version | sed 's/^rdkafka_bench //'
    } >"$run/settings.txt"
    ceilings

    say "warm-up round, not counted (${warmup_seconds} s runs)"
    for name in "${targets[@]}"; do throughput_round "$name" 0 "$warmup_seconds"; done
    sed -i '/ round=0 /d' "$run/results.txt"
    for round in $(seq 1 "$rounds"); do
        for name in "${targets[@]}"; do
            say "throughput round $round/$rounds: $name (${seconds} s per producer run)"
            throughput_round "$name" "$round" "$seconds"
        done
    done

    local basis_rates rate
    basis_rates=$(grep "^broker=$basis .*mode=produce .*acks=all " "$run/results.txt" |
        sed 's/.* records_per_s=\([0-9.]*\).*/\1/')
    # shellcheck disable=SC2086 # one argument per round
    rate=${BENCH_E2E_RATE:-$(awk -v m="$(median $basis_rates)" 'BEGIN { printf "%d", m / 2 }')}
    echo "e2e_rate=$rate e2e_rate_basis=${BENCH_E2E_RATE:+set}${BENCH_E2E_RATE:-$basis}" >>"$run/settings.txt"
    for acks in $e2e_acks; do
        for round in $(seq 1 "$rounds"); do
            for name in "${e2e_targets[@]}"; do
                say "latency round $round/$rounds: $name, acks=$acks at $rate records/s for ${e2e_seconds} s"
                latency_round "$name" "$round" "$rate" "$acks"
            done
        done
    done

    rm -rf "$dir/data"
    python3 bench/broker_report.py --run "$run" --out "$out" --commit "$(bench_commit)" \
        --data-dir "$dir" --tansu "$tansu"
}

main
