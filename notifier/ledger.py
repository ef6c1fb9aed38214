"""Checking the ledger's hash chain from outside the database.

Postgres chains every delivery event to the previous one of its campaign as it is written
(sql/migrations/0005_ledger_chain.sql). This module recomputes that chain from the events
themselves with Python's own SHA-256, so a verifier does not have to trust the database's
functions, and names the first link that does not hold.
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from notifier.db import Conn

GENESIS = bytes(32)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


def field(value: str | None) -> bytes:
    """One field as the chain writes it: "<length in bytes>:<UTF-8>", or "~" when absent."""
    if value is None:
        return b"~"
    data = value.encode()
    return b"%d:%s" % (len(data), data)


def link(
    previous: bytes,
    campaign_id: uuid.UUID,
    delivery_id: int,
    status: str,
    at: datetime,
    provider_message_id: str | None,
    detail: str | None,
) -> bytes:
    """The hash of one event, chained to the hash before it."""
    micros = (at - _EPOCH) // _MICROSECOND
    return hashlib.sha256(
        previous
        + field(str(campaign_id))
        + field(str(delivery_id))
        + field(status)
        + field(str(micros))
        + field(provider_message_id)
        + field(detail)
    ).digest()


@dataclass(frozen=True, slots=True, kw_only=True)
class Verdict:
    """What a verification found: the events checked, the head, and the first broken link."""

    campaign_id: uuid.UUID
    events: int
    head: bytes
    broken_at: int | None = None
    delivery_id: int | None = None
    reason: str | None = None

    @property
    def ok(self) -> bool:
        return self.broken_at is None

    def describe(self) -> str:
        if self.ok:
            return (
                f"ledger of campaign {self.campaign_id}: {self.events} events, chain intact; "
                f"head {self.head.hex()}"
            )
        where = f"event {self.broken_at}"
        if self.delivery_id is not None:
            where += f" (delivery {self.delivery_id})"
        return f"ledger of campaign {self.campaign_id}: broken at {where}: {self.reason}"


async def verify(conn: Conn, campaign_id: uuid.UUID, *, prefetch: int = 5000) -> Verdict:
    """Recompute the campaign's chain, event by event in order, against the stored hashes
    and the chain's head; the first mismatch, gap or missing tail is reported."""
    previous, expected = GENESIS, 1
    async with conn.transaction(readonly=True, isolation="repeatable_read"):
        head = await conn.fetchrow(
            "SELECT seq, hash FROM ledger_heads WHERE campaign_id = $1", campaign_id
        )
        cursor = conn.cursor(
            "SELECT seq, delivery_id, status, at, provider_message_id, detail, hash"
            " FROM delivery_events WHERE campaign_id = $1 AND seq IS NOT NULL ORDER BY seq",
            campaign_id,
            prefetch=prefetch,
        )
        async for row in cursor:
            seq = row["seq"]
            problem = None
            if seq != expected:
                what = "missing" if seq > expected else "repeated"
                problem = f"event {expected} is {what} (found {seq} next)"
            else:
                computed = link(
                    previous,
                    campaign_id,
                    row["delivery_id"],
                    row["status"],
                    row["at"],
                    row["provider_message_id"],
                    row["detail"],
                )
                if computed != row["hash"]:
                    problem = "its content does not match its hash (changed after it was written)"
            if problem is not None:
                return Verdict(
                    campaign_id=campaign_id,
                    events=expected - 1,
                    head=previous,
                    broken_at=seq,
                    delivery_id=row["delivery_id"],
                    reason=problem,
                )
            previous, expected = computed, expected + 1
    events = expected - 1
    if head is None:
        if events:
            return Verdict(
                campaign_id=campaign_id,
                events=events,
                head=previous,
                broken_at=events,
                reason="the chain's head is missing",
            )
        return Verdict(campaign_id=campaign_id, events=0, head=GENESIS)
    if head["seq"] != events:
        return Verdict(
            campaign_id=campaign_id,
            events=events,
            head=previous,
            broken_at=events + 1,
            reason=f"the chain's head is at event {head['seq']}; events after {events} are missing",
        )
    if head["hash"] != previous:
        return Verdict(
            campaign_id=campaign_id,
            events=events,
            head=previous,
            broken_at=events,
            reason="the chain's head does not match its last event",
        )
    return Verdict(campaign_id=campaign_id, events=events, head=previous)
