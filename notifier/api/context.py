"""What handlers and middlewares share: the application's resources, the authenticated key,
and the scope a handler requires."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import asyncpg
from aiohttp import web
from arq.connections import ArqRedis

from notifier.keys import ApiKey
from notifier.receipts import ReceiptWriter
from notifier.sealing import Sealer
from notifier.settings import Settings

SETTINGS = web.AppKey("settings", Settings)
POOL = web.AppKey("pool", asyncpg.Pool)
REDIS = web.AppKey("redis", ArqRedis)
RECEIPTS = web.AppKey("receipts", ReceiptWriter)
SEALER = web.AppKey("sealer", Sealer)
KEY = web.RequestKey("api_key", ApiKey)
# What a handler has the audit log say of its call, besides who did what.
AUDIT_DETAIL = web.RequestKey("audit_detail", str)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def requires(scope: str) -> Callable[[Handler], Handler]:
    """Mark a handler as needing an API key with `scope`; unmarked handlers are public."""

    def mark(handler: Handler) -> Handler:
        handler.scope = scope  # type: ignore[attr-defined]
        return handler

    return mark


def scope_of(request: web.Request) -> str | None:
    """The scope the matched route's handler requires, or None for a public route."""
    return getattr(request.match_info.handler, "scope", None)
