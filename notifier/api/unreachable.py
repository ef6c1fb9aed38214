"""The list of people a campaign cannot reach, for a substitute notice: CSV, streamed."""

from __future__ import annotations

from aiohttp import web

from notifier import campaigns as campaign_service
from notifier import unreachable as service
from notifier.api import params
from notifier.api.context import POOL, requires
from notifier.models import Scope


@requires(Scope.CAMPAIGNS_READ)
async def report(request: web.Request) -> web.StreamResponse:
    cid = params.campaign_id(request)
    async with request.app[POOL].acquire() as conn:
        campaign = await campaign_service.get(conn, cid)
        response = web.StreamResponse(
            headers={
                "Content-Type": "text/csv; charset=utf-8",
                "Content-Disposition": (
                    f'attachment; filename="campaign-{campaign.id}-unreachable.csv"'
                ),
            }
        )
        response.enable_chunked_encoding()
        await response.prepare(request)
        async for chunk in service.report(conn, cid):
            await response.write(chunk)
    await response.write_eof()
    return response
