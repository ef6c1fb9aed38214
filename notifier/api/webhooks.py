"""Provider callbacks, each checked by its own signature before anything changes."""

from __future__ import annotations

import logging
import uuid

from aiohttp import web
from twilio.request_validator import RequestValidator

from notifier import deliveries
from notifier.app import POOL, SETTINGS
from notifier.errors import BadRequest, Forbidden

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
    async with request.app[POOL].acquire() as conn:
        await deliveries.apply_twilio_status(
            conn, campaign_id, delivery_id, sid, status, fields.get("ErrorCode") or None
        )
    return web.Response(status=204)
