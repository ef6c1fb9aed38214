"""The ledger as evidence: append-only, hash-chained per campaign, verifiable from outside."""

from __future__ import annotations

import asyncio
import contextlib
import csv
import io
import shutil
import uuid
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import aiohttp
import asyncpg
import pytest

from notifier import ledger
from notifier.db import SQL_DIR, migrate
from notifier.settings import Settings
from notifier.tooling.stack import LocalStack
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
    heads = await db.fetch("SELECT shard, seq, hash FROM ledger_heads WHERE campaign_id = $1", cid)
    assert sorted(h["shard"] for h in heads) == list(range(8)) == list(range(verdict.chains))
    assert sum(h["seq"] for h in heads) == events
    assert verdict.seal == ledger.seal({h["shard"]: (h["seq"], h["hash"]) for h in heads})

    code, out, _ = await factories.run_cli(
        settings.database_url or "", "ledger", "verify", str(cid)
    )
    assert code == 0 and "every chain intact" in out and verdict.seal.hex() in out

    async with api.get(f"/v1/campaigns/{cid}/report") as resp:
        rows = list(csv.DictReader(io.StringIO(await resp.text())))
    assert len(rows) == 2 * N
    links = {
        (r["shard"], r["seq"]): r["hash"].hex()
        for r in await db.fetch(
            "SELECT shard, seq, hash FROM delivery_events WHERE campaign_id = $1", cid
        )
    }
    for row in rows:
        assert links[int(row["ledger_chain"]), int(row["ledger_seq"])] == row["ledger_hash"]


async def test_a_changed_event_is_found_by_its_position(
    stack: LocalStack, api: aiohttp.ClientSession, db: asyncpg.Connection, settings: Settings
) -> None:
    cid = await _sent_campaign(stack, api)
    chain = await _longest_chain(db, cid)
    await _tamper(
        db,
        "UPDATE delivery_events SET status = 'delivered'"
        " WHERE campaign_id = $1 AND shard = $2 AND seq = 3",
        cid,
        chain,
    )
    verdict = await ledger.verify(db, cid)
    assert (verdict.chain, verdict.broken_at) == (chain, 3)
    assert "does not match its hash" in (verdict.reason or "")
    code, out, _ = await factories.run_cli(
        settings.database_url or "", "ledger", "verify", str(cid)
    )
    assert code == 1 and f"broken at chain {chain}, event 3" in out


async def test_a_removed_event_and_a_cut_tail_are_found(
    stack: LocalStack, api: aiohttp.ClientSession, db: asyncpg.Connection
) -> None:
    cid = await _sent_campaign(stack, api)
    chain = await _longest_chain(db, cid)
    delete = "DELETE FROM delivery_events WHERE campaign_id = $1 AND shard = $2 AND seq = $3"
    last = await db.fetchval(
        "SELECT seq FROM ledger_heads WHERE campaign_id = $1 AND shard = $2", cid, chain
    )
    await _tamper(db, delete, cid, chain, last)
    verdict = await ledger.verify(db, cid)
    assert (verdict.chain, verdict.broken_at) == (chain, last)
    assert "missing" in (verdict.reason or "")

    await _tamper(db, delete, cid, chain, 2)
    verdict = await ledger.verify(db, cid)
    assert (verdict.chain, verdict.broken_at) == (chain, 3)
    assert "event 2 is missing" in (verdict.reason or "")


async def _longest_chain(db: asyncpg.Connection, cid: uuid.UUID) -> int:
    """The chain with the most events (at least four, or the test cannot say much)."""
    row = await factories.one_row(
        db,
        "SELECT shard, seq FROM ledger_heads WHERE campaign_id = $1 ORDER BY seq DESC LIMIT 1",
        cid,
    )
    assert row["seq"] >= 4
    return int(row["shard"])


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


_EVENT = (
    "INSERT INTO delivery_events (campaign_id, delivery_id, status) VALUES ($1, $2, 'sent')"
    " RETURNING shard, seq"
)


async def test_writers_of_one_campaign_take_separate_chains(
    api: aiohttp.ClientSession, db: asyncpg.Connection, database_url: str
) -> None:
    cid = uuid.UUID((await factories.create_campaign(api))["id"])
    conns = [await asyncpg.connect(database_url) for _ in range(9)]
    try:
        txs = [conn.transaction() for conn in conns]
        first = []
        for n, (conn, tx) in enumerate(zip(conns[:8], txs, strict=False)):
            await tx.start()
            await conn.execute("SET LOCAL lock_timeout = '5s'")
            first.append(await factories.one_row(conn, _EVENT, cid, n))
        # Eight open transactions, none of them waiting: eight chains.
        assert sorted(row["shard"] for row in first) == list(range(8))
        # A transaction's later statements continue its own chain.
        again = await factories.one_row(conns[0], _EVENT, cid, 100)
        assert (again["shard"], again["seq"]) == (first[0]["shard"], first[0]["seq"] + 1)
        # A ninth writer waits for one of the eight, and then continues that chain.
        ninth = asyncio.create_task(factories.one_row(conns[8], _EVENT, cid, 8))
        await asyncio.sleep(0.5)
        assert not ninth.done()
        for tx in txs[:8]:
            await tx.commit()
        assert (await ninth)["seq"] >= 2
    finally:
        for conn in conns:
            await conn.close()
    verdict = await ledger.verify(db, cid)
    assert verdict.ok and verdict.events == 10, verdict.describe()


async def test_a_rolled_back_savepoint_leaves_the_chain_whole(
    api: aiohttp.ClientSession, db: asyncpg.Connection
) -> None:
    cid = uuid.UUID((await factories.create_campaign(api))["id"])
    async with db.transaction():
        kept = await factories.one_row(db, _EVENT, cid, 1)
        with contextlib.suppress(asyncpg.RaiseError):
            async with db.transaction():
                await db.fetchrow(_EVENT, cid, 2)
                await db.execute("DO $$ BEGIN RAISE EXCEPTION 'undone'; END $$")
        after = await factories.one_row(db, _EVENT, cid, 3)
    assert (after["shard"], after["seq"]) == (kept["shard"], kept["seq"] + 1)
    verdict = await ledger.verify(db, cid)
    assert verdict.ok and verdict.events == 2, verdict.describe()


async def test_a_ledger_chained_before_the_split_still_verifies(
    servers: tuple[str, str], tmp_path: Path
) -> None:
    """Events written under 0005 (one chain per campaign) are chain 0 after 0007."""
    migrations = SQL_DIR / "migrations"
    for path in sorted(migrations.glob("*.sql")):
        if path.name < "0007":
            shutil.copy(path, tmp_path / path.name)
    name = f"notifier_test_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(servers[0])
    await admin.execute(f'CREATE DATABASE "{name}"')
    url = urlunsplit(urlsplit(servers[0])._replace(path="/" + name))
    try:
        await migrate(url, tmp_path)
        cid = uuid.uuid4()
        conn = await asyncpg.connect(url)
        try:
            await conn.execute("SELECT create_campaign_partitions($1)", cid)
            for n in range(5):
                await conn.execute(_EVENT.removesuffix(" RETURNING shard, seq"), cid, n)
            await migrate(url)
            for n in range(5, 8):
                assert (await factories.one_row(conn, _EVENT, cid, n))["shard"] == 0
            verdict = await ledger.verify(conn, cid)
            assert verdict.ok and (verdict.events, verdict.chains) == (8, 1), verdict.describe()
        finally:
            await conn.close()
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()
