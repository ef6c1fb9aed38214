"""The schema: migrations apply once, every named query is valid SQL, enums match the database."""

from __future__ import annotations

import re

import asyncpg

from notifier.db import migrate, queries
from notifier.models import CampaignState, Channel, DeliveryStatus


async def test_migrate_is_safe_to_run_twice(database_url: str) -> None:
    assert await migrate(database_url) == []


async def test_every_named_query_prepares(db: asyncpg.Connection) -> None:
    async with db.transaction():
        await db.execute(queries["create_import_staging"])
        for name, sql in queries.items():
            if name != "create_import_staging":
                await db.prepare(sql)


async def _check_values(db: asyncpg.Connection, table: str, column: str) -> set[str]:
    definition = await db.fetchval(
        "SELECT pg_get_constraintdef(oid) FROM pg_constraint "
        "WHERE conrelid = $1::regclass AND contype = 'c' AND pg_get_constraintdef(oid) LIKE $2",
        table,
        f"%{column}%",
    )
    return set(re.findall(r"'([a-z]+)'", definition))


async def test_status_enums_equal_the_database_constraints(db: asyncpg.Connection) -> None:
    assert await _check_values(db, "deliveries", "status") == set(map(str, DeliveryStatus))
    assert await _check_values(db, "deliveries", "channel") == set(map(str, Channel))
    assert await _check_values(db, "campaigns", "state") == set(map(str, CampaignState))


async def test_the_ledger_refuses_updates_and_deletes(db: asyncpg.Connection) -> None:
    import uuid

    import pytest

    cid = uuid.uuid4()
    await db.execute(
        "INSERT INTO campaigns (id, name, incident_ref, channels, default_locale, templates) "
        "VALUES ($1, 'x', 'y', '{email}', 'en', '{}')",
        cid,
    )
    await db.execute(queries["create_partitions"], cid)
    await db.execute(
        "INSERT INTO delivery_events (campaign_id, delivery_id, status) VALUES ($1, 1, 'sent')", cid
    )
    with pytest.raises(asyncpg.RaiseError, match="append-only"):
        await db.execute("UPDATE delivery_events SET status = 'failed'")
    with pytest.raises(asyncpg.RaiseError, match="append-only"):
        await db.execute("DELETE FROM delivery_events")
