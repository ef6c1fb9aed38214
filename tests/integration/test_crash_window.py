"""A worker that dies costs a moment of work: its batch is taken back in seconds, not at the
end of its lease, and only the deliveries it may have handed to the provider are flagged. A
worker that stalls but lives keeps its batch."""

from __future__ import annotations

import asyncio
import signal
import time
import uuid
from collections import Counter
from dataclasses import dataclass
from typing import Any

import aiohttp
import asyncpg
import pytest

from notifier.models import Channel
from notifier.sealing import Sealer
from notifier.settings import Settings
from notifier.tooling.stack import LocalStack
from tests import factories
from workers.reconciler import reconcile

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]

N = 600
DEAD_SECONDS = 2.0
LOST = "worker lost after handing it over: the provider may have it"


@pytest.fixture
def settings(settings: Settings) -> Settings:
    # One chain of two-second batches (200 at 100 a second) under a lease far longer than
    # the test: whatever is taken back early was taken back by the heartbeat.
    return settings.replace(
        email_rate=100.0,
        batch_size=200,
        chains_per_channel=1,
        lease_seconds=60,
        worker_dead_seconds=DEAD_SECONDS,
        reconcile_seconds=1,
    )


@dataclass(frozen=True, slots=True)
class Killed:
    """A worker killed mid-batch: when, its claim's mark, what the claim still held."""

    at: float
    claim: uuid.UUID
    mark: int
    held: frozenset[int]

    @property
    def handed(self) -> frozenset[int]:
        return frozenset(i for i in self.held if i <= self.mark)

    @property
    def not_handed(self) -> frozenset[int]:
        return self.held - self.handed


async def _mid_batch(db: asyncpg.Connection, cid: str, worker: uuid.UUID | None = None) -> None:
    """Wait until a batch (of `worker`, if named) is partly handed over."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        found = await db.fetchval(
            "SELECT count(*) FROM claims c WHERE c.campaign_id = $1"
            " AND ($2::uuid IS NULL OR c.worker_id = $2) AND c.handed_through IS NOT NULL"
            " AND EXISTS (SELECT 1 FROM deliveries d WHERE d.campaign_id = c.campaign_id"
            "             AND d.claim = c.claim AND d.id > c.handed_through + 20)",
            uuid.UUID(cid),
            worker,
        )
        if found:
            return
        await asyncio.sleep(0.02)
    raise AssertionError("no batch was seen half-way")


async def _kill_mid_batch(
    stack: LocalStack, api: aiohttp.ClientSession, db: asyncpg.Connection, cid: str
) -> Killed:
    """Launch with one worker process and kill it in the middle of a batch."""
    victim = await stack.start_worker_process()
    await factories.launch(api, cid)
    await _mid_batch(db, cid)
    victim.send_signal(signal.SIGKILL)
    await victim.wait()
    at = time.monotonic()
    # The dead cannot move their mark: read after the kill, it is the one they left.
    claim = await factories.one_row(
        db, "SELECT claim, handed_through FROM claims WHERE campaign_id = $1", uuid.UUID(cid)
    )
    held = await db.fetch(
        "SELECT id FROM deliveries WHERE campaign_id = $1 AND claim = $2 AND status = 'sending'",
        uuid.UUID(cid),
        claim["claim"],
    )
    return Killed(at, claim["claim"], claim["handed_through"], frozenset(r["id"] for r in held))


async def _reclaimed_after(db: asyncpg.Connection, killed: Killed) -> float:
    """Seconds from the kill until the dead worker's claim was taken back."""
    while await db.fetchval("SELECT count(*) FROM claims WHERE claim = $1", killed.claim):
        assert time.monotonic() - killed.at < 30, "the dead worker's batch was never taken back"
        await asyncio.sleep(0.05)
    return time.monotonic() - killed.at


async def _received(stack: LocalStack, db: asyncpg.Connection, cid: str) -> dict[int, int]:
    """How many emails the sandbox got for each delivery."""
    assert stack.sandbox is not None
    got = Counter(stack.sandbox.inbox.recipients(Channel.EMAIL))
    sealer = Sealer.from_settings(stack.settings)
    rows = await db.fetch(
        "SELECT d.id, r.external_id, r.contact_sealed FROM deliveries d"
        " JOIN recipients r ON r.campaign_id = d.campaign_id AND r.id = d.recipient_id"
        " WHERE d.campaign_id = $1",
        uuid.UUID(cid),
    )
    emails = {
        r["id"]: sealer.open(uuid.UUID(cid), r["external_id"], r["contact_sealed"])[0] for r in rows
    }
    return {i: got[email] if email else 0 for i, email in emails.items()}


async def _deliveries(db: asyncpg.Connection, cid: str) -> dict[int, asyncpg.Record]:
    rows = await db.fetch(
        "SELECT id, status, attempts, possible_duplicate, provider_message_id"
        " FROM deliveries WHERE campaign_id = $1",
        uuid.UUID(cid),
    )
    return {r["id"]: r for r in rows}


async def test_a_killed_worker_is_noticed_in_seconds_and_only_what_it_handed_over_is_flagged(
    stack: LocalStack, api: aiohttp.ClientSession, db: asyncpg.Connection
) -> None:
    cid = await factories.draft_with_recipients(api, N, channels=["email"])
    killed = await _kill_mid_batch(stack, api, db, cid)
    assert killed.handed and killed.not_handed
    await stack.start_worker_process()
    # A new worker starts (a second or two), beats steadily for DEAD_SECONDS before it
    # judges anyone, then reclaims at its next tick: seconds, where the lease is a minute.
    assert await _reclaimed_after(db, killed) < 15
    await factories.wait_for(api, cid, factories.settled, within=60)

    deliveries = await _deliveries(db, cid)
    received = await _received(stack, db, cid)
    assert all(d["status"] == "sent" for d in deliveries.values())
    assert all(received[i] >= 1 for i in deliveries)  # nobody lost
    flagged = {i for i, d in deliveries.items() if d["possible_duplicate"]}
    assert flagged == killed.handed  # exactly those whose fate was unknown
    twice = {i for i, n in received.items() if n > 1}
    assert twice <= killed.handed
    for i in killed.not_handed:  # provably never handed over: sent again, once, unflagged
        assert received[i] == 1 and deliveries[i]["attempts"] == 1
    events = await db.fetchval(
        "SELECT count(*) FROM delivery_events WHERE campaign_id = $1 AND detail = $2",
        uuid.UUID(cid),
        LOST,
    )
    assert events == len(killed.handed)


async def test_on_a_cancelled_campaign_what_may_have_gone_is_recorded_sent_and_flagged(
    stack: LocalStack, api: aiohttp.ClientSession, db: asyncpg.Connection
) -> None:
    cid = await factories.draft_with_recipients(api, N, channels=["email"])
    killed = await _kill_mid_batch(stack, api, db, cid)
    async with api.post(f"/v1/campaigns/{cid}/cancel") as resp:
        assert resp.status == 202
    await stack.start_worker_process()
    assert await _reclaimed_after(db, killed) < 15

    def quiet(campaign: dict[str, Any]) -> bool:
        email: dict[str, int] = campaign["counts"]["email"]
        return email["pending"] == 0 and email["sending"] == 0

    await factories.wait_for(api, cid, quiet, within=30)
    deliveries = await _deliveries(db, cid)
    received = await _received(stack, db, cid)
    for i in killed.handed:  # may have gone: recorded as what it may be
        d = deliveries[i]
        assert d["status"] == "sent" and d["possible_duplicate"]
        assert d["provider_message_id"] is None and received[i] <= 1
    for i in killed.not_handed:  # never handed over: cancelled, never sent
        assert deliveries[i]["status"] == "cancelled" and not deliveries[i]["possible_duplicate"]
        assert received[i] == 0
    assert sum(d["status"] == "cancelled" for d in deliveries.values()) > 0


async def test_a_worker_that_stalls_but_lives_keeps_its_batch(
    stack: LocalStack, api: aiohttp.ClientSession, db: asyncpg.Connection
) -> None:
    # A judge: a worker process whose heartbeat is steady before anything is claimed.
    await stack.start_worker_process()
    inline = await stack.start_inline_worker()
    cid = await factories.draft_with_recipients(api, N, channels=["email"])
    await asyncio.sleep(DEAD_SECONDS + 2.0)
    await factories.launch(api, cid)
    me = inline.ctx["deps"].heartbeat.worker_id
    await _mid_batch(db, cid, me)
    # This event loop (the inline worker's, mid-batch) stops dead for three dead-after
    # periods, as a long garbage collection or a blocking call would stop it.
    time.sleep(3 * DEAD_SECONDS)  # noqa: ASYNC251 - the stall is the point
    await factories.wait_for(api, cid, factories.settled, within=60)

    deliveries = await _deliveries(db, cid)
    received = await _received(stack, db, cid)
    assert all(d["status"] == "sent" for d in deliveries.values())
    assert not any(d["possible_duplicate"] for d in deliveries.values())
    assert all(n == 1 for n in received.values())
    assert not await db.fetchval(
        "SELECT count(*) FROM delivery_events WHERE campaign_id = $1 AND detail = $2",
        uuid.UUID(cid),
        LOST,
    )


async def test_claims_and_workers_left_behind_are_forgotten(
    stack: LocalStack, db: asyncpg.Connection
) -> None:
    inline = await stack.start_inline_worker()
    for _ in range(200):  # until its startup has run
        if "deps" in inline.ctx:
            break
        await asyncio.sleep(0.05)
    gone, alive = uuid.uuid4(), inline.ctx["deps"].heartbeat.worker_id
    # A worker that died after writing its last slice, before it dropped its claim.
    await db.execute(
        "INSERT INTO workers (id, host, pid, beat_at) VALUES ($1, 'h', 1, now() - interval '2h')",
        gone,
    )
    await db.execute(
        "INSERT INTO claims (claim, campaign_id, channel, worker_id, lease_until)"
        " VALUES ($1, $2, 'email', $3, now() - interval '1 minute')",
        uuid.uuid4(),
        uuid.uuid4(),
        gone,
    )
    await reconcile({"deps": inline.ctx["deps"]})
    assert await db.fetchval("SELECT count(*) FROM claims") == 0
    assert [r["id"] for r in await db.fetch("SELECT id FROM workers")] == [alive]
