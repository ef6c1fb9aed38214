"""create_app(): the REST API wired together: middlewares, routes, shared resources."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

from aiohttp import web
from arq import create_pool as create_arq_pool
from arq.connections import RedisSettings

from notifier.api.bodies import JSON_BODY_LIMIT
from notifier.api.context import POOL, RECEIPTS, REDIS, SEALER, SETTINGS
from notifier.api.idempotency import idempotency
from notifier.api.middlewares import audited, authenticate, counted, problems
from notifier.api.routes import setup_routes
from notifier.chains import QUEUE_NAME
from notifier.db import create_pool
from notifier.receipts import ReceiptWriter
from notifier.sealing import Sealer
from notifier.serve import IN_FLIGHT, InFlight
from notifier.settings import Settings


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
