"""Runtime knobs for fault injection, set by tests through `POST /_sandbox/faults`.

Rates are fractions from 0 to 1 and are applied deterministically, spread evenly (a rate of
0.25 refuses exactly every fourth request), so a test can assert exact counts.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field

_RATES = (
    "sms_throttle_rate",
    "sms_error_rate",
    "sms_disconnect_rate",
    "sms_hang_rate",
    "smtp_tempfail_rate",
    "smtp_disconnect_rate",
    "smtp_stall_rate",
    "smtp_hang_rate",
    "callback_duplicate_rate",
    "callback_reorder_rate",
    "callback_loss_rate",
)


@dataclass(slots=True, kw_only=True)
class Faults:
    """The fault knobs; mutable on purpose, since flipping them at runtime is their point."""

    sms_throttle_rate: float = 0.0
    """Fraction of message creations answered 429 with Twilio code 20429."""
    sms_error_rate: float = 0.0
    """Fraction of message creations answered 500 with Twilio code 20500."""
    sms_retry_after: float | None = None
    """Retry-After seconds sent with each 429 (Twilio itself usually sends none)."""
    sms_disconnect_rate: float = 0.0
    """Fraction of message creations whose connection is dropped unanswered; none is created."""
    sms_hang_rate: float = 0.0
    """Fraction of messages created whose answer only comes after `hang_seconds`, past the
    client's timeout: the message exists, but the sender cannot know."""
    sms_undelivered: set[str] = field(default_factory=set)
    """Numbers whose status callback ends "undelivered" with ErrorCode 30003."""
    smtp_tempfail_rate: float = 0.0
    """Fraction of RCPT commands answered 451 4.7.1."""
    smtp_disconnect_rate: float = 0.0
    """Fraction of MAIL commands on which the server drops the connection without a reply."""
    smtp_stall_rate: float = 0.0
    """Fraction of MAIL commands never answered (the client times out; nothing was taken)."""
    smtp_hang_rate: float = 0.0
    """Fraction of messages taken whose final reply never comes: the message is in the inbox,
    but the client times out not knowing."""
    hang_seconds: float = 60.0
    """How long a hung SMS answer is held back."""
    callback_delay: float = 0.05
    """Seconds between accepting an SMS and posting its first status callback."""
    sms_interim_callbacks: bool = True
    """Post "sent" before the final status, as Twilio does; off halves callback traffic."""
    callback_duplicate_rate: float = 0.0
    """Fraction of messages whose final callback is posted twice."""
    callback_reorder_rate: float = 0.0
    """Fraction of messages whose callbacks arrive final first, then the interim "sent"."""
    callback_loss_rate: float = 0.0
    """Fraction of messages whose callbacks are never posted (the receipt must be fetched)."""
    _credit: dict[str, float] = field(default_factory=dict, repr=False)

    def hit(self, knob: str) -> bool:
        """Whether this request is one that the rate named by `knob` refuses."""
        rate: float = getattr(self, knob)
        if rate <= 0.0:
            return False
        credit = self._credit.get(knob, 0.0) + rate
        # The epsilon keeps rates like 0.1 exact: ten additions of 0.1 fall just short of 1.
        if credit >= 1.0 - 1e-9:
            self._credit[knob] = credit - 1.0
            return True
        self._credit[knob] = credit
        return False

    def update(self, changes: Mapping[str, object]) -> None:
        """Apply a JSON object of knob values; unknown names or bad values raise ValueError."""
        names = {f.name for f in dataclasses.fields(self) if not f.name.startswith("_")}
        unknown = set(changes) - names
        if unknown:
            raise ValueError(f"unknown fault knobs: {', '.join(sorted(unknown))}")
        for name, value in changes.items():
            setattr(self, name, _coerce(name, value))
            self._credit.pop(name, None)

    def as_json(self) -> dict[str, object]:
        """The knobs as served by `GET /_sandbox/faults`."""
        out: dict[str, object] = {}
        for f in dataclasses.fields(self):
            if not f.name.startswith("_"):
                value = getattr(self, f.name)
                out[f.name] = sorted(value) if isinstance(value, set) else value
        return out

    def reset(self) -> None:
        """Back to no faults, keeping the callback delay."""
        delay = self.callback_delay
        fresh = Faults(callback_delay=delay)
        for f in dataclasses.fields(self):
            setattr(self, f.name, getattr(fresh, f.name))


def _coerce(name: str, value: object) -> object:
    if name == "sms_undelivered":
        if not isinstance(value, list | tuple | set) or not all(isinstance(v, str) for v in value):
            raise ValueError("sms_undelivered must be a list of E.164 numbers")
        return set(value)
    if name == "sms_retry_after" and value is None:
        return None
    if name == "sms_interim_callbacks":
        if not isinstance(value, bool):
            raise ValueError(f"{name} must be true or false")
        return value
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{name} must be a number")
    number = float(value)
    if name in _RATES and not 0.0 <= number <= 1.0:
        raise ValueError(f"{name} must be between 0 and 1")
    if number < 0.0:
        raise ValueError(f"{name} must not be negative")
    return number
