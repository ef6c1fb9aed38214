"""Restarts and shutdowns mid-campaign: Postgres restarted, SIGTERM to a worker and to the
API, a launch retried after its connection dropped."""

from __future__ import annotations

import asyncio
import signal
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import aiohttp
import asyncpg
import pytest

from notifier import keys
from notifier.db import migrate
from notifier.models import SCOPES
from notifier.settings import Settings
from notifier.tooling.embedded import free_port
from notifier.tooling.stack import LocalStack, settings_env
from tests import factories
from tests.faults.conftest import RECIPIENTS, finish, launched, poll, sent

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

Restart = Callable[[], Awaitable[None]]


@pytest.fixture
async def own_postgres(tmp_path: Path) -> AsyncIterator[tuple[str, Restart]]:
    """A Postgres server of this test's own (the shared one is not ours to restart),
    migrated, and a function that restarts it as an operator would (pg_ctl restart)."""
    import pgserver
    from pgserver.postgres_server import get_server

    # pgserver makes one function per Postgres program at import time: no static type.
    pg_ctl: Callable[..., str] = pgserver.pg_ctl  # type: ignore[attr-defined]
    server = await asyncio.to_thread(get_server, str(tmp_path / "postgres"), cleanup_mode="stop")
    url = server.get_uri()
    await migrate(url)

    async def restart() -> None:
        await asyncio.to_thread(
            pg_ctl,
            ["-w", "-m", "fast", "-l", str(server.log), "restart"],
            pgdata=server.pgdata,
            user=server.system_user,
            timeout=60,
        )

    yield url, restart
    # Stopped by its data directory: after a restart the server's own handle names the
    # postmaster that is gone, and its cleanup would leave the new one running.
    await asyncio.to_thread(
        pg_ctl,
        ["-w", "-m", "fast", "stop"],
        pgdata=server.pgdata,
        user=server.system_user,
        timeout=60,
    )
    await asyncio.to_thread(server.cleanup)


async def test_postgres_restarted_twice_mid_campaign(
    own_postgres: tuple[str, Restart], settings: Settings
) -> None:
    url, restart = own_postgres
    redis = factories.redis_client(settings.redis_url or "")
    await redis.flushdb()
    await redis.aclose()
    stack = LocalStack(settings.replace(database_url=url))
    await stack.start()
    try:
        conn = await asyncpg.connect(url)
        try:
            key = await keys.create(conn, name="faults", scopes=sorted(SCOPES), expires_in_days=1)
        finally:
            await conn.close()
        async with aiohttp.ClientSession(
            stack.api_url, headers={"Authorization": f"Bearer {key.secret}"}
        ) as api:
            for _ in range(2):
                await stack.start_worker_process()
            cid, started = await launched(api, RECIPIENTS)
            for fraction in (0.25, 0.6):
                await poll(api, cid, sent("email", int(RECIPIENTS * fraction)))
                await restart()
            db = await asyncpg.connect(url)
            try:
                outcome = await finish(
                    stack, api, db, [cid], scenario="Postgres restarted, twice", started=started
                )
            finally:
                await db.close()
            assert outcome.deliveries == 2 * RECIPIENTS
    finally:
        await stack.stop()


async def test_sigterm_to_a_worker_finishes_its_batch(
    stack: LocalStack,
    api: aiohttp.ClientSession,
    db: asyncpg.Connection,
    fleet: list[asyncio.subprocess.Process],
) -> None:
    cid, started = await launched(api, RECIPIENTS, emails_sent=RECIPIENTS // 4)
    leaving = fleet.pop(0)
    leaving.terminate()
    assert await asyncio.wait_for(leaving.wait(), 40) == 0
    fleet.append(await stack.start_worker_process())
    outcome = await finish(stack, api, db, [cid], scenario="SIGTERM to a worker", started=started)
    assert outcome.flagged == 0  # a graceful stop leaves nothing uncertain


async def test_sigterm_to_the_api_finishes_the_upload_in_flight(
    db: asyncpg.Connection, settings: Settings, admin_key: str
) -> None:
    port = free_port()
    env = settings_env(settings.replace(api_port=port, api_host="127.0.0.1"))
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "notifier", "api", env=env, stdin=asyncio.subprocess.DEVNULL
    )
    base = f"http://127.0.0.1:{port}"
    rows = 20_000
    try:
        async with aiohttp.ClientSession(
            base, headers={"Authorization": f"Bearer {admin_key}"}
        ) as api:
            await _until_healthy(api)
            cid = (await factories.create_campaign(api))["id"]
            data = factories.recipients_csv(rows)

            async def slowly() -> AsyncIterator[bytes]:
                step = len(data) // 20 + 1
                for i in range(0, len(data), step):
                    yield data[i : i + step]
                    await asyncio.sleep(0.1)

            async def upload() -> tuple[int, dict[str, object]]:
                async with api.post(
                    f"/v1/campaigns/{cid}/recipients",
                    data=slowly(),
                    headers={"Content-Type": "text/csv"},
                ) as resp:
                    return resp.status, await resp.json()

            in_flight = asyncio.create_task(upload())
            await asyncio.sleep(0.5)
            proc.send_signal(signal.SIGTERM)
            status, result = await in_flight
            assert status == 200 and result["accepted"] == rows, result
            assert await asyncio.wait_for(proc.wait(), 40) == 0
            with pytest.raises(aiohttp.ClientConnectionError):
                async with api.get("/healthz"):
                    pass
        stored = await db.fetchval("SELECT recipients FROM campaigns WHERE id = $1", uuid.UUID(cid))
        assert stored == rows
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def test_a_launch_retried_after_its_connection_dropped_launches_once(
    stack: LocalStack,
    api: aiohttp.ClientSession,
    db: asyncpg.Connection,
    admin_key: str,
    fleet: list[asyncio.subprocess.Process],
) -> None:
    n = 500
    cid = await factories.draft_with_recipients(api, n)
    key = f"launch-{uuid.uuid4()}"
    host, port = stack.api_url.removeprefix("http://").split(":")
    started = time.monotonic()
    # The client sends the launch and is gone before the answer.
    _, writer = await asyncio.open_connection(host, int(port))
    writer.write(
        (
            f"POST /v1/campaigns/{cid}/launch HTTP/1.1\r\nHost: {host}\r\n"
            f"Authorization: Bearer {admin_key}\r\nIdempotency-Key: {key}\r\n"
            "Content-Length: 0\r\n\r\n"
        ).encode()
    )
    await writer.drain()
    writer.close()
    # It retries with the same key until it gets the answer it missed.
    for _ in range(100):
        async with api.post(f"/v1/campaigns/{cid}/launch", headers={"Idempotency-Key": key}) as r:
            if r.status != 409 or "still running" not in (await r.text()):
                break
        await asyncio.sleep(0.05)
    # The answer it missed, replayed: the launch ran once, for the first request.
    assert r.status == 202
    assert r.headers.get("Idempotent-Replayed") == "true"
    async with api.post(f"/v1/campaigns/{cid}/launch") as again:
        assert again.status == 409  # a new launch is refused: it is already sending
    outcome = await finish(
        stack, api, db, [cid], scenario="launch retried after a dropped connection", started=started
    )
    assert outcome.deliveries == 2 * n and outcome.duplicates == 0


async def _until_healthy(api: aiohttp.ClientSession) -> None:
    for _ in range(200):
        try:
            async with api.get("/healthz") as resp:
                if resp.status == 200:
                    return
        except aiohttp.ClientConnectionError:
            pass
        await asyncio.sleep(0.05)
    raise AssertionError("the API did not start")
