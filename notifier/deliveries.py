"""Deliveries as the API shows them: pages, the evidence report, lookups, provider receipts."""

from __future__ import annotations

import csv
import io
import uuid
from collections.abc import AsyncIterator, Iterable, Sequence
from typing import Any

from notifier.db import Conn, queries

REPORT_COLUMNS = (
    "external_id",
    "channel",
    "status",
    "attempts",
    "provider_message_id",
    "last_error",
    "possible_duplicate",
    "queued_at",
    "sent_at",
    "delivered_at",
    "failed_at",
    "updated_at",
    "ledger_chain",
    "ledger_seq",
    "ledger_hash",
    "shares_send_of",
)
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


async def page(
    conn: Conn,
    campaign_id: uuid.UUID,
    *,
    status: str | None,
    channel: str | None,
    after: int | None,
    limit: int,
) -> tuple[list[dict[str, Any]], int | None]:
    """A page of a campaign's deliveries and the cursor of the next one."""
    rows = await conn.fetch(
        queries["list_deliveries"], campaign_id, status, channel, after, limit + 1
    )
    items = [dict(r) for r in rows[:limit]]
    cursor = items[-1]["id"] if len(rows) > limit else None
    for item in items:
        del item["id"]
    return items, cursor


def report_cell(value: object) -> object:
    """A value as a report's CSV cell: a text a spreadsheet would run as a formula is
    quoted as text instead, times are ISO 8601 in UTC."""
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    if hasattr(value, "isoformat"):
        return value.isoformat().replace("+00:00", "Z")
    return value


class CsvChunks:
    """A report's rows written as CSV (each cell through report_cell), handed out as bytes
    every `chunk_rows` rows, so that a report of millions streams in bounded memory."""

    def __init__(self, header: Sequence[str], chunk_rows: int) -> None:
        self._buffer = io.StringIO()
        self._writer = csv.writer(self._buffer, lineterminator="\r\n")
        self._writer.writerow(header)
        self._chunk_rows = chunk_rows
        self._rows = 0

    def add(self, cells: Iterable[object]) -> bytes | None:
        """Write one row; a chunk when `chunk_rows` more rows are ready, else None."""
        self._writer.writerow([report_cell(c) for c in cells])
        self._rows += 1
        return self.rest() if self._rows % self._chunk_rows == 0 else None

    def rest(self) -> bytes:
        """What is written and not yet handed out."""
        data = self._buffer.getvalue().encode()
        self._buffer.seek(0)
        self._buffer.truncate()
        return data


async def report(
    conn: Conn, campaign_id: uuid.UUID, *, chunk_rows: int = 2000
) -> AsyncIterator[bytes]:
    """The campaign's evidence as CSV, streamed from a server-side cursor."""
    out = CsvChunks(REPORT_COLUMNS, chunk_rows)
    async with conn.transaction(readonly=True):
        cursor = conn.cursor(queries["report_rows"], campaign_id, prefetch=chunk_rows)
        async for row in cursor:
            if chunk := out.add(row[c] for c in REPORT_COLUMNS):
                yield chunk
    yield out.rest()


async def for_recipient(conn: Conn, external_id: str, limit: int = 1000) -> list[dict[str, Any]]:
    """Every delivery to one account across campaigns."""
    return [dict(r) for r in await conn.fetch(queries["recipient_deliveries"], external_id, limit)]


async def verify(conn: Conn, code: str) -> dict[str, Any] | None:
    """What a genuine code may reveal (campaign, channel, time), or None."""
    normalized = code.strip().upper().replace("-", "")
    if len(normalized) != 16 or not all(c in "0123456789ABCDEF" for c in normalized):
        return None
    row = await conn.fetchrow(queries["verify_code"], normalized)
    return dict(row) if row is not None else None
