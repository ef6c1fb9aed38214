"""Steps 3 and 4: dispatch runs, one channel at a time (so CPU can be attributed) and both
at once, each timed from launch until every delivery is terminal.

An email is terminal once the relay accepted it ("sent"); an SMS only when its delivery
receipt came back ("delivered"), so SMS runs include the status callbacks the API serves.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import asyncpg

from bench.accounts import AccountsFile
from bench.harness import BenchError, Harness, percentile
from bench.probes import memory_summary
from bench.upload import check_upload
from notifier.sealing import Sealer

POLL_SECONDS = 0.5
STALL_SECONDS = 180.0
SETTLE_SECONDS = 60.0
SANDBOX_PAGE = 50_000
IN_FLIGHT = {"email": ("pending", "sending"), "sms": ("pending", "sending", "sent")}

# Called with each poll's answer (the campaign as the API shows it), between polls.
Watch = Callable[[dict[str, Any]], Awaitable[None]]


def progress(counts: dict[str, dict[str, int]], channels: Sequence[str]) -> tuple[int, int]:
    """(deliveries that reached a terminal status, all deliveries) on these channels."""
    total = sum(sum(counts[ch].values()) for ch in channels)
    left = sum(counts[ch][status] for ch in channels for status in IN_FLIGHT[ch])
    return total - left, total


async def prepare(
    h: Harness,
    accounts: AccountsFile,
    channels: Sequence[str],
    label: str,
    *,
    rate_cap: float | None = None,
) -> tuple[str, dict[str, Any]]:
    """A new draft campaign with the file uploaded (not part of any timing); `rate_cap` is
    the campaign's own cap, if any."""
    campaign_id = await h.create_campaign(channels, label, rate_cap=rate_cap)
    print(f"{label}: uploading {accounts.rows:,} rows (untimed)…", flush=True)
    async with h.phase(f"upload for {label}"):
        result, seconds = await h.upload(campaign_id, accounts.path)
    check_upload(h, f"{label}: upload", accounts, channels, result)
    return campaign_id, {"seconds": round(seconds, 3), "accepted": result["accepted"]}


async def run(
    h: Harness,
    label: str,
    campaign_id: str,
    channels: Sequence[str],
    accounts: AccountsFile,
    *,
    watch: Watch | None = None,
) -> dict[str, Any]:
    """Launch, poll every half second until every delivery is terminal, and measure;
    `watch` sees each poll's answer."""
    expected = accounts.expected(channels).accepted  # every recipient has both contacts
    await h.sandbox_reset()
    latencies: list[float] = []
    timeline: list[tuple[float, int]] = []
    print(f"{label}: launching {expected * len(channels):,} deliveries…", flush=True)
    async with h.phase(label) as phase:
        cpu_start = await h.probe.cpu()
        started, launched_at = time.perf_counter(), time.time()
        await h.call("POST", f"/v1/campaigns/{campaign_id}/launch", expect=202)
        launch_seconds = time.perf_counter() - started
        total, state = await _poll(h, campaign_id, channels, started, latencies, timeline, watch)
        seconds = time.perf_counter() - started
        cpu_end = await h.probe.cpu()
    state = await _settle(h, campaign_id, state)
    stats = await h.sandbox_stats()
    window = h.sampler.window(phase["start"], phase["end"])
    names = ["api", "sandbox", "sandbox_sms", *h.probe.worker_pids]
    cpu = cpu_end.since(cpu_start)
    used = cpu["cpu_seconds"]
    result: dict[str, Any] = {
        "name": label,
        "campaign_id": campaign_id,
        "channels": list(channels),
        "recipients_in_file": accounts.rows,
        "deliveries": total,
        "seconds": round(seconds, 3),
        "launch_request_seconds": round(launch_seconds, 3),
        "sending_seconds": _sending_seconds(stats, channels, launched_at),
        "deliveries_per_second": round(total / seconds, 1),
        "cpu": cpu,
        "worker_cpu_us_per_delivery": round(used["workers"] / total * 1e6, 1),
        "worker_cpu_seconds_per_1000": round(used["workers"] / total * 1000, 4),
        "cpu_us_per_delivery": {k: round(v / total * 1e6, 1) for k, v in used.items()},
        "memory": memory_summary(window, names),
        "status_latency_ms": {
            "p50": round(percentile(latencies, 50), 2),
            "p99": round(percentile(latencies, 99), 2),
            "max": round(max(latencies, default=0.0), 2),
            "polls": len(latencies),
        },
        "status_latencies_ms": [round(x, 2) for x in latencies],
        "progress": [[round(t, 2), n] for t, n in timeline],
        "final_counts": state["counts"],
        # Accounts that share a contact (and a locale) share one message: contact dedupe.
        "dedupe_contacts": bool(state.get("dedupe_contacts", False)),
        "merged": {ch: int(state.get("merged", {}).get(ch, 0)) for ch in channels},
        "sandbox": {
            "received": {ch: stats[ch]["received"] for ch in ("email", "sms")},
            "refused": {ch: stats[ch]["refused"] for ch in ("email", "sms")},
            "callbacks": stats["callbacks"],
            "per_second": {ch: stats[ch]["per_second"] for ch in channels},
        },
    }
    await _verify(h, result, campaign_id, channels, expected)
    print(
        f"{label}: {result['deliveries_per_second']:,.0f} deliveries/s over {seconds:.1f} s; "
        f"worker CPU {result['worker_cpu_us_per_delivery']:.0f} µs/delivery; last message "
        f"in the sandbox after {result['sending_seconds']} s; "
        f"cores busy {_busy(cpu)}",
        flush=True,
    )
    return result


def _sending_seconds(
    stats: dict[str, Any], channels: Sequence[str], launched_at: float
) -> dict[str, float]:
    """Launch until the end of the second in which the sandbox accepted the last message, per
    channel; for SMS the rest of the run is waiting for receipts."""
    out = {}
    for channel in channels:
        per_second = stats[channel]["per_second"]
        if per_second:
            out[channel] = round(per_second[-1][0] + 1 - launched_at, 1)
    return out


def _busy(cpu: dict[str, Any]) -> str:
    shown = ("workers", "api", "sandbox", "sandbox_sms", "postgres", "redis_server", "bench")
    return ", ".join(f"{k} {cpu['cores_busy'].get(k, 0):.2f}" for k in shown)


async def _poll(
    h: Harness,
    campaign_id: str,
    channels: Sequence[str],
    started: float,
    latencies: list[float],
    timeline: list[tuple[float, int]],
    watch: Watch | None,
) -> tuple[int, dict[str, Any]]:
    """Poll the campaign as an integrator would, timing each request; returns when every
    delivery is terminal."""
    tick = started
    last_change, last_done, last_print = started, -1, started
    while True:
        tick += POLL_SECONDS
        await asyncio.sleep(max(0.0, tick - time.perf_counter()))
        sent_at = time.perf_counter()
        state = await h.call("GET", f"/v1/campaigns/{campaign_id}")
        now = time.perf_counter()
        latencies.append((now - sent_at) * 1000)
        done, total = progress(state["counts"], channels)
        timeline.append((now - started, done))
        if watch is not None:
            await watch(state)
        if total and done == total and not state["preparing"]:
            return total, state
        if done != last_done:
            last_change, last_done = now, done
        elif now - last_change > STALL_SECONDS:
            raise BenchError(f"no progress for {STALL_SECONDS:.0f} s: {state['counts']}")
        if now - last_print >= 10:
            last_print = now
            print(f"  {done:,}/{total:,} terminal after {now - started:.0f} s", flush=True)
        h.services.check_alive()


async def _settle(h: Harness, campaign_id: str, state: dict[str, Any]) -> dict[str, Any]:
    """Wait (untimed) until the campaign is completed, so no chain of this run is still
    about when the next run starts; returns the campaign as it then is."""
    deadline = time.monotonic() + SETTLE_SECONDS
    while state["state"] != "completed" and time.monotonic() < deadline:
        await asyncio.sleep(POLL_SECONDS)
        state = await h.call("GET", f"/v1/campaigns/{campaign_id}")
    h.check(f"campaign {campaign_id[:8]} completed", "completed", state["state"])
    return state


async def _verify(
    h: Harness,
    result: dict[str, Any],
    campaign_id: str,
    channels: Sequence[str],
    expected: int,
) -> None:
    """Every recipient got exactly one message per channel (one per contact and locale
    where accounts share a contact, with contact dedupe), and none failed."""
    label = result["name"]
    h.check(f"{label}: deliveries", expected * len(channels), result["deliveries"])
    once = True
    for channel in channels:
        counts = result["final_counts"][channel]
        h.check(f"{label}: {channel} failed", 0, counts["failed"])
        messages = expected - result["merged"][channel]
        h.check(
            f"{label}: sandbox {channel} count", messages, result["sandbox"]["received"][channel]
        )
        mismatched = await _mismatched_contacts(
            h, campaign_id, channel, dedupe=result["dedupe_contacts"]
        )
        once = h.check(f"{label}: {channel} contacts reached once each", 0, mismatched) and once
    result["each_recipient_once"] = once


async def _mismatched_contacts(h: Harness, campaign_id: str, channel: str, *, dedupe: bool) -> int:
    """How many contacts received a different number of messages than the number of
    recipients that have them, or with `dedupe` of locales among those recipients (0: each
    recipient was reached exactly once)."""
    balance: Counter[str] = Counter()
    seen: set[tuple[str, str]] = set()
    sealer = Sealer.from_settings(h.services.settings)
    cid = uuid.UUID(campaign_id)
    conn = await asyncpg.connect(h.backends.database_url)
    try:
        async with conn.transaction():
            query = (
                "SELECT external_id, contact_sealed, locale FROM recipients"
                " WHERE campaign_id = $1 AND contact_sealed IS NOT NULL"
            )
            async for row in conn.cursor(query, cid, prefetch=20_000):
                contacts = sealer.open(cid, row["external_id"], row["contact_sealed"])
                contact = contacts[0] if channel == "email" else contacts[1]
                if contact is None:
                    continue
                if dedupe:  # one message per contact and locale
                    if (contact, row["locale"]) in seen:
                        continue
                    seen.add((contact, row["locale"]))
                balance[contact] += 1
    finally:
        await conn.close()
    offset = 0
    while True:
        page = await h.sandbox_get("/_sandbox/messages", channel, offset=offset, limit=SANDBOX_PAGE)
        if not page:
            break
        for message in page:
            balance[message["to"]] -= 1
        offset += len(page)
    return sum(1 for n in balance.values() if n != 0)
