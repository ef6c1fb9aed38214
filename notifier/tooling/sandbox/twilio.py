"""The sandbox's Twilio-compatible Messages API, served by aiohttp.

Only ``POST /2010-04-01/Accounts/{AccountSid}/Messages.json`` is implemented, with HTTP Basic
auth, Twilio's Message resource and error shapes, and status callbacks ("sent", then
"delivered" or "undelivered").

Fault injection by recipient number (Twilio's own magic test numbers where they exist):

- To ``+15005550001`` → 400, code 21211 (invalid 'To' number)
- To ``+15005550002`` → 400, code 21612 (cannot route)
- To ``+15005550003`` → 400, code 21408 (region not enabled)
- To ``+15005550004`` → 400, code 21610 (unsubscribed, STOP)
- To ``+15005550009`` → 400, code 21614 (not a mobile number)
- To ``+1500555300N`` (N = 3…8) → accepted, then an "undelivered" callback with ErrorCode 3000N
- To any number in the ``sms_undelivered`` knob → "undelivered" with ErrorCode 30003
- From ``+15005550001`` → 21212, ``+15005550007`` → 21606, ``+15005550008`` → 21611

plus the runtime knobs ``sms_throttle_rate`` (429, code 20429, optional Retry-After) and
``sms_error_rate`` (500, code 20500), which apply to the requests not refused above; see
faults.py.
"""

from __future__ import annotations

import asyncio
import base64
import email.utils
import hmac
import itertools
import math
import re
import secrets
import time
from urllib.parse import parse_qsl, urlsplit

import orjson
from aiohttp import web

from notifier.models import Channel
from notifier.tooling.sandbox.callbacks import StatusCallbacks
from notifier.tooling.sandbox.faults import Faults
from notifier.tooling.sandbox.inbox import Inbox

# Message SIDs: a random half per process and a counter, unique without a syscall each.
_SID_PREFIX = secrets.token_hex(8)
_SID_COUNTER = itertools.count()

API_VERSION = "2010-04-01"
MESSAGES_PATH = "/2010-04-01/Accounts/{account_sid}/Messages.json"
POOL_NUMBER = "+15005550006"  # the sender picked when only a Messaging Service is given

_E164 = re.compile(r"\+[1-9]\d{1,14}")
_UNDELIVERED_PREFIX = "+1500555300"

MAGIC_TO: dict[str, tuple[int, str]] = {
    "+15005550001": (21211, "The 'To' number {to} is not a valid phone number."),
    "+15005550002": (21612, "The 'To' phone number: {to}, is not currently reachable via SMS."),
    "+15005550003": (
        21408,
        "Permission to send an SMS has not been enabled for the region indicated by the "
        "'To' number.",
    ),
    "+15005550004": (21610, "Attempt to send to unsubscribed recipient"),
    "+15005550009": (21614, "'To' number is not a valid mobile number"),
}
MAGIC_FROM: dict[str, tuple[int, str]] = {
    "+15005550001": (21212, "The 'From' number is not a valid phone number."),
    "+15005550007": (
        21606,
        "The 'From' phone number provided is not a valid message-capable Twilio phone number "
        "for this destination/account.",
    ),
    "+15005550008": (
        21611,
        "This 'From' number has exceeded the maximum number of queued messages.",
    ),
}

_GSM_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?¡"
    "ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
_GSM_EXTENDED = frozenset("^{}\\[~]|€\f")


def segments(body: str) -> int:
    """How many SMS segments Twilio would bill: GSM-7 if it fits, else UCS-2."""
    extended = 0
    for char in body:
        if char in _GSM_EXTENDED:
            extended += 1
        elif char not in _GSM_BASIC:
            units = len(body.encode("utf-16-le")) // 2
            return 1 if units <= 70 else math.ceil(units / 67)
    units = len(body) + extended
    return 1 if units <= 160 else math.ceil(units / 153)


def error_body(status: int, code: int, message: str) -> bytes:
    """Twilio's error shape."""
    return orjson.dumps(
        {
            "code": code,
            "message": message,
            "more_info": f"https://www.twilio.com/docs/errors/{code}",
            "status": status,
        }
    )


class TwilioApi:
    """Handlers for the Messages API; state lives in the inbox, faults and callbacks."""

    def __init__(
        self,
        *,
        account_sid: str,
        auth_token: str,
        inbox: Inbox,
        faults: Faults,
        callbacks: StatusCallbacks,
    ) -> None:
        self.account_sid = account_sid
        self._expected_auth = (
            "Basic " + base64.b64encode(f"{account_sid}:{auth_token}".encode()).decode()
        ).encode()
        self._inbox = inbox
        self._faults = faults
        self._callbacks = callbacks
        self._date_second = -1
        self._date_text = ""

    def add_routes(self, app: web.Application) -> None:
        """Register the API's routes on the sandbox's application."""
        app.router.add_post("/2010-04-01/Accounts/{account_sid}/Messages.json", self.create_message)
        app.router.add_get(
            "/2010-04-01/Accounts/{account_sid}/Messages/{sid}.json", self.fetch_message
        )

    async def create_message(self, request: web.Request) -> web.Response:
        """Create a Message: validate, apply faults, record, schedule callbacks."""
        header = request.headers.get("Authorization", "")
        if not hmac.compare_digest(header.encode(), self._expected_auth):
            return _error(401, 20003, "Authenticate", WWW_AUTHENTICATE)
        if request.match_info["account_sid"] != self.account_sid:
            return _error(404, 20404, "The requested resource was not found")
        form = dict(parse_qsl((await request.read()).decode("utf-8", "replace"), True))
        # Numbers refused by design are refused before any runtime fault, so a test can
        # count on their one attempt.
        refusal = _validate(form)
        if refusal is not None:
            self._inbox.refuse(Channel.SMS)
            return _error(400, *refusal)
        if self._faults.hit("sms_throttle_rate"):
            self._inbox.refuse(Channel.SMS)
            retry = self._faults.sms_retry_after
            headers = {} if retry is None else {"Retry-After": f"{retry:g}"}
            return _error(429, 20429, "Too Many Requests", headers)
        if self._faults.hit("sms_error_rate"):
            self._inbox.refuse(Channel.SMS)
            return _error(500, 20500, "Internal Server Error")
        if self._faults.hit("sms_disconnect_rate"):
            self._inbox.refuse(Channel.SMS)
            if request.transport is not None:
                request.transport.abort()  # no answer at all; nothing was created
            raise ConnectionResetError("sandbox fault: connection dropped")
        response = self._accept(form)
        if self._faults.hit("sms_hang_rate"):
            await asyncio.sleep(self._faults.hang_seconds)  # created; the answer comes too late
        return response

    async def fetch_message(self, request: web.Request) -> web.Response:
        """Fetch a Message: its current status, as a sender asks when no receipt came."""
        header = request.headers.get("Authorization", "")
        if not hmac.compare_digest(header.encode(), self._expected_auth):
            return _error(401, 20003, "Authenticate", WWW_AUTHENTICATE)
        sid = request.match_info["sid"]
        to = self._inbox.find(Channel.SMS, sid)
        if request.match_info["account_sid"] != self.account_sid or to is None:
            return _error(404, 20404, "The requested resource was not found")
        code = _undelivered_code(to, self._faults.sms_undelivered)
        uri = f"/{API_VERSION}/Accounts/{self.account_sid}/Messages/{sid}"
        resource = {
            "account_sid": self.account_sid,
            "api_version": API_VERSION,
            "body": None,
            "direction": "outbound-api",
            "error_code": code,
            "error_message": None if code is None else "Unreachable destination handset",
            "sid": sid,
            "status": "delivered" if code is None else "undelivered",
            "to": to,
            "uri": f"{uri}.json",
        }
        return web.Response(body=orjson.dumps(resource), content_type="application/json")

    def _accept(self, form: dict[str, str]) -> web.Response:
        sid = f"SM{_SID_PREFIX}{next(_SID_COUNTER):016x}"
        to, body = form["To"], form["Body"]
        service = form.get("MessagingServiceSid")
        sender = form.get("From") or None
        self._inbox.add(Channel.SMS, to, sid, body if self._inbox.keep_bodies else None)
        callback = form.get("StatusCallback")
        if callback and (events := self._events(sid, to, sender, service)):
            self._callbacks.schedule(callback, events)
        now = self._date()
        uri = f"/{API_VERSION}/Accounts/{self.account_sid}/Messages/{sid}"
        resource = {
            "account_sid": self.account_sid,
            "api_version": API_VERSION,
            "body": body,
            "date_created": now,
            "date_sent": None,
            "date_updated": now,
            "direction": "outbound-api",
            "error_code": None,
            "error_message": None,
            "from": sender,
            "messaging_service_sid": service,
            "num_media": "0",
            "num_segments": str(segments(body)),
            "price": None,
            "price_unit": "USD",
            "sid": sid,
            # With only a Messaging Service, Twilio answers "accepted" and picks the sender later.
            "status": "queued" if sender else "accepted",
            "subresource_uris": {"media": f"{uri}/Media.json"},
            "to": to,
            "uri": f"{uri}.json",
        }
        return web.Response(
            status=201, body=orjson.dumps(resource), content_type="application/json"
        )

    def _events(
        self, sid: str, to: str, sender: str | None, service: str | None
    ) -> list[dict[str, str]]:
        base = {
            "AccountSid": self.account_sid,
            "ApiVersion": API_VERSION,
            "From": sender or POOL_NUMBER,
            "MessageSid": sid,
            "SmsSid": sid,
            "To": to,
        }
        if service:
            base["MessagingServiceSid"] = service
        sent = base | {"MessageStatus": "sent", "SmsStatus": "sent"}
        code = _undelivered_code(to, self._faults.sms_undelivered)
        if code is None:
            final = base | {"MessageStatus": "delivered", "SmsStatus": "delivered"}
        else:
            final = base | {
                "MessageStatus": "undelivered",
                "SmsStatus": "undelivered",
                "ErrorCode": str(code),
            }
        faults = self._faults
        if faults.hit("callback_loss_rate"):
            return []
        events = [sent, final] if faults.sms_interim_callbacks else [final]
        if faults.hit("callback_reorder_rate"):
            events = [final, sent]
        if faults.hit("callback_duplicate_rate"):
            events.append(final)
        return events

    def _date(self) -> str:
        # RFC 2822 as Twilio writes it ("Thu, 24 Aug 2023 05:01:45 +0000"), once per second.
        second = int(time.time())
        if second != self._date_second:
            self._date_second = second
            self._date_text = email.utils.formatdate(second).replace("-0000", "+0000")
        return self._date_text


WWW_AUTHENTICATE = {"WWW-Authenticate": 'Basic realm="Twilio API"'}


def _validate(form: dict[str, str]) -> tuple[int, str] | None:
    to = form.get("To", "")
    sender = form.get("From", "")
    service = form.get("MessagingServiceSid", "")
    body = form.get("Body", "")
    if not to:
        return 21604, "A 'To' phone number is required."
    if not (sender or service):
        return 21603, "A 'From' phone number is required."
    if not body:
        return 21602, "Message body is required."
    if len(body) > 1600:
        return 21617, "The concatenated message body exceeds the 1600 character limit."
    if not _E164.fullmatch(to):
        return 21211, "The 'To' number is not a valid phone number."
    if to in MAGIC_TO:
        # Like Twilio, some messages quote the number; the provider must not pass that on.
        code, text = MAGIC_TO[to]
        return code, text.format(to=to)
    if sender in MAGIC_FROM:
        return MAGIC_FROM[sender]
    if service and not service.startswith("MG"):
        return 21701, "The Messaging Service Sid is invalid."
    callback = form.get("StatusCallback")
    if callback:
        parts = urlsplit(callback)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            return 21609, "The StatusCallback URL is not a valid URL."
    return None


def _undelivered_code(to: str, undelivered: set[str]) -> int | None:
    if to in undelivered:
        return 30003
    if to.startswith(_UNDELIVERED_PREFIX) and len(to) == len(_UNDELIVERED_PREFIX) + 1:
        digit = int(to[-1])
        if 3 <= digit <= 8:
            return 30000 + digit
    return None


def _error(
    status: int, code: int, message: str, headers: dict[str, str] | None = None
) -> web.Response:
    return web.Response(
        status=status,
        body=error_body(status, code, message),
        content_type="application/json",
        headers=headers,
    )
