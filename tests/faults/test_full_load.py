"""Pause, resume and cancel while two workers send as fast as this machine allows."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import aiohttp
import asyncpg
import pytest

from notifier.models import Channel
from notifier.settings import Settings
from notifier.tooling.stack import LocalStack
from tests import factories
from tests.faults.conftest import finish, launched

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

N = 4000


@pytest.fixture
def settings(settings: Settings) -> Settings:
    # No rate limit to speak of: the workers go flat out.
    return settings.replace(email_rate=20_000.0, sms_rate=20_000.0, batch_size=200)


def _arrivals(stack: LocalStack) -> list[float]:
    assert stack.sandbox is not None
    inbox = stack.sandbox.inbox
    return inbox.timestamps(Channel.EMAIL) + inbox.timestamps(Channel.SMS)


async def test_pause_stops_sends_within_a_second_and_resume_finishes(
    stack: LocalStack,
    api: aiohttp.ClientSession,
    db: asyncpg.Connection,
    fleet: list[asyncio.subprocess.Process],
) -> None:
    cid, started = await launched(api, N, emails_sent=N // 5)
    async with api.post(f"/v1/campaigns/{cid}/pause") as resp:
        assert resp.status == 202
    paused_at = time.time()
    await asyncio.sleep(3.0)
    arrivals = _arrivals(stack)
    last = max(arrivals) - paused_at
    assert last < 1.0, f"a message arrived {last:.2f} s after the pause"
    paused = await factories.get_campaign(api, cid)
    assert paused["counts"]["email"]["pending"] > 0
    assert all(paused["counts"][c]["sending"] == 0 for c in ("email", "sms"))
    assert len(_arrivals(stack)) == len(arrivals)  # and nothing since

    async with api.post(f"/v1/campaigns/{cid}/resume") as resp:
        assert resp.status == 202
    await finish(
        stack,
        api,
        db,
        [cid],
        scenario=f"pause at full speed (last send {max(last, 0) * 1000:.0f} ms after), resume",
        started=started,
    )


def _cancelled_and_quiet(campaign: dict[str, Any]) -> bool:
    """Cancelled, nothing pending or being sent, and every SMS sent has its receipt."""
    counts = campaign["counts"]
    busy = sum(counts[c].get(s, 0) for c in ("email", "sms") for s in ("pending", "sending"))
    return bool(
        campaign["state"] == "cancelled" and busy == 0 and counts["sms"].get("sent", 0) == 0
    )


async def test_cancel_leaves_nothing_pending_or_sending(
    stack: LocalStack,
    api: aiohttp.ClientSession,
    db: asyncpg.Connection,
    fleet: list[asyncio.subprocess.Process],
) -> None:
    cid, started = await launched(api, N, emails_sent=N // 5)
    async with api.post(f"/v1/campaigns/{cid}/cancel") as resp:
        assert resp.status == 202
    outcome = await finish(
        stack,
        api,
        db,
        [cid],
        scenario="cancel at full speed",
        started=started,
        done=_cancelled_and_quiet,
        within=60,
    )
    final = await factories.get_campaign(api, cid)
    assert final["counts"]["email"]["cancelled"] > 0
    assert outcome.deliveries == 2 * N
