"""Paths of the API that other parts of the service put into what they send: the public
verification page in every notice and the status callback in every SMS. The API's route
table and the worker both take them from here."""

from __future__ import annotations

import uuid

VERIFY = "/v1/verify/{code}"
TWILIO_STATUS = "/v1/webhooks/twilio/status"
EMAIL_EVENTS = "/v1/webhooks/email/events"


def verify_url(base_url: str, code: str) -> str:
    """Where a person checks a notice's verification code."""
    return base_url.rstrip("/") + VERIFY.format(code=code)


def twilio_status_url(base_url: str, campaign_id: uuid.UUID, delivery_id: int) -> str:
    """The status callback Twilio posts one SMS's progress to (its signature covers it)."""
    return f"{base_url.rstrip('/')}{TWILIO_STATUS}?campaign={campaign_id}&delivery={delivery_id}"
