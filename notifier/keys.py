"""API keys: created with a secret shown once, stored as a hash, checked on every request."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from notifier.db import Conn, queries
from notifier.errors import Forbidden, NotFound, Unauthorized
from notifier.schemas.common import validated
from notifier.schemas.keys import KeyCreate

_PREFIX = "nk_"


@dataclass(frozen=True, slots=True, kw_only=True)
class ApiKey:
    """An authenticated caller."""

    id: uuid.UUID
    scopes: frozenset[str]

    def require(self, scope: str) -> None:
        """Refuse the call unless the key carries `scope`."""
        if scope not in self.scopes:
            raise Forbidden(f"this API key lacks the {scope!r} scope")


@dataclass(frozen=True, slots=True, kw_only=True)
class NewKey:
    """A freshly created key; `secret` exists only here, never in storage."""

    id: uuid.UUID
    name: str
    scopes: tuple[str, ...]
    expires_at: datetime
    secret: str


def _hash(secret: str) -> bytes:
    return hashlib.sha256(secret.encode()).digest()


async def create(conn: Conn, *, name: str, scopes: list[str], expires_in_days: int) -> NewKey:
    """Store a new key and return its secret, which is shown once; ValidationFailed names
    each field that is not valid."""
    spec = validated(
        KeyCreate, {"name": name, "scopes": scopes, "expires_in_days": expires_in_days}
    )
    return await issue(conn, spec)


async def issue(conn: Conn, spec: KeyCreate) -> NewKey:
    """Store a key for a validated request and return its secret, which is shown once."""
    prefix = secrets.token_hex(6)
    secret = f"{_PREFIX}{prefix}_{secrets.token_urlsafe(32)}"
    key_id = uuid.uuid4()
    expires_at = datetime.now(UTC) + timedelta(days=spec.expires_in_days)
    scopes = tuple(sorted(set(map(str, spec.scopes))))
    await conn.execute(
        queries["insert_key"], key_id, spec.name, prefix, _hash(secret), list(scopes), expires_at
    )
    return NewKey(id=key_id, name=spec.name, scopes=scopes, expires_at=expires_at, secret=secret)


async def authenticate(conn: Conn, authorization: str | None) -> ApiKey:
    """The key behind a `Bearer` header, checked against storage on every request."""
    if not authorization or not authorization.startswith("Bearer "):
        raise Unauthorized("send 'Authorization: Bearer <api key>'")
    secret = authorization[len("Bearer ") :].strip()
    parts = secret.split("_")
    if len(parts) < 3 or not secret.startswith(_PREFIX):
        raise Unauthorized("the API key is not valid")
    row = await conn.fetchrow(queries["key_by_prefix"], parts[1])
    # Compare even when no row matched, so timing does not tell which prefixes exist.
    stored = row["secret_hash"] if row is not None else b"\0" * 32
    if not hmac.compare_digest(stored, _hash(secret)) or row is None:
        raise Unauthorized("the API key is not valid")
    if row["revoked_at"] is not None or row["expires_at"] <= datetime.now(UTC):
        raise Unauthorized("the API key has expired or was revoked")
    await conn.execute(queries["touch_key"], row["id"])
    return ApiKey(id=row["id"], scopes=frozenset(row["scopes"]))


async def list_page(
    conn: Conn, *, after: uuid.UUID | None, limit: int
) -> tuple[list[dict[str, Any]], uuid.UUID | None]:
    """A page of keys (never their secrets), newest first, and the next page's cursor."""
    rows = [dict(r) for r in await conn.fetch(queries["list_keys"], after, limit + 1)]
    page = rows[:limit]
    return page, (page[-1]["id"] if len(rows) > limit else None)


async def get(conn: Conn, key_id: uuid.UUID) -> dict[str, Any]:
    """One key, without its secret."""
    row = await conn.fetchrow(queries["get_key"], key_id)
    if row is None:
        raise NotFound(f"no API key {key_id}")
    return dict(row)


async def revoke(conn: Conn, key_id: uuid.UUID) -> None:
    """Refuse the key from its very next request on."""
    if await conn.fetchval(queries["revoke_key"], key_id) is None:
        raise NotFound(f"no API key {key_id}")


async def rotate(conn: Conn, key_id: uuid.UUID, *, expires_in_days: int) -> NewKey:
    """A new key with the same name and scopes; the old one is revoked in the same breath."""
    old = await get(conn, key_id)
    async with conn.transaction():
        new = await create(
            conn, name=old["name"], scopes=list(old["scopes"]), expires_in_days=expires_in_days
        )
        await revoke(conn, key_id)
    return new
