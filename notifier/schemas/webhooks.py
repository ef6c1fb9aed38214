"""Provider callback bodies that are JSON: the email relay's delivery events."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from notifier.schemas.common import View

MAX_EMAIL_EVENTS = 1000


class EmailEvent(BaseModel):
    """What the relay learnt about one message; fields it adds of its own are ignored."""

    model_config = ConfigDict(extra="ignore", coerce_numbers_to_str=True)

    message_id: str = Field(description="the Message-ID the notice was sent with")
    event: str = Field(
        examples=["delivered", "bounced", "rejected"],
        description="delivered, bounced or rejected settle the email; others are ignored",
    )
    reason: str | None = None


class EmailEvents(BaseModel):
    """A signed post of events."""

    model_config = ConfigDict(extra="ignore")

    events: list[EmailEvent] = Field(max_length=MAX_EMAIL_EVENTS)


class EmailEventsResult(View):
    """How many events came and how many settled a delivery."""

    received: int
    applied: int
