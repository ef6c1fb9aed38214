"""The full notice of a launched campaign, published: a public HTML page per locale."""

from __future__ import annotations

from aiohttp import web

from notifier import notice_page
from notifier.api import params
from notifier.api.context import POOL

# Nothing on the page runs or loads: no script, no frame, no form, nothing from anywhere
# else, no style but its own sheet. The page is the same for everyone, so shared caches may
# keep it a while.
HEADERS = {
    "Content-Security-Policy": notice_page.CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "public, max-age=300",
}


async def page(request: web.Request) -> web.Response:
    cid = params.campaign_id(request)
    async with request.app[POOL].acquire() as conn:
        campaign = await notice_page.published(conn, cid)
    shown = notice_page.build(campaign, request.match_info["locale"][:64])
    return web.Response(
        text=notice_page.html(shown),
        content_type="text/html",
        charset="utf-8",
        headers={**HEADERS, "Content-Language": shown.locale},
    )
