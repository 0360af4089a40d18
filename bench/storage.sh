#!/usr/bin/env bash
# Storage append throughput against the raw sequential O_DIRECT bandwidth of the same disk,
# measured in the same run (see bench/README.md). Builds bench/log_append.rs, then for each round
# runs, one after the other on the same directory:
#   dd  oflag=direct conv=fdatasync   then the engine in write-behind mode     (throughput)
#   dd  oflag=direct,dsync            then the engine in fsync-per-batch mode  (durable per 1 MiB)
# and reports medians over the rounds and the engine/dd ratios in bench/results/storage.md.
#
# Usage: bench/storage.sh [--total-mib N] [--rounds N] [--dir DIR]
#   or with the environment: BENCH_MIB (2048), BENCH_ROUNDS (3), BENCH_DIR (target/bench-log).
#   BENCH_COMMIT labels the results when run outside a git checkout.
set -euo pipefail
shopt -s inherit_errexit
export LC_ALL=C

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

mib=${BENCH_MIB:-2048}
rounds=${BENCH_ROUNDS:-3}
dir=${BENCH_DIR:-target/bench-log}
while [ $# -gt 0 ]; do
    case $1 in
        --total-mib) mib=$2; shift 2 ;;
        --rounds) rounds=$2; shift 2 ;;
        --dir) dir=$2; shift 2 ;;
        *) echo "usage: $0 [--total-mib N] [--rounds N] [--dir DIR]" >&2; exit 2 ;;
    esac
done
cargo=${CARGO:-cargo}
results=bench/results/storage.md

mkdir -p "$dir" bench/results
dd_file=$dir/dd.bin
cleanup() {
    rm -f "$dd_file"
    rm -rf "$dir/log_append-0"
}
trap cleanup EXIT

echo "building the bench (cargo bench --bench log_append --no-run; the bench profile is release)" >&2
bench_bin=$("$cargo" bench --bench log_append --no-run --message-format=json-render-diagnostics |
    sed -n 's/.*"executable":"\([^"]*log_append-[^"]*\)".*/\1/p' | tail -n 1)
if [ -z "$bench_bin" ] || [ ! -x "$bench_bin" ]; then
    echo "cannot find the log_append bench executable" >&2
    exit 1
fi

# MiB/s of one dd run; $1 is the oflag value.
run_dd() {
    local output rate
    sync
    if ! output=$(dd if=/dev/zero of="$dd_file" bs=1M count="$mib" oflag="$1" ${2:-} 2>&1); then
        echo "dd oflag=$1 failed on $dir (does its filesystem support O_DIRECT?):" >&2
        echo "$output" >&2
        exit 1
    fi
    rm -f "$dd_file"
    rate=$(echo "$output" | awk '/copied/ {
        for (i = 1; i <= NF; i++) if ($i == "s,") seconds = $(i - 1)
        if (seconds > 0) printf "%.1f\n", $1 / 1048576 / seconds }')
    if [ -z "$rate" ]; then
        echo "cannot read the rate from dd's output: $output" >&2
        exit 1
    fi
    echo "$rate"
}

# MiB/s of one engine run in mode $1; the bench's own line goes to stderr.
run_engine() {
    local line
    sync
    line=$("$bench_bin" --dir "$dir" --total-mib "$mib" --mode "$1")
    echo "  $line" >&2
    value "$line" mib_per_s
}

# The value of field $2 in a `log_append key=value ...` line $1.
value() {
    local found
    found=$(echo "$1" | sed -n "s/.* $2=\([0-9.]*\).*/\1/p")
    if [ -z "$found" ]; then
        echo "no $2 in: $1" >&2
        exit 1
    fi
    echo "$found"
}

median() {
    printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 }
        END { if (NR % 2) print v[(NR + 1) / 2]; else printf "%.1f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

ratio() {
    awk -v engine="$1" -v dd="$2" 'BEGIN { printf "%.3f\n", engine / dd }'
}

# One untimed round first: on a VM the first pass over fresh page cache (guest memory the host
# has not backed yet) and a cold disk are much slower than steady state.
echo "warm-up round, not counted ($mib MiB each, in $dir)" >&2
run_dd direct conv=fdatasync >/dev/null
run_engine write-behind >/dev/null

declare -a dd_wb engine_wb ratio_wb dd_sync engine_sync ratio_sync
for round in $(seq 1 "$rounds"); do
    echo "round $round/$rounds ($mib MiB each, in $dir)" >&2
    dd_wb+=("$(run_dd direct conv=fdatasync)")
    echo "  dd oflag=direct conv=fdatasync mib_per_s=${dd_wb[-1]}" >&2
    engine_wb+=("$(run_engine write-behind)")
    ratio_wb+=("$(ratio "${engine_wb[-1]}" "${dd_wb[-1]}")")
    dd_sync+=("$(run_dd direct,dsync)")
    echo "  dd oflag=direct,dsync mib_per_s=${dd_sync[-1]}" >&2
    engine_sync+=("$(run_engine fsync-per-batch)")
    ratio_sync+=("$(ratio "${engine_sync[-1]}" "${dd_sync[-1]}")")
done
prepare_line=$("$bench_bin" --dir "$dir" --total-mib "$mib" --mode prepare-only)
prepare=$(value "$prepare_line" mib_per_s)
batch_bytes=$(value "$prepare_line" batch_bytes)
records=$(value "$prepare_line" records_per_batch)
rmdir "$dir" 2>/dev/null || true

ratio_wb_median=$(median "${ratio_wb[@]}")
ratio_sync_median=$(median "${ratio_sync[@]}")
goal=$(awk -v r="$ratio_wb_median" 'BEGIN { print (r >= 0.85 ? "met" : "not met") }')
commit=${BENCH_COMMIT:-$(git rev-parse --short HEAD 2>/dev/null || echo unknown)}
if [ -z "${BENCH_COMMIT:-}" ] && [ -n "$(git status --porcelain --untracked-files=no -- src Cargo.toml 2>/dev/null)" ]; then
    commit="$commit + uncommitted changes"
fi
mkdir -p "$dir"
fs=$(df -T "$dir" | awk 'NR == 2 { print $2 " on " $1 }')
rmdir "$dir" 2>/dev/null || true
cpu_model=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)
memory=$(awk '/^MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)

row() { # label, dd values, engine values, ratios
    local name=$1
    shift
    echo "| $name | $1 | $2 | $3 |"
}
{
    echo "# Storage append throughput vs raw O_DIRECT bandwidth"
    echo
    echo "Generated by \`bench/storage.sh\` (\`make bench-storage\`); see bench/README.md for how to read it."
    echo
    echo "- date: $(date -u '+%Y-%m-%d %H:%M UTC')"
    echo "- commit: $commit"
    echo "- machine: $(nproc) CPUs ($cpu_model), $memory, kernel $(uname -r)"
    echo "- directory: $dir ($fs)"
    echo "- per run: $mib MiB; engine batches of $batch_bytes bytes ($records records of 1 KiB), segment.bytes 1 GiB, index interval 4096"
    echo "- rounds: $rounds after one untimed warm-up round, each dd then engine; figures are medians; a ratio is the median of the per-round ratios"
    echo
    echo "| mode | dd MiB/s | engine MiB/s | engine / dd |"
    echo "|---|---:|---:|---:|"
    row "write-behind: appends + one final flush, vs dd \`oflag=direct conv=fdatasync\`" \
        "$(median "${dd_wb[@]}")" "$(median "${engine_wb[@]}")" "**$ratio_wb_median**"
    row "fsync-per-batch: flush after every append, vs dd \`oflag=direct,dsync\`" \
        "$(median "${dd_sync[@]}")" "$(median "${engine_sync[@]}")" "**$ratio_sync_median**"
    echo
    echo "Goal (write-behind ≥ 0.85 of dd): **$goal**."
    echo "CPU ceiling of the per-request work alone (clone of the batch + validation with CRC-32C, no I/O): $prepare MiB/s."
    echo
    echo "Per round (MiB/s):"
    echo
    echo "| round | dd direct+fdatasync | engine write-behind | ratio | dd direct,dsync | engine fsync-per-batch | ratio |"
    echo "|---:|---:|---:|---:|---:|---:|---:|"
    for i in $(seq 0 $((rounds - 1))); do
        echo "| $((i + 1)) | ${dd_wb[$i]} | ${engine_wb[$i]} | ${ratio_wb[$i]} | ${dd_sync[$i]} | ${engine_sync[$i]} | ${ratio_sync[$i]} |"
    done
} >"$results"

echo >&2
cat "$results"
