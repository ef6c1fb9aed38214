"""The dispatch job: a chain's link claims a batch, sends it under the rate limit, records it."""

from __future__ import annotations

import asyncio
import logging
import math
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import asyncpg
from arq.connections import ArqRedis

from notifier import campaigns as campaign_service
from notifier import chains
from notifier.campaigns import Campaign
from notifier.db import DATABASE_ERRORS, Conn, counter_shard, one, queries
from notifier.models import CampaignState, Channel
from notifier.notices import Notices, Outgoing
from notifier.providers import Outcome, Provider, SendResult
from notifier.ratelimit import Bucket, RateLimiter, campaign_bucket, provider_bucket
from notifier.sealing import Sealer
from notifier.settings import Settings
from workers.heartbeat import Heartbeat
from workers.recording import Recorder

log = logging.getLogger(__name__)

# A link sends about this many seconds' worth at the channel's rate, so pause is felt quickly.
LINK_SECONDS = 2.0


@dataclass(slots=True, kw_only=True)
class Deps:
    """What every dispatch job shares in one worker process."""

    settings: Settings
    pool: asyncpg.Pool
    redis: ArqRedis
    limiter: RateLimiter
    providers: Mapping[str, Provider[Any]]
    sealer: Sealer
    heartbeat: Heartbeat
    notices: Notices = field(init=False)

    def __post_init__(self) -> None:
        self.notices = Notices(self.settings, self.sealer)


async def dispatch(
    ctx: dict[str, Any], campaign_id: str, channel: str, slot: int, token: str
) -> str:
    """One link of a dispatch chain; returns what it did (kept by arq for a short while)."""
    deps: Deps = ctx["deps"]
    redis = deps.redis
    worker = str(deps.heartbeat.worker_id)
    if not await chains.hold(redis, campaign_id, channel, slot, token, worker):
        return "superseded"
    try:
        outcome, defer = await _link(deps, uuid.UUID(campaign_id), channel)
    except DATABASE_ERRORS:
        log.exception(
            "dispatch link failed; retrying shortly",
            extra={"campaign_id": campaign_id, "channel": channel},
        )
        outcome, defer = "error", 2.0
    if defer is None:
        await chains.release(redis, campaign_id, channel, slot, token)
    else:
        await chains.enqueue_link(redis, campaign_id, channel, slot, token, defer=defer)
    return outcome


async def _link(deps: Deps, campaign_id: uuid.UUID, channel: str) -> tuple[str, float | None]:
    """Returns (what happened, seconds until the next link or None to end the chain)."""
    settings = deps.settings
    async with deps.pool.acquire() as conn:
        campaign = await campaign_service.find(conn, campaign_id)
        if campaign is None or campaign.state != CampaignState.SENDING:
            return "not sending", None
        if campaign.preparing:
            await _prepare(conn, campaign)
        buckets = _buckets(settings, campaign, channel)
        rate = min(b.rate for b in buckets)
        size = max(1, min(settings.batch_size, math.ceil(rate * LINK_SECONDS)))
        claim = uuid.uuid4()
        rows = await conn.fetch(
            queries["claim_batch"],
            campaign_id,
            channel,
            size,
            claim,
            float(settings.lease_seconds),
            counter_shard(),
            deps.heartbeat.worker_id,
        )
        if not rows:
            return await _idle(conn, campaign, channel)
    messages, failed = deps.notices.build(campaign, channel, rows)
    recorder = Recorder(
        pool=deps.pool,
        settings=settings,
        campaign_id=campaign_id,
        claim=claim,
        attempts={r["id"]: r["attempts"] for r in rows},
        falls_back=channel == Channel.EMAIL and campaign.fallback.get("email_failed") == "sms",
        shares=campaign.dedupe_contacts,
    )
    recorder.add(failed)
    try:
        await _send(deps, campaign_id, channel, buckets, messages, recorder)
    except BaseException:
        await recorder.abandon()
        raise
    if await recorder.close():
        # Recipients whose email failed for good now have an SMS: make sure SMS chains run.
        await chains.ensure(
            deps.redis, str(campaign_id), [Channel.SMS], deps.settings.chains_per_channel
        )
    return f"sent batch of {len(rows)} in {recorder.slices} slice(s)", 0.0


async def _prepare(conn: Conn, campaign: Campaign) -> None:
    """Create the next chunk of the campaign's deliveries, unless another link is at it."""
    async with conn.transaction():
        after = await conn.fetchval(queries["lock_for_preparing"], campaign.id)
        if after is not None:
            await campaign_service.prepare_deliveries(
                conn,
                campaign.id,
                campaign.channels,
                after,
                dedupe_contacts=campaign.dedupe_contacts,
            )


async def _idle(conn: Conn, campaign: Campaign, channel: str) -> tuple[str, float | None]:
    if campaign.preparing:
        return "deliveries still being created", 0.2
    campaign_id = campaign.id
    work = one(await conn.fetchrow(queries["channel_work"], campaign_id, channel))
    if work["due"]:
        return "due rows locked by others", 0.2
    if work["next_at"] is not None:
        wait = float(work["next_at"].timestamp() - time.time())
        return "waiting for retries", min(max(wait, 0.1), 5.0)
    if not work["in_flight"]:
        await campaign_service.complete_if_done(conn, campaign_id)
    return "nothing left", None


def _buckets(settings: Settings, campaign: Campaign, channel: str) -> list[Bucket]:
    buckets = [provider_bucket(channel, settings.rate_for(channel))]
    if campaign.rate_limit_per_second:
        buckets.append(campaign_bucket(str(campaign.id), channel, campaign.rate_limit_per_second))
    return buckets


async def _send(
    deps: Deps,
    campaign_id: uuid.UUID,
    channel: str,
    buckets: list[Bucket],
    messages: Sequence[Outgoing],
    recorder: Recorder,
) -> None:
    """Send under the rate limit, handing each chunk's outcomes to the recorder as they come.
    Each chunk is marked as handed over before it goes; the batch stops early when the
    campaign stops sending or the claim was reclaimed."""
    provider = deps.providers[channel]

    async def send(chunk: Sequence[Outgoing]) -> list[SendResult]:
        results = await provider.send(chunk)
        recorder.add(results)
        return results

    tasks: list[asyncio.Task[list[SendResult]]] = []
    sent_upto = 0
    claimed = True
    while sent_upto < len(messages):
        n = await deps.limiter.take(buckets, len(messages) - sent_upto)
        chunk = messages[sent_upto : sent_upto + n]
        state = await recorder.hand_over(chunk[-1].delivery_id)
        if state != CampaignState.SENDING:
            claimed = state is not None
            break
        sent_upto += n
        tasks.append(asyncio.create_task(send(chunk)))
    results = [res for chunk_results in await asyncio.gather(*tasks) for res in chunk_results]
    if claimed:  # the campaign stopped: the rest go back to pending, no attempt spent
        unsent = messages[sent_upto:]
        recorder.add(
            [SendResult(delivery_id=m.delivery_id, outcome=Outcome.RELEASED) for m in unsent]
        )
    throttled = [r.retry_after or 1.0 for r in results if r.outcome == Outcome.THROTTLED]
    if throttled:
        await deps.limiter.hold(buckets[0], max(throttled))
