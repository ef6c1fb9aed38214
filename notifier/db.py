"""Postgres access: the pool, named queries loaded once, migrations, driver-error translation."""

from __future__ import annotations

import logging
import random
import re
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any, TypeAlias

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from notifier.errors import Conflict, NotifierError

log = logging.getLogger(__name__)

SQL_DIR = Path(__file__).resolve().parent.parent / "sql"
_QUERY_HEADER = re.compile(r"^-- ([a-z0-9_]+) --\s*$", re.MULTILINE)

Pool: TypeAlias = "asyncpg.Pool[asyncpg.Record]"
# What service functions take: a plain connection or one borrowed from the pool.
Conn: TypeAlias = "asyncpg.Connection[asyncpg.Record] | PoolConnectionProxy[asyncpg.Record]"


class DatabaseUnavailable(NotifierError):
    """The database cannot be reached right now; try again shortly."""

    status = 503
    title = "Service unavailable"
    type_slug = "unavailable"


# What Postgres being restarted or out of reach looks like to a client: the API answers 503,
# a worker waits and tries again.
DATABASE_DOWN: tuple[type[Exception], ...] = (
    OSError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,  # "connection is closed"
    asyncpg.exceptions.OperatorInterventionError,  # shutdown, crash, "cannot connect now"
    asyncpg.exceptions.InternalClientError,  # a connection left mid-statement by a restart
)
# Any failure of a statement: the database down, or the statement refused.
DATABASE_ERRORS: tuple[type[Exception], ...] = (asyncpg.PostgresError, *DATABASE_DOWN)

# delivery_counts keeps this many rows per campaign, channel and status (sql/migrations);
# each writer adds to a random one, so concurrent writers rarely wait on the same row.
COUNTER_SHARDS = 16


def counter_shard() -> int:
    """The delivery_counts shard this write adds to."""
    return random.randrange(COUNTER_SHARDS)


def one(row: asyncpg.Record | None) -> asyncpg.Record:
    """The row of a statement that always returns exactly one (an aggregate, RETURNING)."""
    if row is None:
        raise RuntimeError("the statement returned no row")
    return row


def load_queries(directory: Path = SQL_DIR / "queries") -> Mapping[str, str]:
    """Every named query in `sql/queries/*.sql`, by name; blocks start with `-- name --`."""
    queries: dict[str, str] = {}
    for path in sorted(directory.glob("*.sql")):
        text = path.read_text(encoding="utf-8")
        marks = list(_QUERY_HEADER.finditer(text))
        for i, mark in enumerate(marks):
            end = marks[i + 1].start() if i + 1 < len(marks) else len(text)
            name = mark.group(1)
            if name in queries:
                raise RuntimeError(f"query {name!r} is defined twice")
            queries[name] = text[mark.end() : end].strip()
    return MappingProxyType(queries)


queries = load_queries()


async def create_pool(dsn: str, *, min_size: int = 1, max_size: int = 10) -> Pool:
    """A connection pool; statements are prepared per connection and cached by asyncpg."""
    pool = await asyncpg.create_pool(
        dsn,
        min_size=min_size,
        max_size=max_size,
        command_timeout=60,
        # No JIT: the statements are short, and a cost estimate that outgrows jit_above_cost
        # (it did, once a partition of millions had statistics) adds ~250 ms of compiling to
        # every receipt write.
        server_settings={"application_name": "notifier", "timezone": "UTC", "jit": "off"},
    )
    return pool


def translate(exc: BaseException) -> NotifierError | None:
    """The project's own error for a driver error that has a meaning for the caller."""
    if isinstance(exc, asyncpg.UniqueViolationError):
        return Conflict("a resource with the same identity already exists")
    if isinstance(exc, DATABASE_DOWN):
        return DatabaseUnavailable()
    return None


def _migration_files(directory: Path) -> list[tuple[str, str]]:
    return [(p.stem, p.read_text(encoding="utf-8")) for p in sorted(directory.glob("*.sql"))]


async def migrate(dsn: str, directory: Path = SQL_DIR / "migrations") -> list[str]:
    """Apply migrations not yet recorded, in file-name order; returns the ones applied."""
    conn: Any = await asyncpg.connect(dsn)
    applied: list[str] = []
    try:
        # One migrator at a time, even if several deploy jobs start together.
        await conn.execute("SELECT pg_advisory_lock(7305521)")
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            " version text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
        )
        done = {r["version"] for r in await conn.fetch("SELECT version FROM schema_migrations")}
        for version, sql in _migration_files(directory):
            if version in done:
                continue
            async with conn.transaction():
                await conn.execute(sql)
                await conn.execute("INSERT INTO schema_migrations (version) VALUES ($1)", version)
            log.info("applied migration", extra={"migration": version})
            applied.append(version)
    finally:
        await conn.execute("SELECT pg_advisory_unlock(7305521)")
        await conn.close()
    return applied
