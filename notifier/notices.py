"""Notices: what each recipient of a claimed batch receives.

A worker claims delivery rows; this turns each into the message to hand to a provider
(the campaign's templates filled in for the recipient, its verification link, its status
callback), or into a failed result when there is nothing that can be sent: contact details
that do not open, no address on the channel, a template that fails for this recipient, an
SMS longer than the campaign allows.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from typing import Any

import asyncpg
import orjson

from notifier import messageid, routes
from notifier.campaigns import Campaign
from notifier.models import Channel
from notifier.providers import Outcome, OutgoingEmail, OutgoingSms, SendResult
from notifier.sealing import Sealer, SealError
from notifier.settings import Settings
from notifier.templates.compiled import CompiledCampaign
from notifier.templates.sms import sms_segments

log = logging.getLogger(__name__)

# Campaigns whose compiled templates a worker keeps; a worker rarely serves more at once.
KEEP_COMPILED = 32

Outgoing = OutgoingEmail | OutgoingSms


def _failed(delivery_id: int, error: str) -> SendResult:
    return SendResult(delivery_id=delivery_id, outcome=Outcome.PERMANENT, error=error)


class Notices:
    """Builds the notices of claimed deliveries, compiling each campaign's templates once."""

    def __init__(self, settings: Settings, sealer: Sealer) -> None:
        self._sealer = sealer
        self._email_from = settings.email_from
        self._base_url = routes.base_url(settings.public_base_url)
        self._compiled: OrderedDict[uuid.UUID, CompiledCampaign] = OrderedDict()

    def compiled(self, campaign: Campaign) -> CompiledCampaign:
        """The campaign's templates, compiled on first use and kept for its next batches."""
        found = self._compiled.get(campaign.id)
        if found is None:
            found = CompiledCampaign(
                campaign.templates,
                email_from=self._email_from,
                message_id_domain=messageid.domain_of(self._email_from),
            )
            self._compiled[campaign.id] = found
            while len(self._compiled) > KEEP_COMPILED:
                self._compiled.popitem(last=False)
        return found

    def build(
        self, campaign: Campaign, channel: str, rows: Sequence[asyncpg.Record]
    ) -> tuple[list[Outgoing], list[SendResult]]:
        """Messages ready to send, and failed results for the rows that cannot be sent."""
        compiled = self.compiled(campaign)
        messages: list[Outgoing] = []
        failed: list[SendResult] = []
        # The notice's own items by locale, the same for every row of the batch.
        today = time.strftime("%Y-%m-%d", time.gmtime())
        items = {"": {"notice_date": today}}
        for locale, facts in campaign.facts.items():
            items[locale] = {**facts, "notice_date": today}
        for row in rows:
            notice = self._notice(compiled, campaign, channel, row, items)
            if isinstance(notice, SendResult):
                failed.append(notice)
            else:
                messages.append(notice)
        return messages, failed

    def _notice(
        self,
        compiled: CompiledCampaign,
        campaign: Campaign,
        channel: str,
        r: asyncpg.Record,
        items: Mapping[str, Mapping[str, str]],
    ) -> Outgoing | SendResult:
        """One delivery's message, or its failed result."""
        delivery_id: int = r["id"]
        try:
            email, phone = self._contacts(campaign.id, r)
        except SealError as exc:
            log.warning(
                "contact details do not open",
                extra={
                    "campaign_id": str(campaign.id),
                    "delivery_id": delivery_id,
                    "error": str(exc),
                },
            )
            return _failed(delivery_id, f"sealed: {exc}")
        to = email if channel == Channel.EMAIL else phone
        if to is None:  # purged, or never had one: nothing to send to
            return _failed(delivery_id, "no address")
        context = self._context(campaign.id, r)
        context.update(items.get(r["locale"], items[""]))
        try:
            if channel == Channel.EMAIL:
                ref = messageid.ref(campaign.id, delivery_id)
                data = compiled.render_email(r["locale"], to, context, ref=ref)
                return OutgoingEmail(delivery_id=delivery_id, to=to, data=data)
            body = compiled.render_sms(r["locale"], context)
        except Exception as exc:  # a template that cannot render for this row fails it alone
            return _failed(delivery_id, f"template: {type(exc).__name__}")
        segments = sms_segments(body)
        if segments > campaign.sms_max_segments:
            return _failed(
                delivery_id,
                f"sms of {segments} segments, over the campaign's "
                f"budget of {campaign.sms_max_segments}",
            )
        callback = routes.twilio_status_url(self._base_url, campaign.id, delivery_id)
        return OutgoingSms(delivery_id=delivery_id, to=to, body=body, status_callback=callback)

    def _context(self, campaign_id: uuid.UUID, r: asyncpg.Record) -> dict[str, Any]:
        """What the templates may use: the recipient's variables and the notice's own fields.
        `accounts` names every account whose contact this is (contact dedupe), or this one."""
        code = r["verification_code"]
        context: dict[str, Any] = orjson.loads(r["vars"])
        context.update(
            external_id=r["external_id"],
            accounts=", ".join(r["accounts"] or (r["external_id"],)),
            locale=r["locale"],
            verification_code=code,
            verify_url=routes.verify_url(self._base_url, code),
            notice_url=routes.notice_url(self._base_url, campaign_id, r["locale"]),
        )
        return context

    def _contacts(self, campaign_id: uuid.UUID, r: asyncpg.Record) -> tuple[str | None, str | None]:
        """A recipient's (email, phone): opened from the sealed pair, or as stored before
        contact details were sealed (until `notifier seal` has run)."""
        if r["contact_sealed"] is not None:
            return self._sealer.open(campaign_id, r["external_id"], r["contact_sealed"])
        return r["email"], r["phone"]
