"""The OpenAPI 3.1 document served at /openapi.json; a test keeps it equal to the routes."""

from __future__ import annotations

from functools import cache
from typing import Any

from notifier import __version__
from notifier.models import CampaignState, Channel, DeliveryStatus, Scope

J = dict[str, Any]


def _ref(name: str) -> J:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: J) -> J:
    return {"application/json": {"schema": schema}}


def _problem(description: str) -> J:
    return {
        "description": description,
        "content": {"application/problem+json": {"schema": _ref("Problem")}},
    }


_AUTH_ERRORS = {
    "401": _problem("Missing, unknown, expired or revoked API key"),
    "403": _problem("The key lacks the scope"),
}
_ID = {"name": "id", "in": "path", "required": True, "schema": {"type": "string", "format": "uuid"}}
_PAGE = [
    {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 1000}},
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
    scope: str | None = None,
    params: list[J] | None = None,
    body: J | None = None,
) -> J:
    op: J = {"summary": summary, "responses": responses}
    if scope:
        op["security"] = [{"bearer": [scope]}]
        op["responses"] = {**responses, **_AUTH_ERRORS}
    if params:
        op["parameters"] = params
    if body:
        op["requestBody"] = body
    return op


# A campaign that creation accepts, shown in the document (and used by fuzzers to reach past
# validation): English and Korean templates on both channels.
CAMPAIGN_EXAMPLE: J = {
    "name": "Account data exposure, November 2026",
    "incident_ref": "INC-2026-1129",
    "channels": ["email", "sms"],
    "default_locale": "ko",
    "default_region": "KR",
    "variables": ["name"],
    "templates": {
        "email": {
            "ko": {
                "subject": "[중요] {{ name }}님 개인정보 노출 안내",
                "text": "{{ name }}님, 확인 코드 {{ verification_code }}: {{ verify_url }}",
            },
            "en": {
                "subject": "Important: notice for {{ name }}",
                "text": "Dear {{ name }}, your code {{ verification_code }}: {{ verify_url }}",
            },
        },
        "sms": {
            "ko": {"text": "[안내] 확인코드 {{ verification_code }}"},
            "en": {"text": "Notice: code {{ verification_code }}"},
        },
    },
}
RECIPIENTS_EXAMPLE = (
    "external_id,email,phone,locale,name\n"
    "acct-1,user1@example.com,+821012345678,ko,Kim\n"
    "acct-2,user2@example.com,010-2345-6789,en,Lee\n"
)

# Where a created campaign's id leads: every operation on one campaign.
_CAMPAIGN_LINKS: J = {
    name: {
        "operationRef": "#/paths/" + path.replace("/", "~1") + "/" + method,
        "parameters": {"id": "$response.body#/id"},
    }
    for name, path, method in (
        ("GetCampaign", "/v1/campaigns/{id}", "get"),
        ("UploadRecipients", "/v1/campaigns/{id}/recipients", "post"),
        ("Launch", "/v1/campaigns/{id}/launch", "post"),
        ("Pause", "/v1/campaigns/{id}/pause", "post"),
        ("Resume", "/v1/campaigns/{id}/resume", "post"),
        ("Cancel", "/v1/campaigns/{id}/cancel", "post"),
        ("ListDeliveries", "/v1/campaigns/{id}/deliveries", "get"),
        ("Report", "/v1/campaigns/{id}/report", "get"),
    )
}


def _transition(action: str, effect: str) -> J:
    return {
        "post": _op(
            f"{action.capitalize()} the campaign: {effect}",
            {
                "202": {"description": "Accepted", "content": _json(_ref("Campaign"))},
                "404": _problem("No such campaign"),
                "409": _problem("Illegal state change"),
            },
            scope="campaigns:write",
            params=[_ID],
        )
    }


_COUNTS = {
    "type": "object",
    "additionalProperties": {
        "type": "object",
        "properties": {s: {"type": "integer"} for s in map(str, DeliveryStatus)},
    },
}
_TEMPLATE = {
    "type": "object",
    "properties": {
        "subject": {"type": "string"},
        "text": {"type": "string"},
        "html": {"type": "string"},
    },
}
_KEY = {
    "type": "object",
    "properties": {
        "id": {"type": "string", "format": "uuid"},
        "name": {"type": "string"},
        "prefix": {"type": "string"},
        "scopes": {"type": "array", "items": {"type": "string"}},
        "created_at": {"type": "string", "format": "date-time"},
        "expires_at": {"type": "string", "format": "date-time"},
        "revoked_at": {"type": ["string", "null"], "format": "date-time"},
        "last_used_at": {"type": ["string", "null"], "format": "date-time"},
    },
}
_SCOPES = list(map(str, Scope))
_SCHEMAS: J = {
    "KeyCreate": {
        "type": "object",
        "required": ["name", "scopes", "expires_in_days"],
        "properties": {
            "name": {"type": "string", "minLength": 1, "maxLength": 200},
            "scopes": {"type": "array", "minItems": 1, "items": {"enum": _SCOPES}},
            "expires_in_days": {"type": "integer", "minimum": 1, "maximum": 90},
        },
    },
    "NewKey": {
        "type": "object",
        "properties": {
            "id": {"type": "string", "format": "uuid"},
            "name": {"type": "string"},
            "scopes": {"type": "array", "items": {"type": "string"}},
            "expires_at": {"type": "string", "format": "date-time"},
            "secret": {"type": "string", "description": "shown once; store it now"},
        },
    },
    "KeyList": {
        "type": "object",
        "properties": {
            "items": {"type": "array", "items": _KEY},
            "next": {"type": ["string", "null"]},
        },
    },
    "AuditList": {
        "type": "object",
        "properties": {
            "items": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "id": {"type": "integer"},
                        "at": {"type": "string", "format": "date-time"},
                        "api_key_id": {"type": ["string", "null"]},
                        "action": {"type": "string"},
                        "target": {"type": ["string", "null"]},
                        "status": {"type": "integer"},
                        "client": {"type": ["string", "null"]},
                    },
                },
            },
            "next": {"type": ["string", "null"]},
        },
    },
    "Problem": {
        "type": "object",
        "required": ["type", "title", "status", "detail"],
        "properties": {
            "type": {"type": "string"},
            "title": {"type": "string"},
            "status": {"type": "integer"},
            "detail": {"type": "string"},
            "errors": {"type": "array", "items": {"type": "object"}},
        },
    },
    "CampaignCreate": {
        "type": "object",
        "required": ["name", "incident_ref", "channels", "default_locale", "templates"],
        "properties": {
            "name": {"type": "string", "maxLength": 200},
            "incident_ref": {"type": "string", "maxLength": 100},
            "channels": {"type": "array", "items": {"enum": list(map(str, Channel))}},
            "default_locale": {"type": "string", "examples": ["ko"]},
            "default_region": {
                "type": "string",
                "description": "region for phone numbers written without +, e.g. KR",
            },
            "variables": {
                "type": "array",
                "items": {"type": "string"},
                "description": "extra recipient columns the templates use",
            },
            "templates": {
                "type": "object",
                "description": "channel → locale → {subject, text, html} for email, {text} for sms",
                "additionalProperties": {"type": "object", "additionalProperties": _TEMPLATE},
            },
            "rate_limit_per_second": {"type": "number", "exclusiveMinimum": 0},
            "fallback": {"type": "object", "properties": {"email_failed": {"const": "sms"}}},
            "sms_max_segments": {
                "type": "integer",
                "minimum": 1,
                "maximum": 10,
                "default": 3,
                "description": "the most SMS segments one message may take; longer ones fail",
            },
        },
    },
    "Campaign": {
        "type": "object",
        "properties": {
            "id": {"type": "string", "format": "uuid"},
            "name": {"type": "string"},
            "incident_ref": {"type": "string"},
            "state": {"enum": list(map(str, CampaignState))},
            "channels": {"type": "array", "items": {"type": "string"}},
            "created_at": {"type": "string", "format": "date-time"},
            "launched_at": {"type": ["string", "null"], "format": "date-time"},
            "completed_at": {"type": ["string", "null"], "format": "date-time"},
            "recipients": {"type": "integer"},
            "preparing": {
                "type": "boolean",
                "description": "launched, and deliveries are still being created a chunk at "
                "a time (counts grow; eta_seconds is null until they are all there)",
            },
            "counts": _COUNTS,
            "rate_per_second": {"type": "number"},
            "eta_seconds": {"type": ["number", "null"]},
            "sms_max_segments": {"type": "integer"},
        },
    },
    "CampaignList": {
        "type": "object",
        "properties": {
            "items": {"type": "array", "items": _ref("Campaign")},
            "next": {"type": ["string", "null"]},
        },
    },
    "UploadResult": {
        "type": "object",
        "properties": {
            "accepted": {"type": "integer"},
            "rejected": {"type": "integer"},
            "duplicates": {"type": "integer"},
            "errors": {
                "type": "array",
                "maxItems": 1000,
                "items": {
                    "type": "object",
                    "properties": {"line": {"type": "integer"}, "message": {"type": "string"}},
                },
            },
        },
    },
    "Delivery": {
        "type": "object",
        "properties": {
            "recipient_external_id": {"type": "string"},
            "channel": {"type": "string"},
            "status": {"enum": list(map(str, DeliveryStatus))},
            "attempts": {"type": "integer"},
            "provider_message_id": {"type": ["string", "null"]},
            "last_error": {"type": ["string", "null"]},
            "sent_at": {"type": ["string", "null"], "format": "date-time"},
            "delivered_at": {"type": ["string", "null"], "format": "date-time"},
            "updated_at": {"type": "string", "format": "date-time"},
            "possible_duplicate": {"type": "boolean"},
        },
    },
    "DeliveryList": {
        "type": "object",
        "properties": {
            "items": {"type": "array", "items": _ref("Delivery")},
            "next": {"type": ["string", "null"]},
        },
    },
    "Verification": {
        "type": "object",
        "properties": {
            "genuine": {"const": True},
            "campaign": {"type": "string"},
            "channel": {"type": "string"},
            "sent_at": {"type": ["string", "null"]},
        },
    },
}


@cache
def document() -> J:
    """The whole API description."""
    return _with_idempotency(_document())


def _document() -> J:
    ok = {"description": "OK"}
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
            "schemas": _SCHEMAS,
        },
        "paths": {
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
                        "201": {
                            "description": "Created",
                            "content": _json(_ref("Campaign")),
                            "links": _CAMPAIGN_LINKS,
                        },
                        "400": _problem("Not JSON"),
                        "415": _problem("Not JSON"),
                        "422": _problem("Invalid campaign, naming each field"),
                    },
                    scope="campaigns:write",
                    body={
                        "required": True,
                        "content": {
                            "application/json": {
                                "schema": _ref("CampaignCreate"),
                                "example": CAMPAIGN_EXAMPLE,
                            }
                        },
                    },
                ),
                "get": _op(
                    "List campaigns, newest first",
                    {
                        "200": {"description": "A page", "content": _json(_ref("CampaignList"))},
                        "400": _problem("Bad paging parameter"),
                    },
                    scope="campaigns:read",
                    params=_PAGE,
                ),
            },
            "/v1/campaigns/{id}": {
                "get": _op(
                    "A campaign with its counts by channel and status",
                    {
                        "200": {"description": "The campaign", "content": _json(_ref("Campaign"))},
                        "404": _problem("No such campaign"),
                    },
                    scope="campaigns:read",
                    params=[_ID],
                )
            },
            "/v1/campaigns/{id}/recipients": {
                "post": _op(
                    "Upload affected accounts (CSV with a header row, or NDJSON), streamed; "
                    "bad rows are reported by line and the rest imported",
                    {
                        "200": {
                            "description": "Import result",
                            "content": _json(_ref("UploadResult")),
                        },
                        "400": _problem("Malformed file: nothing imported"),
                        "404": _problem("No such campaign"),
                        "409": _problem("The campaign is not a draft"),
                        "408": _problem("The client stopped sending: nothing imported"),
                        "415": _problem("Not CSV or NDJSON"),
                    },
                    scope="campaigns:write",
                    params=[_ID],
                    body={
                        "required": True,
                        "content": {
                            "text/csv": {
                                "schema": {"type": "string"},
                                "example": RECIPIENTS_EXAMPLE,
                            },
                            "application/x-ndjson": {"schema": {"type": "string"}},
                        },
                    },
                )
            },
            "/v1/campaigns/{id}/launch": _transition("launch", "start sending"),
            "/v1/campaigns/{id}/pause": _transition("pause", "no new sends start"),
            "/v1/campaigns/{id}/resume": _transition("resume", "sending continues"),
            "/v1/campaigns/{id}/cancel": _transition("cancel", "pending deliveries are cancelled"),
            "/v1/campaigns/{id}/deliveries": {
                "get": _op(
                    "A page of the campaign's deliveries",
                    {
                        "200": {"description": "A page", "content": _json(_ref("DeliveryList"))},
                        "400": _problem("Bad filter or paging parameter"),
                        "404": _problem("No such campaign"),
                    },
                    scope="campaigns:read",
                    params=[
                        _ID,
                        *_PAGE,
                        {
                            "name": "status",
                            "in": "query",
                            "schema": {"enum": list(map(str, DeliveryStatus))},
                        },
                        {
                            "name": "channel",
                            "in": "query",
                            "schema": {"enum": list(map(str, Channel))},
                        },
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
                    scope="campaigns:read",
                    params=[_ID],
                )
            },
            "/v1/recipients/{external_id}/deliveries": {
                "get": _op(
                    "Every delivery to one account across campaigns",
                    {
                        "200": {"description": "Deliveries", "content": _json({"type": "object"})},
                        "404": _problem("No deliveries to this account"),
                    },
                    scope="campaigns:read",
                    params=[
                        {
                            "name": "external_id",
                            "in": "path",
                            "required": True,
                            "schema": {"type": "string"},
                        }
                    ],
                )
            },
            "/v1/verify/{code}": {
                "get": _op(
                    "Is this notice genuine? Public; reveals no personal data",
                    {
                        "200": {"description": "Genuine", "content": _json(_ref("Verification"))},
                        "404": _problem("Not a code this service issued"),
                        "429": _problem("Too many checks from this client; see Retry-After"),
                    },
                    params=[
                        {
                            "name": "code",
                            "in": "path",
                            "required": True,
                            "schema": {"type": "string"},
                        }
                    ],
                )
            },
            "/v1/keys": {
                "post": _op(
                    "Create an API key; its secret is in this response only",
                    {
                        "201": {"description": "Created", "content": _json(_ref("NewKey"))},
                        "422": _problem("Invalid key, naming each field"),
                    },
                    scope="keys:admin",
                    body={"required": True, "content": _json(_ref("KeyCreate"))},
                ),
                "get": _op(
                    "List keys (never their secrets), with expiry, last use and revocation",
                    {
                        "200": {"description": "A page", "content": _json(_ref("KeyList"))},
                        "400": _problem("Bad paging parameter"),
                    },
                    scope="keys:admin",
                    params=_PAGE,
                ),
            },
            "/v1/keys/{id}": {
                "delete": _op(
                    "Revoke a key: refused from its very next request on",
                    {"204": {"description": "Revoked"}, "404": _problem("No such key")},
                    scope="keys:admin",
                    params=[_ID],
                )
            },
            "/v1/audit": {
                "get": _op(
                    "The audit log of mutating calls, newest first",
                    {
                        "200": {"description": "A page", "content": _json(_ref("AuditList"))},
                        "400": _problem("Bad paging parameter"),
                    },
                    scope="keys:admin",
                    params=_PAGE,
                )
            },
            "/v1/webhooks/twilio/status": {
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
            "/v1/webhooks/email/events": {
                "post": _op(
                    "Delivery events from the email relay, signed with HMAC-SHA256 over "
                    "'<timestamp>.<body>'; refused when the timestamp is over 5 minutes away",
                    {
                        "200": {
                            "description": "How many events came and how many were applied",
                            "content": _json(
                                {
                                    "type": "object",
                                    "properties": {
                                        "received": {"type": "integer"},
                                        "applied": {"type": "integer"},
                                    },
                                }
                            ),
                        },
                        "400": _problem("Not a list of events"),
                        "403": _problem("Bad signature or stale timestamp: nothing changed"),
                        "404": _problem("Email events are not configured"),
                    },
                    params=[
                        {
                            "name": name,
                            "in": "header",
                            "required": True,
                            "schema": {"type": "string"},
                        }
                        for name in ("X-Notifier-Timestamp", "X-Notifier-Signature")
                    ],
                    body={
                        "required": True,
                        "content": {
                            "application/json": {
                                "schema": {
                                    "type": "object",
                                    "required": ["events"],
                                    "properties": {
                                        "events": {
                                            "type": "array",
                                            "maxItems": 1000,
                                            "items": {
                                                "type": "object",
                                                "required": ["message_id", "event"],
                                                "properties": {
                                                    "message_id": {"type": "string"},
                                                    "event": {
                                                        "type": "string",
                                                        "examples": ["delivered", "bounced"],
                                                    },
                                                    "reason": {"type": "string"},
                                                },
                                            },
                                        }
                                    },
                                }
                            }
                        },
                    },
                )
            },
        },
    }


def _with_idempotency(doc: J) -> J:
    """Every authenticated POST takes an Idempotency-Key."""
    for ops in doc["paths"].values():
        op = ops.get("post")
        if op is None or "security" not in op:
            continue
        op["parameters"] = [*op.get("parameters", []), _IDEMPOTENCY]
        op["responses"].setdefault("400", _problem("Idempotency-Key is not 1 to 255 characters"))
        op["responses"].setdefault("422", _problem("Idempotency-Key reused for another request"))
        op["responses"].setdefault("409", _problem("A request with this key is still running"))
    return doc
