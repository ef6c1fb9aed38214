"""End to end: upload, launch, workers send through the sandbox, receipts come back."""

from __future__ import annotations

import csv
import io
import re
from collections import Counter

import aiohttp
import pytest

from notifier.models import Channel
from notifier.tooling.stack import LocalStack
from tests import factories

pytestmark = pytest.mark.timeout(240)


async def test_two_thousand_recipients_get_each_channel_exactly_once(
    stack: LocalStack, api: aiohttp.ClientSession
) -> None:
    n = 2000
    cid = (await factories.create_campaign(api))["id"]
    status, result = await factories.upload(api, cid, factories.recipients_csv(n))
    assert (status, result["accepted"], result["rejected"]) == (200, n, 0)
    await stack.start_inline_worker()
    await stack.start_inline_worker()
    async with api.post(f"/v1/campaigns/{cid}/launch") as resp:
        assert resp.status == 202
        assert (await resp.json())["state"] == "sending"

    final = await factories.wait_for(api, cid, factories.settled, within=180)
    assert final["counts"]["email"]["sent"] == n
    assert final["counts"]["sms"]["delivered"] == n
    assert final["completed_at"] is not None
    assert stack.sandbox is not None
    inbox = stack.sandbox.inbox
    emails = Counter(inbox.recipients(Channel.EMAIL))
    texts = Counter(inbox.recipients(Channel.SMS))
    assert set(emails) == {f"user{i}@example.com" for i in range(n)}
    assert set(texts) == {factories.phone(i) for i in range(n)}
    assert max(emails.values()) == 1 and max(texts.values()) == 1

    # The report is the evidence: one row per delivery with its final status.
    async with api.get(f"/v1/campaigns/{cid}/report") as resp:
        assert resp.status == 200
        rows = list(csv.DictReader(io.StringIO(await resp.text())))
    assert len(rows) == 2 * n
    assert Counter(r["status"] for r in rows) == {"sent": n, "delivered": n}
    assert all(r["sent_at"] for r in rows)

    # The support desk can answer "was I notified, and how?".
    async with api.get("/v1/recipients/acct-7/deliveries") as resp:
        history = await resp.json()
    assert sorted(d["channel"] for d in history["items"]) == ["email", "sms"]

    # Every notice carries a code the public can check; it reveals nothing personal.
    body = inbox.records(Channel.SMS)[0].body
    assert body is not None
    code = re.search(r"[0-9A-F]{16}", body)
    assert code is not None
    async with aiohttp.ClientSession(stack.api_url) as public:
        async with public.get(f"/v1/verify/{code.group(0)}") as resp:
            assert resp.status == 200
            found = await resp.json()
        assert found["genuine"] is True and found["channel"] == "sms"
        assert set(found) == {"genuine", "campaign", "channel", "sent_at", "notice_url"}
        assert found["notice_url"] is None  # a campaign without facts publishes no page
        async with (
            public.get("/v1/verify/0000000000000000") as unknown,
            public.get("/v1/verify/not-a-code") as malformed,
        ):
            assert unknown.status == malformed.status == 404
            assert await unknown.json() == await malformed.json()


async def test_receipts_fail_undelivered_sms_and_permanent_errors_fail_at_once(
    stack: LocalStack, api: aiohttp.ClientSession
) -> None:
    cid = (await factories.create_campaign(api))["id"]
    data = (
        b"external_id,email,phone,name\n"
        b"ok-1,ok1@example.com,+821055550001,A\n"
        b"undelivered-1,reject-me@example.com,+15005553003,B\n"
        b"invalid-1,ok2@example.com,+15005550001,C\n"
    )
    _, result = await factories.upload(api, cid, data)
    assert result["accepted"] == 3, result
    await stack.start_inline_worker()
    async with api.post(f"/v1/campaigns/{cid}/launch") as resp:
        assert resp.status == 202
    final = await factories.wait_for(api, cid, factories.settled)
    assert final["counts"]["sms"]["delivered"] == 1
    assert final["counts"]["sms"]["failed"] == 2
    assert final["counts"]["email"]["sent"] == 2
    assert final["counts"]["email"]["failed"] == 1
    async with api.get(f"/v1/campaigns/{cid}/deliveries", params={"status": "failed"}) as resp:
        failed = {
            (d["recipient_external_id"], d["channel"]): d for d in (await resp.json())["items"]
        }
    assert "30003" in failed[("undelivered-1", "sms")]["last_error"]
    assert "21211" in failed[("invalid-1", "sms")]["last_error"]
    assert failed[("invalid-1", "sms")]["attempts"] == 1
    assert "550" in failed[("undelivered-1", "email")]["last_error"]


async def test_a_value_with_crlf_cannot_add_an_email_header(
    stack: LocalStack, api: aiohttp.ClientSession
) -> None:
    import email
    import email.policy

    cid = (await factories.create_campaign(api, channels=["email"]))["id"]
    data = b'external_id,email,name\ninj-1,victim@example.com,"Kim\r\nBcc: attacker@example.net"\n'
    _, result = await factories.upload(api, cid, data)
    assert result["accepted"] == 1, result
    await stack.start_inline_worker()
    async with api.post(f"/v1/campaigns/{cid}/launch"):
        pass
    await factories.wait_for(api, cid, factories.settled)
    assert stack.sandbox is not None
    assert stack.sandbox.inbox.recipients(Channel.EMAIL) == ["victim@example.com"]
    raw = stack.sandbox.inbox.records(Channel.EMAIL)[0].body
    assert raw is not None
    message = email.message_from_string(raw, policy=email.policy.default)
    assert message["Bcc"] is None
    assert "attacker" not in "".join(f"{k}{v}" for k, v in message.items() if k != "Subject")


async def test_email_that_fails_for_good_falls_back_to_sms(
    stack: LocalStack, api: aiohttp.ClientSession
) -> None:
    cid = (
        await factories.create_campaign(api, channels=["email"], fallback={"email_failed": "sms"})
    )["id"]
    data = (
        b"external_id,email,phone,name\n"
        b"fb-1,reject-fb1@example.com,+821020000001,A\n"
        b"fb-2,fb2@example.com,+821020000002,B\n"
    )
    _, result = await factories.upload(api, cid, data)
    assert result["accepted"] == 2
    await stack.start_inline_worker()
    async with api.post(f"/v1/campaigns/{cid}/launch"):
        pass
    final = await factories.wait_for(
        api, cid, lambda c: factories.settled(c) and c["counts"].get("sms", {}).get("delivered")
    )
    assert final["counts"]["email"]["failed"] == 1
    assert final["counts"]["email"]["sent"] == 1
    assert final["counts"]["sms"]["delivered"] == 1
    assert stack.sandbox is not None
    assert stack.sandbox.inbox.recipients(Channel.SMS) == ["+821020000001"]


async def test_transient_errors_retry_and_throttling_fails_nothing(
    stack: LocalStack, api: aiohttp.ClientSession
) -> None:
    assert stack.sandbox is not None
    # Rare enough that no delivery meets five faults in a row, frequent enough to see retries.
    stack.sandbox.faults.update(
        {"smtp_tempfail_rate": 0.15, "sms_throttle_rate": 0.3, "sms_error_rate": 0.1}
    )
    n = 200
    cid = (await factories.create_campaign(api))["id"]
    await factories.upload(api, cid, factories.recipients_csv(n))
    await stack.start_inline_worker()
    async with api.post(f"/v1/campaigns/{cid}/launch"):
        pass
    final = await factories.wait_for(api, cid, factories.settled)
    async with api.get(f"/v1/campaigns/{cid}/deliveries", params={"limit": "1000"}) as resp:
        items = (await resp.json())["items"]
    failed = [
        (d["channel"], d["attempts"], d["last_error"]) for d in items if d["status"] == "failed"
    ]
    assert not failed
    assert final["counts"]["email"]["sent"] == n
    assert final["counts"]["sms"]["delivered"] == n
    retried = [d for d in items if d["attempts"] > 1]
    assert retried, "some deliveries needed a second attempt"
    assert all(d["last_error"] for d in retried if d["channel"] == "email")
    assert Counter(stack.sandbox.inbox.recipients(Channel.EMAIL)).most_common(1)[0][1] == 1
    assert Counter(stack.sandbox.inbox.recipients(Channel.SMS)).most_common(1)[0][1] == 1


async def test_transient_errors_fail_after_the_bound(
    stack: LocalStack, api: aiohttp.ClientSession
) -> None:
    assert stack.sandbox is not None
    stack.sandbox.faults.update({"smtp_tempfail_rate": 1.0})
    cid = (await factories.create_campaign(api, channels=["email"]))["id"]
    await factories.upload(api, cid, factories.recipients_csv(5, sms=False))
    await stack.start_inline_worker()
    async with api.post(f"/v1/campaigns/{cid}/launch"):
        pass
    final = await factories.wait_for(api, cid, factories.settled)
    assert final["counts"]["email"]["failed"] == 5
    async with api.get(f"/v1/campaigns/{cid}/deliveries") as resp:
        items = (await resp.json())["items"]
    assert {d["attempts"] for d in items} == {stack.settings.max_attempts}
    assert all("451" in d["last_error"] for d in items)


async def test_an_sms_over_the_segment_budget_fails_with_its_reason(
    stack: LocalStack, api: aiohttp.ClientSession
) -> None:
    body = factories.campaign(channels=["sms"], sms_max_segments=1, variables=["name"])
    body["templates"]["sms"]["ko"]["text"] = "{{ name }} {{ verification_code }}"
    cid = (await factories.create_campaign(api, **body))["id"]
    data = (
        "external_id,phone,locale,name\n"
        f"short,{factories.phone(1)},ko,김민준\n"
        f"long,{factories.phone(2)},ko,{'가' * 80}\n"
    ).encode()
    _, result = await factories.upload(api, cid, data)
    assert result["accepted"] == 2, result
    await stack.start_inline_worker()
    await factories.launch(api, cid)
    final = await factories.wait_for(api, cid, factories.settled)
    assert final["counts"]["sms"]["delivered"] == 1 and final["counts"]["sms"]["failed"] == 1
    async with api.get(f"/v1/campaigns/{cid}/deliveries", params={"status": "failed"}) as resp:
        [failed] = (await resp.json())["items"]
    assert failed["recipient_external_id"] == "long" and failed["attempts"] == 1
    assert "2 segments, over the campaign's budget of 1" in failed["last_error"]
    assert stack.sandbox is not None
    assert stack.sandbox.inbox.recipients(Channel.SMS) == [factories.phone(1)]


async def test_a_template_over_the_segment_budget_is_422(api: aiohttp.ClientSession) -> None:
    body = factories.campaign(sms_max_segments=1)
    body["templates"]["sms"]["ko"]["text"] = "안내 " * 40 + "{{ verification_code }}"
    async with api.post("/v1/campaigns", json=body) as resp:
        assert resp.status == 422
        problem = await resp.json()
    assert problem["errors"][0]["field"] == "templates.sms.ko.text"
    assert "takes 2 SMS segments" in problem["errors"][0]["message"]
    async with api.post("/v1/campaigns", json=factories.campaign(sms_max_segments=11)) as resp:
        assert resp.status == 422
