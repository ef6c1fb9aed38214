"""The regulator's report as the API shows it (built by notifier/regulator.py)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import Field

from notifier.models import Channel
from notifier.schemas.campaigns import Duty
from notifier.schemas.common import View


class ReportLaw(View):
    """One law the campaign is held to, in the version it was checked against."""

    id: str
    version: str
    name: str
    source: str
    authority: str


class ReportIncident(View):
    """The breach, as the campaign records it."""

    name: str
    incident_ref: str
    state: str
    channels: list[Channel]
    accounts: int = Field(description="accounts the campaign holds (affected people)")
    discovered_at: datetime | None = Field(description="when the company became aware")
    jurisdictions: list[str]
    rule_versions: dict[str, str]
    laws: list[ReportLaw]
    facts: dict[str, dict[str, str]] = Field(description="locale -> notice item -> its text")


class ReportDuty(Duty):
    """One duty of one law: its deadline and whether it was met."""

    met: bool | None = Field(description="null where the service cannot tell, or not yet")
    verdict: str


class ReportOverride(View):
    """A launch over a notice that lacked items its laws require."""

    reason: str
    missing: list[str]


class ReportTimeline(View):
    """From awareness to the last send, and the duties' deadlines."""

    became_aware: datetime | None
    launched_at: datetime | None
    first_send: datetime | None = Field(description="the ledger's first 'sent' event")
    last_send: datetime | None = Field(description="the ledger's last 'sent' event")
    completed_at: datetime | None
    launch_override: ReportOverride | None
    duties: list[ReportDuty]


class ReportFailure(View):
    """Failed deliveries of one reason class (see `failure_classes`)."""

    reason: str
    count: int


class ReportChannel(View):
    """One channel's deliveries: one per account, whether sent alone or shared."""

    channel: Channel
    deliveries: int
    notified: int = Field(description="accounts told: deliveries sent or delivered")
    messages: int = Field(
        description="messages sent or delivered, a send shared by several accounts once"
    )
    delivered: int
    failed: int
    failed_by_reason: list[ReportFailure]
    suppressed: int
    cancelled: int
    outstanding: int = Field(description="deliveries still pending or being sent")
    possible_duplicates: int
    merged_contacts: int = Field(description="accounts that shared another account's send")


class ReportReason(View):
    """People not reachable for one reason."""

    source: Literal["rejected", "failed"] = Field(
        description="rejected: refused at upload; failed: every channel failed"
    )
    reason: str
    count: int


class ReportUnreachable(View):
    """The people a substitute notice is for, counted by reason."""

    total: int
    by_reason: list[ReportReason]


class ReportNoticePart(View):
    """One part of a notice: its template and the text as sent, per-recipient values shown
    as `{{ name }}` (null when it cannot be rendered without a recipient)."""

    part: str
    template: str
    as_sent: str | None


class ReportNotice(View):
    """The notice on one channel in one locale."""

    channel: Channel
    locale: str
    notice_url: str | None = Field(description="the published full notice for this locale")
    placeholders: list[str] = Field(description="per-recipient values, left as {{ name }}")
    parts: list[ReportNoticePart]


class ReportLedger(View):
    """The evidence: the seal over the ledger's chain heads, and whether the chains verify."""

    seal: str = Field(description="SHA-256 over every chain's head, hex")
    events: int
    chains: int
    verified: bool
    problem: str | None = Field(description="the first broken link, when one is")


class RegulatorReport(View):
    """The report on a campaign for the authority: no personal data."""

    campaign_id: uuid.UUID
    generated_at: datetime
    incident: ReportIncident
    timeline: ReportTimeline
    channels: list[ReportChannel]
    failure_classes: dict[str, str]
    unreachable: ReportUnreachable
    notices: list[ReportNotice]
    ledger: ReportLedger
