"""`notifier demo`: a breach notice to generated accounts, end to end, on this machine."""

from __future__ import annotations

import asyncio
import logging
import random
import time
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

DEMO_CAMPAIGN: dict[str, Any] = {
    "name": "Account data exposure, November 2025",
    "incident_ref": "INC-2025-1129",
    "channels": ["email", "sms"],
    "default_locale": "ko",
    "variables": ["name"],
    "templates": {
        "email": {
            "ko": {
                "subject": "[중요] 개인정보 노출 안내",
                "text": "{{ name }}님, 고객님의 계정 정보가 노출되었습니다.\n"
                "이 안내가 진짜인지 확인하세요: {{ verify_url }}\n"
                "확인 코드: {{ verification_code }}",
            },
            "en": {
                "subject": "Important: your account data was exposed",
                "text": "Dear {{ name }}, data of your account was exposed.\n"
                "Check this notice is genuine: {{ verify_url }}\n"
                "Verification code: {{ verification_code }}",
                "html": "<p>Dear {{ name }}, data of your account was exposed.</p>"
                "<p>Check this notice is genuine: {{ verify_url }}</p>",
            },
        },
        "sms": {
            "ko": {"text": "[안내] 개인정보 노출. 확인코드 {{ verification_code }}"},
            "en": {"text": "Notice: your account data was exposed. Code {{ verification_code }}"},
        },
    },
}


# Rows a real export would contain too; the upload reports each by line and imports the rest.
BAD_ROWS = (
    ",missing-id@example.com,+821020000000,ko,No id",
    "acct-bad-email,not-an-address,,ko,Bad email",
    "acct-bad-phone,,+82 10 123,ko,Bad phone",
)


def generate_accounts(n: int, seed: int = 2025) -> bytes:
    """A CSV of generated accounts (example.com addresses, sequential numbers) and bad rows."""
    rng = random.Random(seed)
    lines = ["external_id,email,phone,locale,name"]
    for i in range(n):
        locale = "ko" if rng.random() < 0.8 else "en"
        phone = f"+8210{20_000_000 + i:08d}" if locale == "ko" else f"+1202555{i % 10_000:04d}"
        lines.append(f"acct-{i:07d},user{i}@example.com,{phone},{locale},Customer {i}")
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
        async with http.post("/v1/campaigns", json=DEMO_CAMPAIGN) as resp:
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
    total = sum(sum(v for s, v in per.items()) for per in c.values())
    print(
        f"done: {total} deliveries in {elapsed:.1f}s of sending "
        f"({total / elapsed:.0f} deliveries/s), {time.monotonic() - started:.1f}s in all"
    )
    print(f"final counts: {c}")
    print(f"evidence report: {report}")
    return 0
