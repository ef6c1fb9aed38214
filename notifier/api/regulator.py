"""The regulator's report on a campaign: JSON, or a printable HTML page."""

from __future__ import annotations

from aiohttp import web

from notifier import regulator
from notifier.api import notice, params
from notifier.api.context import POOL, SETTINGS, requires
from notifier.api.responses import render
from notifier.errors import BadRequest
from notifier.models import Scope

FORMATS = ("json", "html")
# The public notice's headers (nothing on the page runs or loads), but the report is for
# the key's holder alone: no cache may keep it.
HEADERS = {**notice.HEADERS, "Cache-Control": "no-store"}


@requires(Scope.CAMPAIGNS_READ)
async def report(request: web.Request) -> web.Response:
    as_html = wants_html(request)
    cid = params.campaign_id(request)
    async with request.app[POOL].acquire() as conn:
        found = await regulator.report(conn, cid, request.app[SETTINGS])
    if as_html:
        return web.Response(
            text=regulator.html(found), content_type="text/html", charset="utf-8", headers=HEADERS
        )
    return render(found, headers={"Cache-Control": "no-store"})


def wants_html(request: web.Request) -> bool:
    """`?format=html` or `json`; without it, HTML when the Accept header ranks text/html
    above application/json (a browser's does), else JSON."""
    chosen = request.query.get("format")
    if chosen is not None:
        if chosen not in FORMATS:
            raise BadRequest(f"format must be one of {', '.join(FORMATS)}")
        return chosen == "html"
    ranks = _accepted(request.headers.get("Accept", ""))
    return ranks.get("text/html", 0.0) > ranks.get("application/json", 0.0)


def _accepted(header: str) -> dict[str, float]:
    """Media type -> its quality in an Accept header; a malformed quality counts as 0."""
    found: dict[str, float] = {}
    for item in header.split(",")[:64]:
        media, *options = (part.strip() for part in item.split(";"))
        quality = 1.0
        for option in options:
            name, _, value = option.partition("=")
            if name.strip().lower() == "q":
                try:
                    quality = min(max(float(value), 0.0), 1.0)
                except ValueError:
                    quality = 0.0
        media = media.lower()
        if media:
            found[media] = max(found.get(media, 0.0), quality)
    return found
