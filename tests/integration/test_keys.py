"""API keys and the audit log: secrets shown once, scopes, revocation on the next request."""

from __future__ import annotations

import aiohttp
import asyncpg

from notifier.tooling.stack import LocalStack
from tests import factories


async def test_a_key_made_over_the_api_works_until_revoked(
    stack: LocalStack, api: aiohttp.ClientSession, db: asyncpg.Connection
) -> None:
    body = {"name": "integrator", "scopes": ["campaigns:read"], "expires_in_days": 30}
    async with api.post("/v1/keys", json=body) as resp:
        assert resp.status == 201
        new = await resp.json()
    assert new["secret"].startswith("nk_")
    stored = await db.fetchrow("SELECT * FROM api_keys WHERE id = $1::uuid", new["id"])
    assert stored is not None
    assert new["secret"].encode() not in stored["secret_hash"]  # only a hash is kept

    async with api.get("/v1/keys") as resp:
        listed = (await resp.json())["items"]
    mine = next(k for k in listed if k["id"] == new["id"])
    assert "secret" not in mine and mine["last_used_at"] is None

    headers = {"Authorization": f"Bearer {new['secret']}"}
    async with aiohttp.ClientSession(stack.api_url, headers=headers) as integrator:
        async with integrator.get("/v1/campaigns") as resp:
            assert resp.status == 200
        async with integrator.get("/v1/keys") as resp:
            assert resp.status == 403
        async with api.delete(f"/v1/keys/{new['id']}") as resp:
            assert resp.status == 204
        async with integrator.get("/v1/campaigns") as resp:
            assert resp.status == 401  # the very next request
    async with api.get("/v1/keys") as resp:
        revoked = next(k for k in (await resp.json())["items"] if k["id"] == new["id"])
    assert revoked["revoked_at"] is not None and revoked["last_used_at"] is not None


async def test_keys_beyond_90_days_or_unknown_scopes_are_422(api: aiohttp.ClientSession) -> None:
    for body in (
        {"name": "x", "scopes": ["campaigns:read"], "expires_in_days": 91},
        {"name": "x", "scopes": ["root"], "expires_in_days": 1},
        {"name": "x", "scopes": ["campaigns:read"]},
    ):
        async with api.post("/v1/keys", json=body) as resp:
            assert resp.status == 422, body
    async with api.delete("/v1/keys/00000000-0000-0000-0000-000000000000") as resp:
        assert resp.status == 404


async def test_every_mutating_call_is_audited_with_its_key(
    stack: LocalStack, api: aiohttp.ClientSession, db: asyncpg.Connection
) -> None:
    cid = (await factories.create_campaign(api))["id"]
    await factories.upload(api, cid, factories.recipients_csv(2))
    async with api.post(f"/v1/campaigns/{cid}/pause") as resp:
        assert resp.status == 409
    async with (
        aiohttp.ClientSession(stack.api_url) as anonymous,
        anonymous.post("/v1/campaigns", json={}) as resp,
    ):
        assert resp.status == 401
    async with api.get("/v1/audit") as resp:
        entries = (await resp.json())["items"]
    actions = [(e["action"], e["status"], e["target"]) for e in reversed(entries)]
    assert actions == [
        ("POST /v1/campaigns", 201, None),
        ("POST /v1/campaigns/{id}/recipients", 200, cid),
        ("POST /v1/campaigns/{id}/pause", 409, cid),
        ("POST /v1/campaigns", 401, None),
    ]
    assert entries[-1]["api_key_id"] is not None and entries[0]["api_key_id"] is None
    assert all(e["client"] == "127.0.0.1" for e in entries)


async def test_cli_lists_rotates_and_revokes_keys(
    stack: LocalStack, database_url: str, db: asyncpg.Connection
) -> None:
    _, secret, _ = await factories.run_cli(
        database_url, "keys", "create", "--name", "ops", "--scopes", "campaigns:read"
    )
    key_id = await db.fetchval("SELECT id::text FROM api_keys WHERE name = 'ops'")
    code, listing, _ = await factories.run_cli(database_url, "keys", "list")
    assert code == 0 and key_id in listing and "never" in listing
    code, rotated, _ = await factories.run_cli(database_url, "keys", "rotate", key_id)
    assert code == 0 and rotated.strip() != secret.strip()
    for old_or_new, expected in ((secret, 401), (rotated, 200)):
        headers = {"Authorization": f"Bearer {old_or_new.strip()}"}
        async with (
            aiohttp.ClientSession(stack.api_url, headers=headers) as http,
            http.get("/v1/campaigns") as resp,
        ):
            assert resp.status == expected
    new_id = await db.fetchval(
        "SELECT id::text FROM api_keys WHERE name = 'ops' AND revoked_at IS NULL"
    )
    assert (await factories.run_cli(database_url, "keys", "revoke", new_id))[0] == 0
    assert await db.fetchval("SELECT count(*) FROM api_keys WHERE revoked_at IS NULL") == 0
    code, _, err = await factories.run_cli(database_url, "keys", "revoke", "nope")
    assert code == 2 and "not a key id" in err
    code, log, _ = await factories.run_cli(database_url, "audit")
    assert code == 0
    assert [line.split()[2:4] for line in log.splitlines()] == [
        ["cli", "keys"],
        ["cli", "keys"],
        ["cli", "keys"],
    ]
    assert [line.split()[4] for line in log.splitlines()] == ["revoke", "rotate", "create"]
