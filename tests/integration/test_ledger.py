"""The ledger as evidence: append-only, hash-chained per campaign, verifiable from outside."""

from __future__ import annotations

import csv
import io
import uuid

import aiohttp
import asyncpg
import pytest

from notifier import ledger
from notifier.settings import Settings
from notifier.stack import LocalStack
from tests import factories

pytestmark = pytest.mark.timeout(180)

N = 60


async def _sent_campaign(stack: LocalStack, api: aiohttp.ClientSession) -> uuid.UUID:
    cid = await factories.draft_with_recipients(api, N)
    await stack.start_inline_worker()
    await stack.start_worker_process()  # two writers chaining the same campaign
    await factories.launch(api, cid)
    await factories.wait_for(api, cid, factories.settled)
    return uuid.UUID(cid)


async def _tamper(db: asyncpg.Connection, statement: str, *args: object) -> None:
    """What someone with the database owner's rights could do: switch the guard off."""
    await db.execute("ALTER TABLE delivery_events DISABLE TRIGGER delivery_events_append_only")
    try:
        await db.execute(statement, *args)
    finally:
        await db.execute("ALTER TABLE delivery_events ENABLE TRIGGER delivery_events_append_only")


async def test_an_untouched_ledger_verifies_and_the_report_carries_each_link(
    stack: LocalStack, api: aiohttp.ClientSession, db: asyncpg.Connection, settings: Settings
) -> None:
    cid = await _sent_campaign(stack, api)
    events = await db.fetchval("SELECT count(*) FROM delivery_events WHERE campaign_id = $1", cid)
    assert events >= 2 * N  # email sent and SMS delivered, at least

    verdict = await ledger.verify(db, cid)
    assert verdict.ok, verdict.describe()
    assert verdict.events == events
    head = await db.fetchrow("SELECT seq, hash FROM ledger_heads WHERE campaign_id = $1", cid)
    assert (head["seq"], head["hash"]) == (events, verdict.head)

    code, out, _ = await factories.run_cli(
        settings.database_url or "", "ledger", "verify", str(cid)
    )
    assert code == 0 and "chain intact" in out and verdict.head.hex() in out

    async with api.get(f"/v1/campaigns/{cid}/report") as resp:
        rows = list(csv.DictReader(io.StringIO(await resp.text())))
    assert len(rows) == 2 * N
    latest = {
        r["seq"]: r["hash"].hex()
        for r in await db.fetch("SELECT seq, hash FROM delivery_events WHERE campaign_id = $1", cid)
    }
    for row in rows:
        assert latest[int(row["ledger_seq"])] == row["ledger_hash"]


async def test_a_changed_event_is_found_by_its_position(
    stack: LocalStack, api: aiohttp.ClientSession, db: asyncpg.Connection, settings: Settings
) -> None:
    cid = await _sent_campaign(stack, api)
    await _tamper(
        db,
        "UPDATE delivery_events SET status = 'delivered' WHERE campaign_id = $1 AND seq = 17",
        cid,
    )
    verdict = await ledger.verify(db, cid)
    assert verdict.broken_at == 17 and "does not match its hash" in (verdict.reason or "")
    code, out, _ = await factories.run_cli(
        settings.database_url or "", "ledger", "verify", str(cid)
    )
    assert code == 1 and "broken at event 17" in out


async def test_a_removed_event_and_a_cut_tail_are_found(
    stack: LocalStack, api: aiohttp.ClientSession, db: asyncpg.Connection
) -> None:
    cid = await _sent_campaign(stack, api)
    last = await db.fetchval("SELECT seq FROM ledger_heads WHERE campaign_id = $1", cid)
    await _tamper(db, "DELETE FROM delivery_events WHERE campaign_id = $1 AND seq = $2", cid, last)
    verdict = await ledger.verify(db, cid)
    assert verdict.broken_at == last and "missing" in (verdict.reason or "")

    await _tamper(db, "DELETE FROM delivery_events WHERE campaign_id = $1 AND seq = 5", cid)
    verdict = await ledger.verify(db, cid)
    assert verdict.broken_at == 6 and "event 5 is missing" in (verdict.reason or "")


async def test_the_ledger_and_its_head_refuse_changes(
    stack: LocalStack, api: aiohttp.ClientSession, db: asyncpg.Connection
) -> None:
    cid = await _sent_campaign(stack, api)
    for statement in (
        "UPDATE delivery_events SET detail = 'x' WHERE campaign_id = $1",
        "DELETE FROM delivery_events WHERE campaign_id = $1",
        "UPDATE ledger_heads SET seq = 1 WHERE campaign_id = $1",
        "DELETE FROM ledger_heads WHERE campaign_id = $1",
    ):
        with pytest.raises(asyncpg.RaiseError):
            await db.execute(statement, cid)
    with pytest.raises(asyncpg.RaiseError):
        await db.execute("TRUNCATE delivery_events")
    assert (await ledger.verify(db, cid)).ok


def test_the_link_is_the_documented_sha256() -> None:
    # The format in sql/migrations/0005_ledger_chain.sql, written out by hand.
    import calendar
    import hashlib
    from datetime import UTC, datetime

    cid = uuid.UUID("00000000-0000-4000-8000-000000000001")
    at = datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)
    micros = str(calendar.timegm((2026, 1, 2, 3, 4, 5)) * 1_000_000 + 678901).encode()
    expected = hashlib.sha256(
        bytes(32)
        + b"36:00000000-0000-4000-8000-000000000001"
        + b"1:7"
        + b"4:sent"
        + b"%d:%s" % (len(micros), micros)
        + b"~"
        + b"7:d\xc3\xa9tail"
    ).digest()
    assert ledger.link(ledger.GENESIS, cid, 7, "sent", at, None, "détail") == expected
