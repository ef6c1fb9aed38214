"""Outcomes reach Postgres while a batch is being sent, a slice at a time, not once at its
end: a worker that dies loses at most the slice it had not yet written."""

from __future__ import annotations

import uuid

import aiohttp
import asyncpg
import pytest

from notifier.settings import Settings
from notifier.tooling.stack import LocalStack
from tests import factories

pytestmark = pytest.mark.timeout(120)

RATE = 200.0  # emails a second: one link's batch (two seconds' worth) is 400 deliveries


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.replace(email_rate=RATE, batch_size=1000, chains_per_channel=1)


async def test_one_batch_is_recorded_in_slices_while_it_sends(
    stack: LocalStack, api: aiohttp.ClientSession, db: asyncpg.Connection
) -> None:
    n = 400
    cid = await factories.draft_with_recipients(api, n, channels=["email"])
    await stack.start_inline_worker()
    await factories.launch(api, cid)
    await factories.wait_for(api, cid, factories.settled, within=60)

    rows = await db.fetch("SELECT sent_at FROM deliveries WHERE campaign_id = $1", uuid.UUID(cid))
    assert len(rows) == n and all(r["sent_at"] is not None for r in rows)
    # One claim of 400 sent at 200 a second takes two seconds; written in slices of a
    # quarter of a second, its deliveries carry many recording times across those seconds
    # (written once at the end, they would all carry one).
    times = sorted({r["sent_at"] for r in rows})
    assert len(times) >= 4
    assert (times[-1] - times[0]).total_seconds() >= 1.0
