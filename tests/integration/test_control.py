"""Pause, resume and cancel while a campaign is sending."""

from __future__ import annotations

import asyncio
import uuid

import aiohttp
import asyncpg
import pytest

from notifier import campaigns as campaign_service
from notifier.models import Channel
from notifier.settings import Settings
from notifier.tooling.stack import LocalStack
from tests import factories

pytestmark = pytest.mark.timeout(180)


@pytest.fixture
def settings(settings: Settings) -> Settings:
    # Slow enough that a campaign is still sending when the test acts on it.
    return settings.replace(email_rate=100.0, sms_rate=100.0)


async def _launch(stack: LocalStack, api: aiohttp.ClientSession, n: int) -> str:
    cid = await factories.draft_with_recipients(api, n)
    await stack.start_inline_worker()
    await factories.launch(api, cid)
    await factories.wait_for(api, cid, lambda c: c["counts"]["email"]["sent"] >= 50)
    return cid


async def test_pause_stops_new_sends_and_resume_finishes(
    stack: LocalStack, api: aiohttp.ClientSession
) -> None:
    n = 600
    cid = await _launch(stack, api, n)
    async with api.post(f"/v1/campaigns/{cid}/pause") as resp:
        assert resp.status == 202
        assert (await resp.json())["state"] == "paused"
    await asyncio.sleep(1.5)  # in-flight sends finish
    assert stack.sandbox is not None
    inbox = stack.sandbox.inbox
    seen = inbox.count(Channel.EMAIL) + inbox.count(Channel.SMS)
    await asyncio.sleep(2.0)
    assert inbox.count(Channel.EMAIL) + inbox.count(Channel.SMS) == seen
    paused = await factories.get_campaign(api, cid)
    assert paused["state"] == "paused"
    assert paused["counts"]["email"]["pending"] > 0
    assert paused["counts"]["email"]["sending"] == 0

    async with api.post(f"/v1/campaigns/{cid}/resume") as resp:
        assert resp.status == 202
    final = await factories.wait_for(api, cid, factories.settled)
    assert final["counts"]["email"]["sent"] == n
    assert final["counts"]["sms"]["delivered"] == n
    assert inbox.count(Channel.EMAIL) == n and inbox.count(Channel.SMS) == n


async def test_cancel_leaves_nothing_pending(stack: LocalStack, api: aiohttp.ClientSession) -> None:
    n = 600
    cid = await _launch(stack, api, n)
    async with api.post(f"/v1/campaigns/{cid}/cancel") as resp:
        assert resp.status == 202
    await asyncio.sleep(2.0)
    final = await factories.get_campaign(api, cid)
    assert final["state"] == "cancelled"
    for channel in ("email", "sms"):
        counts = final["counts"][channel]
        assert counts["pending"] == 0 and counts["sending"] == 0
        assert counts["cancelled"] > 0
        assert sum(counts.values()) == n
    async with api.post(f"/v1/campaigns/{cid}/resume") as resp:
        assert resp.status == 409


async def test_sigterm_lets_a_worker_finish_its_batch_and_nothing_is_sent_twice(
    stack: LocalStack, api: aiohttp.ClientSession
) -> None:
    n = 600
    cid = await factories.draft_with_recipients(api, n)
    first = await stack.start_worker_process()
    await factories.launch(api, cid)
    await factories.wait_for(api, cid, lambda c: c["counts"]["email"]["sent"] >= 50)
    first.terminate()
    assert await asyncio.wait_for(first.wait(), 40) == 0
    stopped = await factories.get_campaign(api, cid)
    assert stopped["counts"]["email"]["sending"] == 0  # the batch was finished, not dropped
    await stack.start_worker_process()
    final = await factories.wait_for(api, cid, factories.settled)
    assert final["counts"]["email"]["sent"] == n
    assert final["counts"]["sms"]["delivered"] == n
    assert stack.sandbox is not None
    assert stack.sandbox.inbox.count(Channel.EMAIL) == n
    assert stack.sandbox.inbox.count(Channel.SMS) == n


@pytest.fixture
def chunk_of_40(monkeypatch: pytest.MonkeyPatch) -> None:
    """Deliveries created 40 recipients at a time, so that a small campaign is a large one."""
    monkeypatch.setattr(campaign_service, "PREPARE_CHUNK", 40)


@pytest.mark.usefixtures("chunk_of_40")
async def test_deliveries_of_a_large_campaign_are_created_in_chunks(
    stack: LocalStack, api: aiohttp.ClientSession, db: asyncpg.Connection
) -> None:
    """Launch creates the first chunk and answers; dispatch creates the rest as it goes."""
    n = 300
    cid = await factories.draft_with_recipients(api, n)
    await factories.launch(api, cid)
    launched = await factories.get_campaign(api, cid)
    assert launched["preparing"] is True and launched["eta_seconds"] is None
    assert launched["counts"]["email"]["pending"] == launched["counts"]["sms"]["pending"] == 40

    await stack.start_inline_worker()
    done = await factories.wait_for(api, cid, lambda c: c["state"] == "completed")
    assert done["preparing"] is False
    assert done["counts"]["email"]["sent"] == n
    made = await db.fetch(
        "SELECT channel, count(*) AS n, count(DISTINCT recipient_id) AS people"
        " FROM deliveries WHERE campaign_id = $1 GROUP BY channel ORDER BY channel",
        uuid.UUID(cid),
    )
    assert [(r["channel"], r["n"], r["people"]) for r in made] == [
        ("email", n, n),
        ("sms", n, n),
    ]


@pytest.mark.usefixtures("chunk_of_40")
async def test_a_campaign_cancelled_while_preparing_creates_no_more(
    stack: LocalStack, api: aiohttp.ClientSession, db: asyncpg.Connection
) -> None:
    cid = await factories.draft_with_recipients(api, 300)
    await factories.launch(api, cid)
    async with api.post(f"/v1/campaigns/{cid}/cancel") as resp:
        assert resp.status == 202
    await stack.start_inline_worker()
    await asyncio.sleep(1.0)  # a worker that wrongly went on would have created a chunk
    state = await factories.get_campaign(api, cid)
    assert state["state"] == "cancelled"
    assert state["counts"]["email"] == {**state["counts"]["email"], "cancelled": 40}
    assert sum(state["counts"]["email"].values()) == sum(state["counts"]["sms"].values()) == 40
    assert (
        await db.fetchval("SELECT count(*) FROM deliveries WHERE campaign_id = $1", uuid.UUID(cid))
        == 80
    )
