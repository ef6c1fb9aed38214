"""Campaigns: validation of what integrators send, creation, state changes, progress."""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg
import orjson
import phonenumbers

from notifier.db import Conn, counter_shard, one, queries
from notifier.errors import Conflict, NotFound, ValidationFailed
from notifier.models import (
    CAMPAIGN_TRANSITIONS,
    LOCALE_TAG,
    CampaignState,
    Channel,
    DeliveryStatus,
)
from notifier.templates import check_links, check_sms_budget, validate_templates

log = logging.getLogger(__name__)

_VARIABLE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
RESERVED_COLUMNS = frozenset({"external_id", "email", "phone", "locale"})
MAX_RATE = 100_000.0


# SMS segments one message may take unless the campaign says otherwise: a Korean notice with
# its link fits in two or three UCS-2 segments of 67 characters.
DEFAULT_SMS_SEGMENTS = 3
# Recipients whose deliveries are created in one transaction: launch creates the first
# chunk, dispatch the rest (about half a second each with two channels).
PREPARE_CHUNK = 20_000


@dataclass(frozen=True, slots=True, kw_only=True)
class CampaignSpec:
    """A validated request to create a campaign."""

    name: str
    incident_ref: str
    channels: tuple[Channel, ...]
    default_locale: str
    default_region: str | None
    variables: tuple[str, ...]
    templates: Mapping[str, Any]
    rate_limit_per_second: float | None
    fallback: Mapping[str, str]
    sms_max_segments: int = DEFAULT_SMS_SEGMENTS


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
    recipients: int
    rate_per_second: float
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
            recipients=row["recipients"],
            rate_per_second=row["rate_per_second"],
            created_at=row["created_at"],
            launched_at=row["launched_at"],
            completed_at=row["completed_at"],
            preparing=row["prepared_through"] is not None,
        )

    def template_locales(self) -> frozenset[str]:
        """Locales that have a template on every channel the campaign may send on."""
        sets = [set(self.templates.get(str(ch), {})) for ch in channels_of(self)]
        return frozenset(set.intersection(*sets)) if sets else frozenset()


def _text(body: Mapping[str, Any], name: str, problems: list[dict[str, str]], *, limit: int) -> str:
    value = body.get(name)
    if not isinstance(value, str) or not value.strip():
        problems.append({"field": name, "message": "required, a non-empty string"})
        return ""
    if len(value) > limit or any(ord(ch) < 32 for ch in value):
        problems.append(
            {"field": name, "message": f"at most {limit} characters, no control characters"}
        )
    return value.strip()


def parse_spec(body: object, *, link_domains: Collection[str] | None = None) -> CampaignSpec:
    """Validate a create-campaign body; every problem is reported at once, by field."""
    if not isinstance(body, dict):
        raise ValidationFailed("the body must be a JSON object")
    problems: list[dict[str, str]] = []
    known = {
        "name",
        "incident_ref",
        "channels",
        "default_locale",
        "default_region",
        "variables",
        "templates",
        "rate_limit_per_second",
        "fallback",
        "sms_max_segments",
    }
    for field in sorted(set(body) - known):
        problems.append({"field": field, "message": "unknown field"})
    name = _text(body, "name", problems, limit=200)
    incident_ref = _text(body, "incident_ref", problems, limit=100)

    channels: list[Channel] = []
    raw_channels = body.get("channels")
    if not isinstance(raw_channels, list) or not raw_channels:
        problems.append({"field": "channels", "message": 'a non-empty list of "email", "sms"'})
    else:
        for ch in raw_channels:
            if ch not in ("email", "sms") or Channel(ch) in channels:
                problems.append({"field": "channels", "message": f"unknown or repeated {ch!r}"})
            else:
                channels.append(Channel(ch))

    default_locale = body.get("default_locale")
    if not isinstance(default_locale, str) or not LOCALE_TAG.fullmatch(default_locale):
        problems.append({"field": "default_locale", "message": "a language tag such as 'ko'"})
        default_locale = ""

    region = body.get("default_region")
    if region is not None and (
        not isinstance(region, str) or region.upper() not in phonenumbers.SUPPORTED_REGIONS
    ):
        problems.append({"field": "default_region", "message": "an ISO 3166 region such as 'KR'"})
        region = None

    variables = body.get("variables", [])
    if not isinstance(variables, list) or not all(
        isinstance(v, str) and _VARIABLE.match(v) and v not in RESERVED_COLUMNS for v in variables
    ):
        problems.append(
            {"field": "variables", "message": "a list of column names (letters, digits, _)"}
        )
        variables = []

    rate = body.get("rate_limit_per_second")
    if rate is not None and (
        isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0 < rate <= MAX_RATE
    ):
        problems.append(
            {"field": "rate_limit_per_second", "message": f"a number in (0, {MAX_RATE:g}]"}
        )
        rate = None

    segments = body.get("sms_max_segments", DEFAULT_SMS_SEGMENTS)
    if isinstance(segments, bool) or not isinstance(segments, int) or not 1 <= segments <= 10:
        problems.append({"field": "sms_max_segments", "message": "an integer from 1 to 10"})
        segments = DEFAULT_SMS_SEGMENTS

    fallback = body.get("fallback", {})
    if not isinstance(fallback, dict) or any(
        (k, v) != ("email_failed", "sms") for k, v in fallback.items()
    ):
        problems.append({"field": "fallback", "message": 'only {"email_failed": "sms"}'})
        fallback = {}

    templates = body.get("templates")
    needed = [str(c) for c in channels]
    if fallback and "sms" not in needed:
        needed.append("sms")  # the fallback sends SMS, so it needs an SMS template
    if channels and default_locale:
        problems.extend(
            validate_templates(
                templates,
                channels=needed,
                default_locale=default_locale,
                variables=variables,
            )
        )
    if not problems:
        assert isinstance(templates, dict)
        problems.extend(check_sms_budget(templates, segments))
        if link_domains is not None:
            problems.extend(check_links(templates, link_domains))
    if problems:
        raise ValidationFailed("the campaign is not valid", errors=problems)
    assert isinstance(templates, dict)
    return CampaignSpec(
        name=name,
        incident_ref=incident_ref,
        channels=tuple(channels),
        default_locale=default_locale,
        default_region=region.upper() if region else None,
        variables=tuple(variables),
        templates=templates,
        rate_limit_per_second=float(rate) if rate is not None else None,
        fallback=fallback,
        sms_max_segments=segments,
    )


async def create(conn: Conn, spec: CampaignSpec, created_by: uuid.UUID | None = None) -> Campaign:
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
        )
        await conn.execute(queries["create_partitions"], campaign_id)
    log.info("campaign created", extra={"campaign_id": str(campaign_id)})
    return Campaign.from_row(one(row))


async def get(conn: Conn, campaign_id: uuid.UUID) -> Campaign:
    """One campaign, or NotFound."""
    row = await conn.fetchrow(queries["get_campaign"], campaign_id)
    if row is None:
        raise NotFound(f"no campaign {campaign_id}")
    return Campaign.from_row(row)


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


async def change_state(conn: Conn, campaign_id: uuid.UUID, action: str) -> Campaign:
    """Apply `launch`, `pause`, `resume` or `cancel`; an illegal change is a Conflict."""
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
        row = await conn.fetchrow(
            queries["set_campaign_state"],
            campaign_id,
            str(target),
            [str(s) for s in allowed_from],
        )
        if action == "cancel":
            await conn.fetchval(queries["cancel_pending"], campaign_id, 0)
    log.info("campaign state changed", extra={"campaign_id": str(campaign_id), "action": action})
    return Campaign.from_row(one(row))


async def prepare_deliveries(
    conn: Conn, campaign_id: uuid.UUID, channels: Sequence[str], after: int
) -> asyncpg.Record:
    """Create the next chunk of a launched campaign's deliveries, for the recipients after
    id `after`; the campaign's prepared_through moves on (NULL once all are created).

    After the first chunk and the last, the partition's statistics are refreshed, so that
    the planner knows its size rather than waiting for autovacuum's analyze (with stale
    statistics, an EXISTS over millions of rows was planned as a bitmap of all of them).
    """
    made = one(
        await conn.fetchrow(
            queries["create_deliveries"],
            campaign_id,
            [str(c) for c in channels],
            after,
            PREPARE_CHUNK,
            counter_shard(),
        )
    )
    if after == 0 or made["prepared_through"] is None:
        await conn.execute(f"ANALYZE deliveries_{campaign_id.hex}")
    return made


async def _create_deliveries(conn: Conn, row: asyncpg.Record) -> None:
    """At launch: the first chunk of deliveries (all of them for a campaign of up to
    PREPARE_CHUNK recipients); dispatch creates the rest."""
    if row["recipients"] == 0:
        raise Conflict("the campaign has no recipients to notify")
    first = await prepare_deliveries(conn, row["id"], row["channels"], 0)
    if first["made"] == 0 and not await conn.fetchval(
        queries["reachable"], row["id"], row["channels"]
    ):
        raise Conflict("no recipient has an address for the campaign's channels")


def progress(
    campaign: Campaign, counts_by_channel: Mapping[str, Mapping[str, int]]
) -> tuple[float, float | None]:
    """The recent send rate and, from it, the seconds until nothing is pending (unknown while
    deliveries are still being created)."""
    left = sum(c.get("pending", 0) + c.get("sending", 0) for c in counts_by_channel.values())
    rate = campaign.rate_per_second if campaign.state == CampaignState.SENDING else 0.0
    eta = round(left / rate, 1) if rate > 0 and left else (0.0 if not left else None)
    if campaign.preparing:
        eta = None
    return rate, eta


def channels_of(campaign: CampaignSpec | Campaign) -> Sequence[Channel]:
    """Channels dispatch runs for: the campaign's own, plus SMS when email falls back to it."""
    chans = list(campaign.channels)
    if campaign.fallback.get("email_failed") == "sms" and Channel.SMS not in chans:
        chans.append(Channel.SMS)
    return chans
