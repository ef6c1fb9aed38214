"""Recipient uploads: good rows in, bad rows reported by line, malformed files refused whole."""

from __future__ import annotations

import aiohttp
import asyncpg
import orjson
import pytest

from tests import factories


async def test_bad_rows_are_reported_by_line_and_good_rows_imported(
    api: aiohttp.ClientSession,
) -> None:
    cid = (await factories.create_campaign(api))["id"]
    data = (
        "external_id,email,phone,locale,name\n"  # 1
        "a-1,a1@example.com,+821012345678,ko,A\n"  # 2 good
        ",a2@example.com,+821012345679,ko,B\n"  # 3 missing id
        "a-3,not-an-email,+821012345680,ko,C\n"  # 4 bad email
        "a-4,a4@example.com,+8210123,ko,D\n"  # 5 bad phone
        "a-5,a5@example.com,+821012345681,fr,E\n"  # 6 no template for locale
        "a-1,a6@example.com,+821012345682,ko,F\n"  # 7 duplicate of line 2
        f"a-7,a7@example.com,+821012345683,ko,{'x' * 2000}\n"  # 8 oversized field
        "a-8,,,ko,H\n"  # 9 no contact
        "a-9,a9@example.com,,en,I\n"  # 10 good, email only
    ).encode()
    status, result = await factories.upload(api, cid, data)
    assert status == 200
    assert (result["accepted"], result["rejected"], result["duplicates"]) == (2, 6, 1)
    lines = {e["line"]: e["message"] for e in result["errors"]}
    assert sorted(lines) == [3, 4, 5, 6, 7, 8, 9]
    assert lines[3].startswith("external_id")
    assert lines[4].startswith("email")
    assert lines[5].startswith("phone")
    assert "locale" in lines[6]
    assert "duplicate" in lines[7]
    assert "name" in lines[8]
    campaign = await factories.get_campaign(api, cid)
    assert campaign["recipients"] == 2


async def test_second_upload_of_the_same_ids_adds_nobody(api: aiohttp.ClientSession) -> None:
    cid = (await factories.create_campaign(api))["id"]
    data = factories.recipients_csv(50)
    _, first = await factories.upload(api, cid, data)
    _, again = await factories.upload(api, cid, data)
    assert first["accepted"] == 50
    assert (again["accepted"], again["duplicates"]) == (0, 50)
    _, more = await factories.upload(api, cid, factories.recipients_csv(10, start=50))
    assert more["accepted"] == 10
    assert (await factories.get_campaign(api, cid))["recipients"] == 60


async def test_ndjson_upload(api: aiohttp.ClientSession) -> None:
    cid = (await factories.create_campaign(api))["id"]
    rows = [
        {"external_id": f"n-{i}", "email": f"n{i}@example.com", "name": f"N{i}"} for i in range(20)
    ]
    data = b"\n".join(orjson.dumps(r) for r in rows) + b"\nnot json\n"
    status, result = await factories.upload(api, cid, data, "application/x-ndjson")
    assert status == 200
    assert (result["accepted"], result["rejected"]) == (20, 1)
    assert result["errors"][0]["line"] == 21


async def test_malformed_files_are_400_and_import_nothing(
    api: aiohttp.ClientSession, db: asyncpg.Connection
) -> None:
    cid = (await factories.create_campaign(api))["id"]
    for data in (
        b"",  # empty
        b"email,phone\nx@example.com,+821012345678\n",  # no external_id column
        "external_id,name\nk-1,\xff\xfe".encode("utf-16"),  # not UTF-8
        b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR",  # not CSV at all
    ):
        status, problem = await factories.upload(api, cid, data)
        assert status == 400, data[:20]
        assert problem["status"] == 400
    assert await db.fetchval("SELECT count(*) FROM recipients") == 0


async def test_wrong_content_type_is_415_and_launched_campaign_is_409(
    stack: object, api: aiohttp.ClientSession
) -> None:
    cid = (await factories.create_campaign(api))["id"]
    status, _ = await factories.upload(api, cid, b"{}", "application/json")
    assert status == 415
    await factories.upload(api, cid, factories.recipients_csv(3))
    async with api.post(f"/v1/campaigns/{cid}/launch") as resp:
        assert resp.status == 202
    status, problem = await factories.upload(api, cid, factories.recipients_csv(3, start=10))
    assert status == 409
    assert "draft" in problem["detail"]


async def test_duplicates_across_chunks_and_uploads_are_reported_by_line(
    api: aiohttp.ClientSession, monkeypatch: pytest.MonkeyPatch
) -> None:
    from notifier import recipients

    monkeypatch.setattr(recipients, "CHUNK_ROWS", 4)  # many chunks in a small file
    cid = (await factories.create_campaign(api))["id"]
    _, first = await factories.upload(api, cid, factories.recipients_csv(3, start=100))
    assert first["accepted"] == 3
    lines = ["external_id,email,name"]
    lines += [f"d-{i},d{i}@example.com,N" for i in range(10)]  # lines 2-11
    lines += ["d-2,x@example.com,N", "acct-101,y@example.com,N", "d-9,z@example.com,N"]
    lines += [f"f-{i},f{i}@example.com,N" for i in range(3)]  # lines 15-17
    # A chunk of its own (lines 18-21) whose only repeat is inside it.
    lines += [f"e-{i},e{i}@example.com,N" for i in (1, 2, 1, 3)]
    _, result = await factories.upload(api, cid, ("\n".join(lines) + "\n").encode())
    assert (result["accepted"], result["duplicates"]) == (16, 4)
    assert [e["line"] for e in result["errors"]] == [12, 13, 14, 20]
    assert (await factories.get_campaign(api, cid))["recipients"] == 19
