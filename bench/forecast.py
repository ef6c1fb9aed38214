"""Step 5: the capacity planner's accuracy. A campaign of every account on both channels,
under a rate cap of its own well below what this machine sends at full speed (so the cap,
not the machine, is what binds): the plan's forecast read just before launch against the
finish measured, and the plan read again at a quarter, half and three quarters of the way,
when its forecast follows the observed rate.

Every time is on the database's clock (the plan's `now`, the campaign's `launched_at` and
`completed_at`, each delivery's `sent_at`), so the forecast and the finish compare without
any skew between processes.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import asyncpg

from bench import dispatch
from bench.accounts import AccountsFile
from bench.harness import Harness
from bench.upload import BOTH

# The planner's promise: a forecast within this fraction of the finish.
TOLERANCE = 0.10
CHECKPOINTS = (0.25, 0.5, 0.75)

# Below this fraction of the cap, something else set the pace (this machine, most likely).
CAP_BOUND = 0.95

# Messages, not deliveries: accounts sharing a contact share one provider message.
_LAST_SENDS = """
SELECT channel, count(DISTINCT provider_message_id) AS sent,
       extract(epoch FROM min(sent_at) - $2::timestamptz) AS first_seconds,
       extract(epoch FROM max(sent_at) - $2::timestamptz) AS last_seconds
FROM deliveries WHERE campaign_id = $1 AND sent_at IS NOT NULL
GROUP BY channel
"""


def _at(value: str) -> datetime:
    return datetime.fromisoformat(value)


def _seconds(later: str, earlier: str) -> float:
    return (_at(later) - _at(earlier)).total_seconds()


def error(forecast: float, actual: float) -> float:
    """forecast ÷ actual - 1: positive when the forecast said later than it was."""
    return forecast / actual - 1.0 if actual > 0 else 0.0


def _forecasts(found: dict[str, Any], launched_at: str) -> dict[str, Any]:
    """Each channel's forecast, its finish counted from the launch."""
    return {
        f["channel"]: {
            "left": f["left"],
            "rate": f["rate"],
            "sharing": f["sharing"],
            "seconds_from_plan": f["seconds"],
            "finish_seconds": _seconds(f["finish_at"], launched_at) if f["finish_at"] else None,
        }
        for f in found["forecasts"]
    }


class _Sampler:
    """Reads the plan when the campaign's progress passes each checkpoint (a `Watch`)."""

    def __init__(self, h: Harness, campaign_id: str, deliveries: int) -> None:
        self.h, self.campaign_id, self.deliveries = h, campaign_id, deliveries
        self.todo = list(CHECKPOINTS)
        self.taken: list[dict[str, Any]] = []

    async def __call__(self, state: dict[str, Any]) -> None:
        if not self.todo or state["state"] != "sending":
            return
        # Sent is done for the planner: an SMS receipt is not the provider's rate.
        left = sum(c["pending"] + c["sending"] for c in state["counts"].values())
        created = sum(sum(c.values()) for c in state["counts"].values())
        done = (created - left) / self.deliveries
        if done < self.todo[0]:
            return
        checkpoint = self.todo[0]
        self.todo = [c for c in self.todo if c > done]
        found = await self.h.call("GET", f"/v1/campaigns/{self.campaign_id}/plan")
        launched_at = state["launched_at"]
        self.taken.append(
            {
                "checkpoint": checkpoint,
                "done": round(done, 4),
                "elapsed_seconds": round(_seconds(found["now"], launched_at), 2),
                "observed_rate": found["observed_rate"],
                "left": sum(f["left"] for f in found["forecasts"]),
                "finish_seconds": (
                    round(_seconds(found["finish_at"], launched_at), 2)
                    if found["finish_at"]
                    else None
                ),
            }
        )


async def _last_sends(h: Harness, campaign_id: str, launched_at: str) -> dict[str, Any]:
    """Per channel, how many were sent and when the first and the last were, from launch."""
    conn = await asyncpg.connect(h.backends.database_url)
    try:
        rows = await conn.fetch(_LAST_SENDS, campaign_id, _at(launched_at))
    finally:
        await conn.close()
    sends = {}
    for r in rows:
        first, last = float(r["first_seconds"]), float(r["last_seconds"])
        sends[r["channel"]] = {
            "sent": r["sent"],
            "first_seconds": round(first, 2),
            "last_seconds": round(last, 2),
            "rate": round(r["sent"] / (last - first), 1) if last > first else None,
        }
    return sends


async def run(h: Harness, accounts: AccountsFile, rate_cap: float) -> dict[str, Any]:
    """Forecast, launch, sample the plan while sending, and compare with the finish."""
    channels: Sequence[str] = BOTH
    label = f"planner: email+sms {accounts.rows:,} capped at {rate_cap:,.0f}/s"
    campaign_id, upload = await dispatch.prepare(h, accounts, channels, label, rate_cap=rate_cap)
    before = await h.call("GET", f"/v1/campaigns/{campaign_id}/plan")
    sampler = _Sampler(h, campaign_id, upload["accepted"] * len(channels))
    measured = await dispatch.run(h, label, campaign_id, channels, accounts, watch=sampler)
    campaign = await h.call("GET", f"/v1/campaigns/{campaign_id}")
    launched_at, completed_at = campaign["launched_at"], campaign["completed_at"]
    forecast = _seconds(before["finish_at"], launched_at) if before["finish_at"] else None
    actual = _seconds(completed_at, launched_at) if completed_at else None
    sends = await _last_sends(h, campaign_id, launched_at)
    per_channel = _forecasts(before, launched_at)
    for channel, f in per_channel.items():
        last = sends.get(channel, {}).get("last_seconds")
        f["actual_seconds"] = last
        f["error"] = (
            round(error(f["finish_seconds"], last), 4) if last and f["finish_seconds"] else None
        )
    result: dict[str, Any] = {
        "name": label,
        "campaign_id": campaign_id,
        "rate_cap": rate_cap,
        "deliveries": measured["deliveries"],
        "plan_before_launch_seconds": round(_seconds(launched_at, before["now"]), 3),
        "forecast_seconds": round(forecast, 2) if forecast is not None else None,
        "actual_seconds": round(actual, 2) if actual is not None else None,
        "error": round(error(forecast, actual), 4) if forecast and actual else None,
        "tolerance": TOLERANCE,
        "per_channel": per_channel,
        "sends": sends,
        "while_sending": sampler.taken,
        "untimed_upload": upload,
        "run": measured,
    }
    for sample in sampler.taken:
        if actual and sample["finish_seconds"]:
            sample["error"] = round(error(sample["finish_seconds"], actual), 4)
    result["within_tolerance"] = result["error"] is not None and abs(result["error"]) <= TOLERANCE
    # The phase measures the planner only where the cap binds: a forecast from the rates
    # cannot know that this machine is too slow for them.
    result["cap_bound"] = all(
        s["rate"] is not None and s["rate"] >= CAP_BOUND * rate_cap for s in sends.values()
    )
    print(describe(result), flush=True)
    return result


def describe(result: dict[str, Any]) -> str:
    """The phase's figures as lines a person reads."""
    if result["error"] is None:
        return f"{result['name']}: no forecast or no finish to compare"
    verdict = "within" if result["within_tolerance"] else "NOT within"
    lines = [
        f"{result['name']}: forecast before launch {result['forecast_seconds']:.1f} s, "
        f"finished in {result['actual_seconds']:.1f} s: error {result['error']:+.1%} "
        f"({verdict} ±{result['tolerance']:.0%})"
    ]
    for channel, f in result["per_channel"].items():
        err = f"{f['error']:+.1%}" if f["error"] is not None else "—"
        lines.append(
            f"  {channel}: {f['left']:,} at {f['rate']:,.0f}/s, forecast "
            f"{f['finish_seconds']:.1f} s, last sent at {f['actual_seconds']} s ({err})"
        )
    if not result["cap_bound"]:
        rates = ", ".join(
            f"{channel} {s['rate'] or 0:,.0f}/s" for channel, s in result["sends"].items()
        )
        lines.append(
            f"  the cap did not bind ({rates}, under {CAP_BOUND:.0%} of "
            f"{result['rate_cap']:,.0f}/s): this machine set the pace; try a lower --plan-cap"
        )
    for s in result["while_sending"]:
        err = f"{s['error']:+.1%}" if s.get("error") is not None else "—"
        rate = f"{s['observed_rate']:,.0f}/s" if s["observed_rate"] is not None else "—"
        lines.append(
            f"  at {s['done']:.0%} ({s['elapsed_seconds']:.1f} s): observed {rate}, "
            f"forecast finish {s['finish_seconds']} s ({err})"
        )
    return "\n".join(lines)
