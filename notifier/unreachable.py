"""The people a campaign cannot reach: the list a substitute notice (a public posting, as
PIPA art. 34 and GDPR art. 34 ask for) is made from.

Two kinds, both by account id only, never with an address, a number or another value:

- ``rejected``: rows an upload refused, kept when the upload commits (`record_refused`, in
  the upload's transaction, so a cut upload keeps none). An account an upload stored later
  is no longer listed as refused, and an account refused twice is listed once, by its latest
  refusal.
- ``failed``: recipients whose every delivery ended ``failed`` or ``suppressed``, read from
  the deliveries when asked, never stored. ``suppressed`` counts as not reached: it is a
  terminal status under which no message went out. ``cancelled`` does not: nobody tried, and
  the campaign's owner stopped it; a recipient with any delivery still pending, sending,
  sent or delivered is not listed either (it may yet be reached, or was). Under a fallback,
  a recipient whose email failed is listed until the fallback SMS is created.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

from notifier.db import Conn, queries
from notifier.deliveries import CsvChunks
from notifier.imports.rows import Refused
from notifier.providers import scrub

COLUMNS = ("external_id", "reason", "source", "line")
# The table refused rows are kept in, and the columns an upload copies into it.
REFUSED_TABLE = "rejected_rows"
REFUSED_COLUMNS = ("campaign_id", "upload_id", "line", "external_id", "reason")
# A failed recipient's reason names every channel's last error, each already short.
_REASON_CHARS = 500


async def record_refused(
    conn: Conn, campaign_id: uuid.UUID, upload_id: uuid.UUID, refused: list[Refused]
) -> None:
    """Keep an upload's refused rows (one bulk COPY), in the caller's transaction."""
    await conn.copy_records_to_table(
        REFUSED_TABLE,
        records=[(campaign_id, upload_id, *row) for row in refused],
        columns=REFUSED_COLUMNS,
    )


async def report(
    conn: Conn, campaign_id: uuid.UUID, *, chunk_rows: int = 2000
) -> AsyncIterator[bytes]:
    """The campaign's unreachable people as CSV (`COLUMNS`), streamed from server-side
    cursors: the refused rows first, then the recipients every channel failed."""
    out = CsvChunks(COLUMNS, chunk_rows)
    async with conn.transaction(readonly=True, isolation="repeatable_read"):
        refused = conn.cursor(queries["rejected_unreachable"], campaign_id, prefetch=chunk_rows)
        async for row in refused:
            if chunk := out.add((row["external_id"], row["reason"], "rejected", row["line"])):
                yield chunk
        failed = conn.cursor(queries["failed_unreachable"], campaign_id, prefetch=chunk_rows)
        async for row in failed:
            # Provider replies are scrubbed before they are stored; scrubbed again here, as
            # this list is made to be published.
            reason = scrub(row["reason"], limit=_REASON_CHARS)
            if chunk := out.add((row["external_id"], reason, "failed", "")):
                yield chunk
    yield out.rest()
