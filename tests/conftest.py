"""Real Postgres and Redis for every test: the ones named by NOTIFIER_TEST_DATABASE_URL and
NOTIFIER_TEST_REDIS_URL, or embedded ones started here when those are not set."""

from __future__ import annotations

import contextlib
import os
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import aiohttp
import asyncpg
import pytest

from notifier import keys
from notifier.db import migrate
from notifier.models import SCOPES
from notifier.sealing import with_local_keys
from notifier.settings import Settings
from notifier.tooling.embedded import EmbeddedServices
from notifier.tooling.stack import LocalStack
from tests import factories

_CLEAN = """
DO $$
DECLARE r record;
BEGIN
    FOR r IN SELECT c.relname FROM pg_inherits i
             JOIN pg_class c ON c.oid = i.inhrelid JOIN pg_class p ON p.oid = i.inhparent
             WHERE p.relname IN ('recipients', 'deliveries', 'delivery_events')
    LOOP
        EXECUTE format('DROP TABLE %I', r.relname);
    END LOOP;
    TRUNCATE campaigns, delivery_counts, api_keys, idempotency_keys, ledger_heads, workers,
        claims, contact_groups, merged_counts CASCADE;
    ALTER TABLE audit_log DISABLE TRIGGER audit_log_append_only;
    TRUNCATE audit_log;
    ALTER TABLE audit_log ENABLE TRIGGER audit_log_append_only;
END $$;
"""


# One pair of keys for the whole session, as a deployment has: data sealed by one test's
# API must open in another process's worker.
_LOCAL = with_local_keys(Settings())
_DATA_KEYS, _LOOKUP_KEY = _LOCAL.data_keys, _LOCAL.lookup_key


def _with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="/" + name))


@pytest.fixture(scope="session")
def servers() -> Iterator[tuple[str, str]]:
    """(Postgres server URL, Redis URL): configured ones, or embedded ones under a temp dir."""
    db_url = os.environ.get("NOTIFIER_TEST_DATABASE_URL")
    redis_url = os.environ.get("NOTIFIER_TEST_REDIS_URL")
    embedded = EmbeddedServices(Path(tempfile.mkdtemp(prefix="notifier-test-")))
    embedded.start(postgres=not db_url, redis=not redis_url)
    try:
        yield (db_url or embedded.database_url or "", redis_url or embedded.redis_url or "")
    finally:
        embedded.stop()


async def _admin(server_url: str, statement: str) -> None:
    admin = await asyncpg.connect(server_url)
    try:
        await admin.execute(statement)
    finally:
        await admin.close()


@contextlib.asynccontextmanager
async def _new_database(server_url: str) -> AsyncIterator[str]:
    """A database of its own on the test server, empty, dropped when the caller is done."""
    name = f"notifier_test_{uuid.uuid4().hex[:10]}"
    await _admin(server_url, f'CREATE DATABASE "{name}"')
    try:
        yield _with_database(server_url, name)
    finally:
        await _admin(server_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
async def database_url(servers: tuple[str, str]) -> AsyncIterator[str]:
    """A database of its own for this test session, migrated, dropped at the end."""
    async with _new_database(servers[0]) as url:
        await migrate(url)
        yield url


@pytest.fixture
async def empty_database_url(servers: tuple[str, str]) -> AsyncIterator[str]:
    """A database of its own for one test, not even migrated, dropped at its end."""
    async with _new_database(servers[0]) as url:
        yield url


@pytest.fixture
async def db(database_url: str, servers: tuple[str, str]) -> AsyncIterator[asyncpg.Connection]:
    """A connection to a database emptied before the test; Redis is flushed too."""
    conn = await asyncpg.connect(database_url)
    await conn.execute(_CLEAN)
    r = factories.redis_client(servers[1])
    await r.flushdb()
    await r.aclose()
    yield conn
    await conn.close()


@pytest.fixture
def settings(database_url: str, servers: tuple[str, str], tmp_path: Path) -> Settings:
    """Settings for a test: fast rates, short leases and retries."""
    return Settings(
        database_url=database_url,
        redis_url=servers[1],
        email_rate=2000.0,
        sms_rate=2000.0,
        batch_size=200,
        chains_per_channel=2,
        lease_seconds=20,
        retry_base_seconds=0.2,
        retry_max_seconds=1.0,
        reconcile_seconds=1,
        data_dir=tmp_path,
        data_keys=_DATA_KEYS,
        lookup_key=_LOOKUP_KEY,
    )


@pytest.fixture
async def stack(db: asyncpg.Connection, settings: Settings) -> AsyncIterator[LocalStack]:
    """Sandbox and API started (no worker yet: tests start the workers they need)."""
    s = LocalStack(settings)
    await s.start()
    yield s
    await s.stop()


@pytest.fixture
async def admin_key(db: asyncpg.Connection) -> str:
    new = await keys.create(db, name="test admin", scopes=sorted(SCOPES), expires_in_days=1)
    return new.secret


@pytest.fixture
async def api(stack: LocalStack, admin_key: str) -> AsyncIterator[aiohttp.ClientSession]:
    """An HTTP client of the running API, authenticated with an admin key."""
    async with aiohttp.ClientSession(
        stack.api_url, headers={"Authorization": f"Bearer {admin_key}"}
    ) as session:
        yield session
