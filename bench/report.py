"""The results: the machine they were measured on, the targets met or not, the JSON file and
the table printed at the end."""

from __future__ import annotations

import os
import platform
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from bench.harness import percentile

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def machine() -> dict[str, Any]:
    """CPUs this process may use, the CPU model, memory, Python and OS."""
    model = "?"
    mem_kib = 0
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_kib = int(line.split()[1])
                break
    except OSError:
        pass
    return {
        "nproc": len(os.sched_getaffinity(0)),
        "cpu_model": model,
        "memory_gib": round(mem_kib / 1024 / 1024, 1),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def project() -> dict[str, Any]:
    """The commit measured, and whether the working tree had changes on top of it."""

    def git(*args: str) -> str:
        done = subprocess.run(
            ["git", *args], cwd=PROJECT_ROOT, capture_output=True, text=True, check=False
        )
        return done.stdout.strip() if done.returncode == 0 else ""

    return {"commit": git("rev-parse", "HEAD") or None, "dirty": bool(git("status", "--porcelain"))}


@dataclass(frozen=True, slots=True, kw_only=True)
class Target:
    """One line of the table: a figure, how it is shown, and what it should be."""

    metric: str
    value: float | None
    shown: str
    target: str
    met: bool | None  # None: reported, no target

    def as_json(self) -> dict[str, Any]:
        return {
            "metric": self.metric,
            "value": self.value,
            "shown": self.shown,
            "target": self.target,
            "met": self.met,
        }


def _line(
    metric: str,
    value: float | None,
    unit: str,
    *,
    at_least: float | None = None,
    below: float | None = None,
    at_most: float | None = None,
    target: str = "",
) -> Target:
    """A figure and, when a bound is given, whether it meets it."""
    if value is None:
        return Target(metric=metric, value=None, shown="—", target=target, met=None)
    shown = f"{value:,.0f} {unit}" if abs(value) >= 100 else f"{value:,.2f} {unit}"
    met: bool | None = None
    if at_least is not None:
        met = value >= at_least
    elif below is not None:
        met = value < below
    elif at_most is not None:
        met = value <= at_most
    return Target(metric=metric, value=value, shown=shown.strip(), target=target, met=met)


def targets(results: dict[str, Any]) -> list[Target]:
    """The project's targets, each met or not; rows for runs that were skipped are left out."""
    out: list[Target] = []
    imp = results.get("import")
    if imp:
        out += [
            _line(
                "import rate",
                imp["rows_per_second"],
                "rows/s",
                at_least=200_000,
                target="≥ 200,000",
            ),
            _line("raw COPY rate (same file)", imp["raw_copy"]["rows_per_second"], "rows/s"),
            _line("import ÷ raw COPY", imp["import_to_raw_copy_ratio"], "x"),
            _line(
                "API RSS during upload (max)",
                imp["api_rss_mb"].get("max"),
                "MB",
                below=200,
                target="< 200 MB",
            ),
        ]
    runs: dict[str, Any] = results.get("dispatch", {})
    if "both_n" in runs:
        out.append(
            _line(
                "dispatch, both channels at N",
                runs["both_n"]["deliveries_per_second"],
                "deliveries/s",
                at_least=3000,
                target="≥ 3,000",
            )
        )
    if "both_small" in runs:
        out.append(
            _line(
                runs["both_small"]["name"],
                runs["both_small"]["deliveries_per_second"],
                "deliveries/s",
            )
        )
        out.append(_growth("both channels", runs["both_small"], runs.get("both_n")))
    for channel, budget in (("email", 300), ("sms", 600)):
        small, big = runs.get(f"{channel}_small"), runs.get(f"{channel}_n")
        for run in (small, big):
            if run:
                out.append(_line(run["name"], run["deliveries_per_second"], "deliveries/s"))
        measured = big or small
        if measured:
            out.append(
                _line(
                    f"worker CPU per {channel} ({measured['name']})",
                    measured["worker_cpu_us_per_delivery"],
                    "µs",
                    at_most=budget,
                    target=f"≤ {budget} µs",
                )
            )
        if big and small:
            out.append(_growth(channel, small, big))
    if runs:
        out.extend(_dispatch_memory(results, runs))
        latencies = [x for run in runs.values() for x in run["status_latencies_ms"]]
        out.append(_line("status poll p50", percentile(latencies, 50), "ms"))
        out.append(
            _line("status poll p99", percentile(latencies, 99), "ms", below=50, target="< 50 ms")
        )
    if planner := results.get("planner"):
        out.append(_planner(planner))
    checks = results.get("checks", [])
    failed = sum(1 for c in checks if not c["ok"])
    out.append(
        Target(
            metric="counts (uploads, deliveries, each recipient once)",
            value=float(len(checks) - failed),
            shown=f"{len(checks) - failed}/{len(checks)} checks",
            target="all",
            met=failed == 0,
        )
    )
    return out


def _growth(what: str, small: dict[str, Any], big: dict[str, Any] | None) -> Target:
    """Throughput at N as a fraction of throughput at the small size."""
    ratio = big["deliveries_per_second"] / small["deliveries_per_second"] if big else None
    return _line(
        f"{what}: throughput at N ÷ at small",
        ratio,
        "x",
        at_least=0.9,
        target="≥ 0.90 (within 10%)",
    )


def _planner(planner: dict[str, Any]) -> Target:
    """The plan's forecast before launch against the finish measured."""
    bound = f"within ±{planner['tolerance']:.0%}"
    if planner["error"] is None:
        return Target(metric=planner["name"], value=None, shown="—", target=bound, met=False)
    if not planner["cap_bound"]:
        bound += " (the cap did not bind)"
    return Target(
        metric=f"{planner['name']}: forecast ÷ actual - 1",
        value=planner["error"],
        shown=(
            f"{planner['error']:+.1%} ({planner['forecast_seconds']:.0f} s forecast, "
            f"{planner['actual_seconds']:.0f} s actual)"
        ),
        target=bound,
        met=planner["within_tolerance"],
    )


def _dispatch_memory(results: dict[str, Any], runs: dict[str, Any]) -> list[Target]:
    baseline = results.get("redis_baseline_mb", 0.0)
    peak = max(r["memory"].get("redis_used_memory", {}).get("max", 0.0) for r in runs.values())
    api = max(r["memory"].get("api", {}).get("max", 0.0) for r in runs.values())
    out = [
        _line(
            f"Redis used_memory peak above start ({baseline:.1f} MB)",
            peak - baseline,
            "MB",
            below=50,
            target="< 50 MB",
        ),
        _line("API RSS during dispatch (max)", api, "MB"),
    ]
    biggest = max(runs.values(), key=lambda r: int(r["deliveries"]))
    for name, mem in biggest["memory"].items():
        if name.startswith("worker"):
            out.append(
                Target(
                    metric=f"{name} RSS start → end ({biggest['name']})",
                    value=mem["end"],
                    shown=f"{mem['start']:.0f} → {mem['end']:.0f} MB (max {mem['max']:.0f})",
                    target="flat",
                    met=None,
                )
            )
    return out


_CPU_COLUMNS = (
    "workers",
    "api",
    "sandbox",
    "sandbox_sms",
    "postgres",
    "postgres_background",
    "redis_server",
    "bench",
    "other",
)


def cpu_table(results: dict[str, Any], cores: int) -> str:
    """Cores each process kept busy, on average, in each timed phase (of `cores` here)."""
    phases: list[tuple[str, dict[str, Any]]] = []
    if results.get("import"):
        phases.append(("import (upload)", results["import"]["cpu"]))
    phases += [(run["name"], run["cpu"]) for run in results.get("dispatch", {}).values()]
    if planner := results.get("planner"):
        phases.append((planner["name"], planner["run"]["cpu"]))
    head = [
        "cores busy",
        *(c.replace("postgres_background", "pg bg").replace("_server", "") for c in _CPU_COLUMNS),
        "total",
    ]
    cells = [head]
    for name, cpu in phases:
        busy = [cpu["cores_busy"].get(c, 0.0) for c in _CPU_COLUMNS]
        cells.append([name, *(f"{b:.2f}" for b in busy), f"{sum(busy):.2f}/{cores}"])
    widths = [max(len(row[i]) for row in cells) for i in range(len(head))]
    return "\n".join(
        "  ".join(
            v.ljust(w) if i == 0 else v.rjust(w)
            for i, (v, w) in enumerate(zip(row, widths, strict=True))
        )
        for row in cells
    )


def table(rows: list[Target]) -> str:
    """The summary as aligned text."""
    head = ("metric", "value", "target", "")
    cells = [head] + [
        (r.metric, r.shown, r.target, "" if r.met is None else ("met" if r.met else "NOT MET"))
        for r in rows
    ]
    widths = [max(len(c[i]) for c in cells) for i in range(3)]
    lines = [
        f"{c[0]:<{widths[0]}}  {c[1]:>{widths[1]}}  {c[2]:<{widths[2]}}  {c[3]}".rstrip()
        for c in cells
    ]
    lines.insert(1, "-" * (sum(widths) + 14))
    return "\n".join(lines)


def write_json(path: Path, results: dict[str, Any]) -> None:
    path.write_bytes(orjson.dumps(results, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS))
