"""The API's send rate and time left are right from the first seconds of a campaign, not
smoothed up from zero over many reconciler passes."""

from __future__ import annotations

import asyncio
import time

import aiohttp
import asyncpg
import pytest

from notifier.settings import Settings
from notifier.tooling.stack import LocalStack
from tests import factories

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]

RATE = 200.0
N = 2400  # twelve seconds of sending


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.replace(email_rate=RATE, reconcile_seconds=1)


async def test_rate_and_eta_are_right_from_the_first_seconds(
    stack: LocalStack, api: aiohttp.ClientSession, db: asyncpg.Connection
) -> None:
    cid = await factories.draft_with_recipients(api, N, channels=["email"])
    await stack.start_inline_worker()
    await factories.launch(api, cid)
    launched = time.monotonic()
    readings: list[tuple[float, float, float | None, int]] = []
    while True:
        state = await factories.get_campaign(api, cid)
        email = state["counts"]["email"]
        left = email["pending"] + email["sending"]
        if state["state"] != "sending" or left == 0:
            break
        seconds = time.monotonic() - launched
        readings.append((seconds, state["rate_per_second"], state["eta_seconds"], left))
        await asyncio.sleep(0.25)
    assert readings and readings[-1][0] > 8.0
    first = next(s for s, rate, _, _ in readings if rate > 0)
    assert first < 1.0, f"no rate until {first:.1f} s after launch"
    for seconds, rate, eta, left in readings:
        # Measured from the launch, the first second includes the wait for the first send.
        if seconds < 1.5:
            continue
        # Smoothed up from zero, a rate would still be well short of the real one here.
        assert 0.85 * RATE <= rate <= 1.15 * RATE, f"{rate:.0f}/s at {seconds:.1f} s"
        assert eta is not None
        assert eta == pytest.approx(left / rate, rel=0.05, abs=1.0)
