"""Personal data stays in Postgres, sealed: a campaign's addresses and numbers appear
neither in Redis, nor in any log line of the API or the workers (errors and retries
included), nor in clear in any table of the database."""

from __future__ import annotations

import logging
from collections.abc import Awaitable
from typing import Any, cast

import aiohttp
import asyncpg
import pytest

from notifier.settings import Settings
from notifier.tooling.stack import LocalStack
from tests import factories

pytestmark = pytest.mark.timeout(180)

N = 300


@pytest.fixture
def settings(settings: Settings) -> Settings:
    # Everything the processes can say, and fast timeouts so that error paths run too.
    return settings.replace(log_level="DEBUG", email_rate=300.0, sms_rate=300.0)


async def _redis_dump(url: str) -> str:
    """Every key and value in the Redis database, as text."""
    redis = factories.redis_client(url)
    parts: list[str] = []
    try:
        async for key in redis.scan_iter(count=500):
            parts.append(repr(key))
            kind = (await redis.type(key)).decode()
            if kind == "string":
                parts.append(repr(await redis.get(key)))
            # redis-py gives these commands one signature for its sync and asyncio clients
            # ("awaitable or not"); on the asyncio client they are awaitable.
            elif kind == "hash":
                parts.append(repr(await cast(Awaitable[Any], redis.hgetall(key))))
            elif kind == "list":
                parts.append(repr(await cast(Awaitable[Any], redis.lrange(key, 0, -1))))
            elif kind == "set":
                parts.append(repr(await cast(Awaitable[Any], redis.smembers(key))))
            elif kind == "zset":
                parts.append(repr(await redis.zrange(key, 0, -1, withscores=True)))
            elif kind == "stream":
                parts.append(repr(await redis.xrange(key)))
    finally:
        await redis.aclose()
    return "\n".join(parts)


def _found(text: str, needles: list[str]) -> list[str]:
    return [n for n in needles if n in text]


async def _database_dump(db: asyncpg.Connection) -> str:
    """Every row of every table, each column as text (bytea as hex, so also in hex form)."""
    tables = await db.fetch(
        "SELECT format('%I.%I', n.nspname, c.relname) AS name FROM pg_class c"
        " JOIN pg_namespace n ON n.oid = c.relnamespace"
        " WHERE c.relkind = 'r' AND n.nspname NOT IN ('pg_catalog', 'information_schema')"
    )
    parts = []
    for table in tables:
        for row in await db.fetch(f"SELECT t::text AS t FROM {table['name']} t"):
            parts.append(row["t"])
    return "\n".join(parts)


async def test_no_address_or_number_in_redis_the_logs_or_the_database(
    stack: LocalStack,
    api: aiohttp.ClientSession,
    db: asyncpg.Connection,
    settings: Settings,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    caplog.set_level(logging.DEBUG)
    assert stack.sandbox is not None
    cid = (await factories.create_campaign(api))["id"]
    rows = factories.recipients_csv(N).decode().splitlines()
    # Refused and failing addresses, so that the error paths log too.
    rows += [f"bad-{i},reject-{i}@example.com,+15005550001,en,B" for i in range(5)]
    rows += ["bad-row,not-an-address,+82 10 12,ko,X"]
    status, result = await factories.upload(api, cid, ("\n".join(rows) + "\n").encode())
    assert status == 200 and result["rejected"] == 1
    stack.sandbox.faults.update(
        {"smtp_tempfail_rate": 0.1, "sms_error_rate": 0.1, "smtp_disconnect_rate": 0.05}
    )
    for _ in range(2):
        await stack.start_worker_process()
    await factories.launch(api, cid)
    await factories.wait_for(api, cid, lambda c: c["counts"]["email"]["sent"] >= N // 2)
    during = await _redis_dump(settings.redis_url or "")
    await factories.wait_for(api, cid, factories.settled)
    after = await _redis_dump(settings.redis_url or "")

    emails = [f"user{i}@example.com" for i in range(N)] + [
        f"reject-{i}@example.com" for i in range(5)
    ]
    phones = [factories.phone(i) for i in range(N)] + ["+15005550001"]
    # Numbers also as they might be printed without the plus or in national form.
    needles = emails + phones + [p.lstrip("+") for p in phones] + ["not-an-address"]
    needles += ["0" + p.removeprefix("+82") for p in phones if p.startswith("+82")]

    assert during and "dispatch" in during  # the scan did see the queue
    assert _found(during, needles) == []
    assert _found(after, needles) == []
    out, err = capfd.readouterr()
    logs = caplog.text + out + err
    assert "dispatch" in logs  # the workers' own log lines were captured
    assert _found(logs, needles) == []

    stored = await _database_dump(db)
    assert "acct-17" in stored  # the scan did see the recipients
    hexed = [n.encode().hex() for n in needles]
    assert _found(stored, needles) == [] and _found(stored, hexed) == []
