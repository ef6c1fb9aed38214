"""The send rate is read over a window of the reconciler's samples: right from the first
pass after launch, quick to follow a change, and not smoothed up from zero."""

from __future__ import annotations

import pytest

from workers.reconciler import RATE_WINDOW_SECONDS, rate_over_window


def test_the_first_pass_measures_from_the_launch() -> None:
    rate, kept = rate_over_window([], now=102.0, done=400, launched=100.0)
    assert rate == pytest.approx(200.0)
    assert kept == [[100.0, 0.0], [102.0, 400.0]]


def test_the_rate_follows_the_last_window_only() -> None:
    # 100/s for a minute, then 300/s: one window later only the new rate is seen.
    samples: list[list[float]] = []
    done = 0
    for t in range(60):
        done += 100
        _, samples = rate_over_window(samples, float(t + 1), done, launched=0.0)
    for t in range(60, 60 + int(RATE_WINDOW_SECONDS) + 1):
        done += 300
        rate, samples = rate_over_window(samples, float(t + 1), done, launched=0.0)
    assert rate == pytest.approx(300.0)
    assert len(samples) <= RATE_WINDOW_SECONDS + 2


def test_a_stall_shows_within_a_window() -> None:
    samples = [[float(t), 100.0 * t] for t in range(20)]  # 100/s, then nothing from t=19
    half = 19.0 + RATE_WINDOW_SECONDS / 2
    rate, samples = rate_over_window(samples, half, 1900, launched=0.0)
    assert 0.0 < rate < 60.0
    rate, _ = rate_over_window(samples, 19.0 + RATE_WINDOW_SECONDS + 1, 1900, launched=0.0)
    assert rate == 0.0


def test_a_resume_measures_from_the_last_sample_while_paused() -> None:
    rate, _ = rate_over_window([[500.0, 1000.0]], now=502.0, done=1400, launched=0.0)
    assert rate == pytest.approx(200.0)
