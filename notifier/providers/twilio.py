"""SMS through Twilio's REST API with the twilio library's async client, and the error table."""

from __future__ import annotations

import asyncio
import base64
import contextvars
import email.utils
import hashlib
import hmac
import logging
import time
import urllib.parse
from collections.abc import Mapping, Sequence
from typing import Any

import aiohttp
from twilio.base.exceptions import TwilioRestException, TwilioServiceException
from twilio.http.async_http_client import AsyncTwilioHttpClient
from twilio.http.response import Response
from twilio.rest import Client

from notifier.providers import Outcome, OutgoingSms, SendResult, fan_out, scrub
from notifier.settings import Settings

log = logging.getLogger(__name__)

# The one table: Twilio error code → outcome and a short reason that names nobody. Codes not
# listed fall back on the HTTP status (see `classify`).
TWILIO_ERRORS: dict[int, tuple[Outcome, str]] = {
    # A rotated or revoked token is our problem, not the recipient's: retry within bounds
    # rather than fail a whole campaign permanently.
    20003: (Outcome.TRANSIENT, "authentication failed"),
    20429: (Outcome.THROTTLED, "too many requests"),
    20500: (Outcome.TRANSIENT, "internal server error"),
    20503: (Outcome.TRANSIENT, "service unavailable"),
    14107: (Outcome.THROTTLED, "message rate limit exceeded"),
    21611: (Outcome.THROTTLED, "'From' number has too many queued messages"),
    30001: (Outcome.THROTTLED, "queue overflow"),
    30022: (Outcome.THROTTLED, "A2P 10DLC rate limit exceeded"),
    21211: (Outcome.PERMANENT, "invalid 'To' phone number"),
    21212: (Outcome.PERMANENT, "invalid 'From' phone number"),
    21214: (Outcome.PERMANENT, "'To' phone number cannot be reached"),
    21408: (Outcome.PERMANENT, "permission to send to this region not enabled"),
    21602: (Outcome.PERMANENT, "message body required"),
    21603: (Outcome.PERMANENT, "'From' phone number required"),
    21604: (Outcome.PERMANENT, "'To' phone number required"),
    21606: (Outcome.PERMANENT, "'From' phone number not valid for this account"),
    21609: (Outcome.PERMANENT, "invalid StatusCallback URL"),
    21610: (Outcome.PERMANENT, "recipient has unsubscribed"),
    21612: (Outcome.PERMANENT, "'To' phone number cannot be routed"),
    21614: (Outcome.PERMANENT, "'To' phone number is not a mobile number"),
    21617: (Outcome.PERMANENT, "body exceeds 1600 characters"),
    30003: (Outcome.PERMANENT, "unreachable destination handset"),
    30004: (Outcome.PERMANENT, "message blocked"),
    30005: (Outcome.PERMANENT, "unknown destination handset"),
    30006: (Outcome.PERMANENT, "landline or unreachable carrier"),
    30007: (Outcome.PERMANENT, "message filtered by carrier"),
    30008: (Outcome.PERMANENT, "unknown delivery error"),
}


def classify(status: int | None, code: int | None = None) -> Outcome:
    """The outcome for an HTTP status and Twilio error code; no status means no response.

    Also classifies the ErrorCode of a status callback: `classify(None, 30003)`.
    """
    if code is not None and code in TWILIO_ERRORS:
        return TWILIO_ERRORS[code][0]
    if status is None or status >= 500:
        return Outcome.TRANSIENT
    if status == 429:
        return Outcome.THROTTLED
    if status >= 400:
        return Outcome.PERMANENT
    return Outcome.SENT


def describe(status: int | None, code: int | None, message: str = "") -> str:
    """A short reason for an error, e.g. "twilio 21211 invalid 'To' phone number"."""
    if code is not None and code in TWILIO_ERRORS:
        return f"twilio {code} {TWILIO_ERRORS[code][1]}"
    text = scrub(message.removeprefix("Unable to create record: "))
    label = f"twilio {code}" if code is not None and code != status else f"twilio http {status}"
    return f"{label} {text}".rstrip()


def retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delta seconds or an HTTP date)."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def callback_signature(url: str, params: Mapping[str, str], auth_token: str) -> str:
    """Twilio's X-Twilio-Signature: base64 HMAC-SHA1 of the URL followed by each POST
    parameter's name and value, sorted by name, keyed with the account's auth token."""
    payload = url + "".join(name + params[name] for name in sorted(params))
    digest = hmac.new(auth_token.encode(), payload.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


_DEFAULT_PORTS = {"http": 80, "https": 443}


def _other_form(url: str) -> str | None:
    """The same URL with its port written out, or left out: Twilio may have signed either."""
    parts = urllib.parse.urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        return None
    if port is not None:
        return parts._replace(netloc=parts.netloc.rsplit(":", 1)[0]).geturl()
    default = _DEFAULT_PORTS.get(parts.scheme)
    if default is None or not parts.netloc:
        return None
    return parts._replace(netloc=f"{parts.netloc}:{default}").geturl()


def callback_signed(url: str, params: Mapping[str, str], auth_token: str, given: str) -> bool:
    """Whether `given` is Twilio's signature of this callback, compared in constant time.

    One HMAC in the usual case; the URL with its port written out (or left out) is tried
    only when that fails, as Twilio's own validator does.
    """
    if not given:
        return False
    expected = given.encode()
    if hmac.compare_digest(callback_signature(url, params, auth_token).encode(), expected):
        return True
    other = _other_form(url)
    return other is not None and hmac.compare_digest(
        callback_signature(other, params, auth_token).encode(), expected
    )


# Set by the HTTP client inside the task that awaits `create_async`, read by the same task
# once the library has turned the 429 into an exception that no longer carries headers.
_retry_after: contextvars.ContextVar[float | None] = contextvars.ContextVar(
    "twilio_retry_after", default=None
)


class _HttpClient(AsyncTwilioHttpClient):  # type: ignore[misc]
    """The twilio library's aiohttp transport, made to suit a bulk sender.

    No retries of its own (the dispatcher retries, after classifying), no per-request log
    lines, a session created inside the running loop, and Retry-After kept for 429s.
    """

    def __init__(self, *, timeout: float, limit: int) -> None:
        super().__init__(pool_connections=False, timeout=timeout)
        self._limit = limit
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._session: aiohttp.ClientSession | None = None
        self._auth_header: tuple[tuple[str, str], str] | None = None

    async def request(
        self,
        method: str,
        url: str,
        params: Any = None,
        data: Any = None,
        headers: Mapping[str, str] | None = None,
        auth: tuple[str, str] | None = None,
        timeout: float | None = None,  # noqa: ASYNC109 - the library's signature
        allow_redirects: bool = False,
    ) -> Any:
        if auth is not None:
            headers = dict(headers or {}, Authorization=self._authorization(auth))
        session = self._session
        if session is None or session.closed:
            session = self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self._limit),
                timeout=self._timeout,
            )
        # Always explicit: timeout=None would mean "no timeout" to aiohttp.
        limit = aiohttp.ClientTimeout(total=timeout) if timeout else self._timeout
        async with session.request(
            method,
            url,
            params=params,
            data=data,
            headers=headers,
            allow_redirects=allow_redirects,
            timeout=limit,
        ) as response:
            text = await response.text()
            if response.status == 429:
                _retry_after.set(retry_after(response.headers.get("Retry-After")))
            return Response(response.status, text, response.headers)

    def _authorization(self, auth: tuple[str, str]) -> str:
        # The same credentials come with every request; encode them once.
        if self._auth_header is None or self._auth_header[0] != auth:
            token = base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
            self._auth_header = (auth, f"Basic {token}")
        return self._auth_header[1]

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


class TwilioProvider:
    """Sends SMS through Twilio's Messages API, at most `twilio_concurrency` at a time."""

    def __init__(self, settings: Settings) -> None:
        self._concurrency = max(1, settings.twilio_concurrency)
        self._in_flight = asyncio.Semaphore(self._concurrency)
        self._http = _HttpClient(timeout=settings.twilio_timeout, limit=self._concurrency)
        client = Client(
            settings.twilio_account_sid, settings.twilio_auth_token, http_client=self._http
        )
        # The client would take an edge or region from TWILIO_* variables and rewrite the
        # host; settings are the only source of configuration here.
        client.edge = None
        client.region = None
        client.api.base_url = settings.twilio_base_url.rstrip("/")
        self._messages = client.api.v2010.account.messages
        self._sender: dict[str, str] = {}
        if settings.twilio_messaging_service_sid:
            self._sender["messaging_service_sid"] = settings.twilio_messaging_service_sid
        if settings.twilio_from:
            self._sender["from_"] = settings.twilio_from

    async def send(self, batch: Sequence[OutgoingSms]) -> list[SendResult]:
        """Create one Message per SMS and classify every refusal."""
        return await fan_out(batch, self._concurrency, self._send_one)

    async def close(self) -> None:
        """Close the HTTP session."""
        await self._http.close()

    async def fetch_status(self, sid: str) -> tuple[str, int | None] | None:
        """A message's current status and error code, as Twilio reports it; None when Twilio
        could not be asked or does not know the message."""
        try:
            async with self._in_flight:
                found = await self._messages(sid).fetch_async()
        except (
            TwilioRestException,
            TwilioServiceException,
            aiohttp.ClientError,
            OSError,
            TimeoutError,
            ValueError,
        ):
            return None
        status = getattr(found, "status", None)
        code = getattr(found, "error_code", None)
        if not isinstance(status, str):
            return None
        return status, code if isinstance(code, int) else None

    async def _send_one(self, message: OutgoingSms) -> SendResult:
        _retry_after.set(None)
        fields = dict(self._sender, to=message.to, body=message.body)
        if message.status_callback:
            fields["status_callback"] = message.status_callback
        try:
            async with self._in_flight:
                created = await self._messages.create_async(**fields)
        except TwilioRestException as exc:
            return _refused(message, exc.status, exc.code, str(exc.msg))
        except TwilioServiceException as exc:
            return _refused(message, exc.status, exc.code, str(exc.title))
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            # Refused before the request went out: certainly not sent. Anything after that
            # (a timeout, a dropped connection) leaves the message possibly created.
            sure = isinstance(exc, aiohttp.ClientConnectorError)
            kind = "timeout" if isinstance(exc, TimeoutError) else "connection failed"
            # Debug, not warning: this fires per message while the API is unreachable, and
            # the result already carries the reason to the caller.
            log.debug(
                "twilio %s",
                kind,
                extra={"delivery_id": message.delivery_id, "error": type(exc).__name__},
            )
            return SendResult(
                delivery_id=message.delivery_id,
                outcome=Outcome.TRANSIENT if sure else Outcome.UNCERTAIN,
                error=f"twilio {kind} ({type(exc).__name__})",
            )
        except ValueError:
            # A success status with a body that is not JSON: the message may exist.
            return SendResult(
                delivery_id=message.delivery_id,
                outcome=Outcome.UNCERTAIN,
                error="twilio unreadable response",
            )
        sid = getattr(created, "sid", None)
        return SendResult(
            delivery_id=message.delivery_id,
            outcome=Outcome.SENT,
            provider_message_id=sid if isinstance(sid, str) else None,
        )


def _refused(message: OutgoingSms, status: int | None, code: int | None, text: str) -> SendResult:
    outcome = classify(status, code)
    return SendResult(
        delivery_id=message.delivery_id,
        outcome=outcome,
        error=describe(status, code, text),
        retry_after=_retry_after.get() if outcome is Outcome.THROTTLED else None,
    )
