"""The audit log: who (which key) changed what, when, from where, and how it ended."""

from __future__ import annotations

import logging
import uuid
from typing import Any

from notifier.db import Conn, queries

log = logging.getLogger(__name__)


async def record(
    conn: Conn,
    *,
    key_id: uuid.UUID | None,
    action: str,
    target: str | None,
    status: int,
    client: str | None,
    detail: str | None = None,
) -> None:
    """Append one mutating call (`detail`: what the call itself said of it, e.g. the reason
    for launching over a checklist's missing items)."""
    await conn.execute(queries["record_audit"], key_id, action, target, status, client, detail)


async def list_page(
    conn: Conn, *, after: int | None, limit: int
) -> tuple[list[dict[str, Any]], int | None]:
    """A page of the log, newest first, and the next page's cursor."""
    rows = [dict(r) for r in await conn.fetch(queries["list_audit"], after, limit + 1)]
    page = rows[:limit]
    return page, (page[-1]["id"] if len(rows) > limit else None)
