"""Provider receipts, applied in bulk: one statement for every receipt that arrived together.

A webhook handler hands its receipt over and waits for the write that includes it, so the
provider's request is answered only once the receipt is stored (a failure answers 5xx and
the provider retries). Under load hundreds of receipts share one round trip to Postgres.

An email that bounces after the relay accepted it has failed for good: when its campaign
falls back to SMS, the fallback SMS is added in the transaction that records the bounce.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Iterable
from dataclasses import dataclass

from notifier import dedupe, fallback
from notifier.db import Conn, Pool, counter_shard, queries
from notifier.models import DeliveryStatus

log = logging.getLogger(__name__)

# Twilio's final MessageStatus values and what they make of a delivery. The others (queued,
# sending, sent, accepted) say no more than the worker's own record of the send.
TWILIO_FINAL: dict[str, DeliveryStatus] = {
    "delivered": DeliveryStatus.DELIVERED,
    "undelivered": DeliveryStatus.FAILED,
    "failed": DeliveryStatus.FAILED,
}


# What an email relay's events say about a message, as a delivery's final status. Other
# events (deferred, opened…) say nothing final.
EMAIL_FINAL: dict[str, DeliveryStatus] = {
    "delivered": DeliveryStatus.DELIVERED,
    "bounced": DeliveryStatus.FAILED,
    "rejected": DeliveryStatus.FAILED,
}


@dataclass(frozen=True, slots=True, kw_only=True)
class Receipt:
    """A provider's final word on one delivery."""

    campaign_id: uuid.UUID
    delivery_id: int
    status: DeliveryStatus
    provider_message_id: str
    error: str | None


async def store_receipts(conn: Conn, receipts: Iterable[Receipt]) -> set[uuid.UUID]:
    """Apply receipts, one statement per campaign so that each reads only its own partition;
    the first receipt for a delivery wins, a later one is a replay. Returns the campaigns
    that gained fallback SMS: the caller makes sure their SMS dispatch chains run."""
    first: dict[tuple[uuid.UUID, int], Receipt] = {}
    for receipt in receipts:
        first.setdefault((receipt.campaign_id, receipt.delivery_id), receipt)
    by_campaign: dict[uuid.UUID, list[Receipt]] = {}
    for receipt in first.values():
        by_campaign.setdefault(receipt.campaign_id, []).append(receipt)
    fell_back: set[uuid.UUID] = set()
    for campaign_id, rows in by_campaign.items():
        shard = counter_shard()
        ids = [r.delivery_id for r in rows]
        # One transaction: the deliveries that share these sends (contact dedupe) take their
        # outcomes, and emails that failed get their fallback SMS, with the receipts or not
        # at all.
        async with conn.transaction():
            failed_emails: list[int] = await conn.fetchval(
                queries["apply_receipts"],
                campaign_id,
                ids,
                [str(r.status) for r in rows],
                [r.provider_message_id for r in rows],
                [r.error for r in rows],
                shard,
            )
            failed_emails += await dedupe.follow(conn, campaign_id, ids, shard)
            if failed_emails and await fallback.add(conn, campaign_id, failed_emails, shard):
                fell_back.add(campaign_id)
    return fell_back


class ReceiptWriter:
    """Collects receipts for up to 2 ms (longer while a write is running) and writes them in one
    statement."""

    def __init__(self, pool: Pool, *, max_batch: int = 1000, max_delay: float = 0.002) -> None:
        self._pool = pool
        self._max_batch = max_batch
        self._max_delay = max_delay
        self._waiting: list[tuple[Receipt, asyncio.Future[bool]]] = []
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closing = False

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def close(self) -> None:
        """Write what is waiting, then stop. The running write is let finish: cancelling
        it mid-statement would leave its connection unusable."""
        self._closing = True
        self._wake.set()
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        while self._waiting:
            await self._flush()

    async def apply(self, receipt: Receipt) -> bool:
        """Store one receipt; returns once it is committed, raises if the write failed.
        True when its campaign gained fallback SMS in that write (their chains must run)."""
        done: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._waiting.append((receipt, done))
        if len(self._waiting) >= self._max_batch:
            self._wake.set()
        return await done

    async def _run(self) -> None:
        while not self._closing:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._max_delay)
            self._wake.clear()
            while self._waiting:
                await self._flush()

    async def _flush(self) -> None:
        batch = self._waiting[: self._max_batch]
        del self._waiting[: self._max_batch]
        try:
            async with self._pool.acquire() as conn:
                fell_back = await store_receipts(conn, (receipt for receipt, _ in batch))
        except Exception as exc:  # whatever it was, the writer itself must live on
            log.warning(
                "receipts not stored; the provider will retry",
                extra={"n": len(batch), "error": type(exc).__name__},
            )
            for _, done in batch:
                if not done.done():
                    done.set_exception(exc)
            return
        for receipt, done in batch:
            if not done.done():
                done.set_result(receipt.campaign_id in fell_back)
