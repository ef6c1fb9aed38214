"""Domain vocabulary: states, channels and statuses, spelled as the database spells them."""

from __future__ import annotations

from enum import StrEnum


class Channel(StrEnum):
    """A way to reach a person."""

    EMAIL = "email"
    SMS = "sms"


class CampaignState(StrEnum):
    """Where a campaign is in its life: draft → sending ⇄ paused → completed | cancelled."""

    DRAFT = "draft"
    SENDING = "sending"
    PAUSED = "paused"
    COMPLETED = "completed"
    CANCELLED = "cancelled"


class DeliveryStatus(StrEnum):
    """Where one message to one person on one channel is."""

    PENDING = "pending"
    SENDING = "sending"
    SENT = "sent"
    DELIVERED = "delivered"
    FAILED = "failed"
    SUPPRESSED = "suppressed"
    CANCELLED = "cancelled"


TERMINAL_STATUSES = frozenset(
    {
        DeliveryStatus.DELIVERED,
        DeliveryStatus.FAILED,
        DeliveryStatus.SUPPRESSED,
        DeliveryStatus.CANCELLED,
    }
)

# Campaign transitions the API allows: action → (states it may start from, state it ends in).
CAMPAIGN_TRANSITIONS: dict[str, tuple[frozenset[CampaignState], CampaignState]] = {
    "launch": (frozenset({CampaignState.DRAFT}), CampaignState.SENDING),
    "pause": (frozenset({CampaignState.SENDING}), CampaignState.PAUSED),
    "resume": (frozenset({CampaignState.PAUSED}), CampaignState.SENDING),
    "cancel": (
        frozenset({CampaignState.DRAFT, CampaignState.SENDING, CampaignState.PAUSED}),
        CampaignState.CANCELLED,
    ),
}
