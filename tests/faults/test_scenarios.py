"""Each fault a campaign must survive, on a few thousand recipients, against real processes.

Every scenario ends in `finish`: the campaigns settle, the sandbox's log is reconciled with
Postgres, and nobody may be lost nor told twice without a flag.
"""

from __future__ import annotations

import asyncio
import random
import signal
import time
import uuid

import aiohttp
import asyncpg
import pytest

from notifier.models import Channel
from notifier.settings import Settings
from notifier.tooling.stack import LocalStack
from tests import factories
from tests.faults.conftest import RECIPIENTS, finish, launched, poll, sent

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]


async def test_workers_killed_again_and_again(
    stack: LocalStack,
    api: aiohttp.ClientSession,
    db: asyncpg.Connection,
    fleet: list[asyncio.subprocess.Process],
) -> None:
    cid, started = await launched(api, RECIPIENTS)
    rnd = random.Random(20251129)
    for fraction in (0.15, 0.35, 0.55):
        await poll(api, cid, sent("email", int(RECIPIENTS * fraction)))
        await asyncio.sleep(rnd.uniform(0.0, 0.3))  # a random moment in the batch
        victim = fleet.pop(rnd.randrange(len(fleet)))
        victim.send_signal(signal.SIGKILL)
        await victim.wait()
        fleet.append(await stack.start_worker_process())
    outcome = await finish(
        stack, api, db, [cid], scenario="worker kill -9, three times", started=started
    )
    assert outcome.deliveries == 2 * RECIPIENTS


async def test_redis_emptied_twice(
    stack: LocalStack,
    api: aiohttp.ClientSession,
    db: asyncpg.Connection,
    settings: Settings,
    fleet: list[asyncio.subprocess.Process],
) -> None:
    cid, started = await launched(api, RECIPIENTS)
    redis = factories.redis_client(settings.redis_url or "")
    try:
        for fraction in (0.2, 0.5):
            await poll(api, cid, sent("email", int(RECIPIENTS * fraction)))
            await redis.flushdb()
    finally:
        await redis.aclose()
    await finish(stack, api, db, [cid], scenario="Redis flushed, twice", started=started)


async def test_provider_faults_retry_throttle_and_fail_with_reasons(
    stack: LocalStack,
    api: aiohttp.ClientSession,
    db: asyncpg.Connection,
    fleet: list[asyncio.subprocess.Process],
) -> None:
    assert stack.sandbox is not None
    cid = (await factories.create_campaign(api))["id"]
    rows = factories.recipients_csv(RECIPIENTS).decode().splitlines()
    # Permanent refusals on each channel, and an address that is refused every time.
    rows += [f"perm-{i},reject-{i}@example.com,,en,P" for i in range(10)]
    rows += [f"temp-{i},tempfail-{i}@example.com,,en,T" for i in range(5)]
    magic = {"+15005550001": "21211", "+15005550004": "21610", "+15005550009": "21614"}
    rows += [f"sms-{code},,{number},en,S" for number, code in magic.items()]
    status, result = await factories.upload(api, cid, ("\n".join(rows) + "\n").encode())
    assert status == 200 and result["rejected"] == 0, result
    stack.sandbox.faults.update(
        {
            "smtp_tempfail_rate": 0.05,
            "smtp_disconnect_rate": 0.02,
            "smtp_stall_rate": 0.01,
            "smtp_hang_rate": 0.01,
            "sms_error_rate": 0.05,
            "sms_throttle_rate": 0.01,
            "sms_retry_after": 0.2,
            "sms_disconnect_rate": 0.02,
            "sms_hang_rate": 0.01,
            "hang_seconds": 3.0,
        }
    )
    started = time.monotonic()
    await factories.launch(api, cid)
    outcome = await finish(stack, api, db, [cid], scenario="provider faults", started=started)
    assert outcome.retries > 0
    assert outcome.flagged > 0  # the hung answers left deliveries uncertain

    failed = await db.fetch(
        "SELECT r.external_id, d.channel, d.attempts, d.last_error FROM deliveries d"
        " JOIN recipients r ON r.campaign_id = d.campaign_id AND r.id = d.recipient_id"
        " WHERE d.campaign_id = $1 AND d.status = 'failed'",
        uuid.UUID(cid),
    )
    by_id = {(r["external_id"], r["channel"]): r for r in failed}
    # Only the refused addresses failed: throttling and transient faults failed nobody.
    expected = {(f"perm-{i}", "email") for i in range(10)}
    expected |= {(f"temp-{i}", "email") for i in range(5)}
    expected |= {(f"sms-{code}", "sms") for code in magic.values()}
    assert set(by_id) == expected
    for i in range(10):
        row = by_id[(f"perm-{i}", "email")]
        assert row["attempts"] == 1 and "550" in row["last_error"]
    for i in range(5):
        row = by_id[(f"temp-{i}", "email")]
        assert row["attempts"] > 1 and "451" in row["last_error"]
    for code in magic.values():
        row = by_id[(f"sms-{code}", "sms")]
        assert row["attempts"] == 1 and code in row["last_error"]


async def test_callbacks_duplicated_reordered_and_lost(
    stack: LocalStack,
    api: aiohttp.ClientSession,
    db: asyncpg.Connection,
    fleet: list[asyncio.subprocess.Process],
) -> None:
    assert stack.sandbox is not None
    undelivered = {factories.phone(i) for i in range(0, RECIPIENTS, 100)}
    stack.sandbox.faults.update(
        {
            "callback_duplicate_rate": 0.2,
            "callback_reorder_rate": 0.2,
            "callback_loss_rate": 0.05,
            "callback_delay": 0.3,
            "sms_undelivered": sorted(undelivered),
        }
    )
    cid, started = await launched(api, RECIPIENTS)
    await finish(
        stack, api, db, [cid], scenario="callbacks replayed, reordered, lost", started=started
    )
    final = await factories.get_campaign(api, cid)
    assert final["counts"]["sms"]["failed"] == len(undelivered)
    assert final["counts"]["sms"]["delivered"] == RECIPIENTS - len(undelivered)
    # The ledger never moves a delivery on after its final status.
    moved_after_final = await db.fetchval(
        """
        SELECT count(*) FROM (
            SELECT delivery_id, status,
                   bool_or(status IN ('delivered', 'failed'))
                       OVER (PARTITION BY delivery_id ORDER BY at, ctid
                             ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS after_final
            FROM delivery_events WHERE campaign_id = $1
        ) AS e WHERE after_final
        """,
        uuid.UUID(cid),
    )
    assert moved_after_final == 0


async def test_email_failed_for_good_falls_back_to_sms(
    stack: LocalStack,
    api: aiohttp.ClientSession,
    db: asyncpg.Connection,
    fleet: list[asyncio.subprocess.Process],
) -> None:
    cid = (
        await factories.create_campaign(api, channels=["email"], fallback={"email_failed": "sms"})
    )["id"]
    rows = factories.recipients_csv(RECIPIENTS).decode().splitlines()
    # Every 20th address is refused for good: those people must get the SMS instead.
    refused = {i for i in range(RECIPIENTS) if i % 20 == 0}
    body = [rows[0]] + [
        row.replace(f"user{i}@", f"reject-user{i}@") if i in refused else row
        for i, row in enumerate(rows[1:])
    ]
    status, result = await factories.upload(api, cid, ("\n".join(body) + "\n").encode())
    assert status == 200 and result["accepted"] == RECIPIENTS, result
    started = time.monotonic()
    await factories.launch(api, cid)
    outcome = await finish(stack, api, db, [cid], scenario="fallback email → SMS", started=started)
    assert outcome.deliveries == RECIPIENTS + len(refused)
    assert stack.sandbox is not None
    assert sorted(stack.sandbox.inbox.recipients(Channel.SMS)) == sorted(
        factories.phone(i) for i in refused
    )
