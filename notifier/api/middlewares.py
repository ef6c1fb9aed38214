"""The middlewares every request passes, outermost first: counted, problems, audited,
authenticate (then idempotency, in its own module)."""

from __future__ import annotations

import logging

from aiohttp import web

from notifier import audit, keys, ratelimit
from notifier.api.context import AUDIT_DETAIL, KEY, POOL, REDIS, SETTINGS, Handler, scope_of
from notifier.api.responses import error_response, problem
from notifier.db import translate
from notifier.errors import NotifierError
from notifier.serve import IN_FLIGHT

log = logging.getLogger(__name__)

MUTATING = frozenset({"POST", "PUT", "PATCH", "DELETE"})


@web.middleware
async def counted(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Count each request until its response is done, so a graceful stop can wait for it."""
    in_flight = request.app[IN_FLIGHT]
    in_flight.enter()
    try:
        return await handler(request)
    finally:
        in_flight.leave()


@web.middleware
async def problems(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every error leaves as problem+json; unexpected ones are logged and are a plain 500."""
    try:
        return await handler(request)
    except NotifierError as exc:
        return error_response(exc)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return problem(exc.status, exc.reason, exc.text or exc.reason, slug=f"http-{exc.status}")
    except Exception as exc:
        known = translate(exc)  # a database that is down, a unique key taken
        if known is not None:
            return error_response(known)
        log.exception("unexpected error", extra={"path": request.path})
        return problem(500, "Internal error", "the request failed", slug="internal")


@web.middleware
async def audited(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Record every mutating call made with (or refused for lack of) an API key."""
    if request.method not in MUTATING or scope_of(request) is None:
        return await handler(request)
    status = 500
    try:
        response = await handler(request)
        status = response.status
        return response
    except NotifierError as exc:
        status = exc.status
        raise
    finally:
        route = request.match_info.route.resource
        key = request.get(KEY)
        try:
            async with request.app[POOL].acquire() as conn:
                await audit.record(
                    conn,
                    key_id=key.id if key else None,
                    action=f"{request.method} {route.canonical if route else request.path}",
                    target=request.match_info.get("id"),
                    status=status,
                    client=request.remote,
                    detail=request.get(AUDIT_DETAIL),
                )
        except Exception:
            log.exception("audit record not written", extra={"path": request.path})


@web.middleware
async def authenticate(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Check the API key (against Postgres, every time) where the handler needs a scope,
    then count the request against the key's limit (NOTIFIER_KEY_REQUESTS_PER_MINUTE)."""
    scope = scope_of(request)
    if scope is not None:
        async with request.app[POOL].acquire() as conn:
            key = await keys.authenticate(conn, request.headers.get("Authorization"))
        key.require(scope)
        limit = request.app[SETTINGS].key_requests_per_minute
        if limit > 0:
            await ratelimit.per_minute(
                request.app[REDIS],
                f"key:{key.id}",
                limit=limit,
                refusal=f"at most {limit} requests a minute with one key",
            )
        request[KEY] = key
    return await handler(request)
