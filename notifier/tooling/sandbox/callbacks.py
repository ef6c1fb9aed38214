"""Status callbacks as Twilio sends them: delayed, form-encoded, signed with the auth token."""

from __future__ import annotations

import asyncio
import ipaddress
import itertools
import logging
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import aiohttp
import yarl

from notifier.providers.twilio import callback_signature
from notifier.tooling.sandbox.faults import Faults
from notifier.tooling.sandbox.http import FormPoster, HttpError

log = logging.getLogger(__name__)

_LOCAL_NAMES = frozenset({"localhost", "localhost.localdomain"})
_TOKEN_PREFIX = secrets.token_hex(8)


@dataclass(frozen=True, slots=True, kw_only=True)
class _Due:
    due: float
    url: str
    events: Sequence[Mapping[str, str]]


class StatusCallbacks:
    """Posts scheduled callbacks with bounded concurrency through one ClientSession.

    A callback that fails is retried a few times with backoff and then counted as failed;
    nothing here ever raises into the sandbox. Callbacks only go to loopback hosts unless
    `allow_remote` is set, so a mistyped URL can never send traffic off the machine.
    """

    def __init__(
        self,
        *,
        auth_token: str,
        faults: Faults,
        concurrency: int = 32,
        attempts: int = 4,
        allow_remote: bool = False,
    ) -> None:
        self.auth_token = auth_token
        self.sent = 0
        self.failed = 0
        self.retried = 0
        self._faults = faults
        self._concurrency = concurrency
        self._attempts = attempts
        self._allow_remote = allow_remote
        self._queue: asyncio.Queue[_Due] = asyncio.Queue()
        self._in_flight = 0
        self._workers: list[asyncio.Task[None]] = []
        self._session: aiohttp.ClientSession | None = None
        self._plain = FormPoster()
        self._tokens = itertools.count()
        self._host_allowed: dict[str, bool] = {}
        self._idle = asyncio.Event()
        self._idle.set()

    @property
    def pending(self) -> int:
        """Messages whose callbacks are not all posted yet."""
        return self._queue.qsize() + self._in_flight

    async def start(self) -> None:
        """Open the session and start the workers."""
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=self._concurrency),
            timeout=aiohttp.ClientTimeout(total=10),
            headers={"User-Agent": "TwilioProxy/1.1"},
        )
        self._workers = [
            asyncio.create_task(self._work(), name=f"sandbox-callback-{n}")
            for n in range(self._concurrency)
        ]

    async def stop(self) -> None:
        """Cancel the workers (pending callbacks are dropped) and close the session."""
        for worker in self._workers:
            worker.cancel()
        await asyncio.gather(*self._workers, return_exceptions=True)
        self._workers = []
        if self._session is not None:
            await self._session.close()
            self._session = None
        await self._plain.close()

    def schedule(self, url: str, events: Sequence[Mapping[str, str]]) -> None:
        """Post `events` to `url` in order, the first after the configured delay."""
        due = asyncio.get_running_loop().time() + self._faults.callback_delay
        self._queue.put_nowait(_Due(due=due, url=url, events=events))
        self._idle.clear()

    def clear(self) -> None:
        """Drop callbacks not yet started and zero the counters."""
        while not self._queue.empty():
            self._queue.get_nowait()
        self.sent = self.failed = self.retried = 0
        if not self.pending:
            self._idle.set()

    async def idle(self) -> None:
        """Wait until every scheduled callback was posted or gave up (bound it with
        `asyncio.timeout`)."""
        await self._idle.wait()

    async def _work(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            item = await self._queue.get()
            self._in_flight += 1
            try:
                # Items are queued in due order, so waiting on the head never delays others.
                wait = item.due - loop.time()
                if wait > 0:
                    await asyncio.sleep(wait)
                for params in item.events:
                    await self._post(item.url, params)
            except Exception:
                # Never let one callback take a worker down; the count shows it.
                self.failed += 1
                log.exception("sandbox status callback crashed")
            finally:
                self._in_flight -= 1
                if not self.pending:
                    self._idle.set()

    async def _post(self, url: str, params: Mapping[str, str]) -> None:
        if not self._allowed(url):
            self.failed += 1
            return
        assert self._session is not None
        headers = {
            "X-Twilio-Signature": callback_signature(url, params, self.auth_token),
            "I-Twilio-Idempotency-Token": f"{_TOKEN_PREFIX}-{next(self._tokens)}",
        }
        plain = url.startswith("http://")
        for attempt in range(self._attempts):
            if attempt:
                self.retried += 1
                await asyncio.sleep(0.05 * 2 ** (attempt - 1))
            try:
                if plain:  # the common, local case: the cheap client
                    status = await self._plain.post(url, params, headers)
                else:
                    async with self._session.post(url, data=params, headers=headers) as resp:
                        await resp.read()
                        status = resp.status
                if status < 300:
                    self.sent += 1
                    return
            except (
                aiohttp.ClientError,
                HttpError,
                OSError,
                TimeoutError,
                asyncio.IncompleteReadError,
            ):
                pass
        self.failed += 1

    def _allowed(self, url: str) -> bool:
        if self._allow_remote:
            return True
        try:
            host = yarl.URL(url).host or ""
        except ValueError:
            return False
        allowed = self._host_allowed.get(host)
        if allowed is None:
            try:
                allowed = ipaddress.ip_address(host.strip("[]")).is_loopback
            except ValueError:
                allowed = host.lower() in _LOCAL_NAMES
            self._host_allowed[host] = allowed
            if not allowed:
                log.warning("sandbox refuses to send status callbacks off this machine")
        return allowed
