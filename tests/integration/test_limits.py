"""Hostile clients: per-key request limits, and bodies too big to read."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import aiohttp
import asyncpg
import pytest

from notifier import keys
from notifier.settings import Settings
from notifier.tooling.stack import LocalStack
from tests import factories


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.replace(key_requests_per_minute=5, upload_idle_seconds=1.0)


async def test_a_key_over_its_rate_gets_429_with_retry_after_and_others_do_not(
    stack: LocalStack, api: aiohttp.ClientSession, db: asyncpg.Connection
) -> None:
    statuses = []
    for _ in range(7):
        async with api.get("/v1/campaigns") as resp:
            statuses.append(resp.status)
            if resp.status == 429:
                retry_after = int(resp.headers["Retry-After"])
                problem = await resp.json()
    # A new minute may begin during the loop; within one minute the sixth call is refused.
    assert statuses.count(429) >= 1 and statuses[:5] == [200] * 5
    assert 1 <= retry_after <= 60 and "5 requests a minute" in problem["detail"]
    other = await keys.create(db, name="other", scopes=["campaigns:read"], expires_in_days=1)
    async with (
        aiohttp.ClientSession(
            stack.api_url, headers={"Authorization": f"Bearer {other.secret}"}
        ) as session,
        session.get("/v1/campaigns") as resp,
    ):
        assert resp.status == 200
    async with api.get("/healthz") as resp:  # public routes are not counted per key
        assert resp.status == 200


async def test_a_json_body_over_the_limit_is_413(stack: LocalStack, admin_key: str) -> None:
    big = b'{"name": "' + b"x" * (2 * 1024 * 1024) + b'"}'
    async with (
        aiohttp.ClientSession(
            stack.api_url, headers={"Authorization": f"Bearer {admin_key}"}
        ) as session,
        session.post(
            "/v1/campaigns", data=big, headers={"Content-Type": "application/json"}
        ) as resp,
    ):
        assert resp.status == 413
        assert resp.content_type == "application/problem+json"


async def test_the_docs_page_sends_security_headers(stack: LocalStack) -> None:
    async with aiohttp.ClientSession(stack.api_url) as session, session.get("/docs") as resp:
        assert resp.status == 200
        assert "default-src 'none'" in resp.headers["Content-Security-Policy"]
        assert resp.headers["X-Content-Type-Options"] == "nosniff"
        assert resp.headers["X-Frame-Options"] == "DENY"


async def test_a_stalled_upload_is_cut_off_with_408_and_imports_nothing(
    stack: LocalStack, api: aiohttp.ClientSession
) -> None:
    cid = (await factories.create_campaign(api))["id"]

    async def stalls() -> AsyncIterator[bytes]:
        yield b"external_id,email,phone,locale,name\nacct-1,a1@example.com,,ko,A\n"
        await asyncio.sleep(5)  # longer than the limit set for this module
        yield b"acct-2,a2@example.com,,ko,B\n"

    async with api.post(
        f"/v1/campaigns/{cid}/recipients", data=stalls(), headers={"Content-Type": "text/csv"}
    ) as resp:
        assert resp.status == 408
        assert "nothing of the upload arrived" in (await resp.json())["detail"]
    assert (await factories.get_campaign(api, cid))["recipients"] == 0
