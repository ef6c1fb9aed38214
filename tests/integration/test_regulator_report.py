"""The regulator's report: a campaign run to its end reads as the sandbox saw it, prints as a
page nothing on which runs or loads, survives a purge unchanged with its ledger verifying,
and shows no personal data anywhere."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import orjson
import pytest

from notifier import ledger
from notifier.api.notice import HEADERS as NOTICE_HEADERS
from notifier.models import Channel
from notifier.settings import Settings
from notifier.tooling.stack import LocalStack
from tests import factories

pytestmark = pytest.mark.timeout(180)

FACTS = {
    locale: {
        "what_happened": f"[{locale}] An outside party reached customer records.\n"
        "The access path is closed.",
        "breach_period": "17 to 18 November 2026",
        "data_items": f"[{locale}] name, email address, phone number",
        "what_we_are_doing": "We reset passwords & reported the breach.",
        "what_you_can_do": "Do not answer unexpected calls.",
        "likely_consequences": "More phishing messages.",
        "remedies": "You may apply to the dispute mediation committee.",
        "contact_point": "help desk 1588-0000",
    }
    for locale in ("ko", "en")
}
TEMPLATES = {
    "email": {
        locale: {
            "subject": "Notice {{ notice_date }}",
            "text": "Dear {{ name }}: {{ what_happened }} {{ data_items }} "
            "{{ contact_point }} {{ verify_url }}",
        }
        for locale in ("ko", "en")
    },
    "sms": {locale: {"text": "{{ data_items }} {{ verify_url }}"} for locale in ("ko", "en")},
}
OVERRIDE = {"override": {"reason": "a test of the regulator's report, not of the checklist"}}

# (external_id, email, phone, locale, name): what each row becomes is in its comment.
ROWS = [
    *(
        (
            f"acct-{i}",
            f"user{i}@example.com",
            factories.phone(i),
            "en" if i % 3 else "ko",
            f"Customer-{i}",
        )
        for i in range(8)
    ),  # reached on both channels
    ("acct-shared-a", "family@example.com", "+821099990000", "ko", "Customer-A"),  # one send
    ("acct-shared-b", "family@example.com", "+821099990000", "ko", "Customer-B"),  # for both
    ("acct-fail-email", "reject-fe@example.com", "", "en", "Customer-C"),  # 550, no phone
    ("acct-fail-both", "reject-fb@example.com", "+15005550001", "ko", "Customer-D"),  # 21211
    ("acct-undelivered", "", "+15005553003", "ko", "Customer-E"),  # accepted, then 30003
    ("acct-bad-1", "bp1@example.com", "+8210123", "ko", "Customer-F"),  # refused at upload
    ("acct-bad-2", "bp2@example.com", "+8210124", "ko", "Customer-G"),  # refused at upload
]
CONTACTS = [value for row in ROWS for value in (row[0], *row[1:3], row[4]) if value]


def _leaks(text: str) -> int:
    """How many account ids, contact details or names of the rows the text shows."""
    return sum(value in text for value in CONTACTS) + text.count("example.com")


def _csv() -> bytes:
    lines = ["external_id,email,phone,locale,name", *(",".join(row) for row in ROWS)]
    return ("\n".join(lines) + "\n").encode()


async def _run_to_the_end(stack: LocalStack, api: aiohttp.ClientSession) -> tuple[str, datetime]:
    """A campaign of ROWS under PIPA and the GDPR, aware an hour ago, sent to the end."""
    aware = (datetime.now(UTC) - timedelta(hours=1)).replace(microsecond=0)
    body = factories.campaign(
        discovered_at=aware.isoformat(),
        jurisdictions=["kr-pipa", "eu-gdpr"],
        facts=FACTS,
        templates=TEMPLATES,
    )
    async with api.post("/v1/campaigns", json=body) as resp:
        assert resp.status == 201, await resp.text()
        cid: str = (await resp.json())["id"]
    status, result = await factories.upload(api, cid, _csv())
    assert status == 200
    assert (result["accepted"], result["rejected"]) == (13, 2)
    await stack.start_inline_worker()
    async with api.post(f"/v1/campaigns/{cid}/launch", json=OVERRIDE) as resp:
        assert resp.status == 202, await resp.text()
    await factories.wait_for(api, cid, factories.settled)
    return cid, aware


async def _report(api: aiohttp.ClientSession, cid: str, **params: str) -> tuple[str, Any]:
    async with api.get(f"/v1/campaigns/{cid}/regulator-report", params=params) as resp:
        assert resp.status == 200
        assert resp.content_type == "application/json"
        assert resp.headers["Cache-Control"] == "no-store"
        text = await resp.text()
    return text, orjson.loads(text)


def _generated(pages: list[str]) -> list[str]:
    """The moment each page was made, as it shows it (a <time> element)."""
    found = [re.search(r"Report generated</th><td>(<time [^>]+>[^<]+</time>)", p) for p in pages]
    assert all(found)
    return [m[1] if m else "" for m in found]


def _without_time(report: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in report.items() if k != "generated_at"}


async def test_a_finished_campaign_reads_as_the_sandbox_saw_it(
    stack: LocalStack, api: aiohttp.ClientSession, db: asyncpg.Connection
) -> None:
    cid, aware = await _run_to_the_end(stack, api)
    text, report = await _report(api, cid)
    leaks = _leaks(text)  # checked first, and counted, so that a failure shows no value
    assert leaks == 0

    assert report["campaign_id"] == cid
    incident = report["incident"]
    assert (incident["incident_ref"], incident["state"], incident["accounts"]) == (
        "INC-TEST-1",
        "completed",
        13,
    )
    assert datetime.fromisoformat(incident["discovered_at"]) == aware
    assert incident["rule_versions"] == {
        "kr-pipa": "kr-pipa@2023-09-15",
        "eu-gdpr": "eu-gdpr@2018-05-25",
    }
    assert [law["version"] for law in incident["laws"]] == [
        "kr-pipa@2023-09-15",
        "eu-gdpr@2018-05-25",
    ]
    assert incident["facts"] == FACTS

    # Every channel as the sandbox received it: a shared contact got one message for its two
    # accounts; refusals never reached the inbox, an SMS later undelivered did.
    assert stack.sandbox is not None
    inbox = stack.sandbox.inbox
    email, sms = report["channels"]
    assert (email["channel"], sms["channel"]) == ("email", "sms")
    assert email["messages"] == inbox.count(Channel.EMAIL) == 9
    assert sms["messages"] + 1 == inbox.count(Channel.SMS) == 10
    for channel in (email, sms):
        assert channel["deliveries"] == 12
        assert channel["notified"] == 10
        assert channel["notified"] == channel["messages"] + channel["merged_contacts"]
        assert channel["merged_contacts"] == 1
        assert channel["failed"] == 2
        assert (channel["suppressed"], channel["cancelled"], channel["outstanding"]) == (0, 0, 0)
        assert channel["possible_duplicates"] == 0
    assert email["delivered"] == 0  # no relay events: sent is as far as email goes here
    assert sms["delivered"] == 10  # every SMS the sandbox took got its receipt
    assert email["failed_by_reason"] == [{"reason": "invalid_contact", "count": 2}]
    assert sms["failed_by_reason"] == [
        {"reason": "invalid_contact", "count": 1},
        {"reason": "unreachable", "count": 1},
    ]
    assert set(report["failure_classes"]) >= {"invalid_contact", "unreachable", "provider"}

    assert report["unreachable"] == {
        "total": 5,
        "by_reason": [
            {"source": "rejected", "reason": "phone: not a valid number", "count": 2},
            {"source": "failed", "reason": "email: invalid_contact", "count": 1},
            {
                "source": "failed",
                "reason": "email: invalid_contact; sms: invalid_contact",
                "count": 1,
            },
            {"source": "failed", "reason": "sms: unreachable", "count": 1},
        ],
    }

    # The timeline: sends from the ledger, PIPA's 72 hours met, the authority not tracked.
    timeline = report["timeline"]
    first, last = (datetime.fromisoformat(timeline[k]) for k in ("first_send", "last_send"))
    launched = datetime.fromisoformat(timeline["launched_at"])
    completed = datetime.fromisoformat(timeline["completed_at"])
    assert aware < launched <= first <= last <= completed
    override = timeline["launch_override"]
    assert override["reason"] == OVERRIDE["override"]["reason"]
    assert "kr-pipa@2023-09-15 email en breach_period" in override["missing"]
    duties = {(d["jurisdiction"], d["duty"]): d for d in timeline["duties"]}
    pipa = duties[("kr-pipa", "notice")]
    assert datetime.fromisoformat(pipa["due_at"]) == aware + timedelta(hours=72)
    assert (pipa["met"], pipa["verdict"]) == (
        True,
        "met: the last notice was sent before the deadline",
    )
    gdpr = duties[("eu-gdpr", "notice")]
    assert (gdpr["due_at"], gdpr["met"]) == (None, None)
    assert duties[("kr-pipa", "report")]["applies"] is False  # below 1,000 people
    report_duty = duties[("eu-gdpr", "report")]
    assert report_duty["due_at"] is not None and report_duty["met"] is None
    assert report_duty["verdict"].startswith("not tracked by this service")

    # The notice as sent: the facts in, what differs per person left as a placeholder.
    notices = {(n["channel"], n["locale"]): n for n in report["notices"]}
    assert sorted(notices) == [("email", "en"), ("email", "ko"), ("sms", "en"), ("sms", "ko")]
    en = notices[("email", "en")]
    assert en["notice_url"] == f"{stack.api_url}/v1/campaigns/{cid}/notice/en"
    assert en["placeholders"] == ["name", "verify_url"]
    parts = {p["part"]: p for p in en["parts"]}
    assert parts["text"]["template"] == TEMPLATES["email"]["en"]["text"]
    assert parts["text"]["as_sent"] == (
        "Dear {{ name }}: "
        + FACTS["en"]["what_happened"]
        + " "
        + FACTS["en"]["data_items"]
        + " help desk 1588-0000 "
        + stack.api_url
        + "/v1/verify/{{ verification_code }}"
    )
    day = first.date().isoformat() if first.date() == last.date() else "{{ notice_date }}"
    assert parts["subject"]["as_sent"] == f"Notice {day}"
    sms_ko = notices[("sms", "ko")]["parts"][0]["as_sent"]
    assert sms_ko.startswith(FACTS["ko"]["data_items"] + " ")

    # The seal is the ledger's, recomputed here outside the service.
    verdict = await ledger.verify(db, uuid.UUID(cid))
    assert verdict.ok
    assert report["ledger"] == {
        "seal": verdict.seal.hex(),
        "events": verdict.events,
        "chains": verdict.chains,
        "verified": True,
        "problem": None,
    }


async def test_the_html_report_is_a_page_on_which_nothing_runs_or_loads(
    stack: LocalStack, api: aiohttp.ClientSession
) -> None:
    cid, _ = await _run_to_the_end(stack, api)
    _, report = await _report(api, cid)
    browser = {"Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"}
    pages = []
    for params, headers in (({}, browser), ({"format": "html"}, {"Accept": "application/json"})):
        async with api.get(
            f"/v1/campaigns/{cid}/regulator-report", params=params, headers=headers
        ) as resp:
            assert resp.status == 200
            assert resp.headers["Content-Type"] == "text/html; charset=utf-8"
            for name in (
                "Content-Security-Policy",
                "X-Content-Type-Options",
                "X-Frame-Options",
                "Referrer-Policy",
            ):
                assert resp.headers[name] == NOTICE_HEADERS[name], name
            assert resp.headers["Cache-Control"] == "no-store"
            pages.append(await resp.text())
    leaks = sum(_leaks(page) for page in pages)
    assert leaks == 0
    page = pages[1]
    lowered = page.lower()
    for banned in ("<script", "style=", "<link", "<img", "<iframe", "<form"):
        assert banned not in lowered, banned
    assert lowered.count("<style") == 1  # the public pages' own sheet, admitted by its hash
    # URLs only of the service itself (the published notices, the verification link), as text.
    urls = re.findall(r"https?://[^\s<\"']+", page)
    assert urls and all(url.startswith(stack.api_url + "/v1/") for url in urls)
    assert "href=" not in lowered and "src=" not in lowered
    assert page.startswith("<!doctype html>")
    assert report["ledger"]["seal"] in page
    assert "INC-TEST-1" in page and "kr-pipa@2023-09-15" in page
    assert "not tracked by this service" in page
    assert "We reset passwords &amp; reported the breach." in page
    assert "{{ name }}" in page  # a placeholder, shown as such
    assert page.count("<table") >= 6
    # The two ways of asking give the same page but for the moment it was made.
    undated = [page.replace(when, "") for page, when in zip(pages, _generated(pages), strict=True)]
    assert undated[0] == undated[1]

    async with api.get(f"/v1/campaigns/{cid}/regulator-report?format=pdf") as resp:
        assert resp.status == 400
        assert resp.content_type == "application/problem+json"


async def test_the_report_after_a_purge_is_the_report_before(
    stack: LocalStack,
    api: aiohttp.ClientSession,
    db: asyncpg.Connection,
    settings: Settings,
    tmp_path: Path,
) -> None:
    cid, _ = await _run_to_the_end(stack, api)
    await db.execute(
        "UPDATE campaigns SET completed_at = now() - interval '40 days' WHERE id = $1",
        uuid.UUID(cid),
    )
    _, before = await _report(api, cid)  # its completion moved back, so read it again
    url = settings.database_url or ""
    code, out, _ = await factories.run_cli(url, "purge", "--older-than", "30d")
    assert code == 0 and f"purged campaign {cid}: 13 recipients" in out

    _, after = await _report(api, cid)
    assert after["generated_at"] >= before["generated_at"]
    assert _without_time(after) == _without_time(before)
    assert after["ledger"]["verified"] is True

    # The command writes the same report, as JSON and as the page.
    env = {"NOTIFIER_PUBLIC_BASE_URL": stack.api_url}
    written = tmp_path / "report.json"
    code, out, _ = await factories.run_cli(
        url, "regulator-report", cid, "-o", str(written), env=env
    )
    assert code == 0 and out == ""
    assert _without_time(orjson.loads(written.read_bytes())) == _without_time(after)
    code, page, _ = await factories.run_cli(url, "regulator-report", cid, "--html", env=env)
    leaks = _leaks(page)
    assert leaks == 0
    assert code == 0 and page.startswith("<!doctype html>") and after["ledger"]["seal"] in page
    code, _, err = await factories.run_cli(url, "regulator-report", str(uuid.uuid4()))
    assert code == 2 and "no campaign" in err


async def test_an_unknown_campaign_is_404_and_a_request_without_a_key_401(
    stack: LocalStack, api: aiohttp.ClientSession
) -> None:
    for cid in (str(uuid.uuid4()), "not-a-campaign"):
        async with api.get(f"/v1/campaigns/{cid}/regulator-report") as resp:
            assert resp.status == 404
            assert resp.content_type == "application/problem+json"
    cid = (await factories.create_campaign(api))["id"]
    # A draft has a report too: nothing sent yet, its ledger's chains open and empty.
    _, draft = await _report(api, cid)
    assert draft["timeline"]["first_send"] is None and draft["timeline"]["duties"] == []
    assert [c["deliveries"] for c in draft["channels"]] == [0, 0]
    assert (draft["ledger"]["events"], draft["ledger"]["verified"]) == (0, True)
    async with aiohttp.ClientSession(stack.api_url) as public:  # no key
        for params in ({}, {"format": "html"}):
            async with public.get(f"/v1/campaigns/{cid}/regulator-report", params=params) as resp:
                assert resp.status == 401
                assert resp.content_type == "application/problem+json"
