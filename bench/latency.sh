#!/usr/bin/env bash
# Delivery latency against offered load, for Flink, the null sink (bench/null-sink: the client's
# ceiling) and the peer (tansu), in one run (see bench/README.md, "Latency against offered load"):
#
#   For each setting (acks=1 and acks=all, each with linger.ms=0 and with linger.ms=1 plus
#   batch.size=131072, OpenMessaging Benchmark's producer setting), each target freshly started on
#   an empty data directory, Flink first:
#   max        the target's own maximum produce rate with that setting (rdkafka_bench produce,
#              unpaced); Flink's sets the offered rates of every target.
#   points     1%, 2%, 5%, 10%, 20%, 30%, 50%, 70%, 100% of Flink's maximum, plus 10,000
#              records/s, each for a few seconds after a warm-up not counted (rdkafka_bench
#              latency: open loop, delivery reports taken by a thread that waits for them):
#              p50, p99, p99.9 of send to delivery report.
#   e2e        end-to-end (send to consumer receipt) at 50% of Flink's maximum, for Flink and the
#              peer (the null sink returns no record it was sent).
#
# 1 KiB records, a topic of 2 partitions, at most 5 requests in flight per connection (the Java
# producer's default; BENCH_LATENCY_IN_FLIGHT). The client runs on one half of the CPUs and the
# target on the other (taskset; bench/brokers.sh). The raw lines go to <dir>/latency-run/;
# bench/latency_report.py turns them into bench/results/latency.md and latency-*.png.
#
# Usage: bench/latency.sh [--seconds N] [--dir DIR] [--no-peer] [--quick]
#   or with the environment: BENCH_LATENCY_SECONDS (5, per point), BENCH_LATENCY_WARMUP (1),
#   BENCH_LATENCY_MAX_SECONDS (5), BENCH_LATENCY_PERCENTS ("1 2 5 10 20 30 50 70 100"),
#   BENCH_LATENCY_FIXED_RATES ("10000"), BENCH_LATENCY_SETTINGS (all four, e.g. "acksall-linger0"),
#   BENCH_LATENCY_IN_FLIGHT (5), BENCH_E2E_SECONDS (10), BENCH_PEER (1; 0 = --no-peer),
#   BENCH_DIR (target/bench-broker), BENCH_CLIENT_CPUS, BENCH_SERVER_CPUS, BENCH_PIN,
#   FLINK_DIST, FLINK_BENCH_CACHE, BENCH_COMMIT.
#   --quick: 1 s per point after 0.5 s of warm-up, 10%, 50% and 100% only, 2 s maximum and e2e
#   runs: a smoke test of the harness, not a measurement; its report goes to <dir>/results-quick
#   (BENCH_OUT overrides), never over bench/results.
set -euo pipefail
shopt -s inherit_errexit
export LC_ALL=C

root=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=bench/common.sh
. "$root/bench/common.sh"
cd "$root"

point_seconds=${BENCH_LATENCY_SECONDS:-5}
warmup=${BENCH_LATENCY_WARMUP:-1}
max_seconds=${BENCH_LATENCY_MAX_SECONDS:-5}
percents=${BENCH_LATENCY_PERCENTS:-1 2 5 10 20 30 50 70 100}
fixed_rates=${BENCH_LATENCY_FIXED_RATES:-10000}
settings=${BENCH_LATENCY_SETTINGS:-acks1-linger0 acks1-linger1 acksall-linger0 acksall-linger1}
in_flight=${BENCH_LATENCY_IN_FLIGHT:-5}
e2e_seconds=${BENCH_E2E_SECONDS:-10}
dir=${BENCH_DIR:-target/bench-broker}
while [ $# -gt 0 ]; do
    case $1 in
        --seconds) point_seconds=$2; shift 2 ;;
        --dir) dir=$2; shift 2 ;;
        --no-peer) BENCH_PEER=0; shift ;;
        --quick)
            point_seconds=1; warmup=0.5; max_seconds=2; e2e_seconds=2
            percents=${BENCH_LATENCY_PERCENTS:-10 50 100}; quick=1; shift ;;
        *) echo "usage: $0 [--seconds N] [--dir DIR] [--no-peer] [--quick]" >&2; exit 2 ;;
    esac
done
peer=${BENCH_PEER:-1}
records_max=1000000000
run=$dir/latency-run
# A smoke test's results never replace the measured ones in bench/results.
out=${BENCH_OUT:-bench/results}
[ -z "${quick:-}" ] || out=${BENCH_OUT:-$dir/results-quick}
# shellcheck source=bench/brokers.sh
. "$root/bench/brokers.sh"

# The producer options of setting $1 (acks<1|all>-linger<0|1>).
setting_options() {
    local acks=${1%%-*} linger=${1##*-linger}
    acks=${acks#acks}
    echo "--acks $acks --linger-ms $linger --in-flight $in_flight"
    # linger.ms=1 comes with OpenMessaging Benchmark's batch.size; linger.ms=0 keeps librdkafka's.
    [ "$linger" = 0 ] || echo "--batch-size 131072"
}

# Every measurement of setting $1 on target $2; Flink's maximum is in $flink_max afterwards.
measure() {
    local setting=$1 target=$2 options labels line rate percent
    # shellcheck disable=SC2046 # one word per option
    options=$(setting_options "$setting")
    labels="target=$target setting=$setting"
    start_broker "$target"
    create_topic latency
    say "$setting on $target: maximum rate (${max_seconds} s unpaced)"
    # shellcheck disable=SC2086
    client "$labels point=max" produce --topic latency $options --size "$record_bytes" \
        --count "$records_max" --duration "$max_seconds"
    line=$(tail -n 1 "$run/results.txt")
    if [ "$target" = flink ]; then flink_max=$(value "$line" records_per_s); fi
    # The maximum run leaves dirty pages behind; their writeback is not the next points' business.
    sync
    for percent in $percents; do
        rate=$(awk -v m="$flink_max" -v p="$percent" 'BEGIN { r = int(m * p / 100); print (r < 1 ? 1 : r) }')
        say "$setting on $target: $percent% of Flink's maximum, $rate records/s for ${point_seconds} s"
        # shellcheck disable=SC2086
        client "$labels point=percent percent=$percent" latency --topic latency $options \
            --size "$record_bytes" --rate "$rate" --duration "$point_seconds" --warmup "$warmup"
    done
    for rate in $fixed_rates; do
        say "$setting on $target: $rate records/s for ${point_seconds} s"
        # shellcheck disable=SC2086
        client "$labels point=fixed" latency --topic latency $options --size "$record_bytes" \
            --rate "$rate" --duration "$point_seconds" --warmup "$warmup"
    done
    if [ "$target" != null ]; then
        rate=$(awk -v m="$flink_max" 'BEGIN { r = int(m / 2); print (r < 1 ? 1 : r) }')
        say "$setting on $target: end to end at $rate records/s (50%) for ${e2e_seconds} s"
        create_topic e2e
        # shellcheck disable=SC2086
        client "$labels point=e2e percent=50" e2e --topic e2e $options --size "$record_bytes" \
            --rate "$rate" --count "$(awk -v r="$rate" -v s="$e2e_seconds" 'BEGIN { printf "%d", r * s }')" \
            --warmup 1 --csv "$run/e2e-$target-$setting.csv"
    fi
    stop_broker
}

main() {
    prerequisites
    rm -rf "$run"
    mkdir -p "$run" "$out"
    local targets=(flink null)
    [ "$peer" = 1 ] && targets+=(tansu)
    {
        echo "point_seconds=$point_seconds warmup=$warmup max_seconds=$max_seconds e2e_seconds=$e2e_seconds partitions=$partitions record_bytes=$record_bytes in_flight=$in_flight"
        echo "percents=${percents// /,} fixed_rates=${fixed_rates// /,} settings=${settings// /,}"
        echo "peer=$peer tansu_version=$tansu_version"
        pinning_note
        "$bin/rdkafka_bench" version | sed 's/^rdkafka_bench //'
    } >"$run/settings.txt"
    : >"$run/results.txt"
    local setting target
    for setting in $settings; do
        flink_max=
        for target in "${targets[@]}"; do measure "$setting" "$target"; done
    done
    rm -rf "$dir/data"
    python3 bench/latency_report.py --run "$run" --out "$out" --commit "$(bench_commit)" \
        --data-dir "$dir" --tansu "$tansu"
}

main
