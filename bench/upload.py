"""Step 2: the timed import of every account in one streamed upload, against a bare COPY of
the same file into a table of text columns (the floor of what Postgres itself costs)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import asyncpg

from bench.accounts import AccountsFile
from bench.harness import Harness
from bench.probes import memory_summary

BOTH = ("email", "sms")
RAW_TABLE = "bench_raw_copy"


def check_upload(
    h: Harness, label: str, accounts: AccountsFile, channels: Sequence[str], got: dict[str, Any]
) -> bool:
    """The upload's counts must be exactly what the generator made."""
    want = accounts.expected(channels)
    ok = h.check(f"{label}: accepted", want.accepted, got["accepted"])
    ok = h.check(f"{label}: rejected", want.rejected, got["rejected"]) and ok
    return h.check(f"{label}: duplicates", want.duplicates, got["duplicates"]) and ok


async def timed_import(h: Harness, accounts: AccountsFile) -> tuple[dict[str, Any], str]:
    """Upload to a new campaign on both channels; returns the figures and the campaign id
    (its recipients serve the combined dispatch run later)."""
    campaign_id = await h.create_campaign(BOTH, f"import of {accounts.rows:,}")
    print(
        f"import: uploading {accounts.rows:,} rows ({accounts.size_bytes / 1e6:.0f} MB)…",
        flush=True,
    )
    h.sampler.set_interval(0.2)  # the API's memory during the upload, finely
    async with h.phase("import") as phase:
        cpu_start = await h.probe.cpu()
        result, seconds = await h.upload(campaign_id, accounts.path)
        cpu_end = await h.probe.cpu()
    h.sampler.set_interval(1.0)
    check_upload(h, "import", accounts, BOTH, result)
    window = h.sampler.window(phase["start"], phase["end"])
    memory = memory_summary(window, ["api"])
    figures: dict[str, Any] = {
        "rows": accounts.rows,
        "bytes": accounts.size_bytes,
        "seconds": round(seconds, 3),
        "rows_per_second": round(accounts.rows / seconds, 1),
        "megabytes_per_second": round(accounts.size_bytes / 1e6 / seconds, 2),
        "accepted": result["accepted"],
        "rejected": result["rejected"],
        "duplicates": result["duplicates"],
        "errors_reported": len(result.get("errors", [])),
        "expected": vars_of(accounts, BOTH),
        "api_rss_mb": memory.get("api", {}),
        "api_rss_samples": len(window),
        "cpu": cpu_end.since(cpu_start),
    }
    print(
        f"import: {figures['rows_per_second']:,.0f} rows/s in {seconds:.1f} s; "
        f"API RSS max {figures['api_rss_mb'].get('max', 0):.0f} MB",
        flush=True,
    )
    async with h.phase("raw COPY"):
        raw = await raw_copy(h.backends.database_url, accounts)
    h.check("raw COPY: rows", accounts.rows, raw["rows"])
    figures["raw_copy"] = raw
    figures["import_to_raw_copy_ratio"] = round(
        figures["rows_per_second"] / raw["rows_per_second"], 3
    )
    print(
        f"raw COPY: {raw['rows_per_second']:,.0f} rows/s in {raw['seconds']:.1f} s; "
        f"import ÷ raw COPY = {figures['import_to_raw_copy_ratio']:.2f}",
        flush=True,
    )
    return figures, campaign_id


def vars_of(accounts: AccountsFile, channels: Sequence[str]) -> dict[str, int]:
    want = accounts.expected(channels)
    return {"accepted": want.accepted, "rejected": want.rejected, "duplicates": want.duplicates}


async def raw_copy(database_url: str, accounts: AccountsFile) -> dict[str, Any]:
    """COPY the raw file, unchecked, into a plain (logged) table of text columns."""
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute(
            f"CREATE TABLE {RAW_TABLE} (external_id text, email text, phone text, "
            "locale text, name text, account_tier text)"
        )
        started = time.perf_counter()
        status = await conn.copy_to_table(
            RAW_TABLE, source=accounts.path, format="csv", header=True
        )
        seconds = time.perf_counter() - started
        await conn.execute(f"DROP TABLE {RAW_TABLE}")
    finally:
        await conn.close()
    rows = int(status.split()[-1])
    return {
        "rows": rows,
        "seconds": round(seconds, 3),
        "rows_per_second": round(rows / seconds, 1),
    }
