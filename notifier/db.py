"""Postgres access: the pool, named queries loaded once, migrations, driver-error translation."""

from __future__ import annotations

import logging
import random
import re
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from types import MappingProxyType
from typing import Any, TypeAlias

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from notifier.errors import Conflict, NotifierError

log = logging.getLogger(__name__)

# sql/ ships inside the package as notifier.sql (see pyproject.toml), so an installed wheel
# and an editable checkout find it the same way; both hold it as plain files.
SQL_DIR = Path(str(resources.files("notifier.sql")))
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


def parse_queries(text: str) -> list[tuple[str, str]]:
    """The named blocks of one query file, in order: (name, SQL)."""
    marks = list(_QUERY_HEADER.finditer(text))
    return [
        (mark.group(1), text[mark.end() : nxt.start() if nxt else len(text)].strip())
        for mark, nxt in zip(marks, [*marks[1:], None], strict=True)
    ]


def load_queries(directory: Path = SQL_DIR / "queries") -> Mapping[str, str]:
    """Every named query in `sql/queries/*.sql`, by name; blocks start with `-- name --`.
    Each file holds the queries of the module named like it."""
    queries: dict[str, str] = {}
    for path in sorted(directory.glob("*.sql")):
        for name, sql in parse_queries(path.read_text(encoding="utf-8")):
            if name in queries:
                raise RuntimeError(f"query {name!r} is defined twice")
            queries[name] = sql
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


async def ping(conn: Conn) -> None:
    """Raise unless the database answers a trivial statement."""
    await conn.fetchval(queries["ping"])


def _migration_files(directory: Path) -> list[tuple[str, str]]:
    return [(p.stem, p.read_text(encoding="utf-8")) for p in sorted(directory.glob("*.sql"))]


async def migrate(dsn: str, directory: Path = SQL_DIR / "migrations") -> list[str]:
    """Apply migrations not yet recorded, in file-name order; returns the ones applied."""
    conn: Any = await asyncpg.connect(dsn)
    applied: list[str] = []
    try:
        await conn.execute(queries["lock_migrations"])
        await conn.execute(queries["create_schema_migrations"])
        done = {r["version"] for r in await conn.fetch(queries["applied_migrations"])}
        for version, sql in _migration_files(directory):
            if version in done:
                continue
            async with conn.transaction():
                await conn.execute(sql)
                await conn.execute(queries["record_migration"], version)
            log.info("applied migration", extra={"migration": version})
            applied.append(version)
    finally:
        await conn.execute(queries["unlock_migrations"])
        await conn.close()
    return applied
