"""Contacts at rest: sealed on import, opened only to send; older plaintext rows are sealed
and older keys rotated out by `notifier seal`."""

from __future__ import annotations

import uuid

import aiohttp
import asyncpg
import pytest

from notifier.models import Channel
from notifier.sealing import Sealer, new_data_key
from notifier.settings import Settings
from notifier.tooling.stack import LocalStack
from tests import factories

pytestmark = pytest.mark.timeout(120)


async def _legacy_row(db: asyncpg.Connection, cid: uuid.UUID, n: int) -> None:
    """A recipient as rows were stored before contacts were sealed: in plaintext."""
    await db.execute(
        "INSERT INTO recipients (campaign_id, id, external_id, email, phone, locale, vars)"
        " VALUES ($1, nextval('recipients_id_seq'), $2, $3, $4, 'en', '{\"name\": \"Old\"}')",
        cid,
        f"old-{n}",
        f"old{n}@example.com",
        factories.phone(900 + n),
    )
    await db.execute("UPDATE campaigns SET recipients = recipients + 1 WHERE id = $1", cid)


async def _stored(db: asyncpg.Connection, cid: uuid.UUID) -> list[asyncpg.Record]:
    return await db.fetch(
        "SELECT external_id, email, phone, contact_sealed, email_hash, phone_hash"
        " FROM recipients WHERE campaign_id = $1 ORDER BY id",
        cid,
    )


def _env(settings: Settings, data_keys: str) -> dict[str, str]:
    return {"NOTIFIER_DATA_KEYS": data_keys, "NOTIFIER_LOOKUP_KEY": settings.lookup_key or ""}


async def test_seal_encrypts_old_rows_and_rotates_keys(
    api: aiohttp.ClientSession, db: asyncpg.Connection, settings: Settings
) -> None:
    cid = uuid.UUID(await factories.draft_with_recipients(api, 3))
    for n in range(2):
        await _legacy_row(db, cid, n)
    sealer = Sealer.from_settings(settings)
    assert sum(r["email"] is not None for r in await _stored(db, cid)) == 2

    assert settings.data_keys
    url = settings.database_url or ""
    code, out, err = await factories.run_cli(url, "seal", env=_env(settings, settings.data_keys))
    assert code == 0, err
    assert "sealed 2 recipients' contacts that were in plaintext; re-sealed 0" in out
    expected = {f"acct-{i}": (f"user{i}@example.com", factories.phone(i)) for i in range(3)}
    expected |= {f"old-{n}": (f"old{n}@example.com", factories.phone(900 + n)) for n in range(2)}
    rows = await _stored(db, cid)
    for row in rows:
        assert row["email"] is None and row["phone"] is None
        email, phone = sealer.open(cid, row["external_id"], row["contact_sealed"])
        assert (email, phone) == expected[row["external_id"]]
        assert row["email_hash"] == sealer.lookup("email", email)
        assert row["phone_hash"] == sealer.lookup("phone", phone)

    # Rotation: a new key first, the old one kept to open what it sealed.
    newest = new_data_key("next")
    rotated = f"{newest},{settings.data_keys}"
    code, out, err = await factories.run_cli(url, "seal", env=_env(settings, rotated))
    assert code == 0, err
    assert "sealed 0 recipients' contacts that were in plaintext; re-sealed 5" in out
    only_new = Sealer.from_settings(settings.replace(data_keys=newest))
    for row in await _stored(db, cid):
        assert row["contact_sealed"].startswith(only_new.prefix)
        assert (
            only_new.open(cid, row["external_id"], row["contact_sealed"])
            == (expected[row["external_id"]])
        )
    # Without the key a value was sealed with, seal stops and says why.
    code, out, _ = await factories.run_cli(url, "seal", env=_env(settings, new_data_key("x")))
    assert code == 1 and "not set" in out

    audit = await db.fetchval("SELECT count(*) FROM audit_log WHERE action = 'cli seal'")
    assert audit == 2


async def test_rows_from_before_sealing_are_still_sent(
    stack: LocalStack, api: aiohttp.ClientSession, db: asyncpg.Connection
) -> None:
    cid = uuid.UUID(await factories.draft_with_recipients(api, 2))
    await _legacy_row(db, cid, 7)
    await stack.start_inline_worker()
    await factories.launch(api, str(cid))
    await factories.wait_for(api, str(cid), factories.settled)
    assert stack.sandbox is not None
    assert sorted(stack.sandbox.inbox.recipients(Channel.EMAIL)) == [
        "old7@example.com",
        "user0@example.com",
        "user1@example.com",
    ]
    assert factories.phone(907) in stack.sandbox.inbox.recipients(Channel.SMS)


async def test_the_service_refuses_to_start_without_keys(settings: Settings) -> None:
    code, _, err = await factories.run_cli(
        settings.database_url or "", "worker", env={"NOTIFIER_REDIS_URL": settings.redis_url or ""}
    )
    assert code != 0 and "NOTIFIER_DATA_KEYS is not set" in err
