"""The list of people a campaign cannot reach, for a substitute notice: CSV, streamed."""

from __future__ import annotations

from aiohttp import web

from notifier import campaigns as campaign_service
from notifier import unreachable as service
from notifier.api import params
from notifier.api.context import POOL, requires
from notifier.api.responses import stream_csv
from notifier.models import Scope


@requires(Scope.CAMPAIGNS_READ)
async def report(request: web.Request) -> web.StreamResponse:
    cid = params.campaign_id(request)
    async with request.app[POOL].acquire() as conn:
        campaign = await campaign_service.get(conn, cid)
        name = f"campaign-{campaign.id}-unreachable.csv"
        return await stream_csv(request, name, service.report(conn, cid))
