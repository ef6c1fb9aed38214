"""Provider callbacks, each checked by its own signature before anything changes."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import time
import uuid
from collections.abc import Iterable

import orjson
from aiohttp import web
from pydantic import ValidationError
from redis.exceptions import RedisError

from notifier import chains, messageid, routes
from notifier.api.context import RECEIPTS, REDIS, SETTINGS
from notifier.api.responses import render
from notifier.errors import BadRequest, Forbidden, NotFound
from notifier.models import Channel
from notifier.providers import scrub
from notifier.providers.twilio import callback_signed
from notifier.receipts import EMAIL_FINAL, TWILIO_FINAL, Receipt
from notifier.schemas.common import field_errors
from notifier.schemas.webhooks import (
    MAX_EMAIL_EVENTS,
    EmailEvent,
    EmailEvents,
    EmailEventsResult,
)

log = logging.getLogger(__name__)

# A signed email event is accepted for this long after its timestamp (and as long before,
# for clocks that disagree); an older one is a replay.
EMAIL_EVENT_WINDOW = 300


def public_url(request: web.Request) -> str:
    """The URL the provider called: the configured public base plus the path and query."""
    return routes.base_url(request.app[SETTINGS].public_base_url) + request.rel_url.path_qs


async def twilio_status(request: web.Request) -> web.Response:
    try:
        form = await request.post()
    except ValueError:
        # A body that cannot be read as a form (a multipart type without its boundary, say).
        raise BadRequest("the callback is not a readable form") from None
    fields = {k: str(v) for k, v in form.items()}
    token = request.app[SETTINGS].twilio_auth_token
    signature = request.headers.get("X-Twilio-Signature", "")
    if not callback_signed(public_url(request), fields, token, signature):
        log.warning("twilio callback refused: bad signature")
        raise Forbidden("the X-Twilio-Signature does not match")
    try:
        campaign_id = uuid.UUID(request.query["campaign"])
        delivery_id = int(request.query["delivery"])
        sid = fields["MessageSid"]
        status = fields["MessageStatus"]
    except (KeyError, ValueError):
        raise BadRequest("the callback does not name a delivery and a status") from None
    final = TWILIO_FINAL.get(status)
    if final is not None:
        code = fields.get("ErrorCode")
        await request.app[RECEIPTS].apply(
            Receipt(
                campaign_id=campaign_id,
                delivery_id=delivery_id,
                status=final,
                provider_message_id=sid,
                error=f"twilio {code}" if code else None,
            )
        )
    return web.Response(status=204)


def email_signature(secret: str, timestamp: str, body: bytes) -> str:
    """The X-Notifier-Signature of an email event post: HMAC-SHA256 of the timestamp, a dot
    and the raw body, keyed with NOTIFIER_EMAIL_WEBHOOK_SECRET, as "sha256=<hex>"."""
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


async def email_events(request: web.Request) -> web.Response:
    """Delivery events from the email relay (or its adapter), signed and timestamped."""
    secret = request.app[SETTINGS].email_webhook_secret
    if not secret:
        raise NotFound("email events are not configured (NOTIFIER_EMAIL_WEBHOOK_SECRET)")
    body = await request.read()
    timestamp = request.headers.get("X-Notifier-Timestamp", "")
    signature = request.headers.get("X-Notifier-Signature", "")
    if not hmac.compare_digest(signature, email_signature(secret, timestamp, body)):
        log.warning("email event refused: bad signature")
        raise Forbidden("the X-Notifier-Signature does not match")
    try:
        age = abs(time.time() - int(timestamp))
    except ValueError:
        raise Forbidden("X-Notifier-Timestamp must be Unix seconds") from None
    if age > EMAIL_EVENT_WINDOW:
        log.warning("email event refused: outside the time window")
        raise Forbidden(f"the timestamp is more than {EMAIL_EVENT_WINDOW} s away: a replay?")
    events = _email_events(body)
    receipts = []
    for event in events:
        found = messageid.parse(event.message_id)
        final = EMAIL_FINAL.get(event.event)
        if found is None or final is None:
            continue  # not one of ours, or nothing final to say
        receipts.append(
            Receipt(
                campaign_id=found[0],
                delivery_id=found[1],
                status=final,
                provider_message_id=messageid.normalize(event.message_id),
                # The relay's words may quote the address: scrubbed like a provider's reply.
                error=f"email {event.event}: {scrub(event.reason)}" if event.reason else None,
            )
        )
    # Handed over together, so that one post's events share one write.
    writer = request.app[RECEIPTS]
    gained = await asyncio.gather(*(writer.apply(r) for r in receipts))
    await _run_sms_chains(
        request.app, {r.campaign_id for r, more in zip(receipts, gained, strict=True) if more}
    )
    return render(EmailEventsResult(received=len(events), applied=len(receipts)))


async def _run_sms_chains(app: web.Application, campaign_ids: Iterable[uuid.UUID]) -> None:
    """Bounces gave these campaigns fallback SMS: make sure their SMS dispatch chains run.
    The SMS are stored already, so with Redis out of reach the reconciler starts the chains
    on its next pass, and the relay's post has succeeded all the same."""
    for campaign_id in campaign_ids:
        try:
            await chains.ensure(
                app[REDIS], str(campaign_id), [Channel.SMS], app[SETTINGS].chains_per_channel
            )
        except (OSError, RedisError):
            log.warning(
                "fallback SMS chains not started; the reconciler will start them",
                extra={"campaign_id": str(campaign_id)},
            )


def _email_events(body: bytes) -> list[EmailEvent]:
    try:
        parsed = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise BadRequest("the body is not JSON") from None
    try:
        return EmailEvents.model_validate(parsed).events
    except ValidationError as exc:
        # A 400 (not 422), as the document has always told relays for a body of no events.
        raise BadRequest(
            f'expected {{"events": [...]}} with at most {MAX_EMAIL_EVENTS} events, each with '
            'a "message_id" and an "event"',
            errors=field_errors(exc, EmailEvents),
        ) from None
