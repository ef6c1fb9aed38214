"""Generated test data: campaign bodies and recipient files. No real person's data."""

from __future__ import annotations

import asyncio
import copy
import os
import sys
import time
from typing import Any

import aiohttp
import asyncpg
import redis.asyncio as aioredis

from notifier.api.webhooks import email_signature

CAMPAIGN: dict[str, Any] = {
    "name": "Account data exposure, test",
    "incident_ref": "INC-TEST-1",
    "channels": ["email", "sms"],
    "default_locale": "ko",
    "variables": ["name"],
    "templates": {
        "email": {
            "ko": {
                "subject": "[중요] {{ name }}님 개인정보 노출 안내",
                "text": "{{ name }}님, 확인 코드 {{ verification_code }} / {{ verify_url }}",
            },
            "en": {
                "subject": "Notice for {{ name }}",
                "text": "Dear {{ name }}, code {{ verification_code }}",
                "html": "<p>Dear {{ name }}, code {{ verification_code }}</p>",
            },
        },
        "sms": {
            "ko": {"text": "[안내] 확인코드 {{ verification_code }}"},
            "en": {"text": "Notice: code {{ verification_code }}"},
        },
    },
}


def campaign(**changes: Any) -> dict[str, Any]:
    """A valid campaign body with some fields changed."""
    body = copy.deepcopy(CAMPAIGN)
    body.update(changes)
    return body


def phone(i: int) -> str:
    """A valid Korean mobile number, distinct for each i."""
    return f"+8210{10_000_000 + i:08d}"


def recipients_csv(n: int, *, start: int = 0, email: bool = True, sms: bool = True) -> bytes:
    """n valid recipients as CSV."""
    rows = ["external_id,email,phone,locale,name"]
    for i in range(start, start + n):
        rows.append(
            f"acct-{i},{f'user{i}@example.com' if email else ''},{phone(i) if sms else ''},"
            f"{'en' if i % 5 == 0 else 'ko'},Customer {i}"
        )
    return ("\n".join(rows) + "\n").encode()


async def create_campaign(api: aiohttp.ClientSession, **changes: Any) -> dict[str, Any]:
    async with api.post("/v1/campaigns", json=campaign(**changes)) as resp:
        body = await resp.json()
        assert resp.status == 201, body
        return body  # type: ignore[no-any-return]


async def upload(
    api: aiohttp.ClientSession, cid: str, data: bytes, content_type: str = "text/csv"
) -> tuple[int, dict[str, Any]]:
    async with api.post(
        f"/v1/campaigns/{cid}/recipients", data=data, headers={"Content-Type": content_type}
    ) as resp:
        return resp.status, await resp.json()


async def get_campaign(api: aiohttp.ClientSession, cid: str) -> dict[str, Any]:
    async with api.get(f"/v1/campaigns/{cid}") as resp:
        assert resp.status == 200
        return await resp.json()  # type: ignore[no-any-return]


async def wait_for(
    api: aiohttp.ClientSession, cid: str, done: Any, *, within: float = 120.0
) -> dict[str, Any]:
    """Poll the campaign until `done(campaign)` holds; fail with the last state seen."""
    deadline = time.monotonic() + within
    while True:
        state = await get_campaign(api, cid)
        if done(state):
            return state
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out; last state {state['state']} {state['counts']}")
        await asyncio.sleep(0.25)


def settled(state: dict[str, Any]) -> bool:
    """Completed, and no SMS still waiting for its receipt."""
    counts = state["counts"]
    return bool(state["state"] == "completed" and counts.get("sms", {}).get("sent", 0) == 0)


async def one_row(conn: asyncpg.Connection, query: str, *args: Any) -> asyncpg.Record:
    """The first row of a query that must return one; the test fails if there is none."""
    row = await conn.fetchrow(query, *args)
    assert row is not None, f"no row from {query!r}"
    return row


def redis_client(url: str) -> aioredis.Redis:
    """A Redis client for a URL that owns its connection pool (closed by `aclose()`)."""
    return aioredis.Redis.from_pool(aioredis.ConnectionPool.from_url(url))


async def run_cli(
    database_url: str, *args: str, env: dict[str, str] | None = None
) -> tuple[int, str, str]:
    """Run `notifier ARGS` as an operator would; returns (exit code, stdout, stderr)."""
    env = {
        **os.environ,
        **(env or {}),
        "NOTIFIER_DATABASE_URL": database_url,
        "NOTIFIER_LOG_LEVEL": "WARNING",
    }
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "notifier",
        *args,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await proc.communicate()
    return proc.returncode or 0, out.decode(), err.decode()


async def draft_with_recipients(api: aiohttp.ClientSession, n: int, **changes: Any) -> str:
    """A draft campaign holding n generated recipients; returns its id."""
    cid: str = (await create_campaign(api, **changes))["id"]
    status, result = await upload(api, cid, recipients_csv(n))
    assert status == 200 and result["accepted"] == n, result
    return cid


async def launch(api: aiohttp.ClientSession, cid: str) -> None:
    async with api.post(f"/v1/campaigns/{cid}/launch") as resp:
        assert resp.status == 202, await resp.text()


async def post_email_events(
    api_url: str, secret: str, body: bytes, *, at: int | None = None
) -> tuple[int, Any]:
    """Post an email relay's events as the relay does, signed with `secret` at time `at`
    (now by default); returns the status and the answer."""
    stamp = str(int(time.time()) if at is None else at)
    headers = {
        "Content-Type": "application/json",
        "X-Notifier-Timestamp": stamp,
        "X-Notifier-Signature": email_signature(secret, stamp, body),
    }
    async with (
        aiohttp.ClientSession() as session,
        session.post(api_url + "/v1/webhooks/email/events", data=body, headers=headers) as resp,
    ):
        return resp.status, await resp.json()
