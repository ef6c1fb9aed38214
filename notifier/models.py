"""Domain vocabulary: states, channels and statuses, spelled as the database spells them."""

from __future__ import annotations

import re
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


class Scope(StrEnum):
    """What an API key may do."""

    CAMPAIGNS_READ = "campaigns:read"
    CAMPAIGNS_WRITE = "campaigns:write"
    KEYS_ADMIN = "keys:admin"


SCOPES = frozenset(map(str, Scope))

# A BCP 47 language tag as templates and recipients name locales: language, optional script,
# optional region ('ko', 'en-GB', 'zh-Hant-TW').
LOCALE_TAG = re.compile(r"[A-Za-z]{2,3}(?:-[A-Za-z]{4})?(?:-(?:[A-Za-z]{2}|[0-9]{3}))?")
LOCALE_HINT = "must be a BCP 47 language tag such as 'ko', 'en', 'ko-KR' or 'zh-Hant-TW'"

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
