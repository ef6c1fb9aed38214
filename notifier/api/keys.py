"""API key handlers (scope keys:admin) and the audit log."""

from __future__ import annotations

import uuid

from aiohttp import web

from notifier import audit, keys
from notifier.api import params
from notifier.api.bodies import read_model
from notifier.api.context import POOL, requires
from notifier.api.responses import render
from notifier.errors import BadRequest, NotFound
from notifier.models import Scope
from notifier.schemas import audit as audit_schemas
from notifier.schemas import keys as schemas


def _key_id(request: web.Request) -> uuid.UUID:
    try:
        return uuid.UUID(request.match_info["id"])
    except ValueError:
        raise NotFound("no such API key") from None


@requires(Scope.KEYS_ADMIN)
async def create(request: web.Request) -> web.Response:
    spec = await read_model(request, schemas.KeyCreate)
    async with request.app[POOL].acquire() as conn:
        new = await keys.issue(conn, spec)
    return render(schemas.NewKey.model_validate(new, from_attributes=True), status=201)


@requires(Scope.KEYS_ADMIN)
async def list_(request: web.Request) -> web.Response:
    raw = request.query.get("after")
    try:
        after = uuid.UUID(raw) if raw else None
    except ValueError:
        raise BadRequest("after must be a cursor returned as 'next' by a previous page") from None
    async with request.app[POOL].acquire() as conn:
        items, cursor = await keys.list_page(conn, after=after, limit=params.limit(request))
    return render(
        schemas.KeyList.model_validate({"items": items, "next": str(cursor) if cursor else None})
    )


@requires(Scope.KEYS_ADMIN)
async def revoke(request: web.Request) -> web.Response:
    async with request.app[POOL].acquire() as conn:
        await keys.revoke(conn, _key_id(request))
    return web.Response(status=204)


@requires(Scope.KEYS_ADMIN)
async def audit_log(request: web.Request) -> web.Response:
    async with request.app[POOL].acquire() as conn:
        items, cursor = await audit.list_page(
            conn, after=params.cursor(request), limit=params.limit(request)
        )
    return render(
        audit_schemas.AuditList.model_validate(
            {"items": items, "next": str(cursor) if cursor else None}
        )
    )
