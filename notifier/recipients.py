"""Recipient uploads: stream, validate and COPY into the campaign, in chunks.

Each chunk is copied straight into the campaign's partition, its repeated ids left out; if
an id is already stored (a second upload of the same accounts), that chunk is staged and
merged instead, so the first occurrence wins and every repeat is reported by line. Parsing
(this process) and copying (Postgres) overlap: while Postgres takes one chunk the next is
being parsed. Refused rows are kept too (their account id and reason, for the campaign's
list of people it cannot reach), copied in bulk with the chunks. The whole upload is one
transaction, so a failure or a dropped connection imports nothing and keeps no refused row,
and memory holds at most a few chunks whatever the size.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import asyncpg

from notifier import unreachable
from notifier.campaigns import Campaign, channels_of
from notifier.db import Conn, one, queries
from notifier.errors import Conflict, NotFound
from notifier.imports.rows import RecipientRules, Refused, Row
from notifier.imports.upload import RecipientImport
from notifier.models import CampaignState
from notifier.sealing import Sealer

log = logging.getLogger(__name__)

MAX_REPORTED_ERRORS = 1000
CHUNK_ROWS = 20_000
# Refused rows are small (an id, a reason): a batch of them goes out with a chunk, or alone.
REFUSED_ROWS = 20_000
# (line, external_id, sealed contacts, email hash, phone hash, locale, variables as JSON)
Sealed = tuple[int, str, bytes | None, bytes | None, bytes | None, str, str]
_SEALED = ("contact_sealed", "email_hash", "phone_hash", "locale", "vars")
STAGING_COLUMNS = ("line", "external_id", *_SEALED)
PARTITION_COLUMNS = ("campaign_id", "id", "external_id", *_SEALED)
# What the parser hands over: a chunk of sealed rows, and the rows refused since the last.
Batch = tuple[list[Sealed], list[Refused]]


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


def _sealed(sealer: Sealer, campaign_id: uuid.UUID, row: Row) -> Sealed:
    """A valid row as it is stored: its contacts sealed, with their keyed hashes."""
    line, external_id, email, phone, locale, variables = row
    return (
        line,
        external_id,
        sealer.seal(campaign_id, external_id, email, phone),
        sealer.lookup("email", email),
        sealer.lookup("phone", phone),
        locale,
        variables,
    )


async def _chunked(
    upload: RecipientImport,
    sealer: Sealer,
    campaign_id: uuid.UUID,
    out: asyncio.Queue[Batch | BaseException | None],
) -> None:
    """Parse the upload into chunks of sealed rows, with the rows refused on the way; a parse
    failure is handed over as it is."""
    try:
        chunk: list[Sealed] = []
        refused: list[Refused] = []
        async for rows, refusals in upload.batches():
            refused += refusals
            for row in rows:
                chunk.append(_sealed(sealer, campaign_id, row))
                if len(chunk) % 1000 == 0:
                    await asyncio.sleep(0)  # let the COPY of the previous chunk move on
                if len(chunk) >= CHUNK_ROWS:
                    await out.put((chunk, refused))
                    chunk, refused = [], []
            if len(refused) >= REFUSED_ROWS:
                await out.put((chunk, refused))
                chunk, refused = [], []
        if chunk or refused:
            await out.put((chunk, refused))
        await out.put(None)
    except Exception as exc:
        await out.put(exc)


@dataclass(slots=True)
class _Tally:
    """What the chunks of one upload added up to."""

    inserted: int = 0
    duplicates: int = 0
    duplicate_lines: list[int] = field(default_factory=list)

    def duplicate(self, line: int) -> None:
        self.duplicates += 1
        if len(self.duplicate_lines) < MAX_REPORTED_ERRORS:
            self.duplicate_lines.append(line)


async def _copy_chunk(conn: Conn, campaign: Campaign, rows: list[Sealed], tally: _Tally) -> bool:
    """The fast path: COPY the chunk straight into the campaign's partition. Repeats within
    the chunk are left out here; an id the campaign already holds makes the COPY fail, and
    then nothing of the chunk is kept (False: merge it instead)."""
    seen: set[str] = set()
    fresh = []
    repeats = []
    for row in rows:
        if row[1] in seen:
            repeats.append(row[0])
        else:
            seen.add(row[1])
            fresh.append(row)
    ids = one(await conn.fetchrow(queries["reserve_recipient_ids"], len(fresh)))["ids"]
    cid = campaign.id
    records = [(cid, rid, *row[1:]) for rid, row in zip(ids, fresh, strict=True)]
    try:
        async with conn.transaction():  # a savepoint: a failed COPY leaves nothing behind
            await conn.copy_records_to_table(
                f"recipients_{cid.hex}", records=records, columns=PARTITION_COLUMNS
            )
    except asyncpg.UniqueViolationError:
        return False
    tally.inserted += len(records)
    for line in repeats:
        tally.duplicate(line)
    return True


async def _merge_chunk(conn: Conn, campaign: Campaign, rows: list[Sealed], tally: _Tally) -> None:
    """The careful path, for a chunk holding ids already stored: stage it, then insert
    what is new in file order; the rest are duplicates, found by line."""
    await conn.copy_records_to_table("import_staging", records=rows, columns=STAGING_COLUMNS)
    merged = one(await conn.fetchrow(queries["merge_import"], campaign.id))
    tally.inserted += merged["inserted"]
    left_out = merged["staged"] - merged["inserted"]
    room = MAX_REPORTED_ERRORS - len(tally.duplicate_lines)
    tally.duplicates += left_out
    if left_out and room > 0:
        tally.duplicate_lines += [
            r["line"]
            for r in await conn.fetch(
                queries["duplicate_lines"], campaign.id, merged["first_id"], room
            )
        ]
    await conn.execute(queries["empty_import_staging"])


async def import_upload(
    conn: Conn, campaign: Campaign, chunks: AsyncIterator[bytes], fmt: str, sealer: Sealer
) -> ImportResult:
    """Import one upload atomically: a failure or a dropped connection imports nothing."""
    upload = RecipientImport(chunks, fmt, rules_for(campaign))
    upload_id = uuid.uuid4()  # tells this upload's refused rows from another's
    tally = _Tally()
    staging = False
    async with conn.transaction():
        # A share lock: concurrent uploads proceed, a launch waits for them to finish.
        state = await conn.fetchval(queries["share_campaign"], campaign.id)
        if state is None:
            raise NotFound(f"no campaign {campaign.id}")
        if state != CampaignState.DRAFT:
            raise Conflict(f"recipients can only be added to a draft campaign, not {state}")
        parsed: asyncio.Queue[Batch | BaseException | None] = asyncio.Queue(maxsize=1)
        parser = asyncio.create_task(_chunked(upload, sealer, campaign.id, parsed))
        try:
            while (batch := await parsed.get()) is not None:
                if isinstance(batch, BaseException):
                    raise batch
                rows, refused = batch
                if refused:
                    await unreachable.record_refused(conn, campaign.id, upload_id, refused)
                if not rows or await _copy_chunk(conn, campaign, rows, tally):
                    continue
                if not staging:
                    await conn.execute(queries["create_import_staging"])
                    await conn.execute(queries["merge_work_mem"])
                    staging = True
                await _merge_chunk(conn, campaign, rows, tally)
        finally:
            parser.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await parser
        await conn.execute(queries["add_recipient_count"], campaign.id, tally.inserted)
        if tally.inserted >= CHUNK_ROWS:  # the planner learns the partition's new size
            await conn.execute(queries["analyze_recipients"], campaign.id)
    inserted, duplicates, duplicate_lines = tally.inserted, tally.duplicates, tally.duplicate_lines
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
