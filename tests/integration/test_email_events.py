"""The email relay's delivery events: HMAC-signed, timestamped, replays refused or harmless."""

from __future__ import annotations

import time
import uuid

import aiohttp
import asyncpg
import orjson
import pytest

from notifier.settings import Settings
from notifier.tooling.stack import LocalStack
from tests import factories

SECRET = "whsec-for-tests"


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.replace(email_webhook_secret=SECRET)


async def _post(
    stack: LocalStack, body: bytes, *, at: int | None = None, secret: str = SECRET
) -> tuple[int, dict[str, object]]:
    return await factories.post_email_events(stack.api_url, secret, body, at=at)


async def test_signed_events_settle_emails_and_replays_change_nothing(
    stack: LocalStack, api: aiohttp.ClientSession, db: asyncpg.Connection
) -> None:
    cid = await factories.draft_with_recipients(api, 3, channels=["email"])
    await stack.start_inline_worker()
    await factories.launch(api, cid)
    await factories.wait_for(api, cid, factories.settled)
    rows = await db.fetch(
        "SELECT id, provider_message_id FROM deliveries WHERE campaign_id = $1 ORDER BY id",
        uuid.UUID(cid),
    )
    ids = [r["provider_message_id"] for r in rows]
    assert all(i and i.startswith("<n" + uuid.UUID(cid).hex) for i in ids)
    body = orjson.dumps(
        {
            "events": [
                {"message_id": ids[0].strip("<>"), "event": "delivered"},
                {
                    "message_id": ids[1],
                    "event": "bounced",
                    "reason": "550 5.1.1 <user1@example.com>: no such user",
                },
                {"message_id": ids[2], "event": "deferred"},
                {"message_id": "<not-ours@elsewhere.example>", "event": "delivered"},
            ]
        }
    )
    status, answer = await _post(stack, body)
    assert status == 200 and answer == {"received": 4, "applied": 2}
    counts = (await factories.get_campaign(api, cid))["counts"]["email"]
    assert (counts["delivered"], counts["failed"], counts["sent"]) == (1, 1, 1)
    failed = await db.fetchval(
        "SELECT last_error FROM deliveries WHERE campaign_id = $1 AND id = $2",
        uuid.UUID(cid),
        rows[1]["id"],
    )
    # The relay's words quoted the address: it is not stored.
    assert failed == "email bounced: 550 5.1.1 <redacted>: no such user"

    # The same post again within the window: accepted, and nothing moves.
    reverse = orjson.dumps({"events": [{"message_id": ids[1], "event": "delivered"}]})
    status, _ = await _post(stack, reverse)
    assert status == 200
    again = (await factories.get_campaign(api, cid))["counts"]["email"]
    assert again == counts


async def test_bad_signatures_stale_timestamps_and_bad_bodies_are_refused(
    stack: LocalStack,
) -> None:
    body = orjson.dumps({"events": []})
    assert (await _post(stack, body, secret="wrong"))[0] == 403
    assert (await _post(stack, body, at=int(time.time()) - 301))[0] == 403
    # A second more ahead: the whole-second timestamp of a time late in its second would
    # otherwise be less than 300 s ahead of the server's clock when it arrives.
    assert (await _post(stack, body, at=int(time.time()) + 302))[0] == 403
    assert (await _post(stack, body))[0] == 200
    assert (await _post(stack, b"[1, 2]"))[0] == 400
    assert (await _post(stack, b'{"events": [{"event": "delivered"}]}'))[0] == 400
