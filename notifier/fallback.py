"""The SMS fallback: a recipient whose email failed for good gets an SMS instead.

An email fails for good in one of two places: when the worker records its send (the relay
refused it, or every attempt failed), or later, when the relay posts a bounce for a message
it had accepted. Both add the fallback here, inside the transaction that records the
failure, so that the campaign is never found finished between the two.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from notifier import dedupe
from notifier.db import Conn, queries


async def add(conn: Conn, campaign_id: uuid.UUID, delivery_ids: Sequence[int], shard: int) -> int:
    """Give an SMS to the recipients among `delivery_ids` whose email has failed for good,
    when the campaign falls back to SMS; returns how many were added. Call it in the
    transaction that recorded the failures.

    A recipient gets one fallback SMS at most, however often its failure is reported, and
    only with a phone number. A cancelled campaign gets none: it was stopped on purpose. A
    completed campaign that gains one (a bounce that came after the last send) is reopened
    to sending by the reconciler's next pass, which reopens any campaign completed within
    the hour that has pending deliveries: the person must still be told. A paused one keeps
    its SMS pending until it resumes. The caller makes sure the SMS dispatch chains run.
    Recipients sharing a phone share one SMS (contact dedupe).
    """
    made: list[int] = await conn.fetchval(queries["add_fallback"], campaign_id, delivery_ids, shard)
    if made:
        await dedupe.link_fallback(conn, campaign_id, made, shard)
    return len(made)
