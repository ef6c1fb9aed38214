"""The send rate is read over a window of the reconciler's samples and the counts of the
moment: right from the first seconds after launch, quick to follow a change, and not
smoothed up from zero."""

from __future__ import annotations

import dataclasses
import uuid
from datetime import UTC, datetime

import pytest

from notifier.campaigns import RATE_WINDOW_SECONDS, Campaign, progress, rate_window
from notifier.models import CampaignState, Channel

LAUNCHED = 1_000_000.0


def _campaign(samples: list[tuple[float, float]], **changes: object) -> Campaign:
    at = datetime.fromtimestamp(LAUNCHED, UTC)
    campaign = Campaign(
        id=uuid.uuid4(),
        seq=1,
        name="n",
        incident_ref="i",
        state=CampaignState.SENDING,
        channels=(Channel.EMAIL,),
        default_locale="en",
        default_region=None,
        variables=(),
        templates={},
        rate_limit_per_second=None,
        fallback={},
        sms_max_segments=3,
        discovered_at=None,
        jurisdictions=(),
        rule_versions={},
        facts={},
        recipients=10_000,
        samples=tuple(samples),
        created_at=at,
        launched_at=at,
        completed_at=None,
    )
    return dataclasses.replace(campaign, **changes)  # type: ignore[arg-type]


def _counts(done: int, left: int) -> dict[str, dict[str, int]]:
    return {"email": {"sent": done, "pending": left, "sending": 0}}


def test_the_first_seconds_are_measured_from_the_launch() -> None:
    rate, eta = progress(_campaign([]), _counts(400, 1600), LAUNCHED + 2)
    assert rate == pytest.approx(200.0)
    assert eta == pytest.approx(8.0)


def test_the_rate_follows_the_last_window_only() -> None:
    # 100/s for a minute, then 300/s: one window later only the new rate is seen.
    samples: list[tuple[float, float]] = []
    done, now = 0, LAUNCHED
    for step in range(60 + int(RATE_WINDOW_SECONDS) + 1):
        done += 100 if step < 60 else 300
        now += 1
        samples = rate_window(_campaign(samples), now, done)
    assert len(samples) <= RATE_WINDOW_SECONDS + 2
    rate, _ = progress(_campaign(samples[:-1]), _counts(done, 5000), now)
    assert rate == pytest.approx(300.0)


def test_a_stall_shows_within_a_window() -> None:
    samples = [(LAUNCHED + t, 100.0 * t) for t in range(20)]  # 100/s, nothing after t=19
    campaign = _campaign(samples)
    half, _ = progress(campaign, _counts(1900, 100), LAUNCHED + 19 + RATE_WINDOW_SECONDS / 2)
    assert 0.0 < half < 60.0
    rate, eta = progress(campaign, _counts(1900, 100), LAUNCHED + 20 + RATE_WINDOW_SECONDS)
    assert rate == 0.0 and eta is None


def test_a_resume_measures_from_the_sample_kept_while_paused() -> None:
    campaign = _campaign([(LAUNCHED + 500, 1000.0)])
    rate, _ = progress(campaign, _counts(1400, 100), LAUNCHED + 502)
    assert rate == pytest.approx(200.0)


def test_a_campaign_not_sending_has_no_rate() -> None:
    campaign = _campaign([(LAUNCHED, 0.0)], state=CampaignState.PAUSED)
    assert progress(campaign, _counts(10, 5), LAUNCHED + 5) == (0.0, None)


def test_the_wait_before_the_first_send_is_left_out_once_it_can_be() -> None:
    # Nothing went out for the first 2 s (deliveries being created), then 200/s.
    samples = [(LAUNCHED, 0.0), (LAUNCHED + 1.5, 0.0), (LAUNCHED + 3, 200.0)]
    rate, _ = progress(_campaign(samples), _counts(600, 1000), LAUNCHED + 5)
    assert rate == pytest.approx(200.0)
    # Too soon after the first such sample to measure over it: from the launch, all told.
    rate, _ = progress(_campaign(samples[:1]), _counts(100, 1000), LAUNCHED + 2.5)
    assert rate == pytest.approx(40.0)
