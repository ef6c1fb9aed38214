"""The sandbox as one object: SMTP server, Twilio-compatible API, callbacks and control API.

The control API lives under ``/_sandbox/`` on the same HTTP port as the Twilio API:

- ``GET  /_sandbox/messages?channel=email|sms&offset=&limit=`` → received messages
- ``GET  /_sandbox/stats[?timestamps=1]`` → counts, callbacks, per-second rates
- ``POST /_sandbox/reset`` → forget messages, counters, greylist state and faults
- ``GET|POST /_sandbox/faults`` → read or set the fault knobs (a JSON object)
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import ssl
from types import TracebackType

import orjson
from aiohttp import web

from notifier.models import Channel
from notifier.tooling.sandbox.callbacks import StatusCallbacks
from notifier.tooling.sandbox.faults import Faults
from notifier.tooling.sandbox.inbox import Inbox, Received
from notifier.tooling.sandbox.smtp import SmtpServer, TlsMode
from notifier.tooling.sandbox.twilio import TwilioApi

log = logging.getLogger(__name__)

DEFAULT_ACCOUNT_SID = "AC" + "0" * 32
DEFAULT_AUTH_TOKEN = "sandbox-auth-token"
DEFAULT_SMTP_PORT = 2525
DEFAULT_HTTP_PORT = 8025


class Sandbox:
    """Local protocol peers for email and SMS, usable in-process by tests and benchmarks."""

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        smtp_port: int = 0,
        http_port: int = 0,
        account_sid: str = DEFAULT_ACCOUNT_SID,
        auth_token: str = DEFAULT_AUTH_TOKEN,
        callback_delay: float = 0.05,
        callback_concurrency: int = 32,
        keep_bodies: bool = True,
        max_bodies: int = 100_000,
        allow_remote_callbacks: bool = False,
        smtp_tls: TlsMode = "none",
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.host = host
        self.smtp_port = smtp_port
        self.http_port = http_port
        self.inbox = Inbox(keep_bodies=keep_bodies, max_bodies=max_bodies)
        self.faults = Faults(callback_delay=callback_delay)
        self.callbacks = StatusCallbacks(
            auth_token=auth_token,
            faults=self.faults,
            concurrency=callback_concurrency,
            allow_remote=allow_remote_callbacks,
        )
        self.smtp = SmtpServer(self.inbox, self.faults, tls=smtp_tls, ssl_context=ssl_context)
        self.twilio = TwilioApi(
            account_sid=account_sid,
            auth_token=auth_token,
            inbox=self.inbox,
            faults=self.faults,
            callbacks=self.callbacks,
        )
        self._runner: web.AppRunner | None = None

    @property
    def base_url(self) -> str:
        """The Twilio API base URL, for NOTIFIER_TWILIO_BASE_URL."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.http_port}"

    async def start(self) -> None:
        """Bind both ports (0 picks free ones, read back from `smtp_port` and `http_port`)."""
        await self.callbacks.start()
        self.smtp_port = await self.smtp.start(self.host, self.smtp_port)
        self._runner = web.AppRunner(self.app(), access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.http_port, reuse_address=True)
        await site.start()
        self.http_port = int(self._runner.addresses[0][1])

    async def stop(self) -> None:
        """Close both servers and drop callbacks not yet sent."""
        await self.smtp.stop()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        await self.callbacks.stop()

    async def __aenter__(self) -> Sandbox:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.stop()

    def messages(self, channel: Channel | str) -> list[Received]:
        """Every accepted message on a channel, in arrival order."""
        return self.inbox.records(Channel(channel))

    def recipients(self, channel: Channel | str) -> list[str]:
        """The `to` of every accepted message on a channel."""
        return self.inbox.recipients(Channel(channel))

    async def settle(self) -> None:
        """Wait until every scheduled status callback has been posted or given up; bound the
        wait with `asyncio.timeout`."""
        await self.callbacks.idle()

    def reset(self) -> None:
        """Forget messages, counters, greylisting and faults."""
        self.inbox.clear()
        self.callbacks.clear()
        self.smtp.greylisted.clear()
        self.faults.reset()

    def stats(self, *, timestamps: bool = False) -> dict[str, object]:
        """Counts per channel, callback counters and per-second arrival counts."""
        result: dict[str, object] = {}
        for channel in Channel:
            entry: dict[str, object] = {
                "received": self.inbox.count(channel),
                "refused": self.inbox.refused(channel),
                "per_second": self.inbox.per_second(channel),
            }
            if timestamps:
                entry["timestamps"] = self.inbox.timestamps(channel)
            result[str(channel)] = entry
        result["callbacks"] = {
            "sent": self.callbacks.sent,
            "failed": self.callbacks.failed,
            "retried": self.callbacks.retried,
            "pending": self.callbacks.pending,
        }
        result["faults"] = self.faults.as_json()
        return result

    def app(self) -> web.Application:
        """The HTTP application: the Twilio API plus the control API."""
        app = web.Application(client_max_size=2 * 1024 * 1024)
        self.twilio.add_routes(app)
        app.router.add_get("/_sandbox/messages", self._get_messages)
        app.router.add_get("/_sandbox/stats", self._get_stats)
        app.router.add_post("/_sandbox/reset", self._post_reset)
        app.router.add_get("/_sandbox/faults", self._get_faults)
        app.router.add_post("/_sandbox/faults", self._post_faults)
        return app

    async def _get_messages(self, request: web.Request) -> web.Response:
        try:
            channels = [Channel(request.query["channel"])] if "channel" in request.query else []
            offset = int(request.query.get("offset", "0"))
            limit = int(request.query["limit"]) if "limit" in request.query else None
        except ValueError:
            return _json({"error": "channel must be email or sms; offset and limit integers"}, 400)
        records: list[dict[str, object]] = []
        for channel in channels or list(Channel):
            found = self.inbox.records(channel, offset=offset, limit=limit)
            records.extend(record.as_json() for record in found)
        return _json(records)

    async def _get_stats(self, request: web.Request) -> web.Response:
        return _json(self.stats(timestamps=request.query.get("timestamps") in ("1", "true")))

    async def _post_reset(self, request: web.Request) -> web.Response:
        self.reset()
        return _json({"reset": True})

    async def _get_faults(self, request: web.Request) -> web.Response:
        return _json(self.faults.as_json())

    async def _post_faults(self, request: web.Request) -> web.Response:
        try:
            changes = orjson.loads(await request.read())
            if not isinstance(changes, dict):
                raise ValueError("expected a JSON object of fault knobs")
            self.faults.update(changes)
        except ValueError as exc:  # orjson.JSONDecodeError is a ValueError
            return _json({"error": str(exc)}, 400)
        return _json(self.faults.as_json())


async def serve(
    host: str = "127.0.0.1",
    smtp_port: int = DEFAULT_SMTP_PORT,
    http_port: int = DEFAULT_HTTP_PORT,
    account_sid: str = DEFAULT_ACCOUNT_SID,
    auth_token: str = DEFAULT_AUTH_TOKEN,
    *,
    callback_delay: float = 0.05,
    keep_bodies: bool = True,
    allow_remote_callbacks: bool | None = None,
    interim_callbacks: bool = True,
    callback_concurrency: int = 32,
) -> None:
    """Run the sandbox until cancelled (the `notifier sandbox` command).

    Status callbacks may leave the loopback interface only if `allow_remote_callbacks` says
    so; left as None, that follows `host`: a sandbox listening beyond loopback (as in the
    compose deployment, where the API is another container) may call back beyond it too.
    """
    if allow_remote_callbacks is None:
        allow_remote_callbacks = not _is_loopback(host)
    sandbox = Sandbox(
        host=host,
        smtp_port=smtp_port,
        http_port=http_port,
        account_sid=account_sid,
        auth_token=auth_token,
        callback_delay=callback_delay,
        keep_bodies=keep_bodies,
        allow_remote_callbacks=allow_remote_callbacks,
        callback_concurrency=callback_concurrency,
    )
    sandbox.faults.sms_interim_callbacks = interim_callbacks
    await sandbox.start()
    log.info(
        "sandbox listening",
        extra={"smtp_port": sandbox.smtp_port, "http_port": sandbox.http_port},
    )
    try:
        await asyncio.Event().wait()
    finally:
        await sandbox.stop()


def _is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _json(value: object, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(value), status=status, content_type="application/json")
