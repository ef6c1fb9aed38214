"""Email over SMTP: a pool of persistent aiosmtplib connections and the reply-code table."""

from __future__ import annotations

import asyncio
import logging
import re
import socket
import ssl
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import aiosmtplib
from aiosmtplib.typing import Default

from notifier import messageid
from notifier.providers import Outcome, OutgoingEmail, SendResult, fan_out, scrub
from notifier.settings import Settings

log = logging.getLogger(__name__)

# The one table. Enhanced status codes (RFC 3463, "x.y.z") are looked up before reply codes
# because they are more precise; anything not listed falls back to its reply-code class
# (4xx transient, 5xx permanent). `None` stands for "no reply at all": a connection error.
SMTP_OUTCOMES: dict[int | str | None, Outcome] = {
    None: Outcome.TRANSIENT,
    # The large receivers' wording for "you send too fast": slow down instead of retrying now.
    "4.7.28": Outcome.THROTTLED,
    "4.7.27": Outcome.THROTTLED,
    421: Outcome.TRANSIENT,  # service closing the channel
    450: Outcome.TRANSIENT,  # mailbox busy or greylisted
    451: Outcome.TRANSIENT,  # local error in processing
    452: Outcome.TRANSIENT,  # insufficient storage / too many recipients
    # These refuse *us*, not the recipient: a rotated password or a confused session must
    # not mark a whole campaign permanently failed, so they are retried within the bounds.
    503: Outcome.TRANSIENT,  # bad sequence of commands
    530: Outcome.TRANSIENT,  # authentication required
    534: Outcome.TRANSIENT,  # authentication mechanism too weak
    535: Outcome.TRANSIENT,  # authentication credentials invalid
    538: Outcome.TRANSIENT,  # encryption required for authentication
    550: Outcome.PERMANENT,  # mailbox unavailable
    551: Outcome.PERMANENT,  # user not local
    552: Outcome.PERMANENT,  # exceeded storage allocation
    553: Outcome.PERMANENT,  # mailbox name not allowed
    554: Outcome.PERMANENT,  # transaction failed (often: content rejected)
    556: Outcome.PERMANENT,  # domain does not accept mail
}

_ENHANCED = re.compile(r"\s*([245]\.\d{1,3}\.\d{1,3})\b")


def classify(code: int | None, message: str = "") -> Outcome:
    """The outcome for an SMTP reply (code and text), or for no reply when `code` is None."""
    if code is not None:
        enhanced = _ENHANCED.match(message)
        if enhanced and enhanced.group(1) in SMTP_OUTCOMES:
            return SMTP_OUTCOMES[enhanced.group(1)]
    if code in SMTP_OUTCOMES:
        return SMTP_OUTCOMES[code]
    assert code is not None  # None is in the table
    if 200 <= code < 400:
        return Outcome.SENT
    if 500 <= code < 600:
        return Outcome.PERMANENT
    return Outcome.TRANSIENT


class _Client(aiosmtplib.SMTP):
    """aiosmtplib's client, noting when the current message's DATA began: a connection lost
    after that may have delivered it."""

    handed_over = False

    async def data(
        self,
        message: str | bytes,
        /,
        *,
        timeout: float | Literal[Default.token] | None = Default.token,  # noqa: ASYNC109 - the library's signature
    ) -> aiosmtplib.SMTPResponse:
        self.handed_over = True
        return await super().data(message, timeout=timeout)


@dataclass(slots=True)
class _Slot:
    """One pooled connection; mutable because it is reconnected in place when broken."""

    client: _Client | None = None


class SmtpProvider:
    """Sends rendered emails over a pool of persistent SMTP connections."""

    def __init__(self, settings: Settings, *, tls_context: ssl.SSLContext | None = None) -> None:
        self._settings = settings
        self._tls_context = tls_context
        # socket.getfqdn(), aiosmtplib's default EHLO name, may block on DNS; the plain host
        # name costs nothing and is computed once.
        self._local_hostname = socket.gethostname() or "localhost"
        self._slots = [_Slot() for _ in range(max(1, settings.smtp_pool_size))]
        self._idle: asyncio.Queue[_Slot] = asyncio.Queue()
        for slot in self._slots:
            self._idle.put_nowait(slot)

    async def send(self, batch: Sequence[OutgoingEmail]) -> list[SendResult]:
        """Send each message to its one recipient, concurrently over the pool."""
        return await fan_out(batch, len(self._slots), self._send_one)

    async def close(self) -> None:
        """Say QUIT on every open connection (or drop it if it does not answer)."""
        for slot in self._slots:
            client, slot.client = slot.client, None
            if client is None or not client.is_connected:
                continue
            try:
                await client.quit(timeout=min(self._settings.smtp_timeout, 5.0))
            except (aiosmtplib.SMTPException, OSError, TimeoutError):
                client.close()

    async def _send_one(self, message: OutgoingEmail) -> SendResult:
        slot = await self._idle.get()
        try:
            return await self._deliver(slot, message)
        finally:
            self._idle.put_nowait(slot)

    async def _deliver(self, slot: _Slot, message: OutgoingEmail) -> SendResult:
        client = slot.client
        if client is None or not client.is_connected:
            slot.client = None
            try:
                client = await self._connect()
            except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
                return self._failed(message, exc)
            slot.client = client
        options = () if message.to.isascii() else ("SMTPUTF8",)
        client.handed_over = False
        try:
            await client.sendmail(
                self._settings.email_from, [message.to], message.data, mail_options=options
            )
        except aiosmtplib.SMTPRecipientsRefused as exc:
            refusal = exc.recipients[0]
            return _refused(message, refusal.code, refusal.message)
        except aiosmtplib.SMTPResponseException as exc:
            if exc.code == 421 or not client.is_connected:
                self._discard(slot)
            return _refused(message, exc.code, exc.message)
        except aiosmtplib.SMTPNotSupported:
            return _result(message, Outcome.PERMANENT, "smtp server lacks SMTPUTF8")
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            self._discard(slot)
            return self._failed(message, exc, uncertain=client.handed_over)
        except ValueError:
            # aiosmtplib refuses addresses that could inject commands; the address is bad.
            return _result(message, Outcome.PERMANENT, "smtp invalid recipient address")
        return SendResult(
            delivery_id=message.delivery_id,
            outcome=Outcome.SENT,
            provider_message_id=messageid.find(message.data),
        )

    async def _connect(self) -> _Client:
        settings = self._settings
        client = _Client(
            hostname=settings.smtp_host,
            port=settings.smtp_port,
            username=settings.smtp_username,
            password=settings.smtp_password,
            local_hostname=self._local_hostname,
            timeout=settings.smtp_timeout,
            use_tls=settings.smtp_tls == "tls",
            start_tls=settings.smtp_tls == "starttls",
            tls_context=self._tls_context,
        )
        try:
            await client.connect()
        except BaseException:
            client.close()
            raise
        log.debug("smtp connection opened", extra={"pool_size": len(self._slots)})
        return client

    def _discard(self, slot: _Slot) -> None:
        client, slot.client = slot.client, None
        if client is not None:
            client.close()

    def _failed(
        self, message: OutgoingEmail, exc: BaseException, *, uncertain: bool = False
    ) -> SendResult:
        """A failure without a usable recipient verdict: the connection, not the address.
        `uncertain`: it happened after the message was handed over."""
        if isinstance(exc, aiosmtplib.SMTPResponseException):
            return _refused(message, exc.code, exc.message)
        kind = "timeout" if isinstance(exc, TimeoutError) else "connection failed"
        # Debug, not warning: when the server is down this fires for every message, and the
        # result already carries the reason to the caller, which reports per batch.
        log.debug(
            "smtp %s", kind, extra={"delivery_id": message.delivery_id, "error": type(exc).__name__}
        )
        if uncertain:
            kind += " after the message was sent"
        outcome = Outcome.UNCERTAIN if uncertain else SMTP_OUTCOMES[None]
        return _result(message, outcome, f"smtp {kind} ({type(exc).__name__})")


def _refused(message: OutgoingEmail, code: int, text: str) -> SendResult:
    reason = f"smtp {code} {scrub(text)}".rstrip()
    return _result(message, classify(code, text), reason)


def _result(message: OutgoingEmail, outcome: Outcome, error: str) -> SendResult:
    return SendResult(delivery_id=message.delivery_id, outcome=outcome, error=error)
