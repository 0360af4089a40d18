#!/usr/bin/env python3
"""Turns the raw lines bench/latency.sh collected (<run>/results.txt, <run>/settings.txt) into
bench/results/latency.md and one plot per producer setting, latency-<setting>.png: delivery
latency (send to delivery report; p50, p99, p99.9, log scale) against the offered rate, for
Flink, the null sink and the peer on the same axes.

Every offered rate is a fraction of Flink's own maximum with that setting, measured first in the
same run; the null sink and the peer get the same absolute rates. Nothing is asserted: the goals
are reported as met or not met.
"""

from __future__ import annotations

import argparse
import datetime
from pathlib import Path

import matplotlib
import matplotlib.ticker

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402 (after the backend is chosen)

from broker_report import filesystem, fmt, machine, met, parse_line, pinning_text  # noqa: E402

TARGETS = ("flink", "null", "tansu")
LABELS = {"flink": "Flink", "null": "null sink", "tansu": "tansu (peer)"}
COLOURS = {"flink": "#1f77b4", "null": "#7f7f7f", "tansu": "#ff7f0e"}
PERCENTILES = (("p50", "p50_us", "-"), ("p99", "p99_us", "--"), ("p99.9", "p999_us", ":"))
SETTING_LABELS = {
    "acks1-linger0": "acks=1, linger.ms=0",
    "acks1-linger1": "acks=1, linger.ms=1, batch.size=131072",
    "acksall-linger0": "acks=all, linger.ms=0",
    "acksall-linger1": "acks=all, linger.ms=1, batch.size=131072",
}
# The goals of the performance issue: measured and reported, never asserted.
FIXED_RATE_GOAL = ("acksall-linger0", 10000.0, 1000.0, 2000.0)  # setting, rate, p99 µs, p99.9 µs
NO_BACKLOG_GOAL = ("acksall-linger1", 50.0, 5000.0)  # setting, up to % of max, p99 µs
NULL_SINK_FACTOR_GOAL = (("acks1-linger0", "acks1-linger1"), 50.0, 1.5)
RATE_HELD = 0.95


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
    for setting in report.setting_names():
        report.plot(setting, arguments.out / f"latency-{setting}.png")
    markdown = report.markdown()
    (arguments.out / "latency.md").write_text(markdown)
    print(markdown)


class Report:
    def __init__(self, run: Path, arguments: argparse.Namespace):
        self.arguments = arguments
        self.settings: dict[str, str] = {}
        for line in (run / "settings.txt").read_text().splitlines():
            self.settings.update(parse_line(line))
        self.lines = [parse_line(line) for line in (run / "results.txt").read_text().splitlines()
                      if line.strip()]
        self.peer = self.settings.get("peer") == "1" and any(
            line.get("target") == "tansu" for line in self.lines)

    def setting_names(self) -> list[str]:
        names = self.settings.get("settings", "").split(",")
        return [name for name in names if any(line.get("setting") == name for line in self.lines)]

    def find(self, target: str, setting: str, point: str, **match: str) -> list[dict[str, str]]:
        return [line for line in self.lines
                if line.get("target") == target and line.get("setting") == setting
                and line.get("point") == point
                and all(line.get(key) == value for key, value in match.items())]

    def one(self, target: str, setting: str, point: str, **match: str) -> dict[str, str] | None:
        found = self.find(target, setting, point, **match)
        return found[0] if found else None

    def max_rate(self, target: str, setting: str) -> float:
        line = self.one(target, setting, "max")
        return float(line["records_per_s"]) if line else float("nan")

    def percents(self, setting: str) -> list[str]:
        found = {line["percent"] for line in self.find("flink", setting, "percent")}
        return sorted(found, key=float)

    def rate_points(self, setting: str) -> list[tuple[str, dict[str, str]]]:
        """(label, {target: line}) for every offered rate of the setting, lowest first."""
        points = []
        for percent in self.percents(setting):
            lines = {target: self.one(target, setting, "percent", percent=percent)
                     for target in TARGETS}
            points.append((f"{percent}%", {t: line for t, line in lines.items() if line}))
        for line in self.find("flink", setting, "fixed"):
            lines = {target: self.one(target, setting, "fixed", rate=line["rate"])
                     for target in TARGETS}
            points.append(("fixed", {t: line for t, line in lines.items() if line}))
        return sorted(points, key=lambda point: float(point[1]["flink"]["rate"]))

    # --- figures --------------------------------------------------------------------------------

    def plot(self, setting: str, path: Path) -> None:
        figure, axes = plt.subplots(figsize=(10.5, 5))
        flink_max = self.max_rate("flink", setting)
        for target in TARGETS:
            lines = sorted(self.find(target, setting, "percent") + self.find(target, setting, "fixed"),
                           key=lambda line: float(line["rate"]))
            if not lines:
                continue
            rates = [float(line["rate"]) for line in lines]
            for label, key, style in PERCENTILES:
                axes.plot(rates, [float(line[key]) / 1000 for line in lines], linestyle=style,
                          marker="o", markersize=3, color=COLOURS[target], linewidth=1.4,
                          label=f"{LABELS[target]} {label}")
        if setting == FIXED_RATE_GOAL[0]:
            axes.plot([FIXED_RATE_GOAL[1]] * 2, [FIXED_RATE_GOAL[2] / 1000, FIXED_RATE_GOAL[3] / 1000],
                      marker="v", color="green", linestyle="", label="goal at 10,000/s: p99 1 ms, p99.9 2 ms")
        if setting == NO_BACKLOG_GOAL[0] and flink_max == flink_max:
            axes.plot([0, flink_max * NO_BACKLOG_GOAL[1] / 100], [NO_BACKLOG_GOAL[2] / 1000] * 2,
                      color="green", linewidth=1, label="goal: p99 ≤ 5 ms up to 50% of max")
        if flink_max == flink_max:
            axes.axvline(flink_max, color="black", linestyle=":", linewidth=1,
                         label=f"Flink's maximum {fmt(flink_max)}/s")
        axes.set_xscale("log")
        axes.set_yscale("log")
        if flink_max == flink_max:
            # After the scale is set, which would reset these ticks' labels.
            top = axes.secondary_xaxis("top", functions=(lambda rate: rate / flink_max * 100,
                                                         lambda percent: percent * flink_max / 100))
            percents = [float(percent) for percent in self.percents(setting)]
            top.set_ticks(percents, labels=[f"{percent:g}%" for percent in percents], fontsize=7)
            top.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())
            top.set_xlabel("% of Flink's maximum", fontsize=8)
        axes.set_xlabel("offered rate, records/s of 1 KiB (log)")
        axes.set_ylabel("delivery latency, ms (log)")
        axes.set_title(f"Delivery latency against offered load: {SETTING_LABELS.get(setting, setting)}, "
                       "2 partitions", fontsize=10)
        axes.grid(which="both", alpha=0.3)
        axes.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1))
        figure.tight_layout()
        figure.savefig(path, dpi=110)
        plt.close(figure)

    # --- the markdown ---------------------------------------------------------------------------

    def markdown(self) -> str:
        out = self.header() + self.max_section()
        for setting in self.setting_names():
            out += self.setting_section(setting)
        out += self.e2e_section() + self.goals_section()
        return "\n".join(out) + "\n"

    def header(self) -> list[str]:
        s = self.settings
        peer = (f"tansu {s.get('tansu_version')} (`{self.arguments.tansu}`, libsql engine, as in "
                "broker.md)" if self.peer else
                "**not measured** in this run (`--no-peer` / `BENCH_PEER=0`)")
        return [
            "# Delivery latency against offered load: Flink, the null sink and a peer",
            "",
            "Generated by `bench/latency.sh` (`make bench-latency`); see bench/README.md, section "
            "\"Latency against offered load\", for the method and how to read it.",
            "",
            f"- date: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M UTC}",
            f"- commit: {self.arguments.commit}",
            f"- machine: {machine()}",
            f"- data directory: {self.arguments.data_dir} ({filesystem(self.arguments.data_dir)})",
            f"- client: bench/rdkafka_bench.c on librdkafka {s.get('librdkafka', '?')}, the same "
            "binary and settings for every target; a topic of "
            f"{s.get('partitions')} partitions, {s.get('record_bytes')}-byte records round-robin, "
            f"no compression, no idempotence, at most {s.get('in_flight')} requests in flight per "
            "connection",
            "- targets: Flink from the dist with its default config (acks=all fsyncs before it "
            "answers, acks=1 is write-behind); the null sink (bench/null-sink: acknowledges at "
            f"once, stores nothing); peer: {peer}",
            f"- pinning: {pinning_text(s)}",
            f"- each point: open-loop sends at the offered rate for {s.get('point_seconds')} s after "
            f"{s.get('warmup')} s not counted; latency is send to delivery report, taken by a "
            "thread that waits for the reports; offered rates are "
            f"{s.get('percents', '').replace(',', '%, ')}% of Flink's own maximum for the setting "
            f"(measured first, {s.get('max_seconds')} s unpaced) and "
            f"{s.get('fixed_rates', '').replace(',', ', ')} records/s; every target gets the same "
            "rates, each freshly started per setting",
            "",
        ]

    def max_section(self) -> list[str]:
        out = ["## Maximum produce rate per setting", "",
               "Each target's own maximum (unpaced, same settings). Flink's sets the offered rates.",
               "", "| setting | Flink records/s | null sink records/s | peer records/s | "
               "Flink / null sink |", "|---|---:|---:|---:|---:|"]
        for setting in self.setting_names():
            flink, null, peer = (self.max_rate(target, setting) for target in TARGETS)
            out.append(f"| {SETTING_LABELS.get(setting, setting)} | {fmt(flink)} | {fmt(null)} | "
                       f"{fmt(peer) if self.peer else 'not measured'} | {fmt(flink / null, 2)} |")
        return out + [""]

    def setting_section(self, setting: str) -> list[str]:
        targets = [t for t in TARGETS if t != "tansu" or self.peer]
        header = "| offered | records/s | " + " | ".join(
            f"{LABELS[t]} p50 / p99 / p99.9 ms" for t in targets) + " | Flink / null sink p99 |"
        out = [f"## {SETTING_LABELS.get(setting, setting)}", "",
               f"![Delivery latency against offered load, {SETTING_LABELS.get(setting, setting)}]"
               f"(latency-{setting}.png)", "", header,
               "|---|---:|" + "---:|" * len(targets) + "---:|"]
        notes = []
        for label, lines in self.rate_points(setting):
            rate = float(lines["flink"]["rate"])
            cells = []
            for target in targets:
                line = lines.get(target)
                if not line:
                    cells.append("–")
                    continue
                cell = " / ".join(fmt(float(line[key]) / 1000, 2) for _, key, _ in PERCENTILES)
                if float(line["sent_rate"]) < RATE_HELD * rate:
                    cell += " ‡"
                    notes.append(f"{LABELS[target]} at {fmt(rate)}/s sent only "
                                 f"{fmt(float(line['sent_rate']))}/s")
                cells.append(cell)
            ratio = (float(lines["flink"]["p99_us"]) / float(lines["null"]["p99_us"])
                     if "null" in lines else float("nan"))
            flink_max = self.max_rate("flink", setting)
            offered = label if label != "fixed" else f"{fmt(100 * rate / flink_max, 1)}% (fixed rate)"
            out.append(f"| {offered} | {fmt(rate)} | " + " | ".join(cells) + f" | {fmt(ratio, 2)} |")
        if notes:
            out += ["", "‡ rate not held (the client could not send at the offered rate, so that "
                    "point measured an overloaded client): " + "; ".join(notes) + "."]
        return out + [""]

    def e2e_section(self) -> list[str]:
        out = ["## End to end at 50% of Flink's maximum", "",
               "Send to consumer receipt (the producer stamps the send time in the record), same "
               "producer settings; Flink and the peer only (the null sink returns no record it "
               "was sent).", "",
               "| setting | records/s | Flink p50 / p99 / p99.9 ms | peer p50 / p99 / p99.9 ms |",
               "|---|---:|---:|---:|"]
        for setting in self.setting_names():
            cells = []
            rate = "–"
            for target in ("flink", "tansu"):
                line = self.one(target, setting, "e2e")
                if target == "tansu" and not self.peer:
                    cells.append("not measured")
                elif line:
                    rate = fmt(float(line["rate"]))
                    cells.append(" / ".join(fmt(float(line[key]) / 1000, 2)
                                            for _, key, _ in PERCENTILES))
                else:
                    cells.append("–")
            out.append(f"| {SETTING_LABELS.get(setting, setting)} | {rate} | {cells[0]} | {cells[1]} |")
        return out + [""]

    def goals_section(self) -> list[str]:
        out = ["## Goals (measured, not asserted)", ""]
        setting, rate, p99_goal, p999_goal = FIXED_RATE_GOAL
        line = next((line for line in self.find("flink", setting, "fixed")
                     if float(line["rate"]) == rate), None)
        if line:
            p99, p999 = float(line["p99_us"]), float(line["p999_us"])
            out.append(f"- {SETTING_LABELS[setting]} (fsync on), {fmt(rate)} records/s: p99 "
                       f"{fmt(p99 / 1000, 2)} ms ≤ {p99_goal / 1000:g} ms — **{met(p99 <= p99_goal)}**; "
                       f"p99.9 {fmt(p999 / 1000, 2)} ms ≤ {p999_goal / 1000:g} ms — "
                       f"**{met(p999 <= p999_goal)}**")
        else:
            out.append(f"- {SETTING_LABELS[setting]} at {fmt(rate)} records/s: **not measured**")
        setting, up_to, p99_goal = NO_BACKLOG_GOAL
        lines = [line for line in self.find("flink", setting, "percent")
                 if float(line["percent"]) <= up_to]
        if lines:
            worst = max(lines, key=lambda line: float(line["p99_us"]))
            ok = float(worst["p99_us"]) <= p99_goal
            out.append(f"- no backlog up to {up_to:g}% of Flink's {SETTING_LABELS[setting]} "
                       f"maximum: worst p99 {fmt(float(worst['p99_us']) / 1000, 2)} ms (at "
                       f"{worst['percent']}%) ≤ {p99_goal / 1000:g} ms — **{met(ok)}**")
        settings, up_to, factor = NULL_SINK_FACTOR_GOAL
        worst_ratio, where = 0.0, "nothing measured"
        for setting in settings:
            for flink in self.find("flink", setting, "percent"):
                if float(flink["percent"]) > up_to:
                    continue
                null = self.one("null", setting, "percent", percent=flink["percent"])
                if not null:
                    continue
                for label, key, _ in PERCENTILES:
                    ratio = float(flink[key]) / max(float(null[key]), 1e-9)
                    if ratio > worst_ratio:
                        worst_ratio = ratio
                        where = f"{label} at {flink['percent']}%, {SETTING_LABELS[setting]}"
        if worst_ratio > 0:
            out.append(f"- acks=1 p50, p99 and p99.9 within {factor:g}× the null sink's at every rate "
                       f"up to {up_to:g}% of the maximum: worst {fmt(worst_ratio, 2)}× ({where}) — "
                       f"**{met(worst_ratio <= factor)}**")
        out.append("- throughput against the null sink (produce ≥ 0.8× acks=1, ≥ 0.7× acks=all, "
                   "consume ≥ 0.8×): in broker.md (`make bench`)")
        return out + [""]


if __name__ == "__main__":
    main()
