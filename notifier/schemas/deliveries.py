"""Delivery bodies: a campaign's deliveries, one account's history, a verification answer."""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import Field

from notifier.models import Channel, DeliveryStatus
from notifier.schemas.common import Page, View


class Delivery(View):
    """One message to one person on one channel."""

    recipient_external_id: str
    channel: Channel
    status: DeliveryStatus
    attempts: int
    provider_message_id: str | None
    last_error: str | None
    sent_at: datetime | None
    delivered_at: datetime | None
    updated_at: datetime
    possible_duplicate: bool = Field(
        description="the provider may have sent it twice (a send whose outcome was lost)"
    )
    shares_send_of: str | None = Field(
        description="the account whose message, to the same contact, this delivery shares "
        "(contact dedupe); it takes that message's status. Null: its own message"
    )


class DeliveryList(Page[Delivery]):
    """A page of a campaign's deliveries."""


class RecipientDelivery(View):
    """One delivery to an account, with the campaign it belongs to."""

    campaign_id: uuid.UUID
    campaign_name: str
    incident_ref: str
    channel: Channel
    status: DeliveryStatus
    attempts: int
    sent_at: datetime | None
    delivered_at: datetime | None
    updated_at: datetime
    last_error: str | None


class RecipientDeliveries(View):
    """Every delivery to one account across campaigns, newest campaign first."""

    external_id: str
    items: list[RecipientDelivery]


class Verification(View):
    """A genuine notice: which campaign, channel and time, and where its full text is;
    nothing personal."""

    genuine: bool = Field(description="always true: an unknown code is a 404")
    campaign: str
    channel: Channel
    sent_at: datetime | None
    notice_url: str | None = Field(
        default=None,
        description="the campaign's full notice, published, in the person's language when it "
        "has one (else the campaign's default); null while none is published",
    )
