"""`setup_routes`: the one table of every route, which the OpenAPI document describes."""

from __future__ import annotations

from aiohttp import web

from notifier import routes
from notifier.api import (
    campaigns,
    deliveries,
    keys,
    notice,
    public,
    regulator,
    unreachable,
    webhooks,
)


def setup_routes(app: web.Application) -> None:
    """Every route of the API; the OpenAPI document describes exactly these."""
    r = app.router
    r.add_get("/healthz", public.healthz)
    r.add_get("/readyz", public.readyz)
    r.add_get("/openapi.json", public.openapi)
    r.add_get("/docs", public.docs)
    r.add_post("/v1/campaigns", campaigns.create)
    r.add_get("/v1/campaigns", campaigns.list_)
    r.add_get("/v1/campaigns/{id}", campaigns.get)
    r.add_patch("/v1/campaigns/{id}", campaigns.update)
    r.add_post("/v1/campaigns/{id}/recipients", campaigns.upload)
    r.add_get("/v1/campaigns/{id}/checklist", campaigns.checklist)
    r.add_get("/v1/campaigns/{id}/plan", campaigns.plan)
    for action in ("launch", "pause", "resume", "cancel"):
        r.add_post(f"/v1/campaigns/{{id}}/{action}", campaigns.transition(action))
    r.add_get("/v1/campaigns/{id}/deliveries", deliveries.list_)
    r.add_get("/v1/campaigns/{id}/report", deliveries.report)
    r.add_get("/v1/campaigns/{id}/unreachable", unreachable.report)
    r.add_get("/v1/campaigns/{id}/regulator-report", regulator.report)
    r.add_get(routes.NOTICE, notice.page)
    r.add_get("/v1/recipients/{external_id}/deliveries", deliveries.for_recipient)
    r.add_get(routes.VERIFY, public.verify)
    r.add_post(routes.TWILIO_STATUS, webhooks.twilio_status)
    r.add_post(routes.EMAIL_EVENTS, webhooks.email_events)
    r.add_post("/v1/keys", keys.create)
    r.add_get("/v1/keys", keys.list_)
    r.add_delete("/v1/keys/{id}", keys.revoke)
    r.add_get("/v1/audit", keys.audit_log)
