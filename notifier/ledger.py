"""Checking the ledger's hash chains from outside the database.

Postgres chains every delivery event to the previous one of its chain as it is written; a
campaign has up to eight chains, so that its writers need not take turns
(sql/migrations/0005_ledger_chain.sql and 0007_ledger_shards.sql). This module recomputes
the chains from the events themselves with Python's own SHA-256, so a verifier does not
have to trust the database's functions, and names the first link that does not hold.
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from notifier.db import Conn, queries

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


def seal(heads: dict[int, tuple[int, bytes]]) -> bytes:
    """One value for all of a campaign's chains: SHA-256 over each chain's head, in chain
    order, written "<chain>:<seq>:" followed by the head's hash. Kept somewhere the database's
    owner cannot reach, it later shows that nothing was changed, removed or added."""
    digest = hashlib.sha256()
    for shard in sorted(heads):
        seq, head = heads[shard]
        digest.update(b"%d:%d:%s" % (shard, seq, head))
    return digest.digest()


@dataclass(frozen=True, slots=True, kw_only=True)
class Verdict:
    """What a verification found: the events and chains checked, the seal over the chains'
    heads, and the first broken link."""

    campaign_id: uuid.UUID
    events: int
    chains: int
    seal: bytes
    chain: int | None = None
    broken_at: int | None = None
    delivery_id: int | None = None
    reason: str | None = None

    @property
    def ok(self) -> bool:
        return self.reason is None

    def describe(self) -> str:
        if self.ok:
            return (
                f"ledger of campaign {self.campaign_id}: {self.events} events in "
                f"{self.chains} chains, every chain intact; seal {self.seal.hex()}"
            )
        where = f"chain {self.chain}, event {self.broken_at}"
        if self.delivery_id is not None:
            where += f" (delivery {self.delivery_id})"
        return f"ledger of campaign {self.campaign_id}: broken at {where}: {self.reason}"


class _Broken(Exception):
    def __init__(self, chain: int, seq: int, reason: str, delivery_id: int | None = None):
        super().__init__(reason)
        self.chain, self.seq, self.reason, self.delivery_id = chain, seq, reason, delivery_id


def _close(chain: int, events: int, last: bytes, head: tuple[int, bytes] | None) -> None:
    """A chain's events are all read: its head must be its last event."""
    if head is None:
        raise _Broken(chain, events, "the chain's head is missing")
    if head[0] != events:
        raise _Broken(
            chain,
            events + 1,
            f"the chain's head is at event {head[0]}; events after {events} are missing",
        )
    if head[1] != last:
        raise _Broken(chain, events, "the chain's head does not match its last event")


async def verify(conn: Conn, campaign_id: uuid.UUID, *, prefetch: int = 5000) -> Verdict:
    """Recompute each of the campaign's chains, event by event in order, against the stored
    hashes and the chain's head; the first mismatch, gap or missing tail is reported."""
    events = 0
    async with conn.transaction(readonly=True, isolation="repeatable_read"):
        heads: dict[int, tuple[int, bytes]] = {
            r["shard"]: (r["seq"], r["hash"])
            for r in await conn.fetch(queries["ledger_heads"], campaign_id)
        }
        cursor = conn.cursor(queries["ledger_events"], campaign_id, prefetch=prefetch)
        chain, previous, expected = -1, GENESIS, 1
        seen: set[int] = set()
        try:
            async for row in cursor:
                if row["shard"] != chain:
                    if chain >= 0:
                        _close(chain, expected - 1, previous, heads.get(chain))
                    chain, previous, expected = row["shard"], GENESIS, 1
                    seen.add(chain)
                seq = row["seq"]
                if seq != expected:
                    what = "missing" if seq > expected else "repeated"
                    raise _Broken(
                        chain,
                        seq,
                        f"event {expected} is {what} (found {seq} next)",
                        row["delivery_id"],
                    )
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
                    raise _Broken(
                        chain,
                        seq,
                        "its content does not match its hash (changed after it was written)",
                        row["delivery_id"],
                    )
                previous, expected, events = computed, expected + 1, events + 1
            if chain >= 0:
                _close(chain, expected - 1, previous, heads.get(chain))
            for shard in sorted(set(heads) - seen):
                _close(shard, 0, GENESIS, heads[shard])
        except _Broken as broken:
            return Verdict(
                campaign_id=campaign_id,
                events=events,
                chains=len(heads),
                seal=seal(heads),
                chain=broken.chain,
                broken_at=broken.seq,
                delivery_id=broken.delivery_id,
                reason=broken.reason,
            )
    return Verdict(campaign_id=campaign_id, events=events, chains=len(heads), seal=seal(heads))
