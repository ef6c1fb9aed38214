"""Hostile recipient files at volume: exact counts, never a 500, nothing half-imported, and
nothing in a cell that becomes a header, a new report row or a spreadsheet formula."""

from __future__ import annotations

import asyncio
import csv
import io
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field

import aiohttp
import asyncpg
import pytest

from notifier.settings import Settings
from notifier.tooling.stack import LocalStack
from tests import factories
from tests.faults.conftest import finish

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

ROWS = 50_000
HEADER = b"external_id,email,phone,locale,name\r\n"


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.replace(email_rate=20_000.0, sms_rate=20_000.0, batch_size=200)


@dataclass
class Corpus:
    """A generated file and what its upload must report."""

    data: bytearray = field(default_factory=bytearray)
    lines: int = 1
    accepted: int = 0
    rejected: dict[int, str] = field(default_factory=dict)  # line -> part of the reason
    duplicates: list[int] = field(default_factory=list)

    def add(self, raw: bytes, *, physical_lines: int = 1) -> int:
        """Append one record; returns the line it starts on."""
        self.lines += 1
        start = self.lines
        self.data += raw
        self.lines += physical_lines - 1
        return start


def _good(i: int) -> bytes:
    return f"h-{i},user{i}@example.com,{factories.phone(i)},ko,Name {i}\r\n".encode()


# Each hostile kind: the record (for row i), how many physical lines it spans, and what the
# upload must say about it (a reason's fragment when rejected, None when accepted).
KINDS: list[tuple[str, object, int, str | None]] = [
    ("nul", lambda i: f"h-{i},n{i}@example.com,,ko,Na\x00me\r\n".encode(), 1, "NUL"),
    ("latin-1", lambda i: b"h-%d,l%d@example.com,,ko,Ren\xe9\r\n" % (i, i), 1, "UTF-8"),
    (
        "1 MB field",
        lambda i: f"h-{i},b{i}@example.com,,ko,".encode() + b"x" * (1024 * 1024 + 10) + b"\r\n",
        1,
        "longer than",
    ),
    (
        "2,000-character value",
        lambda i: f"h-{i},v{i}@example.com,,ko,{'y' * 2000}\r\n".encode(),
        1,
        "longer than 1000",
    ),
    (
        "10,000 columns",
        lambda i: f"h-{i},c{i}@example.com,,ko,".encode() + b",z" * 10_000 + b"\r\n",
        1,
        "values but the header has 5 columns",
    ),
    (
        "quoted newline",
        lambda i: f'h-{i},q{i}@example.com,,ko,"Two\r\nLines"\r\n'.encode(),
        2,
        None,
    ),
    (
        "CRLF header injection",
        lambda i: f'h-{i},i{i}@example.com,,ko,"Evil\r\nBcc: victim@example.net"\r\n'.encode(),
        2,
        None,
    ),
    ("formula", lambda i: f"=cmd|' /C calc'!A{i},f{i}@example.com,,ko,F\r\n".encode(), 1, None),
    ("formula via +", lambda i: f"+h-{i},p{i}@example.com,,ko,P\r\n".encode(), 1, None),
    ("bad email", lambda i: f"h-{i},not-an-address,,ko,E\r\n".encode(), 1, "email"),
    ("bad phone", lambda i: f"h-{i},,+82 10 12,ko,P\r\n".encode(), 1, "phone"),
    ("no contact", lambda i: f"h-{i},,,ko,C\r\n".encode(), 1, "no email or phone"),
]


def build(rows: int, every: int) -> Corpus:
    corpus = Corpus(data=bytearray(b"\xef\xbb\xbf" + HEADER))  # with a BOM
    for i in range(rows):
        if i % every == every // 2:
            _, make, lines, reason = KINDS[(i // every) % len(KINDS)]
            start = corpus.add(make(i), physical_lines=lines)  # type: ignore[operator]
            if reason is None:
                corpus.accepted += 1
            else:
                corpus.rejected[start] = reason
        elif i % every == every - 1:
            corpus.add(_good(i - 1))  # a repeated id: the earlier row wins
            corpus.duplicates.append(corpus.lines)
        else:
            corpus.add(_good(i))
            corpus.accepted += 1
    return corpus


async def test_a_large_hostile_file_gets_exact_counts(api: aiohttp.ClientSession) -> None:
    corpus = build(ROWS, every=250)
    cid = (await factories.create_campaign(api))["id"]
    status, result = await factories.upload(api, cid, bytes(corpus.data))
    assert status == 200, result
    assert result["accepted"] == corpus.accepted
    assert result["rejected"] == len(corpus.rejected)
    assert result["duplicates"] == len(corpus.duplicates)
    reported = {e["line"]: e["message"] for e in result["errors"]}
    assert len(reported) == len(corpus.rejected) + len(corpus.duplicates)
    for line, reason in corpus.rejected.items():
        assert reason in reported[line], (line, reported.get(line))
    for line in corpus.duplicates:
        assert "duplicate" in reported[line]
    campaign = await factories.get_campaign(api, cid)
    assert campaign["recipients"] == corpus.accepted


@pytest.mark.parametrize(
    ("name", "data", "message"),
    [
        ("UTF-16", "external_id,email\r\na,a@example.com\r\n".encode("utf-16"), "UTF-16"),
        ("Latin-1 header", "external_id,émail\n".encode("latin-1"), "UTF-8"),
        ("10,000-column header", b",".join(b"c%d" % i for i in range(10_000)) + b"\n", "columns"),
        ("empty", b"", "empty"),
        ("a zip file", b"PK\x03\x04\x14\x00" + bytes(range(256)) * 64, ""),
        ("no external_id", b"email,phone\nx@example.com,\n", "external_id"),
    ],
)
async def test_files_that_cannot_be_read_are_400_and_import_nothing(
    api: aiohttp.ClientSession, name: str, data: bytes, message: str
) -> None:
    cid = (await factories.create_campaign(api))["id"]
    status, result = await factories.upload(api, cid, data)
    assert status == 400, (name, result)
    assert message in result["detail"], (name, result)
    assert (await factories.get_campaign(api, cid))["recipients"] == 0


@pytest.mark.parametrize("framing", ["content-length", "chunked"])
async def test_an_upload_cut_mid_stream_imports_nothing(
    stack: LocalStack, api: aiohttp.ClientSession, admin_key: str, framing: str
) -> None:
    cid = (await factories.create_campaign(api))["id"]
    body = factories.recipients_csv(40_000)
    host, port = stack.api_url.removeprefix("http://").split(":")
    _, writer = await asyncio.open_connection(host, int(port))
    head = (
        f"POST /v1/campaigns/{cid}/recipients HTTP/1.1\r\nHost: {host}\r\n"
        f"Authorization: Bearer {admin_key}\r\nContent-Type: text/csv\r\n"
    )
    half = body[: len(body) // 2]
    if framing == "content-length":
        writer.write(f"{head}Content-Length: {len(body)}\r\n\r\n".encode() + half)
    else:
        writer.write(f"{head}Transfer-Encoding: chunked\r\n\r\n".encode())
        writer.write(b"%x\r\n%s\r\n" % (len(half), half))
    await writer.drain()
    await asyncio.sleep(0.5)  # the API is part way through the rows
    writer.close()
    await asyncio.sleep(1.0)
    campaign = await factories.get_campaign(api, cid)
    assert campaign["recipients"] == 0  # all or nothing
    status, result = await factories.upload(api, cid, body)
    assert status == 200 and result["accepted"] == 40_000  # and the retry is whole


async def test_hostile_values_stay_values_in_emails_and_in_the_report(
    stack: LocalStack,
    api: aiohttp.ClientSession,
    db: asyncpg.Connection,
    fleet: list[asyncio.subprocess.Process],
) -> None:
    corpus = build(2000, every=20)
    cid = (await factories.create_campaign(api))["id"]
    status, result = await factories.upload(api, cid, bytes(corpus.data))
    assert status == 200 and result["accepted"] == corpus.accepted, result
    started = time.monotonic()
    await factories.launch(api, cid)
    await finish(stack, api, db, [cid], scenario="hostile file, sent and reported", started=started)

    assert stack.sandbox is not None
    for message in stack.sandbox.messages("email"):
        assert message.body is not None
        head = message.body.split("\r\n\r\n", 1)[0]
        names = {line.split(":", 1)[0].lower() for line in head.split("\r\n") if line[:1] != " "}
        assert "bcc" not in names  # no header made from a value

    async with api.get(f"/v1/campaigns/{cid}/report") as resp:
        assert resp.status == 200
        text = await resp.text()
    rows = list(csv.reader(io.StringIO(text)))
    header, records = rows[0], rows[1:]
    deliveries = await db.fetchval(
        "SELECT count(*) FROM deliveries WHERE campaign_id = $1", uuid.UUID(cid)
    )
    assert len(records) == deliveries  # no value made a row of its own
    assert all(len(r) == len(header) for r in records)
    for record in records:
        for cell in record:
            assert not cell.startswith(("=", "+", "-", "@")), cell
    ids = Counter(r[header.index("external_id")] for r in records)
    assert any(i.startswith("'=cmd") for i in ids) and any(i.startswith("'+h-") for i in ids)
