"""A breach notice under Korea's PIPA from start to proof, against the real services: the
checklist stops a notice that lacks an item, the fixed draft launches, accounts sharing an
address get one email, the people who cannot be reached are listed, and the regulator
report's counts are what the sandbox received, before and after the contacts are purged."""

from __future__ import annotations

import copy
import csv
import io
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import pytest

from notifier.models import Channel
from notifier.tooling.stack import LocalStack
from tests import factories

pytestmark = pytest.mark.timeout(180)

FACTS = {
    "ko": {
        "what_happened": "외부의 비인가 접근으로 계정 정보가 유출되었습니다.",
        "breach_period": "2025년 6월 24일부터 11월 8일까지",
        "data_items": "이름, 이메일 주소, 전화번호",
        "what_we_are_doing": "접근 경로를 차단하고 조사 중입니다.",
        "what_you_can_do": "비밀번호를 변경하시고 의심스러운 문자에 주의하세요.",
        "remedies": "개인정보분쟁조정위원회에 피해 구제를 신청하실 수 있습니다.",
        "contact_point": "상담센터 1588-0000",
    }
}
# Every item PIPA art. 34(1) asks for but (3), what the person can do.
WITHOUT_3 = (
    "{{ name }}님, 개인정보 유출 안내. {{ what_happened }} ({{ breach_period }})\n"
    "유출 항목: {{ data_items }}\n조치: {{ what_we_are_doing }}\n"
    "구제: {{ remedies }}\n문의: {{ contact_point }}\n"
    "확인: {{ verify_url }} 코드 {{ verification_code }}"
)
WITH_3 = WITHOUT_3 + "\n하실 일: {{ what_you_can_do }}"


def _templates(email_text: str) -> dict[str, Any]:
    return {
        "email": {"ko": {"subject": "[중요] 개인정보 유출 안내", "text": email_text}},
        "sms": {"ko": {"text": "[안내] 개인정보 유출. 전문: {{ verify_url }}"}},
    }


# (account, email, phone): 0-2 share one address and have no phone; 3 has both; 4 fails on
# both channels (the sandbox refuses the address with 550 and the number with 21211);
# the last two lines are refused at upload.
ROWS = [
    ("fam-0", "family@example.com", ""),
    ("fam-1", "family@example.com", ""),
    ("fam-2", "family@example.com", ""),
    ("solo", "solo@example.com", "+821012345678"),
    ("lost", "reject-lost@example.com", "+15005550001"),
    ("bad-phone", "bp@example.com", "+8210123"),
    ("bad-email", "not-an-address", ""),
]


def _csv() -> bytes:
    lines = ["external_id,email,phone,locale,name"]
    lines += [f"{n},{e},{p},ko,Name {i}" for i, (n, e, p) in enumerate(ROWS)]
    return ("\n".join(lines) + "\n").encode()


async def _json(api: aiohttp.ClientSession, method: str, path: str, **kw: Any) -> Any:
    async with api.request(method, path, **kw) as resp:
        return resp.status, await resp.json()


async def test_a_pipa_notice_from_checklist_to_regulator_report(
    stack: LocalStack, api: aiohttp.ClientSession
) -> None:
    body = factories.campaign(
        discovered_at=(datetime.now(UTC) - timedelta(hours=2)).isoformat(),
        jurisdictions=["kr-pipa"],
        facts=FACTS,
        templates=_templates(WITHOUT_3),
    )
    status, campaign = await _json(api, "POST", "/v1/campaigns", json=body)
    assert status == 201, campaign
    cid = campaign["id"]
    assert campaign["rule_versions"] == {"kr-pipa": "kr-pipa@2023-09-15"}
    status, upload = await factories.upload(api, cid, _csv())
    assert (status, upload["accepted"], upload["rejected"]) == (200, 5, 2)

    # Item (3) is missing from the email: the launch is refused, naming it and its article.
    status, refused = await _json(api, "POST", f"/v1/campaigns/{cid}/launch")
    assert status == 409
    assert [e["field"] for e in refused["errors"]] == ["templates.email.ko"]
    assert "PIPA art. 34(1)(3)" in refused["errors"][0]["message"]

    # Fixed in the draft, it launches.
    status, changed = await _json(
        api, "PATCH", f"/v1/campaigns/{cid}", json={"templates": _templates(WITH_3)}
    )
    assert status == 200, changed
    status, checklist = await _json(api, "GET", f"/v1/campaigns/{cid}/checklist")
    assert checklist["complete"] is True
    await stack.start_inline_worker()
    await factories.launch(api, cid)
    done = await factories.wait_for(api, cid, factories.settled)

    # The three accounts sharing an address got one email; the report has all three told.
    assert stack.sandbox is not None
    emails = Counter(stack.sandbox.inbox.recipients(Channel.EMAIL))
    assert emails["family@example.com"] == 1
    assert done["merged"]["email"] == 2
    async with api.get(f"/v1/campaigns/{cid}/report") as resp:
        report = list(csv.DictReader(io.StringIO(await resp.text())))
    told = {r["external_id"] for r in report if r["status"] in ("sent", "delivered")}
    assert {"fam-0", "fam-1", "fam-2", "solo"} <= told

    # The two refused rows and the person every channel failed are the unreachable.
    async with api.get(f"/v1/campaigns/{cid}/unreachable") as resp:
        unreachable = list(csv.DictReader(io.StringIO(await resp.text())))
    assert sorted((r["external_id"], r["source"]) for r in unreachable) == [
        ("bad-email", "rejected"),
        ("bad-phone", "rejected"),
        ("lost", "failed"),
    ]

    # The regulator report counts what the sandbox received, and holds after the purge.
    status, before = await _json(api, "GET", f"/v1/campaigns/{cid}/regulator-report")
    assert status == 200, before
    received = {ch: len(stack.sandbox.inbox.recipients(ch)) for ch in (Channel.EMAIL, Channel.SMS)}
    check_report(before, received)
    code, _, err = await factories.run_cli(
        str(stack.settings.database_url), "purge", "--older-than", "0h"
    )
    assert code == 0, err
    status, after = await _json(api, "GET", f"/v1/campaigns/{cid}/regulator-report")
    assert status == 200
    assert without_time(after) == without_time(before)


def without_time(report: dict[str, Any]) -> dict[str, Any]:
    found = copy.deepcopy(report)
    found.pop("generated_at", None)
    return found


def check_report(report: dict[str, Any], received: dict[Channel, int]) -> None:
    """The report's counts against what the sandbox accepted, and its verdicts."""
    channels = {c["channel"]: c for c in report["channels"]}
    assert {ch: channels[ch]["messages"] for ch in received} == received
    email, sms = channels["email"], channels["sms"]
    assert (email["deliveries"], email["notified"], email["merged_contacts"]) == (5, 4, 2)
    assert (email["failed"], sms["failed"], sms["notified"]) == (1, 1, 1)
    assert report["unreachable"]["total"] == 3
    notice = next(d for d in report["timeline"]["duties"] if d["duty"] == "notice")
    assert (notice["jurisdiction"], notice["met"]) == ("kr-pipa", True)
    assert report["ledger"]["verified"] is True
    assert report["incident"]["rule_versions"] == {"kr-pipa": "kr-pipa@2023-09-15"}
