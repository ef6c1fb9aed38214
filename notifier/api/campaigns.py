"""Campaign handlers: create, read, list, upload recipients, the checklist, state changes."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web

from notifier import campaigns as service
from notifier import chains, dedupe, recipients
from notifier import plan as planner
from notifier.api import params
from notifier.api.bodies import read_model
from notifier.api.context import (
    AUDIT_DETAIL,
    KEY,
    POOL,
    REDIS,
    SEALER,
    SETTINGS,
    Handler,
    requires,
)
from notifier.api.idempotency import BODY_DIGEST
from notifier.api.responses import render
from notifier.campaigns import Campaign
from notifier.checklist import check
from notifier.db import Conn
from notifier.errors import Conflict, RequestTimeout, UnsupportedMediaType, ValidationFailed
from notifier.imports.upload import MEDIA_TYPES
from notifier.models import Scope
from notifier.schemas import campaigns as schemas
from notifier.schemas.common import validated


async def view(conn: Conn, campaign: Campaign) -> schemas.Campaign:
    """A campaign as the API shows it, with its counts and progress."""
    counts = await service.counts(conn, campaign)
    rate, eta = service.progress(campaign, counts, await service.clock(conn))
    return schemas.Campaign(
        id=campaign.id,
        name=campaign.name,
        incident_ref=campaign.incident_ref,
        state=campaign.state,
        channels=list(campaign.channels),
        default_locale=campaign.default_locale,
        default_region=campaign.default_region,
        variables=list(campaign.variables),
        templates=dict(campaign.templates),
        rate_limit_per_second=campaign.rate_limit_per_second,
        fallback=dict(campaign.fallback),
        sms_max_segments=campaign.sms_max_segments,
        discovered_at=campaign.discovered_at,
        jurisdictions=list(campaign.jurisdictions),
        rule_versions=dict(campaign.rule_versions),
        facts={locale: dict(items) for locale, items in campaign.facts.items()},
        dedupe_contacts=campaign.dedupe_contacts,
        created_at=campaign.created_at,
        launched_at=campaign.launched_at,
        completed_at=campaign.completed_at,
        recipients=campaign.recipients,
        preparing=campaign.preparing,
        counts=counts,  # type: ignore[arg-type]  # validated into channels and statuses
        merged=await dedupe.merged(conn, campaign.id),  # type: ignore[arg-type]  # validated
        rate_per_second=round(rate, 2),
        eta_seconds=eta,
    )


@requires(Scope.CAMPAIGNS_WRITE)
async def create(request: web.Request) -> web.Response:
    links = request.app[SETTINGS].allowed_link_domains()
    spec = await read_model(request, schemas.CampaignCreate, context={schemas.LINK_DOMAINS: links})
    async with request.app[POOL].acquire() as conn:
        campaign = await service.create(conn, spec, created_by=request[KEY].id)
        return render(await view(conn, campaign), status=201)


@requires(Scope.CAMPAIGNS_WRITE)
async def update(request: web.Request) -> web.Response:
    """Change a draft: the changed campaign is checked whole, as a new one would be, and may
    not drop a locale its uploaded recipients may be in."""
    change = await read_model(request, schemas.CampaignUpdate)
    links = request.app[SETTINGS].allowed_link_domains()
    async with request.app[POOL].acquire() as conn:
        campaign = await service.get(conn, params.campaign_id(request))
        spec = validated(
            schemas.CampaignCreate,
            service.as_spec(campaign) | change.model_dump(exclude_unset=True),
            context={schemas.LINK_DOMAINS: links},
        )
        if campaign.recipients:
            _keeps_locales(campaign, spec)
        updated = await service.update_draft(conn, campaign.id, spec)
        return render(await view(conn, updated))


def _keeps_locales(campaign: Campaign, spec: schemas.CampaignCreate) -> None:
    """Uploaded rows were checked against the templates' locales: none may go."""
    problems = [
        {"field": f"templates.{channel}.{locale}", "message": "recipients may be in it: keep it"}
        for channel, by_locale in campaign.templates.items()
        for locale in by_locale
        if locale not in spec.templates.get(channel, {})
    ]
    if problems:
        raise ValidationFailed(schemas.CampaignUpdate.invalid, errors=problems)


@requires(Scope.CAMPAIGNS_READ)
async def get(request: web.Request) -> web.Response:
    async with request.app[POOL].acquire() as conn:
        campaign = await service.get(conn, params.campaign_id(request))
        return render(await view(conn, campaign))


@requires(Scope.CAMPAIGNS_READ)
async def list_(request: web.Request) -> web.Response:
    async with request.app[POOL].acquire() as conn:
        items, cursor = await service.list_page(
            conn, after=params.cursor(request), limit=params.limit(request)
        )
        page = schemas.CampaignList(
            items=[await view(conn, c) for c in items],
            next=str(cursor) if cursor is not None else None,
        )
    return render(page)


async def _chunks(request: web.Request) -> AsyncIterator[bytes]:
    """The upload's body as it arrives. A client that sends nothing for
    NOTIFIER_UPLOAD_IDLE_SECONDS is cut off (408): an upload holds a transaction open, and a
    stalled one must not hold it for ever."""
    digest = request.get(BODY_DIGEST)  # set when an Idempotency-Key needs the body's hash
    idle = request.app[SETTINGS].upload_idle_seconds
    while True:
        try:
            async with asyncio.timeout(idle):
                chunk = await request.content.readany()
        except TimeoutError:
            raise RequestTimeout(f"nothing of the upload arrived for {idle:g} s") from None
        if not chunk:
            return
        if digest is not None:
            digest.update(chunk)
        yield chunk


@requires(Scope.CAMPAIGNS_WRITE)
async def upload(request: web.Request) -> web.Response:
    fmt = MEDIA_TYPES.get(request.content_type)
    if fmt is None:
        raise UnsupportedMediaType("send recipients as text/csv or application/x-ndjson")
    cid = params.campaign_id(request)
    async with request.app[POOL].acquire() as conn:
        campaign = await service.get(conn, cid)
        result = await recipients.import_upload(
            conn, campaign, _chunks(request), fmt, request.app[SEALER]
        )
    return render(schemas.UploadResult.model_validate(result, from_attributes=True))


@requires(Scope.CAMPAIGNS_READ)
async def checklist(request: web.Request) -> web.Response:
    async with request.app[POOL].acquire() as conn:
        campaign = await service.get(conn, params.campaign_id(request))
    checks = [schemas.Check.model_validate(c, from_attributes=True) for c in check(campaign)]
    missing = sum(not c.carried for c in checks)
    return render(schemas.Checklist(complete=not missing, missing=missing, checks=checks))


async def _launch_override(request: web.Request, campaign: Campaign) -> dict[str, Any] | None:
    """A launch of a notice that lacks what its laws require is a 409 naming each missing
    item, unless the request overrides it with a reason; the override, for the record."""
    launch = (
        await read_model(request, schemas.LaunchRequest)
        if request.body_exists
        else schemas.LaunchRequest()
    )
    missing = [c for c in check(campaign) if not c.carried]
    if not missing:
        return None
    if launch.override is None:
        raise Conflict(
            f"the notice lacks {len(missing)} item(s) its laws require; fix the templates or "
            "facts, or launch with an override and its reason",
            errors=[
                {
                    "field": f"templates.{c.channel}.{c.locale}",
                    "message": f"{c.version}: {c.requirement} ({c.article})",
                }
                for c in missing
            ],
        )
    reason = launch.override.reason
    request[AUDIT_DETAIL] = f"launched over {len(missing)} missing item(s): {reason}"
    return {
        "reason": reason,
        "key_id": str(request[KEY].id),
        "missing": [f"{c.version} {c.channel} {c.locale} {c.item}" for c in missing],
    }


@requires(Scope.CAMPAIGNS_READ)
async def plan(request: web.Request) -> web.Response:
    async with request.app[POOL].acquire() as conn:
        campaign = await service.get(conn, params.campaign_id(request))
        found = await planner.plan(conn, campaign, request.app[SETTINGS])
    return render(schemas.Plan.model_validate(found, from_attributes=True))


def transition(action: str) -> Handler:
    """The handler of one state change: launch, pause, resume or cancel."""

    @requires(Scope.CAMPAIGNS_WRITE)
    async def handler(request: web.Request) -> web.Response:
        campaign_id = params.campaign_id(request)
        async with request.app[POOL].acquire() as conn:
            override = None
            if action == "launch":
                override = await _launch_override(request, await service.get(conn, campaign_id))
            campaign = await service.change_state(conn, campaign_id, action, override=override)
            body = await view(conn, campaign)
        if action in ("launch", "resume"):
            await chains.ensure(
                request.app[REDIS],
                str(campaign.id),
                service.channels_of(campaign),
                request.app[SETTINGS].chains_per_channel,
            )
        return render(body, status=202)

    handler.__name__ = action
    return handler
