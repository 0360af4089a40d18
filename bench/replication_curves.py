#!/usr/bin/env python3
"""Delivery latency against offered load, RF3 against RF1, on the 3 controllers + 3 brokers
cluster of bench/replication.py (one process each on loopback, `tests/integration/cluster.py`).

For each round (five by default; the order of the topics alternates) and each producer setting
(acks=all with linger.ms=0, and with linger.ms=1 plus batch.size=131072, OpenMessaging
Benchmark's), on a topic of 3 partitions led one per broker, RF1 and RF3 (min.insync.replicas=2):
- the maximum: `rdkafka_bench produce` unpaced (librdkafka, 1 KiB records, at most 5 requests in
  flight), with the CPU time the six processes spent, per MiB acknowledged;
- the curve: `rdkafka_bench latency` (open loop: sent on schedule whatever the answers, delivery
  reports taken by a thread of their own) at fixed rates and at fractions of that round's RF3
  maximum, p50 / p99 / p99.9 of send to delivery report, to the microsecond.

Placement (the rule for this machine, written down in bench/README.md): every node runs one
shard with cpu.pinning=none, as the test cluster does, and so does the client: six processes and
the client share the machine's CPUs and the kernel places them. In a deployment each broker has
cores of its own and pins its shards to them (cpu.pinning=auto).

Run: `make bench-replication-curves` (or `python3 bench/replication_curves.py` after `make dist`
and bench/brokers.sh's client build); writes bench/results/replication-curves.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import shlex
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import replication  # noqa: E402
from replication import (PARTITIONS, REPO, RF1_ASSIGNMENT, RF3_ASSIGNMENT, RF3_CONFIG,  # noqa: E402
                         commit, create_topic, other_servers)

from cluster import CPU_PINNING, Cluster  # noqa: E402

SETTINGS = {
    "linger.ms=0": ["--linger-ms", "0"],
    "linger.ms=1": ["--linger-ms", "1", "--batch-size", "131072"],
}
FIXED_RATES = [1000, 2000, 5000, 10000]
FRACTIONS = [0.1, 0.3, 0.5, 0.7]
RECORD_BYTES = 1024
LINE = re.compile(r"^rdkafka_bench mode=(\w+) (.*)$", re.MULTILINE)
# The targets, for RF3: at 5,000 records/s with linger.ms=0, and up to half the maximum
# with linger.ms=1.
TARGET_RATE, TARGET_P99_MS, TARGET_P999_MS, BACKLOG_P99_MS = 5000, 3.0, 5.0, 10.0


def client() -> Path:
    """bench/brokers.sh's rdkafka_bench (librdkafka built once into the bench cache)."""
    script = ("set -euo pipefail; . bench/common.sh; dir=target/bench-broker; run=$dir/run; "
              "peer=0; . bench/brokers.sh; "
              "[ -f \"$librdkafka/lib/librdkafka.so\" ] || build_librdkafka; mkdir -p \"$bin\"; "
              "build_c rdkafka_bench -I\"$librdkafka/include\" -L\"$librdkafka/lib\" "
              "-Wl,-rpath,\"$librdkafka/lib\" -lrdkafka -lpthread -lm; echo \"$bin/rdkafka_bench\"")
    built = subprocess.run(["bash", "-c", script], cwd=REPO, check=True, capture_output=True,
                           text=True)
    return REPO / built.stdout.strip().splitlines()[-1]


def run_bench(binary: Path, bootstrap: str, topic: str, mode: str, options: list[str]) -> dict:
    command = [str(binary), mode, "--brokers", bootstrap, "--topic", topic, "--partitions",
               str(PARTITIONS), "--size", str(RECORD_BYTES), "--acks", "all", "--in-flight", "5",
               *options]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    match = LINE.search(done.stdout)
    if done.returncode != 0 or not match:
        raise RuntimeError(f"{shlex.join(command)} failed ({done.returncode}):\n"
                           f"{done.stdout}\n{done.stderr[-2000:]}")
    return {key: value for key, value in (pair.split("=", 1) for pair in match.group(2).split())}


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU time of the processes so far (their threads included)."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])
    return total / ticks


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=4.0, help="per point, after warm-up")
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--max-seconds", type=float, default=4.0)
    parser.add_argument("--output", type=Path,
                        default=REPO / "bench" / "results" / "replication-curves.md")
    args = parser.parse_args()
    command = shlex.join(["python3", *sys.argv])
    others = other_servers()
    binary = client()
    version = subprocess.run([str(binary), "version"], capture_output=True, text=True).stdout
    started = time.monotonic()
    root = Path(tempfile.mkdtemp(prefix="flink-bench-curves-"))
    cluster = Cluster(root / "cluster", properties={"cpu.pinning": CPU_PINNING})
    # results[setting][topic][rate label] = [per-round dict]; maxima[setting][topic] = [...]
    results: dict = {setting: {"RF1": {}, "RF3": {}} for setting in SETTINGS}
    maxima: dict = {setting: {"RF1": [], "RF3": []} for setting in SETTINGS}
    try:
        cluster.format()
        cluster.start_all()
        create_topic(cluster, replication.TOPIC_RF1, RF1_ASSIGNMENT, {})
        create_topic(cluster, replication.TOPIC_RF3, RF3_ASSIGNMENT, RF3_CONFIG)
        topics = {"RF1": replication.TOPIC_RF1, "RF3": replication.TOPIC_RF3}
        pids = [node.process.pid for node in cluster.nodes.values() if node.process]
        bootstrap = cluster.bootstrap()
        for round_number in range(args.rounds):
            order = ["RF1", "RF3"] if round_number % 2 == 0 else ["RF3", "RF1"]
            for setting, options in SETTINGS.items():
                for label in order:
                    cpu_before = cpu_seconds(pids)
                    line = run_bench(binary, bootstrap, topics[label], "produce",
                                     [*options, "--duration", str(args.max_seconds)])
                    cpu = cpu_seconds(pids) - cpu_before
                    mib = float(line["mib_per_s"]) * float(line["seconds"])
                    maxima[setting][label].append({"records_per_s": float(line["records_per_s"]),
                                                   "mib_per_s": float(line["mib_per_s"]),
                                                   "cpu_s_per_mib": cpu / mib if mib else 0.0})
                rf3_max = maxima[setting]["RF3"][-1]["records_per_s"]
                rates = [(f"{rate:,}/s", rate) for rate in FIXED_RATES]
                rates += [(f"{int(fraction * 100)}% of RF3 max", int(fraction * rf3_max))
                          for fraction in FRACTIONS]
                for label in order:
                    for name, rate in rates:
                        cpu_before, wall_before = cpu_seconds(pids), time.monotonic()
                        line = run_bench(binary, bootstrap, topics[label], "latency",
                                         [*options, "--rate", str(max(rate, 1)),
                                          "--duration", str(args.seconds),
                                          "--warmup", str(args.warmup)])
                        cores = (cpu_seconds(pids) - cpu_before) / (time.monotonic() - wall_before)
                        results[setting][label].setdefault(name, []).append(
                            {"rate": rate, "sent": float(line["sent_rate"]), "cores": cores,
                             "p50": float(line["p50_us"]) / 1000,
                             "p99": float(line["p99_us"]) / 1000,
                             "p999": float(line["p999_us"]) / 1000,
                             "errors": int(line["errors"])})
                print(f"round {round_number + 1} {setting}: RF3 max {rf3_max:,.0f}/s",
                      file=sys.stderr)
    finally:
        cluster.stop_all(signal.SIGKILL)
        subprocess.run(["rm", "-rf", str(root)], check=False)
    text = report(args, command, others, version.strip(), results, maxima,
                  time.monotonic() - started)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(text)
    print(text)


def spread(values: list[float], digits: int = 2) -> str:
    """The median, with the lowest and highest round when there are several."""
    median = statistics.median(values)
    if len(values) == 1:
        return f"{median:.{digits}f}"
    return f"{median:.{digits}f} ({min(values):.{digits}f}–{max(values):.{digits}f})"


def report(args, command, others, version, results, maxima, wall_s) -> str:
    lines = [
        "# Replication: latency against offered load, RF3 against RF1", "",
        f"Measured {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} on {os.cpu_count()} "
        f"CPUs, kernel {platform.release()}, commit {commit()}; 3 controllers + 3 brokers on loopback (one shard each, "
        f"cpu.pinning={CPU_PINNING}, the client unpinned too: the kernel places all seven "
        f"processes on the machine's CPUs). Other `flink server` processes at the start: "
        f"{others}. Whole run {wall_s:.0f} s. Client: `rdkafka_bench` ({version}), 1 KiB "
        f"records, acks=all, at most 5 requests in flight, round-robin over 3 partitions led one "
        f"per broker; RF3 with min.insync.replicas=2.", "",
        f"Command: `{command}`", "",
        f"{args.rounds} rounds; each cell is the median over rounds with the lowest and highest in "
        f"brackets. Latency is send to delivery report, open loop, {args.seconds:g} s per point "
        f"after {args.warmup:g} s not counted.", "",
        "## Maximum (unpaced) and CPU", "",
        "| setting | RF1 records/s | RF3 records/s | RF3 / (RF1 / 3) | RF1 CPU s per MiB | "
        "RF3 CPU s per MiB | RF3 / RF1 CPU per MiB |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for setting in SETTINGS:
        rf1, rf3 = maxima[setting]["RF1"], maxima[setting]["RF3"]
        ideal = [3 * b["records_per_s"] / a["records_per_s"] for a, b in zip(rf1, rf3)]
        cpu = [b["cpu_s_per_mib"] / a["cpu_s_per_mib"] for a, b in zip(rf1, rf3)
               if a["cpu_s_per_mib"]]
        lines.append(
            f"| {setting} | {spread([m['records_per_s'] for m in rf1], 0)} | "
            f"{spread([m['records_per_s'] for m in rf3], 0)} | **{spread(ideal)}** | "
            f"{spread([m['cpu_s_per_mib'] for m in rf1], 3)} | "
            f"{spread([m['cpu_s_per_mib'] for m in rf3], 3)} | {spread(cpu)} |")
    lines += ["", "RF3 / (RF1 / 3): on one machine every byte is written three times, so a third "
              "of RF1's rate is the work-conserving ideal (goal ≥ 0.9). CPU is the user + system "
              "time of the six processes over the unpaced run, per MiB of values acknowledged.",
              ""]
    for setting in SETTINGS:
        lines += [f"## Latency, {setting}", "",
                  "| offered | RF1 p50 ms | RF1 p99 ms | RF1 p99.9 ms | RF3 p50 ms | RF3 p99 ms | "
                  "RF3 p99.9 ms | RF3 held records/s | CPUs busy RF1 / RF3 |",
                  "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
        for name, rf3_points in results[setting]["RF3"].items():
            rf1_points = results[setting]["RF1"].get(name, [])
            cells = []
            for points in (rf1_points, rf3_points):
                cells += [spread([p[key] for p in points]) if points else "–"
                          for key in ("p50", "p99", "p999")]
            held = spread([p["sent"] for p in rf3_points], 0)
            cores = " / ".join(f"{statistics.median(p['cores'] for p in points):.2f}"
                               if points else "–" for points in (rf1_points, rf3_points))
            lines.append(f"| {name} | {' | '.join(cells)} | {held} | {cores} |")
        lines.append("")
    lines += ["CPUs busy: user + system time of the six processes over the point, per second of "
              "it (the client's own CPU is not counted; the machine has "
              f"{os.cpu_count()}).", ""]
    lines += targets(results)
    errors = sum(p["errors"] for setting in results.values() for label in setting.values()
                 for points in label.values() for p in points)
    lines += ["", f"Delivery errors over the whole run: {errors}.", ""]
    return "\n".join(lines)


def targets(results) -> list[str]:
    """The issue's targets against what was measured (medians over rounds)."""
    out = ["## Targets (RF3)", ""]
    at = results["linger.ms=0"]["RF3"].get(f"{TARGET_RATE:,}/s", [])
    if at:
        p99 = statistics.median(p["p99"] for p in at)
        p999 = statistics.median(p["p999"] for p in at)
        out.append(f"- linger.ms=0 at {TARGET_RATE:,} records/s: p99 {p99:.2f} ms (target ≤ "
                   f"{TARGET_P99_MS:g}: {'met' if p99 <= TARGET_P99_MS else 'NOT met'}), p99.9 "
                   f"{p999:.2f} ms (target ≤ {TARGET_P999_MS:g}: "
                   f"{'met' if p999 <= TARGET_P999_MS else 'NOT met'}).")
    lingering = results["linger.ms=1"]["RF3"]
    upto_half = [name for name in lingering if name.endswith("of RF3 max")
                 and int(name.split("%")[0]) <= 50]
    worst = max((statistics.median(p["p99"] for p in lingering[name]), name)
                for name in upto_half) if upto_half else None
    if worst:
        out.append(f"- linger.ms=1 up to 50% of RF3's maximum: worst p99 {worst[0]:.2f} ms at "
                   f"{worst[1]} (no backlog: ≤ {BACKLOG_P99_MS:g} ms: "
                   f"{'met' if worst[0] <= BACKLOG_P99_MS else 'NOT met'}).")
    return out


if __name__ == "__main__":
    main()
