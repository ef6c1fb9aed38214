"""Recording a batch's outcomes in slices while it sends, and how far it was handed over.

A link hands its results here as each chunk comes back from the provider; a writer task puts
them into Postgres every SLICE_SECONDS (sooner once SLICE_MESSAGES are waiting), one slice
at a time, in bulk. The sending loop never waits for it, and a worker that dies loses at
most the slice not yet written, not its whole batch.

Before each chunk goes to the provider, the claim's mark moves past it (one small UPDATE):
when a worker dies, the deliveries past its mark were provably never handed over and are
sent again unflagged; only those between the recorded ones and the mark are flagged.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import TypeVar

from notifier import dedupe
from notifier import fallback as sms_fallback
from notifier.db import DATABASE_DOWN, Conn, Pool, counter_shard, queries
from notifier.providers import Outcome, SendResult
from notifier.settings import Settings

log = logging.getLogger(__name__)

# How long outcomes may wait before they are written, and how many make a slice sooner.
SLICE_SECONDS = 0.25
SLICE_MESSAGES = 250
# How long a slice is retried while Postgres cannot be reached before the link gives up
# (its batch is then reclaimed once its lease ends).
RECORD_RETRY_SECONDS = 60.0

# Outcomes after which an email may have failed for good: candidates for the SMS fallback
# (the SQL keeps only those that did fail).
_FALLBACK_OUTCOMES = frozenset({Outcome.PERMANENT, Outcome.TRANSIENT, Outcome.UNCERTAIN})

T = TypeVar("T")


class Recorder:
    """Writes one claimed batch's outcomes, a slice at a time, while the batch sends."""

    def __init__(
        self,
        *,
        pool: Pool,
        settings: Settings,
        campaign_id: uuid.UUID,
        claim: uuid.UUID,
        attempts: Mapping[int, int],
        falls_back: bool,
        shares: bool,
    ) -> None:
        self._pool = pool
        self._settings = settings
        self._campaign_id = campaign_id
        self._claim = claim
        self._attempts = attempts
        self._falls_back = falls_back
        self._shares = shares
        self._waiting: list[SendResult] = []
        self._wake = asyncio.Event()
        self._closing = False
        self.slices = 0
        self.fallbacks_added = 0
        self._task = asyncio.create_task(self._run())

    def add(self, results: Sequence[SendResult]) -> None:
        """Outcomes to write with the next slice."""
        self._waiting.extend(results)
        if len(self._waiting) >= SLICE_MESSAGES:
            self._wake.set()

    async def hand_over(self, through: int) -> str | None:
        """Mark the claim's deliveries up to id `through` as possibly handed to the provider,
        before they are; returns the campaign's state, or None when the claim was reclaimed
        (the batch is no longer this worker's: nothing more may be sent)."""

        async def mark(conn: Conn) -> str | None:
            state: str | None = await conn.fetchval(queries["hand_over"], self._claim, through)
            return state

        return await self._retrying("marking a chunk as handed over failed", mark)

    async def close(self) -> int:
        """Write what is left and stop; returns how many fallback SMS the batch added. Raises
        what the writer could not get past (Postgres out of reach for too long)."""
        self._closing = True
        self._wake.set()
        await self._task

        async def drop(conn: Conn) -> None:
            await conn.execute(queries["drop_claim"], self._claim)

        await self._retrying("dropping a finished claim failed", drop)
        return self.fallbacks_added

    async def abandon(self) -> None:
        """Stop without writing what is left (the link is failing anyway)."""
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError, *DATABASE_DOWN):
            await self._task

    async def _run(self) -> None:
        while True:
            if not self._closing:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(SLICE_SECONDS):
                        await self._wake.wait()
                self._wake.clear()
            if self._waiting:
                batch, self._waiting = self._waiting, []
                await self._write(batch)
            elif self._closing:
                return

    async def _write(self, results: list[SendResult]) -> None:
        """One slice in one transaction, with the outcomes its sends pass to the deliveries
        that share them (contact dedupe), and the fallback SMS of its emails that failed for
        good: with a gap between them, the campaign could be found finished in it and those
        people never told. Retried while the database is unreachable."""
        ids = [r.delivery_id for r in results]
        args = (
            self._campaign_id,
            ids,
            [str(r.outcome) for r in results],
            [r.provider_message_id for r in results],
            [r.error for r in results],
            [self._retry_in(r) for r in results],
            self._claim,
            self._settings.max_attempts,
            counter_shard(),
        )
        fallback = (
            [r.delivery_id for r in results if r.outcome in _FALLBACK_OUTCOMES]
            if self._falls_back
            else []
        )

        async def write(conn: Conn) -> None:
            async with conn.transaction():
                await conn.fetch(queries["record_results"], *args)
                failed = list(fallback)
                if self._shares:
                    shared = await dedupe.follow(conn, self._campaign_id, ids, counter_shard())
                    if self._falls_back:
                        failed += shared
                if failed:
                    self.fallbacks_added += await sms_fallback.add(
                        conn, self._campaign_id, failed, counter_shard()
                    )

        await self._retrying("recording results failed", write)
        self.slices += 1

    async def _retrying(self, failure: str, op: Callable[[Conn], Awaitable[T]]) -> T:
        """Run `op` on a pooled connection, again while Postgres is out of reach, for at
        most RECORD_RETRY_SECONDS."""
        deadline = time.monotonic() + RECORD_RETRY_SECONDS
        while True:
            try:
                async with self._pool.acquire() as conn:
                    return await op(conn)
            except DATABASE_DOWN:
                if time.monotonic() > deadline:
                    raise
                log.warning(f"{failure}; retrying", extra={"campaign_id": str(self._campaign_id)})
                await asyncio.sleep(1.0)

    def _retry_in(self, result: SendResult) -> float:
        if result.outcome == Outcome.THROTTLED:
            return result.retry_after or 1.0
        if result.outcome == Outcome.RELEASED:
            return 0.0
        return retry_delay(self._settings, self._attempts[result.delivery_id])


def retry_delay(settings: Settings, attempts: int) -> float:
    """Exponential backoff, capped, with jitter so that retries do not arrive in waves."""
    base = min(settings.retry_max_seconds, settings.retry_base_seconds * 2.0 ** (attempts - 1))
    return float(base * random.uniform(0.5, 1.5))
