"""The content checklist: what each law a campaign is held to requires of its notices, per
channel and locale, and which of it the templates carry."""

from __future__ import annotations

import uuid
from typing import Any

import aiohttp
import asyncpg
import pytest

from notifier import ledger as ledger_service
from notifier.law import LAW
from tests import factories
from tests.integration.test_incident import FACTS, _incident

pytestmark = pytest.mark.timeout(60)

PIPA_ITEMS = {req.item for rs in LAW.rulesets if rs.id == "kr-pipa" for req in rs.items}
COMPLETE_FACTS = {
    locale: {item: f"{item} ({locale})" for item in PIPA_ITEMS | {"likely_consequences"}}
    for locale in ("ko", "en")
}
CA_HEADINGS = (
    "Notice of Data Breach\n\nWhat Happened\n{{ what_happened }}\n"
    "What Information Was Involved\n{{ data_items }}\nWhat We Are Doing\n"
    "{{ what_we_are_doing }}\nWhat You Can Do\n{{ what_you_can_do }}\n"
    "For More Information\n{{ contact_point }} {{ breach_period }} {{ notice_date }}"
)


def _templates(email_text: str) -> dict[str, Any]:
    return {
        "email": {
            locale: {"subject": "Notice", "text": email_text + " {{ verify_url }}"}
            for locale in ("ko", "en")
        },
        "sms": {locale: {"text": "Notice {{ verify_url }}"} for locale in ("ko", "en")},
    }


async def _checklist(api: aiohttp.ClientSession, body: dict[str, Any]) -> dict[str, Any]:
    async with api.post("/v1/campaigns", json=body) as resp:
        created = await resp.json()
        assert resp.status == 201, created
    async with api.get(f"/v1/campaigns/{created['id']}/checklist") as resp:
        assert resp.status == 200
        return await resp.json()  # type: ignore[no-any-return]


async def test_a_notice_missing_items_is_listed_item_by_item_with_the_article(
    api: aiohttp.ClientSession,
) -> None:
    # The incident's templates carry what happened, the items and the contact point only.
    found = await _checklist(api, _incident(jurisdictions=["kr-pipa"]))
    assert not found["complete"]
    missing = {(c["channel"], c["locale"], c["item"]) for c in found["checks"] if not c["carried"]}
    expected = {
        ("email", locale, item)
        for locale in ("ko", "en")
        for item in ("breach_period", "what_you_can_do", "what_we_are_doing", "remedies")
    }
    assert missing == expected and found["missing"] == len(expected)
    remedy = next(c for c in found["checks"] if c["item"] == "remedies")
    assert remedy["article"] == "PIPA art. 34(1)(4)" and remedy["version"] == "kr-pipa@2023-09-15"
    sms = [c for c in found["checks"] if c["channel"] == "sms"]
    assert {(c["locale"], c["item"], c["carried"]) for c in sms} == {
        ("ko", "verify", True),
        ("en", "verify", True),
    }


async def test_a_complete_notice_for_three_laws(api: aiohttp.ClientSession) -> None:
    body = _incident(
        jurisdictions=["kr-pipa", "eu-gdpr", "us-ca"],
        facts=COMPLETE_FACTS,
        templates=_templates(CA_HEADINGS + " {{ remedies }} {{ likely_consequences }}"),
    )
    found = await _checklist(api, body)
    assert found["complete"], [c for c in found["checks"] if not c["carried"]]
    wording = {c["requirement"] for c in found["checks"] if c["item"] in ("title", "heading")}
    assert len(wording) == 6  # the title and five headings, on the English email only
    assert {c["locale"] for c in found["checks"] if c["item"] == "heading"} == {"en"}


async def test_prescribed_wording_and_an_unused_or_empty_fact_are_missing(
    api: aiohttp.ClientSession,
) -> None:
    text = CA_HEADINGS.replace("What Happened", "What happened")
    # The templates never use {{ remedies }}, and the facts do not give it either.
    facts = {
        locale: {k: v for k, v in items.items() if k != "remedies"}
        for locale, items in COMPLETE_FACTS.items()
    }
    found = await _checklist(
        api, _incident(jurisdictions=["us-ca", "kr-pipa"], facts=facts, templates=_templates(text))
    )
    missing = {
        (c["jurisdiction"], c["locale"], c["item"], c["requirement"])
        for c in found["checks"]
        if not c["carried"]
    }
    assert ("us-ca", "en", "heading", 'the heading "What Happened"') in missing
    assert {m for m in missing if m[0] == "kr-pipa"} == {
        ("kr-pipa", locale, "remedies", LAW.items["remedies"]) for locale in ("ko", "en")
    }


async def test_a_campaign_held_to_no_law_has_nothing_to_check(api: aiohttp.ClientSession) -> None:
    found = await _checklist(api, _incident(jurisdictions=[], discovered_at=None, facts=FACTS))
    assert found == {"complete": True, "missing": 0, "checks": []}
    async with api.get(f"/v1/campaigns/{uuid.uuid4()}/checklist") as resp:
        assert resp.status == 404


async def _launch(api: aiohttp.ClientSession, cid: str, body: Any = None) -> tuple[int, Any]:
    async with api.post(f"/v1/campaigns/{cid}/launch", json=body) as resp:
        return resp.status, await resp.json()


async def test_a_notice_lacking_items_launches_only_with_an_override_on_record(
    api: aiohttp.ClientSession, db: asyncpg.Connection
) -> None:
    async with api.post("/v1/campaigns", json=_incident(jurisdictions=["kr-pipa"])) as resp:
        cid = (await resp.json())["id"]
    status, _ = await factories.upload(api, cid, factories.recipients_csv(3))
    assert status == 200
    status, problem = await _launch(api, cid)
    assert status == 409 and "8 item(s)" in problem["detail"]
    assert {
        "field": "templates.email.ko",
        "message": f"kr-pipa@2023-09-15: {LAW.items['remedies']} (PIPA art. 34(1)(4))",
    } in problem["errors"]
    status, problem = await _launch(api, cid, {"override": {"reason": "short"}})
    assert status == 422 and problem["errors"][0]["field"] == "override.reason"
    assert (await factories.get_campaign(api, cid))["state"] == "draft"

    reason = "the regulator asked for notice today; the remedies page follows tomorrow"
    status, _ = await _launch(api, cid, {"override": {"reason": reason}})
    assert status == 202
    kept = await db.fetchval("SELECT launch_override FROM campaigns WHERE id = $1", uuid.UUID(cid))
    assert reason in kept and "kr-pipa@2023-09-15 email ko remedies" in kept
    audit = await db.fetchval(
        "SELECT detail FROM audit_log WHERE target = $1 AND action LIKE '%launch' AND status = 202",
        cid,
    )
    assert audit == f"launched over 8 missing item(s): {reason}"
    ledger = await db.fetchval(
        "SELECT detail FROM delivery_events WHERE campaign_id = $1 AND status = 'launch_override'"
        " AND seq IS NOT NULL",
        uuid.UUID(cid),
    )
    assert reason in ledger
    assert (await ledger_service.verify(db, uuid.UUID(cid))).ok  # the chain holds with it


async def test_a_complete_notice_launches_without_more_ado(api: aiohttp.ClientSession) -> None:
    body = _incident(
        jurisdictions=["kr-pipa"],
        facts=COMPLETE_FACTS,
        templates=_templates(CA_HEADINGS + " {{ remedies }}"),
    )
    async with api.post("/v1/campaigns", json=body) as resp:
        cid = (await resp.json())["id"]
    status, _ = await factories.upload(api, cid, factories.recipients_csv(3))
    assert status == 200
    status, _ = await _launch(api, cid)
    assert status == 202
