"""The incident behind a campaign: when the company became aware, which laws apply (and
which version of each), and the notice's facts per locale, used by the templates."""

from __future__ import annotations

import email
import uuid
from datetime import UTC, datetime, timedelta
from email.message import Message
from typing import Any

import aiohttp
import asyncpg
import pytest

from notifier.models import Channel
from notifier.tooling.stack import LocalStack
from tests import factories

pytestmark = pytest.mark.timeout(120)

AWARE = "2025-11-18T09:30:00+09:00"
FACTS = {
    "ko": {
        "what_happened": "외부 접근으로 고객 정보가 유출되었습니다",
        "data_items": "이름, 이메일 주소, 전화번호, 배송지",
        "contact_point": "고객센터 1588-0000",
    },
    "en": {
        "what_happened": "an outside party reached customer records",
        "data_items": "name, email address, phone number, delivery address",
        "contact_point": "help desk 1588-0000",
    },
}
TEMPLATES = {
    "email": {
        locale: {
            "subject": "Notice {{ notice_date }}",
            "text": "{{ what_happened }}. Items: {{ data_items }}. {{ contact_point }}. "
            "{{ verify_url }}",
        }
        for locale in ("ko", "en")
    },
    "sms": {locale: {"text": "{{ data_items }} {{ verify_url }}"} for locale in ("ko", "en")},
}


def _incident(**changes: Any) -> dict[str, Any]:
    body = factories.campaign(
        variables=[],
        discovered_at=AWARE,
        jurisdictions=["kr-pipa", "eu-gdpr"],
        facts=FACTS,
        templates=TEMPLATES,
    )
    body.update(changes)
    return body


async def _refused(api: aiohttp.ClientSession, body: dict[str, Any]) -> dict[str, str]:
    async with api.post("/v1/campaigns", json=body) as resp:
        problem = await resp.json()
        assert resp.status == 422, problem
    return {e["field"]: e["message"] for e in problem["errors"]}


async def test_the_incident_is_kept_with_the_law_versions_it_is_held_to(
    api: aiohttp.ClientSession,
) -> None:
    async with api.post("/v1/campaigns", json=_incident()) as resp:
        created = await resp.json()
        assert resp.status == 201, created
    shown = await factories.get_campaign(api, created["id"])
    assert datetime.fromisoformat(shown["discovered_at"]) == datetime.fromisoformat(AWARE)
    assert shown["jurisdictions"] == ["kr-pipa", "eu-gdpr"]
    assert shown["rule_versions"] == {
        "kr-pipa": "kr-pipa@2023-09-15",
        "eu-gdpr": "eu-gdpr@2018-05-25",
    }
    assert shown["facts"] == FACTS
    async with api.get("/openapi.json") as resp:
        spec = await resp.json()
    create = spec["components"]["schemas"]["CampaignCreate"]["properties"]
    assert {"discovered_at", "jurisdictions", "facts"} <= set(create)


async def test_bad_incidents_are_422_naming_the_field(api: aiohttp.ClientSession) -> None:
    errors = await _refused(api, _incident(jurisdictions=["kr-pipa", "xx-none"]))
    assert "eu-gdpr" in errors["jurisdictions"]  # the hint lists the known ones
    future = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    assert "discovered_at" in await _refused(api, _incident(discovered_at=future))
    assert "discovered_at" in await _refused(api, _incident(discovered_at="2025-11-18T09:30:00"))
    assert "required" in (await _refused(api, _incident(discovered_at=None)))["discovered_at"]
    old = "2001-01-01T00:00:00+00:00"
    assert (
        "no version in force"
        in (await _refused(api, _incident(discovered_at=old)))["jurisdictions"]
    )
    missing_locale = {"ko": FACTS["ko"]}
    errors = await _refused(api, _incident(facts=missing_locale))
    assert errors == {"facts.en": "missing: the campaign sends in en"}
    no_items = {"ko": {"what_happened": "x"}, "en": FACTS["en"]}
    errors = await _refused(api, _incident(facts=no_items))
    assert set(errors) == {"facts.ko.contact_point", "facts.ko.data_items"}
    errors = await _refused(api, _incident(facts={**FACTS, "en": {"horoscope": "x"}}))
    assert "not a notice item" in errors["facts.en.horoscope"]
    errors = await _refused(api, _incident(variables=["data_items"]))
    assert "variables[0]" in errors
    # Without jurisdictions or facts, a template that uses a fact still needs its text.
    errors = await _refused(api, _incident(jurisdictions=[], facts={}))
    assert "facts.ko.what_happened" in errors


async def test_each_person_gets_the_facts_of_their_locale(
    stack: LocalStack, api: aiohttp.ClientSession, db: asyncpg.Connection
) -> None:
    async with api.post("/v1/campaigns", json=_incident()) as resp:
        cid = (await resp.json())["id"]
    status, result = await factories.upload(api, cid, factories.recipients_csv(10))
    assert status == 200 and result["accepted"] == 10
    await stack.start_inline_worker()
    override = {"override": {"reason": "a test of the facts, not of the checklist"}}
    async with api.post(f"/v1/campaigns/{cid}/launch", json=override) as resp:
        assert resp.status == 202, await resp.text()
    await factories.wait_for(api, cid, factories.settled, within=60)
    assert stack.sandbox is not None
    today = datetime.now(UTC).strftime("%Y-%m-%d")
    locales = {
        r["external_id"]: r["locale"]
        for r in await db.fetch(
            "SELECT external_id, locale FROM recipients WHERE campaign_id = $1", uuid.UUID(cid)
        )
    }
    assert set(locales.values()) == {"ko", "en"}
    emails = stack.sandbox.inbox.records(Channel.EMAIL)
    sms = stack.sandbox.inbox.records(Channel.SMS)
    assert len(emails) == len(sms) == 10
    for received in emails:
        message = email.message_from_string(received.body or "")
        text = _text(message)
        locale = "en" if "outside party" in text else "ko"
        assert FACTS[locale]["data_items"] in text and FACTS[locale]["contact_point"] in text
        assert today in str(message["Subject"])
    by_locale = sorted("en" if FACTS["en"]["data_items"] in r.body else "ko" for r in sms if r.body)
    assert by_locale == sorted(locales.values())


def _text(message: Message) -> str:
    part = next(p for p in message.walk() if p.get_content_type() == "text/plain")
    payload = part.get_payload(decode=True)
    assert isinstance(payload, bytes)
    return payload.decode(part.get_content_charset() or "utf-8")
