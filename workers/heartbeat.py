"""A worker's heartbeat in Postgres, and the reconciler's view of who is alive.

Each worker process beats several times per NOTIFIER_WORKER_DEAD_SECONDS from a thread of
its own, with its own connection and event loop: a worker whose event loop is busy or
blocked for a while still beats, so it does not lose its batches to the reconciler. A
process that is killed, frozen or cut off from Postgres stops beating, and its batches are
reclaimed once its last beat is older than NOTIFIER_WORKER_DEAD_SECONDS.

Beats are judged only by a reconciler whose own beats have gone through without a gap for
that long: after Postgres was away, every worker's last beat is old, and nobody is judged
until the living have had time to beat again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import threading
import time
import uuid

import asyncpg

from notifier.db import DATABASE_DOWN, Conn, Pool, queries

log = logging.getLogger(__name__)

# Beats per dead-after period: a beat or two may be late without the worker seeming dead.
BEATS_PER_PERIOD = 4


class Heartbeat:
    """This process's pulse; `worker_id` names it on its claims and chains."""

    def __init__(self, database_url: str, dead_seconds: float) -> None:
        self.worker_id = uuid.uuid4()
        self.dead_seconds = dead_seconds
        self.every = dead_seconds / BEATS_PER_PERIOD
        self._url = database_url
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        # Since when (monotonic) every beat has gone through; None after a failed one.
        self._steady_since: float | None = None

    @property
    def steady(self) -> bool:
        """Whether this process has beaten without a gap for a whole dead-after period, so
        that its view of others' beats can be trusted."""
        since = self._steady_since
        return since is not None and time.monotonic() - since >= self.dead_seconds

    async def start(self, pool: Pool) -> None:
        """The first beat, from the caller (a worker that cannot reach Postgres does not
        start), then the others from the thread."""
        async with pool.acquire() as conn:
            await self._beat(conn)
        self._steady_since = time.monotonic()
        self._thread = threading.Thread(target=self._run, name="heartbeat", daemon=True)
        self._thread.start()

    async def stop(self, pool: Pool) -> None:
        """Stop beating and sign off: claims still held (none, after a clean shutdown) are
        reclaimed at the reconciler's next pass."""
        self._stop.set()
        if self._thread is not None:
            await asyncio.to_thread(self._thread.join, self.every * 4)
        with contextlib.suppress(*DATABASE_DOWN):
            async with pool.acquire() as conn:
                await conn.execute(queries["worker_gone"], self.worker_id)

    async def _beat(self, conn: Conn) -> None:
        await conn.execute(
            queries["worker_beat"], self.worker_id, socket.gethostname(), os.getpid()
        )

    def _run(self) -> None:
        asyncio.run(self._beat_until_stopped())

    async def _beat_until_stopped(self) -> None:
        conn: asyncpg.Connection | None = None
        try:
            while not self._stop.is_set():
                began = time.monotonic()
                try:
                    async with asyncio.timeout(self.every * 2):
                        if conn is None or conn.is_closed():
                            conn = await asyncpg.connect(self._url)
                        await self._beat(conn)
                    if self._steady_since is None:
                        self._steady_since = time.monotonic()
                        log.info("heartbeat back", extra={"worker": str(self.worker_id)})
                except Exception:  # the beat must outlive any one failure
                    if self._steady_since is not None:
                        log.warning(
                            "heartbeat failed",
                            exc_info=True,
                            extra={"worker": str(self.worker_id)},
                        )
                    self._steady_since = None
                    if conn is not None:
                        conn.terminate()
                        conn = None
                # Only this thread's loop waits here: blocking it is harmless.
                self._stop.wait(max(0.0, self.every - (time.monotonic() - began)))
        finally:
            if conn is not None:
                await conn.close()
