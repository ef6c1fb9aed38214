"""Endpoints without an API key: health, readiness, the API's description, verification."""

from __future__ import annotations

import hashlib
import html
import logging

from aiohttp import web

from notifier import db, deliveries, notice_page, ratelimit, routes
from notifier.api.context import POOL, REDIS, SETTINGS
from notifier.api.openapi import document
from notifier.api.responses import json_response, render
from notifier.errors import NotFound
from notifier.schemas.deliveries import Verification

log = logging.getLogger(__name__)

_NOT_GENUINE = "this code was not issued by this service"


async def healthz(request: web.Request) -> web.Response:
    return json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    checks = {"postgres": "ok", "redis": "ok"}
    try:
        async with request.app[POOL].acquire(timeout=2) as conn:
            await db.ping(conn)
    except Exception:
        checks["postgres"] = "unreachable"
    try:
        await request.app[REDIS].ping()
    except Exception:
        checks["redis"] = "unreachable"
    ready = all(v == "ok" for v in checks.values())
    return json_response(
        {"status": "ready" if ready else "not ready", "checks": checks},
        status=200 if ready else 503,
    )


async def openapi(request: web.Request) -> web.Response:
    return json_response(document())


async def docs(request: web.Request) -> web.Response:
    doc = document()
    rows = []
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            rows.append(
                f"<tr><td><code>{method.upper()}</code></td><td><code>"
                f"{html.escape(path)}</code></td><td>{html.escape(op['summary'])}</td></tr>"
            )
    page = (
        "<!doctype html><html><head><meta charset='utf-8'><title>"
        f"{html.escape(doc['info']['title'])}</title></head><body>"
        f"<h1>{html.escape(doc['info']['title'])}</h1><p>{html.escape(doc['info']['description'])}"
        "</p><p>The full description: <a href='/openapi.json'>openapi.json</a></p>"
        f"<table>{''.join(rows)}</table></body></html>"
    )
    return web.Response(
        text=page,
        content_type="text/html",
        headers={
            "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'",
            "X-Content-Type-Options": "nosniff",
            "X-Frame-Options": "DENY",
            "Referrer-Policy": "no-referrer",
        },
    )


async def _throttle(request: web.Request) -> None:
    """A fixed one-minute window per client, so that codes cannot be enumerated. The client
    address is kept in Redis only as a truncated hash, and only for that minute."""
    limit = request.app[SETTINGS].verify_per_minute
    client = hashlib.sha256((request.remote or "").encode()).hexdigest()[:16]
    await ratelimit.per_minute(
        request.app[REDIS],
        f"verify:{client}",
        limit=limit,
        refusal=f"at most {limit} checks a minute from one client",
    )


async def verify(request: web.Request) -> web.Response:
    # Unknown and malformed codes get the same answer, so the reply teaches nothing.
    await _throttle(request)
    async with request.app[POOL].acquire() as conn:
        found = await deliveries.verify(conn, request.match_info["code"][:64])
        if found is None:
            raise NotFound(_NOT_GENUINE)
        base = routes.base_url(request.app[SETTINGS].public_base_url)
        url = await notice_page.link(conn, base, found["campaign_id"], found["locale"])
    answer = Verification.model_validate({"genuine": True, **found, "notice_url": url})
    return render(answer, headers={"Cache-Control": "no-store"})
