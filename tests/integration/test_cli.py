"""The operator's commands, run as operators run them."""

from __future__ import annotations

import asyncio
import os
import sys

import aiohttp
import asyncpg

from notifier.stack import LocalStack
from tests import factories


async def test_migrate_twice_then_a_key_from_the_cli_works_on_the_api(
    stack: LocalStack, db: asyncpg.Connection, database_url: str
) -> None:
    code, out, _ = await factories.run_cli(database_url, "migrate")
    assert code == 0 and "applied 0 migration" in out
    code, out, err = await factories.run_cli(
        database_url,
        "keys",
        "create",
        "--name",
        "ops",
        "--scopes",
        "campaigns:read",
        "--expires-in-days",
        "7",
    )
    assert code == 0, err
    secret = out.strip()
    assert secret.startswith("nk_") and secret not in err
    assert await db.fetchval("SELECT count(*) FROM api_keys WHERE secret_hash IS NOT NULL") == 1
    headers = {"Authorization": f"Bearer {secret}"}
    async with aiohttp.ClientSession(stack.api_url, headers=headers) as http:
        async with http.get("/v1/campaigns") as resp:
            assert resp.status == 200
        async with http.post("/v1/campaigns", json={}) as resp:
            assert resp.status == 403


async def test_a_key_longer_than_90_days_is_refused(
    database_url: str, db: asyncpg.Connection
) -> None:
    code, _, err = await factories.run_cli(
        database_url, "keys", "create", "--name", "x", "--expires-in-days", "365"
    )
    assert code != 0
    assert "expires_in_days" in err


async def test_missing_database_setting_is_a_clear_error() -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "notifier",
        "migrate",
        env={k: v for k, v in os.environ.items() if not k.startswith("NOTIFIER_")},
        stderr=asyncio.subprocess.PIPE,
    )
    _, err = await proc.communicate()
    assert proc.returncode == 2
    assert b"NOTIFIER_DATABASE_URL" in err
