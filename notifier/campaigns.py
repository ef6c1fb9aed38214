"""Campaigns: creation, state changes, progress."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg
import orjson

from notifier import dedupe
from notifier.db import Conn, counter_shard, one, queries
from notifier.errors import Conflict, NotFound
from notifier.law import LAW
from notifier.models import (
    CAMPAIGN_TRANSITIONS,
    CampaignState,
    Channel,
    DeliveryStatus,
)
from notifier.schemas.campaigns import CampaignCreate

log = logging.getLogger(__name__)

# Recipients whose deliveries are created in one transaction: launch creates the first
# chunk, dispatch the rest (about half a second each with two channels).
PREPARE_CHUNK = 20_000


@dataclass(frozen=True, slots=True, kw_only=True)
class Campaign:
    """A campaign as stored."""

    id: uuid.UUID
    seq: int
    name: str
    incident_ref: str
    state: CampaignState
    channels: tuple[Channel, ...]
    default_locale: str
    default_region: str | None
    variables: tuple[str, ...]
    templates: Mapping[str, Any]
    rate_limit_per_second: float | None
    fallback: Mapping[str, str]
    sms_max_segments: int
    discovered_at: datetime | None
    jurisdictions: tuple[str, ...]
    # Rule set id -> the version the campaign is held to ("kr-pipa@2023-09-15").
    rule_versions: Mapping[str, str]
    # Locale -> notice item -> its text: template variables of that locale's notices.
    facts: Mapping[str, Mapping[str, str]]
    # Accounts sharing a contact get one message (notifier/dedupe.py).
    dedupe_contacts: bool = True
    recipients: int
    # The reconciler's recent samples of finished deliveries: (epoch seconds, finished).
    samples: tuple[tuple[float, float], ...]
    created_at: datetime
    launched_at: datetime | None
    completed_at: datetime | None
    # Launched, but some recipients' deliveries are still to be created (a chunk at a time).
    preparing: bool = False

    @classmethod
    def from_row(cls, row: asyncpg.Record | Mapping[str, Any]) -> Campaign:
        return cls(
            id=row["id"],
            seq=row["seq"],
            name=row["name"],
            incident_ref=row["incident_ref"],
            state=CampaignState(row["state"]),
            channels=tuple(Channel(c) for c in row["channels"]),
            default_locale=row["default_locale"],
            default_region=row["default_region"],
            variables=tuple(row["variables"]),
            templates=orjson.loads(row["templates"]),
            rate_limit_per_second=row["rate_limit_per_second"],
            fallback=orjson.loads(row["fallback"]),
            sms_max_segments=row["sms_max_segments"],
            discovered_at=row["discovered_at"],
            jurisdictions=tuple(row["jurisdictions"]),
            rule_versions=orjson.loads(row["rule_versions"]),
            facts=orjson.loads(row["facts"]),
            dedupe_contacts=row["dedupe_contacts"],
            recipients=row["recipients"],
            samples=tuple((at, done) for at, done in orjson.loads(row["progress_samples"])),
            created_at=row["created_at"],
            launched_at=row["launched_at"],
            completed_at=row["completed_at"],
            preparing=row["prepared_through"] is not None,
        )

    def template_locales(self) -> frozenset[str]:
        """Locales that have a template on every channel the campaign may send on."""
        sets = [set(self.templates.get(str(ch), {})) for ch in channels_of(self)]
        return frozenset(set.intersection(*sets)) if sets else frozenset()


async def create(conn: Conn, spec: CampaignCreate, created_by: uuid.UUID | None = None) -> Campaign:
    """Store a new draft campaign with its partitions."""
    campaign_id = uuid.uuid4()
    async with conn.transaction():
        row = await conn.fetchrow(
            queries["insert_campaign"],
            campaign_id,
            spec.name,
            spec.incident_ref,
            [str(c) for c in spec.channels],
            spec.default_locale,
            spec.default_region,
            list(spec.variables),
            orjson.dumps(spec.templates).decode(),
            spec.rate_limit_per_second,
            orjson.dumps(spec.fallback).decode(),
            created_by,
            spec.sms_max_segments,
            spec.discovered_at,
            list(spec.jurisdictions),
            _rule_versions(spec),
            orjson.dumps(spec.facts).decode(),
            spec.dedupe_contacts,
        )
        await conn.execute(queries["create_partitions"], campaign_id)
    log.info("campaign created", extra={"campaign_id": str(campaign_id)})
    return Campaign.from_row(one(row))


def as_spec(campaign: Campaign) -> dict[str, Any]:
    """The campaign as the body that would create it, to check a change to it whole."""
    return {
        "name": campaign.name,
        "incident_ref": campaign.incident_ref,
        "channels": [str(c) for c in campaign.channels],
        "default_locale": campaign.default_locale,
        "default_region": campaign.default_region,
        "variables": list(campaign.variables),
        "templates": campaign.templates,
        "rate_limit_per_second": campaign.rate_limit_per_second,
        "fallback": dict(campaign.fallback),
        "sms_max_segments": campaign.sms_max_segments,
        "discovered_at": campaign.discovered_at,
        "jurisdictions": list(campaign.jurisdictions),
        "facts": campaign.facts,
        "dedupe_contacts": campaign.dedupe_contacts,
    }


async def update_draft(conn: Conn, campaign_id: uuid.UUID, spec: CampaignCreate) -> Campaign:
    """Store a draft's changed fields (`spec` is the whole campaign, already checked); a
    campaign no longer a draft is a Conflict."""
    row = await conn.fetchrow(
        queries["update_draft"],
        campaign_id,
        spec.name,
        orjson.dumps(spec.templates).decode(),
        orjson.dumps(spec.facts).decode(),
        spec.discovered_at,
        list(spec.jurisdictions),
        _rule_versions(spec),
        spec.rate_limit_per_second,
        spec.sms_max_segments,
        spec.dedupe_contacts,
    )
    if row is None:
        await get(conn, campaign_id)  # 404 when there is none
        raise Conflict("only a draft can be changed; this campaign was launched")
    log.info("campaign changed", extra={"campaign_id": str(campaign_id)})
    return Campaign.from_row(row)


def _rule_versions(spec: CampaignCreate) -> str:
    """The version of each law in force when the company became aware, as stored (JSON)."""
    found = LAW.versions(spec.jurisdictions, spec.discovered_at) if spec.discovered_at else {}
    return orjson.dumps(found).decode()


async def find(conn: Conn, campaign_id: uuid.UUID) -> Campaign | None:
    """One campaign, or None."""
    row = await conn.fetchrow(queries["get_campaign"], campaign_id)
    return Campaign.from_row(row) if row is not None else None


async def get(conn: Conn, campaign_id: uuid.UUID) -> Campaign:
    """One campaign, or NotFound."""
    campaign = await find(conn, campaign_id)
    if campaign is None:
        raise NotFound(f"no campaign {campaign_id}")
    return campaign


async def list_page(
    conn: Conn, *, after: int | None, limit: int
) -> tuple[list[Campaign], int | None]:
    """A page of campaigns, newest first, and the cursor of the next page."""
    rows = await conn.fetch(queries["list_campaigns"], after, limit + 1)
    items = [Campaign.from_row(r) for r in rows[:limit]]
    return items, (items[-1].seq if len(rows) > limit else None)


async def counts(conn: Conn, campaign: Campaign) -> dict[str, dict[str, int]]:
    """Deliveries by channel and status, every status present even when zero."""
    result = {str(ch): dict.fromkeys(map(str, DeliveryStatus), 0) for ch in campaign.channels}
    for row in await conn.fetch(queries["campaign_counts"], campaign.id):
        result.setdefault(row["channel"], dict.fromkeys(map(str, DeliveryStatus), 0))
        result[row["channel"]][row["status"]] = row["n"]
    return result


async def change_state(
    conn: Conn, campaign_id: uuid.UUID, action: str, *, override: Mapping[str, Any] | None = None
) -> Campaign:
    """Apply `launch`, `pause`, `resume` or `cancel`; an illegal change is a Conflict. A
    launch with an `override` (its reason, and the items its notice lacks) records it on the
    campaign and in the ledger, in the launch's transaction."""
    allowed_from, target = CAMPAIGN_TRANSITIONS[action]
    async with conn.transaction():
        row = await conn.fetchrow(queries["lock_campaign"], campaign_id)
        if row is None:
            raise NotFound(f"no campaign {campaign_id}")
        current = CampaignState(row["state"])
        if current not in allowed_from:
            raise Conflict(f"cannot {action} a campaign that is {current}")
        if action == "launch":
            await _create_deliveries(conn, row)
            if override is not None:
                await conn.execute(
                    queries["record_launch_override"], campaign_id, orjson.dumps(override).decode()
                )
        row = await conn.fetchrow(
            queries["set_campaign_state"],
            campaign_id,
            str(target),
            [str(s) for s in allowed_from],
        )
        if action == "cancel":
            await cancel_pending(conn, campaign_id)
    log.info("campaign state changed", extra={"campaign_id": str(campaign_id), "action": action})
    return Campaign.from_row(one(row))


async def cancel_pending(conn: Conn, campaign_id: uuid.UUID, *, shard: int = 0) -> int:
    """Cancel every send not yet handed to a provider; returns how many. The deliveries
    that share them follow, in the same transaction."""
    async with conn.transaction():
        cancelled = int(await conn.fetchval(queries["cancel_pending"], campaign_id, shard) or 0)
        await dedupe.follow_all(conn, campaign_id, shard)
    return cancelled


async def complete_if_done(conn: Conn, campaign_id: uuid.UUID) -> bool:
    """Complete a sending campaign with nothing left pending or in flight; whether it did."""
    return await conn.fetchval(queries["complete_if_done"], campaign_id) is not None


async def prepare_deliveries(
    conn: Conn,
    campaign_id: uuid.UUID,
    channels: Sequence[str],
    after: int,
    *,
    dedupe_contacts: bool,
) -> asyncpg.Record:
    """Create the next chunk of a launched campaign's deliveries, for the recipients after
    id `after`; the campaign's prepared_through moves on (NULL once all are created).

    After the first chunk and the last, the partition's statistics are refreshed, so that
    the planner knows its size rather than waiting for autovacuum's analyze (with stale
    statistics, an EXISTS over millions of rows was planned as a bitmap of all of them).
    With contact dedupe, the new deliveries of accounts sharing a contact with an earlier one
    point at its send. Run it in a transaction.
    """
    shard = counter_shard()
    made = one(
        await conn.fetchrow(
            queries["create_deliveries"],
            campaign_id,
            [str(c) for c in channels],
            after,
            PREPARE_CHUNK,
            shard,
        )
    )
    if after == 0 or made["prepared_through"] is None:
        await conn.execute(queries["analyze_deliveries"], campaign_id)
    if dedupe_contacts and made["made"]:
        # After the statistics: on a partition it believes empty, the planner reads the
        # whole chunk once per shared send (a second for a thousand of them).
        await dedupe.link(
            conn, campaign_id, [str(c) for c in channels], after, made["prepared_through"], shard
        )
    return made


async def _create_deliveries(conn: Conn, row: asyncpg.Record) -> None:
    """At launch: the first chunk of deliveries (all of them for a campaign of up to
    PREPARE_CHUNK recipients); dispatch creates the rest."""
    if row["recipients"] == 0:
        raise Conflict("the campaign has no recipients to notify")
    if row["dedupe_contacts"]:
        falls_back = orjson.loads(row["fallback"]).get("email_failed") == Channel.SMS
        await dedupe.group(conn, row["id"], dedupe.grouped_channels(row["channels"], falls_back))
    first = await prepare_deliveries(
        conn, row["id"], row["channels"], 0, dedupe_contacts=row["dedupe_contacts"]
    )
    if first["made"] == 0 and not await conn.fetchval(
        queries["reachable"], row["id"], row["channels"]
    ):
        raise Conflict("no recipient has an address for the campaign's channels")


# The send rate is read over about this many seconds of samples, and over one at least.
RATE_WINDOW_SECONDS = 10.0
MIN_SPAN_SECONDS = 1.0


async def clock(conn: Conn) -> float:
    """The database's time, in epoch seconds: the clock the progress samples are taken by."""
    return float(await conn.fetchval(queries["clock"]))


def finished(counts_by_channel: Mapping[str, Mapping[str, int]]) -> int:
    """Deliveries no longer pending or being sent."""
    return sum(
        n
        for per in counts_by_channel.values()
        for status, n in per.items()
        if status not in ("pending", "sending")
    )


def progress(
    campaign: Campaign, counts_by_channel: Mapping[str, Mapping[str, int]], now: float
) -> tuple[float, float | None]:
    """The send rate over the last RATE_WINDOW_SECONDS and, from it, the seconds until
    nothing is pending (unknown while deliveries are still being created)."""
    left = sum(c.get("pending", 0) + c.get("sending", 0) for c in counts_by_channel.values())
    rate = 0.0
    if campaign.state == CampaignState.SENDING:
        *before, (_, last) = rate_window(campaign, now, finished(counts_by_channel))
        # From the oldest sample taken once sending had begun, if one is old enough to
        # measure over: the wait before the first send is not part of the rate.
        old = [s for s in before if now - s[0] >= MIN_SPAN_SECONDS] or before[:1]
        since, base = next((s for s in old if s[1] > 0), old[0])
        rate = max(0.0, (last - base) / (now - since)) if now > since else 0.0
    eta = round(left / rate, 1) if rate > 0 and left else (0.0 if not left else None)
    if campaign.preparing:
        eta = None
    return rate, eta


def rate_window(campaign: Campaign, now: float, done: int) -> list[tuple[float, float]]:
    """The campaign's samples with (now, done) added, trimmed to the window and the newest
    sample before it (the baseline the rate is measured from). With no sample yet (the
    first seconds after launch), the launch is the baseline, with nothing finished."""
    launched = campaign.launched_at.timestamp() if campaign.launched_at else now
    kept = [*(campaign.samples or [(launched, 0.0)]), (now, float(done))]
    inside = next(i for i, (at, _) in enumerate(kept) if at >= now - RATE_WINDOW_SECONDS)
    return kept[max(0, inside - 1) :]


def channels_of(campaign: CampaignCreate | Campaign) -> Sequence[Channel]:
    """Channels dispatch runs for: the campaign's own, plus SMS when email falls back to it."""
    chans = list(campaign.channels)
    if campaign.fallback.get("email_failed") == "sms" and Channel.SMS not in chans:
        chans.append(Channel.SMS)
    return chans
