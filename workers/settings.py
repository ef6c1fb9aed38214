"""arq's WorkerSettings: the dispatch job, the reconciler cron, shared resources in ctx."""

from __future__ import annotations

import logging
from typing import Any

from arq.connections import RedisSettings
from arq.cron import cron

from notifier.chains import QUEUE_NAME
from notifier.db import create_pool
from notifier.providers.smtp import SmtpProvider
from notifier.providers.twilio import TwilioProvider
from notifier.ratelimit import RateLimiter
from notifier.sealing import Sealer
from notifier.settings import Settings
from workers.dispatch import Deps, dispatch
from workers.heartbeat import Heartbeat
from workers.reconciler import reconcile

log = logging.getLogger(__name__)


async def startup(ctx: dict[str, Any]) -> None:
    """Open the pool and provider connections once per process."""
    settings: Settings = ctx["settings"]
    assert settings.database_url
    pool = await create_pool(settings.database_url, max_size=settings.worker_max_jobs + 2)
    heartbeat = Heartbeat(settings.database_url, settings.worker_dead_seconds)
    await heartbeat.start(pool)
    ctx["deps"] = Deps(
        settings=settings,
        pool=pool,
        redis=ctx["redis"],
        limiter=RateLimiter(ctx["redis"]),
        providers={"email": SmtpProvider(settings), "sms": TwilioProvider(settings)},
        sealer=Sealer.from_settings(settings),
        heartbeat=heartbeat,
    )
    log.info("worker started", extra={"worker": str(heartbeat.worker_id)})


async def shutdown(ctx: dict[str, Any]) -> None:
    """Close what startup opened."""
    deps = ctx.get("deps")
    if deps is None:
        return
    for provider in deps.providers.values():
        await provider.close()
    await deps.heartbeat.stop(deps.pool)
    await deps.pool.close()


def worker_settings(settings: Settings) -> dict[str, Any]:
    """Keyword arguments for `arq.Worker` built from the service's settings."""
    assert settings.redis_url
    every = max(1, settings.reconcile_seconds)
    # A link runs a couple of seconds; the timeout stays well inside the delivery lease. arq
    # re-runs the jobs of a worker that died once the longest timeout (plus 10 s) has passed,
    # so the reconciler's timeout is kept no longer than the links'.
    timeout = max(10, settings.lease_seconds // 2)
    return {
        "functions": [dispatch],
        "cron_jobs": [
            cron(
                reconcile,
                second=set(range(0, 60, every)),
                run_at_startup=True,
                timeout=timeout,
                unique=True,
            ),
        ],
        "on_startup": startup,
        "on_shutdown": shutdown,
        "redis_settings": RedisSettings.from_dsn(settings.redis_url),
        "queue_name": QUEUE_NAME,
        "max_jobs": settings.worker_max_jobs,
        "job_timeout": timeout,
        "keep_result": 30,
        "max_tries": 3,
        "ctx": {"settings": settings},
        "handle_signals": True,
        # SIGTERM stops taking jobs and lets running links finish (a link is a few seconds),
        # so a deploy or scale-down neither loses a batch nor sends one twice.
        "job_completion_wait": 30,
        "poll_delay": 0.05,  # a chain's next link starts promptly
    }
