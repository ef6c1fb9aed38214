"""What the sandbox received, kept column-wise so millions of messages stay cheap.

Recipients and arrival times are always kept (tests check that each recipient got exactly
one message, and rate tests read the timestamps); bodies only while `keep_bodies` is on and
only up to `max_bodies` per channel.
"""

from __future__ import annotations

import time
from array import array
from collections import Counter
from dataclasses import dataclass, field

from notifier.models import Channel


@dataclass(frozen=True, slots=True, kw_only=True)
class Received:
    """One message as the sandbox saw it; `ref` is the SMS sid or the email Message-ID."""

    channel: Channel
    to: str
    at: float
    ref: str | None
    body: str | None

    def as_json(self) -> dict[str, object]:
        """The shape served by `GET /_sandbox/messages`."""
        key = "sid" if self.channel is Channel.SMS else "message_id"
        return {
            "channel": str(self.channel),
            "to": self.to,
            "at": self.at,
            key: self.ref,
            "body": self.body,
        }


@dataclass(slots=True)
class _Log:
    """One channel's columns; mutable by nature (it is appended to)."""

    to: list[str] = field(default_factory=list)
    at: array[float] = field(default_factory=lambda: array("d"))
    ref: list[str | None] = field(default_factory=list)
    body: list[bytes | str | None] = field(default_factory=list)
    refused: int = 0


class Inbox:
    """Every accepted message per channel, plus counts of refusals."""

    def __init__(self, *, keep_bodies: bool = True, max_bodies: int = 100_000) -> None:
        self.keep_bodies = keep_bodies
        self.max_bodies = max_bodies
        self._logs = {channel: _Log() for channel in Channel}

    def add(self, channel: Channel, to: str, ref: str | None, body: bytes | str | None) -> None:
        """Record one accepted message (an email with two recipients is two messages)."""
        log = self._logs[channel]
        log.to.append(to)
        log.at.append(time.time())
        log.ref.append(ref)
        if self.keep_bodies and len(log.body) < self.max_bodies:
            log.body.append(body)

    def find(self, channel: Channel, ref: str) -> str | None:
        """The `to` of the message with this reference (an SMS sid), or None; a linear
        search, for the rare status fetch."""
        log = self._logs[channel]
        try:
            return log.to[log.ref.index(ref)]
        except ValueError:
            return None

    def refuse(self, channel: Channel) -> None:
        """Count one message the sandbox refused (fault injection or bad input)."""
        self._logs[channel].refused += 1

    def count(self, channel: Channel) -> int:
        """How many messages were accepted on a channel."""
        return len(self._logs[channel].to)

    def refused(self, channel: Channel) -> int:
        """How many messages were refused on a channel."""
        return self._logs[channel].refused

    def recipients(self, channel: Channel) -> list[str]:
        """The `to` of every accepted message, in arrival order."""
        return list(self._logs[channel].to)

    def timestamps(self, channel: Channel) -> list[float]:
        """Arrival times (epoch seconds) of every accepted message."""
        return self._logs[channel].at.tolist()

    def per_second(self, channel: Channel) -> list[tuple[int, int]]:
        """Accepted messages per whole epoch second, in order."""
        counts = Counter(int(at) for at in self._logs[channel].at)
        return sorted(counts.items())

    def records(
        self, channel: Channel, *, offset: int = 0, limit: int | None = None
    ) -> list[Received]:
        """Accepted messages as records, bodies decoded (emails as UTF-8, errors replaced)."""
        log = self._logs[channel]
        stop = len(log.to) if limit is None else min(len(log.to), offset + limit)
        return [
            Received(
                channel=channel,
                to=log.to[index],
                at=log.at[index],
                ref=log.ref[index],
                body=_text(log.body[index]) if index < len(log.body) else None,
            )
            for index in range(max(0, offset), stop)
        ]

    def clear(self) -> None:
        """Forget everything received."""
        self._logs = {channel: _Log() for channel in Channel}


def _text(body: bytes | str | None) -> str | None:
    if isinstance(body, bytes):
        return body.decode("utf-8", "replace")
    return body
