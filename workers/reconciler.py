"""The reconciler: Postgres says what is unfinished; this makes Redis and the workers agree.

It reclaims the batches of dead workers (silent heartbeat) and of leases run out, restarts
lost dispatch chains (Redis flushed or restarted empty, or their worker dead), sweeps
pending rows left in cancelled campaigns, completes campaigns with nothing left, fetches
the status of SMS whose receipt never came, and samples progress for the send rate shown by
the API.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from typing import Any

import orjson

from notifier import campaigns as campaign_service
from notifier import chains
from notifier.campaigns import Campaign
from notifier.db import Conn, counter_shard, queries
from notifier.models import CampaignState
from notifier.receipts import TWILIO_FINAL, Receipt, store_receipts

log = logging.getLogger(__name__)

# Status fetches per pass, at most: a backlog drains over a few passes, never in one burst.
RECEIPT_CHECKS_PER_PASS = 200


async def reconcile(ctx: dict[str, Any]) -> dict[str, int]:
    """One pass over every campaign still in play."""
    deps = ctx["deps"]
    settings = deps.settings
    dead_after = float(settings.worker_dead_seconds)
    # Only a reconciler whose own beats went through lately may call others dead.
    judge = bool(deps.heartbeat.steady)
    summary = {
        "reclaimed": 0,
        "flagged": 0,
        "chains_freed": 0,
        "chains_started": 0,
        "completed": 0,
        "receipts_fetched": 0,
    }
    async with deps.pool.acquire() as conn:
        await conn.execute(queries["expire_idempotency_keys"])
        for row in await conn.fetch(queries["reopen_unfinished"]):
            log.info("completed campaign reopened", extra={"campaign_id": str(row["id"])})
        await conn.execute(queries["forget_claims"])
        await conn.execute(queries["forget_workers"])
        live = (
            {str(r["id"]) for r in await conn.fetch(queries["live_workers"], dead_after)}
            if judge
            else None
        )
        for row in await conn.fetch(queries["active_campaigns"]):
            cid = row["id"]
            lost = await conn.fetchrow(
                queries["reclaim_lost"], cid, dead_after, judge, counter_shard()
            )
            summary["reclaimed"] += lost["reclaimed"]
            summary["flagged"] += lost["flagged"]
            expired = await conn.fetchval(queries["reclaim_expired"], cid, counter_shard())
            summary["reclaimed"] += expired
            summary["flagged"] += expired
            if row["state"] == CampaignState.CANCELLED:
                await campaign_service.cancel_pending(conn, cid, shard=counter_shard())
                continue
            campaign = await campaign_service.get(conn, cid)
            counts = await campaign_service.counts(conn, campaign)
            await _sample(conn, campaign, float(row["now"]), counts)
            if row["state"] != CampaignState.SENDING:
                continue
            if await campaign_service.complete_if_done(conn, cid):
                summary["completed"] += 1
                continue
            channels = campaign_service.channels_of(campaign)
            slots = settings.chains_per_channel
            if live is not None:
                summary["chains_freed"] += await chains.free_orphans(
                    deps.redis, str(cid), channels, slots, live
                )
            summary["chains_started"] += await chains.ensure(deps.redis, str(cid), channels, slots)
    summary["receipts_fetched"] = await recover_receipts(deps)
    if any(summary.values()):
        log.info("reconciled", extra=summary)
    return summary


async def recover_receipts(deps: Any) -> int:
    """Ask Twilio about SMS left without a final receipt past the grace period; store the
    final ones as receipts (a terminal status is never overwritten), note the rest as
    checked. Returns how many final statuses were stored."""
    fetch = getattr(deps.providers.get("sms"), "fetch_status", None)
    if fetch is None:
        return 0
    async with deps.pool.acquire() as conn:
        rows = await conn.fetch(
            queries["awaiting_receipts"],
            float(deps.settings.receipt_grace_seconds),
            RECEIPT_CHECKS_PER_PASS,
        )
    if not rows:
        return 0
    answers = await asyncio.gather(*(fetch(r["provider_message_id"]) for r in rows))
    final: list[Receipt] = []
    unsettled: dict[uuid.UUID, list[int]] = {}
    for row, answer in zip(rows, answers, strict=True):
        status = TWILIO_FINAL.get(answer[0]) if answer is not None else None
        if status is None or answer is None:
            unsettled.setdefault(row["campaign_id"], []).append(row["id"])
            continue
        final.append(
            Receipt(
                campaign_id=row["campaign_id"],
                delivery_id=row["id"],
                status=status,
                provider_message_id=row["provider_message_id"],
                error=f"twilio {answer[1]}" if answer[1] else None,
            )
        )
    async with deps.pool.acquire() as conn:
        await store_receipts(conn, final)
        for campaign_id, ids in unsettled.items():
            await conn.execute(queries["mark_receipts_checked"], campaign_id, ids)
    stored = len(final)
    if stored:
        log.info("receipts fetched from the provider", extra={"n": stored})
    return stored


async def _sample(
    conn: Conn, campaign: Campaign, now: float, counts: dict[str, dict[str, int]]
) -> None:
    """Add a sample of finished deliveries, keeping those the rate is read over; while the
    campaign is paused, the one sample kept is the baseline when it resumes."""
    done = campaign_service.finished(counts)
    if campaign.state == CampaignState.SENDING:
        samples = campaign_service.rate_window(campaign, now, done)
    else:
        samples = [(now, float(done))]
    await conn.execute(queries["record_progress"], campaign.id, orjson.dumps(samples).decode())
