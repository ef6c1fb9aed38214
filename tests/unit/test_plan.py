"""The planner while a campaign sends: each channel's forecast follows its share of the
observed rate, and the campaign finishes with its slowest channel."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from notifier.plan import Forecast, following

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def _planned(channel: str, left: int, rate: float) -> Forecast:
    return Forecast(
        channel=channel,
        left=left,
        rate=rate,
        sharing=1,
        seconds=left / rate,
        finish_at=NOW + timedelta(seconds=left / rate),
        meets_deadline=None,
        needed_rate=None,
    )


def _by_channel(forecasts: list[Forecast]) -> dict[str, Forecast]:
    return {f.channel: f for f in forecasts}


def test_a_slow_channel_is_not_sped_up_by_a_fast_ones_rate() -> None:
    # 30,000 each; email goes at 100/s, SMS at 50/s (the default provider rates). A minute
    # in, 6,000 emails and 3,000 SMS are done and the campaign runs at 150/s: the SMS need
    # 540 s more, not the (24,000 + 27,000) / 150 = 340 s of one rate for all the work.
    planned = [_planned("email", 24_000, 100.0), _planned("sms", 27_000, 50.0)]
    found = _by_channel(following(planned, {"email": 6000, "sms": 3000}, 150.0, NOW, None))
    assert found["email"].rate == pytest.approx(100.0)
    assert found["sms"].rate == pytest.approx(50.0)
    assert found["email"].seconds == pytest.approx(240.0)
    assert found["sms"].seconds == pytest.approx(540.0)
    assert max(f.finish_at for f in found.values() if f.finish_at) == NOW + timedelta(seconds=540)


def test_the_forecast_follows_a_rate_below_the_plan() -> None:
    # Planned at 1,000/s each, both channels run at 600/s: the forecast follows.
    planned = [_planned("email", 140_000, 1000.0), _planned("sms", 140_000, 1000.0)]
    found = _by_channel(following(planned, {"email": 60_000, "sms": 60_000}, 1200.0, NOW, None))
    assert found["email"].seconds == pytest.approx(140_000 / 600)
    assert found["sms"].seconds == pytest.approx(140_000 / 600)


def test_a_finished_channel_leaves_the_observed_rate_to_the_others() -> None:
    planned = [_planned("email", 0, 100.0), _planned("sms", 5000, 50.0)]
    found = _by_channel(following(planned, {"email": 30_000, "sms": 25_000}, 40.0, NOW, None))
    assert found["email"].seconds == 0
    assert found["sms"].rate == pytest.approx(40.0)
    assert found["sms"].seconds == pytest.approx(125.0)


def test_a_channel_that_has_sent_nothing_yet_keeps_its_planned_rate() -> None:
    planned = [_planned("email", 1000, 100.0), _planned("sms", 2000, 50.0)]
    found = _by_channel(following(planned, {"email": 500, "sms": 0}, 80.0, NOW, None))
    assert found["email"].rate == pytest.approx(80.0)
    assert found["sms"] == planned[1]


def test_with_nothing_observed_the_plan_stands() -> None:
    planned = [_planned("email", 1000, 100.0)]
    assert following(planned, {"email": 0}, 0.0, NOW, None) == planned


def test_a_deadline_missed_at_the_observed_rate_names_the_rate_that_would_meet_it() -> None:
    planned = [_planned("sms", 36_000, 100.0)]  # 360 s at the planned rate: in time
    deadline = NOW + timedelta(seconds=600)
    (sms,) = following(planned, {"sms": 4000}, 40.0, NOW, deadline)
    assert sms.seconds == pytest.approx(900.0)
    assert sms.meets_deadline is False and sms.needed_rate == 60  # 36,000 in 600 s
