"""The OpenAPI 3.1 document served at /openapi.json: the JSON schemas of the models in
notifier.schemas, and one table of paths and operations (a test keeps it equal to the routes).
"""

from __future__ import annotations

from functools import cache
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from notifier import __version__, routes
from notifier.api.params import MAX_LIMIT
from notifier.models import Channel, DeliveryStatus, Scope
from notifier.schemas.audit import AuditList
from notifier.schemas.campaigns import (
    EXAMPLE,
    RECIPIENTS_EXAMPLE,
    Campaign,
    CampaignCreate,
    CampaignList,
    CampaignUpdate,
    Checklist,
    LaunchRequest,
    Plan,
    UploadResult,
)
from notifier.schemas.common import Problem
from notifier.schemas.deliveries import DeliveryList, RecipientDeliveries, Verification
from notifier.schemas.keys import KeyCreate, KeyList, NewKey
from notifier.schemas.regulator import RegulatorReport
from notifier.schemas.webhooks import EmailEvents, EmailEventsResult

J = dict[str, Any]

# Bodies the API reads, and bodies it writes: each model's schema for its direction.
REQUESTS: tuple[type[BaseModel], ...] = (
    CampaignCreate,
    CampaignUpdate,
    LaunchRequest,
    KeyCreate,
    EmailEvents,
)
RESPONSES: tuple[type[BaseModel], ...] = (
    Campaign,
    CampaignList,
    Checklist,
    Plan,
    UploadResult,
    DeliveryList,
    RecipientDeliveries,
    Verification,
    NewKey,
    KeyList,
    AuditList,
    EmailEventsResult,
    RegulatorReport,
    Problem,
)
_REF = "#/components/schemas/{model}"


def _ref(model: type[BaseModel]) -> J:
    return {"$ref": _REF.format(model=model.__name__)}


def _json(model: type[BaseModel]) -> J:
    return {"application/json": {"schema": _ref(model)}}


def _ok(description: str, model: type[BaseModel]) -> J:
    return {"description": description, "content": _json(model)}


def _problem(description: str) -> J:
    return {
        "description": description,
        "content": {"application/problem+json": {"schema": _ref(Problem)}},
    }


def _path_param(name: str, schema: J) -> J:
    return {"name": name, "in": "path", "required": True, "schema": schema}


_RETRY_AFTER = {
    "Retry-After": {
        "description": "seconds until the limit lets requests through again",
        "schema": {"type": "integer", "minimum": 1},
    }
}
_AUTH_ERRORS = {
    "401": _problem("Missing, unknown, expired or revoked API key"),
    "403": _problem("The key lacks the scope"),
    "429": {
        **_problem("Too many requests with this key; see Retry-After"),
        "headers": _RETRY_AFTER,
    },
}
_ID = _path_param("id", {"type": "string", "format": "uuid"})
_PAGE = [
    {
        "name": "limit",
        "in": "query",
        "schema": {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT},
    },
    {
        "name": "after",
        "in": "query",
        "schema": {"type": "string"},
        "description": "the `next` cursor of the previous page",
    },
]
_IDEMPOTENCY = {
    "name": "Idempotency-Key",
    "in": "header",
    "required": False,
    "schema": {"type": "string", "minLength": 1, "maxLength": 255},
    "description": "a retry with the same key and body gets the first response again; "
    "the same key with another body is 422; while the first still runs, 409",
}


def _op(
    summary: str,
    responses: J,
    *,
    scope: Scope | None = None,
    params: list[J] | None = None,
    body: J | None = None,
) -> J:
    op: J = {"summary": summary, "responses": responses}
    if scope:
        op["security"] = [{"bearer": [str(scope)]}]
        op["responses"] = {**responses, **_AUTH_ERRORS}
    if params:
        op["parameters"] = params
    if body:
        op["requestBody"] = body
    return op


def _json_body(model: type[BaseModel], example: J | None = None) -> J:
    media: J = {"schema": _ref(model)}
    if example is not None:
        media["example"] = example
    return {"required": True, "content": {"application/json": media}}


# Where a created campaign's id leads: every operation on one campaign.
_CAMPAIGN_LINKS: J = {
    name: {
        "operationRef": "#/paths/" + path.replace("/", "~1") + "/" + method,
        "parameters": {"id": "$response.body#/id"},
    }
    for name, path, method in (
        ("GetCampaign", "/v1/campaigns/{id}", "get"),
        ("UploadRecipients", "/v1/campaigns/{id}/recipients", "post"),
        ("Checklist", "/v1/campaigns/{id}/checklist", "get"),
        ("Plan", "/v1/campaigns/{id}/plan", "get"),
        ("Launch", "/v1/campaigns/{id}/launch", "post"),
        ("Pause", "/v1/campaigns/{id}/pause", "post"),
        ("Resume", "/v1/campaigns/{id}/resume", "post"),
        ("Cancel", "/v1/campaigns/{id}/cancel", "post"),
        ("ListDeliveries", "/v1/campaigns/{id}/deliveries", "get"),
        ("Report", "/v1/campaigns/{id}/report", "get"),
        ("Unreachable", "/v1/campaigns/{id}/unreachable", "get"),
        ("RegulatorReport", "/v1/campaigns/{id}/regulator-report", "get"),
    )
}


def _transition(action: str, effect: str) -> J:
    return {
        "post": _op(
            f"{action.capitalize()} the campaign: {effect}",
            {
                "202": _ok("Accepted", Campaign),
                "404": _problem("No such campaign"),
                "409": _problem("Illegal state change"),
            },
            scope=Scope.CAMPAIGNS_WRITE,
            params=[_ID],
        )
    }


def _launch() -> J:
    """Launch: a transition that may carry an override of the checklist's missing items."""
    op = _transition(
        "launch",
        "start sending; 409 naming each item the notice lacks of what its laws require, "
        "unless the body overrides it with a reason",
    )
    op["post"]["requestBody"] = {
        "required": False,
        "content": {"application/json": {"schema": _ref(LaunchRequest)}},
    }
    op["post"]["responses"] |= {
        "400": _problem("The body is not JSON"),
        "415": _problem("The body is not application/json"),
        "422": _problem("The override is not valid"),
    }
    return op


def _paths() -> J:
    ok = {"description": "OK"}
    read, write, admin = Scope.CAMPAIGNS_READ, Scope.CAMPAIGNS_WRITE, Scope.KEYS_ADMIN
    return {
        "/healthz": {"get": _op("The process is up", {"200": ok})},
        "/readyz": {
            "get": _op(
                "Postgres and Redis are reachable",
                {"200": ok, "503": {"description": "Not ready"}},
            )
        },
        "/openapi.json": {"get": _op("This document", {"200": ok})},
        "/docs": {"get": _op("A page listing the endpoints", {"200": ok})},
        "/v1/campaigns": {
            "post": _op(
                "Create a campaign (draft)",
                {
                    "201": {**_ok("Created", Campaign), "links": _CAMPAIGN_LINKS},
                    "400": _problem("Not JSON"),
                    "413": _problem("The body is over 1 MiB"),
                    "415": _problem("Not sent as application/json"),
                    "422": _problem("Invalid campaign, naming each field"),
                },
                scope=write,
                body=_json_body(CampaignCreate, EXAMPLE),
            ),
            "get": _op(
                "List campaigns, newest first",
                {
                    "200": _ok("A page", CampaignList),
                    "400": _problem("Bad paging parameter"),
                },
                scope=read,
                params=_PAGE,
            ),
        },
        "/v1/campaigns/{id}": {
            "get": _op(
                "A campaign with its counts by channel and status",
                {"200": _ok("The campaign", Campaign), "404": _problem("No such campaign")},
                scope=read,
                params=[_ID],
            ),
            "patch": _op(
                "Change a draft: its name, templates, facts, discovered_at, jurisdictions, "
                "rate cap, SMS budget or contact dedupe. The changed campaign is checked whole, "
                "as on creation; a template locale may not be dropped once recipients are in",
                {
                    "200": _ok("The changed campaign", Campaign),
                    "400": _problem("Not JSON"),
                    "404": _problem("No such campaign"),
                    "409": _problem("The campaign is not a draft"),
                    "413": _problem("The body is over 1 MiB"),
                    "415": _problem("Not sent as application/json"),
                    "422": _problem("Invalid change, naming each field"),
                },
                scope=write,
                params=[_ID],
                body=_json_body(
                    CampaignUpdate, {"facts": EXAMPLE["facts"]} if "facts" in EXAMPLE else None
                ),
            ),
        },
        "/v1/campaigns/{id}/recipients": {
            "post": _op(
                "Upload affected accounts (CSV with a header row, or NDJSON), streamed; "
                "bad rows are reported by line and the rest imported",
                {
                    "200": _ok("Import result", UploadResult),
                    "400": _problem("Malformed file: nothing imported"),
                    "404": _problem("No such campaign"),
                    "408": _problem("The client stopped sending: nothing imported"),
                    "409": _problem("The campaign is not a draft"),
                    "415": _problem("Not CSV or NDJSON"),
                },
                scope=write,
                params=[_ID],
                body={
                    "required": True,
                    "content": {
                        "text/csv": {"schema": {"type": "string"}, "example": RECIPIENTS_EXAMPLE},
                        "application/x-ndjson": {"schema": {"type": "string"}},
                    },
                },
            )
        },
        "/v1/campaigns/{id}/checklist": {
            "get": _op(
                "What the templates carry of what the campaign's laws require, per law, "
                "channel and locale, each requirement with its article",
                {"200": _ok("The checklist", Checklist), "404": _problem("No such campaign")},
                scope=read,
                params=[_ID],
            )
        },
        "/v1/campaigns/{id}/plan": {
            "get": _op(
                "The deadline clock and the capacity planner: each duty of the campaign's "
                "laws with its deadline and time left, and per channel the work left, the "
                "rate it can expect, the forecast finish and, if it misses the deadline, the "
                "rate that would meet it",
                {"200": _ok("The plan", Plan), "404": _problem("No such campaign")},
                scope=read,
                params=[_ID],
            )
        },
        "/v1/campaigns/{id}/launch": _launch(),
        "/v1/campaigns/{id}/pause": _transition("pause", "no new sends start"),
        "/v1/campaigns/{id}/resume": _transition("resume", "sending continues"),
        "/v1/campaigns/{id}/cancel": _transition("cancel", "pending deliveries are cancelled"),
        "/v1/campaigns/{id}/deliveries": {
            "get": _op(
                "A page of the campaign's deliveries",
                {
                    "200": _ok("A page", DeliveryList),
                    "400": _problem("Bad filter or paging parameter"),
                    "404": _problem("No such campaign"),
                },
                scope=read,
                params=[
                    _ID,
                    *_PAGE,
                    {"name": "status", "in": "query", "schema": {"enum": list(DeliveryStatus)}},
                    {"name": "channel", "in": "query", "schema": {"enum": list(Channel)}},
                ],
            )
        },
        "/v1/campaigns/{id}/report": {
            "get": _op(
                "The evidence: one CSV row per delivery with its status and transition times",
                {
                    "200": {
                        "description": "CSV, streamed",
                        "content": {"text/csv": {"schema": {"type": "string"}}},
                    },
                    "404": _problem("No such campaign"),
                },
                scope=read,
                params=[_ID],
            )
        },
        "/v1/campaigns/{id}/unreachable": {
            "get": _op(
                "The people the campaign cannot reach, for a substitute notice: rows refused at "
                "upload and recipients every channel failed, by account id, never with contact "
                "details",
                {
                    "200": {
                        "description": "CSV, streamed: external_id,reason,source,line; source "
                        "is `rejected` (line: the upload line) or `failed` (reason: each "
                        "channel's last error)",
                        "content": {"text/csv": {"schema": {"type": "string"}}},
                    },
                    "404": _problem("No such campaign"),
                },
                scope=read,
                params=[_ID],
            )
        },
        "/v1/campaigns/{id}/regulator-report": {
            "get": _op(
                "The report for the regulator: the incident and its laws, the timeline with "
                "each duty's deadline and whether it was met, counts per channel with failures "
                "by reason, the people who cannot be reached by reason, the notice as sent per "
                "channel and locale, and the ledger's seal with whether its chains verify. "
                "Built only from what a purge keeps; no personal data. JSON, or a printable "
                "HTML page for `?format=html` or an Accept header that prefers text/html",
                {
                    "200": {
                        "description": "The report",
                        "content": {
                            **_json(RegulatorReport),
                            "text/html": {"schema": {"type": "string"}},
                        },
                    },
                    "400": _problem("Unknown format"),
                    "404": _problem("No such campaign"),
                },
                scope=read,
                params=[
                    _ID,
                    {
                        "name": "format",
                        "in": "query",
                        "schema": {"enum": ["json", "html"]},
                        "description": "json (the default) or html; without it, the Accept "
                        "header decides",
                    },
                ],
            )
        },
        routes.NOTICE: {
            "get": _op(
                "The full notice of a launched campaign, published: every item its facts give "
                "in a locale (else the default), under the headings its laws prescribe. Public; "
                "campaign-level facts only",
                {
                    "200": {
                        "description": "The notice, as an HTML page",
                        "content": {"text/html": {"schema": {"type": "string"}}},
                    },
                    "404": _problem("No such campaign, or not launched, or no facts"),
                },
                params=[
                    _ID,
                    _path_param("locale", {"type": "string"})
                    | {"description": "a language tag; an unknown one gets the default locale"},
                ],
            )
        },
        "/v1/recipients/{external_id}/deliveries": {
            "get": _op(
                "Every delivery to one account across campaigns",
                {
                    "200": _ok("Deliveries", RecipientDeliveries),
                    "404": _problem("No deliveries to this account"),
                },
                scope=read,
                params=[_path_param("external_id", {"type": "string"})],
            )
        },
        routes.VERIFY: {
            "get": _op(
                "Is this notice genuine? Public; reveals no personal data",
                {
                    "200": _ok("Genuine", Verification),
                    "404": _problem("Not a code this service issued"),
                    "429": {
                        **_problem("Too many checks from this client; see Retry-After"),
                        "headers": _RETRY_AFTER,
                    },
                },
                params=[_path_param("code", {"type": "string"})],
            )
        },
        "/v1/keys": {
            "post": _op(
                "Create an API key; its secret is in this response only",
                {
                    "201": _ok("Created", NewKey),
                    "400": _problem("Not JSON"),
                    "415": _problem("Not sent as application/json"),
                    "422": _problem("Invalid key, naming each field"),
                },
                scope=admin,
                body=_json_body(KeyCreate),
            ),
            "get": _op(
                "List keys (never their secrets), with expiry, last use and revocation",
                {"200": _ok("A page", KeyList), "400": _problem("Bad paging parameter")},
                scope=admin,
                params=_PAGE,
            ),
        },
        "/v1/keys/{id}": {
            "delete": _op(
                "Revoke a key: refused from its very next request on",
                {"204": {"description": "Revoked"}, "404": _problem("No such key")},
                scope=admin,
                params=[_ID],
            )
        },
        "/v1/audit": {
            "get": _op(
                "The audit log of mutating calls, newest first",
                {"200": _ok("A page", AuditList), "400": _problem("Bad paging parameter")},
                scope=admin,
                params=_PAGE,
            )
        },
        routes.TWILIO_STATUS: {
            "post": _op(
                "Twilio's message status callback, checked with X-Twilio-Signature",
                {
                    "204": {"description": "Applied (or a replay, which changes nothing)"},
                    "400": _problem("Not a status callback"),
                    "403": _problem("Bad signature: nothing changed"),
                },
                params=[
                    {
                        "name": "X-Twilio-Signature",
                        "in": "header",
                        "required": True,
                        "schema": {"type": "string"},
                    }
                ],
                body={
                    "required": True,
                    "content": {
                        "application/x-www-form-urlencoded": {"schema": {"type": "object"}}
                    },
                },
            )
        },
        routes.EMAIL_EVENTS: {
            "post": _op(
                "Delivery events from the email relay, signed with HMAC-SHA256 over "
                "'<timestamp>.<body>'; refused when the timestamp is over 5 minutes away",
                {
                    "200": _ok("How many events came and how many were applied", EmailEventsResult),
                    "400": _problem("Not a list of events"),
                    "403": _problem("Bad signature or stale timestamp: nothing changed"),
                    "404": _problem("Email events are not configured"),
                },
                params=[
                    {"name": name, "in": "header", "required": True, "schema": {"type": "string"}}
                    for name in ("X-Notifier-Timestamp", "X-Notifier-Signature")
                ],
                body=_json_body(EmailEvents),
            )
        },
    }


def _schemas() -> J:
    """Every model's JSON schema, and those of the models and enums they use."""
    _, top = models_json_schema(
        [(m, "validation") for m in REQUESTS] + [(m, "serialization") for m in RESPONSES],
        ref_template=_REF,
    )
    defs: J = top["$defs"]
    # A model read in one direction and written in the other gets one name per direction;
    # the table above names each once, so that must not happen.
    split = sorted(name for name in defs if name.endswith(("-Input", "-Output")))
    assert not split, f"models with two schemas: {split}"
    return defs


def _with_idempotency(paths: J) -> J:
    """Every authenticated POST takes an Idempotency-Key."""
    for ops in paths.values():
        op = ops.get("post")
        if op is None or "security" not in op:
            continue
        op["parameters"] = [*op.get("parameters", []), _IDEMPOTENCY]
        op["responses"].setdefault("400", _problem("Idempotency-Key is not 1 to 255 characters"))
        op["responses"].setdefault("422", _problem("Idempotency-Key reused for another request"))
        op["responses"].setdefault("409", _problem("A request with this key is still running"))
    return paths


@cache
def document() -> J:
    """The whole API description."""
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Breach notification API",
            "version": __version__,
            "description": "Create notification campaigns, upload affected accounts, launch, "
            "watch, and prove who was told what and when.",
        },
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": _schemas(),
        },
        "paths": _with_idempotency(_paths()),
    }
