"""Fault scenarios: the sandbox and the API, two worker processes, real Postgres and Redis.

Every scenario ends by reconciling the sandbox's log with Postgres (tests/faults/reconcile.py)
and adds a row to the report printed at the end of the run (`make faults`).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import aiohttp
import asyncpg
import pytest

from notifier.sealing import Sealer
from notifier.settings import Settings
from notifier.tooling.stack import LocalStack
from tests import factories
from tests.faults.reconcile import REPORT, Outcome, reconcile

RECIPIENTS = 2000


@pytest.fixture
def settings(settings: Settings) -> Settings:
    # Fast enough to finish in seconds, slow enough to be mid-campaign when a fault hits;
    # short leases, timeouts and receipt grace so that recovery is quick too.
    return settings.replace(
        email_rate=400.0,
        sms_rate=400.0,
        batch_size=100,
        lease_seconds=4,
        reconcile_seconds=1,
        receipt_grace_seconds=2.0,
        smtp_timeout=1.0,
        twilio_timeout=1.0,
    )


@pytest.fixture
async def fleet(stack: LocalStack) -> list[asyncio.subprocess.Process]:
    """Two worker processes, as operators run them (the stack stops them at the end)."""
    return [await stack.start_worker_process() for _ in range(2)]


async def launched(
    api: aiohttp.ClientSession, n: int, *, emails_sent: int = 0
) -> tuple[str, float]:
    """A campaign of n generated recipients, launched (and, if asked, sending: at least
    `emails_sent` emails out); returns its id and when it began."""
    cid = await factories.draft_with_recipients(api, n)
    started = time.monotonic()
    await factories.launch(api, cid)
    if emails_sent:
        await poll(api, cid, sent("email", emails_sent))
    return cid, started


async def poll(
    api: aiohttp.ClientSession, cid: str, done: Any, *, within: float = 180.0
) -> dict[str, Any]:
    """Like factories.wait_for, but riding out answers other than 200 (the API says 503
    while its database is away)."""
    deadline = time.monotonic() + within
    last: dict[str, Any] = {}
    while time.monotonic() < deadline:
        try:
            async with api.get(f"/v1/campaigns/{cid}") as resp:
                if resp.status == 200:
                    last = await resp.json()
                    if done(last):
                        return last
        except aiohttp.ClientError:
            pass
        await asyncio.sleep(0.25)
    raise AssertionError(f"timed out; last state {last.get('state')} {last.get('counts')}")


def sent(channel: str, at_least: int) -> Any:
    """A `done` test for poll: at least this many of a channel's deliveries are finished."""

    def done(campaign: dict[str, Any]) -> bool:
        counts = campaign["counts"].get(channel, {})
        finished = sum(n for status, n in counts.items() if status not in ("pending", "sending"))
        return bool(finished >= at_least)

    return done


async def finish(
    stack: LocalStack,
    api: aiohttp.ClientSession,
    db: asyncpg.Connection,
    cids: list[str],
    *,
    scenario: str,
    started: float,
    within: float = 180.0,
    done: Any = factories.settled,
    measure: Callable[[Outcome], object] | None = None,
) -> Outcome:
    """Wait until every campaign is settled (or `done`), reconcile, report, and insist
    nothing was lost, no extra copy went unflagged and every target was met.

    `measure` adds the scenario's own figures and targets to the outcome before anything is
    asserted. A scenario that does not settle in time is reconciled and reported all the
    same (the report shows what was left), then fails."""
    timed_out: AssertionError | None = None
    try:
        for cid in cids:
            await poll(api, cid, done, within=within)
    except AssertionError as exc:
        timed_out = exc
    seconds = time.monotonic() - started
    assert stack.sandbox is not None
    outcome = await reconcile(
        db,
        stack.sandbox,
        cids,
        Sealer.from_settings(stack.settings),
        scenario=scenario,
        seconds=seconds,
    )
    REPORT.add(outcome)
    if measure is not None:
        measure(outcome)
    if timed_out is not None:
        raise timed_out
    assert outcome.clean, outcome
    assert not outcome.missed, "targets missed: " + "; ".join(map(str, outcome.missed))
    return outcome


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not REPORT.outcomes:
        return
    terminalreporter.section("fault scenarios: the sandbox's log against Postgres")
    terminalreporter.write_line(REPORT.table())
    terminalreporter.write_line(
        "lost: recorded sent but never received, or never finished; duplicates: a person "
        "got an extra copy; flagged: deliveries marked possible_duplicate; unexplained: an "
        "extra copy nobody flagged; unknown: possibly sent, fate unknown (sent and flagged "
        "on a cancelled campaign, no provider message id)"
    )
    targets = REPORT.targets()
    if targets:
        terminalreporter.section("fault scenarios: targets")
        terminalreporter.write_line(targets)
    path = REPORT.write()
    if path is not None:
        terminalreporter.write_line(f"written to {path}")
