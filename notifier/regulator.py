"""The regulator's report: what an incident team hands the authority after a campaign.

The incident and the laws it was checked against, the timeline with each duty's deadline
and whether it was met, what happened on each channel (counts, failures by reason class),
the people who cannot be reached (counts by reason), the notice as sent per channel and
locale, and the ledger's seal with whether its chains verify now.

It is made only of what `notifier purge` leaves behind (the campaign row, the deliveries'
statuses and errors, the ledger, the refused upload rows' reasons, the law), so it is the
same before and after a purge, and it holds no personal data: no address, number, account
id or value of a recipient, nor any provider reply text.
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Iterable
from datetime import datetime
from importlib import resources

import asyncpg
import orjson
from jinja2 import TemplateError

from notifier import campaigns, ledger, notice_page, routes
from notifier import plan as planner
from notifier.campaigns import Campaign
from notifier.checklist import rulesets
from notifier.db import Conn, one, queries
from notifier.law import LAW
from notifier.models import Channel, DeliveryStatus
from notifier.providers import Outcome, smtp, twilio
from notifier.schemas.regulator import (
    RegulatorReport,
    ReportChannel,
    ReportDuty,
    ReportFailure,
    ReportIncident,
    ReportLaw,
    ReportLedger,
    ReportNotice,
    ReportNoticePart,
    ReportOverride,
    ReportReason,
    ReportTimeline,
    ReportUnreachable,
)
from notifier.settings import Settings
from notifier.templates.checks import template_variables
from notifier.templates.environment import HTML_ENV, RenderFailed, environment_for, render
from notifier.templates.sms import SMS_CONTROLS

# Why a delivery failed, in classes a reader can weigh; the causes behind each are below.
FAILURE_CLASSES: dict[str, str] = {
    "invalid_contact": "the address or number does not exist or is not valid",
    "unreachable": "the handset or mailbox could not take the message",
    "refused": "refused as unwanted: spam or carrier filter, blocked, unsubscribed",
    "bounced": "the email relay accepted it, then reported it bounced or rejected",
    "too_long": "longer than the SMS budget the campaign allows",
    "no_contact": "no usable contact on the channel",
    "template": "the template could not be rendered for the person",
    "sender": "the service's own sending setup was refused (sender, region, capability)",
    "provider": "the provider or the connection failed until the attempts ran out",
    "other": "another cause, or none recorded",
}
# Permanent refusals by code; other codes go by the provider's own table (a transient or
# throttled one failed only once its attempts ran out: "provider").
_SMTP_CODES = {
    **dict.fromkeys((550, 551, 553, 556), "invalid_contact"),
    552: "unreachable",
    554: "refused",
}
_TWILIO_CODES = {
    **dict.fromkeys((21211, 21214, 21612, 21614, 30005, 30006), "invalid_contact"),
    **dict.fromkeys((30003,), "unreachable"),
    **dict.fromkeys((21610, 30004, 30007), "refused"),
    **dict.fromkeys((21617,), "too_long"),
    **dict.fromkeys((21212, 21408, 21602, 21603, 21604, 21606, 21609), "sender"),
}
# The service's own words for a failure, as the worker, the receipts and the reconciler
# write them into deliveries.last_error.
_CAUSES = {
    "no address": "no_contact",
    "sealed:": "no_contact",
    "template:": "template",
    "sms of": "too_long",
    "email bounced:": "bounced",
    "email rejected:": "bounced",
    "smtp invalid": "invalid_contact",
    "smtp server": "sender",
    "outcome unknown:": "provider",
}
_RETRIED = frozenset({Outcome.TRANSIENT, Outcome.THROTTLED, Outcome.UNCERTAIN})
NOT_TRACKED = "not tracked by this service"
_PARTS = ("subject", "text", "html")
_TEMPLATE = HTML_ENV.from_string(
    resources.files(__package__).joinpath("regulator_report.html").read_text("utf-8")
)


def failure_class(cause: str | None) -> str:
    """The class of a failed delivery's last error, read from its first two words."""
    words = (cause or "").split()[:2]
    head = " ".join(words)
    found = _CAUSES.get(head) or _CAUSES.get(words[0] if words else "")
    if found:
        return found
    if len(words) == 2 and words[0] in ("smtp", "twilio"):
        if not words[1].isdigit():
            return "provider"  # a connection failure, a timeout, an unnamed HTTP error
        code = int(words[1])
        if words[0] == "smtp":
            known, outcome = _SMTP_CODES.get(code), smtp.classify(code)
        else:
            known = _TWILIO_CODES.get(code)
            outcome = twilio.TWILIO_ERRORS.get(code, (Outcome.PERMANENT, ""))[0]
        return known or ("provider" if outcome in _RETRIED else "other")
    return "other"


async def report(conn: Conn, campaign_id: uuid.UUID, settings: Settings) -> RegulatorReport:
    """The report as of now; NotFound for an unknown campaign. Verifying the ledger reads
    every event of the campaign: minutes for tens of millions of deliveries."""
    async with conn.transaction(readonly=True, isolation="repeatable_read"):
        campaign = await campaigns.get(conn, campaign_id)
        found = await planner.plan(conn, campaign, settings)
        override = await conn.fetchval(queries["regulator_override"], campaign.id)
        sends = one(await conn.fetchrow(queries["regulator_sends"], campaign.id))
        channels = _channels(
            campaign, await conn.fetch(queries["regulator_deliveries"], campaign.id)
        )
        unreachable = _unreachable(await conn.fetch(queries["regulator_unreachable"], campaign.id))
    verdict = await ledger.verify(conn, campaign.id)
    first, last = sends["first_send"], sends["last_send"]
    outstanding = sum(c.outstanding for c in channels)
    same_day = first is not None and first.date() == last.date()
    return RegulatorReport(
        campaign_id=campaign.id,
        generated_at=found.now,
        incident=_incident(campaign),
        timeline=ReportTimeline(
            became_aware=campaign.discovered_at,
            launched_at=campaign.launched_at,
            first_send=first,
            last_send=last,
            completed_at=campaign.completed_at,
            launch_override=_override(override),
            duties=[_duty(d, last, outstanding, found.now) for d in found.deadlines],
        ),
        channels=channels,
        failure_classes=FAILURE_CLASSES,
        unreachable=unreachable,
        notices=_notices(campaign, settings, first.date().isoformat() if same_day else None),
        ledger=ReportLedger(
            seal=verdict.seal.hex(),
            events=verdict.events,
            chains=verdict.chains,
            verified=verdict.ok,
            problem=None if verdict.ok else verdict.describe(),
        ),
    )


def html(found: RegulatorReport) -> str:
    """The report as a printable HTML page: no script, no style but the public pages' own
    sheet, every value escaped."""
    return _TEMPLATE.render(report=found, items=LAW.items, style=notice_page.STYLE)


def _incident(campaign: Campaign) -> ReportIncident:
    return ReportIncident(
        name=campaign.name,
        incident_ref=campaign.incident_ref,
        state=str(campaign.state),
        channels=list(campaign.channels),
        accounts=campaign.recipients,
        discovered_at=campaign.discovered_at,
        jurisdictions=list(campaign.jurisdictions),
        rule_versions=dict(campaign.rule_versions),
        laws=[
            ReportLaw(
                id=r.id, version=r.version, name=r.name, source=r.source, authority=r.authority
            )
            for r in rulesets(campaign)
        ],
        facts={
            locale: {item: items[item] for item in LAW.items if item in items}
            for locale, items in sorted(campaign.facts.items())
        },
    )


def _override(raw: str | None) -> ReportOverride | None:
    if raw is None:
        return None
    given = orjson.loads(raw)
    return ReportOverride(reason=given.get("reason", ""), missing=list(given.get("missing", [])))


def _duty(
    d: planner.Deadline, last_send: datetime | None, outstanding: int, now: datetime
) -> ReportDuty:
    """Whether a duty was met: a notice when its last send came by the deadline; the report
    to the authority is made outside the service, which cannot know."""
    met: bool | None = None
    if not d.applies:
        verdict = "does not apply: below its threshold of people affected"
    elif d.duty == "report":
        verdict = f"{NOT_TRACKED}: the report to the authority is made outside it"
    elif d.due_at is None:
        verdict = "no fixed deadline: without undue delay"
    elif last_send is not None and last_send > d.due_at:
        met, verdict = False, "missed: the last notice was sent after the deadline"
    elif outstanding:
        met = False if now > d.due_at else None
        verdict = "missed: still sending at the deadline" if met is False else "still sending"
    elif last_send is None:
        met, verdict = False, "missed: no notice was sent"
    else:
        met, verdict = True, "met: the last notice was sent before the deadline"
    return ReportDuty(
        jurisdiction=d.jurisdiction,
        version=d.version,
        duty="report" if d.duty == "report" else "notice",
        what=d.what,
        article=d.article,
        applies=d.applies,
        due_at=d.due_at,
        met=met,
        verdict=verdict,
    )


def _channels(campaign: Campaign, rows: Iterable[asyncpg.Record]) -> list[ReportChannel]:
    """Per channel, from the grouped rows of regulator_deliveries."""
    order = [str(c) for c in campaigns.channels_of(campaign)]
    tally: dict[str, Counter[str]] = {c: Counter() for c in order}
    failures: dict[str, Counter[str]] = {c: Counter() for c in order}
    for row in rows:
        channel, status, n = row["channel"], row["status"], row["n"]
        if channel not in tally:
            order.append(channel)
            tally[channel], failures[channel] = Counter(), Counter()
        counts = tally[channel]
        counts[status] += n
        if status == DeliveryStatus.FAILED:
            failures[channel][failure_class(row["cause"])] += n
        if row["shared"]:
            counts["merged"] += n
        elif status in (DeliveryStatus.SENT, DeliveryStatus.DELIVERED):
            counts["messages"] += n
        if row["possible_duplicate"]:
            counts["duplicates"] += n
    return [
        ReportChannel(
            channel=Channel(c),
            deliveries=sum(tally[c][str(s)] for s in DeliveryStatus),
            notified=tally[c]["sent"] + tally[c]["delivered"],
            messages=tally[c]["messages"],
            delivered=tally[c]["delivered"],
            failed=tally[c]["failed"],
            failed_by_reason=[
                ReportFailure(reason=reason, count=n) for reason, n in _by_count(failures[c])
            ],
            suppressed=tally[c]["suppressed"],
            cancelled=tally[c]["cancelled"],
            outstanding=tally[c]["pending"] + tally[c]["sending"],
            possible_duplicates=tally[c]["duplicates"],
            merged_contacts=tally[c]["merged"],
        )
        for c in order
    ]


def _by_count(counts: Counter[str]) -> list[tuple[str, int]]:
    """Most frequent first, then by name: the same order every time."""
    return sorted(counts.items(), key=lambda item: (-item[1], item[0]))


def _unreachable(rows: Iterable[asyncpg.Record]) -> ReportUnreachable:
    """Refused rows by their reason, then people every channel failed by how each ended."""
    found: dict[str, Counter[str]] = {"rejected": Counter(), "failed": Counter()}
    for row in rows:
        reason = row["reason"]
        if row["source"] == "failed":
            reason = "; ".join(_ended(line) for line in reason.split("\n"))
        found[row["source"]][reason] += row["n"]
    return ReportUnreachable(
        total=sum(n for counts in found.values() for n in counts.values()),
        by_reason=[
            ReportReason(source="rejected" if source == "rejected" else "failed", reason=r, count=n)
            for source, counts in found.items()
            for r, n in _by_count(counts)
        ],
    )


def _ended(line: str) -> str:
    """'email failed smtp 550' as 'email: invalid_contact'; a suppressed one as such."""
    channel, status, cause = [*line.split(" ", 2), "", ""][:3]
    return f"{channel}: {failure_class(cause) if status == DeliveryStatus.FAILED else status}"


def _notices(campaign: Campaign, settings: Settings, notice_date: str | None) -> list[ReportNotice]:
    """Each template filled in with what the campaign knows: the facts of its locale, the
    locale, the date of the notice when every send was on one day (UTC), and the shape of
    the verification link; what differs per person stays `{{ name }}`."""
    base = routes.base_url(settings.public_base_url)
    used = template_variables(campaign.templates)
    found = []
    for channel in sorted(campaign.templates, key=_channel_order):
        for locale in sorted(campaign.templates[channel]):
            known = {**campaign.facts.get(locale, {}), "locale": locale}
            if notice_date is not None:
                known["notice_date"] = notice_date
            names = used.get((channel, locale), set())
            per_person = sorted(names - set(known))
            context = {**known, **{n: _placeholder(n) for n in per_person}}
            context["verify_url"] = routes.verify_url(base, _placeholder("verification_code"))
            page = notice_page.locale_of(campaign, locale) if campaign.launched_at else None
            parts = campaign.templates[channel][locale]
            found.append(
                ReportNotice(
                    channel=Channel(channel),
                    locale=locale,
                    notice_url=routes.notice_url(base, campaign.id, page) if page else None,
                    placeholders=per_person,
                    parts=[
                        ReportNoticePart(
                            part=part,
                            template=parts[part],
                            as_sent=_fill(channel, part, parts[part], context),
                        )
                        for part in _PARTS
                        if parts.get(part)
                    ],
                )
            )
    return found


def _channel_order(channel: str) -> int:
    order = [str(c) for c in Channel]
    return order.index(channel) if channel in order else len(order)


def _placeholder(name: str) -> str:
    return "{{ " + name + " }}"


def _fill(channel: str, part: str, source: str, context: dict[str, str]) -> str | None:
    """A part as sent, or None when it does not render without a recipient."""
    try:
        text = render(environment_for(part).from_string(source), context)
    except (TemplateError, RenderFailed):
        return None
    if channel == Channel.SMS:
        text = SMS_CONTROLS.sub("", text.replace("\r\n", "\n").replace("\r", "\n"))
    return text
