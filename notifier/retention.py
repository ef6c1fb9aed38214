"""Retention: finished campaigns give up their contact details; the proof stays.

`notifier purge --older-than 30d` removes every email address, phone number and template
variable (names, for instance) of campaigns that completed or were cancelled more than 30
days ago. The account ids, each delivery's statuses and times, the counts and the ledger
with its hash chain remain, so the report and `notifier ledger verify` work as before.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from notifier.db import Conn, queries

SLICE = 50_000
_AGE = re.compile(r"(\d+)([dh])")


def parse_age(text: str) -> timedelta:
    """ "30d" or "12h" as a duration; raises ValueError otherwise."""
    found = _AGE.fullmatch(text.strip())
    if found is None:
        raise ValueError(f"{text!r} is not an age like 30d or 12h")
    amount, unit = int(found[1]), found[2]
    return timedelta(days=amount) if unit == "d" else timedelta(hours=amount)


@dataclass(frozen=True, slots=True, kw_only=True)
class Purged:
    campaign_id: uuid.UUID
    completed_at: datetime
    recipients: int


async def purgeable(conn: Conn, older_than: timedelta) -> list[Purged]:
    """Finished campaigns older than the cutoff that still hold contact details."""
    cutoff = await conn.fetchval(queries["purge_cutoff"], older_than)
    return [
        Purged(campaign_id=r["id"], completed_at=r["completed_at"], recipients=r["recipients"])
        for r in await conn.fetch(queries["purgeable_campaigns"], cutoff)
    ]


async def purge(conn: Conn, campaign_id: uuid.UUID) -> int:
    """Remove one campaign's contact details, a slice per transaction (so a campaign of
    tens of millions never holds one huge transaction); returns the rows changed."""
    span = await conn.fetchrow(queries["recipient_id_range"], campaign_id)
    changed = 0
    if span is not None and span["low"] is not None:
        for start in range(span["low"], span["high"] + 1, SLICE):
            status = await conn.execute(
                queries["purge_contacts"], campaign_id, start, start + SLICE
            )
            changed += int(status.split()[-1])
    await conn.execute(queries["mark_purged"], campaign_id)
    return changed
