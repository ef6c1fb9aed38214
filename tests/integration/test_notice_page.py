"""The full notice, published: one public page per launched campaign and locale, with every
item of the campaign's facts, the headings its laws prescribe, and no personal data; the
verification answer leads to it."""

from __future__ import annotations

import base64
import hashlib
import html
import re
import uuid
from typing import Any

import aiohttp
import pytest

from notifier.models import Channel
from notifier.tooling.stack import LocalStack
from tests import factories

pytestmark = pytest.mark.timeout(120)

FACTS = {
    "ko": {
        "what_happened": "외부의 비정상적인 접근으로 고객 정보가 유출되었습니다.\n"
        "접근 경로는 차단되었습니다.",
        "breach_period": "2025-11-17 ~ 2025-11-18",
        "data_items": "이름, 이메일 주소, 전화번호",
        "what_we_are_doing": "비밀번호를 초기화하고 관계 기관에 신고했습니다.",
        "what_you_can_do": "의심스러운 연락에 응하지 마십시오.",
        "remedies": "개인정보 분쟁조정위원회에 조정을 신청할 수 있습니다.",
        "contact_point": "고객센터 1588-0000",
    },
    "en": {
        "what_happened": "An outside party reached customer records <script>alert(1)</script>.\n"
        "The access path is closed.\n\nWe found it on our own.",
        "breach_period": "17 to 18 November 2025",
        "data_items": "name, email address, phone number",
        "what_we_are_doing": "We reset passwords & reported the breach.",
        "what_you_can_do": "Do not answer unexpected calls or messages.",
        "remedies": "You may apply to the dispute mediation committee.",
        "contact_point": "help desk 1588-0000",
    },
}
TEMPLATES = {
    "email": {
        locale: {
            "subject": "Notice {{ notice_date }}",
            "text": "{{ what_happened }} {{ data_items }} {{ contact_point }} {{ verify_url }}",
        }
        for locale in ("ko", "en")
    },
    "sms": {locale: {"text": "{{ data_items }} {{ verify_url }}"} for locale in ("ko", "en")},
}
HEADINGS = [
    "What Happened",
    "What Information Was Involved",
    "What We Are Doing",
    "What You Can Do",
    "For More Information",
]
OVERRIDE = {"override": {"reason": "a test of the published notice, not of the checklist"}}


def _incident(**changes: Any) -> dict[str, Any]:
    body = factories.campaign(
        variables=[],
        discovered_at="2025-11-18T09:30:00+09:00",
        jurisdictions=["kr-pipa", "us-ca"],
        facts=FACTS,
        templates=TEMPLATES,
    )
    body.update(changes)
    return body


async def _launched(stack: LocalStack, api: aiohttp.ClientSession, n: int = 10) -> str:
    async with api.post("/v1/campaigns", json=_incident()) as resp:
        cid: str = (await resp.json())["id"]
    status, _ = await factories.upload(api, cid, factories.recipients_csv(n))
    assert status == 200
    await stack.start_inline_worker()
    async with api.post(f"/v1/campaigns/{cid}/launch", json=OVERRIDE) as resp:
        assert resp.status == 202, await resp.text()
    return cid


async def _page(public: aiohttp.ClientSession, path: str) -> tuple[aiohttp.ClientResponse, str]:
    async with public.get(path) as resp:
        return resp, await resp.text()


def _text(page: str) -> str:
    """What a reader sees: the tags dropped, entities read."""
    return html.unescape(re.sub(r"<[^>]+>", "", page))


async def test_the_notice_is_published_per_locale_with_the_law_s_headings(
    stack: LocalStack, api: aiohttp.ClientSession
) -> None:
    cid = await _launched(stack, api)
    async with aiohttp.ClientSession(stack.api_url) as public:  # no key
        resp, en = await _page(public, f"/v1/campaigns/{cid}/notice/en")
        assert resp.status == 200
        assert resp.headers["Content-Type"] == "text/html; charset=utf-8"
        csp = resp.headers["Content-Security-Policy"]
        assert "default-src 'none'" in csp and "frame-ancestors 'none'" in csp
        assert "script-src" not in csp and "unsafe-inline" not in csp
        # The one style sheet, inline, is the one the policy admits by its hash.
        sheets = re.findall(r"<style>(.*?)</style>", en, re.S)
        digest = base64.b64encode(hashlib.sha256(sheets[0].encode()).digest()).decode()
        assert len(sheets) == 1 and f"style-src 'sha256-{digest}'" in csp
        assert resp.headers["X-Content-Type-Options"] == "nosniff"
        assert resp.headers["Referrer-Policy"] == "no-referrer"
        assert resp.headers["X-Frame-Options"] == "DENY"
        assert resp.headers["Cache-Control"].startswith("public, max-age=")
        assert resp.headers["Content-Language"] == "en"

        # California's title and its five headings, in its order.
        assert "<h1>Notice of Data Breach</h1>" in en
        shown = re.findall(r"<h2[^>]*>([^<]+)</h2>", en)
        assert shown[:5] == HEADINGS
        # Every fact, escaped, its line breaks kept; nothing on the page runs.
        assert "<script" not in en
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in en
        assert "customer records &lt;script&gt;alert(1)&lt;/script&gt;.<br>" in en
        assert "We reset passwords &amp; reported the breach." in en
        text = _text(en)
        for item in FACTS["en"].values():
            for line in item.split("\n"):
                assert line in text, line
        assert "Account data exposure, test" in text and "INC-TEST-1" in text
        assert "kr-pipa@2023-09-15" in text and "us-ca@2020-01-01" in text
        assert "Personal Information Protection Act" in text

        resp, ko = await _page(public, f"/v1/campaigns/{cid}/notice/ko-KR")
        assert resp.status == 200 and resp.headers["Content-Language"] == "ko"
        assert '<html lang="ko">' in ko
        assert "Notice of Data Breach" not in ko  # the prescribed wording is English
        text = _text(ko)
        for item in FACTS["ko"].values():
            for line in item.split("\n"):
                assert line in text, line
        assert FACTS["en"]["data_items"] not in text
        # Under Korean headings, with the page's own words in Korean too.
        assert '<h2 lang="ko">유출된 개인정보 항목</h2>' in ko
        assert "통지 일자" in text and "Date of this notice" not in text

        # A language the campaign has no facts in: the default locale's page.
        resp, other = await _page(public, f"/v1/campaigns/{cid}/notice/fr")
        assert resp.status == 200 and resp.headers["Content-Language"] == "ko"
        assert other == ko

        # The page names no one: no account id, address or number of any recipient.
        for page in (en, ko):
            assert "acct-" not in page and "@example.com" not in page
            assert factories.phone(0) not in page


async def test_drafts_cancelled_and_unknown_campaigns_are_all_404(
    stack: LocalStack, api: aiohttp.ClientSession
) -> None:
    async with api.post("/v1/campaigns", json=_incident()) as resp:
        draft = (await resp.json())["id"]
    async with api.post("/v1/campaigns", json=_incident()) as resp:
        cancelled = (await resp.json())["id"]
    async with api.post(f"/v1/campaigns/{cancelled}/cancel") as resp:
        assert resp.status == 202
    unknown = str(uuid.uuid4())
    answers = []
    async with aiohttp.ClientSession(stack.api_url) as public:
        for cid in (draft, cancelled, unknown):
            async with public.get(f"/v1/campaigns/{cid}/notice/en") as resp:
                assert resp.status == 404
                assert resp.content_type == "application/problem+json"
                body = await resp.json()
                answers.append({**body, "detail": body["detail"].replace(cid, "…")})
        async with public.get("/v1/campaigns/not-an-id/notice/en") as resp:
            assert resp.status == 404
    assert answers[0] == answers[1] == answers[2]


async def test_a_campaign_cancelled_after_its_launch_keeps_its_page(
    stack: LocalStack, api: aiohttp.ClientSession
) -> None:
    async with api.post("/v1/campaigns", json=_incident()) as resp:
        cid = (await resp.json())["id"]
    status, _ = await factories.upload(api, cid, factories.recipients_csv(3))
    assert status == 200
    override = {"override": {"reason": "the page, not the checklist, is tested here"}}
    async with api.post(f"/v1/campaigns/{cid}/launch", json=override) as resp:
        assert resp.status == 202
    async with api.post(f"/v1/campaigns/{cid}/cancel") as resp:
        assert resp.status == 202
    async with (
        aiohttp.ClientSession(stack.api_url) as public,
        public.get(f"/v1/campaigns/{cid}/notice/en") as resp,
    ):
        assert resp.status == 200


async def test_verification_leads_to_the_notice_in_the_person_s_language(
    stack: LocalStack, api: aiohttp.ClientSession
) -> None:
    cid = await _launched(stack, api)
    await factories.wait_for(api, cid, factories.settled, within=60)
    assert stack.sandbox is not None
    # Each person's SMS: its language, and the link to check it by.
    received = [
        ("en" if FACTS["en"]["data_items"] in (record.body or "") else "ko", found.group(0))
        for record in stack.sandbox.inbox.records(Channel.SMS)
        if (found := re.search(r"https?://\S+/v1/verify/\S+", record.body or "")) is not None
    ]
    assert len(received) == 10
    async with aiohttp.ClientSession() as public:
        for language, link in received:
            async with public.get(link) as resp:
                answer = await resp.json()
                assert resp.status == 200, answer
            assert set(answer) == {"genuine", "campaign", "channel", "sent_at", "notice_url"}
            assert answer["notice_url"] == f"{stack.api_url}/v1/campaigns/{cid}/notice/{language}"
            async with public.get(answer["notice_url"]) as resp:
                assert resp.status == 200
                assert FACTS[language]["contact_point"] in await resp.text()
    assert {language for language, _ in received} == {"ko", "en"}
