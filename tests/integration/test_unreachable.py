"""The people a campaign cannot reach: rows refused at upload and recipients every channel
failed, listed by account id for a substitute notice, never with a contact detail."""

from __future__ import annotations

import asyncio
import csv
import io
import uuid
from collections.abc import Sequence

import aiohttp
import asyncpg
import orjson

from notifier import keys
from notifier.tooling.stack import LocalStack
from tests import factories

HEADER = ["external_id", "reason", "source", "line"]

# (external_id, email, phone, locale, name): the first upload, from line 2 on.
FIRST = [
    ("ok-1", "ok1@example.com", "+821012345678", "ko", "Name-A"),  # 2: reached
    ("bad-phone", "bp@example.com", "+8210123", "ko", "Name-B"),  # 3: refused
    ("bad-email", "not-an-email@", "+821012345679", "ko", "Name-C"),  # 4: refused
    ("", "noid@example.com", "+821012345680", "ko", "Name-D"),  # 5: refused, no id
    ("bad-locale", "bl@example.com", "+821012345681", "fr", "Name-E"),  # 6: refused
    ("later-ok", "lo@example.com", "12345", "ko", "Name-F"),  # 7: refused, stored later
    ("twice", "tw@example.com", "123", "ko", "Name-G"),  # 8: refused, and again later
    ("fail-both", "reject-fb@example.com", "+15005550001", "ko", "Name-H"),  # 9: 550, 21211
    ("fail-email", "reject-fe@example.com", "", "en", "Name-I"),  # 10: 550, no SMS
    ("half", "reject-h@example.com", "+821012345682", "ko", "Name-J"),  # 11: the SMS arrives
    ("undelivered", "", "+15005553003", "ko", "Name-K"),  # 12: accepted, then undelivered
]
# The second upload (NDJSON), from line 1 on.
SECOND: list[dict[str, object]] = [
    {"external_id": "later-ok", "email": "lo@example.com", "phone": "+821012345683"},  # 1: ok
    {"external_id": "twice", "email": "tw@example"},  # 2: refused again
    {"external_id": {"nested": 1}, "email": "nest@example.com"},  # 3: refused, no id
    {"external_id": "odd-key", "email": "ok@example.com", "odd@example.com": [1]},  # 4
]
CONTACTS = [value for row in FIRST for value in row[1:3] if value] + [
    "tw@example",
    "nest@example.com",
    "odd@example.com",
    "+821012345683",
]

REJECTED = [
    ["bad-phone", "phone: not a valid number", "rejected", "3"],
    ["bad-email", "email: not a valid address", "rejected", "4"],
    ["", "external_id: missing", "rejected", "5"],
    ["bad-locale", "locale: no template for the row's locale", "rejected", "6"],
    ["twice", "email: not a valid address", "rejected", "2"],
    ["", "external_id: must be a string or a number", "rejected", "3"],
    ["odd-key", "a field: must be a string or a number", "rejected", "4"],
]
EMAIL_550 = "email: smtp 550 5.1.1 <redacted>: Recipient address rejected: User unknown"
FAILED = [
    ["fail-both", f"{EMAIL_550}; sms: twilio 21211 invalid 'To' phone number", "failed", ""],
    ["fail-email", EMAIL_550, "failed", ""],
    ["undelivered", "sms: twilio 30003", "failed", ""],
]


WRITING_REFUSED = (
    "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE relation = 'rejected_rows'::regclass"
    " AND mode = 'RowExclusiveLock' AND pid <> pg_backend_pid())"
)


def _csv(rows: Sequence[tuple[str, ...]]) -> bytes:
    lines = ["external_id,email,phone,locale,name", *(",".join(row) for row in rows)]
    return ("\n".join(lines) + "\n").encode()


def _leaks(text: str) -> int:
    """How many contact details or other row values the text shows."""
    values = sum(value in text for value in CONTACTS)
    return values + text.count("@") + text.count("Name-")


async def _unreachable(api: aiohttp.ClientSession, cid: str) -> tuple[str, list[list[str]]]:
    async with api.get(f"/v1/campaigns/{cid}/unreachable") as resp:
        assert resp.status == 200
        assert resp.content_type == "text/csv"
        text = await resp.text()
    return text, list(csv.reader(io.StringIO(text)))


async def test_refused_rows_and_people_every_channel_failed_are_listed_without_contacts(
    stack: LocalStack, api: aiohttp.ClientSession
) -> None:
    cid = (await factories.create_campaign(api))["id"]
    status, first = await factories.upload(api, cid, _csv(FIRST))
    assert status == 200
    assert (first["accepted"], first["rejected"]) == (5, 6)
    ndjson = b"".join(orjson.dumps({**row, "name": "Name-Z"}) + b"\n" for row in SECOND)
    status, second = await factories.upload(api, cid, ndjson, "application/x-ndjson")
    assert status == 200
    assert (second["accepted"], second["rejected"]) == (1, 3)

    # Before the launch: only the refused rows, in upload and file order.
    text, rows = await _unreachable(api, cid)
    assert _leaks(text) == 0
    assert rows == [HEADER, *REJECTED]

    await stack.start_inline_worker()
    await factories.launch(api, cid)
    final = await factories.wait_for(api, cid, factories.settled)
    assert final["counts"]["email"]["failed"] == 3
    assert final["counts"]["sms"]["failed"] == 2

    text, rows = await _unreachable(api, cid)
    # No address, number or other value of any row, refused or stored, anywhere in the list
    # (checked first, and counted, so that a failure shows none of them).
    assert _leaks(text) == 0
    assert rows == [HEADER, *REJECTED, *FAILED]


async def test_an_upload_cut_mid_stream_keeps_no_refused_row(
    stack: LocalStack, api: aiohttp.ClientSession, admin_key: str, db: asyncpg.Connection
) -> None:
    cid = (await factories.create_campaign(api))["id"]
    n = 100_000  # every one refused (the phone is no number): several batches of them
    body = _csv([(f"x-{i}", "", "12345", "ko", "N") for i in range(n)])
    host, port = stack.api_url.removeprefix("http://").split(":")
    _, writer = await asyncio.open_connection(host, int(port))
    writer.write(
        f"POST /v1/campaigns/{cid}/recipients HTTP/1.1\r\nHost: {host}\r\n"
        f"Authorization: Bearer {admin_key}\r\nContent-Type: text/csv\r\n"
        f"Content-Length: {len(body)}\r\n\r\n".encode()
        + body[: len(body) * 3 // 5]
    )
    await writer.drain()
    # The upload's transaction has copied refused rows (it holds their table's write lock).
    for _ in range(100):
        if await db.fetchval(WRITING_REFUSED):
            break
        await asyncio.sleep(0.05)
    else:
        raise AssertionError("the upload wrote no refused row before it was cut")
    writer.close()
    await asyncio.sleep(1.0)
    kept = await db.fetchval(
        "SELECT count(*) FROM rejected_rows WHERE campaign_id = $1", uuid.UUID(cid)
    )
    assert kept == 0
    _, rows = await _unreachable(api, cid)
    assert rows == [HEADER]

    # The whole file, sent again, keeps every refused row, once.
    status, result = await factories.upload(api, cid, body)
    assert (status, result["rejected"]) == (200, n)
    _, rows = await _unreachable(api, cid)
    assert len(rows) == n + 1
    assert rows[1] == ["x-0", "phone: not a valid number", "rejected", "2"]
    assert rows[-1] == [f"x-{n - 1}", "phone: not a valid number", "rejected", str(n + 1)]


async def test_unknown_campaign_is_404_and_the_list_needs_the_read_scope(
    stack: LocalStack, api: aiohttp.ClientSession, db: asyncpg.Connection
) -> None:
    async with api.get(f"/v1/campaigns/{uuid.uuid4()}/unreachable") as resp:
        assert resp.status == 404
        assert resp.content_type == "application/problem+json"
    cid = (await factories.create_campaign(api))["id"]
    writer = await keys.create(db, name="writer", scopes=["campaigns:write"], expires_in_days=1)
    async with aiohttp.ClientSession(stack.api_url) as anonymous:
        async with anonymous.get(f"/v1/campaigns/{cid}/unreachable") as resp:
            assert resp.status == 401
        async with anonymous.get(
            f"/v1/campaigns/{cid}/unreachable",
            headers={"Authorization": f"Bearer {writer.secret}"},
        ) as resp:
            assert resp.status == 403
