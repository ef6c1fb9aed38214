"""Contact dedupe: accounts sharing an email address or a phone number (and a locale) get one
message per contact, each keeping its own delivery that takes the shared send's status, in
the counts, the report and the ledger. Real Postgres, Redis and sandbox; the addresses and
numbers are generated and never printed (the tests count by account number)."""

from __future__ import annotations

import copy
import csv
import io
import uuid
from collections import Counter
from collections.abc import Sequence
from typing import Any

import aiohttp
import asyncpg
import orjson
import pytest

from notifier import campaigns as campaign_service
from notifier.models import Channel
from notifier.settings import Settings
from notifier.tooling.stack import LocalStack
from tests import factories

pytestmark = pytest.mark.timeout(120)

SECRET = "whsec-for-dedupe-tests"


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.replace(email_webhook_secret=SECRET)


def _email(i: int) -> str:
    return f"user{i}@example.com"


def _csv(rows: Sequence[tuple[int, int | None, int | None, str]]) -> bytes:
    """Accounts acct-N with the email of user E and the phone of number P (None: none)."""
    lines = ["external_id,email,phone,locale,name"]
    for n, e, p, locale in rows:
        email = _email(e) if e is not None else ""
        phone = factories.phone(p) if p is not None else ""
        lines.append(f"acct-{n},{email},{phone},{locale},Customer {n}")
    return ("\n".join(lines) + "\n").encode()


# Accounts 0, 1 and 2 share an email and a phone; 3 shares them too, but reads English, so it
# gets its own message; 4 shares only the email of 0; 5 to 9 have their own.
FAMILY = [(0, 0, 0, "ko"), (1, 0, 0, "ko"), (2, 0, 0, "ko"), (3, 0, 0, "en"), (4, 0, 4, "ko")] + [
    (n, n, n, "ko") for n in range(5, 10)
]


def _received(stack: LocalStack, channel: Channel, people: int) -> Counter[int]:
    """How many messages the sandbox received per address or number, by its number."""
    assert stack.sandbox is not None
    index = {
        (_email(i) if channel == Channel.EMAIL else factories.phone(i)): i for i in range(people)
    }
    return Counter(index.get(r, -1) for r in stack.sandbox.inbox.recipients(channel))


async def _report(api: aiohttp.ClientSession, cid: str) -> list[dict[str, str]]:
    async with api.get(f"/v1/campaigns/{cid}/report") as resp:
        assert resp.status == 200
        return list(csv.DictReader(io.StringIO(await resp.text())))


async def _counts_hold(db: asyncpg.Connection, cid: str) -> None:
    """The kept counters equal the deliveries' statuses, counted the slow way."""
    kept = {
        (r["channel"], r["status"]): r["n"]
        for r in await db.fetch(
            "SELECT channel, status, sum(n)::int AS n FROM delivery_counts"
            " WHERE campaign_id = $1 GROUP BY 1, 2 HAVING sum(n) <> 0",
            uuid.UUID(cid),
        )
    }
    actual = {
        (r["channel"], r["status"]): r["n"]
        for r in await db.fetch(
            "SELECT channel, status, count(*)::int AS n FROM deliveries"
            " WHERE campaign_id = $1 GROUP BY 1, 2",
            uuid.UUID(cid),
        )
    }
    assert kept == actual


async def _run(
    stack: LocalStack, api: aiohttp.ClientSession, rows: bytes, **changes: Any
) -> dict[str, Any]:
    cid: str = (await factories.create_campaign(api, **changes))["id"]
    status, result = await factories.upload(api, cid, rows)
    assert status == 200, result
    await stack.start_inline_worker()
    await factories.launch(api, cid)
    return await factories.wait_for(api, cid, factories.settled)


async def test_accounts_sharing_a_contact_get_one_message_and_each_its_status(
    stack: LocalStack, api: aiohttp.ClientSession, db: asyncpg.Connection
) -> None:
    templates = copy.deepcopy(factories.CAMPAIGN["templates"])
    templates["sms"]["ko"]["text"] = "[안내] 계정 {{ accounts }} 확인코드 {{ verification_code }}"
    done = await _run(stack, api, _csv(FAMILY), templates=templates)
    cid = done["id"]
    assert done["dedupe_contacts"] is True
    # One email for 0-2, one for 3 (English), one for 4, five more: 8 for 10 accounts.
    assert _received(stack, Channel.EMAIL, 10) == Counter({0: 2} | {n: 1 for n in range(5, 10)})
    # One SMS for 0-2, one for 3, one for 4 (its own phone), five more.
    assert _received(stack, Channel.SMS, 10) == Counter({0: 2, 4: 1} | {n: 1 for n in range(5, 10)})
    # Every account is counted as told, on both channels.
    assert done["counts"]["email"]["sent"] == 10
    assert done["counts"]["sms"]["delivered"] == 10
    assert done["merged"] == {"email": 3, "sms": 2}
    await _counts_hold(db, cid)
    # The one SMS to the shared number names the three accounts it is for.
    assert stack.sandbox is not None
    texts = [
        m.body or "" for m in stack.sandbox.messages(Channel.SMS) if m.to == factories.phone(0)
    ]
    assert sorted("acct-0, acct-1, acct-2" in t for t in texts) == [False, True]

    report = await _report(api, cid)
    assert len(report) == 20
    shares = {(r["external_id"], r["channel"]): r["shares_send_of"] for r in report}
    assert shares[("acct-1", "email")] == shares[("acct-2", "email")] == "acct-0"
    assert shares[("acct-4", "email")] == "acct-0"
    assert shares[("acct-4", "sms")] == ""
    assert shares[("acct-3", "email")] == shares[("acct-0", "email")] == ""
    by_account = {(r["external_id"], r["channel"]): r for r in report}
    follower, send = by_account[("acct-2", "sms")], by_account[("acct-0", "sms")]
    assert (follower["status"], follower["provider_message_id"]) == (
        "delivered",
        send["provider_message_id"],
    )

    # The ledger holds each follower's changes, naming the send; the chains still verify.
    details = await db.fetch(
        "SELECT e.status, e.detail FROM delivery_events e"
        " JOIN deliveries d ON d.campaign_id = e.campaign_id AND d.id = e.delivery_id"
        " WHERE e.campaign_id = $1 AND d.shared_with IS NOT NULL",
        uuid.UUID(cid),
    )
    assert {r["status"] for r in details} >= {"sent", "delivered"}
    assert all(r["detail"].startswith("shares the send of delivery ") for r in details)
    code, out, _ = await factories.run_cli(
        str(stack.settings.database_url), "ledger", "verify", cid
    )
    assert code == 0, out


async def test_a_campaign_may_turn_dedupe_off(
    stack: LocalStack, api: aiohttp.ClientSession, db: asyncpg.Connection
) -> None:
    done = await _run(stack, api, _csv(FAMILY), channels=["email"], dedupe_contacts=False)
    assert done["dedupe_contacts"] is False
    assert _received(stack, Channel.EMAIL, 10) == Counter({0: 5} | {n: 1 for n in range(5, 10)})
    assert done["merged"] == {}
    assert await db.fetchval("SELECT count(*) FROM contact_groups") == 0


async def test_groups_span_the_chunks_deliveries_are_made_in(
    stack: LocalStack,
    api: aiohttp.ClientSession,
    db: asyncpg.Connection,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Deliveries made three accounts at a time: followers come in chunks after their send's,
    # some once it was already sent.
    monkeypatch.setattr(campaign_service, "PREPARE_CHUNK", 3)
    rows = [(n, n % 4, None, "ko") for n in range(20)]
    done = await _run(stack, api, _csv(rows), channels=["email"])
    assert _received(stack, Channel.EMAIL, 4) == Counter({0: 1, 1: 1, 2: 1, 3: 1})
    assert done["counts"]["email"]["sent"] == 20
    assert done["merged"] == {"email": 16}
    await _counts_hold(db, done["id"])


async def test_a_cancel_reaches_the_accounts_sharing_a_send(
    stack: LocalStack, api: aiohttp.ClientSession, db: asyncpg.Connection
) -> None:
    cid: str = (await factories.create_campaign(api, channels=["email"]))["id"]
    status, _ = await factories.upload(api, cid, _csv(FAMILY))
    assert status == 200
    await factories.launch(api, cid)  # no worker runs: nothing is sent
    async with api.post(f"/v1/campaigns/{cid}/cancel") as resp:
        assert resp.status == 202
    final = await factories.get_campaign(api, cid)
    assert final["counts"]["email"]["cancelled"] == 10
    assert final["counts"]["email"]["pending"] == 0
    await _counts_hold(db, cid)


async def _bounce(stack: LocalStack, message_id: str) -> None:
    body = orjson.dumps(
        {"events": [{"message_id": message_id, "event": "bounced", "reason": "550 5.1.1"}]}
    )
    status, _ = await factories.post_email_events(stack.api_url, SECRET, body)
    assert status == 200


async def test_a_shared_email_that_bounces_falls_back_to_one_sms_per_phone(
    stack: LocalStack, api: aiohttp.ClientSession, db: asyncpg.Connection
) -> None:
    # 0, 1 and 2 share an email; 0 and 1 share a phone, 2 has its own.
    rows = [(0, 0, 0, "ko"), (1, 0, 0, "ko"), (2, 0, 2, "ko"), (3, 3, 3, "ko")]
    done = await _run(stack, api, _csv(rows), channels=["email"], fallback={"email_failed": "sms"})
    cid = done["id"]
    assert _received(stack, Channel.EMAIL, 4) == Counter({0: 1, 3: 1})
    shared = await db.fetchval(
        "SELECT provider_message_id FROM deliveries d JOIN recipients r"
        " ON r.campaign_id = d.campaign_id AND r.id = d.recipient_id"
        " WHERE d.campaign_id = $1 AND r.external_id = 'acct-0' AND d.channel = 'email'",
        uuid.UUID(cid),
    )
    await _bounce(stack, shared)
    final = await factories.wait_for(
        api,
        cid,
        lambda c: factories.settled(c) and c.get("counts", {}).get("sms", {}).get("delivered") == 3,
    )
    assert final["counts"]["email"]["failed"] == 3
    assert _received(stack, Channel.SMS, 4) == Counter({0: 1, 2: 1})
    assert final["merged"] == {"email": 2, "sms": 1}
    await _counts_hold(db, cid)
