"""Changing a draft: checked whole as a new campaign would be, only while it is a draft, and
never dropping a locale its uploaded recipients may be in."""

from __future__ import annotations

import copy
from typing import Any

import aiohttp

from tests import factories


async def _patch(api: aiohttp.ClientSession, cid: str, body: object) -> tuple[int, Any]:
    async with api.patch(f"/v1/campaigns/{cid}", json=body) as resp:
        return resp.status, await resp.json()


async def test_a_draft_changes_and_the_change_is_checked_whole(
    api: aiohttp.ClientSession,
) -> None:
    cid = (await factories.create_campaign(api))["id"]
    status, changed = await _patch(api, cid, {"name": "Renamed", "rate_limit_per_second": 25.0})
    assert status == 200, changed
    assert (changed["name"], changed["rate_limit_per_second"]) == ("Renamed", 25.0)
    assert (await factories.get_campaign(api, cid))["name"] == "Renamed"

    # Each problem by field: a bad value, an unknown or fixed field, and what the whole
    # campaign would then lack (a law needs discovered_at and the facts of every locale).
    status, problem = await _patch(
        api, cid, {"sms_max_segments": 0, "channels": ["sms"], "jurisdictions": ["kr-pipa"]}
    )
    assert status == 422
    assert {e["field"] for e in problem["errors"]} == {"sms_max_segments", "channels"}
    status, problem = await _patch(api, cid, {"jurisdictions": ["kr-pipa"]})
    assert status == 422
    assert {e["field"] for e in problem["errors"]} == {"discovered_at", "facts.en", "facts.ko"}
    status, problem = await _patch(api, cid, {"name": None})
    assert (status, [e["field"] for e in problem["errors"]]) == (422, ["name"])
    assert (await factories.get_campaign(api, cid))["name"] == "Renamed"


async def test_a_locale_stays_once_recipients_are_in_and_a_launched_campaign_is_fixed(
    api: aiohttp.ClientSession,
) -> None:
    cid = await factories.draft_with_recipients(api, 5)
    templates = copy.deepcopy(factories.CAMPAIGN["templates"])
    del templates["email"]["en"]
    status, problem = await _patch(api, cid, {"templates": templates})
    assert status == 422
    assert [e["field"] for e in problem["errors"]] == ["templates.email.en"]

    await factories.launch(api, cid)
    status, problem = await _patch(api, cid, {"name": "Too late"})
    assert status == 409, problem
    status, _ = await _patch(api, "00000000-0000-4000-8000-000000000000", {"name": "x"})
    assert status == 404
