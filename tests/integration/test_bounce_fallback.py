"""A bounce that comes after the relay accepted an email falls back to SMS, as a failed send
does: once per recipient, only with a phone, only where the campaign asks for it."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from typing import Any

import aiohttp
import asyncpg
import orjson
import pytest

from notifier.models import Channel
from notifier.settings import Settings
from notifier.tooling.stack import LocalStack
from tests import factories

pytestmark = pytest.mark.timeout(120)

SECRET = "whsec-for-tests"
FALLBACK = {"email_failed": "sms"}


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.replace(email_webhook_secret=SECRET)


async def _post_events(stack: LocalStack, events: list[dict[str, str]]) -> dict[str, Any]:
    """Post signed email events as the relay does; returns the service's answer."""
    status, answer = await factories.post_email_events(
        stack.api_url, SECRET, orjson.dumps({"events": events})
    )
    assert status == 200
    return answer  # type: ignore[no-any-return]


async def _sent_campaign(
    stack: LocalStack,
    api: aiohttp.ClientSession,
    *,
    with_phone: int,
    without_phone: int,
    **changes: Any,
) -> str:
    """An email-only campaign, sent to the end through the sandbox: recipients 0 to
    with_phone - 1 have a phone, the next without_phone have none."""
    cid: str = (await factories.create_campaign(api, channels=["email"], **changes))["id"]
    for data, n in (
        (factories.recipients_csv(with_phone), with_phone),
        (factories.recipients_csv(without_phone, start=with_phone, sms=False), without_phone),
    ):
        status, result = await factories.upload(api, cid, data)
        assert (status, result["accepted"]) == (200, n)
    await stack.start_inline_worker()
    await factories.launch(api, cid)
    done = await factories.wait_for(api, cid, factories.settled)
    assert done["counts"]["email"]["sent"] == with_phone + without_phone
    return cid


async def _message_ids(db: asyncpg.Connection, cid: str) -> dict[int, str]:
    """Each recipient's email, as the relay names it, by the recipient's number."""
    rows = await db.fetch(
        "SELECT r.external_id, d.provider_message_id FROM deliveries d"
        " JOIN recipients r ON r.campaign_id = d.campaign_id AND r.id = d.recipient_id"
        " WHERE d.campaign_id = $1 AND d.channel = 'email'",
        uuid.UUID(cid),
    )
    return {int(r["external_id"].removeprefix("acct-")): r["provider_message_id"] for r in rows}


def _texted(stack: LocalStack, n: int) -> Counter[int]:
    """How many SMS the sandbox received for each of recipients 0 to n - 1, by number (the
    phone numbers themselves never appear in the test's output)."""
    assert stack.sandbox is not None
    index = {factories.phone(i): i for i in range(n)}
    return Counter(index.get(p, -1) for p in stack.sandbox.inbox.recipients(Channel.SMS))


async def _sms_deliveries(db: asyncpg.Connection, cid: str) -> int:
    n: int = await db.fetchval(
        "SELECT count(*) FROM deliveries WHERE campaign_id = $1 AND channel = 'sms'",
        uuid.UUID(cid),
    )
    return n


def _bounce(message_id: str) -> dict[str, str]:
    return {"message_id": message_id, "event": "bounced", "reason": "550 5.1.1 no such user"}


async def test_a_later_bounce_falls_back_to_one_sms_even_after_completion(
    stack: LocalStack, api: aiohttp.ClientSession, db: asyncpg.Connection
) -> None:
    cid = await _sent_campaign(stack, api, with_phone=4, without_phone=2, fallback=FALLBACK)
    assert _texted(stack, 6) == Counter()
    ids = await _message_ids(db, cid)

    # The campaign had completed: recipients 1 and 2 bounce (2 twice in the one post), 4 has
    # no phone to fall back to, 0 is delivered.
    events = [
        {"message_id": ids[0], "event": "delivered"},
        _bounce(ids[1]),
        _bounce(ids[2]),
        _bounce(ids[2]),
        _bounce(ids[4]),
    ]
    assert await _post_events(stack, events) == {"received": 5, "applied": 5}
    final = await factories.wait_for(
        api, cid, lambda c: factories.settled(c) and c["counts"]["sms"]["delivered"] == 2
    )
    assert _texted(stack, 6) == Counter({1: 1, 2: 1})
    assert final["completed_at"] is not None
    counts = final["counts"]
    assert (counts["email"]["delivered"], counts["email"]["failed"], counts["email"]["sent"]) == (
        1,
        3,
        2,
    )
    assert sum(counts["sms"].values()) == 2

    # The relay posts the same bounces again: nothing is added, nobody is texted twice.
    assert (await _post_events(stack, events[1:]))["applied"] == 4
    await asyncio.sleep(1.5)  # a reconciler pass and a chain's link, had anything been added
    again = await factories.get_campaign(api, cid)
    assert (again["state"], again["counts"]) == ("completed", counts)
    assert await _sms_deliveries(db, cid) == 2
    assert _texted(stack, 6) == Counter({1: 1, 2: 1})


async def test_a_bounce_without_the_fallback_sends_no_sms(
    stack: LocalStack, api: aiohttp.ClientSession, db: asyncpg.Connection
) -> None:
    cid = await _sent_campaign(stack, api, with_phone=3, without_phone=0)
    ids = await _message_ids(db, cid)
    assert await _post_events(stack, [_bounce(ids[0]), _bounce(ids[1])]) == {
        "received": 2,
        "applied": 2,
    }
    await asyncio.sleep(1.5)
    final = await factories.get_campaign(api, cid)
    assert final["state"] == "completed"
    assert final["counts"]["email"]["failed"] == 2
    assert sum(final["counts"].get("sms", {}).values()) == 0
    assert await _sms_deliveries(db, cid) == 0
    assert _texted(stack, 3) == Counter()


async def test_a_cancelled_campaign_gets_no_fallback(
    stack: LocalStack, api: aiohttp.ClientSession, db: asyncpg.Connection
) -> None:
    # Two emails a second, so that the campaign is cancelled while some are still to go.
    cid = await factories.draft_with_recipients(
        api, 10, channels=["email"], fallback=FALLBACK, rate_limit_per_second=2.0
    )
    await stack.start_inline_worker()
    await factories.launch(api, cid)
    await factories.wait_for(api, cid, lambda c: c["counts"]["email"]["sent"] >= 1)
    async with api.post(f"/v1/campaigns/{cid}/cancel") as resp:
        assert resp.status == 202
    stopped = await factories.wait_for(
        api, cid, lambda c: c["counts"]["email"]["pending"] + c["counts"]["email"]["sending"] == 0
    )
    sent = [m for m in (await _message_ids(db, cid)).values() if m is not None]
    assert 1 <= len(sent) < 10

    await _post_events(stack, [_bounce(m) for m in sent])
    await asyncio.sleep(1.5)
    final = await factories.get_campaign(api, cid)
    assert final["state"] == stopped["state"] == "cancelled"
    assert final["counts"]["email"]["failed"] == len(sent)
    assert await _sms_deliveries(db, cid) == 0
    assert _texted(stack, 10) == Counter()
