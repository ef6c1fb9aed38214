"""API key handlers (scope keys:admin) and the audit log."""

from __future__ import annotations

import uuid

from aiohttp import web

from notifier import audit, keys
from notifier.api import params
from notifier.app import POOL, json_response, read_json, requires
from notifier.errors import BadRequest, NotFound, ValidationFailed
from notifier.models import Scope


def _key_id(request: web.Request) -> uuid.UUID:
    try:
        return uuid.UUID(request.match_info["id"])
    except ValueError:
        raise NotFound("no such API key") from None


@requires(Scope.KEYS_ADMIN)
async def create(request: web.Request) -> web.Response:
    body = await read_json(request)
    if not isinstance(body, dict):
        raise ValidationFailed("the body must be a JSON object")
    name, scopes, days = body.get("name"), body.get("scopes"), body.get("expires_in_days")
    problems = []
    if not isinstance(name, str):
        problems.append({"field": "name", "message": "required, a string"})
    if not isinstance(scopes, list) or not all(isinstance(s, str) for s in scopes):
        problems.append({"field": "scopes", "message": "required, a list of scopes"})
    if isinstance(days, bool) or not isinstance(days, int):
        problems.append({"field": "expires_in_days", "message": "required, 1 to 90"})
    if problems:
        raise ValidationFailed("the key is not valid", errors=problems)
    assert isinstance(name, str) and isinstance(scopes, list) and isinstance(days, int)
    async with request.app[POOL].acquire() as conn:
        new = await keys.create(conn, name=name, scopes=scopes, expires_in_days=days)
    return json_response(
        {
            "id": new.id,
            "name": new.name,
            "scopes": new.scopes,
            "expires_at": new.expires_at,
            "secret": new.secret,
        },
        status=201,
    )


@requires(Scope.KEYS_ADMIN)
async def list_(request: web.Request) -> web.Response:
    raw = request.query.get("after")
    try:
        after = uuid.UUID(raw) if raw else None
    except ValueError:
        raise BadRequest("after must be a cursor returned as 'next' by a previous page") from None
    async with request.app[POOL].acquire() as conn:
        items, cursor = await keys.list_page(conn, after=after, limit=params.limit(request))
    return json_response({"items": items, "next": str(cursor) if cursor else None})


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
    return json_response({"items": items, "next": str(cursor) if cursor else None})
