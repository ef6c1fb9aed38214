"""Faults a campaign must survive with nobody skipped: a worker killed, Redis emptied."""

from __future__ import annotations

import asyncio
import signal
from collections import Counter

import aiohttp
import asyncpg
import pytest
import redis.asyncio as aioredis

from notifier.models import Channel
from notifier.settings import Settings
from notifier.stack import LocalStack
from tests import factories

pytestmark = pytest.mark.timeout(240)


@pytest.fixture
def settings(settings: Settings) -> Settings:
    # Slow enough to be mid-campaign when the fault hits; short leases so reclaim is quick.
    return settings.replace(email_rate=150.0, sms_rate=150.0, lease_seconds=4)


def _received(stack: LocalStack, channel: Channel) -> Counter[str]:
    assert stack.sandbox is not None
    return Counter(stack.sandbox.inbox.recipients(channel))


async def test_a_worker_killed_mid_batch_loses_nobody_and_flags_possible_duplicates(
    stack: LocalStack, api: aiohttp.ClientSession, db: asyncpg.Connection
) -> None:
    n = 600
    cid = await factories.draft_with_recipients(api, n)
    victim = await stack.start_worker_process()
    await factories.launch(api, cid)
    await factories.wait_for(api, cid, lambda c: c["counts"]["email"]["sent"] >= 100)
    victim.send_signal(signal.SIGKILL)
    await victim.wait()
    await stack.start_worker_process()
    final = await factories.wait_for(api, cid, factories.settled, within=180)

    assert final["counts"]["email"]["sent"] == n
    assert final["counts"]["sms"]["delivered"] == n
    flagged = await db.fetch(
        "SELECT r.email, r.phone, d.channel FROM deliveries d JOIN recipients r"
        " ON r.campaign_id = d.campaign_id AND r.id = d.recipient_id"
        " WHERE d.possible_duplicate"
    )
    for channel, column in ((Channel.EMAIL, "email"), (Channel.SMS, "phone")):
        got = _received(stack, channel)
        assert len(got) == n  # nobody skipped
        twice = {to for to, count in got.items() if count > 1}
        # Every duplicate is one the service flagged; none is silent.
        assert twice <= {r[column] for r in flagged if r["channel"] == channel}


async def test_redis_emptied_mid_campaign_is_rebuilt_from_postgres(
    stack: LocalStack, api: aiohttp.ClientSession, settings: Settings
) -> None:
    n = 600
    cid = await factories.draft_with_recipients(api, n)
    await stack.start_inline_worker()
    await factories.launch(api, cid)
    await factories.wait_for(api, cid, lambda c: c["counts"]["email"]["sent"] >= 100)
    redis = aioredis.from_url(settings.redis_url or "")
    await redis.flushdb()
    await redis.aclose()
    await asyncio.sleep(0.5)
    final = await factories.wait_for(api, cid, factories.settled, within=180)
    assert final["counts"]["email"]["sent"] == n
    assert final["counts"]["sms"]["delivered"] == n
    for channel in (Channel.EMAIL, Channel.SMS):
        assert len(_received(stack, channel)) == n
