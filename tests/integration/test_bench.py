"""The benchmark at a small size: its generated data is what it claims, it runs end to end
against the test servers, its results add up, and it cleans up, also when interrupted."""

from __future__ import annotations

import asyncio
import csv
import os
import re
import signal
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import asyncpg
import orjson
import phonenumbers
import psutil
import pytest
from email_validator import EmailNotValidError

from bench.accounts import BAD_KINDS, phone_for, write_accounts
from notifier.contacts import normalize_email

ROOT = Path(__file__).resolve().parents[2]


def _bench_env(servers: tuple[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NOTIFIER_")}
    env["NOTIFIER_DATABASE_URL"], env["NOTIFIER_REDIS_URL"] = servers
    return env


async def _database_exists(server_url: str, name: str) -> bool:
    conn = await asyncpg.connect(server_url)
    try:
        return bool(await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name))
    finally:
        await conn.close()


def test_every_phone_format_the_generator_writes_is_a_valid_number() -> None:
    for i in range(0, 3_000_000, 97):
        for share in (0.1, 0.8, 0.9):  # Korean E.164, Korean national, other countries
            written = phone_for(i, share)
            assert phonenumbers.is_valid_number(phonenumbers.parse(written, "KR")), written


def test_the_generated_file_holds_exactly_the_bad_rows_it_reports(tmp_path: Path) -> None:
    accounts = write_accounts(tmp_path / "accounts.csv", 8000)
    assert accounts.bad == dict.fromkeys(BAD_KINDS, 2)
    found = Counter[str]()
    with accounts.path.open(encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == accounts.rows
    seen: set[str] = set()
    for row in rows:
        if not row["external_id"]:
            found["missing_id"] += 1
        elif row["external_id"] in seen:
            found["duplicate_id"] += 1
        seen.add(row["external_id"])
        try:
            normalize_email(row["email"])
        except EmailNotValidError:
            found["bad_email"] += 1
        if not phonenumbers.is_valid_number(phonenumbers.parse(row["phone"], "KR")):
            found["bad_phone"] += 1
    assert dict(found) == accounts.bad
    assert Counter(row["locale"] for row in rows).most_common(1)[0][0] == "ko"


@pytest.mark.slow
async def test_the_benchmark_runs_and_its_counts_add_up(
    servers: tuple[str, str], tmp_path: Path
) -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bench",
        "--recipients",
        "3000",
        "--small",
        "1000",
        "--workers",
        "1",
        "--plan-cap",
        "500",
        "--out",
        str(tmp_path),
        cwd=ROOT,
        env=_bench_env(servers),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(proc.communicate(), 180)
    assert proc.returncode == 0, out.decode()
    assert (tmp_path / "latest.png").stat().st_size > 10_000
    results = orjson.loads((tmp_path / "latest.json").read_bytes())
    for key in (
        "date",
        "machine",
        "project",
        "config",
        "generated",
        "import",
        "dispatch",
        "planner",
    ):
        assert key in results, key
    for key in ("nproc", "cpu_model", "memory_gib", "python", "postgres", "redis"):
        assert results["machine"][key], key

    generated = results["generated"]["n"]
    bad = generated["bad_rows"]
    imported = results["import"]
    assert imported["rows"] == 3000 == imported["raw_copy"]["rows"]
    assert imported["rejected"] == bad["bad_email"] + bad["bad_phone"] + bad["missing_id"] > 0
    assert imported["duplicates"] == bad["duplicate_id"] > 0
    assert imported["accepted"] == 3000 - imported["rejected"] - imported["duplicates"]
    assert imported["api_rss_mb"]["max"] > 0

    runs = results["dispatch"]
    assert sorted(runs) == ["both_n", "both_small", "email_small", "sms_small"]
    small_bad = results["generated"]["small"]["bad_rows"]
    assert runs["email_small"]["deliveries"] == 1000 - small_bad["bad_email"] - sum(
        small_bad[k] for k in ("missing_id", "duplicate_id")
    )
    assert runs["both_n"]["deliveries"] == 2 * imported["accepted"]
    assert runs["both_small"]["deliveries"] == 2 * runs["both_small"]["untimed_upload"]["accepted"]
    for run in runs.values():
        per_channel = run["deliveries"] // len(run["channels"])
        for channel in run["channels"]:
            # Accounts sharing a contact and a locale share one message (contact dedupe).
            assert run["sandbox"]["received"][channel] == per_channel - run["merged"][channel]
            assert run["final_counts"][channel]["failed"] == 0
        assert run["final_counts"].get("sms", {}).get("sent", 0) == 0  # every receipt is in
        assert run["each_recipient_once"]
        assert run["status_latency_ms"]["polls"] == len(run["status_latencies_ms"]) > 0
        assert run["worker_cpu_us_per_delivery"] > 0
        assert set(run["memory"]) >= {
            "api",
            "sandbox",
            "sandbox_sms",
            "worker-1",
            "redis_used_memory",
        }
    _check_planner(results, imported["accepted"])
    assert all(check["ok"] for check in results["checks"])
    assert {t["metric"] for t in results["targets"]} >= {"import rate", "status poll p99"}
    assert "met" in out.decode()
    assert not await _database_exists(servers[0], results["config"]["database"])


def _check_planner(results: dict[str, Any], accepted: int) -> None:
    """The planner's phase reports a forecast, a finish and their ratio, per channel too,
    and the plan read while sending; its figures are timings, so only their shape is
    checked here."""
    planner = results["planner"]
    assert results["config"]["plan_rate_cap"] == planner["rate_cap"] == 500
    assert planner["deliveries"] == 2 * accepted
    assert planner["run"]["each_recipient_once"]
    assert planner["forecast_seconds"] > 0 and planner["actual_seconds"] > 0
    # The error is worked out before the seconds are rounded to hundredths for the report:
    # on a run of a few seconds, their rounding alone moves the ratio by up to 0.01 / actual.
    assert planner["error"] == pytest.approx(
        planner["forecast_seconds"] / planner["actual_seconds"] - 1,
        abs=1e-3 + 0.01 / planner["actual_seconds"],
    )
    assert planner["within_tolerance"] == (abs(planner["error"]) <= planner["tolerance"])
    assert isinstance(planner["cap_bound"], bool)
    assert sorted(planner["per_channel"]) == ["email", "sms"]
    for channel, forecast in planner["per_channel"].items():
        assert forecast["rate"] == 500 and forecast["sharing"] == 1
        assert forecast["finish_seconds"] > 0 and forecast["actual_seconds"] > 0
        assert planner["sends"][channel]["sent"] > 0
        assert {"first_seconds", "last_seconds", "rate"} <= set(planner["sends"][channel])
    for sample in planner["while_sending"]:
        assert {"checkpoint", "done", "elapsed_seconds", "observed_rate", "finish_seconds"} <= set(
            sample
        )
    target = next(t for t in results["targets"] if t["metric"].startswith(planner["name"]))
    assert target["value"] == planner["error"] and target["met"] == planner["within_tolerance"]


@pytest.mark.slow
async def test_an_interrupted_benchmark_stops_what_it_started(
    servers: tuple[str, str], tmp_path: Path
) -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bench",
        "--recipients",
        "20000",
        "--workers",
        "1",
        "--skip-import",
        "--out",
        str(tmp_path),
        cwd=ROOT,
        env=_bench_env(servers),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    assert proc.stdout is not None
    database = ""
    output = b""
    async with asyncio.timeout(90):
        while b"launching" not in output:
            line = await proc.stdout.readline()
            assert line, output.decode()
            output += line
            if found := re.search(rb"database (notifier_bench_\w+)", line):
                database = found.group(1).decode()
    children = psutil.Process(proc.pid).children()
    assert len(children) == 4  # the two sandbox processes, the API, a worker
    proc.send_signal(signal.SIGINT)
    rest, _ = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 130, (output + rest).decode()
    assert not any(child.is_running() for child in children)
    assert database and not await _database_exists(servers[0], database)
    assert not (tmp_path / "latest.json").exists()
