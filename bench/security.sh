#!/usr/bin/env bash
# What TLS and SASL cost (see bench/README.md, "Security"): the same workloads over Flink's
# PLAINTEXT, SSL and SASL_SSL (SCRAM-SHA-512) listeners of one broker, in the same round:
#
#   produce   rdkafka_bench produce acks=all, 1 KiB records over 2 partitions, as fast as the
#             client goes, for --seconds; records/s against PLAINTEXT in the same round (the
#             ratio), and the broker's CPU seconds per GiB.
#   consume   what that produce wrote, read back from the start.
#   latency   delivery latency (send to acknowledgement, acks=all, linger.ms=0) at a fixed rate,
#             BENCH_SECURITY_RATE records/s (2000), the same for every listener.
#
# Each round starts Flink afresh with the three listeners; the client runs on one half of the
# CPUs and Flink on the other (bench/brokers.sh). PEM material comes from
# deploy/security/make-certs.sh. Figures are medians over the rounds; ratios are medians of
# per-round ratios. Raw lines go to <dir>/security-run/results.txt, the report to
# bench/results/security.md.
#
# Usage: bench/security.sh [--seconds N] [--rounds N] [--dir DIR] [--quick]
#   or with the environment: BENCH_SECURITY_SECONDS (10), BENCH_ROUNDS (3), BENCH_SECURITY_RATE,
#   BENCH_DIR (target/bench-broker), BENCH_CLIENT_CPUS, BENCH_SERVER_CPUS, BENCH_PIN, FLINK_DIST,
#   FLINK_BENCH_CACHE, BENCH_COMMIT.
#   --quick: 2 s runs, 1 round: a smoke test of the harness; its report goes to
#   <dir>/results-quick (BENCH_OUT overrides), never over bench/results.
set -euo pipefail
shopt -s inherit_errexit
export LC_ALL=C

root=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=bench/common.sh
. "$root/bench/common.sh"
cd "$root"

seconds=${BENCH_SECURITY_SECONDS:-10}
rounds=${BENCH_ROUNDS:-3}
rate=${BENCH_SECURITY_RATE:-2000}
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
peer=0
run=$dir/security-run
out=${BENCH_OUT:-bench/results}
[ -z "${quick:-}" ] || out=${BENCH_OUT:-$dir/results-quick}
# shellcheck source=bench/brokers.sh
. "$root/bench/brokers.sh"

certs=$dir/certs
scram_user=bench
scram_password=bench-secret

# The client settings for listener kind $1 (--config arguments).
kind_configs() {
    case $1 in
        PLAINTEXT) ;;
        SSL) echo "--config security.protocol=SSL --config ssl.ca.location=$certs/ca.pem" ;;
        SASL_SSL)
            echo "--config security.protocol=SASL_SSL --config ssl.ca.location=$certs/ca.pem" \
                "--config sasl.mechanisms=SCRAM-SHA-512 --config sasl.username=$scram_user" \
                "--config sasl.password=$scram_password"
            ;;
    esac
}

round() {
    local round=$1 kind ssl_port sasl_port plaintext written configs
    ssl_port=$(free_port)
    sasl_port=$(free_port)
    flink_listeners="SSL://$host:$ssl_port,SASL_SSL://$host:$sasl_port"
    flink_overrides=(
        --override "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,SSL:SSL,SASL_SSL:SASL_SSL,CONTROLLER:PLAINTEXT"
        --override "inter.broker.listener.name=PLAINTEXT"
        --override "ssl.keystore.type=PEM"
        --override "ssl.keystore.location=$(cd "$certs" && pwd)/broker.pem"
        --override "sasl.enabled.mechanisms=SCRAM-SHA-512"
    )
    start_broker flink
    plaintext=$bootstrap
    python3 - "$plaintext" "$scram_user" "$scram_password" <<'PY'
import sys
from confluent_kafka.admin import (AdminClient, ScramCredentialInfo, ScramMechanism,
                                   UserScramCredentialUpsertion)
bootstrap, user, password = sys.argv[1:]
admin = AdminClient({"bootstrap.servers": bootstrap})
upsertion = UserScramCredentialUpsertion(user, ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, 4096), password.encode())
for future in admin.alter_user_scram_credentials([upsertion]).values():
    future.result()
PY
    for kind in PLAINTEXT SSL SASL_SSL; do
        create_topic "security-$kind"
    done
    for kind in PLAINTEXT SSL SASL_SSL; do
        case $kind in
            PLAINTEXT) bootstrap=$plaintext ;;
            SSL) bootstrap=$host:$ssl_port ;;
            SASL_SSL) bootstrap=$host:$sasl_port ;;
        esac
        configs=$(kind_configs "$kind")
        say "round $round: $kind produce for ${seconds} s"
        # shellcheck disable=SC2086
        client "round=$round kind=$kind phase=produce" produce --topic "security-$kind" \
            --acks all --size "$record_bytes" --count "$records_max" --duration "$seconds" $configs
        written=$(value "$(tail -n 1 "$run/results.txt")" records)
        say "round $round: $kind consume the $written records written"
        # shellcheck disable=SC2086
        client "round=$round kind=$kind phase=consume" consume --topic "security-$kind" \
            --count "$written" $configs
        say "round $round: $kind latency at $rate records/s for ${seconds} s"
        # shellcheck disable=SC2086
        client "round=$round kind=$kind phase=latency" latency --topic "security-$kind" \
            --acks all --size "$record_bytes" --rate "$rate" --duration "$seconds" --warmup 1 \
            $configs
    done
    bootstrap=$plaintext
    stop_broker
}

main() {
    prerequisites
    python3 -c 'import confluent_kafka' 2>/dev/null || python3 -m pip install --quiet confluent-kafka >&2
    rm -rf "$run" "$certs"
    mkdir -p "$run" "$out"
    HOSTS="localhost $host" bash deploy/security/make-certs.sh "$certs" >/dev/null
    run_rounds "seconds=$seconds rounds=$rounds rate=$rate partitions=$partitions record_bytes=$record_bytes"
    python3 - "$run" "$out/security.md" "$(bench_commit)" <<'PY'
import re, statistics, sys
from collections import defaultdict
run, out, commit = sys.argv[1:]
settings = open(f"{run}/settings.txt").read().split()
lines = [dict(re.findall(r"(\w+)=([^ ]+)", line)) for line in open(f"{run}/results.txt")]
by = defaultdict(dict)
for line in lines:
    by[(line["kind"], line["phase"])][line["round"]] = line
def median(values):
    return statistics.median(values) if values else float("nan")
def ratio(kind, phase, key):
    base = by[("PLAINTEXT", phase)]
    return median([float(line[key]) / float(base[r][key])
                   for r, line in by[(kind, phase)].items() if r in base])
def field(kind, phase, key, scale=1.0):
    return median([float(line[key]) / scale for line in by[(kind, phase)].values()])
def cpu_per_gib(kind, phase, key="server_cpu_s"):
    return median([float(line[key]) / (float(line["mib_per_s"]) * float(line["seconds"]) / 1024)
                   for line in by[(kind, phase)].values() if float(line["mib_per_s"]) > 0])
def busy(kind, phase, key):
    return median([float(line[key]) / float(line["seconds"]) for line in by[(kind, phase)].values()])
rows = ["| listener | produce MiB/s | ratio | broker CPU s/GiB | client CPU s/GiB | client CPU busy | "
        "consume MiB/s | ratio | latency p50 ms | p99 ms | p99.9 ms |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
for kind in ("PLAINTEXT", "SSL", "SASL_SSL"):
    rows.append(
        f"| {kind} | {field(kind, 'produce', 'mib_per_s'):.1f} | {ratio(kind, 'produce', 'mib_per_s'):.2f} | "
        f"{cpu_per_gib(kind, 'produce'):.2f} | {cpu_per_gib(kind, 'produce', 'client_cpu_s'):.2f} | "
        f"{busy(kind, 'produce', 'client_cpu_s'):.0%} | {field(kind, 'consume', 'mib_per_s'):.1f} | "
        f"{ratio(kind, 'consume', 'mib_per_s'):.2f} | {field(kind, 'latency', 'p50_us', 1000):.2f} | "
        f"{field(kind, 'latency', 'p99_us', 1000):.2f} | {field(kind, 'latency', 'p999_us', 1000):.2f} |")
text = f"""# Security: what TLS and SASL cost

Measured at {commit} by `bench/security.sh` (`make bench-security`, also part of `make bench`):
one Flink broker, freshly started per round, with PLAINTEXT, SSL and SASL_SSL (SCRAM-SHA-512)
listeners, driven by librdkafka (`bench/rdkafka_bench.c`, TLS by OpenSSL on the client side,
rustls on the broker's): acks=all produce as fast as the client goes, consume of what that
produce wrote, and delivery latency at a fixed rate. Ratios are against PLAINTEXT in the
same round (medians of per-round ratios); other figures are medians over the rounds. CPU
seconds per GiB produced are the broker's and the client's own (user + system); "client CPU
busy" is the client's CPU time over the run's length (the client has one CPU: near 100% means
the run measured the client). Settings: {' '.join(settings)}.

{chr(10).join(rows)}
"""
open(out, "w").write(text)
print(text)
PY
}

main
