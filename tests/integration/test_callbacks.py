"""Twilio status callbacks: signatures checked, replays and late events never move backwards."""

from __future__ import annotations

import aiohttp
import asyncpg
from twilio.request_validator import RequestValidator

from notifier.tooling.stack import LocalStack
from tests import factories


async def _post(
    stack: LocalStack, url_path: str, form: dict[str, str], signature: str | None = None
) -> int:
    url = stack.settings.public_base_url + url_path
    if signature is None:
        signature = RequestValidator(stack.settings.twilio_auth_token).compute_signature(url, form)
    async with (
        aiohttp.ClientSession() as http,
        http.post(url, data=form, headers={"X-Twilio-Signature": signature}) as resp,
    ):
        return resp.status


async def test_forged_replayed_and_late_callbacks_change_nothing(
    stack: LocalStack, api: aiohttp.ClientSession, db: asyncpg.Connection
) -> None:
    cid = (await factories.create_campaign(api, channels=["sms"]))["id"]
    await factories.upload(api, cid, factories.recipients_csv(3, email=False))
    await stack.start_inline_worker()
    async with api.post(f"/v1/campaigns/{cid}/launch"):
        pass
    await factories.wait_for(api, cid, factories.settled)
    row = await db.fetchrow(
        "SELECT id, provider_message_id FROM deliveries WHERE campaign_id = $1 LIMIT 1",
        __import__("uuid").UUID(cid),
    )
    assert row is not None
    path = f"/v1/webhooks/twilio/status?campaign={cid}&delivery={row['id']}"
    form = {
        "MessageSid": row["provider_message_id"],
        "MessageStatus": "undelivered",
        "ErrorCode": "30003",
        "AccountSid": stack.settings.twilio_account_sid,
    }

    assert await _post(stack, path, form, signature="Zm9yZ2Vk") == 403
    assert await _post(stack, path, {**form, "MessageStatus": "delivered"}, signature="") == 403
    # Correctly signed but late: a terminal status is never overwritten.
    assert await _post(stack, path, form) == 204
    assert await _post(stack, path, {**form, "MessageStatus": "sent"}) == 204
    # A callback naming another message's sid for this delivery is ignored.
    assert await _post(stack, path, {**form, "MessageSid": "SM" + "f" * 32}) == 204

    status = await db.fetchval("SELECT status FROM deliveries WHERE id = $1", row["id"])
    assert status == "delivered"
    final = await factories.get_campaign(api, cid)
    assert final["counts"]["sms"]["delivered"] == 3
    assert final["counts"]["sms"]["failed"] == 0


async def test_callback_without_delivery_is_400_not_500(stack: LocalStack) -> None:
    form = {"MessageSid": "SM" + "0" * 32, "MessageStatus": "delivered"}
    assert await _post(stack, "/v1/webhooks/twilio/status", form) == 400
    assert await _post(stack, "/v1/webhooks/twilio/status?campaign=x&delivery=y", form) == 400
