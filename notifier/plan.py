"""The deadline clock and the capacity planner: what each law's duties are due by, counted
from when the company became aware, and whether the campaign will finish in time.

The forecast per channel divides the provider's rate among the campaigns sending on that
channel (this one included), under the campaign's own cap; once the campaign sends, each
channel's forecast follows its share of the observed rate, and the campaign finishes with
its slowest channel. Where a forecast misses the earliest
deadline of a notice to people, the rate that would meet it is given.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from notifier import campaigns as campaign_service
from notifier.campaigns import Campaign
from notifier.checklist import rulesets
from notifier.db import Conn, one, queries
from notifier.models import CampaignState
from notifier.settings import Settings

# Statuses after which a delivery is no longer work to do.
_FINISHED = frozenset({"sent", "delivered", "failed", "suppressed", "cancelled"})


@dataclass(frozen=True, slots=True, kw_only=True)
class Deadline:
    """One duty of one law: what, by when, how long is left (negative: overdue)."""

    jurisdiction: str
    version: str
    duty: str
    """`notice` (to each person) or `report` (to the authority)."""
    what: str
    article: str
    applies: bool
    """False when the campaign is below the duty's threshold of people affected."""
    due_at: datetime | None
    """None: "without undue delay", no fixed hours."""
    seconds_left: float | None


@dataclass(frozen=True, slots=True, kw_only=True)
class Forecast:
    """One channel's work left, the rate it can expect, and when it would finish."""

    channel: str
    left: int
    rate: float
    """Deliveries per second this campaign can expect on the channel: before launch, the
    provider's share under the campaign's cap; while sending, the channel's share of the
    observed rate."""
    sharing: int
    """Campaigns sending on the channel, this one included, that share the provider's rate."""
    seconds: float | None
    finish_at: datetime | None
    meets_deadline: bool | None
    needed_rate: float | None
    """The rate that would meet the deadline, when the forecast misses it (None once the
    deadline has passed: no rate would)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Plan:
    """A campaign's deadlines and forecasts at one moment."""

    now: datetime
    deadlines: list[Deadline]
    deadline: datetime | None
    """The earliest applicable deadline of a notice to people."""
    forecasts: list[Forecast]
    observed_rate: float | None
    """The campaign's measured send rate (all channels), while it sends."""
    finish_at: datetime | None
    meets_deadline: bool | None


async def plan(conn: Conn, campaign: Campaign, settings: Settings) -> Plan:
    """The campaign's deadlines and forecasts, by the database's clock."""
    now_s = await campaign_service.clock(conn)
    now = datetime.fromtimestamp(now_s, tz=UTC)
    counts = await campaign_service.counts(conn, campaign)
    reach = one(await conn.fetchrow(queries["plan_reach"], campaign.id))
    affected = int(reach["people"])
    deadlines = _deadlines(campaign, affected, now)
    due = [d.due_at for d in deadlines if d.duty == "notice" and d.applies and d.due_at]
    deadline = min(due, default=None)
    forecasts = []
    finished: dict[str, int] = {}
    for channel in campaign_service.channels_of(campaign):
        done = sum(n for s, n in counts.get(str(channel), {}).items() if s in _FINISHED)
        finished[str(channel)] = done
        left = max(0, int(reach[str(channel)]) - done)
        sharing = int(await conn.fetchval(queries["plan_sharing"], str(channel), campaign.id)) + 1
        rate = settings.rate_for(channel) / sharing
        if campaign.rate_limit_per_second:
            rate = min(rate, campaign.rate_limit_per_second)
        forecasts.append(_forecast(str(channel), left, rate, sharing, now, deadline))
    observed = None
    if campaign.state == CampaignState.SENDING:
        observed, _ = campaign_service.progress(campaign, counts, now_s)
        forecasts = following(forecasts, finished, observed, now, deadline)
    ends = [f.finish_at for f in forecasts]
    finish_at = max((e for e in ends if e is not None), default=None)
    meets = None if deadline is None or finish_at is None else finish_at <= deadline
    return Plan(
        now=now,
        deadlines=deadlines,
        deadline=deadline,
        forecasts=forecasts,
        observed_rate=observed,
        finish_at=finish_at,
        meets_deadline=meets,
    )


def _deadlines(campaign: Campaign, affected: int, now: datetime) -> list[Deadline]:
    found = []
    for ruleset in rulesets(campaign):
        for name, duty in (("notice", ruleset.notice), ("report", ruleset.report)):
            if duty is None:
                continue
            due = None
            if duty.deadline_hours is not None and campaign.discovered_at is not None:
                due = campaign.discovered_at + timedelta(hours=duty.deadline_hours)
            found.append(
                Deadline(
                    jurisdiction=ruleset.id,
                    version=ruleset.version,
                    duty=name,
                    what=duty.what,
                    article=duty.article,
                    applies=duty.threshold is None or affected >= duty.threshold,
                    due_at=due,
                    seconds_left=(due - now).total_seconds() if due else None,
                )
            )
    return found


def following(
    forecasts: Sequence[Forecast],
    finished: Mapping[str, int],
    observed: float,
    now: datetime,
    deadline: datetime | None,
) -> list[Forecast]:
    """While the campaign sends: each channel's forecast at its share of the observed rate.

    The campaign's finish is its slowest channel's, so the observed rate (counted over all
    channels) is split among the channels with work left, in proportion to what each has
    finished so far: when each channel runs at its own rate (a provider's, a cap), that
    share is its rate. Spreading the work left of all channels over the rate of all would
    let a fast channel's rate carry a slow one's work, and say "done" too early by as much
    as the slow channel lags. A channel that has finished nothing yet keeps its planned
    rate."""
    active = [f for f in forecasts if f.left > 0]
    done = sum(finished.get(f.channel, 0) for f in active)
    if observed <= 0 or done <= 0:
        return list(forecasts)
    out = []
    for f in forecasts:
        share = observed * finished.get(f.channel, 0) / done if f.left > 0 else 0.0
        out.append(_forecast(f.channel, f.left, share, f.sharing, now, deadline) if share else f)
    return out


def _forecast(
    channel: str, left: int, rate: float, sharing: int, now: datetime, deadline: datetime | None
) -> Forecast:
    seconds = left / rate if rate > 0 else None
    finish = now + timedelta(seconds=seconds) if seconds is not None else None
    meets, needed = None, None
    if deadline is not None and finish is not None:
        meets = finish <= deadline
        if not meets:
            window = (deadline - now).total_seconds()
            needed = math.ceil(left / window) if window > 0 else None
    return Forecast(
        channel=channel,
        left=left,
        rate=rate,
        sharing=sharing,
        seconds=seconds,
        finish_at=finish,
        meets_deadline=meets,
        needed_rate=needed,
    )


def describe(found: Plan) -> list[str]:
    """The plan as lines a person reads (the `notifier plan` command)."""
    lines = []
    for d in found.deadlines:
        when = d.due_at.strftime("%Y-%m-%d %H:%M UTC") if d.due_at else "without undue delay"
        left = "" if d.seconds_left is None else f" ({_duration(d.seconds_left)})"
        scope = "" if d.applies else " [below its threshold]"
        lines.append(f"{d.version} {d.duty}: {when}{left}{scope}. {d.article}")
    for f in found.forecasts:
        finish = f"finishes in {_duration(f.seconds)}" if f.seconds is not None else "no rate"
        verdict = _verdict(f.meets_deadline, f.needed_rate, f.rate, f.channel)
        lines.append(
            f"{f.channel}: {f.left:,} left at {f.rate:,.1f}/s "
            f"(provider rate shared by {f.sharing}): {finish}{verdict}"
        )
    return lines


def _verdict(meets: bool | None, needed: float | None, rate: float, channel: str) -> str:
    if meets is None:
        return ""
    if meets:
        return ", in time"
    if needed is None:
        return ", too late: the deadline has passed"
    unit = "SMS" if channel == "sms" else "emails"
    return f", too late: needs {needed:,.0f} {unit}/s; the rate it gets is {rate:,.1f}/s"


def _duration(seconds: float) -> str:
    sign, s = ("-" if seconds < 0 else ""), int(abs(seconds))
    if s < 60:
        return f"{sign}{s}s"
    hours, rest = divmod(s, 3600)
    return f"{sign}{hours}h{rest // 60:02d}m" if hours else f"{sign}{rest // 60}m{rest % 60:02d}s"
