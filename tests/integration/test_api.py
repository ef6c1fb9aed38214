"""The REST contract: auth, validation errors, campaigns, paging, the API's own description."""

from __future__ import annotations

import aiohttp
import asyncpg

from notifier import keys
from notifier.tooling.stack import LocalStack
from tests import factories


async def test_health_and_readiness(stack: LocalStack) -> None:
    async with aiohttp.ClientSession(stack.api_url) as http:
        async with http.get("/healthz") as resp:
            assert resp.status == 200
        async with http.get("/readyz") as resp:
            assert resp.status == 200
            assert (await resp.json())["checks"] == {"postgres": "ok", "redis": "ok"}


async def test_requests_without_a_valid_key_are_refused(stack: LocalStack) -> None:
    async with aiohttp.ClientSession(stack.api_url) as http:
        async with http.get("/v1/campaigns") as resp:
            assert resp.status == 401
            assert resp.content_type == "application/problem+json"
        async with http.get(
            "/v1/campaigns", headers={"Authorization": "Bearer nk_0000_nope"}
        ) as resp:
            assert resp.status == 401


async def test_a_key_without_the_scope_gets_403(stack: LocalStack, db: asyncpg.Connection) -> None:
    reader = await keys.create(db, name="reader", scopes=["campaigns:read"], expires_in_days=1)
    headers = {"Authorization": f"Bearer {reader.secret}"}
    async with aiohttp.ClientSession(stack.api_url, headers=headers) as http:
        async with http.get("/v1/campaigns") as resp:
            assert resp.status == 200
        async with http.post("/v1/campaigns", json=factories.campaign()) as resp:
            assert resp.status == 403
            assert (await resp.json())["title"] == "Forbidden"


async def test_an_expired_key_is_refused(stack: LocalStack, db: asyncpg.Connection) -> None:
    key = await keys.create(db, name="old", scopes=["campaigns:read"], expires_in_days=1)
    await db.execute(
        "UPDATE api_keys SET expires_at = now() - interval '1 second' WHERE id = $1", key.id
    )
    async with (
        aiohttp.ClientSession(
            stack.api_url, headers={"Authorization": f"Bearer {key.secret}"}
        ) as http,
        http.get("/v1/campaigns") as resp,
    ):
        assert resp.status == 401


async def test_create_and_read_a_campaign(api: aiohttp.ClientSession) -> None:
    created = await factories.create_campaign(api)
    assert created["state"] == "draft"
    assert created["recipients"] == 0
    assert created["counts"]["email"]["pending"] == 0
    got = await factories.get_campaign(api, created["id"])
    assert got["name"] == created["name"]
    assert got["created_at"].endswith("Z")


async def test_invalid_campaign_is_422_naming_each_field(api: aiohttp.ClientSession) -> None:
    body = factories.campaign(channels=["email", "fax"], rate_limit_per_second=-1)
    del body["name"]
    async with api.post("/v1/campaigns", json=body) as resp:
        assert resp.status == 422
        problem = await resp.json()
    fields = {e["field"] for e in problem["errors"]}
    assert {"name", "channels", "rate_limit_per_second"} <= fields


async def test_template_with_undeclared_variable_is_422(api: aiohttp.ClientSession) -> None:
    body = factories.campaign()
    body["templates"]["sms"]["ko"]["text"] = "{{ verification_code }} {{ shoe_size }}"
    async with api.post("/v1/campaigns", json=body) as resp:
        assert resp.status == 422
        problem = await resp.json()
    assert any("shoe_size" in e["message"] for e in problem["errors"])


async def test_template_naming_a_domain_off_the_allow_list_is_422(
    api: aiohttp.ClientSession,
) -> None:
    body = factories.campaign()
    body["templates"]["sms"]["ko"]["text"] = (
        "확인: https://refund-help.example {{ verification_code }}"
    )
    body["templates"]["sms"]["en"]["text"] = "Check {{ verify_url }} {{ verification_code }}"
    async with api.post("/v1/campaigns", json=body) as resp:
        assert resp.status == 422
        problem = await resp.json()
    assert problem["errors"] == [
        {
            "field": "templates.sms.ko.text",
            "message": "names refund-help.example, which is not on the link allow-list "
            "(NOTIFIER_LINK_DOMAINS)",
        }
    ]


async def test_channel_without_default_locale_template_is_422(api: aiohttp.ClientSession) -> None:
    body = factories.campaign(default_locale="ja")
    async with api.post("/v1/campaigns", json=body) as resp:
        assert resp.status == 422


async def test_body_that_is_not_json_is_400(api: aiohttp.ClientSession) -> None:
    async with api.post(
        "/v1/campaigns", data=b"{nope", headers={"Content-Type": "application/json"}
    ) as resp:
        assert resp.status == 400
        assert resp.content_type == "application/problem+json"


async def test_unknown_campaign_is_404(api: aiohttp.ClientSession) -> None:
    for path in (
        "/v1/campaigns/00000000-0000-0000-0000-000000000000",
        "/v1/campaigns/not-a-uuid",
        "/v1/campaigns/00000000-0000-0000-0000-000000000000/deliveries",
    ):
        async with api.get(path) as resp:
            assert resp.status == 404, path
    async with api.post("/v1/campaigns/00000000-0000-0000-0000-000000000000/launch") as resp:
        assert resp.status == 404


async def test_campaign_list_is_newest_first_and_paged(api: aiohttp.ClientSession) -> None:
    made = [(await factories.create_campaign(api, name=f"c{i}"))["id"] for i in range(5)]
    seen: list[str] = []
    after = ""
    while True:
        async with api.get("/v1/campaigns", params={"limit": "2", "after": after}) as resp:
            assert resp.status == 200
            page = await resp.json()
        seen += [c["id"] for c in page["items"]]
        if page["next"] is None:
            break
        after = page["next"]
    assert seen == list(reversed(made))
    async with api.get("/v1/campaigns", params={"limit": "5000"}) as resp:
        assert resp.status == 400


async def test_openapi_describes_every_route(stack: LocalStack) -> None:
    async with aiohttp.ClientSession(stack.api_url) as http, http.get("/openapi.json") as resp:
        doc = await resp.json()
    assert doc["openapi"].startswith("3.")
    from notifier.app import create_app

    app = create_app(stack.settings)
    routes = {
        (r.method.lower(), r.resource.canonical)
        for r in app.router.routes()
        if r.resource is not None and r.method != "HEAD"
    }
    described = {(m, p) for p, ops in doc["paths"].items() for m in ops}
    assert routes == described


async def test_illegal_transitions_are_409(api: aiohttp.ClientSession) -> None:
    cid = (await factories.create_campaign(api))["id"]
    async with api.post(f"/v1/campaigns/{cid}/launch") as resp:
        assert resp.status == 409  # no recipients
    for action in ("pause", "resume"):
        async with api.post(f"/v1/campaigns/{cid}/{action}") as resp:
            assert resp.status == 409, action
    async with api.post(f"/v1/campaigns/{cid}/cancel") as resp:
        assert resp.status == 202
    async with api.post(f"/v1/campaigns/{cid}/cancel") as resp:
        assert resp.status == 409


async def test_idempotency_key_replays_refuses_and_scopes(api: aiohttp.ClientSession) -> None:
    headers = {"Idempotency-Key": "create-1"}
    async with api.post("/v1/campaigns", json=factories.campaign(), headers=headers) as first:
        assert first.status == 201
        made = await first.json()
    async with api.post("/v1/campaigns", json=factories.campaign(), headers=headers) as again:
        assert again.status == 201
        assert again.headers["Idempotent-Replayed"] == "true"
        assert (await again.json())["id"] == made["id"]
    async with api.post(
        "/v1/campaigns", json=factories.campaign(name="other"), headers=headers
    ) as other:
        assert other.status == 422
    async with api.get("/v1/campaigns") as resp:
        assert len((await resp.json())["items"]) == 1

    # A launch retried by a client whose connection dropped does not launch twice.
    cid = made["id"]
    await factories.upload(api, cid, factories.recipients_csv(3))
    launch = {"Idempotency-Key": "launch-1"}
    async with api.post(f"/v1/campaigns/{cid}/launch", headers=launch) as resp:
        assert resp.status == 202
    async with api.post(f"/v1/campaigns/{cid}/launch", headers=launch) as resp:
        assert resp.status == 202 and resp.headers["Idempotent-Replayed"] == "true"
    async with api.post(f"/v1/campaigns/{cid}/launch") as resp:
        assert resp.status == 409  # without the key, a second launch is refused


async def test_the_same_upload_with_the_same_key_is_not_imported_twice(
    api: aiohttp.ClientSession,
) -> None:
    cid = (await factories.create_campaign(api))["id"]
    headers = {"Content-Type": "text/csv", "Idempotency-Key": "upload-1"}
    data = factories.recipients_csv(20)
    async with api.post(f"/v1/campaigns/{cid}/recipients", data=data, headers=headers) as r1:
        first = await r1.json()
    async with api.post(f"/v1/campaigns/{cid}/recipients", data=data, headers=headers) as r2:
        assert r2.headers["Idempotent-Replayed"] == "true"
        assert await r2.json() == first
    other = factories.recipients_csv(20, start=500)
    async with api.post(f"/v1/campaigns/{cid}/recipients", data=other, headers=headers) as r3:
        assert r3.status == 422
    assert (await factories.get_campaign(api, cid))["recipients"] == 20
    async with api.post(
        "/v1/campaigns", json=factories.campaign(), headers={"Idempotency-Key": "k" * 300}
    ) as bad:
        assert bad.status == 400


async def test_verification_is_throttled_per_client(stack: LocalStack) -> None:
    limit = stack.settings.verify_per_minute
    statuses: list[int] = []
    retry_after = None
    async with aiohttp.ClientSession(stack.api_url) as public:
        # Two windows at most, in case the minute turns during the loop.
        while 429 not in statuses and len(statuses) < 2 * limit + 2:
            async with public.get("/v1/verify/0123456789ABCDEF") as resp:
                statuses.append(resp.status)
                retry_after = resp.headers.get("Retry-After")
    assert statuses[-1] == 429
    assert statuses.count(404) >= limit  # every check within the limit was answered
    assert retry_after is not None and 0 < int(retry_after) <= 60


async def test_email_events_are_404_until_a_secret_is_configured(stack: LocalStack) -> None:
    async with (
        aiohttp.ClientSession() as session,
        session.post(stack.api_url + "/v1/webhooks/email/events", json={"events": []}) as resp,
    ):
        assert resp.status == 404
