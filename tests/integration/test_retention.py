"""Retention: `notifier purge` removes contact details of old finished campaigns, and the
proof (report, counts, ledger chain) survives without them."""

from __future__ import annotations

import csv
import io
import uuid

import aiohttp
import asyncpg
import pytest

from notifier import ledger
from notifier.settings import Settings
from notifier.tooling.stack import LocalStack
from tests import factories

pytestmark = pytest.mark.timeout(180)

N = 40


async def _everywhere(db: asyncpg.Connection, needle: str) -> list[str]:
    """The tables in which some row's text holds `needle`."""
    tables = await db.fetch(
        "SELECT schemaname, tablename FROM pg_tables WHERE schemaname = 'public'"
    )
    found = []
    for t in tables:
        name = f'"{t["schemaname"]}"."{t["tablename"]}"'
        hit = await db.fetchval(
            f"SELECT count(*) FROM {name} AS t WHERE t::text LIKE $1", f"%{needle}%"
        )
        if hit:
            found.append(t["tablename"])
    return found


async def _holding_contacts(db: asyncpg.Connection, cid: str) -> int:
    """Recipients of the campaign with anything left of their contacts: sealed or in
    plaintext, their keyed hashes, or template variables."""
    return int(
        await db.fetchval(
            "SELECT count(*) FROM recipients WHERE campaign_id = $1 AND (email IS NOT NULL"
            " OR phone IS NOT NULL OR contact_sealed IS NOT NULL OR email_hash IS NOT NULL"
            " OR phone_hash IS NOT NULL OR vars <> '{}')",
            uuid.UUID(cid),
        )
    )


async def test_purge_removes_contacts_and_keeps_the_proof(
    stack: LocalStack, api: aiohttp.ClientSession, db: asyncpg.Connection, settings: Settings
) -> None:
    old = await factories.draft_with_recipients(api, N)
    recent = (await factories.create_campaign(api))["id"]
    _, result = await factories.upload(api, recent, factories.recipients_csv(N, start=1000))
    assert result["accepted"] == N
    await stack.start_inline_worker()
    for cid in (old, recent):
        await factories.launch(api, cid)
        await factories.wait_for(api, cid, factories.settled)
    await db.execute(
        "UPDATE campaigns SET completed_at = now() - interval '40 days' WHERE id = $1",
        uuid.UUID(old),
    )
    draft = (await factories.create_campaign(api))["id"]  # never sent: not purged
    _, result = await factories.upload(api, draft, factories.recipients_csv(5, start=5000))
    assert result["accepted"] == 5

    async def report(cid: str) -> list[dict[str, str]]:
        async with api.get(f"/v1/campaigns/{cid}/report") as resp:
            return list(csv.DictReader(io.StringIO(await resp.text())))

    before = await report(old)
    counts_before = (await factories.get_campaign(api, old))["counts"]
    url = settings.database_url or ""

    code, out, _ = await factories.run_cli(url, "purge", "--older-than", "30d", "--dry-run")
    assert code == 0 and f"would purge campaign {old}" in out and recent not in out
    assert await _holding_contacts(db, old) == N  # nothing changed yet

    code, out, _ = await factories.run_cli(url, "purge", "--older-than", "30d")
    assert code == 0 and f"purged campaign {old}: {N} recipients" in out

    for i in range(N):
        assert await _everywhere(db, f"user{i}@example.com") == []
        assert await _everywhere(db, factories.phone(i)) == []
        assert await _everywhere(db, f'"Customer {i}"') == []
    assert await _holding_contacts(db, old) == 0
    # The recent campaign and the draft keep theirs.
    assert await _holding_contacts(db, recent) == N
    assert await _holding_contacts(db, draft) == 5

    after = await report(old)
    assert after == before  # the report never held contacts: it is whole
    assert (await factories.get_campaign(api, old))["counts"] == counts_before
    assert (await ledger.verify(db, uuid.UUID(old))).ok
    async with api.get("/v1/recipients/acct-3/deliveries") as resp:
        assert resp.status == 200
        assert any(d["campaign_id"] == old for d in (await resp.json())["items"])

    code, out, _ = await factories.run_cli(url, "purge", "--older-than", "30d")
    assert code == 0 and "no finished campaign" in out
    code, _, err = await factories.run_cli(url, "purge", "--older-than", "a month")
    assert code == 2 and "30d" in err
    code, out, _ = await factories.run_cli(url, "audit")
    assert "cli purge" in out and old in out
