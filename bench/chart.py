"""The chart: throughput, CPU and memory on one timeline, each benchmark phase shaded."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only, no display

import matplotlib.pyplot as plt  # after use(): the backend must be chosen first

_CPU_ROLES = ("workers", "api", "sandbox", "sandbox_sms", "postgres", "redis_server")
_COLORS = {"email": "tab:blue", "sms": "tab:orange"}


def _throughput(run: dict[str, Any], channel: str) -> tuple[list[float], list[int]]:
    """Messages the sandbox accepted in each whole second of one run."""
    per_second = run["sandbox"]["per_second"].get(channel, [])
    return [float(sec) + 0.5 for sec, _ in per_second], [int(n) for _, n in per_second]


def _cores(samples: list[dict[str, Any]], role: str) -> tuple[list[float], list[float]]:
    """Cores a role kept busy between consecutive samples."""
    times, busy = [], []
    for before, after in itertools.pairwise(samples):
        span = after["t"] - before["t"]
        used = after["cpu_seconds"].get(role, 0.0) - before["cpu_seconds"].get(role, 0.0)
        if span > 0:
            times.append(after["t"])
            busy.append(max(0.0, used / span))
    return times, busy


def draw(path: Path, results: dict[str, Any]) -> None:
    """Write the PNG; the x axis is minutes since the first phase began. Timed phases are
    shaded blue, untimed uploads grey and hatched."""
    samples = sorted(results.get("series", []), key=lambda s: float(s["t"]))
    phases: list[dict[str, Any]] = results.get("phases", [])
    runs: list[dict[str, Any]] = list(results.get("dispatch", {}).values())
    if planner := results.get("planner"):
        runs.append(planner["run"])
    origin = phases[0]["start"] if phases else (samples[0]["t"] if samples else 0.0)

    def minutes(t: float) -> float:
        return (t - origin) / 60.0

    fig, (top, middle, bottom) = plt.subplots(3, 1, figsize=(13, 10), sharex=True)
    labelled: set[str] = set()
    for run in runs:  # one line per run, so no line bridges the gap between runs
        for channel in run["channels"]:
            times, counts = _throughput(run, channel)
            label = None if channel in labelled else f"{channel} accepted by the sandbox"
            labelled.add(channel)
            top.plot([minutes(t) for t in times], counts, color=_COLORS[channel], lw=1, label=label)
    top.set_ylabel("messages / s")
    top.set_title("Throughput, CPU and memory over the benchmark")

    for role in _CPU_ROLES:
        times, busy = _cores(samples, role)
        if times:
            middle.plot([minutes(t) for t in times], busy, lw=1, label=role)
    times, busy = _cores(samples, "machine")
    if times:
        middle.plot(
            [minutes(t) for t in times], busy, lw=1, ls="--", color="grey", label="whole machine"
        )
    middle.set_ylabel("cores busy")

    names = sorted({name for s in samples for name in s["rss_mb"]})
    for name in names:
        bottom.plot(
            [minutes(s["t"]) for s in samples],
            [s["rss_mb"].get(name) for s in samples],
            lw=1,
            label=f"{name} RSS",
        )
    bottom.plot(
        [minutes(s["t"]) for s in samples],
        [s["redis_used_memory_mb"] for s in samples],
        lw=1.5,
        color="black",
        label="Redis used_memory",
    )
    bottom.set_ylabel("MB")
    bottom.set_xlabel("minutes since start")

    timed = 0
    for phase in phases:
        if phase.get("end") is None:
            continue
        start, end = minutes(phase["start"]), minutes(phase["end"])
        untimed = phase["name"].startswith("upload for")
        timed += not untimed
        shade = "lightgrey" if untimed else ("lightsteelblue" if timed % 2 else "navajowhite")
        for axis in (top, middle, bottom):
            axis.axvspan(
                start,
                end,
                color=shade,
                alpha=0.35,
                lw=0,
                hatch="//" if untimed else None,
            )
        if not untimed:
            top.annotate(
                phase["name"],
                xy=(start, 0.97 - 0.08 * (timed % 3)),
                xycoords=("data", "axes fraction"),
                fontsize=7,
                va="top",
            )
    for axis in (top, middle, bottom):
        axis.grid(alpha=0.3)
        handles, _ = axis.get_legend_handles_labels()
        if handles:
            axis.legend(loc="upper right", fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
