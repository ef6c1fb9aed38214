"""What every provider takes and gives back: outgoing messages, classified results, one Protocol.

A provider never raises for a failure that concerns one message; it classifies it as
sent, transient, permanent or throttled, so the dispatcher decides retries in one place.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol, TypeVar, cast


class Outcome(StrEnum):
    """How one attempt to hand a message to a provider ended."""

    SENT = "sent"
    TRANSIENT = "transient"
    UNCERTAIN = "uncertain"
    """No answer after the message was handed over (a timeout or a dropped connection): the
    provider may have taken it. Retried like a transient failure, and flagged as a possible
    duplicate, since the retry may be the second copy."""
    PERMANENT = "permanent"
    THROTTLED = "throttled"
    RELEASED = "released"
    """Never handed to the provider: the campaign stopped sending before its turn came."""


@dataclass(frozen=True, slots=True, kw_only=True)
class OutgoingEmail:
    """A rendered email for one recipient; `data` is the complete RFC 5322 message."""

    delivery_id: int
    to: str
    data: bytes


@dataclass(frozen=True, slots=True, kw_only=True)
class OutgoingSms:
    """An SMS for one recipient; `to` is E.164."""

    delivery_id: int
    to: str
    body: str
    status_callback: str


@dataclass(frozen=True, slots=True, kw_only=True)
class SendResult:
    """What happened to one outgoing message; `error` never names the recipient."""

    delivery_id: int
    outcome: Outcome
    provider_message_id: str | None = None
    error: str | None = None
    retry_after: float | None = None


M_contra = TypeVar("M_contra", bound="OutgoingEmail | OutgoingSms", contravariant=True)
M = TypeVar("M")


class Provider(Protocol[M_contra]):
    """A channel's sender: one result per message, in input order, never raising per message."""

    async def send(self, batch: Sequence[M_contra]) -> list[SendResult]:
        """Hand every message of the batch to the provider and classify each answer."""
        ...

    async def close(self) -> None:
        """Release connections; the provider may not be used afterwards."""
        ...


async def fan_out(
    batch: Sequence[M], workers: int, send_one: Callable[[M], Awaitable[SendResult]]
) -> list[SendResult]:
    """Run `send_one` over the batch with at most `workers` in flight, keeping input order.

    A few long-lived worker tasks pulling from a shared index cost far less than one task
    per message when batches hold thousands of messages.
    """
    results: list[SendResult | None] = [None] * len(batch)
    next_index = 0

    async def worker() -> None:
        nonlocal next_index
        while next_index < len(batch):
            index = next_index
            next_index += 1
            results[index] = await send_one(batch[index])

    count = max(1, min(workers, len(batch)))
    if count == 1:
        await worker()
    else:
        async with asyncio.TaskGroup() as group:
            for _ in range(count):
                group.create_task(worker())
    return cast(list[SendResult], results)


# Addresses and long digit runs (phone numbers) are cut out of provider replies before
# they become `SendResult.error`, because errors are stored and logged with the delivery.
_PERSONAL = re.compile(r"<?[^\s<>@]+@[^\s<>]+>?|\+?\d[\d ()-]{5,}\d")


def scrub(reason: str, *, limit: int = 160) -> str:
    """A provider's reply text made safe to store: no addresses or numbers, one short line."""
    return " ".join(_PERSONAL.sub("<redacted>", reason).split())[:limit]
