"""Running the API as a process: listen, and on SIGTERM or SIGINT stop gracefully.

A graceful stop closes the listening socket first, then lets every request in flight finish
(an upload of millions of rows included, up to `drain_seconds`), and only then closes the
connections and the database pool. aiohttp's own shutdown marks connections closing at once
and from then on ignores what clients still send, so an upload whose body is still arriving
could never finish; hence this order.
"""

from __future__ import annotations

import asyncio
import logging
import signal

from aiohttp import web

log = logging.getLogger(__name__)


class InFlight:
    """How many requests are being handled right now."""

    def __init__(self) -> None:
        self.count = 0
        self._idle = asyncio.Event()
        self._idle.set()

    def enter(self) -> None:
        self.count += 1
        self._idle.clear()

    def leave(self) -> None:
        self.count -= 1
        if self.count == 0:
            self._idle.set()

    async def idle(self) -> None:
        await self._idle.wait()


IN_FLIGHT = web.AppKey("in_flight", InFlight)


async def serve(app: web.Application, host: str, port: int, *, drain_seconds: float) -> None:
    """Serve until SIGTERM or SIGINT, then stop as described above."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=5.0)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    log.info("api listening", extra={"host": host, "port": port})
    try:
        await stop.wait()
        in_flight = app[IN_FLIGHT]
        log.info("api stopping", extra={"requests_in_flight": in_flight.count})
        await site.stop()  # no new connections
        try:
            await asyncio.wait_for(in_flight.idle(), drain_seconds)
        except TimeoutError:
            log.warning(
                "api stopping with requests unfinished",
                extra={"requests_in_flight": in_flight.count},
            )
    finally:
        await runner.cleanup()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(signum)
    log.info("api stopped")
