"""Dispatch chains: a few long-lived job chains per campaign and channel, not a job per message.

Each chain is a sequence of arq jobs; a link claims one batch, sends it and enqueues the next
link. A Redis key per (campaign, channel, slot) names the chain that owns the slot, so the
reconciler can restart a slot whose chain was lost (Redis flushed, worker killed) without
ever running two chains in one slot for long. The key holds only ids, no personal data.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable

from arq.connections import ArqRedis

QUEUE_NAME = "notifier:queue"
DISPATCH_JOB = "dispatch"
CHAIN_TTL_SECONDS = 90


def slot_key(campaign_id: str, channel: str, slot: int) -> str:
    return f"notifier:chain:{campaign_id}:{channel}:{slot}"


async def ensure(redis: ArqRedis, campaign_id: str, channels: Iterable[str], slots: int) -> int:
    """Start a chain in every empty slot; returns how many were started."""
    started = 0
    for channel in channels:
        for slot in range(slots):
            token = uuid.uuid4().hex
            if await redis.set(
                slot_key(campaign_id, channel, slot), token, ex=CHAIN_TTL_SECONDS, nx=True
            ):
                await enqueue_link(redis, campaign_id, channel, slot, token)
                started += 1
    return started


async def enqueue_link(
    redis: ArqRedis, campaign_id: str, channel: str, slot: int, token: str, *, defer: float = 0.0
) -> None:
    """Queue the next link of a chain."""
    await redis.enqueue_job(
        DISPATCH_JOB,
        campaign_id,
        channel,
        slot,
        token,
        _job_id=f"dispatch:{campaign_id}:{channel}:{slot}:{uuid.uuid4().hex[:12]}",
        _defer_by=defer if defer > 0 else None,
    )


async def hold(redis: ArqRedis, campaign_id: str, channel: str, slot: int, token: str) -> bool:
    """Keep the slot for this chain; False if another chain owns it now (this one stops)."""
    key = slot_key(campaign_id, channel, slot)
    current = await redis.get(key)
    if current is None:
        return bool(await redis.set(key, token, ex=CHAIN_TTL_SECONDS, nx=True))
    if _text(current) != token:
        return False
    await redis.expire(key, CHAIN_TTL_SECONDS)
    return True


async def release(redis: ArqRedis, campaign_id: str, channel: str, slot: int, token: str) -> None:
    """The chain ends: free its slot if it still owns it."""
    key = slot_key(campaign_id, channel, slot)
    current = await redis.get(key)
    if current is not None and _text(current) == token:
        await redis.delete(key)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
