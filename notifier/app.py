"""create_app(): middlewares (problem+json, auth), routes, and the resources they share."""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import asyncpg
import orjson
from aiohttp import web
from arq import create_pool as create_arq_pool
from arq.connections import ArqRedis, RedisSettings
from redis.exceptions import RedisError

from notifier import audit, keys
from notifier.chains import QUEUE_NAME
from notifier.db import create_pool, translate
from notifier.errors import NotifierError, TooManyRequests
from notifier.receipts import ReceiptWriter
from notifier.sealing import Sealer
from notifier.serve import IN_FLIGHT, InFlight, counted
from notifier.settings import Settings

log = logging.getLogger(__name__)

SETTINGS = web.AppKey("settings", Settings)
POOL = web.AppKey("pool", asyncpg.Pool)
REDIS = web.AppKey("redis", ArqRedis)
RECEIPTS = web.AppKey("receipts", ReceiptWriter)
SEALER = web.AppKey("sealer", Sealer)
KEY = web.RequestKey("api_key", keys.ApiKey)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
JSON_BODY_LIMIT = 1024 * 1024


def requires(scope: str) -> Callable[[Handler], Handler]:
    """Mark a handler as needing an API key with `scope`; unmarked handlers are public."""

    def mark(handler: Handler) -> Handler:
        handler.scope = scope  # type: ignore[attr-defined]
        return handler

    return mark


def _fallback(value: object) -> str:
    # asyncpg's own UUID type is not the stdlib's, which orjson knows.
    if isinstance(value, uuid.UUID):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def json_response(data: Any, *, status: int = 200) -> web.Response:
    """A JSON response, times in RFC 3339 UTC."""
    body = orjson.dumps(data, default=_fallback, option=orjson.OPT_UTC_Z | orjson.OPT_NAIVE_UTC)
    return web.Response(body=body, status=status, content_type="application/json")


def problem(
    status: int, title: str, detail: str, *, slug: str, errors: list[dict[str, Any]] | None = None
) -> web.Response:
    """An RFC 9457 problem document."""
    doc: dict[str, Any] = {
        "type": f"/problems/{slug}",
        "title": title,
        "status": status,
        "detail": detail,
    }
    if errors:
        doc["errors"] = errors
    return web.Response(
        body=orjson.dumps(doc), status=status, content_type="application/problem+json"
    )


@web.middleware
async def problems(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every error leaves as problem+json; unexpected ones are logged and are a plain 500."""
    try:
        return await handler(request)
    except NotifierError as exc:
        response = problem(exc.status, exc.title, exc.detail, slug=exc.type_slug, errors=exc.errors)
        if isinstance(exc, TooManyRequests):
            response.headers["Retry-After"] = str(exc.retry_after)
        return response
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return problem(exc.status, exc.reason, exc.text or exc.reason, slug=f"http-{exc.status}")
    except Exception as exc:
        known = translate(exc)  # a database that is down, a unique key taken
        if known is not None:
            return problem(known.status, known.title, known.detail, slug=known.type_slug)
        log.exception("unexpected error", extra={"path": request.path})
        return problem(500, "Internal error", "the request failed", slug="internal")


MUTATING = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def _scope_of(request: web.Request) -> str | None:
    """The scope the matched route's handler requires, or None for a public route."""
    return getattr(request.match_info.handler, "scope", None)


@web.middleware
async def audited(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Record every mutating call made with (or refused for lack of) an API key."""
    if request.method not in MUTATING or _scope_of(request) is None:
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
                )
        except Exception:
            log.exception("audit record not written", extra={"path": request.path})


@web.middleware
async def authenticate(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Check the API key (against Postgres, every time) where the handler needs a scope."""
    scope = _scope_of(request)
    if scope is not None:
        async with request.app[POOL].acquire() as conn:
            key = await keys.authenticate(conn, request.headers.get("Authorization"))
        key.require(scope)
        await _throttle_key(request, key.id)
        request[KEY] = key
    return await handler(request)


async def _throttle_key(request: web.Request, key_id: uuid.UUID) -> None:
    """Each key's requests per minute; past NOTIFIER_KEY_REQUESTS_PER_MINUTE, 429."""
    limit = request.app[SETTINGS].key_requests_per_minute
    if limit > 0:
        await per_minute(
            request, f"key:{key_id}", limit, f"at most {limit} requests a minute with one key"
        )


async def per_minute(request: web.Request, subject: str, limit: int, refusal: str) -> None:
    """Count one request of `subject` in the current one-minute window, shared by every API
    process through Redis; past `limit`, 429 with Retry-After until the window ends. With
    Redis unreachable the request goes through: a limit protects, it must not block."""
    now = time.time()
    counter = f"notifier:rate:{subject}:{int(now // 60)}"
    try:
        async with request.app[REDIS].pipeline(transaction=True) as pipe:
            pipe.incr(counter)
            pipe.expire(counter, 60)
            count, _ = await pipe.execute()
    except (OSError, RedisError):
        log.warning("rate limit unavailable; allowing the request")
        return
    if count > limit:
        raise TooManyRequests(refusal, retry_after=max(1, 60 - int(now) % 60))


async def read_json(request: web.Request) -> Any:
    """The request's JSON body, or a 400 that says what is wrong with it."""
    from notifier.errors import BadRequest, UnsupportedMediaType

    if request.content_type != "application/json":
        raise UnsupportedMediaType("send the body as application/json")
    raw = await request.read()
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise BadRequest(f"the body is not valid JSON: {exc}") from None


def _resources(settings: Settings) -> Callable[[web.Application], AsyncIterator[None]]:
    async def ctx(app: web.Application) -> AsyncIterator[None]:
        assert settings.database_url and settings.redis_url
        app[POOL] = await create_pool(settings.database_url, max_size=20)
        app[REDIS] = await create_arq_pool(
            RedisSettings.from_dsn(settings.redis_url), default_queue_name=QUEUE_NAME
        )
        app[RECEIPTS] = ReceiptWriter(app[POOL])
        app[RECEIPTS].start()
        yield
        await app[RECEIPTS].close()
        await app[REDIS].aclose()
        await app[POOL].close()

    return ctx


def create_app(settings: Settings) -> web.Application:
    """The REST API application."""
    from notifier.api import setup_routes
    from notifier.api.idempotency import idempotency

    app = web.Application(
        middlewares=[counted, problems, audited, authenticate, idempotency],
        client_max_size=JSON_BODY_LIMIT,
    )
    app[SETTINGS] = settings
    app[SEALER] = Sealer.from_settings(settings)
    app[IN_FLIGHT] = InFlight()
    app.cleanup_ctx.append(_resources(settings))
    setup_routes(app)
    return app
