"""Parsing of path and query parameters at the edge, with errors that name the parameter."""

from __future__ import annotations

import uuid

from aiohttp import web

from notifier.errors import BadRequest, NotFound

MAX_LIMIT = 1000


def campaign_id(request: web.Request) -> uuid.UUID:
    """The `{id}` path parameter; a malformed id names no campaign, so it is a 404."""
    try:
        return uuid.UUID(request.match_info["id"])
    except ValueError:
        raise NotFound(f"no campaign {request.match_info['id'][:64]!r}") from None


def limit(request: web.Request, default: int = 100) -> int:
    """`?limit=`, 1..1000."""
    raw = request.query.get("limit")
    if raw is None:
        return default
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_LIMIT:
        raise BadRequest(f"limit must be an integer from 1 to {MAX_LIMIT}")
    return int(raw)


def cursor(request: web.Request) -> int | None:
    """`?after=`, an opaque cursor from a previous page's `next`."""
    raw = request.query.get("after")
    if raw is None or raw == "":
        return None
    if not raw.isdigit() or len(raw) > 19:
        raise BadRequest("after must be a cursor returned as 'next' by a previous page")
    return int(raw)


def choice(request: web.Request, name: str, allowed: frozenset[str]) -> str | None:
    """An optional query parameter limited to known values."""
    raw = request.query.get(name)
    if raw is None or raw == "":
        return None
    if raw not in allowed:
        raise BadRequest(f"{name} must be one of {', '.join(sorted(allowed))}")
    return raw
