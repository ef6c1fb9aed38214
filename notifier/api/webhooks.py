"""Provider callbacks, each checked by its own signature before anything changes."""

from __future__ import annotations

import logging
import uuid

from aiohttp import web
from twilio.request_validator import RequestValidator

from notifier.app import RECEIPTS, SETTINGS
from notifier.errors import BadRequest, Forbidden
from notifier.receipts import TWILIO_FINAL, Receipt

log = logging.getLogger(__name__)


def public_url(request: web.Request) -> str:
    """The URL the provider called: the configured public base plus the path and query."""
    base = request.app[SETTINGS].public_base_url.rstrip("/")
    return base + request.rel_url.path_qs


async def twilio_status(request: web.Request) -> web.Response:
    form = await request.post()
    fields = {k: str(v) for k, v in form.items()}
    validator = RequestValidator(request.app[SETTINGS].twilio_auth_token)
    signature = request.headers.get("X-Twilio-Signature", "")
    if not validator.validate(public_url(request), fields, signature):
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
