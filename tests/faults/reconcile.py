"""The end of every fault scenario: the sandbox's received log against Postgres.

Nobody lost: every delivery Postgres calls sent or delivered is in the sandbox's log, and
every delivery is terminal. Nobody told twice in silence: every address the sandbox got more
than once on a channel belongs to a delivery flagged possible_duplicate, and so does every
message the sandbox got for a delivery Postgres calls failed.

One delivery may end with its fate unknown: on a cancelled campaign, a delivery that an
attempt may have handed to a provider with no answer recorded ends as sent, flagged, without
a provider message id ("possibly sent"). It is final on either channel (no receipt can come
for a message whose id was never learned), and not lost if the sandbox never got it.

Harsher scenarios also measure targets (a figure against a limit); the report prints each
with its figure and whether it was met.
"""

from __future__ import annotations

import json
import os
import uuid
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

import asyncpg

from notifier.models import Channel
from notifier.sealing import Sealer
from notifier.tooling.sandbox import Sandbox

# What a delivery may end as, per channel: an email is done once the relay took it, an SMS
# only once its receipt came.
TERMINAL = {
    "email": frozenset({"sent", "delivered", "failed", "cancelled", "suppressed"}),
    "sms": frozenset({"delivered", "failed", "cancelled", "suppressed"}),
}
DELIVERED = frozenset({"sent", "delivered"})


@dataclass(frozen=True, slots=True, kw_only=True)
class Target:
    """A figure a scenario must reach: `measured` at most (or at least) `limit`. A figure
    never measured (the scenario did not get that far) is a target missed."""

    name: str
    measured: float | None
    limit: float
    at_most: bool = True
    unit: str = ""
    met: bool = field(init=False)

    def __post_init__(self) -> None:
        reached = self.measured is not None and (
            self.measured <= self.limit if self.at_most else self.measured >= self.limit
        )
        object.__setattr__(self, "met", reached)

    def __str__(self) -> str:
        figure = "not measured" if self.measured is None else _figure(self.measured) + self.unit
        bound = f"{'<=' if self.at_most else '>='} {_figure(self.limit)}{self.unit}"
        return f"{'met   ' if self.met else 'MISSED'}  {self.name}: {figure} (target {bound})"


def _figure(value: float) -> str:
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.2f}"


@dataclass(slots=True, kw_only=True)
class Outcome:
    """One scenario's figures, as the report prints them."""

    scenario: str
    recipients: int = 0
    deliveries: int = 0
    received: int = 0
    lost: int = 0
    not_terminal: int = 0
    duplicates: int = 0
    """Deliveries whose person got an extra copy (twice, or once though recorded failed)."""
    flagged: int = 0
    """Deliveries flagged possible_duplicate (a superset of the duplicates, if all is well)."""
    unknown: int = 0
    """Deliveries possibly sent: sent, flagged, no provider message id (fate unknown)."""
    unexplained: int = 0
    failed: int = 0
    retries: int = 0
    seconds: float = 0.0
    kills: int = 0
    """Worker processes killed (SIGKILL) while the campaign was sending."""
    throughput: float | None = None
    """Deliveries finished (none left pending or sending) per second from launch."""
    targets: list[Target] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return self.lost == 0 and self.unexplained == 0 and self.not_terminal == 0

    @property
    def missed(self) -> list[Target]:
        """The targets not met."""
        return [t for t in self.targets if not t.met]

    def target(
        self,
        name: str,
        measured: float | None,
        limit: float,
        *,
        at_most: bool = True,
        unit: str = "",
    ) -> Target:
        """Measure the scenario against a target; the report shows it, met or missed."""
        found = Target(name=name, measured=measured, limit=limit, at_most=at_most, unit=unit)
        self.targets.append(found)
        return found

    def nobody_lost(self) -> Target:
        """`clean` as a target: its figure is how many were lost, left unfinished, or told
        twice without a flag."""
        return self.target(
            "nobody lost, unfinished or told twice unflagged",
            self.lost + self.not_terminal + self.unexplained,
            0,
        )


async def reconcile(
    db: asyncpg.Connection,
    sandbox: Sandbox,
    campaign_ids: list[str],
    sealer: Sealer,
    *,
    scenario: str,
    seconds: float,
) -> Outcome:
    """Compare what the sandbox received with what Postgres recorded, for these campaigns
    (which must be the only ones this sandbox served)."""
    ids = [uuid.UUID(c) for c in campaign_ids]
    rows = await db.fetch(
        """
        SELECT d.campaign_id, d.channel, d.status, d.attempts, d.possible_duplicate,
               d.provider_message_id, r.external_id, r.contact_sealed
        FROM deliveries d
        JOIN recipients r ON r.campaign_id = d.campaign_id AND r.id = d.recipient_id
        WHERE d.campaign_id = ANY($1::uuid[])
        """,
        ids,
    )
    outcome = Outcome(
        scenario=scenario,
        recipients=await db.fetchval(
            "SELECT count(*) FROM recipients WHERE campaign_id = ANY($1::uuid[])", ids
        ),
        deliveries=len(rows),
        seconds=round(seconds, 1),
    )
    # A delivery's address on its channel may be missing (None): it is then never received.
    received: dict[str, Counter[str | None]] = {
        "email": Counter(sandbox.inbox.recipients(Channel.EMAIL)),
        "sms": Counter(sandbox.inbox.recipients(Channel.SMS)),
    }
    outcome.received = sum(sum(c.values()) for c in received.values())
    known: dict[str, set[str | None]] = {"email": set(), "sms": set()}
    for row in rows:
        channel, status = row["channel"], row["status"]
        email, phone = sealer.open(row["campaign_id"], row["external_id"], row["contact_sealed"])
        address = email if channel == "email" else phone
        got = received[channel][address]
        known[channel].add(address)
        outcome.retries += max(0, row["attempts"] - 1)
        possibly_sent = (
            status == "sent" and row["possible_duplicate"] and row["provider_message_id"] is None
        )
        if possibly_sent:
            outcome.unknown += 1
        elif status not in TERMINAL[channel]:
            outcome.not_terminal += 1
        if status in DELIVERED and got == 0 and not possibly_sent:
            outcome.lost += 1  # recorded as sent, never sent
        if status == "failed":
            outcome.failed += 1
        if row["possible_duplicate"]:
            outcome.flagged += 1
        # Received although recorded as never handed over (an SMS the provider took and
        # then reported undelivered has its message id: that one is accounted for).
        unrecorded = got and status not in DELIVERED and row["provider_message_id"] is None
        if got > 1 or unrecorded:
            # Told twice, or told although recorded as not: fine only if flagged.
            outcome.duplicates += 1
            if not row["possible_duplicate"]:
                outcome.unexplained += 1
    for channel, counts in received.items():
        strangers = set(counts) - known[channel]
        if strangers:
            outcome.unexplained += len(strangers)
            outcome.notes.append(f"{len(strangers)} {channel} addresses no delivery explains")
    return outcome


class Report:
    """The scenarios' outcomes, printed as a table at the end of the run and, when
    NOTIFIER_FAULTS_REPORT names a file, written there as JSON."""

    def __init__(self) -> None:
        self.outcomes: list[Outcome] = []

    def add(self, outcome: Outcome) -> None:
        self.outcomes.append(outcome)

    def table(self) -> str:
        head = (
            "scenario",
            "recipients",
            "deliveries",
            "lost",
            "duplicates",
            "flagged",
            "unknown",
            "unexplained",
            "failed",
            "retries",
            "seconds",
        )
        lines = [head]
        for o in self.outcomes:
            lines.append(
                (
                    o.scenario,
                    f"{o.recipients:,}",
                    f"{o.deliveries:,}",
                    str(o.lost + o.not_terminal),
                    str(o.duplicates),
                    str(o.flagged),
                    str(o.unknown),
                    str(o.unexplained),
                    str(o.failed),
                    str(o.retries),
                    f"{o.seconds:.1f}",
                )
            )
        widths = [max(len(line[i]) for line in lines) for i in range(len(head))]
        out = []
        for n, line in enumerate(lines):
            cells = [
                cell.ljust(w) if i == 0 else cell.rjust(w)
                for i, (cell, w) in enumerate(zip(line, widths, strict=True))
            ]
            out.append("  ".join(cells))
            if n == 0:
                out.append("  ".join("-" * w for w in widths))
        return "\n".join(out)

    def targets(self) -> str:
        """The scenarios that measured targets or throughput, each with its figures and one
        line per target, met or missed; empty when none did."""
        out = []
        for o in self.outcomes:
            if not o.targets and o.throughput is None:
                continue
            figures = [f"{o.kills} workers killed"] if o.kills else []
            if o.throughput is not None:
                figures.append(f"{o.throughput:,.1f} deliveries/s")
            out.append(o.scenario + (f" ({', '.join(figures)})" if figures else ""))
            out.extend(f"  {t}" for t in o.targets)
        return "\n".join(out)

    def write(self) -> Path | None:
        target = os.environ.get("NOTIFIER_FAULTS_REPORT")
        if not target or not self.outcomes:
            return None
        path = Path(target)
        path.write_text(
            json.dumps([asdict(o) for o in self.outcomes], indent=2) + "\n", encoding="utf-8"
        )
        return path


REPORT = Report()
