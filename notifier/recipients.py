"""Recipient uploads: stream, validate, COPY into staging, merge into the campaign, in chunks.

Parsing (this process) and merging (Postgres) overlap: while Postgres merges one chunk the
next is being parsed. The whole upload is one transaction, so a failure or a dropped
connection imports nothing, and memory holds at most a few chunks whatever the size.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from notifier.campaigns import Campaign, channels_of
from notifier.db import Conn, one, queries
from notifier.errors import Conflict, NotFound
from notifier.imports import RecipientImport, RecipientRules, Row
from notifier.models import CampaignState

log = logging.getLogger(__name__)

MAX_REPORTED_ERRORS = 1000
CHUNK_ROWS = 20_000
STAGING_COLUMNS = ("line", "external_id", "email", "phone", "locale", "vars")


@dataclass(frozen=True, slots=True, kw_only=True)
class ImportResult:
    """What an upload did: rows stored, rows refused, repeated ids, and why, by line."""

    accepted: int
    rejected: int
    duplicates: int
    errors: list[dict[str, Any]] = field(default_factory=list)


def rules_for(campaign: Campaign) -> RecipientRules:
    """The validation rules an upload to this campaign must meet."""
    return RecipientRules(
        channels=frozenset(str(c) for c in channels_of(campaign)),
        locales=campaign.template_locales(),
        default_locale=campaign.default_locale,
        default_region=campaign.default_region,
        variables=frozenset(campaign.variables),
    )


async def _chunked(
    upload: RecipientImport, out: asyncio.Queue[list[Row] | BaseException | None]
) -> None:
    """Parse the upload into chunks of rows; a parse failure is handed over as it is."""
    try:
        chunk: list[Row] = []
        async for row in upload.rows():
            chunk.append(row)
            if len(chunk) % 1000 == 0:
                await asyncio.sleep(0)  # let the COPY of the previous chunk move on
            if len(chunk) >= CHUNK_ROWS:
                await out.put(chunk)
                chunk = []
        if chunk:
            await out.put(chunk)
        await out.put(None)
    except Exception as exc:
        await out.put(exc)


async def import_upload(
    conn: Conn, campaign: Campaign, chunks: AsyncIterator[bytes], fmt: str
) -> ImportResult:
    """Import one upload atomically: a failure or a dropped connection imports nothing."""
    upload = RecipientImport(chunks, fmt, rules_for(campaign))
    inserted = duplicates = 0
    duplicate_lines: list[int] = []
    async with conn.transaction():
        # A share lock: concurrent uploads proceed, a launch waits for them to finish.
        state = await conn.fetchval(
            "SELECT state FROM campaigns WHERE id = $1 FOR SHARE", campaign.id
        )
        if state is None:
            raise NotFound(f"no campaign {campaign.id}")
        if state != CampaignState.DRAFT:
            raise Conflict(f"recipients can only be added to a draft campaign, not {state}")
        await conn.execute(queries["create_import_staging"])
        await conn.execute("SET LOCAL work_mem = '64MB'")  # each chunk sorts in memory
        parsed: asyncio.Queue[list[Row] | BaseException | None] = asyncio.Queue(maxsize=1)
        parser = asyncio.create_task(_chunked(upload, parsed))
        try:
            while (rows := await parsed.get()) is not None:
                if isinstance(rows, BaseException):
                    raise rows
                await conn.copy_records_to_table(
                    "import_staging", records=rows, columns=STAGING_COLUMNS
                )
                merged = one(await conn.fetchrow(queries["merge_import"], campaign.id))
                inserted += merged["inserted"]
                left_out = merged["staged"] - merged["inserted"]
                duplicates += left_out
                room = MAX_REPORTED_ERRORS - len(duplicate_lines)
                if left_out and room > 0:
                    duplicate_lines += [
                        r["line"]
                        for r in await conn.fetch(
                            queries["duplicate_lines"], campaign.id, merged["first_id"], room
                        )
                    ]
                await conn.execute("TRUNCATE import_staging")
        finally:
            parser.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await parser
        await conn.execute(queries["add_recipient_count"], campaign.id, inserted)
    errors = list(upload.errors)
    errors.extend(
        {"line": line, "message": "external_id: duplicate of an earlier row"}
        for line in duplicate_lines
    )
    errors.sort(key=lambda e: int(e["line"]))
    log.info(
        "recipients imported",
        extra={
            "campaign_id": str(campaign.id),
            "accepted": inserted,
            "rejected": upload.rejected,
            "duplicates": duplicates,
        },
    )
    return ImportResult(
        accepted=inserted,
        rejected=upload.rejected,
        duplicates=duplicates,
        errors=errors[:MAX_REPORTED_ERRORS],
    )
