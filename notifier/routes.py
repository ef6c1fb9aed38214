"""Paths of the API that other parts of the service put into what they send: the public
verification page in every notice, the published notice it leads to, and the status callback
in every SMS. The API's route table and the worker both take them from here."""

from __future__ import annotations

import uuid

VERIFY = "/v1/verify/{code}"
NOTICE = "/v1/campaigns/{id}/notice/{locale}"
TWILIO_STATUS = "/v1/webhooks/twilio/status"
EMAIL_EVENTS = "/v1/webhooks/email/events"


def base_url(public_base_url: str) -> str:
    """The public base URL as the functions below take it: without a trailing slash. Made
    once per process, since they run for every notice."""
    return public_base_url.rstrip("/")


def verify_url(base: str, code: str) -> str:
    """Where a person checks a notice's verification code (`base` from base_url())."""
    return base + VERIFY.format(code=code)


def notice_url(base: str, campaign_id: uuid.UUID, locale: str) -> str:
    """A campaign's published notice in one locale."""
    return base + NOTICE.format(id=campaign_id, locale=locale)


def twilio_status_url(base: str, campaign_id: uuid.UUID, delivery_id: int) -> str:
    """The status callback Twilio posts one SMS's progress to (its signature covers it)."""
    return f"{base}{TWILIO_STATUS}?campaign={campaign_id}&delivery={delivery_id}"
