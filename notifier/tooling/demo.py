"""`notifier demo`: a breach notice to generated accounts, end to end, on this machine."""

from __future__ import annotations

import asyncio
import logging
import random
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg

from notifier import keys
from notifier.db import migrate
from notifier.models import SCOPES
from notifier.sealing import with_local_keys
from notifier.settings import Settings
from notifier.tooling.embedded import EmbeddedServices
from notifier.tooling.stack import LocalStack

# The notice's facts per locale: every item Korea's PIPA art. 34 asks a notice to carry.
FACTS = {
    "ko": {
        "what_happened": "외부의 비인가 접근으로 고객 계정 정보가 유출되었습니다.",
        "breach_period": "2025년 6월 24일부터 11월 8일까지",
        "data_items": "이름, 이메일 주소, 전화번호, 배송지 주소",
        "what_we_are_doing": "접근 경로를 차단하고 관계 기관에 신고하였으며 조사를 진행 중입니다.",
        "what_you_can_do": "출처가 불분명한 문자와 전화에 주의하시고 비밀번호를 변경하세요.",
        "remedies": "피해 구제는 개인정보분쟁조정위원회에 신청하실 수 있습니다.",
        "contact_point": "전용 상담센터 1588-0000 (매일 09:00-21:00)",
    },
    "en": {
        "what_happened": "An unauthorised outside party accessed customer account data.",
        "breach_period": "24 June to 8 November 2025",
        "data_items": "name, email address, phone number, delivery addresses",
        "what_we_are_doing": "We closed the access path, reported it and are investigating.",
        "what_you_can_do": "Be wary of unexpected messages and calls; change your password.",
        "remedies": "You may apply to the Personal Information Dispute Mediation Committee.",
        "contact_point": "Dedicated help desk +82 1588 0000 (daily 09:00-21:00)",
    },
}

_KO_EMAIL = (
    "{{ name }}님, 고객님의 개인정보가 유출되어 알려드립니다.\n\n"
    "무슨 일이 있었나요: {{ what_happened }} ({{ breach_period }})\n"
    "유출된 항목: {{ data_items }}\n"
    "저희의 조치: {{ what_we_are_doing }}\n"
    "고객님이 하실 수 있는 일: {{ what_you_can_do }}\n"
    "피해 구제: {{ remedies }}\n"
    "문의: {{ contact_point }}\n\n"
    "대상 계정: {{ accounts }}\n"
    "이 안내가 진짜인지 확인하세요: {{ verify_url }}\n"
    "확인 코드: {{ verification_code }} ({{ notice_date }})"
)
_EN_EMAIL = (
    "Dear {{ name }}, we are writing to tell you that your personal data was exposed.\n\n"
    "What happened: {{ what_happened }} ({{ breach_period }})\n"
    "What information was involved: {{ data_items }}\n"
    "What we are doing: {{ what_we_are_doing }}\n"
    "What you can do: {{ what_you_can_do }}\n"
    "Remedies: {{ remedies }}\n"
    "For more information: {{ contact_point }}\n\n"
    "Accounts concerned: {{ accounts }}\n"
    "Check this notice is genuine: {{ verify_url }}\n"
    "Verification code: {{ verification_code }} ({{ notice_date }})"
)


def demo_campaign(discovered_at: datetime) -> dict[str, Any]:
    """A Korean breach notice held to PIPA, the company having become aware at that time."""
    return {
        "name": "Account data exposure, November 2025",
        "incident_ref": "INC-2025-1129",
        "channels": ["email", "sms"],
        "default_locale": "ko",
        "variables": ["name"],
        "discovered_at": discovered_at.isoformat(),
        "jurisdictions": ["kr-pipa"],
        "facts": FACTS,
        "templates": {
            "email": {
                "ko": {"subject": "[중요] 개인정보 유출 안내", "text": _KO_EMAIL},
                "en": {"subject": "Important: your personal data was exposed", "text": _EN_EMAIL},
            },
            "sms": {
                "ko": {"text": "[안내] 개인정보 유출. 전문 확인: {{ verify_url }}"},
                "en": {"text": "Notice: your data was exposed. Full notice: {{ verify_url }}"},
            },
        },
    }


# Rows a real export would contain too; the upload reports each by line and imports the rest.
BAD_ROWS = (
    ",missing-id@example.com,+821020000000,ko,No id",
    "acct-bad-email,not-an-address,,ko,Bad email",
    "acct-bad-phone,,+82 10 123,ko,Bad phone",
)


# One account in this many shares its predecessor's email, phone and language (a family
# account): the two get one message per contact.
FAMILY_EVERY = 40


def generate_accounts(n: int, seed: int = 2025) -> bytes:
    """A CSV of generated accounts (example.com addresses, sequential numbers), some sharing
    a contact, and bad rows."""
    rng = random.Random(seed)
    lines = ["external_id,email,phone,locale,name"]
    contact = ("", "", "")
    for i in range(n):
        if i % FAMILY_EVERY != 1:
            locale = "ko" if rng.random() < 0.8 else "en"
            phone = f"+8210{20_000_000 + i:08d}" if locale == "ko" else f"+1202555{i % 10_000:04d}"
            contact = (f"user{i}@example.com", phone, locale)
        email, phone, locale = contact
        lines.append(f"acct-{i:07d},{email},{phone},{locale},Customer {i}")
    lines.extend(BAD_ROWS)
    return ("\n".join(lines) + "\n").encode()


async def run_demo(settings: Settings, *, accounts: int, rate: float, workers: int = 2) -> int:
    """Run the whole system, notify `accounts` people on both channels, print the outcome."""
    started = time.monotonic()
    for noisy in ("arq", "pgserver"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    embedded = EmbeddedServices(settings.data_dir)
    embedded.start(postgres=not settings.database_url, redis=not settings.redis_url)
    settings = settings.replace(
        database_url=settings.database_url or embedded.database_url,
        redis_url=settings.redis_url or embedded.redis_url,
        email_rate=rate,
        sms_rate=rate,
        log_level="WARNING",
    )
    settings = with_local_keys(settings)
    print(
        "postgres:",
        "embedded" if embedded.database_url else "configured",
        "| redis:",
        "embedded" if embedded.redis_url else "configured",
    )
    stack = LocalStack(settings)
    try:
        assert settings.database_url
        await migrate(settings.database_url)
        settings = await stack.start()
        for _ in range(workers):
            await stack.start_worker_process()
        conn = await asyncpg.connect(settings.database_url)
        try:
            key = await keys.create(conn, name="demo", scopes=sorted(SCOPES), expires_in_days=1)
        finally:
            await conn.close()
        return await _drive(stack.api_url, key.secret, accounts, settings.data_dir, started)
    finally:
        await stack.stop()
        embedded.stop()


async def _drive(api: str, secret: str, accounts: int, data_dir: Path, started: float) -> int:
    headers = {"Authorization": f"Bearer {secret}"}
    async with aiohttp.ClientSession(api, headers=headers) as http:
        # The company became aware six hours ago: PIPA's 72 hours run from then.
        aware = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=6)
        async with http.post("/v1/campaigns", json=demo_campaign(aware)) as resp:
            campaign = await resp.json()
            assert resp.status == 201, campaign
        cid = campaign["id"]
        print(f"campaign {cid} created")
        async with http.post(
            f"/v1/campaigns/{cid}/recipients",
            data=generate_accounts(accounts),
            headers={"Content-Type": "text/csv"},
        ) as resp:
            upload = await resp.json()
        print(
            f"uploaded: {upload['accepted']} accepted, {upload['rejected']} rejected, "
            f"{upload['duplicates']} duplicates"
        )
        for error in upload["errors"][:5]:
            print(f"  line {error['line']}: {error['message']}")
        await _before_launch(http, cid)
        launched = time.monotonic()
        async with http.post(f"/v1/campaigns/{cid}/launch") as resp:
            assert resp.status == 202, await resp.text()
        while True:
            await asyncio.sleep(1.0)
            async with http.get(f"/v1/campaigns/{cid}") as resp:
                state = await resp.json()
            c = state["counts"]
            left = sum(c[ch]["pending"] + c[ch]["sending"] for ch in c)
            awaiting = c["sms"]["sent"]
            print(
                f"  {state['state']:<9} email sending {c['email']['sending']:>4} "
                f"sent {c['email']['sent']:>6} "
                f"failed {c['email']['failed']:>4} | sms sent {c['sms']['sent']:>5} "
                f"delivered {c['sms']['delivered']:>6} "
                f"failed {c['sms']['failed']:>4} | left {left:>6} | "
                f"{state['rate_per_second']:>7.1f}/s",
                flush=True,
            )
            if state["state"] == "completed" and awaiting == 0:
                break
        elapsed = time.monotonic() - launched
        report = data_dir / f"report-{cid}.csv"
        async with http.get(f"/v1/campaigns/{cid}/report") as resp:
            report.write_bytes(await resp.read())
        regulator = data_dir / f"regulator-report-{cid}.html"
        async with http.get(f"/v1/campaigns/{cid}/regulator-report?format=html") as resp:
            assert resp.status == 200, await resp.text()
            regulator.write_bytes(await resp.read())
        async with http.get(f"/v1/campaigns/{cid}/regulator-report") as resp:
            regulator.with_suffix(".json").write_bytes(await resp.read())
    total = sum(sum(v for s, v in per.items()) for per in c.values())
    print(
        f"done: {total} deliveries in {elapsed:.1f}s of sending "
        f"({total / elapsed:.0f} deliveries/s), {time.monotonic() - started:.1f}s in all"
    )
    print(f"final counts: {c}")
    print(f"accounts that shared a contact's message: {state['merged']}")
    print(f"evidence report: {report}")
    print(f"regulator report: {regulator} (and {regulator.with_suffix('.json').name})")
    return 0


async def _before_launch(http: aiohttp.ClientSession, cid: str) -> None:
    """What an incident team checks before sending: the notice is complete for its laws, and
    the sending will beat their deadlines."""
    async with http.get(f"/v1/campaigns/{cid}/checklist") as resp:
        checklist = await resp.json()
    checks = checklist["checks"]
    verdict = "complete" if checklist["complete"] else f"{checklist['missing']} item(s) missing"
    print(f"checklist: {verdict} ({len(checks)} requirements)")
    groups: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
    for c in checks:
        groups.setdefault((c["version"], c["channel"], c["locale"]), []).append(c)
    for (version, channel, locale), group in groups.items():
        carried = sum(c["carried"] for c in group)
        missing = ", ".join(c["item"] for c in group if not c["carried"])
        print(
            f"  {version} {channel}/{locale}: {carried} of {len(group)} items"
            + (f", missing {missing}" if missing else "")
        )
    async with http.get(f"/v1/campaigns/{cid}/plan") as resp:
        plan = await resp.json()
    print("plan:")
    for d in plan["deadlines"]:
        left = d["seconds_left"]
        due = (
            f"due {d['due_at']} ({left / 3600:.1f} h left)"
            if left is not None
            else "no fixed hours"
        )
        scope = "" if d["applies"] else " [below its threshold]"
        print(f"  {d['version']} {d['duty']}: {due}{scope}")
    for f in plan["forecasts"]:
        finish = f"{f['seconds']:.0f} s" if f["seconds"] is not None else "no rate"
        meets = {True: "meets the deadline", False: "MISSES the deadline", None: ""}
        print(
            f"  {f['channel']}: {f['left']:,} to send at {f['rate']:,.0f}/s, "
            f"finishes in {finish}, {meets[f['meets_deadline']]}"
        )
