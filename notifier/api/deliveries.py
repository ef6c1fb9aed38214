"""Delivery handlers: a campaign's deliveries, its evidence report, one account's history."""

from __future__ import annotations

from aiohttp import web

from notifier import campaigns as campaign_service
from notifier import deliveries as service
from notifier.api import params
from notifier.api.context import POOL, requires
from notifier.api.responses import render, stream_csv
from notifier.errors import NotFound
from notifier.models import Channel, DeliveryStatus, Scope
from notifier.schemas import deliveries as schemas

STATUSES = frozenset(map(str, DeliveryStatus))
CHANNELS = frozenset(map(str, Channel))


@requires(Scope.CAMPAIGNS_READ)
async def list_(request: web.Request) -> web.Response:
    cid = params.campaign_id(request)
    status = params.choice(request, "status", STATUSES)
    channel = params.choice(request, "channel", CHANNELS)
    async with request.app[POOL].acquire() as conn:
        await campaign_service.get(conn, cid)
        items, cursor = await service.page(
            conn,
            cid,
            status=status,
            channel=channel,
            after=params.cursor(request),
            limit=params.limit(request),
        )
    return render(
        schemas.DeliveryList.model_validate(
            {"items": items, "next": str(cursor) if cursor is not None else None}
        )
    )


@requires(Scope.CAMPAIGNS_READ)
async def report(request: web.Request) -> web.StreamResponse:
    cid = params.campaign_id(request)
    async with request.app[POOL].acquire() as conn:
        campaign = await campaign_service.get(conn, cid)
        return await stream_csv(request, f"campaign-{campaign.id}.csv", service.report(conn, cid))


@requires(Scope.CAMPAIGNS_READ)
async def for_recipient(request: web.Request) -> web.Response:
    external_id = request.match_info["external_id"]
    async with request.app[POOL].acquire() as conn:
        items = await service.for_recipient(conn, external_id)
    if not items:
        raise NotFound("no deliveries to this account")
    return render(
        schemas.RecipientDeliveries.model_validate({"external_id": external_id, "items": items})
    )
