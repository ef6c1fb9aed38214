"""Recipient uploads: stream, validate, COPY into staging, merge in one statement."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from notifier.campaigns import Campaign, channels_of
from notifier.db import Conn, one, queries
from notifier.errors import Conflict, NotFound
from notifier.imports import RecipientImport, RecipientRules
from notifier.models import CampaignState

log = logging.getLogger(__name__)

MAX_REPORTED_ERRORS = 1000
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


async def import_upload(
    conn: Conn, campaign: Campaign, chunks: AsyncIterator[bytes], fmt: str
) -> ImportResult:
    """Import one upload atomically: a failure or a dropped connection imports nothing."""
    upload = RecipientImport(chunks, fmt, rules_for(campaign))
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
        await conn.copy_records_to_table(
            "import_staging", records=upload.rows(), columns=STAGING_COLUMNS
        )
        merged = one(await conn.fetchrow(queries["merge_import"], campaign.id, MAX_REPORTED_ERRORS))
        await conn.execute(queries["add_recipient_count"], campaign.id, merged["inserted"])
    errors = list(upload.errors)
    errors.extend(
        {"line": line, "message": "external_id: duplicate of an earlier row"}
        for line in merged["duplicate_lines"]
    )
    errors.sort(key=lambda e: int(e["line"]))
    log.info(
        "recipients imported",
        extra={
            "campaign_id": str(campaign.id),
            "accepted": merged["inserted"],
            "rejected": upload.rejected,
            "duplicates": merged["duplicates"],
        },
    )
    return ImportResult(
        accepted=merged["inserted"],
        rejected=upload.rejected,
        duplicates=merged["duplicates"],
        errors=errors[:MAX_REPORTED_ERRORS],
    )
