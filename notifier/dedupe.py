"""Contact dedupe: accounts that share an email address or a phone number get one message.

Family accounts and shared numbers are common in a breach's data. Sending each account its
own copy would tell one person the same thing several times (and read like the phishing that
follows a breach), and spend the provider's quota on it. So, unless a campaign turns it off:

- at launch, the recipients that share a contact (its keyed hash, never the plaintext) and a
  locale with another form a group per channel, led by its first recipient (`group`);
- every account still gets its own delivery, but a follower's points at the lead's, the
  shared send (`deliveries.shared_with`), and is never claimed by a worker (`link`);
- whenever a send's status moves to an outcome, its followers take it, in the same
  transaction, each change in the ledger naming the send (`follow`). So each account appears
  in the report and the ledger with the status of the message that reached its contact.

A fallback SMS for an account whose shared email failed is deduped by phone the same way
(`link_fallback`). Two fallback SMS created at the same moment by different writers for one
group may both be sends: the group then gets two SMS, the cost of not serialising every
fallback on a lock.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from notifier.db import Conn, queries
from notifier.models import Channel


def grouped_channels(channels: Sequence[str], falls_back_to_sms: bool) -> list[str]:
    """The channels whose contacts are grouped: the campaign's, and SMS when emails fall
    back to it."""
    found = [str(c) for c in channels]
    if falls_back_to_sms and Channel.SMS not in found:
        found.append(str(Channel.SMS))
    return found


async def group(conn: Conn, campaign_id: uuid.UUID, channels: Sequence[str]) -> None:
    """At launch, in its transaction: the groups of recipients sharing a contact."""
    await conn.execute(queries["group_contacts"], campaign_id, list(channels))
    await conn.execute(queries["analyze_groups"])


async def link(
    conn: Conn,
    campaign_id: uuid.UUID,
    channels: Sequence[str],
    after: int,
    through: int | None,
    shard: int,
) -> None:
    """Point the deliveries just created for recipients after `after` up to `through` (None:
    all) at their group's send, and give them its outcome if it has one. In the transaction
    that created them."""
    sends: list[int] = await conn.fetchval(
        queries["link_chunk"], campaign_id, after, through, shard, list(channels)
    )
    if sends:
        await follow(conn, campaign_id, sends, shard)


async def link_fallback(
    conn: Conn, campaign_id: uuid.UUID, delivery_ids: Sequence[int], shard: int
) -> None:
    """Point fallback SMS just created at their phone group's send. In their transaction."""
    sends: list[int] = await conn.fetchval(
        queries["link_fallback"], campaign_id, list(delivery_ids), shard
    )
    if sends:
        await follow(conn, campaign_id, sends, shard)


async def follow(
    conn: Conn, campaign_id: uuid.UUID, send_ids: Sequence[int], shard: int
) -> list[int]:
    """The deliveries sharing the sends `send_ids` take their outcomes; returns the emails
    among them that failed (candidates for the SMS fallback). Call it in the transaction
    that moved the sends."""
    failed: list[int] = await conn.fetchval(
        queries["follow_sends"], campaign_id, list(send_ids), shard
    )
    return failed


async def follow_all(conn: Conn, campaign_id: uuid.UUID, shard: int) -> list[int]:
    """`follow` for every send of the campaign with followers still waiting: after a cancel,
    which moves the sends in one statement, and before a campaign is found finished."""
    sends: list[int] = await conn.fetchval(queries["unfollowed_sends"], campaign_id)
    return await follow(conn, campaign_id, sends, shard) if sends else []


async def merged(conn: Conn, campaign_id: uuid.UUID) -> dict[str, int]:
    """Per channel, how many deliveries share another's send."""
    return {
        row["channel"]: int(row["n"])
        for row in await conn.fetch(queries["merged_counts"], campaign_id)
    }
