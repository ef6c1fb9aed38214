"""Personal data stays in Postgres: a campaign's addresses and numbers appear neither in
Redis nor in any log line of the API or the workers, errors and retries included."""

from __future__ import annotations

import logging

import aiohttp
import pytest
import redis.asyncio as aioredis

from notifier.settings import Settings
from notifier.stack import LocalStack
from tests import factories

pytestmark = pytest.mark.timeout(180)

N = 300


@pytest.fixture
def settings(settings: Settings) -> Settings:
    # Everything the processes can say, and fast timeouts so that error paths run too.
    return settings.replace(log_level="DEBUG", email_rate=300.0, sms_rate=300.0)


async def _redis_dump(url: str) -> str:
    """Every key and value in the Redis database, as text."""
    redis = aioredis.from_url(url)
    parts: list[str] = []
    try:
        async for key in redis.scan_iter(count=500):
            parts.append(repr(key))
            kind = (await redis.type(key)).decode()
            if kind == "string":
                parts.append(repr(await redis.get(key)))
            elif kind == "hash":
                parts.append(repr(await redis.hgetall(key)))
            elif kind == "list":
                parts.append(repr(await redis.lrange(key, 0, -1)))
            elif kind == "set":
                parts.append(repr(await redis.smembers(key)))
            elif kind == "zset":
                parts.append(repr(await redis.zrange(key, 0, -1, withscores=True)))
            elif kind == "stream":
                parts.append(repr(await redis.xrange(key)))
    finally:
        await redis.aclose()
    return "\n".join(parts)


def _found(text: str, needles: list[str]) -> list[str]:
    return [n for n in needles if n in text]


async def test_no_address_or_number_in_redis_or_in_the_logs(
    stack: LocalStack,
    api: aiohttp.ClientSession,
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
