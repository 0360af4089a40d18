#!/usr/bin/env python3
"""Turns the raw lines bench/broker.sh collected (<run>/results.txt, <run>/settings.txt and the
e2e percentile curves <run>/e2e-*.csv) into bench/results/broker.md and the figures beside it:
broker-throughput.png (bars, with the ceilings as lines) and broker-latency-acks*.png (percentile
curves, HdrHistogram style).

Figures are medians over the rounds; a ratio is the median of the per-round ratios (Flink's round
r against the null sink's or the peer's round r, measured back to back), as in bench/storage.sh.
Nothing here is asserted: the goals are reported as met or not met. Without the peer
(--no-peer), its columns and goals say "not measured".
"""

from __future__ import annotations

import argparse
import csv
import datetime
import os
import platform
import re
import statistics
import subprocess
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402 (after the backend is chosen)

TARGETS = ("flink", "null", "tansu")
# The targets that return what was produced, so that end-to-end latency means something.
E2E_TARGETS = ("flink", "tansu")
LABELS = {"flink": "Flink", "null": "null sink", "tansu": "tansu (peer)"}
COLOURS = {"flink": "#1f77b4", "null": "#7f7f7f", "tansu": "#ff7f0e"}
NOT_MEASURED = "not measured"
PERCENTILES = (("p50", "p50_us"), ("p90", "p90_us"), ("p99", "p99_us"), ("p99.9", "p999_us"),
               ("p99.99", "p9999_us"), ("max", "max_us"))
# The goals of the performance issue: measured and reported, never asserted.
PRODUCER_PEER_GOAL = 3.0
PRODUCER_CEILING_GOAL = 0.8
# Flink against the null sink (the client's ceiling): produce acks=1, acks=all, consume.
NULL_SINK_GOALS = (("produce", "1", 0.8), ("produce", "all", 0.7), ("consume", None, 0.8))
E2E_P99_GOAL_US = 1000.0
E2E_P999_GOAL_US = 5000.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--run", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--commit", default="unknown")
    parser.add_argument("--data-dir", default="target/bench-broker")
    parser.add_argument("--tansu", default="tansu")
    arguments = parser.parse_args()
    report = Report(arguments.run, arguments)
    arguments.out.mkdir(parents=True, exist_ok=True)
    report.plot_throughput(arguments.out / "broker-throughput.png")
    for acks in report.e2e_acks():
        report.plot_latency(acks, arguments.out / f"broker-latency-acks{acks}.png")
    markdown = report.markdown()
    (arguments.out / "broker.md").write_text(markdown)
    print(markdown)


def parse_line(line: str) -> dict[str, str]:
    """The key=value tokens of one results line (other tokens, like the tool's name, dropped)."""
    return dict(token.split("=", 1) for token in line.split() if "=" in token)


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def fmt(value: float, digits: int = 0) -> str:
    if value != value:  # NaN: nothing measured
        return "–"
    return f"{value:,.{digits}f}"


class Report:
    def __init__(self, run: Path, arguments: argparse.Namespace):
        self.run = run
        self.arguments = arguments
        self.settings: dict[str, str] = {}
        for line in (run / "settings.txt").read_text().splitlines():
            self.settings.update(parse_line(line))
        self.lines = [parse_line(line) for line in (run / "results.txt").read_text().splitlines()
                      if line.strip()]
        self.peer = self.settings.get("peer", "1") == "1" and any(
            line.get("broker") == "tansu" for line in self.lines)
        self.targets = [target for target in TARGETS
                        if any(line.get("broker") == target for line in self.lines)]

    # --- selection ------------------------------------------------------------------------------

    def select(self, broker: str, mode: str, acks: str | None = None) -> list[dict[str, str]]:
        return sorted(
            (line for line in self.lines
             if line.get("broker") == broker and line.get("mode") == mode
             and (acks is None or line.get("acks") == acks)),
            key=lambda line: int(line["round"]))

    def values(self, broker: str, mode: str, key: str, acks: str | None = None) -> list[float]:
        return [float(line[key]) for line in self.select(broker, mode, acks)]

    def ceiling(self, name: str, key: str = "mib_per_s") -> list[float]:
        return [float(line[key]) for line in self.lines if line.get("ceiling") == name]

    def ratio(self, mode: str, key: str, acks: str | None = None, baseline: str = "tansu") -> float:
        """Median over rounds of Flink's value over the baseline's in the same round."""
        flink = {line["round"]: float(line[key]) for line in self.select("flink", mode, acks)}
        base = {line["round"]: float(line[key]) for line in self.select(baseline, mode, acks)}
        return median([flink[r] / base[r] for r in flink if r in base and base[r] > 0])

    def cpu_ms_per_mib(self, target: str, mode: str, acks: str | None = None) -> float:
        """Median over rounds of the target's CPU milliseconds per MiB the client moved."""
        record_bytes = int(self.settings.get("record_bytes", "1024"))
        values = []
        for line in self.select(target, mode, acks):
            mib = int(line["records"]) * record_bytes / 1048576
            if "server_cpu_s" in line and mib > 0:
                values.append(float(line["server_cpu_s"]) * 1000 / mib)
        return median(values)

    def peer_cell(self, text: str) -> str:
        return text if self.peer else NOT_MEASURED

    def e2e_acks(self) -> list[str]:
        return sorted({line["acks"] for line in self.lines if line.get("mode") == "e2e"},
                      key=lambda acks: (acks != "all", acks))

    def producer_ceiling(self) -> tuple[float, str]:
        disk, loopback = median(self.ceiling("disk")), median(self.ceiling("loopback"))
        return (disk, "disk") if disk <= loopback else (loopback, "loopback")

    # --- figures --------------------------------------------------------------------------------

    def throughput_rows(self) -> list[tuple[str, str, str | None, str]]:
        """(label, mode, acks, ceiling name) of each throughput scenario."""
        _, lower = self.producer_ceiling()
        return [("produce acks=1", "produce", "1", lower),
                ("produce acks=all", "produce", "all", lower),
                ("consume", "consume", None, "loopback")]

    def plot_throughput(self, path: Path) -> None:
        rows = self.throughput_rows()
        figure, axes = plt.subplots(figsize=(8, 4.8))
        width = 0.8 / len(self.targets)
        for index, broker in enumerate(self.targets):
            heights = [median(self.values(broker, mode, "mib_per_s", acks))
                       for _, mode, acks, _ in rows]
            positions = [x + (index - (len(self.targets) - 1) / 2) * width
                         for x in range(len(rows))]
            bars = axes.bar(positions, heights, width, label=LABELS[broker], color=COLOURS[broker])
            axes.bar_label(bars, labels=[fmt(h) for h in heights], fontsize=8, padding=2)
        for name, style in (("disk", "--"), ("loopback", ":")):
            level = median(self.ceiling(name))
            axes.axhline(level, color="black", linestyle=style, linewidth=1,
                         label=f"{name} ceiling {fmt(level)} MiB/s")
        memcpy = median(self.ceiling("memcpy"))
        axes.set_xticks(range(len(rows)), [label for label, *_ in rows])
        axes.set_ylabel("MiB/s (1 KiB records; median of rounds)")
        axes.set_title(f"Throughput, 2 partitions, librdkafka (memcpy ceiling {fmt(memcpy)} MiB/s)",
                       fontsize=10)
        axes.legend(fontsize=8, loc="upper right")
        axes.grid(axis="y", alpha=0.3)
        figure.tight_layout()
        figure.savefig(path, dpi=110)
        plt.close(figure)

    def median_curve(self, broker: str, acks: str) -> list[tuple[float, float]]:
        """The percentile curve of the round whose p99 is the median of the rounds."""
        lines = self.select(broker, "e2e", acks)
        if not lines:
            return []
        ordered = sorted(lines, key=lambda line: float(line["p99_us"]))
        chosen = ordered[(len(ordered) - 1) // 2]
        path = self.run / f"e2e-{broker}-acks{acks}-{chosen['round']}.csv"
        with open(path) as file:
            return [(float(row["percentile"]), float(row["latency_us"]))
                    for row in csv.DictReader(file)]

    def plot_latency(self, acks: str, path: Path) -> None:
        figure, axes = plt.subplots(figsize=(8, 4.8))
        for broker in E2E_TARGETS:
            curve = self.median_curve(broker, acks)
            if not curve:
                continue
            samples = int(self.select(broker, "e2e", acks)[0]["samples"])
            # x is 1 / (1 - p): the tail spreads over decades, as in HdrHistogram plots; the max
            # sits at 1 / (1 / samples).
            xs = [1 / (1 - p / 100) if p < 100 else samples for p, _ in curve]
            ys = [latency / 1000 for _, latency in curve]
            axes.plot(xs, ys, label=LABELS[broker], color=COLOURS[broker], linewidth=1.6)
        ticks = [(2, "50%"), (10, "90%"), (100, "99%"), (1000, "99.9%"), (10000, "99.99%"),
                 (100000, "99.999%")]
        axes.set_xscale("log")
        axes.set_yscale("log")
        axes.set_xticks([x for x, _ in ticks], [label for _, label in ticks])
        axes.set_xlim(1, None)
        if acks == "all":
            axes.plot([100], [E2E_P99_GOAL_US / 1000], marker="v", color="green", linestyle="",
                      label="goal p99 < 1 ms")
            axes.plot([1000], [E2E_P999_GOAL_US / 1000], marker="v", color="darkgreen",
                      linestyle="", label="goal p99.9 < 5 ms")
        dsync = self.ceiling("dsync", "p50_us")
        if dsync and acks == "all":
            axes.axhline(median(dsync) / 1000, color="grey", linestyle=":", linewidth=1,
                         label="one 4 KiB O_DSYNC write, p50")
        axes.set_xlabel("percentile")
        axes.set_ylabel("end-to-end latency, ms (log)")
        axes.set_title(f"End-to-end latency, acks={acks}, {self.settings.get('e2e_rate')} records/s "
                       "of 1 KiB (median round)", fontsize=10)
        axes.grid(which="both", alpha=0.3)
        axes.legend(fontsize=8, loc="best")
        figure.tight_layout()
        figure.savefig(path, dpi=110)
        plt.close(figure)

    # --- the markdown ---------------------------------------------------------------------------

    def markdown(self) -> str:
        out: list[str] = []
        out += self.header()
        out += self.ceilings_section()
        out += self.throughput_section()
        out += self.latency_section()
        out += self.goals_section()
        out += self.rounds_section()
        return "\n".join(out) + "\n"

    def header(self) -> list[str]:
        s = self.settings
        if self.peer:
            peer = (f"- peer: tansu {s.get('tansu_version')} (`{self.arguments.tansu}`), storage "
                    "engine libsql (`--storage-engine sqlite://tansu.db`, one SQLite file in a fresh "
                    "directory; tansu sets `journal_mode=WAL`, `synchronous=NORMAL`, so a commit is "
                    "not fsynced: durable against a crash of the process, not of the machine)")
        else:
            peer = ("- peer: **not measured** in this run (`--no-peer` / `BENCH_PEER=0`): its "
                    "columns and goals say so")
        basis = s.get("e2e_rate_basis", "tansu")
        basis_text = {"tansu": "50% of the peer's median acks=all rate",
                      "flink": "50% of Flink's own median acks=all rate, the peer not being measured",
                      "set": "set with BENCH_E2E_RATE"}.get(basis, basis)
        return [
            "# Brokers: Flink against the null sink and a peer (tansu), and against the machine's "
            "ceilings",
            "",
            "Generated by `bench/broker.sh` (`make bench`); see bench/README.md, section \"Brokers: "
            "Flink against a peer\", for the method and how to read it.",
            "",
            f"- date: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M UTC}",
            f"- commit: {self.arguments.commit}",
            f"- machine: {machine()}",
            f"- data directory: {self.arguments.data_dir} ({filesystem(self.arguments.data_dir)})",
            f"- client: bench/rdkafka_bench.c on librdkafka {s.get('librdkafka', '?')} (built from "
            "the sources crates.io's rdkafka-sys vendors; Debian's 2.0.2 cannot read tansu's "
            "ApiVersions response), the same binary and settings for both brokers; topic of "
            f"{s.get('partitions')} partitions, replication 1, {s.get('record_bytes')}-byte "
            "records, round-robin over the partitions, no compression, no idempotence",
            "- Flink: the dist's config/server.properties (defaults) with its own ports and "
            "log.dirs; acks=all fsyncs each produce request, acks=1 is write-behind; one shard "
            "per CPU it may run on",
            "- null sink: bench/null-sink, a Kafka-protocol server that acknowledges Produce at "
            "once and stores nothing, and answers Fetch at once with synthetic batches: the most "
            "any broker can get from this client on this machine (it has no end-to-end figure: "
            "it returns no record it was sent)",
            peer,
            f"- pinning: {pinning_text(s)}",
            f"- throughput: producers run {s.get('seconds')} s each as fast as the client goes "
            "(linger.ms=5, up to 100000 records queued in the client); the consumer reads what "
            "the acks=all run wrote; "
            f"{s.get('rounds')} rounds after one untimed warm-up round, each broker freshly "
            "started on an empty directory per round, in the order peer, null sink, Flink",
            f"- latency: {s.get('e2e_rate')} records/s ({basis_text}) for "
            f"{s.get('e2e_seconds')} s after 1 s not counted, linger.ms=0, at most 5 requests in "
            "flight per connection, fetch.wait.max.ms=10 "
            "(tansu answers a fetch only after the whole wait, data or not, so 10 ms is its "
            "floor; Flink answers when data arrives)",
            "- figures are medians over the rounds; a ratio is the median of the per-round ratios",
            "",
        ]

    def ceilings_section(self) -> list[str]:
        dsync = [line for line in self.lines if line.get("ceiling") == "dsync"]
        memcpy = self.ceiling("memcpy")
        out = [
            "## Ceilings",
            "",
            "| ceiling | median | rounds |",
            "|---|---:|---|",
            f"| disk: sequential write, dd `bs=1M oflag=direct conv=fdatasync` "
            f"({self.settings.get('dd_mib')} MiB) | {fmt(median(self.ceiling('disk')))} MiB/s | "
            f"{', '.join(fmt(v) for v in self.ceiling('disk'))} |",
            f"| loopback TCP: iperf3, one stream, 5 s | {fmt(median(self.ceiling('loopback')))} "
            f"MiB/s | {', '.join(fmt(v) for v in self.ceiling('loopback'))} |",
            f"| memory: memcpy of 512 MiB, one thread | {fmt(median(memcpy))} MiB/s | median of 5 |",
        ]
        if dsync:
            line = dsync[0]
            out.append(
                f"| disk: one 4 KiB `O_DIRECT\\|O_DSYNC` write (the floor of an fsynced request) | "
                f"p50 {line['p50_us']} µs, p99 {line['p99_us']} µs, p99.9 {line['p999_us']} µs | "
                f"{line['count']} writes, {line['writes_per_s']}/s one at a time |")
        return out + [""]

    def throughput_section(self) -> list[str]:
        out = [
            "## Throughput",
            "",
            "![Throughput of Flink, the null sink and the peer, with the disk and loopback "
            "ceilings](broker-throughput.png)",
            "",
            "| scenario | Flink MiB/s (records/s) | null sink MiB/s (records/s) | peer MiB/s "
            "(records/s) | **Flink / null sink** | **Flink / peer** | **Flink / ceiling** |",
            "|---|---:|---:|---:|---:|---:|---:|",
        ]
        for label, mode, acks, ceiling_name in self.throughput_rows():
            cells = []
            for target in TARGETS:
                mib = median(self.values(target, mode, "mib_per_s", acks))
                records = median(self.values(target, mode, "records_per_s", acks))
                cells.append(f"{fmt(mib, 1)} ({fmt(records)})")
            flink = median(self.values("flink", mode, "mib_per_s", acks))
            ceiling = median(self.ceiling(ceiling_name))
            out.append(
                f"| {label} | {cells[0]} | {cells[1]} | {self.peer_cell(cells[2])} | "
                f"**{fmt(self.ratio(mode, 'mib_per_s', acks, 'null'), 2)}** | "
                f"**{self.peer_cell(fmt(self.ratio(mode, 'mib_per_s', acks), 2))}** | "
                f"**{fmt(flink / ceiling, 2)}** of {ceiling_name} |")
        out += ["", "CPU time of the target's process per MiB the client moved (utime + stime of "
                "all its threads, from /proc/<pid>/stat before and after each client run, start-up "
                "and drain included; median of rounds). The target runs alone on its CPUs, so this "
                "is what it spends per MiB; the null sink's is the cost of the protocol alone:", "",
                "| scenario | Flink CPU ms/MiB | null sink CPU ms/MiB | peer CPU ms/MiB | "
                "Flink / null sink |", "|---|---:|---:|---:|---:|"]
        for label, mode, acks, _ in self.throughput_rows():
            flink, null, peer = (self.cpu_ms_per_mib(target, mode, acks) for target in TARGETS)
            out.append(f"| {label} | {fmt(flink, 2)} | {fmt(null, 2)} | "
                       f"{self.peer_cell(fmt(peer, 2))} | {fmt(flink / null, 2)} |")
        out += ["", "Producer delivery latency in these runs (produce call to delivery report, "
                "median of rounds; at saturation this is mostly time queued in the client):", "",
                "| scenario | Flink p50 / p99 ms | null sink p50 / p99 ms | peer p50 / p99 ms |",
                "|---|---:|---:|---:|"]
        for acks in ("1", "all"):
            cells = []
            for broker in TARGETS:
                p50 = median(self.values(broker, "produce", "p50_us", acks)) / 1000
                p99 = median(self.values(broker, "produce", "p99_us", acks)) / 1000
                cells.append(f"{fmt(p50, 1)} / {fmt(p99, 1)}")
            out.append(f"| produce acks={acks} | {cells[0]} | {cells[1]} | "
                       f"{self.peer_cell(cells[2])} |")
        return out + [""]

    def latency_section(self) -> list[str]:
        out = ["## End-to-end latency at a fixed rate", "",
               "Flink and the peer only: the null sink returns no record it was sent.", ""]
        for acks in self.e2e_acks():
            out += [f"### acks={acks}", "",
                    f"![End-to-end latency percentiles, acks={acks}](broker-latency-acks{acks}.png)",
                    "",
                    "| percentile | Flink µs | peer µs | Flink / peer |", "|---|---:|---:|---:|"]
            for label, key in PERCENTILES:
                flink = median(self.values("flink", "e2e", key, acks))
                peer = median(self.values("tansu", "e2e", key, acks))
                out.append(f"| {label} | {fmt(flink)} | {self.peer_cell(fmt(peer))} | "
                           f"{self.peer_cell(fmt(self.ratio('e2e', key, acks), 3))} |")
            cells = []
            for broker in E2E_TARGETS:
                sent = median(self.values(broker, "e2e", "sent_rate", acks))
                samples = median(self.values(broker, "e2e", "samples", acks))
                cells.append(f"{fmt(sent)} records/s sent, {fmt(samples)} samples")
            out += [f"| rate held | {cells[0]} | {self.peer_cell(cells[1])} | |", ""]
        return out

    def goals_section(self) -> list[str]:
        ceiling, ceiling_name = self.producer_ceiling()
        out = ["## Goals (measured, not asserted)", ""]
        for mode, acks, goal in NULL_SINK_GOALS:
            ratio = self.ratio(mode, "mib_per_s", acks, "null")
            label = f"producer acks={acks}" if mode == "produce" else "consumer"
            out.append(f"- {label} ≥ {goal:g}× the null sink: {fmt(ratio, 2)}× — "
                       f"**{met(ratio >= goal)}**")
        for acks in ("1", "all"):
            peer_ratio = self.ratio("produce", "mib_per_s", acks)
            flink = median(self.values("flink", "produce", "mib_per_s", acks))
            if self.peer:
                out.append(f"- producer acks={acks} ≥ {PRODUCER_PEER_GOAL:g}× the peer: "
                           f"{fmt(peer_ratio, 2)}× — **{met(peer_ratio >= PRODUCER_PEER_GOAL)}**")
            else:
                out.append(f"- producer acks={acks} ≥ {PRODUCER_PEER_GOAL:g}× the peer: "
                           f"**{NOT_MEASURED}** (no peer in this run)")
            out.append(f"- producer acks={acks} ≥ {PRODUCER_CEILING_GOAL:.0%} of the lower of disk "
                       f"and loopback ({ceiling_name}, {fmt(ceiling)} MiB/s): "
                       f"{fmt(flink / ceiling, 2)} — "
                       f"**{met(flink / ceiling >= PRODUCER_CEILING_GOAL)}**")
        p99 = median(self.values("flink", "e2e", "p99_us", "all"))
        p999 = median(self.values("flink", "e2e", "p999_us", "all"))
        out.append(f"- end-to-end at 50% load, acks=all, fsync on: p99 {fmt(p99)} µs < "
                   f"{E2E_P99_GOAL_US:g} µs — **{met(p99 < E2E_P99_GOAL_US)}**; p99.9 {fmt(p999)} "
                   f"µs < {E2E_P999_GOAL_US:g} µs — **{met(p999 < E2E_P999_GOAL_US)}**")
        return out + [""]

    def rounds_section(self) -> list[str]:
        out = ["## Every round", "",
               "| target | round | run | MiB/s | records/s | records | p50 µs | p99 µs | "
               "p99.9 µs | max µs | target CPU s |",
               "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for broker in self.targets:
            for line in sorted((line for line in self.lines if line.get("broker") == broker),
                               key=lambda line: (line["mode"], line.get("acks", ""),
                                                 int(line["round"]))):
                run = line["mode"] + (f" acks={line['acks']}" if "acks" in line else "")
                if line["mode"] == "e2e":
                    run += f" at {line['rate']}/s"
                out.append(
                    f"| {broker} | {line['round']} | {run} | {line.get('mib_per_s', '')} | "
                    f"{line.get('records_per_s', line.get('sent_rate', ''))} | "
                    f"{line.get('records', '')} | {line.get('p50_us', '')} | "
                    f"{line.get('p99_us', '')} | {line.get('p999_us', '')} | "
                    f"{line.get('max_us', '')} | {line.get('server_cpu_s', '')} |")
        return out


def met(condition: bool) -> str:
    return "met" if condition else "not met"


def pinning_text(settings: dict[str, str]) -> str:
    client, server = settings.get("client_cpus"), settings.get("server_cpus")
    if not client or client == "unpinned":
        return "none (client and target share every CPU)"
    return (f"the client runs on CPU(s) {client} and the target (each in turn, the same for every "
            f"target, iperf3's server too) on CPU(s) {server}, with taskset; Flink then runs one "
            "shard per CPU it was given")


def machine() -> str:
    cpu = "unknown CPU"
    with open("/proc/cpuinfo") as file:
        for line in file:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    with open("/proc/meminfo") as file:
        kib = int(re.search(r"MemTotal:\s+(\d+)", file.read()).group(1))
    load = " ".join(f"{value:.2f}" for value in os.getloadavg())
    return (f"{os.cpu_count()} CPUs ({cpu}), {kib / 1048576:.1f} GiB, kernel {platform.release()}; "
            f"load average at the end {load}")


def filesystem(path: str) -> str:
    Path(path).mkdir(parents=True, exist_ok=True)
    try:
        output = subprocess.run(["df", "-T", path], capture_output=True, text=True,
                                check=True).stdout.splitlines()[1].split()
        return f"{output[1]} on {output[0]}"
    except (subprocess.CalledProcessError, IndexError):
        return "unknown filesystem"


if __name__ == "__main__":
    main()
