#!/usr/bin/env bash
# Transactional throughput and commit latency against the same workload without transactions
# (see bench/README.md, "Transactions"), for Flink alone (the peer, tansu, serves no
# transactions):
#
#   baseline  rdkafka_bench produce --idempotent: acks=all, enable.idempotence, 1 KiB records
#             round-robin over 2 partitions, as fast as the client goes, for --seconds.
#   txn       rdkafka_bench txn: the same records from a transactional producer, committed every
#             N records, for each N of BENCH_TXN_SIZES (100 1000 10000); records/s against the
#             baseline of the same round (the ratio), transactions/s, and the commit latency
#             (commit_transaction until it returns: the transaction's last records flushed,
#             EndTxn, the markers written to both partitions and fsynced).
#
# Each round starts Flink afresh on an empty data directory; the client runs on one half of the
# CPUs and Flink on the other (bench/brokers.sh). Figures are medians over the rounds; ratios
# medians of per-round ratios. Raw lines go to <dir>/txn-run/results.txt, the report to
# bench/results/transactions.md.
#
# Usage: bench/transactions.sh [--seconds N] [--rounds N] [--dir DIR] [--quick]
#   or with the environment: BENCH_TXN_SECONDS (10), BENCH_ROUNDS (3), BENCH_TXN_SIZES,
#   BENCH_DIR (target/bench-broker), BENCH_CLIENT_CPUS, BENCH_SERVER_CPUS, BENCH_PIN,
#   FLINK_DIST, FLINK_BENCH_CACHE, BENCH_COMMIT.
#   --quick: 2 s runs, 1 round: a smoke test of the harness; its report goes to
#   <dir>/results-quick (BENCH_OUT overrides), never over bench/results.
set -euo pipefail
shopt -s inherit_errexit
export LC_ALL=C

root=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=bench/common.sh
. "$root/bench/common.sh"
cd "$root"

seconds=${BENCH_TXN_SECONDS:-10}
rounds=${BENCH_ROUNDS:-3}
sizes=${BENCH_TXN_SIZES:-100 1000 10000}
dir=${BENCH_DIR:-target/bench-broker}
while [ $# -gt 0 ]; do
    case $1 in
        --seconds) seconds=$2; shift 2 ;;
        --rounds) rounds=$2; shift 2 ;;
        --dir) dir=$2; shift 2 ;;
        --quick) seconds=2; rounds=1; quick=1; shift ;;
        *) echo "usage: $0 [--seconds N] [--rounds N] [--dir DIR] [--quick]" >&2; exit 2 ;;
    esac
done
records_max=1000000000
peer=0  # The peer serves no transactions: brokers.sh neither builds nor starts it.
run=$dir/txn-run
out=${BENCH_OUT:-bench/results}
[ -z "${quick:-}" ] || out=${BENCH_OUT:-$dir/results-quick}
# shellcheck source=bench/brokers.sh
. "$root/bench/brokers.sh"

round() {
    local round=$1 size
    start_broker flink
    create_topic txn
    say "round $round: idempotent baseline for ${seconds} s"
    client "round=$round kind=baseline" produce --topic txn --idempotent --acks all \
        --size "$record_bytes" --count "$records_max" --duration "$seconds"
    for size in $sizes; do
        say "round $round: transactions of $size records for ${seconds} s"
        client "round=$round kind=txn" txn --topic txn --txn-records "$size" \
            --size "$record_bytes" --count "$records_max" --duration "$seconds"
    done
    stop_broker
}

main() {
    prerequisites
    rm -rf "$run"
    mkdir -p "$run" "$out"
    run_rounds "seconds=$seconds rounds=$rounds sizes=${sizes// /,} partitions=$partitions record_bytes=$record_bytes"
    python3 - "$run" "$out/transactions.md" "$(bench_commit)" <<'PY'
import re, statistics, sys
from collections import defaultdict
run, out, commit = sys.argv[1:]
settings = open(f"{run}/settings.txt").read().split()
lines = [dict(re.findall(r"(\w+)=([^ ]+)", line)) for line in open(f"{run}/results.txt")]
baseline = {line["round"]: float(line["records_per_s"]) for line in lines if line["kind"] == "baseline"}
by_size = defaultdict(list)
for line in lines:
    if line["kind"] == "txn":
        by_size[int(line["txn_records"])].append(line)
def median(values):
    return statistics.median(values) if values else float("nan")
rows = ["| records per transaction | records/s | ratio to idempotent | transactions/s | "
        "commit p50 ms | commit p99 ms | commit max ms |", "|---:|---:|---:|---:|---:|---:|---:|"]
base = median(list(baseline.values()))
rows.append(f"| no transactions (idempotent, acks=all) | {base:,.0f} | 1.00 | | | | |")
for size, runs in sorted(by_size.items()):
    ratio = median([float(r["records_per_s"]) / baseline[r["round"]] for r in runs])
    rows.append(f"| {size:,} | {median([float(r['records_per_s']) for r in runs]):,.0f} | "
                f"{ratio:.2f} | {median([float(r['txn_per_s']) for r in runs]):,.1f} | "
                f"{median([float(r['p50_us']) for r in runs]) / 1000:.2f} | "
                f"{median([float(r['p99_us']) for r in runs]) / 1000:.2f} | "
                f"{median([float(r['max_us']) for r in runs]) / 1000:.2f} |")
text = f"""# Transactions: throughput and commit latency

Measured at {commit} by `bench/transactions.sh` (`make bench-txn`, also part of `make bench`):
Flink alone, freshly started per round, driven by librdkafka's transactional producer
(`bench/rdkafka_bench.c` mode `txn`) against the same client without transactions
(`produce --idempotent`): 1 KiB records, 2 partitions, acks=all. Medians over the rounds;
ratios are medians of per-round ratios. Settings: {' '.join(settings)}.

{chr(10).join(rows)}

The commit latency is `commit_transaction` from call to return: the client flushes the
transaction's last records, sends EndTxn, and the coordinator stores PrepareCommit, writes and
fsyncs a marker on each partition and stores CompleteCommit before it answers.
"""
open(out, "w").write(text)
print(text)
PY
}

main
