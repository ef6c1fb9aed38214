"""The deadline clock and the capacity planner: each law's duties with their deadlines, and
per channel whether the campaign will finish in time at the rate it can expect."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import pytest

from notifier.settings import Settings
from tests import factories
from tests.integration.test_incident import _incident

pytestmark = pytest.mark.timeout(60)

N = 2000


@pytest.fixture
def settings(settings: Settings) -> Settings:
    # 2,000 SMS at 0.2 a second take 10,000 s, 2.8 h: too long for a deadline 2 h away.
    return settings.replace(sms_rate=0.2, email_rate=50.0)


async def _campaign(api: aiohttp.ClientSession, aware_hours_ago: float, **changes: Any) -> str:
    aware = (datetime.now(UTC) - timedelta(hours=aware_hours_ago)).isoformat()
    body = _incident(jurisdictions=["kr-pipa", "eu-gdpr", "us-ca"], discovered_at=aware)
    body.update(changes)
    async with api.post("/v1/campaigns", json=body) as resp:
        cid: str = (await resp.json())["id"]
    status, _ = await factories.upload(api, cid, factories.recipients_csv(N))
    assert status == 200
    return cid


async def _plan(api: aiohttp.ClientSession, cid: str) -> dict[str, Any]:
    async with api.get(f"/v1/campaigns/{cid}/plan") as resp:
        assert resp.status == 200
        return await resp.json()  # type: ignore[no-any-return]


async def test_deadlines_run_from_awareness_and_thresholds_decide_what_applies(
    api: aiohttp.ClientSession,
) -> None:
    found = await _plan(api, await _campaign(api, aware_hours_ago=70))
    by = {(d["jurisdiction"], d["duty"]): d for d in found["deadlines"]}
    pipa = by[("kr-pipa", "notice")]
    assert pipa["applies"] and pipa["article"].startswith("PIPA art. 34(1)")
    assert 2 * 3600 - 120 < pipa["seconds_left"] <= 2 * 3600
    assert by[("kr-pipa", "report")]["applies"]  # 2,000 people: at least 1,000
    assert by[("us-ca", "report")]["applies"]  # more than 500
    assert by[("eu-gdpr", "notice")]["due_at"] is None  # without undue delay
    assert found["deadline"] == pipa["due_at"]


async def test_a_campaign_that_would_miss_the_deadline_is_told_the_rate_that_would_meet_it(
    api: aiohttp.ClientSession,
) -> None:
    found = await _plan(api, await _campaign(api, aware_hours_ago=70))
    forecasts = {f["channel"]: f for f in found["forecasts"]}
    sms, email = forecasts["sms"], forecasts["email"]
    assert sms["left"] == N and sms["rate"] == pytest.approx(0.2) and sms["sharing"] == 1
    assert sms["meets_deadline"] is False and sms["needed_rate"] == 1  # 2,000 in 2 h
    assert email["meets_deadline"] is True and email["needed_rate"] is None
    assert email["seconds"] == pytest.approx(N / 50.0)
    assert found["meets_deadline"] is False


async def test_campaigns_sending_on_a_channel_share_its_rate(api: aiohttp.ClientSession) -> None:
    other = await _campaign(api, aware_hours_ago=1)
    override = {"override": {"reason": "sending to share the rate with the next one"}}
    async with api.post(f"/v1/campaigns/{other}/launch", json=override) as resp:
        assert resp.status == 202
    found = await _plan(api, await _campaign(api, aware_hours_ago=1))
    sms = next(f for f in found["forecasts"] if f["channel"] == "sms")
    assert sms["sharing"] == 2 and sms["rate"] == pytest.approx(0.1)


async def test_the_plan_command_says_when_a_deadline_has_passed(
    api: aiohttp.ClientSession, database_url: str
) -> None:
    cid = await _campaign(api, aware_hours_ago=80)
    code, out, err = await factories.run_cli(database_url, "plan", cid)
    assert code == 1, err
    assert "kr-pipa@2023-09-15 notice:" in out and "too late: the deadline has passed" in out
    code, _, err = await factories.run_cli(database_url, "plan", "not-an-id")
    assert code != 0 and "not a campaign id" in err
