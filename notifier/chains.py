"""Dispatch chains: a few long-lived job chains per campaign and channel, not a job per message.

Each chain is a sequence of arq jobs; a link claims one batch, sends it and enqueues the next
link. A Redis key per (campaign, channel, slot) names the chain that owns the slot and the
worker that ran its latest link, so the reconciler can restart a slot whose chain was lost
(Redis flushed, or its worker dead) without ever running two chains in one slot for long.
The key holds only ids, no personal data: "<chain token> <worker id>".
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


# KEYS[1] is the slot; ARGV is the chain's token, the worker's id and the key's lifetime.
# The slot is kept (or taken, if empty) for the chain and names the worker; 0 if another
# chain owns it.
_HOLD = """
local v = redis.call('GET', KEYS[1])
if v and string.match(v, '^[^ ]*') ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[1] .. ' ' .. ARGV[2], 'EX', ARGV[3])
return 1
"""
# KEYS[1] is the slot; deleted if it still holds ARGV[1] exactly.
_FREE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


async def hold(
    redis: ArqRedis, campaign_id: str, channel: str, slot: int, token: str, worker: str
) -> bool:
    """Keep the slot for this chain, run by `worker` now; False if another chain owns it
    (this one stops)."""
    key = slot_key(campaign_id, channel, slot)
    held = await redis.register_script(_HOLD)(keys=[key], args=[token, worker, CHAIN_TTL_SECONDS])
    return bool(held)


async def release(redis: ArqRedis, campaign_id: str, channel: str, slot: int, token: str) -> None:
    """The chain ends: free its slot if it still owns it."""
    key = slot_key(campaign_id, channel, slot)
    current = await redis.get(key)
    if current is not None and _token(current) == token:
        await redis.register_script(_FREE)(keys=[key], args=[current])


async def free_orphans(
    redis: ArqRedis, campaign_id: str, channels: Iterable[str], slots: int, live: set[str]
) -> int:
    """Free the slots whose latest link ran on a worker not in `live` (it died holding
    them), so that `ensure` restarts them now rather than when their key expires. Returns
    how many were freed."""
    freed = 0
    for channel in channels:
        for slot in range(slots):
            key = slot_key(campaign_id, channel, slot)
            current = await redis.get(key)
            if current is None:
                continue
            worker = _text(current).partition(" ")[2]
            if worker and worker not in live:
                freed += int(await redis.register_script(_FREE)(keys=[key], args=[current]))
    return freed


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _token(value: bytes | str) -> str:
    return _text(value).partition(" ")[0]
